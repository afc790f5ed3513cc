/**
 * Settings → "Language and time zone for notices" (N1): what the user's
 * notices are written in now, whether it was chosen or remembered from the
 * logins, and the choice. Not a security setting of X7 (no step-up; see
 * src/identity/notice-preferences.ts): audited, and a new language is told
 * in the former one.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import { formatTime } from '../../notify/notifier.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { field, registerForms, type PageRenderer } from './render.js';

const PATH = '/settings/notices';

/** The IANA time zones the runtime knows, offered in the form. */
const ZONES: readonly string[] = Intl.supportedValuesOf('timeZone');

export function noticePages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  return async (app) => {
    await registerForms(app, pages);
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    async function render(request: FastifyRequest, reply: FastifyReply, session: Session, error?: unknown): Promise<FastifyReply> {
      const query = request.query as Record<string, unknown>;
      const failure = error === undefined ? null : pages.pageError(request, error);
      const prefs = await services.noticePreferences.get(session.userId);
      const source = prefs.chosenAt !== null ? 'chosen' : prefs.language !== null || prefs.timeZone !== null ? 'logins' : 'default';
      // a time as the notices write it, in their language and zone
      const example = formatTime(new Date(services.clock.now()), prefs.effective.language, prefs.effective.timeZone, 'email');
      return pages.render(
        request,
        reply,
        'notice-preferences',
        { prefs, source, example, zones: ZONES, saved: query.saved === '1', error: failure },
        { status: failure?.status ?? 200, path: PATH },
      );
    }

    app.get(PATH, async (request, reply) => {
      const session = await guard.page(request, 'portal');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return render(request, reply, session);
    });

    app.post(PATH, { preHandler: app.csrfProtection }, async (request, reply) => {
      const session = await guard.page(request, 'settings', PATH);
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      const language = field(request.body, 'language');
      const timeZone = field(request.body, 'timeZone');
      try {
        await services.noticePreferences.choose(session.userId, { language: language || null, timeZone: timeZone || null }, `user:${session.userId}`);
        return reply.redirect(`${PATH}?saved=1`, 303);
      } catch (error) {
        return render(request, reply, session, error);
      }
    });
  };
}
