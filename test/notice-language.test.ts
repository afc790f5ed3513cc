/**
 * N1: notices in the user's language (issue 13 item 8). How the language is
 * set, end to end: remembered from the user's complete logins (the language
 * switcher and its cookie, Accept-Language, the browser's time zone), unless
 * chosen on the settings page or with `sls user set-language`; an unknown
 * language falls back to the server's. E-mail and SMS bodies are written in
 * that language with its dates, in the user's time zone — the DSC+ shipped by
 * staff (C4/C6), the estimated shipment day, the lock. The same suite runs
 * on SQLite and, when configured, PostgreSQL.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePskc } from '../src/devices/dscplus/pskc.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, postJson, startLogin, stepUp, type ApiResponse } from './support/api.js';
import { Agent, byId, textById } from './support/html.js';
import { cliEnv, sls, slsInProcess } from './support/cli.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import { CODE_TEMPLATES, compose, dayOf, type NoticeTemplate } from '../src/notify/notifier.js';
import { LANGUAGES } from '../src/i18n/i18n.js';
import { messagesOf } from '../src/i18n/resources.js';

const ADDRESS = { name: 'Alice Martin', line1: '1 Main Street', city: 'Springfield', postalCode: '12345', country: 'us' };
/** A date or time written raw (ISO 8601): never in a notice. */
const RAW_ISO = /\d{4}-\d{2}-\d{2}(T|\b)/;

describe.each(DATABASES)('notices in the user language (%s)', (db) => {
  let h: Harness;
  let agentId: string;
  let stock: string[];

  beforeAll(async () => {
    h = await startHarness(db);
    agentId = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user.id;
    const batch = readFileSync(new URL('./fixtures/pskc/batch-plain.xml', import.meta.url), 'utf8');
    stock = (await h.services.devices.importStock(parsePskc(batch), 'test', 'batch')).map((d) => d.serial!);
  });
  afterAll(async () => {
    await h.close();
  });

  /** A client with a DSC+ and a verified mobile number: notices go by e-mail and SMS. */
  async function client(): Promise<{ user: User; card: CardFile }> {
    const made = await createUserWithCard(h.services);
    await h.services.phones.add(made.user.id, { country: 'FR', number: '611223355' }, 'test', null);
    await h.services.store.db.updateTable('phones').set({ verified_at: h.clock.now() }).where('user_id', '=', made.user.id).execute();
    return made;
  }

  /** A whole login through the pages, as a browser with `cookies` (sls_lang, sls_tz) and `headers` (Accept-Language) would. */
  async function pageLogin(user: User, card: CardFile, options: { query?: string; cookies?: Record<string, string>; headers?: Record<string, string> } = {}) {
    const agent = new Agent(h.app, options.headers ?? {});
    for (const [name, value] of Object.entries(options.cookies ?? {})) agent.jar.set(name, value);
    const login = await agent.get(`/login${options.query ?? ''}`);
    const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
    expect(started.status, started.html).toBe(303);
    const challenge = await agent.get(started.location!);
    const done = await agent.submit(challenge, started.location!, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) });
    expect(done.location).toBe('/account');
    return agent;
  }

  async function putJson(url: string, payload: unknown, headers: Record<string, string>): Promise<ApiResponse> {
    const raw = await h.app.inject({ method: 'PUT', url, payload: payload as object, headers: { 'content-type': 'application/json', ...headers } });
    return { status: raw.statusCode, body: raw.json(), headers: raw.headers, raw };
  }

  async function noticesOf(userId: string, template: string) {
    const rows = await h.services.store.db
      .selectFrom('notifications')
      .selectAll()
      .where('user_id', '=', userId)
      .where('template', '=', template)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return { email: rows.filter((r) => r.channel === 'email'), sms: rows.filter((r) => r.channel === 'sms') };
  }

  async function auditOf(userId: string) {
    const rows = await h.services.store.db
      .selectFrom('audit_log')
      .select(['event', 'actor', 'data'])
      .where('user_id', '=', userId)
      .where('event', '=', 'user.notice_preferences_changed')
      .orderBy('seq')
      .execute();
    return rows.map((r) => ({ actor: r.actor, data: JSON.parse(r.data as string) as Record<string, unknown> }));
  }

  /** C4/C6: the user requests a DSC+ (stepped up with the card), client services ship it from the stock. */
  async function requestAndShip(user: User, card: CardFile): Promise<void> {
    const start = await startLogin(h.app, user.username);
    const opened = (await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token as string;
    // V1 (decision 0042): the step-up replaced the session's token
    const token = (await stepUp(h.app, bearer(opened), (challenge) => cardAnswer(card, challenge.question))).body.session.token as string;
    const made = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, bearer(token));
    expect(made.status, JSON.stringify(made.body)).toBe(200);
    await h.services.dscPlusRequests.ship(agentId, made.body.device.id, stock.shift()!);
  }

  it('N1/X2: a login on the pages in French (the switcher) remembers French and the browser time zone; the DSC+ shipped by staff is told in French by e-mail and SMS, with its day in French where the user lives', async () => {
    const { user, card } = await client();
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: null, timeZone: null, chosenAt: null });
    // 23:30 UTC on 5 January 2027: three weeks later it is already the 27th in Paris (the 26th in UTC)
    h.clock.set(Date.UTC(2027, 0, 5, 23, 30));
    await pageLogin(user, card, { query: '?lang=fr', cookies: { sls_tz: 'Europe/Paris' } });
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({
      language: 'fr',
      timeZone: 'Europe/Paris',
      chosenAt: null,
      effective: { language: 'fr', timeZone: 'Europe/Paris' },
    });
    expect(await auditOf(user.id)).toMatchObject([{ actor: 'login', data: { language: 'fr', timeZone: 'Europe/Paris', source: 'login' } }]);

    await requestAndShip(user, card);
    const shipped = await noticesOf(user.id, 'dscplusShipped');
    expect(shipped.email).toHaveLength(1);
    expect(shipped.email[0]).toMatchObject({ language: 'fr', subject: 'Votre DSC+ est en route' });
    expect(shipped.email[0]!.body).toContain("sinon, elle s'activera d'elle-même le 27 janvier 2027.");
    expect(shipped.sms).toHaveLength(1);
    expect(shipped.sms[0]).toMatchObject({ language: 'fr', recipient: '+33611223355' });
    expect(shipped.sms[0]!.body).toContain("elle s'activera seule le 27/01/2027.");
    const requested = await noticesOf(user.id, 'dscplusRequested');
    expect(requested.email[0]!.body).toMatch(/Date d'expédition estimée : \d{1,2} [a-zéû]+ 2027\./);
    for (const row of (await h.services.notifier.list({ userId: user.id })).filter((n) => n.userId === user.id)) {
      expect(row.language, row.template).toBe('fr');
      expect(`${row.subject ?? ''} ${row.body}`, row.template).not.toMatch(RAW_ISO);
    }
  });

  it('N1/X2: a browser asking for Traditional Chinese (Accept-Language zh-HK) in Hong Kong gets the lock notice in Traditional Chinese, e-mail and SMS, with Hong Kong time', async () => {
    const { user, card } = await client();
    h.clock.set(Date.UTC(2027, 1, 10, 1, 0));
    await pageLogin(user, card, { headers: { 'accept-language': 'zh-HK,zh;q=0.9,en;q=0.5' }, cookies: { sls_tz: 'Asia/Hong_Kong' } });
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: 'zh-Hant', timeZone: 'Asia/Hong_Kong' });
    for (let i = 0; i < 10; i++) await startLogin(h.app, user.username, 'wrong password');
    const locked = await noticesOf(user.id, 'userLocked');
    // locked until 24 hours after the last failure: 11 February 2027, 09:00 in Hong Kong (UTC+8)
    expect(locked.email[0]).toMatchObject({ language: 'zh-Hant', subject: '您的用戶已被鎖定' });
    expect(locked.email[0]!.body).toContain('2027年2月11日');
    expect(locked.email[0]!.body).toContain('09:00');
    expect(locked.sms[0]).toMatchObject({ language: 'zh-Hant' });
    expect(locked.sms[0]!.body).toContain('2027/02/11');
    for (const row of [...locked.email, ...locked.sms]) expect(row.body).not.toMatch(RAW_ISO);
  });

  it('N1: an unknown language falls back to the server default — a login asking for German remembers nothing, a stored language we do not have is ignored, and a choice of one is refused (400)', async () => {
    const { user, card } = await client();
    await pageLogin(user, card, { headers: { 'accept-language': 'de-DE,de;q=0.9' } });
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: null, effective: { language: 'en', timeZone: 'UTC' } });
    expect(await auditOf(user.id)).toEqual([]);
    await h.services.notifier.notify(user, 'passwordChanged', { username: user.username });
    expect((await noticesOf(user.id, 'passwordChanged')).email[0]).toMatchObject({ language: 'en', subject: 'Your password was changed' });

    // a language written by something else (an older version, by hand)
    await h.services.store.db.updateTable('users').set({ language: 'de', time_zone: 'Mars/Olympus' }).where('id', '=', user.id).execute();
    await h.services.notifier.notify(user, 'passwordReset', { username: user.username });
    expect((await noticesOf(user.id, 'passwordReset')).sms[0]).toMatchObject({ language: 'en' });
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: null, timeZone: null, effective: { language: 'en' } });

    await expect(h.services.noticePreferences.choose(user.id, { language: 'de', timeZone: null }, 'test')).rejects.toMatchObject({
      code: 'VALIDATION_ERROR',
      status: 400,
      params: { field: 'language', reason: 'notice_language' },
    });
    await expect(h.services.noticePreferences.choose(user.id, { language: 'fr', timeZone: 'Mars/Olympus' }, 'test')).rejects.toMatchObject({
      code: 'VALIDATION_ERROR',
      params: { field: 'timeZone' },
    });
  });

  it('N1: a choice on the settings page ("Language and time zone for notices") wins over later logins; the change is audited and told in the former language; "as at my logins" gives the logins back', async () => {
    const { user, card } = await client();
    const agent = await pageLogin(user, card, { query: '?lang=fr' });
    const account = await agent.get('/account');
    expect(byId(account.html, 'notices-link')?.attrs.href).toBe('/settings/notices');
    const page = await agent.get('/settings/notices');
    expect(page.status).toBe(200);
    expect(textById(page.html, 'current-language')).toBe('Français');
    expect(textById(page.html, 'notice-source')).toContain('dernière connexion');

    // a time zone from the list and a language we do not have: refused on the page, nothing changes
    const refused = await agent.submit(page, '/settings/notices', { language: 'de', timeZone: 'Asia/Hong_Kong' });
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('Choisissez l&#39;anglais, le français ou le chinois traditionnel pour vos avis.');
    expect((await h.services.noticePreferences.get(user.id)).chosenAt).toBeNull();

    const saved = await agent.submit(page, '/settings/notices', { language: 'zh-Hant', timeZone: 'Asia/Hong_Kong' });
    expect(saved.status).toBe(303);
    expect(saved.location).toBe('/settings/notices?saved=1');
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: 'zh-Hant', timeZone: 'Asia/Hong_Kong', chosenAt: h.clock.now() });
    const told = await noticesOf(user.id, 'noticeLanguageChanged');
    expect(told.email[0]).toMatchObject({ language: 'fr', subject: 'La langue de vos avis a changé' });
    expect(told.email[0]!.body).toContain('sont désormais rédigés en : 繁體中文.');
    expect(told.sms[0]).toMatchObject({ language: 'fr' });
    const after = await agent.get('/settings/notices?saved=1');
    expect(byId(after.html, 'notice-saved')).toBeDefined();

    // later logins in English do not change a choice
    await pageLogin(user, card, { query: '?lang=en', cookies: { sls_tz: 'Europe/London' } });
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: 'zh-Hant', timeZone: 'Asia/Hong_Kong' });

    // "as at my logins": the next login decides again
    const again = await agent.get('/settings/notices');
    await agent.submit(again, '/settings/notices', { language: '', timeZone: '' });
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: null, timeZone: null, chosenAt: null });
    await pageLogin(user, card, { query: '?lang=en', cookies: { sls_tz: 'Europe/London' } });
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: 'en', timeZone: 'Europe/London', chosenAt: null });
    expect((await auditOf(user.id)).map((a) => [a.actor, a.data.source, a.data.language])).toEqual([
      ['login', 'login', 'fr'],
      [`user:${user.id}`, 'chosen', 'zh-Hant'],
      [`user:${user.id}`, 'chosen', null],
      ['login', 'login', 'en'],
    ]);
  });

  it('N1: only a complete login is remembered — a right password with a wrong response, or a wrong password, changes nothing', async () => {
    const { user, card } = await client();
    const agent = new Agent(h.app, { 'accept-language': 'fr-FR' });
    const login = await agent.get('/login');
    await agent.submit(login, '/login', { username: user.username, password: 'wrong password' });
    const started = await agent.submit(await agent.get('/login'), '/login', { username: user.username, password: PASSWORD });
    const challenge = await agent.get(started.location!);
    const right = cardAnswer(card, textById(challenge.html, 'challenge-code')!);
    await agent.submit(challenge, started.location!, { response: right.replace(/.$/, (d) => String((Number(d) + 1) % 10)) });
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: null });
    expect(await auditOf(user.id)).toEqual([]);
  });

  it('N1/I2: the JSON API — a login with Accept-Language fr remembers French; GET and PUT /api/v1/notice-preferences show and choose, with 400 VALIDATION_ERROR for a language we do not have', async () => {
    const { user, card } = await client();
    // an app sends its Accept-Language with every request: the one that completes the login is remembered
    const french = { 'accept-language': 'fr-CA,fr;q=0.9' };
    const start = await startLogin(h.app, user.username, PASSWORD, 'portal', french);
    const token = (await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question), french)).body.session.token as string;
    const shown = await get(h.app, '/api/v1/notice-preferences', bearer(token));
    expect(shown.status).toBe(200);
    expect(shown.body).toEqual({ language: 'fr', timeZone: null, chosenAt: null, effective: { language: 'fr', timeZone: 'UTC' } });
    const bad = await putJson('/api/v1/notice-preferences', { language: 'de', timeZone: null }, bearer(token));
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'VALIDATION_ERROR', message: 'Choose English, French or Traditional Chinese for your notices.' });
    const chosen = await putJson('/api/v1/notice-preferences', { language: 'zh-Hant', timeZone: 'Asia/Taipei' }, bearer(token));
    expect(chosen.status).toBe(200);
    expect(chosen.body).toEqual({
      language: 'zh-Hant',
      timeZone: 'Asia/Taipei',
      chosenAt: new Date(h.clock.now()).toISOString(),
      effective: { language: 'zh-Hant', timeZone: 'Asia/Taipei' },
    });
    expect((await get(h.app, '/api/v1/notice-preferences')).status).toBe(401);
    const spec = (await get(h.app, '/api/openapi.json')).body;
    expect(spec.paths['/api/v1/notice-preferences'].get.operationId).toBe('getNoticePreferences');
    expect(Object.keys(spec.paths['/api/v1/notice-preferences'].put.responses).sort()).toEqual(['200', '400', '401', '403', '413', '415', '500', '503']);
  });

  it('N1: sls user set-language USER fr --time-zone Asia/Hong_Kong chooses for the user; `default` gives the logins back', async () => {
    const { user, card } = await client();
    const env = cliEnv(h.database);
    // the first command a real `sls` process, the others in this process (slsInProcess): a process costs a start of Node each
    const set = await sls(['user', 'set-language', user.username, 'fr', '--time-zone', 'Asia/Hong_Kong'], env);
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    expect(set.stdout).toContain(`Notices to ${user.username}: language fr, time zone Asia/Hong_Kong`);
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: 'fr', timeZone: 'Asia/Hong_Kong', chosenAt: expect.any(Number) });
    expect((await auditOf(user.id)).at(-1)).toEqual({ actor: 'cli', data: { language: 'fr', timeZone: 'Asia/Hong_Kong', source: 'chosen' } });
    // told in the language the notices had (the server's: English)
    expect((await noticesOf(user.id, 'noticeLanguageChanged')).email[0]).toMatchObject({ language: 'en', subject: 'The language of your notices changed' });
    await pageLogin(user, card, { query: '?lang=en' });
    expect((await h.services.noticePreferences.get(user.id)).language).toBe('fr');

    const bad = await slsInProcess(['user', 'set-language', user.username, 'de'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('Choose English, French or Traditional Chinese for your notices.');
    const badZone = await slsInProcess(['user', 'set-language', user.username, 'fr', '--time-zone', 'Hong Kong'], env);
    expect(badZone.code).not.toBe(0);
    expect(badZone.stderr).toContain('Choose a time zone from the list');

    const follow = await slsInProcess(['user', 'set-language', user.username, 'default'], env);
    expect(follow.code).toBe(0);
    expect(follow.stdout).toContain(`Notices to ${user.username} follow the language of their logins again`);
    expect(await h.services.noticePreferences.get(user.id)).toMatchObject({ language: null, timeZone: null, chosenAt: null });
  });
});

describe('dates in every notice (N1)', () => {
  // every notice of the translation files, today's and tomorrow's
  const notices = Object.keys(messagesOf('en').notifications as object).filter((name) => !(CODE_TEMPLATES as readonly string[]).includes(name));

  it.each(LANGUAGES)(
    'N1/X2: no notice in %s shows a date raw — a time, an ISO timestamp, an ISO day or the day of a moment are all written out',
    (language) => {
      expect(notices.length).toBeGreaterThan(15);
      const values = [new Date(Date.UTC(2027, 0, 26, 23, 30)), '2027-01-26T23:30:00.000Z', '2027-01-26', dayOf(Date.UTC(2027, 0, 26, 23, 30))];
      for (const template of notices) {
        for (const value of values) {
          const text = messagesOf('en').notifications as Record<string, Record<string, string>>;
          const names = new Set(Object.values(text[template]!).flatMap((t) => [...t.matchAll(/{{(\w+)}}/g)].map((m) => m[1]!)));
          const params = Object.fromEntries([...names].map((name) => [name, value]));
          for (const channel of ['email', 'sms'] as const) {
            const out = compose({ template: template as NoticeTemplate, channel, language }, params, 'Asia/Hong_Kong');
            expect(`${out.subject ?? ''} ${out.body}`, `${template} ${channel}`).not.toMatch(RAW_ISO);
          }
        }
      }
    },
  );

  it('N1: the day of a moment is the day where the user lives', () => {
    const at = dayOf(Date.UTC(2027, 0, 26, 23, 30));
    const body = (timeZone: string) =>
      compose({ template: 'dscplusShipped', channel: 'sms', language: 'fr' }, { username: 'bob', serial: 'S1', date: at }, timeZone).body;
    expect(body('UTC')).toContain('le 26/01/2027.');
    expect(body('Asia/Hong_Kong')).toContain('le 27/01/2027.');
  });
});
