/**
 * The login API end to end (L1-L8, A3, C2, C3, X1-X3), through the real
 * HTTP stack, services and database.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Writable } from 'node:stream';
import { connect, type AddressInfo } from 'node:net';
import { DAY, HOUR, MINUTE } from '../src/clock.js';
import { buildApp } from '../src/http/app.js';
import { DATABASES, PASSWORD, cardAnswer, createUser, createUserWithCard, startHarness, uniqueUsername, wrongAnswer, type Harness } from './support/harness.js';
import { answer, bearer, claimOf, get, readLogin, postJson, startLogin, stepUp, withCard, type ApiResponse } from './support/api.js';
import { lockedPair, usernamesInEveryState } from './support/enumeration.js';
import { ARGON2_OPTIONS, hashPassword, verifyPassword } from '../src/crypto/password.js';
import { DUMMY_HASH } from '../src/flows/first-factor.js';

// L1: the real argon2id, counted (the same work for an unknown user as for a known one)
vi.mock('../src/crypto/password.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/crypto/password.js')>();
  return { ...real, hashPassword: vi.fn(real.hashPassword), verifyPassword: vi.fn(real.verifyPassword) };
});

let h: Harness;
beforeAll(async () => {
  h = await startHarness('sqlite');
});
afterAll(async () => {
  await h.close();
});

describe('first factor (L1, A3)', () => {
  it('L1: a wrong password gets "Invalid user name password combination"', async () => {
    const { user } = await createUserWithCard(h.services);
    const res = await startLogin(h.app, user.username, 'not the password');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: 'INVALID_CREDENTIALS', message: 'Invalid user name password combination' } });
  });

  it('L1: an unknown user gets exactly the same answer (no user enumeration)', async () => {
    const { user } = await createUserWithCard(h.services);
    const known = await startLogin(h.app, user.username, 'not the password');
    const unknown = await startLogin(h.app, uniqueUsername('ghost'), 'not the password');
    expect(unknown.status).toBe(known.status);
    expect(unknown.body).toEqual(known.body);
  });

  it('A3: a username with anything but letters and digits gets "BAD CHARACTER"', async () => {
    for (const username of ['bob!', 'al ice', 'a.b', 'ü', 'x@y', "o'hara"]) {
      const res = await startLogin(h.app, username);
      expect(res.status, username).toBe(400);
      expect(res.body.error).toEqual({ code: 'BAD_CHARACTER', message: 'BAD CHARACTER' });
    }
  });

  it('A3: usernames are case sensitive: the right name in upper case does not log in', async () => {
    const { user } = await createUserWithCard(h.services);
    const res = await startLogin(h.app, user.username.toUpperCase());
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('INVALID_CREDENTIALS');
  });

  it('L2: a user without an active device is told to contact client services', async () => {
    const user = await createUser(h.services);
    const res = await startLogin(h.app, user.username);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('NO_ACTIVE_DEVICE');
  });
});

describe('second factor with the DSC+ (L2, L4, L5, C2, C3)', () => {
  it("L2/C2/C3: password, then the 6-digit challenge, then the card's 8-digit response: logged in", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    expect(start.status).toBe(200);
    expect(start.body).toMatchObject({
      id: expect.stringMatching(/^flw_/),
      state: 'second_factor',
      app: 'portal',
      expiresAt: new Date(h.clock.now() + 5 * MINUTE).toISOString(),
      device: { type: 'dscplus' },
      challenge: { type: 'ocra', question: expect.stringMatching(/^\d{6}$/), digits: 8 },
      attemptsLeft: 3,
    });
    expect(start.body.devices).toHaveLength(1);
    const response = cardAnswer(card, start.body.challenge.question);
    expect(response).toMatch(/^\d{8}$/);
    const done = await answer(h.app, start.body.id, response);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id: start.body.id, state: 'done', session: { token: expect.any(String), app: 'portal' } });
    // the right answer used none of the three (issue 16: not "2 attempts left" after a correct first answer)
    expect(done.body.attemptsLeft).toBe(3);
    expect(Date.parse(done.body.session.expiresAt)).toBe(h.clock.now() + 12 * HOUR);
    const cookie = String(done.headers['set-cookie']);
    expect(cookie).toContain(`__Host-sls_session=${done.body.session.token}`);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/Secure/);
    expect(cookie).toMatch(/SameSite=Lax/);
    const session = await get(h.app, '/api/v1/session', bearer(done.body.session.token));
    expect(session.status).toBe(200);
    expect(session.body).toMatchObject({ app: 'portal', user: { username: user.username }, device: { type: 'dscplus' } });
  });

  it('C3: a wrong PIN on the card gives a wrong response: "Login failed"', async () => {
    const { user, card } = await createUserWithCard(h.services, '1234');
    const start = await startLogin(h.app, user.username);
    const res = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question, '9999'));
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('LOGIN_FAILED');
  });

  it('L2/L5: a wrong response gets "Login failed" with the hint that codes have no spaces', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    const right = cardAnswer(card, start.body.challenge.question);
    const res = await answer(h.app, start.body.id, `${right.slice(0, 4)} ${right.slice(4)}`);
    expect(res.status).toBe(401);
    expect(res.body.error).toMatchObject({ code: 'LOGIN_FAILED', message: 'Login failed', attemptsLeft: 2 });
    expect(res.body.error.hints).toEqual(['Security card and device codes contain no spaces between the characters.']);
  });

  it('L4: at most 3 wrong answers, then the flow is used up, even for the right answer', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    const right = cardAnswer(card, start.body.challenge.question);
    for (const left of [2, 1, 0]) {
      const res = await answer(h.app, start.body.id, wrongAnswer(right));
      expect(res.status).toBe(401);
      expect(res.body.error.attemptsLeft).toBe(left);
    }
    const late = await answer(h.app, start.body.id, right);
    expect(late.status).toBe(410);
    expect(late.body.error).toEqual({ code: 'FLOW_EXPIRED', message: 'The passcode has expired. Please start over.' });
    expect((await readLogin(h.app, start.body.id)).body.state).toBe('failed');
  });

  it('L4: a challenge is valid for 5 minutes; after that, start over', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    h.clock.advance(5 * MINUTE);
    const res = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(res.status).toBe(410);
    expect(res.body.error.code).toBe('FLOW_EXPIRED');
    expect((await readLogin(h.app, start.body.id)).body).toMatchObject({ state: 'expired', challenge: null });
  });

  it('L4: an accepted response cannot be replayed', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    const right = cardAnswer(card, start.body.challenge.question);
    expect((await answer(h.app, start.body.id, right)).status).toBe(200);
    const replay = await answer(h.app, start.body.id, right);
    expect(replay.status).toBe(410);
  });

  it('L4: challenges already answered on a card are never issued again', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const [device] = await h.services.devices.listForUser(user.id);
    const start = await startLogin(h.app, user.username);
    expect((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).status).toBe(200);
    expect(await h.services.devices.wasUsed(device!.id, `q:${start.body.challenge.question}`)).toBe(true);
  });
});

describe.each(DATABASES)('single use under concurrency on %s (L4)', (dbName) => {
  let c: Harness;
  beforeAll(async () => {
    c = await startHarness(dbName);
  });
  afterAll(async () => {
    await c.close();
  });

  it('L4: the same correct response submitted 8 times at once: exactly one wins', async () => {
    const { user, card } = await createUserWithCard(c.services);
    const start = await startLogin(c.app, user.username);
    const right = cardAnswer(card, start.body.challenge.question);
    const results = await Promise.all(Array.from({ length: 8 }, () => answer(c.app, start.body.id, right)));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    for (const s of statuses.filter((x) => x !== 200)) expect([401, 410]).toContain(s);
    const sessions = await c.services.store.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute();
    expect(sessions).toHaveLength(1);
  });

  it('L3: 30 concurrent wrong passwords: exactly 10 are checked; the rest are deferred while those are in flight (429) or refused as LOCKED', async () => {
    const { user } = await createUserWithCard(c.services);
    const results = await Promise.all(Array.from({ length: 30 }, () => startLogin(c.app, user.username, 'wrong password')));
    const counts = { 401: 0, 423: 0, 429: 0 } as Record<number, number>;
    for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
    expect(counts[401]).toBe(10);
    expect(counts[423]! + counts[429]!).toBe(20);
    for (const r of results.filter((r) => r.status === 429)) {
      expect(r.body.error.code).toBe('TOO_MANY_ATTEMPTS');
      expect(r.headers['retry-after']).toBe('1');
    }
    expect((await startLogin(c.app, user.username)).status).toBe(423);
    const checked = await c.services.audit.list({ username: user.username, limit: 100 });
    expect(checked.filter((e) => e.event === 'login.password_failed')).toHaveLength(10);
    expect(checked.filter((e) => e.event === 'login.locked')).toHaveLength(1);
  });

  it('L3, L4: 30 wrong card responses at once over 10 flows (each answer its own transaction on SQLite, decision 0019): exactly 10 are counted, then LOCKED; a right one after is refused', async () => {
    const { user, card } = await createUserWithCard(c.services);
    const flows = [];
    for (let i = 0; i < 10; i++) flows.push((await startLogin(c.app, user.username)).body);
    const wrong = flows.flatMap((flow) => Array.from({ length: 3 }, () => answer(c.app, flow.id, wrongAnswer(cardAnswer(card, flow.challenge.question)))));
    const results = await Promise.all(wrong);
    const counts: Record<number, number> = {};
    for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
    // 401: counted; 423: locked (that flow failed with it); 429: deferred while others were in flight; 410: its flow failed meanwhile
    expect(counts[401]).toBe(10);
    expect((counts[423] ?? 0) + (counts[429] ?? 0) + (counts[410] ?? 0)).toBe(20);
    const entries = await c.services.audit.list({ username: user.username, limit: 200 });
    expect(entries.filter((e) => e.event === 'login.second_factor_failed')).toHaveLength(10);
    expect(entries.filter((e) => e.event === 'login.locked')).toHaveLength(1);
    expect((await c.services.lockout.status(user.username)).failures).toBe(10);
    // nothing left in flight: every attempt was counted or rolled back
    const pending = await c.services.store.db.selectFrom('login_failures').select('id').where('state', '=', 'pending').execute();
    expect(pending).toHaveLength(0);
    for (const flow of flows) expect([410, 423]).toContain((await answer(c.app, flow.id, cardAnswer(card, flow.challenge.question))).status);
  });
});

describe('lockout (L3)', () => {
  it('L3: 10 consecutive failures lock the user; the correct credentials are then refused', async () => {
    const { user, card } = await createUserWithCard(h.services);
    for (let i = 0; i < 10; i++) {
      const res = await startLogin(h.app, user.username, `wrong ${i}`);
      expect(res.status).toBe(401);
      h.clock.advance(MINUTE);
    }
    const refused = await startLogin(h.app, user.username);
    expect(refused.status).toBe(423);
    expect(refused.body.error.code).toBe('LOCKED');
    expect(refused.body.error.message).toMatch(/24 hours after the last failed attempt/);
    // 24 hours after the last failure (10 minutes ago, the clock having moved 1 minute after it)
    h.clock.advance(DAY - 2 * MINUTE);
    expect((await startLogin(h.app, user.username)).status).toBe(423);
    h.clock.advance(MINUTE);
    const start = await startLogin(h.app, user.username);
    expect(start.status).toBe(200);
    expect((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).status).toBe(200);
  });

  it('L3: failures of the second factor count too', async () => {
    const { user, card } = await createUserWithCard(h.services);
    for (let flow = 0; flow < 3; flow++) {
      const start = await startLogin(h.app, user.username);
      const right = cardAnswer(card, start.body.challenge.question);
      for (let i = 0; i < 3; i++) expect((await answer(h.app, start.body.id, wrongAnswer(right))).status).toBe(401);
    }
    expect((await startLogin(h.app, user.username, 'wrong')).status).toBe(401); // the tenth
    expect((await startLogin(h.app, user.username)).status).toBe(423);
    const events = (await h.services.audit.list({ username: user.username, limit: 50 })).map((e) => e.event);
    expect(events).toContain('login.locked');
    expect(events).toContain('login.refused_locked');
  });

  it('L3: a complete successful login resets the count', async () => {
    const { user, card } = await createUserWithCard(h.services);
    for (let i = 0; i < 9; i++) await startLogin(h.app, user.username, 'wrong');
    const start = await startLogin(h.app, user.username);
    expect((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).status).toBe(200);
    for (let i = 0; i < 9; i++) expect((await startLogin(h.app, user.username, 'wrong')).status).toBe(401);
    expect((await startLogin(h.app, user.username)).status).toBe(200);
  });

  it('L3: a lock during an open flow refuses even the right response', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    for (let i = 0; i < 10; i++) await startLogin(h.app, user.username, 'wrong');
    const res = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(res.status).toBe(423);
  });

  it('L3/L1: an unknown username locks exactly like a real one (no enumeration through the lock)', async () => {
    const ghost = uniqueUsername('ghost');
    const { user } = await createUserWithCard(h.services);
    for (let i = 0; i < 10; i++) {
      const [a, b] = await Promise.all([startLogin(h.app, ghost, 'wrong'), startLogin(h.app, user.username, 'wrong')]);
      expect(a.status).toBe(b.status);
      expect(a.body).toEqual(b.body);
    }
    const [a, b] = await Promise.all([startLogin(h.app, ghost), startLogin(h.app, user.username)]);
    expect(a.status).toBe(423);
    expect(a.body).toEqual(b.body);
  });
});

describe('several devices: M2FS (L6)', () => {
  it('L6: the user chooses among active devices; the last used is offered first', async () => {
    const { user, card: first } = await createUserWithCard(h.services, '1111');
    const { card: second, device: secondDevice } = await h.services.devices.addDscPlus({ userId: user.id, pin: '2222' }, 'test');
    const start = await startLogin(h.app, user.username);
    expect(start.body.devices).toHaveLength(2);
    const firstDeviceId = start.body.device.id;
    const other = start.body.devices.find((d: { id: string }) => d.id !== firstDeviceId);
    expect(other.id).toBe(secondDevice.id);

    const switched = await postJson(h.app, `/api/v1/login/${start.body.id}`, { device: other.id }, claimOf(start));
    expect(switched.status).toBe(200);
    expect(switched.body).toMatchObject({ state: 'second_factor', device: { id: other.id }, challenge: { type: 'ocra' } });
    // the old card's answer to the new challenge is wrong; the second card's is right
    const question = switched.body.challenge.question;
    expect(cardAnswer(first, question)).not.toBe(cardAnswer(second, question));
    expect((await answer(h.app, start.body.id, cardAnswer(second, question))).status).toBe(200);

    const next = await startLogin(h.app, user.username);
    expect(next.body.device.id).toBe(secondDevice.id);
    expect(next.body.devices[0].id).toBe(secondDevice.id);
  });

  it("L6: switching to a device that is not the user's is refused", async () => {
    const { user } = await createUserWithCard(h.services);
    const { user: stranger } = await createUserWithCard(h.services);
    const [strangerDevice] = await h.services.devices.listForUser(stranger.id);
    const start = await startLogin(h.app, user.username);
    const res = await postJson(h.app, `/api/v1/login/${start.body.id}`, { device: strangerDevice!.id }, claimOf(start));
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('DEVICE_NOT_FOUND');
  });
});

describe('flows and sessions (L7, L8)', () => {
  it('L7: a flow can be read back; an unknown flow is 404', async () => {
    const { user } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username, PASSWORD, 'trading');
    const read = await readLogin(h.app, start.body.id);
    expect(read.status).toBe(200);
    // the same flow, except the claim token (K3), which only the login's start gives
    const { claimToken, ...flow } = start.body;
    expect(claimToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(read.body).toEqual(flow);
    expect((await get(h.app, '/api/v1/login/flw_aaaaaaaaaaaaaaaaaaaaaaaaaa')).body.error.code).toBe('FLOW_NOT_FOUND');
    expect((await get(h.app, '/api/v1/login/not-a-flow')).status).toBe(404);
  });

  async function login(app: 'portal' | 'trading' = 'portal') {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username, PASSWORD, app);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    return { user, card, token: done.body.session.token as string };
  }

  it('L8: portal sessions end after 30 minutes idle', async () => {
    const { token } = await login('portal');
    h.clock.advance(20 * MINUTE);
    expect((await get(h.app, '/api/v1/session', bearer(token))).status).toBe(200);
    h.clock.advance(20 * MINUTE);
    expect((await get(h.app, '/api/v1/session', bearer(token))).status).toBe(200);
    h.clock.advance(30 * MINUTE);
    const res = await get(h.app, '/api/v1/session', bearer(token));
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('UNAUTHENTICATED');
    expect(res.headers['www-authenticate']).toBe('Bearer');
  });

  it('L8: portal sessions last 12 hours at most, even when active', async () => {
    const { token } = await login('portal');
    for (let i = 0; i < 47; i++) {
      h.clock.advance(15 * MINUTE);
      expect((await get(h.app, '/api/v1/session', bearer(token))).status).toBe(200);
    }
    h.clock.advance(15 * MINUTE);
    expect((await get(h.app, '/api/v1/session', bearer(token))).status).toBe(401);
  });

  it('L8: trading sessions last 12 hours without an idle limit', async () => {
    const { token } = await login('trading');
    h.clock.advance(11 * HOUR);
    expect((await get(h.app, '/api/v1/session', bearer(token))).body.app).toBe('trading');
    h.clock.advance(HOUR);
    expect((await get(h.app, '/api/v1/session', bearer(token))).status).toBe(401);
  });

  it('L8: logout ends the session server-side; each login gets a new session', async () => {
    const { user, card, token } = await login();
    const start = await startLogin(h.app, user.username);
    const second = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(second.body.session.token).not.toBe(token);
    const a = await get(h.app, '/api/v1/session', bearer(token));
    const b = await get(h.app, '/api/v1/session', bearer(second.body.session.token));
    expect(a.body.id).not.toBe(b.body.id);

    const out = await postJson(h.app, '/api/v1/logout', undefined, bearer(token));
    expect(out.status).toBe(204);
    expect((await get(h.app, '/api/v1/session', bearer(token))).status).toBe(401);
    expect((await get(h.app, '/api/v1/session', bearer(second.body.session.token))).status).toBe(200);
    expect((await postJson(h.app, '/api/v1/logout', undefined, bearer(token))).status).toBe(401);
  });

  it('L8: the session cookie works, and a cross-site logout with it is refused (CSRF)', async () => {
    const { token } = await login();
    const cookie = { cookie: `__Host-sls_session=${token}` };
    expect((await get(h.app, '/api/v1/session', cookie)).status).toBe(200);
    const forged = await postJson(h.app, '/api/v1/logout', undefined, { ...cookie, origin: 'https://evil.example' });
    expect(forged.status).toBe(403);
    expect(forged.body.error.code).toBe('CSRF_FAILED');
    expect((await get(h.app, '/api/v1/session', cookie)).status).toBe(200);
    const own = await postJson(h.app, '/api/v1/logout', undefined, { ...cookie, origin: 'http://localhost:80', host: 'localhost:80' });
    expect(own.status).toBe(204);
    expect(String(own.headers['set-cookie'])).toMatch(/__Host-sls_session=;/);
  });

  it('L8, X7: behind a proxy that rewrites Host, a request from the configured public URL is our own; another origin is still refused', async () => {
    const proxied = await startHarness('sqlite', { publicUrl: 'https://login.broker.example' });
    try {
      const { user, card } = await createUserWithCard(proxied.services);
      const start = await startLogin(proxied.app, user.username);
      const { token } = (await answer(proxied.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session;
      const cookie = { cookie: `__Host-sls_session=${token}`, host: '10.0.0.5:3000' };
      const forged = await postJson(proxied.app, '/api/v1/logout', undefined, { ...cookie, origin: 'https://evil.example' });
      expect([forged.status, forged.body.error.code]).toEqual([403, 'CSRF_FAILED']);
      expect((await postJson(proxied.app, '/api/v1/logout', undefined, { ...cookie, origin: 'https://login.broker.example' })).status).toBe(204);
    } finally {
      await proxied.close();
    }
  });
});

describe('bad input gets a clear 4xx error, never a 500 (X3)', () => {
  const cases: [string, () => Promise<{ status: number; body: { error?: { code: string; message: string } } }>, number, string][] = [
    [
      'malformed JSON',
      () => h.app.inject({ method: 'POST', url: '/api/v1/login', payload: '{"username":', headers: { 'content-type': 'application/json' } }).then(wrap),
      400,
      'MALFORMED_JSON',
    ],
    [
      'empty JSON body',
      () => h.app.inject({ method: 'POST', url: '/api/v1/login', payload: '', headers: { 'content-type': 'application/json' } }).then(wrap),
      400,
      'VALIDATION_ERROR',
    ],
    ['a JSON string', () => postJson(h.app, '/api/v1/login', '"alice"'), 400, 'VALIDATION_ERROR'],
    [
      'null',
      () => h.app.inject({ method: 'POST', url: '/api/v1/login', payload: 'null', headers: { 'content-type': 'application/json' } }).then(wrap),
      400,
      'VALIDATION_ERROR',
    ],
    [
      'invalid UTF-8',
      () =>
        h.app
          .inject({ method: 'POST', url: '/api/v1/login', payload: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), headers: { 'content-type': 'application/json' } })
          .then(wrap),
      400,
      'MALFORMED_JSON',
    ],
    ['a JSON array', () => postJson(h.app, '/api/v1/login', [1, 2]), 400, 'VALIDATION_ERROR'],
    ['wrong types', () => postJson(h.app, '/api/v1/login', { username: 12, password: true, app: 'portal' }), 400, 'VALIDATION_ERROR'],
    ['a missing field', () => postJson(h.app, '/api/v1/login', { username: 'alice', password: 'x' }), 400, 'VALIDATION_ERROR'],
    ['an unknown app', () => postJson(h.app, '/api/v1/login', { username: 'alice', password: 'x', app: 'bank' }), 400, 'VALIDATION_ERROR'],
    ['an empty username', () => postJson(h.app, '/api/v1/login', { username: '', password: 'x', app: 'portal' }), 400, 'VALIDATION_ERROR'],
    ['a huge body', () => postJson(h.app, '/api/v1/login', { username: 'a', password: 'x'.repeat(20_000), app: 'portal' }), 413, 'PAYLOAD_TOO_LARGE'],
    [
      'form encoding',
      () =>
        h.app
          .inject({ method: 'POST', url: '/api/v1/login', payload: 'username=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
          .then(wrap),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'prototype pollution',
      () =>
        h.app
          .inject({
            method: 'POST',
            url: '/api/v1/login',
            payload: '{"__proto__":{"x":1},"username":"a","password":"b","app":"portal"}',
            headers: { 'content-type': 'application/json' },
          })
          .then(wrap),
      400,
      'MALFORMED_JSON',
    ],
    [
      'both response and device',
      () => postJson(h.app, '/api/v1/login/flw_aaaaaaaaaaaaaaaaaaaaaaaaaa', { response: '1', device: 'x' }),
      400,
      'VALIDATION_ERROR',
    ],
    ['neither response nor device', () => postJson(h.app, '/api/v1/login/flw_aaaaaaaaaaaaaaaaaaaaaaaaaa', {}), 400, 'VALIDATION_ERROR'],
    ['a numeric response', () => postJson(h.app, '/api/v1/login/flw_aaaaaaaaaaaaaaaaaaaaaaaaaa', { response: 12345678 }), 400, 'VALIDATION_ERROR'],
    ['an overlong response', () => postJson(h.app, '/api/v1/login/flw_aaaaaaaaaaaaaaaaaaaaaaaaaa', { response: '1'.repeat(65) }), 400, 'VALIDATION_ERROR'],
    ['an unknown flow', () => postJson(h.app, '/api/v1/login/flw_aaaaaaaaaaaaaaaaaaaaaaaaaa', { response: '12345678' }), 404, 'FLOW_NOT_FOUND'],
    ['an overlong flow id', () => readLogin(h.app, 'x'.repeat(300)), 404, 'NOT_FOUND'],
    ['an unknown route', () => get(h.app, '/api/v1/nothing'), 404, 'NOT_FOUND'],
    ['a malformed bearer token', () => get(h.app, '/api/v1/session', { authorization: 'Bearer <script>' }), 401, 'UNAUTHENTICATED'],
    ['a basic auth header', () => get(h.app, '/api/v1/session', { authorization: 'Basic YTpi' }), 401, 'UNAUTHENTICATED'],
  ];

  function wrap(raw: { statusCode: number; json: () => unknown }) {
    return { status: raw.statusCode, body: raw.json() as { error?: { code: string; message: string } } };
  }

  it.each(cases)('X3: %s', async (_name, request, status, code) => {
    const res = await request();
    expect(res.status).toBe(status);
    expect(res.body.error?.code).toBe(code);
    expect(res.body.error?.message.length).toBeGreaterThan(0);
  });

  /** Bytes written to the listening server as they are (no client would send them), and its whole answer. */
  async function raw(bytes: string): Promise<string> {
    if (!h.app.server.listening) await h.app.listen({ port: 0, host: '127.0.0.1' });
    const socket = connect((h.app.server.address() as AddressInfo).port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    socket.write(bytes);
    await new Promise((resolve) => socket.once('close', resolve));
    return answer;
  }

  it.each([
    ['a NUL in the path', 'GET /api/v1/health\0 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a Content-Length that is not a number', 'POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n'],
    ['broken chunked encoding', 'POST /api/v1/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
  ])('X3: not even HTTP (%s): 400 with the error shape of every other answer', async (_name, bytes) => {
    const answer = await raw(bytes);
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('MALFORMED_REQUEST');
    expect(body.error.message).toContain('not valid HTTP');
  });
});

describe('languages, audit, logs, OpenAPI (X1, X2)', () => {
  it('X2: error messages follow Accept-Language (French, Traditional Chinese)', async () => {
    const fr = await startLogin(h.app, uniqueUsername(), 'wrong', 'portal', { 'accept-language': 'fr-CA,fr;q=0.9' });
    expect(fr.body.error.message).toBe("Combinaison nom d'utilisateur / mot de passe non valide");
    const zh = await startLogin(h.app, uniqueUsername(), 'wrong', 'portal', { 'accept-language': 'zh-TW' });
    expect(zh.body.error.message).toBe('用戶名與密碼組合無效');
    expect(fr.body.error.code).toBe(zh.body.error.code);
  });

  it('X1: logins, failures and locks are audited, and the chain verifies', async () => {
    const { user, card } = await createUserWithCard(h.services);
    await startLogin(h.app, user.username, 'wrong');
    const start = await startLogin(h.app, user.username);
    await answer(h.app, start.body.id, wrongAnswer(cardAnswer(card, start.body.challenge.question)));
    await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    const events = (await h.services.audit.list({ username: user.username })).map((e) => e.event).reverse();
    expect(events).toEqual(['user.created', 'device.added', 'login.password_failed', 'login.second_factor_failed', 'login.succeeded']);
    expect((await h.services.audit.verify()).ok).toBe(true);
  });

  it('nothing secret in logs: passwords, responses and tokens never appear', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(String(chunk));
        callback();
      },
    });
    const app = await buildApp(h.services, { logger: { level: 'trace', stream } });
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(app, user.username);
    const response = cardAnswer(card, start.body.challenge.question);
    const done = await answer(app, start.body.id, response);
    await get(app, '/api/v1/session', bearer(done.body.session.token));
    await app.close();
    const log = lines.join('');
    expect(log.length).toBeGreaterThan(0);
    for (const secret of [PASSWORD, response, done.body.session.token, card.seed]) expect(log).not.toContain(secret);
  });

  it('the OpenAPI description is served and covers the contract', async () => {
    const res = await get(h.app, '/api/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toMatch(/^3\./);
    expect(Object.keys(res.body.paths)).toEqual(expect.arrayContaining(['/api/v1/login', '/api/v1/login/{flowId}', '/api/v1/session', '/api/v1/logout']));
    expect(res.body.paths['/api/v1/login'].post.responses).toHaveProperty('423');
  });
});

describe.each(DATABASES)('no user enumeration at any door without a session (L1, L3, X5) on %s', (database) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(database);
  });
  afterAll(async () => h?.close());

  /** What a client sees of an answer, but its request's own id and date. */
  const seen = (res: ApiResponse) => {
    const { 'x-request-id': _id, date: _date, ...headers } = res.headers;
    return { status: res.status, headers, body: res.raw.body.replace(/"requestId":"[^"]*"/, '') };
  };
  const doors = (app: Harness['app']): Record<string, (username: string, password: string) => Promise<ApiResponse>> => ({
    'portal login': (username, password) => postJson(app, '/api/v1/login', { username, password, app: 'portal' }),
    'trading login': (username, password) => postJson(app, '/api/v1/login', { username, password, app: 'trading' }),
    'mobile activation (K1)': (username, password) => postJson(app, '/api/v1/mobile/activations', { username, password, purpose: 'activate' }),
    'mobile migration (K7)': (username, password) => postJson(app, '/api/v1/mobile/activations', { username, password, purpose: 'migrate' }),
    'mobile recovery (K8)': (username, password) => postJson(app, '/api/v1/mobile/activations', { username, password, purpose: 'recover' }),
  });
  const argon2Calls = () => vi.mocked(verifyPassword).mock.calls.length + vi.mocked(hashPassword).mock.calls.length;
  const notices = async () => (await h.services.store.db.selectFrom('notifications').select('id').execute()).length;

  it('L1: the first unknown username a freshly started server checks costs one argon2id check, as a known user does (no hash made on the spot)', async () => {
    const fresh = await startHarness(database);
    try {
      const { user } = await createUserWithCard(fresh.services);
      let before = argon2Calls();
      const unknown = await startLogin(fresh.app, uniqueUsername('ghost'), 'one guess for all');
      const unknownWork = argon2Calls() - before;
      before = argon2Calls();
      const known = await startLogin(fresh.app, user.username, 'one guess for all');
      expect(unknown.body).toEqual(known.body);
      expect([unknownWork, argon2Calls() - before]).toEqual([1, 1]);
      // the stand-in hash has the parameters of every hash, so its check takes as long
      expect(DUMMY_HASH.startsWith(`$argon2id$v=19$m=${ARGON2_OPTIONS.memoryCost},t=${ARGON2_OPTIONS.timeCost},p=${ARGON2_OPTIONS.parallelism}$`)).toBe(true);
    } finally {
      await fresh.close();
    }
  });

  it('L1: a wrong password at every door: the unknown user, and a known one ordinary, disabled, opted out, without device, on SMS, sharing a device or staff, get the same status, headers and body, one argon2id check each, and no notice', async () => {
    const usernames = await usernamesInEveryState(h);
    // the unknown user knocks first: the first check of an unknown user in a process does no more than the others
    const order = ['unknown', ...Object.keys(usernames).filter((state) => state !== 'unknown')] as (keyof typeof usernames)[];
    for (const [door, knock] of Object.entries(doors(h.app))) {
      const answers: Record<string, unknown> = {};
      const work: Record<string, number> = {};
      const sent: Record<string, number> = {};
      for (const state of order) {
        const before = [argon2Calls(), await notices()];
        answers[state] = seen(await knock(usernames[state], 'one guess for all'));
        work[state] = argon2Calls() - before[0]!;
        sent[state] = (await notices()) - before[1]!;
      }
      expect((answers.unknown as { status: number }).status, door).toBe(401);
      for (const state of order) {
        expect(answers[state], `${door}: ${state}`).toEqual(answers.unknown);
        expect(work[state], `${door}: ${state}: argon2id calls`).toBe(1);
        expect(sent[state], `${door}: ${state}: notices`).toBe(0);
      }
    }
    // a disabled user's right password opens nothing, and tells nothing either
    for (const [door, knock] of Object.entries(doors(h.app))) {
      expect(seen(await knock(usernames.disabled, PASSWORD)), door).toEqual(seen(await knock(usernames.unknown, PASSWORD)));
    }
  });

  it('L3: a locked known user and a locked unknown username answer alike at every door, with a wrong or the right password, one argon2id check each', async () => {
    const { known, unknown } = await lockedPair(h);
    for (const [door, knock] of Object.entries(doors(h.app))) {
      for (const password of ['one guess for all', PASSWORD]) {
        let before = argon2Calls();
        const ghost = seen(await knock(unknown, password));
        const ghostWork = argon2Calls() - before;
        before = argon2Calls();
        const real = seen(await knock(known, password));
        expect(ghost.status, door).toBe(423);
        expect(real, `${door}: ${password}`).toEqual(ghost);
        expect(argon2Calls() - before, door).toBe(ghostWork);
      }
    }
  });

  it("H2, L1: a sharing request naming the owner: a wrong password for every owner's state is answered like an unknown owner's", async () => {
    const usernames = await usernamesInEveryState(h);
    const { user: requester, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, requester.username);
    const session = bearer((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token);
    await stepUp(h.app, session, withCard(card));
    const ask = (ownerUsername: string) => postJson(h.app, '/api/v1/sharing', { ownerUsername, ownerPassword: 'one guess for all' }, session);
    const unknown = seen(await ask(usernames.unknown));
    expect(unknown.status).toBe(401);
    for (const [state, username] of Object.entries(usernames)) {
      const before = argon2Calls();
      expect(seen(await ask(username)), state).toEqual(unknown);
      expect(argon2Calls() - before, state).toBe(1);
    }
  });
});
