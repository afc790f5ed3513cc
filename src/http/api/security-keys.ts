/**
 * A user's FIDO2 security keys and passkeys (docs/decisions/0014-security-keys.md):
 * list them, register one (options, then the browser's answer), rename,
 * remove. A change needs a fresh step-up (X7: the `security` need).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import { securityKeyView } from '../../devices/security-key/registrations.js';
import { ErrorSchema } from '../errors.js';
import type { SessionGuard } from '../session-guard.js';

const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema, 410: ErrorSchema };

const SecurityKeySchema = z
  .object({
    id: z.string().describe('The device id'),
    name: z.string(),
    state: z.string().describe('active, or suspended (a signature counter went back: the key may be cloned)'),
    aaguid: z.string().describe('The authenticator model (all zeros when the browser withheld it)'),
    fmt: z.string().describe('The attestation format: none, packed, fido-u2f …'),
    transports: z.array(z.string()),
    synced: z.boolean().describe('A passkey synced between devices (multiDevice)'),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable(),
  })
  .describe('SecurityKey');

const RegistrationSchema = z
  .object({
    options: z.record(z.string(), z.unknown()).describe('PublicKeyCredentialCreationOptionsJSON for navigator.credentials.create'),
    state: z.string().describe('Send it back with the credential; valid for this session, a few minutes'),
  })
  .describe('SecurityKeyRegistration');

const NameBody = z.object({ name: z.string().max(256).describe('1 to 64 characters, no bidirectional control (U+202A–U+202E, U+2066–U+2069)') });
const KeyParams = z.object({ keyId: z.string().max(64) });

export function securityKeysApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];
    const { securityKeys } = services;

    app.get(
      '/security-keys',
      {
        schema: {
          operationId: 'listSecurityKeys',
          tags: ['security-keys'],
          summary: 'Your security keys and passkeys',
          security,
          response: { 200: z.object({ keys: z.array(SecurityKeySchema) }), 401: ErrorSchema, 403: ErrorSchema },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'portal');
        return { keys: (await securityKeys.list(session.userId)).map(securityKeyView) };
      },
    );

    app.post(
      '/security-keys/registration',
      {
        schema: {
          operationId: 'startSecurityKeyRegistration',
          tags: ['security-keys'],
          summary: 'Start registering a security key or passkey: the options for navigator.credentials.create',
          description:
            '403 STEP_UP_REQUIRED without a recent step-up (X7); 403 PERMANENT_DEVICE_REQUIRED after a step-up with temporary access (T3); ' +
            '403 STRONGER_DEVICE_REQUIRED after a step-up with a device weaker than a security key and than the user’s strongest (D2, K7: SMS while a DSC+ protects the user); 409 SECURITY_KEY_LIMIT at 10 keys.',
          security,
          response: { 200: RegistrationSchema, ...errors },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'security');
        await guard.requireProofToAdd(request, session, 'security_key');
        return securityKeys.start(session);
      },
    );

    app.post(
      '/security-keys',
      {
        schema: {
          operationId: 'registerSecurityKey',
          tags: ['security-keys'],
          summary: 'Register the key: the credential navigator.credentials.create gave (RegistrationResponseJSON), a name and the state',
          description:
            '400 SECURITY_KEY_NOT_VERIFIED (the attestation does not verify: wrong challenge, origin or relying party), SECURITY_KEY_NAME_INVALID; ' +
            '403 SECURITY_KEY_MODEL_NOT_ALLOWED (the AAGUID is not in SLS_SECURITY_KEY_AAGUIDS), STEP_UP_REQUIRED, PERMANENT_DEVICE_REQUIRED, STRONGER_DEVICE_REQUIRED (as for the start); 409 SECURITY_KEY_ALREADY_REGISTERED (the credential id is registered already, for this user or another: one answer, audited), SECURITY_KEY_LIMIT; ' +
            '410 SECURITY_KEY_REGISTRATION_EXPIRED (the state is old or of another session).',
          security,
          body: z.object({
            name: z.string().max(256),
            state: z.string().max(2048),
            credential: z.record(z.string(), z.unknown()).describe('RegistrationResponseJSON'),
          }),
          response: { 201: SecurityKeySchema, ...errors },
        },
      },
      async (request, reply) => {
        const { session } = await guard.require(request, 'security');
        await guard.requireProofToAdd(request, session, 'security_key');
        const device = await securityKeys.finish(session, request.body);
        return reply.code(201).send(securityKeyView(device));
      },
    );

    app.patch(
      '/security-keys/:keyId',
      {
        schema: {
          operationId: 'renameSecurityKey',
          tags: ['security-keys'],
          summary: 'Rename a key',
          security,
          params: KeyParams,
          body: NameBody,
          response: { 200: SecurityKeySchema, ...errors },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'security');
        return securityKeyView(await securityKeys.rename(session, request.params.keyId, request.body.name));
      },
    );

    app.delete(
      '/security-keys/:keyId',
      {
        schema: {
          operationId: 'removeSecurityKey',
          tags: ['security-keys'],
          summary: 'Remove a key: it stops working for good',
          description:
            '403 STEP_UP_REQUIRED without a recent step-up (X7); 403 PERMANENT_DEVICE_REQUIRED after a step-up with temporary access (T3); ' +
            '403 STRONGER_DEVICE_REQUIRED (reason remove) after a step-up with a device weaker than a security key and than the user’s strongest (D2, K7: SMS while a key or a DSC+ protects the user; a lost key is reported to client services); 404 DEVICE_NOT_FOUND; ' +
            '409 KEY_IN_USE while the key is the only way to log in (no other active permanent device, no verified number). ' +
            'The sessions the key opened end (L8); this one too when it stepped up with that key.',
          security,
          params: KeyParams,
          response: { 204: z.null(), ...errors },
        },
      },
      async (request, reply) => {
        const { session } = await guard.require(request, 'security');
        // D2, K7, X7: a weaker proof removes no key (the strongest device gone, it would bind one with an SMS token)
        await guard.requireProofToRemove(request, session, 'security_key');
        await securityKeys.remove(session, request.params.keyId);
        return reply.code(204).send(null);
      },
    );
  };
}
