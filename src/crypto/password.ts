/**
 * Passwords (A4): argon2id, minimum length 8, checked against a list of
 * common passwords, no composition rules (NIST SP 800-63B).
 */
import { availableParallelism } from 'node:os';
import { Algorithm, hash, verify } from '@node-rs/argon2';
import { lazyPackage } from '../lazy-package.js';
import { SlsError } from '../errors.js';

/** OWASP's argon2id setting: 19 MiB, 2 iterations, 1 lane. */
export const ARGON2_OPTIONS = { algorithm: Algorithm.Argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 256;

const zxcvbnCommon = lazyPackage<typeof import('@zxcvbn-ts/language-common')>('@zxcvbn-ts/language-common');
let commonPasswords: Set<string> | undefined;

function isCommon(password: string): boolean {
  commonPasswords ??= new Set((zxcvbnCommon().dictionary['passwords-common'] as string[]).map((p) => p.toLowerCase()));
  return commonPasswords.has(password.toLowerCase());
}

/** Unicode normalisation before hashing, so the same password typed on another keyboard still matches. */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

export type WeakPasswordReason = 'too_short' | 'too_long' | 'common' | 'contains_username';

export function passwordWeakness(password: string, username?: string): WeakPasswordReason | null {
  const normalized = normalizePassword(password);
  const length = [...normalized].length;
  if (length < PASSWORD_MIN_LENGTH) return 'too_short';
  if (length > PASSWORD_MAX_LENGTH) return 'too_long';
  if (isCommon(normalized)) return 'common';
  if (username && normalized.toLowerCase() === username.toLowerCase()) return 'contains_username';
  return null;
}

export function assertPasswordAcceptable(password: string, username?: string): void {
  const reason = passwordWeakness(password, username);
  if (reason) throw new SlsError('WEAK_PASSWORD', { reason, min: PASSWORD_MIN_LENGTH, max: PASSWORD_MAX_LENGTH });
}

/**
 * argon2id runs on libuv's thread pool (4 threads by default, whatever the
 * machine): at most one hash per core, and one more, at a time; the others
 * queue in order. More in flight only makes them share the cores (and their
 * caches: 19 MiB each) with each other and with the event loop, and takes
 * the pool's threads from file access; the one more keeps a core busy while
 * the event loop hands a finished hash's place to the next (issue 15,
 * docs/benchmarks.md: on 2 cores, 3 at a time cost ~0.7 ms less CPU per
 * login than 4, and kept the machine as busy, which 2 did not).
 */
const HASHES_AT_ONCE = availableParallelism() + 1;
let hashing = 0;
const waiting: (() => void)[] = [];

async function onePerCore<T>(work: () => Promise<T>): Promise<T> {
  if (hashing >= HASHES_AT_ONCE) await new Promise<void>((resolve) => waiting.push(resolve));
  else hashing += 1;
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    // the slot passes to the next in line, or is freed
    if (next) next();
    else hashing -= 1;
  }
}

export function hashPassword(password: string): Promise<string> {
  return onePerCore(() => hash(normalizePassword(password), ARGON2_OPTIONS));
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  if (password.length > PASSWORD_MAX_LENGTH * 4) return false;
  try {
    return await onePerCore(() => verify(passwordHash, normalizePassword(password)));
  } catch {
    return false;
  }
}
