/**
 * Security notices to users (N1): delivery is not authentication (GUIDE
 * lesson 7). A notice is written from the translation files, stored in the
 * notifications table (the outbox) and handed to the provider of its
 * channel. The development provider delivers into the outbox itself, where
 * `sls outbox` and the development page read it.
 */
import type { Clock } from '../clock.js';
import type { Language } from '../i18n/i18n.js';
import { translator } from '../i18n/i18n.js';
import { newId } from '../crypto/random.js';
import type { Store } from '../store/database.js';
import type { NotificationsTable } from '../store/schema.js';
import type { Selectable } from 'kysely';

export type Channel = 'email' | 'sms' | 'voice';

/** Notices the system sends; each has `notifications.<name>.subject` and `.body` texts. */
export type NoticeTemplate =
  | 'tempPasscodeIssued'
  | 'tempPasscodeRevoked'
  | 'userLocked'
  | 'userUnlocked'
  | 'deviceReactivated'
  | 'dscplusRequested'
  | 'dscplusShipped'
  | 'autoActivationApproaching'
  | 'autoActivationImminent'
  | 'dscplusAutoActivated'
  | 'passwordReset'
  | 'passwordChanged';

export interface OutgoingMessage {
  id: string;
  channel: Channel;
  recipient: string;
  subject: string | null;
  body: string;
  language: Language;
}

/** A way to deliver messages of some channels (the SMS and voice gateways come with issue M). */
export interface DeliveryProvider {
  name: string;
  channels: readonly Channel[];
  deliver(message: OutgoingMessage): Promise<void>;
}

/** Development delivery: the stored message is the delivery. */
export const outboxProvider: DeliveryProvider = {
  name: 'outbox',
  channels: ['email', 'sms', 'voice'],
  deliver: async () => undefined,
};

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
  subject: string | null;
  body: string;
  status: 'pending' | 'sent' | 'failed';
  provider: string;
  createdAt: number;
  sentAt: number | null;
}

function toNotification(row: Selectable<NotificationsTable>): Notification {
  return {
    id: row.id,
    userId: row.user_id,
    channel: row.channel,
    recipient: row.recipient,
    template: row.template,
    subject: row.subject,
    body: row.body,
    status: row.status,
    provider: row.provider,
    createdAt: row.created_at,
    sentAt: row.sent_at,
  };
}

export class Notifier {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly language: Language,
    private readonly providers: DeliveryProvider[] = [outboxProvider],
  ) {}

  private providerFor(channel: Channel): DeliveryProvider {
    return this.providers.find((p) => p.channels.includes(channel)) ?? outboxProvider;
  }

  /**
   * Sends a notice to a user on every channel they have. With a dedupe key
   * the notice goes out once, whichever process sends it. Returns what was sent.
   */
  async notify(user: Recipient, template: NoticeTemplate, params: Record<string, string | number> = {}, dedupeKey?: string): Promise<Notification[]> {
    const t = translator(this.language);
    const sent: Notification[] = [];
    const addresses: [Channel, string][] = user.email ? [['email', user.email]] : [];
    for (const [channel, recipient] of addresses) {
      const provider = this.providerFor(channel);
      const row: Selectable<NotificationsTable> = {
        id: newId('ntf'),
        user_id: user.id,
        channel,
        recipient,
        template,
        language: this.language,
        subject: t(`notifications.${template}.subject`, params),
        body: t(`notifications.${template}.body`, params),
        status: 'pending',
        provider: provider.name,
        dedupe_key: dedupeKey ? `${dedupeKey}:${channel}` : null,
        error: null,
        created_at: this.clock.now(),
        sent_at: null,
      };
      const inserted = await this.store.db
        .insertInto('notifications')
        .values(row)
        .onConflict((oc) => oc.column('dedupe_key').doNothing())
        .returning('id')
        .executeTakeFirst();
      if (!inserted) continue;
      try {
        await provider.deliver({ id: row.id, channel, recipient, subject: row.subject, body: row.body, language: this.language });
        row.status = 'sent';
        row.sent_at = this.clock.now();
      } catch (error) {
        row.status = 'failed';
        row.error = error instanceof Error ? error.message.slice(0, 500) : 'delivery failed';
      }
      await this.store.db.updateTable('notifications').set({ status: row.status, sent_at: row.sent_at, error: row.error }).where('id', '=', row.id).execute();
      sent.push(toNotification(row));
    }
    return sent;
  }

  async list(query: { userId?: string; limit?: number } = {}): Promise<Notification[]> {
    let q = this.store.db.selectFrom('notifications').selectAll();
    if (query.userId) q = q.where('user_id', '=', query.userId);
    const rows = await q.orderBy('created_at', 'desc').orderBy('id').limit(query.limit ?? 50).execute();
    return rows.map(toNotification);
  }
}
