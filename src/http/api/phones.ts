/** A user's mobile numbers (M1, M2, M6): add, verify by a confirm code sent by SMS, remove. */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import type { Phone } from '../../devices/sms/phones.js';
import { ErrorSchema } from '../errors.js';
import { requestMeta } from '../session-cookie.js';
import type { SessionGuard } from '../session-guard.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

const PhoneSchema = z
  .object({
    id: z.string(),
    country: z.string().describe('ISO 3166-1 alpha-2, as chosen'),
    number: z.string().describe('The number, masked: calling code and last two digits'),
    verified: z.boolean().describe('"SMS Verified" (M1)'),
    verifiedAt: z.string().nullable(),
    codePending: z.boolean().describe('A confirm code was sent and may still be entered'),
    resendAfter: z.string().nullable().describe('A new confirm code may be requested from then on (one every 2 minutes)'),
  })
  .describe('MobileNumber');
const PhoneParams = z.object({ phoneId: z.string().max(64) });
const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema, 410: ErrorSchema, 429: ErrorSchema };

export function phoneView(phone: Phone) {
  return {
    id: phone.id,
    country: phone.country,
    number: phone.masked,
    verified: phone.verified,
    verifiedAt: iso(phone.verifiedAt),
    codePending: phone.codePending,
    resendAfter: iso(phone.resendAfter),
  };
}

export function phonesApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];

    /** Changing the security settings needs a fresh step-up (X7) in a portal session of full scope (T3). */
    async function changer(request: FastifyRequest) {
      const { session } = await guard.require(request, 'security');
      return { session, meta: requestMeta(request) };
    }

    app.get(
      '/phones',
      {
        schema: {
          operationId: 'listPhones',
          tags: ['mobile'],
          summary: 'Your mobile numbers',
          security,
          response: { 200: z.object({ phones: z.array(PhoneSchema) }), 401: ErrorSchema },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'portal');
        return { phones: (await services.phones.list(session.userId)).map(phoneView) };
      },
    );

    app.post(
      '/phones',
      {
        schema: {
          operationId: 'addPhone',
          tags: ['mobile'],
          summary: 'Add a mobile number (M6): the country, and the digits without trunk prefix or country code',
          description:
            'Stored in E.164, not yet verified. Errors: 400 PHONE_INVALID (with a reason), 409 PHONE_EXISTS, 409 PHONE_LIMIT; ' +
            '403 PERMANENT_DEVICE_REQUIRED after a step-up with a temporary passcode or online card (a number on record may enrol the user in SMS, M2).',
          security,
          body: z.object({
            country: z.string().max(8).describe('ISO 3166-1 alpha-2, e.g. FR'),
            number: z.string().max(32).describe('Digits only, e.g. 612345678'),
          }),
          response: { 201: PhoneSchema, ...errors },
        },
      },
      async (request, reply) => {
        const { session, meta } = await changer(request);
        // T3, M2, X7: a number on record enrols a user without a permanent device (verified, or by its first login code)
        await guard.requirePermanentProof(request, session);
        const phone = await services.phones.add(session.userId, request.body, `user:${session.userId}`, meta.ip);
        return reply.status(201).send(phoneView(phone));
      },
    );

    app.post(
      '/phones/:phoneId/verification',
      {
        schema: {
          operationId: 'sendPhoneVerification',
          tags: ['mobile'],
          summary: 'VERIFY: send a confirm code by SMS (M1)',
          description:
            'A new code may be requested every 2 minutes (429 SMS_TOO_SOON). `delivery` says whether the gateway took the message. ' +
            'Errors: 400 PHONE_INVALID (country_not_served: SLS_SMS_COUNTRIES leaves the country out), 409 PHONE_ALREADY_VERIFIED, 429 SMS_RATE_LIMITED.',
          security,
          params: PhoneParams,
          response: { 200: z.object({ phone: PhoneSchema, delivery: z.enum(['sent', 'failed']) }), ...errors },
        },
      },
      async (request) => {
        const { session, meta } = await changer(request);
        const { phone, delivery } = await services.phones.sendConfirmCode(session.userId, request.params.phoneId, meta);
        return { phone: phoneView(phone), delivery };
      },
    );

    app.post(
      '/phones/:phoneId/confirmation',
      {
        schema: {
          operationId: 'confirmPhone',
          tags: ['mobile'],
          summary: 'Enter the confirm code: the number becomes "SMS Verified" (M1)',
          description:
            'A user without an active permanent security device (their own, or one another username shares with them, H) is then enrolled in SMS two-factor authentication (M2): `enrolledDevice`. ' +
            'Errors: 400 CODE_INVALID (with attemptsLeft), 410 CODE_EXPIRED (request a new code).',
          security,
          params: PhoneParams,
          body: z.object({ code: z.string().max(16) }),
          response: { 200: z.object({ phone: PhoneSchema, enrolledDevice: z.string().nullable().describe('The new SMS device, when enrolled') }), ...errors },
        },
      },
      async (request) => {
        const { session, meta } = await changer(request);
        await guard.requirePermanentProof(request, session);
        const { phone, enrolledDeviceId } = await services.phones.confirm(session.userId, request.params.phoneId, request.body.code, meta);
        return { phone: phoneView(phone), enrolledDevice: enrolledDeviceId };
      },
    );

    app.delete(
      '/phones/:phoneId',
      {
        schema: {
          operationId: 'removePhone',
          tags: ['mobile'],
          summary: 'Remove a mobile number; its SMS device is revoked',
          description:
            'Refused with 409 PHONE_IN_USE while the number receives the codes of your only security device. ' +
            'The sessions its SMS device opened end (L8): this one too when it was opened and stepped up with that number (it stands on nothing else).',
          security,
          params: PhoneParams,
          response: { 204: z.null().describe('Removed'), ...errors },
        },
      },
      async (request, reply) => {
        const { session, meta } = await changer(request);
        await services.phones.remove(session.userId, request.params.phoneId, `user:${session.userId}`, meta.ip, { exceptSessionId: session.id });
        return reply.status(204).send(null);
      },
    );
  };
}
