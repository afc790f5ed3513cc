/**
 * Opting out of the Secure Login System for trading, and back in (O1-O3,
 * W1, V1, N1), through the JSON API on every database: the primary user
 * opts out after a step-up, acknowledging the warnings and typing their
 * username; a trading login then takes the password alone (the session
 * records no device), the portal still asks for the device, the entitlement
 * API reports W1's "None" row and `otcTrading: false`, and a notice goes
 * out. Opting back in restores all of it. Other users of the account are
 * refused with the primary user's name; operators use `sls user opt-out`
 * and `opt-in` (audited, actor cli); the help desk console shows the state.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, postJson, startLogin, stepUp, type ApiResponse } from './support/api.js';
import { Agent, textById } from './support/html.js';
import { cliEnv, sls, slsInProcess } from './support/cli.js';

describe.each(DATABASES)('opting out of the second factor for trading and back in (O1-O3) on %s', (db) => {
  let h: Harness;
  let backOffice: Record<string, string>;

  beforeAll(async () => {
    h = await startHarness(db);
    backOffice = bearer((await h.services.apiKeys.create({ name: 'back office', scopes: ['withdrawals'] }, 'test')).key);
  });
  afterAll(async () => h?.close());

  interface Client {
    user: User;
    card: CardFile;
    /** A portal session's headers. */
    headers: Record<string, string>;
  }

  /** A client with an active DSC+, signed in to the portal with it. */
  async function client(accountNumber?: string): Promise<Client> {
    const { user, card } = await createUserWithCard(h.services, '1234', accountNumber ? { accountNumber } : {});
    const start = await startLogin(h.app, user.username);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    return { user, card, headers: bearer(done.body.session.token) };
  }

  const verifyAgain = (c: Client) => stepUp(h.app, c.headers, (challenge) => cardAnswer(c.card, challenge.question));
  const optOut = (c: Client, body: object = { acknowledgeRisks: true, confirmation: c.user.username }) =>
    postJson(h.app, '/api/v1/secure-login/opt-out', body, c.headers);
  const optIn = (c: Client) => postJson(h.app, '/api/v1/secure-login/opt-in', {}, c.headers);
  const entitlements = (u: User) => get(h.app, `/api/v1/entitlements?account=${u.accountNumber}&username=${u.username}`, backOffice);

  async function events(u: User, prefix: string) {
    // oldest first
    return (await h.services.audit.list({ userId: u.id, limit: 500 })).filter((e) => e.event.startsWith(prefix)).sort((a, b) => a.seq - b.seq);
  }
  async function notices(u: User, template: string) {
    return h.services.store.db.selectFrom('notifications').selectAll().where('user_id', '=', u.id).where('template', '=', template).execute();
  }

  it('V1/O1: opting out needs a fresh step-up, the warnings acknowledged and the username typed again; nothing changes until then', async () => {
    const c = await client();
    const early = await optOut(c);
    expect([early.status, early.body.error.code]).toEqual([403, 'STEP_UP_REQUIRED']);
    await verifyAgain(c);
    const unacknowledged = await optOut(c, { acknowledgeRisks: false, confirmation: c.user.username });
    expect([unacknowledged.status, unacknowledged.body.error.code]).toEqual([400, 'OPT_OUT_NOT_CONFIRMED']);
    expect(unacknowledged.body.error.message).toContain('I understand');
    const mistyped = await optOut(c, { acknowledgeRisks: true, confirmation: `${c.user.username}x` });
    expect([mistyped.status, mistyped.body.error.code]).toEqual([400, 'OPT_OUT_NOT_CONFIRMED']);
    expect(mistyped.body.error.message).toContain(c.user.username);
    const missing = await postJson(h.app, '/api/v1/secure-login/opt-out', {}, c.headers);
    expect([missing.status, missing.body.error.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect((await get(h.app, '/api/v1/secure-login', c.headers)).body).toMatchObject({ tradingSecondFactor: 'always', optedOutAt: null });
    expect(await events(c.user, 'user.opted_')).toEqual([]);
    expect(await notices(c.user, 'optedOut')).toEqual([]);
  });

  it('O1/N1: opted out, a trading login takes the password alone (the session records no device; audited), the portal still asks for the device; a notice is sent', async () => {
    const c = await client();
    await verifyAgain(c);
    const out = await optOut(c);
    expect(out.status, JSON.stringify(out.body)).toBe(200);
    expect(out.body).toMatchObject({
      tradingSecondFactor: 'opted_out',
      changed: true,
      restrictions: { otcTrading: false, withdrawalLimits: { device: 'none', perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 } },
      mayChange: true,
    });
    expect(Date.parse(out.body.optedOutAt)).toBeGreaterThan(0);

    const trading = await startLogin(h.app, c.user.username, PASSWORD, 'trading');
    expect(trading.status, JSON.stringify(trading.body)).toBe(200);
    expect(trading.body).toMatchObject({ state: 'done', app: 'trading', challenge: null, device: null, session: { app: 'trading' } });
    expect(String(trading.headers['set-cookie'])).toContain('__Host-sls_session=');
    const session = await get(h.app, '/api/v1/session', bearer(trading.body.session.token));
    expect(session.body).toMatchObject({ app: 'trading', device: { id: null, type: null }, user: { username: c.user.username } });
    const succeeded = (await events(c.user, 'login.succeeded')).at(-1)!;
    expect(succeeded.data).toMatchObject({ app: 'trading', deviceId: null, secondFactor: 'none', optedOut: true, flowId: trading.body.id });
    // a password-only trading session is no portal session: it changes nothing
    expect((await get(h.app, '/api/v1/secure-login', bearer(trading.body.session.token))).body.error.code).toBe('PORTAL_SESSION_REQUIRED');

    const portal = await startLogin(h.app, c.user.username, PASSWORD, 'portal');
    expect(portal.body).toMatchObject({ state: 'second_factor', challenge: { type: 'ocra' } });
    expect(portal.body.session).toBeUndefined();

    const audited = await events(c.user, 'user.opted_');
    expect(audited.map((e) => [e.event, e.actor])).toEqual([['user.opted_out', `user:${c.user.id}`]]);
    const sent = await notices(c.user, 'optedOut');
    expect(sent.map((n) => n.channel)).toEqual(['email']);
    expect(sent[0]!.body).toContain(c.user.username);
    expect(sent[0]!.subject).toBe('You opted out of the Secure Login System for trading');
  });

  it('O1/L3: opted out, a wrong password still fails and counts towards the lock; 10 failures lock trading logins too (423)', async () => {
    const c = await client();
    await verifyAgain(c);
    expect((await optOut(c)).status).toBe(200);
    const wrong = await startLogin(h.app, c.user.username, 'not the password', 'trading');
    expect([wrong.status, wrong.body.error.code, wrong.body.session]).toEqual([401, 'INVALID_CREDENTIALS', undefined]);
    for (let i = 1; i < 10; i++) await startLogin(h.app, c.user.username, 'not the password', 'trading');
    const locked = await startLogin(h.app, c.user.username, PASSWORD, 'trading');
    expect([locked.status, locked.body.error.code, locked.body.session]).toEqual([423, 'LOCKED', undefined]);
    expect((await events(c.user, 'login.locked')).length).toBe(1);
  });

  it('W1/O1: the entitlement API reports the "None" row and otcTrading false while opted out, and refuses a withdrawal above it; opting back in restores them', async () => {
    const c = await client();
    const before = await entitlements(c.user);
    expect(before.body).toMatchObject({ device: 'dscplus', limit: { perDayUsd: null }, entitlements: { otcTrading: true, enrolled: true } });
    await verifyAgain(c);
    expect((await optOut(c)).status).toBe(200);
    const during = await entitlements(c.user);
    expect(during.body).toMatchObject({
      device: 'none',
      limit: { perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 },
      entitlements: { otcTrading: false, enrolled: false, changeBankingInstructions: false, shareDevice: false },
    });
    // the account as a whole (no username) is as restricted as its opted-out user
    expect((await get(h.app, `/api/v1/entitlements?account=${c.user.accountNumber}`, backOffice)).body.entitlements.otcTrading).toBe(false);
    const check = await postJson(h.app, '/api/v1/withdrawals/check', { account: c.user.accountNumber, amount: 60_000, currency: 'USD' }, backOffice);
    expect(check.body).toMatchObject({ allowed: false, reason: 'DAILY_LIMIT', device: 'none' });

    expect((await optIn(c)).body).toMatchObject({ tradingSecondFactor: 'always', changed: true, restrictions: { otcTrading: true } });
    const after = await entitlements(c.user);
    expect(after.body).toMatchObject({ device: 'dscplus', limit: { perDayUsd: null }, entitlements: { otcTrading: true, enrolled: true } });
  });

  it('O2/N1: opting back in (after a step-up) makes trading logins ask for the device again; audited, a notice sent; a repeat changes nothing', async () => {
    const c = await client();
    await verifyAgain(c);
    expect((await optOut(c)).status).toBe(200);
    // the step-up grows old: opting back in asks for a fresh one
    h.clock.advance(h.services.config.policy.stepUpFreshMs + 1000);
    const stale = await optIn(c);
    expect([stale.status, stale.body.error.code]).toEqual([403, 'STEP_UP_REQUIRED']);
    await verifyAgain(c);
    const back = await optIn(c);
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    expect(back.body).toMatchObject({ tradingSecondFactor: 'always', optedOutAt: null, changed: true });
    const trading = await startLogin(h.app, c.user.username, PASSWORD, 'trading');
    expect(trading.body).toMatchObject({ state: 'second_factor', challenge: { type: 'ocra' } });
    expect(trading.body.session).toBeUndefined();
    const done = await answer(h.app, trading.body.id, cardAnswer(c.card, trading.body.challenge.question));
    expect(done.body).toMatchObject({ state: 'done', session: { app: 'trading' } });

    const again = await optIn(c);
    expect(again.body).toMatchObject({ tradingSecondFactor: 'always', changed: false });
    expect((await events(c.user, 'user.opted_')).map((e) => e.event)).toEqual(['user.opted_out', 'user.opted_in']);
    expect((await notices(c.user, 'optedIn')).length).toBe(1);
    expect((await notices(c.user, 'optedOut')).length).toBe(1);
  });

  it('O3/A2: another user of the account is refused 403 NOT_PRIMARY_USER naming the primary user, and told so in GET /secure-login; nothing changes', async () => {
    const primary = await client();
    const other = await client(primary.user.accountNumber);
    await verifyAgain(other);
    for (const attempt of [() => optOut(other), () => optIn(other)]) {
      const refused: ApiResponse = await attempt();
      expect([refused.status, refused.body.error.code, refused.body.error.details]).toEqual([403, 'NOT_PRIMARY_USER', { primaryUser: primary.user.username }]);
      expect(refused.body.error.message).toContain(primary.user.username);
    }
    expect((await get(h.app, '/api/v1/secure-login', other.headers)).body).toMatchObject({
      tradingSecondFactor: 'always',
      mayChange: false,
      primaryUser: primary.user.username,
    });
    expect(await h.services.optOuts.isOptedOut(other.user.id)).toBe(false);
    expect((await startLogin(h.app, other.user.username, PASSWORD, 'trading')).body.state).toBe('second_factor');
    expect((await events(other.user, 'security.refused_not_primary')).length).toBe(2);
  });

  it('O1-O3: sls user opt-out (with --confirm, only a user with the right) and opt-in, audited as cli; the help desk console shows the state', async () => {
    const c = await client();
    const other = await client(c.user.accountNumber);
    const env = cliEnv(h.database);
    // the first command a real `sls` process, the others in this process (slsInProcess): a process costs a start of Node each
    const refused = await sls(['user', 'opt-out', other.user.username, '--confirm', other.user.username], env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(c.user.username);
    const mistyped = await slsInProcess(['user', 'opt-out', c.user.username, '--confirm', 'someoneelse'], env);
    expect(mistyped.code).not.toBe(0);
    expect(await h.services.optOuts.isOptedOut(c.user.id)).toBe(false);

    const out = await slsInProcess(['user', 'opt-out', c.user.username, '--confirm', c.user.username], env);
    expect(out, out.stderr).toMatchObject({ code: 0 });
    expect(out.stdout).toContain('opted out of the Secure Login System for trading');
    expect((await startLogin(h.app, c.user.username, PASSWORD, 'trading')).body.state).toBe('done');

    // the console's user page, read-only
    const { user: agentUser, card: agentCard } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const agent = new Agent(h.app);
    const login = await agent.get('/login');
    const started = await agent.submit(login, '/login', { username: agentUser.username, password: PASSWORD, app: 'portal' });
    const challenge = await agent.get(started.location!);
    const signedIn = await agent.submit(challenge, started.location!, { response: cardAnswer(agentCard, textById(challenge.html, 'challenge-code')!) });
    expect(signedIn.location).toBe('/helpdesk'); // issue 16: staff land on the console
    const page = await agent.get(`/helpdesk/users/${c.user.username}`);
    expect(page.status).toBe(200);
    expect(page.html).toMatch(/id="secure-login-state" data-state="opted_out"/);
    expect(textById(page.html, 'secure-login-state')).toContain('by cli');

    const back = await slsInProcess(['user', 'opt-in', c.user.username], env);
    expect(back, back.stderr).toMatchObject({ code: 0 });
    expect(back.stdout).toContain('opted back into the Secure Login System');
    expect((await startLogin(h.app, c.user.username, PASSWORD, 'trading')).body.state).toBe('second_factor');
    expect((await agent.get(`/helpdesk/users/${c.user.username}`)).html).toMatch(/id="secure-login-state" data-state="always"/);
    expect((await events(c.user, 'user.opted_')).map((e) => [e.event, e.actor])).toEqual([
      ['user.opted_out', 'cli'],
      ['user.opted_in', 'cli'],
    ]);
  });

  it('O1: staff users cannot opt out (409 OPT_OUT_NOT_CLIENT); the OpenAPI description lists the routes', async () => {
    const { user, card } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const start = await startLogin(h.app, user.username);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    const staff = { user, card, headers: bearer(done.body.session.token) };
    await verifyAgain(staff);
    const refused = await optOut(staff);
    expect([refused.status, refused.body.error.code]).toEqual([409, 'OPT_OUT_NOT_CLIENT']);
    const doc = (await get(h.app, '/api/openapi.json')).body;
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/secure-login', '/api/v1/secure-login/opt-out', '/api/v1/secure-login/opt-in']));
    expect(doc.paths['/api/v1/secure-login/opt-out'].post.operationId).toBe('optOutOfSecureLogin');
  });
});
