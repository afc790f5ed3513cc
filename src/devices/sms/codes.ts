/**
 * Sending codes by SMS and voice within limits (M1, M5, M7). SMS costs money
 * and can be turned against a victim's phone, so every code counts against
 * the number (per hour and per day) and against the user (per hour and per
 * day: one account adding numbers of its own must not send without end).
 * A user who verified the number counts, against the number, only the codes
 * to the users who verified it: codes caused by accounts that merely put the
 * number on record (confirm codes) cannot use up its owners' codes.
 * Security notices by SMS are not counted (N1, X6): they are few, caused by
 * events rather than by asking, and a burst of them ("this wasn't me") must
 * never keep the user's own codes from arriving. Codes for the flows of a
 * client the user completed a login from are counted apart, with limits of
 * the same size: someone holding only the password, or another user naming
 * the number, cannot spend the owner's codes (decision 0018); and the codes of
 * the proofs a signed-in session asks for (a step-up, a device's activation
 * or PIN change) apart again, so that the password alone never spends what
 * the signed-in owner needs, nor the reverse (decision 0024). The count and the new message are written under the lock of
 * the user and the lock of the number (taken in that order), so concurrent
 * requests cannot slip past a limit — a user's two numbers share the user's
 * hourly limit — also across server processes. Delivery happens after, outside the lock; a gateway
 * failure is recorded on the message and reported to the caller.
 */
import { ALLOWANCE, type Allowance } from '../../throttle/allowance.js';
import type { Clock } from '../../clock.js';
import type { PolicyConfig } from '../../config.js';
import { SlsError } from '../../errors.js';
import type { AuditLog } from '../../audit/audit-log.js';
import { countryNotServed, maskPhone, refuseCountryNotServed } from '../../delivery/phone.js';
import type { Language } from '../../i18n/i18n.js';
import { CODE_TEMPLATES, type CodeTemplate, type Notification, type Notifier } from '../../notify/notifier.js';
import type { Executor, Store } from '../../store/database.js';
import type { Challenge, Device, SmsPrompt } from '../types.js';
import type { SmsDeviceParams } from './sms.js';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

export interface CodeMessage {
  userId: string;
  /** E.164 */
  to: string;
  channel: 'sms' | 'voice';
  template: CodeTemplate;
  code: string;
  language: Language;
  /** Decisions 0018, 0024: the allowance of the limits the code counts in (a recognised client's login, a signed-in session's proof, else other). */
  allowance?: Allowance;
}

export type SmsCodesDeps = { store: Store; clock: Clock; notifier: Notifier; policy: PolicyConfig; audit?: Pick<AuditLog, 'record'> };

export class SmsCodes {
  constructor(private readonly deps: SmsCodesDeps) {}

  /**
   * The earliest time of the messages counted in a window when there are
   * `limit` or more of them (the window reopens when the oldest leaves it).
   */
  private async reopensAt(
    db: Executor,
    column: 'recipient' | 'user_id',
    value: string,
    windowMs: number,
    limit: number,
    allowance: Allowance,
    verifiedOnly = false,
  ): Promise<number | null> {
    const since = this.deps.clock.now() - windowMs;
    let query = db
      .selectFrom('notifications')
      .select('created_at')
      .where(column, '=', value)
      .where('channel', 'in', ['sms', 'voice'])
      .where('template', 'in', CODE_TEMPLATES)
      .where('recognised', '=', allowance)
      .where('created_at', '>', since);
    // only the codes to users who verified the number (who received a code on it and typed it back)
    if (verifiedOnly)
      query = query.where(({ exists, selectFrom }) =>
        exists(
          selectFrom('phones')
            .select('phones.id')
            .whereRef('phones.user_id', '=', 'notifications.user_id')
            .whereRef('phones.e164', '=', 'notifications.recipient')
            .where('phones.verified_at', 'is not', null),
        ),
      );
    const rows = await query.orderBy('created_at', 'desc').limit(limit).execute();
    return rows.length >= limit ? rows.at(-1)!.created_at + windowMs : null;
  }

  /** The number an SMS device sends to (E.164). */
  async numberOf(device: Device): Promise<string> {
    const { phoneId } = device.params as unknown as SmsDeviceParams;
    const row = await this.deps.store.db.selectFrom('phones').select('e164').where('id', '=', phoneId).executeTakeFirst();
    if (!row) throw new SlsError('DEVICE_NOT_AVAILABLE', {}, `SMS device ${device.id} has no number`);
    return row.e164;
  }

  /**
   * Sends the code of an SMS device's challenge (M4, M5) and returns its
   * prompt telling how it went: sent, failed at the gateway, or held back by
   * the send limits (then with the time a new code may be asked for).
   * `sends` counts the codes of the flow before this one.
   */
  async deliverChallenge(device: Device, challenge: Challenge, language: Language, sends = 0, allowance: Allowance = ALLOWANCE.other): Promise<SmsPrompt> {
    const { reason: _before, ...asked } = challenge.prompt as SmsPrompt;
    const prompt: SmsPrompt = {
      ...asked,
      sends: sends + 1,
      resendAfter: new Date(this.deps.clock.now() + this.deps.policy.smsLoginResendMs).toISOString(),
    };
    try {
      const sent = await this.send({
        userId: device.userId!,
        to: await this.numberOf(device),
        channel: prompt.channel,
        template: 'loginCode',
        code: challenge.code!,
        language,
        allowance,
      });
      prompt.delivery = sent.status === 'sent' ? 'sent' : 'failed';
    } catch (error) {
      // M7: a number of a country no longer served: the code is not sent (audited), a failed delivery that says why
      if (error instanceof SlsError && error.code === 'PHONE_INVALID') {
        prompt.delivery = 'failed';
        if (error.params.reason === 'country_not_served') prompt.reason = 'country_not_served';
        return prompt;
      }
      if (!(error instanceof SlsError && error.code === 'SMS_RATE_LIMITED')) throw error;
      prompt.delivery = 'limited';
      prompt.resendAfter = String(error.params.retryAfter);
    }
    return prompt;
  }

  /**
   * Sends a code. Throws SMS_RATE_LIMITED { retryAfter } when a limit is
   * reached; returns the message, whose status says whether the gateway took it.
   */
  async send(message: CodeMessage): Promise<Notification> {
    const { store, notifier, policy, audit } = this.deps;
    const allowance = message.allowance ?? ALLOWANCE.other;
    // M7: no code to a country the operator sends no SMS to, whenever the number was put on record (before the list)
    const country = countryNotServed(message.to, policy.smsCountries);
    if (country !== null) {
      await audit?.record({
        event: 'sms.country_refused',
        userId: message.userId,
        data: { number: maskPhone(message.to), country, purpose: message.template, channel: message.channel },
      });
      refuseCountryNotServed(message.to, policy.smsCountries);
    }
    // M7: the user's lock, then the number's (always in this order): the user's count holds across their numbers, the number's across its users
    const pending = await store.serialized(`sms-user:${message.userId}`, async (trx) => {
      await store.lockWithin(trx, `sms:${message.to}`);
      // M7, M1: a user who verified the number counts only the codes to the users who verified it: a stranger who
      // puts the number on their own account and presses VERIFY floods it up to its limits, never past them, but
      // cannot spend what its owners may receive (their login codes still go out)
      const verified = await trx
        .selectFrom('phones')
        .select('id')
        .where('user_id', '=', message.userId)
        .where('e164', '=', message.to)
        .where('verified_at', 'is not', null)
        .executeTakeFirst();
      const reopens = [
        await this.reopensAt(trx, 'recipient', message.to, HOUR, policy.smsPerNumberPerHour, allowance, verified !== undefined),
        await this.reopensAt(trx, 'recipient', message.to, DAY, policy.smsPerNumberPerDay, allowance, verified !== undefined),
        await this.reopensAt(trx, 'user_id', message.userId, HOUR, policy.smsPerUserPerHour, allowance),
        await this.reopensAt(trx, 'user_id', message.userId, DAY, policy.smsPerUserPerDay, allowance),
      ].filter((t): t is number => t !== null);
      if (reopens.length > 0) throw new SlsError('SMS_RATE_LIMITED', { retryAfter: new Date(Math.max(...reopens)).toISOString() });
      return notifier.enqueue(trx, {
        userId: message.userId,
        channel: message.channel,
        recipient: message.to,
        template: message.template,
        params: { code: message.code },
        secret: ['code'],
        language: message.language,
        allowance,
      });
    });
    // without a dedupe key a message is always stored
    return notifier.deliver(pending!);
  }
}
