/**
 * A fresh attacker's review of the mobile authenticator's own protocol (K3,
 * K4, K6, K7, K13, K14): what a signed answer binds (the request, the
 * decision, the number, the biometric assertion over the very answer), the
 * offline response (another user's key, another flow's challenge), and what
 * an app's token opens once the authenticator is suspended or moved to
 * another phone. Through the real HTTP stack and the app's own protocol code
 * (test/support/phone.ts), on every database. Each test names the rules it
 * proves.
 */
import { createECDH, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PushVerifier } from '../src/devices/mobile/mobile.js';
import { verifierContext } from '../src/flows/flow-rows.js';
import type { PushRequest, WebAuthnAssertion } from '../src/mobile-app/api.js';
import { answerChallenge, answerMessage, signAnswer } from '../src/mobile-app/protocol.js';
import { DATABASES, PASSWORD, createUser, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, claimOf, claimSession, get, postJson, startLogin } from './support/api.js';
import { SoftwareAuthenticator } from './support/software-authenticator.js';
import { TestPhone, harnessInbox, listen, rejected, smsUser } from './support/phone.js';

describe.each(DATABASES)("attacks on the authenticator app's protocol (%s)", (database) => {
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

  /** The flow's state as stored. */
  async function flowState(flowId: string): Promise<string> {
    return (await h.services.store.db.selectFrom('login_flows').select('state').where('id', '=', flowId).executeTakeFirstOrThrow()).state;
  }

  /**
   * The push request of a flow made to show `number` (what a 1 in 90 chance gives): so that an answer made for
   * another request, with that number, differs from a right one by its request only.
   */
  async function showNumber(flowId: string, number: string): Promise<void> {
    const { store, box } = h.services;
    const row = await store.db.selectFrom('login_flows').select(['kind', 'verifier']).where('id', '=', flowId).executeTakeFirstOrThrow();
    const context = verifierContext(row.kind, flowId);
    const verifier = box.openJson<PushVerifier>(row.verifier!, context);
    await store.db
      .updateTable('login_flows')
      .set({ verifier: box.sealJson({ ...verifier, number }, context), prompt: JSON.stringify({ type: 'push', number }) })
      .where('id', '=', flowId)
      .execute();
  }

  /** The phone's signed answer to a request, made but not sent (what a copy of it in flight would be). */
  async function signedAnswer(app: TestPhone, request: PushRequest, decision: 'approve' | 'deny', number: string, proof = '') {
    const e = app.enrolments.get(request.username)!;
    const message = answerMessage(request.id, number, decision, proof);
    return { deviceId: e.deviceId, token: e.token, decision, number, proof, signature: await signAnswer(e.keys.signing.privateKey, message) };
  }

  async function signedInWithPhone(app: TestPhone, username: string): Promise<Record<string, string>> {
    const login = await startLogin(h.app, username);
    await app.approve(await app.request(username), login.body.challenge.number);
    return bearer((await claimSession(h.app, login)).body.session.token as string);
  }

  it('K13, K3, D6: a signed biometric approval binds its request: made for a login superseded by the next, sent for the next one showing the same number, it approves nothing (401, counted); a deny’s signature sent as an approval, and an assertion made over another answer, approve nothing either', async () => {
    const user = await smsUser(h);
    const key = new SoftwareAuthenticator();
    const app = phone();
    await app.activate(user.username, { biometric: key });
    const first = await startLogin(h.app, user.username);
    const firstRequest = await app.request(user.username);
    // the owner's approval of the first login, in flight (or kept by whoever saw it)
    const copy = await app.biometricApproval(firstRequest, first.body.challenge.number, key);
    h.clock.advance(1000);
    const second = await startLogin(h.app, user.username);
    const request = await app.request(user.username);
    expect(request.id).not.toBe(firstRequest.id);
    await showNumber(second.body.id, first.body.challenge.number);
    const number = first.body.challenge.number as string;

    // the first login's approval, word for word, for the second request: its id is in what was signed and asserted
    const replayed = await rejected(app.api.answer(request.id, copy.answer));
    expect([replayed.status, replayed.code, replayed.body.error.attemptsLeft]).toEqual([401, 'LOGIN_FAILED', 2]);
    // the phone's deny of this very request, its signature sent as an approval
    const deny = await signedAnswer(app, request, 'deny', '');
    const turned = await rejected(app.api.answer(request.id, { ...deny, decision: 'approve', number }));
    expect([turned.status, turned.code, turned.body.error.attemptsLeft]).toEqual([401, 'LOGIN_FAILED', 1]);
    expect(await flowState(second.body.id)).toBe('second_factor');
    // the right signature over this approval, with the biometric assertion made for the first one: no biometric proof of this one
    const signedOnly = await signedAnswer(app, request, 'approve', number);
    const unasserted = await rejected(app.api.answer(request.id, { ...signedOnly, assertion: copy.answer.assertion as WebAuthnAssertion }));
    expect([unasserted.status, unasserted.code, unasserted.body.error.attemptsLeft]).toEqual([401, 'LOGIN_FAILED', 0]);
    expect(await flowState(second.body.id)).toBe('failed');
    expect((await h.services.audit.list({ userId: user.id })).some((e) => e.event === 'login.push_approved')).toBe(false);
    expect((await h.services.lockout.status(user.username)).failures).toBe(3);

    // and the approval is the owner's once it is the right one: a third login, answered as the phone answers it
    const third = await startLogin(h.app, user.username);
    const thirdRequest = await app.request(user.username);
    const challenge = await answerChallenge(answerMessage(thirdRequest.id, third.body.challenge.number, 'approve', ''));
    expect(challenge).not.toBe(await answerChallenge(answerMessage(request.id, third.body.challenge.number, 'approve', '')));
    expect(await (await app.biometricApproval(thirdRequest, third.body.challenge.number, key)).send()).toEqual({ state: 'approved' });
    expect((await claimSession(h.app, third)).status).toBe(200);
    const approvals = (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'login.push_approved');
    expect(approvals.map((e) => (e.data as { confirmedBy: string }).confirmedBy)).toEqual(['biometric']);
  });

  it('K4, K6, L4: the offline response is the user’s own key’s over the challenge shown: another user’s key on the same phone (same PIN), and the response to a step-up’s challenge, are wrong answers to a login; the login’s accepted response is refused for the step-up', async () => {
    const owner = await smsUser(h);
    const other = await smsUser(h);
    const app = phone();
    await app.activate(owner.username);
    await app.activate(other.username);
    // a step-up of the owner's session, answered offline
    const auth = await signedInWithPhone(app, owner.username);
    const stepUp = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, auth);
    const stepUpChallenge = (await postJson(h.app, `/api/v1/step-up/${stepUp.body.id}/offline`, {}, auth)).body.challenge.question as string;
    // a login of the owner's, answered offline
    const login = await startLogin(h.app, owner.username);
    const offline = await postJson(h.app, `/api/v1/login/${login.body.id}/offline`, {}, claimOf(login));
    const question = offline.body.challenge.question as string;
    expect(question).not.toBe(stepUpChallenge);

    const byOtherUser = await answer(h.app, login.body.id, await app.respond(other.username, question), claimOf(login));
    expect([byOtherUser.status, byOtherUser.body.error.code, byOtherUser.body.error.attemptsLeft]).toEqual([401, 'LOGIN_FAILED', 2]);
    const stepUpsResponse = await app.respond(owner.username, stepUpChallenge);
    const crossed = await answer(h.app, login.body.id, stepUpsResponse, claimOf(login));
    expect([crossed.status, crossed.body.error.code, crossed.body.error.attemptsLeft]).toEqual([401, 'LOGIN_FAILED', 1]);
    const right = await app.respond(owner.username, question);
    expect((await answer(h.app, login.body.id, right, claimOf(login))).status).toBe(200);
    // the login's response, once accepted, answers no step-up
    const reused = await postJson(h.app, `/api/v1/step-up/${stepUp.body.id}`, { response: right }, auth);
    expect(reused.body.error?.code).toBe('LOGIN_FAILED');
    expect((await get(h.app, '/api/v1/session', auth)).body.verifiedAt).toBeNull();
    // the step-up's own response still verifies it
    expect((await postJson(h.app, `/api/v1/step-up/${stepUp.body.id}`, { response: stepUpsResponse }, auth)).body.state).toBe('done');
  });

  it('K7, K14, K3, D3: the token and keys of an app moved to another phone, or suspended, open nothing: no answer (a signed deny included), no push subscription, no message; the suspended one is only paused, the moved one named revoked, and a one-time password goes to the new phone only', async () => {
    const user = await smsUser(h);
    const oldPhone = phone();
    const old = await oldPhone.activate(user.username);
    const p256dh = createECDH('prime256v1');
    p256dh.generateKeys();
    const subscription = {
      endpoint: 'https://fcm.googleapis.com/fcm/send/the-attackers',
      keys: { p256dh: p256dh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') },
    };

    // suspended (client services, D3): paused
    await h.services.devices.setState(old.deviceId, 'suspended', 'test', 'test');
    const staff = await createUser(h.services, { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(staff.id, user.username, { method: 'callback_on_record', notes: 'test' });
    expect(await h.services.helpDesk.resetPassword(staff.id, user.username, { verificationId: verification.id })).toMatchObject({ deliveredTo: 'staff' });
    expect(await oldPhone.poll()).toEqual({ requests: [], messages: [], revoked: [] });
    const paused = await rejected(oldPhone.api.subscribe({ deviceId: old.deviceId, token: old.token }, subscription));
    expect([paused.status, paused.code]).toEqual([401, 'APP_TOKEN_INVALID']);
    await h.services.devices.setState(old.deviceId, 'active', 'test', 'test');
    await h.services.users.setPassword(user.id, PASSWORD, { actor: 'test', oneTime: false });

    // moved to a new phone (K7)
    const newPhone = phone();
    await newPhone.activate(user.username, { purpose: 'migrate' });
    const login = await startLogin(h.app, user.username);
    const request = await newPhone.request(user.username);
    expect((await oldPhone.poll()).revoked).toEqual([old.deviceId]);
    // the old phone's keys sign its answers as they always did, with its token: refused before anything is counted
    const deny = await rejected(oldPhone.api.answer(request.id, await signedAnswer(oldPhone, { ...request }, 'deny', '')));
    expect([deny.status, deny.code]).toEqual([401, 'APP_TOKEN_INVALID']);
    const approve = await rejected(oldPhone.approve(request, login.body.challenge.number));
    expect([approve.status, approve.code]).toEqual([401, 'APP_TOKEN_INVALID']);
    expect((await h.services.lockout.status(user.username)).failures).toBe(0);
    expect(await flowState(login.body.id)).toBe('second_factor');
    expect((await rejected(oldPhone.api.subscribe({ deviceId: old.deviceId, token: old.token }, subscription))).code).toBe('APP_TOKEN_INVALID');
    // K14: the one-time password is sealed to the new phone; the old one neither gets nor acknowledges it
    const reset = await h.services.helpDesk.resetPassword(staff.id, user.username, { verificationId: verification.id });
    expect(reset).toEqual({ temporaryPassword: null, deliveredTo: 'app' });
    expect(await oldPhone.poll()).toEqual({ requests: [], messages: [], revoked: [old.deviceId] });
    const [message] = (await newPhone.poll()).messages;
    expect(await newPhone.open(user.username, message!.sealed)).toMatch(/^[A-Z0-9]{12}$/);
    await expect(oldPhone.open(user.username, message!.sealed)).rejects.toThrow();
    const ack = await rejected(oldPhone.api.acknowledge(message!.id, { deviceId: old.deviceId, token: old.token }));
    expect([ack.status, ack.code]).toEqual([401, 'APP_TOKEN_INVALID']);
    expect((await newPhone.poll()).messages.map((m) => m.id)).toEqual([message!.id]);
  });
});
