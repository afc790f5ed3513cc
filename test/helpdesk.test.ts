/**
 * The help desk and temporary access (T1–T5, L3 unlock, D3, D4, N1, A5):
 * client services verify a caller and issue a temporary passcode; its access
 * windows move with the clock; the card comes back and is reactivated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY, MINUTE } from '../src/clock.js';
import { PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, postJson, startLogin, stepUp } from './support/api.js';
import { stepUpStaff } from './support/staff.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';

let h: Harness;
/**
 * Staff log in with their own two factors, and step up to act (V1, X7);
 * sessions idle out and step-ups go stale when the tests move the clock, so
 * each call logs in afresh.
 */
interface Staff {
  user: User;
  card: CardFile;
  readonly token: Promise<string>;
}
let agent: Staff;
let compliance: Staff;

async function loginWithCard(user: User, card: CardFile, app: 'portal' | 'trading' = 'portal'): Promise<string> {
  const start = await startLogin(h.app, user.username, PASSWORD, app);
  expect(start.status).toBe(200);
  const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
  expect(done.status).toBe(200);
  return done.body.session.token as string;
}

async function staff(role: 'client_services' | 'compliance'): Promise<Staff> {
  const { user, card } = await createUserWithCard(h.services, '1234', { role });
  return {
    user,
    card,
    get token() {
      // V1 (decision 0042): the step-up replaced the session's token
      return loginWithCard(user, card).then((token) => stepUpStaff(h.app, token, card));
    },
  };
}

async function verify(username: string) {
  const res = await postJson(
    h.app,
    `/api/v1/helpdesk/users/${username}/verifications`,
    { method: 'security_questions', notes: 'date of birth and last deposit' },
    bearer(await agent.token),
  );
  expect(res.status).toBe(200);
  return res.body.id as string;
}

async function issuePasscode(username: string, extra: Record<string, string> = {}) {
  const verificationId = await verify(username);
  const res = await postJson(h.app, `/api/v1/helpdesk/users/${username}/temporary-passcode`, { verificationId, ...extra }, bearer(await agent.token));
  expect(res.status).toBe(200);
  return res.body as { passcode: string; deviceId: string; fullAccessUntil: string; expiresAt: string };
}

/** A login with the temporary passcode: the status of the start, or of the answer. */
async function loginWithPasscode(username: string, passcode: string, app: 'portal' | 'trading') {
  const start = await startLogin(h.app, username, PASSWORD, app);
  if (start.status !== 200) return start;
  expect(start.body.challenge).toEqual({ type: 'passcode' });
  return answer(h.app, start.body.id, passcode);
}

beforeAll(async () => {
  h = await startHarness('sqlite');
  agent = await staff('client_services');
  compliance = await staff('compliance');
});
afterAll(async () => {
  await h.close();
});

describe('roles at the help desk', () => {
  it('T1: a client cannot use the help desk; compliance may look but not act', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const clientToken = await loginWithCard(user, card);
    const asClient = await get(h.app, `/api/v1/helpdesk/users?q=${user.username}`, bearer(clientToken));
    expect(asClient.status).toBe(403);
    expect(asClient.body.error.code).toBe('FORBIDDEN_ROLE');
    const look = await get(h.app, `/api/v1/helpdesk/users/${user.username}`, bearer(await compliance.token));
    expect(look.status).toBe(200);
    expect(look.body.devices).toMatchObject([{ type: 'dscplus', state: 'active' }]);
    const act = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/verifications`, { method: 'id_document' }, bearer(await compliance.token));
    expect(act.status).toBe(403);
    expect((await get(h.app, `/api/v1/helpdesk/users?q=${user.username}`)).status).toBe(401);
  });

  it('T1: staff find users by username prefix or account number', async () => {
    const { user } = await createUserWithCard(h.services);
    const byName = await get(h.app, `/api/v1/helpdesk/users?q=${user.username.slice(0, -2)}`, bearer(await agent.token));
    expect(byName.body.users.map((u: { username: string }) => u.username)).toContain(user.username);
    const byAccount = await get(h.app, `/api/v1/helpdesk/users?q=${user.accountNumber}`, bearer(await agent.token));
    expect(byAccount.body.users).toEqual([expect.objectContaining({ username: user.username, account: user.accountNumber })]);
  });
});

describe('temporary passcode (T1-T5)', () => {
  it('T1: a passcode needs a recorded, recent identity verification of that caller', async () => {
    const { user } = await createUserWithCard(h.services);
    const { user: other } = await createUserWithCard(h.services);
    const path = `/api/v1/helpdesk/users/${user.username}/temporary-passcode`;
    const none = await postJson(h.app, path, { verificationId: 'ver_nope' }, bearer(await agent.token));
    expect(none.body.error.code).toBe('VERIFICATION_NOT_FOUND');
    const ofOther = await postJson(h.app, path, { verificationId: await verify(other.username) }, bearer(await agent.token));
    expect(ofOther.body.error.code).toBe('VERIFICATION_NOT_FOUND');
    const verificationId = await verify(user.username);
    h.clock.advance(31 * MINUTE);
    const stale = await postJson(h.app, path, { verificationId }, bearer(await agent.token));
    expect(stale.status).toBe(403);
    expect(stale.body.error.code).toBe('IDENTITY_NOT_VERIFIED');
    const badMethod = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/verifications`, { method: 'guessing' }, bearer(await agent.token));
    expect(badMethod.status).toBe(400);
  });

  it('T2/T5: static, upper-case alphanumeric, shown once, stored only as a hash, audited with the staff id', async () => {
    const { user } = await createUserWithCard(h.services);
    const issued = await issuePasscode(user.username);
    expect(issued.passcode).toMatch(/^[A-Z2-9]{8}$/);
    const rows = await h.services.store.db.selectFrom('devices').selectAll().where('id', '=', issued.deviceId).execute();
    expect(JSON.stringify(rows)).not.toContain(issued.passcode);
    const audit = await h.services.audit.list({ username: user.username });
    expect(JSON.stringify(audit)).not.toContain(issued.passcode);
    expect(audit.find((e) => e.event === 'helpdesk.temp_passcode_issued')).toMatchObject({ actor: `staff:${agent.user.id}` });
    expect(audit.find((e) => e.event === 'helpdesk.identity_verified')).toMatchObject({
      actor: `staff:${agent.user.id}`,
      data: { method: 'security_questions' },
    });
  });

  it('T3: full access to portal and trading for 2 days, then portal only (online card pages) until day 12, then nothing', async () => {
    const { user } = await createUserWithCard(h.services);
    const { passcode } = await issuePasscode(user.username);

    const portal = await loginWithPasscode(user.username, passcode, 'portal');
    expect(portal.status).toBe(200);
    expect((await get(h.app, '/api/v1/session', bearer(portal.body.session.token))).body.scope).toBe('full');
    expect((await loginWithPasscode(user.username, passcode, 'trading')).status).toBe(200);

    h.clock.advance(2 * DAY);
    const trading = await loginWithPasscode(user.username, passcode, 'trading');
    expect(trading.status).toBe(403);
    expect(trading.body.error.code).toBe('TEMP_PASSCODE_PORTAL_ONLY');
    expect(trading.body.error.message).toMatch(/online security card/);
    const limited = await loginWithPasscode(user.username, passcode, 'portal');
    expect(limited.status).toBe(200);
    expect((await get(h.app, '/api/v1/session', bearer(limited.body.session.token))).body.scope).toBe('online_card_only');

    h.clock.advance(10 * DAY - MINUTE);
    expect((await loginWithPasscode(user.username, passcode, 'portal')).status).toBe(200);
    h.clock.advance(MINUTE);
    const expired = await loginWithPasscode(user.username, passcode, 'portal');
    expect(expired.status).toBe(403);
    expect(expired.body.error.code).toBe('TEMP_PASSCODE_EXPIRED');
  });

  it('T2/L5: the passcode is case sensitive; a wrong one gets the upper-case hint', async () => {
    const { user } = await createUserWithCard(h.services);
    const { passcode } = await issuePasscode(user.username);
    const res = await loginWithPasscode(user.username, passcode.toLowerCase(), 'portal');
    expect(res.status).toBe(401);
    expect(res.body.error.hints).toEqual(['Temporary passcodes are case sensitive and must be typed in upper case.']);
  });

  it('T5/D3: one passcode per user: a new one revokes the old; the card is suspended meanwhile', async () => {
    const { user } = await createUserWithCard(h.services);
    const first = await issuePasscode(user.username);
    const second = await issuePasscode(user.username);
    expect((await loginWithPasscode(user.username, first.passcode, 'portal')).status).toBe(401);
    expect((await loginWithPasscode(user.username, second.passcode, 'portal')).status).toBe(200);
    const devices = await h.services.devices.listForUser(user.id);
    expect(devices.map((d) => [d.type, d.state])).toEqual([
      ['dscplus', 'suspended'],
      ['temp_passcode', 'revoked'],
      ['temp_passcode', 'active'],
    ]);
    // the suspended card is not offered, so its response cannot log in
    const start = await startLogin(h.app, user.username);
    expect(start.body.devices.map((d: { type: string }) => d.type)).toEqual(['temp_passcode']);
  });

  it('D3: a card first thought at home and then reported lost becomes lost with the next passcode', async () => {
    const { user } = await createUserWithCard(h.services);
    await issuePasscode(user.username);
    expect((await h.services.devices.listForUser(user.id))[0]!.state).toBe('suspended');
    await issuePasscode(user.username, { deviceStatus: 'lost' });
    expect((await h.services.devices.listForUser(user.id))[0]!.state).toBe('lost');
  });

  it('T1: a lost card is marked lost; staff can revoke the passcode', async () => {
    const { user } = await createUserWithCard(h.services);
    await issuePasscode(user.username, { deviceStatus: 'lost' });
    expect((await h.services.devices.listForUser(user.id))[0]!.state).toBe('lost');
    const revoked = await h.app.inject({
      method: 'DELETE',
      url: `/api/v1/helpdesk/users/${user.username}/temporary-passcode`,
      headers: bearer(await agent.token),
    });
    expect(revoked.json()).toEqual({ revoked: 1 });
    const after = await startLogin(h.app, user.username);
    expect(after.status).toBe(403);
    expect(after.body.error.code).toBe('NO_ACTIVE_DEVICE');
  });
});

describe('back with the card (D4)', () => {
  it('D4: reactivating the card with a response makes the temporary passcode inoperable at once', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const { passcode } = await issuePasscode(user.username);
    const portal = await loginWithPasscode(user.username, passcode, 'portal');
    const token = portal.body.session.token as string;
    const [dsc] = (await get(h.app, '/api/v1/devices', bearer(token))).body.devices;
    expect(dsc).toMatchObject({ type: 'dscplus', state: 'suspended' });

    const begin = await postJson(h.app, `/api/v1/devices/${dsc.id}/activation`, {}, bearer(token));
    expect(begin.status).toBe(200);
    expect(begin.body.challenge).toMatchObject({ type: 'ocra' });
    const wrong = await postJson(h.app, `/api/v1/devices/${dsc.id}/activation/${begin.body.id}`, { response: '00000000' }, bearer(token));
    expect(wrong.status).toBe(401);
    const done = await postJson(
      h.app,
      `/api/v1/devices/${dsc.id}/activation/${begin.body.id}`,
      { response: cardAnswer(card, begin.body.challenge.question) },
      bearer(token),
    );
    expect(done.status).toBe(200);
    expect(done.body.state).toBe('active');

    const again = await startLogin(h.app, user.username);
    expect(again.body.devices.map((d: { type: string }) => d.type)).toEqual(['dscplus']);
    expect((await h.services.devices.listForUser(user.id)).find((d) => d.type === 'temp_passcode')!.state).toBe('revoked');
    const events = (await h.services.audit.list({ username: user.username })).map((e) => e.event);
    expect(events).toContain('device.reactivated');
  });

  it('D4: only the owner can reactivate, and only a suspended device', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const { user: other } = await createUserWithCard(h.services);
    const token = await loginWithCard(user, card);
    const [own] = await h.services.devices.listForUser(user.id);
    const [theirs] = await h.services.devices.listForUser(other.id);
    expect((await postJson(h.app, `/api/v1/devices/${theirs!.id}/activation`, {}, bearer(token))).status).toBe(404);
    const active = await postJson(h.app, `/api/v1/devices/${own!.id}/activation`, {}, bearer(token));
    expect(active.status).toBe(409);
    expect(active.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
  });
});

describe('a forgotten password (A5, A4)', () => {
  it('A5: client services set a one-time password for a verified caller; the user must choose a new one', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const path = `/api/v1/helpdesk/users/${user.username}/password-reset`;
    expect((await postJson(h.app, path, { verificationId: 'ver_none' }, bearer(await agent.token))).status).toBe(404);
    const reset = await postJson(h.app, path, { verificationId: await verify(user.username) }, bearer(await agent.token));
    expect(reset.status).toBe(200);
    const temporary = reset.body.temporaryPassword as string;
    expect(temporary).toMatch(/^[A-Z2-9]{12}$/);
    expect((await startLogin(h.app, user.username, PASSWORD)).status).toBe(401);

    const start = await startLogin(h.app, user.username, temporary);
    let token = (await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token as string;
    expect((await get(h.app, '/api/v1/session', bearer(token))).body.passwordChangeRequired).toBe(true);
    const page = await h.app.inject({ method: 'GET', url: '/account', headers: { cookie: `__Host-sls_session=${token}` } });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/password');

    // X7: the password changes after a step-up (the one-time password, then the card)
    expect((await postJson(h.app, '/api/v1/password', { currentPassword: temporary, newPassword: 'a brand new phrase' }, bearer(token))).body.error.code).toBe(
      'STEP_UP_REQUIRED',
    );
    // V1 (decision 0042): the step-up replaced the session's token
    token = (await stepUp(h.app, bearer(token), (challenge) => cardAnswer(card, challenge.question), temporary)).body.session.token as string;
    expect((await postJson(h.app, '/api/v1/password', { currentPassword: 'wrong one', newPassword: 'a brand new phrase' }, bearer(token))).status).toBe(401);
    const weak = await postJson(h.app, '/api/v1/password', { currentPassword: temporary, newPassword: 'password' }, bearer(token));
    expect(weak.body.error.code).toBe('WEAK_PASSWORD');
    expect((await postJson(h.app, '/api/v1/password', { currentPassword: temporary, newPassword: 'a brand new phrase' }, bearer(token))).status).toBe(204);
    expect((await get(h.app, '/api/v1/session', bearer(token))).body.passwordChangeRequired).toBe(false);
    expect((await startLogin(h.app, user.username, 'a brand new phrase')).status).toBe(200);

    const events = await h.services.audit.list({ username: user.username });
    expect(events.filter((e) => e.event === 'user.password_changed').map((e) => e.data.oneTime)).toEqual([false, true]);
    expect(events.find((e) => e.data.oneTime === true)!.actor).toBe(`staff:${agent.user.id}`);
    expect(JSON.stringify(events)).not.toContain(temporary);
    const notices = (await h.services.notifier.list({ userId: user.id })).map((n) => n.template);
    expect(notices).toEqual(expect.arrayContaining(['passwordReset', 'passwordChanged']));
  });
});

describe('unlock (L3, A5) and notices (N1)', () => {
  it('L3: client services lift a lock after verifying the caller; the user hears of the lock and the unlock', async () => {
    const { user, card } = await createUserWithCard(h.services);
    for (let i = 0; i < 10; i++) await startLogin(h.app, user.username, 'wrong');
    expect((await startLogin(h.app, user.username)).status).toBe(423);
    const without = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/unlock`, { verificationId: 'ver_x' }, bearer(await agent.token));
    expect(without.status).toBe(404);
    const unlocked = await postJson(
      h.app,
      `/api/v1/helpdesk/users/${user.username}/unlock`,
      { verificationId: await verify(user.username) },
      bearer(await agent.token),
    );
    expect(unlocked.body).toEqual({ locked: false });
    expect(await loginWithCard(user, card)).toBeTruthy();
    await h.services.outbox.drain();
    const notices = await h.services.notifier.list({ userId: user.id });
    expect(notices.map((n) => n.template).sort()).toEqual(['userLocked', 'userUnlocked']);
    expect(notices[0]).toMatchObject({ channel: 'email', recipient: user.email, status: 'sent' });
    expect((await h.services.audit.list({ username: user.username })).find((e) => e.event === 'helpdesk.unlocked')).toMatchObject({
      actor: `staff:${agent.user.id}`,
    });
  });

  it('N1: the user is told when a temporary passcode is issued, without the passcode', async () => {
    const { user } = await createUserWithCard(h.services);
    const { passcode } = await issuePasscode(user.username);
    const [notice] = await h.services.notifier.list({ userId: user.id });
    expect(notice).toMatchObject({ template: 'tempPasscodeIssued', recipient: user.email });
    expect(notice!.body).not.toContain(passcode);
  });
});
