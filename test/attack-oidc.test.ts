/**
 * Attacks on the OpenID Provider's tokens (I1): a relying party's refresh
 * and access tokens against the end of the session of ours they stand on
 * (L8: idle, expiry, the user no longer active), the claims they carry
 * after a step-up (acr, amr), a deleted client's tokens, a client secret
 * taken from a copy of the database, and the authorization and logout
 * requests as an attacker shapes them (redirect URIs, PKCE, prompt=none,
 * post-logout redirects, ID token hints), a device's approval. Each test
 * names the rule it proves, and failed before its fix (or guards a path no
 * other test walks).
 */
import * as oidc from 'openid-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DAY, MINUTE } from '../src/clock.js';
import { DATABASES, cardAnswer, createUserWithCard, type Harness } from './support/harness.js';
import { bearer, claimSession, postJson, startLogin, stepUp, type Json } from './support/api.js';
import { issuePasscode } from './support/staff.js';
import { TestPhone, harnessInbox, listen, smsUser } from './support/phone.js';
import { BUILT_IN_DRIVERS, onlyDevice } from './support/kind-drivers.js';
import { Browser, listeningHarness, registeredClient, signIn as signInWith, TEST_REDIRECT_URI } from './support/oidc.js';
import { alertBox, elements, forms } from './support/html.js';
import { artifactKey } from '../src/oidc/adapter.js';

describe.each(DATABASES)('attacks on the OpenID tokens (%s)', (database) => {
  let h: Harness;
  let issuer: string;
  let agentId: string;
  let portalClient: oidc.Configuration;
  let tradingClient: oidc.Configuration;
  /** Never fetched: the clients' redirect URI, where a code would arrive. */
  const redirectUri = TEST_REDIRECT_URI;

  const clientOf = (app: 'portal' | 'trading', name: string) => registeredClient(h, issuer, app, name);

  beforeAll(async () => {
    ({ h, issuer } = await listeningHarness(database));
    agentId = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user.id;
    portalClient = (await clientOf('portal', 'Attack portal')).configuration;
    tradingClient = (await clientOf('trading', 'Attack trading')).configuration;
  });
  // the provider reads the system clock: each test starts with ours on it
  beforeEach(() => h.clock.set(Date.now()));
  afterAll(async () => {
    await h?.close();
  });

  const signIn = (browser: Browser, username: string, respond: (flow: Json) => Promise<string> | string, app: 'portal' | 'trading' = 'portal') =>
    signInWith(h, browser, username, respond, app);

  /**
   * An authorization request of a client, its redirects followed in the browser, the code exchanged; nothing is typed on
   * the way. `setCookies`: the Set-Cookie lines of every answer on the way.
   */
  async function tokensOf(browser: Browser, configuration = portalClient, scope = 'openid offline_access', setCookies: string[] = []) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    let url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: redirectUri,
      scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    }).href;
    for (let hop = 0; hop < 12 && !url.startsWith(redirectUri); hop++) {
      const page = await browser.request(url);
      setCookies.push(...page.setCookies);
      // the provider's auto-submitted form (another user signed in in this browser: the earlier one is logged out first)
      const posted = forms(page.html).find((f) => f.attrs.method === 'post' && f.attrs.action?.startsWith(`${issuer}/oidc/`));
      if (!page.location && posted) {
        const fields = Object.fromEntries(elements(posted.inner, 'input').map((i) => [i.attrs.name!, i.attrs.value ?? '']));
        const answered = await browser.request(new URL(posted.attrs.action!, url).href, { form: fields });
        url = answered.location!;
        continue;
      }
      expect(page.location, `${url}: ${page.status} ${page.html.slice(0, 300)}`).toBeTruthy();
      url = page.location!;
    }
    return oidc.authorizationCodeGrant(configuration, new URL(url), { pkceCodeVerifier: verifier, expectedState: state });
  }

  /** A DSC+ holder signed in to an application in a new browser, and the tokens its client got. */
  async function signedIn(app: 'portal' | 'trading' = 'portal') {
    const { user, card } = await createUserWithCard(h.services);
    const browser = new Browser(issuer);
    const token = await signIn(browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string), app);
    const tokens = await tokensOf(browser, app === 'portal' ? portalClient : tradingClient);
    return { user, card, browser, token, tokens };
  }

  const active = async (configuration: oidc.Configuration, token: string) => (await oidc.tokenIntrospection(configuration, token)).active;

  describe('L8: a token lives no longer than the session of ours it stands on', () => {
    it("L8, I1 (decision 0031): a grant given by a session that ends in flight — logged out between the interaction's check and the grant's recording — gives no token: no code reaches the client (the browser is sent to our login), and a code would be refused at the token endpoint, which reads the session under the grant", async () => {
      const { user, card } = await createUserWithCard(h.services);
      const browser = new Browser(issuer);
      const token = await signIn(browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string));
      const tokensStored = async () =>
        (await h.services.store.db.selectFrom('oidc_artifacts').select('id').where('model', 'in', ['AccessToken', 'RefreshToken']).execute()).length;
      const before = await tokensStored();
      const oidcService = h.services.oidc;
      const grantGiven = oidcService.grantGiven;
      let fired = false;
      oidcService.grantGiven = async function (this: typeof oidcService, given) {
        oidcService.grantGiven = grantGiven;
        fired = true;
        // the browser's session ends (its owner logs out where it was copied from) after every check of the authorization
        await h.services.sessions.end(token, null);
        return grantGiven.call(this, given);
      };
      const exchanged = await tokensOf(browser).then(
        () => 'tokens',
        (error: unknown) => (error instanceof oidc.ResponseBodyError ? error.error : String(error)),
      );
      expect(fired).toBe(true);
      expect(exchanged).not.toBe('tokens');
      expect(exchanged).toMatch(/invalid_grant|\/login\?app=portal/);
      expect(await tokensStored()).toBe(before);
    });

    it('L8, I1: once the portal session idled out (30 minutes), its client can no longer refresh, and its access token is inactive', async () => {
      const { tokens } = await signedIn('portal');
      expect(await active(portalClient, tokens.access_token)).toBe(true);
      // nobody used the portal session for 31 minutes: it ended (L8), the browser logs in again
      h.clock.advance(31 * MINUTE);
      await expect(oidc.refreshTokenGrant(portalClient, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect(await active(portalClient, tokens.access_token)).toBe(false);
    });

    it('L8, I1: a token stands on the session it was given in: after that one idled out, a new login in the same browser does not bring it back', async () => {
      const { user, card, browser, tokens } = await signedIn('portal');
      h.clock.advance(31 * MINUTE);
      await expect(oidc.refreshTokenGrant(portalClient, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      // the user logs in again in this browser, and the application asks again: it gets new tokens …
      await signIn(browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string));
      const again = await tokensOf(browser);
      expect(await active(portalClient, again.access_token)).toBe(true);
      // … and those of the session that ended stay dead
      expect(await active(portalClient, tokens.access_token)).toBe(false);
      await expect(oidc.refreshTokenGrant(portalClient, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      const revoked = await h.services.store.db
        .selectFrom('audit_log')
        .select('data')
        .where('event', '=', 'oidc.grant_revoked')
        .where('user_id', '=', user.id)
        .execute();
      expect(revoked.map((row) => JSON.parse(row.data as string).route)).toEqual(['another_session']);
    });

    it('L8, I1: the application in use is activity: a refresh within the idle time keeps the portal session alive, and the access token the client refreshes with lives shorter than it', async () => {
      const { browser, tokens } = await signedIn('portal');
      // an access token lives at most half the idle time: the client refreshes while the session lives
      expect(tokens.expires_in).toBeLessThanOrEqual(15 * 60);
      h.clock.advance(20 * MINUTE);
      const refreshed = await oidc.refreshTokenGrant(portalClient, tokens.refresh_token!);
      h.clock.advance(20 * MINUTE);
      const again = await oidc.refreshTokenGrant(portalClient, refreshed.refresh_token!);
      expect(await active(portalClient, again.access_token)).toBe(true);
      // the session in the browser lived on with it
      expect(await h.services.sessions.authenticate(browser.jar.get('__Host-sls_session')!)).not.toBeNull();
    });

    it('L8, I1: a trading session has no idle time (K12): its client refreshes after hours without other activity; its access token lives an hour', async () => {
      const { tokens } = await signedIn('trading');
      expect(tokens.expires_in).toBeGreaterThan(15 * 60);
      h.clock.advance(3 * 60 * MINUTE);
      const refreshed = await oidc.refreshTokenGrant(tradingClient, tokens.refresh_token!);
      expect(await active(tradingClient, refreshed.access_token)).toBe(true);
    });

    it.each([
      ['locks the user (L3)', (username: string) => h.services.helpDesk.lockUser(agentId, username, { reason: 'reported fraud' })],
      ['ends every session of the user (L8)', (username: string) => h.services.helpDesk.endSessions(agentId, username)],
      [
        'resets the password (A5, L8)',
        async (username: string) => {
          const verification = await h.services.helpDesk.verifyIdentity(agentId, username, { method: 'id_document' });
          await h.services.helpDesk.resetPassword(agentId, username, { verificationId: verification.id });
        },
      ],
      [
        'reports lost the card that proved the login (C5, L8)',
        async (username: string) => {
          const user = await h.services.users.findByUsername(username);
          const card = (await h.services.devices.listForUser(user!.id)).find((d) => d.state === 'active')!;
          await h.services.dscPlusRequests.reportLost({ staffUserId: agentId }, card.id, 'stolen');
        },
      ],
    ] as const)(
      'L3, L8, I1: when client services %s, the relying parties’ refresh tokens, access tokens and user info end with the sessions',
      async (_what, act) => {
        const portal = await signedIn('portal');
        const trading = await signedIn('trading');
        for (const { user, tokens } of [portal, trading]) {
          await act(user.username);
          const client = user === portal.user ? portalClient : tradingClient;
          await expect(oidc.refreshTokenGrant(client, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
          expect(await active(client, tokens.access_token)).toBe(false);
          await expect(oidc.fetchUserInfo(client, tokens.access_token, user.id)).rejects.toBeDefined();
        }
      },
    );

    it('L3, L8, I1: a lock by 10 failures (which anyone who knows the username can cause) ends neither the user’s sessions nor the tokens standing on them: they end together or not at all (decision 0027)', async () => {
      const { user, token, tokens } = await signedIn('portal');
      for (let i = 0; i < 10; i++) expect((await startLogin(h.app, user.username, 'not the password')).status).toBe(401);
      expect((await startLogin(h.app, user.username)).status).toBe(423);
      expect(await h.services.sessions.authenticate(token)).not.toBeNull();
      const refreshed = await oidc.refreshTokenGrant(portalClient, tokens.refresh_token!);
      expect(await active(portalClient, refreshed.access_token)).toBe(true);
      // client services, told of the attack, end them all at once
      await h.services.helpDesk.lockUser(agentId, user.username, { reason: 'password guessed' });
      expect(await h.services.sessions.authenticate(token)).toBeNull();
      await expect(oidc.refreshTokenGrant(portalClient, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect(await active(portalClient, refreshed.access_token)).toBe(false);
    });

    it('T3, I1: introspection says inactive once the full access of a temporary passcode ended (day 2), though the token has not expired', async () => {
      const { user } = await createUserWithCard(h.services);
      // the passcode was issued 2 days less 10 minutes ago: full access for 10 more minutes (T3)
      h.clock.set(Date.now() - 2 * DAY + 10 * MINUTE);
      const { passcode } = await issuePasscode(h.services, agentId, user.username);
      h.clock.set(Date.now());
      const browser = new Browser(issuer);
      await signIn(browser, user.username, () => passcode, 'trading');
      const tokens = await tokensOf(browser, tradingClient);
      expect(await active(tradingClient, tokens.access_token)).toBe(true);
      h.clock.advance(15 * MINUTE);
      // a resource server (a trading platform's API) asks: the trading access has ended
      expect(await active(tradingClient, tokens.access_token)).toBe(false);
      expect(await active(tradingClient, tokens.refresh_token!)).toBe(false);
      await expect(oidc.fetchUserInfo(tradingClient, tokens.access_token, user.id)).rejects.toBeDefined();
    });

    it('L8, I1: introspection says inactive once the user is no longer active', async () => {
      const { user, tokens } = await signedIn('portal');
      await h.services.store.db.updateTable('users').set({ status: 'disabled' }).where('id', '=', user.id).execute();
      expect(await active(portalClient, tokens.access_token)).toBe(false);
      await expect(oidc.refreshTokenGrant(portalClient, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    it('I1: a deleted client’s tokens stop working at once: no refresh, no user info', async () => {
      const { configuration, clientId } = await clientOf('portal', 'Soon deleted');
      const { user, card } = await createUserWithCard(h.services);
      const browser = new Browser(issuer);
      await signIn(browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string));
      const tokens = await tokensOf(browser, configuration);
      await h.services.oidc.clients.delete(clientId, 'test');
      await expect(oidc.refreshTokenGrant(configuration, tokens.refresh_token!)).rejects.toBeDefined();
      await expect(oidc.fetchUserInfo(configuration, tokens.access_token, user.id)).rejects.toBeDefined();
    });
  });

  /**
   * A user with the authenticator and a Security Code Card, signed in in a browser by a push approved with the number
   * and the PIN: the browser holds the session (`token`). `codeCardUsedLast` logs in elsewhere with the card, so that a
   * step-up of this session offers it first (L6) and `indexAnswer` answers it.
   */
  async function pushLoginWithCodeCard() {
    const user = await smsUser(h);
    const phone = new TestPhone(await listen(h), harnessInbox(h));
    const enrolment = await phone.activate(user.username);
    await onlyDevice(h, user, enrolment.deviceId);
    const codes = Array.from({ length: 100 }, (_, i) => String((i * 37 + 11) % 1000).padStart(3, '0'));
    const scc = await h.services.onlineCards.importSecurityCodeCard(user.id, `SCC-${user.username}`, codes, 'test');
    const indexAnswer = (prompt: Json) => codes[prompt.indexes[0] - 1]! + codes[prompt.indexes[1] - 1]!;
    const browser = new Browser(issuer);
    const login = await startLogin(h.app, user.username);
    expect((login.body.challenge as Json).type).toBe('push');
    await phone.approve(await phone.request(user.username), (login.body.challenge as Json).number as string);
    const claimed = await claimSession(h.app, login);
    expect(claimed.status, JSON.stringify(claimed.body)).toBe(200);
    const token = claimed.body.session.token as string;
    browser.jar.set('__Host-sls_session', token);
    const codeCardUsedLast = () =>
      signIn(new Browser(issuer), user.username, async (flow) => {
        const switched = await h.services.login.switchDevice(flow.id as string, flow.claimToken as string, scc.id, { ip: null, userAgent: null });
        return indexAnswer(switched.challenge as unknown as Json);
      });
    return { browser, token, indexAnswer, codeCardUsedLast };
  }

  describe('I1: the claims say what the last proof was, never more', () => {
    it('I1, V1, K3: after a step-up with a code card, amr does not keep the PIN the login’s push was approved with', async () => {
      // a user with the authenticator, who also holds a Security Code Card; the login in this browser: the push, approved with the number and the PIN
      const { browser, token, indexAnswer, codeCardUsedLast } = await pushLoginWithCodeCard();
      expect((await h.services.sessions.authenticate(token))!.confirmedBy).toBe('pin');

      // the card is used elsewhere since: the step-up in this session offers it first (L6), and is answered with it
      await codeCardUsedLast();
      const stepped = await stepUp(h.app, bearer(token), (challenge) => {
        expect(challenge.type).toBe('index');
        return indexAnswer(challenge);
      });
      // V1 (decision 0042): the step-up replaced the session's token: the browser's cookie takes the new one
      browser.jar.set('__Host-sls_session', stepped.body.session.token as string);
      // the application asks now: the session's last proof is the step-up's
      h.clock.set(Math.max(Date.now(), h.clock.now()));
      const claims = (await tokensOf(browser, portalClient, 'openid')).claims()!;
      expect(claims.acr).toBe('urn:sls:acr:device');
      expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
    });
  });

  describe('I1: the claims say what the last proof was, and all of it', () => {
    it('I1, K4: a login answered offline with the authenticator’s response (the PIN folded in) says pin in amr, as a push approved with the PIN does', async () => {
      const holder = await BUILT_IN_DRIVERS.mobile!.holder(h);
      const browser = new Browser(issuer);
      await signIn(browser, holder.user.username, async (flow) => holder.right(await holder.answerable(flow)));
      const claims = (await tokensOf(browser, portalClient, 'openid')).claims()!;
      expect(claims).toMatchObject({ acr: 'urn:sls:acr:strong', amr: ['pwd', 'swk', 'pin', 'mfa'] });
    });
  });

  describe('I1: another user signing in in the same browser', () => {
    it('I1, L8: the earlier user’s tokens end with the provider session; the new user’s login opens the application, and their session lives', async () => {
      const first = await signedIn('portal');
      const { user, card } = await createUserWithCard(h.services);
      const token = await signIn(first.browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string));
      const tokens = await tokensOf(first.browser);
      expect(tokens.claims()!.sub).toBe(user.id);
      expect(await h.services.sessions.authenticate(token)).not.toBeNull();
      await expect(oidc.refreshTokenGrant(portalClient, first.tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    });
  });

  describe('I1: prompt=none answers without a login only on the very session that logged in', () => {
    /** An authorization request with prompt=none (and `params`) in the browser, its answer read by the client (openid-client): the error it throws, if any. */
    async function silently(browser: Browser, configuration: oidc.Configuration, params: Record<string, string> = {}) {
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      let url = oidc.buildAuthorizationUrl(configuration, {
        redirect_uri: redirectUri,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        prompt: 'none',
        ...params,
      }).href;
      for (let hop = 0; hop < 10 && !url.startsWith(redirectUri); hop++) url = (await browser.request(url)).location!;
      const callback = new URL(url);
      // an error carries no code
      if (callback.searchParams.has('error')) expect(callback.searchParams.get('code')).toBeNull();
      return oidc.authorizationCodeGrant(configuration, callback, { pkceCodeVerifier: verifier, expectedState: state }).then(
        () => undefined,
        (error: unknown) => error,
      );
    }

    it('I1, L8 (OIDC Core §3.1.2.6): prompt=none after the session ended (logout) is login_required at the client, no code', async () => {
      const { browser, token } = await signedIn('portal');
      await postJson(h.app, '/api/v1/logout', {}, bearer(token));
      const error = await silently(browser, portalClient);
      expect(error).toBeInstanceOf(oidc.AuthorizationResponseError);
      expect(error).toMatchObject({ error: 'login_required' });
    });

    it('I1, V1 (OIDC Core §3.1.2.6): prompt=none with acr_values above the session (a temporary passcode, a device asked) is login_required: the user must authenticate again, no code', async () => {
      const { user } = await createUserWithCard(h.services);
      const { passcode } = await issuePasscode(h.services, agentId, user.username);
      const browser = new Browser(issuer);
      await signIn(browser, user.username, () => passcode, 'trading');
      await tokensOf(browser, tradingClient);
      // the session stands: with acr_values it meets, prompt=none gives a code
      expect(await silently(browser, tradingClient, { acr_values: 'urn:sls:acr:temporary' })).toBeUndefined();
      const error = await silently(browser, tradingClient, { acr_values: 'urn:sls:acr:device' });
      expect(error).toBeInstanceOf(oidc.AuthorizationResponseError);
      expect(error).toMatchObject({ error: 'login_required' });
    });

    it('I1, V1, D2 (OIDC Core §3.1.2.6): acr_values are weighed against what the session proved last, not what the provider was told at an earlier authorization: after a step-up with a weaker device (a code card after the push), prompt=none asking strong is login_required, no code with a lower acr', async () => {
      // the login and the step-up a few seconds before the application asks (the provider counts an authorization's start
      // in whole seconds of its own clock: a proof within that second would count as made for the request)
      h.clock.set(Date.now() - 10_000);
      // the login with the push, and the application signed in with it (acr strong)
      const { browser, token, indexAnswer, codeCardUsedLast } = await pushLoginWithCodeCard();
      expect((await tokensOf(browser, portalClient, 'openid')).claims()!.acr).toBe('urn:sls:acr:strong');
      expect(await silently(browser, portalClient, { acr_values: 'urn:sls:acr:strong' })).toBeUndefined();
      // the card used last elsewhere: the step-up in this session is answered with it (a weaker device)
      await codeCardUsedLast();
      const stepped = await stepUp(h.app, bearer(token), (challenge) => indexAnswer(challenge));
      // V1 (decision 0042): the step-up replaced the session's token: the browser's cookie takes the new one
      browser.jar.set('__Host-sls_session', stepped.body.session.token as string);
      h.clock.set(Date.now());
      // what the session proved last is a code card's: strong asked without a page is login_required
      const error = await silently(browser, portalClient, { acr_values: 'urn:sls:acr:strong' });
      expect(error).toBeInstanceOf(oidc.AuthorizationResponseError);
      expect(error).toMatchObject({ error: 'login_required' });
      // a level it meets still goes through
      expect(await silently(browser, portalClient, { acr_values: 'urn:sls:acr:device' })).toBeUndefined();
      // with a page, strong asked leads to our login (where the push may be chosen), not to the client with a code
      let url = oidc.buildAuthorizationUrl(portalClient, {
        redirect_uri: redirectUri,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
        state: oidc.randomState(),
        acr_values: 'urn:sls:acr:strong',
      }).href;
      for (let hop = 0; hop < 10 && !url.startsWith(redirectUri) && !url.includes('/login?'); hop++) url = (await browser.request(url)).location!;
      expect(url).toBe(`${issuer}/login?app=portal`);
    });
  });

  describe('I1, D5: a client authenticates with its secret only', () => {
    it("I1: a client's tokens are its own: another client (a portal's, a trading platform's) gets nothing from its refresh token, and its ID token names only it (aud); the owner's refresh token goes on", async () => {
      const { user, tokens } = await signedIn('portal');
      expect(tokens.claims()!.aud).toBe(portalClient.clientMetadata().client_id);
      const other = (await clientOf('portal', 'Attack thief portal')).configuration;
      await expect(oidc.refreshTokenGrant(other, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      await expect(oidc.refreshTokenGrant(tradingClient, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      // the owner's refresh token still works (a stranger's try revokes nothing of it), its ID token for it alone
      const refreshed = await oidc.refreshTokenGrant(portalClient, tokens.refresh_token!);
      expect(refreshed.claims()).toMatchObject({ sub: user.id, aud: portalClient.clientMetadata().client_id });
    });

    it('I1, D5: the secret digest a copy of the database holds authenticates no client, sent in the body or under a lowercase basic scheme; the secret does', async () => {
      const created = await h.services.oidc.clients.create({ name: 'Attack digest', app: 'portal', redirectUris: [redirectUri] }, 'test');
      const { clientId } = created.client;
      const row = await h.services.store.db.selectFrom('oidc_clients').select('secret_digest').where('client_id', '=', clientId).executeTakeFirstOrThrow();
      const digest = row.secret_digest!;
      const tokenRequest = (headers: Record<string, string>, body: Record<string, string>) =>
        fetch(`${issuer}/oidc/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'not-a-token', ...body }).toString(),
        });
      const basic = (scheme: string, secret: string) => ({ authorization: `${scheme} ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` });
      const attempts = [
        await tokenRequest({}, { client_id: clientId, client_secret: digest }),
        await tokenRequest(basic('basic', digest), {}),
        await tokenRequest(basic('Basic', digest), {}),
      ];
      for (const response of attempts) {
        expect(response.status).toBe(401);
        expect(((await response.json()) as { error: string }).error).toBe('invalid_client');
      }
      // the secret authenticates the client (then its refresh token is refused), whatever the scheme's case
      for (const scheme of ['Basic', 'basic']) {
        const genuine = await tokenRequest(basic(scheme, created.secret!), {});
        expect(((await genuine.json()) as { error: string }).error).toBe('invalid_grant');
      }
    });
  });

  describe('I1: the authorization request as an attacker shapes it', () => {
    /** An authorization request of the portal client with these parameters (PKCE S256 unless replaced), sent in the browser. */
    async function authorize(browser: Browser, params: Record<string, string>, configuration = portalClient) {
      const verifier = oidc.randomPKCECodeVerifier();
      const url = new URL(`${issuer}/oidc/auth`);
      const query = {
        client_id: configuration.clientMetadata().client_id,
        response_type: 'code',
        scope: 'openid',
        redirect_uri: redirectUri,
        state: 'st',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        ...params,
      };
      for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
      return browser.request(url.href);
    }

    /** Follows the redirects to the client's redirect URI (never fetched); its query. */
    async function atClient(browser: Browser, first: { location: string | null }): Promise<URLSearchParams> {
      let url = first.location!;
      for (let hop = 0; hop < 10 && !url.startsWith(redirectUri); hop++) url = (await browser.request(url)).location!;
      expect(url.startsWith(`${redirectUri}?`)).toBe(true);
      return new URL(url).searchParams;
    }

    it('I1: a redirect URI is matched exactly: no prefix, suffix, path, case, port, user-info or encoding trick reaches a redirect', async () => {
      const browser = new Browser(issuer);
      const tricks = [
        `${redirectUri}/`,
        `${redirectUri}x`,
        `${redirectUri}?next=https://evil.example`,
        `${redirectUri}#x`,
        redirectUri.replace('/cb', '/CB'),
        redirectUri.replace('/cb', '/%63b'),
        redirectUri.replace('/cb', '/x/../cb'),
        redirectUri.replace(':9/', ':90/'),
        redirectUri.replace('http://', 'http://evil.example@'),
        redirectUri.replace('http://', 'https://'),
        redirectUri.replace('127.0.0.1', 'localhost'),
      ];
      for (const trick of tricks) {
        const page = await authorize(browser, { redirect_uri: trick });
        expect(page.status, trick).toBe(400);
        expect(page.location, trick).toBeNull();
      }
      // and a confidential web client cannot register plain http off the loopback
      await expect(h.services.oidc.clients.create({ name: 'Plain web', app: 'portal', redirectUris: ['http://app.example/cb'] }, 'test')).rejects.toMatchObject(
        {
          code: 'VALIDATION_ERROR',
        },
      );
    });

    it('I1 (OIDC Core §3.1.2.1): an id_token_hint of another user never gives a code for the user signed in in the browser: login_required at the client', async () => {
      const a = await signedIn('portal');
      const b = await signedIn('portal');
      for (const prompt of [{}, { prompt: 'none' }] as Record<string, string>[]) {
        let page = await authorize(b.browser, { id_token_hint: a.tokens.id_token!, ...prompt });
        const seen: string[] = [];
        for (let hop = 0; hop < 12 && page.location && !page.location.startsWith(redirectUri); hop++) {
          seen.push(page.location);
          page = await b.browser.request(page.location);
        }
        expect(page.location, `${JSON.stringify(prompt)}: ${seen.join(' → ')} ${page.status} ${page.html.slice(0, 200)}`).toBeTruthy();
        const query = new URL(page.location!).searchParams;
        expect(query.get('code'), JSON.stringify(prompt)).toBeNull();
        expect(query.get('error'), JSON.stringify(prompt)).toBe('login_required');
      }
    });

    it('I1: PKCE is S256 only: plain, or no challenge, is refused at the client before any login', async () => {
      const browser = new Browser(issuer);
      const verifier = oidc.randomPKCECodeVerifier();
      for (const params of [
        { code_challenge: verifier, code_challenge_method: 'plain' },
        { code_challenge: '', code_challenge_method: '' },
      ]) {
        const page = await authorize(browser, params);
        expect(page.location, page.html.slice(0, 200)).toBeTruthy();
        expect(new URL(page.location!).pathname).not.toMatch(/interaction|login/);
        const query = await atClient(browser, page);
        expect(query.get('error')).toBe('invalid_request');
        expect(query.get('code')).toBeNull();
      }
    });

    it('I1, V1: prompt=none never skips a step-up or a stronger login: max_age=0, or acr_values above the session, answer login_required at the client, no code', async () => {
      const { browser } = await signedIn('portal');
      const fresh = await atClient(browser, await authorize(browser, { prompt: 'none', max_age: '0' }));
      expect(fresh.get('error'), fresh.toString()).toBe('login_required');
      expect(fresh.get('code')).toBeNull();
      // a temporary passcode's session (acr temporary), a device's level asked
      const { user } = await createUserWithCard(h.services);
      const { passcode } = await issuePasscode(h.services, agentId, user.username);
      const temporary = new Browser(issuer);
      await signIn(temporary, user.username, () => passcode, 'trading');
      await tokensOf(temporary, tradingClient);
      const stronger = await atClient(temporary, await authorize(temporary, { prompt: 'none', acr_values: 'urn:sls:acr:device' }, tradingClient));
      expect(stronger.get('error'), stronger.toString()).toBe('login_required');
      expect(stronger.get('code')).toBeNull();
    });
  });

  describe('I1: RP-initiated logout as an attacker shapes it', () => {
    it('I1: a post-logout redirect URI not registered, or an ID token of another client, redirects nowhere and logs nobody out', async () => {
      const { browser, token, tokens } = await signedIn('portal');
      const other = await clientOf('portal', 'Attack other portal');
      const pages = [
        // a valid hint, a redirect the client never registered (an open redirect)
        await browser.request(
          `${issuer}/oidc/session/end?id_token_hint=${tokens.id_token}&post_logout_redirect_uri=${encodeURIComponent('https://evil.example/')}`,
        ),
        // the hint of one client, another named
        await browser.request(`${issuer}/oidc/session/end?id_token_hint=${tokens.id_token}&client_id=${other.clientId}`),
      ];
      for (const page of pages) {
        expect(page.status).toBe(400);
        expect(page.location).toBeNull();
        expect(page.html).not.toContain('evil.example');
      }
      expect(await h.services.sessions.authenticate(token)).not.toBeNull();
    });
  });

  describe('I1, L8: the provider’s own cookies against cookie tossing', () => {
    it('I1, L8: with Secure cookies the provider’s own (its session, the interaction and its resume) carry the prefixes, as ours do, and are Secure: a sibling subdomain or a forged plain-HTTP answer cannot plant them', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const browser = new Browser(issuer);
      await signIn(browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string));
      const setCookies: string[] = [];
      await tokensOf(browser, portalClient, 'openid', setCookies);
      const provider = setCookies.filter((line) => !/^(__Host-|__Secure-)?sls_(session|csrf|claim|lang)/.test(line));
      const names = provider.map((line) => line.slice(0, line.indexOf('=')));
      // the interaction, its resume and the provider's session were all set on the way (with their signatures)
      expect(names.length, provider.join('\n')).toBeGreaterThanOrEqual(3);
      for (const [i, line] of provider.entries()) {
        expect(names[i], line).toMatch(/^(__Host-|__Secure-)/);
        expect(line, line).toMatch(/;\s*secure/i);
        if (names[i]!.startsWith('__Host-')) {
          expect(line, line).toMatch(/;\s*path=\/(;|$)/i);
          expect(line, line).not.toMatch(/;\s*domain=/i);
        }
      }
      // the provider's session cookie is a host cookie, as our session's
      expect(names.some((name) => name.startsWith('__Host-') && name.includes('session'))).toBe(true);
      // and so is the one naming the browser an interaction began in (decision 0037), out of scripts' reach
      expect(provider.find((line) => line.startsWith('__Host-sls_oidc_browser='))).toMatch(/;\s*httponly/i);
      // the library's plain names are never read: a cookie under one of them names no session of the provider
      expect([...browser.jar.keys()].filter((name) => /^_(session|interaction|interaction_resume)(\.sig)?$/.test(name))).toEqual([]);
    });
  });

  describe('I1 (RFC 8628): a device approved in a login that ends before it polls', () => {
    it('I1, L8 (RFC 8628): a device code approved, then the approving login ended by a password reset before the device polled: the device gets no tokens', async () => {
      const created = await h.services.oidc.clients.create(
        { name: 'Attack desktop', app: 'trading', redirectUris: [], public: true, deviceGrant: true },
        'test',
      );
      const device = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const response = await oidc.initiateDeviceAuthorization(device, { scope: 'openid offline_access' });
      const { user, card } = await createUserWithCard(h.services);
      const browser = new Browser(issuer);
      const xsrf = (html: string) => /name="xsrf" value="([^"]+)"/.exec(html)![1]!;
      const typed = await browser.request('/oidc/device', {
        form: { xsrf: xsrf((await browser.request('/oidc/device')).html), user_code: response.user_code },
      });
      const confirmed = await browser.request('/oidc/device', { form: { xsrf: xsrf(typed.html), user_code: response.user_code, confirm: 'yes' } });
      // the interaction sends the browser to our login; the user logs in (after the approval began), and the interaction goes on
      let url = confirmed.location!;
      for (let hop = 0; hop < 5 && !url.includes('/login'); hop++) url = (await browser.request(url)).location!;
      h.clock.set(Math.max(Date.now(), h.clock.now()) + 1_000);
      await signIn(browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string), 'trading');
      url = `${issuer}/oidc/interaction/${browser.jar.get('__Host-sls_oidc_return')}`;
      let page = await browser.request(url);
      for (let hop = 0; hop < 10 && page.location; hop++) page = await browser.request(page.location);
      expect(page.html, page.html.slice(0, 300)).toContain('Attack desktop is signed in');
      // the approving login ends (L8: a password reset) before the device's first poll
      const verification = await h.services.helpDesk.verifyIdentity(agentId, user.username, { method: 'id_document' });
      await h.services.helpDesk.resetPassword(agentId, user.username, { verificationId: verification.id });
      await expect(oidc.pollDeviceAuthorizationGrant(device, { ...response, interval: 0.05 })).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    it("I1 (RFC 8628 §5.4): a device approval an attacker began in a browser of their own, its __Secure- interaction and resume cookies planted in the user's browser (a sibling subdomain may set __Secure- cookies for the parent domain, not __Host- ones): the user's login does not approve the attacker's device", async () => {
      const created = await h.services.oidc.clients.create(
        { name: 'Planted desktop', app: 'trading', redirectUris: [], public: true, deviceGrant: true },
        'test',
      );
      const device = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const response = await oidc.initiateDeviceAuthorization(device, { scope: 'openid offline_access' });
      // the attacker types their own device's code and answers Yes (the warning is theirs to ignore), in a fresh browser
      const attacker = new Browser(issuer);
      const xsrf = (html: string) => /name="xsrf" value="([^"]+)"/.exec(html)![1]!;
      const typed = await attacker.request('/oidc/device', {
        form: { xsrf: xsrf((await attacker.request('/oidc/device')).html), user_code: response.user_code },
      });
      const confirmed = await attacker.request('/oidc/device', { form: { xsrf: xsrf(typed.html), user_code: response.user_code, confirm: 'yes' } });
      const interaction = confirmed.location!;
      expect(interaction).toMatch(/\/oidc\/interaction\/[A-Za-z0-9_-]+$/);
      // what a sibling subdomain can set in the user's browser: the provider's __Secure- cookies (Domain the parent's, their paths)
      const planted = [...attacker.jar].filter(([name]) => name.startsWith('__Secure-sls_oidc_'));
      expect(planted.map(([name]) => name)).toEqual(expect.arrayContaining(['__Secure-sls_oidc_interaction', '__Secure-sls_oidc_resume']));
      const { user, card } = await createUserWithCard(h.services);
      const victim = new Browser(issuer);
      for (const [name, value] of planted) victim.jar.set(name, value);
      // the user, led to the interaction, is sent to our login (a device is approved with a fresh one) and logs in
      h.clock.set(Math.max(Date.now(), h.clock.now()) + 1_000);
      await victim.request(interaction);
      await signIn(victim, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string), 'trading');
      let page = await victim.request(interaction);
      for (let hop = 0; hop < 10 && page.location; hop++) page = await victim.request(page.location);
      expect(page.html).not.toContain('Planted desktop is signed in');
      // the interaction is not the user's browser's: as one that expired (decision 0037)
      expect(alertBox(page.html)?.code).toBe('OIDC_INTERACTION_EXPIRED');
      // the attacker's device gets nothing of the user's
      await expect(
        oidc.pollDeviceAuthorizationGrant(device, { ...response, interval: 0.05 }, undefined, { signal: AbortSignal.timeout(500) }),
      ).rejects.toBeTruthy();
      const login = await h.services.store.db.selectFrom('audit_log').select('data').where('event', '=', 'oidc.login').where('user_id', '=', user.id).execute();
      expect(login.filter((row) => JSON.parse(row.data as string).outcome === 'authenticated')).toEqual([]);
    });
  });

  describe('I1, X5 (RFC 8628 §3.5): a device polling faster than it must', () => {
    /** One poll of the token endpoint, as the device sends it: its answer's status and body. */
    async function pollOnce(clientId: string, deviceCode: string): Promise<{ status: number; body: Record<string, unknown> }> {
      const answered = await fetch(`${issuer}/oidc/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode, client_id: clientId }),
      });
      return { status: answered.status, body: (await answered.json()) as Record<string, unknown> };
    }

    it('I1, X5 (RFC 8628 §3.2, §3.5): the device is told its interval (5 s); a poll sooner gets slow_down and 5 s more for that code, counted in the store: copies sent at once pass one at a time', async () => {
      const created = await h.services.oidc.clients.create(
        { name: 'Attack poller', app: 'trading', redirectUris: [], public: true, deviceGrant: true },
        'test',
      );
      const clientId = created.client.clientId;
      const device = await oidc.discovery(new URL(issuer), clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const response = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
      expect(response.interval).toBe(5);
      const poll = () => pollOnce(clientId, response.device_code);
      // §3.4: the device may poll at once; then no sooner than its interval
      expect((await poll()).body.error).toBe('authorization_pending');
      expect(await poll()).toMatchObject({ status: 400, body: { error: 'slow_down' } });
      h.clock.advance(10_000);
      expect((await poll()).body.error).toBe('authorization_pending');
      // 9 s: more than the 5 s it was told, less than the 10 s it must now wait
      h.clock.advance(9_000);
      expect((await poll()).body.error).toBe('slow_down');
      // another code of the same client keeps its own interval
      const other = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
      expect((await pollOnce(clientId, other.device_code)).body.error).toBe('authorization_pending');
      // copies sent at once (from any process: the count is a row of the database): one is answered, the others slowed down
      h.clock.advance(15_000);
      const copies = await Promise.all(Array.from({ length: 4 }, poll));
      expect(copies.map((c) => c.body.error).sort()).toEqual(['authorization_pending', 'slow_down', 'slow_down', 'slow_down']);
      // the count is the store's (another process reads it), kept under a keyed digest of the code (D5), going with the code
      const kept = await h.services.store.db
        .selectFrom('oidc_artifacts')
        .select(['id', 'expires_at'])
        .where('model', '=', 'SlsDevicePoll')
        .where('id', '=', artifactKey(h.services.box, response.device_code))
        .executeTakeFirstOrThrow();
      expect(kept.expires_at).toEqual(expect.any(Number));
      // a device code nobody issued is not counted (nothing kept for it): invalid_grant, at any pace
      for (let i = 0; i < 2; i++) expect((await pollOnce(clientId, 'not-a-device-code')).body.error).toBe('invalid_grant');
    });

    it('I1 (RFC 8628 §3.5): a device polling with a code whose 10 minutes are up is told expired_token (it asks the user for a new code), never invalid_grant; another client gets nothing from it', async () => {
      const created = await h.services.oidc.clients.create({ name: 'Attack late', app: 'trading', redirectUris: [], public: true, deviceGrant: true }, 'test');
      const device = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const response = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
      const poll = () => oidc.genericGrantRequest(device, 'urn:ietf:params:oauth:grant-type:device_code', { device_code: response.device_code });
      await expect(poll()).rejects.toMatchObject({ error: 'authorization_pending' });
      // nobody typed the code: its 10 minutes pass (our clock; the provider's own expiry is checked by the provider)
      h.clock.advance(11 * MINUTE);
      await expect(poll()).rejects.toMatchObject({ error: 'expired_token' });
      // told again at its next poll, as often as it asks
      h.clock.advance(10_000);
      await expect(poll()).rejects.toMatchObject({ error: 'expired_token' });
      // the code of another client: not found for this one (client mismatch), as before it expired
      const other = await h.services.oidc.clients.create({ name: 'Attack other', app: 'trading', redirectUris: [], public: true, deviceGrant: true }, 'test');
      expect((await pollOnce(other.client.clientId, response.device_code)).body.error).toBe('invalid_grant');
    });

    it('I1 (RFC 8628 §3.5): a device still polling after the scheduler cleaned up the expired artefacts is told expired_token for a day, not invalid_grant; then its code is forgotten', async () => {
      const created = await h.services.oidc.clients.create(
        { name: 'Attack pruned', app: 'trading', redirectUris: [], public: true, deviceGrant: true },
        'test',
      );
      const device = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const response = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
      const poll = () => oidc.genericGrantRequest(device, 'urn:ietf:params:oauth:grant-type:device_code', { device_code: response.device_code });
      const kept = () =>
        h.services.store.db
          .selectFrom('oidc_artifacts')
          .select('id')
          .where('model', '=', 'DeviceCode')
          .where('id', '=', artifactKey(h.services.box, response.device_code))
          .executeTakeFirst();
      await expect(poll()).rejects.toMatchObject({ error: 'authorization_pending' });
      h.clock.advance(11 * MINUTE);
      await h.services.oidc.prune();
      await expect(poll()).rejects.toMatchObject({ error: 'expired_token' });
      h.clock.advance(DAY - 12 * MINUTE);
      await h.services.oidc.prune();
      await expect(poll()).rejects.toMatchObject({ error: 'expired_token' });
      expect(await kept()).toBeDefined();
      // a day after its expiry (10 minutes after it was issued)
      h.clock.advance(12 * MINUTE);
      await h.services.oidc.prune();
      expect(await kept()).toBeUndefined();
    });
  });
});

describe('I1: the provider’s cookies over plain HTTP (SLS_COOKIE_SECURE=false: development)', () => {
  let h: Harness;
  let issuer: string;
  beforeAll(async () => {
    ({ h, issuer } = await listeningHarness('sqlite', { cookieSecure: false }));
  });
  afterAll(async () => h?.close());

  it('I1: without Secure cookies (browsers refuse the prefixes then) the provider’s cookies have the plain names and no Secure, and an application’s login works', async () => {
    const { configuration } = await registeredClient(h, issuer, 'portal', 'Plain portal');
    const { user, card } = await createUserWithCard(h.services);
    const browser = new Browser(issuer);
    await signInWith(h, browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string));
    // the session cookie under its plain name, as the login page sets it over plain HTTP
    browser.jar.set('sls_session', browser.jar.get('__Host-sls_session')!);
    browser.jar.delete('__Host-sls_session');
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    let url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: TEST_REDIRECT_URI,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    }).href;
    const setCookies: string[] = [];
    for (let hop = 0; hop < 12 && !url.startsWith(TEST_REDIRECT_URI); hop++) {
      const page = await browser.request(url);
      setCookies.push(...page.setCookies);
      expect(page.location, `${url}: ${page.status} ${page.html.slice(0, 300)}`).toBeTruthy();
      url = page.location!;
    }
    const tokens = await oidc.authorizationCodeGrant(configuration, new URL(url), { pkceCodeVerifier: verifier, expectedState: state });
    expect(tokens.claims()!.sub).toBe(user.id);
    expect(setCookies.filter((line) => line.startsWith('__') || /;\s*secure/i.test(line))).toEqual([]);
    expect(setCookies.map((line) => line.slice(0, line.indexOf('=')))).toEqual(
      expect.arrayContaining(['sls_oidc_interaction', 'sls_oidc_resume', 'sls_oidc_session']),
    );
  });
});

describe.each(DATABASES)('I1, X5: the device grant’s pages under the throttle (%s)', (database) => {
  let h: Harness;
  let issuer: string;
  beforeAll(async () => {
    const off = { perAddress: 0, global: 0 };
    ({ h, issuer } = await listeningHarness(database, {
      limits: {
        login: { perAddress: 3, global: 0 },
        answer: { perAddress: 3, global: 0 },
        send: off,
        activation: off,
        helpdesk: off,
        admin: off,
        integration: off,
      },
    }));
  });
  afterAll(async () => h?.close());

  it('I1, X5 (RFC 8628 §5.1): user codes typed, and device codes asked for, are counted by the throttle however the address is written: the provider matches its routes in any case and with a trailing slash, so /oidc/DEVICE or /oidc/device/ are the same pages and the same count', async () => {
    const created = await h.services.oidc.clients.create(
      { name: 'Throttled desktop', app: 'trading', redirectUris: [], public: true, deviceGrant: true },
      'test',
    );
    const browser = new Browser(issuer);
    const xsrf = (html: string) => /name="xsrf" value="([^"]+)"/.exec(html)![1]!;
    let form = (await browser.request('/oidc/device')).html;
    // a script guessing user codes (8 letters of 20): each guess the provider looks up (the page of a wrong one has the next
    // form's secret), under paths the provider takes as its own
    const guesses: number[] = [];
    for (const path of ['/oidc/device/', '/oidc/DEVICE', '/oidc/Device/', '/oidc/device', '/oidc/dEvIcE', '/oidc/DEVICE/']) {
      const page = await browser.request(path, { form: { xsrf: xsrf(form), user_code: 'BCDF-GHJK' } });
      guesses.push(page.status);
      if (page.status === 200) form = page.html;
    }
    expect(guesses).toEqual([200, 200, 200, 429, 429, 429]);
    // device codes asked for, as login starts
    const asked: number[] = [];
    for (const path of ['/oidc/device/auth/', '/oidc/DEVICE/AUTH', '/oidc/Device/Auth/', '/oidc/device/auth', '/oidc/device/AUTH']) {
      const response = await fetch(`${issuer}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `client_id=${created.client.clientId}&scope=openid`,
      });
      asked.push(response.status);
    }
    expect(asked).toEqual([200, 200, 200, 429, 429]);
  });
});
