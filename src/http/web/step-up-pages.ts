/**
 * The step-up pages (V1, X7): before a change of the security settings the
 * signed-in user verifies again — "username and password → a challenge
 * code (or index numbers, or a push) → the device's response → continue" —
 * and comes back to the page they were on (`next`, one of our own pages).
 * The same StepUp flows as the API; a push approval goes on by itself.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import type { StepUpView } from '../../flows/activation.js';
import { SlsError } from '../../errors.js';
import { toSlsError } from '../errors.js';
import { requestMeta, setSessionCookie } from '../session-cookie.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { field, registerForms, type PageRenderer } from './render.js';

/**
 * The pages a step-up may come back to: our own settings pages, a relying
 * party's waiting authorization (I1), and the staff console's own pages whose
 * forms need it (V1, X7: a user's page, with the verification in effect; the
 * sharing decisions; the OpenID clients) — never another site.
 */
const RETURN_TO =
  /^\/(?:account|password|settings\/(?:mobile|security-keys|secure-login\/configure)|dscplus\/request|devices\/dev_[a-z2-7]{26}\/(?:lost|pin)|sharing(?:\/new|\/shr_[a-z2-7]{26})?|oidc\/interaction\/[A-Za-z0-9_-]{1,64}|helpdesk(?:\/sharing|\/oidc-clients|\/users\/[A-Za-z0-9._~%-]{1,192}(?:\/verifications\/[A-Za-z0-9_]{1,64})?)?)$/;

function returnTo(value: unknown): string {
  return typeof value === 'string' && RETURN_TO.test(value) ? value : '/account';
}

export function stepUpPages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  const { stepUp } = services;

  return async (app) => {
    await registerForms(app, pages);
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    const withNext = (path: string, next: string) => `${path}?next=${encodeURIComponent(next)}`;

    async function render(
      request: FastifyRequest,
      reply: FastifyReply,
      session: Session,
      next: string,
      flow: StepUpView | null,
      error?: unknown,
    ): Promise<FastifyReply> {
      const user = await services.users.get(session.userId);
      const failure = error === undefined ? null : pages.pageError(request, error);
      const device = flow ? await services.devices.get(flow.deviceId) : null;
      return pages.render(
        request,
        reply,
        'step-up',
        {
          username: user.username,
          next,
          // V1, X7: a staff member on the way back to the console is told why staff step up
          staff: next.startsWith('/helpdesk'),
          flow: flow && device ? { ...flow, device: { type: device.type, label: device.label } } : null,
          base: flow ? `/step-up/${flow.id}` : '/step-up',
          expiresAt: flow ? Date.parse(flow.expiresAt) : 0,
          error: failure,
        },
        { status: failure?.status ?? 200, path: flow ? `/step-up/${flow.id}` : '/step-up' },
      );
    }

    /** Where the browser goes once the step-up is done, or while it is not. */
    async function follow(
      request: FastifyRequest,
      reply: FastifyReply,
      session: Session,
      next: string,
      flow: StepUpView,
      error?: unknown,
    ): Promise<FastifyReply> {
      if (flow.state === 'done') {
        // V1, L8 (decision 0042): the step-up this request completed replaced the session's token: the browser's cookie takes the new one
        if (flow.session) setSessionCookie(reply, services.config, { token: flow.session.token, expiresAt: session.expiresAt }, services.clock.now());
        return reply.redirect(next, 303);
      }
      if (flow.state === 'second_factor' || flow.state === 'approved') return render(request, reply, session, next, flow, error);
      // used up, denied or expired: from the password again
      return render(request, reply, session, next, null, error ?? new SlsError(flow.state === 'denied' ? 'LOGIN_DENIED' : 'FLOW_EXPIRED'));
    }

    app.get('/step-up', async (request, reply) => {
      const session = await guard.page(request, 'step_up');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return render(request, reply, session, returnTo((request.query as Record<string, unknown>).next), null);
    });

    app.post('/step-up', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'step_up', '/account');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const next = returnTo(field(request.body, 'next'));
      try {
        const flow = await stepUp.start(session, field(request.body, 'password'), requestMeta(request));
        return reply.redirect(withNext(`/step-up/${flow.id}`, next), 303);
      } catch (error) {
        return render(request, reply, session, next, null, error);
      }
    });

    app.get<{ Params: { flowId: string } }>('/step-up/:flowId', async (request, reply) => {
      const session = await guard.page(request, 'step_up', '/account');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const next = returnTo((request.query as Record<string, unknown>).next);
      return follow(request, reply, session, next, await stepUp.view(session, request.params.flowId));
    });

    /** The device's response, typed. */
    app.post<{ Params: { flowId: string } }>('/step-up/:flowId', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'step_up', '/account');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const next = returnTo((request.query as Record<string, unknown>).next);
      try {
        return follow(request, reply, session, next, await stepUp.answer(session, request.params.flowId, field(request.body, 'response')));
      } catch (error) {
        const flow = await stepUp.view(session, request.params.flowId).catch(() => null);
        if (!flow) throw toSlsError(error);
        return follow(request, reply, session, next, flow, error);
      }
    });

    /** K11: approved on the phone: the verification is taken (by itself with JavaScript, or with Continue). */
    app.post<{ Params: { flowId: string } }>('/step-up/:flowId/complete', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'step_up', '/account');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const next = returnTo((request.query as Record<string, unknown>).next);
      try {
        return follow(request, reply, session, next, await stepUp.complete(session, request.params.flowId));
      } catch (error) {
        return follow(request, reply, session, next, await stepUp.view(session, request.params.flowId), error);
      }
    });

    /** K4: no notification on the phone: a challenge to type into the app instead. */
    app.post<{ Params: { flowId: string } }>('/step-up/:flowId/offline', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'step_up', '/account');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const next = returnTo((request.query as Record<string, unknown>).next);
      try {
        await stepUp.offline(session, request.params.flowId);
        return reply.redirect(withNext(`/step-up/${request.params.flowId}`, next), 303);
      } catch (error) {
        return follow(request, reply, session, next, await stepUp.view(session, request.params.flowId), error);
      }
    });
  };
}
