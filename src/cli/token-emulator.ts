/**
 * The legacy devices in a terminal (D1), from the file `sls device assign`
 * writes: a Platinum or Gold token shows its current one-time password — an
 * event-based (HOTP) token moves its counter on, in the file, at each press;
 * a time-based (TOTP) one shows the code of the current time step — and the
 * legacy Digital Security Card answers a challenge (no PIN).
 */
import { closeSync, constants, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { SlsError } from '../errors.js';
import { HEX_BYTES, readTextFile } from './files.js';
import { generateHotp, generateTotp, type HashAlgorithm } from '../crypto/hotp.js';
import { generateOcra, parseOcraSuite } from '../crypto/ocra.js';
import type { TokenFile } from '../devices/devices.js';

type TokenKey = TokenFile['keys'][number];

export function readTokenFile(path: string): TokenFile {
  let file: Partial<TokenFile>;
  // X3: a regular file of at most 1 MiB, read before it is parsed
  const text = readTextFile(path, 'card_file_unreadable');
  try {
    file = JSON.parse(text) as Partial<TokenFile>;
  } catch {
    throw new SlsError('VALIDATION_ERROR', { reason: 'card_file_unreadable', path });
  }
  if (
    file === null ||
    typeof file !== 'object' ||
    file.format !== 'sls-token/1' ||
    typeof file.serial !== 'string' ||
    !Array.isArray(file.keys) ||
    file.keys.length === 0 ||
    !file.keys.every(isTokenKey)
  ) {
    throw new SlsError('VALIDATION_ERROR', { reason: 'token_file_not_token', path });
  }
  return file as TokenFile;
}

const isWhole = (value: unknown, min: number, max: number): boolean => typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;

/**
 * X3: a key as `sls device assign` writes it (and the PSKC import allows: 6 to 10 digits, a time step of 1 to 3600
 * seconds), so that a hand-edited or crafted file is refused as not a token file, never a crash ("Cannot read
 * properties of null"), a counter out of range, a code of NaN or 99 digits, or a code computed with an empty key.
 */
function isTokenKey(key: unknown): boolean {
  if (typeof key !== 'object' || key === null || Array.isArray(key)) return false;
  const k = key as Record<string, unknown>;
  const secret = k.key ?? k.seed;
  if (typeof secret !== 'string' || !HEX_BYTES.test(secret)) return false;
  for (const name of ['keyId', 'deviceId', 'serial'] as const) if (k[name] !== undefined && k[name] !== null && typeof k[name] !== 'string') return false;
  if (k.algorithm === 'ocra') return typeof k.suite === 'string';
  if (k.algorithm !== 'hotp' && k.algorithm !== 'totp') return false;
  if (k.digits !== undefined && !isWhole(k.digits, 6, 10)) return false;
  if (k.hash !== undefined && k.hash !== null && !['sha1', 'sha256', 'sha512'].includes(k.hash as string)) return false;
  if (k.algorithm === 'hotp') return k.counter === undefined || isWhole(k.counter, 0, Number.MAX_SAFE_INTEGER - 1);
  return (k.period === undefined || isWhole(k.period, 1, 3600)) && (k.t0 === undefined || isWhole(k.t0, 0, Number.MAX_SAFE_INTEGER));
}

/** The key to operate: the one named (key id, device id or serial), or the file's only key. */
export function tokenKey(file: TokenFile, name?: string): TokenKey {
  if (name === undefined) {
    if (file.keys.length > 1) {
      throw new SlsError('VALIDATION_ERROR', { reason: 'token_keys', count: file.keys.length, keys: file.keys.map((k) => k.keyId).join(', ') });
    }
    return file.keys[0]!;
  }
  const key = file.keys.find((k) => k.keyId === name || k.deviceId === name || k.serial === name);
  if (!key) throw new SlsError('VALIDATION_ERROR', { reason: 'token_no_key', key: name });
  return key;
}

function hashOf(key: TokenKey): HashAlgorithm {
  return key.hash === 'sha256' || key.hash === 'sha512' ? key.hash : 'sha1';
}

/**
 * What the device displays: the HOTP code at the file's counter (and the
 * file's counter moves on: `advanced` is the key to write back), the TOTP
 * code at `unixMillis`, or the card's response to `challenge`.
 */
export function tokenDisplay(key: TokenKey, unixMillis: number, challenge?: string): { code: string; advanced?: TokenKey } {
  const secret = Buffer.from(String(key.key ?? key.seed), 'hex');
  if (key.algorithm === 'ocra') {
    const suite = parseOcraSuite(String(key.suite));
    if (challenge === undefined) throw new SlsError('VALIDATION_ERROR', { reason: 'token_challenge_needed' });
    if (!/^\d+$/.test(challenge) || challenge.length > suite.challenge.maxLength) {
      throw new SlsError('VALIDATION_ERROR', { reason: 'challenge_up_to_digits', digits: suite.challenge.maxLength });
    }
    return { code: generateOcra(suite, { key: secret, question: challenge }) };
  }
  if (challenge !== undefined) throw new SlsError('VALIDATION_ERROR', { reason: 'token_no_challenge' });
  const options = { digits: Number(key.digits ?? 6), algorithm: hashOf(key) };
  if (key.algorithm === 'hotp') {
    const counter = Number(key.counter ?? 0);
    return { code: generateHotp(secret, counter, options), advanced: { ...key, counter: counter + 1 } };
  }
  if (key.algorithm === 'totp') {
    return { code: generateTotp(secret, unixMillis, { ...options, period: Number(key.period ?? 30), epoch: Number(key.t0 ?? 0) }) };
  }
  throw new SlsError('VALIDATION_ERROR', { reason: 'token_algorithm', algorithm: String(key.algorithm) });
}

/** Presses the token's button once: prints nothing itself; writes an HOTP token's new counter back to the file. */
export function pressToken(path: string, keyName: string | undefined, unixMillis: number, challenge?: string): string {
  const file = readTokenFile(path);
  const key = tokenKey(file, keyName);
  const { code, advanced } = tokenDisplay(key, unixMillis, challenge);
  if (advanced) {
    const keys = file.keys.map((k) => (k === key ? advanced : k));
    replaceTokenFile(path, `${JSON.stringify({ ...file, keys }, null, 2)}\n`);
  }
  return code;
}

/**
 * X4, D5: the token file (its keys) written back whole or not at all: into a
 * new file of the owner only (0600) beside it, then renamed over it. A
 * process stopped while writing leaves the old file, never half of one (the
 * token's key lost); a file that others could read (0644) is replaced by one
 * they cannot; a symbolic link at the path is replaced, its target never
 * written (another user may have planted it).
 */
function replaceTokenFile(path: string, text: string): void {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    writeFileSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temporary, path);
  } catch {
    if (fd !== undefined) closeSync(fd);
    rmSync(temporary, { force: true });
    throw new SlsError('VALIDATION_ERROR', { reason: 'token_file_unwritable', path });
  }
}
