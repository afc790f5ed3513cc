/** The development outbox as a delivery provider (M7). */
import type { DeliveryProvider } from './provider.js';
import { rm } from 'node:fs/promises';
import { outboxAudioPath, renderSpeech } from './speech.js';

export const OUTBOX = 'outbox';

/**
 * Development delivery: the stored message is the delivery. With a data
 * directory, voice messages are also spoken into `<dataDir>/outbox/<id>.wav`,
 * removed when the code they say expires (forget, M7, D5).
 */
export function outboxProvider(dataDir?: string): DeliveryProvider {
  return {
    name: OUTBOX,
    channels: ['email', 'sms', 'voice'],
    deliver: async (message) => {
      if (message.channel === 'voice' && dataDir) await renderSpeech(message.body, message.language, outboxAudioPath(dataDir, message.id));
    },
    forget: async (message) => {
      if (message.channel === 'voice' && dataDir) await rm(outboxAudioPath(dataDir, message.id), { force: true });
    },
  };
}
