/** A user's own devices, and reactivating one that was temporarily unavailable (D3, D4). */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import { ErrorSchema } from '../errors.js';
import { assertSameOrigin, requireSession } from '../session-cookie.js';
import { ChallengeSchema } from './schemas.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const DeviceSchema = z
  .object({ id: z.string(), type: z.string(), serial: z.string().nullable(), label: z.string().nullable(), state: z.string(), expiresAt: z.string().nullable() })
  .describe('Device');
const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema, 410: ErrorSchema, 423: ErrorSchema };

export function devicesApi(services: Services): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];

    app.get(
      '/devices',
      { schema: { tags: ['devices'], summary: 'Your security devices', security, response: { 200: z.object({ devices: z.array(DeviceSchema) }), 401: ErrorSchema } } },
      async (request) => {
        const { session } = await requireSession(request, services.sessions);
        const devices = await services.devices.listForUser(session.userId);
        return { devices: devices.map((d) => ({ id: d.id, type: d.type, serial: d.serial, label: d.label, state: d.state, expiresAt: iso(d.expiresAt) })) };
      },
    );

    app.post(
      '/devices/:deviceId/reactivation',
      {
        schema: {
          tags: ['devices'],
          summary: 'Start reactivating a suspended device (D4): its challenge',
          security,
          params: z.object({ deviceId: z.string().max(64) }),
          response: {
            200: z.object({ id: z.string(), deviceId: z.string(), challenge: ChallengeSchema, expiresAt: z.string(), attemptsLeft: z.number().int() }),
            ...errors,
          },
        },
      },
      async (request) => {
        const { session, token } = await requireSession(request, services.sessions);
        if (token.via === 'cookie') assertSameOrigin(request);
        return services.reactivation.start(session, request.params.deviceId);
      },
    );

    app.post(
      '/devices/:deviceId/reactivation/:flowId',
      {
        schema: {
          tags: ['devices'],
          summary: "Answer the device's challenge: it is active again, and the temporary passcode stops working (D4)",
          security,
          params: z.object({ deviceId: z.string().max(64), flowId: z.string().max(64) }),
          body: z.object({ response: z.string().max(64) }),
          response: { 200: DeviceSchema, ...errors },
        },
      },
      async (request) => {
        const { session, token } = await requireSession(request, services.sessions);
        if (token.via === 'cookie') assertSameOrigin(request);
        const d = await services.reactivation.complete(session, request.params.flowId, request.body.response);
        return { id: d.id, type: d.type, serial: d.serial, label: d.label, state: d.state, expiresAt: iso(d.expiresAt) };
      },
    );
  };
}
