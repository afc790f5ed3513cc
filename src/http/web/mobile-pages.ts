/**
 * Settings → mobile number (M1, M2, M6): add a number (the country chosen
 * from a list, the digits typed alone), VERIFY it with the confirm code sent
 * by SMS, see "SMS Verified", remove it. And the development outbox page
 * (M7), where messages wait while no real gateway is configured.
 */
import { createReadStream, existsSync } from 'node:fs';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { getCountries, getCountryCallingCode } from 'libphonenumber-js/max';
import type { Services } from '../../services.js';
import type { Session } from '../../sessions/sessions.js';
import type { Language } from '../../i18n/i18n.js';
import { SlsError } from '../../errors.js';
import { outboxAudioPath } from '../../delivery/speech.js';
import { outboxPageServed } from '../../config.js';
import { requestMeta } from '../session-cookie.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { field, registerForms, type PageRenderer } from './render.js';
import { countryName } from '../../identity/countries.js';

export interface CountryOption {
  code: string;
  label: string;
}

const DEFAULT_COUNTRY: Record<Language, string> = { en: 'US', fr: 'FR', 'zh-Hant': 'HK' };
const countryLists = new Map<Language, CountryOption[]>();

/** Every country with its calling code, named in the page's language and sorted by name (M6). */
export function countryOptions(language: Language): CountryOption[] {
  let list = countryLists.get(language);
  if (!list) {
    list = getCountries()
      .map((code) => ({ code, label: `${countryName(code, language)} (+${getCountryCallingCode(code)})` }))
      .sort((a, b) => a.label.localeCompare(b.label, language));
    countryLists.set(language, list);
  }
  return list;
}

const NOTICES = ['added', 'verified', 'enrolled', 'removed'] as const;

export function mobilePages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  return async (app) => {
    await registerForms(app, pages);
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    async function render(
      request: FastifyRequest,
      reply: FastifyReply,
      session: Session,
      options: { error?: unknown; values?: { country: string; number: string } } = {},
    ): Promise<FastifyReply> {
      const query = request.query as Record<string, unknown>;
      const failure = options.error === undefined ? null : pages.pageError(request, options.error);
      return pages.render(
        request,
        reply,
        'mobile',
        {
          phones: await services.phones.list(session.userId),
          countries: countryOptions(request.language),
          values: options.values ?? { country: DEFAULT_COUNTRY[request.language], number: '' },
          notices: NOTICES.filter((key) => query[key] === '1'),
          sentTo: typeof query.sent === 'string' ? query.sent : null,
          failedTo: typeof query.failed === 'string' ? query.failed : null,
          now: services.clock.now(),
          error: failure,
        },
        { status: failure?.status ?? 200, path: '/settings/mobile' },
      );
    }

    /** A change of the settings: a fresh step-up (X7) in a portal session of full scope (T3); errors are shown on the page. */
    async function change(
      request: FastifyRequest,
      reply: FastifyReply,
      act: (session: Session) => Promise<string>,
      values?: { country: string; number: string },
    ): Promise<FastifyReply> {
      const session = await guard.page(request, 'security', '/settings/mobile');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      try {
        const done = await act(session);
        // L8: removing the number this very session stands on ends it
        return reply.redirect(await guard.afterWithdrawal(session, `/settings/mobile?${done}`), 303);
      } catch (error) {
        return render(request, reply, session, { error, ...(values ? { values } : {}) });
      }
    }

    app.get('/settings/mobile', async (request, reply) => {
      const session = await guard.page(request, 'security');
      if (redirected(session)) return reply.redirect(session.redirect, 303);
      return render(request, reply, session);
    });

    app.post('/settings/mobile', { preHandler: app.csrfProtection }, async (request, reply) => {
      const values = { country: field(request.body, 'country'), number: field(request.body, 'number') };
      return change(
        request,
        reply,
        async (session) => {
          // T3, M2, X7: a number on record enrols a user without a permanent device
          await guard.requirePermanentProof(request, session);
          await services.phones.add(session.userId, values, `user:${session.userId}`, request.ip);
          return 'added=1';
        },
        values,
      );
    });

    app.post<{ Params: { phoneId: string } }>('/settings/mobile/:phoneId/verify', { preHandler: app.csrfProtection }, async (request, reply) =>
      change(request, reply, async (session) => {
        const { phone, delivery } = await services.phones.sendConfirmCode(session.userId, request.params.phoneId, requestMeta(request));
        return `${delivery === 'sent' ? 'sent' : 'failed'}=${phone.id}`;
      }),
    );

    app.post<{ Params: { phoneId: string } }>('/settings/mobile/:phoneId/confirm', { preHandler: app.csrfProtection }, async (request, reply) =>
      change(request, reply, async (session) => {
        await guard.requirePermanentProof(request, session);
        const { enrolledDeviceId } = await services.phones.confirm(session.userId, request.params.phoneId, field(request.body, 'code'), requestMeta(request));
        return enrolledDeviceId ? 'verified=1&enrolled=1' : 'verified=1';
      }),
    );

    app.post<{ Params: { phoneId: string } }>('/settings/mobile/:phoneId/remove', { preHandler: app.csrfProtection }, async (request, reply) =>
      change(request, reply, async (session) => {
        await services.phones.remove(session.userId, request.params.phoneId, `user:${session.userId}`, request.ip, { exceptSessionId: session.id });
        return 'removed=1';
      }),
    );

    /** M7: the development outbox: what the system sent, codes included: only when asked for, and only with no real gateway. */
    function assertOutboxVisible(): void {
      if (!outboxPageServed(services.config)) throw new SlsError('NOT_FOUND');
    }

    app.get('/dev/outbox', async (request, reply) => {
      assertOutboxVisible();
      const messages = await services.notifier.list({ limit: 100 });
      const withAudio = messages.map((m) => ({ ...m, audio: m.channel === 'voice' && existsSync(outboxAudioPath(services.config.dataDir, m.id)) }));
      return pages.render(request, reply, 'outbox', { messages: withAudio }, { path: '/dev/outbox' });
    });

    app.get<{ Params: { id: string } }>('/dev/outbox/:id/audio', async (request, reply) => {
      assertOutboxVisible();
      const { id } = request.params;
      const path = /^ntf_[a-z2-7]{26}$/.test(id) ? outboxAudioPath(services.config.dataDir, id) : null;
      if (!path || !existsSync(path)) throw new SlsError('NOT_FOUND');
      return reply.header('cache-control', 'no-store').type('audio/wav').send(createReadStream(path));
    });
  };
}
