/**
 * I1: the Secure Login System as an OpenID Provider, tested with an
 * independent relying party (openid-client) against a real listening
 * server, on SQLite and PostgreSQL. The browser is a small cookie-keeping
 * user agent over fetch; the login in it is our login page and flow.
 */
import { freePort } from './support/delivery.js';
import { cookieNames } from '../src/http/session-cookie.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublicKey, type JsonWebKey, verify as cryptoVerify } from 'node:crypto';
import * as oidc from 'openid-client';
import { join } from 'node:path';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, openTestDatabase, startHarness, type Harness, type TestDatabase } from './support/harness.js';
import { cliEnv, sls, slsInProcess, startServer, type ServerProcess } from './support/cli.js';
import { csrfOf, elements, form, forms } from './support/html.js';
import { claimHeader, readLogin, type Json } from './support/api.js';
import { stepUpStaff } from './support/staff.js';
import { BUILT_IN_DRIVERS, onlyDevice, type Holder } from './support/kind-drivers.js';
import { TestPhone, harnessInbox, smsUser } from './support/phone.js';
import { DAY, MINUTE } from '../src/clock.js';
import { Browser } from './support/oidc.js';
import { artifactKey, userCodeKey } from '../src/oidc/adapter.js';
import { openStore } from '../src/store/database.js';
import { migrateToLatest } from '../src/store/migrate.js';

/** A relying party's endpoints: the redirect URI (never fetched) and the back-channel logout receiver. */
interface RelyingPartyServer {
  url: string;
  logoutTokens: string[];
  /** How many logout tokens to refuse (503) before taking them. */
  refuse: { count: number };
  close(): Promise<void>;
}

async function relyingPartyServer(): Promise<RelyingPartyServer> {
  const logoutTokens: string[] = [];
  const refuse = { count: 0 };
  const server: Server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/backchannel' && refuse.count > 0) {
        refuse.count -= 1;
        res.statusCode = 503;
        res.end();
        return;
      }
      if (req.method === 'POST' && req.url === '/backchannel') logoutTokens.push(new URLSearchParams(body).get('logout_token') ?? '');
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, logoutTokens, refuse, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function payloadOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

describe.each(DATABASES)('I1: OpenID Provider (%s)', (dbName) => {
  let h: Harness;
  let issuer: string;
  let rp: RelyingPartyServer;
  let clientId: string;
  let clientSecret: string;
  let publicClientId: string;
  let deviceClientId: string;
  let deviceConfig: oidc.Configuration;
  let config: oidc.Configuration;
  const redirectUri = () => `${rp.url}/cb`;

  beforeAll(async () => {
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    h = await startHarness(dbName, { publicUrl: issuer });
    // the provider's own clock is the system's: ours starts there too
    h.clock.set(Date.now());
    await h.app.listen({ port, host: '127.0.0.1' });
    rp = await relyingPartyServer();
    const created = await h.services.oidc.clients.create(
      {
        name: 'Client Portal',
        app: 'portal',
        redirectUris: [redirectUri()],
        postLogoutRedirectUris: [`${rp.url}/bye`],
        backchannelLogoutUri: `${rp.url}/backchannel`,
      },
      'test',
    );
    clientId = created.client.clientId;
    clientSecret = created.secret!;
    publicClientId = (await h.services.oidc.clients.create({ name: 'Trading app', app: 'trading', redirectUris: [redirectUri()], public: true }, 'test')).client
      .clientId;
    config = await oidc.discovery(new URL(issuer), clientId, undefined, oidc.ClientSecretBasic(clientSecret), { execute: [oidc.allowInsecureRequests] });
    // RFC 8628: a trading platform without a browser (no redirect URI)
    deviceClientId = (
      await h.services.oidc.clients.create(
        { name: 'Trading desktop', app: 'trading', redirectUris: [], public: true, deviceGrant: true, backchannelLogoutUri: `${rp.url}/backchannel` },
        'test',
      )
    ).client.clientId;
    deviceConfig = await oidc.discovery(new URL(issuer), deviceClientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  });

  // the provider reads the system clock: each test starts with ours on it (a test moves ours on only for itself)
  beforeEach(() => h.clock.set(Date.now()));

  afterAll(async () => {
    await rp?.close();
    await h?.close();
  });

  interface Started {
    url: URL;
    verifier: string;
    state: string;
  }

  async function authorizationUrl(params: Record<string, string> = {}, configuration = config): Promise<Started> {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: redirectUri(),
      scope: 'openid profile sls.entitlements',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      ...params,
    });
    return { url, verifier, state };
  }

  /**
   * Follows redirects; on our login page, logs in with the password and the
   * holder's device; on the step-up page, verifies again. Returns the URL
   * that reached the relying party.
   */
  async function follow(browser: Browser, start: string, holder: Holder, seen: string[] = [], password = PASSWORD): Promise<URL> {
    let url = start;
    for (let hop = 0; hop < 20; hop++) {
      seen.push(new URL(url).pathname);
      if (url.startsWith(rp.url)) return new URL(url);
      const page = await browser.request(url);
      if (page.location) {
        url = page.location;
        continue;
      }
      // the provider's auto-submitted form (another user signed in in this browser: the earlier one is logged out first)
      const posted = forms(page.html).find((f) => f.attrs.method === 'post' && f.attrs.action?.startsWith(`${issuer}/oidc/`));
      if (posted) {
        const fields = Object.fromEntries(elements(posted.inner, 'input').map((i) => [i.attrs.name!, i.attrs.value ?? '']));
        const answered = await browser.request(new URL(posted.attrs.action!, url).href, { form: fields });
        expect(answered.location, answered.html.slice(0, 300)).toBeTruthy();
        url = answered.location!;
        continue;
      }
      const path = new URL(url).pathname;
      // our clock stands still in the tests: brought to now once the provider has opened the request (its moment is
      // in the system clock's seconds), a login or step-up here is not older than the request it answers
      if (path === '/login' || path === '/step-up') h.clock.set(Math.max(Date.now(), h.clock.now()));
      if (path === '/login') {
        const login = form(page.html, '/login');
        const app = new URL(url).searchParams.get('app') ?? 'portal';
        const posted = await browser.request('/login', { form: { _csrf: csrfOf(login), username: holder.user.username, password, app } });
        expect(posted.location, posted.html.slice(0, 500)).toMatch(/\/login\/flw_/);
        url = await answerChallenge(browser, posted.location!, holder);
        continue;
      }
      if (path === '/step-up') {
        const stepUpForm = form(page.html, '/step-up');
        const next = new URL(url).searchParams.get('next')!;
        const posted = await browser.request('/step-up', { form: { _csrf: csrfOf(stepUpForm), password: PASSWORD, next } });
        expect(posted.location, posted.html.slice(0, 500)).toMatch(/\/step-up\/flw_/);
        const flowId = /\/step-up\/(flw_[a-z2-7]+)/.exec(posted.location!)![1]!;
        const challengePage = await browser.request(posted.location!);
        const flow = (await h.services.stepUp.view(await sessionOf(browser), flowId)) as unknown as Json;
        const action = `/step-up/${flowId}?next=${encodeURIComponent(next)}`;
        const answered = await browser.request(action, {
          form: { _csrf: csrfOf(form(challengePage.html, action)), response: await holder.right((await holder.answerable(flow)) as Json) },
        });
        expect(answered.location, answered.html.slice(0, 500)).toBeTruthy();
        url = answered.location!;
        continue;
      }
      throw new Error(`stopped at ${url} (${page.status}): ${page.html.slice(0, 300)}`);
    }
    throw new Error('too many redirects');
  }

  /** The needs and codes of the user's refused sessions (session.refused audit entries). */
  async function refusals(userId: string): Promise<Set<string>> {
    const rows = await h.services.store.db
      .selectFrom('audit_log')
      .select('data')
      .where('event', '=', 'session.refused')
      .where('user_id', '=', userId)
      .execute();
    return new Set(rows.map((row) => JSON.parse(row.data as string) as { need: string; code: string }).map((data) => `${data.need} ${data.code}`));
  }

  /** The data of the user's oidc.login audit entries. */
  async function oidcLogins(userId: string): Promise<Record<string, unknown>[]> {
    const rows = await h.services.store.db.selectFrom('audit_log').select('data').where('event', '=', 'oidc.login').where('user_id', '=', userId).execute();
    return rows.map((row) => JSON.parse(row.data as string) as Record<string, unknown>);
  }

  async function sessionOf(browser: Browser) {
    const session = await h.services.sessions.authenticate(browser.jar.get('__Host-sls_session') ?? '');
    expect(session).not.toBeNull();
    return session!;
  }

  async function answerChallenge(browser: Browser, location: string, holder: Holder, landing = /\/oidc\/interaction\//): Promise<string> {
    const flowId = /\/login\/(flw_[a-z2-7]+)/.exec(location)![1]!;
    const view = await readLogin(h.app, flowId, claimHeader(browser.jar.get(cookieNames(h.services.config).claim)?.split('.')[0]));
    // L8: the browser that started the login holds its claim token (its claim cookie): a device switch or the offline challenge needs it
    view.body.claimToken = browser.jar.get(cookieNames(h.services.config).claim)?.split('.')[0];
    // the authenticator's push is answered offline (K4): its page then shows the typed challenge
    const prompt = await holder.answerable(view.body);
    const page = await browser.request(location);
    const done = await browser.request(`/login/${flowId}`, {
      form: { _csrf: csrfOf(form(page.html, `/login/${flowId}`)), response: await holder.right(prompt) },
    });
    expect(done.location, done.html.slice(0, 500)).toMatch(landing);
    return done.location!;
  }

  /** A login on our login page in this browser (no application waiting): the session it opens replaces the cookie's (L8). */
  async function logInAt(browser: Browser, holder: Holder): Promise<void> {
    h.clock.set(Math.max(Date.now(), h.clock.now()));
    const page = await browser.request('/login?app=portal');
    const posted = await browser.request('/login', {
      form: { _csrf: csrfOf(form(page.html, '/login')), username: holder.user.username, password: PASSWORD, app: 'portal' },
    });
    expect(posted.location, posted.html.slice(0, 500)).toMatch(/\/login\/flw_/);
    await answerChallenge(browser, posted.location!, holder, /\/account$/);
  }

  async function codeFor(holder: Holder, params: Record<string, string> = {}, browser = new Browser(issuer)) {
    const started = await authorizationUrl(params);
    const callback = await follow(browser, started.url.href, holder);
    return { started, callback, browser };
  }

  async function tokensFor(holder: Holder, params: Record<string, string> = {}, browser = new Browser(issuer)) {
    const { started, callback } = await codeFor(holder, params, browser);
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: started.verifier, expectedState: started.state });
    return { tokens, browser, callback, started };
  }

  it('I1: discovery names the issuer, the code flow with S256 PKCE, the acr values, back-channel and RP-initiated logout', async () => {
    const metadata = config.serverMetadata();
    expect(metadata.issuer).toBe(issuer);
    expect(metadata.response_types_supported).toEqual(['code']);
    expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
    expect(metadata.acr_values_supported).toEqual(['urn:sls:acr:password', 'urn:sls:acr:temporary', 'urn:sls:acr:device', 'urn:sls:acr:strong']);
    expect(metadata.backchannel_logout_supported).toBe(true);
    expect(metadata.end_session_endpoint).toBe(`${issuer}/oidc/session/end`);
    const jwks = (await (await fetch(metadata.jwks_uri!)).json()) as { keys: { kid: string; d?: string }[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    // only public halves are published
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);
    // X5: a client's X-Forwarded-* (no proxy trusted here) does not move the endpoints
    const forged = (await (
      await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } })
    ).json()) as { token_endpoint: string };
    expect(forged.token_endpoint).toBe(`${issuer}/oidc/token`);
  });

  it('I1: code + PKCE through our login (password, then the DSC+): ID token with amr, acr, auth_time; userinfo; entitlements', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens } = await tokensFor(holder);
    const claims = tokens.claims()!;
    expect(claims.sub).toBe(holder.user.id);
    expect(claims.amr).toEqual(['pwd', 'hwk', 'otp', 'pin', 'mfa']);
    expect(claims.acr).toBe('urn:sls:acr:strong');
    expect(Math.abs((claims.auth_time as number) - Date.now() / 1000)).toBeLessThan(60);
    const info = await oidc.fetchUserInfo(config, tokens.access_token, holder.user.id);
    expect(info.preferred_username).toBe(holder.user.username);
    expect(info.sls_session_scope).toBe('full');
    expect(info.sls_app).toBe('portal');
    expect(info.sls_withdrawal_limits).toMatchObject({ device: 'dscplus' });
    // the login is audited with the client
    expect((await oidcLogins(holder.user.id)).map((data) => data.clientId)).toContain(clientId);
  });

  for (const [kind, acr, amr] of [
    ['scc', 'urn:sls:acr:device', ['pwd', 'otp', 'mfa']],
    ['sms', 'urn:sls:acr:device', ['pwd', 'sms', 'otp', 'mfa']],
    ['temp_passcode', 'urn:sls:acr:temporary', ['pwd']],
    // K4: the driver answers offline, the response computed with the PIN
    ['mobile', 'urn:sls:acr:strong', ['pwd', 'swk', 'pin', 'mfa']],
    ['security_key', 'urn:sls:acr:strong', ['pwd', 'hwk', 'mfa']],
  ] as const) {
    it(`I1: amr and acr say how the user logged in: ${kind}`, async () => {
      const holder = await BUILT_IN_DRIVERS[kind]!.holder(h);
      const { tokens } = await tokensFor(holder);
      expect(tokens.claims()!.acr).toBe(acr);
      expect(tokens.claims()!.amr).toEqual(amr);
    });
  }

  it('I1/K13: a push to the authenticator, approved with the number and the PIN, opens the application: amr says swk and pin', async () => {
    const user = await smsUser(h);
    const phone = new TestPhone(issuer, harnessInbox(h));
    const enrolment = await phone.activate(user.username);
    await onlyDevice(h, user, enrolment.deviceId);
    const browser = new Browser(issuer);
    const started = await authorizationUrl();
    let url = started.url.href;
    for (let page = await browser.request(url); page.location; page = await browser.request(url)) url = page.location;
    expect(new URL(url).pathname).toBe('/login');
    const loginPage = await browser.request(url);
    const posted = await browser.request('/login', {
      form: { _csrf: csrfOf(form(loginPage.html, '/login')), username: user.username, password: PASSWORD, app: 'portal' },
    });
    const flowId = /\/login\/(flw_[a-z2-7]+)/.exec(posted.location!)![1]!;
    const waiting = await browser.request(posted.location!);
    const shown = (await readLogin(h.app, flowId, claimHeader(browser.jar.get(cookieNames(h.services.config).claim)?.split('.')[0]))).body.challenge as Json;
    expect(shown.type).toBe('push');
    // K13: the number shown on the page, typed on the phone
    const request = await phone.request(user.username);
    expect((await phone.approve(request, shown.number as string)).state).toBe('approved');
    const taken = await browser.request(`/login/${flowId}/session`, { form: { _csrf: csrfOf(form(waiting.html, `/login/${flowId}/session`)) } });
    expect(taken.location).toMatch(/\/oidc\/interaction\//);
    url = taken.location!;
    while (!url.startsWith(rp.url)) url = (await browser.request(url)).location!;
    const tokens = await oidc.authorizationCodeGrant(config, new URL(url), { pkceCodeVerifier: started.verifier, expectedState: started.state });
    expect(tokens.claims()).toMatchObject({ acr: 'urn:sls:acr:strong', amr: ['pwd', 'swk', 'pin', 'mfa'] });
  });

  it('I1: a public client (a trading platform) with PKCE and no secret: the login is a trading login', async () => {
    const publicConfig = await oidc.discovery(new URL(issuer), publicClientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const browser = new Browser(issuer);
    const started = await authorizationUrl({}, publicConfig);
    const seen: string[] = [];
    const callback = await follow(browser, started.url.href, holder, seen);
    const tokens = await oidc.authorizationCodeGrant(publicConfig, callback, { pkceCodeVerifier: started.verifier, expectedState: started.state });
    expect(tokens.claims()!.acr).toBe('urn:sls:acr:strong');
    // L8: the session behind it is a trading session
    expect((await sessionOf(browser)).app).toBe('trading');
    const info = await oidc.fetchUserInfo(publicConfig, tokens.access_token, holder.user.id);
    expect(info.sls_app).toBe('trading');
    // a wrong verifier is refused
    const again = await authorizationUrl({}, publicConfig);
    const callback2 = await follow(browser, again.url.href, holder);
    await expect(
      oidc.authorizationCodeGrant(publicConfig, callback2, { pkceCodeVerifier: oidc.randomPKCECodeVerifier(), expectedState: again.state }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('I1/O1: a trading login opted out of the second factor: the password alone, and acr and amr say so', async () => {
    const publicConfig = await oidc.discovery(new URL(issuer), publicClientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    await h.services.optOuts.optOut(holder.user.id, { acknowledged: true, confirmation: holder.user.username }, { actor: `user:${holder.user.id}` });
    const browser = new Browser(issuer);
    const started = await authorizationUrl({}, publicConfig);
    let url = started.url.href;
    for (let page = await browser.request(url); page.location; page = await browser.request(url)) url = page.location;
    expect(new URL(url).search).toBe('?app=trading');
    const loginPage = await browser.request(url);
    const posted = await browser.request('/login', {
      form: { _csrf: csrfOf(form(loginPage.html, '/login')), username: holder.user.username, password: PASSWORD, app: 'trading' },
    });
    // no device asked: straight back to the application
    expect(posted.location).toMatch(/\/oidc\/interaction\//);
    url = posted.location!;
    while (!url.startsWith(rp.url)) url = (await browser.request(url)).location!;
    const tokens = await oidc.authorizationCodeGrant(publicConfig, new URL(url), { pkceCodeVerifier: started.verifier, expectedState: started.state });
    expect(tokens.claims()).toMatchObject({ acr: 'urn:sls:acr:password', amr: ['pwd'] });
  });

  it('I1: refresh tokens rotate; a rotated refresh token used again revokes the grant', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens } = await tokensFor(holder);
    const first = tokens.refresh_token!;
    expect(first).toBeTruthy();
    const refreshed = await oidc.refreshTokenGrant(config, first);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(first);
    await expect(oidc.refreshTokenGrant(config, first)).rejects.toMatchObject({ error: 'invalid_grant' });
    // the reuse revoked the grant: the new refresh token and the access token are dead too
    await expect(oidc.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    const introspected = await oidc.tokenIntrospection(config, refreshed.access_token);
    expect(introspected.active).toBe(false);
    // audited, with the user and the client
    await expect
      .poll(
        async () =>
          (await h.services.store.db.selectFrom('audit_log').select(['user_id', 'data']).where('event', '=', 'oidc.grant_revoked').execute()).filter(
            (row) => row.user_id === holder.user.id && JSON.parse(row.data as string).route === 'token',
          ).length,
      )
      .toBe(1);
  });

  it('I1, L8: a rotated refresh token expires with the first of its chain: refreshing does not stretch the access beyond a session of the app', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens } = await tokensFor(holder, { scope: 'openid offline_access' });
    const refreshTokens = () => h.services.store.db.selectFrom('oidc_artifacts').select(['id', 'expires_at']).where('model', '=', 'RefreshToken').execute();
    const before = new Map((await refreshTokens()).map((row) => [row.id, row.expires_at!]));
    // D5: the id column keeps a digest of the token
    const first = before.get(artifactKey(h.services.box, tokens.refresh_token!))!;
    // a second later (the provider counts whole seconds of the system clock; ours stands still here)
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    const rotated = (await refreshTokens()).filter((row) => !before.has(row.id));
    expect(rotated).toHaveLength(1);
    // the new one ends when the first would have (to the second), not 12 hours from now
    expect(rotated[0]!.expires_at!).toBeLessThan(first);
    expect(first - rotated[0]!.expires_at!).toBeLessThan(10_000);
  });

  it('I1: introspection and revocation of an access token, by its own client only', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens } = await tokensFor(holder);
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(true);
    // another confidential client learns nothing of this client's token, and cannot revoke it
    const other = await h.services.oidc.clients.create({ name: 'Another portal', app: 'portal', redirectUris: [redirectUri()] }, 'test');
    const otherConfig = await oidc.discovery(new URL(issuer), other.client.clientId, undefined, oidc.ClientSecretBasic(other.secret!), {
      execute: [oidc.allowInsecureRequests],
    });
    expect(await oidc.tokenIntrospection(otherConfig, tokens.access_token)).toEqual({ active: false });
    await oidc.tokenRevocation(otherConfig, tokens.access_token).catch(() => undefined);
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(true);
    await oidc.tokenRevocation(config, tokens.access_token);
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
  });

  it('I1: a second authorization in the same browser needs no new login (our session stands); prompt=login verifies again (V1)', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens, browser } = await tokensFor(holder);
    const firstAuth = tokens.claims()!.auth_time as number;
    const seen: string[] = [];
    const again = await authorizationUrl();
    await follow(browser, again.url.href, holder, seen);
    expect(seen).not.toContain('/login');
    expect(seen).not.toContain('/step-up');
    // V1: prompt=login: the device again, in the step-up; a new auth_time proves it
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    h.clock.set(Math.max(Date.now(), h.clock.now()));
    const stepped: string[] = [];
    const { tokens: fresh } = await (async () => {
      const started = await authorizationUrl({ prompt: 'login' });
      const callback = await follow(browser, started.url.href, holder, stepped);
      return { tokens: await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: started.verifier, expectedState: started.state }) };
    })();
    expect(stepped).toContain('/step-up');
    expect(fresh.claims()!.auth_time as number).toBeGreaterThan(firstAuth);
  });

  it('I1: max_age=0 asks for the device again (step-up) and the new auth_time is within it', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { browser } = await tokensFor(holder);
    // the provider counts max_age in whole seconds of the system clock
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    h.clock.set(Math.max(Date.now(), h.clock.now()));
    const seen: string[] = [];
    const started = await authorizationUrl({ max_age: '0' });
    const callback = await follow(browser, started.url.href, holder, seen);
    expect(seen).toContain('/step-up');
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: started.verifier, expectedState: started.state, maxAge: 0 });
    expect(tokens.claims()!.acr).toBe('urn:sls:acr:strong');
  });

  it('I1: acr_values that the user cannot meet (a temporary passcode, strong asked) → unmet_authentication_requirements at the client, never a 5xx', async () => {
    const holder = await BUILT_IN_DRIVERS.temp_passcode!.holder(h);
    const { callback } = await codeFor(holder, { acr_values: 'urn:sls:acr:strong' });
    expect(callback.searchParams.get('error')).toBe('unmet_authentication_requirements');
  });

  it('I1/T3: a temporary passcode older than 2 days opens only the online security card: the login for an application stops there, no code reaches the client', async () => {
    // the passcode was issued 3 days ago (the provider's artefacts keep today's clock)
    h.clock.set(Date.now() - 3 * 24 * 60 * MINUTE);
    const holder = await BUILT_IN_DRIVERS.temp_passcode!.holder(h);
    h.clock.set(Date.now());
    const browser = new Browser(issuer);
    const started = await authorizationUrl();
    const seen: string[] = [];
    await expect(follow(browser, started.url.href, holder, seen)).rejects.toThrow(/stopped at .*\/oidc\/interaction\/[^ ]+ \(403\)/);
    expect((await sessionOf(browser)).scope).toBe('online_card_only');
    // the page says why, and says it again if the browser comes back
    const again = await browser.request(`${issuer}${seen.at(-1)}`);
    expect(again.status).toBe(403);
    expect(again.html).toContain('you can only print and activate your online security card');
    expect(await refusals(holder.user.id)).toEqual(new Set(['application SCOPE_ONLINE_CARD_ONLY']));
    expect(await oidcLogins(holder.user.id)).toEqual([]);
  });

  it('I1/A5: a login with the one-time password from client services opens no application: the password is replaced first', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { user: agent } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(agent.id, holder.user.username, { method: 'id_document' });
    const { temporaryPassword } = await h.services.helpDesk.resetPassword(agent.id, holder.user.username, { verificationId: verification.id });
    const browser = new Browser(issuer);
    const started = await authorizationUrl();
    const seen: string[] = [];
    // the password and the card: the interaction sends the browser to change the password (which asks for a
    // step-up, where this walk stops), never on to the client
    await expect(follow(browser, started.url.href, holder, seen, temporaryPassword!)).rejects.toThrow();
    const passwordPage = seen.indexOf('/password');
    expect(passwordPage).toBeGreaterThan(0);
    expect(seen[passwordPage - 1]).toMatch(/^\/oidc\/interaction\//);
    expect(await refusals(holder.user.id)).toEqual(new Set(['application PASSWORD_CHANGE_REQUIRED']));
    expect(await oidcLogins(holder.user.id)).toEqual([]);
  });

  it('I1/V1: acr_values above the session (an SMS login, strong asked): the user logs in again with the stronger device; the new acr proves it', async () => {
    const sms = await BUILT_IN_DRIVERS.sms!.holder(h);
    const { tokens: first, browser } = await tokensFor(sms);
    expect(first.claims()!.acr).toBe('urn:sls:acr:device');
    const { card } = await h.services.devices.addDscPlus({ userId: sms.user.id, pin: '1234' }, 'test');
    const dscPlus = (await h.services.devices.listForUser(sms.user.id)).find((d) => d.type === 'dscplus')!;
    const strong: Holder = {
      ...sms,
      // L6: the login may offer the SMS (last used) first: the user switches to the card
      answerable: async (flow) => {
        const challenge = flow.challenge as Json;
        if (challenge.type === 'ocra') return challenge;
        const switched = await h.services.login.switchDevice(flow.id as string, flow.claimToken as string, dscPlus.id, { ip: null, userAgent: null });
        return switched.challenge as unknown as Json;
      },
      right: async (prompt) => cardAnswer(card, prompt.question as string),
    };
    // the provider counts in whole seconds: the first login is a second older than the new request
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    h.clock.set(Math.max(Date.now(), h.clock.now()));
    const seen: string[] = [];
    const started = await authorizationUrl({ acr_values: 'urn:sls:acr:strong' });
    const callback = await follow(browser, started.url.href, strong, seen);
    expect(seen).toContain('/login');
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: started.verifier, expectedState: started.state });
    expect(tokens.claims()).toMatchObject({ acr: 'urn:sls:acr:strong', amr: ['pwd', 'hwk', 'otp', 'pin', 'mfa'] });
  });

  it('I1: acr_values met by the login: the acr says the level asked', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens } = await tokensFor(holder, { acr_values: 'urn:sls:acr:device' });
    expect(tokens.claims()!.acr).toBe('urn:sls:acr:strong');
  });

  it('I1: refusals: unknown client, unregistered redirect URI (an error page, no redirect), public client without PKCE', async () => {
    const browser = new Browser(issuer);
    const unknown = await browser.request(
      `/oidc/auth?client_id=cli_aaaaaaaaaaaaaaaaaaaaaaaaaa&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(redirectUri())}`,
    );
    expect(unknown.status).toBe(400);
    expect(unknown.html).toContain('invalid_client');
    const started = await authorizationUrl({ redirect_uri: 'https://evil.example/cb' });
    const wrongRedirect = await browser.request(started.url.href);
    expect(wrongRedirect.status).toBe(400);
    expect(wrongRedirect.location).toBeNull();
    expect(wrongRedirect.html).toContain('redirect_uri');
    const noPkce = await browser.request(
      `/oidc/auth?client_id=${publicClientId}&response_type=code&scope=openid&state=s1&redirect_uri=${encodeURIComponent(redirectUri())}`,
    );
    expect(noPkce.status).toBe(303);
    const back = new URL(noPkce.location!);
    expect(back.searchParams.get('error')).toBe('invalid_request');
    expect(back.searchParams.get('error_description')).toMatch(/PKCE/);
    // an interaction that does not exist (or expired): our error page, not a 5xx
    const gone = await browser.request('/oidc/interaction/nosuchinteraction');
    expect(gone.status).toBe(410);
    // a token request with a wrong secret: the standard error
    const wrongSecret = await fetch(`${issuer}/oidc/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:wrong`).toString('base64')}` },
      body: 'grant_type=authorization_code&code=x&redirect_uri=x&code_verifier=x',
    });
    expect(wrongSecret.status).toBe(401);
    expect(((await wrongSecret.json()) as { error: string }).error).toBe('invalid_client');
  });

  it('I1: a code used twice is refused and revokes the grant; an expired code is refused', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens, callback, started } = await tokensFor(holder);
    await expect(oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: started.verifier, expectedState: started.state })).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
    const late = await codeFor(holder);
    h.clock.advance(2 * MINUTE);
    await expect(
      oidc.authorizationCodeGrant(config, late.callback, { pkceCodeVerifier: late.started.verifier, expectedState: late.started.state }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  /**
   * L4: of concurrent copies, at most one is given tokens; the others are a
   * reuse (RFC 6749 §4.1.2), so the grant is revoked and those tokens, if
   * any, do not work either — whichever copy the database served first.
   */
  async function expectUsableAtMostOnceAndRevoked(results: PromiseSettledResult<oidc.TokenEndpointResponse>[], configuration: oidc.Configuration) {
    const granted = results.filter((r): r is PromiseFulfilledResult<oidc.TokenEndpointResponse> => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(granted.length).toBeLessThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(results.length - 1);
    for (const r of refused) expect(r.reason).toMatchObject({ error: 'invalid_grant' });
    for (const { value } of granted) {
      await expect(oidc.refreshTokenGrant(configuration, value.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect((await oidc.tokenIntrospection(configuration, value.access_token)).active).toBe(false);
    }
  }

  it('I1, L4: copies of one code exchanged at once give tokens at most once, and the reuse revokes them', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { started, callback } = await codeFor(holder);
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: started.verifier, expectedState: started.state })),
    );
    await expectUsableAtMostOnceAndRevoked(results, config);
  });

  it('I1, L8, T3: a refresh token stops working when the session it stands on ends, though the provider would still honour it (the full access of a temporary passcode ends at day 2)', async () => {
    const holder = await BUILT_IN_DRIVERS.temp_passcode!.holder(h);
    const now = h.clock.now();
    try {
      // logged in 10 minutes before the passcode's full access ends: our session ends with it, the provider's tokens would last hours
      h.clock.advance(2 * DAY - 10 * MINUTE);
      const { tokens } = await tokensFor(holder, { scope: 'openid offline_access' });
      const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
      h.clock.advance(20 * MINUTE);
      await expect(oidc.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    } finally {
      h.clock.set(now);
      // what this test made two days ahead would outlive the later tests' hours (the scheduler's clean-up)
      await h.services.store.db
        .deleteFrom('oidc_artifacts')
        .where('expires_at', '>', now + DAY)
        .execute();
    }
  });

  it('I1, L8: logout ends our session: the client receives a back-channel logout token for the session (sid)', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens, browser } = await tokensFor(holder);
    rp.logoutTokens.length = 0;
    const sid = tokens.claims()!.sid as string;
    expect(sid).toBeTruthy();
    const account = await browser.request('/account');
    const logout = await browser.request('/logout', { form: { _csrf: csrfOf(form(account.html, '/logout')) } });
    expect(logout.status).toBe(303);
    // told at once (not only at the scheduler's next run)
    await expect.poll(() => rp.logoutTokens.length, { timeout: 5_000 }).toBe(1);
    const logoutToken = payloadOf(rp.logoutTokens[0]!);
    expect(logoutToken).toMatchObject({ iss: issuer, aud: clientId, sub: holder.user.id, sid });
    expect(logoutToken.events).toEqual({ 'http://schemas.openid.net/event/backchannel-logout': {} });
    // the grant is revoked with the session
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    // delivered once
    await h.services.scheduler.runDue();
    expect(rp.logoutTokens).toHaveLength(1);
  });

  /** The data of the back-channel logout audited for one session of ours, once it is done (undefined before). */
  async function backChannelLogoutOf(sessionId: string): Promise<Record<string, unknown> | undefined> {
    const rows = await h.services.store.db.selectFrom('audit_log').select('data').where('event', '=', 'oidc.backchannel_logout').execute();
    return rows.map((row) => JSON.parse(row.data as string) as Record<string, unknown>).find((data) => data.sessionId === sessionId);
  }

  describe.each([
    ['another user', 'before'],
    ['another user', 'after'],
    ['the same user', 'before'],
    ['the same user', 'after'],
  ] as const)('I1, L8: %s logging in again in a browser signed in to a client (the client told %s the new login signs in to it)', (who, when) => {
    it('I1, L8: the earlier session’s grant is revoked and its client told with its sid; the new login’s grant, tokens and provider session live on', async () => {
      const earlier = await BUILT_IN_DRIVERS.dscplus!.holder(h);
      const browser = new Browser(issuer);
      const first = await tokensFor(earlier, {}, browser);
      const firstSid = first.tokens.claims()!.sid as string;
      const firstSession = (await sessionOf(browser)).id;
      rp.logoutTokens.length = 0;
      const link = h.services.store.db.updateTable('oidc_session_links').where('sls_session_id', '=', firstSession);
      // 'after': the back-channel logout of the replaced session is held (not due) until the new login has its tokens
      if (when === 'after') await link.set({ next_attempt_at: h.clock.now() + DAY }).execute();
      const later = who === 'the same user' ? earlier : await BUILT_IN_DRIVERS.dscplus!.holder(h);
      await logInAt(browser, later);
      expect(await h.services.sessions.authenticate(browser.jar.get('__Host-sls_session')!)).not.toBeNull();
      if (when === 'before') {
        await h.services.oidc.deliverBackChannel();
        await expect.poll(() => backChannelLogoutOf(firstSession), { timeout: 5_000 }).toBeDefined();
      }
      const second = await tokensFor(later, {}, browser);
      expect(second.tokens.claims()).toMatchObject({ sub: later.user.id });
      const secondSid = second.tokens.claims()!.sid as string;
      expect(secondSid).not.toBe(firstSid);
      if (when === 'after') {
        await link.set({ next_attempt_at: 0 }).execute();
        await h.services.oidc.deliverBackChannel();
      }
      // the earlier session's client is told, with its sid, by the back-channel logout of that session
      expect(await backChannelLogoutOf(firstSession)).toMatchObject({ clients: [clientId], failed: [] });
      const told = rp.logoutTokens.map(payloadOf);
      expect(told.length).toBeGreaterThan(0);
      for (const token of told) expect(token).toMatchObject({ aud: clientId, sub: earlier.user.id, sid: firstSid });
      // its tokens are dead
      await expect(oidc.refreshTokenGrant(config, first.tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect((await oidc.tokenIntrospection(config, first.tokens.access_token)).active).toBe(false);
      // the new login's work: its refresh token (bound to the provider session) refreshes, the user info is its user's
      await h.services.scheduler.runDue();
      expect((await oidc.tokenIntrospection(config, second.tokens.access_token)).active).toBe(true);
      const refreshed = await oidc.refreshTokenGrant(config, second.tokens.refresh_token!);
      expect((await oidc.fetchUserInfo(config, refreshed.access_token, later.user.id)).sub).toBe(later.user.id);
      // … and the browser goes on signed in to the client without another login
      const seen: string[] = [];
      const again = await authorizationUrl();
      await follow(browser, again.url.href, later, seen);
      expect(seen).not.toContain('/login');
    });
  });

  it('I1, L8: a password reset by the help desk ends the sessions: back-channel logout to the client', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens } = await tokensFor(holder);
    rp.logoutTokens.length = 0;
    // A5: client services verify the caller and reset the password (the help desk's own path)
    const { user: agent } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(agent.id, holder.user.username, { method: 'id_document' });
    await h.services.helpDesk.resetPassword(agent.id, holder.user.username, { verificationId: verification.id });
    await expect.poll(() => rp.logoutTokens.map((t) => payloadOf(t).sid), { timeout: 5_000 }).toEqual([tokens.claims()!.sid]);
  });

  it('I1, L8: a client that does not take the logout token is tried again by the scheduler', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens } = await tokensFor(holder);
    rp.logoutTokens.length = 0;
    rp.refuse.count = 1;
    // L8: the card reported lost ends the sessions it opened
    await h.services.store.serialized('audit_log', (trx) => h.services.sessions.endWhere(trx, { userId: holder.user.id }, 'device_lost', 'test'));
    const attempts = async () =>
      (await h.services.store.db.selectFrom('oidc_session_links').select('attempts').where('user_id', '=', holder.user.id).executeTakeFirstOrThrow()).attempts;
    // the first attempt (at once) is refused by the client
    await expect.poll(() => rp.refuse.count, { timeout: 5_000 }).toBe(0);
    expect(await attempts()).toBe(1);
    expect(rp.logoutTokens).toEqual([]);
    // the client is not told yet, but its tokens are dead already: they never outlive the session while it is retried
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
    // not before its time
    await h.services.scheduler.runDue();
    expect(rp.logoutTokens).toEqual([]);
    h.clock.advance(MINUTE + 1_000);
    await h.services.scheduler.runDue();
    expect(rp.logoutTokens.map((t) => payloadOf(t).sid)).toEqual([tokens.claims()!.sid]);
  });

  it('I1: RP-initiated logout ends the provider session and ours', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { tokens, browser } = await tokensFor(holder);
    const end = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: `${rp.url}/bye`, state: 'bye1' });
    // X2: the provider's pages speak the browser's language
    const french = await fetch(end.href, { headers: { 'accept-language': 'fr', cookie: [...browser.jar].map(([k, v]) => `${k}=${v}`).join('; ') } });
    expect(await french.text()).toContain('Oui, me déconnecter');
    const confirm = await browser.request(end.href);
    expect(confirm.status).toBe(200);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.html)![1]!;
    const done = await browser.request('/oidc/session/end/confirm', { form: { xsrf, logout: 'yes' } });
    expect(done.location).toBe(`${rp.url}/bye?state=bye1`);
    expect(await h.services.sessions.authenticate(browser.jar.get('__Host-sls_session') ?? 'none')).toBeNull();
  });

  /** RFC 8628: the device asks for a code; openid-client polls (quickly: the provider sets no interval, 5 s by default). */
  /** RFC 8628: the grant type a device polls the token endpoint with. */
  const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

  async function deviceCode(scope = 'openid profile offline_access') {
    const response = await oidc.initiateDeviceAuthorization(deviceConfig, { scope });
    expect(response.interval).toBe(5);
    /**
     * The device's next poll, its interval (RFC 8628 §3.2) after the last on our clock, as it must (§3.5: sooner is
     * slow_down): its tokens, else the error it is answered (authorization_pending, access_denied …)
     */
    const poll = () => {
      h.clock.advance(response.interval! * 1000);
      return oidc.genericGrantRequest(deviceConfig, DEVICE_CODE_GRANT, { device_code: response.device_code });
    };
    return { response, poll };
  }

  const xsrfOf = (html: string) => /name="xsrf" value="([^"]+)"/.exec(html)![1]!;

  /** The user types the code on the device page and sees the confirmation (the page's HTML). */
  async function typeUserCode(browser: Browser, userCode: string) {
    const input = await browser.request('/oidc/device');
    expect(input.status).toBe(200);
    return browser.request('/oidc/device', { form: { xsrf: xsrfOf(input.html), user_code: userCode } });
  }

  /** Types the code, confirms, logs in with the holder's device; returns the success page. */
  async function approveDevice(browser: Browser, userCode: string, holder: Holder, seen: string[] = []) {
    const confirmation = await typeUserCode(browser, userCode);
    expect(confirmation.status, confirmation.html.slice(0, 300)).toBe(200);
    const confirmed = await browser.request('/oidc/device', { form: { xsrf: xsrfOf(confirmation.html), user_code: userCode, confirm: 'yes' } });
    let url = confirmed.location!;
    for (let hop = 0; hop < 10; hop++) {
      seen.push(new URL(url).pathname);
      const page = await browser.request(url);
      if (page.location) {
        url = page.location;
        continue;
      }
      if (new URL(url).pathname !== '/login') return page;
      // the login must be newer than the approval (the provider's clock is the system's)
      h.clock.set(Math.max(Date.now(), h.clock.now()));
      const app = new URL(url).searchParams.get('app')!;
      const posted = await browser.request('/login', {
        form: { _csrf: csrfOf(form(page.html, '/login')), username: holder.user.username, password: PASSWORD, app },
      });
      url = await answerChallenge(browser, posted.location!, holder);
    }
    throw new Error(`too many redirects: ${seen.join(' ')}`);
  }

  it('I1 (RFC 8628): a trading platform without a browser shows a code; the user types it, confirms, logs in with the DSC+; the platform gets its tokens', async () => {
    const metadata = deviceConfig.serverMetadata();
    expect(metadata.device_authorization_endpoint).toBe(`${issuer}/oidc/device/auth`);
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { response, poll } = await deviceCode();
    expect(response.verification_uri).toBe(`${issuer}/oidc/device`);
    expect(response.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    // polling before the user approved: the platform waits
    await expect(poll()).rejects.toMatchObject({ error: 'authorization_pending' });
    const browser = new Browser(issuer);
    const confirmation = await typeUserCode(browser, response.user_code.toLowerCase().replace('-', ' '));
    // the confirmation names the application and the code, and warns against a code sent by someone else (RFC 8628 §5.4)
    expect(confirmation.html).toContain('Trading desktop (Trading platform)');
    expect(confirmation.html).toContain(response.user_code);
    expect(confirmation.html).toContain('If someone sent you this code or link');
    const seen: string[] = [];
    const done = await approveDevice(browser, response.user_code, holder, seen);
    expect(seen).toContain('/login');
    expect(done.html).toContain('Trading desktop is signed in');
    const tokens = await poll();
    expect(tokens.claims()).toMatchObject({ sub: holder.user.id, acr: 'urn:sls:acr:strong', amr: ['pwd', 'hwk', 'otp', 'pin', 'mfa'] });
    // L8: the login behind it is a trading login
    expect((await sessionOf(browser)).app).toBe('trading');
    const info = await oidc.fetchUserInfo(deviceConfig, tokens.access_token, holder.user.id);
    expect(info.preferred_username).toBe(holder.user.username);
    // refresh tokens rotate as for the code flow
    expect((await oidc.refreshTokenGrant(deviceConfig, tokens.refresh_token!)).access_token).toBeTruthy();
    // audited: the device's request, and the login with its grant
    const events = await h.services.store.db
      .selectFrom('audit_log')
      .select(['event', 'user_id', 'data'])
      .where('event', 'in', ['oidc.device_requested', 'oidc.login'])
      .execute();
    expect(events.some((e) => e.event === 'oidc.device_requested' && JSON.parse(e.data as string).clientId === deviceClientId)).toBe(true);
    expect(events.some((e) => e.event === 'oidc.login' && e.user_id === holder.user.id && JSON.parse(e.data as string).grant === 'device_code')).toBe(true);
  });

  it('I1 (RFC 8628 §5.4): a browser already signed in to the trading platform still logs in again to approve a device', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const browser = new Browser(issuer);
    const first = await deviceCode();
    await approveDevice(browser, first.response.user_code, holder);
    await first.poll();
    // a second code (as an attacker would send it), a moment later: the open session is not enough
    h.clock.set(h.clock.now() + 1_000);
    const second = await deviceCode();
    const seen: string[] = [];
    await approveDevice(browser, second.response.user_code, holder, seen);
    expect(seen).toContain('/login');
    expect((await second.poll()).claims()!.sub).toBe(holder.user.id);
  });

  describe.each(['the same user approving a second device', 'the same user logging in again', 'another user logging in'] as const)(
    'I1, L8 (RFC 8628): a device approved in a browser, then %s there',
    (then) => {
      it('I1, L8 (RFC 8628): the user’s devices keep working across the user’s own logins in that browser; another person’s login ends them', async () => {
        const first = await BUILT_IN_DRIVERS.dscplus!.holder(h);
        const browser = new Browser(issuer);
        const a = await deviceCode();
        await approveDevice(browser, a.response.user_code, first);
        const aTokens = await a.poll();
        const aSession = (await sessionOf(browser)).id;
        rp.logoutTokens.length = 0;
        h.clock.set(h.clock.now() + 1_000);
        if (then === 'the same user approving a second device') {
          const b = await deviceCode();
          await approveDevice(browser, b.response.user_code, first);
          expect((await oidc.refreshTokenGrant(deviceConfig, (await b.poll()).refresh_token!)).access_token).toBeTruthy();
        } else {
          await logInAt(browser, then === 'the same user logging in again' ? first : await BUILT_IN_DRIVERS.dscplus!.holder(h));
        }
        // L8: the login replaced the session the first device was approved in; its back-channel logout has run
        expect(await h.services.sessions.authenticate(browser.jar.get('__Host-sls_session')!)).not.toBeNull();
        await h.services.oidc.deliverBackChannel();
        await expect.poll(() => backChannelLogoutOf(aSession), { timeout: 5_000 }).toBeDefined();
        if (then === 'another user logging in') {
          // another person's login in that browser ends the earlier user's session and what was given under it
          await expect(oidc.refreshTokenGrant(deviceConfig, aTokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
          expect(rp.logoutTokens.map((t) => payloadOf(t).aud)).toEqual([deviceClientId]);
          return;
        }
        // the first device goes on: it stands on the user's login in that browser, which goes on with the new one
        expect(rp.logoutTokens).toEqual([]);
        const refreshed = await oidc.refreshTokenGrant(deviceConfig, aTokens.refresh_token!);
        expect((await oidc.fetchUserInfo(deviceConfig, refreshed.access_token, first.user.id)).sub).toBe(first.user.id);
        // … and ends with it (L8): the browser's logout ends it, and the device is told
        const account = await browser.request('/account');
        expect((await browser.request('/logout', { form: { _csrf: csrfOf(form(account.html, '/logout')) } })).status).toBe(303);
        await expect.poll(() => rp.logoutTokens.map((t) => payloadOf(t).aud), { timeout: 5_000 }).toContain(deviceClientId);
        await expect(oidc.refreshTokenGrant(deviceConfig, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      });
    },
  );

  it('L8, I1 (RFC 8628): a trading device carried over to its user’s portal login in that browser does not keep the portal session from idling out: its refreshes are not the browser’s activity', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const browser = new Browser(issuer);
    const { response, poll } = await deviceCode();
    await approveDevice(browser, response.user_code, holder);
    const tokens = await poll();
    // the same user signs in to the portal there: the device's grant goes on under that login (carried over)
    h.clock.set(h.clock.now() + 1_000);
    await logInAt(browser, holder);
    const portal = browser.jar.get('__Host-sls_session')!;
    expect((await sessionOf(browser)).app).toBe('portal');
    expect(await h.services.sessions.authenticate(portal)).not.toBeNull();
    h.clock.advance(20 * MINUTE);
    const refreshed = await oidc.refreshTokenGrant(deviceConfig, tokens.refresh_token!);
    // the browser left alone 40 minutes: its portal session idled out (30 minutes), whatever the device did meanwhile …
    h.clock.advance(20 * MINUTE);
    expect(await h.services.sessions.authenticate(portal)).toBeNull();
    // … and the device, standing on it, ends with it (L8)
    await expect(oidc.refreshTokenGrant(deviceConfig, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('I1, D2 (RFC 8628): a device carried over to a weaker login of its user (SMS after the DSC+) claims what that login proved from its next refresh on, never the earlier, stronger proof', async () => {
    // a user with SMS and a DSC+
    const sms = await BUILT_IN_DRIVERS.sms!.holder(h);
    const { card } = await h.services.devices.addDscPlus({ userId: sms.user.id, pin: '1234' }, 'test');
    const dscPlus = (await h.services.devices.listForUser(sms.user.id)).find((d) => d.type === 'dscplus')!;
    const using =
      (deviceId: string, type: string): Holder['answerable'] =>
      async (flow) => {
        const challenge = flow.challenge as Json;
        if (challenge.type === type) return challenge;
        return (await h.services.login.switchDevice(flow.id as string, flow.claimToken as string, deviceId, { ip: null, userAgent: null }))
          .challenge as unknown as Json;
      };
    const strong: Holder = { ...sms, answerable: using(dscPlus.id, 'ocra'), right: async (prompt) => cardAnswer(card, prompt.question as string) };
    const weak: Holder = { ...sms, answerable: using(sms.deviceId, 'sms') };
    // the device is approved with the DSC+
    const browser = new Browser(issuer);
    const { response, poll } = await deviceCode();
    await approveDevice(browser, response.user_code, strong);
    const tokens = await poll();
    expect(tokens.claims()).toMatchObject({ acr: 'urn:sls:acr:strong', amr: ['pwd', 'hwk', 'otp', 'pin', 'mfa'] });
    // the same user signs in to the portal there with SMS: the device's grant goes on under that login (carried over) …
    h.clock.set(h.clock.now() + 1_000);
    await logInAt(browser, weak);
    const portal = await sessionOf(browser);
    // … and what the device is told now stands on the SMS: its ID token says so, as its entitlements do
    const refreshed = await oidc.refreshTokenGrant(deviceConfig, tokens.refresh_token!);
    expect(refreshed.claims()).toMatchObject({ acr: 'urn:sls:acr:device', auth_time: Math.floor(portal.createdAt / 1000) });
    expect(refreshed.claims()!.amr).toEqual(expect.arrayContaining(['pwd', 'sms']));
    expect(refreshed.claims()!.amr).not.toContain('hwk');
    // the rotated refresh token keeps to it: a later refresh claims no more
    const again = await oidc.refreshTokenGrant(deviceConfig, refreshed.refresh_token!);
    expect(again.claims()!.acr).toBe('urn:sls:acr:device');
  });

  it('I1 (RFC 8628): the user refuses the device: the platform gets access_denied, and the refusal is audited', async () => {
    const { response, poll } = await deviceCode();
    const browser = new Browser(issuer);
    const confirmation = await typeUserCode(browser, response.user_code);
    const refused = await browser.request('/oidc/device', { form: { xsrf: xsrfOf(confirmation.html), user_code: response.user_code, abort: 'yes' } });
    expect(refused.html).toContain('the device was refused');
    await expect(poll()).rejects.toMatchObject({ error: 'access_denied' });
    const audited = await h.services.store.db.selectFrom('audit_log').select('data').where('event', '=', 'oidc.device_refused').execute();
    expect(audited.some((row) => JSON.parse(row.data as string).clientId === deviceClientId)).toBe(true);
  });

  it('I1 (RFC 8628): a wrong code, an expired code and a code already approved are refused with a clear page; nobody approves a device twice', async () => {
    const browser = new Browser(issuer);
    const wrong = await typeUserCode(browser, 'BBBB-BBBB');
    expect(wrong.html).toContain('This code is not right');
    // X2: in the browser's language
    const french = await fetch(`${issuer}/oidc/device`, { headers: { 'accept-language': 'fr' } });
    expect(await french.text()).toContain('Saisissez le code');
    // approved once by its user …
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { response, poll } = await deviceCode();
    await approveDevice(browser, response.user_code, holder);
    expect((await poll()).claims()!.sub).toBe(holder.user.id);
    // … then an attacker's browser cannot approve it for another user
    const again = await typeUserCode(new Browser(issuer), response.user_code);
    expect(again.html).toContain('This code was already used');
    // a code whose time is up (the provider's own expiry: its clock is the system's)
    const late = await deviceCode();
    // D5: its row names it by a keyed digest of the code (as the provider keeps it, without the dash)
    const lateKey = userCodeKey(h.services.box, late.response.user_code.replace('-', ''));
    const stored = h.services.store.db.selectFrom('oidc_artifacts').where('model', '=', 'DeviceCode').where('user_code', '=', lateKey);
    const payload = JSON.parse((await stored.select('payload').executeTakeFirstOrThrow()).payload) as { exp: number };
    await h.services.store.db
      .updateTable('oidc_artifacts')
      .set({ payload: JSON.stringify({ ...payload, exp: payload.exp - 3_600 }) })
      .where('model', '=', 'DeviceCode')
      .where('user_code', '=', lateKey)
      .execute();
    const expired = await typeUserCode(new Browser(issuer), late.response.user_code);
    expect(expired.html).toContain('This code has expired');
  });

  it('I1, L4 (RFC 8628): copies of the approved device code polled at once give tokens at most once, and the reuse revokes them', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { response } = await deviceCode();
    await approveDevice(new Browser(issuer), response.user_code, holder);
    // the approval is in: of copies polled at once, one is answered, the others are too soon (RFC 8628 §3.5) …
    const copy = () => oidc.genericGrantRequest(deviceConfig, DEVICE_CODE_GRANT, { device_code: response.device_code });
    const copies = await Promise.allSettled(Array.from({ length: 4 }, copy));
    const errorOf = (r: PromiseSettledResult<unknown>) => (r.status === 'rejected' ? (r.reason as { error?: string }).error : undefined);
    const answered = copies.filter((r) => errorOf(r) !== 'slow_down');
    expect(answered, JSON.stringify(copies.map(errorOf))).toHaveLength(1);
    // … and polled again once they may (the interval raised 5 s by each slow_down, 20 s at most): a reuse, refused, which revokes the tokens
    h.clock.advance(20_000);
    const again = await Promise.allSettled(Array.from({ length: 3 }, copy));
    const late = again.filter((r) => errorOf(r) !== 'slow_down');
    // (one at least: once the reuse revoked the grant, the code is gone and the other copies are refused at once)
    expect(late.length).toBeGreaterThanOrEqual(1);
    await expectUsableAtMostOnceAndRevoked([...answered, ...late], deviceConfig);
  });

  /**
   * Runs `then` (to its end) once, right after the approval of a device code
   * is written (the provider's save of the code with its account), before the
   * approving request goes on: where a device polling at that moment, from any
   * process, lands. A hook on the store's statements, not a timing.
   */
  function whenDeviceApproved(then: () => Promise<void>): { fired: () => boolean; restore: () => void } {
    const { store } = h.services;
    const original = store.db;
    let fired = false;
    /** A statement builder whose execution runs `then` after it when it writes the approval. */
    const watched = <B extends object>(builder: B, approval: boolean): B =>
      new Proxy(builder, {
        get(target, property) {
          const value = Reflect.get(target, property, target) as unknown;
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            if (property === 'execute' || property === 'executeTakeFirst') {
              return (async () => {
                const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
                if (approval && !fired) {
                  fired = true;
                  await then();
                }
                return result;
              })();
            }
            const row = property === 'values' ? (args[0] as { model?: string; payload?: string }) : undefined;
            const approves = row?.model === 'DeviceCode' && typeof row.payload === 'string' && 'accountId' in JSON.parse(row.payload);
            const out = (value as (...a: unknown[]) => unknown).apply(target, args);
            return out !== null && typeof out === 'object' && 'execute' in out ? watched(out, approval || approves) : out;
          };
        },
      });
    store.db = new Proxy(original, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (property === 'insertInto') return (table: 'oidc_artifacts') => watched(target.insertInto(table), false);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return { fired: () => fired, restore: () => (store.db = original) };
  }

  // with offline_access its tokens outlive the provider's session; without, they end with it (the provider's
  // expiresWithSession): the poll then also finds that session, with the grant, saved before the approval (X4)
  it.each([
    ['openid profile offline_access', 'the link to our session was written before'],
    ['openid', 'the link to our session and the provider session (its tokens end with it, X4) were written before'],
  ])(
    'I1, L8, X4 (RFC 8628): the device polling the very moment its approval is stored gets its tokens (scope %s): %s (never an invalid_grant)',
    async (scope) => {
      const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
      const { response } = await deviceCode(scope);
      const polls: { status: number; body: Record<string, unknown> }[] = [];
      // the device's poll, as another process would take it, in the gap between the approval and the rest of its request
      const hook = whenDeviceApproved(async () => {
        const answered = await fetch(deviceConfig.serverMetadata().token_endpoint!, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
            device_code: response.device_code,
            client_id: deviceClientId,
          }),
        });
        polls.push({ status: answered.status, body: (await answered.json()) as Record<string, unknown> });
      });
      const browser = new Browser(issuer);
      try {
        const done = await approveDevice(browser, response.user_code, holder);
        expect(done.html).toContain('Trading desktop is signed in');
      } finally {
        hook.restore();
      }
      expect(hook.fired()).toBe(true);
      // the provider still saved its session at the end of the approval, under the cookie it gave: the grant for the client in it
      const sessionRow = await h.services.store.db
        .selectFrom('oidc_artifacts')
        .select('payload')
        .where('model', '=', 'Session')
        .where('id', '=', artifactKey(h.services.box, browser.jar.get('__Host-sls_oidc_session') ?? ''))
        .executeTakeFirst();
      const authorizations = (JSON.parse(sessionRow?.payload ?? '{}') as { authorizations?: Record<string, { grantId?: string }> }).authorizations;
      expect(authorizations?.[deviceClientId]?.grantId).toEqual(expect.any(String));
      expect(polls).toHaveLength(1);
      expect(polls[0]!.status, JSON.stringify(polls[0]!.body)).toBe(200);
      expect(payloadOf(polls[0]!.body.id_token as string)).toMatchObject({ sub: holder.user.id, acr: 'urn:sls:acr:strong' });
      // the tokens stand on the login's session: the platform's refresh works, and ends with that session (L8)
      const refreshed = await oidc.refreshTokenGrant(deviceConfig, polls[0]!.body.refresh_token as string);
      expect(refreshed.access_token).toBeTruthy();
    },
  );

  it('I1, L8 (RFC 8628): a password reset ends the login the device was approved in: the platform is told and its refresh token stops working', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const { response, poll } = await deviceCode();
    await approveDevice(new Browser(issuer), response.user_code, holder);
    const tokens = await poll();
    rp.logoutTokens.length = 0;
    const { user: agent } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(agent.id, holder.user.username, { method: 'id_document' });
    await h.services.helpDesk.resetPassword(agent.id, holder.user.username, { verificationId: verification.id });
    await expect.poll(() => rp.logoutTokens.map((t) => payloadOf(t).aud), { timeout: 5_000 }).toEqual([deviceClientId]);
    await expect(oidc.refreshTokenGrant(deviceConfig, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('I1 (RFC 8628): a client not registered for the device grant cannot ask for a device code', async () => {
    const publicConfig = await oidc.discovery(new URL(issuer), publicClientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    await expect(oidc.initiateDeviceAuthorization(publicConfig, { scope: 'openid' })).rejects.toMatchObject({
      error: 'invalid_request',
      error_description: 'urn:ietf:params:oauth:grant-type:device_code is not allowed for this client',
    });
  });

  it('I1: admins register and delete clients in the console; the secret is shown once; other staff are refused', async () => {
    const { user: admin, card } = await createUserWithCard(h.services, '1234', { role: 'admin' });
    const holder: Holder = {
      user: admin,
      deviceId: '',
      answerable: async (flow) => flow.challenge as Json,
      right: async (prompt) => cardAnswer(card, prompt.question as string),
      wrong: async () => '000000',
    };
    const browser = new Browser(issuer);
    const loginPage = await browser.request('/login');
    const posted = await browser.request('/login', {
      form: { _csrf: csrfOf(form(loginPage.html, '/login')), username: admin.username, password: PASSWORD, app: 'portal' },
    });
    const flowId = /\/login\/(flw_[a-z2-7]+)/.exec(posted.location!)![1]!;
    const challenge = await browser.request(`/login/${flowId}`);
    const prompt = await holder.answerable({
      ...(await readLogin(h.app, flowId, claimHeader(browser.jar.get(cookieNames(h.services.config).claim)?.split('.')[0]))).body,
      claimToken: browser.jar.get(cookieNames(h.services.config).claim)?.split('.')[0],
    });
    await browser.request(`/login/${flowId}`, { form: { _csrf: csrfOf(form(challenge.html, `/login/${flowId}`)), response: await holder.right(prompt) } });
    // V1, X7: an admin registers or deletes a client after a step-up
    await stepUpStaff(h.app, browser, card);
    const consolePage = await browser.request('/helpdesk/oidc-clients');
    expect(consolePage.status).toBe(200);
    const created = await browser.request('/helpdesk/oidc-clients', {
      form: {
        _csrf: csrfOf(form(consolePage.html, '/helpdesk/oidc-clients')),
        name: 'Back office',
        app: 'trading',
        type: 'confidential',
        redirectUri: 'https://bo.example/cb',
      },
    });
    expect(created.status).toBe(200);
    const secret = /<output id="client-secret">([^<]+)<\/output>/.exec(created.html)![1]!;
    const registered = (await h.services.oidc.clients.list()).find((c) => c.name === 'Back office')!;
    expect(registered).toMatchObject({ app: 'trading', public: false, redirectUris: ['https://bo.example/cb'] });
    // stored as a digest only
    const row = await h.services.store.db.selectFrom('oidc_clients').selectAll().where('client_id', '=', registered.clientId).executeTakeFirstOrThrow();
    expect(row.secret_digest).toBe(h.services.oidc.clients.secretDigest(registered.clientId, secret));
    expect(JSON.stringify(row)).not.toContain(secret);
    const again = await browser.request('/helpdesk/oidc-clients');
    expect(again.html).toContain(registered.clientId);
    expect(again.html).not.toContain(secret);
    const deleted = await browser.request(`/helpdesk/oidc-clients/${registered.clientId}/delete`, {
      form: { _csrf: csrfOf(form(again.html, `/helpdesk/oidc-clients/${registered.clientId}/delete`)) },
    });
    expect(deleted.status).toBe(200);
    expect(await h.services.oidc.clients.find(registered.clientId)).toBeNull();
    // RFC 8628: a trading platform without a browser needs no redirect URI; without either, the form says what is missing
    const devicePage = await browser.request('/helpdesk/oidc-clients');
    const device = await browser.request('/helpdesk/oidc-clients', {
      form: {
        _csrf: csrfOf(form(devicePage.html, '/helpdesk/oidc-clients')),
        name: 'Desk',
        app: 'trading',
        type: 'public',
        deviceGrant: 'yes',
        redirectUri: '',
      },
    });
    expect(device.status).toBe(200);
    expect((await h.services.oidc.clients.list()).find((c) => c.name === 'Desk')).toMatchObject({ public: true, deviceGrant: true, redirectUris: [] });
    const neither = await browser.request('/helpdesk/oidc-clients', {
      form: { _csrf: csrfOf(form(device.html, '/helpdesk/oidc-clients')), name: 'Nowhere', app: 'trading', type: 'public', redirectUri: '' },
    });
    expect(neither.status).toBe(400);
    expect(neither.html).toContain('redirect');
    // client services may not
    const { user: agent, card: agentCard } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const other = new Browser(issuer);
    const page2 = await other.request('/login');
    const posted2 = await other.request('/login', {
      form: { _csrf: csrfOf(form(page2.html, '/login')), username: agent.username, password: PASSWORD, app: 'portal' },
    });
    const flow2 = /\/login\/(flw_[a-z2-7]+)/.exec(posted2.location!)![1]!;
    const challenge2 = await other.request(`/login/${flow2}`);
    const question = ((await readLogin(h.app, flow2, claimHeader(other.jar.get(cookieNames(h.services.config).claim)?.split('.')[0]))).body.challenge as Json)
      .question as string;
    await other.request(`/login/${flow2}`, { form: { _csrf: csrfOf(form(challenge2.html, `/login/${flow2}`)), response: cardAnswer(agentCard, question) } });
    expect((await other.request('/helpdesk/oidc-clients')).status).toBe(403);
  });

  it('I1: key rotation: the new key signs, the old one stays published and its tokens still verify', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const before = await tokensFor(holder);
    const oldKid = JSON.parse(Buffer.from(before.tokens.id_token!.split('.')[0]!, 'base64url').toString()).kid as string;
    const { kid } = await h.services.oidc.keys.rotate('test');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const after = await tokensFor(holder);
    const newKid = JSON.parse(Buffer.from(after.tokens.id_token!.split('.')[0]!, 'base64url').toString()).kid as string;
    expect(newKid).toBe(kid);
    const jwks = (await (await fetch(config.serverMetadata().jwks_uri!)).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual([kid, oldKid]);
    // the ID token signed before the rotation still verifies with the published JWKS
    const [header, payload, signature] = before.tokens.id_token!.split('.') as [string, string, string];
    const oldKey = createPublicKey({ key: (jwks.keys as unknown as JsonWebKey[]).find((k) => (k as { kid?: string }).kid === oldKid)!, format: 'jwk' });
    expect(cryptoVerify('RSA-SHA256', Buffer.from(`${header}.${payload}`), oldKey, Buffer.from(signature, 'base64url'))).toBe(true);
  }, 30_000);

  // last in this suite: it moves our clock hours ahead of the provider's
  it('I1, L8: the scheduler keeps the record of a grant that lives, even once no logout of its session waits, and forgets it when the grant is gone', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const browser = new Browser(issuer);
    await tokensFor(holder, {}, browser);
    const session = (await sessionOf(browser)).id;
    const records = () => h.services.store.db.selectFrom('oidc_grant_sessions').select('grant_id').where('sls_session_id', '=', session).execute();
    const [record] = await records();
    expect(record).toBeDefined();
    // no logout of its session waits (as after one was delivered): only the grant's own life keeps its record
    await h.services.store.db.updateTable('oidc_session_links').set({ logged_out_at: h.clock.now() }).where('sls_session_id', '=', session).execute();
    await h.services.oidc.prune();
    expect(await records()).toEqual([record]);
    await h.services.store.db.deleteFrom('oidc_artifacts').where('grant_id', '=', record!.grant_id).execute();
    await h.services.oidc.prune();
    expect(await records()).toEqual([]);
  });

  it('I1, L8: the scheduler forgets the links of sessions of ours that ended once their logout was sent; a logout still waiting, and the session the provider session stands on, keep theirs', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    const browser = new Browser(issuer);
    await tokensFor(holder, {}, browser);
    const first = (await sessionOf(browser)).id;
    const links = async () =>
      (await h.services.store.db.selectFrom('oidc_session_links').select('sls_session_id').where('user_id', '=', holder.user.id).execute())
        .map((link) => link.sls_session_id)
        .sort();
    // the back-channel logout of the first session waits (not due) …
    await h.services.store.db
      .updateTable('oidc_session_links')
      .set({ next_attempt_at: h.clock.now() + DAY })
      .where('sls_session_id', '=', first)
      .execute();
    // … when a new login in the browser replaces it (L8) and signs in to the client again
    await logInAt(browser, holder);
    await tokensFor(holder, {}, browser);
    const second = (await sessionOf(browser)).id;
    await h.services.oidc.prune();
    expect(await links()).toEqual([first, second].sort());
    // sent: the first session's link goes; the second (the provider session stands on it) stays
    await h.services.store.db.updateTable('oidc_session_links').set({ next_attempt_at: 0 }).where('sls_session_id', '=', first).execute();
    await h.services.oidc.deliverBackChannel();
    await h.services.oidc.prune();
    expect(await links()).toEqual([second]);
    // the browser logs out: once its logout is sent, nothing of it is left
    const account = await browser.request('/account');
    expect((await browser.request('/logout', { form: { _csrf: csrfOf(form(account.html, '/logout')) } })).status).toBe(303);
    await h.services.oidc.deliverBackChannel();
    await expect.poll(() => backChannelLogoutOf(second), { timeout: 5_000 }).toBeDefined();
    await h.services.oidc.prune();
    expect(await links()).toEqual([]);
  });

  it('I1: the scheduler deletes expired codes, tokens, sessions and grants, and retired keys once their tokens have expired', async () => {
    const holder = await BUILT_IN_DRIVERS.dscplus!.holder(h);
    await tokensFor(holder);
    const count = async () =>
      Number(
        (
          await h.services.store.db
            .selectFrom('oidc_artifacts')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    expect(await count()).toBeGreaterThan(0);
    const keysBefore = await h.services.store.db.selectFrom('oidc_keys').select('kid').execute();
    expect(keysBefore.length).toBeGreaterThan(1);
    // … a device code (RFC 8628) a day past its expiry: until then a device still polling is told expired_token (§3.5)
    h.clock.advance(25 * 60 * MINUTE);
    await h.services.scheduler.runDue();
    expect(await count()).toBe(0);
    // only the signing key is left
    const keysAfter = await h.services.store.db.selectFrom('oidc_keys').select(['kid', 'retired_at']).execute();
    expect(keysAfter).toEqual([{ kid: expect.any(String), retired_at: null }]);
  });
});

describe.each(DATABASES)('I1: the provider on two server processes sharing one %s database (X4)', (dbName) => {
  let db: TestDatabase;
  let env: NodeJS.ProcessEnv;
  let a: ServerProcess;
  let b: ServerProcess;
  let bUrl: string;
  let rp: RelyingPartyServer;

  beforeAll(async () => {
    db = await openTestDatabase(dbName);
    const [portA, portB] = [await freePort(), await freePort()];
    env = cliEnv(db, { SLS_PUBLIC_URL: `http://127.0.0.1:${portA}` });
    a = await startServer(env, ['--port', String(portA)]);
    b = await startServer(env, ['--port', String(portB)]);
    bUrl = `http://127.0.0.1:${portB}`;
    rp = await relyingPartyServer();
  }, 60_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await rp?.close();
    await db?.drop();
  });

  it('I1/X4: sls client create prints the secret once; a login started on one process is finished on the other; sls oidc rotate-keys reaches both', async () => {
    const created = await sls(['client', 'create', '--name', 'Client Portal', '--app', 'portal', '--redirect-uri', `${rp.url}/cb`, '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    const { clientId, clientSecret } = JSON.parse(created.stdout) as { clientId: string; clientSecret: string };
    expect(clientSecret).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    // refusals: an unknown app, a plain-http redirect URI off localhost, an unknown client (exit 1, the reason said)
    const badApp = await slsInProcess(['client', 'create', '--name', 'X', '--app', 'desk', '--redirect-uri', `${rp.url}/cb`], env);
    expect(badApp.code).toBe(1);
    expect(badApp.stderr).toBe('sls: “app” must be portal or trading.\n');
    const badUri = await slsInProcess(['client', 'create', '--name', 'X', '--app', 'portal', '--redirect-uri', 'http://evil.example/cb'], env);
    expect(badUri.code).toBe(1);
    expect(badUri.stderr).toContain('https');
    const unknown = await slsInProcess(['client', 'show', 'cli_aaaaaaaaaaaaaaaaaaaaaaaaaa'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('sls client list');
    const listed = await slsInProcess(['client', 'list', '--json'], env);
    expect(listed.stdout).toContain(clientId);
    expect(listed.stdout).not.toContain(clientSecret);
    expect((await slsInProcess(['user', 'create', '--username', 'oidcproc', '--password', PASSWORD], env)).code).toBe(0);
    const cardPath = join(db.dataDir, 'oidcproc.json');
    expect((await slsInProcess(['device', 'add-dscplus', '--user', 'oidcproc', '--pin', '1234', '--out', cardPath], env)).code).toBe(0);

    const config = await oidc.discovery(new URL(a.url), clientId, undefined, oidc.ClientSecretBasic(clientSecret), { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${rp.url}/cb`,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    });
    const browser = new Browser(a.url);
    // started on a …
    const started = await browser.request(url.href);
    expect(started.location).toMatch(/\/oidc\/interaction\//);
    // … the interaction, the login and the resume on b
    const onB = (location: string) => `${bUrl}${new URL(location).pathname}${new URL(location).search}`;
    /** On b: the login page, the password, then the DSC+'s answer from the card emulator (`sls dsc`). */
    const logInOnB = async (user: Browser, loginLocation: string, app: string) => {
      const loginPage = await user.request(onB(loginLocation));
      const posted = await user.request(`${bUrl}/login`, {
        form: { _csrf: csrfOf(form(loginPage.html, '/login')), username: 'oidcproc', password: PASSWORD, app },
      });
      const flowPath = new URL(posted.location!).pathname;
      const challengePage = await user.request(`${bUrl}${flowPath}`);
      // L8: the login as the browser that started it reads it (its claim cookie: the claim token, then its binding to
      // the browser, decision 0037)
      const claim = ([...user.jar].find(([name]) => name.endsWith('sls_claim'))?.[1] ?? '').split('.')[0]!;
      const view = (await (await fetch(`${bUrl}/api/v1${flowPath}`, { headers: { 'x-claim-token': claim } })).json()) as { challenge: { question: string } };
      const response = (await slsInProcess(['dsc', '--card', cardPath, '--pin', '1234', '--challenge', view.challenge.question], env)).stdout.trim();
      return user.request(`${bUrl}${flowPath}`, { form: { _csrf: csrfOf(form(challengePage.html, flowPath)), response } });
    };
    const toLogin = await browser.request(onB(started.location!));
    expect(new URL(toLogin.location!).pathname).toBe('/login');
    const answered = await logInOnB(browser, toLogin.location!, 'portal');
    expect(answered.location).toMatch(/\/oidc\/interaction\//);
    const resume = await browser.request(onB(answered.location!));
    const callback = await browser.request(onB(resume.location!));
    expect(callback.location!.startsWith(`${rp.url}/cb?`)).toBe(true);
    // the code is exchanged at a
    const tokens = await oidc.authorizationCodeGrant(config, new URL(callback.location!), { pkceCodeVerifier: verifier, expectedState: state });
    expect(tokens.claims()).toMatchObject({ acr: 'urn:sls:acr:strong', amr: ['pwd', 'hwk', 'otp', 'pin', 'mfa'] });

    // RFC 8628 across processes: a device client made by the command line (no redirect URI); the code is asked for
    // at a, typed, approved and logged in on b, and the tokens polled at a
    const deviceClient = await slsInProcess(['client', 'create', '--name', 'Trading desktop', '--app', 'trading', '--public', '--device'], env);
    expect(deviceClient.code, deviceClient.stderr).toBe(0);
    expect(deviceClient.stdout).toContain('RFC 8628');
    const deviceClientId = /(cli_[a-z2-7]{26})/.exec(deviceClient.stdout)![1]!;
    expect((await slsInProcess(['client', 'list'], env)).stdout).toContain(`${deviceClientId}\ttrading\tpublic+device\tTrading desktop\t-`);
    const deviceConfig = await oidc.discovery(new URL(a.url), deviceClientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const asked = await oidc.initiateDeviceAuthorization(deviceConfig, { scope: 'openid' });
    const phone = new Browser(bUrl);
    const input = await phone.request(`${bUrl}/oidc/device`);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(input.html)![1]!;
    const confirmation = await phone.request(`${bUrl}/oidc/device`, { form: { xsrf, user_code: asked.user_code } });
    const approval = await phone.request(`${bUrl}/oidc/device`, { form: { xsrf, user_code: asked.user_code, confirm: 'yes' } });
    expect(confirmation.html).toContain('Trading desktop');
    const toDeviceLogin = await phone.request(onB(approval.location!));
    expect(toDeviceLogin.location).toContain('/login?app=trading');
    const deviceAnswered = await logInOnB(phone, toDeviceLogin.location!, 'trading');
    const deviceResume = await phone.request(onB(deviceAnswered.location!));
    const success = await phone.request(onB(deviceResume.location!));
    expect(success.html).toContain('Trading desktop is signed in');
    // polled at a once approved: its first poll (RFC 8628 §3.4), not held back by an interval
    const polled = await oidc.pollDeviceAuthorizationGrant(deviceConfig, { ...asked, interval: 0 });
    expect(polled.claims()).toMatchObject({ sub: expect.any(String), acr: 'urn:sls:acr:strong' });

    // a rotation by the command line: both processes publish the new key within seconds
    const rotated = await slsInProcess(['oidc', 'rotate-keys'], env);
    expect(rotated.code, rotated.stderr).toBe(0);
    const kid = /(kid_[a-z2-7]+)/.exec(rotated.stdout)![1]!;
    // each process looks for rotated keys at most every second (KEY_CHECK_MS): polled, not a fixed wait (a loaded machine)
    for (const server of [a.url, bUrl]) {
      const firstKid = async () => ((await (await fetch(`${server}/oidc/jwks`)).json()) as { keys: { kid: string }[] }).keys[0]!.kid;
      await expect.poll(firstKid, { timeout: 30_000, interval: 200 }).toBe(kid);
    }
    // the first command a real `sls` process, the others run in this process (slsInProcess): each process would cost a start of Node
  }, 300_000);
});

describe.each(DATABASES)('I1, L8: the grants given before migration 0023 (%s)', (dbName) => {
  it('I1, L8: migration 0023 keeps the links and records each grant of a provider session under the session it stood on, with its sid', async () => {
    const database = await openTestDatabase(dbName);
    try {
      // a database as the previous version left it: migrated to 0022, a provider session with two clients standing on a session of ours
      const old = openStore(database.url);
      await migrateToLatest(old, '0022_security_key_credentials');
      const authorizations = { portal: { sid: 'sid-portal', grantId: 'grant-portal' }, trading: { sid: 'sid-trading', grantId: 'grant-trading' }, bare: {} };
      const artifact = { model: 'Session', grant_id: null, user_code: null, expires_at: null, consumed_at: null };
      await old.db
        .insertInto('oidc_artifacts')
        .values([
          { ...artifact, id: 'jti-1', uid: 'uid-1', payload: JSON.stringify({ uid: 'uid-1', accountId: 'usr_1', authorizations }) },
          // a provider session no session of ours stands on (its interaction never finished): nothing to record
          { ...artifact, id: 'jti-2', uid: 'uid-2', payload: JSON.stringify({ uid: 'uid-2', authorizations: { portal: { sid: 's', grantId: 'g' } } }) },
        ])
        .execute();
      const link = { oidc_session_uid: 'uid-1', user_id: 'usr_1', logged_out_at: null, attempts: 0, next_attempt_at: 0 };
      await old.db
        .insertInto('oidc_session_links')
        .values([
          { ...link, sls_session_id: 'ses_older', created_at: 1_000 },
          { ...link, sls_session_id: 'ses_newest', created_at: 2_000 },
        ])
        .execute();
      await migrateToLatest(old, '0023_oidc_grant_sessions');
      const records = await old.db.selectFrom('oidc_grant_sessions').selectAll().orderBy('grant_id').execute();
      expect(records.map((r) => ({ ...r, created_at: Number(r.created_at) }))).toEqual([
        { grant_id: 'grant-portal', client_id: 'portal', sid: 'sid-portal', oidc_session_uid: 'uid-1', sls_session_id: 'ses_newest', created_at: 2_000 },
        { grant_id: 'grant-trading', client_id: 'trading', sid: 'sid-trading', oidc_session_uid: 'uid-1', sls_session_id: 'ses_newest', created_at: 2_000 },
      ]);
      const links = await old.db.selectFrom('oidc_session_links').select(['sls_session_id', 'replaced_by']).orderBy('created_at').execute();
      expect(links).toEqual([
        { sls_session_id: 'ses_older', replaced_by: null },
        { sls_session_id: 'ses_newest', replaced_by: null },
      ]);
      // migration 0024: the grants recorded before were given in the browser (no device's), the links are the browser's
      await migrateToLatest(old);
      expect(await old.db.selectFrom('oidc_grant_sessions').select('device_code').execute()).toEqual([{ device_code: 0 }, { device_code: 0 }]);
      expect(await old.db.selectFrom('oidc_session_links').select('devices_only').execute()).toEqual([{ devices_only: 0 }, { devices_only: 0 }]);
      await old.close();
    } finally {
      await database.drop();
    }
  });
});
