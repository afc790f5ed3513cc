/**
 * The mobile authenticator's API (K, docs/decisions/0004): activation,
 * migration and recovery on the phone; the app's live connection for push
 * requests and messages; its answers. The app authenticates with the token
 * of each activation (never a session cookie), so these routes need no CSRF
 * check; answers are signatures by keys that never leave the phone.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import { acceptSubscription } from '../../push/subscription.js';
import type { WebOrigin } from '../../devices/mobile/webauthn.js';
import { FLOW_ERRORS } from '../errors.js';
import { answerText } from './schemas.js';
import { requestMeta } from '../session-cookie.js';

const Base64Url = z
  .string()
  .max(256)
  .regex(/^[A-Za-z0-9_-]*$/);
export const PublicJwkSchema = z.object({ kty: z.literal('EC'), crv: z.literal('P-256'), x: Base64Url, y: Base64Url }).describe('P-256 public key (JWK)');
export const DeviceTokenSchema = z.object({ deviceId: z.string().max(64), token: z.string().min(1).max(128) });
/** A WebAuthn response as JSON (base64url fields); checked by the WebAuthn library. */
const WebAuthnJson = z.record(z.string(), z.unknown()).describe('WebAuthn response JSON, base64url fields');

export const ActivationSchema = z
  .object({
    id: z.string(),
    purpose: z.enum(['activate', 'migrate', 'recover']),
    username: z.string(),
    proof: z
      .enum(['sms', 'device'])
      .describe(
        'The proof of possession: sms, an activation token by SMS to a number on record; device, the answer of the active physical device, or of a security key',
      ),
    phones: z
      .array(z.object({ id: z.string(), number: z.string().describe('masked'), verified: z.boolean() }))
      .describe('The numbers on record the token may go to'),
    challenge: z
      .looseObject({ type: z.enum(['sms', 'ocra', 'index', 'otp', 'webauthn']) })
      .nullable()
      .describe(
        "The SMS sent (type sms), or the physical device's challenge (ocra, index; otp: the code a token shows), or a security key's (webauthn: the options of navigator.credentials.get)",
      ),
    expiresAt: z.string(),
    attemptsLeft: z.number().int(),
    proven: z.boolean().describe("The activation token (or the device's answer) was accepted: the PIN comes next, within expiresAt"),
    webauthn: z
      .object({
        challenge: z.string(),
        rp: z.object({ id: z.string().optional(), name: z.string() }),
        user: z.object({ id: z.string(), name: z.string(), displayName: z.string() }),
        pubKeyCredParams: z.array(z.object({ type: z.literal('public-key'), alg: z.number().int() })),
        timeout: z.number().int().optional(),
        excludeCredentials: z.array(z.unknown()).optional(),
        authenticatorSelection: z
          .object({
            authenticatorAttachment: z.string().optional(),
            userVerification: z.string().optional(),
            residentKey: z.string().optional(),
            requireResidentKey: z.boolean().optional(),
          })
          .optional(),
        attestation: z.string().optional(),
        hints: z.array(z.string()).optional(),
        extensions: z.object({ credProps: z.boolean().optional() }).optional(),
      })
      .describe('Options for navigator.credentials.create (biometric confirmation), base64url fields'),
  })
  .describe('MobileActivation');

/** L8: the answer of POST /mobile/activations, to whoever entered the password: the activation and its claim token. */
export const StartedActivationSchema = ActivationSchema.extend({
  claimToken: z
    .string()
    .describe('Given only here, to whoever entered the password: send it in the header X-Claim-Token of the token, proof and completion (L8)'),
}).describe('StartedMobileActivation');

/** L8: the activation's claim token, for the steps after its start. */
export const ActivationClaimHeaders = z.object({
  'x-claim-token': z
    .string()
    .max(128)
    .optional()
    .describe('The claimToken of the POST /mobile/activations answer: without it (or with another) the activation is 404 FLOW_NOT_FOUND'),
});

export const PushRequestSchema = z.object({
  id: z.string(),
  deviceId: z.string(),
  username: z.string(),
  kind: z.enum(['login', 'step_up']),
  app: z.enum(['portal', 'trading']),
  ip: z.string().nullable(),
  requestedAt: z.string(),
  expiresAt: z.string(),
  question: z.string().describe('8 digits; the OCRA response to it, with the PIN, is the proof of a PIN approval'),
});

export const SealedSchema = z.object({ serverKey: PublicJwkSchema, salt: z.string(), nonce: z.string(), ciphertext: z.string() });

/* The bodies of the routes below, exported for the wire contract check (./mobile-wire.ts). */
export const StartActivationBody = z.object({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
  purpose: z.enum(['activate', 'migrate', 'recover']),
});
export const SendTokenBody = z.object({ phoneId: z.string().max(64) });
export const ProveActivationBody = z.object({
  response: answerText(1),
  signingKey: PublicJwkSchema,
  agreementKey: PublicJwkSchema,
});
export const CompleteActivationBody = z.object({
  pin: z.string().max(64),
  signingKey: PublicJwkSchema,
  agreementKey: PublicJwkSchema,
  signature: z.string().max(200),
  label: z.string().max(200).optional(),
  credential: WebAuthnJson.optional(),
});
export const ActivatedSchema = z.object({
  deviceId: z.string(),
  username: z.string(),
  serverKey: PublicJwkSchema.describe("With the salt and the phone's agreement key: the challenge/response key (ECDH, HKDF-SHA-256)"),
  salt: z.string(),
  suite: z.string().describe('The OCRA suite of challenge/response'),
  appToken: z.string().describe("Authenticates the app's live connection; shown once"),
  biometric: z.boolean(),
  credentialId: z.string().nullable(),
});
export const PollBody = z.object({ devices: z.array(DeviceTokenSchema).max(20), wait: z.number().int().min(0).max(25).default(0) });
export const PollResultSchema = z.object({
  requests: z.array(PushRequestSchema),
  messages: z.array(z.object({ id: z.string(), deviceId: z.string(), kind: z.literal('temporary_password'), createdAt: z.string(), sealed: SealedSchema })),
  revoked: z.array(z.string()),
});
export const AnswerBody = DeviceTokenSchema.extend({
  decision: z.enum(['approve', 'deny']),
  number: z.string().max(8),
  proof: z.string().max(16),
  signature: z.string().max(200),
  assertion: WebAuthnJson.optional(),
});
export const AnswerResultSchema = z.object({ state: z.enum(['approved', 'denied']) });
export const SubscribeBody = DeviceTokenSchema.extend({
  subscription: z.object({ endpoint: z.string().max(2048), keys: z.object({ p256dh: Base64Url, auth: Base64Url }) }),
});
/** A new instance for each route, as before (the OpenAPI document is unchanged). */
export const OkSchema = () => z.object({ ok: z.literal(true) });

const ActivationParams = z.object({ id: z.string().max(64) });

/**
 * Where the app runs (the server's own origin): WebAuthn credentials are
 * bound to it. The configured public URL when there is one (SLS_PUBLIC_URL),
 * so that a forged Host header never decides it; else the request's.
 */
export function webOrigin(request: FastifyRequest, publicUrl: string | undefined): WebOrigin {
  if (publicUrl) {
    const url = new URL(publicUrl);
    return { origin: url.origin, rpId: url.hostname };
  }
  return { origin: `${request.protocol}://${request.host}`, rpId: request.hostname };
}

export function mobileApi(services: Services): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const { mobileEnrolment, pushRequests } = services;

    app.post(
      '/mobile/activations',
      {
        schema: {
          operationId: 'startMobileActivation',
          security: [],
          tags: ['mobile authenticator'],
          summary: 'Start activating the mobile authenticator on this phone, moving it here, or recovering it (K1, K7, K8)',
          description:
            "Username and password first (the login's lock and answers: 401 INVALID_CREDENTIALS, 423 LOCKED). Then a proof of possession, named in " +
            '`proof` (X7: no second factor is bound by the password alone): an activation token by SMS to a number on record, or the answer of an ' +
            'active physical device (one shared with the user too, H), else of an active security key (its assertion, K7): of one at least as strong as the ' +
            'authenticator or as the strongest of them (D2: a code card does not answer for a user a security key protects). 403 PASSWORD_CHANGE_REQUIRED ' +
            'for a one-time password from client services (A5: it opens one login, to change it). 403 NO_ACTIVE_DEVICE (reason no_number) when neither exists: client services put a number on record. ' +
            '409 MOBILE_ALREADY_ACTIVE (activate when one is active: migrate instead), 409 MOBILE_NOT_ACTIVE (migrate or recover with none), ' +
            '403 RECOVERY_BLOCKED, 429 TOO_MANY_FLOWS. 403 STRONGER_DEVICE_REQUIRED (reason loss_unconfirmed: the strongest device reported lost from a weaker ' +
            "proof, decision 0023; reason staff_mobile: a staff member's authenticator is never migrated or recovered by an SMS token, audited, decision 0035). " +
            'Keep `claimToken`: the token, the proof and the completion need it in the header ' +
            '`X-Claim-Token` (L8); without it, or with another, they answer 404 FLOW_NOT_FOUND as for an unknown id, and send and count nothing.',
          body: StartActivationBody,
          response: { 200: StartedActivationSchema, ...FLOW_ERRORS },
        },
      },
      async (request) => mobileEnrolment.start({ ...request.body, ...requestMeta(request) }, webOrigin(request, services.config.publicUrl)),
    );

    app.post(
      '/mobile/activations/:id/token',
      {
        schema: {
          operationId: 'sendMobileActivationToken',
          security: [],
          tags: ['mobile authenticator'],
          summary: 'Send the activation token by SMS (K1) to a number on record',
          description:
            '`{"phoneId"}` of `phones`. 429 SMS_TOO_SOON (one token every 30 s), 429 SMS_RATE_LIMITED, 404 PHONE_NOT_FOUND, 400 PHONE_INVALID (country_not_served: SLS_SMS_COUNTRIES leaves the number\'s country out). ' +
            "L8: only with the activation's claim token (header `X-Claim-Token`): without it 404 FLOW_NOT_FOUND, as for an unknown id, and no SMS.",
          params: ActivationParams,
          headers: ActivationClaimHeaders,
          body: SendTokenBody,
          response: { 200: ActivationSchema, ...FLOW_ERRORS },
        },
      },
      async (request) =>
        mobileEnrolment.sendToken(
          request.params.id,
          request.headers['x-claim-token'],
          request.body,
          requestMeta(request),
          webOrigin(request, services.config.publicUrl),
        ),
    );

    app.post(
      '/mobile/activations/:id/proof',
      {
        schema: {
          operationId: 'proveMobileActivation',
          security: [],
          tags: ['mobile authenticator'],
          summary: "The activation token (or the physical device's answer), checked before the PIN is chosen (K1, K7, K8)",
          description:
            "`response` is the activation token or the physical device's answer (a security key's: its assertion as JSON, at most 8 KB); `signingKey` and `agreementKey` are the public keys the phone " +
            'made for this activation: only they may finish it. A right proof answers the activation with `proven: true` and 3 answers for the ' +
            'PIN step, until `expiresAt`. A wrong one: 401 ACTIVATION_PROOF_FAILED with attemptsLeft (3 in all, each counted towards the lock, L3; ' +
            'reason used_up after the third). Copies of a right proof sent at once: one is accepted, the others get 410 FLOW_EXPIRED and count ' +
            'nothing. 409 FLOW_STATE (reason proven) once proven; 410 FLOW_EXPIRED once finished, failed or expired; 423 LOCKED. ' +
            '409 DEVICE_NOT_AVAILABLE once the physical device that answers is reported lost (or leaves active); 404 PHONE_NOT_FOUND once the ' +
            'number the token went to is removed (nothing counted). ' +
            "L8: only with the activation's claim token (header `X-Claim-Token`): without it 404 FLOW_NOT_FOUND, as for an unknown id, nothing counted.",
          params: ActivationParams,
          headers: ActivationClaimHeaders,
          body: ProveActivationBody,
          response: { 200: ActivationSchema, ...FLOW_ERRORS },
        },
      },
      async (request) =>
        mobileEnrolment.prove(
          request.params.id,
          request.headers['x-claim-token'],
          request.body,
          requestMeta(request),
          webOrigin(request, services.config.publicUrl),
        ),
    );

    app.post(
      '/mobile/activations/:id/complete',
      {
        schema: {
          operationId: 'completeMobileActivation',
          security: [],
          tags: ['mobile authenticator'],
          summary: 'Finish a proven activation: the PIN (K2) and the public keys made on the phone',
          description:
            'Only after proveMobileActivation: 409 ACTIVATION_NOT_PROVEN otherwise (nothing counted). `signingKey` and `agreementKey` are the ' +
            "keys named with the proof, and `signature` the signing key's ECDSA P-256 signature (r‖s, base64url) over " +
            '"sls-activation/1\\n{id}": 409 ACTIVATION_NOT_PROVEN (reason keys) otherwise. `pin` is the new PIN: 4 to 6 characters with at least one ' +
            'digit, not trivial (400 INVALID_PIN, reason trivial: repeated or consecutive digits, a year, a common PIN); for a recovery (K8) it is ' +
            'the recovery PIN, which is kept: a wrong one is 401 ACTIVATION_PROOF_FAILED (reason recovery_pin) with attemptsLeft (3 in all, each ' +
            'counted towards the lock), and 403 RECOVERY_BLOCKED once the wrong recovery PINs reached the max (each guess is counted before it is ' +
            'compared: guesses sent at once on several recoveries never pass it). `credential` registers fingerprint or face confirmation ' +
            '(WebAuthn). On success the previous authenticator of the user stops working, SMS is removed (M3) and temporary access ends (D4); the activation is finished (410 FLOW_EXPIRED after). ' +
            'The proof must still stand: 409 DEVICE_NOT_AVAILABLE once the physical device that gave it is reported lost, 404 PHONE_NOT_FOUND ' +
            'once the number the token went to is removed; no phone is bound. ' +
            "L8: only with the activation's claim token (header `X-Claim-Token`): without it 404 FLOW_NOT_FOUND, as for an unknown id, nothing counted.",
          params: ActivationParams,
          headers: ActivationClaimHeaders,
          body: CompleteActivationBody,
          response: {
            200: ActivatedSchema,
            ...FLOW_ERRORS,
          },
        },
      },
      async (request, reply) => {
        reply.header('cache-control', 'no-store');
        return mobileEnrolment.complete(
          request.params.id,
          request.headers['x-claim-token'],
          request.body,
          requestMeta(request),
          webOrigin(request, services.config.publicUrl),
        );
      },
    );

    app.post(
      '/mobile/requests',
      {
        schema: {
          operationId: 'pollMobileRequests',
          security: [],
          tags: ['mobile authenticator'],
          summary: "The app's live connection: push requests and messages for its users (K3, K14)",
          description:
            'Answers at once when something waits, when a request is made (on any server process), or after `wait` seconds (at most 25). ' +
            '`revoked` names the devices whose activation no longer works (moved to another phone, K7).',
          body: PollBody,
          response: {
            200: PollResultSchema,
            ...FLOW_ERRORS,
          },
        },
      },
      async (request, reply) => {
        // a client that goes away stops the wait
        const abort = new AbortController();
        reply.raw.once('close', () => abort.abort());
        reply.header('cache-control', 'no-store');
        return pushRequests.poll(request.body.devices, request.body.wait * 1000, abort.signal);
      },
    );

    app.post(
      '/mobile/requests/:id',
      {
        schema: {
          operationId: 'answerMobileRequest',
          security: [],
          tags: ['mobile authenticator'],
          summary: 'Answer a push request: approve with the number shown on the login screen, or deny ("this wasn\'t me")',
          description:
            '`signature` is the phone\'s ECDSA P-256 signature over "sls-push-answer/1\\n{id}\\n{number}\\n{decision}\\n{proof}". Approve with the PIN: ' +
            '`proof` = OCRA response to the request\'s question with the PIN; with biometric: `proof` = "" and `assertion`, a WebAuthn assertion ' +
            'over SHA-256 of the signed text. A wrong number, PIN or signature: 401 LOGIN_FAILED (counted like a wrong answer); late or ' +
            'already answered: 410 FLOW_EXPIRED; 401 APP_TOKEN_INVALID. A deny of a step-up (kind step_up) also ends the session that asked for it ' +
            "(L8, audited with the cause push_denied); after a deny, logins from clients the user has not logged in from lately get the app's " +
            'challenge instead of a push for 24 h (K13, decision 0026), and so do step-ups (decision 0030).',
          params: ActivationParams,
          body: AnswerBody,
          response: { 200: AnswerResultSchema, ...FLOW_ERRORS },
        },
      },
      async (request) => pushRequests.answer(request.params.id, request.body, webOrigin(request, services.config.publicUrl)),
    );

    app.post(
      '/mobile/messages/:id/ack',
      {
        schema: {
          operationId: 'acknowledgeMobileMessage',
          security: [],
          tags: ['mobile authenticator'],
          summary: 'The app has shown a message (a temporary password, K14): it is deleted',
          description:
            "404 NOT_FOUND for a message that is not this phone's authenticator's, unknown, expired or already acknowledged (the same answer: no message id is told apart); 401 APP_TOKEN_INVALID for the phone's own proof.",
          params: ActivationParams,
          body: DeviceTokenSchema,
          response: { 200: OkSchema(), ...FLOW_ERRORS },
        },
      },
      async (request) => {
        await pushRequests.acknowledge(request.params.id, request.body);
        return { ok: true as const };
      },
    );

    app.post(
      '/mobile/push-subscription',
      {
        schema: {
          operationId: 'setMobilePushSubscription',
          security: [],
          tags: ['mobile authenticator'],
          summary: "Where the phone's push service wakes the closed app (a Web Push subscription)",
          description:
            'The endpoint must be https on port 443 and belong to a known push service (SLS_PUSH_SERVICES); p256dh an uncompressed P-256 key (65 bytes), auth 16 bytes, base64url: 400 VALIDATION_ERROR otherwise.',
          body: SubscribeBody,
          response: { 200: OkSchema(), ...FLOW_ERRORS },
        },
      },
      async (request) => {
        await pushRequests.subscribe(request.body, acceptSubscription(request.body.subscription, services.config.pushServices));
        return { ok: true as const };
      },
    );
  };
}
