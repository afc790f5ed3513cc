/**
 * A step-up replaces its session's token (V1, X7, L8; docs/decisions/0042;
 * OWASP ASVS: a new session token on re-authentication). Whoever holds a
 * stolen copy of a session's token (a cookie, a Bearer token) cannot start a
 * step-up — it needs the password — but when the real user steps up, for
 * whatever reason, the copy got the fresh step-up too, for its minutes: a
 * security key of the thief's, a number, an opt-out. Here the user steps up
 * through the API (Bearer), through the pages (the cookie, with CSRF) and on
 * the phone (a push, completed by the session holder's request): the copy
 * then answers 401 UNAUTHENTICATED; the user's new token goes on. And a
 * request of the old token in flight when the rotation commits is treated
 * as ended (a hook puts the step-up in the gap, never timing).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relyingPartyOf } from '../src/devices/security-key/security-key.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { inTheGap } from './support/in-the-gap.js';
import { bearer, claimSession, get, loginSession, postJson, startLogin, stepUp, withCard, type ApiResponse, type Json } from './support/api.js';
import { Agent, textById } from './support/html.js';
import { TestPhone, harnessInbox, listen, newMobile, smsUser } from './support/phone.js';
import { SoftwareAuthenticator } from './support/software-authenticator.js';

describe.each(DATABASES)('a step-up replaces its session token (%s)', (database) => {
  let h: Harness;
  let base: string;

  beforeAll(async () => {
    h = await startHarness(database);
    base = await listen(h);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** The audit entries of an event about a user, as data. */
  async function entries(userId: string, event: string): Promise<Json[]> {
    return (await h.services.audit.list({ userId, limit: 300 })).filter((e) => e.event === event).map((e) => e.data as Json);
  }

  const refusedUnauthenticated = (res: ApiResponse) => expect([res.status, res.body.error?.code], JSON.stringify(res.body)).toEqual([401, 'UNAUTHENTICATED']);

  /** What a thief does with a copy of the session's token once the user stepped up: a security key of theirs, a number. */
  async function thiefActs(headers: Record<string, string>): Promise<{ key: ApiResponse; phone: ApiResponse }> {
    const key = await postJson(h.app, '/api/v1/security-keys/registration', {}, headers);
    const phone = await postJson(h.app, '/api/v1/phones', newMobile(), headers);
    return { key, phone };
  }

  it('V1, X7, L8: a copy of a Bearer token taken before the user steps up (a card) gets no share of the step-up: the copy answers 401, the user goes on with the new token', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const headers = await loginSession(h.app, user.username, withCard(card));
    const stolen = { ...headers };
    const done = await stepUp(h.app, headers, withCard(card));
    const thief = await thiefActs(stolen);
    refusedUnauthenticated(thief.key);
    refusedUnauthenticated(thief.phone);
    refusedUnauthenticated(await get(h.app, '/api/v1/session', stolen));
    expect(await h.services.phones.list(user.id)).toEqual([]);
    expect(done.body.session?.token).toEqual(expect.any(String));
    expect(headers.authorization).not.toBe(stolen.authorization);
    // the user's new token: the same session, stepped up
    const session = await get(h.app, '/api/v1/session', headers);
    expect(session.status).toBe(200);
    expect((await postJson(h.app, '/api/v1/phones', newMobile(), headers)).status).toBe(201);
    const rotated = await entries(user.id, 'session.rotated');
    expect(rotated).toEqual([expect.objectContaining({ flowId: done.body.id, sessionId: expect.any(String) })]);
    expect(JSON.stringify(rotated)).not.toContain(done.body.session.token);
    // only the answer that completed the step-up carries a token
    const again = await get(h.app, `/api/v1/step-up/${done.body.id as string}`, headers);
    expect([again.body.state, again.body.session]).toEqual(['done', undefined]);
  });

  it('V1, X7, L8: the pages: a copy of the session cookie taken before the user steps up on the step-up page (CSRF token, card) gets nothing: 401; the browser has the new cookie', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const browser = new Agent(h.app);
    const login = await browser.submit(await browser.get('/login'), '/login', { username: user.username, password: PASSWORD });
    const challenge = await browser.get(login.location!);
    expect((await browser.submit(challenge, login.location!, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) })).location).toBe(
      '/account',
    );
    const copied = browser.jar.get('__Host-sls_session')!;
    const page = await browser.get('/step-up?next=%2Fsettings%2Fsecurity-keys');
    const started = await browser.submit(page, '/step-up', { password: PASSWORD });
    expect(started.location).toMatch(/^\/step-up\/flw_/);
    const flowPage = await browser.get(started.location!);
    const done = await browser.submit(flowPage, started.location!, { response: cardAnswer(card, textById(flowPage.html, 'challenge-code')!) });
    expect([done.status, done.location]).toEqual([303, '/settings/security-keys']);
    const thief = await thiefActs(bearer(copied));
    refusedUnauthenticated(thief.key);
    refusedUnauthenticated(thief.phone);
    const fresh = browser.jar.get('__Host-sls_session')!;
    expect(fresh).not.toBe(copied);
    const set = done.setCookies.find((c) => c.startsWith('__Host-sls_session='))!;
    expect(set).toMatch(/; Path=\//);
    expect(set).toMatch(/; HttpOnly/);
    expect(set).toMatch(/; Secure/);
    expect(set).toMatch(/; SameSite=Lax/);
    // the copied cookie in another browser leads to the login page
    const other = new Agent(h.app);
    other.jar.set('__Host-sls_session', copied);
    expect((await other.get('/settings/security-keys')).location).toMatch(/^\/login/);
    // the user's browser goes on, stepped up
    const keys = await browser.get('/settings/security-keys');
    expect(keys.status, keys.location).toBe(200);
    expect((await postJson(h.app, '/api/v1/security-keys/registration', {}, bearer(fresh))).status).toBe(200);
  });

  it('V1, X7, L8, K11: a push step-up: the phone approves, the session holder completes it (cookie): the copy answers 401, the holder gets the new token (body and Set-Cookie)', async () => {
    const user = await smsUser(h);
    const phone = new TestPhone(base, harnessInbox(h));
    await phone.activate(user.username);
    const login = await startLogin(h.app, user.username, PASSWORD);
    await phone.approve(await phone.request(user.username), login.body.challenge.number);
    const token = (await claimSession(h.app, login)).body.session.token as string;
    const cookie = { cookie: `__Host-sls_session=${token}` };
    const started = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, cookie);
    expect(started.body.challenge.type, JSON.stringify(started.body)).toBe('push');
    await phone.approve(await phone.request(user.username), started.body.challenge.number);
    const done = await postJson(h.app, `/api/v1/step-up/${started.body.id as string}/complete`, {}, cookie);
    expect([done.status, done.body.state], JSON.stringify(done.body)).toEqual([200, 'done']);
    const thief = await thiefActs(bearer(token));
    refusedUnauthenticated(thief.key);
    refusedUnauthenticated(thief.phone);
    const fresh = done.body.session.token as string;
    expect(fresh).not.toBe(token);
    expect(String(done.headers['set-cookie'])).toContain(`__Host-sls_session=${fresh};`);
    expect((await postJson(h.app, '/api/v1/security-keys/registration', {}, bearer(fresh))).status).toBe(200);
    expect(await entries(user.id, 'session.rotated')).toEqual([expect.objectContaining({ flowId: started.body.id, sessionId: expect.any(String) })]);
  });

  it('V1, L8 (decisions 0031, 0042): a request of the old token let through before the user stepped up again and writing after the rotation committed writes nothing: 401, audited ended-in-flight', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const headers = await loginSession(h.app, user.username, withCard(card), { stepUp: true });
    const stolen = { ...headers };
    const key = new SoftwareAuthenticator();
    const registration = await postJson(h.app, '/api/v1/security-keys/registration', {}, stolen);
    expect(registration.status).toBe(200);
    const again = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
    // the user's step-up completes (and commits) after the thief's request was let through, before it writes
    const gap = inTheGap(h.services.store, () =>
      postJson(h.app, `/api/v1/step-up/${again.body.id as string}`, { response: cardAnswer(card, again.body.challenge.question) }, headers),
    );
    const res = await postJson(
      h.app,
      '/api/v1/security-keys',
      { name: 'Thief key', state: registration.body.state, credential: key.register(registration.body.options, relyingPartyOf(h.services.config)) },
      stolen,
    );
    gap.restore();
    const done = gap.result();
    expect(done?.body.state, JSON.stringify(done?.body)).toBe('done');
    refusedUnauthenticated(res);
    expect(await h.services.securityKeys.list(user.id)).toEqual([]);
    const refused = (await entries(user.id, 'session.refused')).filter((e) => e.check === 'ended-in-flight');
    expect(refused).toEqual([expect.objectContaining({ code: 'UNAUTHENTICATED', path: '/api/v1/security-keys' })]);
    // the user's own session lives on with its new token
    expect((await get(h.app, '/api/v1/session', bearer(done!.body.session.token))).status).toBe(200);
  });
});
