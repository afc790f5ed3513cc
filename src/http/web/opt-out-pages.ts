/**
 * Settings → Secure Login System (O1-O3), as KB2545 walks it: the page
 * "Secure Login System" with its box "Secure Login Settings" → the
 * Configure (gear) icon → the settings for Secure Login not required for
 * trading: "I want to always use my Secure Login Device when logging in",
 * or opting out after the security warnings (KB1198), a ticked "I
 * understand …" and the username typed again → Continue → the confirmation
 * that the settings were updated → OK.
 *
 * Configuring is a change of the security settings: the page leads to a
 * fresh step-up first (V1, X7) and comes back; a user without the right is
 * shown the notice naming the primary user (A2, O3).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import { SlsError } from '../../errors.js';
import { requestMeta } from '../session-cookie.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { secureLoginView } from '../api/opt-out.js';
import { field, registerForms, type PageRenderer } from './render.js';

export const SECURE_LOGIN_PATH = '/settings/secure-login';
const CONFIGURE = `${SECURE_LOGIN_PATH}/configure`;
const CONFIRMATION = `${SECURE_LOGIN_PATH}/confirmation`;
const RESULTS = ['opted_out', 'opted_in', 'unchanged'] as const;

export function optOutPages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  return async (app) => {
    await registerForms(app, pages);
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    async function renderConfigure(request: FastifyRequest, reply: FastifyReply, session: Session, values: Record<string, string>, error?: unknown) {
      const failure = error === undefined ? null : pages.pageError(request, error);
      const settings = await secureLoginView(services, session.userId);
      return pages.render(
        request,
        reply,
        'secure-login-configure',
        { settings, values: { choice: settings.tradingSecondFactor === 'opted_out' ? 'opt_out' : 'always', ...values }, error: failure },
        { status: failure?.status ?? 200, path: CONFIGURE },
      );
    }

    /** Secure Login System: the box "Secure Login Settings", with the restrictions while opted out. */
    app.get(SECURE_LOGIN_PATH, async (request, reply) => {
      const session = await guard.page(request, 'portal');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return pages.render(request, reply, 'secure-login', { settings: await secureLoginView(services, session.userId) }, { path: SECURE_LOGIN_PATH });
    });

    /** The Configure (gear) icon: a change of the security settings, after a step-up. */
    app.get(CONFIGURE, async (request, reply) => {
      const session = await guard.page(request, 'security', CONFIGURE);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return renderConfigure(request, reply, session, {});
    });

    app.post(CONFIGURE, { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'security', CONFIGURE);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const choice = field(request.body, 'choice');
      const confirmation = field(request.body, 'confirmation');
      const context = { actor: `user:${session.userId}`, ip: requestMeta(request).ip };
      try {
        let changed: boolean;
        if (choice === 'always') changed = (await services.optOuts.optIn(session.userId, context)).changed;
        else if (choice === 'opt_out') {
          await guard.requireProofToAdd(request, session, null);
          changed = (await services.optOuts.optOut(session.userId, { acknowledged: field(request.body, 'acknowledge') === 'yes', confirmation }, context))
            .changed;
        } else throw new SlsError('VALIDATION_ERROR', { reason: 'secure_login_choice' });
        const result = !changed ? 'unchanged' : choice === 'always' ? 'opted_in' : 'opted_out';
        return reply.redirect(`${CONFIRMATION}?result=${result}`, 303);
      } catch (error) {
        return renderConfigure(request, reply, session, { choice, confirmation }, error);
      }
    });

    /** "You will receive a confirmation that your settings have been updated. Click on OK." */
    app.get(CONFIRMATION, async (request, reply) => {
      const session = await guard.page(request, 'portal');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const query = request.query as Record<string, unknown>;
      const result = RESULTS.find((r) => r === query.result) ?? 'unchanged';
      return pages.render(
        request,
        reply,
        'secure-login-confirmation',
        { result, settings: await secureLoginView(services, session.userId) },
        { path: CONFIRMATION },
      );
    });
  };
}
