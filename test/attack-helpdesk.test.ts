/**
 * Attacks through the help desk (T1–T5, A5, L3, K14, R2, C6, X7): someone
 * who deceived client services into a temporary passcode, or who holds a
 * help-desk seat, must get no more than the rules give them. Each test
 * names the rule it proves, and failed before its fix (or guards a path no
 * other test walks), on every database.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parsePskc } from '../src/devices/dscplus/pskc.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import type { Role } from '../src/store/schema.js';
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
import { answer, bearer, get, indexAnswerOf, loginSession, postJson, send, startLogin, stepUp, withCard, type Json } from './support/api.js';
import { Agent, alertBox, byId, csrfOf, form, textById } from './support/html.js';
import { cliEnv, sls, slsInProcess } from './support/cli.js';
import { BUILT_IN_DRIVERS } from './support/kind-drivers.js';
import { issuePasscode, stepUpStaff } from './support/staff.js';
import { verifiedNumber } from './support/phone.js';
import { SESSION_COOKIE } from '../src/http/session-cookie.js';

// the CLI case runs `sls` processes
vi.setConfig({ testTimeout: 60_000 });

const ADDRESS = { name: 'M. Stranger', line1: '9 Rue du Faux', city: 'Lyon', postalCode: '69001', country: 'FR' };

/** The Security Code Card answer of a sharing's requester (S1). */
const indexAnswer = indexAnswerOf(REQUESTER_SCC_CODES);

describe.each(DATABASES)('attacks through the help desk on %s', (database) => {
  let h: Harness;
  let stock: string[];

  beforeAll(async () => {
    h = await startHarness(database);
    const plain = readFileSync(new URL('./fixtures/pskc/batch-plain.xml', import.meta.url), 'utf8');
    // the batch's cards, under serials of their own, enough for every test
    const keys = Array.from({ length: 4 }, (_, round) => parsePskc(plain).map((key) => ({ ...key, serial: `ATK${round}${key.serial}` }))).flat();
    stock = (await h.services.devices.importStock(keys, 'test', 'batch')).map((d) => d.serial!);
  });
  afterAll(async () => h.close());

  /** A staff member of that role with their own card, and an API session of theirs stepped up with it (V1, X7). */
  async function staffMember(role: Role = 'client_services'): Promise<{ user: User; card: CardFile; headers: Record<string, string> }> {
    const { user, card } = await createUserWithCard(h.services, '1234', { role });
    return { user, card, headers: await staffSession(user, card) };
  }

  /** A session of a staff member (or a client), opened and stepped up with their card. */
  const staffSession = (user: User, card: CardFile) => loginSession(h.app, user.username, withCard(card), { stepUp: true });

  /** A browser signed in to the console through the pages, stepped up (V1, X7). */
  async function consoleOf(user: User, card: CardFile): Promise<Agent> {
    const browser = new Agent(h.app);
    const login = await browser.get('/login');
    const started = await browser.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
    const challenge = await browser.get(started.location!);
    await browser.submit(challenge, started.location!, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) });
    await stepUpStaff(h.app, browser, card);
    return browser;
  }

  const request = (method: string, url: string, headers: Record<string, string>, payload?: unknown) => send(h.app, method, url, headers, payload);

  /**
   * H3: a device sharing across accounts waiting for compliance: `owner`'s
   * card, asked for by a user of the owner's entity in an account of their own.
   */
  async function pendingSharing(owner: { user: User; card: CardFile }): Promise<{ id: string; requester: User }> {
    const { requester } = await createSharingRequester(h.services, owner.user, 'other-account');
    const start = await startLogin(h.app, requester.username);
    const headers = bearer((await answer(h.app, start.body.id, indexAnswer(start.body.challenge))).body.session.token as string);
    await stepUp(h.app, headers, indexAnswer);
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.user.username, ownerPassword: PASSWORD }, headers);
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const id = started.body.id as string;
    await postJson(h.app, `/api/v1/sharing/${id}/answer`, { response: cardAnswer(owner.card, started.body.challenge.question) }, headers);
    const confirmed = await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, {}, headers);
    expect(confirmed.body.state, JSON.stringify(confirmed.body)).toBe('pending');
    return { id, requester };
  }

  /** A portal session of a client, stepped up with `respond` (a DSC+ request is a security setting, X7). */
  async function clientSession(user: User, respond: (challenge: Json) => string): Promise<Record<string, string>> {
    const start = await startLogin(h.app, user.username);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const done = await answer(h.app, start.body.id, respond(start.body.challenge));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const headers = bearer(done.body.session.token as string);
    await stepUp(h.app, headers, respond);
    return headers;
  }

  /**
   * R2: someone who deceived the help desk: a temporary passcode issued to
   * the client's account (the card reported lost), and a session opened and
   * stepped up with it; then a DSC+ requested to the deceiver's address.
   */
  async function requestedUnderTemporaryAccess(agentId: string, address = ADDRESS) {
    const { user, card } = await createUserWithCard(h.services);
    const { passcode } = await issuePasscode(h.services, agentId, user.username, 'lost');
    const headers = await clientSession(user, () => passcode);
    const made = await postJson(h.app, '/api/v1/dscplus/requests', { address, pin: '2468' }, headers);
    expect(made.status, JSON.stringify(made.body)).toBe(200);
    return { user, card, deviceId: made.body.device.id as string };
  }

  const auditOf = async (user: User, event: string) =>
    (await h.services.audit.list({ username: user.username, limit: 100 })).filter((e) => e.event === event).map((e) => e.data as Json);

  // ------------------------------------------------------------------ R2, C6: a replacement ordered under temporary access

  it('T1, A5, X7: a verification made before the number on record changed (a new number verified, one removed) no longer vouches for the caller: a temporary passcode, a password reset or an unlock with it is refused (403 IDENTITY_NOT_VERIFIED, audited details_changed); a new verification works', async () => {
    const agent = await staffMember();
    const { user } = await createUserWithCard(h.services);
    const before = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'callback_on_record' });
    // the number on record changes after the call was verified (the fraudster put their own number there)
    h.clock.advance(1000);
    const phoneId = await verifiedNumber(h, user.id);
    for (const [url, payload] of [
      [`/api/v1/helpdesk/users/${user.username}/temporary-passcode`, { verificationId: before.id, deviceStatus: 'suspended' }],
      [`/api/v1/helpdesk/users/${user.username}/password-reset`, { verificationId: before.id }],
    ] as const) {
      const res = await postJson(h.app, url, payload, agent.headers);
      expect([url, res.status, res.body.error?.code]).toEqual([url, 403, 'IDENTITY_NOT_VERIFIED']);
    }
    const removed = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'callback_on_record' });
    await h.services.phones.remove(user.id, phoneId, `user:${user.id}`, null);
    const afterRemoval = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/password-reset`, { verificationId: removed.id }, agent.headers);
    expect([afterRemoval.status, afterRemoval.body.error?.code]).toEqual([403, 'IDENTITY_NOT_VERIFIED']);
    expect(afterRemoval.body.error.message).toContain('number on record');
    expect((await h.services.devices.listForUser(user.id)).map((d) => [d.type, d.state])).toEqual([['dscplus', 'active']]);
    const refused = await h.services.audit.list({ type: 'helpdesk.verification_refused', userId: user.id, limit: 10 });
    expect(refused.map((e) => e.data.reason)).toEqual(['details_changed', 'details_changed', 'details_changed']);
    // verified again, on the details as they are now
    const fresh = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'callback_on_record' });
    const ok = await postJson(
      h.app,
      `/api/v1/helpdesk/users/${user.username}/temporary-passcode`,
      { verificationId: fresh.id, deviceStatus: 'suspended' },
      agent.headers,
    );
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });

  it("T1, A5, A1, X7: a verification made before the caller's identification data was corrected (an ID number, a date of birth, by an accomplice at the help desk) no longer vouches for the caller: a temporary passcode, a password reset, an unlock or a number on record with it is refused (403 IDENTITY_NOT_VERIFIED, audited details_changed); another entity's correction voids nothing", async () => {
    const agent = await staffMember();
    const accomplice = await staffMember();
    const entity = await h.services.entities.create(
      {
        kind: 'individual',
        name: 'Ada Verified',
        identification: { dateOfBirth: '1970-02-03', citizenship: 'FR', residenceCountry: 'FR', documentType: 'passport', documentNumber: '11AA22222' },
      },
      'test',
    );
    const user = await h.services.users.create({ username: `idc${Date.now().toString(36)}`, password: PASSWORD, entityId: entity.id }, 'test');
    await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
    const other = await h.services.entities.create(
      {
        kind: 'individual',
        name: 'Bo Other',
        identification: { dateOfBirth: '1981-02-03', citizenship: 'FR', residenceCountry: 'FR', documentType: 'passport', documentNumber: '33CC44444' },
      },
      'test',
    );
    const bystander = await h.services.users.create({ username: `idb${Date.now().toString(36)}`, password: PASSWORD, entityId: other.id }, 'test');
    const kept = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
    // another person's correction changes nothing for this caller
    await h.services.helpDesk.correctIdentification(
      accomplice.user.id,
      bystander.username,
      { identification: { documentNumber: '55EE66666' } },
      { document: 'passport', reference: 'ticket-b' },
    );
    const unaffected = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/unlock`, { verificationId: kept.id }, agent.headers);
    expect(unaffected.status, JSON.stringify(unaffected.body)).toBe(200);
    const before = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
    // the accomplice puts the fraudster's details on record, then the fraudster calls the agent, who verified "the caller" already
    await h.services.helpDesk.correctIdentification(
      accomplice.user.id,
      user.username,
      { identification: { dateOfBirth: '1990-09-09', documentNumber: '77XX88888' } },
      { document: 'passport', reference: 'ticket-a' },
    );
    for (const [url, payload] of [
      [`/api/v1/helpdesk/users/${user.username}/temporary-passcode`, { verificationId: before.id, deviceStatus: 'suspended' }],
      [`/api/v1/helpdesk/users/${user.username}/password-reset`, { verificationId: before.id }],
      [`/api/v1/helpdesk/users/${user.username}/unlock`, { verificationId: before.id }],
      [`/api/v1/helpdesk/users/${user.username}/phones`, { verificationId: before.id, country: 'FR', number: '612345678' }],
    ] as const) {
      const res = await postJson(h.app, url, payload, agent.headers);
      expect([url, res.status, res.body.error?.code]).toEqual([url, 403, 'IDENTITY_NOT_VERIFIED']);
      expect(res.body.error.message).toContain('identification data');
    }
    const refused = await h.services.audit.list({ type: 'helpdesk.verification_refused', userId: user.id, limit: 10 });
    expect(refused.map((e) => e.data.reason)).toEqual(['details_changed', 'details_changed', 'details_changed', 'details_changed']);
    expect((await h.services.devices.listForUser(user.id)).map((d) => [d.type, d.state])).toEqual([['dscplus', 'active']]);
    // verified again, against the details as they are now
    const fresh = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
    const ok = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/password-reset`, { verificationId: fresh.id }, agent.headers);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });

  /** R2: a client with SMS (a verified number) and a DSC+: what the password and a SIM would bind a device of their own against. */
  async function smsAndCard(): Promise<{ user: User; cardId: string }> {
    const sms = await BUILT_IN_DRIVERS.sms!.holder(h);
    const { device } = await h.services.devices.addDscPlus({ userId: sms.user.id, pin: '1234' }, 'test');
    return { user: sms.user, cardId: device.id };
  }

  /** K7: the mobile authenticator's activation by an SMS token, as whoever holds the password and the SIM asks for it. */
  const smsActivation = (user: User) => postJson(h.app, '/api/v1/mobile/activations', { username: user.username, password: PASSWORD, purpose: 'activate' });

  it('R2, T1, K7, D2: a DSC+ client services mark lost without a verification of the caller (the password and a SIM on the telephone) waits as a weaker report does: no authenticator by SMS meanwhile; with the verification it does not wait; a verification that does not hold is refused and changes nothing', async () => {
    const agent = await staffMember();
    const victim = await smsAndCard();
    const lost = await postJson(h.app, `/api/v1/helpdesk/devices/${victim.cardId}/lost`, { reason: 'stolen' }, agent.headers);
    expect(lost.status, JSON.stringify(lost.body)).toBe(200);
    const bound = await smsActivation(victim.user);
    expect([bound.status, bound.body.error?.code], JSON.stringify(bound.body)).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    expect(await auditOf(victim.user, 'device.state_changed')).toContainEqual(expect.objectContaining({ to: 'lost', weakerProof: true }));

    // a colleague's verification is no verification: refused, the card untouched
    const other = await smsAndCard();
    const colleague = await staffMember();
    const theirs = await h.services.helpDesk.verifyIdentity(colleague.user.id, other.user.username, { method: 'id_document' });
    const refused = await postJson(h.app, `/api/v1/helpdesk/devices/${other.cardId}/lost`, { reason: 'lost', verificationId: theirs.id }, agent.headers);
    expect([refused.status, refused.body.error?.code]).toEqual([404, 'VERIFICATION_NOT_FOUND']);
    expect((await h.services.devices.get(other.cardId)).state).toBe('active');
    expect((await auditOf(other.user, 'helpdesk.verification_refused')).map((d) => [d.action, d.reason])).toEqual([['device_lost', 'other_staff']]);
    // the agent's own verification: the owner binds a device with what they hold at once (R2)
    const mine = await h.services.helpDesk.verifyIdentity(agent.user.id, other.user.username, { method: 'id_document' });
    const verified = await postJson(h.app, `/api/v1/helpdesk/devices/${other.cardId}/lost`, { reason: 'lost', verificationId: mine.id }, agent.headers);
    expect(verified.status, JSON.stringify(verified.body)).toBe(200);
    const now = await smsActivation(other.user);
    expect([now.status, now.body.proof], JSON.stringify(now.body)).toEqual([200, 'sms']);

    // the console's form likewise: on the user page alone the report waits; with the agent's verification in effect it does not
    const browser = await consoleOf(agent.user, agent.card);
    for (const verifiedFirst of [false, true]) {
      const client = await smsAndCard();
      const path = `/helpdesk/users/${client.user.username}`;
      const page = verifiedFirst
        ? await browser.get(
            `${path}/verifications/${(await h.services.helpDesk.verifyIdentity(agent.user.id, client.user.username, { method: 'id_document' })).id}`,
          )
        : await browser.get(path);
      const marked = await browser.submit(page, `${path}/devices/${client.cardId}/lost`, { reason: 'lost' });
      expect(marked.status, marked.html).toBe(303);
      expect((await h.services.devices.get(client.cardId)).state).toBe('lost');
      expect(textById((await browser.get(marked.location!)).html, `loss-waiting-${client.cardId}`) !== undefined).toBe(!verifiedFirst);
      expect([verifiedFirst, (await smsActivation(client.user)).status]).toEqual([verifiedFirst, verifiedFirst ? 200 : 403]);
    }
  });

  it('R2, L4, X7: two admins ending the same wait at once end it once: one 200, the other 409 LOSS_NOT_WAITING; audited and told once', async () => {
    const agent = await staffMember();
    const admins = [await staffMember('admin'), await staffMember('admin')];
    const victim = await smsAndCard();
    await h.services.dscPlusRequests.reportLost({ staffUserId: agent.user.id }, victim.cardId, 'lost');
    const checks = await Promise.all(admins.map((a) => h.services.helpDesk.verifyIdentity(a.user.id, victim.user.username, { method: 'video_call' })));
    const answers = await Promise.all(
      admins.map((a, i) => postJson(h.app, `/api/v1/helpdesk/devices/${victim.cardId}/loss-confirmed`, { verificationId: checks[i]!.id }, a.headers)),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(answers.find((r) => r.status === 409)!.body.error?.code).toBe('LOSS_NOT_WAITING');
    expect(await auditOf(victim.user, 'device.loss_confirmed')).toHaveLength(1);
    // told once: one message on each of the owner's channels
    const told = (await h.services.notifier.list({ userId: victim.user.id })).filter((n) => n.template === 'deviceLossConfirmed').map((n) => n.channel);
    expect(told.length).toBeGreaterThan(0);
    expect(told).toEqual([...new Set(told)]);
  });

  it('R2, T1, X7, N1: the wait after a loss reported with a weaker proof is ended by an admin only, with a verification of their own (API, console, `sls`): client services are refused 403 LOSS_CONFIRM_ADMIN_ONLY, audited; a device not waiting answers 409 LOSS_NOT_WAITING; once ended, the owner binds a device at once and is told', async () => {
    const agent = await staffMember();
    const admin = await staffMember('admin');
    const reported = async () => {
      const victim = await smsAndCard();
      await h.services.dscPlusRequests.reportLost({ staffUserId: agent.user.id }, victim.cardId, 'lost');
      return victim;
    };
    // the API
    const one = await reported();
    const agentCheck = await h.services.helpDesk.verifyIdentity(agent.user.id, one.user.username, { method: 'id_document' });
    const byAgent = await postJson(h.app, `/api/v1/helpdesk/devices/${one.cardId}/loss-confirmed`, { verificationId: agentCheck.id }, agent.headers);
    expect([byAgent.status, byAgent.body.error?.code]).toEqual([403, 'LOSS_CONFIRM_ADMIN_ONLY']);
    expect(await auditOf(one.user, 'helpdesk.refused')).toEqual([
      expect.objectContaining({ action: 'loss_confirmed', reason: 'admin_only', deviceId: one.cardId }),
    ]);
    const unverified = await postJson(h.app, `/api/v1/helpdesk/devices/${one.cardId}/loss-confirmed`, { verificationId: agentCheck.id }, admin.headers);
    expect([unverified.status, unverified.body.error?.code]).toEqual([404, 'VERIFICATION_NOT_FOUND']);
    expect((await smsActivation(one.user)).body.error?.code).toBe('STRONGER_DEVICE_REQUIRED');
    const adminCheck = await h.services.helpDesk.verifyIdentity(admin.user.id, one.user.username, { method: 'video_call' });
    const ended = await postJson(h.app, `/api/v1/helpdesk/devices/${one.cardId}/loss-confirmed`, { verificationId: adminCheck.id }, admin.headers);
    expect([ended.status, ended.body.state], JSON.stringify(ended.body)).toEqual([200, 'lost']);
    expect(await auditOf(one.user, 'device.loss_confirmed')).toEqual([expect.objectContaining({ deviceId: one.cardId, verificationId: adminCheck.id })]);
    expect((await h.services.notifier.list({ userId: one.user.id })).map((n) => n.template)).toContain('deviceLossConfirmed');
    const again = await postJson(h.app, `/api/v1/helpdesk/devices/${one.cardId}/loss-confirmed`, { verificationId: adminCheck.id }, admin.headers);
    expect([again.status, again.body.error?.code]).toEqual([409, 'LOSS_NOT_WAITING']);
    const activated = await smsActivation(one.user);
    expect([activated.status, activated.body.proof], JSON.stringify(activated.body)).toEqual([200, 'sms']);

    // the console: the agent sees the wait and no form (a form sent anyway is refused); the admin's form ends it
    const two = await reported();
    const path = `/helpdesk/users/${two.user.username}`;
    const agentBrowser = await consoleOf(agent.user, agent.card);
    const agentCheck2 = await h.services.helpDesk.verifyIdentity(agent.user.id, two.user.username, { method: 'id_document' });
    const agentPage = await agentBrowser.get(`${path}/verifications/${agentCheck2.id}`);
    expect(textById(agentPage.html, `loss-waiting-${two.cardId}`)).toContain('administrator');
    expect(byId(agentPage.html, `loss-confirmed-${two.cardId}`)).toBeUndefined();
    const csrf = csrfOf(form(agentPage.html, `${path}/devices/${two.cardId}/returned`));
    const forced = await agentBrowser.post(`${path}/devices/${two.cardId}/loss-confirmed`, { _csrf: csrf, verificationId: agentCheck2.id });
    expect([forced.status, alertBox(forced.html)?.code]).toEqual([403, 'LOSS_CONFIRM_ADMIN_ONLY']);
    const adminBrowser = await consoleOf(admin.user, admin.card);
    const adminCheck2 = await h.services.helpDesk.verifyIdentity(admin.user.id, two.user.username, { method: 'id_document' });
    const adminPage = await adminBrowser.get(`${path}/verifications/${adminCheck2.id}`);
    expect(byId(adminPage.html, `loss-confirmed-${two.cardId}`)).toBeDefined();
    const done = await adminBrowser.submit(adminPage, `${path}/devices/${two.cardId}/loss-confirmed`, { verificationId: adminCheck2.id });
    expect(done.status, done.html).toBe(303);
    expect(textById((await adminBrowser.get(done.location!)).html, 'notice')).toContain('wait');
    expect((await smsActivation(two.user)).status).toBe(200);

    // `sls helpdesk lost` without --verification marks the wait; `confirm-loss`: the agent is refused (exit 1), the admin ends it
    const three = await smsAndCard();
    const env = cliEnv(h.database);
    const cli = (args: string[]) => slsInProcess(['helpdesk', ...args], env);
    expect((await cli(['lost', '--staff', agent.user.username, '--device', three.cardId])).code).toBe(0);
    const verifyBy = async (staff: User) =>
      (await cli(['verify', '--staff', staff.username, '--user', three.user.username, '--method', 'id_document'])).stdout.trim();
    const cliRefused = await cli(['confirm-loss', '--staff', agent.user.username, '--device', three.cardId, '--verification', await verifyBy(agent.user)]);
    expect([cliRefused.code, cliRefused.stdout, cliRefused.stderr]).toEqual([1, '', expect.stringContaining('administrator')]);
    expect((await smsActivation(three.user)).body.error?.code).toBe('STRONGER_DEVICE_REQUIRED');
    const cliDone = await cli(['confirm-loss', '--staff', admin.user.username, '--device', three.cardId, '--verification', await verifyBy(admin.user)]);
    expect([cliDone.code, cliDone.stderr]).toEqual([0, '']);
    expect(cliDone.stdout).toContain('wait');
    expect((await smsActivation(three.user)).status).toBe(200);
  });

  it('R2, T1, X7, C5 (decisions 0028, 0036): a help-desk seat ends no wait by marking the card returned: a DSC+ client services mark returned without a verification of the owner — in use, or reported lost with a weaker proof — still counts as held for the wait (no authenticator by SMS); with the agent’s verification an active card’s return does not wait; an admin ends the wait of a returned card', async () => {
    const agent = await staffMember();
    const admin = await staffMember('admin');
    const returned = (cardId: string, body: Json = {}) => postJson(h.app, `/api/v1/helpdesk/devices/${cardId}/returned`, body, agent.headers);

    // "I sent my card back": the card in use marked returned on the telephone, the password and the SIM then bind a phone
    const inUse = await smsAndCard();
    const back = await returned(inUse.cardId);
    expect([back.status, back.body.state], JSON.stringify(back.body)).toEqual([200, 'returned']);
    const bound = await smsActivation(inUse.user);
    expect([bound.status, bound.body.error?.code], JSON.stringify(bound.body)).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    expect(await auditOf(inUse.user, 'device.state_changed')).toContainEqual(expect.objectContaining({ to: 'returned', weakerProof: true }));

    // a card whose loss waits: its return by an agent is no admin's confirmation (decision 0028)
    const waiting = await smsAndCard();
    await h.services.dscPlusRequests.reportLost({ staffUserId: agent.user.id }, waiting.cardId, 'lost');
    expect((await returned(waiting.cardId)).status).toBe(200);
    const still = await smsActivation(waiting.user);
    expect([still.status, still.body.error?.code], JSON.stringify(still.body)).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    // an admin, with a verification of their own, ends it
    const adminCheck = await h.services.helpDesk.verifyIdentity(admin.user.id, waiting.user.username, { method: 'video_call' });
    const ended = await postJson(h.app, `/api/v1/helpdesk/devices/${waiting.cardId}/loss-confirmed`, { verificationId: adminCheck.id }, admin.headers);
    expect([ended.status, ended.body.state], JSON.stringify(ended.body)).toEqual([200, 'returned']);
    expect((await smsActivation(waiting.user)).status).toBe(200);

    // the agent's own verification of the owner: the return does not wait (T1), as a verified loss report
    const verified = await smsAndCard();
    const check = await h.services.helpDesk.verifyIdentity(agent.user.id, verified.user.username, { method: 'id_document' });
    expect((await returned(verified.cardId, { verificationId: check.id })).status).toBe(200);
    const now = await smsActivation(verified.user);
    expect([now.status, now.body.proof], JSON.stringify(now.body)).toEqual([200, 'sms']);
  });

  it('R2, C6, T3: a DSC+ requested under a temporary passcode is allowed and marked as such (the device and its device.requested entry); one requested with the permanent card is not', async () => {
    const agent = await staffMember();
    const deceived = await requestedUnderTemporaryAccess(agent.user.id);
    const device = await h.services.devices.get(deceived.deviceId);
    expect(device).toMatchObject({ state: 'requested', params: { request: { temporaryAccess: true, address: { city: 'Lyon', country: 'FR' } } } });
    expect(await auditOf(deceived.user, 'device.requested')).toEqual([expect.objectContaining({ deviceId: deceived.deviceId, temporaryAccess: true })]);

    const { user, card } = await createUserWithCard(h.services);
    const headers = await clientSession(user, (challenge) => cardAnswer(card, challenge.question));
    const made = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, headers);
    expect(made.status).toBe(200);
    expect((await h.services.devices.get(made.body.device.id)).params).toMatchObject({ request: { temporaryAccess: false } });
    expect(await auditOf(user, 'device.requested')).toEqual([expect.objectContaining({ temporaryAccess: false })]);
    // and it ships without any confirmation
    const shipped = await postJson(h.app, `/api/v1/helpdesk/devices/${made.body.device.id}/ship`, { serial: stock.shift() }, agent.headers);
    expect([shipped.status, shipped.body.state]).toEqual([200, 'shipped']);
  });

  it('R2, C6, X7: the help desk API shows the address to confirm and refuses to ship such a card without addressConfirmed (409 ADDRESS_NOT_CONFIRMED, audited, nothing shipped); with it the card ships and the confirmation is audited', async () => {
    const agent = await staffMember();
    const { user, deviceId } = await requestedUnderTemporaryAccess(agent.user.id);

    const seen = await get(h.app, `/api/v1/helpdesk/users/${user.username}`, agent.headers);
    expect(seen.body.devices.find((d: Json) => d.id === deviceId)).toMatchObject({ state: 'requested', addressToConfirm: ADDRESS });
    expect(seen.body.devices.filter((d: Json) => d.id !== deviceId).map((d: Json) => d.addressToConfirm)).toEqual([null, null]);

    const serial = stock.shift()!;
    for (const body of [{ serial }, { serial, addressConfirmed: false }]) {
      const refused = await postJson(h.app, `/api/v1/helpdesk/devices/${deviceId}/ship`, body, agent.headers);
      expect([refused.status, refused.body.error?.code]).toEqual([409, 'ADDRESS_NOT_CONFIRMED']);
      expect(refused.body.error.message).toContain('Lyon');
    }
    expect((await h.services.devices.get(deviceId)).state).toBe('requested');
    expect((await h.services.devices.listStock()).map((d) => d.serial)).toContain(serial);
    const refusal = expect.objectContaining({ deviceId, reason: 'address_not_confirmed', country: 'FR' });
    expect(await auditOf(user, 'device.ship_refused')).toEqual([refusal, refusal]);

    const shipped = await postJson(h.app, `/api/v1/helpdesk/devices/${deviceId}/ship`, { serial, addressConfirmed: true }, agent.headers);
    expect([shipped.status, shipped.body.state]).toEqual([200, 'shipped']);
    const entries = (await h.services.audit.list({ username: user.username, limit: 100 })).filter((e) => e.event === 'device.shipped');
    expect(entries.map((e) => [e.actor, e.data])).toEqual([
      [`staff:${agent.user.id}`, expect.objectContaining({ serial, temporaryAccess: true, addressConfirmed: true })],
    ]);
    // the services refuse the same way (the card cannot be shipped by a caller that forgets the option)
    const other = await requestedUnderTemporaryAccess(agent.user.id);
    await expect(h.services.dscPlusRequests.ship(agent.user.id, other.deviceId, stock[0]!)).rejects.toMatchObject({ code: 'ADDRESS_NOT_CONFIRMED' });
  });

  it('R2, C6, C8, X7: two staff members shipping the same request at once, each with a card of the stock: one card ships, the other is refused (409 DEVICE_STATE) and stays in stock', async () => {
    const [first, second] = [await staffMember(), await staffMember()];
    const { deviceId } = await requestedUnderTemporaryAccess(first.user.id);
    const serials = [stock.shift()!, stock.shift()!];
    const answers = await Promise.all(
      [first, second].map((staff, i) =>
        postJson(h.app, `/api/v1/helpdesk/devices/${deviceId}/ship`, { serial: serials[i], addressConfirmed: true }, staff.headers),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
    expect(answers.find((a) => a.status === 409)!.body.error.code).toBe('DEVICE_STATE');
    const shipped = answers.findIndex((a) => a.status === 200);
    expect((await h.services.devices.get(deviceId)).serial).toBe(serials[shipped]);
    const inStock = (await h.services.devices.listStock()).map((d) => d.serial);
    expect([inStock.includes(serials[shipped]!), inStock.includes(serials[1 - shipped]!)]).toEqual([false, true]);
    stock.push(serials[1 - shipped]!);
  });

  it('R2, C6, X2: the console warns with the address and asks for the confirmation; a form sent without the box is refused on the page; with it the card ships', async () => {
    const { user: staffUser, card } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const browser = new Agent(h.app);
    const login = await browser.get('/login');
    const started = await browser.submit(login, '/login', { username: staffUser.username, password: PASSWORD, app: 'portal' });
    const challenge = await browser.get(started.location!);
    await browser.submit(challenge, started.location!, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) });
    await stepUpStaff(h.app, browser, card);
    const { user, deviceId } = await requestedUnderTemporaryAccess(staffUser.id);

    const path = `/helpdesk/users/${user.username}`;
    const page = await browser.get(path);
    expect(page.status).toBe(200);
    const warning = textById(page.html, `confirm-address-${deviceId}`);
    expect(warning).toContain('temporary passcode');
    expect(warning).toContain('M. Stranger, 9 Rue du Faux, 69001 Lyon, FR');
    const box = byId(page.html, `address-confirmed-${deviceId}`);
    expect(box?.attrs).toMatchObject({ type: 'checkbox', name: 'addressConfirmed', value: 'yes', required: '' });

    const serial = stock.shift()!;
    const refused = await browser.submit(page, `${path}/devices/${deviceId}/ship`, { serial });
    expect(refused.status).toBe(409);
    expect(byId(refused.html, 'form-error')?.attrs['data-code']).toBe('ADDRESS_NOT_CONFIRMED');
    expect((await h.services.devices.get(deviceId)).state).toBe('requested');

    const shipped = await browser.submit(await browser.get(path), `${path}/devices/${deviceId}/ship`, { serial, addressConfirmed: 'yes' });
    expect(shipped.status, shipped.html).toBe(303);
    expect((await h.services.devices.get(deviceId)).state).toBe('shipped');
    expect(await auditOf(user, 'device.shipped')).toEqual([expect.objectContaining({ addressConfirmed: true })]);
    // shipped, the card has no address to confirm any more
    expect(textById((await browser.get(path)).html, `confirm-address-${deviceId}`)).toBeUndefined();
  });

  it('R2, C6, X7: `sls helpdesk ship` refuses such a card without --address-confirmed (exit 1, one line) and ships it with it', async () => {
    const agent = await staffMember();
    const { deviceId } = await requestedUnderTemporaryAccess(agent.user.id);
    const env = cliEnv(h.database);
    const out = `${h.database.dataDir}/shipped-${deviceId}.json`;
    const serial = stock.shift()!;
    const args = ['helpdesk', 'ship', '--staff', agent.user.username, '--device', deviceId, '--serial', serial, '--out', out];
    const refused = await sls(args, env);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringContaining('Lyon')]);
    expect((await h.services.devices.get(deviceId)).state).toBe('requested');
    const shipped = await sls([...args, '--address-confirmed'], env);
    expect([shipped.code, shipped.stderr]).toEqual([0, '']);
    expect((await h.services.devices.get(deviceId)).state).toBe('shipped');
  });

  it('N1, R2, X2: the dscplusRequested notice names the city and country the card ships to, in en, fr and zh-Hant', async () => {
    const agent = await staffMember();
    const expected = { en: ['Lyon', 'France'], fr: ['Lyon', 'France'], 'zh-Hant': ['Lyon', '法國'] } as const;
    for (const [language, words] of Object.entries(expected)) {
      const { user } = await createUserWithCard(h.services);
      await h.services.noticePreferences.choose(user.id, { language, timeZone: null }, 'test');
      const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'security_questions' });
      const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.user.id, user.username, { verificationId: verification.id });
      const headers = await clientSession(user, () => passcode);
      expect((await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, headers)).status).toBe(200);
      const notices = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'dscplusRequested');
      expect(notices.length).toBeGreaterThan(0);
      for (const notice of notices) {
        expect(notice.language).toBe(language);
        for (const word of words) expect(notice.body, `${language} ${notice.channel}`).toContain(word);
      }
    }
  });

  it('N1, X7: a mobile number client services put on record is told to the user (by e-mail, the number masked), who may not have asked for it: the way a user without a device enrols', async () => {
    const agent = await staffMember();
    const { user } = await createUserWithCard(h.services);
    const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'callback_on_record' });
    const added = await postJson(
      h.app,
      `/api/v1/helpdesk/users/${user.username}/phones`,
      { verificationId: verification.id, country: 'US', number: '2025550187' },
      agent.headers,
    );
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    const notices = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'phoneOnRecord');
    expect(notices.map((n) => [n.channel, n.recipient])).toEqual([['email', user.email]]);
    expect(notices[0]!.body).toContain(added.body.number as string);
    expect(notices[0]!.body).toContain(user.username);
    expect(notices[0]!.body).not.toContain('2025550187');
  });

  it('N1, L8, X2: staff ending a user’s sessions (API, console, `sls` alike: the help desk) tell the user, in their language, who may not have asked for it; audited', async () => {
    const agent = await staffMember();
    const expected = { en: 'Client Services ended', fr: 'Le Service clientèle a fermé', 'zh-Hant': '客戶服務部已結束' } as const;
    for (const [language, words] of Object.entries(expected)) {
      const { user, card } = await createUserWithCard(h.services);
      await h.services.noticePreferences.choose(user.id, { language, timeZone: null }, 'test');
      await staffSession(user, card);
      const ended = await request('DELETE', `/api/v1/helpdesk/users/${user.username}/sessions`, agent.headers);
      expect([ended.status, ended.body.sessionsEnded]).toEqual([200, 1]);
      const notices = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'sessionsEndedByStaff');
      expect(notices.map((n) => [n.channel, n.recipient, n.language])).toEqual([['email', user.email, language]]);
      expect(notices[0]!.body).toContain(words);
      expect(notices[0]!.body).toContain(user.username);
      expect(await auditOf(user, 'helpdesk.sessions_ended')).toEqual([expect.objectContaining({ count: 1 })]);
    }
  });

  // ------------------------------------------------------------------ X7: roles, and staff on staff (decision 0010)

  /** Who may call each staff route of the API (the others: 403 FORBIDDEN_ROLE); the test fails for a route not listed. */
  const MAY: Record<string, readonly Role[]> = {
    searchUsers: ['client_services', 'compliance', 'admin'],
    getUserForHelpdesk: ['client_services', 'compliance', 'admin'],
    listPendingSharings: ['client_services', 'compliance', 'admin'],
    recordCallerVerification: ['client_services', 'admin'],
    issueTemporaryPasscode: ['client_services', 'admin'],
    revokeTemporaryPasscode: ['client_services', 'admin'],
    shipDevice: ['client_services', 'admin'],
    markDeviceReturned: ['client_services', 'admin'],
    markDeviceLost: ['client_services', 'admin'],
    // R2, decision 0028: client services pass the role check, then hear LOSS_CONFIRM_ADMIN_ONLY (tested below)
    confirmDeviceLoss: ['client_services', 'admin'],
    resetPassword: ['client_services', 'admin'],
    unlockUser: ['client_services', 'admin'],
    lockUser: ['client_services', 'admin'],
    endUserSessions: ['client_services', 'admin'],
    addUserPhone: ['client_services', 'admin'],
    decideSharing: ['compliance', 'admin'],
    cancelSharingAsStaff: ['client_services', 'compliance', 'admin'],
    // A6 (decision 0034): the console's rule: staff who may act for clients
    setAccountEquity: ['client_services', 'admin'],
    listAuditEntries: ['admin'],
  };

  it('X7, T1, H3, X1: every staff route of the API refuses a role below it (403 FORBIDDEN_ROLE), even stepped up, and changes nothing: a client, compliance on the help desk actions, client services on a sharing decision and the admin routes', async () => {
    const { user: client } = await createUserWithCard(h.services);
    const [device] = await h.services.devices.listForUser(client.id);
    const owner = await createUserWithCard(h.services);
    const { id: sharingId } = await pendingSharing(owner);
    const verification = await h.services.helpDesk.verifyIdentity((await staffMember()).user.id, client.username, { method: 'id_document' });
    const bodies: Record<string, unknown> = {
      recordCallerVerification: { method: 'id_document' },
      issueTemporaryPasscode: { verificationId: verification.id },
      shipDevice: { serial: 'STOCK0001' },
      markDeviceReturned: {},
      markDeviceLost: { reason: 'lost' },
      confirmDeviceLoss: { verificationId: verification.id },
      resetPassword: { verificationId: verification.id },
      unlockUser: { verificationId: verification.id },
      lockUser: { reason: 'reported fraud' },
      addUserPhone: { verificationId: verification.id, country: 'US', number: '2025550143' },
      setAccountEquity: { equityUsd: 1234.5 },
      decideSharing: { decision: 'approve' },
    };
    const document = (await get(h.app, '/api/openapi.json')).body;
    const routes = Object.entries<Json>(document.paths).flatMap(([path, item]) =>
      Object.entries<Json>(item)
        .filter(([, op]) => (op.tags ?? []).some((t: string) => t === 'help desk' || t === 'admin'))
        .map(([method, op]) => ({ method: method.toUpperCase(), path, id: op.operationId as string })),
    );
    expect(routes.map((r) => r.id).sort()).toEqual(Object.keys(MAY).sort());
    const state = async () => ({
      devices: (await h.services.devices.listForUser(client.id)).map((d) => d.state),
      lock: (await h.services.lockout.status(client.username)).locked,
      equity: (await h.services.users.account(client.accountId)).equityUsd,
      sharing: (await h.services.sharing.forStaff((await staffMember('admin')).user.id, sharingId)).state,
      helpdesk: (await h.services.audit.list({ username: client.username, limit: 100 })).filter(
        (e) => e.event.startsWith('helpdesk.') && e.event !== 'helpdesk.refused',
      ).length,
    });
    const before = await state();

    const sessions = {
      client: await (async () => {
        const other = await createUserWithCard(h.services);
        return staffSession(other.user, other.card);
      })(),
      compliance: (await staffMember('compliance')).headers,
      client_services: (await staffMember('client_services')).headers,
    };
    for (const [role, headers] of Object.entries(sessions)) {
      for (const route of routes.filter((r) => !MAY[r.id]!.includes(role as Role))) {
        const url = (route.id === 'searchUsers' ? `${route.path}?q=${client.username}` : route.path)
          .replace('{username}', client.username)
          .replace('{deviceId}', device!.id)
          .replace('{number}', client.accountNumber)
          .replace('{id}', sharingId);
        const res = await request(route.method, url, headers, bodies[route.id]);
        expect([role, route.id, res.status, res.body.error?.code]).toEqual([role, route.id, 403, 'FORBIDDEN_ROLE']);
      }
    }
    expect(await state()).toEqual(before);
  });

  it('X1, X7: a role below the route is audited, never silent: a client on the help desk API and console, compliance acting on a user, client services on the admin API and the OpenID clients page each hear 403 FORBIDDEN_ROLE, recorded as helpdesk.refused (reason role) under who asked; a compliance officer merely reading the console records nothing', async () => {
    const { user: target } = await createUserWithCard(h.services);
    const client = await createUserWithCard(h.services);
    const clientHeaders = await staffSession(client.user, client.card);
    const compliance = await staffMember('compliance');
    const agent = await staffMember();
    const refusedOf = async (user: User) =>
      (await h.services.audit.list({ userId: user.id, limit: 100 })).filter((e) => e.event === 'helpdesk.refused').map((e) => e.data as Json);

    expect((await get(h.app, `/api/v1/helpdesk/users?q=${target.username}`, clientHeaders)).body.error?.code).toBe('FORBIDDEN_ROLE');
    const browser = await consoleOf(client.user, client.card);
    expect((await browser.get('/helpdesk')).status).toBe(403);
    expect((await refusedOf(client.user)).map((d) => [d.action, d.reason, d.role])).toEqual([
      ['view', 'role', 'client'],
      ['view', 'role', 'client'],
    ]);

    // compliance reads the console without a trace, but acting is refused and recorded
    const officer = await consoleOf(compliance.user, compliance.card);
    expect((await officer.get(`/helpdesk/users/${target.username}`)).status).toBe(200);
    expect(await refusedOf(compliance.user)).toEqual([]);
    const acted = await postJson(h.app, `/api/v1/helpdesk/users/${target.username}/verifications`, { method: 'id_document' }, compliance.headers);
    expect([acted.status, acted.body.error?.code]).toEqual([403, 'FORBIDDEN_ROLE']);
    expect((await refusedOf(compliance.user)).map((d) => [d.action, d.reason, d.role])).toEqual([['act', 'role', 'compliance']]);

    // client services on the admin API and the OpenID clients page
    expect((await get(h.app, '/api/v1/admin/audit', agent.headers)).body.error?.code).toBe('FORBIDDEN_ROLE');
    const agentBrowser = await consoleOf(agent.user, agent.card);
    expect((await agentBrowser.get('/helpdesk/oidc-clients')).status).toBe(403);
    expect((await refusedOf(agent.user)).map((d) => [d.action, d.reason, d.role, d.path]).sort()).toEqual([
      ['admin', 'role', 'client_services', '/api/v1/admin/audit'],
      ['oidc_clients', 'role', 'client_services', '/helpdesk/oidc-clients'],
    ]);
  });

  it('X7, H3: compliance never decides a sharing it is party to: a staff member cannot be a party (403 FORBIDDEN_ROLE); a party who became compliance is refused (STAFF_TARGET_FORBIDDEN, self), as is another compliance officer for them (staff); an admin may; each refusal audited; a client’s session is refused for its role before any lookup of the id (no probing of sharing ids)', async () => {
    const officer = await staffMember('compliance');
    // a staff member is never the owner (nor the requester) of a sharing
    const { requester: beside } = await createSharingRequester(h.services, officer.user, 'other-account');
    const start = await startLogin(h.app, beside.username);
    const headers = bearer((await answer(h.app, start.body.id, indexAnswer(start.body.challenge))).body.session.token as string);
    await stepUp(h.app, headers, indexAnswer);
    const asOwner = await postJson(h.app, '/api/v1/sharing', { ownerUsername: officer.user.username, ownerPassword: PASSWORD }, headers);
    expect([asOwner.status, asOwner.body.error?.code]).toEqual([403, 'FORBIDDEN_ROLE']);
    // a client's stepped-up session learns nothing of sharing ids from the staff routes: refused for its role before any lookup
    const decision = await postJson(h.app, '/api/v1/helpdesk/sharing/shr_nosuchrequest/decision', { decision: 'approve' }, headers);
    expect([decision.status, decision.body.error?.code]).toEqual([403, 'FORBIDDEN_ROLE']);
    const cancel = await h.app.inject({ method: 'DELETE', url: '/api/v1/helpdesk/sharing/shr_nosuchrequest', headers });
    expect([cancel.statusCode, cancel.json().error?.code]).toEqual([403, 'FORBIDDEN_ROLE']);

    // the owner of a pending sharing joins compliance
    const owner = await createUserWithCard(h.services);
    const { id, requester } = await pendingSharing(owner);
    await h.services.store.db.updateTable('users').set({ role: 'compliance' }).where('id', '=', owner.user.id).execute();
    const party = { ...owner, headers: await staffSession(owner.user, owner.card) };
    const refused = await postJson(h.app, `/api/v1/helpdesk/sharing/${id}/decision`, { decision: 'approve' }, party.headers);
    expect([refused.status, refused.body.error?.code]).toEqual([403, 'STAFF_TARGET_FORBIDDEN']);
    const byColleague = await postJson(h.app, `/api/v1/helpdesk/sharing/${id}/decision`, { decision: 'approve' }, officer.headers);
    expect([byColleague.status, byColleague.body.error?.code]).toEqual([403, 'STAFF_TARGET_FORBIDDEN']);
    // the console's compliance page refuses the same way
    const browser = await consoleOf(owner.user, owner.card);
    const list = await browser.get('/helpdesk/sharing');
    const forged = await browser.submit(list, `/helpdesk/sharing/${id}/decision`, { decision: 'approve' });
    expect([forged.status, alertBox(forged.html)?.code]).toEqual([403, 'STAFF_TARGET_FORBIDDEN']);
    expect((await h.services.sharing.forStaff(officer.user.id, id)).state).toBe('pending');
    const reasons = (await h.services.audit.list({ type: 'helpdesk.refused', limit: 200 }))
      .filter((e) => e.data.action === 'sharing_decision' && (e.userId === owner.user.id || e.userId === requester.id))
      .map((e) => [e.actor, e.data.reason]);
    expect(reasons).toEqual(
      expect.arrayContaining([
        [`staff:${owner.user.id}`, 'self'],
        [`staff:${officer.user.id}`, 'staff'],
      ]),
    );
    const admin = await staffMember('admin');
    const approved = await postJson(h.app, `/api/v1/helpdesk/sharing/${id}/decision`, { decision: 'approve' }, admin.headers);
    expect([approved.status, approved.body.state], JSON.stringify(approved.body)).toEqual([200, 'active']);
  });

  it('X7: a staff member demoted or disabled loses the help desk at once: the live, stepped-up session is refused by the API and the console; disabled, the session ends', async () => {
    const agent = await staffMember('client_services');
    const admin = await staffMember('admin');
    const browser = await consoleOf(agent.user, agent.card);
    const { user: client } = await createUserWithCard(h.services);
    const verify = () => postJson(h.app, `/api/v1/helpdesk/users/${client.username}/verifications`, { method: 'id_document' }, agent.headers);
    expect((await verify()).status).toBe(200);
    const setUser = (id: string, values: { role?: Role; status?: 'active' | 'disabled' }) =>
      h.services.store.db.updateTable('users').set(values).where('id', '=', id).execute();

    // a console page opened before, with its forms
    const opened = await browser.get(`/helpdesk/users/${client.username}`);
    expect(byId(opened.html, 'method')).toBeDefined();

    await setUser(agent.user.id, { role: 'compliance' });
    const refused = await verify();
    expect([refused.status, refused.body.error?.code]).toEqual([403, 'FORBIDDEN_ROLE']);
    const sent = await browser.submit(opened, `/helpdesk/users/${client.username}/verifications`, { method: 'id_document' });
    expect([sent.status, alertBox(sent.html)?.code]).toEqual([403, 'FORBIDDEN_ROLE']);
    expect(byId((await browser.get(`/helpdesk/users/${client.username}`)).html, 'method')).toBeUndefined();
    await setUser(agent.user.id, { role: 'client' });
    expect((await get(h.app, `/api/v1/helpdesk/users?q=${client.username}`, agent.headers)).body.error?.code).toBe('FORBIDDEN_ROLE');
    expect((await browser.get('/helpdesk')).status).toBe(403);

    await setUser(admin.user.id, { role: 'compliance' });
    const equity = await request('PUT', `/api/v1/admin/accounts/${client.accountNumber}/equity`, admin.headers, { equityUsd: 5_000_000 });
    expect([equity.status, equity.body.error?.code]).toEqual([403, 'FORBIDDEN_ROLE']);
    await setUser(admin.user.id, { role: 'client_services' });
    expect((await get(h.app, '/api/v1/admin/audit', admin.headers)).body.error?.code).toBe('FORBIDDEN_ROLE');
    await setUser(admin.user.id, { role: 'admin', status: 'disabled' });
    expect((await get(h.app, '/api/v1/admin/audit', admin.headers)).status).toBe(401);
    expect((await get(h.app, `/api/v1/helpdesk/users?q=${client.username}`, admin.headers)).status).toBe(401);
    await expect(h.services.helpDesk.viaCommandLine().verifyIdentity(admin.user.id, client.username, { method: 'id_document' })).rejects.toMatchObject({
      code: 'FORBIDDEN_ROLE',
    });
    expect((await h.services.users.account(client.accountId)).equityUsd).not.toBe(5_000_000);
  });

  // ------------------------------------------------------------------ T1, T5: temporary passcodes

  it('T5, T1: passcodes issued at once by two staff members in this process and by `sls` in another: one stays active, the last one; the others do not log in', async () => {
    h.clock.set(Date.now());
    const first = await staffMember();
    const second = await staffMember();
    const { user } = await createUserWithCard(h.services);
    // T1, X7: each staff member acts on a verification of their own (a colleague's is refused, see below)
    const [ofFirst, ofSecond] = await Promise.all(
      [first, second].map((s) => h.services.helpDesk.verifyIdentity(s.user.id, user.username, { method: 'callback_on_record' })),
    );
    const issue = (headers: Record<string, string>, verificationId: string) =>
      postJson(h.app, `/api/v1/helpdesk/users/${user.username}/temporary-passcode`, { verificationId }, headers);
    const [a, b, c, cli] = await Promise.all([
      issue(first.headers, ofFirst!.id),
      issue(second.headers, ofSecond!.id),
      issue(first.headers, ofFirst!.id),
      sls(['helpdesk', 'issue-passcode', '--staff', second.user.username, '--user', user.username, '--verification', ofSecond!.id], cliEnv(h.database)),
    ]);
    expect([a.status, b.status, c.status, cli.code, cli.stderr.includes('sls:')]).toEqual([200, 200, 200, 0, false]);
    const passcodes = [a.body.passcode, b.body.passcode, c.body.passcode, cli.stdout.trim()] as string[];
    expect(new Set(passcodes).size).toBe(4);
    const temporary = (await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'temp_passcode');
    expect(temporary.map((d) => d.state).sort()).toEqual(['active', 'revoked', 'revoked', 'revoked']);
    let logins = 0;
    for (const passcode of passcodes) {
      const start = await startLogin(h.app, user.username);
      if ((await answer(h.app, start.body.id, passcode)).status === 200) logins += 1;
    }
    expect(logins).toBe(1);
    expect((await h.services.audit.list({ username: user.username, limit: 100 })).filter((e) => e.event === 'helpdesk.temp_passcode_issued')).toHaveLength(4);
  });

  it('T1, A5, L3, X7: an identity verification is its agent’s: another agent holding its id (read in the audit view) is refused every action with it (404 VERIFICATION_NOT_FOUND, audited) in the API, the console and `sls`, and nothing changes; its own agent may', async () => {
    const first = await staffMember();
    const second = await staffMember();
    const { user } = await createUserWithCard(h.services);
    // L3: locked after 10 failed logins (a lock client services lift; one staff placed is an admin's, decision 0020)
    for (let i = 0; i < 10; i++) await startLogin(h.app, user.username, 'not the password');
    expect((await h.services.lockout.status(user.username)).locked).toBe(true);
    const verification = await h.services.helpDesk.verifyIdentity(first.user.id, user.username, { method: 'id_document' });
    // the second agent reads the id in the user's audit entries
    const seen = await get(h.app, `/api/v1/helpdesk/users/${user.username}`, second.headers);
    expect(seen.raw.body).toContain(verification.id);
    const body = { verificationId: verification.id };
    const calls: [string, string, unknown][] = [
      ['POST', `/api/v1/helpdesk/users/${user.username}/temporary-passcode`, body],
      ['POST', `/api/v1/helpdesk/users/${user.username}/password-reset`, body],
      ['POST', `/api/v1/helpdesk/users/${user.username}/unlock`, body],
      ['POST', `/api/v1/helpdesk/users/${user.username}/phones`, { ...body, country: 'US', number: '2025550143' }],
    ];
    for (const [method, url, payload] of calls) {
      const res = await request(method, url, second.headers, payload);
      expect([url, res.status, res.body.error?.code]).toEqual([url, 404, 'VERIFICATION_NOT_FOUND']);
    }
    const cli = await sls(
      ['helpdesk', 'reset-password', '--staff', second.user.username, '--user', user.username, '--verification', verification.id],
      cliEnv(h.database),
    );
    expect([cli.code, cli.stdout.trim()]).toEqual([1, '']);
    // the console: the colleague's verification is not found there, and its forms are refused
    const browser = await consoleOf(second.user, second.card);
    const path = `/helpdesk/users/${user.username}`;
    const page = await browser.get(`${path}/verifications/${verification.id}`);
    expect([page.status, alertBox(page.html)?.code]).toEqual([404, 'VERIFICATION_NOT_FOUND']);
    // a form of the agent's own verification, sent with the colleague's id
    const mine = await h.services.helpDesk.verifyIdentity(second.user.id, user.username, { method: 'callback_on_record' });
    const withMine = await browser.get(`${path}/verifications/${mine.id}`);
    const form = await browser.submit(withMine, `${path}/temporary-passcode`, { verificationId: verification.id, deviceStatus: 'suspended' });
    expect([form.status, alertBox(form.html)?.code]).toEqual([404, 'VERIFICATION_NOT_FOUND']);

    // nothing changed, and each refusal is audited with the agent, the action and the verification
    expect((await h.services.devices.listForUser(user.id)).map((d) => [d.type, d.state])).toEqual([['dscplus', 'active']]);
    expect((await h.services.lockout.status(user.username)).locked).toBe(true);
    expect(await h.services.phones.list(user.id)).toEqual([]);
    const refused = (await h.services.audit.list({ type: 'helpdesk.verification_refused', userId: user.id, limit: 50 })).filter(
      (e) => e.actor === `staff:${second.user.id}`,
    );
    expect(refused.map((e) => [e.data.action, e.data.verificationId, e.data.reason]).sort()).toEqual(
      [
        ['add_phone', verification.id, 'other_staff'],
        ['password_reset', verification.id, 'other_staff'],
        ['password_reset', verification.id, 'other_staff'],
        ['temporary_passcode', verification.id, 'other_staff'],
        ['temporary_passcode', verification.id, 'other_staff'],
        ['unlock', verification.id, 'other_staff'],
      ].sort(),
    );
    // its own agent may
    const own = await request('POST', `/api/v1/helpdesk/users/${user.username}/unlock`, first.headers, body);
    expect([own.status, own.body.locked]).toEqual([200, false]);
  });

  it('T5, A5, X1: a secret of the console is shown once, server-side: its sealed cookie sent again (a proxy log, a second tab, a retry) within its 2 minutes, or by two loads at once, shows it no more (audited); a passcode and a one-time password alike', async () => {
    const agent = await staffMember();
    const browser = await consoleOf(agent.user, agent.card);
    for (const [kind, action] of [
      ['passcode', 'temporary-passcode'],
      ['password', 'password-reset'],
    ] as const) {
      const { user } = await createUserWithCard(h.services);
      const path = `/helpdesk/users/${user.username}`;
      const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
      const page = await browser.get(`${path}/verifications/${verification.id}`);
      const issued = await browser.submit(page, `${path}/${action}`, { verificationId: verification.id, deviceStatus: 'suspended' });
      expect([issued.status, issued.location]).toEqual([303, `${path}/${kind}`]);
      const sealed = browser.jar.get(`__Secure-sls_hd_${kind}`)!;
      expect(sealed).toBeTruthy();
      // two loads at once with the same cookie: one shows the secret, the other not
      const loads = await Promise.all([browser.get(`${path}/${kind}`), browser.get(`${path}/${kind}`)]);
      const shown = loads.map((l) => textById(l.html, kind)).filter((secret) => secret !== undefined);
      expect(shown, kind).toHaveLength(1);
      // the same cookie sent again a minute later (well within its 2 minutes): gone
      h.clock.advance(60_000);
      browser.jar.set(`__Secure-sls_hd_${kind}`, sealed);
      const replay = await browser.get(`${path}/${kind}`);
      expect(replay.status).toBe(200);
      expect(byId(replay.html, kind), kind).toBeUndefined();
      expect(replay.html).not.toContain(shown[0]!);
      expect(byId(replay.html, `${kind}-gone`)).toBeDefined();
      expect((await auditOf(user, 'helpdesk.secret_refused')).map((d) => [d.kind, d.reason])).toEqual([
        [kind, 'used'],
        [kind, 'used'],
      ]);
    }
  });

  it('L3, L8, X7, T1: a lock staff placed (a reported compromise, fraud) is lifted by an admin only: a client-services agent, even the one who placed it, with a valid phone verification of their own is refused (403 STAFF_LOCK_ADMIN_ONLY, audited) in the API, the console and `sls`, and the lock holds; an admin lifts it; a lock after failed logins stays the agent’s to lift', async () => {
    const placer = await staffMember();
    const other = await staffMember();
    const admin = await staffMember('admin');
    const { user } = await createUserWithCard(h.services);
    await request('POST', `/api/v1/helpdesk/users/${user.username}/lock`, placer.headers, { reason: 'reported fraud' });
    const path = `/helpdesk/users/${user.username}`;
    for (const agent of [placer, other]) {
      // the fraudster on the phone passes the agent's questions
      const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'security_questions' });
      const api = await request('POST', `/api/v1/helpdesk/users/${user.username}/unlock`, agent.headers, { verificationId: verification.id });
      expect([api.status, api.body.error?.code]).toEqual([403, 'STAFF_LOCK_ADMIN_ONLY']);
      const browser = await consoleOf(agent.user, agent.card);
      const page = await browser.get(`${path}/verifications/${verification.id}`);
      expect(byId(page.html, 'unlock-submit')).toBeUndefined(); // no form: the page says an admin lifts it
      expect(byId(page.html, 'unlock-admin-only')).toBeDefined();
      const forged = await browser.post(`${path}/unlock`, { _csrf: csrfOf(form(page.html, `${path}/sessions/end`)), verificationId: verification.id });
      expect([forged.status, alertBox(forged.html)?.code]).toEqual([403, 'STAFF_LOCK_ADMIN_ONLY']);
      // `sls` runs on the real clock: its own verification
      const verified = await sls(
        ['helpdesk', 'verify', '--staff', agent.user.username, '--user', user.username, '--method', 'security_questions'],
        cliEnv(h.database),
      );
      const cli = await sls(
        ['helpdesk', 'unlock', '--staff', agent.user.username, '--user', user.username, '--verification', verified.stdout.trim()],
        cliEnv(h.database),
      );
      expect([cli.code, cli.stdout.trim()]).toEqual([1, '']);
      expect(cli.stderr).toMatch(/administrator/);
    }
    expect(await h.services.lockout.status(user.username)).toMatchObject({ locked: true, byStaff: true });
    expect((await startLogin(h.app, user.username)).status).toBe(423);
    const refused = (await auditOf(user, 'helpdesk.refused')).filter((d) => d.action === 'unlock');
    expect(refused.map((d) => `${d.reason} ${d.via}`).sort()).toEqual([
      'staff_lock cli',
      'staff_lock cli',
      'staff_lock console',
      'staff_lock console',
      'staff_lock console',
      'staff_lock console',
    ]);
    expect(await auditOf(user, 'helpdesk.unlocked')).toEqual([]);
    // an admin, after verifying the caller, lifts it
    const byAdmin = await h.services.helpDesk.verifyIdentity(admin.user.id, user.username, { method: 'video_call' });
    const lifted = await request('POST', `/api/v1/helpdesk/users/${user.username}/unlock`, admin.headers, { verificationId: byAdmin.id });
    expect([lifted.status, lifted.body.locked]).toEqual([200, false]);
    expect(await auditOf(user, 'helpdesk.unlocked')).toEqual([expect.objectContaining({ verificationId: byAdmin.id, lockedByStaff: true })]);
    // L3: a lock after 10 failed logins is still lifted by client services after a verification
    for (let i = 0; i < 10; i++) expect((await startLogin(h.app, user.username, 'not the password')).status).toBe(401);
    expect((await startLogin(h.app, user.username)).status).toBe(423);
    const again = await h.services.helpDesk.verifyIdentity(other.user.id, user.username, { method: 'security_questions' });
    const unlocked = await request('POST', `/api/v1/helpdesk/users/${user.username}/unlock`, other.headers, { verificationId: again.id });
    expect([unlocked.status, unlocked.body.locked]).toEqual([200, false]);
  });

  // ------------------------------------------------------------------ X1: what a help-desk seat reads

  it('T5, A5, X1, X7: what a help-desk seat reads (search, the user in the API and the console, its audit entries) holds no secret: no passcode, one-time password, seed, PIN or password hash, sealed secret, nor the full mobile number', async () => {
    const agent = await staffMember();
    const officer = await staffMember('compliance');
    const { user, card } = await createUserWithCard(h.services);
    const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
    await h.services.helpDesk.addPhone(agent.user.id, user.username, { verificationId: verification.id, country: 'US', number: '2025550143' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.user.id, user.username, { verificationId: verification.id });
    const { temporaryPassword } = await h.services.helpDesk.resetPassword(agent.user.id, user.username, { verificationId: verification.id });
    const row = await h.services.store.db.selectFrom('users').select('password_hash').where('id', '=', user.id).executeTakeFirstOrThrow();
    const sealed = await h.services.store.db.selectFrom('devices').select('secret_enc').where('user_id', '=', user.id).execute();
    const secrets = [
      passcode,
      temporaryPassword!,
      card.seed,
      row.password_hash,
      ...sealed.map((d) => d.secret_enc).filter((v): v is string => typeof v === 'string'),
      '2025550143',
    ];
    expect(secrets.every((s) => s.length >= 8)).toBe(true);

    const reads: string[] = [];
    for (const headers of [agent.headers, officer.headers]) {
      reads.push((await get(h.app, `/api/v1/helpdesk/users?q=${user.username}`, headers)).raw.body);
      reads.push((await get(h.app, `/api/v1/helpdesk/users/${user.username}`, headers)).raw.body);
    }
    for (const staff of [agent, officer]) {
      const browser = await consoleOf(staff.user, staff.card);
      reads.push((await browser.get(`/helpdesk?q=${user.username}`)).html);
      reads.push((await browser.get(`/helpdesk/users/${user.username}`)).html);
      reads.push((await browser.get(`/helpdesk/users/${user.username}/verifications/${verification.id}`)).html);
    }
    const admin = await staffMember('admin');
    reads.push((await get(h.app, `/api/v1/admin/audit?user=${user.username}&limit=200`, admin.headers)).raw.body);
    expect(reads.join('\n')).toContain(user.username);
    for (const secret of secrets) for (const [i, text] of reads.entries()) expect(text.includes(secret), `read ${i} shows ${secret.slice(0, 12)}…`).toBe(false);
  });

  // ------------------------------------------------------------------ A5, L8: what staff end, ends at once

  it('A5, L3, L8: a login begun before a help-desk password reset (with the old password), before staff end the sessions or lock the user, or before the user changes the password, opens no session after it (410 FLOW_EXPIRED); each ending audited', async () => {
    const agent = await staffMember();
    const actions: [string, (user: User) => Promise<unknown>][] = [
      [
        'password_reset',
        async (user) => {
          const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
          return h.services.helpDesk.resetPassword(agent.user.id, user.username, { verificationId: verification.id });
        },
      ],
      ['ended_by_staff', (user) => h.services.helpDesk.endSessions(agent.user.id, user.username)],
      ['user_locked', (user) => h.services.helpDesk.lockUser(agent.user.id, user.username, { reason: 'reported compromise' })],
    ];
    for (const [reason, act] of actions) {
      const { user, card } = await createUserWithCard(h.services);
      const begun = await startLogin(h.app, user.username);
      expect(begun.status).toBe(200);
      await act(user);
      const late = await answer(h.app, begun.body.id, cardAnswer(card, begun.body.challenge.question));
      expect([reason, late.status, late.body.error?.code]).toEqual([reason, 410, 'FLOW_EXPIRED']);
      expect(await auditOf(user, 'login.flow_ended')).toEqual([expect.objectContaining({ flowId: begun.body.id, kind: 'login', reason })]);
    }

    // the user's own change: a login begun elsewhere with the old password ends with it
    const { user, card } = await createUserWithCard(h.services);
    const headers = await clientSession(user, (challenge) => cardAnswer(card, challenge.question));
    const begun = await startLogin(h.app, user.username);
    const changed = await postJson(h.app, '/api/v1/password', { currentPassword: PASSWORD, newPassword: 'a brand new passphrase 7' }, headers);
    expect(changed.status, JSON.stringify(changed.body)).toBeLessThan(300);
    const late = await answer(h.app, begun.body.id, cardAnswer(card, begun.body.challenge.question));
    expect([late.status, late.body.error?.code]).toEqual([410, 'FLOW_EXPIRED']);
    expect(await auditOf(user, 'login.flow_ended')).toEqual([expect.objectContaining({ flowId: begun.body.id, kind: 'login', reason: 'password_changed' })]);
    // a login begun after it works
    const fresh = await startLogin(h.app, user.username, 'a brand new passphrase 7');
    expect((await answer(h.app, fresh.body.id, cardAnswer(card, fresh.body.challenge.question))).status).toBe(200);
  });

  it('X7, A1: a client username of a staff member’s own entity is theirs: the help desk never acts on it for them (self); a colleague’s is a staff account (staff: admins only); an admin’s only from the command line; each refusal audited', async () => {
    const agent = await staffMember('client_services');
    const colleague = await staffMember('client_services');
    const admin = await staffMember('admin');
    const otherAdmin = await staffMember('admin');
    /** A second username (a client, with a card) of a staff member's entity. */
    const secondOf = async (staff: User): Promise<User> => {
      const user = await h.services.users.create(
        { username: `own${staff.username}`, password: PASSWORD, email: `own${staff.username}@example.test`, entityId: staff.entityId },
        'test',
      );
      await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
      return user;
    };
    const mine = await secondOf(agent.user);
    const adminsOwn = await secondOf(otherAdmin.user);
    const verification = await h.services.helpDesk.verifyIdentity(admin.user.id, mine.username, { method: 'id_document' });
    const body = { verificationId: verification.id };
    const calls = (username: string): [string, string, unknown][] => [
      ['POST', `/api/v1/helpdesk/users/${username}/verifications`, { method: 'id_document' }],
      ['POST', `/api/v1/helpdesk/users/${username}/temporary-passcode`, body],
      ['POST', `/api/v1/helpdesk/users/${username}/password-reset`, body],
      ['POST', `/api/v1/helpdesk/users/${username}/unlock`, body],
      ['POST', `/api/v1/helpdesk/users/${username}/lock`, { reason: 'test' }],
      ['DELETE', `/api/v1/helpdesk/users/${username}/sessions`, undefined],
    ];
    for (const [who, headers, reason] of [
      ['agent', agent.headers, 'self'],
      ['colleague', colleague.headers, 'staff'],
    ] as const) {
      for (const [method, url, payload] of calls(mine.username)) {
        const res = await request(method, url, headers, payload);
        expect([who, url, res.status, res.body.error?.code]).toEqual([who, url, 403, 'STAFF_TARGET_FORBIDDEN']);
      }
      const refusals = (await h.services.audit.list({ type: 'helpdesk.refused', userId: mine.id, limit: 100 })).filter(
        (e) => e.actor === `staff:${(who === 'agent' ? agent : colleague).user.id}`,
      );
      expect(refusals.map((e) => e.data.reason)).toEqual(calls(mine.username).map(() => reason));
    }
    expect((await h.services.devices.listForUser(mine.id)).map((d) => d.state)).toEqual(['active']);
    expect((await h.services.lockout.status(mine.username)).locked).toBe(false);

    // an admin acts on a staff member's second username; on another admin's only from the command line
    const byAdmin = await request('DELETE', `/api/v1/helpdesk/users/${mine.username}/sessions`, admin.headers);
    expect(byAdmin.status).toBe(200);
    const onAdmin = await request('POST', `/api/v1/helpdesk/users/${adminsOwn.username}/verifications`, admin.headers, { method: 'id_document' });
    expect([onAdmin.status, onAdmin.body.error?.code]).toEqual([403, 'STAFF_TARGET_FORBIDDEN']);
    await expect(h.services.helpDesk.viaCommandLine().verifyIdentity(admin.user.id, adminsOwn.username, { method: 'id_document' })).resolves.toMatchObject({
      userId: adminsOwn.id,
    });
    await expect(h.services.helpDesk.viaCommandLine().verifyIdentity(otherAdmin.user.id, adminsOwn.username, { method: 'id_document' })).rejects.toMatchObject({
      code: 'STAFF_TARGET_FORBIDDEN',
    });
  });

  it('X7, A1: a help-desk seat neither finds nor opens an account it may not act on: a colleague, an admin, itself or a client username of their entities is left out of the search (API, console), and its page (API, console) answers 403 STAFF_TARGET_FORBIDDEN, audited; an admin finds and opens client services and compliance, not another admin', async () => {
    const agent = await staffMember('client_services');
    const colleague = await staffMember('client_services');
    const officer = await staffMember('compliance');
    const admin = await staffMember('admin');
    const otherAdmin = await staffMember('admin');
    const { user: client } = await createUserWithCard(h.services);
    // a client username of the colleague's entity (A1): theirs, a staff account
    const colleagues = await h.services.users.create(
      { username: `own${colleague.user.username}`, password: PASSWORD, email: `own${colleague.user.username}@example.test`, entityId: colleague.user.entityId },
      'test',
    );
    const seats = { agent, officer, admin };
    const targets = { client, colleague: colleague.user, colleagues, officer: officer.user, admin: admin.user, otherAdmin: otherAdmin.user, agent: agent.user };
    const visible: Record<keyof typeof seats, (keyof typeof targets)[]> = {
      agent: ['client'],
      officer: ['client'],
      admin: ['client', 'colleague', 'colleagues', 'officer', 'agent'],
    };
    for (const [seat, staff] of Object.entries(seats) as [keyof typeof seats, (typeof seats)[keyof typeof seats]][]) {
      const browser = await consoleOf(staff.user, staff.card);
      for (const [name, target] of Object.entries(targets) as [keyof typeof targets, User][]) {
        const shown = visible[seat].includes(name);
        const found = await get(h.app, `/api/v1/helpdesk/users?q=${target.username}`, staff.headers);
        const listed = (found.body.users as Json[]).map((u) => u.username);
        const byAccount = await get(h.app, `/api/v1/helpdesk/users?q=${target.accountNumber}`, staff.headers);
        const listedByAccount = (byAccount.body.users as Json[]).map((u) => u.username);
        const page = await get(h.app, `/api/v1/helpdesk/users/${target.username}`, staff.headers);
        const searched = await browser.get(`/helpdesk?q=${target.username}`);
        const opened = await browser.get(`/helpdesk/users/${target.username}`);
        expect([seat, name, listed.includes(target.username), listedByAccount.includes(target.username), page.status, page.body.error?.code]).toEqual(
          shown ? [seat, name, true, true, 200, undefined] : [seat, name, false, false, 403, 'STAFF_TARGET_FORBIDDEN'],
        );
        expect([seat, name, searched.html.includes(`href="/helpdesk/users/${target.username}"`), opened.status, alertBox(opened.html)?.code ?? null]).toEqual(
          shown ? [seat, name, true, 200, null] : [seat, name, false, 403, 'STAFF_TARGET_FORBIDDEN'],
        );
        expect(opened.html.includes('id="method"') && !shown).toBe(false);
      }
    }
    const refusals = (await h.services.audit.list({ type: 'helpdesk.refused', userId: colleague.user.id, limit: 50 })).filter(
      (e) => e.actor === `staff:${agent.user.id}`,
    );
    expect(refusals.map((e) => [e.data.action, e.data.reason])).toEqual([
      ['view', 'staff'],
      ['view', 'staff'],
    ]);
  });

  it('X7, T3: a staff member whose last proof is a temporary passcode reads but does not act: every action is refused (403 PERMANENT_DEVICE_REQUIRED, audited), in the API and the console', async () => {
    const admin = await staffMember('admin');
    const agent = await staffMember();
    const client = await createUserWithCard(h.services);
    // the agent's card is away: an admin issues them a passcode, which someone who deceived the admin would hold too
    const { passcode } = await issuePasscode(h.services, admin.user.id, agent.user.username, 'suspended');
    const start = await startLogin(h.app, agent.user.username);
    const headers = bearer((await answer(h.app, start.body.id, passcode)).body.session.token as string);
    await stepUp(h.app, headers, () => passcode);
    expect((await get(h.app, `/api/v1/helpdesk/users?q=${client.user.username}`, headers)).status).toBe(200);
    const refused = await postJson(h.app, `/api/v1/helpdesk/users/${client.user.username}/verifications`, { method: 'id_document' }, headers);
    expect([refused.status, refused.body.error?.code]).toEqual([403, 'PERMANENT_DEVICE_REQUIRED']);
    const audited = (await h.services.audit.list({ type: 'session.refused', limit: 50 })).filter((e) => e.userId === agent.user.id);
    expect(audited.map((e) => [e.data.need, e.data.code])).toContainEqual(['staff_action', 'PERMANENT_DEVICE_REQUIRED']);
    // the console: the form is refused the same way
    const browser = new Agent(h.app);
    const login = await browser.get('/login');
    const started = await browser.submit(login, '/login', { username: agent.user.username, password: PASSWORD, app: 'portal' });
    const challenge = await browser.get(started.location!);
    await browser.submit(challenge, started.location!, { response: passcode });
    // V1 (decision 0042): the step-up replaced the session's token: the browser's cookie takes the new one
    const stepped = await stepUp(h.app, bearer(browser.jar.get(SESSION_COOKIE)!), () => passcode);
    browser.jar.set(SESSION_COOKIE, stepped.body.session.token as string);
    const page = await browser.get(`/helpdesk/users/${client.user.username}`);
    expect(page.status).toBe(200);
    const form = await browser.submit(page, `/helpdesk/users/${client.user.username}/verifications`, { method: 'id_document' });
    expect([form.status, alertBox(form.html)?.code]).toEqual([403, 'PERMANENT_DEVICE_REQUIRED']);
    const verified = (await h.services.audit.list({ type: 'helpdesk.identity_verified', limit: 50 })).filter((e) => e.userId === client.user.id);
    expect(verified).toEqual([]);
  });

  it('X3, X7: what a client writes and staff read (a DSC+ address, the browser it logs in from) is shown as text in the console, never as markup', async () => {
    const agent = await staffMember();
    const markup = '<img src=x onerror=alert(1)>';
    const { user, deviceId } = await requestedUnderTemporaryAccess(agent.user.id, { ...ADDRESS, name: `A${markup}`, line1: `"><script>alert(2)</script>` });
    const start = await h.app.inject({
      method: 'POST',
      url: '/api/v1/login',
      headers: { 'content-type': 'application/json', 'user-agent': `Mozilla ${markup}` },
      payload: { username: user.username, password: PASSWORD, app: 'portal' },
    });
    expect(start.statusCode).toBeLessThan(500);
    const browser = await consoleOf(agent.user, agent.card);
    const page = await browser.get(`/helpdesk/users/${user.username}`);
    expect(page.status).toBe(200);
    expect(textById(page.html, `ship-to-${deviceId}`)).toContain(`A${markup}`);
    for (const raw of [markup, '<script>alert(2)</script>']) expect(page.html).not.toContain(raw);
  });
});
