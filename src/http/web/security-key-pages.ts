/**
 * Settings → security keys and passkeys (docs/decisions/0014-security-keys.md):
 * the list, registering a key (the browser's navigator.credentials.create,
 * public/security-key.js), renaming and removing. A change of the security
 * settings: the page leads to a fresh step-up first (X7) and comes back.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import { SlsError } from '../../errors.js';
import { securityKeyView } from '../../devices/security-key/registrations.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { field, registerForms, type PageRenderer } from './render.js';

const PATH = '/settings/security-keys';
const NOTICES = ['added', 'renamed', 'removed'] as const;

export function securityKeyPages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  return async (app) => {
    await registerForms(app, pages);
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));
    const { securityKeys } = services;

    async function render(request: FastifyRequest, reply: FastifyReply, session: Session, error?: unknown): Promise<FastifyReply> {
      const query = request.query as Record<string, unknown>;
      const failure = error === undefined ? null : pages.pageError(request, error);
      const keys = (await securityKeys.list(session.userId)).map(securityKeyView);
      // at the limit of keys, or after a step-up with temporary access (T3, X7), no registration is offered (the error says so when one is tried)
      const registration = !(await guard.hasPermanentProof(session))
        ? null
        : await securityKeys.start(session).catch((e: unknown) => {
            if (e instanceof SlsError && e.code === 'SECURITY_KEY_LIMIT') return null;
            throw e;
          });
      return pages.render(
        request,
        reply,
        'security-keys',
        { keys, registration, notices: NOTICES.filter((key) => query[key] === '1'), error: failure },
        { status: failure?.status ?? 200, path: PATH },
      );
    }

    /** A change: a fresh step-up (X7) first; errors are shown on the page. */
    async function change(request: FastifyRequest, reply: FastifyReply, act: (session: Session) => Promise<string>): Promise<FastifyReply> {
      const session = await guard.page(request, 'security', PATH);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      try {
        const done = await act(session);
        // L8: removing the key this very session stands on ends it
        return reply.redirect(await guard.afterWithdrawal(session, `${PATH}?${done}`), 303);
      } catch (error) {
        return render(request, reply, session, error);
      }
    }

    app.get(PATH, async (request, reply) => {
      const session = await guard.page(request, 'security');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return render(request, reply, session);
    });

    app.post(PATH, { preHandler: app.csrfProtection }, (request, reply) =>
      change(request, reply, async (session) => {
        await guard.requireProofToAdd(request, session, 'security_key');
        let credential: unknown;
        try {
          credential = JSON.parse(field(request.body, 'credential'));
        } catch {
          throw new SlsError('SECURITY_KEY_NOT_VERIFIED');
        }
        await securityKeys.finish(session, { name: field(request.body, 'name'), state: field(request.body, 'state'), credential });
        return 'added=1';
      }),
    );

    app.post<{ Params: { keyId: string } }>(`${PATH}/:keyId/rename`, { preHandler: app.csrfProtection }, (request, reply) =>
      change(request, reply, async (session) => {
        await securityKeys.rename(session, request.params.keyId, field(request.body, 'name'));
        return 'renamed=1';
      }),
    );

    app.post<{ Params: { keyId: string } }>(`${PATH}/:keyId/remove`, { preHandler: app.csrfProtection }, (request, reply) =>
      change(request, reply, async (session) => {
        await guard.requireProofToRemove(request, session, 'security_key');
        await securityKeys.remove(session, request.params.keyId);
        return 'removed=1';
      }),
    );
  };
}
