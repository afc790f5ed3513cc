/**
 * Mobile numbers and SMS enrolment (M1, M2, M6).
 *
 *   add (country + digits → E.164) ─► VERIFY: a confirm code by SMS (a new one
 *   only every 2 minutes) ─► confirm ─► "SMS Verified" ─► enrolled in SMS when
 *   the user has no active permanent device (M2)
 *
 * A new applicant whose number is on record but not yet confirmed confirms it
 * at the first login: the SMS device waits in state `requested`, and the
 * login code that reaches the number both verifies it and activates the
 * device.
 */
import type { Clock } from '../../clock.js';
import type { PolicyConfig } from '../../config.js';
import { SlsError } from '../../errors.js';
import { constantTimeEqual } from '../../crypto/constant-time.js';
import { newId } from '../../crypto/random.js';
import type { SecretBox } from '../../crypto/secret-box.js';
import type { AuditLog } from '../../audit/audit-log.js';
import { countryNotServed, maskPhone, refuseCountryNotServed, toE164 } from '../../delivery/phone.js';
import type { Language } from '../../i18n/i18n.js';
import type { Users } from '../../identity/users.js';
import type { Notifier } from '../../notify/notifier.js';
import type { Sessions } from '../../sessions/sessions.js';
import type { Executor, Store, Tx } from '../../store/database.js';
import type { PhonesTable } from '../../store/schema.js';
import type { Selectable } from 'kysely';
import type { Devices } from '../devices.js';
import type { Device, Phone } from '../types.js';
import type { SmsCodes } from './codes.js';
import { newSmsCode, type SmsDeviceParams } from './sms.js';

type PhoneRow = Selectable<PhonesTable>;

/** Mobile numbers one user may keep on record. */
export const MAX_PHONES_PER_USER = 3;

export type { Phone } from '../types.js';

export interface ActionMeta {
  ip: string | null;
  language: Language;
}

export type PhonesDeps = {
  store: Store;
  clock: Clock;
  box: SecretBox;
  audit: AuditLog;
  users: Users;
  devices: Devices;
  notifier: Notifier;
  smsCodes: SmsCodes;
  policy: PolicyConfig;
  /** L8: a number removed ends the sessions its SMS device opened. */
  sessions: Pick<Sessions, 'endOpenedWith'>;
};

export class Phones {
  constructor(private readonly deps: PhonesDeps) {}

  private toPhone(row: PhoneRow): Phone {
    const now = this.deps.clock.now();
    const resendAfter = row.confirm_sent_at === null ? null : row.confirm_sent_at + this.deps.policy.smsConfirmResendMs;
    return {
      id: row.id,
      country: row.country,
      e164: row.e164,
      masked: maskPhone(row.e164),
      verified: row.verified_at !== null,
      verifiedAt: row.verified_at,
      createdAt: row.created_at,
      codePending: row.confirm_digest !== null && (row.confirm_expires_at ?? 0) > now && row.confirm_attempts < this.deps.policy.smsConfirmMaxAttempts,
      resendAfter: resendAfter !== null && resendAfter > now ? resendAfter : null,
    };
  }

  private confirmDigest(phoneId: string, code: string): string {
    return this.deps.box.digest(code, `phone-confirm:${phoneId}`);
  }

  private async row(userId: string, phoneId: string, db: Executor = this.deps.store.db): Promise<PhoneRow> {
    const row = /^phn_[a-z2-7]{26}$/.test(phoneId)
      ? await db.selectFrom('phones').selectAll().where('id', '=', phoneId).where('user_id', '=', userId).executeTakeFirst()
      : undefined;
    if (!row) throw new SlsError('PHONE_NOT_FOUND', { id: phoneId });
    return row;
  }

  async list(userId: string): Promise<Phone[]> {
    const rows = await this.deps.store.db.selectFrom('phones').selectAll().where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute();
    return rows.map((row) => this.toPhone(row));
  }

  async get(userId: string, phoneId: string): Promise<Phone> {
    return this.toPhone(await this.row(userId, phoneId));
  }

  /** M6: a number entered as digits for a country is kept in E.164, not yet verified. */
  async add(userId: string, input: { country: string; number: string }, actor: string, ip: string | null): Promise<Phone> {
    const e164 = toE164(input.country, input.number);
    const { store, clock, audit, policy } = this.deps;
    // M7: a number of a country the operator sends no SMS to is never put on record (SMS pumping, an operator's mistake)
    const country = countryNotServed(e164, policy.smsCountries);
    if (country !== null) {
      await audit.record({ event: 'sms.country_refused', actor, userId, ip, data: { number: maskPhone(e164), country, purpose: 'add' } });
      refuseCountryNotServed(e164, policy.smsCountries);
    }
    const id = newId('phn');
    await store.serialized('audit_log', async (trx) => {
      const existing = await trx.selectFrom('phones').select(['e164']).where('user_id', '=', userId).execute();
      if (existing.some((p) => p.e164 === e164)) throw new SlsError('PHONE_EXISTS');
      if (existing.length >= MAX_PHONES_PER_USER) throw new SlsError('PHONE_LIMIT', { max: MAX_PHONES_PER_USER });
      await trx
        .insertInto('phones')
        .values({
          id,
          user_id: userId,
          country: input.country.toUpperCase(),
          e164,
          verified_at: null,
          created_at: clock.now(),
          confirm_digest: null,
          confirm_expires_at: null,
          confirm_sent_at: null,
        })
        .execute();
      await audit.append(trx, [{ event: 'phone.added', actor, userId, ip, data: { phoneId: id, number: maskPhone(e164) } }]);
    });
    return this.get(userId, id);
  }

  /**
   * M1: VERIFY sends a confirm code by SMS; a new one only 2 minutes after
   * the last. Returns the number and whether the gateway took the message.
   */
  async sendConfirmCode(userId: string, phoneId: string, meta: ActionMeta): Promise<{ phone: Phone; delivery: 'sent' | 'failed' }> {
    const { store, clock, policy, audit, smsCodes } = this.deps;
    const row = await this.row(userId, phoneId);
    if (row.verified_at !== null) throw new SlsError('PHONE_ALREADY_VERIFIED');
    const now = clock.now();
    const code = newSmsCode();
    // claims the slot and stores the new code at once: concurrent VERIFY presses send one code; under the audit lock, so
    // that a session ended meanwhile sends nothing (L8, decision 0031: the request's session is read again there)
    const claimed = await store.serialized('audit_log', (trx) =>
      trx
        .updateTable('phones')
        .set({ confirm_sent_at: now, confirm_digest: this.confirmDigest(phoneId, code), confirm_expires_at: now + policy.smsCodeTtlMs, confirm_attempts: 0 })
        .where('id', '=', phoneId)
        .where('verified_at', 'is', null)
        .where((eb) => eb.or([eb('confirm_sent_at', 'is', null), eb('confirm_sent_at', '<=', now - policy.smsConfirmResendMs)]))
        .executeTakeFirst(),
    );
    if (Number(claimed.numUpdatedRows) !== 1) {
      const current = await this.row(userId, phoneId);
      if (current.verified_at !== null) throw new SlsError('PHONE_ALREADY_VERIFIED');
      throw new SlsError('SMS_TOO_SOON', { retryAfter: new Date((current.confirm_sent_at ?? now) + policy.smsConfirmResendMs).toISOString() });
    }
    let status: 'sent' | 'failed';
    try {
      status =
        (await smsCodes.send({ userId, to: row.e164, channel: 'sms', template: 'confirmCode', code, language: meta.language })).status === 'sent'
          ? 'sent'
          : 'failed';
    } catch (error) {
      // nothing went out: the code is void and the next VERIFY need not wait
      await store.db
        .updateTable('phones')
        .set({ confirm_sent_at: row.confirm_sent_at, confirm_digest: null, confirm_expires_at: null })
        .where('id', '=', phoneId)
        .where('confirm_sent_at', '=', now)
        .execute();
      // a limit reached is audited here; any other refusal (a session ended meanwhile, decision 0031) is audited where it is made
      if (error instanceof SlsError && error.code === 'SMS_RATE_LIMITED')
        await audit.record({ event: 'sms.rate_limited', userId, ip: meta.ip, data: { phoneId, purpose: 'confirm' } });
      throw error;
    }
    await audit.record({ event: 'phone.confirm_code_sent', userId, ip: meta.ip, data: { phoneId, number: maskPhone(row.e164), delivery: status } });
    return { phone: await this.get(userId, phoneId), delivery: status };
  }

  /**
   * M1: the confirm code verifies the number ("SMS Verified"); a user without
   * an active permanent device is then enrolled in SMS (M2). Each code admits
   * a few wrong tries and is accepted once.
   */
  async confirm(userId: string, phoneId: string, code: string, meta: ActionMeta): Promise<{ phone: Phone; enrolledDeviceId: string | null }> {
    const { store, clock, policy, audit } = this.deps;
    const row = await this.row(userId, phoneId);
    if (row.verified_at !== null) throw new SlsError('PHONE_ALREADY_VERIFIED');
    const now = clock.now();
    if (row.confirm_digest === null || (row.confirm_expires_at ?? 0) <= now) throw new SlsError('CODE_EXPIRED');
    // one try reserved atomically, so concurrent guesses cannot exceed the limit
    const reserved = await store.db
      .updateTable('phones')
      .set((eb) => ({ confirm_attempts: eb('confirm_attempts', '+', 1) }))
      .where('id', '=', phoneId)
      .where('confirm_digest', '=', row.confirm_digest)
      .where('confirm_attempts', '<', policy.smsConfirmMaxAttempts)
      .returning('confirm_attempts')
      .executeTakeFirst();
    if (!reserved) throw new SlsError('CODE_EXPIRED');
    if (!constantTimeEqual(this.confirmDigest(phoneId, code), row.confirm_digest)) {
      const attemptsLeft = policy.smsConfirmMaxAttempts - reserved.confirm_attempts;
      await audit.record({ event: 'phone.confirm_failed', userId, ip: meta.ip, data: { phoneId, attemptsLeft } });
      throw attemptsLeft > 0 ? new SlsError('CODE_INVALID', { attemptsLeft }) : new SlsError('CODE_EXPIRED');
    }
    const user = await this.deps.users.get(userId);
    const verified = await store.serialized('audit_log', async (trx) => {
      // N1: the number the notices went to until now is told that another now takes them (an attacker's, perhaps)
      const before = await trx
        .selectFrom('phones')
        .select('e164')
        .where('user_id', '=', userId)
        .where('verified_at', 'is not', null)
        .orderBy('verified_at', 'desc')
        .executeTakeFirst();
      const updated = await trx
        .updateTable('phones')
        .set({ verified_at: now, confirm_digest: null, confirm_expires_at: null })
        .where('id', '=', phoneId)
        .where('confirm_digest', '=', row.confirm_digest)
        .where('verified_at', 'is', null)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) return false;
      await audit.append(trx, [{ event: 'phone.verified', userId, ip: meta.ip, data: { phoneId, number: maskPhone(row.e164) } }]);
      await this.deps.notifier.notify(
        user,
        'phoneVerified',
        { username: user.username, number: maskPhone(row.e164) },
        { db: trx, ...(before ? { alsoSms: before.e164 } : {}) },
      );
      return true;
    });
    if (!verified) throw new SlsError('CODE_EXPIRED');
    const enrolled = await this.enrolIfUnprotected(userId, meta.ip);
    return { phone: await this.get(userId, phoneId), enrolledDeviceId: enrolled?.id ?? null };
  }

  /** The user's SMS devices that send to a number (requested or active); `db`: a transaction that holds the audit lock. */
  private async smsDevicesOf(userId: string, phoneId: string, db: Executor = this.deps.store.db): Promise<{ backed: Device[]; all: Device[] }> {
    const all = await this.deps.devices.listForUser(userId, db);
    const backed = all.filter(
      (d) => d.type === 'sms' && (d.state === 'active' || d.state === 'requested') && (d.params as unknown as SmsDeviceParams).phoneId === phoneId,
    );
    return { backed, all };
  }

  /**
   * Removes a number; its SMS device is revoked. Refused while that device
   * is the user's only way to log in (PHONE_IN_USE). The sessions the SMS
   * device opened end with it (L8), but `exceptSessionId` (the remover's).
   * M6, L6: the check reads the devices under the audit lock, in the
   * transaction that revokes: every other removal (a card reported lost, a
   * key removed, another number removed) writes under that lock, so of two
   * at once the second sees the first, and is refused as a lone removal of
   * the last device is.
   */
  async remove(userId: string, phoneId: string, actor: string, ip: string | null, options: { exceptSessionId?: string } = {}): Promise<void> {
    const { store, devices, audit } = this.deps;
    await this.row(userId, phoneId);
    const user = await this.deps.users.get(userId);
    await store.serialized('audit_log', async (trx) => {
      // read again under the lock: the number removed meanwhile is not found, its device no longer backed
      const row = await this.row(userId, phoneId, trx);
      const { backed, all } = await this.smsDevicesOf(userId, phoneId, trx);
      const others = all.filter((d) => d.state === 'active' && !backed.some((b) => b.id === d.id) && !devices.kind(d.type).temporary);
      if (backed.some((d) => d.state === 'active') && others.length === 0) throw new SlsError('PHONE_IN_USE');
      const revoked: string[] = [];
      for (const device of backed) {
        if (await devices.transition(trx, device, 'revoked', { actor, reason: 'number removed' })) revoked.push(device.id);
      }
      // L8: the sessions the SMS device opened end with it (but the remover's, which stepped up)
      await this.deps.sessions.endOpenedWith(trx, revoked, 'device_revoked', actor, options.exceptSessionId);
      await trx.deleteFrom('phones').where('id', '=', phoneId).execute();
      await audit.append(trx, [{ event: 'phone.removed', actor, userId, ip, data: { phoneId, number: maskPhone(row.e164) } }]);
      // N1: told to the usual reach, and to the number removed when it was verified (it may have been the one the notices went to)
      await this.deps.notifier.notify(
        user,
        'phoneRemoved',
        { username: user.username, number: maskPhone(row.e164) },
        { db: trx, ...(row.verified_at !== null ? { alsoSms: row.e164 } : {}) },
      );
    });
  }

  /**
   * M2: a user with a verified number and no active permanent device is
   * enrolled in SMS, once even under concurrent calls. Returns the new
   * device, or null when none was needed or possible.
   */
  async enrolIfUnprotected(userId: string, ip: string | null): Promise<Device | null> {
    return this.smsDeviceFor(userId, ip, false);
  }

  /**
   * The SMS device a login may use when the user has no usable device: a
   * verified number enrols the user (M2); a number on record not yet
   * confirmed gives a device waiting for the first code (a new applicant).
   */
  async deviceForLogin(userId: string, ip: string | null): Promise<Device | null> {
    return this.smsDeviceFor(userId, ip, true);
  }

  /**
   * In one transaction: nothing while the user has an active permanent
   * device; else an active SMS device on the latest verified number, told to
   * the user; else (when asked) the applicant's waiting device, made once.
   */
  private async smsDeviceFor(userId: string, ip: string | null, orWaiting: boolean): Promise<Device | null> {
    const { store, devices, audit, notifier, users } = this.deps;
    const found = await store.serialized('audit_log', async (trx) => {
      if (await this.hasPermanentDevice(trx, userId)) return null;
      const verified = await trx
        .selectFrom('phones')
        .selectAll()
        .where('user_id', '=', userId)
        .where('verified_at', 'is not', null)
        .orderBy('verified_at', 'desc')
        .executeTakeFirst();
      if (verified) {
        const number = maskPhone(verified.e164);
        const id = await this.insertSmsDevice(trx, userId, verified, 'active');
        await audit.append(trx, [{ event: 'device.enrolled', actor: 'system', userId, ip, data: { deviceId: id, type: 'sms', number, automatic: true } }]);
        return { id, enrolledOn: number };
      }
      if (!orWaiting) return null;
      const waiting = await trx
        .selectFrom('devices')
        .select('id')
        .where('user_id', '=', userId)
        .where('type', '=', 'sms')
        .where('state', '=', 'requested')
        .executeTakeFirst();
      if (waiting) return { id: waiting.id, enrolledOn: null };
      const onRecord = await trx
        .selectFrom('phones')
        .selectAll()
        .where('user_id', '=', userId)
        .where('verified_at', 'is', null)
        .orderBy('created_at')
        .executeTakeFirst();
      if (!onRecord) return null;
      const id = await this.insertSmsDevice(trx, userId, onRecord, 'requested');
      await audit.append(trx, [
        { event: 'device.requested', actor: 'system', userId, ip, data: { deviceId: id, type: 'sms', number: maskPhone(onRecord.e164) } },
      ]);
      return { id, enrolledOn: null };
    });
    if (!found) return null;
    if (found.enrolledOn) {
      const user = await users.get(userId);
      await notifier.notify(user, 'deviceEnrolled', { username: user.username, number: found.enrolledOn });
    }
    return devices.get(found.id);
  }

  /** A new applicant's first login code reached the number: it is verified and the SMS device is active (M2). */
  async completeEnrolment(trx: Tx, device: Device, ip: string | null): Promise<void> {
    const now = this.deps.clock.now();
    const { phoneId } = device.params as unknown as SmsDeviceParams;
    await trx.updateTable('phones').set({ verified_at: now }).where('id', '=', phoneId).where('verified_at', 'is', null).execute();
    await this.deps.audit.append(trx, [{ event: 'phone.verified', userId: device.userId, ip, data: { phoneId, by: 'login' } }]);
    await this.deps.devices.transition(trx, device, 'active', { actor: 'system', ip, event: 'device.enrolled', data: { automatic: true } });
  }

  /** M2, H: an active permanent device protects the user: their own, or one another username shares with them. */
  private async hasPermanentDevice(db: Executor, userId: string): Promise<boolean> {
    const active = await this.deps.devices.activeTypesProtecting(userId, db);
    return active.some((type) => !this.deps.devices.kind(type).temporary);
  }

  private async insertSmsDevice(trx: Tx, userId: string, phone: PhoneRow, state: 'active' | 'requested'): Promise<string> {
    const params: SmsDeviceParams = { phoneId: phone.id };
    return this.deps.devices.insert(trx, {
      userId,
      type: 'sms',
      state,
      label: maskPhone(phone.e164),
      secret: null,
      params: { ...params },
      activated: state === 'active',
    });
  }
}
