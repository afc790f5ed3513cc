/**
 * Attacks on the second-factor devices' lifecycles — enrolment, push
 * requests, revocation — by someone who holds less than they should, on
 * every database. A revocation that lands while a login is in flight is
 * made to land at the worst moment (after the answer was checked, before
 * its accepting transaction) by a hook on the services, never by timing.
 * Each test names the rule it proves, and failed before its fix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device } from '../src/devices/types.js';
import type { User } from '../src/identity/users.js';
import {
  DATABASES,
  PASSWORD,
  REQUESTER_SCC_CODES,
  cardAnswer,
  createSharingRequester,
  createUserWithCard,
  startHarness,
  type Harness,
} from './support/harness.js';
import {
  answer,
  bearer,
  claimOf,
  claimSession,
  readLogin,
  indexAnswerOf,
  loginSession,
  postJson,
  send,
  startLogin,
  stepUp,
  withCard,
  type Json,
} from './support/api.js';
import { issuePasscode } from './support/staff.js';
import { sharingPair } from './support/sharing.js';
import type { ApiError } from '../src/mobile-app/api.js';
import { relyingPartyOf } from '../src/devices/security-key/security-key.js';
import { SoftwareAuthenticator, registerSecurityKey } from './support/software-authenticator.js';
import { TestPhone, harnessInbox, listen, rejected, smsUser, verifiedNumber } from './support/phone.js';

/** The Security Code Card answer of a sharing's requester (S1). */
const indexAnswer = indexAnswerOf(REQUESTER_SCC_CODES);

describe.each(DATABASES)('attacks on device lifecycles (%s)', (database) => {
  let h: Harness;
  let base: string;
  let agentId: string;

  beforeAll(async () => {
    h = await startHarness(database);
    base = await listen(h);
    agentId = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user.id;
  });
  afterAll(async () => {
    await h?.close();
  });

  const phone = () => new TestPhone(base, harnessInbox(h));

  /**
   * Runs `revoke` (to its commit) the first time the services read
   * `deviceId` through `method` — after a login checked the device, before
   * its accepting transaction.
   */
  function revokeWhenRead(method: 'context' | 'get', deviceId: string, revoke: () => Promise<unknown>): { fired: () => boolean } {
    const devices = h.services.devices as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const original = devices[method]!;
    let fired = false;
    devices[method] = async function (this: unknown, ...args: unknown[]) {
      const result = await original.apply(this, args);
      const id = method === 'get' ? args[0] : (args[0] as Device).id;
      if (!fired && id === deviceId) {
        fired = true;
        devices[method] = original;
        await revoke();
      }
      return result;
    };
    return { fired: () => fired };
  }

  /**
   * Runs `other` (to its commit) when the services next open a transaction
   * under the audit lock: a second removal placed in the gap between the
   * first one's checks and its writing transaction.
   */
  function beforeNextAuditWrite(other: () => Promise<unknown>): { fired: () => boolean } {
    const store = h.services.store as unknown as { serialized: (name: string, fn: (trx: unknown) => Promise<unknown>) => Promise<unknown> };
    const original = store.serialized;
    let fired = false;
    store.serialized = async function (this: unknown, name: string, fn: (trx: unknown) => Promise<unknown>) {
      if (!fired && name === 'audit_log') {
        fired = true;
        store.serialized = original;
        await other();
      }
      return original.call(this, name, fn);
    };
    return { fired: () => fired };
  }

  /** H: the help desk issues a temporary passcode and marks the user's devices lost (their sessions end, L8). */
  async function markLostByHelpDesk(user: User): Promise<void> {
    await issuePasscode(h.services, agentId, user.username, 'lost');
  }

  /** M1: another number on record, confirmed with its code; its id. */
  async function addVerifiedNumber(user: User): Promise<string> {
    h.clock.advance(1000);
    return verifiedNumber(h, user.id);
  }

  /** The user's devices, as `type:state`. */
  async function deviceStates(userId: string): Promise<string[]> {
    return (await h.services.devices.listForUser(userId)).map((d) => `${d.type}:${d.state}`).sort();
  }

  /** The user's sessions still live. */
  async function liveSessions(userId: string): Promise<string[]> {
    const rows = await h.services.store.db
      .selectFrom('sessions')
      .select(['id', 'device_id'])
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', h.clock.now())
      .execute();
    return rows.map((r) => r.device_id ?? 'none');
  }

  /** The session behind bearer headers, as the services see it (null once ended). */
  function sessionOf(headers: Record<string, string>) {
    return h.services.sessions.authenticate(headers.authorization!.slice('Bearer '.length));
  }

  /** The audit entries of an event about a user. */
  async function entries(username: string, event: string): Promise<Json[]> {
    return (await h.services.audit.list({ username, limit: 200 })).filter((e) => e.event === event).map((e) => e.data as Json);
  }

  /**
   * A user with a DSC+ and a Security Code Card of `REQUESTER_SCC_CODES`:
   * a session opened with the code card, and the DSC+ used last (L6), so
   * that the session's step-up is offered the DSC+.
   */
  async function cardAndCodeCard() {
    const { user, card } = await createUserWithCard(h.services);
    const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
    const scc = await h.services.onlineCards.importSecurityCodeCard(user.id, `SCC-${user.username}`, REQUESTER_SCC_CODES, 'test');
    const start = await startLogin(h.app, user.username);
    const switched = await postJson(h.app, `/api/v1/login/${start.body.id as string}`, { device: scc.id }, claimOf(start));
    expect(switched.status, JSON.stringify(switched.body)).toBe(200);
    const done = await answer(h.app, start.body.id, indexAnswer(switched.body.challenge));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const headers = bearer(done.body.session.token);
    const again = await startLogin(h.app, user.username);
    const toCard = await postJson(h.app, `/api/v1/login/${again.body.id as string}`, { device: dsc.id }, claimOf(again));
    expect((await answer(h.app, again.body.id, cardAnswer(card, toCard.body.challenge.question))).status).toBe(200);
    return { user, card, dsc, scc, headers };
  }

  describe('V1, L8, C7: a step-up or a PIN change proven with a device revoked in flight verifies and changes nothing (docs/decisions/0016)', () => {
    it('V1, L8, C5: a DSC+ reported lost after its step-up answer was checked: the session is not stepped up (409 DEVICE_NOT_AVAILABLE)', async () => {
      const { user, card, dsc, headers } = await cardAndCodeCard();
      const started = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
      expect(started.body.deviceId).toBe(dsc.id);
      const hook = revokeWhenRead('context', dsc.id, () => h.services.dscPlusRequests.reportLost({ staffUserId: agentId }, dsc.id, 'stolen'));
      const done = await postJson(
        h.app,
        `/api/v1/step-up/${started.body.id as string}`,
        { response: cardAnswer(card, started.body.challenge.question) },
        headers,
      );
      expect(hook.fired()).toBe(true);
      expect(done.status, JSON.stringify(done.body)).toBe(409);
      expect(done.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      // the session opened with the code card lives on, not stepped up
      expect((await sessionOf(headers))?.verifiedAt).toBeNull();
      expect(await entries(user.username, 'stepup.verified')).toEqual([]);
      expect((await postJson(h.app, '/api/v1/phones', { country: 'FR', number: '612345678' }, headers)).body.error.code).toBe('STEP_UP_REQUIRED');
    });

    it("V1, H, L8: a sharing ended after the requester's step-up answer with the owner's card was checked: the requester is not stepped up", async () => {
      const { owner, card, requester, headers } = await sharingPair(h);
      const shared = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, headers);
      const id = shared.body.id as string;
      await postJson(h.app, `/api/v1/sharing/${id}/answer`, { response: cardAnswer(card, shared.body.challenge.question) }, headers);
      expect((await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, headers)).body.state).toBe('active');
      const ownerCard = (await h.services.devices.listForUser(owner.id)).find((d) => d.type === 'dscplus')!;
      h.clock.advance(h.services.config.policy.stepUpFreshMs + 1000);
      const started = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
      expect(started.body.deviceId).toBe(ownerCard.id);
      const hook = revokeWhenRead('context', ownerCard.id, () => h.services.sharing.cancel({ staffUserId: agentId }, id));
      const done = await postJson(
        h.app,
        `/api/v1/step-up/${started.body.id as string}`,
        { response: cardAnswer(card, started.body.challenge.question) },
        headers,
      );
      expect(hook.fired()).toBe(true);
      expect(done.status, JSON.stringify(done.body)).toBe(409);
      expect(done.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      const session = await sessionOf(headers);
      expect(session).not.toBeNull();
      expect(session!.verifiedAt! <= h.clock.now() - h.services.config.policy.stepUpFreshMs).toBe(true);
      expect((await entries(requester.username, 'stepup.verified')).map((e) => e.flowId)).not.toContain(started.body.id);
    });

    it('V1, K11, K7, L8: a phone replaced after it approved a step-up: taking the approval verifies nothing', async () => {
      const user = await smsUser(h);
      const { card } = await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
      const app = phone();
      const view = await app.start(user.username, 'activate');
      expect(view.proof).toBe('device');
      const enrolment = await app.complete(view, cardAnswer(card, (view.challenge as { question: string }).question));
      // a session opened with the DSC+; then a login approved on the phone, which is used last (L6)
      const headers = await loginSession(h.app, user.username, withCard(card));
      const login = await startLogin(h.app, user.username);
      const toPhone = await postJson(h.app, `/api/v1/login/${login.body.id as string}`, { device: enrolment.deviceId }, claimOf(login));
      await app.approve(await app.request(user.username), toPhone.body.challenge.number);
      expect((await claimSession(h.app, login)).status).toBe(200);
      const started = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
      expect(started.body).toMatchObject({ deviceId: enrolment.deviceId, challenge: { type: 'push' } });
      await app.approve(await app.request(user.username), started.body.challenge.number);
      // the user migrates to a new phone (K7: proven with the DSC+) between the approval's read and its taking
      const hook = revokeWhenRead('get', enrolment.deviceId, async () => {
        const newPhone = phone();
        const migration = await newPhone.start(user.username, 'migrate');
        await newPhone.complete(migration, cardAnswer(card, (migration.challenge as { question: string }).question));
      });
      const done = await postJson(h.app, `/api/v1/step-up/${started.body.id as string}/complete`, {}, headers);
      expect(hook.fired()).toBe(true);
      expect((await h.services.devices.get(enrolment.deviceId)).state).not.toBe('active');
      expect(done.status, JSON.stringify(done.body)).toBe(409);
      expect(done.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      expect((await sessionOf(headers))?.verifiedAt).toBeNull();
      expect(await entries(user.username, 'stepup.verified')).toEqual([]);
    });

    it('C7, L8, C5: a DSC+ reported lost after the old PIN was proven: the PIN is not changed (409 DEVICE_NOT_AVAILABLE)', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
      const headers = await loginSession(h.app, user.username, withCard(card), { stepUp: true });
      const begun = await postJson(h.app, `/api/v1/devices/${dsc.id}/pin`, {}, headers);
      expect(begun.status, JSON.stringify(begun.body)).toBe(200);
      const hook = revokeWhenRead('context', dsc.id, () => h.services.dscPlusRequests.reportLost({ staffUserId: agentId }, dsc.id, 'stolen'));
      const changed = await postJson(
        h.app,
        `/api/v1/devices/${dsc.id}/pin/${begun.body.id as string}`,
        { response: cardAnswer(card, begun.body.challenge.question), newPin: '2468' },
        headers,
      );
      expect(hook.fired()).toBe(true);
      expect(changed.status, JSON.stringify(changed.body)).toBe(409);
      expect(changed.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      expect(await entries(user.username, 'device.pin_changed')).toEqual([]);
    });

    it('D4, C5, L8: a suspended DSC+ reported lost after its reactivation answer was checked is not reactivated', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
      const { passcode } = await issuePasscode(h.services, agentId, user.username);
      const start = await startLogin(h.app, user.username);
      const headers = bearer((await answer(h.app, start.body.id, passcode)).body.session.token);
      const begun = await postJson(h.app, `/api/v1/devices/${dsc.id}/activation`, {}, headers);
      expect(begun.status, JSON.stringify(begun.body)).toBe(200);
      const hook = revokeWhenRead('context', dsc.id, () => h.services.dscPlusRequests.reportLost({ staffUserId: agentId }, dsc.id, 'stolen'));
      const done = await postJson(
        h.app,
        `/api/v1/devices/${dsc.id}/activation/${begun.body.id as string}`,
        { response: cardAnswer(card, begun.body.challenge.question) },
        headers,
      );
      expect(hook.fired()).toBe(true);
      expect(done.status, JSON.stringify(done.body)).toBe(409);
      expect(done.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      expect((await h.services.devices.get(dsc.id)).state).toBe('lost');
      expect(await deviceStates(user.id)).toContain('temp_passcode:active');
    });
  });

  describe('X7, T3, I1: the proof of a device since revoked no longer counts', () => {
    it('X7, T3, C5: a session stepped up with a DSC+ since reported lost has no permanent proof left, nor its acr', async () => {
      const { user, card, dsc, headers } = await cardAndCodeCard();
      await stepUp(h.app, headers, withCard(card));
      const session = (await sessionOf(headers))!;
      expect((await h.services.stepUp.lastProof(session)).device?.id).toBe(dsc.id);
      expect((await h.services.oidc.proof(session)).acr).toBe('urn:sls:acr:strong');
      await h.services.dscPlusRequests.reportLost({ staffUserId: agentId }, dsc.id, 'stolen');
      // the session opened with the code card lives on; its step-up's card no longer proves anything
      const after = (await sessionOf(headers))!;
      expect(after).not.toBeNull();
      expect((await h.services.stepUp.lastProof(after)).device).toBeNull();
      expect(await h.services.stepUp.hasPermanentProof(after)).toBe(false);
      expect((await h.services.oidc.proof(after)).acr).toBe('urn:sls:acr:password');
      // V1, L8: nor does its step-up count as fresh: a new one, with a device the user holds
      const registration = await postJson(h.app, '/api/v1/security-keys/registration', {}, headers);
      expect(registration.status, JSON.stringify(registration.body)).toBe(403);
      expect(registration.body.error.code).toBe('STEP_UP_REQUIRED');
      expect(await deviceStates(user.id)).toEqual(['dscplus:lost', 'scc:active']);
    });
  });

  describe('L8, C5: a device revoked while a login that uses it is in flight (docs/decisions/0016)', () => {
    it('L8, C5: a DSC+ reported lost after its answer was checked: the login opens no session that outlives the report', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
      const start = await startLogin(h.app, user.username, PASSWORD);
      const hook = revokeWhenRead('context', dsc.id, () => h.services.dscPlusRequests.reportLost({ staffUserId: agentId }, dsc.id, 'stolen'));
      const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
      expect(hook.fired()).toBe(true);
      expect((await h.services.devices.get(dsc.id)).state).toBe('lost');
      expect(done.status, JSON.stringify(done.body)).toBe(409);
      expect(done.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      expect(await liveSessions(user.id)).toEqual([]);
    });

    it('L8, K3: a phone marked lost after its approval was read: taking the approved login opens no session', async () => {
      const user = await smsUser(h);
      const app = phone();
      const enrolment = await app.activate(user.username);
      const login = await startLogin(h.app, user.username, PASSWORD);
      expect(login.body.challenge.type).toBe('push');
      await app.approve(await app.request(user.username), login.body.challenge.number);
      const hook = revokeWhenRead('get', enrolment.deviceId, () => markLostByHelpDesk(user));
      const claimed = await claimSession(h.app, login);
      expect(hook.fired()).toBe(true);
      expect((await h.services.devices.get(enrolment.deviceId)).state).toBe('lost');
      expect(claimed.status, JSON.stringify(claimed.body)).toBe(409);
      expect(claimed.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      expect(await liveSessions(user.id)).toEqual([]);
      // the approval stays untaken: a second claim finds the phone lost
      expect((await claimSession(h.app, login)).body.error.code).toBe('DEVICE_NOT_AVAILABLE');
    });
    it("L8, H5: a sharing cancelled after the requester answered with the owner's card opens the requester no session", async () => {
      const owner = await createUserWithCard(h.services, '1234');
      const { requester } = await createSharingRequester(h.services, owner.user);
      const start = await startLogin(h.app, requester.username);
      const requesterScc = bearer((await answer(h.app, start.body.id, indexAnswer(start.body.challenge))).body.session.token);
      await stepUp(h.app, requesterScc, indexAnswer);
      const shared = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.user.username, ownerPassword: PASSWORD }, requesterScc);
      const id = shared.body.id as string;
      await postJson(h.app, `/api/v1/sharing/${id}/answer`, { response: cardAnswer(owner.card, shared.body.challenge.question) }, requesterScc);
      expect((await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, requesterScc)).body.state).toBe('active');
      // the requester logs in with the owner's card; client services end the sharing in between
      const login = await startLogin(h.app, requester.username);
      const card = (await h.services.devices.listForUser(owner.user.id)).find((d) => d.type === 'dscplus')!;
      expect(login.body.device.id).toBe(card.id);
      const hook = revokeWhenRead('context', card.id, () => h.services.sharing.cancel({ staffUserId: agentId }, id));
      const done = await answer(h.app, login.body.id, cardAnswer(owner.card, login.body.challenge.question));
      expect(hook.fired()).toBe(true);
      expect(done.status, JSON.stringify(done.body)).toBe(409);
      expect(done.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      expect(await liveSessions(requester.id)).not.toContain(card.id);
    });
  });

  describe('K7, K1: a proof of possession outlives neither the device nor the number it was given with', () => {
    it('K7, C5: an activation proven with a DSC+ that is then reported stolen binds no phone', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
      // the attacker: the password and the card, for a moment
      const attacker = phone();
      const view = await attacker.start(user.username, 'activate');
      expect(view).toMatchObject({ proof: 'device', challenge: { type: 'ocra' } });
      const proven = await attacker.prove(view, cardAnswer(card, (view.challenge as { question: string }).question));
      expect(proven.proven).toBe(true);
      // the user reports the card stolen; the activation proven with it must not go on
      await h.services.dscPlusRequests.reportLost({ staffUserId: agentId }, dsc.id, 'stolen');
      expect((await rejected(attacker.finish(proven))).code).toBe('DEVICE_NOT_AVAILABLE');
      expect(await deviceStates(user.id)).toEqual(['dscplus:lost']);
    });

    it('K1, M1: an activation token sent to a number the user then removed proves nothing', async () => {
      const user = await smsUser(h);
      const second = await addVerifiedNumber(user);
      // the attacker: the password and the second number (a SIM swap)
      const attacker = phone();
      const view = await attacker.start(user.username, 'activate');
      expect(view.phones.map((p) => p.id)).toContain(second);
      h.clock.advance(1000);
      await attacker.api.sendToken(view, { phoneId: second });
      const token = await harnessInbox(h).activationToken(user.username);
      // the user removes the number that was taken over
      await h.services.phones.remove(user.id, second, `user:${user.id}`, null);
      expect((await rejected(attacker.prove(view, token))).code).toBe('PHONE_NOT_FOUND');
      expect(await deviceStates(user.id)).not.toContain('mobile:active');
    });

    it('K1, M1: an activation proven with a token to a number the user then removed binds no phone', async () => {
      const user = await smsUser(h);
      const second = await addVerifiedNumber(user);
      const attacker = phone();
      const view = await attacker.start(user.username, 'activate');
      h.clock.advance(1000);
      await attacker.api.sendToken(view, { phoneId: second });
      const proven = await attacker.prove(view, await harnessInbox(h).activationToken(user.username));
      expect(proven.proven).toBe(true);
      await h.services.phones.remove(user.id, second, `user:${user.id}`, null);
      expect((await rejected(attacker.finish(proven))).code).toBe('PHONE_NOT_FOUND');
      expect(await deviceStates(user.id)).not.toContain('mobile:active');
    });

    it('A5, K1, X7: a one-time password from client services opens no activation of the authenticator; it still opens its one login', async () => {
      const user = await smsUser(h);
      const verification = await h.services.helpDesk.verifyIdentity(agentId, user.username, { method: 'id_document' });
      const { temporaryPassword } = await h.services.helpDesk.resetPassword(agentId, user.username, { verificationId: verification.id });
      // whoever learned it (and holds the number): the authenticator is not bound with a password that may do nothing but be changed
      const attacker = phone();
      expect((await rejected(attacker.start(user.username, 'activate', temporaryPassword!))).code).toBe('PASSWORD_CHANGE_REQUIRED');
      expect((await rejected(attacker.start(user.username, 'activate', temporaryPassword!))).code).toBe('PASSWORD_CHANGE_REQUIRED');
      expect(await deviceStates(user.id)).not.toContain('mobile:active');
      // a right password is no failure: the login it is for still opens (A5), the lock counted nothing (L3)
      expect((await h.services.lockout.status(user.username)).failures).toBe(0);
      expect((await startLogin(h.app, user.username, temporaryPassword!)).status).toBe(200);
    });

    it("A5, H2: an owner's one-time password from client services starts no sharing of their device", async () => {
      const { owner, headers } = await sharingPair(h);
      const verification = await h.services.helpDesk.verifyIdentity(agentId, owner.username, { method: 'id_document' });
      const { temporaryPassword } = await h.services.helpDesk.resetPassword(agentId, owner.username, { verificationId: verification.id });
      const shared = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: temporaryPassword }, headers);
      expect(shared.status, JSON.stringify(shared.body)).toBe(403);
      expect(shared.body.error.code).toBe('PASSWORD_CHANGE_REQUIRED');
      expect(shared.body.error.message).toContain('one-time password');
    });

    /** A sharing in force: the requester (an SCC and a verified number of their own) uses the owner's DSC+ (H5: their own devices suspended). */
    async function sharingInForce() {
      const { owner, card, requester, headers } = await sharingPair(h);
      await addVerifiedNumber(requester);
      const shared = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, headers);
      const id = shared.body.id as string;
      await postJson(h.app, `/api/v1/sharing/${id}/answer`, { response: cardAnswer(card, shared.body.challenge.question) }, headers);
      expect((await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, headers)).body.state).toBe('active');
      return { owner, card, requester, id };
    }

    it('H5, D4, X7: a device the sharing set aside is not reactivated while the sharing is in force: it comes back only when the sharing ends', async () => {
      const { card, requester, id } = await sharingInForce();
      const scc = (await h.services.devices.listForUser(requester.id)).find((d) => d.type === 'scc')!;
      expect(scc.state).toBe('suspended');
      // a session of the requester (opened with the shared card) and the requester's old card, set aside
      const headers = await loginSession(h.app, requester.username, withCard(card));
      const started = await postJson(h.app, `/api/v1/devices/${scc.id}/activation`, {}, headers);
      if (started.status === 200) {
        await postJson(h.app, `/api/v1/devices/${scc.id}/activation/${started.body.id}`, { response: indexAnswer(started.body.challenge) }, headers);
      }
      expect((await h.services.devices.get(scc.id)).state).toBe('suspended');
      expect(started.status, JSON.stringify(started.body)).toBe(409);
      expect(started.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      // the end of the sharing brings it back (H5)
      await h.services.sharing.cancel({ staffUserId: agentId }, id);
      expect((await h.services.devices.get(scc.id)).state).toBe('active');
    });

    it('H5, D4, L8: a reactivation begun before a sharing came into force activates nothing after it, nor a device suspended before it (docs/decisions/0016)', async () => {
      const { owner, card, requester, headers } = await sharingPair(h);
      // a second card of the requester's, suspended before the sharing (so not among the devices it sets aside)
      const spare = await h.services.onlineCards.importSecurityCodeCard(requester.id, `SCC-spare-${requester.username}`, REQUESTER_SCC_CODES, 'test');
      await h.services.devices.setState(spare.id, 'suspended', 'test', 'test');
      const started = await postJson(h.app, `/api/v1/devices/${spare.id}/activation`, {}, headers);
      expect(started.status, JSON.stringify(started.body)).toBe(200);
      // the sharing comes into force before the answer
      const shared = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, headers);
      await postJson(h.app, `/api/v1/sharing/${shared.body.id}/answer`, { response: cardAnswer(card, shared.body.challenge.question) }, headers);
      expect((await postJson(h.app, `/api/v1/sharing/${shared.body.id}/confirmation`, { disposition: 'keep' }, headers)).body.state).toBe('active');
      const done = await postJson(
        h.app,
        `/api/v1/devices/${spare.id}/activation/${started.body.id}`,
        { response: indexAnswer(started.body.challenge) },
        headers,
      );
      expect(done.status, JSON.stringify(done.body)).toBe(409);
      expect(done.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      expect((await h.services.devices.get(spare.id)).state).toBe('suspended');
    });

    it('H5, C6: a DSC+ of the requester shipped while a sharing is in force does not activate itself beside the shared card: it waits, shipped, until the sharing ends', async () => {
      const { requester, id } = await sharingInForce();
      // a card of the requester's own, shipped (C4), its three weeks past (C6)
      const cardId = await h.services.store.transaction((trx) =>
        h.services.devices.insert(trx, {
          userId: requester.id,
          type: 'dscplus',
          state: 'shipped',
          serial: `DSC-H5-${requester.username}`,
          secret: { pinHash: 'unused' },
          params: { autoActivateAt: h.clock.now() },
        }),
      );
      expect((await h.services.dscPlusRequests.autoActivateDue()).map((d) => d.id)).not.toContain(cardId);
      expect((await h.services.devices.get(cardId)).state).toBe('shipped');
      // the end of the sharing lets it activate at the next run (H5: the requester's own devices come back)
      await h.services.sharing.cancel({ staffUserId: agentId }, id);
      expect((await h.services.dscPlusRequests.autoActivateDue()).map((d) => d.id)).toContain(cardId);
      expect((await h.services.devices.get(cardId)).state).toBe('active');
    });

    it('M2, H, W1: a number a requester confirms while a sharing is in force does not enrol them in SMS: the shared DSC+ protects them (no SMS login beside it)', async () => {
      const { requester } = await sharingInForce();
      await addVerifiedNumber(requester);
      expect(await deviceStates(requester.id)).not.toContain('sms:active');
      // a login offers the shared card only: the password and the number do not log in
      const login = await startLogin(h.app, requester.username);
      expect(login.status, JSON.stringify(login.body)).toBe(200);
      expect(login.body.devices.map((d: Json) => d.type)).toEqual(['dscplus']);
    });

    it('K7, H, X7: a requester protected by a shared DSC+ gets no phone with the password and a number: the shared card answers, not an SMS token', async () => {
      const { card, requester } = await sharingInForce();
      // the attacker: the requester's password and their number (a SIM swap), not the card
      const attacker = phone();
      const view = await attacker.start(requester.username, 'activate');
      expect(view).toMatchObject({ proof: 'device', phones: [], challenge: { type: 'ocra' } });
      expect((await rejected(attacker.api.sendToken(view, { phoneId: 'any' }))).code).toBe('FLOW_STATE');
      // the holder of the card proves possession with it
      const proven = await attacker.prove(view, cardAnswer(card, (view.challenge as { question: string }).question));
      expect(proven.proven).toBe(true);
    });

    it('K7, H, L8: an activation proven with the shared DSC+ binds no phone once the sharing ended', async () => {
      const { card, requester, id } = await sharingInForce();
      const attacker = phone();
      const view = await attacker.start(requester.username, 'activate');
      const proven = await attacker.prove(view, cardAnswer(card, (view.challenge as { question: string }).question));
      expect(proven.proven).toBe(true);
      // client services end the sharing: the owner's card no longer speaks for the requester
      await h.services.sharing.cancel({ staffUserId: agentId }, id);
      expect((await rejected(attacker.finish(proven))).code).toBe('DEVICE_NOT_AVAILABLE');
      expect(await deviceStates(requester.id)).not.toContain('mobile:active');
    });
  });
  describe('K13, C7: answers sent at once have exactly one outcome', () => {
    it('K13, L4: an approval and a denial of one push request sent at once: exactly one wins, and the login follows it', async () => {
      const user = await smsUser(h);
      const app = phone();
      await app.activate(user.username);
      const login = await startLogin(h.app, user.username, PASSWORD);
      const request = await app.request(user.username);
      const [approved, denied] = await Promise.allSettled([app.approve(request, login.body.challenge.number), app.deny(request)]);
      expect([approved.status, denied.status].sort()).toEqual(['fulfilled', 'rejected']);
      const loser = (approved.status === 'rejected' ? approved : denied) as PromiseRejectedResult;
      expect((loser.reason as ApiError).code).toBe('FLOW_EXPIRED');
      const claimed = await claimSession(h.app, login);
      if (approved.status === 'fulfilled') expect(claimed.status).toBe(200);
      else expect(claimed.body.error.code).toBe('FLOW_EXPIRED');
      expect((await readLogin(h.app, login.body.id as string)).body.state).toBe(approved.status === 'fulfilled' ? 'done' : 'denied');
    });

    it('C7, L4: a PIN change answered three times at once changes the PIN once; the old PIN then no longer answers', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const start = await startLogin(h.app, user.username, PASSWORD);
      const session = bearer((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token);
      await stepUp(h.app, session, (challenge) => cardAnswer(card, challenge.question));
      const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
      const begun = await postJson(h.app, `/api/v1/devices/${dsc.id}/pin`, {}, session);
      expect(begun.status, JSON.stringify(begun.body)).toBe(200);
      const response = cardAnswer(card, begun.body.challenge.question);
      const pins = ['2468', '1357', '9753'];
      const changes = await Promise.all(
        pins.map((newPin) => postJson(h.app, `/api/v1/devices/${dsc.id}/pin/${begun.body.id as string}`, { response, newPin }, session)),
      );
      expect(changes.map((c) => c.status).sort()).toEqual([200, 410, 410]);
      const pin = pins[changes.findIndex((c) => c.status === 200)]!;
      const next = await startLogin(h.app, user.username, PASSWORD);
      expect((await answer(h.app, next.body.id, cardAnswer(card, next.body.challenge.question, '1234'))).status).toBe(401);
      const again = await startLogin(h.app, user.username, PASSWORD);
      expect((await answer(h.app, again.body.id, cardAnswer(card, again.body.challenge.question, pin))).status).toBe(200);
    });
  });
  describe('M6, L6, X7: two removals at once never leave the user without a device', () => {
    /** A user on SMS (M2) who also holds a DSC+: a session opened with the card, stepped up (X7). */
    async function smsAndCard() {
      const user = await smsUser(h);
      const [number] = await h.services.phones.list(user.id);
      const { card } = await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
      const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
      const session = await loginSession(h.app, user.username, withCard(card), { stepUp: true });
      return { user, card, dsc, number: number!, session };
    }

    it('M6, L6: a number removed while its other device, the DSC+, is reported stolen is refused 409 PHONE_IN_USE, as a lone removal of the last device is: the SMS device stays', async () => {
      const { user, dsc, number, session } = await smsAndCard();
      const hook = beforeNextAuditWrite(() => h.services.dscPlusRequests.reportLost({ staffUserId: agentId }, dsc.id, 'stolen'));
      const removed = await send(h.app, 'DELETE', `/api/v1/phones/${number.id}`, session);
      expect(hook.fired()).toBe(true);
      expect([removed.status, removed.body.error?.code], JSON.stringify(removed.body)).toEqual([409, 'PHONE_IN_USE']);
      expect(await deviceStates(user.id)).toEqual(['dscplus:lost', 'sms:active']);
      expect((await h.services.phones.list(user.id)).map((p) => p.id)).toEqual([number.id]);
      expect(await entries(user.username, 'phone.removed')).toEqual([]);
    });

    it('M6, L6, D6: a number removed while the security key, the other device, is removed is refused PHONE_IN_USE: one of the two removals stands, never both', async () => {
      const { user, dsc, number, session } = await smsAndCard();
      const key = new SoftwareAuthenticator();
      const keyId = await registerSecurityKey(h.app, session, key, relyingPartyOf(h.services.config));
      // the card is gone already (reported alone): the number and the key are left
      await h.services.dscPlusRequests.reportLost({ staffUserId: agentId }, dsc.id, 'stolen');
      const hook = beforeNextAuditWrite(() => h.services.securityKeys.remove({ id: 'ses_other', userId: user.id }, keyId));
      await expect(h.services.phones.remove(user.id, number.id, `user:${user.id}`, null)).rejects.toMatchObject({ code: 'PHONE_IN_USE' });
      expect(hook.fired()).toBe(true);
      expect(await deviceStates(user.id)).toEqual(['dscplus:lost', 'security_key:revoked', 'sms:active']);
      expect((await h.services.phones.list(user.id)).map((p) => p.id)).toEqual([number.id]);
    });

    it('M6: the same number removed twice at once is removed once: the second is 404 PHONE_NOT_FOUND, audited once', async () => {
      const { user, number } = await smsAndCard();
      const hook = beforeNextAuditWrite(() => h.services.phones.remove(user.id, number.id, `user:${user.id}`, null));
      await expect(h.services.phones.remove(user.id, number.id, `user:${user.id}`, null)).rejects.toMatchObject({ code: 'PHONE_NOT_FOUND' });
      expect(hook.fired()).toBe(true);
      expect(await deviceStates(user.id)).toEqual(['dscplus:active', 'sms:revoked']);
      expect(await entries(user.username, 'phone.removed')).toHaveLength(1);
    });
  });

  describe('X7, D6: security keys', () => {
    it('X7: a key whose registration began within the step-up is not registered once the step-up went stale', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const start = await startLogin(h.app, user.username, PASSWORD);
      const session = bearer((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token);
      await stepUp(h.app, session, (challenge) => cardAnswer(card, challenge.question));
      const began = await postJson(h.app, '/api/v1/security-keys/registration', {}, session);
      expect(began.status, JSON.stringify(began.body)).toBe(200);
      // the step-up's minutes pass while the browser waits for the key
      h.clock.advance(h.services.config.policy.stepUpFreshMs + 1000);
      const key = new SoftwareAuthenticator();
      const credential = key.register(began.body.options as { challenge: string }, relyingPartyOf(h.services.config));
      const finished = await postJson(h.app, '/api/v1/security-keys', { name: 'late', state: began.body.state, credential }, session);
      expect(finished.status, JSON.stringify(finished.body)).toBe(403);
      expect(finished.body.error.code).toBe('STEP_UP_REQUIRED');
      expect(await h.services.securityKeys.list(user.id)).toEqual([]);
    });
  });
});
