/**
 * The pages of device sharing (H1–H5): the requesting user's procedure as
 * the seed describes it — security settings → "Share Device" → the owner's
 * credentials → the owner's device answers → review → status — behind a
 * fresh step-up (V1, X7), and the compliance console where pending requests
 * are approved or rejected (H3). Post/redirect/get: a reload never repeats
 * an action.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import type { SharingView } from '../../sharing/sharing.js';
import { toSlsError } from '../errors.js';
import { requestMeta } from '../session-cookie.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { field, registerForms, type PageRenderer } from './render.js';

const NOTICES = ['approved', 'rejected', 'cancelled'] as const;

export function sharingPages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  const { sharing } = services;
  return async (app) => {
    await registerForms(app, pages);
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    function renderStart(request: FastifyRequest, reply: FastifyReply, ownerUsername: string, error?: unknown): FastifyReply {
      const failure = error === undefined ? null : pages.pageError(request, error);
      return pages.render(request, reply, 'sharing-start', { ownerUsername, error: failure }, { status: failure?.status ?? 200, path: '/sharing/new' });
    }

    async function renderRequest(request: FastifyRequest, reply: FastifyReply, session: Session, id: string, error?: unknown): Promise<FastifyReply> {
      const view = await sharing.get(session.userId, id);
      const failure = error === undefined ? null : pages.pageError(request, error);
      return pages.render(
        request,
        reply,
        'sharing-request',
        { sharing: view, requester: view.requester === (await services.users.get(session.userId)).username, error: failure },
        { status: failure?.status ?? 200, path: `/sharing/${id}` },
      );
    }

    /** H2: the status of the user's requests and sharings, and the way to share. */
    app.get('/sharing', async (request, reply) => {
      const session = await guard.page(request, 'portal');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const list = await sharing.list(session.userId);
      const devices = await services.devices.listForUser(session.userId);
      const hasDevice = devices.some((d) => d.state === 'active');
      return pages.render(request, reply, 'sharing', { sharings: list, hasDevice, error: null }, { path: '/sharing' });
    });

    /** H2: the owner's credentials (a step-up first: sharing is a security setting). */
    app.get('/sharing/new', async (request, reply) => {
      const session = await guard.page(request, 'security');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return renderStart(request, reply, '');
    });

    app.post('/sharing/new', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'security', '/sharing/new');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const ownerUsername = field(request.body, 'ownerUsername').trim();
      try {
        // H1c, H5, X7: the proof of the requester's strongest device (as the API)
        await guard.requireProofToAdd(request, session, null, 'sharing');
        const started = await sharing.start(session, { ownerUsername, ownerPassword: field(request.body, 'ownerPassword') }, requestMeta(request));
        return reply.redirect(`/sharing/${started.id}`, 303);
      } catch (error) {
        if (toSlsError(error).status >= 500) throw error;
        return renderStart(request, reply, ownerUsername, error);
      }
    });

    /** The request: the owner's device's challenge, the review, or the status. */
    app.get<{ Params: { id: string } }>('/sharing/:id', async (request, reply) => {
      const session = await guard.page(request, 'portal');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return renderRequest(request, reply, session, request.params.id);
    });

    app.post<{ Params: { id: string } }>('/sharing/:id/answer', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'security', `/sharing/${request.params.id}`);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      try {
        await sharing.answer(session, request.params.id, field(request.body, 'response'), requestMeta(request));
        return reply.redirect(`/sharing/${request.params.id}`, 303);
      } catch (error) {
        if (toSlsError(error).status >= 500) throw error;
        return renderRequest(request, reply, session, request.params.id, error);
      }
    });

    app.post<{ Params: { id: string } }>('/sharing/:id/confirm', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'security', `/sharing/${request.params.id}`);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const disposition = field(request.body, 'disposition') === 'return' ? 'return' : 'keep';
      try {
        await guard.requireProofToAdd(request, session, null, 'sharing');
        await sharing.confirm(session, request.params.id, disposition, requestMeta(request));
        return reply.redirect(`/sharing/${request.params.id}`, 303);
      } catch (error) {
        if (toSlsError(error).status >= 500) throw error;
        return renderRequest(request, reply, session, request.params.id, error);
      }
    });

    app.post<{ Params: { id: string } }>('/sharing/:id/cancel', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'security', `/sharing/${request.params.id}`);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      await sharing.cancel({ session }, request.params.id, requestMeta(request));
      return reply.redirect(await guard.afterWithdrawal(session, `/sharing/${request.params.id}`), 303);
    });

    // ---------------------------------------------------------------- the compliance console (H3)

    async function renderConsole(request: FastifyRequest, reply: FastifyReply, session: Session, error?: unknown): Promise<FastifyReply> {
      const staffId = session.userId;
      const staff = await services.helpDesk.staff(staffId, 'view');
      const pending: SharingView[] = await sharing.pending(staffId);
      const failure = error === undefined ? null : pages.pageError(request, error);
      const query = request.query as Record<string, unknown>;
      const notice = NOTICES.find((n) => n === query.done) ?? null;
      const who = typeof query.requester === 'string' ? query.requester.slice(0, 64) : '';
      return pages.render(
        request,
        reply,
        'helpdesk/sharing',
        // V1, X7: a decision needs a fresh step-up; until then the page says so, with the way there and back
        { staff, pending, notice, who, error: failure, stepUpDue: (await guard.allows(session, 'staff_action')) ? null : '/helpdesk/sharing' },
        { status: failure?.status ?? 200, path: '/helpdesk/sharing' },
      );
    }

    app.get('/helpdesk/sharing', async (request, reply) => {
      const session = await guard.page(request, 'staff');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return renderConsole(request, reply, session);
    });

    // V1, X7: a decision or an end of a sharing needs a fresh step-up; without one, the step-up page, then back to the console
    app.post<{ Params: { id: string } }>('/helpdesk/sharing/:id/decision', { preHandler: app.csrfProtection }, async (request, reply) => {
      // X1, X7, H3 (decision 0034): a role that may not decide hears so before the step-up
      const session = await guard.page(request, 'staff_action', '/helpdesk/sharing', (userId) =>
        services.helpDesk.staffOnSharing(userId, [], 'sharing_decision'),
      );
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const decision = field(request.body, 'decision') === 'approve' ? 'approve' : 'reject';
      try {
        const done = await sharing.decide(session.userId, request.params.id, decision, field(request.body, 'note'));
        return reply.redirect(
          `/helpdesk/sharing?done=${decision === 'approve' ? 'approved' : 'rejected'}&requester=${encodeURIComponent(done.requester)}`,
          303,
        );
      } catch (error) {
        if (toSlsError(error).status >= 500) throw error;
        return renderConsole(request, reply, session, error);
      }
    });

    app.post<{ Params: { id: string } }>('/helpdesk/sharing/:id/cancel', { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'staff_action', '/helpdesk/sharing', (userId) =>
        services.helpDesk.staffOnSharing(userId, [], 'sharing_cancel'),
      );
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      try {
        const done = await sharing.cancel({ staffUserId: session.userId }, request.params.id, requestMeta(request));
        return reply.redirect(`/helpdesk/sharing?done=cancelled&requester=${encodeURIComponent(done.requester)}`, 303);
      } catch (error) {
        if (toSlsError(error).status >= 500) throw error;
        return renderConsole(request, reply, session, error);
      }
    });
  };
}
