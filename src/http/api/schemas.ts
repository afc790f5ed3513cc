/** Shapes of the JSON API, shared by validation, serialisation and the OpenAPI description. */
import { z } from 'zod';

/** V1, X7: what every action of staff needs (the help desk and admin API), as the OpenAPI description of each says. */
export const STAFF_STEP_UP =
  'A role the route is not for is refused first, stepped up or not: 403 FORBIDDEN_ROLE, audited (X1, X7, decision 0034). ' +
  'Needs a step-up of this staff session within the last minutes (SLS_STEP_UP_MINUTES, 5 by default): 403 STEP_UP_REQUIRED otherwise, ' +
  'with `stepUp`, where it starts (V1, X7); and that step-up (else the login) made with a permanent device, not a temporary passcode or online card: ' +
  "403 PERMANENT_DEVICE_REQUIRED otherwise (X7, T3); and with the staff member's strongest device (not SMS while a DSC+ protects them): " +
  '403 STRONGER_DEVICE_REQUIRED otherwise (X7, D2, decision 0028).';

/** A DSC+ shipping address (C4). */
export const AddressSchema = z.object({
  name: z.string().max(100),
  line1: z.string().max(100),
  line2: z.string().max(100).optional(),
  city: z.string().max(60),
  postalCode: z.string().max(20),
  country: z.string().max(2).describe('ISO 3166-1 alpha-2'),
});

export const AppSchema = z.enum(['portal', 'trading']).describe('What the login is for: the Client Portal or a trading platform');

export const DeviceSummarySchema = z.object({
  id: z.string(),
  type: z.string().describe('Device type, e.g. dscplus'),
  label: z.string().nullable(),
});

export const ChallengeSchema = z
  .discriminatedUnion('type', [
    z
      .object({
        type: z.literal('ocra').describe('A challenge to type into a challenge/response device (DSC+)'),
        question: z.string().describe('The challenge code to show, e.g. 6 digits'),
        digits: z.number().int().describe('Length of the expected response'),
      })
      .describe('OcraChallenge'),
    z.object({ type: z.literal('passcode').describe('Ask for the temporary passcode from client services') }).describe('PasscodeChallenge'),
    z
      .object({
        type: z.literal('otp').describe('Ask for the one-time password the token shows (Platinum, Gold: HOTP or TOTP, D1); nothing to type into it'),
        digits: z.number().int().describe('Length of the expected code'),
      })
      .describe('OtpChallenge'),
    z
      .object({
        type: z.literal('index').describe('Ask for the codes under two index numbers of a code card, one after the other (6 digits)'),
        indexes: z.tuple([z.number().int(), z.number().int()]),
      })
      .describe('IndexChallenge'),
    z
      .object({
        type: z.literal('sms').describe('A code was sent to the mobile number by SMS, or is read by an automated call (M4, M5)'),
        to: z.string().describe('The number, masked: calling code and last two digits'),
        channel: z.enum(['sms', 'voice']),
        delivery: z
          .enum(['sent', 'failed', 'limited'])
          .describe(
            'sent: the gateway took it; failed: the gateway refused or did not answer (ask again, or choose voice); limited: send limits reached until resendAfter',
          ),
        reason: z
          .enum(['country_not_served'])
          .optional()
          .describe(
            'With delivery failed, when the gateway is not the cause: country_not_served, the number is of a country this service sends no SMS or calls to (M7, SLS_SMS_COUNTRIES): another device, or another number put on record by client services',
          ),
        resendAfter: z.string().describe('ISO 8601; a new code may be requested from then on'),
        sends: z.number().int().describe('Codes sent in this login so far'),
        confirmsNumber: z.boolean().describe('The code also confirms the number on record (a new applicant starting on SMS, M2)'),
        digits: z.number().int(),
      })
      .describe('SmsChallenge'),
    z
      .object({
        type: z.literal('push').describe('A push request went to the mobile authenticator (K3); approve it on the phone'),
        number: z.string().describe('The 2-digit number to show; the user types it into the app before approving (K13)'),
      })
      .describe('PushChallenge'),
    z
      .object({
        type: z
          .literal('webauthn')
          .describe('A FIDO2 security key or passkey: call navigator.credentials.get with `options`; the answer is the assertion as JSON'),
        options: z.record(z.string(), z.unknown()).describe('PublicKeyCredentialRequestOptionsJSON (challenge and credential ids base64url)'),
      })
      .describe('WebAuthnChallenge'),
  ])
  .describe('What the client must show for the second factor');

export const FlowSchema = z
  .object({
    id: z.string(),
    state: z
      .enum(['second_factor', 'approved', 'done', 'failed', 'denied', 'expired'])
      .describe('approved: the phone approved the login (K3); take the session with POST /login/{flowId}/session. denied: "this wasn\'t me" on the phone'),
    app: AppSchema,
    username: z.string(),
    expiresAt: z.string().describe('ISO 8601; the challenge cannot be answered after this'),
    device: DeviceSummarySchema.nullable().describe('The device the challenge is for'),
    devices: z.array(DeviceSummarySchema).describe("The user's active devices (M2FS): the first is the one offered"),
    challenge: ChallengeSchema.nullable(),
    attemptsLeft: z.number().int(),
  })
  .describe('LoginFlow');

export const SessionTokenSchema = z.object({
  token: z.string().describe('Bearer token; also set as the session cookie (__Host-sls_session; sls_session when cookies are not Secure)'),
  expiresAt: z.string(),
  app: AppSchema,
});

export const LoginStartBody = z.object({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
  app: AppSchema,
});

/**
 * The answer to a challenge: at most 64 characters, or a security key's
 * WebAuthn assertion (a JSON object) of at most 8 KB.
 */
export const answerText = (min = 0) =>
  z
    .string()
    .min(min)
    .max(8192)
    // X2: told as validation.custom.response_length (at most 64 characters, a WebAuthn assertion at most 8192)
    .refine((r) => r.length <= 64 || r.startsWith('{'), { message: 'response length' })
    .describe('The answer to the challenge; for a webauthn challenge, the assertion as JSON (at most 8 KB)');

export const LoginStepBody = z
  .object({
    response: answerText().optional(),
    device: z.string().max(64).optional().describe("Switch to another of the user's devices (M2FS)"),
  })
  .refine((b) => (b.response === undefined) !== (b.device === undefined), {
    // X2: told as validation.custom.response_or_device (give either "response" or "device")
    message: 'response or device',
  });

export const FlowParams = z.object({ flowId: z.string().max(64) });

/** `?wait=`: whole seconds, written in decimal digits, at most 25 (a long poll). */
export const WaitQuery = z.object({
  wait: z
    .string()
    .regex(/^\d{1,2}$/)
    .describe('How long to hold the request, in whole seconds (0 to 25)')
    .transform(Number)
    .pipe(z.number().int().max(25))
    .optional(),
});

export const StartedFlowSchema = FlowSchema.extend({
  claimToken: z
    .string()
    .describe('Given only here, to whoever entered the password: send it to POST /login/{id}/session to take the session the phone approved (K3)'),
  session: SessionTokenSchema.optional().describe(
    'O1: a trading login of a user who opted out of the second factor is done with the password alone (state "done"): its session',
  ),
});

/** L8, K3: who started a login: the requests that change or watch it carry its claim token. */
export const ClaimHeaders = z.object({
  'x-claim-token': z
    .string()
    .max(128)
    .optional()
    .describe('The claimToken of the POST /login answer: without it (or with another) the flow is 404 FLOW_NOT_FOUND'),
});

export const ClaimBody = z.object({ claimToken: z.string().min(1).max(128).describe('The claimToken of the POST /login answer') });

export const SessionSchema = z
  .object({
    id: z.string(),
    app: AppSchema,
    user: z.object({ id: z.string(), username: z.string(), account: z.string() }),
    device: z.object({ id: z.string().nullable(), type: z.string().nullable() }),
    createdAt: z.string(),
    expiresAt: z.string(),
    idleExpiresAt: z.string().nullable(),
    scope: z
      .enum(['full', 'online_card_only'])
      .describe('online_card_only: a temporary passcode older than 2 days opens only the online security card pages (T3)'),
    passwordChangeRequired: z.boolean().describe('The user logged in with a one-time password from client services and must choose a new one (A5)'),
    confirmedBy: z
      .enum(['pin', 'biometric'])
      .nullable()
      .describe('How the login was confirmed on the mobile authenticator (K12: biometric trading sessions last 30 hours)'),
    verifiedAt: z.string().nullable().describe('When the user last verified again with a device in this session (step-up, V1)'),
  })
  .describe('Session');
