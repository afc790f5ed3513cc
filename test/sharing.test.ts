/**
 * Sharing one physical device between usernames (H1–H5, T4, D2, V1, A2, N1),
 * through the JSON API on every database: the requesting user's procedure
 * after a step-up, each prerequisite's refusal in order, approval at once or
 * by compliance staff (pending → approved / rejected), the requester's logins
 * answered by the owner's card while their own devices are kept suspended,
 * cancelling restores them, no temporary passcode for users who share, and
 * a non-primary user refused.
 */
import { REVIEW_TTL_MS } from '../src/sharing/sharing.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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
  wrongAnswer,
  type Harness,
} from './support/harness.js';
import {
  answer,
  bearer,
  claimOf,
  get,
  indexAnswerOf,
  loginSession,
  postJson,
  send,
  startLogin,
  stepUp,
  withCard,
  type Json,
  tookNewToken,
} from './support/api.js';
import { BUILT_IN_DRIVERS, type Holder } from './support/kind-drivers.js';
import { sharingPair } from './support/sharing.js';

const CODES = REQUESTER_SCC_CODES;
const indexAnswer = indexAnswerOf(CODES);
const PASSPORT = { dateOfBirth: '1980-04-12', citizenship: 'FR', residenceCountry: 'HK', documentType: 'passport', documentNumber: '12AB34567' };

describe.each(DATABASES)('device sharing (H1-H5, T4) on %s', (db) => {
  let h: Harness;
  let compliance: { user: User; card: CardFile };
  let agent: { user: User; card: CardFile };

  beforeAll(async () => {
    h = await startHarness(db);
    compliance = await createUserWithCard(h.services, '1234', { role: 'compliance' });
    agent = await createUserWithCard(h.services, '1234', { role: 'client_services' });
  });
  afterAll(async () => h.close());

  /** A portal session opened with the card, stepped up (V1) unless told. */
  const cardSession = (user: User, card: CardFile, step = true) => loginSession(h.app, user.username, withCard(card), { stepUp: step });
  /** A stepped-up session of a user whose only device is the Security Code Card (index numbers). */
  const sccSession = (user: User) => loginSession(h.app, user.username, indexAnswer, { stepUp: true });

  /**
   * A session of a user holding one device of any kind (the conformance
   * suite's drivers), stepped up (V1) with it — the mobile authenticator
   * answering offline (K4).
   */
  async function holderSession(holder: Holder): Promise<Record<string, string>> {
    const start = await startLogin(h.app, holder.user.username);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const done = await answer(h.app, start.body.id, await holder.right(await holder.answerable(start.body)));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const headers = bearer(done.body.session.token);
    const step = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
    expect(step.status, JSON.stringify(step.body)).toBe(200);
    const challenge =
      step.body.challenge.type === 'push'
        ? (await postJson(h.app, `/api/v1/step-up/${step.body.id}/offline`, {}, headers)).body.challenge
        : step.body.challenge;
    const verified = await postJson(h.app, `/api/v1/step-up/${step.body.id}`, { response: await holder.right(challenge) }, headers);
    expect(verified.body.state, JSON.stringify(verified.body)).toBe('done');
    return tookNewToken(headers, verified);
  }

  /** A staff session, stepped up to act (V1, X7). */
  const staffToken = (staff: { user: User; card: CardFile }) => cardSession(staff.user, staff.card);

  const pair = (where: 'same-account' | 'other-account' = 'same-account') => sharingPair(h, where);

  /** The procedure up to the review: the owner's credentials, then the owner's card answers. */
  async function proveOwner(p: Awaited<ReturnType<typeof pair>>): Promise<string> {
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    expect(started.body).toMatchObject({ state: 'challenge', requester: p.requester.username, owner: p.owner.username, device: { type: 'dscplus' } });
    expect(started.body.challenge.type).toBe('ocra');
    const proven = await postJson(
      h.app,
      `/api/v1/sharing/${started.body.id}/answer`,
      { response: cardAnswer(p.card, started.body.challenge.question) },
      p.headers,
    );
    expect(proven.status, JSON.stringify(proven.body)).toBe(200);
    expect(proven.body.state).toBe('review');
    return started.body.id as string;
  }

  const notices = async (user: User, template: string) => (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === template);

  it("H2/H3/H5/N1: Share Device after a step-up: the owner's credentials, the owner's card answers, review, approved at once; the requester's own device is kept suspended; both users told", async () => {
    const p = await pair();
    const id = await proveOwner(p);
    const confirmed = await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers);
    expect(confirmed.status, JSON.stringify(confirmed.body)).toBe(200);
    expect(confirmed.body).toMatchObject({ state: 'active', approval: 'automatic', disposition: 'keep', keptDevices: [{ id: p.sccId, state: 'suspended' }] });
    expect((await h.services.devices.get(p.sccId)).state).toBe('suspended');
    // the status, seen by both users
    const status = await get(h.app, '/api/v1/sharing', p.headers);
    expect(status.body.sharings.map((s: Json) => [s.id, s.state])).toEqual([[id, 'active']]);
    expect((await notices(p.requester, 'sharingApproved')).length).toBeGreaterThan(0);
    expect((await notices(p.owner, 'sharingApproved')).length).toBeGreaterThan(0);
    const events = (await h.services.audit.list({ userId: p.requester.id, limit: 50 })).map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['sharing.started', 'sharing.proven', 'sharing.requested', 'sharing.approved']));
  });

  it("H5/L3/W1: a login of the requester is answered by the owner's card; the lock stays per username; the requester's withdrawal limits follow the shared device", async () => {
    const p = await pair();
    const before = await h.services.withdrawals.protectionOf(p.requester.accountId, p.requester.username);
    const id = await proveOwner(p);
    expect((await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, {}, p.headers)).body.state).toBe('active');
    const after = await h.services.withdrawals.protectionOf(p.requester.accountId, p.requester.username);
    expect([before.limits.device, after.limits.device]).toEqual(['scc', 'dscplus']);

    const start = await startLogin(h.app, p.requester.username);
    expect(start.status).toBe(200);
    expect(start.body.device).toMatchObject({ type: 'dscplus' });
    // a wrong answer counts for the requester's username, not the owner's
    const wrong = await answer(h.app, start.body.id, wrongAnswer(cardAnswer(p.card, start.body.challenge.question)));
    expect(wrong.status).toBe(401);
    expect((await h.services.lockout.status(p.requester.username)).failures).toBe(1);
    expect((await h.services.lockout.status(p.owner.username)).failures).toBe(0);
    const done = await answer(h.app, start.body.id, cardAnswer(p.card, start.body.challenge.question));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body.session.token).toBeTruthy();
    // the owner still logs in with the card
    await cardSession(p.owner, p.card, false);
  });

  it('H5/V1: cancelling (the requester, after a step-up with the shared card) reactivates the kept devices; both users told; the requester logs in with their own card again', async () => {
    const p = await pair();
    const id = await proveOwner(p);
    await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers);
    // a new session of the requester, stepped up with the owner's card
    const headers = await cardSession(p.requester, p.card);
    const cancelled = await send(h.app, 'DELETE', `/api/v1/sharing/${id}`, headers);
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
    expect(cancelled.body.state).toBe('cancelled');
    expect((await h.services.devices.get(p.sccId)).state).toBe('active');
    expect((await notices(p.owner, 'sharingCancelled')).length).toBeGreaterThan(0);
    expect((await notices(p.requester, 'sharingCancelled')).length).toBeGreaterThan(0);
    const start = await startLogin(h.app, p.requester.username);
    expect(start.body.challenge.type).toBe('index');
    expect(start.body.devices.map((d: Json) => d.type)).toEqual(['scc']);
  });

  it('H5: the owner may cancel too (after their own step-up)', async () => {
    const p = await pair();
    const id = await proveOwner(p);
    await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers);
    const ownerHeaders = await cardSession(p.owner, p.card);
    expect((await get(h.app, '/api/v1/sharing', ownerHeaders)).body.sharings[0]).toMatchObject({ id, state: 'active', owner: p.owner.username });
    expect((await send(h.app, 'DELETE', `/api/v1/sharing/${id}`, ownerHeaders)).body.state).toBe('cancelled');
    expect((await h.services.devices.get(p.sccId)).state).toBe('active');
  });

  it("H5: 'return': the requester's DSC+ is suspended to be returned; client services mark it returned when it arrives; cancelling then restores nothing returned", async () => {
    const owner = await createUserWithCard(h.services, '1234');
    const requester = await h.services.users.create(
      { username: `ret${owner.user.username}`, password: PASSWORD, email: `ret${owner.user.username}@example.test`, entityId: owner.user.entityId },
      'test',
    );
    const { device: own, card } = await h.services.devices.addDscPlus({ userId: requester.id, pin: '1234' }, 'test');
    const headers = await cardSession(requester, card);
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.user.username, ownerPassword: PASSWORD }, headers);
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    await postJson(h.app, `/api/v1/sharing/${started.body.id}/answer`, { response: cardAnswer(owner.card, started.body.challenge.question) }, headers);
    const confirmed = await postJson(h.app, `/api/v1/sharing/${started.body.id}/confirmation`, { disposition: 'return' }, headers);
    expect(confirmed.body).toMatchObject({ state: 'pending', disposition: 'return' });
    await postJson(h.app, `/api/v1/helpdesk/sharing/${started.body.id}/decision`, { decision: 'approve' }, await staffToken(compliance));
    expect((await h.services.devices.get(own.id)).state).toBe('suspended');
    const moved = (await h.services.audit.list({ userId: requester.id, limit: 50 })).find(
      (e) => e.event === 'device.state_changed' && e.data.deviceId === own.id,
    );
    expect(moved?.data).toMatchObject({ from: 'active', to: 'suspended', reason: 'device shared: to be returned' });
    const returned = await postJson(h.app, `/api/v1/helpdesk/devices/${own.id}/returned`, {}, await staffToken(agent));
    expect(returned.status, JSON.stringify(returned.body)).toBe(200);
    const cancelled = await send(h.app, 'DELETE', `/api/v1/sharing/${started.body.id}`, await cardSession(requester, owner.card));
    expect(cancelled.body).toMatchObject({ state: 'cancelled', keptDevices: [{ id: own.id, state: 'returned' }] });
  });

  it('V1: sharing is a security setting: without a fresh step-up it is refused with STEP_UP_REQUIRED', async () => {
    const p = await pair();
    h.clock.advance(h.services.config.policy.stepUpFreshMs + 1000);
    const refused = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
    expect([refused.status, refused.body.error.code]).toEqual([403, 'STEP_UP_REQUIRED']);
  });

  it('H1a/H4: users of different entities are refused "Different identification information"; identical identification data of two entities is accepted', async () => {
    const owner = await createUserWithCard(h.services, '1234');
    const stranger = await createUser(h.services);
    await h.services.onlineCards.importSecurityCodeCard(stranger.id, `SCC-${stranger.username}`, CODES, 'test');
    const headers = await sccSession(stranger);
    const refused = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.user.username, ownerPassword: PASSWORD }, headers);
    expect([refused.status, refused.body.error.code]).toEqual([409, 'SHARING_DIFFERENT_IDENTIFICATION']);
    expect(refused.body.error.message).toContain('Different identification information');
    const audit = await h.services.audit.list({ userId: stranger.id, limit: 20 });
    expect(audit.find((e) => e.event === 'sharing.refused')?.data).toMatchObject({ code: 'SHARING_DIFFERENT_IDENTIFICATION' });

    // two entities with the same identification data (A1)
    const a = await h.services.entities.create({ kind: 'individual', name: 'Alice Martin', identification: PASSPORT }, 'test');
    const b = await h.services.entities.create({ kind: 'individual', name: 'Alice Martin', identification: PASSPORT }, 'test');
    const ownerA = await h.services.users.create({ username: `own${owner.user.username}`, password: PASSWORD, entityId: a.id }, 'test');
    await h.services.devices.addDscPlus({ userId: ownerA.id, pin: '1234' }, 'test');
    const reqB = await h.services.users.create({ username: `twin${owner.user.username}`, password: PASSWORD, entityId: b.id }, 'test');
    await h.services.onlineCards.importSecurityCodeCard(reqB.id, `SCC-${reqB.username}`, CODES, 'test');
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: ownerA.username, ownerPassword: PASSWORD }, await sccSession(reqB));
    expect(started.status, JSON.stringify(started.body)).toBe(201);
  });

  /**
   * H1a: two entities of the same person (the same name and passport), a sharing in force between them: the owner's
   * DSC+ shared with the requester (who keeps an SCC), and a session of the requester with the shared card.
   */
  async function sharingBetweenEntities(name: string, prefix: string) {
    const a = await h.services.entities.create({ kind: 'individual', name, identification: PASSPORT }, 'test');
    const b = await h.services.entities.create({ kind: 'individual', name, identification: PASSPORT }, 'test');
    const tag = String(Date.now() % 1e9);
    const owner = await h.services.users.create({ username: `${prefix}o${tag}`, password: PASSWORD, entityId: a.id }, 'test');
    const { card } = await h.services.devices.addDscPlus({ userId: owner.id, pin: '1234' }, 'test');
    const requester = await h.services.users.create({ username: `${prefix}r${tag}`, password: PASSWORD, entityId: b.id }, 'test');
    const scc = await h.services.onlineCards.importSecurityCodeCard(requester.id, `SCC-${requester.username}`, CODES, 'test');
    const headers = await sccSession(requester);
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, headers);
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const id = started.body.id as string;
    await postJson(h.app, `/api/v1/sharing/${id}/answer`, { response: cardAnswer(card, started.body.challenge.question) }, headers);
    await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, headers);
    await h.services.sharing.decide(compliance.user.id, id, 'approve').catch(() => undefined);
    expect((await h.services.sharing.get(requester.id, id)).state).toBe('active');
    const shared = await cardSession(requester, card, false);
    return { b, requester, scc, id, shared };
  }

  it("H1a, A1: identification data corrected apart ends a sharing between two entities: the kept devices back, the requester's sessions with the shared card ended, audited", async () => {
    const { requester, scc, id, shared } = await sharingBetweenEntities('Bo Lee', 'ap');

    // client services correct the requester's entity: another passport
    await h.services.helpDesk.correctIdentification(
      agent.user.id,
      requester.username,
      { identification: { documentNumber: '99ZZ88888' } },
      { document: 'passport', reference: 'ticket-1' },
    );
    expect((await h.services.sharing.get(requester.id, id)).state).toBe('cancelled');
    expect((await h.services.devices.get(scc.id)).state).toBe('active');
    expect((await get(h.app, '/api/v1/session', shared)).status).toBe(401);
    const cancelled = (await h.services.audit.list({ userId: requester.id, limit: 50 })).filter((e) => e.event === 'sharing.cancelled');
    expect(cancelled.map((e) => e.actor)).toEqual([`staff:${agent.user.id}`]);
  });

  it('H1a, A1, X3: a failure between the correction of identification data and the ending of the sharing it breaks leaves neither written: the data as before, the sharing in force, nothing audited; the correction made again ends it', async () => {
    const { b, requester, scc, id, shared } = await sharingBetweenEntities('Cy Wu', 'fx');
    const correct = () =>
      h.services.helpDesk.correctIdentification(
        agent.user.id,
        requester.username,
        { identification: { documentNumber: '77YY66666' } },
        { document: 'passport', reference: 'ticket-2' },
      );
    const events = async () =>
      (await h.services.audit.list({ limit: 500 })).filter((e) => e.event === 'entity.identification_corrected' && (e.data as Json).entityId === b.id);

    // the process fails while the sharing is being ended (after the correction was made)
    const sessions = h.services.sessions as unknown as { endWhere: (...args: unknown[]) => Promise<unknown> };
    const endWhere = sessions.endWhere;
    let failed = false;
    sessions.endWhere = async () => {
      failed = true;
      sessions.endWhere = endWhere;
      throw new Error('the process failed here');
    };
    try {
      await expect(correct()).rejects.toThrow('the process failed here');
    } finally {
      sessions.endWhere = endWhere;
    }
    expect(failed).toBe(true);
    expect((await h.services.entities.view(b.id, true)).identification).toMatchObject({ documentNumber: PASSPORT.documentNumber });
    expect(await events()).toEqual([]);
    expect((await h.services.sharing.get(requester.id, id)).state).toBe('active');
    expect((await get(h.app, '/api/v1/session', shared)).status).toBe(200);

    // made again, both are written
    await correct();
    expect((await h.services.entities.view(b.id, true)).identification).toMatchObject({ documentNumber: '77YY66666' });
    expect(await events()).toHaveLength(1);
    expect((await h.services.sharing.get(requester.id, id)).state).toBe('cancelled');
    expect((await h.services.devices.get(scc.id)).state).toBe('active');
    expect((await get(h.app, '/api/v1/session', shared)).status).toBe(401);
  });

  it('H1b/T4: a user holding a temporary device (temporary passcode) cannot share: SHARING_TEMPORARY_DEVICE', async () => {
    const p = await pair();
    const staff = await staffToken(agent);
    const verification = await postJson(h.app, `/api/v1/helpdesk/users/${p.owner.username}/verifications`, { method: 'security_questions' }, staff);
    const issued = await postJson(h.app, `/api/v1/helpdesk/users/${p.owner.username}/temporary-passcode`, { verificationId: verification.body.id }, staff);
    expect(issued.status).toBe(200);
    const refused = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
    expect([refused.status, refused.body.error.code]).toEqual([409, 'SHARING_TEMPORARY_DEVICE']);
  });

  it('H1c/D2/H4: sharing the less secure device is refused "Less secure device"', async () => {
    // the owner holds a Security Code Card, the requester a DSC+
    const owner = await createUser(h.services);
    await h.services.onlineCards.importSecurityCodeCard(owner.id, `SCC-${owner.username}`, CODES, 'test');
    const requester = await h.services.users.create({ username: `dsc${owner.username}`, password: PASSWORD, entityId: owner.entityId }, 'test');
    const { card } = await h.services.devices.addDscPlus({ userId: requester.id, pin: '1234' }, 'test');
    const headers = await cardSession(requester, card);
    const refused = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, headers);
    expect([refused.status, refused.body.error.code]).toEqual([409, 'SHARING_LESS_SECURE_DEVICE']);
    expect(refused.body.error.message).toContain('Less secure device');
  });

  it.each([
    ['mobile', 'a mobile authenticator (K6: users are added in the app)'],
    ['sms', 'an SMS number (a phone number, not a device)'],
    ['security_key', 'a security key (D6: each username registers its own)'],
  ])(
    'H1c/K6/D6: an owner whose only active device is %s — %s — has no physical device to share: SHARING_NO_PHYSICAL_DEVICE, audited, no request opened',
    async (type) => {
      const holder = await BUILT_IN_DRIVERS[type]!.holder(h);
      const owner = holder.user;
      expect((await h.services.devices.listForUser(owner.id)).filter((d) => d.state === 'active').map((d) => d.type)).toEqual([type]);
      const { requester } = await createSharingRequester(h.services, owner);
      const headers = await sccSession(requester);
      const refused = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, headers);
      expect([refused.status, refused.body.error?.code], JSON.stringify(refused.body)).toEqual([409, 'SHARING_NO_PHYSICAL_DEVICE']);
      expect(refused.body.error.message).toContain(owner.username);
      expect(refused.body.error.message).toContain('mobile authenticator');
      const audit = await h.services.audit.list({ userId: requester.id, limit: 50 });
      expect(audit.find((e) => e.event === 'sharing.refused')?.data).toMatchObject({ owner: owner.username, code: 'SHARING_NO_PHYSICAL_DEVICE' });
      expect(audit.some((e) => e.event === 'sharing.started')).toBe(false);
      // no request, no challenge to the owner's device
      const { db } = h.services.store;
      expect(await db.selectFrom('device_sharings').select('id').where('requester_id', '=', requester.id).execute()).toEqual([]);
      expect(await db.selectFrom('login_flows').select('id').where('user_id', '=', owner.id).where('kind', '=', 'sharing').execute()).toEqual([]);
      expect((await get(h.app, '/api/v1/sharing', headers)).body.sharings).toEqual([]);
    },
  );

  it('H1c/K6/D2: an owner with a Security Code Card and a mobile authenticator shares the card (the physical device), though the authenticator ranks higher', async () => {
    const holder = await BUILT_IN_DRIVERS.mobile!.holder(h);
    const owner = holder.user;
    const ownerCodes = CODES.map((code) => String((Number(code) + 500) % 1000).padStart(3, '0'));
    const scc = await h.services.onlineCards.importSecurityCodeCard(owner.id, `SCC-${owner.username}`, ownerCodes, 'test');
    expect(
      (await h.services.devices.listForUser(owner.id))
        .filter((d) => d.state === 'active')
        .map((d) => d.type)
        .sort(),
    ).toEqual(['mobile', 'scc']);
    const { requester } = await createSharingRequester(h.services, owner);
    const headers = await sccSession(requester);
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, headers);
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    expect(started.body).toMatchObject({ state: 'challenge', device: { id: scc.id, type: 'scc' }, challenge: { type: 'index' } });
    const indexes = started.body.challenge.indexes as [number, number];
    const proven = await postJson(
      h.app,
      `/api/v1/sharing/${started.body.id}/answer`,
      { response: ownerCodes[indexes[0] - 1]! + ownerCodes[indexes[1] - 1]! },
      headers,
    );
    expect(proven.status, JSON.stringify(proven.body)).toBe(200);
    expect(proven.body).toMatchObject({ state: 'review', device: { id: scc.id, type: 'scc' } });
  });

  it('H1c/D2/K6: the requester side counts every permanent kind: a requester with a mobile authenticator cannot take an owner\'s Security Code Card ("Less secure device")', async () => {
    const holder = await BUILT_IN_DRIVERS.mobile!.holder(h);
    const requester = holder.user;
    const owner = await h.services.users.create({ username: `scc${requester.username}`, password: PASSWORD, entityId: requester.entityId }, 'test');
    await h.services.onlineCards.importSecurityCodeCard(owner.id, `SCC-${owner.username}`, CODES, 'test');
    const refused = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, await holderSession(holder));
    expect([refused.status, refused.body.error?.code], JSON.stringify(refused.body)).toEqual([409, 'SHARING_LESS_SECURE_DEVICE']);
  });

  it('H1: the prerequisites are checked in order: different identification comes before a temporary device and a less secure one', async () => {
    // a stranger (other entity) with a DSC+ asking to share an owner's SCC while the owner holds a temporary passcode: (a) first
    const owner = await createUser(h.services);
    await h.services.onlineCards.importSecurityCodeCard(owner.id, `SCC-${owner.username}`, CODES, 'test');
    const staff = await staffToken(agent);
    const verification = await postJson(h.app, `/api/v1/helpdesk/users/${owner.username}/verifications`, { method: 'security_questions' }, staff);
    await postJson(h.app, `/api/v1/helpdesk/users/${owner.username}/temporary-passcode`, { verificationId: verification.body.id }, staff);
    const stranger = await createUserWithCard(h.services, '1234');
    const headers = await cardSession(stranger.user, stranger.card);
    const first = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, headers);
    expect(first.body.error.code).toBe('SHARING_DIFFERENT_IDENTIFICATION');
    // same entity now: (b) before (c)
    const sibling = await h.services.users.create({ username: `sib${owner.username}`, password: PASSWORD, entityId: owner.entityId }, 'test');
    const { card } = await h.services.devices.addDscPlus({ userId: sibling.id, pin: '1234' }, 'test');
    const second = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.username, ownerPassword: PASSWORD }, await cardSession(sibling, card));
    expect(second.body.error.code).toBe('SHARING_TEMPORARY_DEVICE');
  });

  it("L3: the owner's password and the owner's device prove under the owner's lock: wrong ones count as the owner's failures", async () => {
    const p = await pair();
    const badPassword = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: 'not the password' }, p.headers);
    expect([badPassword.status, badPassword.body.error.code]).toEqual([401, 'INVALID_CREDENTIALS']);
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
    const wrong = await postJson(
      h.app,
      `/api/v1/sharing/${started.body.id}/answer`,
      { response: wrongAnswer(cardAnswer(p.card, started.body.challenge.question)) },
      p.headers,
    );
    expect([wrong.status, wrong.body.error.code, wrong.body.error.attemptsLeft]).toEqual([401, 'LOGIN_FAILED', 2]);
    expect((await h.services.lockout.status(p.owner.username)).failures).toBe(2);
    expect((await h.services.lockout.status(p.requester.username)).failures).toBe(0);
    // still in the challenge; the right answer goes on to the review
    const right = await postJson(
      h.app,
      `/api/v1/sharing/${started.body.id}/answer`,
      { response: cardAnswer(p.card, started.body.challenge.question) },
      p.headers,
    );
    expect(right.body.state).toBe('review');
  });

  it('H3: across accounts the request waits for compliance; compliance staff approve it in the console API; both users told', async () => {
    const p = await pair('other-account');
    const id = await proveOwner(p);
    const confirmed = await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers);
    expect(confirmed.body).toMatchObject({ state: 'pending', approval: 'compliance' });
    expect((await h.services.devices.get(p.sccId)).state).toBe('active');
    expect((await notices(p.owner, 'sharingRequested')).length).toBeGreaterThan(0);
    // client services may look but not decide
    const agentHeaders = await staffToken(agent);
    const listed = await get(h.app, '/api/v1/helpdesk/sharing', agentHeaders);
    expect(listed.body.sharings.map((s: Json) => s.id)).toContain(id);
    const refused = await postJson(h.app, `/api/v1/helpdesk/sharing/${id}/decision`, { decision: 'approve' }, agentHeaders);
    expect([refused.status, refused.body.error.code]).toEqual([403, 'FORBIDDEN_ROLE']);
    const approved = await postJson(
      h.app,
      `/api/v1/helpdesk/sharing/${id}/decision`,
      { decision: 'approve', note: 'same person' },
      await staffToken(compliance),
    );
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body).toMatchObject({ state: 'active', note: 'same person' });
    expect((await h.services.devices.get(p.sccId)).state).toBe('suspended');
    expect((await notices(p.requester, 'sharingApproved')).length).toBeGreaterThan(0);
    expect((await h.services.audit.list({ userId: p.requester.id, limit: 50 })).find((e) => e.event === 'sharing.approved')?.actor).toBe(
      `staff:${compliance.user.id}`,
    );
  });

  it('H3: compliance rejects a pending request: nothing changes for the devices; both users told', async () => {
    const p = await pair('other-account');
    const id = await proveOwner(p);
    await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, {}, p.headers);
    const rejected = await postJson(h.app, `/api/v1/helpdesk/sharing/${id}/decision`, { decision: 'reject' }, await staffToken(compliance));
    expect(rejected.body.state).toBe('rejected');
    expect((await h.services.devices.get(p.sccId)).state).toBe('active');
    expect((await notices(p.owner, 'sharingRejected')).length).toBeGreaterThan(0);
    const again = await postJson(h.app, `/api/v1/helpdesk/sharing/${id}/decision`, { decision: 'approve' }, await staffToken(compliance));
    expect([again.status, again.body.error.code]).toEqual([409, 'SHARING_STATE']);
    const start = await startLogin(h.app, p.requester.username);
    expect(start.body.devices.map((d: Json) => d.type)).toEqual(['scc']);
  });

  it('T4: no temporary passcode for a user who shares (requester or owner): 409 TEMP_PASSCODE_SHARING, audited; staff cancel the sharing first', async () => {
    const p = await pair();
    const id = await proveOwner(p);
    await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, {}, p.headers);
    const staff = await staffToken(agent);
    for (const user of [p.requester, p.owner]) {
      const verification = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/verifications`, { method: 'security_questions' }, staff);
      const refused = await postJson(h.app, `/api/v1/helpdesk/users/${user.username}/temporary-passcode`, { verificationId: verification.body.id }, staff);
      expect([user.username, refused.status, refused.body.error.code]).toEqual([user.username, 409, 'TEMP_PASSCODE_SHARING']);
      expect((await h.services.audit.list({ userId: user.id, limit: 20 })).some((e) => e.event === 'helpdesk.temp_passcode_refused')).toBe(true);
    }
    const cancelled = await send(h.app, 'DELETE', `/api/v1/helpdesk/sharing/${id}`, staff);
    expect(cancelled.body.state).toBe('cancelled');
    expect((await h.services.devices.get(p.sccId)).state).toBe('active');
    const verification = await postJson(h.app, `/api/v1/helpdesk/users/${p.requester.username}/verifications`, { method: 'security_questions' }, staff);
    const issued = await postJson(h.app, `/api/v1/helpdesk/users/${p.requester.username}/temporary-passcode`, { verificationId: verification.body.id }, staff);
    expect(issued.status).toBe(200);
  });

  it('T4, H1b: a sharing that came into force after the first look (a confirmation meanwhile) is seen again under the audit lock: no temporary passcode beside it', async () => {
    const p = await pair();
    const id = await proveOwner(p);
    await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, {}, p.headers);
    const staff = await staffToken(agent);
    const verification = await postJson(h.app, `/api/v1/helpdesk/users/${p.requester.username}/verifications`, { method: 'security_questions' }, staff);
    // the first look, outside the transaction, ran before the requester confirmed: it saw no sharing
    const look = vi.spyOn(h.services.sharing, 'sharesDevice').mockResolvedValueOnce(false);
    try {
      const refused = await postJson(
        h.app,
        `/api/v1/helpdesk/users/${p.requester.username}/temporary-passcode`,
        { verificationId: verification.body.id },
        staff,
      );
      expect([refused.status, refused.body.error.code]).toEqual([409, 'TEMP_PASSCODE_SHARING']);
      expect(look).toHaveBeenCalledTimes(2);
    } finally {
      look.mockRestore();
    }
    const devices = await h.services.devices.listForUser(p.requester.id);
    expect(devices.filter((d) => d.type === 'temp_passcode')).toEqual([]);
    expect((await h.services.audit.list({ userId: p.requester.id, limit: 20 })).some((e) => e.event === 'helpdesk.temp_passcode_refused')).toBe(true);
  });

  it('A2: a user who is not the primary user of the account is refused with NOT_PRIMARY_USER naming the primary user', async () => {
    const p = await pair();
    await h.services.securityRights.setRight(p.requester.username, false, 'test');
    const refused = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
    expect([refused.status, refused.body.error.code, refused.body.error.details]).toEqual([403, 'NOT_PRIMARY_USER', { primaryUser: p.owner.username }]);
  });

  it("L4/H2: copies of the owner's right response sent at once move the request to review exactly once", async () => {
    const p = await pair();
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
    const response = cardAnswer(p.card, started.body.challenge.question);
    const answers = await Promise.all(Array.from({ length: 6 }, () => postJson(h.app, `/api/v1/sharing/${started.body.id}/answer`, { response }, p.headers)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    for (const refused of answers.filter((a) => a.status !== 200)) expect([409, 410, 429]).toContain(refused.status);
    const proven = (await h.services.audit.list({ userId: p.requester.id, limit: 50 })).filter((e) => e.event === 'sharing.proven');
    expect(proven).toHaveLength(1);
    // a right answer is no failure: the owner is not a step closer to the lock
    expect((await h.services.lockout.status(p.owner.username)).failures).toBe(0);
  });

  it('H2/H5: copies of the confirmation sent at once put the sharing in force exactly once', async () => {
    const p = await pair();
    const id = await proveOwner(p);
    const confirmations = await Promise.all(
      Array.from({ length: 6 }, () => postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers)),
    );
    expect(confirmations.filter((c) => c.status === 200).map((c) => c.body.state)).toEqual(['active']);
    // a copy checked after the first one committed finds the code card that stepped up suspended: that step-up no longer counts (V1, L8)
    for (const refused of confirmations.filter((c) => c.status !== 200)) {
      expect([refused.status, refused.body.error.code]).toSatisfy(
        ([status, code]) => (status === 409 && /^SHARING_(STATE|EXISTS)$/.test(code)) || (status === 403 && code === 'STEP_UP_REQUIRED'),
      );
    }
    const audit = await h.services.audit.list({ userId: p.requester.id, limit: 100 });
    expect(audit.filter((e) => e.event === 'sharing.requested')).toHaveLength(1);
    expect(audit.filter((e) => e.event === 'device.state_changed' && e.data.deviceId === p.sccId)).toHaveLength(1);
    expect((await h.services.devices.get(p.sccId)).state).toBe('suspended');
  });

  it("H2: a review not confirmed within 15 minutes of the owner's proof is expired (410 FLOW_EXPIRED): the procedure starts over", async () => {
    const p = await pair();
    const id = await proveOwner(p);
    h.clock.advance(REVIEW_TTL_MS);
    // a fresh step-up does not revive the owner's old proof
    const headers = await sccSession(p.requester);
    const late = await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, headers);
    expect([late.status, late.body.error?.code]).toEqual([410, 'FLOW_EXPIRED']);
    const row = await h.services.store.db.selectFrom('device_sharings').select('state').where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.state).toBe('expired');
    expect((await h.services.devices.get(p.sccId)).state).toBe('active');
    // starting over works
    const again = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, headers);
    expect(again.status).toBe(201);
  });

  it("H1c, V1, X7, D2: a step-up with SMS (the password and a SIM) does not share, with a user a DSC+ protects, the DSC+ of another username of the entity: a weaker proof sets no stronger device aside; refused, audited; the card's step-up may", async () => {
    // the victim: a DSC+ and SMS; the attacker: their password and SIM, and a username of their own in the entity holding a DSC+
    const sms = await BUILT_IN_DRIVERS.sms!.holder(h);
    const victim = sms.user;
    const { card: victimCard } = await h.services.devices.addDscPlus({ userId: victim.id, pin: '1234' }, 'test');
    const mine = await h.services.users.create(
      {
        username: `own${victim.username}`,
        password: PASSWORD,
        email: `own${victim.username}@example.test`,
        entityId: victim.entityId,
        accountNumber: victim.accountNumber,
      },
      'test',
    );
    const { card: myCard } = await h.services.devices.addDscPlus({ userId: mine.id, pin: '1234' }, 'test');
    // logged in and stepped up with SMS
    const start = await startLogin(h.app, victim.username);
    const flow =
      start.body.device.id === sms.deviceId
        ? start.body
        : (await postJson(h.app, `/api/v1/login/${start.body.id as string}`, { device: sms.deviceId }, claimOf(start))).body;
    const loginCode = await sms.right(flow);
    const logged = await answer(h.app, flow.id, loginCode);
    expect(logged.status, JSON.stringify(logged.body)).toBe(200);
    const attacker = bearer(logged.body.session.token);
    const step = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, attacker);
    expect([step.status, step.body.deviceId]).toEqual([200, sms.deviceId]);
    const stepUpCode = (await h.services.notifier.list({ userId: victim.id }))
      .filter((n) => n.template === 'loginCode')
      .map((n) => /\b(\d{6})\b/.exec(n.body)![1]!)
      .find((code) => code !== loginCode)!;
    const stepped = await postJson(h.app, `/api/v1/step-up/${step.body.id as string}`, { response: stepUpCode }, attacker);
    expect(stepped.body.state, JSON.stringify(stepped.body)).toBe('done');
    tookNewToken(attacker, stepped);

    const refused = await postJson(h.app, '/api/v1/sharing', { ownerUsername: mine.username, ownerPassword: PASSWORD }, attacker);
    expect([refused.status, refused.body.error?.code], JSON.stringify(refused.body)).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    expect(refused.body.error.message).toContain('share another username');
    const audited = (await h.services.audit.list({ userId: victim.id, limit: 100 })).filter((e) => e.event === 'session.refused').map((e) => e.data as Json);
    expect(audited.map((e) => [e.code, e.check, e.path])).toContainEqual(['STRONGER_DEVICE_REQUIRED', 'proof-strength', '/api/v1/sharing']);
    expect(await h.services.sharing.list(victim.id)).toEqual([]);
    expect((await h.services.devices.listForUser(victim.id)).filter((d) => d.type === 'dscplus').map((d) => d.state)).toEqual(['active']);

    // the victim, stepped up with their card, may
    const dscplus = (await h.services.devices.listForUser(victim.id)).find((d) => d.type === 'dscplus')!;
    const again = await startLogin(h.app, victim.username);
    const cardFlow = (await postJson(h.app, `/api/v1/login/${again.body.id as string}`, { device: dscplus.id }, claimOf(again))).body;
    const byCard = await answer(h.app, cardFlow.id, cardAnswer(victimCard, cardFlow.challenge.question));
    expect(byCard.status, JSON.stringify(byCard.body)).toBe(200);
    const own = bearer(byCard.body.session.token);
    await stepUp(h.app, own, (challenge) => cardAnswer(victimCard, challenge.question as string));
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: mine.username, ownerPassword: PASSWORD }, own);
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    expect(started.body.challenge, JSON.stringify(started.body)).toMatchObject({ type: 'ocra' });
    const proven = await postJson(h.app, `/api/v1/sharing/${started.body.id}/answer`, { response: cardAnswer(myCard, started.body.challenge.question) }, own);
    expect(proven.body.state, JSON.stringify(proven.body)).toBe('review');
  });

  it('H1/X3: one sharing per requester; sharing with oneself, an unknown request and a confirmation out of order are clear 4xx errors', async () => {
    const p = await pair();
    const self = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.requester.username, ownerPassword: PASSWORD }, p.headers);
    expect([self.status, self.body.error.code]).toEqual([400, 'SHARING_SELF']);
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
    const early = await postJson(h.app, `/api/v1/sharing/${started.body.id}/confirmation`, {}, p.headers);
    expect([early.status, early.body.error.code]).toEqual([409, 'SHARING_STATE']);
    expect((await get(h.app, '/api/v1/sharing/shr_nosuchrequest', p.headers)).body.error.code).toBe('SHARING_NOT_FOUND');
    const id = await proveOwner(p);
    await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, {}, p.headers);
    // the requester now logs in with the shared card; a second request is refused
    const headers = await cardSession(p.requester, p.card);
    const again = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, headers);
    expect([again.status, again.body.error.code]).toEqual([409, 'SHARING_EXISTS']);
  });
});
