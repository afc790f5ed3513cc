/** The development outbox as a delivery provider (M7). */
import type { DeliveryProvider } from './provider.js';
import { readdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { outboxAudioPath, renderSpeech } from './speech.js';

export const OUTBOX = 'outbox';

/**
 * Development delivery: the stored message is the delivery. With a data
 * directory, voice messages are also spoken into `<dataDir>/outbox/<id>.wav`,
 * removed when the code they say expires (forget, M7, D5); one whose message
 * holds no live code any more (a purge cut short, a message gone) is found
 * by `kept` and removed at the next purge.
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
    kept: async () => {
      if (!dataDir) return [];
      let names: string[];
      try {
        names = await readdir(dirname(outboxAudioPath(dataDir, 'x')));
      } catch {
        return [];
      }
      return names.flatMap((name) => {
        const id = /^(.+)\.wav$/.exec(name)?.[1];
        return id === undefined ? [] : [{ id, channel: 'voice' as const }];
      });
    },
  };
}
