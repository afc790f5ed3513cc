/**
 * Messages to users (N1, M7): security notices by e-mail and SMS, and codes
 * by SMS or voice. Delivery is not authentication (GUIDE lesson 7). A message
 * is written from the translation files, stored in the notifications table
 * (the outbox) and handed to the provider of its channel. The development
 * provider delivers into the outbox itself, where `sls outbox` and the
 * development page read it; voice messages are also rendered to audio there.
 */
import type { Clock } from '../clock.js';
import type { Language } from '../i18n/i18n.js';
import { hasTranslation, translator } from '../i18n/i18n.js';
import { newId } from '../crypto/random.js';
import type { Executor, Store } from '../store/database.js';
import type { NotificationsTable } from '../store/schema.js';
import type { Selectable } from 'kysely';
import { outboxAudioPath, renderSpeech } from '../delivery/speech.js';

export type Channel = 'email' | 'sms' | 'voice';

/** Notices the system sends; each has `notifications.<name>.subject` and `.body` texts (and may have a shorter `.sms`). */
export type NoticeTemplate =
  | 'tempPasscodeIssued'
  | 'tempPasscodeRevoked'
  | 'userLocked'
  | 'userLockedByStaff'
  | 'userUnlocked'
  | 'deviceReactivated'
  | 'deviceEnrolled'
  | 'dscplusRequested'
  | 'dscplusShipped'
  | 'autoActivationApproaching'
  | 'autoActivationImminent'
  | 'dscplusAutoActivated'
  | 'passwordReset'
  | 'passwordChanged'
  | 'mobileActivated'
  | 'mobileRecoveryFailed'
  | 'pushDenied';

/** Messages that carry a code: `notifications.<name>.sms` and `.voice` texts with a {{code}}. */
export type CodeTemplate = 'loginCode' | 'confirmCode' | 'activationToken';

export interface OutgoingMessage {
  id: string;
  channel: Channel;
  recipient: string;
  subject: string | null;
  body: string;
  language: Language;
}

/** A way to deliver messages of some channels. */
export interface DeliveryProvider {
  name: string;
  channels: readonly Channel[];
  deliver(message: OutgoingMessage): Promise<void>;
}

export const OUTBOX = 'outbox';

/**
 * Development delivery: the stored message is the delivery. With a data
 * directory, voice messages are also spoken into `<dataDir>/outbox/<id>.wav`.
 */
export function outboxProvider(dataDir?: string): DeliveryProvider {
  return {
    name: OUTBOX,
    channels: ['email', 'sms', 'voice'],
    deliver: async (message) => {
      if (message.channel === 'voice' && dataDir) await renderSpeech(message.body, message.language, outboxAudioPath(dataDir, message.id));
    },
  };
}

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
  status: 'pending' | 'sent' | 'failed';
  provider: string;
  error: string | null;
  createdAt: number;
  sentAt: number | null;
}

/** One message to write: a template of the translation files and its values. */
export interface MessageSpec {
  userId: string | null;
  channel: Channel;
  recipient: string;
  template: NoticeTemplate | CodeTemplate;
  params: Record<string, string | number>;
  language: Language;
  /** With a key the message goes out once, whichever process sends it. */
  dedupeKey?: string;
  /**
   * Values that are secrets (a code): delivered, but stored masked unless
   * the outbox itself is the delivery.
   */
  secret?: string[];
}

/** A message stored as pending, with what the provider must send. */
export interface PendingMessage {
  row: Selectable<NotificationsTable>;
  outgoing: OutgoingMessage;
  provider: DeliveryProvider;
}

const MASK = '••••••';

function toNotification(row: Selectable<NotificationsTable>): Notification {
  return {
    id: row.id,
    userId: row.user_id,
    channel: row.channel,
    recipient: row.recipient,
    template: row.template,
    language: row.language as Language,
    subject: row.subject,
    body: row.body,
    status: row.status,
    provider: row.provider,
    error: row.error,
    createdAt: row.created_at,
    sentAt: row.sent_at,
  };
}

/** The texts of a message on its channel: e-mails have a subject; SMS a short text; voice what is said. */
function compose(spec: MessageSpec, params: Record<string, string | number>): { subject: string | null; body: string } {
  const t = translator(spec.language);
  const key = `notifications.${spec.template}`;
  if (spec.channel === 'email') return { subject: t(`${key}.subject`, params), body: t(`${key}.body`, params) };
  const own = `${key}.${spec.channel}`;
  if (hasTranslation(own, spec.language)) return { subject: null, body: t(own, params) };
  return { subject: null, body: `${t(`${key}.subject`, params)}: ${t(`${key}.body`, params)}` };
}

export class Notifier {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly language: Language,
    private readonly providers: DeliveryProvider[] = [outboxProvider()],
  ) {}

  private providerFor(channel: Channel): DeliveryProvider {
    return this.providers.find((p) => p.channels.includes(channel)) ?? this.providers.at(-1)!;
  }

  /** Whether messages of the channel stay in the outbox (development) rather than leave through a gateway. */
  isOutbox(channel: Channel): boolean {
    return this.providerFor(channel).name === OUTBOX;
  }

  /**
   * Stores a message as pending (in the caller's transaction, so that send
   * limits are counted and written together); null when its dedupe key was
   * used already.
   */
  async enqueue(db: Executor, spec: MessageSpec): Promise<PendingMessage | null> {
    const provider = this.providerFor(spec.channel);
    const real = compose(spec, spec.params);
    const stored =
      spec.secret && provider.name !== OUTBOX
        ? compose(spec, { ...spec.params, ...Object.fromEntries(spec.secret.map((name) => [name, MASK])) })
        : real;
    const row: Selectable<NotificationsTable> = {
      id: newId('ntf'),
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
      created_at: this.clock.now(),
      sent_at: null,
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

  /** Hands a pending message to its provider and records the outcome; a failure is recorded, not thrown. */
  async deliver(pending: PendingMessage): Promise<Notification> {
    const row = { ...pending.row };
    try {
      await pending.provider.deliver(pending.outgoing);
      row.status = 'sent';
      row.sent_at = this.clock.now();
    } catch (error) {
      row.status = 'failed';
      row.error = error instanceof Error ? error.message.slice(0, 500) : 'delivery failed';
    }
    await this.store.db.updateTable('notifications').set({ status: row.status, sent_at: row.sent_at, error: row.error }).where('id', '=', row.id).execute();
    return toNotification(row);
  }

  /** Where a user's notices go: the e-mail address, and the most recently verified mobile number. */
  private async addresses(user: Recipient): Promise<[Channel, string][]> {
    const addresses: [Channel, string][] = [];
    if (user.email) addresses.push(['email', user.email]);
    const mobile = await this.verifiedNumber(user.id);
    if (mobile) addresses.push(['sms', mobile]);
    return addresses;
  }

  /** The number security notices go to by SMS: the user's most recently verified mobile number. */
  private async verifiedNumber(userId: string): Promise<string | null> {
    const row = await this.store.db
      .selectFrom('phones')
      .select('e164')
      .where('user_id', '=', userId)
      .where('verified_at', 'is not', null)
      .orderBy('verified_at', 'desc')
      .executeTakeFirst();
    return row?.e164 ?? null;
  }

  /**
   * Sends a security notice to a user by e-mail and by SMS to a verified
   * mobile number, whichever they have (N1). With a dedupe key the notice
   * goes out once. Returns what was sent.
   */
  async notify(user: Recipient, template: NoticeTemplate, params: Record<string, string | number> = {}, dedupeKey?: string): Promise<Notification[]> {
    const sent: Notification[] = [];
    for (const [channel, recipient] of await this.addresses(user)) {
      const spec: MessageSpec = { userId: user.id, channel, recipient, template, params, language: this.language, ...(dedupeKey ? { dedupeKey } : {}) };
      const pending = await this.enqueue(this.store.db, spec);
      if (pending) sent.push(await this.deliver(pending));
    }
    return sent;
  }

  /**
   * The same notice, stored now and handed to the gateways in the
   * background: for answers a phone or a page waits for, which a slow
   * gateway (retries, timeouts) must not hold up. The stored rows say how
   * the delivery went.
   */
  async notifySoon(user: Recipient, template: NoticeTemplate, params: Record<string, string | number> = {}): Promise<void> {
    const pending: PendingMessage[] = [];
    for (const [channel, recipient] of await this.addresses(user)) {
      const stored = await this.enqueue(this.store.db, { userId: user.id, channel, recipient, template, params, language: this.language });
      if (stored) pending.push(stored);
    }
    // a failed delivery is recorded by deliver(); a store closed meanwhile (shutdown) leaves the row pending
    void Promise.all(pending.map((message) => this.deliver(message))).catch(() => undefined);
  }

  async get(id: string): Promise<Notification | null> {
    const row = await this.store.db.selectFrom('notifications').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toNotification(row) : null;
  }

  async list(query: { userId?: string; limit?: number } = {}): Promise<Notification[]> {
    let q = this.store.db.selectFrom('notifications').selectAll();
    if (query.userId) q = q.where('user_id', '=', query.userId);
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit ?? 50).execute();
    return rows.map(toNotification);
  }
}
