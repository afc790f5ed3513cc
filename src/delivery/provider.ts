/**
 * What a delivery provider is (M7, N1): the messages it is given and the
 * channels it serves. The providers (SMTP, Twilio-compatible, the
 * development outbox in outbox.ts) implement it; the notifier and the outbox worker use
 * it. It lives here, on the providers' side, so that delivery/ never imports
 * notify/.
 */
import type { Language } from '../i18n/i18n.js';

export type Channel = 'email' | 'sms' | 'voice';

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
  /** M7, D5: forgets what it keeps of a message whose code expired (the development outbox: the audio of a call). */
  forget?(message: Pick<OutgoingMessage, 'id' | 'channel'>): Promise<void>;
  /**
   * M7, D5: the messages it still keeps something of (the development outbox: the audio of a call), so that
   * what outlived its code (a purge cut short, a row gone) is forgotten too.
   */
  kept?(): Promise<Pick<OutgoingMessage, 'id' | 'channel'>[]>;
}
