/**
 * N1: the language and time zone of the signed-in user's notices, for
 * integrators' apps (the trading platform's settings): what they are now,
 * and the user's choice (src/identity/notice-preferences.ts for the rule);
 * portal sessions, as the settings page (L8).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import type { NoticePreferencesView } from '../../identity/notice-preferences.js';
import { LANGUAGES } from '../../i18n/i18n.js';
import { ErrorSchema } from '../errors.js';
import type { SessionGuard } from '../session-guard.js';

const Language = z.enum(LANGUAGES);

export const NoticePreferencesSchema = z
  .object({
    language: Language.nullable().describe('Chosen or remembered from the logins; null: the server default'),
    timeZone: z.string().nullable().describe('An IANA time zone, chosen or remembered; null: the server one'),
    chosenAt: z.string().nullable().describe('When the user chose them (logins no longer change them); null while the logins decide'),
    effective: z.object({ language: Language, timeZone: z.string() }).describe('What notices are written in now'),
  })
  .describe('The language and time zone of the user notices (N1)');

const view = (prefs: NoticePreferencesView) => ({ ...prefs, chosenAt: prefs.chosenAt === null ? null : new Date(prefs.chosenAt).toISOString() });

export function noticePreferencesApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();

    app.get(
      '/notice-preferences',
      {
        schema: {
          tags: ['session'],
          operationId: 'getNoticePreferences',
          summary: 'The language and time zone of your notices (N1)',
          security: [{ bearer: [] }, { cookie: [] }],
          response: { 200: NoticePreferencesSchema, 401: ErrorSchema, 403: ErrorSchema },
        },
      },
      async (request) => view(await services.noticePreferences.get((await guard.require(request, 'portal')).session.userId)),
    );

    app.put(
      '/notice-preferences',
      {
        schema: {
          tags: ['session'],
          operationId: 'setNoticePreferences',
          summary: 'Choose the language and time zone of your notices (N1)',
          description:
            'A choice stays until the next one: logins no longer change it. Both null: the language of the logins ' +
            '(the pages language, or Accept-Language) is remembered again. A new language is told to the user in the former one. ' +
            'Not a security setting (no step-up), but a full-scope portal session (403 SCOPE_ONLINE_CARD_ONLY, T3); audited. 400 VALIDATION_ERROR for a language other than en, fr, zh-Hant or an unknown time zone.',
          security: [{ bearer: [] }, { cookie: [] }],
          body: z.object({ language: z.string().max(32).nullable(), timeZone: z.string().max(64).nullable() }).strict(),
          response: { 200: NoticePreferencesSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'settings');
        return view(await services.noticePreferences.choose(session.userId, request.body, `user:${session.userId}`));
      },
    );
  };
}
