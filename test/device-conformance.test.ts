/**
 * The device-kind conformance suite (issue 12 item 6): every registered
 * kind — the built-in ones and a test-only fake kind passed to the
 * composition root — runs through the same scenarios through the JSON API,
 * on SQLite and PostgreSQL:
 *
 * - issue: a login of a user holding only a device of the kind offers it and shows its prompt (L2);
 * - the right answer is accepted once (a session); in a new login it is refused (L4), or accepted
 *   again where the kind reuses it by design (T2: the temporary passcode is static);
 * - copies of the right answer sent at once on one flow: exactly one wins, nothing is counted (L4, L3);
 * - three wrong answers fail the flow (L2, L4); each is counted toward the lock (L3) with the same
 *   audit events on every kind, and at the threshold the user is locked, audited and told (N1).
 *
 * Each kind has a driver (test/support/kind-drivers.ts; the fake kind's is
 * here): a kind registered without one fails the suite. The fake kind needs
 * no edit under src/: it is a DeviceKind given to `createServices`.
 */
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECOND } from '../src/clock.js';
import { deviceKinds } from '../src/devices/registry.js';
import type { CheckResult, DeviceContext, DeviceKind } from '../src/devices/types.js';
import { DATABASES, PASSWORD, createUser, startHarness, wrongAnswer, type Harness } from './support/harness.js';
import { answer, bearer, get, startLogin, type ApiResponse, type Json } from './support/api.js';
import { smsUser } from './support/phone.js';
import { BUILT_IN_DRIVERS, type Holder, type KindDriver } from './support/kind-drivers.js';

const FAKE_TYPE = 'fake_token';
const FAKE_DIGITS = 8;

interface FakeSecret {
  key: string;
}

/** The fake token's display: a static HMAC of the challenge under the token's key, as 8 digits. */
function fakeTokenAnswer(key: string, question: string): string {
  const mac = createHmac('sha256', Buffer.from(key, 'hex')).update(question).digest();
  return String(mac.readUInt32BE(0) % 10 ** FAKE_DIGITS).padStart(FAKE_DIGITS, '0');
}

/**
 * A device kind of the test's own, given to the composition root: an
 * 8-digit challenge answered with a keyed HMAC of it. An accepted answer's
 * challenge is its replay key (L4).
 */
const fakeToken: DeviceKind = {
  type: FAKE_TYPE,
  strength: 30,
  temporary: false,
  withdrawalRow: { perDayUsd: 50_000, fiveBusinessDaysUsd: 150_000 },
  failureHints: ['hints.noSpaces'],
  async issueChallenge() {
    const question = String(randomInt(0, 10 ** FAKE_DIGITS)).padStart(FAKE_DIGITS, '0');
    return { prompt: { type: 'ocra', question, digits: FAKE_DIGITS }, verifier: { question } };
  },
  async checkResponse(ctx: DeviceContext, verifier: Record<string, unknown>, response: string): Promise<CheckResult> {
    const question = String(verifier.question);
    if (fakeTokenAnswer(ctx.secret<FakeSecret>().key, question) !== response) return { ok: false };
    return { ok: true, replayKeys: [`q:${question}`] };
  },
};

/** A fake token inserted for a user (the way a kind's own enrolment would: in a transaction, audited). */
async function addFakeToken(h: Harness, userId: string): Promise<{ deviceId: string; key: string }> {
  const key = randomBytes(32).toString('hex');
  const deviceId = await h.services.store.serialized('audit_log', async (trx) => {
    const id = await h.services.devices.insert(trx, {
      userId,
      type: FAKE_TYPE,
      state: 'active',
      label: 'Fake token',
      secret: { key } satisfies FakeSecret,
      activated: true,
    });
    await h.services.audit.append(trx, [{ event: 'device.added', actor: 'test', userId, data: { deviceId: id, type: FAKE_TYPE } }]);
    return id;
  });
  return { deviceId, key };
}

const fakeDriver: KindDriver = {
  prompt: 'ocra',
  singleUse: true,
  async holder(h) {
    const user = await createUser(h.services);
    const { deviceId, key } = await addFakeToken(h, user.id);
    return {
      user,
      deviceId,
      answerable: async (flow) => flow.challenge as Json,
      right: async (prompt) => fakeTokenAnswer(key, prompt.question),
      wrong: async (prompt) => wrongAnswer(fakeTokenAnswer(key, prompt.question)),
    };
  },
};

const DRIVERS: Record<string, KindDriver> = { ...BUILT_IN_DRIVERS, [FAKE_TYPE]: fakeDriver };

/** The kinds the composition root registers with the fake one (the registry createServices builds); checked against the services below. */
const REGISTERED = deviceKinds([fakeToken]).all.map((kind) => kind.type);

function driverOf(type: string): KindDriver {
  const driver = DRIVERS[type];
  if (!driver) throw new Error(`the device kind ${type} has no conformance driver (test/support/kind-drivers.ts)`);
  return driver;
}

/** The events of the answer protocol (flows/answers.ts) and of the first factor's lock: what every kind must record alike. */
const PROTOCOL_EVENTS = new Set([
  'login.password_failed',
  'login.second_factor_failed',
  'login.flow_exhausted',
  'login.locked',
  'login.refused_locked',
  'login.attempt_deferred',
  'login.succeeded',
]);

/** Copies of the right answer sent at once on one flow (more than the flow's 3 answers). */
const COPIES = 5;

describe.each(DATABASES)('device-kind conformance on %s', (db) => {
  let h: Harness;
  /** Per kind: its lock scenario's protocol events, for the comparison across kinds. */
  const sequences = new Map<string, string[]>();

  beforeAll(async () => {
    h = await startHarness(db, {}, { deviceKinds: [fakeToken] });
  });
  afterAll(async () => h.close());

  /** A new login (after 31 s, so that a code to the same number is sent again, M5, and is the newest): its flow. */
  async function login(holder: Holder, app: 'portal' | 'trading' = 'portal'): Promise<ApiResponse> {
    h.clock.advance(31 * SECOND);
    return startLogin(h.app, holder.user.username, PASSWORD, app);
  }

  /** The protocol's audit events of a user from `since`, oldest first, with their counts. */
  async function protocolEvents(userId: string, since: number): Promise<string[]> {
    const entries = (await h.services.audit.list({ userId, since, limit: 500 })).reverse();
    return entries
      .filter((e) => PROTOCOL_EVENTS.has(e.event))
      .map((e) => {
        const counts = ['attemptsLeft', 'failures'].filter((k) => k in e.data).map((k) => `${k}=${String(e.data[k])}`);
        return counts.length > 0 ? `${e.event}(${counts.join(',')})` : e.event;
      });
  }

  it('[ours] issue 12 conformance: every registered kind has a driver (a new kind must bring one), the fake kind included', () => {
    const registered = h.services.deviceKind.all.map((kind) => kind.type);
    expect(registered).toEqual(REGISTERED);
    expect(registered).toContain(FAKE_TYPE);
    expect(registered.filter((type) => !DRIVERS[type])).toEqual([]);
  });

  it('[ours] issue 12 conformance: a kind passed to the composition root logs in end to end through the JSON API (portal and trading)', async () => {
    const user = await createUser(h.services);
    const { deviceId, key } = await addFakeToken(h, user.id);
    for (const app of ['portal', 'trading'] as const) {
      const start = await startLogin(h.app, user.username, PASSWORD, app);
      expect(start.status, JSON.stringify(start.body)).toBe(200);
      expect(start.body.device).toMatchObject({ id: deviceId, type: FAKE_TYPE, label: 'Fake token' });
      expect(start.body.challenge).toEqual({ type: 'ocra', question: expect.stringMatching(/^\d{8}$/), digits: FAKE_DIGITS });
      const done = await answer(h.app, start.body.id, fakeTokenAnswer(key, start.body.challenge.question));
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      expect(done.body.session.app).toBe(app);
      const session = await get(h.app, '/api/v1/session', bearer(done.body.session.token));
      expect(session.status).toBe(200);
      expect(session.body.device).toMatchObject({ id: deviceId, type: FAKE_TYPE });
    }
    const succeeded = (await h.services.audit.list({ userId: user.id, type: 'login.succeeded' })).map((e) => [e.data.app, e.data.deviceId, e.data.deviceType]);
    expect(succeeded.sort()).toEqual([
      ['portal', deviceId, FAKE_TYPE],
      ['trading', deviceId, FAKE_TYPE],
    ]);
  });

  it("[ours] issue 12 conformance, W1, D2: the fake kind's withdrawal row and strength are read from the kind", async () => {
    // an SMS user (strength 20) adds a fake token (30): it protects the user and sets the limits from its own row
    const user = await smsUser(h);
    const { key } = await addFakeToken(h, user.id);
    const start = await startLogin(h.app, user.username);
    expect(start.body.device.type).toBe(FAKE_TYPE);
    const done = await answer(h.app, start.body.id, fakeTokenAnswer(key, start.body.challenge.question));
    const session = bearer(done.body.session.token);
    expect((await get(h.app, '/api/v1/withdrawal-limits', session)).body).toEqual({ device: FAKE_TYPE, ...fakeToken.withdrawalRow });
    // a DSC+ (100) is stronger: it sets the user's limits; a session keeps those of what it proved (the fake token), never more
    await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
    expect(await h.services.withdrawals.limitsOfUser(user.id)).toEqual({ device: 'dscplus', perDayUsd: null, fiveBusinessDaysUsd: null });
    expect((await get(h.app, '/api/v1/withdrawal-limits', session)).body).toEqual({ device: FAKE_TYPE, ...fakeToken.withdrawalRow });
  });

  describe.each(REGISTERED)('kind %s', (type) => {
    it(`L2: a login of a user holding only a ${type} offers it and shows its prompt`, async () => {
      const driver = driverOf(type);
      const holder = await driver.holder(h);
      const start = await login(holder);
      expect(start.status, JSON.stringify(start.body)).toBe(200);
      expect(start.body).toMatchObject({ state: 'second_factor', device: { id: holder.deviceId, type }, attemptsLeft: 3 });
      expect(start.body.devices.map((d: Json) => d.id)).toEqual([holder.deviceId]);
      expect(start.body.challenge.type).toBe(driver.prompt);
      const prompt = await holder.answerable(start.body);
      expect(prompt).toBeTruthy();
    });

    const reusable = DRIVERS[type]?.singleUse === false;
    it(`L4${reusable ? ', T2' : ''}: the right ${type} answer is accepted once (a session); in a new login it is ${reusable ? 'accepted again (a static passcode, T2)' : 'refused (single use)'}`, async () => {
      const driver = driverOf(type);
      const holder = await driver.holder(h);
      const first = await login(holder);
      const response = await holder.right(await holder.answerable(first.body));
      const done = await answer(h.app, first.body.id, response);
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      expect(done.body.state).toBe('done');
      const session = await get(h.app, '/api/v1/session', bearer(done.body.session.token));
      expect(session.body.device).toMatchObject({ id: holder.deviceId, type });
      // the flow is over: the same answer to it opens nothing
      const again = await answer(h.app, first.body.id, response);
      expect(again.status).toBeGreaterThanOrEqual(400);
      expect(again.body.session).toBeUndefined();

      const second = await login(holder);
      await holder.answerable(second.body);
      const replayed = await answer(h.app, second.body.id, response);
      if (driver.singleUse) {
        expect([replayed.status, replayed.body.error?.code]).toEqual([401, 'LOGIN_FAILED']);
        expect(replayed.body.error.attemptsLeft).toBe(2);
      } else {
        expect(replayed.status, JSON.stringify(replayed.body)).toBe(200);
        expect(replayed.body.session.token).not.toBe(done.body.session.token);
      }
    });

    it(`L4, L3: ${COPIES} copies of the right ${type} answer sent at once on one flow: exactly one wins, and no failure is counted`, async () => {
      const driver = driverOf(type);
      const holder = await driver.holder(h);
      const start = await login(holder);
      const since = h.clock.now();
      const response = await holder.right(await holder.answerable(start.body));
      const results = await Promise.all(Array.from({ length: COPIES }, () => answer(h.app, start.body.id, response)));
      const won = results.filter((r) => r.status === 200);
      expect(won, JSON.stringify(results.map((r) => [r.status, r.body.error?.code]))).toHaveLength(1);
      expect(won[0]!.body.session.token).toBeTruthy();
      for (const lost of results.filter((r) => r.status !== 200)) expect(['FLOW_EXPIRED', 'TOO_MANY_ATTEMPTS']).toContain(lost.body.error.code);
      expect(await protocolEvents(holder.user.id, since)).toEqual(['login.succeeded']);
    });

    it(`L2, L3, N1: three wrong ${type} answers fail the flow; every failure counts toward the lock; at 10 the user is locked, audited and told — the same events on every kind`, async () => {
      const driver = driverOf(type);
      const holder = await driver.holder(h);
      h.clock.advance(SECOND);
      const since = h.clock.now();
      const threshold = h.services.config.policy.lockoutThreshold;
      expect(threshold).toBe(10);

      // three flows of three wrong answers: each flow fails (L2, L4); the right answer then opens nothing
      for (let flow = 0; flow < 3; flow++) {
        const start = await login(holder);
        expect(start.status, JSON.stringify(start.body)).toBe(200);
        const prompt = await holder.answerable(start.body);
        for (const attemptsLeft of [2, 1, 0]) {
          const wrong = await answer(h.app, start.body.id, await holder.wrong(prompt));
          expect([wrong.status, wrong.body.error?.code, wrong.body.error?.attemptsLeft]).toEqual([401, 'LOGIN_FAILED', attemptsLeft]);
          expect(wrong.body.error.hints.length).toBeGreaterThan(0);
        }
        const late = await answer(h.app, start.body.id, await holder.right(prompt));
        expect([late.status, late.body.error?.code]).toEqual([410, 'FLOW_EXPIRED']);
      }
      expect(await h.services.notifier.list({ userId: holder.user.id }).then((n) => n.filter((m) => m.template === 'userLocked'))).toEqual([]);

      // the tenth failure locks (L3), and the user is told (N1)
      const last = await login(holder);
      const prompt = await holder.answerable(last.body);
      const tenth = await answer(h.app, last.body.id, await holder.wrong(prompt));
      expect([tenth.status, tenth.body.error?.code]).toEqual([401, 'LOGIN_FAILED']);
      const notices = (await h.services.notifier.list({ userId: holder.user.id })).filter((n) => n.template === 'userLocked');
      expect(notices.length).toBeGreaterThan(0);
      // whatever is entered afterwards, even the right answer or the right password, is refused
      const right = await answer(h.app, last.body.id, await holder.right(prompt));
      expect([right.status, right.body.error?.code]).toEqual([423, 'LOCKED']);
      const refused = await login(holder);
      expect([refused.status, refused.body.error?.code]).toEqual([423, 'LOCKED']);

      const events = await protocolEvents(holder.user.id, since);
      const failed = (left: number, failures: number) => `login.second_factor_failed(attemptsLeft=${left},failures=${failures})`;
      expect(events).toEqual([
        ...[0, 1, 2].flatMap((flow) => [failed(2, flow * 3 + 1), failed(1, flow * 3 + 2), failed(0, flow * 3 + 3), 'login.flow_exhausted']),
        failed(2, threshold),
        'login.locked',
        'login.refused_locked',
        'login.refused_locked',
      ]);
      const locked = (await h.services.audit.list({ userId: holder.user.id, type: 'login.locked' }))[0]!;
      expect(locked.data.until).toEqual(expect.any(Number));
      sequences.set(type, events);
    });
  });

  it('[ours] issue 12 conformance, L3, N1: the failure and lock events are identical across every registered kind', () => {
    expect([...sequences.keys()].sort()).toEqual([...REGISTERED].sort());
    const [reference] = [...sequences.values()];
    for (const [type, events] of sequences) expect([type, events]).toEqual([type, reference]);
  });
});
