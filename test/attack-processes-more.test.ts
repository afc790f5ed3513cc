/**
 * Several server processes on one PostgreSQL database (X4), a second look:
 * the single-use things not raced by test/attack-processes (a push
 * approval's claim, a step-up's answer and its claim, the app's offline
 * challenge, a PIN change, a number's confirm code, a login's new code),
 * each sent to two real `sls serve` processes at once; and a process whose
 * clock is off by some seconds beside one whose clock is right: the lock
 * (L3) must not depend on which process kept which time.
 * PostgreSQL only; skipped without SLS_TEST_DATABASE_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServices, type Services } from '../src/services.js';
import { buildApp } from '../src/http/app.js';
import type { Clock } from '../src/clock.js';
import { CODE_TEMPLATES } from '../src/notify/notifier.js';
import {
  PASSWORD,
  cardAnswer,
  createUser,
  createUserWithCard,
  openTestDatabase,
  testConfig,
  wrongAnswer,
  type Harness,
  type TestDatabase,
} from './support/harness.js';
import { cliEnv, startServer, type ServerProcess } from './support/cli.js';
import { postgresUrl } from './support/environment.js';
import { answer, bearer, claimOf, loginSession, postJson, startLogin, withCard, type ApiResponse, tookNewToken } from './support/api.js';
import { TestPhone, newMobile, tokenIn, verifiedNumber, type Inbox } from './support/phone.js';
import { issuePasscode } from './support/staff.js';
import { BUILT_IN_DRIVERS } from './support/kind-drivers.js';
import { sharingPair } from './support/sharing.js';

/**
 * A server process as the helpers of test/support/api.ts see an app: `inject` sent over HTTP to its URL, so that
 * `postJson`, `loginSession`, `stepUp` … drive real processes.
 */
function remote(base: string): FastifyInstance {
  const inject = async (request: { method: string; url: string; payload?: unknown; headers?: Record<string, string> }) => {
    const res = await fetch(`${base}${request.url}`, {
      method: request.method,
      headers: request.headers ?? {},
      ...(request.payload === undefined ? {} : { body: JSON.stringify(request.payload) }),
    });
    const body = await res.text();
    return { statusCode: res.status, body, headers: Object.fromEntries(res.headers), json: () => JSON.parse(body) as unknown };
  };
  return { inject } as unknown as FastifyInstance;
}

/** How many rounds each race runs: a race lost by chance once is won in another. */
const ROUNDS = 2;
/** How many copies of one answer each race sends, spread over both processes. */
const COPIES = 10;

describe.skipIf(!postgresUrl)('two server processes on one PostgreSQL database: the single-use things not raced elsewhere (X4)', () => {
  let db: TestDatabase;
  let services: Services;
  let a: ServerProcess;
  let b: ServerProcess;
  let apps: [FastifyInstance, FastifyInstance];

  beforeAll(async () => {
    db = await openTestDatabase('postgres');
    services = await createServices(testConfig(db), { warn: () => undefined });
    [a, b] = await Promise.all([startServer(cliEnv(db)), startServer(cliEnv(db))]);
    apps = [remote(a.url), remote(b.url)];
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await services?.close();
    await db?.drop();
  });

  const either = (i: number) => apps[i % 2]!;

  async function events(userId: string, event: string) {
    return (await services.audit.list({ userId, limit: 1000 })).filter((e) => e.event === event);
  }

  const inbox: Inbox = {
    activationToken: async (username) => tokenIn(await services.notifier.list({ userId: (await services.users.getByUsername(username)).id })),
    tick: () => undefined,
  };

  /** A user with a number on record and the mobile authenticator activated on `phone` (K1). */
  async function pushUser(phone: TestPhone) {
    const user = await createUser(services);
    await verifiedNumber({ services } as Harness, user.id);
    await phone.activate(user.username);
    return user;
  }

  it('K3, L4, X4: the session of a login the phone approved, claimed 10 times on both processes at once: exactly one session, audited once', async () => {
    const phone = new TestPhone(a.url, inbox);
    const user = await pushUser(phone);
    for (let round = 0; round < ROUNDS; round++) {
      const start = await startLogin(either(round), user.username);
      expect(start.body.challenge.type).toBe('push');
      expect(await phone.approve(await phone.request(user.username), start.body.challenge.number)).toEqual({ state: 'approved' });
      const claims = await Promise.all(
        Array.from({ length: COPIES }, (_, i) => postJson(either(i), `/api/v1/login/${start.body.id}/session`, { claimToken: start.body.claimToken })),
      );
      expect(claims.filter((c) => c.status === 200)).toHaveLength(1);
      for (const c of claims.filter((x) => x.status !== 200)) expect([409, 410]).toContain(c.status);
      expect((await events(user.id, 'login.succeeded')).filter((e) => e.data.flowId === start.body.id)).toHaveLength(1);
      const live = await services.store.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).where('revoked_at', 'is', null).execute();
      expect(live).toHaveLength(round + 1);
    }
  });

  it("K4, L4, X4: the app's offline response to a login's challenge sent 10 times to both processes at once: exactly one session", async () => {
    const phone = new TestPhone(b.url, inbox);
    const user = await pushUser(phone);
    for (let round = 0; round < ROUNDS; round++) {
      const start = await startLogin(either(round), user.username);
      const offline = await postJson(either(round + 1), `/api/v1/login/${start.body.id}/offline`, {}, claimOf(start));
      expect([offline.status, offline.body.challenge.type]).toEqual([200, 'ocra']);
      const response = await phone.respond(user.username, offline.body.challenge.question);
      const results = await Promise.all(Array.from({ length: COPIES }, (_, i) => answer(either(i), start.body.id, response)));
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      for (const r of results.filter((x) => x.status !== 200)) expect([410, 429]).toContain(r.status);
      expect((await events(user.id, 'login.succeeded')).filter((e) => e.data.flowId === start.body.id)).toHaveLength(1);
    }
  });

  it("V1, L4, X4: a step-up's right answer sent 10 times to both processes at once: verified once, audited once", async () => {
    const { user, card } = await createUserWithCard(services);
    const headers = await loginSession(apps[0], user.username, withCard(card));
    for (let round = 0; round < ROUNDS; round++) {
      const started = await postJson(either(round), '/api/v1/step-up', { password: PASSWORD }, headers);
      expect(started.status).toBe(200);
      const response = cardAnswer(card, started.body.challenge.question);
      const results = await Promise.all(
        Array.from({ length: COPIES }, (_, i) => postJson(either(i), `/api/v1/step-up/${started.body.id}`, { response }, headers)),
      );
      expect(results.filter((r) => r.status === 200 && r.body.state === 'done')).toHaveLength(1);
      // V1 (decision 0042): the one that completed it replaced the session's token (a copy sent after it: 401)
      tookNewToken(headers, results.find((r) => r.status === 200 && r.body.state === 'done')!);
      for (const r of results.filter((x) => x.status !== 200)) expect([401, 409, 410, 429]).toContain(r.status);
      expect((await events(user.id, 'stepup.verified')).filter((e) => e.data.flowId === started.body.id)).toHaveLength(1);
    }
  });

  it('V1, K11, L4, X4: a step-up the phone approved, completed 10 times on both processes at once: verified once, audited once', async () => {
    const phone = new TestPhone(a.url, inbox);
    const user = await pushUser(phone);
    // a session of the phone's own login: its step-ups ring the phone (a recognised client, decision 0030)
    const start = await startLogin(apps[0], user.username);
    await phone.approve(await phone.request(user.username), start.body.challenge.number);
    const session = await postJson(apps[1], `/api/v1/login/${start.body.id}/session`, { claimToken: start.body.claimToken });
    const headers = bearer(session.body.session.token);
    for (let round = 0; round < ROUNDS; round++) {
      const started = await postJson(either(round), '/api/v1/step-up', { password: PASSWORD }, headers);
      expect(started.body.challenge.type).toBe('push');
      expect(await phone.approve(await phone.request(user.username), started.body.challenge.number)).toEqual({ state: 'approved' });
      const results = await Promise.all(
        Array.from({ length: COPIES }, (_, i) => postJson(either(i), `/api/v1/step-up/${started.body.id}/complete`, {}, headers)),
      );
      expect(results.filter((r) => r.status === 200 && r.body.state === 'done')).toHaveLength(1);
      // V1 (decision 0042): the one that completed it replaced the session's token (a copy sent after it: 401)
      tookNewToken(headers, results.find((r) => r.status === 200 && r.body.state === 'done')!);
      for (const r of results.filter((x) => x.status !== 200)) expect([401, 409, 410]).toContain(r.status);
      expect((await events(user.id, 'stepup.verified')).filter((e) => e.data.flowId === started.body.id)).toHaveLength(1);
    }
  });

  it('K13, V1, X4 (decision 0030): 10 step-ups of one session started on both processes at once ring the phone at most 5 times; the rest are withheld, audited', async () => {
    const phone = new TestPhone(b.url, inbox);
    const user = await pushUser(phone);
    const start = await startLogin(apps[1], user.username);
    await phone.approve(await phone.request(user.username), start.body.challenge.number);
    const headers = bearer((await postJson(apps[0], `/api/v1/login/${start.body.id}/session`, { claimToken: start.body.claimToken })).body.session.token);
    const steps = await Promise.all(Array.from({ length: 10 }, (_, i) => postJson(either(i), '/api/v1/step-up', { password: PASSWORD }, headers)));
    expect(steps.map((s) => s.status)).toEqual(Array(10).fill(200));
    // a newer request to the phone supersedes an older one (K13: its step-up fails), rung or withheld alike
    const withheld = (await events(user.id, 'login.push_withheld')).filter((e) => e.data.kind === 'step_up');
    // each step-up either rang the phone or was withheld: at most 5 rang
    expect(withheld.length).toBeGreaterThanOrEqual(5);
    expect(new Set(withheld.map((e) => e.data.flowId)).size).toBe(withheld.length);
  });

  it('C7, L4, X4: one PIN change answered on both processes at once, each copy with another new PIN: one PIN is set, audited once, and only it works', async () => {
    const user = await createUser(services);
    const { device, card } = await services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
    const headers = await loginSession(apps[0], user.username, withCard(card), { stepUp: true });
    const started = await postJson(apps[1], `/api/v1/devices/${device.id}/pin`, {}, headers);
    expect(started.status).toBe(200);
    const response = cardAnswer(card, started.body.challenge.question);
    const pins = ['2580', '3691'];
    const results = await Promise.all(
      Array.from({ length: COPIES }, (_, i) =>
        postJson(either(i), `/api/v1/devices/${device.id}/pin/${started.body.id}`, { response, newPin: pins[i % 2] }, headers),
      ),
    );
    const won = results.filter((r) => r.status === 200);
    expect(won).toHaveLength(1);
    expect((await events(user.id, 'device.pin_changed')).filter((e) => e.data.deviceId === device.id)).toHaveLength(1);
    // the winner's PIN answers a login; the other copy's does not
    const pin = pins[results.indexOf(won[0]!) % 2]!;
    const login = await startLogin(apps[0], user.username);
    expect((await answer(apps[1], login.body.id, cardAnswer(card, login.body.challenge.question, pin))).status).toBe(200);
  });

  it('M1, L4, X4: the confirm code of a new number sent 10 times to both processes at once: verified once, audited once', async () => {
    const { user, card } = await createUserWithCard(services);
    const headers = await loginSession(apps[0], user.username, withCard(card), { stepUp: true });
    const added = await postJson(apps[1], '/api/v1/phones', { country: 'FR', number: '699887766' }, headers);
    expect(added.status).toBe(201);
    const sends = await Promise.all(Array.from({ length: 6 }, (_, i) => postJson(either(i), `/api/v1/phones/${added.body.id}/verification`, {}, headers)));
    // M1: concurrent VERIFY presses send one code
    expect(sends.filter((s) => s.status === 200)).toHaveLength(1);
    for (const s of sends.filter((x) => x.status !== 200)) expect([s.status, s.body.error.code]).toEqual([429, 'SMS_TOO_SOON']);
    const [message] = (await services.notifier.list({ userId: user.id })).filter((n) => n.template === 'confirmCode');
    const code = /\b(\d{6})\b/.exec(message!.body)![1]!;
    const results = await Promise.all(
      Array.from({ length: COPIES }, (_, i) => postJson(either(i), `/api/v1/phones/${added.body.id}/confirmation`, { code }, headers)),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(await events(user.id, 'phone.verified')).toHaveLength(1);
  });

  it('D4, L4, X4: the answer that reactivates a suspended card sent 10 times to both processes at once: reactivated once, audited once', async () => {
    const agent = await createUser(services, { role: 'client_services' });
    for (let round = 0; round < ROUNDS; round++) {
      const user = await createUser(services);
      const { device, card } = await services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
      // T1: the card left at home: client services suspend it and issue a temporary passcode (a session of it)
      const { passcode } = await issuePasscode(services, agent.id, user.username);
      expect((await services.devices.get(device.id)).state).toBe('suspended');
      const login = await startLogin(apps[0], user.username);
      const headers = bearer((await answer(apps[1], login.body.id, passcode)).body.session.token);
      const started = await postJson(either(round), `/api/v1/devices/${device.id}/activation`, {}, headers);
      expect(started.status).toBe(200);
      const response = cardAnswer(card, started.body.challenge.question);
      const results = await Promise.all(
        Array.from({ length: COPIES }, (_, i) => postJson(either(i), `/api/v1/devices/${device.id}/activation/${started.body.id}`, { response }, headers)),
      );
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      for (const r of results.filter((x) => x.status !== 200)) expect([401, 409, 410, 429]).toContain(r.status);
      expect((await services.devices.get(device.id)).state).toBe('active');
      expect((await events(user.id, 'device.reactivated')).filter((e) => e.data.deviceId === device.id)).toHaveLength(1);
    }
  });

  it('H2, H3, X4: a sharing confirmed on both processes at once is requested once; two compliance officers deciding it at once on both processes, one approving and one rejecting: one decision stands, audited once', async () => {
    const h = { services, app: apps[0] } as unknown as Harness;
    const officers = await Promise.all([0, 1].map(() => createUserWithCard(services, '1234', { role: 'compliance' })));
    const officerHeaders = await Promise.all(officers.map((o, i) => loginSession(apps[i]!, o.user.username, withCard(o.card), { stepUp: true })));
    for (let round = 0; round < ROUNDS; round++) {
      // a requester in an account of their own: compliance approves (H3)
      const p = await sharingPair(h, 'other-account');
      const started = await postJson(apps[1], '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      const proven = await postJson(
        apps[0],
        `/api/v1/sharing/${started.body.id}/answer`,
        { response: cardAnswer(p.card, started.body.challenge.question) },
        p.headers,
      );
      expect(proven.status, JSON.stringify(proven.body)).toBe(200);
      const confirmations = await Promise.all(
        Array.from({ length: 6 }, (_, i) => postJson(either(i), `/api/v1/sharing/${started.body.id}/confirmation`, { disposition: 'keep' }, p.headers)),
      );
      expect(confirmations.filter((c) => c.status === 200).map((c) => c.body.state)).toEqual(['pending']);
      for (const c of confirmations.filter((x) => x.status !== 200)) expect(c.status).toBe(409);
      expect((await events(p.requester.id, 'sharing.requested')).filter((e) => e.data.sharingId === started.body.id)).toHaveLength(1);
      const decisions = await Promise.all(
        (['approve', 'reject'] as const).map((decision, i) =>
          postJson(apps[i]!, `/api/v1/helpdesk/sharing/${started.body.id}/decision`, { decision }, officerHeaders[i]!),
        ),
      );
      expect(decisions.filter((d) => d.status === 200)).toHaveLength(1);
      const lost = decisions.find((d) => d.status !== 200)!;
      expect([lost.status, lost.body.error.code]).toEqual([409, 'SHARING_STATE']);
      const stands = decisions.find((d) => d.status === 200)!.body.state;
      const row = await services.store.db.selectFrom('device_sharings').select('state').where('id', '=', started.body.id).executeTakeFirstOrThrow();
      expect(row.state).toBe(stands);
      const decided = (await services.audit.list({ userId: p.requester.id, limit: 500 })).filter(
        (e) => ['sharing.approved', 'sharing.rejected'].includes(e.event) && e.data.sharingId === started.body.id,
      );
      expect(decided.map((e) => e.event)).toEqual([stands === 'active' ? 'sharing.approved' : 'sharing.rejected']);
    }
  });

  it('M7, X4: two users who verified one number start 16 logins by SMS over both processes at once: the number gets 10 codes in the hour (their confirm codes included), no more; the rest refused, audited', async () => {
    const number = newMobile();
    const users = [await createUser(services), await createUser(services)];
    for (const user of users) await verifiedNumber({ services } as Harness, user.id, number);
    const starts = await Promise.all(Array.from({ length: 16 }, (_, i) => startLogin(either(i), users[i % 2]!.username)));
    expect(starts.map((s) => s.status)).toEqual(Array(16).fill(200));
    const e164 = (await services.phones.list(users[0]!.id))[0]!.e164;
    const codes = await services.store.db
      .selectFrom('notifications')
      .select('template')
      .where('recipient', '=', e164)
      .where('template', 'in', CODE_TEMPLATES)
      .execute();
    expect(codes.filter((c) => c.template === 'confirmCode')).toHaveLength(2);
    expect(codes).toHaveLength(10);
    const limited = (await Promise.all(users.map((u) => events(u.id, 'sms.rate_limited')))).flat();
    expect(limited).toHaveLength(8);
  });
});

/**
 * A server process whose clock is off by some seconds (`SKEW_MS`), beside a
 * real process whose clock is right, on one PostgreSQL database: this one runs
 * in the test's process (the services and app a server builds, with a clock
 * of its own), the other is `sls serve`. L3 counts consecutive failures: which
 * process recorded a success or a failure, and by which clock, must not
 * change what counts.
 */
describe.skipIf(!postgresUrl)('a server process whose clock is off by some seconds beside one whose clock is right (X4, L3)', () => {
  const SKEW_MS = 30_000;
  let db: TestDatabase;
  let right: ServerProcess;
  let rightApp: FastifyInstance;
  const skewed: { services: Services; app: FastifyInstance }[] = [];

  async function skewedProcess(offsetMs: number) {
    const clock: Clock = { now: () => Date.now() + offsetMs };
    const services = await createServices(testConfig(db), { clock, warn: () => undefined });
    const app = await buildApp(services, { logger: false });
    await app.ready();
    skewed.push({ services, app });
    return { services, app };
  }

  beforeAll(async () => {
    db = await openTestDatabase('postgres');
    right = await startServer(cliEnv(db));
    rightApp = remote(right.url);
  }, 120_000);

  afterAll(async () => {
    await right?.stop();
    for (const { app, services } of skewed) {
      await app.close();
      await services.close();
    }
    await db?.drop();
  });

  async function wrongPasswords(app: FastifyInstance, username: string, count: number): Promise<ApiResponse[]> {
    const results: ApiResponse[] = [];
    for (let i = 0; i < count; i++) results.push(await startLogin(app, username, `not ${PASSWORD}`));
    return results;
  }

  const statuses = (results: ApiResponse[]) => results.map((r) => r.status);

  it('L3, X4: a login completed on a process whose clock is ahead, then wrong passwords on a process whose clock is right: the 10th consecutive failure locks', async () => {
    const ahead = await skewedProcess(SKEW_MS);
    const { user, card } = await createUserWithCard(ahead.services);
    // the owner logs in on the process whose clock is ahead: the count starts again
    await loginSession(ahead.app, user.username, withCard(card));
    // a password guesser, on the process whose clock is right, within the seconds the clocks are apart
    const guesses = await wrongPasswords(rightApp, user.username, 12);
    expect(statuses(guesses)).toEqual([...Array(10).fill(401), 423, 423]);
    expect((await startLogin(rightApp, user.username)).status).toBe(423);
  });

  it('L3, X4: nine wrong passwords, then a login completed on a process whose clock is behind: the count starts again (nine more do not lock)', async () => {
    const behind = await skewedProcess(-SKEW_MS);
    const { user, card } = await createUserWithCard(behind.services);
    expect(statuses(await wrongPasswords(rightApp, user.username, 9))).toEqual(Array(9).fill(401));
    // the owner logs in on the process whose clock is behind: the nine failures before it no longer count
    await loginSession(behind.app, user.username, withCard(card));
    expect(statuses(await wrongPasswords(rightApp, user.username, 9))).toEqual(Array(9).fill(401));
    expect((await startLogin(rightApp, user.username)).status).toBe(200);
  });

  it("L4, D1, X4: a time-based token's code accepted on the process whose clock is right is refused on processes whose clock is ahead or behind, and the reverse", async () => {
    const [ahead, behind] = [await skewedProcess(SKEW_MS), await skewedProcess(-SKEW_MS)];
    const realClock = { now: () => Date.now() };
    for (const [first, others] of [
      [rightApp, [ahead.app, behind.app]],
      [ahead.app, [rightApp, behind.app]],
      [behind.app, [rightApp, ahead.app]],
    ] as const) {
      const holder = await BUILT_IN_DRIVERS.token_totp!.holder({ services: ahead.services, clock: realClock } as unknown as Harness);
      const login = await startLogin(first, holder.user.username);
      const code = await holder.right(login.body.challenge);
      expect((await answer(first, login.body.id, code)).status).toBe(200);
      for (const other of others) {
        const again = await startLogin(other, holder.user.username);
        expect((await answer(other, again.body.id, code)).status).toBe(401);
      }
    }
  });

  it('L3, L4, X4: wrong answers of one flow on a process whose clock is ahead and one whose clock is right: three at most are checked, the flow fails', async () => {
    const ahead = await skewedProcess(SKEW_MS);
    const { user, card } = await createUserWithCard(ahead.services);
    const start = await startLogin(rightApp, user.username);
    const wrong = wrongAnswer(cardAnswer(card, start.body.challenge.question));
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => answer(i % 2 ? ahead.app : rightApp, start.body.id, wrong)));
    expect(results.filter((r) => r.status === 401)).toHaveLength(3);
    const failed = (await ahead.services.audit.list({ userId: user.id, limit: 100 })).filter((e) => e.event === 'login.second_factor_failed');
    expect(failed).toHaveLength(3);
    expect((await ahead.services.lockout.status(user.username)).failures).toBe(3);
  });
});

/**
 * K3, X4: server processes on several machines, each with a data directory of
 * its own, share one PostgreSQL database. The app subscribes to Web Push with
 * the VAPID public key of the process it reached; a push sent by another
 * process is signed with that process's key, which the push service refuses
 * for that subscription. Started at once on a new database with Web Push on and
 * no keys configured, every process must push with one key pair.
 */
describe.skipIf(!postgresUrl)('server processes with data directories of their own on one PostgreSQL database: one Web Push identity (K3, X4)', () => {
  let db: TestDatabase;
  const servers: ServerProcess[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    db = await openTestDatabase('postgres');
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  /** The VAPID public key the app page of a process gives the app to subscribe with. */
  async function vapidKeyOf(server: ServerProcess): Promise<string> {
    const html = await (await fetch(`${server.url}/app`)).text();
    return /data-vapid-key="([^"]*)"/.exec(html)![1]!;
  }

  it('K3, X4: three processes, each with a data directory of its own, started at once on a new database with Web Push on and no keys configured, give the app one VAPID key; a fourth started later too', async () => {
    const start = () => {
      const dir = mkdtempSync(join(tmpdir(), 'sls-machine-'));
      dirs.push(dir);
      return startServer(cliEnv(db, { SLS_DATA_DIR: dir, SLS_PUSH_PROVIDER: 'web-push', SLS_VAPID_SUBJECT: 'mailto:ops@example.test' }));
    };
    servers.push(...(await Promise.all([start(), start(), start()])));
    servers.push(await start());
    const keys = await Promise.all(servers.map(vapidKeyOf));
    expect(keys[0]).toMatch(/^[A-Za-z0-9_-]{87}$/);
    expect(new Set(keys).size).toBe(1);
  }, 120_000);
});
