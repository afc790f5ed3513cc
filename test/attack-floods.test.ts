/**
 * N1, L3, X5: an attacker who hammers one victim. Guesses in bursts, on
 * one process or several, lock the victim once and tell them once: the
 * notices (e-mail, SMS) do not become a flood that the attacker pays for
 * with nothing but requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOUR, MINUTE, SECOND } from '../src/clock.js';
import { DEFAULT_POLICY } from '../src/config.js';
import type { CardFile } from '../src/devices/devices.js';
import { DATABASES, PASSWORD, cardAnswer, createUser, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { newMobile, smsUser, verifiedNumber } from './support/phone.js';
import { recogniseRecentClients } from '../src/store/migrations/0027_flow_allowances.js';
import { SlsError } from '../src/errors.js';
import { ALLOWANCE } from '../src/throttle/allowance.js';
import { isKnownClient } from '../src/flows/known-clients.js';
import { startLogin } from './support/api.js';

describe.each(DATABASES)('an attacker hammering one victim, on %s (N1, L3)', (db) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(db);
  });
  afterAll(async () => h.close());

  it('N1, L3: 40 wrong passwords in bursts of 10 at once: one lock, one userLocked notice per channel, none for the guesses after it', async () => {
    const { user } = await createUserWithCard(h.services);
    const guess = () => h.app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: user.username, password: 'a wrong guess', app: 'portal' } });
    const lockNotices = async () => (await h.services.notifier.list({ userId: user.id, limit: 500 })).filter((n) => n.template === 'userLocked');
    const statuses: number[] = [];
    for (let burst = 0; burst < 4; burst++) {
      for (const res of await Promise.all(Array.from({ length: 10 }, guess))) statuses.push(res.statusCode);
      if (burst === 0) {
        // the burst that locked may defer some guesses (429) while the others are in flight; a second one finishes the lock
        for (const res of await Promise.all(Array.from({ length: 10 }, guess))) statuses.push(res.statusCode);
      }
    }
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.every((s) => [401, 423, 429].includes(s))).toBe(true);
    expect((await h.services.lockout.status(user.username)).locked).toBe(true);
    const notices = await lockNotices();
    expect(notices.length).toBeGreaterThan(0);
    expect(new Set(notices.map((n) => n.channel)).size).toBe(notices.length);
  });

  it("M7, M1: a stranger who puts the victim's number on an account of their own and presses VERIFY until refused spends only what that number may receive from accounts that have not verified it: the victim's login codes still go out", async () => {
    const meta = { ip: null, language: 'en' as const };
    const number = newMobile();
    const victim = await createUser(h.services);
    await verifiedNumber(h, victim.id, number);
    const attacker = await createUser(h.services);
    const phone = await h.services.phones.add(attacker.id, number, 'attacker', null);
    // VERIFY again as soon as allowed, until the number's limit refuses: the flood stops there (M7)
    let sent = 0;
    for (;;) {
      const refused = await h.services.phones.sendConfirmCode(attacker.id, phone.id, meta).then(
        () => null,
        (error: unknown) => error,
      );
      if (refused) {
        expect(refused).toBeInstanceOf(SlsError);
        expect((refused as SlsError).code).toBe('SMS_RATE_LIMITED');
        break;
      }
      sent += 1;
      expect(sent).toBeLessThan(30);
      h.clock.advance(2 * MINUTE + SECOND);
    }
    expect(sent).toBeGreaterThan(0);
    // the victim, who verified the number, still receives their codes within the hour
    const login = await startLogin(h.app, victim.username);
    expect(login.status, JSON.stringify(login.body)).toBe(200);
    expect(login.body.challenge.type).toBe('sms');
    expect(login.body.challenge.delivery).toBe('sent');
  });
});

describe.each(DATABASES)('a password holder filling the victim’s flow allowance, on %s (L4, decision 0018)', (db) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(db, { policy: { ...DEFAULT_POLICY, openFlowsPerUser: 3, flowStartsPerHour: 5 } });
  });
  afterAll(async () => h.close());

  const start = async (username: string, from: string) => {
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/login', remoteAddress: from, payload: { username, password: PASSWORD, app: 'portal' } });
    return { status: res.statusCode, body: res.json() as { id: string; claimToken: string; challenge: { question: string }; error?: { code: string } } };
  };
  /** A whole login (password, then the card's answer) from an address: its status. */
  const logIn = async (user: { username: string }, card: CardFile, from: string) => {
    const started = await start(user.username, from);
    if (started.status !== 200) return started.status;
    const res = await h.app.inject({
      method: 'POST',
      url: `/api/v1/login/${started.body.id}`,
      headers: { 'x-claim-token': started.body.claimToken },
      remoteAddress: from,
      payload: { response: cardAnswer(card, started.body.challenge.question) },
    });
    return res.statusCode;
  };

  it("L4: an attacker with only the password fills the open and hourly allowance from elsewhere; the owner, from the client (an IPv4 address, an IPv6 /64) they logged in from before, still logs in; the attacker's other addresses share the attacker's allowance", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const home = '198.51.100.20';
    const phone = '2001:db8:77:1::5';
    expect(await logIn(user, card, home)).toBe(200);
    expect(await logIn(user, card, phone)).toBe(200);
    h.clock.advance(HOUR);
    // the attacker's open flows: 3, then refused, from this address and any other
    for (let i = 0; i < 3; i++) expect((await start(user.username, '203.0.113.9')).status).toBe(200);
    for (const from of ['203.0.113.9', '203.0.113.10', '2001:db8:66::1']) expect((await start(user.username, from)).body.error?.code).toBe('TOO_MANY_FLOWS');
    // the owner, at home and from the phone's network (another address of its /64)
    expect(await logIn(user, card, home)).toBe(200);
    expect(await logIn(user, card, '2001:db8:77:1::99')).toBe(200);
    // the attacker's flows expire; the attacker's hour is spent (5 starts), the owner's is not
    h.clock.advance(11 * MINUTE);
    for (let i = 0; i < 2; i++) expect((await start(user.username, '203.0.113.11')).status).toBe(200);
    expect((await start(user.username, '203.0.113.12')).body.error?.code).toBe('TOO_MANY_FLOWS');
    expect(await logIn(user, card, home)).toBe(200);
  });

  it("L4, X7: an attacker with only the password fills the allowance from elsewhere; the signed-in owner's step-up, from a client of no completed login (another network), still starts: a session's proofs count in an allowance of their own (decision 0024)", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const home = '198.51.100.22';
    const started = await start(user.username, home);
    const done = await h.app.inject({
      method: 'POST',
      url: `/api/v1/login/${started.body.id}`,
      headers: { 'x-claim-token': started.body.claimToken },
      remoteAddress: home,
      payload: { response: cardAnswer(card, started.body.challenge.question) },
    });
    const auth = { authorization: `Bearer ${(done.json() as { session: { token: string } }).session.token}` };
    for (let i = 0; i < 3; i++) expect((await start(user.username, '203.0.113.13')).status).toBe(200);
    expect((await start(user.username, '203.0.113.14')).body.error?.code).toBe('TOO_MANY_FLOWS');
    // the owner's laptop, on a train's network now
    const stepUp = await h.app.inject({ method: 'POST', url: '/api/v1/step-up', remoteAddress: '192.0.2.88', headers: auth, payload: { password: PASSWORD } });
    expect(stepUp.statusCode, stepUp.body).toBe(200);
    const row = await h.services.store.db.selectFrom('login_flows').select('recognised').where('id', '=', stepUp.json().id).executeTakeFirstOrThrow();
    expect(row.recognised).toBe(ALLOWANCE.session);
    // and the session's proofs have limits too, of the same size
    for (let i = 0; i < 2; i++) {
      const more = await h.app.inject({ method: 'POST', url: '/api/v1/step-up', remoteAddress: '192.0.2.88', headers: auth, payload: { password: PASSWORD } });
      expect(more.statusCode, more.body).toBe(200);
    }
    const full = await h.app.inject({ method: 'POST', url: '/api/v1/step-up', remoteAddress: '192.0.2.88', headers: auth, payload: { password: PASSWORD } });
    expect([full.statusCode, full.json().error?.code]).toEqual([429, 'TOO_MANY_FLOWS']);
    const refused = (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'login.flow_refused');
    expect(refused.map((e) => (e.data as { allowance?: string }).allowance)).toEqual(['session', 'other']);
  });

  it("L4: the owner at a new address with the browser they completed a login in (its known-client cookie) is not refused because a password holder filled the other allowance; without it, with another user's, or a forged or stale one, the flow counts in the other allowance (decision 0024)", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const other = await createUserWithCard(h.services);
    const knownCookieOf = async (who: { username: string }, whoCard: CardFile, from: string) => {
      const started = await start(who.username, from);
      const done = await h.app.inject({
        method: 'POST',
        url: `/api/v1/login/${started.body.id}`,
        headers: { 'x-claim-token': started.body.claimToken },
        remoteAddress: from,
        payload: { response: cardAnswer(whoCard, started.body.challenge.question) },
      });
      expect(done.statusCode).toBe(200);
      const cookie = (done.cookies as { name: string; value: string; maxAge?: number; httpOnly?: boolean }[]).find((c) => c.name === '__Host-sls_known');
      expect(cookie).toMatchObject({ httpOnly: true, maxAge: 90 * 24 * 3600 });
      return cookie!.value;
    };
    const mine = await knownCookieOf(user, card, '198.51.100.23');
    const theirs = await knownCookieOf(other.user, other.card, '198.51.100.24');
    for (let i = 0; i < 3; i++) expect((await start(user.username, '203.0.113.15')).status).toBe(200);
    const startWith = async (known: string | undefined, from: string) => {
      const res = await h.app.inject({
        method: 'POST',
        url: '/api/v1/login',
        remoteAddress: from,
        ...(known ? { cookies: { '__Host-sls_known': known } } : {}),
        payload: { username: user.username, password: PASSWORD, app: 'portal' },
      });
      return res.statusCode === 200 ? 'started' : (res.json() as { error: { code: string } }).error.code;
    };
    const [issued, digest] = mine.split('.');
    const refused = {
      none: await startWith(undefined, '192.0.2.120'),
      "another user's": await startWith(theirs, '192.0.2.120'),
      forged: await startWith(`${issued}.${digest!.slice(0, -1)}${digest!.endsWith('A') ? 'B' : 'A'}`, '192.0.2.120'),
      'the attacker with it': await startWith(theirs, '203.0.113.15'),
    };
    expect(refused).toEqual({ none: 'TOO_MANY_FLOWS', "another user's": 'TOO_MANY_FLOWS', forged: 'TOO_MANY_FLOWS', 'the attacker with it': 'TOO_MANY_FLOWS' });
    // the owner's laptop on a hotel's network
    expect(await startWith(mine, '192.0.2.120')).toBe('started');
    // 90 days on, the browser is no longer known
    expect(isKnownClient(h.services.box, user.id, mine, h.clock.now() + 89 * 24 * HOUR)).toBe(true);
    expect(isKnownClient(h.services.box, user.id, mine, h.clock.now() + 90 * 24 * HOUR)).toBe(false);
  });

  it('L4: the limits still hold from the owner’s own clients: 3 open at once, 5 started in an hour (429 TOO_MANY_FLOWS), audited with the allowance', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const home = '198.51.100.21';
    expect(await logIn(user, card, home)).toBe(200);
    h.clock.advance(HOUR);
    for (let i = 0; i < 3; i++) expect((await start(user.username, home)).status).toBe(200);
    const open = await start(user.username, home);
    expect([open.status, open.body.error?.code]).toEqual([429, 'TOO_MANY_FLOWS']);
    h.clock.advance(11 * MINUTE);
    expect(await logIn(user, card, home)).toBe(200);
    expect((await start(user.username, home)).status).toBe(200);
    const hourly = await start(user.username, home);
    expect([hourly.status, hourly.body.error?.code]).toEqual([429, 'TOO_MANY_FLOWS']);
    const refused = (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'login.flow_refused');
    expect(refused.map((e) => (e.data as { recognised?: boolean }).recognised)).toEqual([true, true]);
  });

  it('L4: the upgrade (migration 0027) recognises the clients of the logins completed in the last 90 days, IPv4 in one statement and IPv6 by its /64; older ones and flows never completed stay unrecognised', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const addresses = ['198.51.100.30', '2001:db8:88:1::5', '::ffff:192.0.2.7', '198.51.100.31'];
    for (const from of addresses.slice(0, 3)) expect(await logIn(user, card, from)).toBe(200);
    expect((await start(user.username, addresses[3]!)).status).toBe(200);
    // as the previous version left them: no client
    await h.services.store.db.updateTable('login_flows').set({ client: null }).where('user_id', '=', user.id).execute();
    await recogniseRecentClients(h.services.store.db, h.clock.now() + 91 * 24 * HOUR);
    const none = await h.services.store.db.selectFrom('login_flows').select('client').where('user_id', '=', user.id).execute();
    expect(none.map((r) => r.client)).toEqual([null, null, null, null]);
    await recogniseRecentClients(h.services.store.db, h.clock.now());
    const rows = await h.services.store.db.selectFrom('login_flows').select(['ip', 'client']).where('user_id', '=', user.id).execute();
    expect(rows.sort((a, b) => addresses.indexOf(a.ip!) - addresses.indexOf(b.ip!))).toEqual([
      { ip: '198.51.100.30', client: '198.51.100.30' },
      { ip: '2001:db8:88:1::5', client: '2001:db8:88:1::/64' },
      { ip: '::ffff:192.0.2.7', client: '192.0.2.7' },
      { ip: '198.51.100.31', client: null },
    ]);
  });
});

describe.each(DATABASES)('a password holder spending the victim’s SMS codes, on %s (M7, L4, decision 0018)', (db) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(db);
  });
  afterAll(async () => h.close());

  const start = async (username: string, from: string) => {
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/login', remoteAddress: from, payload: { username, password: PASSWORD, app: 'portal' } });
    return res.json() as { id: string; claimToken: string; challenge: { type: string; delivery?: string } };
  };
  /** The code of the newest code message to the user, read from the outbox. */
  const lastCode = async (userId: string) => {
    const [message] = (await h.services.notifier.list({ userId })).filter((n) => n.template === 'loginCode');
    return /\b(\d{6})\b/.exec(message!.body)![1]!;
  };
  /** A whole SMS login from an address, the code read from the outbox: the answer's status. */
  const logIn = async (user: { id: string; username: string }, from: string) => {
    const started = await start(user.username, from);
    if (started.challenge.delivery !== 'sent') return `code ${started.challenge.delivery}`;
    const [message] = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'loginCode');
    const code = /\b(\d{6})\b/.exec(message!.body)![1]!;
    return (
      await h.app.inject({
        method: 'POST',
        url: `/api/v1/login/${started.id}`,
        headers: { 'x-claim-token': started.claimToken },
        remoteAddress: from,
        payload: { response: code },
      })
    ).statusCode;
  };

  it("M7, L4: an attacker with only the password spends the user's codes of the hour from elsewhere; the owner, from a client they logged in from before, still gets a code and logs in", async () => {
    const user = await smsUser(h);
    const home = '198.51.100.30';
    expect(await logIn(user, home)).toBe(200);
    h.clock.advance(HOUR);
    const attacker = [];
    // 10 codes in the hour: the user's limit (and the number's)
    for (let i = 0; i < 10; i++) attacker.push((await start(user.username, `203.0.113.${20 + i}`)).challenge.delivery);
    expect(attacker).toEqual(Array(10).fill('sent'));
    h.clock.advance(11 * MINUTE);
    expect((await start(user.username, '203.0.113.40')).challenge.delivery).toBe('limited');
    expect(await logIn(user, home)).toBe(200);
  });

  it("M7, X7: an attacker with only the password spends the codes of the hour from elsewhere; the signed-in owner, from a client of no completed login, still gets the code of a step-up, counted apart: a session's proofs and the password's logins never spend each other's codes (decision 0024)", async () => {
    const user = await smsUser(h);
    const home = '198.51.100.33';
    const login = await start(user.username, home);
    const done = await h.app.inject({
      method: 'POST',
      url: `/api/v1/login/${login.id}`,
      headers: { 'x-claim-token': login.claimToken },
      remoteAddress: home,
      payload: { response: await lastCode(user.id) },
    });
    const auth = { authorization: `Bearer ${(done.json() as { session: { token: string } }).session.token}` };
    const attacker: (string | undefined)[] = [];
    for (let i = 0; i < 10; i++) attacker.push((await start(user.username, `203.0.113.${60 + i}`)).challenge.delivery);
    expect(attacker.filter((d) => d === 'limited').length).toBeGreaterThan(0);
    // the owner's laptop, on another network, a little later: a step-up by SMS
    h.clock.advance(SECOND);
    const stepUp = await h.app.inject({ method: 'POST', url: '/api/v1/step-up', remoteAddress: '192.0.2.99', headers: auth, payload: { password: PASSWORD } });
    expect(stepUp.statusCode, stepUp.body).toBe(200);
    expect(stepUp.json().challenge.delivery).toBe('sent');
    const answered = await h.app.inject({
      method: 'POST',
      url: `/api/v1/step-up/${stepUp.json().id}`,
      remoteAddress: '192.0.2.99',
      headers: auth,
      payload: { response: await lastCode(user.id) },
    });
    expect([answered.statusCode, answered.json().state]).toEqual([200, 'done']);
    const counted = await h.services.store.db
      .selectFrom('notifications')
      .select('recognised')
      .where('user_id', '=', user.id)
      .orderBy('created_at', 'desc')
      .executeTakeFirstOrThrow();
    expect(counted.recognised).toBe(ALLOWANCE.session);
  });

  it("M7: another user who puts the victim's number on record and asks for its confirmation codes spends the number's codes of the hour; the owner, from a client they logged in from before, still gets a code", async () => {
    const user = await smsUser(h);
    const home = '198.51.100.31';
    expect(await logIn(user, home)).toBe(200);
    h.clock.advance(HOUR);
    const [phone] = await h.services.phones.list(user.id);
    const mallory = await createUser(h.services);
    const theirs = await h.services.phones.add(mallory.id, { country: 'FR', number: phone!.e164.slice(3) }, 'test', '203.0.113.50');
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) {
      sent.push((await h.services.phones.sendConfirmCode(mallory.id, theirs.id, { ip: '203.0.113.50', language: 'en' })).delivery);
      h.clock.advance(3 * MINUTE);
    }
    expect(sent).toEqual(Array(10).fill('sent'));
    expect(await logIn(user, home)).toBe(200);
  });
});
