/**
 * A second server process (X4): deployments run several `sls serve`
 * processes on one PostgreSQL database, each with its own memory. An
 * attacker sends the same single-use thing to both at once, or spreads a
 * counted limit over both: exactly one wins, and the audit says so once.
 * PostgreSQL only (two processes on one SQLite file are test/multiprocess's);
 * skipped without SLS_TEST_DATABASE_URL, never under CI (global-setup).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServices, type Services } from '../src/services.js';
import {
  PASSWORD,
  REQUESTER_SCC_CODES,
  cardAnswer,
  createUser,
  createUserWithCard,
  openTestDatabase,
  testConfig,
  type TestDatabase,
} from './support/harness.js';
import { cliEnv, sls, startServer, type ServerProcess } from './support/cli.js';
import { postgresUrl, redisUrl } from './support/environment.js';
import { WINDOW_MS } from '../src/throttle/throttle.js';
import { randomInt } from 'node:crypto';
import { TestPhone, tokenIn, verifiedNumber, type Inbox } from './support/phone.js';
import type { Harness } from './support/harness.js';
import * as oidcClient from 'openid-client';
import { Browser, listeningHarness } from './support/oidc.js';
import { userCodeKey } from '../src/oidc/adapter.js';

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON as the tests read it
  body: any;
}

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const post = (url: string, body: unknown, headers: Record<string, string> = {}) => call('POST', url, body, headers);

/** How many rounds each race runs: a race lost by chance once is won in another. */
const ROUNDS = 2;

describe.skipIf(!postgresUrl)('two server processes on one PostgreSQL database: single use and limits (X4)', () => {
  let db: TestDatabase;
  let services: Services;
  let a: ServerProcess;
  let b: ServerProcess;
  let agentId: string;

  beforeAll(async () => {
    db = await openTestDatabase('postgres');
    // this process makes users and reads the audit; the two servers answer the attacker
    services = await createServices(testConfig(db), { warn: () => undefined });
    [a, b] = await Promise.all([startServer(cliEnv(db)), startServer(cliEnv(db))]);
    agentId = (await createUser(services, { role: 'client_services' })).id;
    // a new database migrated and two servers started: slow on a busy machine
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await services?.close();
    await db?.drop();
  });

  async function events(userId: string, event: string) {
    return (await services.audit.list({ userId, limit: 500 })).filter((e) => e.event === event);
  }

  async function oneTimePassword(username: string): Promise<string> {
    const verification = await services.helpDesk.verifyIdentity(agentId, username, { method: 'id_document' });
    const { temporaryPassword } = await services.helpDesk.resetPassword(agentId, username, { verificationId: verification.id });
    return temporaryPassword!;
  }

  it('A5, L4, X4: a one-time password from client services starts a login on each process at once; both answered right: exactly one session', async () => {
    const { user, card } = await createUserWithCard(services);
    for (let round = 0; round < ROUNDS; round++) {
      const password = await oneTimePassword(user.username);
      const starts = await Promise.all([a, b].map((s) => post(`${s.url}/api/v1/login`, { username: user.username, password, app: 'portal' })));
      expect(starts.map((s) => s.status)).toEqual([200, 200]);
      const done = await Promise.all(
        starts.map((start, i) =>
          post(
            `${[a, b][i]!.url}/api/v1/login/${start.body.id}`,
            { response: cardAnswer(card, start.body.challenge.question) },
            { 'x-claim-token': start.body.claimToken },
          ),
        ),
      );
      expect(done.filter((d) => d.status === 200)).toHaveLength(1);
      for (const d of done.filter((x) => x.status !== 200)) expect([d.status, d.body.error.code]).toEqual([410, 'FLOW_EXPIRED']);
    }
    expect(await events(user.id, 'login.succeeded')).toHaveLength(ROUNDS);
    expect((await events(user.id, 'login.flow_refused')).filter((e) => e.data.reason === 'one_time_password_used')).toHaveLength(ROUNDS);
  });

  it('A5, O1, X4: a user opted out of the second factor: the one-time password sent to both processes at once opens one trading session', async () => {
    const user = await createUser(services);
    await services.optOuts.optOut(user.id, { acknowledged: true, confirmation: user.username }, { actor: 'test' });
    for (let round = 0; round < ROUNDS; round++) {
      const password = await oneTimePassword(user.username);
      const results = await Promise.all(
        Array.from({ length: 4 }, (_, i) => post(`${[a, b][i % 2]!.url}/api/v1/login`, { username: user.username, password, app: 'trading' })),
      );
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      // those that passed the first factor before the winner opened its session, and those that came after it, alike
      for (const r of results.filter((x) => x.status !== 200)) expect([r.status, r.body.error.code]).toEqual([401, 'INVALID_CREDENTIALS']);
    }
    expect(await events(user.id, 'login.succeeded')).toHaveLength(ROUNDS);
    const live = await services.store.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).where('revoked_at', 'is', null).execute();
    expect(live).toHaveLength(1);
  });

  /** A user with a number on record and the mobile authenticator activated on `phone` (K1). */
  async function pushUser(phone: TestPhone) {
    const user = await createUser(services);
    await verifiedNumber({ services } as Harness, user.id);
    await phone.activate(user.username);
    return user;
  }

  const inbox: Inbox = {
    activationToken: async (username) => tokenIn(await services.notifier.list({ userId: (await services.users.getByUsername(username)).id })),
    tick: () => undefined,
  };

  it('K1, L4, X4: the activation token sent by SMS, proven by two phones on the two processes at once: exactly one phone proves it and is activated', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const user = await createUser(services);
      await verifiedNumber({ services } as Harness, user.id);
      const [phoneA, phoneB] = [new TestPhone(a.url, inbox), new TestPhone(b.url, inbox)];
      const { view, token } = await phoneA.tokenSent(user.username);
      const proofs = await Promise.allSettled([phoneA.prove(view, token), phoneB.prove(view, token)]);
      expect(proofs.filter((p) => p.status === 'fulfilled')).toHaveLength(1);
      const winner = proofs[0]!.status === 'fulfilled' ? phoneA : phoneB;
      const loser = winner === phoneA ? phoneB : phoneA;
      // the phone that lost the race cannot finish with its own keys; the winner can
      await expect(loser.finish(view)).rejects.toThrow();
      await winner.finish(view);
      const mobiles = (await services.devices.listForUser(user.id)).filter((d) => d.type === 'mobile' && d.state === 'active');
      expect(mobiles).toHaveLength(1);
      const audited = (await services.audit.list({ userId: user.id, limit: 500 })).map((e) => e.event);
      expect(audited.filter((e) => e === 'mobile.token_proven')).toHaveLength(1);
      expect(audited.filter((e) => e === 'mobile.activated')).toHaveLength(1);
    }
  });

  it('K3, K13, X4: the phone approves on one process and says "this was not me" on the other at once: one answer wins, the audit says which, once', async () => {
    const phoneA = new TestPhone(a.url, inbox);
    const user = await pushUser(phoneA);
    const phoneB = new TestPhone(b.url, inbox);
    phoneB.enrolments.set(user.username, phoneA.enrolments.get(user.username)!);
    for (let round = 0; round < ROUNDS; round++) {
      const start = await post(`${[a, b][round % 2]!.url}/api/v1/login`, { username: user.username, password: PASSWORD, app: 'portal' });
      expect(start.body.challenge.type).toBe('push');
      const request = await phoneA.request(user.username);
      const answers = await Promise.allSettled([phoneA.approve(request, start.body.challenge.number), phoneB.deny(request)]);
      expect(answers.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
      const flow = await services.store.db.selectFrom('login_flows').select('state').where('id', '=', start.body.id).executeTakeFirstOrThrow();
      expect(flow.state).toBe(answers[0]!.status === 'fulfilled' ? 'approved' : 'denied');
      const audited = (await services.audit.list({ userId: user.id, limit: 500 })).filter(
        (e) => ['login.push_approved', 'login.push_denied'].includes(e.event) && e.data.flowId === start.body.id,
      );
      expect(audited.map((e) => e.event)).toEqual([answers[0]!.status === 'fulfilled' ? 'login.push_approved' : 'login.push_denied']);
      // a deny silences unknown clients for a day (K13): start the next round from a clean slate
      await services.store.db.updateTable('login_flows').set({ state: 'failed' }).where('user_id', '=', user.id).where('state', '=', 'denied').execute();
    }
  });

  it('K13, X4 (decision 0026): 10 logins from an unknown client started on both processes at once ring the phone at most 5 times; the rest are withheld, audited', async () => {
    const phone = new TestPhone(a.url, inbox);
    const user = await pushUser(phone);
    const starts = await Promise.all(
      Array.from({ length: 10 }, (_, i) => post(`${[a, b][i % 2]!.url}/api/v1/login`, { username: user.username, password: PASSWORD, app: 'portal' })),
    );
    expect(starts.map((s) => s.status)).toEqual(Array(10).fill(200));
    const rang = starts.filter((s) => s.body.challenge.type === 'push');
    expect(rang.length).toBeLessThanOrEqual(5);
    const withheld = (await services.audit.list({ userId: user.id, limit: 500 })).filter((e) => e.event === 'login.push_withheld');
    expect(withheld).toHaveLength(10 - rang.length);
  });

  it('L4, X4: 20 login starts of one user spread over both processes at once: exactly 10 flows open, the others 429 TOO_MANY_FLOWS', async () => {
    const { user } = await createUserWithCard(services);
    let pending = Array.from({ length: 20 }, (_, i) => [a, b][i % 2]!);
    const answered: Reply[] = [];
    // L3: right passwords checked at the same moment may be deferred (429 TOO_MANY_ATTEMPTS, nothing counted): sent again
    for (let wave = 0; wave < 10 && pending.length > 0; wave++) {
      const results = await Promise.all(pending.map((s) => post(`${s.url}/api/v1/login`, { username: user.username, password: PASSWORD, app: 'portal' })));
      const deferred = results.map((r, i) => (r.body?.error?.code === 'TOO_MANY_ATTEMPTS' ? pending[i]! : null));
      answered.push(...results.filter((r) => r.body?.error?.code !== 'TOO_MANY_ATTEMPTS'));
      pending = deferred.filter((s): s is ServerProcess => s !== null);
    }
    expect(pending).toEqual([]);
    expect(answered.filter((s) => s.status === 200)).toHaveLength(10);
    for (const s of answered.filter((x) => x.status !== 200)) expect([s.status, s.body.error.code]).toEqual([429, 'TOO_MANY_FLOWS']);
    expect((await events(user.id, 'login.flow_refused')).filter((e) => e.data.reason === 'open')).toHaveLength(10);
  });

  it('S1, L4, X4: the right answer of a code card sent 10 times to both processes at once: exactly one login, audited once', async () => {
    const user = await createUser(services);
    await services.onlineCards.importSecurityCodeCard(user.id, `SCC-${user.username}`, REQUESTER_SCC_CODES, 'test');
    for (let round = 0; round < ROUNDS; round++) {
      const start = await post(`${a.url}/api/v1/login`, { username: user.username, password: PASSWORD, app: 'portal' });
      expect(start.body.challenge.type).toBe('index');
      const [i, j] = start.body.challenge.indexes as [number, number];
      const response = REQUESTER_SCC_CODES[i - 1]! + REQUESTER_SCC_CODES[j - 1]!;
      const claim = { 'x-claim-token': start.body.claimToken };
      const results = await Promise.all(Array.from({ length: 10 }, (_, k) => post(`${[a, b][k % 2]!.url}/api/v1/login/${start.body.id}`, { response }, claim)));
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      for (const r of results.filter((x) => x.status !== 200)) expect([401, 410, 429]).toContain(r.status);
      expect((await events(user.id, 'login.succeeded')).filter((e) => e.data.flowId === start.body.id)).toHaveLength(1);
    }
  });

  it('T5, X4: two staff members issue a temporary passcode to one caller at once, from a server command and another process: one stays active', async () => {
    const { user } = await createUserWithCard(services);
    const other = await createUser(services, { role: 'client_services' });
    const env = cliEnv(db);
    for (let round = 0; round < 2; round++) {
      const mine = await services.helpDesk.verifyIdentity(agentId, user.username, { method: 'id_document' });
      const theirs = await services.helpDesk.verifyIdentity(other.id, user.username, { method: 'id_document' });
      const [here, there] = await Promise.all([
        services.helpDesk.issueTemporaryPasscode(agentId, user.username, { verificationId: mine.id }),
        sls(['helpdesk', 'issue-passcode', '--staff', other.username, '--user', user.username, '--verification', theirs.id], env),
      ]);
      expect(here.passcode).toMatch(/^[A-Z0-9]{8}$/);
      expect(there.code, there.stderr).toBe(0);
      const active = (await services.devices.listForUser(user.id)).filter((d) => d.type === 'temp_passcode' && d.state === 'active');
      expect(active).toHaveLength(1);
    }
    expect(await events(user.id, 'helpdesk.temp_passcode_issued')).toHaveLength(4);
  });

  it('L4, L6, X4: 30 device changes of one login sent to both processes at once: 10 at most change it (each a new challenge to cycle), the others 409 FLOW_STATE', async () => {
    const { user } = await createUserWithCard(services);
    const { device: second } = await services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
    const start = await post(`${a.url}/api/v1/login`, { username: user.username, password: PASSWORD, app: 'portal' });
    expect(start.status).toBe(200);
    const claim = { 'x-claim-token': start.body.claimToken };
    const switches = await Promise.all(
      Array.from({ length: 30 }, (_, i) => post(`${[a, b][i % 2]!.url}/api/v1/login/${start.body.id}`, { device: second.id }, claim)),
    );
    expect(switches.filter((r) => r.status === 200)).toHaveLength(10);
    for (const r of switches.filter((x) => x.status !== 200)) expect([r.status, r.body.error.code]).toEqual([409, 'FLOW_STATE']);
    const flow = await services.store.db.selectFrom('login_flows').select('device_switches').where('id', '=', start.body.id).executeTakeFirstOrThrow();
    expect(flow.device_switches).toBe(10);
    expect((await events(user.id, 'login.device_switched')).filter((e) => e.data.flowId === start.body.id)).toHaveLength(10);
  });

  it('X5, X4 (decision 0017): 12 login starts from one address spread over two processes at once (counters in Redis when configured): 5 pass a limit of 5 a minute', async () => {
    const limited = cliEnv(db, { SLS_LIMIT_LOGIN: '5/1000', SLS_TRUST_PROXY: '127.0.0.1', ...(redisUrl ? { SLS_REDIS_URL: redisUrl } : {}) });
    const [c, d] = await Promise.all([startServer(limited), startServer(limited)]);
    try {
      // an address of its own: other suites counting in the same Redis never share its counter
      const address = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
      const from = { 'x-forwarded-for': address };
      const before = Date.now();
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => post(`${[c, d][i % 2]!.url}/api/v1/login`, { username: 'nobody', password: PASSWORD, app: 'portal' }, from)),
      );
      const after = Date.now();
      // a fixed window of a minute: a burst that began in one and ended in the next may be counted in each
      const windows = Math.floor(after / WINDOW_MS) - Math.floor(before / WINDOW_MS) + 1;
      const passed = results.filter((r) => r.body?.error?.code !== 'TOO_MANY_REQUESTS');
      if (windows === 1) expect(passed).toHaveLength(5);
      else expect(passed.length).toBeLessThanOrEqual(5 * windows);
      for (const r of passed) expect([r.status, r.body.error.code]).toEqual([401, 'INVALID_CREDENTIALS']);
    } finally {
      await Promise.all([c.stop(), d.stop()]);
    }
    // two more servers started: slow on a busy machine
  }, 120_000);

  it('W3, X4: withdrawals sent to both processes at once: exactly those that fit the daily limit are recorded; one reference is recorded once', async () => {
    const key = bearer((await services.apiKeys.create({ name: 'back office', scopes: ['withdrawals'] }, 'test')).key);
    const user = await createUser(services);
    await verifiedNumber({ services } as Harness, user.id); // SMS: USD 200,000 a day
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        post(`${[a, b][i % 2]!.url}/api/v1/withdrawals`, { account: user.accountNumber, amount: 15_000, currency: 'USD', reference: `x-${i}` }, key),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(13);
    for (const r of results.filter((x) => x.status !== 201)) expect([r.status, r.body.error.code]).toEqual([409, 'WITHDRAWAL_LIMIT_EXCEEDED']);
    const again = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        post(`${[a, b][i % 2]!.url}/api/v1/withdrawals`, { account: user.accountNumber, amount: 1_000, currency: 'USD', reference: 'once' }, key),
      ),
    );
    expect(new Set(again.map((r) => r.body.id)).size).toBe(1);
    const rows = await services.store.db.selectFrom('withdrawals').select('usd_cents').where('account_id', '=', user.accountId).execute();
    expect(rows.reduce((sum, r) => sum + Number(r.usd_cents), 0)).toBe(196_000_00);
    const recorded = (await services.audit.list({ limit: 1000 })).filter((e) => e.event === 'withdrawal.recorded' && e.data.account === user.accountNumber);
    expect(recorded).toHaveLength(14);
  });
});

describe.skipIf(!postgresUrl)('one user code of a device typed in two browsers, confirmed at once (RFC 8628, X4)', () => {
  let h: Harness;
  let issuer: string;
  let deviceConfig: oidcClient.Configuration;

  beforeAll(async () => {
    ({ h, issuer } = await listeningHarness('postgres'));
    const created = await h.services.oidc.clients.create(
      { name: 'Trading desktop', app: 'trading', redirectUris: [], public: true, deviceGrant: true },
      'test',
    );
    deviceConfig = await oidcClient.discovery(new URL(issuer), created.client.clientId, undefined, oidcClient.None(), {
      execute: [oidcClient.allowInsecureRequests],
    });
  });
  afterAll(async () => h?.close());

  const xsrfOf = (html: string) => /name="xsrf" value="([^"]+)"/.exec(html)![1]!;

  it('I1, L4, X4: a device code confirmed by two browsers at once goes on to one login: the other is told the code was used', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const { user_code: userCode } = await oidcClient.initiateDeviceAuthorization(deviceConfig, { scope: 'openid' });
      const browsers = [new Browser(issuer), new Browser(issuer)];
      const confirmations = await Promise.all(
        browsers.map(async (browser) => {
          const input = await browser.request('/oidc/device');
          const typed = await browser.request('/oidc/device', { form: { xsrf: xsrfOf(input.html), user_code: userCode } });
          expect(typed.status).toBe(200);
          return typed;
        }),
      );
      const confirmed = await Promise.all(
        browsers.map((browser, i) => browser.request('/oidc/device', { form: { xsrf: xsrfOf(confirmations[i]!.html), user_code: userCode, confirm: 'yes' } })),
      );
      expect(confirmed.filter((c) => c.location !== null)).toHaveLength(1);
      const refused = confirmed.find((c) => c.location === null)!;
      expect(refused.status).toBeLessThan(500);
      expect(refused.html).toContain('This code was already used.');
      // the refusal leaves the winner's confirmation as it was: in flight to its login, not failed
      const row = await h.services.store.db
        .selectFrom('oidc_artifacts')
        .select('payload')
        .where('model', '=', 'DeviceCode')
        .where('user_code', '=', userCodeKey(h.services.box, userCode.replace('-', '')))
        .executeTakeFirstOrThrow();
      expect(JSON.parse(row.payload)).toMatchObject({ inFlight: true });
      expect(JSON.parse(row.payload).error).toBeUndefined();
    }
  });
});
