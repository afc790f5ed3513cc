/**
 * Attacks with a stolen staff session (V1, X7), on every database: someone
 * who holds a help desk or admin session — its cookie or Bearer token, but
 * not the staff member's device — must not record an identity verification
 * and then issue a temporary passcode or a password reset (the client's
 * account taken over), nor change a device, an OpenID client or an equity.
 * Every action of staff needs a step-up within the last minutes, as a
 * client's change of a security setting does; reading does not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import type { Role } from '../src/store/schema.js';
import { translator } from '../src/i18n/i18n.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, claimOf, get, postJson, send, startLogin, type ApiResponse, type Json, tookNewToken } from './support/api.js';
import { TestPhone, harnessInbox, listen, rejected, verifiedNumber } from './support/phone.js';
import { Agent, alertBox, byId, csrfOf, form, textById, type Page } from './support/html.js';
import { stepUpStaff } from './support/staff.js';

describe.each(DATABASES)('attacks with a stolen staff session on %s', (database) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(database);
  });
  afterAll(async () => h.close());

  /** A staff member of that role, with their own card. */
  const staffMember = (role: Role) => createUserWithCard(h.services, '1234', { role });

  /** A portal session opened with the card: all a thief of the cookie or token holds (no step-up). */
  async function sessionOf(user: User, card: CardFile): Promise<string> {
    const start = await startLogin(h.app, user.username);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    return done.body.session.token as string;
  }

  /** Moves the clock just past the step-up window (V1): a step-up of before is stale. */
  const stale = () => h.clock.advance(h.services.config.policy.stepUpFreshMs + 1000);

  async function refusals(staffId: string): Promise<Json[]> {
    return (await h.services.audit.list({ userId: staffId, limit: 200 })).filter((e) => e.event === 'session.refused').map((e) => e.data as Json);
  }

  function expectStepUpRequired(res: ApiResponse, what: string): void {
    expect([what, res.status, res.body.error?.code, res.body.error?.stepUp]).toEqual([what, 403, 'STEP_UP_REQUIRED', '/api/v1/step-up']);
  }

  /** The state the attacks must leave alone: the client's devices, lock and the help desk's audit entries about them. */
  async function stateOf(user: User) {
    const devices = (await h.services.devices.listForUser(user.id)).map((d) => `${d.type}:${d.state}`).sort();
    const lock = await h.services.lockout.status(user.username);
    const account = await h.services.users.account(user.accountId);
    const helpdesk = (await h.services.audit.list({ username: user.username, limit: 100 })).filter((e) => e.event.startsWith('helpdesk.')).length;
    return { devices, locked: lock.locked, equity: account.equityUsd, helpdesk };
  }

  // ------------------------------------------------------------------ the API

  /** A body each staff action accepts (so that only the session decides), by operationId; the test fails for an action not listed. */
  function bodies(ids: { verificationId: string }): Record<string, unknown> {
    return {
      recordCallerVerification: { method: 'id_document' },
      issueTemporaryPasscode: { verificationId: ids.verificationId },
      revokeTemporaryPasscode: undefined,
      shipDevice: { serial: 'STOCK0001' },
      markDeviceReturned: {},
      markDeviceLost: { reason: 'lost' },
      confirmDeviceLoss: { verificationId: ids.verificationId },
      resetPassword: { verificationId: ids.verificationId },
      unlockUser: { verificationId: ids.verificationId },
      lockUser: { reason: 'reported fraud' },
      endUserSessions: undefined,
      addUserPhone: { verificationId: ids.verificationId, country: 'US', number: '2025550143' },
      setAccountEquity: { equityUsd: 1234.5 },
      decideSharing: { decision: 'reject' },
      cancelSharingAsStaff: undefined,
    };
  }

  it('V1, X7: every state-changing route of the help desk and admin API answers 403 STEP_UP_REQUIRED (with stepUp) to a staff session without a step-up, audited, and changes nothing', async () => {
    const { user: admin, card } = await staffMember('admin');
    const { user: client } = await createUserWithCard(h.services);
    const [device] = await h.services.devices.listForUser(client.id);
    const token = await sessionOf(admin, card);
    const before = await stateOf(client);

    const document = (await get(h.app, '/api/openapi.json')).body;
    const actions = Object.entries<Json>(document.paths).flatMap(([path, item]) =>
      Object.entries<Json>(item)
        .filter(([method, op]) => method !== 'get' && (op.tags ?? []).some((t: string) => t === 'help desk' || t === 'admin'))
        .map(([method, op]) => ({ method: method.toUpperCase(), path, id: op.operationId as string })),
    );
    const table = bodies({ verificationId: 'ver_aaaaaaaaaaaaaaaaaaaaaaaaaa' });
    expect(actions.map((a) => a.id).sort()).toEqual(Object.keys(table).sort());

    for (const action of actions) {
      const url = action.path
        .replace('{username}', client.username)
        .replace('{deviceId}', device!.id)
        .replace('{number}', client.accountNumber)
        .replace('{id}', 'shr_aaaaaaaaaaaaaaaaaaaaaaaaaa');
      const res = await send(h.app, action.method, url, bearer(token), table[action.id]);
      expectStepUpRequired(res, `${action.method} ${action.path}`);
    }

    // each refusal audited as the session guard's other refusals, with the need, the check and the route
    const audited = await refusals(admin.id);
    expect(audited).toHaveLength(actions.length);
    for (const entry of audited) expect(entry).toMatchObject({ need: 'staff_action', code: 'STEP_UP_REQUIRED', check: 'fresh-step-up' });
    expect(audited.map((e) => `${e.method as string} ${e.path as string}`).sort()).toEqual(
      actions
        .map(
          (a) =>
            `${a.method} ${a.path.replace('{username}', client.username).replace('{deviceId}', device!.id).replace('{number}', client.accountNumber).replace('{id}', 'shr_aaaaaaaaaaaaaaaaaaaaaaaaaa')}`,
        )
        .sort(),
    );
    expect(await stateOf(client)).toEqual(before);
  });

  /** The latest login code sent by SMS to the user, other than `not`. */
  async function smsCode(userId: string, not?: string): Promise<string> {
    // (a code's text is forgotten once it expired: only those still readable)
    const codes = (await h.services.notifier.list({ userId }))
      .filter((n) => n.template === 'loginCode')
      .flatMap((n) => /\b(\d{6})\b/.exec(n.body)?.slice(1, 2) ?? []);
    return codes.find((code) => code !== not)!;
  }

  it("V1, X7, D2: a staff member's step-up with SMS (the staff password and a SIM swapped) acts on no client while a DSC+ protects the staff member: every help desk action answers 403 STRONGER_DEVICE_REQUIRED, audited, nothing changes; the card's step-up acts", async () => {
    const { user: client } = await createUserWithCard(h.services);
    const agent = await h.services.users.create({ username: `smsagent${Date.now().toString(36)}`, password: PASSWORD, role: 'client_services' }, 'test');
    await verifiedNumber(h, agent.id);
    const { card } = await h.services.devices.addDscPlus({ userId: agent.id, pin: '1234' }, 'test');
    const sms = (await h.services.devices.listForUser(agent.id)).find((d) => d.type === 'sms' && d.state === 'active')!;
    expect(sms, 'the staff member has SMS too').toBeDefined();
    const before = await stateOf(client);

    // the attacker: the staff password and the SIM: a login and a step-up by SMS
    const start = await startLogin(h.app, agent.username);
    const flow =
      start.body.device.id === sms.id
        ? start.body
        : (await postJson(h.app, `/api/v1/login/${start.body.id as string}`, { device: sms.id }, claimOf(start))).body;
    const loginCode = await smsCode(agent.id);
    const logged = await answer(h.app, flow.id, loginCode);
    expect(logged.status, JSON.stringify(logged.body)).toBe(200);
    const attacker = bearer(logged.body.session.token);
    const step = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, attacker);
    expect([step.status, step.body.deviceId]).toEqual([200, sms.id]);
    const stepped = await postJson(h.app, `/api/v1/step-up/${step.body.id as string}`, { response: await smsCode(agent.id, loginCode) }, attacker);
    expect(stepped.body.state, JSON.stringify(stepped.body)).toBe('done');
    tookNewToken(attacker, stepped);

    const verification = await postJson(h.app, `/api/v1/helpdesk/users/${client.username}/verifications`, { method: 'id_document' }, attacker);
    expect([verification.status, verification.body.error?.code]).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    expect(verification.body.error.message).toBe(translator('en')('errors.STRONGER_DEVICE_REQUIRED_staff'));
    const own = await h.services.helpDesk.verifyIdentity(agent.id, client.username, { method: 'id_document' });
    for (const [method, url, body] of [
      ['POST', `/api/v1/helpdesk/users/${client.username}/temporary-passcode`, { verificationId: own.id }],
      ['POST', `/api/v1/helpdesk/users/${client.username}/password-reset`, { verificationId: own.id }],
      ['POST', `/api/v1/helpdesk/users/${client.username}/lock`, { reason: 'fraud' }],
      ['DELETE', `/api/v1/helpdesk/users/${client.username}/sessions`, undefined],
    ] as const) {
      const res = await send(h.app, method, url, attacker, body);
      expect([url, res.status, res.body.error?.code]).toEqual([url, 403, 'STRONGER_DEVICE_REQUIRED']);
    }
    const audited = await refusals(agent.id);
    expect(audited.filter((e) => e.code === 'STRONGER_DEVICE_REQUIRED').map((e) => [e.need, e.check])).toEqual(
      Array(5).fill(['staff_action', 'proof-strength']),
    );
    expect(await stateOf(client)).toEqual({ ...before, helpdesk: before.helpdesk + 1 });

    // reading stays open to that session; the staff member's own card acts
    expect((await get(h.app, `/api/v1/helpdesk/users/${client.username}`, attacker)).status).toBe(200);
    const start2 = await startLogin(h.app, agent.username);
    const cardFlow =
      start2.body.device.id === sms.id
        ? (
            await postJson(
              h.app,
              `/api/v1/login/${start2.body.id as string}`,
              { device: (await h.services.devices.listForUser(agent.id)).find((d) => d.type === 'dscplus')!.id },
              claimOf(start2),
            )
          ).body
        : start2.body;
    const byCard = await answer(h.app, cardFlow.id, cardAnswer(card, cardFlow.challenge.question));
    expect(byCard.status, JSON.stringify(byCard.body)).toBe(200);
    const real = bearer(byCard.body.session.token);
    await stepUpStaff(h.app, real, card);
    const ok = await postJson(h.app, `/api/v1/helpdesk/users/${client.username}/password-reset`, { verificationId: own.id }, real);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });

  /** The staff password and the SIM: a login and a step-up by SMS; the session's headers. */
  async function smsSteppedUp(user: User, smsId: string): Promise<Record<string, string>> {
    h.clock.advance(1000); // the login's code is the newest (codes are listed by the time they were sent)
    const start = await startLogin(h.app, user.username);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const flow =
      start.body.device.id === smsId ? start.body : (await postJson(h.app, `/api/v1/login/${start.body.id as string}`, { device: smsId }, claimOf(start))).body;
    const loginCode = await smsCode(user.id);
    const logged = await answer(h.app, flow.id, loginCode);
    expect(logged.status, JSON.stringify(logged.body)).toBe(200);
    const headers = bearer(logged.body.session.token);
    h.clock.advance(1000); // the step-up's code is the newest
    const step = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
    expect([step.status, step.body.deviceId], JSON.stringify(step.body)).toEqual([200, smsId]);
    const stepped = await postJson(h.app, `/api/v1/step-up/${step.body.id as string}`, { response: await smsCode(user.id, loginCode) }, headers);
    expect(stepped.body.state, JSON.stringify(stepped.body)).toBe('done');
    return tookNewToken(headers, stepped);
  }

  it("X7, D2, R2 (decisions 0028, 0035): the staff password and a SIM report the staff member's DSC+ lost: the wait does not end by itself, 3 days later the SMS step-up still takes no staff action, binds no key and brings no authenticator (403 STRONGER_DEVICE_REQUIRED); an admin who verified the staff member ends it", async () => {
    const { user: client } = await createUserWithCard(h.services);
    const agent = await h.services.users.create({ username: `lostagent${Date.now().toString(36)}`, password: PASSWORD, role: 'client_services' }, 'test');
    await verifiedNumber(h, agent.id);
    const { device: card } = await h.services.devices.addDscPlus({ userId: agent.id, pin: '1234' }, 'test');
    const sms = (await h.services.devices.listForUser(agent.id)).find((d) => d.type === 'sms' && d.state === 'active')!;
    const first = await smsSteppedUp(agent, sms.id);
    const lost = await postJson(h.app, `/api/v1/devices/${card.id}/lost`, { reason: 'stolen' }, first);
    expect(lost.status, JSON.stringify(lost.body)).toBe(200);

    // R2 (decision 0023): a client's wait ends by itself after 3 days; a staff member's card is a help-desk seat's
    h.clock.advance(h.services.config.policy.weakerLossReportWaitMs + 60_000);
    const later = await smsSteppedUp(agent, sms.id);
    const attempts = {
      verification: await postJson(h.app, `/api/v1/helpdesk/users/${client.username}/verifications`, { method: 'id_document' }, later),
      key: await postJson(h.app, '/api/v1/security-keys/registration', {}, later),
      authenticator: await postJson(h.app, '/api/v1/mobile/activations', { username: agent.username, password: PASSWORD, purpose: 'activate' }),
    };
    expect(Object.fromEntries(Object.entries(attempts).map(([what, res]) => [what, [res.status, res.body.error?.code]]))).toEqual({
      verification: [403, 'STRONGER_DEVICE_REQUIRED'],
      key: [403, 'STRONGER_DEVICE_REQUIRED'],
      authenticator: [403, 'STRONGER_DEVICE_REQUIRED'],
    });
    expect((await h.services.devices.listForUser(agent.id)).filter((d) => d.state === 'active').map((d) => d.type)).toEqual(['sms']);
    expect((await h.services.audit.list({ username: client.username, limit: 50 })).map((e) => e.event)).not.toContain('helpdesk.identity_verified');

    // an admin, with a verification of their own of the staff member (decision 0028), ends the wait: the SMS is now the strongest
    const { user: admin } = await staffMember('admin');
    const checked = await h.services.helpDesk.verifyIdentity(admin.id, agent.username, { method: 'id_document' });
    await h.services.dscPlusRequests.confirmLoss(admin.id, card.id, checked.id);
    const after = await smsSteppedUp(agent, sms.id);
    const acts = await postJson(h.app, `/api/v1/helpdesk/users/${client.username}/verifications`, { method: 'id_document' }, after);
    expect(acts.status, JSON.stringify(acts.body)).toBe(200);
  });

  it("X7, D2, R2, C5 (decisions 0035, 0036): a staff member's card marked returned without a verification of its owner waits as their loss report does: never ending by itself, 3 days later the SMS step-up still takes no staff action", async () => {
    const { user: client } = await createUserWithCard(h.services);
    const agent = await h.services.users.create({ username: `backagent${Date.now().toString(36)}`, password: PASSWORD, role: 'client_services' }, 'test');
    await verifiedNumber(h, agent.id);
    const { device: card } = await h.services.devices.addDscPlus({ userId: agent.id, pin: '1234' }, 'test');
    const sms = (await h.services.devices.listForUser(agent.id)).find((d) => d.type === 'sms' && d.state === 'active')!;
    // "I sent my card back", on the telephone: an admin marks it returned without verifying the staff member
    const { user: admin } = await staffMember('admin');
    expect((await h.services.dscPlusRequests.markReturned(admin.id, card.id)).state).toBe('returned');
    h.clock.advance(h.services.config.policy.weakerLossReportWaitMs + 60_000);
    const later = await smsSteppedUp(agent, sms.id);
    const acts = await postJson(h.app, `/api/v1/helpdesk/users/${client.username}/verifications`, { method: 'id_document' }, later);
    expect([acts.status, acts.body.error?.code]).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    // an admin who verified the staff member ends the wait
    const checked = await h.services.helpDesk.verifyIdentity(admin.id, agent.username, { method: 'id_document' });
    await h.services.dscPlusRequests.confirmLoss(admin.id, card.id, checked.id);
    const after = await smsSteppedUp(agent, sms.id);
    expect((await postJson(h.app, `/api/v1/helpdesk/users/${client.username}/verifications`, { method: 'id_document' }, after)).status).toBe(200);
  });

  it("X7, D2, K7 (decision 0035): the staff password and a SIM neither migrate nor recover a staff member's mobile authenticator (their strongest device) to another phone by an SMS token: 403 STRONGER_DEVICE_REQUIRED, audited, no token sent, the authenticator stays where it was", async () => {
    const { user: client } = await createUserWithCard(h.services);
    const agent = await h.services.users.create({ username: `appagent${Date.now().toString(36)}`, password: PASSWORD, role: 'client_services' }, 'test');
    await verifiedNumber(h, agent.id);
    const own = new TestPhone(await listen(h), harnessInbox(h));
    const enrolment = await own.activate(agent.username);
    // the attacker's phone: the staff password, and the SIM for the token
    const theirs = new TestPhone(await listen(h), harnessInbox(h));
    const started = await rejected(theirs.start(agent.username, 'migrate'));
    expect([started.status, started.code, started.body.error.message]).toEqual([
      403,
      'STRONGER_DEVICE_REQUIRED',
      translator('en')('errors.STRONGER_DEVICE_REQUIRED_staff_mobile'),
    ]);
    const refused = (await h.services.audit.list({ userId: agent.id, limit: 50 })).filter((e) => e.event === 'mobile.activation_refused');
    expect(refused.map((e) => (e.data as Json).purpose)).toEqual(['migrate']);
    // a recovery (the recovery PIN and an SMS token, K8) neither
    const recovery = await rejected(theirs.start(agent.username, 'recover'));
    expect([recovery.status, recovery.code]).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    // no token sent but the one the staff member's own activation took
    expect((await h.services.notifier.list({ userId: agent.id })).filter((n) => n.template === 'activationToken')).toHaveLength(1);
    expect((await h.services.devices.get(enrolment.deviceId)).state).toBe('active');
    expect((await h.services.devices.listForUser(agent.id)).filter((d) => d.type === 'mobile').map((d) => d.id)).toEqual([enrolment.deviceId]);
    expect((await h.services.audit.list({ username: client.username, limit: 50 })).map((e) => e.event)).not.toContain('helpdesk.identity_verified');
  });

  it('V1, X7, T1, A5, L3: the take-over path (identity verification, then a temporary passcode or a password reset) and an unlock need a fresh step-up; with one each works', async () => {
    const { user: agent, card } = await staffMember('client_services');
    const { user: client } = await createUserWithCard(h.services);
    let token = await sessionOf(agent, card);
    const base = `/api/v1/helpdesk/users/${client.username}`;

    // no step-up: not even the identity verification
    expectStepUpRequired(await postJson(h.app, `${base}/verifications`, { method: 'security_questions' }, bearer(token)), 'verification');

    token = await stepUpStaff(h.app, token, card);
    const verified = await postJson(h.app, `${base}/verifications`, { method: 'security_questions' }, bearer(token));
    expect(verified.status).toBe(200);
    const verificationId = verified.body.id as string;

    // the step-up goes stale (the verification, 30 minutes, does not): the passcode, the reset and the unlock are refused
    stale();
    const before = await stateOf(client);
    expectStepUpRequired(await postJson(h.app, `${base}/temporary-passcode`, { verificationId }, bearer(token)), 'temporary passcode');
    expectStepUpRequired(await postJson(h.app, `${base}/password-reset`, { verificationId }, bearer(token)), 'password reset');
    expectStepUpRequired(await postJson(h.app, `${base}/lock`, { reason: 'reported fraud' }, bearer(token)), 'lock');
    expectStepUpRequired(await postJson(h.app, `${base}/unlock`, { verificationId }, bearer(token)), 'unlock');
    expect(await stateOf(client)).toEqual(before);
    expect((await refusals(agent.id)).map((e) => e.path)).toEqual(
      ['verifications', 'temporary-passcode', 'password-reset', 'lock', 'unlock'].map((p) => `${base}/${p}`).reverse(),
    );

    // a fresh step-up: each works
    token = await stepUpStaff(h.app, token, card);
    const issued = await postJson(h.app, `${base}/temporary-passcode`, { verificationId }, bearer(token));
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    expect(issued.body.passcode).toMatch(/^[A-Z2-9]{8}$/);
    const reset = await postJson(h.app, `${base}/password-reset`, { verificationId }, bearer(token));
    expect(reset.status, JSON.stringify(reset.body)).toBe(200);
    expect(reset.body).toMatchObject({ deliveredTo: 'staff', temporaryPassword: expect.any(String) });
    const unlocked = await postJson(h.app, `${base}/unlock`, { verificationId }, bearer(token));
    expect([unlocked.status, unlocked.body]).toEqual([200, { locked: false }]);
    const locked = await postJson(h.app, `${base}/lock`, { reason: 'reported fraud' }, bearer(token));
    expect(locked.status, JSON.stringify(locked.body)).toBe(200);
    // decision 0020: the lock it placed is an admin's to lift: refused for that, not for the step-up
    const again = await postJson(h.app, `${base}/unlock`, { verificationId }, bearer(token));
    expect([again.status, again.body.error?.code]).toEqual([403, 'STAFF_LOCK_ADMIN_ONLY']);
  });

  it('V1, X7, C5, A6: device state changes and the equity need a fresh step-up; with one they work', async () => {
    const { user: admin, card } = await staffMember('admin');
    const { user: client } = await createUserWithCard(h.services);
    const [dsc] = await h.services.devices.listForUser(client.id);
    let token = await sessionOf(admin, card);
    const lost = `/api/v1/helpdesk/devices/${dsc!.id}/lost`;
    const returned = `/api/v1/helpdesk/devices/${dsc!.id}/returned`;
    const equity = `/api/v1/admin/accounts/${client.accountNumber}/equity`;

    expectStepUpRequired(await postJson(h.app, lost, { reason: 'stolen' }, bearer(token)), 'lost');
    expectStepUpRequired(await send(h.app, 'PUT', equity, bearer(token), { equityUsd: 250_000 }), 'equity');
    expect((await h.services.devices.get(dsc!.id)).state).toBe('active');
    expect((await h.services.users.account(client.accountId)).equityUsd).toBe(2_000_000);

    token = await stepUpStaff(h.app, token, card);
    const marked = await postJson(h.app, lost, { reason: 'stolen' }, bearer(token));
    expect([marked.status, marked.body.state]).toEqual([200, 'lost']);
    const set = await send(h.app, 'PUT', equity, bearer(token), { equityUsd: 250_000 });
    expect([set.status, set.body]).toEqual([200, { account: client.accountNumber, equityUsd: 250_000, dscPlusEligible: false }]);

    stale();
    expectStepUpRequired(await send(h.app, 'POST', returned, bearer(token), {}), 'returned');
    expect((await h.services.devices.get(dsc!.id)).state).toBe('lost');
    token = await stepUpStaff(h.app, token, card);
    const back = await send(h.app, 'POST', returned, bearer(token), {});
    expect([back.status, back.body.state]).toEqual([200, 'returned']);
  });

  it('V1, X7, X1: reading stays on the plain staff session: search, a user, the audit log and the sharings waiting for compliance, with no step-up', async () => {
    const { user: admin, card } = await staffMember('admin');
    const { user: client } = await createUserWithCard(h.services);
    const token = await sessionOf(admin, card);
    const search = await get(h.app, `/api/v1/helpdesk/users?q=${client.username}`, bearer(token));
    expect([search.status, search.body.users.map((u: Json) => u.username)]).toEqual([200, [client.username]]);
    const shown = await get(h.app, `/api/v1/helpdesk/users/${client.username}`, bearer(token));
    expect([shown.status, shown.body.user.username]).toEqual([200, client.username]);
    const audit = await get(h.app, `/api/v1/admin/audit?user=${client.username}`, bearer(token));
    expect(audit.status).toBe(200);
    expect((await get(h.app, '/api/v1/helpdesk/sharing', bearer(token))).status).toBe(200);
    expect(await refusals(admin.id)).toEqual([]);
  });

  // ------------------------------------------------------------------ the console

  /** The whole login through the login pages with the card; staff land on the console. */
  async function consoleOf(user: User, card: CardFile): Promise<Agent> {
    const agent = new Agent(h.app);
    const login = await agent.get('/login');
    const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
    const challenge = await agent.get(started.location!);
    const done = await agent.submit(challenge, started.location!, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) });
    expect(done.location).toBe('/helpdesk');
    return agent;
  }

  /** The step-up pages, from where a form led: the password, then the card; where they come back to. */
  async function stepUpOnPages(agent: Agent, card: CardFile, at: string): Promise<string | undefined> {
    const page = await agent.get(at);
    expect(page.status, page.html.slice(0, 300)).toBe(200);
    const started = await agent.submit(page, '/step-up', { password: PASSWORD });
    expect(started.location).toMatch(/^\/step-up\/flw_[a-z2-7]{26}\?next=/);
    const prompt = await agent.get(started.location!);
    const done = await agent.submit(prompt, started.location!, { response: cardAnswer(card, textById(prompt.html, 'challenge-code')!) });
    expect(done.status).toBe(303);
    return done.location;
  }

  const toStepUp = (path: string) => `/step-up?next=${encodeURIComponent(path)}`;

  it('V1, X7, T1: the console sends a staff member without a fresh step-up from a form to the step-up page and back to the user page; the form then works; the refusal is audited', async () => {
    const { user: staff, card } = await staffMember('client_services');
    const { user: client } = await createUserWithCard(h.services);
    const agent = await consoleOf(staff, card);
    const userPath = `/helpdesk/users/${client.username}`;

    // reading: the user page shows, with its forms, and says that they need a step-up first, with the way there and back
    const page = await agent.get(userPath);
    expect(page.status).toBe(200);
    expect(textById(page.html, 'step-up-due')).toContain(translator('en')('helpdesk.stepUpDue'));
    expect(byId(page.html, 'step-up-link')?.attrs.href).toBe(toStepUp(userPath));
    const refused = await agent.submit(page, `${userPath}/verifications`, { method: 'security_questions', notes: 'date of birth' });
    expect([refused.status, refused.location]).toEqual([303, toStepUp(userPath)]);
    expect(await refusals(staff.id)).toEqual([
      expect.objectContaining({ need: 'staff_action', code: 'STEP_UP_REQUIRED', check: 'fresh-step-up', method: 'POST', path: `${userPath}/verifications` }),
    ]);
    expect((await stateOf(client)).helpdesk).toBe(0);

    // the step-up page says why (the staff text), and comes back to the user page
    const stepUpPage = await agent.get(refused.location!);
    expect(textById(stepUpPage.html, 'step-up-intro')).toBe(translator('en')('web.stepUp.introStaff'));
    expect(await stepUpOnPages(agent, card, refused.location!)).toBe(userPath);
    const stepped = await agent.get(userPath);
    expect(byId(stepped.html, 'step-up-due')).toBeUndefined();
    const verified = await agent.submit(stepped, `${userPath}/verifications`, { method: 'security_questions', notes: 'date of birth' });
    expect(verified.status).toBe(303);
    const verificationPath = verified.location!;
    expect(verificationPath).toMatch(new RegExp(`^${userPath}/verifications/ver_[a-z2-7]{26}$`));

    // stale again: the passcode form leads to the step-up, back to the page with the verification in effect
    stale();
    const withVerification = await agent.get(verificationPath);
    expect(withVerification.status).toBe(200);
    const again = await agent.submit(withVerification, `${userPath}/temporary-passcode`, { deviceStatus: 'suspended' });
    expect([again.status, again.location]).toEqual([303, toStepUp(verificationPath)]);
    expect((await h.services.devices.listForUser(client.id)).map((d) => d.type)).toEqual(['dscplus']);
    expect(await stepUpOnPages(agent, card, again.location!)).toBe(verificationPath);
    const issued = await agent.submit(await agent.get(verificationPath), `${userPath}/temporary-passcode`, { deviceStatus: 'suspended' });
    expect([issued.status, issued.location]).toEqual([303, `${userPath}/passcode`]);
    expect(textById((await agent.get(issued.location!)).html, 'passcode')).toMatch(/^[A-Z2-9]{8}$/);
  });

  it('V1, X7, A6, C5: the console forms for the equity and a device need a fresh step-up too', async () => {
    const { user: admin, card } = await staffMember('admin');
    const { user: client } = await createUserWithCard(h.services);
    const [dsc] = await h.services.devices.listForUser(client.id);
    const agent = await consoleOf(admin, card);
    const userPath = `/helpdesk/users/${client.username}`;

    const page = await agent.get(userPath);
    const equity = await agent.submit(page, `${userPath}/equity`, { equityUsd: '250000' });
    expect([equity.status, equity.location]).toEqual([303, toStepUp(userPath)]);
    const lost = await agent.submit(page, `${userPath}/devices/${dsc!.id}/lost`, { reason: 'stolen' });
    expect([lost.status, lost.location]).toEqual([303, toStepUp(userPath)]);
    expect((await h.services.users.account(client.accountId)).equityUsd).toBe(2_000_000);
    expect((await h.services.devices.get(dsc!.id)).state).toBe('active');
    expect((await refusals(admin.id)).map((e) => e.path)).toEqual([`${userPath}/devices/${dsc!.id}/lost`, `${userPath}/equity`]);

    expect(await stepUpOnPages(agent, card, equity.location!)).toBe(userPath);
    const fresh = await agent.get(userPath);
    expect((await agent.submit(fresh, `${userPath}/equity`, { equityUsd: '250000' })).location).toBe(`${userPath}?done=equitySet`);
    expect((await h.services.users.account(client.accountId)).equityUsd).toBe(250_000);
    const marked = await agent.submit(await agent.get(userPath), `${userPath}/devices/${dsc!.id}/lost`, { reason: 'stolen' });
    expect(marked.location).toBe(`${userPath}?done=lost&device=${dsc!.id}`);
    expect((await h.services.devices.get(dsc!.id)).state).toBe('lost');
  });

  it.each([
    ['client_services', true],
    ['admin', true],
    ['compliance', false],
  ] as const)(
    "A6, X7 (decision 0034): one rule for an account's equity on both paths: %s, stepped up, through the API and the console alike (client services and admins set it; compliance is refused 403 FORBIDDEN_ROLE on both)",
    async (role, may) => {
      const { user, card } = await staffMember(role);
      const { user: client } = await createUserWithCard(h.services);
      const token = await stepUpStaff(h.app, await sessionOf(user, card), card);
      const api = await send(h.app, 'PUT', `/api/v1/admin/accounts/${client.accountNumber}/equity`, bearer(token), { equityUsd: 1_500_000 });
      const agent = await consoleOf(user, card);
      await stepUpStaff(h.app, agent, card);
      const account = await agent.get('/account');
      const page = await agent.post(`/helpdesk/users/${client.username}/equity`, { _csrf: csrfOf(form(account.html, '/logout')), equityUsd: '2500000' });
      const answers = {
        api: [api.status, api.body.error?.code ?? null],
        console: [page.status, page.status === 303 ? page.location : alertBox(page.html)?.code],
      };
      expect(answers).toEqual(
        may
          ? { api: [200, null], console: [303, `/helpdesk/users/${client.username}?done=equitySet`] }
          : { api: [403, 'FORBIDDEN_ROLE'], console: [403, 'FORBIDDEN_ROLE'] },
      );
      expect((await h.services.users.account(client.accountId)).equityUsd).toBe(may ? 2_500_000 : 2_000_000);
    },
  );

  it('V1, X7, I1: an OpenID client is registered or deleted in the console only after a fresh step-up; the list shows without one', async () => {
    const { user: admin, card } = await staffMember('admin');
    const agent = await consoleOf(admin, card);
    const path = '/helpdesk/oidc-clients';
    const fields = { name: 'Statements viewer', app: 'portal', type: 'confidential', redirectUri: 'https://rp.example.test/cb' };
    const before = (await h.services.oidc.clients.list()).length;

    const list = await agent.get(path);
    expect(list.status).toBe(200);
    expect(byId(list.html, 'step-up-link')?.attrs.href).toBe(toStepUp(path));
    const refused = await agent.submit(list, path, fields);
    expect([refused.status, refused.location]).toEqual([303, toStepUp(path)]);
    expect(await h.services.oidc.clients.list()).toHaveLength(before);

    expect(await stepUpOnPages(agent, card, refused.location!)).toBe(path);
    const created = await agent.submit(await agent.get(path), path, fields);
    expect(created.status).toBe(200);
    const secret = byId(created.html, 'client-secret');
    expect(secret).toBeDefined();
    const clients = await h.services.oidc.clients.list();
    expect(clients).toHaveLength(before + 1);
    const clientId = clients.find((c) => c.name === 'Statements viewer')!.clientId;

    stale();
    const deletePath = `${path}/${clientId}/delete`;
    const refusedDelete = await agent.submit(await agent.get(path), deletePath);
    expect([refusedDelete.status, refusedDelete.location]).toEqual([303, toStepUp(path)]);
    expect((await h.services.oidc.clients.list()).map((c) => c.clientId)).toContain(clientId);
    expect((await refusals(admin.id)).map((e) => e.path)).toEqual([deletePath, path]);

    expect(await stepUpOnPages(agent, card, refusedDelete.location!)).toBe(path);
    const deleted = await agent.submit(await agent.get(path), deletePath);
    expect(deleted.status).toBe(200);
    expect((await h.services.oidc.clients.list()).map((c) => c.clientId)).not.toContain(clientId);
  });

  it('V1, X7, H3: a sharing decided or ended in the compliance console leads to the step-up page and back to the console; the list shows without one', async () => {
    const { user: officer, card } = await staffMember('compliance');
    const agent = await consoleOf(officer, card);
    const page = await agent.get('/helpdesk/sharing');
    expect(page.status).toBe(200);
    expect(byId(page.html, 'step-up-link')?.attrs.href).toBe(toStepUp('/helpdesk/sharing'));
    // no request waits, so no form on the page: the token of another form of ours (one sls_csrf cookie)
    const csrf = csrfOf(form((await agent.get(toStepUp('/helpdesk/sharing'))).html, '/step-up'));
    const id = 'shr_aaaaaaaaaaaaaaaaaaaaaaaaaa';
    for (const action of [`/helpdesk/sharing/${id}/decision`, `/helpdesk/sharing/${id}/cancel`]) {
      const refused = await agent.post(action, { _csrf: csrf, decision: 'approve', note: '' });
      expect([action, refused.status, refused.location]).toEqual([action, 303, toStepUp('/helpdesk/sharing')]);
    }
    expect((await refusals(officer.id)).map((e) => [e.need, e.code, e.path])).toEqual([
      ['staff_action', 'STEP_UP_REQUIRED', `/helpdesk/sharing/${id}/cancel`],
      ['staff_action', 'STEP_UP_REQUIRED', `/helpdesk/sharing/${id}/decision`],
    ]);
    expect(await stepUpOnPages(agent, card, toStepUp('/helpdesk/sharing'))).toBe('/helpdesk/sharing');
    // stepped up: the form reaches the sharing service (which knows no such request); V1 (decision 0042): with a token
    // of a form of the session's new cookie (the step-up replaced it: one of the old is refused)
    const fresh = csrfOf(form((await agent.get(toStepUp('/helpdesk/sharing'))).html, '/step-up'));
    expect((await agent.post(`/helpdesk/sharing/${id}/decision`, { _csrf: csrf, decision: 'approve', note: '' })).status).toBe(403);
    const decided = await agent.post(`/helpdesk/sharing/${id}/decision`, { _csrf: fresh, decision: 'approve', note: '' });
    expect(decided.status).toBe(404);
  });

  it("V1, X7: the step-up comes back to the console's own pages only, never to another site", async () => {
    const { user: staff, card } = await staffMember('client_services');
    const agent = await consoleOf(staff, card);
    const cancelOf = (page: Page) => byId(page.html, 'step-up-cancel')?.attrs.href;
    for (const own of [
      '/helpdesk',
      '/helpdesk/sharing',
      '/helpdesk/oidc-clients',
      '/helpdesk/users/user42ab',
      '/helpdesk/users/user42ab/verifications/ver_abc',
    ]) {
      expect(cancelOf(await agent.get(toStepUp(own))), own).toBe(own);
    }
    for (const away of [
      '//evil.example/helpdesk',
      'https://evil.example/helpdesk',
      '/helpdesk/users/a/b',
      '/helpdesk/users/x?next=//evil.example',
      '/helpdesk/../\\evil.example',
    ]) {
      expect(cancelOf(await agent.get(toStepUp(away))), away).toBe('/account');
    }
    // and a staff form's step-up posts its `next` on
    const form1 = form((await agent.get(toStepUp('/helpdesk/sharing'))).html, '/step-up');
    expect(form1.inner).toContain('value="/helpdesk/sharing"');
  });
});
