/** The session API (L8): who is signed in, and logout. */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import { ErrorSchema } from '../errors.js';
import { clearSessionCookie, requestMeta, sessionCookieOf } from '../session-cookie.js';
import type { SessionGuard } from '../session-guard.js';
import { SessionSchema } from './schemas.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export async function sessionView(services: Services, session: Session) {
  const user = await services.users.get(session.userId);
  return {
    id: session.id,
    app: session.app,
    user: { id: user.id, username: user.username, account: user.accountNumber },
    device: { id: session.deviceId, type: session.deviceType },
    createdAt: iso(session.createdAt)!,
    expiresAt: iso(session.expiresAt)!,
    idleExpiresAt: iso(session.idleExpiresAt),
    scope: session.scope,
    passwordChangeRequired: user.passwordMustChange,
    confirmedBy: session.confirmedBy,
    verifiedAt: iso(session.verifiedAt),
  };
}

export function sessionApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();

    app.get(
      '/session',
      {
        schema: {
          operationId: 'getSession',
          tags: ['session'],
          summary: 'The session of the Bearer token or cookie',
          security: [{ bearer: [] }, { cookie: [] }],
          response: { 200: SessionSchema, 401: ErrorSchema },
        },
      },
      async (request) => sessionView(services, (await guard.require(request, 'any')).session),
    );

    app.post(
      '/password',
      {
        schema: {
          operationId: 'changePassword',
          tags: ['session'],
          summary: 'Change your password (A4): the current one, then the new one',
          description:
            'Required after a one-time password from client services (A5). Needs a step-up within the last 5 minutes (403 STEP_UP_REQUIRED, X7). ' +
            "A wrong current password counts towards the lock (L3). The user's other sessions end (L8).",
          security: [{ bearer: [] }, { cookie: [] }],
          body: z.object({ currentPassword: z.string().min(1).max(1024), newPassword: z.string().min(1).max(1024) }),
          response: { 204: z.null().describe('Changed'), 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 423: ErrorSchema, 429: ErrorSchema },
        },
      },
      async (request, reply) => {
        const { session } = await guard.require(request, 'password');
        await services.passwords.change(session, request.body.currentPassword, request.body.newPassword, requestMeta(request).ip);
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/logout',
      {
        schema: {
          operationId: 'logout',
          tags: ['session'],
          summary: 'End the session server-side',
          description:
            'Ends the session of the Bearer token, else of the cookie (each audited `session.ended`, reason logout), and clears the cookie. ' +
            "A Bearer token sent with the session cookie of another session ends that one too (L8), when the request comes from our own pages (its Origin ours; without an Origin, neither its Sec-Fetch-Site nor its Referer naming another site); from another site the cookie's session and the cookie are left as they are (CSRF; audited `session.refused`, code CSRF_FAILED). " +
            '401 UNAUTHENTICATED; 403 CSRF_FAILED for the cookie alone sent from another site.',
          security: [{ bearer: [] }, { cookie: [] }],
          response: { 204: z.null().describe('Logged out'), 401: ErrorSchema, 403: ErrorSchema },
        },
      },
      async (request, reply) => {
        const { token } = await guard.require(request, 'any');
        const { ip } = requestMeta(request);
        await services.sessions.end(token.token, ip);
        // L8: a Bearer token sent with the cookie of another session ends that one too (from our own pages only: CSRF)
        const cookie = await guard.otherCookie(request, token);
        if (cookie) await services.sessions.end(cookie, ip);
        // the cookie is cleared when its session ended (or there is none); one sent from another site is left as it is
        if (token.via === 'cookie' || cookie || !sessionCookieOf(request, services.config)) clearSessionCookie(reply, services.config);
        return reply.status(204).send(null);
      },
    );
  };
}
