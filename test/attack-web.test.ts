/**
 * Attacks on the web and API sessions, the flows that lead to them, and
 * what a username tells (L1, L8, X5, X7, V1, H2): someone holding the old
 * password while a login is under way, a session used to guess other
 * users' passwords, a stolen cookie after the password changed. Each test
 * names the rule it proves, and failed before its fix (or guards a path no
 * other test walks).
 */
import * as oidc from 'openid-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MINUTE } from '../src/clock.js';
import { DEFAULT_LIMITS, type Limits } from '../src/throttle/throttle.js';
import { generatePhoneKeys, publicKeys } from '../src/mobile-app/protocol.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/http/app.js';
import { createServices, type Services } from '../src/services.js';
import {
  DATABASES,
  PASSWORD,
  cardAnswer,
  createUserWithCard,
  openTestDatabase,
  startHarness,
  testConfig,
  uniqueUsername,
  type Harness,
  type TestDatabase,
} from './support/harness.js';
import {
  answer,
  bearer,
  claimOf,
  claimSession,
  get,
  readLogin,
  loginSession,
  postJson,
  startLogin,
  stepUp,
  withCard,
  type ApiResponse,
} from './support/api.js';
import { Browser, listeningHarness, registeredClient, TEST_REDIRECT_URI } from './support/oidc.js';
import { Agent, alertBox, byId, csrfOf, form, textById } from './support/html.js';
import { SESSION_COOKIE } from '../src/http/session-cookie.js';
import { routesOf } from './support/routes.js';
import { TestPhone, harnessInbox, listen, smsUser } from './support/phone.js';
import { onlyDevice } from './support/kind-drivers.js';

const NEW_PASSWORD = 'a brand new passphrase 7';

/** No limit but the one a test sets. */
const OFF: Limits = Object.fromEntries(Object.keys(DEFAULT_LIMITS).map((k) => [k, { perAddress: 0, global: 0 }])) as unknown as Limits;

let addresses = 0;
/** An address of its own for each client of a test, so that the throttle's counters are never shared by accident. */
function address(): string {
  addresses += 1;
  return `10.77.${Math.floor(addresses / 250)}.${(addresses % 250) + 1}`;
}

/** A portal session opened with the card through the API: its bearer headers. */
const cardSession = (h: Harness, user: User, card: CardFile) => loginSession(h.app, user.username, withCard(card));

describe.each(DATABASES)('attacks on web and API sessions (%s)', (database) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(database);
  });
  afterAll(async () => h?.close());

  it("L8, K3, X3: a login someone else started and approved on their own phone is not taken by the user's browser, its claim planted there (the API's claim token as the page's __Secure- claim cookie, which a sibling subdomain may set for that login's path): no session of their account in it (login CSRF), 404 FLOW_NOT_FOUND", async () => {
    const attacker = await smsUser(h);
    const phone = new TestPhone(await listen(h), harnessInbox(h));
    await onlyDevice(h, attacker, (await phone.activate(attacker.username)).deviceId);
    const login = await startLogin(h.app, attacker.username);
    expect((login.body.challenge as Record<string, unknown>).type).toBe('push');
    const flowId = login.body.id as string;
    // the user's own browser (its form token), the attacker's claim planted for that login's pages
    const victim = new Agent(h.app);
    const token = csrfOf(form((await victim.get('/login')).html, '/login'));
    victim.jar.set('__Secure-sls_claim', login.body.claimToken as string);
    const shown = await victim.get(`/login/${flowId}`);
    await phone.approve(await phone.request(attacker.username), (login.body.challenge as Record<string, unknown>).number as string);
    const taken = await victim.post(`/login/${flowId}/session`, { _csrf: token });
    expect(victim.jar.has(SESSION_COOKIE)).toBe(false);
    expect([taken.status, alertBox(taken.html)?.code]).toEqual([404, 'FLOW_NOT_FOUND']);
    expect([shown.status, alertBox(shown.html)?.code]).toEqual([404, 'FLOW_NOT_FOUND']);
    // the attacker's own client still takes it with its claim token
    expect((await claimSession(h.app, login)).status).toBe(200);
  });

  it("X3, L8: every form route of the pages (each POST of the app's route table outside the JSON API and the OpenID Provider) refuses a signed-in admin's browser without its CSRF token, with the token it was given before signing in, or with another signed-in browser's: 403 CSRF_FAILED before the route reads anything; its own token gets past the check", async () => {
    const signedIn = async () => {
      const { user, card } = await createUserWithCard(h.services, '1234', { role: 'admin' });
      const agent = new Agent(h.app);
      // the form's token as the browser had it before signing in (a token an attacker could have given it: login CSRF)
      const before = csrfOf(form((await agent.get('/login')).html, '/login'));
      agent.jar.set(SESSION_COOKIE, (await cardSession(h, user, card)).authorization!.slice('Bearer '.length));
      const own = csrfOf(form((await agent.get('/login')).html, '/login'));
      return { agent, before, own };
    };
    const victim = await signedIn();
    const other = await signedIn();
    const routes = routesOf(h.app).filter(({ method, url }) => method === 'POST' && !url.startsWith('/api/') && !url.startsWith('/oidc') && !url.includes('*'));
    // the pages' forms: the login, its device, the step-up, the settings, the console (the table is the app's, so a new form is tried too)
    expect(routes.length).toBeGreaterThan(30);
    const pathOf = (url: string) => url.replace(/:[A-Za-z]+/g, 'x');
    const wrong: string[] = [];
    for (const { url } of routes) {
      for (const [what, fields] of [
        ['no token', {}],
        ['the token of before the login', { _csrf: victim.before }],
        ["another browser's token", { _csrf: other.own }],
      ] as [string, Record<string, string>][]) {
        const page = await victim.agent.post(pathOf(url), fields);
        if (page.status !== 403 || alertBox(page.html)?.code !== 'CSRF_FAILED')
          wrong.push(`${url} (${what}): ${page.status} ${alertBox(page.html)?.code ?? ''}`);
      }
    }
    expect(wrong).toEqual([]);
    // nothing of it was done: the session lives (not even the logout went through)
    expect((await victim.agent.get('/account')).status).toBe(200);
    // the browser's own token is no CSRF refusal (the route then answers what it answers); the logout, which ends the session the token is bound to, last
    const ordered = [...routes.filter(({ url }) => url !== '/logout'), ...routes.filter(({ url }) => url === '/logout')];
    for (const { url } of ordered) {
      const page = await victim.agent.post(pathOf(url), { _csrf: victim.own });
      if (alertBox(page.html)?.code === 'CSRF_FAILED') wrong.push(`${url} (own token): CSRF_FAILED`);
    }
    expect(wrong).toEqual([]);
  });

  it('L8, L1: what the old password started is over once the password changes: a login or an activation of the authenticator under way, finished with the device afterwards, opens no session and binds no authenticator', async () => {
    const { user, card } = await createUserWithCard(h.services);
    // someone holding the old password (and the device's answers: a SIM swap, a card seen) starts a login and an activation
    const login = await startLogin(h.app, user.username);
    expect(login.status).toBe(200);
    const activation = await postJson(h.app, '/api/v1/mobile/activations', { username: user.username, password: PASSWORD, purpose: 'activate' });
    expect(activation.status, JSON.stringify(activation.body)).toBe(200);
    expect(activation.body.proof).toBe('device');
    // the user, in a session of their own, verifies again and changes the password
    const mine = await cardSession(h, user, card);
    await stepUp(h.app, mine, withCard(card));
    expect((await postJson(h.app, '/api/v1/password', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, mine)).status).toBe(204);

    const late = await answer(h.app, login.body.id as string, cardAnswer(card, login.body.challenge.question));
    expect([late.status, late.body.error?.code], JSON.stringify(late.body)).toEqual([410, 'FLOW_EXPIRED']);
    expect((await readLogin(h.app, login.body.id as string)).body.state).toBe('failed');
    const keys = await publicKeys(await generatePhoneKeys());
    const proof = await postJson(
      h.app,
      `/api/v1/mobile/activations/${activation.body.id as string}/proof`,
      { response: cardAnswer(card, activation.body.challenge.question), ...keys },
      claimOf(activation),
    );
    expect([proof.status, proof.body.error?.code], JSON.stringify(proof.body)).toEqual([410, 'FLOW_EXPIRED']);
    expect((await h.services.devices.listForUser(user.id)).some((d) => d.type === 'mobile')).toBe(false);
    // the session that changed it goes on; each flow's end is audited with its cause
    expect((await get(h.app, '/api/v1/session', mine)).status).toBe(200);
    const ended = (await h.services.audit.list({ userId: user.id, limit: 200 })).filter((e) => e.event === 'login.flow_ended');
    expect(ended.map(({ data: { flowId, kind, reason } }) => ({ flowId, kind, reason })).sort((a, b) => String(a.kind).localeCompare(String(b.kind)))).toEqual([
      { flowId: login.body.id, kind: 'login', reason: 'password_changed' },
      { flowId: activation.body.id, kind: 'mobile_activation', reason: 'password_changed' },
    ]);
    // the new password logs in as usual
    expect((await startLogin(h.app, user.username, NEW_PASSWORD)).status).toBe(200);
  });

  /** The ids of the user's sessions ended by a logout, as audited. */
  const loggedOut = async (userId: string) =>
    (await h.services.audit.list({ userId, limit: 100 }))
      .filter((e) => e.event === 'session.ended' && e.data.reason === 'logout')
      .map((e) => e.data.sessionId as string)
      .sort();

  it('L8: a logout with a Bearer token and the cookie of another session ends both, each audited', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const api = await cardSession(h, user, card);
    const browser = await cardSession(h, user, card);
    const cookie = { cookie: `__Host-sls_session=${browser.authorization!.slice('Bearer '.length)}` };
    const ids = [(await get(h.app, '/api/v1/session', api)).body.id, (await get(h.app, '/api/v1/session', cookie)).body.id].sort();

    const out = await postJson(h.app, '/api/v1/logout', undefined, { ...api, ...cookie, origin: 'http://localhost:80', host: 'localhost:80' });
    expect(out.status, JSON.stringify(out.body)).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/__Host-sls_session=;/);
    expect((await get(h.app, '/api/v1/session', api)).status).toBe(401);
    expect((await get(h.app, '/api/v1/session', cookie)).status).toBe(401);
    expect(await loggedOut(user.id)).toEqual(ids);
  });

  it("L8, X7: a logout with a Bearer token from another site ends the Bearer's session only: the cookie's session lives on, its cookie kept (CSRF), the refusal audited", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const api = await cardSession(h, user, card);
    const browser = await cardSession(h, user, card);
    const cookie = { cookie: `__Host-sls_session=${browser.authorization!.slice('Bearer '.length)}` };
    const apiId = (await get(h.app, '/api/v1/session', api)).body.id;
    const cookieId = (await get(h.app, '/api/v1/session', cookie)).body.id;

    const out = await postJson(h.app, '/api/v1/logout', undefined, { ...api, ...cookie, origin: 'https://evil.example' });
    expect(out.status, JSON.stringify(out.body)).toBe(204);
    expect(out.headers['set-cookie']).toBeUndefined();
    expect((await get(h.app, '/api/v1/session', api)).status).toBe(401);
    expect((await get(h.app, '/api/v1/session', cookie)).status).toBe(200);
    expect(await loggedOut(user.id)).toEqual([apiId]);
    // not silently: the cookie's session was named and left, and the audit log says so (a forged request's trace)
    const refused = (await h.services.audit.list({ userId: user.id, limit: 100 })).filter((e) => e.event === 'session.refused');
    expect(refused.map((e) => e.data)).toEqual([expect.objectContaining({ sessionId: cookieId, code: 'CSRF_FAILED', path: '/api/v1/logout' })]);
  });

  it('V1, X7: a step-up comes back only to our own pages, whatever `next` a link or a forged form carries (absolute, scheme-relative, backslash, encoded)', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    const login = await agent.get('/login');
    const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
    const challenge = await agent.get(started.location!);
    const question = textById(challenge.html, 'challenge-code')!;
    expect((await agent.submit(challenge, started.location!, { response: cardAnswer(card, question) })).location).toBe('/account');
    // a forged form: its `next` is another site's
    const start = await agent.get('/step-up');
    const stepped = await agent.submit(start, '/step-up', { password: PASSWORD, next: 'https://evil.example/' });
    expect(stepped.location).toMatch(/^\/step-up\/flw_[a-z2-7]{26}\?next=%2Faccount$/);
    const flowPath = stepped.location!.split('?')[0]!;
    const prompt = await agent.get(`${flowPath}?next=${encodeURIComponent('//evil.example')}`);
    const asked = textById(prompt.html, 'challenge-code')!;
    // the page's own form already goes back to /account; a forged post keeps the other site's `next` in its address
    const token = csrfOf(form(prompt.html, `${flowPath}?next=%2Faccount`));
    const done = await agent.post(`${flowPath}?next=${encodeURIComponent('//evil.example')}`, { _csrf: token, response: cardAnswer(card, asked) });
    expect([done.status, done.location]).toEqual([303, '/account']);
    // the step-up done, its page sends the browser to its `next`: never away
    for (const away of [
      '//evil.example',
      '/\\evil.example',
      '\\\\evil.example',
      'https://evil.example/account',
      '/%2F%2Fevil.example',
      '/%5Cevil.example',
      '/account/../\\evil.example',
      '/account@evil.example',
      '/\t/evil.example',
      '/account\r\nLocation: https://evil.example',
      'javascript:alert(1)',
    ]) {
      const back = await agent.get(`${flowPath}?next=${encodeURIComponent(away)}`);
      expect([back.status, back.location], away).toEqual([303, '/account']);
    }
    expect((await agent.get(`${flowPath}?next=${encodeURIComponent('/settings/mobile')}`)).location).toBe('/settings/mobile');
  });

  it('L1, K1, H2: every door that takes a username and a password answers an unknown user, a wrong password and a disabled user (even with the right password) byte for byte alike', async () => {
    const { user: known } = await createUserWithCard(h.services);
    const { user: disabled } = await createUserWithCard(h.services);
    await h.services.store.db.updateTable('users').set({ status: 'disabled' }).where('id', '=', disabled.id).execute();
    const { user: requester, card } = await createUserWithCard(h.services);
    const signedIn = await cardSession(h, requester, card);
    await stepUp(h.app, signedIn, withCard(card));
    const doors: Record<string, (username: string, password: string) => Promise<ApiResponse>> = {
      login: (username, password) => postJson(h.app, '/api/v1/login', { username, password, app: 'portal' }),
      'mobile activation': (username, password) => postJson(h.app, '/api/v1/mobile/activations', { username, password, purpose: 'activate' }),
      'sharing request': (username, password) => postJson(h.app, '/api/v1/sharing', { ownerUsername: username, ownerPassword: password }, signedIn),
    };
    /** What a client sees of an answer, but its request's own id and date. */
    const seen = (res: ApiResponse) => {
      const { 'x-request-id': _id, date: _date, ...headers } = res.headers;
      return { status: res.status, headers, body: res.raw.body.replace(/"requestId":"[^"]*"/, '') };
    };
    for (const [door, knock] of Object.entries(doors)) {
      const unknown = seen(await knock(uniqueUsername('ghost'), 'one guess for all'));
      expect(unknown.status, door).toBe(401);
      expect(seen(await knock(known.username, 'one guess for all')), door).toEqual(unknown);
      expect(seen(await knock(disabled.username, 'one guess for all')), door).toEqual(unknown);
      expect(seen(await knock(disabled.username, PASSWORD)), door).toEqual(unknown);
    }
  });

  describe('L8: a new login in a browser ends the session its cookie held (a copied cookie is not left alive)', () => {
    /** The session token a response set as the browser's cookie. */
    const cookieOf = (res: { cookies: unknown }): string =>
      (res.cookies as { name: string; value: string }[]).find((c) => c.name === '__Host-sls_session')!.value;
    const alive = async (token: string) => (await get(h.app, '/api/v1/session', bearer(token))).status;
    async function replaced(userId: string): Promise<unknown[]> {
      return (await h.services.audit.list({ userId, limit: 100 }))
        .filter((e) => e.event === 'session.ended' && e.data.reason === 'replaced')
        .map((e) => e.data.sessionId);
    }
    /** A login through the JSON API, answered with the card, in a browser holding `cookie` (or none): its session token. */
    async function apiLogin(user: User, card: CardFile, cookie?: string, headers: Record<string, string> = {}): Promise<string> {
      const cookies: Record<string, string> = cookie === undefined ? {} : { '__Host-sls_session': cookie };
      const start = await h.app.inject({
        method: 'POST',
        url: '/api/v1/login',
        cookies,
        headers,
        payload: { username: user.username, password: PASSWORD, app: 'portal' },
      });
      expect(start.statusCode, start.body).toBe(200);
      const done = await h.app.inject({
        method: 'POST',
        url: `/api/v1/login/${start.json().id as string}`,
        cookies,
        headers: { ...headers, 'x-claim-token': start.json().claimToken as string },
        payload: { response: cardAnswer(card, start.json().challenge.question) },
      });
      expect(done.statusCode, done.body).toBe(200);
      expect(cookieOf(done)).toBe(done.json().session.token);
      return done.json().session.token as string;
    }

    it('L8: the API: the same user logging in again in a browser ends the session of the cookie it presented, audited (replaced)', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const first = await apiLogin(user, card);
      const firstId = (await get(h.app, '/api/v1/session', bearer(first))).body.id;
      // someone copied the cookie; the user logs in again in the same browser
      const second = await apiLogin(user, card, first);
      expect(await alive(first)).toBe(401);
      expect(await alive(second)).toBe(200);
      expect(await replaced(user.id)).toEqual([firstId]);
    });

    it("L8: the API: another user logging in in a browser ends the earlier user's session of its cookie, audited under that user", async () => {
      const { user: earlier, card: earlierCard } = await createUserWithCard(h.services);
      const { user: later, card: laterCard } = await createUserWithCard(h.services);
      const first = await apiLogin(earlier, earlierCard);
      const second = await apiLogin(later, laterCard, first);
      expect(await alive(first)).toBe(401);
      expect(await alive(second)).toBe(200);
      expect(await replaced(earlier.id)).toHaveLength(1);
      expect(await replaced(later.id)).toEqual([]);
    });

    it('L8: a Bearer token sent with a login, not being the cookie the answer replaces, is not ended (an integrator holding several sessions keeps them); nor is a session merely named', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const held = await apiLogin(user, card);
      const other = await apiLogin(user, card);
      // the Bearer header is not the browser's cookie: the new session is given beside it
      const next = await apiLogin(user, card, undefined, bearer(held));
      expect(await alive(held)).toBe(200);
      // a cookie that names no live session (made up, or the one just used as a Bearer on another client) ends nothing else
      await apiLogin(user, card, 'not-a-session-token');
      expect([await alive(held), await alive(other), await alive(next)]).toEqual([200, 200, 200]);
      expect(await replaced(user.id)).toEqual([]);
    });

    it('L8: the pages: logging in again in a browser (the form, the card) ends the session its cookie held, audited (replaced)', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const agent = new Agent(h.app);
      async function pageLogin(): Promise<string> {
        const login = await agent.get('/login');
        const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
        const challenge = await agent.get(started.location!);
        const question = textById(challenge.html, 'challenge-code')!;
        expect((await agent.submit(challenge, started.location!, { response: cardAnswer(card, question) })).location).toBe('/account');
        return agent.jar.get('__Host-sls_session')!;
      }
      const first = await pageLogin();
      const second = await pageLogin();
      expect(second).not.toBe(first);
      expect(await alive(first)).toBe(401);
      expect(await alive(second)).toBe(200);
      expect(await replaced(user.id)).toHaveLength(1);
    });

    it('L8, O1: the trading login with the password alone (opted out) in a browser ends the session its cookie held too', async () => {
      const { user, card } = await createUserWithCard(h.services);
      await h.services.optOuts.optOut(user.id, { acknowledged: true, confirmation: user.username }, { actor: 'test' });
      const first = await apiLogin(user, card);
      const start = await h.app.inject({
        method: 'POST',
        url: '/api/v1/login',
        cookies: { '__Host-sls_session': first },
        payload: { username: user.username, password: PASSWORD, app: 'trading' },
      });
      expect(start.json().state, start.body).toBe('done');
      expect(await alive(first)).toBe(401);
      expect(await alive(cookieOf(start))).toBe(200);
      expect(await replaced(user.id)).toHaveLength(1);
    });
  });

  /** The attributes of a Set-Cookie header, by lower-case name ('' for a flag). */
  const cookieAttributes = (header: string): { name: string; attrs: Record<string, string> } => {
    const [pair, ...rest] = header.split(';').map((part) => part.trim());
    const attrs = Object.fromEntries(rest.map((a) => [a.split('=')[0]!.toLowerCase(), a.includes('=') ? a.slice(a.indexOf('=') + 1) : '']));
    return { name: pair!.slice(0, pair!.indexOf('=')), attrs };
  };

  it("X3, L8, K3: cookies that matter are __Host- (session, CSRF: Secure, Path=/, no Domain) and __Secure- (the login's claim, path-scoped); a sibling subdomain's tossed cookie under the plain names is not read", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const browser = new Agent(h.app);
    const loginPage = await browser.get('/login');
    const login = await browser.submit(loginPage, '/login', { username: user.username, password: PASSWORD });
    expect(login.status).toBe(303);
    const challenge = await browser.get(login.location!);
    const done = await browser.submit(challenge, login.location!, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) });
    expect([done.status, done.location]).toEqual([303, '/account']);
    const set = [...loginPage.setCookies, ...login.setCookies, ...done.setCookies].map(cookieAttributes);
    const named = (name: string) => set.find((c) => c.name === name);
    for (const name of ['__Host-sls_session', '__Host-sls_csrf']) {
      const cookie = named(name);
      expect(cookie, name).toBeDefined();
      expect(cookie!.attrs, name).toMatchObject({ secure: '', path: '/', httponly: '' });
      expect(cookie!.attrs.domain, name).toBeUndefined();
    }
    expect(named('__Secure-sls_claim')?.attrs).toMatchObject({ secure: '', path: login.location!, httponly: '' });
    expect(set.map((c) => c.name).filter((name) => /^sls_(session|csrf|claim)$/.test(name))).toEqual([]);
    const token = browser.jar.get('__Host-sls_session')!;
    expect(await h.services.sessions.authenticate(token)).toMatchObject({ userId: user.id });

    // the session's token under the plain name (set by a sibling subdomain, or over plain HTTP) opens nothing
    const plain = new Agent(h.app);
    plain.jar.set('sls_session', token);
    expect((await plain.get('/account')).location).toBe('/login');
    expect((await get(h.app, '/api/v1/session', { cookie: `sls_session=${token}` })).status).toBe(401);

    // login CSRF by cookie tossing: the attacker takes a CSRF secret and token of their own from our login page,
    // sets the secret in the victim's browser under the plain name from a sibling subdomain (same site: SameSite does
    // not stop it), and posts the login form of their own account from there: the victim is not logged into it
    const attacker = await createUserWithCard(h.services);
    const theirs = new Agent(h.app);
    const theirPage = await theirs.get('/login');
    const victim = new Agent(h.app);
    victim.jar.set('sls_csrf', theirs.jar.get('__Host-sls_csrf')!);
    const tossed = await victim.post(
      '/login',
      { _csrf: csrfOf(form(theirPage.html, '/login')), username: attacker.user.username, password: PASSWORD },
      { origin: 'https://evil.sls.example', 'sec-fetch-site': 'same-site' },
    );
    expect([tossed.status, alertBox(tossed.html)?.code]).toEqual([403, 'CSRF_FAILED']);
    expect((await h.services.audit.list({ userId: attacker.user.id, limit: 50 })).filter((e) => e.event.startsWith('login.'))).toEqual([]);
  });

  it("D4, C7, X3: a GET starts no proof: another site's link to a device's activation or PIN page (the Lax cookie goes along) opens no challenge (none sent by SMS, none taking the user's open proofs); the page's own button does", async () => {
    const agentId = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user.id;
    const { user, card } = await createUserWithCard(h.services);
    const verification = await h.services.helpDesk.verifyIdentity(agentId, user.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agentId, user.username, { verificationId: verification.id });
    const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
    const flows = async () =>
      (
        await h.services.store.db
          .selectFrom('login_flows')
          .select('kind')
          .where('user_id', '=', user.id)
          .where('kind', 'in', ['activation', 'pin_change'])
          .execute()
      ).length;
    const crossSite = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' };

    // the passcode's session: the DSC+ to reactivate (D4)
    const temporary = await loginSession(h.app, user.username, () => passcode);
    const browser = new Agent(h.app);
    browser.jar.set(SESSION_COOKIE, temporary.authorization!.slice('Bearer '.length));
    const page = await browser.get(`/devices/${dsc.id}/activate`, crossSite);
    expect(page.status).toBe(200);
    expect(byId(page.html, 'challenge-code')).toBeUndefined();
    expect(await flows()).toBe(0);
    const started = await browser.submit(page, `/devices/${dsc.id}/activate/start`);
    expect(started.status).toBe(303);
    const challenge = await browser.get(started.location!);
    expect(textById(challenge.html, 'challenge-code')).toMatch(/^\d{6}$/);
    expect(await flows()).toBe(1);
    const done = await browser.submit(challenge, `/devices/${dsc.id}/activate`, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) });
    expect(done.status).toBe(303);
    expect((await h.services.devices.get(dsc.id)).state).toBe('active');

    // C7: the PIN page of a full session, verified again: no challenge until the button
    const full = new Agent(h.app);
    const fullSession = await cardSession(h, user, card);
    await stepUp(h.app, fullSession, withCard(card));
    full.jar.set(SESSION_COOKIE, fullSession.authorization!.slice('Bearer '.length));
    const before = await flows();
    const pin = await full.get(`/devices/${dsc.id}/pin`, crossSite);
    expect(pin.status).toBe(200);
    expect(byId(pin.html, 'challenge-code')).toBeUndefined();
    expect(await flows()).toBe(before);
    const pinStarted = await full.submit(pin, `/devices/${dsc.id}/pin/start`);
    expect(pinStarted.status).toBe(303);
    expect(textById((await full.get(pinStarted.location!)).html, 'challenge-code')).toMatch(/^\d{6}$/);
    expect(await flows()).toBe(before + 1);
  });

  it("S2, X3: a GET makes no online card: another site's link to the card's page or files (the Lax cookie goes along) creates nothing; the card is made by a POST from our own page, and only then prints", async () => {
    const agentId = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user.id;
    const { user } = await createUserWithCard(h.services);
    const verification = await h.services.helpDesk.verifyIdentity(agentId, user.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agentId, user.username, { verificationId: verification.id });
    const session = await loginSession(h.app, user.username, () => passcode);
    const browser = new Agent(h.app);
    browser.jar.set(SESSION_COOKIE, session.authorization!.slice('Bearer '.length));
    const cards = async () => (await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'online_card');
    const crossSite = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' };

    // another site's links, followed by the victim's browser with its cookie: nothing to print, nothing made
    for (const url of ['/online-card/card.pdf', '/online-card/card.png']) {
      const res = await browser.get(url, crossSite);
      expect([res.status, alertBox(res.html)?.code], url).toEqual([409, 'ONLINE_CARD_NOT_MADE']);
    }
    for (const url of ['/api/v1/online-card/card.pdf', '/api/v1/online-card/card.png']) {
      const res = await get(h.app, url, session);
      expect([res.status, res.body.error?.code], url).toEqual([409, 'ONLINE_CARD_NOT_MADE']);
    }
    const page = await browser.get('/online-card', crossSite);
    expect(page.status).toBe(200);
    expect(textById(page.html, 'code-card')).toBeUndefined();
    expect(await cards()).toEqual([]);
    // a forged form (no token of ours), and a confirmation of a card that is not there
    expect((await browser.post('/online-card', {}, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await browser.post('/online-card', { _csrf: 'made-up' })).status).toBe(403);
    const early = await postJson(h.app, '/api/v1/online-card/printed', {}, session);
    expect([early.status, early.body.error?.code]).toEqual([409, 'ONLINE_CARD_NOT_MADE']);
    expect(await cards()).toEqual([]);

    // the user's own click on our page makes it, once
    const made = await browser.submit(page, '/online-card');
    expect([made.status, made.location]).toEqual([303, '/online-card']);
    expect(await cards()).toHaveLength(1);
    const shown = await browser.get('/online-card');
    expect(byId(shown.html, 'code-card')).toBeDefined();
    expect((await browser.get('/online-card/card.pdf')).raw.rawPayload.subarray(0, 5).toString()).toBe('%PDF-');
    // asked again (a second tab): the same card, not a second one
    expect((await browser.post('/online-card', { _csrf: csrfOf(form(shown.html, '/online-card/printed')) })).status).toBe(303);
    expect(await cards()).toHaveLength(1);
  });
});

describe('cookies over plain HTTP (SLS_COOKIE_SECURE=false: development)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('sqlite', { cookieSecure: false });
  });
  afterAll(async () => h?.close());

  it('X3, L8: without Secure cookies (browsers refuse the prefixes then) the plain names are set and read, and the prefixed ones are not set', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const browser = new Agent(h.app);
    const loginPage = await browser.get('/login');
    const login = await browser.submit(loginPage, '/login', { username: user.username, password: PASSWORD });
    const challenge = await browser.get(login.location!);
    const done = await browser.submit(challenge, login.location!, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) });
    expect([done.status, done.location]).toEqual([303, '/account']);
    expect([...browser.jar.keys()].filter((name) => name.includes('sls_session') || name.includes('sls_csrf')).sort()).toEqual(['sls_csrf', 'sls_session']);
    expect([...loginPage.setCookies, ...login.setCookies, ...done.setCookies].filter((c) => c.startsWith('__') || /;\s*Secure/i.test(c))).toEqual([]);
    expect((await browser.get('/account')).status).toBe(200);
  });
});

describe.each(DATABASES)('the throttle on passwords tried with a session (%s)', (database) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(database, { limits: { ...OFF, login: { perAddress: 3, global: 0 }, answer: { perAddress: 4, global: 0 } } });
  });
  afterAll(async () => h?.close());

  it("X5, H2, L1: the owner's password asked by a sharing request is counted like a login start from the address: a signed-in user does not get a password oracle for every username free of the throttle", async () => {
    const { user: owner } = await createUserWithCard(h.services);
    const { user: requester, card } = await createUserWithCard(h.services);
    // the requester's own login and step-up, from an address of their own
    const from = address();
    const start = await h.app.inject({
      method: 'POST',
      url: '/api/v1/login',
      remoteAddress: from,
      payload: { username: requester.username, password: PASSWORD, app: 'portal' },
    });
    const done = await h.app.inject({
      method: 'POST',
      url: `/api/v1/login/${start.json().id as string}`,
      headers: { 'x-claim-token': start.json().claimToken as string },
      remoteAddress: from,
      payload: { response: cardAnswer(card, start.json().challenge.question) },
    });
    const headers = bearer(done.json().session.token as string);
    await stepUp(h.app, headers, withCard(card));
    // a script trying one password on many usernames, real and not, through the sharing request, from one address
    const guesser = address();
    const statuses: number[] = [];
    for (const ownerUsername of [owner.username, uniqueUsername('ghost'), uniqueUsername('ghost'), owner.username, uniqueUsername('ghost')]) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/api/v1/sharing',
        remoteAddress: guesser,
        headers,
        payload: { ownerUsername, ownerPassword: 'one guess for all' },
      });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) expect(res.json().error.code).toBe('TOO_MANY_REQUESTS');
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    // the lock counts only what was checked
    expect((await h.services.lockout.status(owner.username)).failures).toBe(1);
  });
});

describe.each(DATABASES)("an application's tokens and the session they stand on (%s)", (database) => {
  let h: Harness;
  let issuer: string;
  let client: oidc.Configuration;
  const redirectUri = TEST_REDIRECT_URI;

  beforeAll(async () => {
    ({ h, issuer } = await listeningHarness(database));
    client = (await registeredClient(h, issuer, 'portal', 'Web attack portal')).configuration;
  });
  // the provider reads the system clock: each test starts with ours on it
  beforeEach(() => h.clock.set(Date.now()));
  afterAll(async () => h?.close());

  /** A portal login with the card put in the browser, then the client's authorization request followed to its code and exchanged. */
  async function tokensOf(session: Record<string, string>) {
    const browser = new Browser(issuer);
    browser.jar.set('__Host-sls_session', session.authorization!.slice('Bearer '.length));
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    let url = oidc.buildAuthorizationUrl(client, {
      redirect_uri: redirectUri,
      scope: 'openid offline_access',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    }).href;
    for (let hop = 0; hop < 10 && !url.startsWith(redirectUri); hop++) {
      const page = await browser.request(url);
      expect(page.location, page.html.slice(0, 300)).toBeTruthy();
      url = page.location!;
    }
    return oidc.authorizationCodeGrant(client, new URL(url), { pkceCodeVerifier: verifier, expectedState: state });
  }

  it("L8, I1: a portal session that ended by being idle 30 minutes ends its application's refresh token too, not 12 hours later", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const session = await cardSession(h, user, card);
    const tokens = await tokensOf(session);
    // used within the half hour, the refresh works
    h.clock.advance(20 * MINUTE);
    const refreshed = await oidc.refreshTokenGrant(client, tokens.refresh_token!);
    expect(refreshed.access_token).toBeTruthy();
    // nothing for 30 minutes: the portal session is over (its cookie gets the login page) …
    h.clock.advance(30 * MINUTE + 1_000);
    expect((await get(h.app, '/api/v1/session', session)).status).toBe(401);
    // … and so is what the application holds from it
    await expect(oidc.refreshTokenGrant(client, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it("A4, L8, I1: a password change (the current password and a fresh step-up) ends the other sessions of every kind: a Bearer token, a browser with its pages and its long poll, an application's refresh token", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const changer = await cardSession(h, user, card);
    const api = await cardSession(h, user, card);
    const cookie = { cookie: `__Host-sls_session=${(await cardSession(h, user, card)).authorization!.slice('Bearer '.length)}` };
    const waiting = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, cookie);
    expect(waiting.status).toBe(200);
    const application = await tokensOf(await cardSession(h, user, card));
    // without a fresh step-up, or with a wrong current password, nothing changes
    const stale = await postJson(h.app, '/api/v1/password', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, changer);
    expect([stale.status, stale.body.error.code]).toEqual([403, 'STEP_UP_REQUIRED']);
    await stepUp(h.app, changer, withCard(card));
    const wrong = await postJson(h.app, '/api/v1/password', { currentPassword: 'not the password', newPassword: NEW_PASSWORD }, changer);
    expect([wrong.status, wrong.body.error.code]).toEqual([401, 'INVALID_CREDENTIALS']);
    expect((await get(h.app, '/api/v1/session', api)).status).toBe(200);

    expect((await postJson(h.app, '/api/v1/password', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, changer)).status).toBe(204);
    expect((await get(h.app, '/api/v1/session', api)).status).toBe(401);
    const page = await h.app.inject({ method: 'GET', url: '/account', headers: cookie });
    expect([page.statusCode, page.headers.location]).toEqual([303, '/login']);
    expect((await get(h.app, `/api/v1/step-up/${waiting.body.id as string}?wait=1`, cookie)).status).toBe(401);
    await expect(oidc.refreshTokenGrant(client, application.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    // the session that changed it goes on
    expect((await get(h.app, '/api/v1/session', changer)).status).toBe(200);
  });
});

describe.each(DATABASES.filter((name) => name === 'postgres'))('sessions across server processes on one %s database (X4)', (database) => {
  let db: TestDatabase;
  const processes: { services: Services; app: FastifyInstance }[] = [];

  beforeAll(async () => {
    db = await openTestDatabase(database);
    for (let i = 0; i < 2; i++) {
      const services = await createServices(testConfig(db), { warn: () => undefined });
      const app = await buildApp(services, { logger: false });
      await app.ready();
      processes.push({ services, app });
    }
  });
  afterAll(async () => {
    for (const { app, services } of processes) {
      await app.close();
      await services.close();
    }
    await db?.drop();
  });

  it('L8, X4: a password changed, a logout or staff ending the sessions on one process ends them on the other at once: no process keeps a session the database ended', async () => {
    const [one, two] = processes as [(typeof processes)[0], (typeof processes)[0]];
    const { user, card } = await createUserWithCard(one.services);
    // staff ending every session (here, the service it calls) on one process: the sessions opened on the other end
    const earlier = await loginSession(two.app, user.username, withCard(card));
    await one.services.store.serialized('audit_log', (trx) => one.services.sessions.endWhere(trx, { userId: user.id }, 'ended_by_staff', 'test'));
    expect((await get(two.app, '/api/v1/session', earlier)).status).toBe(401);
    const onOne = await loginSession(one.app, user.username, withCard(card));
    const cookieOnOne = { cookie: `__Host-sls_session=${(await loginSession(one.app, user.username, withCard(card))).authorization!.slice('Bearer '.length)}` };
    const changer = await loginSession(two.app, user.username, withCard(card), { stepUp: true });
    expect((await get(one.app, '/api/v1/session', onOne)).status).toBe(200);
    expect((await one.app.inject({ method: 'GET', url: '/account', headers: cookieOnOne })).statusCode).toBe(200);

    expect((await postJson(two.app, '/api/v1/password', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, changer)).status).toBe(204);
    expect((await get(one.app, '/api/v1/session', onOne)).status).toBe(401);
    expect((await one.app.inject({ method: 'GET', url: '/account', headers: cookieOnOne })).headers.location).toBe('/login');
    // the changer's session, used on the other process, goes on; its logout there ends it here too
    expect((await get(one.app, '/api/v1/session', changer)).status).toBe(200);
    expect((await postJson(two.app, '/api/v1/logout', {}, changer)).status).toBe(204);
    expect((await get(one.app, '/api/v1/session', changer)).status).toBe(401);
  });
});
