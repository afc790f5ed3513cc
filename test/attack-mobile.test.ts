/**
 * Attacks on the mobile authenticator's answers (K3, K4, K13) and on the
 * counters behind them, on every database. Two answers that race are made
 * to race at the worst moment — both checked against the same state before
 * either is taken — by hooks on the services, never by timing. Each test
 * names the rule it proves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Answers, FlowAnswer } from '../src/flows/answers.js';
import type { FlowRow } from '../src/flows/flow-rows.js';
import { verifierContext } from '../src/flows/flow-rows.js';
import type { MobileSecret, PushVerifier } from '../src/devices/mobile/mobile.js';
import { ApiError } from '../src/mobile-app/api.js';
import { translator } from '../src/i18n/i18n.js';
import { DATABASES, PASSWORD, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { type ApiResponse, bearer, claimOf, claimSession, get, loginSession, postJson, startLogin, withCard } from './support/api.js';
import { relyingPartyOf } from '../src/devices/security-key/security-key.js';
import { boundClaim, cookieNames } from '../src/http/session-cookie.js';
import { issuePasscode } from './support/staff.js';
import { SoftwareAuthenticator, registerSecurityKey } from './support/software-authenticator.js';
import { TestPhone, harnessInbox, listen, rejected, smsUser, verifiedNumber } from './support/phone.js';

describe.each(DATABASES)('attacks on the mobile authenticator (%s)', (database) => {
  let h: Harness;
  let base: string;

  beforeAll(async () => {
    h = await startHarness(database);
    base = await listen(h);
  });
  afterAll(async () => {
    await h?.close();
  });

  const phone = () => new TestPhone(base, harnessInbox(h));

  /**
   * The next `count` answers checked (right or wrong) wait for one another
   * before any of them goes on to be taken: all are checked against the same
   * state (the flow still waiting, the same signature counter), then race to
   * their accepting transactions.
   */
  function checkedTogether(count: number): { checked: () => number; restore: () => void } {
    // the answer protocol every flow kind answers through (Answers, shared by the services)
    const answers = (h.services.pushRequests as unknown as { deps: { answers: Answers } }).deps.answers;
    const original = answers.answerFlow;
    let checked = 0;
    let release!: () => void;
    const all = new Promise<void>((resolve) => {
      release = resolve;
    });
    answers.answerFlow = function <T>(this: typeof answers, spec: FlowAnswer<T>): Promise<T> {
      return original.call(this, {
        ...spec,
        // checks that overlap: the answer taken in two transactions, PostgreSQL's way (on SQLite an answer whose check
        // reads nothing is taken in one transaction, which no other answer overlaps: decision 0019)
        checkInside: false,
        check: async () => {
          const result = await spec.check();
          checked += 1;
          if (checked === count) release();
          await all;
          return result;
        },
      }) as Promise<T>;
    };
    return { checked: () => checked, restore: () => (answers.answerFlow = original) };
  }

  /** Runs `then` (to its end) when the next push request other than `except` is about to be announced: before it supersedes the older ones (K13). */
  function beforeAnnounced(except: string, then: (row: FlowRow) => Promise<void>): { fired: () => boolean } {
    const pushRequests = h.services.pushRequests;
    const original = pushRequests.announce;
    let fired = false;
    pushRequests.announce = async function (this: typeof pushRequests, row, language) {
      if (row.id !== except && !fired) {
        fired = true;
        pushRequests.announce = original;
        await then(row);
      }
      return original.call(this, row, language);
    };
    return { fired: () => fired };
  }

  /** The phone's id of a login's push request (a keyed digest of the flow id, which never reaches the phone). */
  const requestIdOf = (flowId: string) => `req_${h.services.box.digest(flowId, 'push-request')}`;

  /** The signature counter of the biometric credential, as stored. */
  async function storedCounter(deviceId: string): Promise<number> {
    return (await h.services.devices.readSecret<MobileSecret>(h.services.store.db, deviceId)).credential!.counter;
  }

  async function failuresOf(userId: string): Promise<number> {
    return (await h.services.audit.list({ userId })).filter((e) => e.event === 'login.second_factor_failed').length;
  }

  async function flowState(flowId: string): Promise<string> {
    return (await h.services.store.db.selectFrom('login_flows').select('state').where('id', '=', flowId).executeTakeFirstOrThrow()).state;
  }

  /** The user's devices, as `type:state`. */
  async function deviceStates(userId: string): Promise<string[]> {
    return (await h.services.devices.listForUser(userId)).map((d) => `${d.type}:${d.state}`).sort();
  }

  /** How each of the answers sent at once ended: the state it approved, or the error's code. */
  function outcomes(results: PromiseSettledResult<{ state: string }>[]): string[] {
    return results.map((r) => (r.status === 'fulfilled' ? r.value.state : r.reason instanceof ApiError ? r.reason.code : String(r.reason))).sort();
  }

  describe('K3, L4, D6: biometric approvals that race', () => {
    it('K3, L4, D6: the same signed biometric approval sent twice at once, both checked before either is taken: one approves, the copy gets FLOW_EXPIRED and counts nothing', async () => {
      const user = await smsUser(h);
      const key = new SoftwareAuthenticator();
      const app = phone();
      const enrolment = await app.activate(user.username, { biometric: key });
      const login = await startLogin(h.app, user.username, PASSWORD);
      expect(login.body.challenge.type).toBe('push');
      const approval = await app.biometricApproval(await app.request(user.username), login.body.challenge.number, key);
      const gate = checkedTogether(2);
      let results: PromiseSettledResult<{ state: string }>[];
      try {
        results = await Promise.allSettled([approval.send(), approval.send()]);
      } finally {
        gate.restore();
      }
      expect(gate.checked()).toBe(2);
      expect(outcomes(results)).toEqual(['FLOW_EXPIRED', 'approved']);
      expect(await storedCounter(enrolment.deviceId)).toBe(key.counter);
      // the copy was no wrong answer: nothing counted towards the lock (L3)
      expect(await failuresOf(user.id)).toBe(0);
      const approvals = (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'login.push_approved');
      expect(approvals.map((e) => (e.data as { confirmedBy: string }).confirmedBy)).toEqual(['biometric']);
      // one approval, one session
      expect((await claimSession(h.app, login)).status).toBe(200);
      expect((await claimSession(h.app, login)).status).not.toBe(200);
    });

    it('K3, K13, D6: approvals of two logins waiting on the phone at once, checked against the same signature counter: only one is taken, and the counter stored is its own', async () => {
      const user = await smsUser(h);
      const key = new SoftwareAuthenticator();
      const app = phone();
      const enrolment = await app.activate(user.username, { biometric: key });
      const first = await startLogin(h.app, user.username, PASSWORD);
      const before = await storedCounter(enrolment.deviceId);
      const sent: Record<string, number> = {};
      let results: PromiseSettledResult<{ state: string }>[] = [];
      // the second login's request, the moment before it supersedes the first: the phone shows both, and the user approves both
      const hook = beforeAnnounced(first.body.id as string, async (second) => {
        const { requests } = await app.poll();
        expect(requests.map((r) => r.id).sort()).toEqual([requestIdOf(first.body.id as string), requestIdOf(second.id)].sort());
        const numbers: Record<string, string> = {
          [first.body.id as string]: first.body.challenge.number as string,
          [second.id]: h.services.box.openJson<PushVerifier>(second.verifier!, verifierContext(second.kind, second.id)).number,
        };
        const approvals = [];
        for (const [flowId, counter] of [
          [first.body.id as string, before + 1],
          [second.id, before + 2],
        ] as const) {
          const request = requests.find((r) => r.id === requestIdOf(flowId))!;
          sent[flowId] = counter;
          approvals.push(await app.biometricApproval(request, numbers[flowId]!, key, counter));
        }
        const gate = checkedTogether(2);
        try {
          results = await Promise.allSettled(approvals.map((a) => a.send()));
        } finally {
          gate.restore();
        }
        expect(gate.checked()).toBe(2);
      });
      const second = await startLogin(h.app, user.username, PASSWORD);
      expect(hook.fired()).toBe(true);
      expect(outcomes(results)).toEqual(['FLOW_EXPIRED', 'approved']);
      const states = { [first.body.id as string]: await flowState(first.body.id), [second.body.id as string]: await flowState(second.body.id) };
      const approved = Object.keys(states).filter((id) => states[id] === 'approved');
      expect(approved).toHaveLength(1);
      // the counter is the approved one's: never the other's written over it (L4: a later, lower write would hide a clone)
      expect(await storedCounter(enrolment.deviceId)).toBe(sent[approved[0]!]);
      expect(await failuresOf(user.id)).toBe(0);
    });
  });
  describe('K3, K13: a phone approves only its own user’s requests, and only while it is active', () => {
    it('K13, K6: another user’s phone, signing with its own keys and naming the request by its id, neither approves nor denies it; nothing is counted against the user', async () => {
      const victim = await smsUser(h);
      const intruder = await smsUser(h);
      const victimPhone = phone();
      const intruderPhone = phone();
      await victimPhone.activate(victim.username);
      await intruderPhone.activate(intruder.username);
      const login = await startLogin(h.app, victim.username, PASSWORD);
      const request = await victimPhone.request(victim.username);
      // the intruder's phone answers the victim's request as if it were its own user's (K6: several users in one app)
      const asIntruder = { ...request, username: intruder.username };
      expect((await rejected(intruderPhone.approve(asIntruder, login.body.challenge.number))).code).toBe('FLOW_EXPIRED');
      expect((await rejected(intruderPhone.deny(asIntruder))).code).toBe('FLOW_EXPIRED');
      expect(await flowState(login.body.id)).toBe('second_factor');
      expect(await failuresOf(victim.id)).toBe(0);
      // the victim's own phone still approves it
      expect((await victimPhone.approve(request, login.body.challenge.number)).state).toBe('approved');
      expect((await claimSession(h.app, login)).status).toBe(200);
    });

    it('L8, D3, K3: a phone reported lost approves nothing, with the PIN or biometric: APP_TOKEN_INVALID, and its live connection names it revoked', async () => {
      const user = await smsUser(h);
      const key = new SoftwareAuthenticator();
      const app = phone();
      const enrolment = await app.activate(user.username, { biometric: key });
      const agent = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user;
      const login = await startLogin(h.app, user.username, PASSWORD);
      const request = await app.request(user.username);
      const biometric = await app.biometricApproval(request, login.body.challenge.number, key);
      await issuePasscode(h.services, agent.id, user.username, 'lost');
      expect((await h.services.devices.get(enrolment.deviceId)).state).toBe('lost');
      expect((await rejected(app.approve(request, login.body.challenge.number))).code).toBe('APP_TOKEN_INVALID');
      expect((await rejected(biometric.send())).code).toBe('APP_TOKEN_INVALID');
      expect((await app.poll()).revoked).toEqual([enrolment.deviceId]);
      expect((await claimSession(h.app, login)).status).not.toBe(200);
      expect(await failuresOf(user.id)).toBe(0);
    });

    it('V1, K11, K3: an approved step-up request is no login, and an approved login no step-up: neither is taken for the other', async () => {
      const user = await smsUser(h);
      const app = phone();
      await app.activate(user.username);
      const login = await startLogin(h.app, user.username, PASSWORD);
      await app.approve(await app.request(user.username), login.body.challenge.number);
      const auth = bearer((await claimSession(h.app, login)).body.session.token as string);
      const stepUp = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, auth);
      expect(stepUp.body.challenge.type).toBe('push');
      const request = await app.request(user.username);
      expect(request.kind).toBe('step_up');
      await app.approve(request, stepUp.body.challenge.number);
      // the approved step-up taken as a login, with the claim token of a login of the user's
      const second = await startLogin(h.app, user.username, PASSWORD);
      const asLogin = await postJson(h.app, `/api/v1/login/${stepUp.body.id as string}/session`, { claimToken: second.body.claimToken });
      expect([asLogin.status, asLogin.body.error.code]).toEqual([404, 'FLOW_NOT_FOUND']);
      // an approved login taken as the session's step-up
      await app.approve(await app.request(user.username), second.body.challenge.number);
      const asStepUp = await postJson(h.app, `/api/v1/step-up/${second.body.id as string}/complete`, {}, auth);
      expect([asStepUp.status, asStepUp.body.error.code]).toEqual([404, 'FLOW_NOT_FOUND']);
      expect((await get(h.app, '/api/v1/session', auth)).body.verifiedAt).toBeNull();
    });
  });
  describe('K13: push fatigue: a password holder cannot make the phone ring until its owner gives in', () => {
    const OWNER = '198.51.100.7';
    const HOLDER = '203.0.113.66';
    const HOUR = 60 * 60 * 1000;

    /** A JSON request from a client address. */
    async function postFrom(from: string, url: string, payload: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
      const res = await h.app.inject({ method: 'POST', url, remoteAddress: from, payload: payload as object, headers });
      return { status: res.statusCode, body: res.json(), headers: res.headers, raw: res };
    }
    const loginFrom = (from: string, username: string, app: 'portal' | 'trading' = 'portal') =>
      postFrom(from, '/api/v1/login', { username, password: PASSWORD, app });

    /** A user with the authenticator, who completed a login from the owner's usual client (decision 0018). */
    async function ownerWithPhone() {
      const user = await smsUser(h);
      const app = phone();
      const enrolment = await app.activate(user.username);
      const login = await loginFrom(OWNER, user.username, 'portal');
      await app.approve(await app.request(user.username), login.body.challenge.number);
      expect((await claimSession(h.app, login)).status).toBe(200);
      return { user, app, enrolment };
    }

    async function withheld(userId: string): Promise<unknown[]> {
      return (await h.services.audit.list({ userId })).filter((e) => e.event === 'login.push_withheld').map((e) => e.data.reason);
    }

    it('K13, K4: logins (and device changes) from a client the user never logged in from ring the phone at most 5 times an hour; then the login shows the app’s challenge and the phone is left alone, audited; the owner’s usual client still rings', async () => {
      const { user, app, enrolment } = await ownerWithPhone();
      const pushes: string[] = [];
      const claims: string[] = [];
      for (let i = 0; i < 3; i++) {
        h.clock.advance(1000);
        const login = await loginFrom(HOLDER, user.username, 'portal');
        expect(login.body.challenge.type).toBe('push');
        pushes.push(login.body.id as string);
        claims.push(login.body.claimToken as string);
      }
      // a device change to the same phone sends the push again: it counts too
      const last = pushes[pushes.length - 1]!;
      const claim = { 'x-claim-token': claims[claims.length - 1]! };
      for (let i = 0; i < 2; i++) {
        const switched = await postFrom(HOLDER, `/api/v1/login/${last}`, { device: enrolment.deviceId }, claim);
        expect(switched.body.challenge.type).toBe('push');
      }
      const before = (await app.request(user.username)).id;
      expect(before).toBe(requestIdOf(last));
      // the sixth: no push; the app's challenge (K4) instead, which only the phone's owner can answer
      const switched = await postFrom(HOLDER, `/api/v1/login/${last}`, { device: enrolment.deviceId }, claim);
      expect(switched.body.challenge.type).toBe('ocra');
      const next = await loginFrom(HOLDER, user.username, 'portal');
      expect([next.status, next.body.state, next.body.challenge.type]).toEqual([200, 'second_factor', 'ocra']);
      expect((await app.poll()).requests).toEqual([]);
      expect(await withheld(user.id)).toEqual(['too_many', 'too_many']);
      // the owner, also on the holder's network, answers the challenge with the app (K4, K10)
      const answered = await postFrom(
        HOLDER,
        `/api/v1/login/${next.body.id as string}`,
        { response: await app.respond(user.username, next.body.challenge.question) },
        claimOf(next),
      );
      expect(answered.status).toBe(200);
      // the owner at their usual client is never silenced
      const own = await loginFrom(OWNER, user.username, 'portal');
      expect(own.body.challenge.type).toBe('push');
      expect((await app.request(user.username)).id).toBe(requestIdOf(own.body.id as string));
      // an hour later the holder's network (now recognised: the owner logged in from it) rings again
      h.clock.advance(HOUR);
      expect((await loginFrom('192.0.2.44', user.username)).body.challenge.type).toBe('push');
    });

    it('L8, K3, K4: who learns a login’s id (a Referer, a shared link, a log) but not its claim token can neither watch it, nor turn its push into the app’s challenge, nor switch it to SMS or resend codes: 404 FLOW_NOT_FOUND, audited; the page shows it nothing; its owner still can', async () => {
      const { user, app } = await ownerWithPhone();
      await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
      h.clock.advance(HOUR);
      const login = await loginFrom(OWNER, user.username, 'portal');
      expect(login.body.challenge.type).toBe('push');
      const id = login.body.id as string;
      const card = login.body.devices.find((d: { type: string }) => d.type === 'dscplus') as { id: string };
      const texts = async () => (await h.services.notifier.list({ userId: user.id })).length;
      const before = await texts();
      for (const headers of [{}, { 'x-claim-token': 'not-the-token' }] as Record<string, string>[]) {
        const what = JSON.stringify(headers);
        const refused = [
          await postFrom(HOLDER, `/api/v1/login/${id}/offline`, undefined, headers),
          await postFrom(HOLDER, `/api/v1/login/${id}`, { device: card.id }, headers),
          await postFrom(HOLDER, `/api/v1/login/${id}/code`, { channel: 'sms' }, headers),
          await get(h.app, `/api/v1/login/${id}?wait=1`, headers),
        ];
        for (const out of refused) expect([out.status, out.body.error.code], what).toEqual([404, 'FLOW_NOT_FOUND']);
      }
      // the page: a browser without the login's claim cookie sees no challenge and changes nothing
      const page = await h.app.inject({ method: 'GET', url: `/login/${id}` });
      expect(page.body).not.toContain('push-panel');
      expect(page.body).not.toContain(`/login/${id}/offline`);
      expect((await h.app.inject({ method: 'GET', url: `/login/${id}/wait?wait=1` })).statusCode).toBe(404);
      // the owner's push still waits on the phone; no code was sent
      expect((await app.request(user.username)).id).toBe(requestIdOf(id));
      expect(await texts()).toBe(before);
      expect((await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'login.claim_refused').length).toBeGreaterThanOrEqual(9);
      // the owner, with the claim token: watches, and asks for the app's challenge
      const claim = { 'x-claim-token': login.body.claimToken as string };
      const offline = await postFrom(OWNER, `/api/v1/login/${id}/offline`, undefined, claim);
      expect([offline.status, offline.body.challenge.type]).toEqual([200, 'ocra']);
    });

    it('K13, L4: eight logins from the password holder’s client sent at once ring the phone at most 5 times; the others show the app’s challenge, each audited', async () => {
      const { user } = await ownerWithPhone();
      const started = await Promise.all(Array.from({ length: 8 }, () => loginFrom(HOLDER, user.username)));
      const types = started.map((s) => s.body.challenge.type as string);
      expect(types.filter((t) => t !== 'push' && t !== 'ocra')).toEqual([]);
      const rang = types.filter((t) => t === 'push').length;
      expect(rang).toBeLessThanOrEqual(5);
      expect((await withheld(user.id)).length).toBe(8 - rang);
    });

    it('K13, L4: a login whose push is withheld, superseded meanwhile by the owner’s own login on the phone, is told it ended (200, failed), not an error; the withheld push is audited', async () => {
      const { user, app } = await ownerWithPhone();
      for (let i = 0; i < 5; i++) {
        h.clock.advance(1000);
        expect((await loginFrom(HOLDER, user.username)).body.challenge.type).toBe('push');
      }
      h.clock.advance(1000);
      let own = '';
      const hook = beforeAnnounced('', async () => {
        h.clock.advance(1000);
        const mine = await loginFrom(OWNER, user.username);
        expect(mine.body.challenge.type).toBe('push');
        own = mine.body.id as string;
      });
      const sixth = await loginFrom(HOLDER, user.username);
      expect(hook.fired()).toBe(true);
      expect([sixth.status, sixth.body.state]).toEqual([200, 'failed']);
      expect(await withheld(user.id)).toEqual(['too_many']);
      expect((await app.poll()).requests.map((r) => r.id)).toEqual([requestIdOf(own)]);
    });

    it('K13, K4: after "this wasn\'t me", logins from clients the user never logged in from send no push for 24 hours (the app’s challenge instead); the usual client still gets one', async () => {
      const { user, app } = await ownerWithPhone();
      await loginFrom(HOLDER, user.username, 'portal');
      expect(await app.deny(await app.request(user.username))).toEqual({ state: 'denied' });
      const again = await loginFrom(HOLDER, user.username, 'trading');
      expect([again.body.state, again.body.challenge.type]).toEqual(['second_factor', 'ocra']);
      expect((await app.poll()).requests).toEqual([]);
      expect(await withheld(user.id)).toEqual(['denied']);
      // the web page shows the app's challenge too (to the browser that started the login: its claim bound to its CSRF secret)
      const names = cookieNames(h.services.config);
      const page = await h.app.inject({
        method: 'GET',
        url: `/login/${again.body.id as string}`,
        cookies: { [names.csrf]: 'the-browser-secret', [names.claim]: boundClaim('the-browser-secret', again.body.claimToken as string) },
      });
      expect(page.body).toContain(again.body.challenge.question);
      const own = await loginFrom(OWNER, user.username, 'portal');
      expect(own.body.challenge.type).toBe('push');
      await app.approve(await app.request(user.username), own.body.challenge.number);
      expect((await claimSession(h.app, own)).status).toBe(200);
      h.clock.advance(24 * HOUR);
      expect((await loginFrom(HOLDER, user.username, 'portal')).body.challenge.type).toBe('push');
    });
  });

  describe('K13, L8: "this wasn\'t me" to a step-up', () => {
    it('K13, L8, V1: the phone’s owner denying a step-up ends the session that asked for it (a stolen one), audited push_denied; the user’s other sessions stay', async () => {
      const user = await smsUser(h);
      const app = phone();
      await app.activate(user.username);
      const sessionOf = async () => {
        const login = await startLogin(h.app, user.username, PASSWORD);
        await app.approve(await app.request(user.username), login.body.challenge.number);
        const claimed = await claimSession(h.app, login);
        return { auth: bearer(claimed.body.session.token as string) };
      };
      const own = await sessionOf();
      const stolen = await sessionOf();
      const stepUp = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, stolen.auth);
      expect(stepUp.body.challenge.type).toBe('push');
      expect(await app.deny(await app.request(user.username))).toEqual({ state: 'denied' });
      expect((await get(h.app, '/api/v1/session', stolen.auth)).status).toBe(401);
      expect((await get(h.app, '/api/v1/session', own.auth)).status).toBe(200);
      const ended = (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'session.ended').map((e) => e.data);
      expect(ended.map((d) => d.reason)).toEqual(['push_denied']);
    });

    /** A user with the authenticator, and two sessions of theirs opened with it: the owner's, and one a thief holds (with the password). */
    async function ownerAndThief() {
      const user = await smsUser(h);
      const app = phone();
      await app.activate(user.username);
      const sessionOf = async () => {
        const login = await startLogin(h.app, user.username, PASSWORD);
        await app.approve(await app.request(user.username), login.body.challenge.number);
        const claimed = await claimSession(h.app, login);
        return bearer(claimed.body.session.token as string);
      };
      return { user, app, sessionOf, own: await sessionOf(), stolen: await sessionOf() };
    }
    const withheldOf = async (userId: string) =>
      (await h.services.audit.list({ userId })).filter((e) => e.event === 'login.push_withheld').map((e) => [e.data.kind, e.data.reason]);

    it('K13, V1, L4: a stolen session holding the password rings the phone with step-ups at most 5 times an hour; then the step-up shows the app’s challenge (K4) and the phone is left alone, audited; the owner answers it with the app', async () => {
      const { user, app, stolen, own, sessionOf } = await ownerAndThief();
      let last = '';
      for (let i = 0; i < 5; i++) {
        h.clock.advance(1000);
        const rang = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, stolen);
        expect([rang.status, rang.body.challenge.type]).toEqual([200, 'push']);
        last = rang.body.id as string;
      }
      h.clock.advance(1000);
      const sixth = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, stolen);
      expect([sixth.status, sixth.body.state, sixth.body.challenge.type]).toEqual([200, 'second_factor', 'ocra']);
      // the sixth never reached the phone (the fifth still waits there)
      expect((await app.poll()).requests.map((r) => r.id)).toEqual([requestIdOf(last)]);
      expect(await withheldOf(user.id)).toEqual([['step_up', 'too_many']]);
      // the owner's own step-up, meanwhile: the app's challenge, answered with the app (K4, K10)
      h.clock.advance(1000);
      const mine = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, own);
      expect(mine.body.challenge.type).toBe('ocra');
      const answered = await postJson(
        h.app,
        `/api/v1/step-up/${mine.body.id as string}`,
        { response: await app.respond(user.username, mine.body.challenge.question) },
        own,
      );
      expect([answered.status, answered.body.state]).toEqual([200, 'done']);
      // an hour later the phone rings again
      h.clock.advance(60 * 60 * 1000);
      expect((await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, await sessionOf())).body.challenge.type).toBe('push');
    });

    it('K13, V1: a password holder’s logins from elsewhere and a stolen session’s step-ups share the 5 rings of the hour: beyond, both show the app’s challenge', async () => {
      const { user, app, stolen } = await ownerAndThief();
      for (let i = 0; i < 3; i++) {
        h.clock.advance(1000);
        const login = await h.app.inject({
          method: 'POST',
          url: '/api/v1/login',
          remoteAddress: '203.0.113.66',
          payload: { username: user.username, password: PASSWORD, app: 'portal' },
        });
        expect(login.json().challenge.type).toBe('push');
      }
      for (let i = 0; i < 2; i++) {
        h.clock.advance(1000);
        expect((await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, stolen)).body.challenge.type).toBe('push');
      }
      h.clock.advance(1000);
      expect((await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, stolen)).body.challenge.type).toBe('ocra');
      const login = await h.app.inject({
        method: 'POST',
        url: '/api/v1/login',
        remoteAddress: '203.0.113.66',
        payload: { username: user.username, password: PASSWORD, app: 'portal' },
      });
      expect(login.json().challenge.type).toBe('ocra');
      expect((await withheldOf(user.id)).map((w) => w.join(':')).sort()).toEqual(['login:too_many', 'step_up:too_many']);
      expect((await app.poll()).requests).toHaveLength(1);
    });

    it('K13, V1, L4: eight step-ups sent at once from a stolen session ring the phone at most 5 times; the others show the app’s challenge, each audited', async () => {
      const { user, stolen } = await ownerAndThief();
      const started = await Promise.all(Array.from({ length: 8 }, () => postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, stolen)));
      // each waits for the phone or its app's challenge, or was superseded by a newer one (K13: the phone shows the newest)
      const shown = started.map((s) => `${s.status}:${s.body.state}:${s.body.challenge?.type ?? '-'}`);
      expect(shown.filter((s) => !['200:second_factor:push', '200:second_factor:ocra', '200:failed:-'].includes(s))).toEqual([]);
      const withheld = (await withheldOf(user.id)).length;
      expect(8 - withheld).toBeLessThanOrEqual(5);
      expect(shown.filter((s) => s.endsWith(':ocra')).length).toBeLessThanOrEqual(withheld);
    });

    it('K13, V1: after "this wasn\'t me" to a login, step-ups send no push for 24 hours either (the app’s challenge instead), audited', async () => {
      const { user, app, stolen, sessionOf } = await ownerAndThief();
      await startLogin(h.app, user.username, PASSWORD);
      expect(await app.deny(await app.request(user.username))).toEqual({ state: 'denied' });
      const stepUp = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, stolen);
      expect([stepUp.status, stepUp.body.challenge?.type], JSON.stringify(stepUp.body)).toEqual([200, 'ocra']);
      expect((await app.poll()).requests).toEqual([]);
      expect(await withheldOf(user.id)).toEqual([['step_up', 'denied']]);
      h.clock.advance(24 * 60 * 60 * 1000);
      const later = await sessionOf();
      expect((await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, later)).body.challenge.type).toBe('push');
    });
  });

  describe('K7, X7, D6: a security key protects the authenticator’s activation as a card does', () => {
    it('K7, X7, D6, X2: a security key holder with a verified number activates the authenticator with the key, not an SMS token: a password and a SIM swap never bring a phone in; a wrong key is told the security key’s hint', async () => {
      const agent = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user;
      const { user, card } = await createUserWithCard(h.services);
      const auth = await loginSession(h.app, user.username, withCard(card), { stepUp: true });
      const key = new SoftwareAuthenticator();
      const where = relyingPartyOf(h.services.config);
      const keyId = await registerSecurityKey(h.app, auth, key, where);
      // the card is stolen: the key is the user's one device; a number is verified on record (no SMS device: the key protects)
      const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
      await h.services.dscPlusRequests.reportLost({ staffUserId: agent.id }, dsc.id, 'stolen');
      const numberId = await verifiedNumber(h, user.id);
      expect(await deviceStates(user.id)).toEqual(['dscplus:lost', 'security_key:active']);

      // the password and a token to the number would do: the key must answer instead
      const app = phone();
      const view = await app.start(user.username);
      expect([view.proof, view.challenge?.type]).toEqual(['device', 'webauthn']);
      expect(view.phones).toEqual([]);
      expect((await rejected(app.api.sendToken(view, { phoneId: numberId }))).code).toBe('FLOW_STATE');
      const options = (view.challenge as unknown as { options: { challenge: string } }).options;
      // another key's assertion proves nothing (counted, L3)
      const wrong = await rejected(app.prove(view, new SoftwareAuthenticator().assert(options, where)));
      expect([wrong.code, wrong.body.error.attemptsLeft]).toEqual(['ACTIVATION_PROOF_FAILED', 2]);
      // X2: the hint is the security key's (its kind's failureHints), not the typed codes' "no spaces"
      expect(wrong.body.error.hints).toEqual([translator('en')('hints.securityKey')]);
      const right = key.assert(options, where);
      const enrolment = await app.complete(view, right);
      expect((await h.services.devices.get(enrolment.deviceId)).state).toBe('active');
      expect(await deviceStates(user.id)).toEqual(['dscplus:lost', 'mobile:active', 'security_key:active']);
      // the key's counter moved with the proof (D6), and its assertion is used up (L4)
      expect((await h.services.devices.readSecret<{ counter: number }>(h.services.store.db, keyId)).counter).toBe(key.counter);
      const again = await app.start(user.username, 'migrate');
      expect(again.challenge?.type).toBe('webauthn');
      expect((await rejected(app.prove(again, right))).code).toBe('ACTIVATION_PROOF_FAILED');
    });
  });
});
