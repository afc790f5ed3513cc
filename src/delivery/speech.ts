/**
 * Voice messages of the development outbox as spoken audio (M7): what the
 * automated call would say, rendered to a WAV file with espeak-ng when it is
 * installed. Without it the stored transcript is the message.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Language } from '../i18n/i18n.js';
import { spaceOutDigits } from './twilio.js';

/** espeak-ng voices for our languages. */
const ESPEAK_VOICE: Record<Language, string> = { en: 'en-us', fr: 'fr-fr', 'zh-Hant': 'cmn' };

const RENDER_TIMEOUT_MS = 20_000;

/** Where the outbox keeps the audio of a voice message. */
export function outboxAudioPath(dataDir: string, notificationId: string): string {
  return join(dataDir, 'outbox', `${notificationId}.wav`);
}

/** The words of a call: the message with its code read digit by digit, said twice (as the gateway's TwiML does). */
export function spokenText(body: string): string {
  const said = spaceOutDigits(body);
  return `${said} … ${said}`;
}

/**
 * Renders the message to `path`. Returns false when espeak-ng is not
 * installed (the transcript stands in); other failures are thrown.
 */
export async function renderSpeech(body: string, language: Language, path: string): Promise<boolean> {
  // X4: the audio says a login code: its folder and file are readable by their owner only, whatever the umask
  // (the file is made 0600 before espeak-ng writes into it, which keeps the mode)
  const folder = join(path, '..');
  await mkdir(folder, { recursive: true, mode: 0o700 });
  // a folder made before (by an earlier version, or another umask) is the owner's too
  await chmod(folder, 0o700);
  await writeFile(path, '', { mode: 0o600 });
  let rendered = false;
  try {
    rendered = await new Promise<boolean>((resolve, reject) => {
      execFile('espeak-ng', ['-v', ESPEAK_VOICE[language], '-s', '140', '-w', path, '--', spokenText(body)], { timeout: RENDER_TIMEOUT_MS }, (error) => {
        if (!error) resolve(true);
        else if ((error as NodeJS.ErrnoException).code === 'ENOENT') resolve(false);
        else reject(new Error(`espeak-ng failed (${(error as NodeJS.ErrnoException).code ?? 'exit'})`));
      });
    });
  } finally {
    // not spoken (espeak-ng missing or failed): the empty file goes
    if (!rendered) await rm(path, { force: true });
  }
  return rendered;
}
