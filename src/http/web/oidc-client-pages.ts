/**
 * I1: the OpenID Connect clients in the console, for admins: the list,
 * a form to register one (its secret shown once), and deletion. The same
 * service as `sls client`.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { field, registerForms, type PageRenderer } from './render.js';

const PATH = '/helpdesk/oidc-clients';

export function oidcClientPages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  const { oidc } = services;

  return async (app) => {
    await registerForms(app, pages);
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    /**
     * An admin signed in with a full session, or where the browser goes
     * instead; to act (`staff_action`: register or delete a client), with a
     * fresh step-up (V1, X7), or the step-up page, which comes back here.
     */
    async function admin(request: FastifyRequest, need: 'staff' | 'staff_action'): Promise<{ userId: string; session: Session } | { redirect: string }> {
      // X1, X7 (decision 0034): a role below admin on the OpenID clients page is refused before the step-up, audited
      const role = (userId: string) => services.helpDesk.admin(userId, 'oidc_clients', request.url.split('?')[0]!);
      const session = await guard.page(request, need, PATH, role);
      if (redirected(session)) return session;
      const user = await role(session.userId);
      return { userId: user.id, session };
    }

    async function render(
      request: FastifyRequest,
      reply: FastifyReply,
      session: Session,
      data: { created?: { clientId: string; secret: string | null } | null; deleted?: string | null; error?: unknown } = {},
    ): Promise<FastifyReply> {
      const failure = data.error === undefined ? null : pages.pageError(request, data.error);
      return pages.render(
        request,
        reply,
        'helpdesk/oidc-clients',
        {
          clients: await oidc.clients.list(),
          created: data.created ?? null,
          deleted: data.deleted ?? null,
          error: failure,
          // V1, X7: registering or deleting needs a fresh step-up; until then the page says so, with the way there and back
          stepUpDue: (await guard.allows(session, 'staff_action')) ? null : PATH,
        },
        { status: failure?.status ?? 200, path: PATH },
      );
    }

    app.get(PATH, async (request, reply) => {
      const who = await admin(request, 'staff');
      if ('redirect' in who) return reply.redirect(who.redirect, 303);
      return render(request, reply, who.session);
    });

    app.post(PATH, { preHandler: app.csrfProtection }, async (request, reply) => {
      const who = await admin(request, 'staff_action');
      if ('redirect' in who) return reply.redirect(who.redirect, 303);
      try {
        const backchannel = field(request.body, 'backchannelLogoutUri').trim();
        const { client, secret } = await oidc.clients.create(
          {
            name: field(request.body, 'name'),
            app: field(request.body, 'app'),
            redirectUris: [field(request.body, 'redirectUri').trim()].filter((u) => u !== ''),
            backchannelLogoutUri: backchannel === '' ? null : backchannel,
            public: field(request.body, 'type') === 'public',
            deviceGrant: field(request.body, 'deviceGrant') === 'yes',
          },
          `staff:${who.userId}`,
        );
        // the secret is shown on this answer only, never again (no redirect that could be reloaded)
        reply.header('cache-control', 'no-store');
        return render(request, reply, who.session, { created: { clientId: client.clientId, secret } });
      } catch (error) {
        return render(request, reply, who.session, { error });
      }
    });

    app.post<{ Params: { clientId: string } }>(`${PATH}/:clientId/delete`, { preHandler: app.csrfProtection }, async (request, reply) => {
      const who = await admin(request, 'staff_action');
      if ('redirect' in who) return reply.redirect(who.redirect, 303);
      try {
        await oidc.clients.delete(request.params.clientId, `staff:${who.userId}`);
        return render(request, reply, who.session, { deleted: request.params.clientId });
      } catch (error) {
        return render(request, reply, who.session, { error });
      }
    });
  };
}
