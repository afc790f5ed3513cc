/**
 * No path to a session, a device, a changed secret or a staff action with
 * less than it needs (X7, L3, L4, L8, A5, T3, K8, K13): each test attacks one
 * path through the HTTP API — with the password only, a stolen session, a
 * help-desk seat on another staff account, many flows started and left, or
 * concurrent copies — and asserts the refusal and its audit entry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY, HOUR, MINUTE, SECOND } from '../src/clock.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import type { Role } from '../src/store/schema.js';
import { DATABASES, PASSWORD, cardAnswer, createUser, createUserWithCard, startHarness, wrongAnswer, type Harness } from './support/harness.js';
import {
  answer,
  bearer,
  claimOf,
  claimSession,
  get,
  readLogin,
  loginSession,
  postJson,
  startLogin,
  stepUp,
  withCard,
  type ApiResponse,
  type Json,
  tookNewToken,
} from './support/api.js';
import { Agent } from './support/html.js';
import { stepUpStaff } from './support/staff.js';
import { TestPhone, harnessInbox, listen, newMobile, smsUser, type Inbox } from './support/phone.js';

const ADDRESS = { name: 'Alice Martin', line1: '1 Main Street', city: 'Springfield', postalCode: '12345', country: 'US' };

async function del(h: Harness, url: string, headers: Record<string, string>): Promise<ApiResponse> {
  const raw = await h.app.inject({ method: 'DELETE', url, headers });
  return { status: raw.statusCode, body: raw.body ? (raw.json() as Json) : {}, headers: raw.headers, raw };
}

async function events(h: Harness, user: { id: string }): Promise<{ event: string; actor: string | null; data: Record<string, unknown> }[]> {
  return h.services.audit.list({ userId: user.id, limit: 500 });
}

/** A portal (or trading) session opened with the card: its bearer headers. */
const cardSession = (h: Harness, user: User, card: CardFile, app: 'portal' | 'trading' = 'portal') =>
  loginSession(h.app, user.username, withCard(card), { target: app });

describe.each(DATABASES)('security on %s', (db) => {
  let h: Harness;
  let base: string;
  let inbox: Inbox;

  beforeAll(async () => {
    h = await startHarness(db);
    base = await listen(h);
    inbox = harnessInbox(h);
  });
  afterAll(async () => h.close());

  async function staffMember(role: Role): Promise<{ user: User; card: CardFile; headers: Record<string, string> }> {
    const { user, card } = await createUserWithCard(h.services, '1234', { role });
    const headers = await cardSession(h, user, card);
    // V1, X7: staff act after a step-up
    await stepUpStaff(h.app, headers, card);
    return { user, card, headers };
  }

  async function verification(staffHeaders: Record<string, string>, username: string): Promise<ApiResponse> {
    return postJson(h.app, `/api/v1/helpdesk/users/${username}/verifications`, { method: 'id_document' }, staffHeaders);
  }

  describe('X7, V1: security settings need a fresh step-up with the device', () => {
    it('X7: a stolen session and the password do not add a number, verify it, request a DSC+, report a card lost, change the PIN or the password', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const stolen = await cardSession(h, user, card);
      const [device] = await h.services.devices.listForUser(user.id);
      const attempts: [string, () => Promise<ApiResponse>][] = [
        ['add a number', () => postJson(h.app, '/api/v1/phones', newMobile(), stolen)],
        ['request a DSC+', () => postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, stolen)],
        ['preview a DSC+ request', () => postJson(h.app, '/api/v1/dscplus/requests/preview', { address: ADDRESS, pin: '2468' }, stolen)],
        ['report the card lost', () => postJson(h.app, `/api/v1/devices/${device!.id}/lost`, { reason: 'lost' }, stolen)],
        ['change the PIN', () => postJson(h.app, `/api/v1/devices/${device!.id}/pin`, {}, stolen)],
        ['change the password', () => postJson(h.app, '/api/v1/password', { currentPassword: PASSWORD, newPassword: 'the attacker phrase 1' }, stolen)],
      ];
      for (const [what, attempt] of attempts) {
        const refused = await attempt();
        expect([what, refused.status, refused.body.error.code]).toEqual([what, 403, 'STEP_UP_REQUIRED']);
        expect(refused.body.error.stepUp).toBe('/api/v1/step-up');
      }
      // the password opens the step-up, but without the card it goes nowhere
      const started = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, stolen);
      expect(started.body.challenge.type).toBe('ocra');
      const guess = await postJson(h.app, `/api/v1/step-up/${started.body.id}`, { response: '12345678' }, stolen);
      expect([guess.status, guess.body.error.code]).toEqual([401, 'LOGIN_FAILED']);
      expect((await postJson(h.app, '/api/v1/phones', newMobile(), stolen)).body.error.code).toBe('STEP_UP_REQUIRED');
      expect(await h.services.phones.list(user.id)).toEqual([]);
      const refusals = (await events(h, user)).filter((e) => e.event === 'session.refused');
      expect(refusals).toHaveLength(attempts.length + 1);
      expect(refusals.every((e) => e.data.code === 'STEP_UP_REQUIRED')).toBe(true);
    });

    it('V1: a step-up with the device opens the settings for 5 minutes, for that session only', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const mine = await cardSession(h, user, card);
      const other = await cardSession(h, user, card);
      await stepUp(h.app, mine, withCard(card));
      expect((await postJson(h.app, '/api/v1/phones', newMobile(), mine)).status).toBe(201);
      expect((await postJson(h.app, '/api/v1/phones', newMobile(), other)).body.error.code).toBe('STEP_UP_REQUIRED');
      h.clock.advance(5 * MINUTE);
      expect((await postJson(h.app, '/api/v1/phones', newMobile(), mine)).body.error.code).toBe('STEP_UP_REQUIRED');
      expect((await get(h.app, '/api/v1/session', mine)).body.verifiedAt).not.toBeNull();
    });

    it('X7: the settings pages lead to the step-up and come back to the task', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const agent = new Agent(h.app);
      const login = await agent.get('/login');
      const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
      const challenge = await agent.get(started.location!);
      const question = /id="challenge-code"[^>]*>(\d{6})</.exec(challenge.html)![1]!;
      expect((await agent.submit(challenge, started.location!, { response: cardAnswer(card, question) })).location).toBe('/account');
      const settings = await agent.get('/settings/mobile');
      expect([settings.status, settings.location]).toEqual([303, '/step-up?next=%2Fsettings%2Fmobile']);
      const form = await agent.get(settings.location!);
      const stepped = await agent.submit(form, '/step-up', { password: PASSWORD });
      expect(stepped.location).toMatch(/^\/step-up\/flw_[a-z2-7]{26}\?next=%2Fsettings%2Fmobile$/);
      const prompt = await agent.get(stepped.location!);
      const asked = /id="challenge-code"[^>]*>(\d{6})</.exec(prompt.html)![1]!;
      const done = await agent.submit(prompt, stepped.location!, { response: cardAnswer(card, asked) });
      expect(done.location).toBe('/settings/mobile');
      expect((await agent.get('/settings/mobile')).status).toBe(200);
      // a step-up never sends the browser to another site
      const away = await agent.get('/step-up?next=https%3A%2F%2Fevil.example%2F');
      expect(away.html).toContain('href="/account" id="step-up-cancel"');
    });
  });

  describe("A5: the help desk's one-time password is one-time", () => {
    /** A one-time password set by client services (by an admin for a staff account, X7). */
    async function resetByHelpDesk(user: User): Promise<string> {
      const agent = await staffMember(user.role === 'client' ? 'client_services' : 'admin');
      const v = await verification(agent.headers, user.username);
      const reset = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/password-reset`, { verificationId: v.body.id }, agent.headers);
      return reset.body.temporaryPassword as string;
    }

    it('A5: until it is changed the session may only step up and change the password (403 PASSWORD_CHANGE_REQUIRED everywhere else); it opens one session only', async () => {
      const { user, card } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
      const temporary = await resetByHelpDesk(user);
      const start = await startLogin(h.app, user.username, temporary);
      const headers = bearer((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token);
      for (const url of ['/api/v1/devices', '/api/v1/phones', '/api/v1/withdrawal-limits', '/api/v1/dscplus/eligibility', '/api/v1/helpdesk/users?q=a']) {
        const refused = await get(h.app, url, headers);
        expect([url, refused.status, refused.body.error.code]).toEqual([url, 403, 'PASSWORD_CHANGE_REQUIRED']);
      }
      expect((await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/verifications`, { method: 'id_document' }, headers)).body.error.code).toBe(
        'PASSWORD_CHANGE_REQUIRED',
      );
      const page = await h.app.inject({ method: 'GET', url: '/helpdesk', headers: { cookie: `__Host-sls_session=${headers.authorization!.slice(7)}` } });
      expect([page.statusCode, page.headers.location]).toEqual([303, '/password']);
      // a second login with the same one-time password is refused like a wrong password
      const again = await startLogin(h.app, user.username, temporary);
      expect([again.status, again.body.error.code]).toEqual([401, 'INVALID_CREDENTIALS']);
      // the session steps up with it, and changes it
      await stepUp(h.app, headers, withCard(card), temporary);
      expect((await postJson(h.app, '/api/v1/password', { currentPassword: temporary, newPassword: 'a brand new phrase 7' }, headers)).status).toBe(204);
      expect((await get(h.app, '/api/v1/devices', headers)).status).toBe(200);
    });

    it('A5: a one-time password not used within 24 hours no longer works', async () => {
      const { user } = await createUserWithCard(h.services);
      const temporary = await resetByHelpDesk(user);
      h.clock.advance(24 * HOUR);
      const late = await startLogin(h.app, user.username, temporary);
      expect([late.status, late.body.error.code]).toEqual([401, 'INVALID_CREDENTIALS']);
    });
  });

  describe('X7: staff cannot take over staff', () => {
    it("X7: client services may not reset an admin's password, issue a passcode to another agent, or unlock themselves; each refusal is audited", async () => {
      const agent = await staffMember('client_services');
      const { user: admin } = await createUserWithCard(h.services, '1234', { role: 'admin' });
      const { user: colleague } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
      const refusals: [User, string, Record<string, unknown>, string][] = [
        [admin, 'verifications', { method: 'id_document' }, 'admin'],
        [colleague, 'verifications', { method: 'id_document' }, 'staff'],
        [agent.user, 'verifications', { method: 'id_document' }, 'self'],
        [colleague, 'sessions', {}, 'staff'],
        [colleague, 'lock', { reason: 'takeover' }, 'staff'],
      ];
      for (const [target, action, body, reason] of refusals) {
        const res =
          action === 'sessions'
            ? await del(h, `/api/v1/helpdesk/users/${target.username}/sessions`, agent.headers)
            : await postJson(h.app, `/api/v1/helpdesk/users/${target.username}/${action}`, body, agent.headers);
        expect([target.role, action, res.status, res.body.error?.code]).toEqual([target.role, action, 403, 'STAFF_TARGET_FORBIDDEN']);
        const audited = (await events(h, target)).filter((e) => e.event === 'helpdesk.refused' && e.actor === `staff:${agent.user.id}`);
        expect(
          audited.some((e) => e.data.reason === reason),
          `${action} on ${target.role}`,
        ).toBe(true);
      }
      // through the services, with a verification made by an admin, the agent is refused all the same
      const { user: otherAdmin } = await createUserWithCard(h.services, '1234', { role: 'admin' });
      const v = await h.services.helpDesk.verifyIdentity(otherAdmin.id, colleague.username, { method: 'id_document' });
      await expect(h.services.helpDesk.issueTemporaryPasscode(agent.user.id, colleague.username, { verificationId: v.id })).rejects.toMatchObject({
        code: 'STAFF_TARGET_FORBIDDEN',
      });
      await expect(h.services.helpDesk.resetPassword(agent.user.id, admin.username, { verificationId: v.id })).rejects.toMatchObject({
        code: 'STAFF_TARGET_FORBIDDEN',
      });
      await expect(h.services.helpDesk.unlock(agent.user.id, agent.user.username, { verificationId: v.id })).rejects.toMatchObject({
        code: 'STAFF_TARGET_FORBIDDEN',
      });
    });

    it('X7: an admin acts on client services but not on itself nor, from the console, on another admin; from the command line it may', async () => {
      const admin = await staffMember('admin');
      const { user: colleague } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
      const { user: otherAdmin } = await createUserWithCard(h.services, '1234', { role: 'admin' });
      expect((await verification(admin.headers, colleague.username)).status).toBe(200);
      expect((await verification(admin.headers, otherAdmin.username)).body.error.code).toBe('STAFF_TARGET_FORBIDDEN');
      expect((await verification(admin.headers, admin.user.username)).body.error.code).toBe('STAFF_TARGET_FORBIDDEN');
      const cli = h.services.helpDesk.viaCommandLine();
      const v = await cli.verifyIdentity(admin.user.id, otherAdmin.username, { method: 'video_call' });
      expect((await cli.resetPassword(admin.user.id, otherAdmin.username, { verificationId: v.id })).deliveredTo).toBe('staff');
      await expect(cli.unlock(admin.user.id, admin.user.username, { verificationId: v.id })).rejects.toMatchObject({ code: 'STAFF_TARGET_FORBIDDEN' });
      const agent = await staffMember('client_services');
      await expect(cli.verifyIdentity(agent.user.id, otherAdmin.username, { method: 'video_call' })).rejects.toMatchObject({ code: 'STAFF_TARGET_FORBIDDEN' });
    });
  });

  describe('L8: a changed or withdrawn credential ends the sessions it opened', () => {
    function sessionEndings(all: { event: string; data: Record<string, unknown> }[], reason: string) {
      return all.filter((e) => e.event === 'session.ended' && e.data.reason === reason);
    }

    it('L8: a password change ends the other sessions of the user, not the one that changed it', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const mine = await cardSession(h, user, card);
      const other = await cardSession(h, user, card, 'trading');
      await stepUp(h.app, mine, withCard(card));
      expect((await postJson(h.app, '/api/v1/password', { currentPassword: PASSWORD, newPassword: 'another long phrase 2' }, mine)).status).toBe(204);
      expect((await get(h.app, '/api/v1/session', other)).status).toBe(401);
      expect((await get(h.app, '/api/v1/session', mine)).status).toBe(200);
      expect(sessionEndings(await events(h, user), 'password_changed')).toHaveLength(1);
    });

    it('L8: a help-desk password reset ends every session; staff end all sessions, or lock the user, from the API', async () => {
      const agent = await staffMember('client_services');
      const { user, card } = await createUserWithCard(h.services);
      const sessions = [await cardSession(h, user, card), await cardSession(h, user, card, 'trading')];
      const v = await verification(agent.headers, user.username);
      await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/password-reset`, { verificationId: v.body.id }, agent.headers);
      for (const s of sessions) expect((await get(h.app, '/api/v1/session', s)).status).toBe(401);
      expect(sessionEndings(await events(h, user), 'password_reset')).toHaveLength(2);

      const { user: second, card: secondCard } = await createUserWithCard(h.services);
      const open = [await cardSession(h, second, secondCard), await cardSession(h, second, secondCard)];
      const ended = await del(h, `/api/v1/helpdesk/users/${second.username}/sessions`, agent.headers);
      expect(ended.body).toEqual({ sessionsEnded: 2 });
      for (const s of open) expect((await get(h.app, '/api/v1/session', s)).status).toBe(401);
      expect(sessionEndings(await events(h, second), 'ended_by_staff')).toHaveLength(2);

      const again = await cardSession(h, second, secondCard);
      const locked = await postJson(h.app, `/api/v1/helpdesk/users/${second.username}/lock`, { reason: 'reported compromise' }, agent.headers);
      expect(locked.body).toEqual({ locked: true, sessionsEnded: 1 });
      expect((await get(h.app, '/api/v1/session', again)).status).toBe(401);
      const refused = await startLogin(h.app, second.username);
      expect([refused.status, refused.body.error.code]).toEqual([423, 'LOCKED']);
      // the same answer as any other lock: nothing tells it apart
      expect(refused.body.error.message).toMatch(/24 hours after the last failed attempt/);
      expect((await get(h.app, `/api/v1/helpdesk/users/${second.username}`, agent.headers)).body).toMatchObject({
        locked: true,
        lockedByStaff: true,
        lockedUntil: null,
      });
      h.clock.advance(3 * DAY);
      expect((await startLogin(h.app, second.username)).status).toBe(423);
      // decision 0020: a lock staff placed is lifted by an admin
      const nextDay = await staffMember('admin');
      const v2 = await verification(nextDay.headers, second.username);
      expect((await postJson(h.app, `/api/v1/helpdesk/users/${second.username}/unlock`, { verificationId: v2.body.id }, nextDay.headers)).body).toEqual({
        locked: false,
      });
      expect((await startLogin(h.app, second.username)).status).toBe(200);
      expect(sessionEndings(await events(h, second), 'user_locked')).toHaveLength(1);
    });

    it("L8: a temporary passcode revoked ends its sessions; a card reported lost ends the sessions it opened but the reporter's", async () => {
      const agent = await staffMember('client_services');
      const { user } = await createUserWithCard(h.services);
      const v = await verification(agent.headers, user.username);
      const issued = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/temporary-passcode`, { verificationId: v.body.id }, agent.headers);
      const start = await startLogin(h.app, user.username);
      const withPasscode = bearer((await answer(h.app, start.body.id, issued.body.passcode)).body.session.token);
      await del(h, `/api/v1/helpdesk/users/${user.username}/temporary-passcode`, agent.headers);
      expect((await get(h.app, '/api/v1/session', withPasscode)).status).toBe(401);
      expect(sessionEndings(await events(h, user), 'temporary_access_ended')).toHaveLength(1);

      // a user with a DSC+ and the authenticator: the thief's session opened with the card ends when the card is reported lost
      const owner = await smsUserWithCard();
      const thief = await cardSession(h, owner.user, owner.card, 'trading');
      const reporter = await pushSession(owner.user, owner.phone);
      await stepUpByPush(reporter, owner.user, owner.phone);
      const card2 = (await h.services.devices.listForUser(owner.user.id)).find((d) => d.type === 'dscplus')!;
      expect((await postJson(h.app, `/api/v1/devices/${card2.id}/lost`, { reason: 'stolen' }, reporter)).status).toBe(200);
      expect((await get(h.app, '/api/v1/session', thief)).status).toBe(401);
      expect((await get(h.app, '/api/v1/session', reporter)).status).toBe(200);
      expect(sessionEndings(await events(h, owner.user), 'device_lost')).toHaveLength(1);
    });

    it('L8: an authenticator moved to a new phone ends the sessions the old phone opened', async () => {
      const user = await smsUser(h);
      const old = new TestPhone(base, inbox);
      await old.activate(user.username);
      const session = await pushSession(user, old);
      const moved = new TestPhone(base, inbox);
      await moved.activate(user.username, { purpose: 'migrate' });
      expect((await get(h.app, '/api/v1/session', session)).status).toBe(401);
      expect(sessionEndings(await events(h, user), 'device_replaced')).toHaveLength(1);
    });

    /** A user with a DSC+ who also activated the authenticator (proving the card). */
    async function smsUserWithCard(): Promise<{ user: User; card: CardFile; phone: TestPhone }> {
      const { user, card } = await createUserWithCard(h.services);
      const phone = new TestPhone(base, inbox);
      const view = await phone.start(user.username);
      await phone.complete(view, cardAnswer(card, (view.challenge as { question: string }).question));
      return { user, card, phone };
    }

    /** A portal session approved on the phone (the authenticator offered, or switched to). */
    async function pushSession(user: User, phone: TestPhone): Promise<Record<string, string>> {
      const login = await startLogin(h.app, user.username);
      let flow = login.body;
      if (flow.challenge.type !== 'push') {
        const mobile = flow.devices.find((d: Json) => d.type === 'mobile');
        flow = (await postJson(h.app, `/api/v1/login/${flow.id}`, { device: mobile.id }, claimOf(login))).body;
      }
      await phone.approve(await phone.request(user.username), flow.challenge.number);
      const taken = await claimSession(h.app, login);
      expect(taken.status).toBe(200);
      return bearer(taken.body.session.token);
    }

    async function stepUpByPush(headers: Record<string, string>, user: User, phone: TestPhone): Promise<void> {
      let started = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
      expect(started.body.challenge.type).toBe('push');
      await phone.approve(await phone.request(user.username), started.body.challenge.number);
      started = await postJson(h.app, `/api/v1/step-up/${started.body.id}/complete`, {}, headers);
      expect(started.body.state).toBe('done');
      tookNewToken(headers, started);
    }
  });

  describe('T3, L8: scopes are enforced everywhere', () => {
    it('T3: a temporary-passcode session past day 2 may print and activate the online card, not change the password or step up', async () => {
      const agent = await staffMember('client_services');
      const { user } = await createUserWithCard(h.services);
      const v = await verification(agent.headers, user.username);
      const { passcode } = (await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/temporary-passcode`, { verificationId: v.body.id }, agent.headers))
        .body;
      h.clock.advance(2 * DAY + MINUTE);
      const start = await startLogin(h.app, user.username);
      const limited = bearer((await answer(h.app, start.body.id, passcode)).body.session.token);
      expect((await get(h.app, '/api/v1/session', limited)).body.scope).toBe('online_card_only');
      expect((await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, limited)).body.error.code).toBe('SCOPE_ONLINE_CARD_ONLY');
      expect((await postJson(h.app, '/api/v1/password', { currentPassword: PASSWORD, newPassword: 'new phrase for me 3' }, limited)).body.error.code).toBe(
        'SCOPE_ONLINE_CARD_ONLY',
      );
      expect((await postJson(h.app, '/api/v1/online-card', {}, limited)).status).toBe(200);
    });

    it("L8: a trading session may not use the portal's routes and pages", async () => {
      const { user, card } = await createUserWithCard(h.services);
      const trading = await cardSession(h, user, card, 'trading');
      for (const url of ['/api/v1/devices', '/api/v1/phones', '/api/v1/withdrawal-limits', '/api/v1/dscplus/eligibility']) {
        const refused = await get(h.app, url, trading);
        expect([url, refused.status, refused.body.error.code]).toEqual([url, 403, 'PORTAL_SESSION_REQUIRED']);
      }
      expect((await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, trading)).body.error.code).toBe('PORTAL_SESSION_REQUIRED');
      const page = await h.app.inject({ method: 'GET', url: '/settings/mobile', headers: { cookie: `__Host-sls_session=${trading.authorization!.slice(7)}` } });
      expect(page.statusCode).toBe(403);
      expect(page.body).toContain('data-code="PORTAL_SESSION_REQUIRED"');
      expect((await get(h.app, '/api/v1/session', trading)).status).toBe(200);
    });

    it('D4, L8: reactivating the card ends the temporary access of the live session too: no new online card, no trading with one', async () => {
      const agent = await staffMember('client_services');
      const { user, card } = await createUserWithCard(h.services);
      const v = await verification(agent.headers, user.username);
      const { passcode } = (await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/temporary-passcode`, { verificationId: v.body.id }, agent.headers))
        .body;
      const start = await startLogin(h.app, user.username);
      const session = bearer((await answer(h.app, start.body.id, passcode)).body.session.token);
      const other = bearer((await answer(h.app, (await startLogin(h.app, user.username)).body.id, passcode)).body.session.token);
      const [dsc] = (await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'dscplus');
      const proof = await postJson(h.app, `/api/v1/devices/${dsc!.id}/activation`, {}, session);
      expect(
        (
          await postJson(
            h.app,
            `/api/v1/devices/${dsc!.id}/activation/${proof.body.id}`,
            { response: cardAnswer(card, proof.body.challenge.question) },
            session,
          )
        ).status,
      ).toBe(200);
      // the session goes on with the card; the temporary access is gone from it
      expect((await get(h.app, '/api/v1/session', session)).body.device.type).toBe('dscplus');
      const refused = await postJson(h.app, '/api/v1/online-card', {}, session);
      expect([refused.status, refused.body.error.code]).toEqual([403, 'ONLINE_CARD_NOT_AVAILABLE']);
      expect((await get(h.app, '/api/v1/session', other)).status).toBe(401);
      expect((await startLogin(h.app, user.username, PASSWORD, 'trading')).body.device.type).toBe('dscplus');
    });
  });

  describe('L4: a code-card answer is never accepted twice; pairs cannot be cycled; starting flows is limited', () => {
    async function cardUser(): Promise<{ user: User; codes: string[] }> {
      const user = await createUser(h.services);
      const codes = Array.from({ length: 100 }, (_, i) => String((i * 37 + 11) % 1000).padStart(3, '0'));
      await h.services.onlineCards.importSecurityCodeCard(user.id, `SCC-${user.username}`, codes, 'test');
      return { user, codes };
    }
    const respond = (codes: string[]) => (challenge: Json) => codes[challenge.indexes[0] - 1]! + codes[challenge.indexes[1] - 1]!;

    it('L4/S4: a phished answer is worth nothing: the pending pair is shown again until answered, and once accepted neither the pair (either order) nor its cells are asked or accepted again', async () => {
      const { user, codes } = await cardUser();
      const first = await startLogin(h.app, user.username);
      const phished = respond(codes)(first.body.challenge);
      const second = await startLogin(h.app, user.username);
      expect([...second.body.challenge.indexes].sort()).toEqual([...first.body.challenge.indexes].sort());
      expect((await answer(h.app, first.body.id, phished)).status).toBe(200);
      // the same answer on the other flow, which showed the same pair: refused
      const replayed = await answer(h.app, second.body.id, phished);
      expect([replayed.status, replayed.body.error.code]).toEqual([401, 'LOGIN_FAILED']);
      // an attacker starting many logins never sees the burnt cells again
      const burnt = new Set<number>(first.body.challenge.indexes);
      for (let i = 0; i < 8; i++) {
        const start = await startLogin(h.app, user.username);
        expect(start.status).toBe(200);
        expect(start.body.challenge.indexes.some((x: number) => burnt.has(x))).toBe(false);
        expect((await answer(h.app, start.body.id, respond(codes)(start.body.challenge))).status).toBe(200);
        for (const x of start.body.challenge.indexes) burnt.add(x);
      }
    });

    it('L4/S4: a card whose cells are used up stops working (revoked, audited)', async () => {
      const user = await createUser(h.services);
      const codes = Array.from({ length: 100 }, (_, i) => String((i * 53 + 7) % 1000).padStart(3, '0'));
      const card = await h.services.onlineCards.importSecurityCodeCard(user.id, `SCC-${user.username}`, codes, 'test');
      // 49 answers are accepted (98 cells); the 50th uses the last two cells
      const used = Array.from({ length: 98 }, (_, i) => `cell:${i + 1}`);
      await h.services.store.transaction((trx) => h.services.devices.consume(trx, card.id, used));
      const last = await startLogin(h.app, user.username);
      expect([...last.body.challenge.indexes].sort((a: number, b: number) => a - b)).toEqual([99, 100]);
      expect((await answer(h.app, last.body.id, respond(codes)(last.body.challenge))).status).toBe(200);
      expect((await h.services.devices.get(card.id)).state).toBe('revoked');
      expect((await events(h, user)).some((e) => e.event === 'device.used_up')).toBe(true);
      expect((await startLogin(h.app, user.username)).body.error.code).toBe('NO_ACTIVE_DEVICE');
    });

    it('L4: one user may have only so many flows open, and start only so many an hour, whatever the device (429 TOO_MANY_FLOWS with Retry-After); audited', async () => {
      const limited = await startHarness(db, { policy: { ...h.services.config.policy, openFlowsPerUser: 3, flowStartsPerHour: 5 } });
      try {
        const { user, card } = await createUserWithCard(limited.services);
        const sms = await smsUser(limited);
        for (const who of [user, sms]) {
          for (let i = 0; i < 3; i++) expect((await startLogin(limited.app, who.username)).status).toBe(200);
          const refused = await startLogin(limited.app, who.username);
          expect([refused.status, refused.body.error.code]).toEqual([429, 'TOO_MANY_FLOWS']);
          expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
        }
        // the open ones expire; the hour's count still holds
        limited.clock.advance(11 * MINUTE);
        expect((await startLogin(limited.app, user.username)).status).toBe(200);
        expect((await startLogin(limited.app, user.username)).status).toBe(200);
        const hourly = await startLogin(limited.app, user.username);
        expect([hourly.status, hourly.body.error.code]).toEqual([429, 'TOO_MANY_FLOWS']);
        expect(hourly.body.error.message).toContain('last hour');
        // a step-up is a flow too
        limited.clock.advance(HOUR);
        const start = await startLogin(limited.app, user.username);
        const session = bearer((await answer(limited.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token);
        for (let i = 0; i < 3; i++) await postJson(limited.app, '/api/v1/step-up', { password: PASSWORD }, session);
        expect((await postJson(limited.app, '/api/v1/step-up', { password: PASSWORD }, session)).body.error.code).toBe('TOO_MANY_FLOWS');
        // a wrong password never reaches the limit: it says nothing of the user
        const wrong = await startLogin(limited.app, user.username, 'not the password');
        expect(wrong.body.error.code).toBe('INVALID_CREDENTIALS');
        expect((await limited.services.audit.list({ userId: user.id })).some((e) => e.event === 'login.flow_refused')).toBe(true);
      } finally {
        await limited.close();
      }
    });

    it('L4: concurrent login starts never pass the limit', async () => {
      const limited = await startHarness(db, { policy: { ...h.services.config.policy, openFlowsPerUser: 4 } });
      try {
        const { user } = await createUserWithCard(limited.services);
        const results = await Promise.all(Array.from({ length: 12 }, () => startLogin(limited.app, user.username)));
        expect(results.filter((r) => r.status === 200)).toHaveLength(4);
        for (const r of results.filter((x) => x.status !== 200)) expect(['TOO_MANY_FLOWS', 'TOO_MANY_ATTEMPTS']).toContain(r.body.error.code);
      } finally {
        await limited.close();
      }
    });
  });

  describe('L3: a correct answer is never turned into a lock', () => {
    it('L3/L4: 30 concurrent copies of a right SMS code: exactly one login, no 423, no lock, no refused_locked entry', async () => {
      const user = await smsUser(h);
      const start = await startLogin(h.app, user.username);
      expect(start.body.challenge.type).toBe('sms');
      const [message] = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'loginCode');
      const code = /\b(\d{6})\b/.exec(message!.body)![1]!;
      const results = await Promise.all(Array.from({ length: 30 }, () => answer(h.app, start.body.id, code)));
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      expect(results.filter((r) => r.status === 423)).toEqual([]);
      for (const r of results.filter((x) => x.status !== 200)) expect(['FLOW_EXPIRED', 'TOO_MANY_ATTEMPTS']).toContain(r.body.error.code);
      expect((await h.services.lockout.status(user.username)).locked).toBe(false);
      expect((await events(h, user)).filter((e) => e.event === 'login.refused_locked')).toEqual([]);
    });

    it('L3/L4: 30 concurrent copies of a right DSC+ response with 9 failures already counted: exactly one login, never LOCKED', async () => {
      const { user, card } = await createUserWithCard(h.services);
      for (let i = 0; i < 9; i++) expect((await startLogin(h.app, user.username, `wrong ${i}`)).status).toBe(401);
      const start = await startLogin(h.app, user.username);
      const response = cardAnswer(card, start.body.challenge.question);
      const results = await Promise.all(Array.from({ length: 30 }, () => answer(h.app, start.body.id, response)));
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      expect(results.filter((r) => r.status === 423)).toEqual([]);
      expect(await h.services.lockout.status(user.username)).toMatchObject({ locked: false, failures: 0 });
    });

    it('L3: an attempt left pending by a process that died takes no room after a minute (dropped: its result was never told)', async () => {
      const { user, card } = await createUserWithCard(h.services);
      for (let i = 0; i < 9; i++) expect((await startLogin(h.app, user.username, `wrong ${i}`)).status).toBe(401);
      // what a process killed during the 10th attempt leaves behind: a pending attempt, never finished
      await h.services.lockout.begin(user.username);
      const meanwhile = await startLogin(h.app, user.username);
      expect([meanwhile.status, meanwhile.body.error.code]).toEqual([429, 'TOO_MANY_ATTEMPTS']);
      expect((await h.services.lockout.status(user.username)).locked).toBe(false);
      h.clock.advance(61 * SECOND);
      const start = await startLogin(h.app, user.username);
      expect(start.status).toBe(200);
      expect((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).status).toBe(200);
      // and wrong ones still lock at exactly 10
      for (let i = 0; i < 9; i++) await startLogin(h.app, user.username, `again ${i}`);
      expect((await startLogin(h.app, user.username, 'tenth')).status).toBe(401);
      expect((await startLogin(h.app, user.username)).status).toBe(423);
    });
  });

  describe('K13: the app shows the login the user is looking at', () => {
    it('K13: a new login supersedes the older pending push: the app lists only the new one, the old request is gone, and its page starts over', async () => {
      const user = await smsUser(h);
      const phone = new TestPhone(base, inbox);
      await phone.activate(user.username);
      const abandoned = await startLogin(h.app, user.username);
      const oldRequest = await phone.request(user.username);
      h.clock.advance(20 * SECOND);
      const retry = await startLogin(h.app, user.username);
      const { requests } = await phone.poll();
      expect(requests).toHaveLength(1);
      expect(requests[0]!.id).not.toBe(oldRequest.id);
      expect((await readLogin(h.app, abandoned.body.id)).body.state).toBe('failed');
      // answering the old request, even with the new number, is refused and counts nothing
      const late = await phone.approve(oldRequest, retry.body.challenge.number).catch((e: { code: string }) => e);
      expect(late).toMatchObject({ code: 'FLOW_EXPIRED' });
      expect((await h.services.lockout.status(user.username)).failures).toBe(0);
      expect(await phone.approve(requests[0]!, retry.body.challenge.number)).toEqual({ state: 'approved' });
      expect((await claimSession(h.app, retry)).status).toBe(200);
      expect((await events(h, user)).some((e) => e.event === 'login.superseded' && e.data.flowId === abandoned.body.id)).toBe(true);
    });
  });

  describe('X7, K8: no second factor is bound by what one knows alone', () => {
    it('K8, X7: the password and the app PIN do not recover the authenticator onto another phone', async () => {
      const user = await smsUser(h);
      const victim = new TestPhone(base, inbox);
      await victim.activate(user.username, { pin: 'v1ctim' });
      const attacker = new TestPhone(base, inbox);
      const view = await attacker.start(user.username, 'recover');
      // the token went to the victim's number, which the attacker does not hold
      for (const guess of ['v1ctim', '000000', '123456']) await attacker.complete(view, guess, 'v1ctim').catch(() => undefined);
      const devices = await h.services.devices.listForUser(user.id);
      expect(devices.filter((d) => d.type === 'mobile').map((d) => d.state)).toEqual(['active']);
      expect((await events(h, user)).filter((e) => e.event === 'mobile.activation_failed')).toHaveLength(3);
    });

    it('X7: a portal user without a device cannot get one with the password: no session, and the app refuses', async () => {
      const user = await createUser(h.services);
      expect((await startLogin(h.app, user.username)).body.error.code).toBe('NO_ACTIVE_DEVICE');
      const refused = await new TestPhone(base, inbox).start(user.username).catch((e: { code: string }) => e);
      expect(refused).toMatchObject({ code: 'NO_ACTIVE_DEVICE' });
    });
  });

  it('X1: the audit chain is intact after the attacks', async () => {
    expect((await h.services.audit.verify()).ok).toBe(true);
  });
});

describe('wrong answers still count (L3)', () => {
  it('L3: a wrong DSC+ response counts, exactly as before the answer protocol was shared', async () => {
    const h = await startHarness('sqlite');
    try {
      const { user, card } = await createUserWithCard(h.services);
      const start = await startLogin(h.app, user.username);
      const wrong = await answer(h.app, start.body.id, wrongAnswer(cardAnswer(card, start.body.challenge.question)));
      expect([wrong.status, wrong.body.error.attemptsLeft]).toEqual([401, 2]);
      expect((await h.services.lockout.status(user.username)).failures).toBe(1);
    } finally {
      await h.close();
    }
  });
});
