/**
 * Attacks on what ends in a token, a changed setting or money moving: the
 * OpenID Provider's tokens (I1), the integrators' API keys (I3), the
 * withdrawal limits (W1-W3) and opting out (O1-O3), by someone who holds
 * less than they should. Each test names the rule it proves, and failed
 * before its fix (or guards a path no other test walks).
 */
import * as oidc from 'openid-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DAY, MINUTE } from '../src/clock.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, type Harness } from './support/harness.js';
import { answer, bearer, get, postJson, startLogin, stepUp, type Json } from './support/api.js';
import { issuePasscode } from './support/staff.js';
import { BUILT_IN_DRIVERS, type Holder } from './support/kind-drivers.js';
import { newMobile } from './support/phone.js';
import { Browser, listeningHarness, registeredClient, signIn as signInWith, TEST_REDIRECT_URI } from './support/oidc.js';
import { Agent, hasForm } from './support/html.js';

describe.each(DATABASES)('attacks on tokens, keys and limits (%s)', (database) => {
  let h: Harness;
  let issuer: string;
  let agentId: string;
  let portalClient: oidc.Configuration;
  const redirectUri = TEST_REDIRECT_URI;

  beforeAll(async () => {
    ({ h, issuer } = await listeningHarness(database));
    agentId = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user.id;
    portalClient = (await registeredClient(h, issuer, 'portal', 'Attack portal')).configuration;
  });
  // the provider reads the system clock: each test starts with ours on it
  beforeEach(() => h.clock.set(Date.now()));
  afterAll(async () => {
    await h?.close();
  });

  const signIn = (browser: Browser, username: string, respond: (flow: Json) => Promise<string> | string, app: 'portal' | 'trading' = 'portal') =>
    signInWith(h, browser, username, respond, app);
  /** The SMS code's answer to a login's flow, the SMS device chosen first if another was offered. */
  const smsAnswer = async (sms: Holder, flow: Json): Promise<string> => {
    const challenge =
      (flow.challenge as Json).type === 'sms'
        ? flow
        : ((await h.services.login.switchDevice(flow.id as string, flow.claimToken as string, sms.deviceId, { ip: null, userAgent: null })) as unknown as Json);
    return sms.right((await sms.answerable(challenge)) as Json);
  };

  interface Walked {
    /** The URL that reached the client, if one did. */
    callback: URL | null;
    /** The last page otherwise. */
    last: { url: string; status: number; html: string };
    seen: string[];
    started: { verifier: string; state: string };
  }

  /** An authorization request of the portal client, its redirects followed in the browser; nothing is typed on the way. */
  async function authorize(browser: Browser, params: Record<string, string> = {}): Promise<Walked> {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    let url = oidc.buildAuthorizationUrl(portalClient, {
      redirect_uri: redirectUri,
      scope: 'openid profile',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      ...params,
    }).href;
    const seen: string[] = [];
    for (let hop = 0; hop < 10; hop++) {
      seen.push(new URL(url).pathname);
      if (url.startsWith(redirectUri)) return { callback: new URL(url), last: { url, status: 0, html: '' }, seen, started: { verifier, state } };
      const page = await browser.request(url);
      if (!page.location) return { callback: null, last: { url, status: page.status, html: page.html }, seen, started: { verifier, state } };
      url = page.location;
    }
    throw new Error('too many redirects');
  }

  async function exchange(walked: Walked) {
    expect(walked.callback?.searchParams.get('code'), walked.last.html.slice(0, 300)).toBeTruthy();
    return oidc.authorizationCodeGrant(portalClient, walked.callback!, { pkceCodeVerifier: walked.started.verifier, expectedState: walked.started.state });
  }

  async function auditData(userId: string, event: string): Promise<Record<string, unknown>[]> {
    const rows = await h.services.store.db.selectFrom('audit_log').select('data').where('event', '=', event).where('user_id', '=', userId).execute();
    return rows.map((row) => JSON.parse(row.data as string) as Record<string, unknown>);
  }

  describe('I1: the provider session stands on the very session of ours that logged in, not on any later one of the same user', () => {
    it('I1, T3: a temporary-passcode session limited to the online card (after day 2) gets no code through the provider session an earlier full-access one opened', async () => {
      const { user } = await createUserWithCard(h.services);
      // the passcode was issued 2 days less 10 minutes ago: full access for 10 more minutes (T3)
      h.clock.set(Date.now() - 2 * DAY + 10 * MINUTE);
      const { passcode } = await issuePasscode(h.services, agentId, user.username);
      h.clock.set(Date.now());
      const browser = new Browser(issuer);
      await signIn(browser, user.username, () => passcode);
      const first = await authorize(browser);
      expect(first.callback?.searchParams.get('code')).toBeTruthy();
      // one interaction: the session in the browser is checked once, and the resume it finished goes on to the client
      expect(first.seen.filter((path) => path.startsWith('/oidc/interaction/'))).toHaveLength(1);

      // day 2 passes: the full-access session ends (not revoked: it expires), the next login opens only the online card
      h.clock.advance(15 * MINUTE);
      await signIn(browser, user.username, () => passcode);
      expect((await h.services.sessions.authenticate(browser.jar.get('__Host-sls_session')!))!.scope).toBe('online_card_only');
      const second = await authorize(browser);
      expect(second.callback, 'no code reaches the client').toBeNull();
      expect(second.last.status).toBe(403);
      expect(second.last.html).toContain('you can only print and activate your online security card');
      const refused = await auditData(user.id, 'session.refused');
      expect(refused.map((d) => `${d.need} ${d.code}`)).toContain('application SCOPE_ONLINE_CARD_ONLY');
    });

    it('I1: acr and amr say how the session in the browser logged in (SMS), not how an earlier one that ended did (DSC+)', async () => {
      const sms = await BUILT_IN_DRIVERS.sms!.holder(h);
      const { card } = await h.services.devices.addDscPlus({ userId: sms.user.id, pin: '1234' }, 'test');
      const dscPlus = (await h.services.devices.listForUser(sms.user.id)).find((d) => d.type === 'dscplus')!;
      const browser = new Browser(issuer);
      // a login with the card: the application is told `strong`
      await signIn(browser, sms.user.username, async (flow) => {
        const switched = await h.services.login.switchDevice(flow.id as string, flow.claimToken as string, dscPlus.id, { ip: null, userAgent: null });
        return cardAnswer(card, (switched.challenge as unknown as Json).question as string);
      });
      const strong = await exchange(await authorize(browser));
      expect(strong.claims()!.acr).toBe('urn:sls:acr:strong');

      // that session idles out (L8: 30 minutes); the next login in this browser is with the SMS code
      h.clock.advance(31 * MINUTE);
      await signIn(browser, sms.user.username, (flow) => smsAnswer(sms, flow));
      const tokens = await exchange(await authorize(browser));
      expect(tokens.claims()).toMatchObject({ acr: 'urn:sls:acr:device' });
      expect(tokens.claims()!.amr).toContain('sms');
      expect(tokens.claims()!.amr).not.toContain('hwk');
    });
  });

  describe('O2: opting back in leaves no session that the password alone opened', () => {
    it('O2, L8: a trading login with the password alone racing the opt-in (opted out when it began, back in before its session was made) opens no session: the device is asked for', async () => {
      const { user, card } = await createUserWithCard(h.services);
      await h.services.optOuts.optOut(user.id, { acknowledged: true, confirmation: user.username }, { actor: 'cli' });
      const optOuts = h.services.optOuts;
      const original = optOuts.isOptedOut;
      let raced = false;
      // the user opts back in just after the login read that they were out, before its session is made
      optOuts.isOptedOut = async (userId, db) => {
        const out = await original.call(optOuts, userId, db);
        if (out && !raced && userId === user.id) {
          raced = true;
          await optOuts.optIn(user.id, { actor: `user:${user.id}` });
        }
        return out;
      };
      let start: Awaited<ReturnType<typeof startLogin>>;
      try {
        start = await startLogin(h.app, user.username, PASSWORD, 'trading');
      } finally {
        optOuts.isOptedOut = original;
      }
      expect(raced).toBe(true);
      expect(start.status, JSON.stringify(start.body)).toBe(200);
      expect(start.body.session, 'no session opened by the password alone').toBeUndefined();
      expect(start.body.state).toBe('second_factor');
      const live = await h.services.store.db
        .selectFrom('sessions')
        .select('id')
        .where('user_id', '=', user.id)
        .where('device_id', 'is', null)
        .where('revoked_at', 'is', null)
        .execute();
      expect(live).toEqual([]);
      // the device then opens the trading session as for anyone opted in
      const done = await answer(h.app, start.body.id as string, cardAnswer(card, start.body.challenge.question as string));
      expect(done.status, JSON.stringify(done.body)).toBe(200);
    });
  });

  describe('N1: the number security notices go to does not change in silence', () => {
    const meta = { ip: null, language: 'en' as const };

    /** A number added and verified (M1) with the confirm code from the outbox. */
    async function verifiedNumber(userId: string) {
      const phone = await h.services.phones.add(userId, newMobile(), `user:${userId}`, null);
      await h.services.phones.sendConfirmCode(userId, phone.id, meta);
      const [message] = (await h.services.notifier.list({ userId })).filter((n) => n.template === 'confirmCode' && n.recipient === phone.e164);
      await h.services.phones.confirm(userId, phone.id, /\b(\d{6})\b/.exec(message!.body)![1]!, meta);
      return phone;
    }

    it('N1, X7: a new number verified, and a number removed, are told by SMS to the number the notices went to until then (not only to the new one)', async () => {
      const { user } = await createUserWithCard(h.services);
      const own = await verifiedNumber(user.id);
      const toOwn = async (template: string) =>
        (await h.services.notifier.list({ userId: user.id })).filter((n) => n.recipient === own.e164 && n.template === template);
      expect(await toOwn('phoneVerified')).toHaveLength(1);
      // someone who got past a step-up puts their number on record: every later SMS notice goes to the newest number
      await verifiedNumber(user.id);
      const told = await toOwn('phoneVerified');
      expect(told, 'the number the notices went to is told').toHaveLength(2);
      // … and removes the user's own number: the notice of it reaches that number too, before it is gone
      await h.services.phones.remove(user.id, own.id, `user:${user.id}`, null);
      expect(await toOwn('phoneRemoved'), 'the number removed is told').toHaveLength(1);
      expect((await h.services.audit.list({ userId: user.id, limit: 100 })).map((e) => e.event)).toEqual(
        expect.arrayContaining(['phone.verified', 'phone.removed']),
      );
    });
  });

  describe('T3, W1, X7: temporary access does not make itself permanent', () => {
    /** A user whose card is away (suspended): client services issue a temporary passcode (T1); a portal session opened with it, stepped up with it. */
    async function temporarySession() {
      const { user } = await createUserWithCard(h.services);
      const { passcode } = await issuePasscode(h.services, agentId, user.username, 'suspended');
      const start = await startLogin(h.app, user.username);
      const done = await answer(h.app, start.body.id as string, passcode);
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      const headers = bearer(done.body.session.token as string);
      await stepUp(h.app, headers, () => passcode);
      return { user, headers };
    }

    it('T3, D6, W1: a step-up with a temporary passcode registers no security key (a permanent, strong device): refused, audited, and the limits stay those of no device', async () => {
      const { user, headers } = await temporarySession();
      const started = await postJson(h.app, '/api/v1/security-keys/registration', {}, headers);
      expect(started.status, JSON.stringify(started.body)).toBe(403);
      expect(started.body.error.code).toBe('PERMANENT_DEVICE_REQUIRED');
      expect((await get(h.app, '/api/v1/security-keys', headers)).body.keys).toEqual([]);
      const limits = await get(h.app, '/api/v1/withdrawal-limits', headers);
      expect(limits.body).toMatchObject({ device: null, perDayUsd: 50_000 });
      const refused = await auditData(user.id, 'session.refused');
      expect(refused.map((d) => `${d.need} ${d.code}`)).toContain('security PERMANENT_DEVICE_REQUIRED');
    });

    it('T3, M2, X7: a step-up with a temporary passcode puts no number on record: a number added then (verified, or waiting for its first code) would enrol the user in SMS, a permanent device', async () => {
      const { user, headers } = await temporarySession();
      const added = await postJson(h.app, '/api/v1/phones', newMobile(), headers);
      expect(added.status, JSON.stringify(added.body)).toBe(403);
      expect(added.body.error.code).toBe('PERMANENT_DEVICE_REQUIRED');
      expect(await h.services.phones.list(user.id)).toEqual([]);
      expect((await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'sms')).toEqual([]);
      expect((await auditData(user.id, 'session.refused')).map((d) => `${d.need} ${d.code}`)).toContain('security PERMANENT_DEVICE_REQUIRED');
    });

    it('T3, X7: the portal pages hold too: after a step-up with a temporary passcode no opt-out, no number, and no key registration offered', async () => {
      const { user, headers } = await temporarySession();
      const agent = new Agent(h.app);
      agent.jar.set('__Host-sls_session', headers.authorization!.slice('Bearer '.length));
      const configure = await agent.get('/settings/secure-login/configure');
      expect(configure.status, configure.html.slice(0, 300)).toBe(200);
      const refused = await agent.submit(configure, '/settings/secure-login/configure', { choice: 'opt_out', acknowledge: 'yes', confirmation: user.username });
      expect(refused.status).toBe(403);
      expect(refused.html).toContain('cannot add a security device or turn off the second factor');
      expect(await h.services.optOuts.isOptedOut(user.id)).toBe(false);
      const mobile = await agent.get('/settings/mobile');
      expect((await agent.submit(mobile, '/settings/mobile', newMobile())).status).toBe(403);
      expect(await h.services.phones.list(user.id)).toEqual([]);
      const keys = await agent.get('/settings/security-keys');
      expect(keys.status).toBe(200);
      expect(hasForm(keys.html, '/settings/security-keys')).toBe(false);
    });

    it('T3, O1, X7: a step-up with a temporary passcode does not opt the user out (trading with the password alone would outlive the passcode): refused, audited', async () => {
      const { user, headers } = await temporarySession();
      const refused = await postJson(h.app, '/api/v1/secure-login/opt-out', { acknowledgeRisks: true, confirmation: user.username }, headers);
      expect(refused.status, JSON.stringify(refused.body)).toBe(403);
      expect(refused.body.error.code).toBe('PERMANENT_DEVICE_REQUIRED');
      expect(await h.services.optOuts.isOptedOut(user.id)).toBe(false);
      expect((await auditData(user.id, 'session.refused')).map((d) => `${d.need} ${d.code}`)).toContain('security PERMANENT_DEVICE_REQUIRED');
      // opting back in restores protection: never refused (O2)
      expect((await postJson(h.app, '/api/v1/secure-login/opt-in', {}, headers)).status).toBe(200);
    });
  });

  describe('W1, O1: the limits an application is told are the account’s real ones', () => {
    it('W1, O1, I1: opted out, the limits in sls.entitlements (user info) and in GET /withdrawal-limits are the None row, as the entitlement API’s, not those of the DSC+ the user holds', async () => {
      const { user, card } = await createUserWithCard(h.services);
      await h.services.optOuts.optOut(user.id, { acknowledged: true, confirmation: user.username }, { actor: 'cli' });
      const none = { perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 };
      expect((await h.services.withdrawals.entitlements(user.accountNumber, user.username)).standing.limit).toEqual(none);
      const browser = new Browser(issuer);
      const token = await signIn(browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string));
      const tokens = await exchange(await authorize(browser, { scope: 'openid sls.entitlements' }));
      const info = await oidc.fetchUserInfo(portalClient, tokens.access_token, tokens.claims()!.sub);
      expect(info.sls_withdrawal_limits).toEqual({ device: null, per_day_usd: 50_000, five_business_days_usd: 100_000 });
      expect((await get(h.app, '/api/v1/withdrawal-limits', bearer(token))).body).toMatchObject({ device: null, ...none });
      // the account page tells the same: not the DSC+'s unlimited row
      const agent = new Agent(h.app);
      agent.jar.set('__Host-sls_session', token);
      const account = await agent.get('/account');
      expect(account.status).toBe(200);
      const shown = /id="withdrawal-limits">([^<]*)</.exec(account.html)?.[1] ?? '';
      expect(shown).toContain('50,000');
      expect(shown).toContain('100,000');
    });

    it('W1, I1, D2: the limits an application is told follow what its session proved: a user holding a DSC+ who logged in with SMS (the password and a SIM) is told the SMS row, not unlimited', async () => {
      const sms = await BUILT_IN_DRIVERS.sms!.holder(h);
      await h.services.devices.addDscPlus({ userId: sms.user.id, pin: '1234' }, 'test');
      // the account itself is protected by the DSC+ (the entitlement API's answer, no session)
      expect((await h.services.withdrawals.limitsOfUser(sms.user.id)).device).toBe('dscplus');
      const browser = new Browser(issuer);
      await signIn(browser, sms.user.username, (flow) => smsAnswer(sms, flow));
      const tokens = await exchange(await authorize(browser, { scope: 'openid sls.entitlements' }));
      expect(tokens.claims()!.acr).toBe('urn:sls:acr:device');
      const info = await oidc.fetchUserInfo(portalClient, tokens.access_token, tokens.claims()!.sub);
      expect(info.sls_withdrawal_limits).toEqual({ device: 'sms', per_day_usd: 200_000, five_business_days_usd: 600_000 });
    });

    it('W1, D2: GET /withdrawal-limits and the account page tell the session’s limits, as sls.entitlements does: a user holding a DSC+ who logged in with SMS is shown the SMS row, not unlimited', async () => {
      const sms = await BUILT_IN_DRIVERS.sms!.holder(h);
      await h.services.devices.addDscPlus({ userId: sms.user.id, pin: '1234' }, 'test');
      expect((await h.services.withdrawals.limitsOfUser(sms.user.id)).device).toBe('dscplus');
      const start = await startLogin(h.app, sms.user.username);
      const done = await answer(h.app, start.body.id as string, await smsAnswer(sms, start.body));
      expect(done.body.state, JSON.stringify(done.body)).toBe('done');
      const token = done.body.session.token as string;
      expect((await get(h.app, '/api/v1/withdrawal-limits', bearer(token))).body).toEqual({ device: 'sms', perDayUsd: 200_000, fiveBusinessDaysUsd: 600_000 });
      const agent = new Agent(h.app);
      agent.jar.set('__Host-sls_session', token);
      const account = await agent.get('/account');
      expect(account.status).toBe(200);
      const shown = /id="withdrawal-limits">([^<]*)</.exec(account.html)?.[1] ?? '';
      expect(shown).toContain('200,000');
      expect(shown).toContain('600,000');
      // the SMS device reported lost: the session proves nothing any more, the None row
      await h.services.store.db.updateTable('devices').set({ state: 'lost' }).where('id', '=', sms.deviceId).execute();
      expect((await get(h.app, '/api/v1/withdrawal-limits', bearer(token))).body).toMatchObject({ device: null, perDayUsd: 50_000 });
    });
  });
});
