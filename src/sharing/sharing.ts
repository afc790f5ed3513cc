/**
 * Sharing one physical device between usernames (H1–H5, T4, D2, K6, D6, V1, N1).
 *
 * The requesting user (not the owner), stepped up (V1), names the owner's
 * username and password; the prerequisites are checked in order (H1, H4):
 *
 *   (a) the same entity, or entities with identical identification data
 *       (A1)                                     → "Different identification information"
 *   (b) nobody holds a temporary device (a temporary passcode, an online
 *       card; T4)                                → SHARING_TEMPORARY_DEVICE
 *   (c) the device shared — the owner's strongest active *physical* device
 *       (the kinds' `physical`: not the mobile authenticator, K6, nor SMS,
 *       nor a security key, D6)                  → SHARING_NO_PHYSICAL_DEVICE
 *       is the most secure among them (D2, by the kinds' `strength`, every
 *       permanent kind counted on the requester's side)
 *                                                → "Less secure device"
 *
 * Then the owner's device answers a challenge (or index numbers, or the
 * code a token shows) — a flow of kind `sharing` under the *owner's* lock
 * (L3): a wrong answer counts towards the owner's lock — the requester
 * reviews and confirms, and the request is approved at once or waits for
 * compliance staff (H3, `SLS_SHARING_APPROVAL`):
 *
 *   challenge ──proof──► review ──confirm──► active
 *                                    └─────► pending ──approve──► active
 *                                                    └─reject───► rejected
 *   challenge, review, pending, active ──cancel──► cancelled
 *
 * In force, the requester's own devices are redundant (H5): suspended
 * through `Devices.transition` (kept, or to be returned: a DSC+ sent back is
 * marked returned by client services and its deposit released, C5), and
 * reactivated when the sharing is cancelled. Logins and step-ups of the
 * requester are answered by the shared device; the lock stays per username.
 */
import type { Selectable } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { newId } from '../crypto/random.js';
import type { Devices, OthersOf } from '../devices/devices.js';
import type { Device, DeviceKinds, Prompt } from '../devices/types.js';
import { SlsError } from '../errors.js';
import { accepted, type Answers } from '../flows/answers.js';
import type { FirstFactor } from '../flows/first-factor.js';
import type { FlowLimits } from '../flows/flow-limits.js';
import { challengeTtlMs, completeFlow, findFlow, newFlowRow, promptOf, verifierContext } from '../flows/flow-rows.js';
import type { RequestMeta } from '../flows/login.js';
import type { CodeDelivery } from '../flows/ports.js';
import type { Entities } from '../identity/entities.js';
import type { User, Users } from '../identity/users.js';
import type { Notifier, NoticeTemplate } from '../notify/notifier.js';
import type { Session, Sessions } from '../sessions/sessions.js';
import { type Executor, isUniqueViolation, type Store, type Tx } from '../store/database.js';
import type { DeviceSharingsTable, SharingState } from '../store/schema.js';

export type { SharingState } from '../store/schema.js';
export type Disposition = 'keep' | 'return';
export type ApprovalRule = Config['sharingApproval'];

/** States in which a request is waiting or in force (one per requester). */
const LIVE: readonly SharingState[] = ['pending', 'active'];
/** States that may still be cancelled. */
const CANCELLABLE: readonly SharingState[] = ['challenge', 'review', 'pending', 'active'];

/** H2: the owner's proof is fresh for the review: a review not confirmed within this time is expired, and the procedure starts over. */
export const REVIEW_TTL_MS = 15 * 60 * 1000;
/** The requester's devices that become redundant (H5): those in use or on their way. */
const REDUNDANT_STATES = ['active', 'shipped'] as const;

/** A row of device_sharings as read (the table's own type). */
type SharingRow = Selectable<DeviceSharingsTable>;

export interface SharedDeviceSummary {
  id: string;
  type: string;
  label: string | null;
  state: string;
}

/** A sharing request as its users and staff see it. */
export interface SharingView {
  id: string;
  state: SharingState;
  requester: string;
  owner: string;
  device: SharedDeviceSummary;
  /** While the owner's device is to answer: its challenge (or index numbers, or a code sent by SMS). */
  challenge: Prompt | null;
  attemptsLeft: number | null;
  challengeExpiresAt: string | null;
  disposition: Disposition | null;
  approval: 'automatic' | 'compliance' | null;
  /** H5: the requester's devices suspended while sharing, restored on cancel. */
  keptDevices: SharedDeviceSummary[];
  createdAt: string;
  decidedAt: string | null;
  note: string | null;
  endedAt: string | null;
  endedBy: string | null;
}

/** What staff may do about a sharing request (the help desk's staff-on-staff rules, decision 0010). */
export interface SharingStaff {
  /** H3: compliance staff (or an admin) deciding on a request about these users. */
  decideOn(staffUserId: string, users: User[], action: 'sharing_decision'): Promise<User>;
  /** Client services, compliance or an admin cancelling a sharing of these users. */
  cancelFor(staffUserId: string, users: User[], action: 'sharing_cancel'): Promise<User>;
  /** Staff who may look. */
  staff(staffUserId: string, action: 'view'): Promise<User>;
}

export interface SharingDeps {
  store: Store;
  clock: Clock;
  config: Config;
  box: SecretBox;
  audit: AuditLog;
  users: Users;
  entities: Pick<Entities, 'sameIdentity'>;
  devices: Devices;
  deviceKind: DeviceKinds;
  firstFactor: FirstFactor;
  answers: Answers;
  flowLimits: FlowLimits;
  smsCodes: CodeDelivery;
  notifier: Notifier;
  staff: SharingStaff;
  /** L8: a sharing ended ends the requester's sessions the shared device opened. */
  sessions: Pick<Sessions, 'endWhere' | 'standsApartFrom'>;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The device shared with a user, as a subquery (H: the sharing in force). */
const sharedWithUser: OthersOf = (db, userId) =>
  db.selectFrom('device_sharings').select('device_id').where('requester_id', '=', userId).where('state', '=', 'active');

export class DeviceSharing {
  constructor(private readonly deps: SharingDeps) {}

  private sealContext(flowId: string): string {
    return verifierContext('sharing', flowId);
  }

  // ------------------------------------------------------------ reading

  private async row(id: string, db: Executor = this.deps.store.db): Promise<SharingRow> {
    if (!/^shr_[a-z2-7]{26}$/.test(id)) throw new SlsError('SHARING_NOT_FOUND');
    const row = await db.selectFrom('device_sharings').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new SlsError('SHARING_NOT_FOUND');
    return row as SharingRow;
  }

  /** A request of which the user is the requester or the owner. */
  private async rowOf(userId: string, id: string): Promise<SharingRow> {
    const row = await this.row(id);
    if (row.requester_id !== userId && row.owner_id !== userId) throw new SlsError('SHARING_NOT_FOUND');
    return row;
  }

  private summary(device: Device): SharedDeviceSummary {
    return { id: device.id, type: device.type, label: device.label, state: device.state };
  }

  async view(row: SharingRow): Promise<SharingView> {
    const { users, devices, clock, config } = this.deps;
    const [requester, owner, device] = await Promise.all([users.get(row.requester_id), users.get(row.owner_id), devices.get(row.device_id)]);
    let challenge: Prompt | null = null;
    let attemptsLeft: number | null = null;
    let challengeExpiresAt: string | null = null;
    if (row.state === 'challenge' && row.flow_id) {
      const flow = await findFlow(this.deps.store.db, row.flow_id, 'sharing');
      if (flow.state === 'second_factor' && flow.expires_at > clock.now()) {
        challenge = promptOf(flow);
        attemptsLeft = config.policy.challengeMaxAttempts - flow.attempts;
        challengeExpiresAt = iso(flow.expires_at);
      } else attemptsLeft = 0;
    }
    const kept = await Promise.all((JSON.parse(row.kept_devices) as string[]).map((id) => devices.get(id)));
    return {
      id: row.id,
      state: row.state,
      requester: requester.username,
      owner: owner.username,
      device: this.summary(device),
      challenge,
      attemptsLeft,
      challengeExpiresAt,
      disposition: row.disposition,
      approval: row.approval,
      keptDevices: kept.map((d) => this.summary(d)),
      createdAt: iso(row.created_at)!,
      decidedAt: iso(row.decided_at),
      note: row.note,
      endedAt: iso(row.ended_at),
      endedBy: row.ended_by,
    };
  }

  /** One request of the user (as requester or owner). */
  async get(userId: string, id: string): Promise<SharingView> {
    return this.view(await this.rowOf(userId, id));
  }

  /** The user's requests and sharings, newest first (abandoned attempts left out). */
  async list(userId: string): Promise<SharingView[]> {
    const rows = await this.deps.store.db
      .selectFrom('device_sharings')
      .selectAll()
      .where((eb) => eb.or([eb('requester_id', '=', userId), eb('owner_id', '=', userId)]))
      .where('state', '!=', 'expired')
      .orderBy('created_at', 'desc')
      .limit(20)
      .execute();
    return Promise.all(rows.map((row) => this.view(row as SharingRow)));
  }

  /** H: the device shared with the user while they share another username's device and it is active; else null. */
  async sharedWith(userId: string, db: Executor = this.deps.store.db): Promise<Device | null> {
    const device = await this.sharedDeviceOf(userId, db);
    return device?.state === 'active' ? device : null;
  }

  /**
   * The user's own devices and, in the same read, the device shared with
   * them (as `sharedWith`): what a login offers (H).
   */
  async withOwnDevices(userId: string): Promise<{ own: Device[]; shared: Device | null }> {
    const { own, others } = await this.deps.devices.listForUserWith(userId, sharedWithUser);
    const shared = others[0];
    return { own, shared: shared?.state === 'active' ? shared : null };
  }

  /**
   * H5: whether a sharing in force sets the user's own devices aside (the
   * user is its requester): they come back when the sharing ends, not by
   * their own proof meanwhile (D4), which would put a weaker device, or one
   * to be returned, back beside the shared one (H1c).
   */
  async setsAside(userId: string, db: Executor = this.deps.store.db): Promise<boolean> {
    return (await sharedWithUser(db, userId).executeTakeFirst()) !== undefined;
  }

  /** W1: the shared device of a requester (whatever its state: a lost shared device protects nobody). */
  async sharedDeviceOf(userId: string, db: Executor = this.deps.store.db): Promise<Device | null> {
    const row = await sharedWithUser(db, userId).executeTakeFirst();
    return row ? this.deps.devices.get(row.device_id, db) : null;
  }

  /** T4: whether the user shares a device, or waits for a sharing to be approved, as requester or owner. */
  async sharesDevice(userId: string, db: Executor = this.deps.store.db): Promise<boolean> {
    const row = await db
      .selectFrom('device_sharings')
      .select('id')
      .where((eb) => eb.or([eb('requester_id', '=', userId), eb('owner_id', '=', userId)]))
      .where('state', 'in', [...LIVE])
      .executeTakeFirst();
    return row !== undefined;
  }

  // ------------------------------------------------------------ prerequisites (H1, H4)

  private strength(device: Device): number {
    return this.deps.deviceKind(device.type).strength;
  }

  /**
   * The owner's device to share: their strongest active permanent device
   * that is physical (D2; H, K6, D6: the kind's `physical`, never the mobile
   * authenticator, SMS or a security key); `none` when the owner has no
   * active permanent device at all, `notPhysical` when they have only such
   * other devices.
   */
  private async ownerDevice(ownerId: string, db: Executor): Promise<Device | 'none' | 'notPhysical'> {
    const { deviceKind } = this.deps;
    const permanent = (await this.deps.devices.listForUser(ownerId, db)).filter((d) => d.state === 'active' && !deviceKind(d.type).temporary);
    const candidates = permanent.filter((d) => deviceKind(d.type).physical === true);
    candidates.sort((a, b) => this.strength(b) - this.strength(a) || (b.lastUsedAt ?? 0) - (a.lastUsedAt ?? 0));
    return candidates[0] ?? (permanent.length === 0 ? 'none' : 'notPhysical');
  }

  /**
   * H1 in order, each with its seed message (H4); returns the device to
   * share. `sameIdentity`: A1's answer, read before (outside any
   * transaction); `ignore`: the request being checked again (its own row).
   */
  private async prerequisites(requester: User, owner: User, db: Executor, sameIdentity: boolean, ignore?: string): Promise<Device> {
    const { devices, deviceKind } = this.deps;
    // one sharing per requester; an owner who uses another's device shares none of their own; a requester's device shared with others stays theirs
    let live = db
      .selectFrom('device_sharings')
      .select(['id', 'requester_id', 'owner_id'])
      .where('state', 'in', [...LIVE])
      .where((eb) => eb.or([eb('requester_id', 'in', [requester.id, owner.id]), eb('owner_id', '=', requester.id)]));
    if (ignore) live = live.where('id', '!=', ignore);
    const found = await live.execute();
    if (found.some((r) => r.requester_id === owner.id)) throw new SlsError('SHARING_OWNER_SHARES', { owner: owner.username });
    if (found.length > 0) throw new SlsError('SHARING_EXISTS');
    // (a) A1: the same entity, or identical identification data
    if (!sameIdentity) throw new SlsError('SHARING_DIFFERENT_IDENTIFICATION');
    // (b) T4: no temporary device (temporary passcode, online card) on either side
    const held = [...(await devices.listForUser(requester.id, db)), ...(await devices.listForUser(owner.id, db))];
    if (held.some((d) => deviceKind(d.type).temporary && (d.state === 'active' || d.state === 'requested'))) throw new SlsError('SHARING_TEMPORARY_DEVICE');
    // (c) D2: the device shared — the owner's physical one (H, K6, D6) — is the most secure among them
    const shared = await this.ownerDevice(owner.id, db);
    if (shared === 'none') throw new SlsError('NO_ACTIVE_DEVICE');
    if (shared === 'notPhysical') throw new SlsError('SHARING_NO_PHYSICAL_DEVICE', { owner: owner.username });
    // the requester's side counts every permanent kind (D2): an authenticator or a key outranks an SCC
    const requesterBest = held
      .filter((d) => d.userId === requester.id && !deviceKind(d.type).temporary && ['active', 'suspended', 'shipped'].includes(d.state))
      .reduce((best, d) => Math.max(best, this.strength(d)), Number.NEGATIVE_INFINITY);
    if (requesterBest > this.strength(shared)) throw new SlsError('SHARING_LESS_SECURE_DEVICE');
    return shared;
  }

  /** A1: the same entity, or entities with identical identification data. */
  private sameIdentity(requester: User, owner: User): Promise<boolean> {
    return this.deps.entities.sameIdentity(requester.id, owner.id);
  }

  /** A refusal of a prerequisite, audited with its code. */
  private async refused<T>(requester: User, owner: User, ip: string | null, check: () => Promise<T>): Promise<T> {
    try {
      return await check();
    } catch (error) {
      if (error instanceof SlsError) {
        await this.deps.audit.record({
          event: 'sharing.refused',
          actor: `user:${requester.id}`,
          userId: requester.id,
          username: requester.username,
          ip,
          data: { owner: owner.username, code: error.code },
        });
      }
      throw error;
    }
  }

  // ------------------------------------------------------------ the requester's procedure (H2)

  /**
   * H2: the owner's username and password, the prerequisites, then the
   * owner's device's challenge. The password is checked under the owner's
   * lock (L3).
   */
  async start(session: Session, input: { ownerUsername: string; ownerPassword: string }, meta: RequestMeta): Promise<SharingView> {
    const { users, clock, box, config, store } = this.deps;
    const requester = await users.get(session.userId);
    if (input.ownerUsername === requester.username) throw new SlsError('SHARING_SELF');
    const {
      user: owner,
      attempt,
      checked,
    } = await this.deps.firstFactor.check({
      username: input.ownerUsername,
      password: input.ownerPassword,
      ip: meta.ip,
      purpose: 'sharing',
    });
    // a right password is no failure
    await this.deps.answers.release(attempt);
    // staff accounts share no device with clients (X7: staff act on them only as staff)
    if (owner.role !== 'client' || requester.role !== 'client')
      throw new SlsError('FORBIDDEN_ROLE', { role: owner.role === 'client' ? requester.role : owner.role });
    const device = await this.refused(requester, owner, meta.ip, async () =>
      this.prerequisites(requester, owner, store.db, await this.sameIdentity(requester, owner)),
    );
    const kind = this.deps.deviceKind(device.type);
    // the owner's physical device answers a challenge (a challenge code, a token's code, index numbers for a card)
    const challenge = await kind.issueChallenge(await this.deps.devices.context(device));
    const now = clock.now();
    const flowId = newId('flw');
    const id = newId('shr');
    const prompt =
      challenge.code === undefined ? challenge.prompt : await this.deps.smsCodes.deliverChallenge(device, challenge, meta.language ?? config.defaultLanguage);
    const flow = newFlowRow({
      id: flowId,
      kind: 'sharing',
      app: session.app,
      username: owner.username,
      userId: owner.id,
      deviceId: device.id,
      prompt,
      sealedVerifier: box.sealJson(challenge.verifier, this.sealContext(flowId)),
      now,
      expiresAt: now + challengeTtlMs(challenge, config.policy),
      ip: meta.ip,
      userAgent: meta.userAgent,
      sessionId: session.id,
    });
    try {
      await this.deps.flowLimits.insert(flow, async (trx) => {
        // A4, H2, L8: the owner's password changed or reset since it was checked starts no sharing
        await this.deps.firstFactor.assertStillCurrent(trx, checked, meta.ip, 'sharing');
        // an earlier attempt of the requester not yet confirmed is abandoned
        await trx
          .updateTable('device_sharings')
          .set({ state: 'expired', updated_at: now })
          .where('requester_id', '=', requester.id)
          .where('state', 'in', ['challenge', 'review'])
          .execute();
        await trx
          .insertInto('device_sharings')
          .values({
            id,
            requester_id: requester.id,
            owner_id: owner.id,
            device_id: device.id,
            state: 'challenge',
            flow_id: flowId,
            session_id: session.id,
            disposition: null,
            approval: null,
            kept_devices: '[]',
            created_at: now,
            updated_at: now,
            decided_at: null,
            decided_by: null,
            note: null,
            ended_at: null,
            ended_by: null,
          })
          .execute();
      });
    } catch (error) {
      await this.deps.firstFactor.auditChanged(error);
      throw error;
    }
    await this.deps.audit.record({
      event: 'sharing.started',
      actor: `user:${requester.id}`,
      userId: requester.id,
      username: requester.username,
      ip: meta.ip,
      data: { sharingId: id, owner: owner.username, ownerId: owner.id, deviceId: device.id, type: device.type, flowId },
    });
    return this.view(await this.row(id));
  }

  /** The requester's own request in a state, of this session when a proof is involved. */
  private async requesterRow(session: Session, id: string, state: SharingState): Promise<SharingRow> {
    const row = await this.row(id);
    if (row.requester_id !== session.userId) throw new SlsError('SHARING_NOT_FOUND');
    if (row.state !== state) throw new SlsError('SHARING_STATE', { state: row.state });
    return row;
  }

  /** H2: the owner's device answers; a wrong answer counts towards the owner's lock (L3). */
  async answer(session: Session, id: string, response: string, meta: RequestMeta): Promise<SharingView> {
    const { clock, box, devices, store } = this.deps;
    const row = await this.requesterRow(session, id, 'challenge');
    const flow = await findFlow(store.db, row.flow_id!, 'sharing', session.id);
    if (flow.state !== 'second_factor' || flow.expires_at <= clock.now()) throw new SlsError('FLOW_EXPIRED');
    const device = await devices.get(row.device_id);
    const kind = this.deps.deviceKind(device.type);
    await this.deps.answers.answerFlow({
      row: flow,
      deviceType: device.type,
      ip: meta.ip,
      actor: `user:${session.userId}`,
      failed: { event: 'sharing.proof_failed', data: { sharingId: id, deviceId: device.id } },
      hints: kind.failureHints,
      check: async () => {
        if (device.state !== 'active') throw new SlsError('DEVICE_NOT_AVAILABLE');
        const check = await kind.checkResponse(await devices.context(device), box.openJson(flow.verifier!, this.sealContext(flow.id)), response);
        return check.ok ? accepted(device, check, flow.id) : null;
      },
      accept: async (trx) => {
        const now = clock.now();
        if (!(await completeFlow(trx, flow.id, now))) return null;
        const moved = await trx
          .updateTable('device_sharings')
          .set({ state: 'review', updated_at: now })
          .where('id', '=', id)
          .where('state', '=', 'challenge')
          .executeTakeFirst();
        if (Number(moved.numUpdatedRows) !== 1) return null;
        await this.deps.audit.append(trx, [
          {
            event: 'sharing.proven',
            actor: `user:${session.userId}`,
            userId: session.userId,
            ip: meta.ip,
            data: { sharingId: id, deviceId: device.id, ownerId: row.owner_id },
          },
        ]);
        return true;
      },
    });
    return this.view(await this.row(id));
  }

  /** H3: whether compliance approves the request first. */
  private async needsApproval(requester: User, owner: User): Promise<boolean> {
    const rule = this.deps.config.sharingApproval;
    if (rule === 'never') return false;
    if (rule === 'always') return true;
    if (rule === 'cross-account') return requester.accountId !== owner.accountId;
    const kinds = await this.deps.store.db.selectFrom('entities').select('kind').where('id', 'in', [requester.entityId, owner.entityId]).execute();
    return kinds.some((k) => k.kind === 'organization');
  }

  /**
   * H2: after the review, the requester confirms, saying what becomes of
   * their own devices (H5); approved at once, or pending (H3).
   */
  async confirm(session: Session, id: string, disposition: Disposition, meta: RequestMeta): Promise<SharingView> {
    const { users, store, clock } = this.deps;
    const row = await this.requesterRow(session, id, 'review');
    if (row.updated_at + REVIEW_TTL_MS <= clock.now()) {
      await store.db
        .updateTable('device_sharings')
        .set({ state: 'expired', updated_at: clock.now() })
        .where('id', '=', id)
        .where('state', '=', 'review')
        .execute();
      throw new SlsError('FLOW_EXPIRED');
    }
    const [requester, owner] = await Promise.all([users.get(row.requester_id), users.get(row.owner_id)]);
    const compliance = await this.needsApproval(requester, owner);
    const actor = `user:${requester.id}`;
    const same = await this.sameIdentity(requester, owner);
    await this.refused(requester, owner, meta.ip, async () => {
      try {
        await store.serialized('audit_log', async (trx) => {
          const device = await this.prerequisites(requester, owner, trx, same, id);
          if (device.id !== row.device_id) throw new SlsError('SHARING_LESS_SECURE_DEVICE');
          const now = clock.now();
          const moved = await trx
            .updateTable('device_sharings')
            .set({ state: compliance ? 'pending' : 'active', disposition, approval: compliance ? 'compliance' : 'automatic', updated_at: now })
            .where('id', '=', id)
            .where('state', '=', 'review')
            .executeTakeFirst();
          if (Number(moved.numUpdatedRows) !== 1) throw new SlsError('SHARING_STATE', { state: 'changed' });
          const data = { sharingId: id, owner: owner.username, deviceId: row.device_id, disposition, approval: compliance ? 'compliance' : 'automatic' };
          await this.deps.audit.append(trx, [{ event: 'sharing.requested', actor, userId: requester.id, username: requester.username, ip: meta.ip, data }]);
          if (!compliance) await this.enforce(trx, { ...row, disposition }, requester, actor, now);
        });
      } catch (error) {
        // two confirmations at once: the unique index lets one through
        if (isUniqueViolation(error, 'device_sharings_live_requester', 'device_sharings.requester_id')) throw new SlsError('SHARING_EXISTS');
        throw error;
      }
    });
    await this.tell([requester, owner], compliance ? 'sharingRequested' : 'sharingApproved', requester, owner);
    return this.view(await this.row(id));
  }

  /**
   * In force (H5): the requester's own devices step aside — suspended, kept
   * to be reactivated when the sharing ends (or a DSC+ to be returned).
   */
  private async enforce(trx: Tx, row: SharingRow, requester: User, actor: string, now: number): Promise<void> {
    const { devices, deviceKind } = this.deps;
    const kept: string[] = [];
    for (const device of await devices.listForUser(requester.id, trx)) {
      if (deviceKind(device.type).temporary || !(REDUNDANT_STATES as readonly string[]).includes(device.state)) continue;
      const toReturn = row.disposition === 'return' && deviceKind(device.type).capabilities?.returnable === true;
      const moved = await devices.transition(trx, device, 'suspended', {
        actor,
        username: requester.username,
        reason: toReturn ? 'device shared: to be returned' : 'device shared',
        data: { sharingId: row.id },
      });
      if (moved) kept.push(device.id);
    }
    await trx
      .updateTable('device_sharings')
      .set({ state: 'active', kept_devices: JSON.stringify(kept), decided_at: now, updated_at: now })
      .where('id', '=', row.id)
      .execute();
    await this.deps.audit.append(trx, [
      {
        event: 'sharing.approved',
        actor,
        userId: requester.id,
        username: requester.username,
        data: { sharingId: row.id, deviceId: row.device_id, ownerId: row.owner_id, keptDevices: kept },
      },
    ]);
  }

  /**
   * Cancelled: the kept devices still suspended are back as they were: in
   * use again, or — a card set aside on its way, never activated — on its
   * way again (C6: activated by its proof or three weeks after shipment,
   * never by the end of a sharing).
   */
  private async restore(trx: Tx, row: SharingRow, requester: User, actor: string): Promise<string[]> {
    const restored: string[] = [];
    for (const id of JSON.parse(row.kept_devices) as string[]) {
      const device = await this.deps.devices.get(id, trx);
      if (device.state !== 'suspended') continue;
      const onItsWay = device.activatedAt === null;
      const moved = await this.deps.devices.transition(trx, device, onItsWay ? 'shipped' : 'active', {
        actor,
        username: requester.username,
        ...(onItsWay ? {} : { event: 'device.reactivated' as const }),
        reason: 'device sharing cancelled',
        data: { sharingId: row.id },
      });
      if (moved) restored.push(id);
    }
    return restored;
  }

  /** N1: both users hear of the request, its approval, rejection or cancellation. */
  private async tell(to: User[], template: NoticeTemplate, requester: User, owner: User, db?: Tx): Promise<void> {
    for (const user of to)
      await this.deps.notifier.notify(user, template, { username: user.username, requester: requester.username, owner: owner.username }, db ? { db } : {});
  }

  // ------------------------------------------------------------ ending

  /** Cancelled by the requester or the owner (after a step-up), or by staff; a sharing in force restores the kept devices. */
  async cancel(by: { session: Session } | { staffUserId: string }, id: string, meta: Partial<RequestMeta> = {}): Promise<SharingView> {
    const { users, store } = this.deps;
    // X7: someone who is not staff learns nothing of a sharing's id (FORBIDDEN_ROLE before SHARING_NOT_FOUND)
    if ('staffUserId' in by) await this.deps.staff.staff(by.staffUserId, 'view');
    let row = 'session' in by ? await this.rowOf(by.session.userId, id) : await this.row(id);
    const [requester, owner] = await Promise.all([users.get(row.requester_id), users.get(row.owner_id)]);
    const actor =
      'session' in by ? `user:${by.session.userId}` : `staff:${(await this.deps.staff.cancelFor(by.staffUserId, [requester, owner], 'sharing_cancel')).id}`;
    if (!CANCELLABLE.includes(row.state)) throw new SlsError('SHARING_STATE', { state: row.state });
    const was = row.state;
    await store.serialized('audit_log', async (trx) => {
      row = await this.row(id, trx);
      if (row.state !== was) throw new SlsError('SHARING_STATE', { state: row.state });
      await this.endWithin(trx, row, requester, owner, actor, meta, 'session' in by ? by.session : undefined);
    });
    if (was === 'pending' || was === 'active') await this.tell([requester, owner], 'sharingCancelled', requester, owner);
    return this.view(await this.row(id));
  }

  /**
   * Ends a sharing, read in `trx` under the audit lock in a cancellable state:
   * cancelled, its flow failed, the kept devices back, the requester's
   * sessions with the shared device ended (but `session`, the requester's
   * own that cancels when it stands on another device), audited. Returns the
   * devices restored.
   */
  private async endWithin(
    trx: Tx,
    row: SharingRow,
    requester: User,
    owner: User,
    actor: string,
    meta: Partial<RequestMeta>,
    session?: Session,
  ): Promise<string[]> {
    const was = row.state;
    const now = this.deps.clock.now();
    const moved = await trx
      .updateTable('device_sharings')
      .set({ state: 'cancelled', ended_at: now, ended_by: actor, updated_at: now })
      .where('id', '=', row.id)
      .where('state', '=', was)
      .executeTakeFirst();
    if (Number(moved.numUpdatedRows) !== 1) throw new SlsError('SHARING_STATE', { state: 'changed' });
    if (row.flow_id)
      await trx
        .updateTable('login_flows')
        .set({ state: 'failed', updated_at: now })
        .where('id', '=', row.flow_id)
        .where('state', '=', 'second_factor')
        .execute();
    const back = was === 'active' ? await this.restore(trx, row, requester, actor) : [];
    // L8: the requester's sessions opened with the owner's device end with the sharing (but the requester's own that cancels)
    if (was === 'active') {
      // … when it stands on another device than the owner's (L8: not a session proved with the card it gives back)
      const keep = session !== undefined && session.userId === requester.id && (await this.deps.sessions.standsApartFrom(trx, session.id, [row.device_id]));
      const except = keep ? { exceptSessionId: session.id } : {};
      await this.deps.sessions.endWhere(trx, { userId: requester.id, deviceIds: [row.device_id], ...except }, 'sharing_ended', actor);
    }
    await this.deps.audit.append(trx, [
      {
        event: 'sharing.cancelled',
        actor,
        userId: requester.id,
        username: requester.username,
        ip: meta.ip ?? null,
        data: { sharingId: row.id, from: was, ownerId: owner.id, restoredDevices: back },
      },
    ]);
    return back;
  }

  /**
   * H1a: identification data corrected (A1) so that the users of a sharing,
   * of two entities, are no longer of the same identity: their sharings —
   * in force, waiting, or being proven — end as if cancelled by the staff
   * who corrected it (the kept devices restored, the requester's sessions
   * the shared device opened ended, both told), in the correction's own
   * transaction: a failure between the two leaves neither written.
   *
   * Called before that transaction: the staff member's right to end each
   * sharing of the entity's users with a user of another entity is checked
   * here (refused, audited, before anything is written). Returns what the
   * correction runs in its transaction, under the audit lock, once the new
   * data is written: it ends the sharings the data now sets apart, and
   * returns their ids.
   */
  async apart(staffUserId: string, entityId: string, meta: Partial<RequestMeta> = {}): Promise<(trx: Tx) => Promise<string[]>> {
    const { users, entities } = this.deps;
    const candidates = await this.acrossEntities(this.deps.store.db, entityId);
    const known = new Map<string, User>();
    for (const row of candidates) {
      const [requester, owner] = await Promise.all([users.get(row.requester_id), users.get(row.owner_id)]);
      known.set(requester.id, requester).set(owner.id, owner);
      await this.deps.staff.cancelFor(staffUserId, [requester, owner], 'sharing_cancel');
    }
    const actor = `staff:${staffUserId}`;
    return async (trx) => {
      const ended: string[] = [];
      for (const candidate of await this.acrossEntities(trx, entityId)) {
        if (await entities.sameIdentity(candidate.requester_id, candidate.owner_id, trx)) continue;
        const row = await this.row(candidate.id, trx);
        const requester = known.get(row.requester_id) ?? (await users.get(row.requester_id, trx));
        const owner = known.get(row.owner_id) ?? (await users.get(row.owner_id, trx));
        await this.endWithin(trx, row, requester, owner, actor, meta);
        // N1: both told, by notices written in the same transaction
        if (row.state === 'pending' || row.state === 'active') await this.tell([requester, owner], 'sharingCancelled', requester, owner, trx);
        ended.push(row.id);
      }
      return ended;
    };
  }

  /** The sharings not yet ended between a user of the entity and a user of another entity. */
  private acrossEntities(db: Executor, entityId: string): Promise<Pick<SharingRow, 'id' | 'requester_id' | 'owner_id'>[]> {
    return db
      .selectFrom('device_sharings')
      .innerJoin('users as requester', 'requester.id', 'device_sharings.requester_id')
      .innerJoin('users as owner', 'owner.id', 'device_sharings.owner_id')
      .select(['device_sharings.id', 'device_sharings.requester_id', 'device_sharings.owner_id'])
      .where('device_sharings.state', 'in', [...CANCELLABLE])
      .where((eb) => eb.or([eb('requester.entity_id', '=', entityId), eb('owner.entity_id', '=', entityId)]))
      .whereRef('requester.entity_id', '!=', 'owner.entity_id')
      .execute();
  }

  // ------------------------------------------------------------ compliance (H3)

  /** Requests waiting for compliance, oldest first. */
  async pending(staffUserId: string): Promise<SharingView[]> {
    await this.deps.staff.staff(staffUserId, 'view');
    const rows = await this.deps.store.db.selectFrom('device_sharings').selectAll().where('state', '=', 'pending').orderBy('created_at').limit(100).execute();
    return Promise.all(rows.map((row) => this.view(row as SharingRow)));
  }

  /** A user's requests and sharings, for staff. */
  async ofUser(staffUserId: string, userId: string): Promise<SharingView[]> {
    await this.deps.staff.staff(staffUserId, 'view');
    return this.list(userId);
  }

  /** One request, for staff. */
  async forStaff(staffUserId: string, id: string): Promise<SharingView> {
    await this.deps.staff.staff(staffUserId, 'view');
    return this.view(await this.row(id));
  }

  /** H3: compliance approves (the prerequisites checked again) or rejects a pending request; both users are told. */
  async decide(staffUserId: string, id: string, decision: 'approve' | 'reject', note?: string): Promise<SharingView> {
    const { users, store, clock } = this.deps;
    // X7, H3: someone whose role may not decide (a client, client services) learns nothing of a sharing's id (FORBIDDEN_ROLE before SHARING_NOT_FOUND)
    await this.deps.staff.decideOn(staffUserId, [], 'sharing_decision');
    const row = await this.row(id);
    const [requester, owner] = await Promise.all([users.get(row.requester_id), users.get(row.owner_id)]);
    const staff = await this.deps.staff.decideOn(staffUserId, [requester, owner], 'sharing_decision');
    if (row.state !== 'pending') throw new SlsError('SHARING_STATE', { state: row.state });
    const actor = `staff:${staff.id}`;
    const same = await this.sameIdentity(requester, owner);
    const cleanNote = note?.trim().slice(0, 500) || null;
    await store.serialized('audit_log', async (trx) => {
      const now = clock.now();
      if (decision === 'approve') {
        const device = await this.prerequisites(requester, owner, trx, same, id);
        if (device.id !== row.device_id) throw new SlsError('SHARING_LESS_SECURE_DEVICE');
      }
      const moved = await trx
        .updateTable('device_sharings')
        .set({ state: decision === 'approve' ? 'active' : 'rejected', decided_at: now, decided_by: actor, note: cleanNote, updated_at: now })
        .where('id', '=', id)
        .where('state', '=', 'pending')
        .executeTakeFirst();
      if (Number(moved.numUpdatedRows) !== 1) throw new SlsError('SHARING_STATE', { state: 'changed' });
      if (decision === 'approve') await this.enforce(trx, row, requester, actor, now);
      else
        await this.deps.audit.append(trx, [
          { event: 'sharing.rejected', actor, userId: requester.id, username: requester.username, data: { sharingId: id, ownerId: owner.id, note: cleanNote } },
        ]);
    });
    await this.tell([requester, owner], decision === 'approve' ? 'sharingApproved' : 'sharingRejected', requester, owner);
    return this.view(await this.row(id));
  }
}
