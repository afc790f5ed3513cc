/**
 * Messages to users (N1, M7, X6): security notices by e-mail and SMS, and
 * codes by SMS or voice. Delivery is not authentication (GUIDE lesson 7). A
 * message is written from the translation files, in the user's language and
 * time zone, and stored in the notifications table (the outbox).
 *
 * - Notices (`notify`) are only stored: the outbox worker
 *   (src/notify/outbox-worker.ts) hands them to the gateways, with retries,
 *   in every server process and in `sls jobs run`. Nothing waits on a
 *   gateway, and nothing is lost when a process stops.
 * - Codes (`enqueue` + `deliver`, used by src/devices/sms/codes.ts) are
 *   handed to the gateway at once, with a few quick retries, because the
 *   page that asked must say whether the code went out.
 *
 * The development provider delivers into the outbox itself, where `sls
 * outbox` and the development page read it; voice messages are also
 * rendered to audio there.
 */
import type { Clock } from '../clock.js';
import type { Language } from '../i18n/i18n.js';
import { hasTranslation, isLanguage, translator } from '../i18n/i18n.js';
import { newId } from '../crypto/random.js';
import type { Executor, Store } from '../store/database.js';
import type { NotificationStatus, NotificationsTable } from '../store/schema.js';
import type { Selectable } from 'kysely';
import { OUTBOX, outboxProvider } from '../delivery/outbox.js';
import { countryNotServed } from '../delivery/phone.js';
import type { Channel, DeliveryProvider, OutgoingMessage } from '../delivery/provider.js';
import { withRetry } from '../delivery/retry.js';
import { isTimeZone } from '../config.js';
import { countryName } from '../identity/countries.js';
import type { SecretBox } from '../crypto/secret-box.js';

export type { Channel, DeliveryProvider, OutgoingMessage } from '../delivery/provider.js';

/** Notices the system sends; each has `notifications.<name>.subject`, `.body` and a one-segment `.sms` text. */
export type NoticeTemplate =
  | 'tempPasscodeIssued'
  | 'tempPasscodeRevoked'
  | 'userLocked'
  | 'userLockedByStaff'
  // N1, L8: client services ended every session of the user
  | 'sessionsEndedByStaff'
  | 'userUnlocked'
  | 'deviceReactivated'
  // N1, C7: a device's PIN changed (whoever holds the card and its old PIN locks its owner out)
  | 'pinChanged'
  // N1, S2 (decision 0036): an online security card activated (full access for 21 days; the card before it ends)
  | 'onlineCardActivated'
  | 'deviceEnrolled'
  | 'dscplusRequested'
  | 'dscplusShipped'
  // N1, C5, R2: a DSC+ reported lost, stolen or damaged (by the user's session or client services): it works no more
  | 'deviceReportedLost'
  // N1, R2 (decision 0028): an admin ended the wait after a loss reported with a weaker proof: a new device may be bound at once
  | 'deviceLossConfirmed'
  | 'autoActivationApproaching'
  | 'autoActivationImminent'
  | 'dscplusAutoActivated'
  | 'passwordReset'
  | 'passwordChanged'
  | 'mobileActivated'
  | 'mobileRecoveryFailed'
  | 'pushDenied'
  | 'securityKeySuspended'
  // N1, D6, X7: a security key registered or removed (a new second factor, or one withdrawn), told by its name
  | 'securityKeyAdded'
  | 'securityKeyRemoved'
  // H3, N1: a device sharing requested (waiting for compliance), approved, rejected, cancelled; to both users
  | 'sharingRequested'
  | 'sharingApproved'
  | 'sharingRejected'
  | 'sharingCancelled'
  // H2, H3, L8, N1: a request not yet in force ended with the sessions of one of its users (password changed or reset, staff)
  | 'sharingRequestCancelled'
  | 'noticeLanguageChanged'
  | 'optedOut'
  | 'optedIn'
  // N1, X7: a mobile number verified or removed, told to the number the notices went to until then
  | 'phoneVerified'
  // N1, X7: a mobile number client services put on record (by which a user without a device enrols)
  | 'phoneOnRecord'
  | 'phoneRemoved';

/** Messages that carry a code: `notifications.<name>.sms` and `.voice` texts with a {{code}}. */
export type CodeTemplate = 'loginCode' | 'confirmCode' | 'activationToken';

/** The codes' templates: delivered inline, never by the outbox worker. */
export const CODE_TEMPLATES: readonly CodeTemplate[] = ['loginCode', 'confirmCode', 'activationToken'];

/** The calendar day of a moment in the user's time zone (dayOf), for notices that name a day, not a time. */
export interface DayOf {
  dayOf: number;
}

/** N1: the day a moment falls on where the user lives ("activates itself on 27 August 2026"). */
export function dayOf(ms: number): DayOf {
  return { dayOf: ms };
}

/** A country (ISO 3166-1 alpha-2) named in the user's language (countryOf). */
export interface CountryOf {
  countryOf: string;
}

/** N1: a country as the user's language names it ("France", "法國"), e.g. where a card ships. */
export function countryOf(code: string): CountryOf {
  return { countryOf: code };
}

/**
 * Values of a message. A time is given as a Date (or an ISO 8601 timestamp),
 * the day of a moment as dayOf(ms), a calendar day as `YYYY-MM-DD`, and a
 * country as countryOf(code): all are written out in the user's language
 * (and time zone), never shown raw.
 */
export type MessageParams = Record<string, string | number | Date | DayOf | CountryOf>;

export interface Recipient {
  id: string;
  email: string | null;
}

export interface Notification {
  id: string;
  userId: string | null;
  channel: Channel;
  recipient: string;
  template: string;
  language: Language;
  subject: string | null;
  body: string;
  status: NotificationStatus;
  provider: string;
  /** The last delivery error, if any (status codes only). */
  error: string | null;
  createdAt: number;
  sentAt: number | null;
  /** X6: delivery attempts so far. */
  attempts: number;
  /** X6: when the outbox worker tries next (pending notices), else null. */
  nextAttemptAt: number | null;
}

/** One message to write: a template of the translation files and its values. */
export interface MessageSpec {
  userId: string | null;
  channel: Channel;
  recipient: string;
  template: NoticeTemplate | CodeTemplate;
  params: MessageParams;
  language: Language;
  /** The IANA time zone times are written in (default: the notifier's). */
  timeZone?: string;
  /** With a key the message goes out once, whichever process sends it. */
  dedupeKey?: string;
  /**
   * Values that are secrets (a code): delivered, but stored masked unless
   * the outbox itself is the delivery.
   */
  secret?: string[];
  /** X6: for the outbox worker (notices), rather than delivered inline by the caller (codes). */
  queued?: boolean;
  /** M7, decisions 0018, 0024: the allowance of the send limits a code counts in (flow-limits.ts ALLOWANCE), stored as `recognised`. */
  allowance?: number;
}

/** A message stored as pending, with what the provider must send. */
export interface PendingMessage {
  row: Selectable<NotificationsTable>;
  outgoing: OutgoingMessage;
  provider: DeliveryProvider;
}

export interface NotifyOptions {
  /** With a key the notice goes out once, whichever process writes it. */
  dedupeKey?: string;
  /** The caller's transaction, to store the notice with the change it tells of. */
  db?: Executor;
  /**
   * N1: also by SMS to this number, which the notice is about and the usual
   * reach (the newest verified number) may no longer name: the number the
   * notices went to before another was verified, or a number removed.
   */
  alsoSms?: string;
}

export interface NotifierOptions {
  /** IANA time zone of times in messages, for users without one of their own (default UTC). */
  timeZone?: string;
  /** Quick retries of codes delivered inline (default: one attempt). */
  retry?: { attempts: number; baseDelayMs: number };
  /**
   * M7, D5: seals the text of a code the development outbox delivers (the
   * stored body has it masked); without it such a code cannot be stored.
   */
  box?: SecretBox;
  /** M7: how long a code may be entered (its sealed text is kept as long; default 10 minutes). */
  codeTtlMs?: number;
  /** M7: the countries whose numbers are sent SMS (SLS_SMS_COUNTRIES; empty or absent: every country). */
  smsCountries?: readonly string[];
}

const MASK = '••••••';

/** D5: what a sealed body is bound to (a sealed text copied onto another message does not open). */
function sealContext(id: string): string {
  return `notification-body:${id}`;
}

/** A stored message as it is shown: `body` as stored (a code masked), unless the caller opened its sealed text. */
export function toNotification(row: Selectable<NotificationsTable>, body = row.body): Notification {
  return {
    id: row.id,
    userId: row.user_id,
    channel: row.channel,
    recipient: row.recipient,
    template: row.template,
    language: row.language as Language,
    subject: row.subject,
    body,
    status: row.status,
    provider: row.provider,
    error: row.error,
    createdAt: row.created_at,
    sentAt: row.sent_at,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
  };
}

/** The locale whose conventions times are written in, for each of our languages. */
const LOCALE: Record<Language, string> = { en: 'en-US', fr: 'fr-FR', 'zh-Hant': 'zh-Hant-TW' };

const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;
const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;

/** Intl's narrow and no-break spaces become plain ones: an SMS stays in the GSM 03.38 alphabet. */
function plainSpaces(text: string): string {
  return text.replace(/[\u00a0\u202f\u2009]/g, ' ');
}

/**
 * A time as people of the language write it, in a time zone, with the
 * zone's name: spelled out in e-mails ("12 mars 2026 à 14:05 UTC+1"),
 * numeric in the short texts of SMS and voice ("12/03/2026 14:05 UTC+1").
 */
export function formatTime(time: Date, language: Language, timeZone: string, channel: Channel): string {
  const long = channel === 'email';
  return plainSpaces(
    new Intl.DateTimeFormat(LOCALE[language], {
      timeZone,
      year: 'numeric',
      month: long ? 'long' : '2-digit',
      day: long ? 'numeric' : '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      timeZoneName: 'short',
    }).format(time),
  );
}

/** A calendar day (YYYY-MM-DD) as people of the language write it. */
export function formatDay(day: string, language: Language, channel: Channel): string {
  return formatDayOf(Date.parse(`${day}T12:00:00Z`), language, 'UTC', channel);
}

/** The day a moment falls on in a time zone, as people of the language write it (no time). */
export function formatDayOf(time: number, language: Language, timeZone: string, channel: Channel): string {
  const long = channel === 'email';
  return plainSpaces(
    new Intl.DateTimeFormat(LOCALE[language], { timeZone, year: 'numeric', month: long ? 'long' : '2-digit', day: long ? 'numeric' : '2-digit' }).format(
      new Date(time),
    ),
  );
}

/** The values of a message with its times and days written out. */
function localParams(params: MessageParams, language: Language, timeZone: string, channel: Channel): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(params)) {
    if (value instanceof Date) out[name] = formatTime(value, language, timeZone, channel);
    else if (typeof value === 'object' && 'countryOf' in value) out[name] = countryName(value.countryOf, language);
    else if (typeof value === 'object') out[name] = formatDayOf(value.dayOf, language, timeZone, channel);
    else if (typeof value === 'string' && ISO_TIMESTAMP.test(value) && Number.isFinite(Date.parse(value)))
      out[name] = formatTime(new Date(value), language, timeZone, channel);
    else if (typeof value === 'string' && ISO_DAY.test(value) && Number.isFinite(Date.parse(value))) out[name] = formatDay(value, language, channel);
    else out[name] = value;
  }
  return out;
}

/** The texts of a message on its channel: e-mails have a subject; SMS a short text; voice what is said. */
export function compose(
  spec: Pick<MessageSpec, 'template' | 'channel' | 'language'>,
  params: MessageParams,
  timeZone = 'UTC',
): { subject: string | null; body: string } {
  const t = translator(spec.language);
  const values = localParams(params, spec.language, timeZone, spec.channel);
  const key = `notifications.${spec.template}`;
  if (spec.channel === 'email') return { subject: t(`${key}.subject`, values), body: t(`${key}.body`, values) };
  const own = `${key}.${spec.channel}`;
  if (hasTranslation(own, spec.language)) return { subject: null, body: t(own, values) };
  return { subject: null, body: `${t(`${key}.subject`, values)}: ${t(`${key}.body`, values)}` };
}

export class Notifier {
  private readonly timeZone: string;
  private readonly inline: Map<DeliveryProvider, DeliveryProvider>;
  private readonly listeners: (() => void)[] = [];
  private readonly box: SecretBox | undefined;
  private readonly codeTtlMs: number;
  private readonly smsCountries: readonly string[];

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly language: Language,
    private readonly providers: DeliveryProvider[] = [outboxProvider()],
    options: NotifierOptions = {},
  ) {
    this.timeZone = options.timeZone ?? 'UTC';
    this.box = options.box;
    this.codeTtlMs = options.codeTtlMs ?? 10 * 60 * 1000;
    this.smsCountries = options.smsCountries ?? [];
    const retry = options.retry;
    this.inline = new Map(providers.map((p) => [p, retry && p.name !== OUTBOX ? withRetry(p, retry) : p]));
  }

  /** The provider of a channel: the first that takes it, else the last (the development outbox). */
  providerFor(channel: Channel): DeliveryProvider {
    return this.providers.find((p) => p.channels.includes(channel)) ?? this.providers.at(-1)!;
  }

  /** Whether messages of the channel stay in the outbox (development) rather than leave through a gateway. */
  isOutbox(channel: Channel): boolean {
    return this.providerFor(channel).name === OUTBOX;
  }

  /** Told whenever notices are stored for the worker (the worker of this process wakes up). */
  onQueued(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Stores a message as pending (in the caller's transaction, so that send
   * limits are counted and written together); null when its dedupe key was
   * used already. A `queued` message waits for the outbox worker; any other
   * is the caller's to deliver().
   */
  async enqueue(db: Executor, spec: MessageSpec): Promise<PendingMessage | null> {
    const provider = this.providerFor(spec.channel);
    const zone = spec.timeZone ?? this.timeZone;
    const real = compose(spec, spec.params, zone);
    // M7, D5: a code is stored masked, whoever delivers it; the development outbox, whose stored copy is the delivery,
    // also keeps the text with the code sealed, until the code expires (purgeExpiredCodes)
    const secret = spec.secret !== undefined && spec.secret.length > 0;
    const stored = secret ? compose(spec, { ...spec.params, ...Object.fromEntries(spec.secret!.map((name) => [name, MASK])) }, zone) : real;
    if (spec.queued && secret) throw new TypeError('a message with secrets is delivered inline, never queued');
    const now = this.clock.now();
    const id = newId('ntf');
    let sealed: string | null = null;
    if (secret && provider.name === OUTBOX) {
      if (!this.box) throw new TypeError('the development outbox stores codes sealed: the notifier needs the secret box');
      sealed = this.box.sealJson({ subject: real.subject, body: real.body }, sealContext(id));
    }
    const row: Selectable<NotificationsTable> = {
      id,
      user_id: spec.userId,
      channel: spec.channel,
      recipient: spec.recipient,
      template: spec.template,
      language: spec.language,
      subject: stored.subject,
      body: stored.body,
      status: 'pending',
      provider: provider.name,
      dedupe_key: spec.dedupeKey ? `${spec.dedupeKey}:${spec.channel}` : null,
      error: null,
      created_at: now,
      sent_at: null,
      attempts: 0,
      next_attempt_at: spec.queued ? now : null,
      lease_until: null,
      claim: null,
      recognised: spec.allowance ?? 0,
      sealed_body: sealed,
      sealed_until: sealed ? now + this.codeTtlMs : null,
    };
    const inserted = await db
      .insertInto('notifications')
      .values(row)
      .onConflict((oc) => oc.column('dedupe_key').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) return null;
    const outgoing: OutgoingMessage = { id: row.id, channel: spec.channel, recipient: spec.recipient, ...real, language: spec.language };
    return { row, outgoing, provider };
  }

  /** A stored message as shown (sls outbox, /dev/outbox): a code of the development outbox in clear while it lives, then masked. */
  private shown(row: Selectable<NotificationsTable>): Notification {
    if (row.sealed_body === null || row.sealed_until === null || row.sealed_until <= this.clock.now() || !this.box) return toNotification(row);
    const { body } = this.box.openJson<{ body: string }>(row.sealed_body, sealContext(row.id));
    return toNotification(row, body);
  }

  /**
   * M7, D5: removes the sealed texts of the codes expired (and, through
   * the provider that delivered them, what else holds them: the development
   * outbox's audio); the messages stay, masked. The provider is the one the
   * message names, not the one its channel has now: a server moved from the
   * development outbox to a gateway still removes the calls the outbox
   * spoke before. What a provider still keeps of a message with no live
   * code (a purge cut short by a crash, a message removed) goes too, at each
   * run (so at the first run after a start). Run by the background jobs.
   * Returns how many codes expired.
   */
  async purgeExpiredCodes(): Promise<number> {
    const now = this.clock.now();
    const expired = await this.store.db
      .updateTable('notifications')
      .set({ sealed_body: null, sealed_until: null })
      .where('sealed_until', '<=', now)
      .returning(['id', 'channel', 'provider'])
      .execute();
    for (const { id, channel, provider } of expired) await this.providers.find((p) => p.name === provider)?.forget?.({ id, channel });
    // what a provider still keeps of a message without a live code: the purge before stopped between the update above and
    // its forget (a crash, a restart), or the message is gone; the audio of a code must not outlive it
    for (const provider of this.providers) {
      if (!provider.kept || !provider.forget) continue;
      const kept = await provider.kept();
      for (let i = 0; i < kept.length; i += 500) {
        const batch = kept.slice(i, i + 500);
        const live = await this.store.db
          .selectFrom('notifications')
          .select('id')
          .where(
            'id',
            'in',
            batch.map((m) => m.id),
          )
          .where('sealed_until', '>', now)
          .execute();
        const alive = new Set(live.map((row) => row.id));
        for (const message of batch) if (!alive.has(message.id)) await provider.forget(message);
      }
    }
    return expired.length;
  }

  /**
   * Hands a message stored by enqueue() to its provider at once (codes),
   * with the configured quick retries, and records the outcome; a failure
   * is recorded, not thrown.
   */
  async deliver(pending: PendingMessage): Promise<Notification> {
    const row = { ...pending.row };
    try {
      await (this.inline.get(pending.provider) ?? pending.provider).deliver(pending.outgoing);
      row.status = 'sent';
      row.sent_at = this.clock.now();
    } catch (error) {
      row.status = 'failed';
      row.error = error instanceof Error ? error.message.slice(0, 500) : 'delivery failed';
    }
    row.attempts = 1;
    await this.store.db
      .updateTable('notifications')
      .set({ status: row.status, sent_at: row.sent_at, error: row.error, attempts: 1 })
      .where('id', '=', row.id)
      .execute();
    return this.shown(row);
  }

  /**
   * Where a user's notices go (the e-mail address, and the most recently
   * verified mobile number), and in which language and time zone.
   */
  private async reach(db: Executor, user: Recipient): Promise<{ addresses: [Channel, string][]; language: Language; timeZone: string }> {
    const addresses: [Channel, string][] = [];
    if (user.email) addresses.push(['email', user.email]);
    // one read: the preferences, and the most recently verified number
    const prefs = await db
      .selectFrom('users')
      .where('users.id', '=', user.id)
      .select((eb) => [
        'users.language',
        'users.time_zone',
        eb
          .selectFrom('phones')
          .select('phones.e164')
          .whereRef('phones.user_id', '=', 'users.id')
          .where('phones.verified_at', 'is not', null)
          .orderBy('phones.verified_at', 'desc')
          .limit(1)
          .as('mobile'),
      ])
      .executeTakeFirst();
    if (prefs?.mobile) addresses.push(['sms', prefs.mobile]);
    return {
      addresses,
      language: isLanguage(prefs?.language) ? prefs.language : this.language,
      timeZone: prefs?.time_zone && isTimeZone(prefs.time_zone) ? prefs.time_zone : this.timeZone,
    };
  }

  /**
   * A security notice to a user, by e-mail and by SMS to a verified mobile
   * number, whichever they have (N1). It is only stored, in the caller's
   * transaction when given one: the outbox worker delivers it (X6), so this
   * never waits on a gateway. With a dedupe key the notice is stored once.
   * Returns the stored messages (pending).
   */
  async notify(user: Recipient, template: NoticeTemplate, params: MessageParams = {}, options: string | NotifyOptions = {}): Promise<Notification[]> {
    const { dedupeKey, db = this.store.db, alsoSms } = typeof options === 'string' ? { dedupeKey: options, alsoSms: undefined } : options;
    const { addresses, language, timeZone } = await this.reach(db, user);
    if (alsoSms && !addresses.some(([channel, recipient]) => channel === 'sms' && recipient === alsoSms)) addresses.push(['sms', alsoSms]);
    const stored: Notification[] = [];
    for (const [channel, recipient] of addresses) {
      // M7: no notice by SMS to a country the operator sends none to (the e-mail still goes)
      if (channel === 'sms' && countryNotServed(recipient, this.smsCountries) !== null) continue;
      const spec: MessageSpec = {
        userId: user.id,
        channel,
        recipient,
        template,
        params,
        language,
        timeZone,
        queued: true,
        ...(dedupeKey ? { dedupeKey } : {}),
      };
      const pending = await this.enqueue(db, spec);
      if (pending) stored.push(toNotification(pending.row));
    }
    if (stored.length > 0) for (const listener of this.listeners) listener();
    return stored;
  }

  /** The same as notify(), for callers that need nothing back (kept for the call sites that used it). */
  async notifySoon(user: Recipient, template: NoticeTemplate, params: MessageParams = {}): Promise<void> {
    await this.notify(user, template, params);
  }

  async get(id: string): Promise<Notification | null> {
    const row = await this.store.db.selectFrom('notifications').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.shown(row) : null;
  }

  async list(query: { userId?: string; limit?: number; status?: NotificationStatus } = {}): Promise<Notification[]> {
    let q = this.store.db.selectFrom('notifications').selectAll();
    if (query.userId) q = q.where('user_id', '=', query.userId);
    if (query.status) q = q.where('status', '=', query.status);
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(query.limit ?? 50)
      .execute();
    return rows.map((row) => this.shown(row));
  }
}
