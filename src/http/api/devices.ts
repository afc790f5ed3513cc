/** A user's own devices, and reactivating one that was temporarily unavailable (D3, D4). */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import { ErrorSchema } from '../errors.js';
import type { SessionGuard } from '../session-guard.js';
import { AddressSchema, ChallengeSchema } from './schemas.js';
import type { Device } from '../../devices/types.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const DeviceSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    serial: z.string().nullable(),
    label: z.string().nullable(),
    state: z.string(),
    expiresAt: z.string().nullable(),
  })
  .describe('Device');
const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema, 410: ErrorSchema, 423: ErrorSchema };

/** A device proof in progress: the challenge to answer (activation, PIN change). */
const ProofSchema = z
  .object({ id: z.string(), deviceId: z.string(), challenge: ChallengeSchema, expiresAt: z.string(), attemptsLeft: z.number().int() })
  .describe('DeviceProof');

const RequestBody = z.object({
  address: AddressSchema,
  pin: z.string().max(16).describe('The 4-digit soft PIN of the new card'),
  holdAccount: z.string().max(16).optional().describe('Account on which the USD 20 deposit is held (default: your own)'),
});
const SummarySchema = z.object({
  address: AddressSchema,
  holdAccount: z.string(),
  depositUsd: z.number(),
  estimatedShipDate: z.string(),
  estimatedDeliveryDate: z.string(),
});

function deviceView(d: Device) {
  return { id: d.id, type: d.type, serial: d.serial, label: d.label, state: d.state, expiresAt: iso(d.expiresAt) };
}

export function devicesApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];

    app.get(
      '/devices',
      {
        schema: {
          operationId: 'listDevices',
          tags: ['devices'],
          summary: 'Your security devices',
          security,
          response: { 200: z.object({ devices: z.array(DeviceSchema) }), 401: ErrorSchema },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'portal');
        const devices = await services.devices.listForUser(session.userId);
        return { devices: devices.map(deviceView) };
      },
    );

    app.get(
      '/withdrawal-limits',
      {
        schema: {
          operationId: 'getWithdrawalLimits',
          tags: ['devices'],
          summary: 'The withdrawal limits of this session: the weaker of the user’s and those of the device the session last proved (W1)',
          description:
            'USD per day and in 5 business days; null means unlimited. The user’s row is set by the strongest active security device; without an active ' +
            'permanent device, or while opted out of the second factor for trading (O1): USD 50,000 and 100,000; while sharing a device (H): the shared ' +
            'device’s. The session’s row is that of the device its login or latest step-up proved: logged in with SMS, the SMS row even when the user ' +
            'holds a DSC+; a temporary passcode, or a device since revoked or reported lost: USD 50,000 and 100,000.',
          security,
          response: {
            200: z
              .object({
                device: z.string().nullable().describe('The device type that sets the limits; null when none protects the user'),
                perDayUsd: z.number().nullable(),
                fiveBusinessDaysUsd: z.number().nullable(),
              })
              .describe('WithdrawalLimits'),
            401: ErrorSchema,
          },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'portal');
        // W1, D2: this session's: the weaker of the user's row (O1, H) and the row of the device the session last proved
        return services.withdrawals.limitsOfSession(session.userId, session);
      },
    );

    app.post(
      '/devices/:deviceId/activation',
      {
        schema: {
          operationId: 'startDeviceActivation',
          tags: ['devices'],
          summary: 'Start activating a device: a suspended card (D4) or a printed online security card (S2): its challenge',
          description:
            '409 DEVICE_NOT_AVAILABLE when the device cannot be activated now; reason `sharing` when a device sharing in force set it aside (H5): ' +
            'it comes back when the sharing is cancelled.',
          security,
          params: z.object({ deviceId: z.string().max(64) }),
          response: {
            200: ProofSchema,
            ...errors,
          },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'temporary');
        return services.activation.start(session, request.params.deviceId, request.language);
      },
    );

    app.post(
      '/devices/:deviceId/activation/:flowId',
      {
        schema: {
          operationId: 'completeDeviceActivation',
          tags: ['devices'],
          summary: "Answer the device's challenge: it is active; a reactivated card ends the temporary passcode and online card (D4)",
          description:
            'A new online security card ends the one activated before, and the sessions it opened (S2, L8). ' +
            '401 LOGIN_FAILED with attemptsLeft; 410 FLOW_EXPIRED; 409 DEVICE_NOT_AVAILABLE when the device was reported lost, revoked or activated meanwhile, or set aside by a sharing that came into force (L8, H5, nothing activated).',
          security,
          params: z.object({ deviceId: z.string().max(64), flowId: z.string().max(64) }),
          body: z.object({ response: z.string().max(64) }),
          response: { 200: DeviceSchema, ...errors },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'temporary');
        return deviceView(await services.activation.complete(session, request.params.flowId, request.body.response));
      },
    );

    app.post(
      '/devices/:deviceId/lost',
      {
        schema: {
          operationId: 'reportDeviceLost',
          tags: ['devices'],
          summary:
            "Report a DSC+ lost, stolen or damaged: it stops working at once; the deposit of a lost or stolen card is kept, a damaged one's stays held until it is returned (C5)",
          description:
            'The sessions the card opened end (L8), also those of a user it is shared with; this one is kept when it stepped up with another device, and ends too when its step-up was with this card.',
          security,
          params: z.object({ deviceId: z.string().max(64) }),
          body: z.object({ reason: z.enum(['lost', 'stolen', 'damaged']) }),
          response: { 200: DeviceSchema, ...errors },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'security');
        return deviceView(await services.dscPlusRequests.reportLost({ session }, request.params.deviceId, request.body.reason));
      },
    );

    app.post(
      '/devices/:deviceId/pin',
      {
        schema: {
          operationId: 'startPinChange',
          tags: ['devices'],
          summary: "Change a DSC+'s PIN (C7): first its challenge, to answer with the old PIN",
          security,
          params: z.object({ deviceId: z.string().max(64) }),
          response: {
            200: ProofSchema,
            ...errors,
          },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'security');
        return services.activation.startPinChange(session, request.params.deviceId);
      },
    );

    app.post(
      '/devices/:deviceId/pin/:flowId',
      {
        schema: {
          operationId: 'completePinChange',
          tags: ['devices'],
          summary: 'The response with the old PIN, and the new 4-digit PIN (C7)',
          description:
            'A new online security card ends the one activated before, and the sessions it opened (S2, L8). ' +
            '401 LOGIN_FAILED with attemptsLeft; 410 FLOW_EXPIRED; 409 DEVICE_NOT_AVAILABLE when the card was reported lost or revoked meanwhile (L8, the PIN is not changed).',
          security,
          params: z.object({ deviceId: z.string().max(64), flowId: z.string().max(64) }),
          body: z.object({ response: z.string().max(64), newPin: z.string().max(16) }),
          response: { 200: DeviceSchema, ...errors },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'security');
        return deviceView(await services.activation.completePinChange(session, request.params.flowId, request.body.response, request.body.newPin));
      },
    );

    app.get(
      '/dscplus/eligibility',
      {
        schema: {
          operationId: 'getDscPlusEligibility',
          tags: ['DSC+ requests'],
          summary: 'Whether the account may request a DSC+ (C1: equity above USD 1,000,000)',
          security,
          response: { 200: z.object({ eligible: z.boolean(), equityUsd: z.number(), thresholdUsd: z.number() }), 401: ErrorSchema },
        },
      },
      async (request) => services.dscPlusRequests.eligibility((await guard.require(request, 'portal')).session.userId),
    );

    for (const preview of [true, false]) {
      app.post(
        preview ? '/dscplus/requests/preview' : '/dscplus/requests',
        {
          schema: {
            operationId: preview ? 'previewDscPlusRequest' : 'requestDscPlus',
            tags: ['DSC+ requests'],
            summary: preview
              ? 'The summary of a DSC+ request, before it is made (C4): nothing is stored'
              : 'Request a DSC+ (C4): shipping address, soft PIN, deposit account; the answer confirms the estimated shipment date',
            ...(preview
              ? {}
              : {
                  description:
                    'Made under temporary access, after a step-up with a device weaker than your strongest (D2, K7: SMS while a DSC+ protects you), ' +
                    'or while a card reported lost from such a proof waits (R2), the card ships only once client services confirmed its address with you.',
                }),
            security,
            body: RequestBody,
            response: { 200: preview ? SummarySchema : SummarySchema.extend({ device: DeviceSchema }), ...errors },
          },
        },
        async (request) => {
          const { session } = await guard.require(request, 'security');
          if (preview) {
            const { holdAccountId: _id, ...summary } = await services.dscPlusRequests.preview(session, request.body);
            return summary;
          }
          const { device, ...summary } = await services.dscPlusRequests.request(session, request.body);
          return { ...summary, device: deviceView(device) };
        },
      );
    }
  };
}
