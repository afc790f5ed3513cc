/**
 * Nothing secret in the logs, the metrics, the audit log, error bodies or
 * the outbox (X1, X6, non-negotiable 5), nor in the database in clear (D5,
 * T5, I3): the server runs with its logger writing to the test, every flow
 * that handles a secret is driven, and each secret the test saw on the way
 * (passwords, PINs, codes, passcodes, card cells, tokens, keys, seeds) is
 * looked for everywhere an operator or an intruder reading the database
 * could look. A code sent to the user is not there either: the development
 * outbox keeps it sealed until it expires (M7, D5), a gateway's copy masked.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, uniqueUsername, wrongAnswer, type Harness, tablesOf } from './support/harness.js';
import { answer, bearer, claimOf, claimHeader, get, readLogin, postJson, startLogin, stepUp, withCard, type ApiResponse } from './support/api.js';
import { BUILT_IN_DRIVERS } from './support/kind-drivers.js';
import { Browser, listeningHarness, TEST_REDIRECT_URI } from './support/oidc.js';
import { harnessInbox, listen, smsUser, TestPhone } from './support/phone.js';
import { cliEnv, sls } from './support/cli.js';
import { espeakAvailable } from './support/environment.js';
import { CODE_TEMPLATES, type CodeTemplate } from '../src/notify/notifier.js';
import { outboxAudioPath } from '../src/delivery/speech.js';
import { csrfOf, form } from './support/html.js';
import { cookieNames } from '../src/http/session-cookie.js';

const METRICS_TOKEN = 'metrics-token-of-the-secrets-test-0123456789';
const fixture = (name: string) => new URL(`./fixtures/pskc/${name}`, import.meta.url).pathname;

describe.each(DATABASES)('nothing secret in logs, metrics, audit data, error bodies, the outbox or the database in clear (%s)', (database) => {
  let h: Harness;
  let issuer: string;
  const lines: string[] = [];
  const errorBodies: string[] = [];
  /** Every secret seen: its value, what it is (codes sent included: no outbox message keeps them in clear, M7, D5). */
  const secrets = new Map<string, { what: string }>();

  function secret(what: string, value: unknown): void {
    expect(typeof value === 'string' && value.length >= 4, `${what}: ${String(value)}`).toBe(true);
    secrets.set(value as string, { what });
  }

  /** An answer whose status is an error keeps its body, to be searched. */
  function kept(res: ApiResponse): ApiResponse {
    if (res.status >= 400) errorBodies.push(res.raw.body);
    return res;
  }

  /** Where a secret shows, as a word of its own (a 4-digit PIN is not found inside a timestamp or a port). */
  function shows(haystack: string, value: string): boolean {
    const escaped = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return value.length >= 12 ? haystack.includes(value) : new RegExp(`(?<![\\w.:-])${escaped}(?![\\w.])`).test(haystack);
  }

  beforeAll(async () => {
    const stream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    ({ h, issuer } = await listeningHarness(database, { metrics: { token: METRICS_TOKEN, allow: [] } }, { logger: { level: 'trace', stream } }));
    secret('the password', PASSWORD);
  });
  beforeEach(() => h.clock.set(Date.now()));
  afterAll(async () => h?.close());

  /** Every place a secret must not be, searched for every secret seen so far. */
  async function expectNothingLeaked(): Promise<void> {
    const audit = JSON.stringify(await h.services.store.db.selectFrom('audit_log').selectAll().execute());
    const outbox = (await h.services.store.db.selectFrom('notifications').selectAll().execute()).map((row) => JSON.stringify(row));
    const metrics = await get(h.app, '/metrics', bearer(METRICS_TOKEN));
    expect(metrics.status).toBe(200);
    const logs = lines.join('');
    expect(logs).toContain('"reqId"');
    const errors = errorBodies.join('\n');
    const leaks: string[] = [];
    for (const [value, { what }] of secrets) {
      if (shows(logs, value)) leaks.push(`${what} in the log: ${lines.find((line) => shows(line, value))}`);
      if (shows(audit, value)) leaks.push(`${what} in the audit log`);
      if (shows(metrics.raw.body, value)) leaks.push(`${what} in the metrics`);
      if (shows(errors, value)) leaks.push(`${what} in an error body`);
      const carriers = outbox.filter((row) => shows(row, value)).length;
      if (carriers > 0) leaks.push(`${what} in ${carriers} outbox messages`);
    }
    expect(leaks).toEqual([]);
  }

  it('X6, L2: a password login with each kind of device, wrong answers and a replay on the way', async () => {
    for (const [kind, driver] of Object.entries(BUILT_IN_DRIVERS)) {
      const holder = await driver.holder(h);
      const wrong = kept(await startLogin(h.app, holder.user.username, `${PASSWORD} but wrong`));
      expect(wrong.status, kind).toBe(401);
      secret('a wrong password', `${PASSWORD} but wrong`);
      const start = kept(await startLogin(h.app, holder.user.username));
      expect(start.status, `${kind}: ${JSON.stringify(start.body)}`).toBe(200);
      secret(`the claim token of a ${kind} login`, start.body.claimToken);
      const prompt = await holder.answerable(start.body);
      const right = await holder.right(prompt);
      if (kind !== 'security_key') secret(`the answer of a ${kind}`, right);
      kept(await answer(h.app, start.body.id, await holder.wrong(prompt)));
      const done = kept(await answer(h.app, start.body.id, right));
      expect(done.status, `${kind}: ${JSON.stringify(done.body)}`).toBe(200);
      secret(`the session token of a ${kind} login`, done.body.session.token);
      // the same answer again, in a new login: refused (or, for the static passcode, taken), its body searched
      if (kind !== 'security_key' && kind !== 'sms') {
        const again = kept(await startLogin(h.app, holder.user.username));
        kept(await answer(h.app, again.body.id, right));
      }
    }
    await expectNothingLeaked();
  });

  it('V1, C7, M5: a step-up, a PIN change, SMS and voice codes', async () => {
    const { user, card } = await createUserWithCard(h.services, '5928');
    secret('a card seed', card.seed);
    secret('a PIN', '5928');
    const start = kept(await startLogin(h.app, user.username));
    const session = bearer(kept(await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token);
    secret('a session token', session.authorization!.slice('Bearer '.length));
    const stepped = await stepUp(h.app, session, withCard(card));
    expect(stepped.body.state).toBe('done');
    const [device] = await h.services.devices.listForUser(user.id);
    const pin = kept(await postJson(h.app, `/api/v1/devices/${device!.id}/pin`, {}, session));
    expect(pin.status, JSON.stringify(pin.body)).toBe(200);
    const response = cardAnswer(card, pin.body.challenge.question);
    secret('a response with the PIN', response);
    kept(await postJson(h.app, `/api/v1/devices/${device!.id}/pin/${pin.body.id}`, { response: wrongAnswer(response), newPin: '6173' }, session));
    const changed = kept(await postJson(h.app, `/api/v1/devices/${device!.id}/pin/${pin.body.id}`, { response, newPin: '6173' }, session));
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    secret('a new PIN', '6173');

    // M4, M5: an SMS login, its code again by SMS, then by voice; each code only in its own message
    const texted = await smsUser(h);
    const login = kept(await startLogin(h.app, texted.username));
    expect(login.body.challenge.type).toBe('sms');
    const codes = async () =>
      (await h.services.notifier.list({ userId: texted.id })).filter((n) => n.template !== 'confirmCode').map((n) => /\b(\d{6})\b/.exec(n.body)?.[1]);
    for (const channel of ['sms', 'voice']) {
      h.clock.advance(3 * 60_000);
      kept(await postJson(h.app, `/api/v1/login/${login.body.id}/code`, { channel }, claimOf(login)));
    }
    for (const code of await codes()) if (code) secret('a code by SMS or voice', code);
    await expectNothingLeaked();
  });

  it('T1, A5, I3, D1: a temporary passcode and a password reset by the help desk, a password change, an API key, a PSKC import by sls', async () => {
    const { user: agent, card: agentCard } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const staffStart = kept(await startLogin(h.app, agent.username));
    const staff = bearer(kept(await answer(h.app, staffStart.body.id, cardAnswer(agentCard, staffStart.body.challenge.question))).body.session.token);
    await stepUp(h.app, staff, withCard(agentCard));
    const { user } = await createUserWithCard(h.services);
    const verify = async () =>
      kept(await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/verifications`, { method: 'id_document' }, staff)).body.id as string;
    const issued = kept(
      await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/temporary-passcode`, { verificationId: await verify(), deviceStatus: 'suspended' }, staff),
    );
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    secret('a temporary passcode', issued.body.passcode);
    const reset = kept(await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/password-reset`, { verificationId: await verify() }, staff));
    expect(reset.status, JSON.stringify(reset.body)).toBe(200);
    secret('a one-time password', reset.body.temporaryPassword);
    // A5: the one-time password opens one session, which changes it (after a step-up with the passcode)
    const start = kept(await startLogin(h.app, user.username, reset.body.temporaryPassword));
    const session = bearer(kept(await answer(h.app, start.body.id, issued.body.passcode)).body.session.token);
    await stepUp(h.app, session, () => issued.body.passcode, reset.body.temporaryPassword);
    const newPassword = `a new password ${uniqueUsername('p')}`;
    secret('a new password', newPassword);
    kept(await postJson(h.app, '/api/v1/password', { currentPassword: 'not the current one', newPassword }, session));
    const changed = kept(await postJson(h.app, '/api/v1/password', { currentPassword: reset.body.temporaryPassword, newPassword }, session));
    expect(changed.status, JSON.stringify(changed.body)).toBe(204);

    // I3: an API key, used, and a wrong one
    const { key } = await h.services.apiKeys.create({ name: 'back office', scopes: ['accounts', 'withdrawals'] }, 'test');
    secret('an API key', key);
    expect(kept(await get(h.app, `/api/v1/entitlements?account=${user.accountNumber}`, bearer(key))).status).toBe(200);
    kept(await get(h.app, `/api/v1/entitlements?account=${user.accountNumber}`, bearer(`${key.slice(0, -2)}xx`)));

    // D1: a PSKC file's seeds, imported by sls
    const imported = await sls(['device', 'import-pskc', fixture('legacy-hotp.xml')], cliEnv(h.database));
    expect(imported.code, imported.stderr).toBe(0);
    secret('a PSKC seed (as in the file)', 'MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=');
    secret('a PSKC seed (hex)', Buffer.from('MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=', 'base64').toString('hex'));
    for (const value of secrets.keys()) expect(imported.stdout + imported.stderr).not.toContain(value);
    await expectNothingLeaked();
  });

  it('K1, K3, K13: the mobile authenticator activated by its SMS token, then a push approved', async () => {
    const base = await listen(h);
    const user = await smsUser(h);
    const phone = new TestPhone(base, harnessInbox(h));
    const enrolment = await phone.activate(user.username);
    secret('an activation token', await harnessInbox(h).activationToken(user.username));
    secret("the app's device token", enrolment.token);
    secret("the app's PIN", enrolment.pin);
    const login = kept(await startLogin(h.app, user.username));
    secret('a claim token', login.body.claimToken);
    const request = await phone.request(user.username);
    await phone.approve(request, login.body.challenge.number);
    const claimed = kept(await postJson(h.app, `/api/v1/login/${login.body.id}/session`, { claimToken: login.body.claimToken }));
    expect(claimed.status, JSON.stringify(claimed.body)).toBe(200);
    secret('a session token', claimed.body.session.token);
    await expectNothingLeaked();
  });

  it('I1: OpenID code, refresh and device flows, and the logout that names the ID token', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const created = await h.services.oidc.clients.create(
      { name: 'Secrets portal', app: 'portal', redirectUris: [TEST_REDIRECT_URI], deviceGrant: true },
      'test',
    );
    secret('a client secret', created.secret);
    const client = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.ClientSecretBasic(created.secret!), {
      execute: [oidc.allowInsecureRequests],
    });
    const browser = new Browser(issuer);
    const signIn = async (page: { html: string }) => {
      const posted = await browser.request('/login', {
        form: { _csrf: csrfOf(form(page.html, '/login')), username: user.username, password: PASSWORD, app: 'portal' },
      });
      const flowId = /\/login\/(flw_[a-z2-7]+)/.exec(posted.location!)![1]!;
      const view = await readLogin(h.app, flowId, claimHeader(browser.jar.get(cookieNames(h.services.config).claim)!.split('.')[0]));
      const challenge = await browser.request(posted.location!);
      secret('a CSRF token', csrfOf(form(challenge.html, `/login/${flowId}`)));
      const done = await browser.request(`/login/${flowId}`, {
        form: { _csrf: csrfOf(form(challenge.html, `/login/${flowId}`)), response: cardAnswer(card, view.body.challenge.question) },
      });
      secret('a session cookie', browser.jar.get('__Host-sls_session'));
      return done.location!;
    };
    const verifier = oidc.randomPKCECodeVerifier();
    secret('a PKCE verifier', verifier);
    let url = oidc.buildAuthorizationUrl(client, {
      redirect_uri: TEST_REDIRECT_URI,
      scope: 'openid offline_access',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).href;
    for (let hop = 0; hop < 20 && !url.startsWith(TEST_REDIRECT_URI); hop++) {
      const page = await browser.request(url);
      if (page.location) url = page.location;
      else if (new URL(url).pathname === '/login') {
        h.clock.set(Math.max(Date.now(), h.clock.now()));
        url = await signIn(page);
      } else throw new Error(`stopped at ${url}: ${page.status} ${page.html.slice(0, 300)}`);
    }
    const code = new URL(url).searchParams.get('code');
    secret('an authorization code', code);
    const tokens = await oidc.authorizationCodeGrant(client, new URL(url), { pkceCodeVerifier: verifier, idTokenExpected: true });
    secret('an access token', tokens.access_token);
    secret('a refresh token', tokens.refresh_token);
    secret('an ID token', tokens.id_token);
    const refreshed = await oidc.refreshTokenGrant(client, tokens.refresh_token!);
    secret('a refreshed access token', refreshed.access_token);
    secret('a rotated refresh token', refreshed.refresh_token);
    await oidc.fetchUserInfo(client, refreshed.access_token, user.id);

    // RFC 8628: the code the platform shows, opened from its complete link; the device code the platform polls with
    const device = await oidc.initiateDeviceAuthorization(client, { scope: 'openid' });
    secret('a device code', device.device_code);
    secret('a user code', device.user_code);
    // … and as the provider keeps it (without the mask's dash)
    secret('a user code, as kept', device.user_code.replace(/-/g, ''));
    const opened = await browser.request(device.verification_uri_complete ?? `${device.verification_uri}?user_code=${device.user_code}`);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(opened.html)?.[1] ?? /name="xsrf" value="([^"]+)"/.exec((await browser.request('/oidc/device')).html)![1]!;
    const confirmation = await browser.request('/oidc/device', { form: { xsrf, user_code: device.user_code } });
    const confirmed = await browser.request('/oidc/device', {
      form: { xsrf: /name="xsrf" value="([^"]+)"/.exec(confirmation.html)![1]!, user_code: device.user_code, confirm: 'yes' },
    });
    url = confirmed.location!;
    for (let hop = 0; hop < 10; hop++) {
      const page = await browser.request(url);
      if (!page.location) break;
      url = page.location;
    }
    // approved: the device's first poll (RFC 8628 §3.4: at once) gets its tokens
    const deviceTokens = await oidc.pollDeviceAuthorizationGrant(client, { ...device, interval: 0 });
    secret('a device access token', deviceTokens.access_token);

    // RP-initiated logout: the ID token in the address
    const end = oidc.buildEndSessionUrl(client, { id_token_hint: tokens.id_token! });
    await browser.request(end.href);
    await expectNothingLeaked();
  });

  /** Where, in the database's tables, a secret seen so far is kept in clear (a code sent included). */
  async function keptInTables(): Promise<string[]> {
    // PostgreSQL: the tables of this test's schema (the others are other tests')
    const tables = await tablesOf(h.services.store);
    expect(tables).toContain('sessions');
    const found: string[] = [];
    for (const table of tables) {
      const rows = (await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(h.services.store.db)).rows;
      const text = rows.map((row) => JSON.stringify(row, (_key, value) => (Buffer.isBuffer(value) ? value.toString('hex') : value))).join('\n');
      for (const [value, { what }] of secrets) {
        if (shows(text, value)) found.push(`${what} in ${table}`);
      }
    }
    return found;
  }

  it('X1, L1, L3: a password typed into the username field is kept nowhere (the audit log and the lock keep its keyed digest); staff still find its entries by that text', async () => {
    const phrase = 'correct horse battery staple 9!';
    const word = 'CorrectHorseBatteryStaple9';
    expect(kept(await startLogin(h.app, phrase)).status).toBe(400);
    expect(kept(await startLogin(h.app, word)).status).toBe(401);
    secret('a password typed as a username', phrase);
    secret('a password typed as a username (letters and digits)', word);
    // the lock counts it as any username (L1, L3); the audit log has the failure, found by the text typed
    expect((await h.services.lockout.status(word)).failures).toBe(1);
    const found = (await h.services.audit.list({ username: word })).filter((e) => e.event === 'login.password_failed');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ userId: null, username: word });
    await expectNothingLeaked();
    expect(await keptInTables()).toEqual([]);
  });

  it("L3, X1: the lock's rows a version before kept under a username's text are moved to its digest at start: a help desk's lock stays in force, failures still count", async () => {
    const { user } = await createUserWithCard(h.services);
    const typed = uniqueUsername('Typed');
    const db = h.services.store.db;
    // the database of a version before: rows under the text, and no mark that they were moved
    await db.deleteFrom('meta').where('key', '=', 'lockout_keyed_by_digest').execute();
    await db.insertInto('lockouts').values({ username: user.username, locked_until: 8_640_000_000_000_000, reset_at: 0 }).execute();
    await db
      .insertInto('login_failures')
      .values([1, 2, 3].map((i) => ({ id: `att_old_${database}_${i}`, username: typed, at: h.clock.now() - i, state: 'failed' as const })))
      .execute();
    expect(await h.services.lockout.keyTypedUsernames()).toBe(2);
    // once done, later starts read only the mark
    await db
      .insertInto('lockouts')
      .values({ username: uniqueUsername('Later'), locked_until: null, reset_at: 0 })
      .execute();
    expect(await h.services.lockout.keyTypedUsernames()).toBe(0);
    await db.deleteFrom('lockouts').where('username', 'not like', 'hmac:%').execute();
    expect(await h.services.lockout.status(user.username)).toMatchObject({ locked: true, byStaff: true });
    expect((await startLogin(h.app, user.username)).status).toBe(423);
    expect((await h.services.lockout.status(typed)).failures).toBe(3);
    const left = [
      ...(await db.selectFrom('lockouts').select('username').execute()),
      ...(await db.selectFrom('login_failures').select('username').execute()),
    ].filter((row) => !row.username.startsWith('hmac:'));
    expect(left).toEqual([]);
  });

  /** Every file under a directory (the data directory: the SQLite database, its journal, the outbox's audio). */
  function filesUnder(directory: string): string[] {
    return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
      const path = join(directory, entry.name);
      return entry.isDirectory() ? filesUnder(path) : entry.isFile() ? [path] : [];
    });
  }

  it('M7, D5, X4: a code the development outbox delivered is in no table and no file of the data directory in clear; once it expires its sealed copy and its spoken audio are gone', async () => {
    const texted = await smsUser(h);
    const login = kept(await startLogin(h.app, texted.username));
    h.clock.advance(3 * 60_000);
    kept(await postJson(h.app, `/api/v1/login/${login.body.id}/code`, { channel: 'voice' }, claimOf(login)));
    const messages = (await h.services.notifier.list({ userId: texted.id })).filter((n) => CODE_TEMPLATES.includes(n.template as CodeTemplate));
    expect(messages.map((m) => m.channel).sort()).toEqual(['sms', 'sms', 'voice']);
    // the development outbox is the delivery: while a code lives, `sls outbox` and /dev/outbox show it
    const codes = messages.map((m) => /\b(\d{6})\b/.exec(m.body)?.[1]);
    expect(codes.every((code) => code !== undefined)).toBe(true);
    const voice = messages.find((m) => m.channel === 'voice')!;
    const audio = outboxAudioPath(h.database.dataDir, voice.id);
    if (espeakAvailable) expect(existsSync(audio)).toBe(true);

    // a database file packs columns side by side ("en123456 is your code"): any run of exactly these digits
    const runOf = (text: string, code: string) => new RegExp(`(?<!\\d)${code}(?!\\d)`).test(text);
    /** Where a code shows in clear: the tables' rows (all of them), and the files of the data directory. */
    async function inClear(): Promise<string[]> {
      const found: string[] = [];
      const tables = await tablesOf(h.services.store);
      expect(tables).toContain('notifications');
      for (const table of tables) {
        const rows = (await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(h.services.store.db)).rows;
        const text = rows.map((row) => JSON.stringify(row, (_key, value) => (Buffer.isBuffer(value) ? value.toString('hex') : value))).join('\n');
        for (const code of codes) if (runOf(text, code!)) found.push(`a code in ${table}`);
      }
      for (const file of filesUnder(h.database.dataDir)) {
        if (file.endsWith('.wav')) continue; // spoken, not written: it is removed when the code expires (below)
        const text = readFileSync(file).toString('latin1');
        for (const code of codes) if (runOf(text, code!)) found.push(`a code in ${file}`);
      }
      return found;
    }
    expect(await inClear()).toEqual([]);

    // expired: the outbox shows the message masked, keeps no sealed copy, and the call's audio is gone
    h.clock.advance(h.services.config.policy.smsCodeTtlMs);
    await h.services.scheduler.runDue();
    const after = (await h.services.notifier.list({ userId: texted.id })).filter((n) => CODE_TEMPLATES.includes(n.template as CodeTemplate));
    expect(after).toHaveLength(3);
    for (const message of after) expect(message.body).not.toMatch(/\d{6}/);
    const rows = await h.services.store.db.selectFrom('notifications').selectAll().where('user_id', '=', texted.id).execute();
    expect(rows.filter((row) => row.sealed_body !== null)).toEqual([]);
    expect(existsSync(audio)).toBe(false);
    expect(await inClear()).toEqual([]);
  });

  it('D5, T5, I3, I1: in the database, no secret the test saw is kept in clear (codes sent included: M7)', async () => {
    expect(await keptInTables()).toEqual([]);
  });
});
