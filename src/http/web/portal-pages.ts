/**
 * Portal pages of the Secure Login System section: the online security code
 * card (S2: show, print or save, confirm, activate with two index numbers,
 * the expiry date) and activating a device by proving it (D4: a card back
 * from home is reactivated, and the temporary access ends).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import type { CodeCardSecret } from '../../devices/code-card/code-card.js';
import { GRID_COLUMNS } from '../../devices/code-card/print.js';
import { toSlsError } from '../errors.js';
import { SESSION_COOKIE } from '../session-cookie.js';
import { field, registerForms, type PageRenderer } from './render.js';

function utc(ms: number): string {
  return `${new Date(ms).toISOString().replace('T', ' ').slice(0, 16)} UTC`;
}

export function portalPages(services: Services, pages: PageRenderer): FastifyPluginAsync {
  return async (app) => {
    await registerForms(app, services.config);
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    /** The browser's session, or null (the caller then redirects to the login page). */
    async function sessionOf(request: FastifyRequest): Promise<Session | null> {
      const token = request.cookies[SESSION_COOKIE];
      return token ? services.sessions.authenticate(token) : null;
    }

    async function renderActivation(request: FastifyRequest, reply: FastifyReply, session: Session, flowId: string, error?: unknown): Promise<FastifyReply> {
      const flow = await services.activation.view(session, flowId);
      const device = await services.devices.get(flow.deviceId);
      const failure = error === undefined ? null : pages.pageError(request, error);
      return pages.render(request, reply, 'device-activate', { flow, device, error: failure }, { status: failure?.status ?? 200, path: `/devices/${device.id}/activate` });
    }

    app.get('/online-card', async (request, reply) => {
      const session = await sessionOf(request);
      if (!session) return reply.redirect('/login', 303);
      const card = await services.onlineCards.forSession(session);
      const codes = (await services.devices.context(card)).secret<CodeCardSecret>().codes;
      const rows: { index: number; code: string }[][] = [];
      codes.forEach((code, i) => {
        (rows[Math.floor(i / GRID_COLUMNS)] ??= []).push({ index: i + 1, code });
      });
      return pages.render(request, reply, 'online-card', { card, rows, printConfirmed: typeof card.params.printConfirmedAt === 'number' }, { path: '/online-card' });
    });

    for (const format of ['pdf', 'png'] as const) {
      app.get(`/online-card/card.${format}`, async (request, reply) => {
        const session = await sessionOf(request);
        if (!session) return reply.redirect('/login', 303);
        const body = format === 'pdf' ? await services.onlineCards.pdf(session, request.language, utc) : await services.onlineCards.png(session, request.language, utc);
        return reply
          .header('cache-control', 'no-store')
          .header('content-disposition', `attachment; filename="online-security-card.${format}"`)
          .type(format === 'pdf' ? 'application/pdf' : 'image/png')
          .send(body);
      });
    }

    app.post('/online-card/printed', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionOf(request);
      if (!session) return reply.redirect('/login', 303);
      const card = await services.onlineCards.confirmPrinted(session);
      return reply.redirect(`/devices/${card.id}/activate`, 303);
    });

    app.get<{ Params: { deviceId: string } }>('/devices/:deviceId/activate', async (request, reply) => {
      const session = await sessionOf(request);
      if (!session) return reply.redirect('/login', 303);
      const flow = await services.activation.start(session, request.params.deviceId);
      return renderActivation(request, reply, session, flow.id);
    });

    app.post<{ Params: { deviceId: string } }>('/devices/:deviceId/activate', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await sessionOf(request);
      if (!session) return reply.redirect('/login', 303);
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
