/**
 * Attacks on sessions, step-up and staff actions (L8, X7), on every
 * database: sessions that should end with the credential that opened them
 * but did not, and staff acting where the help desk would refuse them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relyingPartyOf } from '../src/devices/security-key/security-key.js';
import { unconfirmedAddress } from '../src/devices/dscplus/requests.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import {
  DATABASES,
  PASSWORD,
  REQUESTER_SCC_CODES,
  cardAnswer,
  createSharingRequester,
  createUser,
  createUserWithCard,
  startHarness,
  type Harness,
} from './support/harness.js';
import { answer, bearer, claimOf, get, indexAnswerOf, postJson, send, startLogin, stepUp, type Json, tookNewToken } from './support/api.js';
import { newMobile } from './support/phone.js';
import { SoftwareAuthenticator, registerSecurityKey, type Where } from './support/software-authenticator.js';
import { BUILT_IN_DRIVERS } from './support/kind-drivers.js';

const CODES = REQUESTER_SCC_CODES;
const indexAnswer = indexAnswerOf(CODES);

describe.each(DATABASES)('attacks on sessions and staff actions on %s', (database) => {
  let h: Harness;
  let where: Where;

  beforeAll(async () => {
    h = await startHarness(database);
    where = relyingPartyOf(h.services.config);
  });
  afterAll(async () => h.close());

  /** A portal session opened with the card; stepped up with it when asked (V1). */
  async function cardSession(user: User, card: CardFile, step = true): Promise<Record<string, string>> {
    const own = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus' && d.state === 'active');
    const start = own ? { body: await loginWith(user, own.id) } : await startLogin(h.app, user.username);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const headers = bearer(done.body.session.token);
    if (step) await stepUp(h.app, headers, (challenge) => cardAnswer(card, challenge.question));
    return headers;
  }

  /** A login switched to a device of the user's, when another is offered first. */
  async function loginWith(user: User, deviceId: string): Promise<Json> {
    const start = await startLogin(h.app, user.username);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    if (start.body.device.id === deviceId) return start.body;
    const switched = await postJson(h.app, `/api/v1/login/${start.body.id as string}`, { device: deviceId }, claimOf(start));
    expect(switched.status, JSON.stringify(switched.body)).toBe(200);
    return switched.body;
  }

  async function lastCode(userId: string, template: 'loginCode' | 'confirmCode'): Promise<string> {
    const [message] = (await h.services.notifier.list({ userId })).filter((n) => n.template === template);
    expect(message, 'a code was sent').toBeDefined();
    return /\b(\d{6})\b/.exec(message!.body)![1]!;
  }

  /** A security key registered from the security settings of a stepped-up session (X7). */
  async function registerKey(owner: Record<string, string>): Promise<{ key: SoftwareAuthenticator; keyId: string }> {
    const key = new SoftwareAuthenticator();
    return { key, keyId: await registerSecurityKey(h.app, owner, key, where) };
  }

  const alive = async (headers: Record<string, string>) => (await get(h.app, '/api/v1/session', headers)).status;

  async function endedEvents(userId: string): Promise<Json[]> {
    return (await h.services.audit.list({ userId, limit: 100 })).filter((e) => e.event === 'session.ended').map((e) => e.data as Json);
  }

  it('L8: a mobile number removed ends the sessions its SMS device opened (someone holding the old SIM keeps no session)', async () => {
    const user = await createUser(h.services);
    const meta = { ip: null, language: 'en' as const };
    const phone = await h.services.phones.add(user.id, newMobile(), 'test', null);
    await h.services.phones.sendConfirmCode(user.id, phone.id, meta);
    await h.services.phones.confirm(user.id, phone.id, await lastCode(user.id, 'confirmCode'), meta);
    const sms = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'sms' && d.state === 'active')!;
    const { card } = await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');

    // the attacker: password and the SIM's codes
    const flow = await loginWith(user, sms.id);
    const stolen = await answer(h.app, flow.id, await lastCode(user.id, 'loginCode'));
    expect(stolen.status, JSON.stringify(stolen.body)).toBe(200);
    const attacker = bearer(stolen.body.session.token);
    expect(await alive(attacker)).toBe(200);

    // the user, with the card, removes the number
    const owner = await cardSession(user, card);
    expect((await send(h.app, 'DELETE', `/api/v1/phones/${phone.id}`, owner)).status).toBe(204);
    expect((await h.services.devices.get(sms.id)).state).toBe('revoked');

    expect(await alive(attacker)).toBe(401);
    expect(await alive(owner)).toBe(200);
    expect((await endedEvents(user.id)).map((e) => e.reason)).toEqual(['device_revoked']);
  });

  it('L8: a security key removed ends the sessions it opened', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const owner = await cardSession(user, card);
    const { key, keyId } = await registerKey(owner);

    // the attacker: password and the key (or a copy of it)
    const flow = await loginWith(user, keyId);
    const stolen = await answer(h.app, flow.id, key.assert(flow.challenge.options, where));
    expect(stolen.status, JSON.stringify(stolen.body)).toBe(200);
    const attacker = bearer(stolen.body.session.token);
    expect(await alive(attacker)).toBe(200);

    // the user removes the key from the card's session
    const again = await cardSession(user, card);
    expect((await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, again)).status).toBe(204);

    expect(await alive(attacker)).toBe(401);
    expect(await alive(again)).toBe(200);
    expect((await endedEvents(user.id)).map((e) => e.reason)).toEqual(['device_revoked']);
  });

  /** The owner (a DSC+) and a requester of the same entity, the card shared with the requester and in force (H2, H3): the sharing's id. */
  async function sharedCard() {
    const owner = await createUserWithCard(h.services, '1234');
    const { requester } = await createSharingRequester(h.services, owner.user);
    const start = await startLogin(h.app, requester.username);
    const scc = await answer(h.app, start.body.id, indexAnswer(start.body.challenge));
    expect(scc.status, JSON.stringify(scc.body)).toBe(200);
    const requesterScc = bearer(scc.body.session.token);
    await stepUp(h.app, requesterScc, indexAnswer);
    const shared = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.user.username, ownerPassword: PASSWORD }, requesterScc);
    expect(shared.status, JSON.stringify(shared.body)).toBe(201);
    const id = shared.body.id as string;
    await postJson(h.app, `/api/v1/sharing/${id}/answer`, { response: cardAnswer(owner.card, shared.body.challenge.question) }, requesterScc);
    expect((await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, requesterScc)).body.state).toBe('active');
    return { owner, requester, id };
  }

  it("L8, H5: a device sharing cancelled by the owner ends the requester's sessions opened with the owner's device", async () => {
    const { owner, requester, id } = await sharedCard();
    // the requester signs in with the owner's card
    const withShared = await cardSession(requester, owner.card, false);
    expect(await alive(withShared)).toBe(200);

    // the owner takes the card back
    const ownerHeaders = await cardSession(owner.user, owner.card);
    expect((await send(h.app, 'DELETE', `/api/v1/sharing/${id}`, ownerHeaders)).body.state).toBe('cancelled');

    expect(await alive(withShared)).toBe(401);
    expect(await alive(ownerHeaders)).toBe(200);
    expect((await endedEvents(requester.id)).map((e) => e.reason)).toContain('sharing_ended');
  });

  it('L8, H: a shared card reported lost by its owner ends the sessions it opened for the user it is shared with too', async () => {
    const { owner, requester } = await sharedCard();
    const withShared = await cardSession(requester, owner.card, false);
    expect(await alive(withShared)).toBe(200);
    const ownerHeaders = await cardSession(owner.user, owner.card);
    const cardId = (await h.services.devices.listForUser(owner.user.id)).find((d) => d.type === 'dscplus')!.id;
    const lost = await postJson(h.app, `/api/v1/devices/${cardId}/lost`, { reason: 'stolen' }, ownerHeaders);
    expect(lost.status, JSON.stringify(lost.body)).toBe(200);

    expect(await alive(withShared)).toBe(401);
    expect((await endedEvents(requester.id)).map((e) => e.reason)).toContain('device_lost');
  });

  it('L8, D6: a security key suspended as cloned (its counter went back) ends the sessions it opened, whichever copy opened them', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const owner = await cardSession(user, card);
    const { key, keyId } = await registerKey(owner);
    // the copy, ahead of the original
    const first = await loginWith(user, keyId);
    const copy = await answer(h.app, first.id, key.assert(first.challenge.options, where, 7));
    expect(copy.status).toBe(200);
    const copySession = bearer(copy.body.session.token);
    // the original, behind: refused, and the key suspended
    const second = await loginWith(user, keyId);
    expect((await answer(h.app, second.id, key.assert(second.challenge.options, where, 3))).status).toBe(401);
    expect((await h.services.devices.get(keyId)).state).toBe('suspended');

    expect(await alive(copySession)).toBe(401);
    expect((await endedEvents(user.id)).map((e) => e.reason)).toContain('device_suspected');
  });

  it('L8: a card marked returned by client services ends the sessions it opened', async () => {
    const { user: agent, card: agentCard } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const { user, card } = await createUserWithCard(h.services);
    const session = await cardSession(user, card, false);
    const cardId = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!.id;
    const staff = await cardSession(agent, agentCard);
    const returned = await postJson(h.app, `/api/v1/helpdesk/devices/${cardId}/returned`, {}, staff);
    expect(returned.status, JSON.stringify(returned.body)).toBe(200);

    expect(await alive(session)).toBe(401);
    expect((await endedEvents(user.id)).map((e) => e.reason)).toContain('device_returned');
  });

  it('O2, L8: opting back in ends the trading sessions opened with the password alone while opted out', async () => {
    const { user, card } = await createUserWithCard(h.services);
    await h.services.optOuts.optOut(user.id, { acknowledged: true, confirmation: user.username }, { actor: 'test' });
    // the attacker: only the password
    const stolen = await startLogin(h.app, user.username, PASSWORD, 'trading');
    expect(stolen.body, JSON.stringify(stolen.body)).toMatchObject({ state: 'done', device: null });
    const attacker = bearer(stolen.body.session.token);
    expect(await alive(attacker)).toBe(200);
    // the user, with the card, opts back in
    const owner = await cardSession(user, card);
    const optedIn = await postJson(h.app, '/api/v1/secure-login/opt-in', {}, owner);
    expect(optedIn.status, JSON.stringify(optedIn.body)).toBe(200);

    expect(await alive(attacker)).toBe(401);
    expect(await alive(owner)).toBe(200);
    expect((await endedEvents(user.id)).map((e) => e.reason)).toEqual(['opted_in']);
  });

  /** A portal session opened with a security key of a user who also holds a card, stepped up with the card (offered first: used last). */
  async function keySessionSteppedUpWithCard() {
    const { user, card } = await createUserWithCard(h.services);
    const cardId = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!.id;
    const { key, keyId } = await registerKey(await cardSession(user, card));
    const flow = await loginWith(user, keyId);
    const done = await answer(h.app, flow.id, key.assert(flow.challenge.options, where));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const session = bearer(done.body.session.token);
    // the card used last (another login), so the step-up offers it first
    await cardSession(user, card, false);
    const stepped = await stepUp(h.app, session, (challenge) => cardAnswer(card, challenge.question));
    expect(stepped.body.deviceId).toBe(cardId);
    return { user, card, cardId, keyId, session };
  }

  it('V1, X7, L8: a step-up made with a card reported lost since no longer counts as fresh: a security setting asks for a new step-up', async () => {
    const { user, cardId, keyId, session } = await keySessionSteppedUpWithCard();
    // fresh: the card's step-up lets the session change a security setting
    expect((await postJson(h.app, '/api/v1/phones', newMobile(), session)).status).toBe(201);
    const lost = await postJson(h.app, `/api/v1/devices/${cardId}/lost`, { reason: 'stolen' }, session);
    expect(lost.status, JSON.stringify(lost.body)).toBe(200);
    // the session, opened with the key, lives on, but its step-up was the lost card's
    expect(await alive(session)).toBe(200);

    // the key that opened it may not be removed, nor a number added, nor the second factor given up
    const removed = await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, session);
    expect(removed.status, JSON.stringify(removed.body)).toBe(403);
    expect(removed.body.error.code).toBe('STEP_UP_REQUIRED');
    expect((await h.services.devices.get(keyId)).state).toBe('active');
    const added = await postJson(h.app, '/api/v1/phones', newMobile(), session);
    expect(added.status, JSON.stringify(added.body)).toBe(403);
    expect(added.body.error).toMatchObject({ code: 'STEP_UP_REQUIRED', stepUp: '/api/v1/step-up' });
    const optOut = await postJson(h.app, '/api/v1/secure-login/opt-out', { acknowledgeRisks: true, confirmation: user.username }, session);
    expect(optOut.status, JSON.stringify(optOut.body)).toBe(403);
    expect(optOut.body.error.code).toBe('STEP_UP_REQUIRED');
    const refused = (await h.services.audit.list({ userId: user.id, limit: 100 })).filter((e) => e.event === 'session.refused').map((e) => e.data as Json);
    expect(refused.map((e) => [e.code, e.check])).toContainEqual(['STEP_UP_REQUIRED', 'fresh-step-up']);
    expect(await h.services.optOuts.isOptedOut(user.id)).toBe(false);
  });

  /** A user a DSC+ protects who also has SMS, and the attacker's session: the password and the SIM, logged in and stepped up with SMS. */
  async function smsSessionOfCardHolder() {
    const sms = await BUILT_IN_DRIVERS.sms!.holder(h);
    const { card } = await h.services.devices.addDscPlus({ userId: sms.user.id, pin: '1234' }, 'test');
    // the attacker: the password and the SIM; logs in with SMS and steps up with it
    const flow = await loginWith(sms.user, sms.deviceId);
    const loginCode = await sms.right(await sms.answerable(flow));
    const logged = await answer(h.app, flow.id, loginCode);
    expect(logged.status, JSON.stringify(logged.body)).toBe(200);
    const attacker = bearer(logged.body.session.token);
    const started = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, attacker);
    expect([started.status, started.body.deviceId]).toEqual([200, sms.deviceId]);
    const codes = (await h.services.notifier.list({ userId: sms.user.id }))
      .filter((n) => n.template === 'loginCode')
      .map((n) => /\b(\d{6})\b/.exec(n.body)![1]!);
    const stepUpCode = codes.find((code) => code !== loginCode)!;
    const stepped = await postJson(h.app, `/api/v1/step-up/${started.body.id as string}`, { response: stepUpCode }, attacker);
    expect(stepped.body.state, JSON.stringify(stepped.body)).toBe('done');
    tookNewToken(attacker, stepped);
    return { sms, card, attacker };
  }

  it('V1, X7, D2, D6, K7: a step-up with SMS (the password and a SIM) registers no security key for a user a DSC+ protects: a weaker proof binds no stronger device; refused, audited; the card’s step-up may', async () => {
    const { sms, card, attacker } = await smsSessionOfCardHolder();

    const refused = await postJson(h.app, '/api/v1/security-keys/registration', {}, attacker);
    expect([refused.status, refused.body.error?.code], JSON.stringify(refused.body)).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    await expect(registerKey(attacker)).rejects.toThrow();
    expect((await h.services.devices.listForUser(sms.user.id)).filter((d) => d.type === 'security_key')).toEqual([]);
    const audited = (await h.services.audit.list({ userId: sms.user.id, limit: 100 })).filter((e) => e.event === 'session.refused').map((e) => e.data as Json);
    expect(audited.map((e) => [e.code, e.check])).toContainEqual(['STRONGER_DEVICE_REQUIRED', 'proof-strength']);

    // the user, with the card: the key is registered
    const owner = await cardSession(sms.user, card);
    const { keyId } = await registerKey(owner);
    expect((await h.services.devices.get(keyId)).state).toBe('active');
  });

  it('V1, X7, D2, D6, K7: a step-up with SMS (the password and a SIM) removes no security key of the user: a weaker proof never sets a stronger device aside (the way to bind one with the SIM alone); refused, audited; the card’s step-up may', async () => {
    const { sms, card, attacker } = await smsSessionOfCardHolder();
    const owner = await cardSession(sms.user, card);
    const { keyId } = await registerKey(owner);

    const refused = await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, attacker);
    expect([refused.status, refused.body.error?.code], JSON.stringify(refused.body)).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    expect(refused.body.error.message).toContain('the one you are removing');
    expect((await h.services.devices.get(keyId)).state).toBe('active');
    const audited = (await h.services.audit.list({ userId: sms.user.id, limit: 100 })).filter((e) => e.event === 'session.refused').map((e) => e.data as Json);
    expect(audited.map((e) => [e.code, e.check, e.method])).toContainEqual(['STRONGER_DEVICE_REQUIRED', 'proof-strength', 'DELETE']);

    // the user, with the card (stronger than the key): removed
    expect((await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, owner)).status).toBe(204);
    expect((await h.services.devices.get(keyId)).state).toBe('revoked');
  });

  it('V1, X7, D2, O1, O3: a step-up with SMS does not opt out a user a DSC+ protects (trading with the password alone would outlive the SIM): refused, audited; the card’s step-up may', async () => {
    const { sms, card, attacker } = await smsSessionOfCardHolder();
    const body = { acknowledgeRisks: true, confirmation: sms.user.username };
    const refused = await postJson(h.app, '/api/v1/secure-login/opt-out', body, attacker);
    expect([refused.status, refused.body.error?.code], JSON.stringify(refused.body)).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    expect(refused.body.error.message).toContain('turn off the second factor');
    expect(await h.services.optOuts.isOptedOut(sms.user.id)).toBe(false);
    const audited = (await h.services.audit.list({ userId: sms.user.id, limit: 100 })).filter((e) => e.event === 'session.refused').map((e) => e.data as Json);
    expect(audited.map((e) => [e.code, e.check])).toContainEqual(['STRONGER_DEVICE_REQUIRED', 'proof-strength']);
    // the user, with the card
    const owner = await cardSession(sms.user, card);
    const done = await postJson(h.app, '/api/v1/secure-login/opt-out', body, owner);
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(await h.services.optOuts.isOptedOut(sms.user.id)).toBe(true);
  });

  it('C4, C6, D2, K7, R2: a DSC+ requested after a step-up with SMS (the password and a SIM) by a user a DSC+ protects ships only once client services confirm the address; the card’s step-up ships as before', async () => {
    const { sms, card, attacker } = await smsSessionOfCardHolder();
    await h.services.users.setEquity(sms.user.accountNumber, 2_000_000, 'test');
    const address = { name: 'Mallory', line1: '9 Drop Street', city: 'Elsewhere', postalCode: '99999', country: 'US' };
    const requested = await postJson(h.app, '/api/v1/dscplus/requests', { address, pin: '2468' }, attacker);
    expect(requested.status, JSON.stringify(requested.body)).toBe(200);
    // a weaker proof binds no stronger device: the new card would replace the owner's when it activates (C6)
    expect(unconfirmedAddress(await h.services.devices.get(requested.body.device.id))).toMatchObject({ city: 'Elsewhere' });
    const audited = (await h.services.audit.list({ userId: sms.user.id, limit: 100 })).find((e) => e.event === 'device.requested');
    expect(audited?.data).toMatchObject({ temporaryAccess: true });

    // the owner, with the card: no confirmation asked
    const owner = await cardSession(sms.user, card);
    const own = await postJson(h.app, '/api/v1/dscplus/requests', { address, pin: '2468' }, owner);
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect(unconfirmedAddress(await h.services.devices.get(own.body.device.id))).toBeNull();
  });

  describe('L8: a credential withdrawn from the very session it opened and proved ends that session too (only a session standing on another device is kept)', () => {
    it('L8, M1: whoever holds the SIM and the password, logged in and stepped up with SMS, removes the number and keeps no session', async () => {
      const { sms, card, attacker } = await smsSessionOfCardHolder();
      const owner = await cardSession(sms.user, card, false);
      const phoneId = (await h.services.phones.list(sms.user.id))[0]!.id;
      const removed = await send(h.app, 'DELETE', `/api/v1/phones/${phoneId}`, attacker);
      expect(removed.status, JSON.stringify(removed.body)).toBe(204);
      expect((await h.services.devices.get(sms.deviceId)).state).toBe('revoked');
      expect(await alive(attacker)).toBe(401);
      expect(await alive(owner)).toBe(200);
      expect((await endedEvents(sms.user.id)).map((e) => e.reason)).toEqual(['device_revoked']);
    });

    it('L8, C5: whoever holds the card, logged in and stepped up with it, reports it lost and keeps no session', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const thief = await cardSession(user, card);
      const cardId = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!.id;
      const lost = await postJson(h.app, `/api/v1/devices/${cardId}/lost`, { reason: 'stolen' }, thief);
      expect(lost.status, JSON.stringify(lost.body)).toBe(200);
      expect(await alive(thief)).toBe(401);
      expect((await endedEvents(user.id)).map((e) => e.reason)).toEqual(['device_lost']);
    });

    it('L8, D6: a session opened and stepped up with a security key that removes that key ends with it', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const { key, keyId } = await registerKey(await cardSession(user, card));
      const flow = await loginWith(user, keyId);
      const done = await answer(h.app, flow.id, key.assert(flow.challenge.options, where));
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      const withKey = bearer(done.body.session.token);
      const stepped = await stepUp(h.app, withKey, (challenge) => key.assert(challenge.options, where));
      expect(stepped.body.deviceId).toBe(keyId);
      expect((await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, withKey)).status).toBe(204);
      expect(await alive(withKey)).toBe(401);
      expect((await endedEvents(user.id)).map((e) => e.reason)).toEqual(['device_revoked']);
    });

    it("L8, H5: a requester who cancels a sharing from a session opened and stepped up with the owner's card keeps no session on a card no longer theirs", async () => {
      const { owner, requester, id } = await sharedCard();
      const withShared = await cardSession(requester, owner.card);
      const cancelled = await send(h.app, 'DELETE', `/api/v1/sharing/${id}`, withShared);
      expect(cancelled.body.state, JSON.stringify(cancelled.body)).toBe('cancelled');
      expect(await alive(withShared)).toBe(401);
      expect((await endedEvents(requester.id)).map((e) => e.reason)).toContain('sharing_ended');
    });
  });

  it('T3: a session opened with a temporary passcode just before day 2 does not keep full access past it (no trading after 2 days)', async () => {
    const { user: agent } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const { user } = await createUserWithCard(h.services);
    const v = await h.services.helpDesk.verifyIdentity(agent.id, user.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.id, user.username, { verificationId: v.id });
    const full = h.services.config.policy.temporaryPasscodeFullMs;
    h.clock.advance(full - 60_000);
    const trading = await startLogin(h.app, user.username, PASSWORD, 'trading');
    expect(trading.body.challenge?.type, JSON.stringify(trading.body)).toBe('passcode');
    const done = await answer(h.app, trading.body.id, passcode);
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const session = bearer(done.body.session.token);
    expect(await alive(session)).toBe(200);

    h.clock.advance(2 * 60_000); // day 2 has passed: a new trading login is refused, and so is the session
    expect((await startLogin(h.app, user.username, PASSWORD, 'trading')).status).not.toBe(200);
    expect(await alive(session)).toBe(401);
  });

  it('T3: a temporary-passcode session past day 2 may not change the notice preferences (only the online card)', async () => {
    const { user: agent } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const { user } = await createUserWithCard(h.services);
    const v = await h.services.helpDesk.verifyIdentity(agent.id, user.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.id, user.username, { verificationId: v.id });
    h.clock.advance(h.services.config.policy.temporaryPasscodeFullMs + 60_000);
    const start = await startLogin(h.app, user.username);
    const limited = bearer((await answer(h.app, start.body.id, passcode)).body.session.token);
    expect((await get(h.app, '/api/v1/session', limited)).body.scope).toBe('online_card_only');
    const changed = await send(h.app, 'PUT', '/api/v1/notice-preferences', limited, { language: 'fr', timeZone: 'Europe/Paris' });
    expect(changed.status, JSON.stringify(changed.body)).toBe(403);
    expect(changed.body.error.code).toBe('SCOPE_ONLINE_CARD_ONLY');
    expect((await h.services.noticePreferences.get(user.id)).chosenAt).toBeNull();
  });

  it('X7: an admin setting equity through the admin API is refused on their own account and on another admin’s, as in the console', async () => {
    const { user: admin, card } = await createUserWithCard(h.services, '1234', { role: 'admin' });
    const { user: otherAdmin } = await createUserWithCard(h.services, '1234', { role: 'admin' });
    const client = await createUser(h.services, { equityUsd: 10 });
    const auth = await cardSession(admin, card);

    const own = await send(h.app, 'PUT', `/api/v1/admin/accounts/${admin.accountNumber}/equity`, auth, { equityUsd: 5_000_000 });
    expect(own.status, JSON.stringify(own.body)).toBe(403);
    expect(own.body.error.code).toBe('STAFF_TARGET_FORBIDDEN');
    const other = await send(h.app, 'PUT', `/api/v1/admin/accounts/${otherAdmin.accountNumber}/equity`, auth, { equityUsd: 5_000_000 });
    expect(other.status, JSON.stringify(other.body)).toBe(403);
    expect(other.body.error.code).toBe('STAFF_TARGET_FORBIDDEN');
    expect((await h.services.users.account(admin.accountId)).equityUsd).toBe(2_000_000);

    const ok = await send(h.app, 'PUT', `/api/v1/admin/accounts/${client.accountNumber}/equity`, auth, { equityUsd: 1_500_000 });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });
});
