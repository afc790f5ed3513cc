/**
 * The help desk (client services): find a caller, record how their identity
 * was verified (T1, A5), issue or revoke a temporary passcode (T1–T5), lift
 * a lock (L3) or lock a user, end a user's sessions (L8), put a mobile
 * number on record (X7). Staff act under their own user id, with a role;
 * every action is audited with it.
 *
 * X7, staff on staff (docs/decisions/0010-staff-on-staff.md): an action on a
 * staff account needs an admin, never the actor on themselves; an action on
 * an admin is made only from the command line of the server (`sls`), by
 * another admin. Every refusal is audited.
 */
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Devices } from '../devices/devices.js';
import type { Notifier } from '../notify/notifier.js';
import type { Lockout } from '../policy/lockout.js';
import type { Sessions } from '../sessions/sessions.js';
import { SlsError } from '../errors.js';
import { newId, randomUpperAlnum } from '../crypto/random.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Device, Phone } from '../devices/types.js';
import { assertEquity, type Account, type User, type Users } from '../identity/users.js';
import type { CorrectionBasis, Entities, EntityInput, EntityView } from '../identity/entities.js';
import type { DeviceState, Role } from '../store/schema.js';
import type { Executor, Store, Tx } from '../store/database.js';
import { actingNeedsRole } from '../request-context.js';
import { deviceTopic, type Signals } from '../push/signals.js';

/** How client services may verify a caller's identity. */
export const VERIFICATION_METHODS = ['security_questions', 'id_document', 'callback_on_record', 'video_call'] as const;
export type VerificationMethod = (typeof VERIFICATION_METHODS)[number];

/** What a verification id looks like (`newId('ver')`); anything else is not looked up. */
const VERIFICATION_ID = /^[A-Za-z0-9_]{1,64}$/;

/** Who may do what at the help desk. */
const MAY_VIEW: readonly Role[] = ['client_services', 'compliance', 'admin'];
const MAY_ACT: readonly Role[] = ['client_services', 'admin'];
/** H3: who decides on a device sharing request (the first action of compliance staff), and who may end a sharing. */
const MAY_DECIDE_SHARING: readonly Role[] = ['compliance', 'admin'];
const MAY_CANCEL_SHARING: readonly Role[] = ['client_services', 'compliance', 'admin'];

export interface Verification {
  id: string;
  userId: string;
  staffUserId: string;
  method: VerificationMethod;
  notes: string | null;
  createdAt: number;
  expiresAt: number;
}

export interface IssuedPasscode {
  /** Shown once to the staff member, who reads it to the caller; only its hash is kept (T5). */
  passcode: string;
  device: Device;
  /** T3: full access to portal and trading until … */
  fullAccessUntil: number;
  /** … then the online card pages of the portal until. */
  expiresAt: number;
}

/** What the help desk needs; the composition root passes them (the device kinds' parts as small interfaces). */
export interface HelpDeskDeps {
  store: Store;
  clock: Clock;
  config: Config;
  box: SecretBox;
  audit: AuditLog;
  users: Users;
  /** A1: the entities behind the users, and their identification data. */
  entities: Entities;
  devices: Devices;
  lockout: Lockout;
  notifier: Notifier;
  sessions: Sessions;
  signals: Signals;
  /** T1: a new temporary passcode (the temporary passcode kind's `newTemporaryPasscode`). */
  newTemporaryPasscode: () => string;
  /** K14: a message sealed to the user's mobile authenticator (src/devices/mobile/push-requests.ts). */
  pushRequests: { sendMessage(trx: Tx, deviceId: string, kind: 'temporary_password', plaintext: string): Promise<string> };
  /** X7: a mobile number put on record (src/devices/sms/phones.ts). */
  phones: { add(userId: string, input: { country: string; number: string }, actor: string, ip: string | null): Promise<Phone> };
  /** T4: whether a user shares a device (as requester or owner), or waits for a sharing's approval (src/sharing/sharing.ts). */
  sharing?: {
    sharesDevice(userId: string, db?: Executor): Promise<boolean>;
    apart(staffUserId: string, entityId: string): Promise<(trx: Tx) => Promise<string[]>>;
  };
}

/** What staff do to a user's account, as the audit log names it when refused. */
export type StaffAction =
  | 'view'
  | 'verify'
  | 'temporary_passcode'
  | 'revoke_passcode'
  | 'password_reset'
  | 'unlock'
  | 'lock'
  | 'end_sessions'
  | 'add_phone'
  | 'ship'
  | 'device_lost'
  | 'device_returned'
  | 'loss_confirmed'
  | 'view_identification'
  | 'correct_identification'
  | 'set_equity'
  | 'sharing_decision'
  | 'sharing_cancel';

export class HelpDesk {
  /**
   * @param via where staff act: the console and the API, or the server's
   * command line (`sls`), from which alone an admin may act on another admin.
   */
  constructor(
    private readonly deps: HelpDeskDeps,
    private readonly via: 'console' | 'cli' = 'console',
  ) {}

  /** The same help desk, for staff acting from the server's command line. */
  viaCommandLine(): HelpDesk {
    return new HelpDesk(this.deps, 'cli');
  }

  private actor(staff: User): string {
    return `staff:${staff.id}`;
  }

  /**
   * X7: whether staff may act on a user: a client always; a staff account
   * only as an admin, and never themselves; an admin only from the command
   * line. A1: a user is the person (entity) behind it, with every username
   * of that entity: a client username of a staff member's own entity is
   * theirs (never), of a colleague's a staff account, of an admin's an
   * admin. A refusal is audited.
   */
  private async assertMayActOn(staff: User, target: User, action: StaffAction): Promise<void> {
    const people = await this.usersOfEntity(target);
    let reason: 'self' | 'staff' | 'admin' | null = null;
    if (people.some((p) => p.id === staff.id)) reason = 'self';
    else if (people.some((p) => p.role === 'admin') && this.via !== 'cli') reason = 'admin';
    else if (people.some((p) => p.role !== 'client') && staff.role !== 'admin') reason = 'staff';
    if (reason === null) return;
    await this.deps.audit.record({
      event: 'helpdesk.refused',
      actor: this.actor(staff),
      userId: target.id,
      username: target.username,
      data: { action, reason, via: this.via },
    });
    throw new SlsError('STAFF_TARGET_FORBIDDEN', { reason });
  }

  /** A1: the user and the other usernames of its entity, with their roles. */
  private async usersOfEntity(user: User): Promise<Pick<User, 'id' | 'role'>[]> {
    const others = await this.deps.store.db
      .selectFrom('users')
      .select(['id', 'role'])
      .where('entity_id', '=', user.entityId)
      .where('id', '!=', user.id)
      .execute();
    return [{ id: user.id, role: user.role }, ...others];
  }

  /** Staff who may act, and the user they act on (X7). */
  async actOn(staffUserId: string, target: string | User, action: StaffAction): Promise<{ staff: User; user: User }> {
    const staff = await this.staff(staffUserId, 'act');
    const user = typeof target === 'string' ? await this.deps.users.getByUsername(target) : target;
    await this.assertMayActOn(staff, user, action);
    return { staff, user };
  }

  /** Staff who may act on the owner of a device (X7); the device's owner, if any. */
  async actOnOwner(staffUserId: string, ownerId: string | null, action: StaffAction): Promise<User> {
    if (ownerId === null) return this.staff(staffUserId, 'act');
    return (await this.actOn(staffUserId, await this.deps.users.get(ownerId), action)).staff;
  }

  /**
   * H3, X7: staff whose role may decide on a device sharing request (or end
   * a sharing), and who may act on each of its users.
   */
  async staffOnSharing(staffUserId: string, targets: User[], action: 'sharing_decision' | 'sharing_cancel'): Promise<User> {
    const staff = await this.deps.users.get(staffUserId);
    const allowed = action === 'sharing_decision' ? MAY_DECIDE_SHARING : MAY_CANCEL_SHARING;
    if (staff.status !== 'active' || !allowed.includes(staff.role)) await this.refuseRole(staff, action);
    actingNeedsRole(staff.id, { roles: allowed, action, via: this.via });
    for (const target of targets) await this.assertMayActOn(staff, target, action);
    return staff;
  }

  /**
   * The staff member, if their role allows the action; otherwise 403
   * FORBIDDEN_ROLE, audited (X1, X7: a client or a compliance seat trying
   * the help desk is a security event), unless `quiet` (a page asking
   * whether to show its forms).
   */
  async staff(staffUserId: string, action: 'view' | 'act', options: { quiet?: boolean } = {}): Promise<User> {
    const staff = await this.deps.users.get(staffUserId);
    const allowed = action === 'view' ? MAY_VIEW : MAY_ACT;
    if (staff.status !== 'active' || !allowed.includes(staff.role)) {
      if (options.quiet) throw new SlsError('FORBIDDEN_ROLE', { role: staff.role });
      await this.refuseRole(staff, action);
    }
    actingNeedsRole(staff.id, { roles: allowed, action, via: this.via });
    return staff;
  }

  /**
   * The admin behind a request to the admin API or the OpenID clients page
   * (`path`); anyone else: 403 FORBIDDEN_ROLE, audited (X1, X7).
   */
  async admin(userId: string, action: 'admin' | 'oidc_clients', path: string): Promise<User> {
    const user = await this.deps.users.get(userId);
    if (user.status !== 'active' || user.role !== 'admin') await this.refuseRole(user, action, { path });
    actingNeedsRole(user.id, { roles: ['admin'], action, via: this.via, path });
    return user;
  }

  /** X1, X7: a role below what was asked: audited as `helpdesk.refused` (reason `role`) under the user who asked, then 403 FORBIDDEN_ROLE. */
  private async refuseRole(user: User, action: string, where: { path?: string } = {}): Promise<never> {
    await this.deps.audit.record({
      event: 'helpdesk.refused',
      actor: `${user.role === 'client' ? 'user' : 'staff'}:${user.id}`,
      userId: user.id,
      username: user.username,
      data: { action, reason: 'role', role: user.role, status: user.status, via: this.via, ...where },
    });
    throw new SlsError('FORBIDDEN_ROLE', { role: user.role });
  }

  /**
   * X7, A1: the users a staff member may find: those they may act on (as
   * `assertMayActOn` decides), never a colleague (but for an admin), an
   * admin, or a username of their own entity.
   */
  async search(staffUserId: string, query: string): Promise<User[]> {
    const staff = await this.staff(staffUserId, 'view');
    const roles: Role[] = staff.role === 'admin' ? (this.via === 'cli' ? [] : ['admin']) : ['client_services', 'compliance', 'admin'];
    return this.deps.users.search(query, 20, { roles, userId: staff.id });
  }

  /**
   * X7, A1: a user whose details (account, lock, devices, audit entries,
   * identification) staff may see: one they may act on; otherwise 403
   * STAFF_TARGET_FORBIDDEN, audited, as for an action (`view`, or what the
   * page was asked for, such as `view_identification`).
   */
  async viewUser(staffUserId: string, username: string, action: StaffAction = 'view'): Promise<User> {
    const staff = await this.staff(staffUserId, 'view');
    const user = await this.deps.users.getByUsername(username);
    await this.assertMayActOn(staff, user, action);
    return user;
  }

  /** T1/A5: what client services checked before helping a caller; valid for a while. */
  async verifyIdentity(staffUserId: string, username: string, input: { method: string; notes?: string }): Promise<Verification> {
    const { staff, user } = await this.actOn(staffUserId, username, 'verify');
    if (!(VERIFICATION_METHODS as readonly string[]).includes(input.method)) {
      throw new SlsError('VALIDATION_ERROR', { field: 'method', reason: 'verification_method', methods: VERIFICATION_METHODS.join(', ') });
    }
    if (input.notes !== undefined && input.notes.length > 500) {
      throw new SlsError('VALIDATION_ERROR', { field: 'notes', reason: 'text_length', max: 500 });
    }
    const now = this.deps.clock.now();
    const verification: Verification = {
      id: newId('ver'),
      userId: user.id,
      staffUserId: staff.id,
      method: input.method as VerificationMethod,
      notes: input.notes ?? null,
      createdAt: now,
      expiresAt: now + this.deps.config.policy.identityVerificationTtlMs,
    };
    await this.deps.store.serialized('audit_log', async (trx) => {
      await trx
        .insertInto('identity_verifications')
        .values({
          id: verification.id,
          user_id: user.id,
          staff_user_id: staff.id,
          method: verification.method,
          notes: verification.notes,
          created_at: now,
          expires_at: verification.expiresAt,
        })
        .execute();
      await this.deps.audit.append(trx, [
        {
          event: 'helpdesk.identity_verified',
          actor: this.actor(staff),
          userId: user.id,
          username: user.username,
          data: { verificationId: verification.id, method: verification.method },
        },
      ]);
    });
    return verification;
  }

  /**
   * A recorded verification of a user (expired or not) by this staff member,
   * or VERIFICATION_NOT_FOUND: a colleague's is not theirs to see or use.
   */
  async verification(staffUserId: string, username: string, verificationId: string): Promise<Verification> {
    const staff = await this.staff(staffUserId, 'view');
    const found = await this.findVerification(await this.deps.users.getByUsername(username), verificationId);
    if (!found || found.staffUserId !== staff.id) throw new SlsError('VERIFICATION_NOT_FOUND');
    return found;
  }

  private async findVerification(user: User, verificationId: string): Promise<Verification | null> {
    const row = VERIFICATION_ID.test(verificationId)
      ? await this.deps.store.db
          .selectFrom('identity_verifications')
          .selectAll()
          .where('id', '=', verificationId)
          .where('user_id', '=', user.id)
          .executeTakeFirst()
      : undefined;
    if (!row) return null;
    return {
      id: row.id,
      userId: row.user_id,
      staffUserId: row.staff_user_id,
      method: row.method as VerificationMethod,
      notes: row.notes,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
    };
  }

  /**
   * T1, X7: for an action of another service through the help desk (a DSC+
   * reported lost, a loss confirmed): a verification of `user` by this
   * staff member, still valid, on the details as they are (`requireVerification`,
   * its refusal audited).
   */
  async assertVerified(staffUserId: string, user: User, verificationId: string, action: StaffAction): Promise<void> {
    await this.requireVerification(await this.deps.users.get(staffUserId), user, verificationId, action);
  }

  /**
   * T1, A5, X7: an action on a caller needs a verification of that user, by
   * the staff member who acts (a colleague's id, read in the audit view or
   * passed on, is not theirs), still valid. A refused use is audited.
   */
  private async requireVerification(staff: User, user: User, verificationId: string, action: StaffAction): Promise<void> {
    const verification = await this.findVerification(user, verificationId);
    const reason = !verification
      ? 'not_found'
      : verification.staffUserId !== staff.id
        ? 'other_staff'
        : verification.expiresAt <= this.deps.clock.now()
          ? 'expired'
          : (await this.detailsChangedSince(verification, user))
            ? 'details_changed'
            : null;
    if (reason === null) return;
    await this.deps.audit.record({
      event: 'helpdesk.verification_refused',
      actor: this.actor(staff),
      userId: user.id,
      username: user.username,
      data: { action, reason, verificationId: VERIFICATION_ID.test(verificationId) ? verificationId : null, via: this.via },
    });
    if (reason === 'details_changed') throw new SlsError('IDENTITY_NOT_VERIFIED', { reason });
    throw new SlsError(reason === 'expired' ? 'IDENTITY_NOT_VERIFIED' : 'VERIFICATION_NOT_FOUND');
  }

  /**
   * T1, A5, X7: whether the user's verified details (the numbers on record,
   * the identification data and name of their entity, A1) changed after the
   * verification was recorded: a number verified or removed since, or the
   * entity's identification corrected. The agent verified the caller against
   * what was on record then; a call back to a number the caller has since
   * put there proves nothing, nor do an ID number or date of birth an
   * accomplice corrected to the caller's. Ordered by the audit chain (its
   * seq), not the clock: both in one millisecond still count.
   */
  private async detailsChangedSince(verification: Verification, user: User): Promise<boolean> {
    const { db } = this.deps.store;
    const made = await db
      .selectFrom('audit_log')
      .select(['seq', 'data'])
      .where('user_id', '=', verification.userId)
      .where('event', '=', 'helpdesk.identity_verified')
      .where('at', '>=', verification.createdAt)
      .orderBy('seq')
      .execute();
    const seq = made.find((row) => (JSON.parse(row.data) as { verificationId?: string }).verificationId === verification.id)?.seq;
    if (seq === undefined) return true;
    const changed = await db
      .selectFrom('audit_log')
      .select('seq')
      .where('user_id', '=', verification.userId)
      .where('event', 'in', ['phone.verified', 'phone.removed'])
      .where('seq', '>', seq)
      .executeTakeFirst();
    if (changed !== undefined) return true;
    // A1: a correction is the entity's (audited without a user): read those after the verification, few and recent
    const corrected = await db.selectFrom('audit_log').select('data').where('event', '=', 'entity.identification_corrected').where('seq', '>', seq).execute();
    return corrected.some((row) => (JSON.parse(row.data) as { entityId?: string }).entityId === user.entityId);
  }

  /**
   * T1–T5: a temporary passcode for a verified caller. One per user: a new
   * one revokes the old. The user's permanent devices become `suspended`
   * (temporarily unavailable) or `lost`.
   */
  async issueTemporaryPasscode(
    staffUserId: string,
    username: string,
    input: { verificationId: string; deviceStatus?: 'suspended' | 'lost' },
  ): Promise<IssuedPasscode> {
    const { store, clock, box, audit, devices, config, notifier, sessions } = this.deps;
    const { staff, user } = await this.actOn(staffUserId, username, 'temporary_passcode');
    // T4: no temporary passcode for a user who shares a device: the sharing is cancelled first (H5 restores their own devices)
    const refuseSharing = async (): Promise<never> => {
      await audit.record({
        event: 'helpdesk.temp_passcode_refused',
        actor: this.actor(staff),
        userId: user.id,
        username: user.username,
        data: { reason: 'sharing' },
      });
      throw new SlsError('TEMP_PASSCODE_SHARING', { username: user.username });
    };
    if (await this.deps.sharing?.sharesDevice(user.id)) await refuseSharing();
    await this.requireVerification(staff, user, input.verificationId, 'temporary_passcode');
    const deviceStatus = input.deviceStatus ?? 'suspended';
    const now = clock.now();
    const fullAccessUntil = now + config.policy.temporaryPasscodeFullMs;
    const expiresAt = now + config.policy.temporaryPasscodeLifeMs;
    const passcode = this.deps.newTemporaryPasscode();
    const deviceId = newId('dev');
    // what the temporary passcode kind keeps: only the passcode's digest (T5)
    const secret = { digest: box.digest(passcode, `device:${deviceId}`) };

    const issued = await store.serialized('audit_log', async (trx) => {
      // T4 again under the audit lock that a sharing's confirmation holds too (H1b): one of the two sees the other
      if (await this.deps.sharing?.sharesDevice(user.id, trx)) return false;
      // active devices step aside; a card already suspended by an earlier passcode may now be reported lost;
      // the earlier temporary devices end, an online card printed but never activated too (a new passcode, a new card)
      const stepping = deviceStatus === 'lost' ? ['active', 'suspended'] : ['active'];
      const current = (await devices.listForUser(user.id, trx)).filter((d) =>
        devices.kind(d.type).temporary ? d.state === 'active' || d.state === 'requested' : stepping.includes(d.state),
      );
      const changed: { id: string; to: DeviceState }[] = [];
      for (const device of current) {
        const temporary = devices.kind(device.type).temporary;
        const to = temporary ? 'revoked' : deviceStatus;
        const change = { actor: this.actor(staff), username: user.username, reason: 'temporary passcode issued' };
        if (await devices.transition(trx, device, to, change)) changed.push({ id: device.id, to });
      }
      // L8: the earlier temporary access and a device reported lost end the sessions they opened
      const endedWith = (to: DeviceState) => changed.filter((d) => d.to === to).map((d) => d.id);
      await sessions.endWhere(trx, { userId: user.id, deviceIds: endedWith('revoked') }, 'temporary_access_ended', this.actor(staff));
      await sessions.endWhere(trx, { userId: user.id, deviceIds: endedWith('lost') }, 'device_lost', this.actor(staff));
      await devices.insert(trx, {
        id: deviceId,
        userId: user.id,
        type: 'temp_passcode',
        state: 'active',
        secret,
        params: { verificationId: input.verificationId, issuedBy: staff.id },
        activated: true,
        expiresAt,
      });
      await audit.append(trx, [
        {
          event: 'helpdesk.temp_passcode_issued',
          actor: this.actor(staff),
          userId: user.id,
          username: user.username,
          data: { deviceId, verificationId: input.verificationId, fullAccessUntil, expiresAt },
        },
      ]);
      return true;
    });
    if (!issued) await refuseSharing();
    await notifier.notify(user, 'tempPasscodeIssued', { username: user.username });
    return { passcode, device: await devices.get(deviceId), fullAccessUntil, expiresAt };
  }

  /** Ends a user's temporary passcode at once, and the sessions it opened (L8). */
  async revokeTemporaryPasscode(staffUserId: string, username: string): Promise<number> {
    const { staff, user } = await this.actOn(staffUserId, username, 'revoke_passcode');
    const revoked = await this.revokeTemporaryDevices(user, this.actor(staff), 'revoked by client services');
    if (revoked > 0) await this.deps.notifier.notify(user, 'tempPasscodeRevoked', { username: user.username });
    return revoked;
  }

  /**
   * D4: temporary devices stop working (a permanent device is back, or staff
   * revoke them) — in use, or an online card waiting to be activated — and so do the sessions they opened (L8) — but `keepSession`,
   * the session that just proved the permanent device, which goes on with it.
   * Runs in the given transaction (holding the audit lock), or in its own.
   */
  async revokeTemporaryDevices(user: User, actor: string, reason: string, trx?: Tx, keepSession?: { id: string; device: Device }): Promise<number> {
    if (!trx) return this.deps.store.serialized('audit_log', (own) => this.revokeTemporaryDevices(user, actor, reason, own, keepSession));
    const { devices, sessions } = this.deps;
    // an online card shown but not yet activated (requested) ends too: it could otherwise be activated later, after D4
    const live = (await devices.listForUser(user.id, trx)).filter((d) => (d.state === 'active' || d.state === 'requested') && devices.kind(d.type).temporary);
    const revoked: Device[] = [];
    for (const device of live) {
      if (await devices.transition(trx, device, 'revoked', { actor, username: user.username, reason })) revoked.push(device);
    }
    if (keepSession) await sessions.moveToDevice(trx, keepSession.id, keepSession.device);
    await sessions.endWhere(
      trx,
      { userId: user.id, deviceIds: revoked.map((d) => d.id), ...(keepSession ? { exceptSessionId: keepSession.id } : {}) },
      'temporary_access_ended',
      actor,
    );
    return revoked.length;
  }

  /**
   * A5: a forgotten password. After verifying the caller, client services
   * set a one-time password; at the next login the user must choose a new
   * one. K14: a user with an active mobile authenticator receives it in the
   * app, sealed to the phone, and staff never see it; otherwise it is shown
   * once to staff, who read it to the caller.
   */
  async resetPassword(
    staffUserId: string,
    username: string,
    input: { verificationId: string },
  ): Promise<{ temporaryPassword: string | null; deliveredTo: 'staff' | 'app' }> {
    const { staff, user } = await this.actOn(staffUserId, username, 'password_reset');
    await this.requireVerification(staff, user, input.verificationId, 'password_reset');
    const temporaryPassword = randomUpperAlnum(12);
    // the phone is chosen in the transaction that sets the password: a migration cannot slip in between
    const phoneId = await this.deps.users.setPassword(user.id, temporaryPassword, { actor: this.actor(staff), oneTime: true }, async (trx) => {
      // L8: the sessions the old password opened end with it
      await this.deps.sessions.endWhere(trx, { userId: user.id }, 'password_reset', this.actor(staff));
      const phone = await trx
        .selectFrom('devices')
        .select('id')
        .where('user_id', '=', user.id)
        .where(
          'type',
          'in',
          this.deps.devices.typesWhere((kind) => kind.receivesMessages),
        )
        .where('state', '=', 'active')
        .executeTakeFirst();
      if (!phone) return null;
      const messageId = await this.deps.pushRequests.sendMessage(trx, phone.id, 'temporary_password', temporaryPassword);
      await this.deps.audit.append(trx, [
        {
          event: 'mobile.message_sent',
          actor: this.actor(staff),
          userId: user.id,
          username: user.username,
          data: { messageId, deviceId: phone.id, kind: 'temporary_password' },
        },
      ]);
      return phone.id;
    });
    if (phoneId) await this.deps.signals.publish(deviceTopic(phoneId));
    await this.deps.notifier.notify(user, 'passwordReset', { username: user.username });
    return phoneId ? { temporaryPassword: null, deliveredTo: 'app' } : { temporaryPassword, deliveredTo: 'staff' };
  }

  /**
   * L3: client services lift a lock after verifying the caller's identity.
   * A lock staff placed (`lockUser`: a reported compromise, fraud) is lifted
   * by an admin only (docs/decisions/0020-staff-lock-lifted-by-admin.md): a
   * phone verification is what the fraudster on the line passes, so an agent
   * alone — even the one who placed it — is refused 403 STAFF_LOCK_ADMIN_ONLY,
   * audited. Read under the audit lock that `lockUser` takes too: a lock
   * placed meanwhile is never lifted by an unlock checked before it.
   */
  async unlock(staffUserId: string, username: string, input: { verificationId: string }): Promise<void> {
    const { staff, user } = await this.actOn(staffUserId, username, 'unlock');
    await this.requireVerification(staff, user, input.verificationId, 'unlock');
    // X1: the lock lifted and its audit entry, both or neither; a refusal is kept (the transaction does not throw)
    const lifted = await this.deps.store.serialized('audit_log', async (trx) => {
      const byStaff = await this.deps.lockout.lockedByStaff(user.username, trx);
      if (byStaff && staff.role !== 'admin') {
        await this.deps.audit.append(trx, [
          {
            event: 'helpdesk.refused',
            actor: this.actor(staff),
            userId: user.id,
            username: user.username,
            data: { action: 'unlock', reason: 'staff_lock', via: this.via, verificationId: input.verificationId },
          },
        ]);
        return false;
      }
      await this.deps.lockout.reset(user.username, trx);
      await this.deps.audit.append(trx, [
        {
          event: 'helpdesk.unlocked',
          actor: this.actor(staff),
          userId: user.id,
          username: user.username,
          data: { verificationId: input.verificationId, lockedByStaff: byStaff },
        },
      ]);
      return true;
    });
    if (!lifted) throw new SlsError('STAFF_LOCK_ADMIN_ONLY');
    await this.deps.notifier.notify(user, 'userUnlocked', { username: user.username });
  }

  /**
   * L3, L8: client services lock a user (a reported compromise, fraud): no
   * login until an admin lifts it (unlock, decision 0020), and every session
   * ends now.
   */
  async lockUser(staffUserId: string, username: string, input: { reason: string }): Promise<number> {
    const { staff, user } = await this.actOn(staffUserId, username, 'lock');
    const reason = input.reason.trim();
    if (reason.length === 0 || reason.length > 500) throw new SlsError('VALIDATION_ERROR', { field: 'reason', reason: 'text_required_length', max: 500 });
    const ended = await this.deps.store.serialized('audit_log', async (trx) => {
      await this.deps.lockout.lockUntilLifted(user.username, trx);
      const ids = await this.deps.sessions.endWhere(trx, { userId: user.id }, 'user_locked', this.actor(staff));
      await this.deps.audit.append(trx, [
        { event: 'helpdesk.user_locked', actor: this.actor(staff), userId: user.id, username: user.username, data: { reason, sessionsEnded: ids.length } },
      ]);
      return ids.length;
    });
    await this.deps.notifier.notifySoon(user, 'userLockedByStaff', { username: user.username });
    return ended;
  }

  /** L8: client services end every session of a user (a stolen laptop, a shared computer). */
  async endSessions(staffUserId: string, username: string): Promise<number> {
    const { staff, user } = await this.actOn(staffUserId, username, 'end_sessions');
    const ended = await this.deps.store.serialized('audit_log', async (trx) => {
      const ids = await this.deps.sessions.endWhere(trx, { userId: user.id }, 'ended_by_staff', this.actor(staff));
      await this.deps.audit.append(trx, [
        { event: 'helpdesk.sessions_ended', actor: this.actor(staff), userId: user.id, username: user.username, data: { count: ids.length } },
      ]);
      return ids.length;
    });
    // N1: the user hears of it (as of a lock): one they did not ask for says someone acted on their user at the help desk
    await this.deps.notifier.notify(user, 'sessionsEndedByStaff', { username: user.username });
    return ended;
  }

  /**
   * T5, A5: a new secret (`kind`: a temporary passcode, a one-time password)
   * on its way to the console page that shows it once: an id, bound to the
   * staff session and the user, which `takeHandover` consumes. The secret
   * itself travels sealed in the browser's cookie, never in the database.
   */
  async openHandover(sessionId: string, userId: string, kind: string, ttlMs: number): Promise<string> {
    const id = newId('hnd');
    await this.deps.store.db
      .insertInto('helpdesk_handovers')
      .values({ id, session_id: sessionId, user_id: userId, kind, expires_at: this.deps.clock.now() + ttlMs })
      .execute();
    return id;
  }

  /**
   * T5, A5: whether the secret of this handover may be shown, once: its row
   * is deleted in one statement, so that of two loads at once, or a sealed
   * cookie sent again (a proxy log, a second tab, a retry), only one shows
   * it. A refusal is audited (`used`: shown already, or expired; `unsealed`:
   * a cookie that does not open for this session, user and kind).
   */
  async takeHandover(staff: { userId: string; sessionId: string }, user: User, kind: string, handoverId: string | null): Promise<boolean> {
    const now = this.deps.clock.now();
    if (handoverId !== null) {
      const taken = await this.deps.store.db
        .deleteFrom('helpdesk_handovers')
        .where('id', '=', handoverId)
        .where('session_id', '=', staff.sessionId)
        .where('user_id', '=', user.id)
        .where('kind', '=', kind)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (Number(taken.numDeletedRows) === 1) return true;
    }
    await this.deps.audit.record({
      event: 'helpdesk.secret_refused',
      actor: `staff:${staff.userId}`,
      userId: user.id,
      username: user.username,
      data: { kind, reason: handoverId === null ? 'unsealed' : 'used' },
    });
    return false;
  }

  /** T5, A5: forgets the handovers whose secret was never shown, once they expired. */
  async pruneHandovers(): Promise<void> {
    await this.deps.store.db.deleteFrom('helpdesk_handovers').where('expires_at', '<=', this.deps.clock.now()).execute();
  }

  /**
   * X7 on the users behind a change: staff act on an entity's identification
   * data, or on an account's equity, only if they may act on each of its
   * users (never their own entity or account; a staff member's, as an admin).
   */
  private async actOnAll(staffUserId: string, user: User, action: StaffAction, scope: 'entity' | 'account'): Promise<User> {
    const staff = await this.staff(staffUserId, 'act');
    const rows = await this.deps.store.db
      .selectFrom('users')
      .select('id')
      .where(scope === 'entity' ? 'entity_id' : 'account_id', '=', scope === 'entity' ? user.entityId : user.accountId)
      .execute();
    const others = await Promise.all(rows.filter((r) => r.id !== user.id).map((r) => this.deps.users.get(r.id)));
    for (const target of [user, ...others]) await this.assertMayActOn(staff, target, action);
    return staff;
  }

  /**
   * A1: the identification data of a user's entity, masked; in full
   * (`reveal`) only to staff who may act on the entity's users, audited.
   */
  async identification(staffUserId: string, username: string, options: { reveal?: boolean; ip?: string | null } = {}): Promise<EntityView> {
    if (!options.reveal) {
      const user = await this.viewUser(staffUserId, username);
      return this.deps.entities.view(user.entityId);
    }
    const user = await this.deps.users.getByUsername(username);
    const staff = await this.actOnAll(staffUserId, user, 'view_identification', 'entity');
    await this.deps.audit.record({
      event: 'entity.identification_viewed',
      actor: this.actor(staff),
      userId: user.id,
      username: user.username,
      ip: options.ip ?? null,
      data: { entityId: user.entityId },
    });
    return this.deps.entities.view(user.entityId, true);
  }

  /**
   * A1: client services correct the identification data of a user's entity
   * (an outdated document on record), based on the document they saw: its
   * type and a reference are required and audited with the fields changed.
   */
  async correctIdentification(
    staffUserId: string,
    username: string,
    changes: { name?: string; identification: EntityInput['identification'] },
    basis: CorrectionBasis,
  ): Promise<string[]> {
    const user = await this.deps.users.getByUsername(username);
    const staff = await this.actOnAll(staffUserId, user, 'correct_identification', 'entity');
    // H1a: a sharing with a username of another entity stands only while their identification data is identical:
    // the sharings the correction sets apart end in its own transaction (a failure between the two writes neither)
    const endApart = await this.deps.sharing?.apart(staff.id, user.entityId);
    const { fields } = await this.deps.entities.correct(user.entityId, changes, basis, this.actor(staff), async (trx) => {
      await endApart?.(trx);
    });
    return fields;
  }

  /** A6: staff set the equity of a user's account (it decides DSC+ eligibility, C1). */
  async setEquity(staffUserId: string, username: string, equityUsd: number): Promise<Account> {
    const user = await this.deps.users.getByUsername(username);
    assertEquity(equityUsd);
    const staff = await this.actOnAll(staffUserId, user, 'set_equity', 'account');
    return this.deps.users.setEquity(user.accountNumber, equityUsd, this.actor(staff));
  }

  /**
   * A6 by account number (the admin API): the same X7 check as `setEquity`,
   * on each of the account's users (never the actor's own account; another
   * admin's only from the command line).
   */
  async setAccountEquity(staffUserId: string, accountNumber: string, equityUsd: number): Promise<Account> {
    assertEquity(equityUsd);
    const account = await this.deps.users.accountByNumber(accountNumber);
    const [first] = await this.deps.users.usersOf(account.id);
    const staff = first ? await this.actOnAll(staffUserId, first, 'set_equity', 'account') : await this.staff(staffUserId, 'act');
    return this.deps.users.setEquity(account.accountNumber, equityUsd, this.actor(staff));
  }

  /**
   * X7: a mobile number put on record by client services after verifying the
   * caller: the way for a user without any device to enrol (the activation
   * token then goes to it, M2, K1).
   */
  async addPhone(staffUserId: string, username: string, input: { verificationId: string; country: string; number: string }): Promise<Phone> {
    const { staff, user } = await this.actOn(staffUserId, username, 'add_phone');
    await this.requireVerification(staff, user, input.verificationId, 'add_phone');
    const phone = await this.deps.phones.add(user.id, { country: input.country, number: input.number }, this.actor(staff), null);
    await this.deps.audit.record({
      event: 'helpdesk.phone_added',
      actor: this.actor(staff),
      userId: user.id,
      username: user.username,
      data: { phoneId: phone.id, number: phone.masked, verificationId: input.verificationId },
    });
    // N1: the user hears of it, the number masked: one they did not ask for is the way to enrol in their name
    await this.deps.notifier.notify(user, 'phoneOnRecord', { username: user.username, number: phone.masked });
    return phone;
  }
}
