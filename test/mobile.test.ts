/**
 * The mobile authenticator (K1–K14, M3, L6, W1) through the real HTTP
 * stack, services and database, on SQLite and PostgreSQL. The phone is the
 * app's own protocol code running in Node with non-extractable WebCrypto
 * keys (test/support/phone.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MINUTE, HOUR, SECOND } from '../src/clock.js';
import { generateOcra, parseOcraSuite } from '../src/crypto/ocra.js';
import { MOBILE_SUITE as SERVER_SUITE, sealToPhone, verifyAnswer, answerMessage as serverAnswerMessage } from '../src/devices/mobile/keys.js';
import type { MobileParams, MobileSecret } from '../src/devices/mobile/mobile.js';
import type { ApiError } from '../src/mobile-app/api.js';
import {
  MOBILE_SUITE,
  activationMessage,
  answerMessage,
  deriveOcraKey,
  generatePhoneKeys,
  ocraResponse,
  openMessage,
  publicKeys,
  signAnswer,
} from '../src/mobile-app/protocol.js';
import type { User } from '../src/identity/users.js';
import { DATABASES, PASSWORD, cardAnswer, createUser, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, claimOf, claimSession, get, readLogin, postJson, startLogin, tookNewToken } from './support/api.js';
import { APP_PIN, TestPhone, harnessInbox, listen, newMobile, rejected, smsUser, type Inbox } from './support/phone.js';
import { boundClaim, cookieNames } from '../src/http/session-cookie.js';
import { Agent, byId, csrfOf, form, hasForm, text, textById } from './support/html.js';

describe("the app's protocol against the server's (K4, K13, K14)", () => {
  it("K4: the app's offline response is the server's OCRA (RFC 6287) of the same key, challenge and PIN", async () => {
    expect(MOBILE_SUITE).toBe(SERVER_SUITE);
    const keys = await generatePhoneKeys();
    const { agreementKey, signingKey } = await publicKeys(keys);
    const { seed, serverKey, salt } = (await import('../src/devices/mobile/keys.js')).agreeOcraKey(agreementKey);
    const ocraKey = await deriveOcraKey(keys.agreement.privateKey, serverKey, salt);
    for (const [question, pin] of [
      ['12345678', 'ab12'],
      ['00000001', '9999'],
      ['99999999', 'p@ss9!'],
    ] as const) {
      expect(await ocraResponse(ocraKey, question, pin)).toBe(generateOcra(parseOcraSuite(SERVER_SUITE), { key: seed, question, pin }));
    }
    // K13: the phone's signature verifies with its public key only; any change breaks it
    const message = answerMessage('flw_x', '42', 'approve', '12345678');
    expect(message).toBe(serverAnswerMessage('flw_x', '42', 'approve', '12345678'));
    const signature = await signAnswer(keys.signing.privateKey, message);
    expect(verifyAnswer(signingKey, message, signature)).toBe(true);
    expect(verifyAnswer(signingKey, answerMessage('flw_x', '43', 'approve', '12345678'), signature)).toBe(false);
    // K1: the private keys cannot be exported, not even by the app
    await expect(crypto.subtle.exportKey('jwk', keys.signing.privateKey)).rejects.toThrow();
    await expect(crypto.subtle.exportKey('raw', ocraKey)).rejects.toThrow();
    // K14: only the phone opens what is sealed to it
    const sealed = sealToPhone(agreementKey, 'TEMPPASS1234');
    expect(await openMessage(keys.agreement.privateKey, sealed)).toBe('TEMPPASS1234');
    const other = await generatePhoneKeys();
    await expect(openMessage(other.agreement.privateKey, sealed)).rejects.toThrow();
  });
});

describe.each(DATABASES)('the mobile authenticator (%s)', (db) => {
  let h: Harness;
  let base: string;
  let inbox: Inbox;

  beforeAll(async () => {
    h = await startHarness(db);
    base = await listen(h);
    inbox = harnessInbox(h);
  });
  afterAll(async () => h.close());

  const phone = () => new TestPhone(base, inbox);

  it('K1, K2, M3, K9: username and password → a number on record → activation token by SMS, proven before the PIN → PIN → active; SMS is removed', async () => {
    const user = await smsUser(h);
    const app = phone();
    const view = await app.start(user.username);
    expect(view).toMatchObject({ purpose: 'activate', proof: 'sms', username: user.username, attemptsLeft: 3 });
    expect(view.phones).toHaveLength(1);
    expect(view.phones[0]!.number).toMatch(/^\+33 [•\s]+\d\d$/);
    const sent = await app.api.sendToken(view, { phoneId: view.phones[0]!.id });
    expect(sent.challenge).toMatchObject({ type: 'sms', delivery: 'sent', digits: 6 });
    // one token every 30 s
    expect((await rejected(app.api.sendToken(view, { phoneId: view.phones[0]!.id }))).code).toBe('SMS_TOO_SOON');
    const token = await inbox.activationToken(user.username);
    const keys = await app.keysFor(view.id);
    const keyJson = await publicKeys(keys);
    const signature = await signAnswer(keys.signing.privateKey, activationMessage(view.id));

    // issue 16 item 3: no PIN before the token is proven; refused with a stable code, nothing counted
    const early = await rejected(app.api.completeActivation(view, { pin: APP_PIN, ...keyJson, signature }));
    expect([early.status, early.code]).toEqual([409, 'ACTIVATION_NOT_PROVEN']);
    // a wrong token takes one of 3 answers and says what was wrong, not "Login failed"
    const wrong = await rejected(app.prove(view, token === '000000' ? '111111' : '000000'));
    expect([wrong.status, wrong.code, wrong.body.error.attemptsLeft]).toEqual([401, 'ACTIVATION_PROOF_FAILED', 2]);
    expect(wrong.body.error.message).toBe('The activation token is not right. Check the text message and type it again.');
    const proven = await app.prove(view, token);
    expect(proven).toMatchObject({ id: view.id, proven: true, attemptsLeft: 3 });
    // once proven, the token is spent: proving again is refused and counts nothing
    expect((await rejected(app.prove(view, token))).code).toBe('FLOW_STATE');

    // K2: 4 to 6 characters, at least one digit, not trivial
    const trivial = ['0000', '1111', '1234', '4321', '123456', '1212', '2580', '1984', '7777', '6969', '1a1a', '7890'];
    const cases = [['ab1', 'length'], ['abcdefg1', 'length'], ['abcd', 'digit'], ['ab 12', 'characters'], ...trivial.map((pin) => [pin, 'trivial'])] as const;
    for (const [pin, reason] of cases) {
      const error = await rejected(app.api.completeActivation(view, { pin, ...keyJson, signature }));
      expect([error.status, error.code], pin).toEqual([400, 'INVALID_PIN']);
      expect(error.body.error.message, pin).toContain({ length: '4 to 6', digit: 'digit', characters: 'spaces', trivial: 'too easy to guess' }[reason]);
    }
    // refused before an answer was taken
    expect((await h.services.store.db.selectFrom('login_flows').select('attempts').where('id', '=', view.id).executeTakeFirstOrThrow()).attempts).toBe(0);

    const enrolment = await app.finish(view);
    const devices = await h.services.devices.listForUser(user.id);
    expect(devices.find((d) => d.id === enrolment.deviceId)).toMatchObject({ type: 'mobile', state: 'active', label: 'Test phone' });
    expect(devices.find((d) => d.type === 'sms')?.state).toBe('revoked');
    // the server keeps public keys, the derived key and the PIN's hash, sealed (D5); no private key
    const secret = (await h.services.devices.context(devices.find((d) => d.id === enrolment.deviceId)!)).secret<MobileSecret>();
    expect(Object.keys(secret.signingKey).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    // the PIN is nowhere as a value (the random hex of the seed and keys may hold its characters by chance)
    expect(JSON.stringify(secret)).not.toContain(JSON.stringify(APP_PIN));
    const row = await h.services.store.db.selectFrom('devices').select('secret_enc').where('id', '=', enrolment.deviceId).executeTakeFirstOrThrow();
    expect(row.secret_enc).not.toContain(secret.signingKey.x);
    // audited, and the user hears of it (N1)
    expect((await h.services.audit.list({ userId: user.id })).map((e) => e.event)).toEqual(
      expect.arrayContaining(['mobile.activation_started', 'mobile.token_sent', 'mobile.activation_failed', 'mobile.token_proven', 'mobile.activated']),
    );
    expect((await h.services.notifier.list({ userId: user.id })).some((n) => n.template === 'mobileActivated')).toBe(true);
    // W1: the mobile authenticator's row
    const login = await startLogin(h.app, user.username);
    expect(login.body.challenge.type).toBe('push');
  });

  it('X7, K1: a user with no device and no number on record cannot bind the authenticator with the password alone; client services put a number on record after verifying the caller', async () => {
    const user = await createUser(h.services);
    const app = phone();
    const refused = await rejected(app.start(user.username));
    expect([refused.status, refused.code]).toEqual([403, 'NO_ACTIVE_DEVICE']);
    expect(refused.body.error.message).toContain('Client Services');
    // the app may not name a number of its own
    const attacker = await rejected(
      app.api.sendToken({ id: 'flw_aaaaaaaaaaaaaaaaaaaaaaaaaa', claimToken: '' }, { country: 'FR', number: '612345678' } as never),
    );
    expect([attacker.status, attacker.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect(await h.services.phones.list(user.id)).toEqual([]);
    // out of band: client services verify the caller and put the number on record
    const staff = await createUser(h.services, { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(staff.id, user.username, { method: 'id_document' });
    const onRecord = await h.services.helpDesk.addPhone(staff.id, user.username, { verificationId: verification.id, ...newMobile() });
    expect((await h.services.audit.list({ userId: user.id })).some((e) => e.event === 'helpdesk.phone_added' && e.actor === `staff:${staff.id}`)).toBe(true);
    const view = await app.start(user.username);
    expect(view).toMatchObject({ proof: 'sms', phones: [{ id: onRecord.id, verified: false }] });
    await app.api.sendToken(view, { phoneId: onRecord.id });
    await app.complete(view, await inbox.activationToken(user.username));
    expect((await h.services.phones.list(user.id))[0]!.verified).toBe(true);
  });

  it('K1, L3, L4 (issue 16 item 3): the proven token is bound to its activation and to the keys that proved it, used once, expiring, and never replayed after the activation', async () => {
    const user = await smsUser(h);
    const app = phone();
    const { view, token } = await app.tokenSent(user.username);
    // another activation of the same user (started by whoever has the password) cannot use this token
    const other = phone();
    h.clock.advance(SECOND);
    const otherView = await other.start(user.username);
    const elsewhere = await rejected(other.prove(otherView, token));
    expect([elsewhere.status, elsewhere.code]).toEqual([401, 'ACTIVATION_PROOF_FAILED']);
    // copies of the right token sent at once, each with keys of its own: one proves, the others count nothing
    const failuresBefore = (await h.services.lockout.status(user.username)).failures;
    const phones = [app, phone(), phone()];
    const results = await Promise.allSettled(phones.map((p) => p.prove(view, token)));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(['FLOW_EXPIRED', 'FLOW_STATE']).toContain((r.reason as ApiError).code);
    expect((await h.services.lockout.status(user.username)).failures).toBe(failuresBefore);
    expect((await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'mobile.token_proven')).toHaveLength(1);
    const winner = phones[won[0]!]!;
    const loser = phones[(won[0]! + 1) % phones.length]!;
    // the proof is the winner's keys': other keys, or the right keys without their signature, cannot finish
    const notTheirs = await rejected(loser.finish(view));
    expect([notTheirs.status, notTheirs.code]).toEqual([409, 'ACTIVATION_NOT_PROVEN']);
    const keys = await publicKeys(await winner.keysFor(view.id));
    const otherSignature = await signAnswer((await loser.keysFor(view.id)).signing.privateKey, activationMessage(view.id));
    const unsigned = await rejected(winner.api.completeActivation(view, { pin: APP_PIN, ...keys, signature: otherSignature }));
    expect([unsigned.status, unsigned.code]).toEqual([409, 'ACTIVATION_NOT_PROVEN']);
    // a signature made for another activation does not finish this one
    const wrongId = await signAnswer((await winner.keysFor(view.id)).signing.privateKey, activationMessage(otherView.id));
    expect((await rejected(winner.api.completeActivation(view, { pin: APP_PIN, ...keys, signature: wrongId }))).code).toBe('ACTIVATION_NOT_PROVEN');
    const enrolment = await winner.finish(view);
    expect((await h.services.devices.get(enrolment.deviceId)).state).toBe('active');
    // after the activation: neither the proof nor the completion can be replayed
    expect((await rejected(winner.prove(view, token))).code).toBe('FLOW_EXPIRED');
    expect((await rejected(winner.finish(view))).code).toBe('FLOW_EXPIRED');
    expect((await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'mobile')).toHaveLength(1);

    // a proof not followed by the PIN in time expires
    const late = await smsUser(h);
    const slow = phone();
    const { view: lateView, token: lateToken } = await slow.tokenSent(late.username);
    expect((await slow.prove(lateView, lateToken)).proven).toBe(true);
    h.clock.advance(h.services.config.policy.mobileActivationProvenTtlMs + SECOND);
    const expired = await rejected(slow.finish(lateView));
    expect([expired.status, expired.code]).toEqual([410, 'FLOW_EXPIRED']);
    expect((await h.services.devices.listForUser(late.id)).some((d) => d.type === 'mobile')).toBe(false);
  });

  it('K1, L3 (issue 16 item 3): wrong tokens count towards the lock, three use the activation up, and a device answer is proven once (L4)', async () => {
    const user = await smsUser(h);
    const app = phone();
    const { view, token } = await app.tokenSent(user.username);
    const before = (await h.services.lockout.status(user.username)).failures;
    const wrong = token === '000000' ? '111111' : '000000';
    // wrong copies at once: each takes an answer and counts, never more than the flow's 3
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => app.prove(view, wrong)));
    const codes = results.map((r) => (r.status === 'rejected' ? (r.reason as ApiError).code : 'accepted'));
    expect(codes.filter((c) => c === 'ACTIVATION_PROOF_FAILED')).toHaveLength(3);
    expect(codes.filter((c) => c !== 'ACTIVATION_PROOF_FAILED').every((c) => c === 'FLOW_EXPIRED')).toBe(true);
    const usedUp = results.flatMap((r) => (r.status === 'rejected' && (r.reason as ApiError).body.error.attemptsLeft === 0 ? [r.reason as ApiError] : []));
    expect(usedUp[0]!.body.error.message).toContain('third wrong try');
    expect((await h.services.lockout.status(user.username)).failures).toBe(before + 3);
    // the right token no longer helps: the activation is used up
    expect((await rejected(app.prove(view, token))).code).toBe('FLOW_EXPIRED');

    // a physical device's answer proves once: the same answer in a new activation is refused (L4)
    const { user: cardUser, card } = await createUserWithCard(h.services);
    const first = phone();
    const firstView = await first.start(cardUser.username);
    const answer = cardAnswer(card, (firstView.challenge as { question: string }).question);
    expect((await first.prove(firstView, answer)).proven).toBe(true);
    expect((await rejected(first.prove(firstView, answer))).code).toBe('FLOW_STATE');
  });

  it('K1, M2: a new applicant whose number is on record but not yet verified gets the token there; no other number may be added', async () => {
    const user = await createUser(h.services);
    const onRecord = await h.services.phones.add(user.id, newMobile(), 'test', null);
    const app = phone();
    const view = await app.start(user.username);
    expect(view).toMatchObject({ proof: 'sms', phones: [{ id: onRecord.id, verified: false }] });
    const refused = await rejected(app.api.sendToken(view, newMobile() as never));
    expect([refused.status, refused.code]).toEqual([400, 'VALIDATION_ERROR']);
    await app.api.sendToken(view, { phoneId: onRecord.id });
    await app.complete(view, await inbox.activationToken(user.username));
    expect((await h.services.phones.list(user.id)).map((p) => [p.id, p.verified])).toEqual([[onRecord.id, true]]);
  });

  it('R2, K1: a card suspended, lost or on its way still protects: the password alone never adds a number and brings a phone in', async () => {
    for (const state of ['suspended', 'lost', 'shipped'] as const) {
      const { user } = await createUserWithCard(h.services);
      const card = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
      await h.services.store.db.updateTable('devices').set({ state }).where('id', '=', card.id).execute();
      const refused = await rejected(phone().start(user.username));
      expect([state, refused.status, refused.code]).toEqual([state, 403, 'NO_ACTIVE_DEVICE']);
    }
  });

  it('R2, D4: a user on a temporary passcode activates the authenticator with the verified number (no new number); the passcode stops', async () => {
    const user = await smsUser(h);
    const staff = await createUser(h.services, { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(staff.id, user.username, { method: 'callback_on_record' });
    await h.services.helpDesk.issueTemporaryPasscode(staff.id, user.username, { verificationId: verification.id });
    const app = phone();
    const view = await app.start(user.username);
    expect(view).toMatchObject({ proof: 'sms' });
    expect(view.phones.map((p) => p.verified)).toEqual([true]);
    await app.api.sendToken(view, { phoneId: view.phones[0]!.id });
    await app.complete(view, await inbox.activationToken(user.username));
    const states = (await h.services.devices.listForUser(user.id)).map((d) => `${d.type}:${d.state}`).sort();
    expect(states).toEqual(['mobile:active', 'sms:revoked', 'temp_passcode:revoked']);
  });

  it('K7, L6: a user with an active physical device proves it instead of an SMS token; then chooses either device at login (M2FS)', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const app = phone();
    const view = await app.start(user.username);
    expect(view).toMatchObject({ proof: 'device', challenge: { type: 'ocra' } });
    expect((await rejected(app.api.sendToken(view, { phoneId: 'phn_aaaaaaaaaaaaaaaaaaaaaaaaaa' }))).code).toBe('FLOW_STATE');
    const question = (view.challenge as { question: string }).question;
    await app.complete(view, cardAnswer(card, question));
    // L6, D2: both devices stay active; the DSC+ (stronger) is offered first until the authenticator is used
    const active = await h.services.devices.activeForUser(user.id, null);
    expect(active.map((d) => d.type)).toEqual(['dscplus', 'mobile']);
    const first = await startLogin(h.app, user.username);
    expect(first.body.challenge.type).toBe('ocra');
    const mobile = active.find((d) => d.type === 'mobile')!;
    const switched = await postJson(h.app, `/api/v1/login/${first.body.id}`, { device: mobile.id }, claimOf(first));
    expect(switched.body).toMatchObject({ device: { type: 'mobile' }, challenge: { type: 'push' } });
    await app.approve(await app.request(user.username), switched.body.challenge.number);
    expect((await claimSession(h.app, first)).status).toBe(200);
    // L6: the last used is offered first next time
    expect((await startLogin(h.app, user.username)).body.device.type).toBe('mobile');
  });

  it('L1, L3: the activation asks the password like a login: same answer for an unknown user, failures count towards the lock', async () => {
    const user = await smsUser(h);
    const app = phone();
    const wrong = await rejected(app.start(user.username, 'activate', 'wrong password!'));
    const unknown = await rejected(app.start('nosuchuser123', 'activate', 'wrong password!'));
    expect([wrong.status, wrong.code]).toEqual([401, 'INVALID_CREDENTIALS']);
    expect([unknown.status, unknown.code, unknown.body.error.message]).toEqual([401, 'INVALID_CREDENTIALS', wrong.body.error.message]);
    expect((await h.services.lockout.status(user.username)).failures).toBe(1);
    expect((await rejected(app.start(user.username, 'migrate'))).code).toBe('MOBILE_NOT_ACTIVE');
    expect((await rejected(app.start(user.username, 'recover'))).code).toBe('MOBILE_NOT_ACTIVE');
  });

  it('K3, K13: the login shows a 2-digit number; the phone gets where the login comes from (not the number), types it, approves with the PIN; the page takes its session', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const login = await startLogin(h.app, user.username, PASSWORD, 'trading', { 'x-forwarded-for': '203.0.113.9' });
    expect(login.body).toMatchObject({ state: 'second_factor', device: { type: 'mobile' }, challenge: { type: 'push' } });
    const number = login.body.challenge.number as string;
    expect(number).toMatch(/^[1-9]\d$/);
    expect(Date.parse(login.body.expiresAt) - h.clock.now()).toBe(2 * MINUTE);

    const request = await app.request(user.username);
    expect(request).toMatchObject({ kind: 'login', app: 'trading', username: user.username });
    // the phone knows the request by an id of its own: never the flow id that takes the session
    expect(request.id).toMatch(/^req_/);
    expect(JSON.stringify(request)).not.toContain(login.body.id);
    expect(request.question).toMatch(/^\d{8}$/);
    expect(JSON.stringify(request)).not.toContain(`"${number}"`);

    // not approved yet: the session cannot be taken, and typing is refused
    expect((await claimSession(h.app, login)).body.error.code).toBe('FLOW_STATE');
    expect((await answer(h.app, login.body.id, '12345678')).body.error.code).toBe('FLOW_STATE');

    // a wrong number is a wrong answer (push fatigue, K13)
    const other = number === '10' ? '11' : '10';
    const wrong = await rejected(app.approve(request, other));
    expect([wrong.status, wrong.code, wrong.body.error.attemptsLeft]).toEqual([401, 'LOGIN_FAILED', 2]);
    expect(await app.approve(request, number)).toEqual({ state: 'approved' });
    expect((await readLogin(h.app, login.body.id)).body.state).toBe('approved');
    // replayed: the answer is accepted once
    expect((await rejected(app.approve(request, number))).code).toBe('FLOW_EXPIRED');

    // K3: the session is only for whoever entered the password: knowing the flow id is not enough
    const stranger = await claimSession(h.app, login, 'x'.repeat(43));
    expect([stranger.status, stranger.body.error.code]).toEqual([404, 'FLOW_NOT_FOUND']);
    expect((await postJson(h.app, `/api/v1/login/${login.body.id}/session`, {})).body.error.code).toBe('VALIDATION_ERROR');
    expect((await readLogin(h.app, login.body.id)).body.state).toBe('approved');
    expect((await h.services.audit.list({ userId: user.id })).some((e) => e.event === 'login.claim_refused')).toBe(true);

    const taken = await claimSession(h.app, login);
    expect(taken.status).toBe(200);
    expect(taken.body.state).toBe('done');
    // K12: a PIN confirmation grants up to 12 hours of trading
    expect(Date.parse(taken.body.session.expiresAt) - h.clock.now()).toBe(12 * HOUR);
    expect((await claimSession(h.app, login)).body.error.code).toBe('FLOW_EXPIRED');
    const entry = (await h.services.audit.list({ userId: user.id })).find((e) => e.event === 'login.succeeded');
    expect(entry?.data).toMatchObject({ deviceType: 'mobile', confirmedBy: 'pin' });
    expect((await h.services.audit.list({ userId: user.id })).some((e) => e.event === 'login.push_approved')).toBe(true);
  });

  it('K12: a biometric trading session lasts 30 hours and is renewed while the user authenticates on the phone within it', async () => {
    const user = await smsUser(h);
    const base = { userId: user.id, flowId: null, deviceId: null, deviceType: 'mobile', ip: null, userAgent: null, scope: 'full' as const };
    const biometric = await h.services.sessions.create({ ...base, app: 'trading', confirmedBy: 'biometric' });
    const pin = await h.services.sessions.create({ ...base, app: 'trading', confirmedBy: 'pin' });
    expect(biometric.expiresAt - h.clock.now()).toBe(30 * HOUR);
    expect(pin.expiresAt - h.clock.now()).toBe(12 * HOUR);
    h.clock.advance(25 * HOUR);
    // any login confirmed on the phone renews the biometric session for another 30 hours
    await h.services.sessions.create({ ...base, app: 'portal', confirmedBy: 'pin' });
    h.clock.advance(29 * HOUR);
    expect(await h.services.sessions.authenticate(biometric.token)).not.toBeNull();
    expect(await h.services.sessions.authenticate(pin.token)).toBeNull();
    h.clock.advance(2 * HOUR);
    expect(await h.services.sessions.authenticate(biometric.token)).toBeNull();
  });

  it('K2, L3: a wrong PIN gives a wrong proof, counted towards the lock; a signature by another key is refused', async () => {
    const user = await smsUser(h);
    const app = phone();
    const enrolment = await app.activate(user.username);
    const login = await startLogin(h.app, user.username);
    const request = await app.request(user.username);
    const wrongPin = await rejected(app.approve(request, login.body.challenge.number, '99zz'));
    expect([wrongPin.code, wrongPin.body.error.attemptsLeft]).toEqual(['LOGIN_FAILED', 2]);
    expect((await h.services.lockout.status(user.username)).failures).toBe(1);
    // signed with a key that is not the phone's
    const stranger = await generatePhoneKeys();
    const proof = await ocraResponse(enrolment.ocraKey, request.question, APP_PIN);
    const message = answerMessage(request.id, login.body.challenge.number, 'approve', proof);
    const forged = await rejected(
      app.api.answer(request.id, {
        deviceId: enrolment.deviceId,
        token: enrolment.token,
        decision: 'approve',
        number: login.body.challenge.number,
        proof,
        signature: await signAnswer(stranger.signing.privateKey, message),
      }),
    );
    expect([forged.code, forged.body.error.attemptsLeft]).toEqual(['LOGIN_FAILED', 1]);
    // the app token alone opens nothing
    expect(await app.api.poll([{ deviceId: enrolment.deviceId, token: 'not-the-token' }], 0)).toEqual({
      requests: [],
      messages: [],
      revoked: [enrolment.deviceId],
    });
  });

  it('K13: "This wasn\'t me" denies the login, is audited, and the user is told', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const login = await startLogin(h.app, user.username);
    expect(await app.deny(await app.request(user.username))).toEqual({ state: 'denied' });
    expect((await readLogin(h.app, login.body.id)).body.state).toBe('denied');
    expect((await claimSession(h.app, login)).body.error.code).toBe('FLOW_EXPIRED');
    expect((await h.services.audit.list({ userId: user.id })).some((e) => e.event === 'login.push_denied')).toBe(true);
    expect((await h.services.notifier.list({ userId: user.id })).some((n) => n.template === 'pushDenied')).toBe(true);
    expect((await app.poll()).requests).toEqual([]);
    // the web page says so (to the browser that started the login: its claim bound to its CSRF secret, decision 0037)
    const names = cookieNames(h.services.config);
    const page = await h.app.inject({
      method: 'GET',
      url: `/login/${login.body.id}`,
      cookies: { [names.csrf]: 'the-browser-secret', [names.claim]: boundClaim('the-browser-secret', login.body.claimToken as string) },
    });
    expect(page.body).toContain('denied from your phone');
  });

  it("K13: an unanswered push expires after 2 minutes by the server's clock; a late approval fails", async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const login = await startLogin(h.app, user.username);
    const request = await app.request(user.username);
    h.clock.advance(2 * MINUTE);
    expect((await app.poll()).requests).toEqual([]);
    expect((await rejected(app.approve(request, login.body.challenge.number))).code).toBe('FLOW_EXPIRED');
    expect((await readLogin(h.app, login.body.id)).body.state).toBe('expired');
  });

  it('K3: the live connections wake at once: the phone when a login starts, the login page when the phone approves', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const phoneWaits = app.poll(20);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    const login = await startLogin(h.app, user.username);
    const { requests } = await phoneWaits;
    expect(requests.map((r) => r.username)).toEqual([user.username]);
    const pageWaits = fetch(`${base}/api/v1/login/${login.body.id}?wait=20`, { headers: claimOf(login) }).then((r) => r.json() as Promise<{ state: string }>);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await app.approve(requests[0]!, login.body.challenge.number);
    expect((await pageWaits).state).toBe('approved');
    // woken, not timed out (20 s)
    expect(Date.now() - started).toBeLessThan(10 * SECOND);
  });

  it("K3: a waiting claim is the page's live connection and takes the session the moment the phone approves: one request", async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const login = await startLogin(h.app, user.username);
    const request = await app.request(user.username);
    const claimWaits = (claimToken: string) =>
      fetch(`${base}/api/v1/login/${login.body.id}/session?wait=20`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ claimToken }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { state: string; session?: { token: string }; error?: { code: string } } }));
    // the claim token is checked before it waits: a stranger is refused at once, not held
    const stranger = await claimWaits('x'.repeat(43));
    expect([stranger.status, stranger.body.error?.code]).toEqual([404, 'FLOW_NOT_FOUND']);
    const started = Date.now();
    const waiting = claimWaits(login.body.claimToken as string);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await app.approve(request, login.body.challenge.number);
    const taken = await waiting;
    expect(taken.status).toBe(200);
    expect(taken.body.state).toBe('done');
    expect((await get(h.app, '/api/v1/session', bearer(taken.body.session!.token))).status).toBe(200);
    // woken, not timed out (20 s); and once: the page's own claim finds it taken
    expect(Date.now() - started).toBeLessThan(10 * SECOND);
    expect((await claimSession(h.app, login)).body.error.code).toBe('FLOW_EXPIRED');
  });

  it('K3, L4: copies of a waiting claim, all woken by one approval: one session, the others 410', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const login = await startLogin(h.app, user.username);
    const request = await app.request(user.username);
    const waiting = [1, 2, 3].map(() =>
      fetch(`${base}/api/v1/login/${login.body.id}/session?wait=20`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ claimToken: login.body.claimToken }),
      }).then((r) => r.status),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    await app.approve(request, login.body.challenge.number);
    expect((await Promise.all(waiting)).sort()).toEqual([200, 410, 410]);
    const opened = await h.services.store.db
      .selectFrom('sessions')
      .select('id')
      .where('flow_id', '=', login.body.id as string)
      .execute();
    expect(opened).toHaveLength(1);
  });

  it('K3: a waiting claim whose client went away takes nothing: the session is still there for the page', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const login = await startLogin(h.app, user.username);
    const request = await app.request(user.username);
    const gone = new AbortController();
    const abandoned = fetch(`${base}/api/v1/login/${login.body.id}/session?wait=20`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ claimToken: login.body.claimToken }),
      signal: gone.signal,
    }).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 100));
    gone.abort();
    await abandoned;
    await new Promise((resolve) => setTimeout(resolve, 100));
    await app.approve(request, login.body.challenge.number);
    expect((await claimSession(h.app, login)).status).toBe(200);
  });

  it('K3, K13: a waiting claim ends at once with 410 when the phone denies, and 409 FLOW_STATE when still not approved at its end', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const login = await startLogin(h.app, user.username);
    const request = await app.request(user.username);
    const unanswered = await h.app.inject({
      method: 'POST',
      url: `/api/v1/login/${login.body.id}/session?wait=1`,
      payload: { claimToken: login.body.claimToken },
    });
    expect([unanswered.statusCode, unanswered.json().error.code]).toEqual([409, 'FLOW_STATE']);
    const waiting = fetch(`${base}/api/v1/login/${login.body.id}/session?wait=20`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ claimToken: login.body.claimToken }),
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await app.deny(request);
    const denied = await waiting;
    expect([denied.status, ((await denied.json()) as { error: { code: string } }).error.code]).toEqual([410, 'FLOW_EXPIRED']);
  });

  it('K5, L4: concurrent approvals and concurrent claims: one wins', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const login = await startLogin(h.app, user.username);
    const request = await app.request(user.username);
    const answers = await Promise.allSettled([1, 2, 3].map(() => app.approve(request, login.body.challenge.number)));
    expect(answers.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    expect(answers.filter((a) => a.status === 'rejected').map((a) => ((a as PromiseRejectedResult).reason as ApiError).code)).toEqual([
      'FLOW_EXPIRED',
      'FLOW_EXPIRED',
    ]);
    const claims = await Promise.all([1, 2, 3].map(() => claimSession(h.app, login)));
    expect(claims.map((c) => c.status).sort()).toEqual([200, 410, 410]);
  });

  it('K4, K5, K10: "no notification": a challenge typed into the app (offline), its response typed into the login', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const login = await startLogin(h.app, user.username);
    const offline = await postJson(h.app, `/api/v1/login/${login.body.id}/offline`, {}, claimOf(login));
    expect(offline.body).toMatchObject({ state: 'second_factor', challenge: { type: 'ocra', digits: 8 } });
    expect(offline.body.challenge.question).toMatch(/^\d{8}$/);
    // the push request is withdrawn
    expect((await app.poll()).requests).toEqual([]);
    expect((await postJson(h.app, `/api/v1/login/${login.body.id}/offline`, {}, claimOf(login))).body.error.code).toBe('FLOW_STATE');
    const wrong = await answer(h.app, login.body.id, await app.respond(user.username, offline.body.challenge.question, '77qq'));
    expect(wrong.body.error).toMatchObject({ code: 'LOGIN_FAILED', attemptsLeft: 2 });
    expect(wrong.body.error.hints.join(' ')).toContain('PIN');
    const right = await answer(h.app, login.body.id, await app.respond(user.username, offline.body.challenge.question));
    expect(right.status).toBe(200);
    expect(right.body.session.token).toBeTruthy();
  });

  it('K6: several users in one app; each request names its user; device sharing does not apply', async () => {
    const first = await smsUser(h);
    const second = await smsUser(h);
    const app = phone();
    await app.activate(first.username);
    await app.activate(second.username);
    const login = await startLogin(h.app, second.username);
    const { requests } = await app.poll();
    expect(requests.map((r) => r.username)).toEqual([second.username]);
    expect(await app.approve(requests[0]!, login.body.challenge.number)).toEqual({ state: 'approved' });
    // each user has a device of their own
    const [a, b] = [await h.services.devices.listForUser(first.id), await h.services.devices.listForUser(second.id)];
    expect(a.find((d) => d.type === 'mobile')!.id).not.toBe(b.find((d) => d.type === 'mobile')!.id);
  });

  it('K7, K5: migration on the new phone: the token goes to the number first used; the old phone stops working at once', async () => {
    const user = await smsUser(h);
    const oldPhone = phone();
    const old = await oldPhone.activate(user.username);
    const extra = await h.services.phones.add(user.id, newMobile(), 'test', null);
    const newPhone = phone();
    expect((await rejected(newPhone.start(user.username, 'activate'))).code).toBe('MOBILE_ALREADY_ACTIVE');
    const view = await newPhone.start(user.username, 'migrate');
    expect(view.phones.map((p) => p.id)).not.toContain(extra.id);
    expect(view.phones).toHaveLength(1);
    // the old phone's live connection is told at once
    const oldWaits = oldPhone.poll(20);
    h.clock.advance(SECOND);
    await newPhone.api.sendToken(view, { phoneId: view.phones[0]!.id });
    await newPhone.complete(view, await inbox.activationToken(user.username));
    expect((await oldWaits).revoked).toEqual([old.deviceId]);
    expect((await h.services.devices.get(old.deviceId)).state).toBe('revoked');
    const login = await startLogin(h.app, user.username);
    expect((await rejected(oldPhone.approve({ ...(await newPhone.request(user.username)) }, login.body.challenge.number))).code).toBe('APP_TOKEN_INVALID');
    expect(await newPhone.approve(await newPhone.request(user.username), login.body.challenge.number)).toEqual({ state: 'approved' });
  });

  it('K5, D3: a suspended authenticator is paused, not forgotten: the app keeps it and it works again once reactivated', async () => {
    const user = await smsUser(h);
    const app = phone();
    const enrolment = await app.activate(user.username);
    await h.services.devices.setState(enrolment.deviceId, 'suspended', 'test', 'test');
    expect((await app.poll()).revoked).toEqual([]);
    await h.services.devices.setState(enrolment.deviceId, 'active', 'test', 'test');
    const login = await startLogin(h.app, user.username);
    expect(await app.approve(await app.request(user.username), login.body.challenge.number)).toEqual({ state: 'approved' });
  });

  it('K7: a database failure during the live connection is an error, never "this activation no longer works" (which the app takes as final)', async () => {
    const user = await smsUser(h);
    const app = phone();
    const enrolment = await app.activate(user.username);
    const devices = h.services.devices;
    const get = devices.get.bind(devices);
    devices.get = () => Promise.reject(new Error('connection terminated unexpectedly'));
    try {
      await expect(h.services.pushRequests.poll([{ deviceId: enrolment.deviceId, token: enrolment.token }], 0)).rejects.toThrow('connection terminated');
    } finally {
      devices.get = get;
    }
    expect((await app.poll()).revoked).toEqual([]);
  });

  it('K8, X7: recovery proves possession (a token to the number first used) and the recovery PIN, which is kept; a password and a PIN alone never become the phone', async () => {
    const user = await smsUser(h);
    const lost = await phone().activate(user.username, { pin: 'r3cov' });
    const originalNumber = (await h.services.phones.list(user.id))[0]!.id;
    const app = phone();
    const view = await app.start(user.username, 'recover');
    expect(view).toMatchObject({ purpose: 'recover', proof: 'sms', phones: [{ id: originalNumber }] });
    // the review's attack: the password and the (guessed) PIN, without the token
    const guessed = await rejected(app.complete(view, 'r3cov', 'r3cov'));
    expect([guessed.code, guessed.body.error.attemptsLeft]).toEqual(['ACTIVATION_PROOF_FAILED', 2]);
    expect((await h.services.devices.get(lost.deviceId)).state).toBe('active');
    // with the token, a wrong recovery PIN is refused and counted
    inbox.tick();
    await app.api.sendToken(view, { phoneId: originalNumber });
    const token = await inbox.activationToken(user.username);
    const wrongPin = await rejected(app.complete(view, token, 'wr0ng'));
    // the proven token gives the recovery PIN its own 3 answers, each counted towards the lock
    expect([wrongPin.code, wrongPin.body.error.attemptsLeft]).toEqual(['ACTIVATION_PROOF_FAILED', 2]);
    expect(wrongPin.body.error.message).toContain('The recovery PIN is not right');
    expect((await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'mobile.recovery_failed')).toHaveLength(1);
    const recovered = await app.complete(view, token, 'r3cov');
    expect((await h.services.devices.get(lost.deviceId)).state).toBe('revoked');
    expect((await h.services.devices.get(recovered.deviceId)).state).toBe('active');
    // the PIN is the recovery PIN: approvals are confirmed with it
    const login = await startLogin(h.app, user.username);
    expect(await app.approve(await app.request(user.username), login.body.challenge.number)).toEqual({ state: 'approved' });
  });

  it('K8, X7: a user with an active physical device recovers with its answer and the recovery PIN', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const first = phone();
    const view1 = await first.start(user.username);
    await first.complete(view1, cardAnswer(card, (view1.challenge as { question: string }).question), 'r3cov');
    const app = phone();
    const view = await app.start(user.username, 'recover');
    expect(view).toMatchObject({ purpose: 'recover', proof: 'device', challenge: { type: 'ocra' } });
    await app.complete(view, cardAnswer(card, (view.challenge as { question: string }).question), 'r3cov');
    expect(
      (await h.services.devices.listForUser(user.id))
        .filter((d) => d.type === 'mobile')
        .map((d) => d.state)
        .sort(),
    ).toEqual(['active', 'revoked']);
  });

  it('K8, N1: wrong recovery PINs are counted on the authenticator (a login does not reset them), each told to the user; then recovery is blocked and Migrate remains', async () => {
    const user = await smsUser(h);
    const owner = phone();
    await owner.activate(user.username, { pin: 'r3cov' });
    const max = h.services.config.policy.mobileRecoveryMaxFailures;
    const thief = phone();
    for (let failures = 1; failures <= max; failures++) {
      // a thief holding the SIM: the token arrives, the PIN is guessed (an hour apart: the number's send limits)
      h.clock.advance(HOUR);
      const { view, token } = await thief.tokenSent(user.username, 'recover');
      expect((await rejected(thief.complete(view, token, `n0t${failures}`))).code).toBe('ACTIVATION_PROOF_FAILED');
      // the owner logs in meanwhile: the lock's count starts again, the recovery count does not
      const login = await startLogin(h.app, user.username);
      await owner.approve(await owner.request(user.username), login.body.challenge.number);
      expect((await claimSession(h.app, login)).status).toBe(200);
    }
    const notices = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'mobileRecoveryFailed');
    expect(notices.length).toBeGreaterThanOrEqual(max);
    const blocked = await rejected(thief.start(user.username, 'recover'));
    expect([blocked.status, blocked.code]).toEqual([403, 'RECOVERY_BLOCKED']);
    const audited = await h.services.audit.list({ userId: user.id });
    expect(audited.filter((e) => e.event === 'mobile.recovery_failed')).toHaveLength(max);
    // the refused start is a security event too
    const refused = audited.filter((e) => e.event === 'mobile.recovery_refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.data).toMatchObject({ flowId: null, code: 'RECOVERY_BLOCKED' });
    // the owner's phone still works, and Migrate (an SMS token to the number first used) still moves it
    const moved = phone();
    const view = await moved.start(user.username, 'migrate');
    expect(view.proof).toBe('sms');
  });

  /** The challenge's question of an activation proven with a DSC+ (proof `device`). */
  const question = (view: { challenge: unknown }) => (view.challenge as { question: string }).question;

  /**
   * A user with a DSC+ and the mobile authenticator (recovery PIN `r3cov`):
   * a recovery is proven with the DSC+'s answer, without the SMS send limits.
   */
  async function cardAndMobileUser() {
    const { user, card } = await createUserWithCard(h.services);
    const owner = phone();
    const first = await owner.start(user.username);
    const mobile = await owner.complete(first, cardAnswer(card, question(first)), 'r3cov');
    /** A recovery on a phone of its own, its possession proven: the recovery PIN comes next. */
    const provenRecovery = async () => {
      const app = phone();
      const view = await app.start(user.username, 'recover');
      expect(view.proof).toBe('device');
      return { app, view: await app.prove(view, cardAnswer(card, question(view))) };
    };
    /** The wrong recovery PINs counted on an authenticator (K8). */
    const recoveryFailures = async (deviceId: string) => ((await h.services.devices.get(deviceId)).params as unknown as MobileParams).recoveryFailures ?? 0;
    const recoveryFailedEntries = async () => (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'mobile.recovery_failed');
    return { user, mobile, provenRecovery, recoveryFailures, recoveryFailedEntries };
  }

  it('K8: concurrent wrong recovery PINs count exactly: no more than mobileRecoveryMaxFailures guesses', async () => {
    const { user, mobile, provenRecovery, recoveryFailures, recoveryFailedEntries } = await cardAndMobileUser();
    const max = h.services.config.policy.mobileRecoveryMaxFailures;
    // more proven recoveries than wrong PINs allowed (each with 3 answers for the PIN), then a guess on each, all at once
    const thieves: Awaited<ReturnType<typeof provenRecovery>>[] = [];
    for (let i = 0; i < max + 3; i++) thieves.push(await provenRecovery());
    // what each phone sends is made first (keys, signature), so that the requests reach the server together
    const bodies = await Promise.all(
      thieves.map(async ({ app, view }, i) => {
        const keys = await app.keysFor(view.id);
        return { pin: `n0t${i}`, ...(await publicKeys(keys)), signature: await signAnswer(keys.signing.privateKey, activationMessage(view.id)) };
      }),
    );
    // the guesses overlap on the server: each waits, once it has the authenticator, until all have it (or a while has
    // passed), as across a database's round trips; SQLite in this process answers within one turn of the event loop,
    // so that without this each request would be done before the next is read
    const devices = h.services.devices;
    const context = devices.context.bind(devices);
    let waiting = 0;
    devices.context = async (device) => {
      waiting += 1;
      for (let i = 0; i < 100 && waiting < thieves.length; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      return context(device);
    };
    let refusals: ApiError[];
    try {
      refusals = await Promise.all(thieves.map(({ app, view }, i) => rejected(app.api.completeActivation(view, bodies[i]!))));
    } finally {
      devices.context = context;
    }
    // each guess took one of the max before it was compared: max are counted wrong, the others are refused unchecked
    const counted = refusals.filter((e) => e.code === 'ACTIVATION_PROOF_FAILED');
    const blocked = refusals.filter((e) => e.code === 'RECOVERY_BLOCKED');
    expect([counted.length, blocked.length]).toEqual([max, 3]);
    expect(counted.map((e) => [e.status, e.message])).toEqual(Array(max).fill([401, expect.stringContaining('The recovery PIN is not right')]));
    expect(blocked.map((e) => e.status)).toEqual([403, 403, 403]);
    expect(await recoveryFailures(mobile.deviceId)).toBe(max);
    const entries = await recoveryFailedEntries();
    expect(entries.map((e) => e.data.failures as number).sort((a, b) => a - b)).toEqual(Array.from({ length: max }, (_, i) => i + 1));
    expect(entries.filter((e) => e.data.blocked)).toHaveLength(1);
    expect((await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'mobileRecoveryFailed')).toHaveLength(max);
    // blocked: a refused recovery is not finished with the right PIN either, and none starts (Migrate remains)
    const late = thieves[refusals.indexOf(blocked[0]!)]!;
    expect((await rejected(late.app.finish(late.view, 'r3cov'))).code).toBe('RECOVERY_BLOCKED');
    expect((await rejected(phone().start(user.username, 'recover'))).code).toBe('RECOVERY_BLOCKED');
    // every refusal is audited: the 3 guesses refused unchecked, the late right PIN, the new start
    const refused = (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'mobile.recovery_refused');
    expect(refused.map((e) => e.data.flowId === null)).toEqual(expect.arrayContaining([true, false, false, false, false]));
    expect(refused).toHaveLength(5);
    expect((await h.services.devices.get(mobile.deviceId)).state).toBe('active');
    expect(await recoveryFailures(mobile.deviceId)).toBe(max);
  });

  it('K8: a right recovery PIN is no wrong guess: after mobileRecoveryMaxFailures − 1 wrong ones, one at a time, it recovers and only the wrong ones were counted', async () => {
    const { mobile, provenRecovery, recoveryFailures, recoveryFailedEntries } = await cardAndMobileUser();
    const max = h.services.config.policy.mobileRecoveryMaxFailures;
    for (let failures = 1; failures < max; failures++) {
      const { app, view } = await provenRecovery();
      const wrong = await rejected(app.finish(view, `n0t${failures}`));
      expect([wrong.status, wrong.code, wrong.body.error.attemptsLeft]).toEqual([401, 'ACTIVATION_PROOF_FAILED', 2]);
      expect(wrong.message).toContain('The recovery PIN is not right');
      expect(await recoveryFailures(mobile.deviceId)).toBe(failures);
    }
    // as before: each audited with the count it reached, none blocked yet
    const entries = await recoveryFailedEntries();
    expect(entries.map((e) => e.data.failures as number).sort((a, b) => a - b)).toEqual(Array.from({ length: max - 1 }, (_, i) => i + 1));
    expect(entries.map((e) => e.data.blocked)).toEqual(Array(max - 1).fill(false));
    const { app, view } = await provenRecovery();
    const recovered = await app.finish(view, 'r3cov');
    expect((await h.services.devices.get(mobile.deviceId)).state).toBe('revoked');
    expect((await h.services.devices.get(recovered.deviceId)).state).toBe('active');
    // the right PIN gave back the guess it took: the old authenticator counts the wrong ones only, the new one none
    expect(await recoveryFailures(mobile.deviceId)).toBe(max - 1);
    expect(await recoveryFailures(recovered.deviceId)).toBe(0);
    expect(await recoveryFailedEntries()).toHaveLength(max - 1);
  });

  it('K14, A5: a one-time password from client services goes to the app, sealed to the phone; staff never see it', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const staff = await createUser(h.services, { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(staff.id, user.username, { method: 'callback_on_record', notes: 'test' });
    const reset = await h.services.helpDesk.resetPassword(staff.id, user.username, { verificationId: verification.id });
    expect(reset).toEqual({ temporaryPassword: null, deliveredTo: 'app' });
    const { messages } = await app.poll();
    expect(messages).toHaveLength(1);
    const password = await app.open(user.username, messages[0]!.sealed);
    expect(password).toMatch(/^[A-Z0-9]{12}$/);
    const stored = await h.services.store.db.selectFrom('app_messages').select('sealed').executeTakeFirstOrThrow();
    expect(stored.sealed).not.toContain(password);
    expect((await startLogin(h.app, user.username, password)).status).toBe(200);
    const e = app.enrolments.get(user.username)!;
    await app.api.acknowledge(messages[0]!.id, { deviceId: e.deviceId, token: e.token });
    expect((await app.poll()).messages).toEqual([]);
    // one never fetched is deleted when it expires, a day later
    await h.services.helpDesk.resetPassword(staff.id, user.username, { verificationId: verification.id });
    expect((await app.poll()).messages).toHaveLength(1);
    h.clock.advance(24 * HOUR);
    await h.services.scheduler.runDue();
    expect(await h.services.store.db.selectFrom('app_messages').select('id').where('device_id', '=', e.deviceId).execute()).toEqual([]);
  });

  it("K14, A5, X3: a message is acknowledged by its own phone only: another phone's authenticator (its own token) acknowledging it, an unknown id or one already acknowledged get 404 NOT_FOUND, alike, and nothing is deleted", async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const stranger = await smsUser(h);
    const other = phone();
    await other.activate(stranger.username);
    const staff = await createUser(h.services, { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(staff.id, user.username, { method: 'callback_on_record', notes: 'test' });
    await h.services.helpDesk.resetPassword(staff.id, user.username, { verificationId: verification.id });
    const [message] = (await app.poll()).messages;
    const mine = app.enrolments.get(user.username)!;
    const theirs = other.enrolments.get(stranger.username)!;
    const refusal = async (id: string, by: { deviceId: string; token: string }) => {
      const error = await rejected(other.api.acknowledge(id, by));
      return [error.status, error.body.error.code];
    };
    expect(await refusal(message!.id, { deviceId: theirs.deviceId, token: theirs.token })).toEqual([404, 'NOT_FOUND']);
    expect(await refusal(`msg_${'c'.repeat(26)}`, { deviceId: theirs.deviceId, token: theirs.token })).toEqual([404, 'NOT_FOUND']);
    expect((await app.poll()).messages.map((m) => m.id)).toEqual([message!.id]);
    await app.api.acknowledge(message!.id, { deviceId: mine.deviceId, token: mine.token });
    expect((await app.poll()).messages).toEqual([]);
    expect(await refusal(message!.id, { deviceId: mine.deviceId, token: mine.token })).toEqual([404, 'NOT_FOUND']);
  });

  it('K3, K4, K13, X2: the login page shows the number and works without JavaScript: Continue after approval, or the offline challenge', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    for (const lang of ['en', 'fr', 'zh-Hant'] as const) {
      const agent = new Agent(h.app);
      const login = await agent.get(`/login?lang=${lang}`);
      const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
      const page = await agent.get(started.location!);
      const number = textById(page.html, 'push-number')!;
      expect(number).toMatch(/^[1-9]\d$/);
      expect(byId(page.html, 'push-offline')).toBeDefined();
      expect(page.html).toContain('<script type="module" src="/static/push-wait.js"></script>');
      expect(hasForm(page.html, `${started.location!}`)).toBe(false);
      if (lang === 'fr') expect(text(page.html)).toContain('Cliquez ici si vous ne recevez pas la notification');
      if (lang === 'zh-Hant') {
        // K4: offline: the challenge to type into the app, its response typed here
        const offline = await agent.submit(page, `${started.location!}/offline`, {});
        const challenge = await agent.get(offline.location!);
        const question = textById(challenge.html, 'challenge-code')!;
        expect(question).toMatch(/^\d{8}$/);
        const done = await agent.submit(challenge, started.location!, { response: await app.respond(user.username, question) });
        expect(done.location).toBe('/account');
        continue;
      }
      await app.approve(await app.request(user.username), number);
      const approved = await agent.get(started.location!);
      expect(byId(approved.html, 'push-approved')).toBeDefined();
      // another browser that learnt the login's address sees nothing of it (L8: the start page) and cannot take its session (K3)
      const other = new Agent(h.app);
      const seen = await other.get(started.location!);
      expect(hasForm(seen.html, `${started.location!}/session`)).toBe(false);
      const refused = await other.post(`${started.location!}/session`, { _csrf: csrfOf(form(seen.html, '/login')) });
      // as for a login that does not exist (L8: no oracle)
      expect(refused.status).toBe(404);
      expect(hasForm(refused.html, `${started.location!}/session`)).toBe(false);
      expect(await other.get('/account')).toMatchObject({ status: 303 });
      const done = await agent.submit(approved, `${started.location!}/session`, {});
      expect(done.location).toBe('/account');
      const account = await agent.get('/account');
      expect(account.status).toBe(200);
      // K1 (issue 16): the account page no longer asks a user with an active authenticator to activate it
      expect(byId(account.html, 'authenticator-hint')?.attrs['data-active']).toBe('true');
    }
  });

  /** A login approved on the phone: the session's bearer headers. */
  async function signedInWithPhone(app: TestPhone, user: User): Promise<Record<string, string>> {
    const login = await startLogin(h.app, user.username);
    await app.approve(await app.request(user.username), login.body.challenge.number);
    const taken = await claimSession(h.app, login);
    return bearer(taken.body.session.token);
  }

  it('V1, K11: a portal task asks to verify again: a push to the phone, approved, taken; the session records when', async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const auth = await signedInWithPhone(app, user);
    expect((await get(h.app, '/api/v1/session', auth)).body.verifiedAt).toBeNull();
    // V1: the password again first; a session alone does not start a step-up
    const noPassword = await postJson(h.app, '/api/v1/step-up', {}, auth);
    expect([noPassword.status, noPassword.body.error.code]).toEqual([400, 'VALIDATION_ERROR']);
    const wrongPassword = await postJson(h.app, '/api/v1/step-up', { password: 'not the password' }, auth);
    expect([wrongPassword.status, wrongPassword.body.error.code]).toEqual([401, 'INVALID_CREDENTIALS']);
    expect((await app.poll()).requests).toEqual([]);
    const started = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, auth);
    expect(started.body).toMatchObject({ state: 'second_factor', challenge: { type: 'push' } });
    const request = await app.request(user.username);
    // K13: the phone shows where the request comes from
    expect(request).toMatchObject({ kind: 'step_up', username: user.username, ip: '127.0.0.1' });
    expect((await postJson(h.app, `/api/v1/step-up/${started.body.id}/complete`, {}, auth)).body.error.code).toBe('FLOW_STATE');
    await app.approve(request, started.body.challenge.number);
    expect((await get(h.app, `/api/v1/step-up/${started.body.id}?wait=5`, auth)).body.state).toBe('approved');
    const done = await postJson(h.app, `/api/v1/step-up/${started.body.id}/complete`, {}, auth);
    expect(done.body.state).toBe('done');
    tookNewToken(auth, done);
    expect((await get(h.app, '/api/v1/session', auth)).body.verifiedAt).toBe(new Date(h.clock.now()).toISOString());
    expect((await postJson(h.app, `/api/v1/step-up/${started.body.id}/complete`, {}, auth)).body.error.code).toBe('FLOW_EXPIRED');
    // another session cannot see it
    const other = await signedInWithPhone(app, user);
    expect((await get(h.app, `/api/v1/step-up/${started.body.id}`, other)).status).toBe(404);
    expect((await h.services.audit.list({ userId: user.id })).map((e) => e.event)).toEqual(expect.arrayContaining(['stepup.started', 'stepup.verified']));
  });

  it("V1, K4: a step-up answered offline with the app's response; a DSC+ answers its challenge", async () => {
    const user = await smsUser(h);
    const app = phone();
    await app.activate(user.username);
    const auth = await signedInWithPhone(app, user);
    const started = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, auth);
    // typing while the phone is asked takes none of the answers, and counts no failure (L3)
    expect((await postJson(h.app, `/api/v1/step-up/${started.body.id}`, { response: '12345678' }, auth)).body.error.code).toBe('FLOW_STATE');
    expect((await get(h.app, `/api/v1/step-up/${started.body.id}`, auth)).body.attemptsLeft).toBe(3);
    expect((await h.services.audit.list({ userId: user.id })).some((e) => e.event === 'device.proof_failed')).toBe(false);
    const offline = await postJson(h.app, `/api/v1/step-up/${started.body.id}/offline`, {}, auth);
    expect(offline.body.challenge).toMatchObject({ type: 'ocra', digits: 8 });
    expect((await app.poll()).requests).toEqual([]);
    // another session of the same user can neither answer it nor use up its answers
    const other = await signedInWithPhone(app, user);
    const foreign = await postJson(h.app, `/api/v1/step-up/${started.body.id}`, { response: '12345678' }, other);
    expect([foreign.status, foreign.body.error.code]).toEqual([404, 'FLOW_NOT_FOUND']);
    expect((await get(h.app, `/api/v1/step-up/${started.body.id}`, auth)).body.attemptsLeft).toBe(3);
    const done = await postJson(
      h.app,
      `/api/v1/step-up/${started.body.id}`,
      { response: await app.respond(user.username, offline.body.challenge.question) },
      auth,
    );
    expect(done.body.state).toBe('done');
    tookNewToken(auth, done);

    const { user: cardUser, card } = await createUserWithCard(h.services);
    const login = await startLogin(h.app, cardUser.username);
    const cardAuth = bearer((await answer(h.app, login.body.id, cardAnswer(card, login.body.challenge.question))).body.session.token);
    const cardStep = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, cardAuth);
    expect(cardStep.body.challenge.type).toBe('ocra');
    const verified = await postJson(h.app, `/api/v1/step-up/${cardStep.body.id}`, { response: cardAnswer(card, cardStep.body.challenge.question) }, cardAuth);
    expect(verified.body.state).toBe('done');
    tookNewToken(cardAuth, verified);
  });

  it("X3: bad input to the app's endpoints gets a clear 4xx", async () => {
    const user = await smsUser(h);
    const app = phone();
    const view = await app.start(user.username);
    const bad = await postJson(
      h.app,
      `/api/v1/mobile/activations/${view.id}/proof`,
      {
        response: '123456',
        signingKey: { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' },
        agreementKey: { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' },
      },
      { 'x-claim-token': view.claimToken },
    );
    expect([bad.status, bad.body.error.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect(
      (await postJson(h.app, '/api/v1/mobile/activations/flw_nope/complete', { pin: 'ab12', signingKey: {}, agreementKey: {}, signature: '' })).status,
    ).toBe(400);
    expect((await postJson(h.app, '/api/v1/mobile/activations', { username: user.username, password: PASSWORD, purpose: 'steal' })).status).toBe(400);
    // a long poll's wait: whole seconds in decimal digits, at most 25
    const login = await startLogin(h.app, (await createUserWithCard(h.services)).user.username);
    for (const wait of ['0x10', '1e1', '26', '-1', '2.5', '']) {
      const refused = await get(h.app, `/api/v1/login/${login.body.id}?wait=${wait}`);
      expect([wait, refused.status, refused.body.error.code]).toEqual([wait, 400, 'VALIDATION_ERROR']);
    }
    expect((await get(h.app, `/api/v1/login/${login.body.id}?wait=0`, claimOf(login))).status).toBe(200);
    // a card's login does not wait for the phone: a long poll on it is answered at once, not held
    expect((await get(h.app, `/api/v1/login/${login.body.id}?wait=25`, claimOf(login))).body).toMatchObject({
      state: 'second_factor',
      challenge: { type: 'ocra' },
    });
    const unknown = await postJson(h.app, '/api/v1/mobile/requests/flw_aaaaaaaaaaaaaaaaaaaaaaaaaa', {
      deviceId: 'dev_x',
      token: 'x',
      decision: 'approve',
      number: '42',
      proof: '',
      signature: 'x',
    });
    expect([unknown.status, unknown.body.error.code]).toEqual([401, 'APP_TOKEN_INVALID']);
    const poll = await postJson(h.app, '/api/v1/mobile/requests', { devices: [{ deviceId: 'dev_x', token: 'nope' }], wait: 0 });
    expect(poll.body).toEqual({ requests: [], messages: [], revoked: ['dev_x'] });
    expect((await postJson(h.app, '/api/v1/mobile/requests', { devices: [], wait: 99 })).status).toBe(400);
  });
});
