/**
 * Portal pages of the Secure Login System section: the online security code
 * card (S2: show, print or save, confirm, activate with two index numbers,
 * the expiry date) and activating a device by proving it (D4: a card back
 * from home is reactivated, and the temporary access ends); the password,
 * a DSC+ request, a card reported lost and its PIN, which change the
 * security settings and so need a fresh step-up (X7): the page leads to it
 * and comes back.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import type { CodeCardSecret } from '../../devices/code-card/code-card.js';
import { GRID_COLUMNS } from '../../devices/code-card/print.js';
import { SlsError } from '../../errors.js';
import type { SessionNeed } from '../../policy/session-access.js';
import { toSlsError } from '../errors.js';
import { printedTime, sendCardFile } from '../downloads.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { requestMeta } from '../session-cookie.js';
import { field, registerForms, type PageRenderer } from './render.js';

export function portalPages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  return async (app) => {
    await registerForms(app, pages);
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    /** The browser's session if it may do what the page needs, or where the browser goes instead. */
    const sessionFor = (request: FastifyRequest, need: SessionNeed, returnTo?: string) => guard.page(request, need, returnTo);

    /** The flow a POST started, named in the page's query (`?flow=`); a GET only shows it. */
    const queryFlow = (request: FastifyRequest): string | null => {
      const flow = (request.query as Record<string, unknown> | undefined)?.flow;
      return typeof flow === 'string' && flow !== '' ? flow : null;
    };

    async function renderActivation(request: FastifyRequest, reply: FastifyReply, session: Session, flowId: string, error?: unknown): Promise<FastifyReply> {
      const flow = await services.activation.view(session, flowId);
      const device = await services.devices.get(flow.deviceId);
      const failure = error === undefined ? null : pages.pageError(request, error);
      return pages.render(
        request,
        reply,
        'device-activate',
        { flow, device, error: failure },
        { status: failure?.status ?? 200, path: `/devices/${device.id}/activate` },
      );
    }

    /** A5/A4: choose a new password (required after a one-time password from client services). */
    app.get('/password', async (request, reply) => {
      const session = await sessionFor(request, 'password');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const user = await services.users.get(session.userId);
      return pages.render(request, reply, 'password', { required: user.passwordMustChange, error: null }, { path: '/password' });
    });

    app.post('/password', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionFor(request, 'password', '/password');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const next = field(request.body, 'newPassword');
      try {
        if (next !== field(request.body, 'confirmPassword')) throw new SlsError('VALIDATION_ERROR', { reason: 'passwords_differ' });
        await services.passwords.change(session, field(request.body, 'currentPassword'), next, request.ip);
        return reply.redirect('/account?passwordChanged=1', 303);
      } catch (error) {
        const user = await services.users.get(session.userId);
        const failure = pages.pageError(request, error);
        return pages.render(request, reply, 'password', { required: user.passwordMustChange, error: failure }, { status: failure.status, path: '/password' });
      }
    });

    /** C4: the request form, filled with what was typed when coming back from the summary. */
    async function renderRequest(
      request: FastifyRequest,
      reply: FastifyReply,
      session: Session,
      values: Record<string, string>,
      error?: unknown,
    ): Promise<FastifyReply> {
      const eligibility = await services.dscPlusRequests.eligibility(session.userId);
      const accounts = await services.users.accountsOf(session.userId);
      const failure = error === undefined ? null : pages.pageError(request, error);
      return pages.render(
        request,
        reply,
        'dscplus-request',
        { eligibility, accounts, values, error: failure },
        { status: failure?.status ?? 200, path: '/dscplus/request' },
      );
    }

    const REQUEST_FIELDS = ['name', 'line1', 'line2', 'city', 'postalCode', 'country', 'pin', 'holdAccount'] as const;
    function requestInput(body: unknown) {
      const v = Object.fromEntries(REQUEST_FIELDS.map((f) => [f, field(body, f)])) as Record<(typeof REQUEST_FIELDS)[number], string>;
      return {
        values: v,
        input: {
          address: { name: v.name, line1: v.line1, ...(v.line2 ? { line2: v.line2 } : {}), city: v.city, postalCode: v.postalCode, country: v.country },
          pin: v.pin,
          ...(v.holdAccount ? { holdAccount: v.holdAccount } : {}),
        },
      };
    }

    app.get('/dscplus/request', async (request, reply) => {
      const session = await sessionFor(request, 'security');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return renderRequest(request, reply, session, {});
    });

    /** C4: the summary (step = review), back to the form (step = back), or the request itself (step = submit). */
    app.post('/dscplus/request', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionFor(request, 'security', '/dscplus/request');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const { values, input } = requestInput(request.body);
      const step = field(request.body, 'step');
      if (step === 'back') return renderRequest(request, reply, session, { ...values, pin: '' });
      try {
        if (step === 'submit') {
          const made = await services.dscPlusRequests.request(session, input);
          return pages.render(request, reply, 'dscplus-requested', { made }, { path: '/account' });
        }
        const summary = await services.dscPlusRequests.preview(session, input);
        return pages.render(request, reply, 'dscplus-summary', { summary, values }, { path: '/dscplus/request' });
      } catch (error) {
        return renderRequest(request, reply, session, { ...values, pin: '' }, error);
      }
    });

    /** C5: the user reports a card lost, stolen or damaged. */
    app.get<{ Params: { deviceId: string } }>('/devices/:deviceId/lost', async (request, reply) => {
      const session = await sessionFor(request, 'security');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const device = await services.devices.get(request.params.deviceId);
      if (device.userId !== session.userId) throw new SlsError('DEVICE_NOT_FOUND');
      return pages.render(request, reply, 'device-lost', { device, error: null }, { path: `/devices/${device.id}/lost` });
    });

    app.post<{ Params: { deviceId: string } }>('/devices/:deviceId/lost', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionFor(request, 'security', `/devices/${request.params.deviceId}/lost`);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const reason = field(request.body, 'reason');
      if (reason !== 'lost' && reason !== 'stolen' && reason !== 'damaged') throw new SlsError('VALIDATION_ERROR', { reason: 'reason' });
      await services.dscPlusRequests.reportLost({ session }, request.params.deviceId, reason);
      return reply.redirect(await guard.afterWithdrawal(session, '/account?reported=1'), 303);
    });

    /**
     * C7: change the card's PIN: a response with the old PIN, then the new one. The page of a GET shows the
     * challenge of a flow the POST below started (`?flow=`), else the button that starts one: a GET starts
     * nothing (another site's link carries the cookie).
     */
    app.get<{ Params: { deviceId: string } }>('/devices/:deviceId/pin', async (request, reply) => {
      const session = await sessionFor(request, 'security');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const flowId = queryFlow(request);
      const flow = flowId ? await services.activation.view(session, flowId, 'pin_change') : null;
      if (flow && flow.deviceId !== request.params.deviceId) throw new SlsError('FLOW_NOT_FOUND');
      const device = flow
        ? await services.devices.get(flow.deviceId)
        : await services.activation.assertMayStart(session, request.params.deviceId, 'pin_change', requestMeta(request));
      return pages.render(request, reply, 'device-pin', { flow, device, error: null }, { path: `/devices/${device.id}/pin` });
    });

    app.post<{ Params: { deviceId: string } }>('/devices/:deviceId/pin/start', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionFor(request, 'security', `/devices/${request.params.deviceId}/pin`);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const flow = await services.activation.startPinChange(session, request.params.deviceId);
      return reply.redirect(`/devices/${flow.deviceId}/pin?flow=${flow.id}`, 303);
    });

    app.post<{ Params: { deviceId: string } }>('/devices/:deviceId/pin', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionFor(request, 'security', `/devices/${request.params.deviceId}/pin`);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const flowId = field(request.body, 'flow');
      try {
        await services.activation.completePinChange(session, flowId, field(request.body, 'response'), field(request.body, 'newPin'));
        return reply.redirect('/account?pinChanged=1', 303);
      } catch (error) {
        const code = toSlsError(error).code;
        if (code !== 'LOGIN_FAILED' && code !== 'INVALID_PIN') throw error;
        const flow = await services.activation.view(session, flowId, 'pin_change').catch(() => {
          throw error;
        });
        const device = await services.devices.get(flow.deviceId);
        const failure = pages.pageError(request, error);
        return pages.render(request, reply, 'device-pin', { flow, device, error: failure }, { status: failure.status, path: `/devices/${device.id}/pin` });
      }
    });

    /** S2: the card if it was made, or the button that makes it (a GET changes nothing: another site's link carries the cookie). */
    app.get('/online-card', async (request, reply) => {
      const session = await sessionFor(request, 'temporary');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const card = await services.onlineCards.current(session);
      if (!card) return pages.render(request, reply, 'online-card', { card: null, rows: [], printConfirmed: false }, { path: '/online-card' });
      const codes = (await services.devices.context(card)).secret<CodeCardSecret>().codes;
      const rows: { index: number; code: string }[][] = [];
      codes.forEach((code, i) => {
        const row = Math.floor(i / GRID_COLUMNS);
        rows[row] ??= [];
        rows[row].push({ index: i + 1, code });
      });
      return pages.render(
        request,
        reply,
        'online-card',
        { card, rows, printConfirmed: typeof card.params.printConfirmedAt === 'number' },
        { path: '/online-card' },
      );
    });

    /** S2: the user asks for the card, from our own page (CSRF token); the same card until it is activated. */
    app.post('/online-card', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionFor(request, 'temporary');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      await services.onlineCards.make(session);
      return reply.redirect('/online-card', 303);
    });

    for (const format of ['pdf', 'png'] as const) {
      app.get(`/online-card/card.${format}`, async (request, reply) => {
        const session = await sessionFor(request, 'temporary');
        if (redirected(session)) return reply.redirect(session.redirect, 303);
        const body =
          format === 'pdf'
            ? await services.onlineCards.pdf(session, request.language, printedTime)
            : await services.onlineCards.png(session, request.language, printedTime);
        return sendCardFile(reply, format, body);
      });
    }

    app.post('/online-card/printed', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionFor(request, 'temporary');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const card = await services.onlineCards.confirmPrinted(session);
      // S2: the user's click (this POST) goes on to the two index numbers
      const flow = await services.activation.start(session, card.id, request.language);
      return reply.redirect(`/devices/${card.id}/activate?flow=${flow.id}`, 303);
    });

    /**
     * D4, C6, S2: the device's challenge, of a flow a POST started (`?flow=`); else the button that starts one.
     * A GET starts nothing: another site's link carries the cookie, and a challenge may be an SMS sent (M4).
     */
    app.get<{ Params: { deviceId: string } }>('/devices/:deviceId/activate', async (request, reply) => {
      const session = await sessionFor(request, 'temporary');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const flowId = queryFlow(request);
      if (flowId) {
        const flow = await services.activation.view(session, flowId);
        if (flow.deviceId !== request.params.deviceId) throw new SlsError('FLOW_NOT_FOUND');
        return renderActivation(request, reply, session, flow.id);
      }
      const device = await services.activation.assertMayStart(session, request.params.deviceId, 'activation', requestMeta(request));
      return pages.render(request, reply, 'device-activate', { flow: null, device, error: null }, { path: `/devices/${device.id}/activate` });
    });

    app.post<{ Params: { deviceId: string } }>('/devices/:deviceId/activate/start', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionFor(request, 'temporary');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const flow = await services.activation.start(session, request.params.deviceId, request.language);
      return reply.redirect(`/devices/${flow.deviceId}/activate?flow=${flow.id}`, 303);
    });

    app.post<{ Params: { deviceId: string } }>('/devices/:deviceId/activate', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionFor(request, 'temporary');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const flowId = field(request.body, 'flow');
      try {
        const device = await services.activation.complete(session, flowId, field(request.body, 'response'));
        if (device.type === 'online_card') {
          return pages.render(request, reply, 'online-card-active', { device }, { path: '/account' });
        }
        return reply.redirect('/account?reactivated=1', 303);
      } catch (error) {
        if (toSlsError(error).code !== 'LOGIN_FAILED') throw error;
        try {
          return await renderActivation(request, reply, session, flowId, error);
        } catch {
          // the last answer was wrong: the proof is used up
          throw error;
        }
      }
    });
  };
}
