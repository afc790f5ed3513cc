/**
 * The DSC+ card in a terminal (C2): press the "press" button until PIN>
 * appears, enter the 4-digit PIN, OK; CHALLNG> appears, enter the 6-digit
 * challenge from the login screen, OK; the 8-digit response appears.
 * Like the real card it does not check the PIN: a wrong PIN gives a wrong
 * response (C3).
 */
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { SlsError } from '../errors.js';
import { HEX_BYTES, readTextFile, sizeText } from './files.js';
import { generateOcra, parseOcraSuite } from '../crypto/ocra.js';
import type { CardFile } from '../devices/devices.js';

/** A card as the emulator reads it: a shipped card's file has no PIN (only its user knows it). */
export type EmulatedCard = Omit<CardFile, 'pin'> & { pin?: string };
import type { Translate } from '../i18n/i18n.js';

export function readCardFile(path: string): EmulatedCard {
  let card: Partial<CardFile>;
  // X3: a regular file of at most 1 MiB, read before it is parsed
  const text = readTextFile(path, 'card_file_unreadable');
  try {
    card = JSON.parse(text) as Partial<CardFile>;
  } catch {
    throw new SlsError('VALIDATION_ERROR', { reason: 'card_file_unreadable', path });
  }
  // X3: the seed is hex of whole bytes (Buffer.from would read "zz" as no key, and answer with it); a PIN, when the file has one, is text
  if (
    card === null ||
    typeof card !== 'object' ||
    card.format !== 'sls-dscplus-card/1' ||
    typeof card.seed !== 'string' ||
    !HEX_BYTES.test(card.seed) ||
    typeof card.suite !== 'string' ||
    typeof card.serial !== 'string' ||
    (card.pin !== undefined && typeof card.pin !== 'string')
  ) {
    throw new SlsError('VALIDATION_ERROR', { reason: 'card_file_not_card', path });
  }
  return card as EmulatedCard;
}

/** The card's computation: what it displays for a PIN and a challenge. */
export function cardResponse(card: EmulatedCard, pin: string, challenge: string): string {
  const suite = parseOcraSuite(card.suite);
  if (!/^\d{4}$/.test(pin)) throw new SlsError('INVALID_PIN', { digits: 4 });
  // C2: the login screen shows a challenge of the suite's length (6 digits); anything else was mistyped
  if (!challengeOf(card).test(challenge)) {
    throw new SlsError('VALIDATION_ERROR', { reason: 'challenge_digits', digits: suite.challenge.maxLength });
  }
  return generateOcra(suite, { key: Buffer.from(card.seed, 'hex'), question: challenge, pin });
}

/** The challenges the card takes: as many digits as its suite's challenge (QN06: 6). */
function challengeOf(card: EmulatedCard): RegExp {
  return new RegExp(`^\\d{${parseOcraSuite(card.suite).challenge.maxLength}}$`);
}

function display(text: string): string {
  const width = 12;
  return [`┌${'─'.repeat(width)}┐`, `│${text.padEnd(width)}│`, `└${'─'.repeat(width)}┘`].join('\n');
}

/**
 * X3: the longest line of standard input the interactive card reads (a
 * press, a PIN of 4 digits, a challenge of 6): a longer one — an endless
 * stream without a line end — is refused, never gathered whole.
 */
export const MAX_CARD_LINE_BYTES = 1024;

/** The interactive card, on standard input and output (works with a terminal or a pipe). */
export async function runCardEmulator(card: EmulatedCard, t: Translate): Promise<void> {
  const out = process.stdout;
  out.write(`${t('cli.dsc.title', { serial: card.serial })}\n${t('cli.dsc.pressHelp')}\n${t('cli.dsc.okHelp')}\n`);
  // on a terminal the typed PIN is shown as stars, like the card's display (a pipe echoes nothing anyway)
  const terminal = process.stdin.isTTY === true;
  let hiding = false;
  const echo = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString();
      out.write(hiding ? text.replace(/\d/g, '*') : text);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output: echo, terminal });
  const lines = rl[Symbol.asyncIterator]();
  // X3: the bytes since the last line end, counted as they come (beside readline, which would gather a line without end)
  let sinceLineEnd = 0;
  let tooLong = false;
  const count = (chunk: Buffer | string) => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const end = Math.max(bytes.lastIndexOf(0x0a), bytes.lastIndexOf(0x0d));
    sinceLineEnd = end === -1 ? sinceLineEnd + bytes.length : bytes.length - end - 1;
    if (sinceLineEnd > MAX_CARD_LINE_BYTES && !tooLong) {
      tooLong = true;
      process.stdin.off('data', count);
      rl.close();
    }
  };
  process.stdin.on('data', count);
  const next = async (prompt: string, secret = false): Promise<string | null> => {
    out.write(prompt);
    hiding = secret;
    try {
      const line = await lines.next();
      if (tooLong) throw new SlsError('VALIDATION_ERROR', { reason: 'stdin_line_too_long', max: sizeText(MAX_CARD_LINE_BYTES) });
      return line.done ? null : line.value.trim();
    } finally {
      hiding = false;
    }
  };
  try {
    for (;;) {
      const press = await next('[press] ');
      if (press === null) break;
      out.write('\n');
      let pin: string | null;
      for (;;) {
        out.write(`${display('PIN>')}\n`);
        pin = await next('PIN> ', true);
        if (pin === null || /^\d{4}$/.test(pin)) break;
        out.write(`${display('Err')}\n`);
      }
      if (pin === null) break;
      let challenge: string | null;
      for (;;) {
        out.write(`${display('CHALLNG>')}\n`);
        challenge = await next('CHALLNG> ');
        if (challenge === null || challengeOf(card).test(challenge)) break;
        out.write(`${display('Err')}\n`);
      }
      if (challenge === null) break;
      out.write(`${display(cardResponse(card, pin, challenge))}\n`);
    }
  } finally {
    process.stdin.off('data', count);
    rl.close();
    out.write(`\n${t('cli.dsc.off')}\n`);
  }
}
