/**
 * What a delivery provider is (M7, N1): the messages it is given and the
 * channels it serves. The providers (SMTP, Twilio-compatible, the
 * development outbox) implement it; the notifier and the outbox worker use
 * it. It lives here, on the providers' side, so that delivery/ never imports
 * notify/.
 */
import type { Language } from '../i18n/i18n.js';
import { outboxAudioPath, renderSpeech } from './speech.js';

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
