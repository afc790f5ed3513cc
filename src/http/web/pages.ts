/**
 * The web pages: login (username and password), the second factor, and a
 * minimal signed-in page; server-rendered, working without JavaScript, in
 * English, French and Traditional Chinese (X2). They drive the same login
 * flows as the JSON API.
 */
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import type { Services } from '../../services.js';
import { SlsError } from '../../errors.js';
import type { FlowView } from '../../flows/login.js';
import { sendError, toSlsError } from '../errors.js';
import { telHref, textIn } from '../../support.js';
import { field, registerForms, type PageRenderer } from './render.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { oidcReturn } from '../oidc.js';
import {
  claimOf,
  clearClaimCookie,
  clearSessionCookie,
  loginMeta,
  presentedToken,
  requestMeta,
  sessionCookieOf,
  setClaimCookie,
  setSessionCookie,
} from '../session-cookie.js';

const PUBLIC = fileURLToPath(new URL('../../../public', import.meta.url));

export function webPages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  const { config } = services;

  return async (app) => {
    await registerForms(app, pages);
    await app.register(fastifyStatic, { root: PUBLIC, prefix: '/static/', maxAge: '1h' });

    function renderLogin(
      request: FastifyRequest,
      reply: FastifyReply,
      options: { error?: unknown; username?: string; app?: string; notice?: string } = {},
    ): FastifyReply {
      const error = options.error === undefined ? null : pages.pageError(request, options.error);
      return pages.render(
        request,
        reply,
        'login',
        { error, username: options.username ?? '', app: options.app === 'trading' ? 'trading' : 'portal', notice: options.notice ?? null },
        { status: error?.status ?? 200, path: '/login' },
      );
    }

    function renderChallenge(request: FastifyRequest, reply: FastifyReply, flow: FlowView, error?: unknown): FastifyReply {
      const failure = error === undefined ? null : pages.pageError(request, error);
      return pages.render(
        request,
        reply,
        'challenge',
        {
          flow,
          error: failure,
          expiresAt: Date.parse(flow.expiresAt),
          now: services.clock.now(),
          resendAfter: flow.challenge?.type === 'sms' ? Date.parse(flow.challenge.resendAfter) : 0,
        },
        { status: failure?.status ?? 200, path: `/login/${flow.id}` },
      );
    }

    /** A flow that can no longer be answered sends the user back to the start (L4: "start over"). */
    function flowGone(request: FastifyRequest, reply: FastifyReply, error: unknown, flow?: FlowView): FastifyReply {
      return renderLogin(request, reply, { error, ...(flow ? { username: flow.username, app: flow.app } : {}) });
    }

    /** A refused step of an open flow shows its challenge with the error; a flow that is gone sends the user to the start. */
    async function stepRefused(request: FastifyRequest, reply: FastifyReply, flowId: string, error: unknown): Promise<FastifyReply> {
      // L8: not the browser that started the login: it sees nothing of it
      const code = toSlsError(error).code;
      if (code === 'FLOW_NOT_FOUND' || code === 'CLAIM_REFUSED') return flowGone(request, reply, error);
      let flow: FlowView;
      try {
        flow = await services.login.owned(flowId, claimOf(request, config), requestMeta(request));
      } catch {
        return flowGone(request, reply, error);
      }
      if (flow.state === 'second_factor' || flow.state === 'approved') return renderChallenge(request, reply, flow, error);
      return flowGone(request, reply, flow.state === 'denied' ? new SlsError('LOGIN_DENIED') : error, flow);
    }

    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    /** Where a login lands: staff at the help desk console, clients on their account page (issue 16). */
    async function landing(request: FastifyRequest, reply: FastifyReply, userId: string): Promise<string> {
      // I1: a login for a relying party goes back to its authorization request
      const interaction = oidcReturn(request, reply, config);
      if (interaction) return interaction;
      const user = await services.users.get(userId);
      return user.role === 'client' ? '/account' : '/helpdesk';
    }

    app.get('/', async (request, reply) => {
      const token = presentedToken(request, config);
      const session = token ? await services.sessions.authenticate(token.token) : null;
      return reply.redirect(session ? '/account' : '/login', 303);
    });

    // browsers ask for it on every site (scripts/favicon.mjs draws it from the app's icon)
    app.get('/favicon.ico', async (_request, reply) => reply.header('cache-control', 'public, max-age=86400').sendFile('favicon.ico', PUBLIC));

    /** R4: access assistance: each case leads to its path; Client Services' contacts as the operator configured them; SMS troubleshooting. */
    app.get('/help', async (request, reply) => {
      const centers = config.support.map((center) => ({
        name: textIn(center.name, request.language),
        phone: center.phone,
        tel: center.phone === null ? null : telHref(center.phone),
        email: center.email,
        hours: textIn(center.hours, request.language),
      }));
      return pages.render(request, reply, 'help', { centers }, { path: '/help' });
    });

    app.get('/login', async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      return renderLogin(request, reply, {
        notice: query.loggedOut === '1' ? request.t('web.loggedOut') : query.ended === 'device' ? request.t('web.sessionEndedWithDevice') : undefined,
        // I1: a relying party's client is a portal or a trading platform
        ...(query.app === 'trading' ? { app: 'trading' } : {}),
      });
    });

    app.post('/login', { preHandler: app.csrfProtection }, async (request, reply) => {
      const username = field(request.body, 'username');
      const password = field(request.body, 'password');
      const appName = field(request.body, 'app') === 'trading' ? 'trading' : 'portal';
      try {
        if (username === '' || password === '') {
          throw new SlsError('VALIDATION_ERROR', { reason: 'credentials_required' });
        }
        const flow = await services.login.start({ username, password, app: appName, ...loginMeta(request, config) });
        // O1: opted out of the second factor for trading: the password completed the login
        if (flow.session) {
          setSessionCookie(reply, config, flow.session, services.clock.now());
          return reply.redirect(await landing(request, reply, flow.session.userId), 303);
        }
        setClaimCookie(request, reply, config, flow);
        return reply.redirect(`/login/${flow.id}`, 303);
      } catch (error) {
        return renderLogin(request, reply, { error, username: /^[A-Za-z0-9]{0,64}$/.test(username) ? username : '', app: appName });
      }
    });

    app.get<{ Params: { flowId: string } }>('/login/:flowId', async (request, reply) => {
      let flow: FlowView;
      try {
        flow = await services.login.owned(request.params.flowId, claimOf(request, config), requestMeta(request));
      } catch (error) {
        return flowGone(request, reply, error);
      }
      if (flow.state === 'done') return reply.redirect('/account', 303);
      if (flow.state === 'denied') return flowGone(request, reply, new SlsError('LOGIN_DENIED'), flow);
      if (flow.state !== 'second_factor' && flow.state !== 'approved') return flowGone(request, reply, new SlsError('FLOW_EXPIRED'), flow);
      return renderChallenge(request, reply, flow);
    });

    /**
     * K3: the challenge page's live connection (public/push-wait.js), under the
     * login's own path so that the claim cookie goes with it (L8: only the
     * browser that started the login watches it).
     */
    app.get<{ Params: { flowId: string }; Querystring: { wait?: string } }>('/login/:flowId/wait', async (request, reply) => {
      const wait = Math.min(25, Math.max(0, Number.parseInt(request.query.wait ?? '25', 10) || 0));
      const abort = new AbortController();
      reply.raw.once('close', () => abort.abort());
      reply.header('cache-control', 'no-store');
      try {
        return await services.login.wait(request.params.flowId, claimOf(request, config), requestMeta(request), wait * 1000, abort.signal);
      } catch (error) {
        return sendError(request, reply, error);
      }
    });

    /** K3: approved on the phone: the page takes its session (by itself with JavaScript, or with Continue). */
    app.post<{ Params: { flowId: string } }>('/login/:flowId/session', { preHandler: app.csrfProtection }, async (request, reply) => {
      const { flowId } = request.params;
      try {
        const { session } = await services.login.claim(flowId, claimOf(request, config) ?? '', loginMeta(request, config));
        clearClaimCookie(reply, config, flowId);
        setSessionCookie(reply, config, session, services.clock.now());
        return reply.redirect(await landing(request, reply, session.userId), 303);
      } catch (error) {
        return stepRefused(request, reply, flowId, error);
      }
    });

    /** K4: "Click here if you do not receive the notification". */
    app.post<{ Params: { flowId: string } }>('/login/:flowId/offline', { preHandler: app.csrfProtection }, async (request, reply) => {
      const { flowId } = request.params;
      try {
        await services.login.offline(flowId, claimOf(request, config), requestMeta(request));
        return reply.redirect(`/login/${flowId}`, 303);
      } catch (error) {
        return stepRefused(request, reply, flowId, error);
      }
    });

    app.post<{ Params: { flowId: string } }>('/login/:flowId', { preHandler: app.csrfProtection }, async (request, reply) => {
      const { flowId } = request.params;
      try {
        const claimToken = claimOf(request, config);
        const { session } = await services.login.answer(flowId, claimToken, field(request.body, 'response'), loginMeta(request, config));
        setSessionCookie(reply, config, session, services.clock.now());
        return reply.redirect(await landing(request, reply, session.userId), 303);
      } catch (error) {
        const mapped = toSlsError(error);
        let flow: FlowView | undefined;
        // L8: not the browser that started the login: it sees nothing of it
        if (mapped.code === 'FLOW_NOT_FOUND') return flowGone(request, reply, mapped);
        try {
          flow = await services.login.owned(flowId, claimOf(request, config), requestMeta(request));
        } catch {
          return flowGone(request, reply, mapped);
        }
        if (mapped.code === 'LOGIN_FAILED' && flow.state === 'second_factor') return renderChallenge(request, reply, flow, mapped);
        // L2 (issue 16): the third wrong answer used the challenge up: the page says so, and that a new login starts
        if (mapped.code === 'LOGIN_FAILED') return flowGone(request, reply, new SlsError('LOGIN_FAILED', { reason: 'used_up' }), flow);
        // the flow expired or the user is locked: start over
        return flowGone(request, reply, mapped, flow);
      }
    });

    app.post<{ Params: { flowId: string } }>('/login/:flowId/device', { preHandler: app.csrfProtection }, async (request, reply) => {
      const { flowId } = request.params;
      try {
        await services.login.switchDevice(flowId, claimOf(request, config), field(request.body, 'device'), requestMeta(request));
        return reply.redirect(`/login/${flowId}`, 303);
      } catch (error) {
        return stepRefused(request, reply, flowId, error);
      }
    });

    /** M5: "Didn't receive a security code?" — a new code by SMS or voice. */
    app.post<{ Params: { flowId: string } }>('/login/:flowId/code', { preHandler: app.csrfProtection }, async (request, reply) => {
      const { flowId } = request.params;
      const channel = field(request.body, 'channel') === 'voice' ? 'voice' : 'sms';
      try {
        await services.login.resendCode(flowId, claimOf(request, config), channel, requestMeta(request));
        return reply.redirect(`/login/${flowId}`, 303);
      } catch (error) {
        return stepRefused(request, reply, flowId, error);
      }
    });

    app.get('/account', async (request, reply) => {
      const session = await guard.page(request, 'any');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      // A5: a one-time password is replaced before anything else
      if (session.passwordChangeRequired) return reply.redirect('/password', 303);
      const user = await services.users.get(session.userId);
      // L8: a trading session is told it is signed in, and nothing of the portal
      if (session.app !== 'portal') return pages.render(request, reply, 'account', { user, session, portal: false, notices: [] }, { path: '/account' });
      const devices = await services.devices.listForUser(user.id);
      const query = request.query as Record<string, unknown>;
      return pages.render(
        request,
        reply,
        'account',
        {
          user,
          session,
          portal: true,
          // the actions each device offers come from its kind's capabilities, never from its type (issue 12)
          devices: devices.map((device) => ({ ...device, actions: services.activation.actions(device) })),
          // W1, D2: this session's limits: the weaker of the user's row (opted out, sharing) and its last proof's device
          limits: await services.withdrawals.limitsOfSession(user.id, session),
          eligible: (await services.dscPlusRequests.eligibility(user.id)).eligible,
          // A2: a user without the right to change the security settings is told who has it
          notPrimary: (await services.securityRights.mayChange(user.id)) ? null : { primaryUser: await services.securityRights.holder(user.accountId) },
          notices: ['reactivated', 'passwordChanged', 'reported', 'pinChanged'].filter((key) => query[key] === '1'),
        },
        { path: '/account' },
      );
    });

    app.post('/logout', { preHandler: app.csrfProtection }, async (request, reply) => {
      const token = sessionCookieOf(request, config);
      if (token) await services.sessions.end(token, requestMeta(request).ip);
      clearSessionCookie(reply, config);
      return reply.redirect('/login?loggedOut=1', 303);
    });
  };
}
