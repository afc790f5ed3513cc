import { randomFillSync, randomInt } from 'node:crypto';

/**
 * Random bytes for ids and tokens, taken from a pool filled from the
 * CSPRNG 4 KiB at a time (as node does for randomUUID and randomInt): one
 * call into OpenSSL per hundred ids rather than one each (issue 15). Each
 * byte is handed out once.
 */
const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let poolUsed = POOL_SIZE;

function randomBytes(size: number): Buffer {
  if (size > POOL_SIZE) return randomFillSync(Buffer.alloc(size));
  if (poolUsed + size > POOL_SIZE) {
    randomFillSync(pool);
    poolUsed = 0;
  }
  const bytes = Buffer.from(pool.subarray(poolUsed, poolUsed + size));
  // what was handed out is not kept
  pool.fill(0, poolUsed, poolUsed + size);
  poolUsed += size;
  return bytes;
}

/** A string of `length` decimal digits from the CSPRNG, uniformly distributed. */
export function randomDigits(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += String(randomInt(10));
  return out;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32, lower case, without padding. */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31];
  return out;
}

/** A prefixed random identifier with 128 bits of entropy, e.g. `flw_…`. */
export function newId(prefix: string): string {
  return `${prefix}_${base32(randomBytes(16))}`;
}

/** An opaque bearer secret (256 bits), URL safe. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

const UPPER_ALNUM = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/** Upper-case alphanumeric code without look-alike characters (0/O, 1/I). */
export function randomUpperAlnum(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += UPPER_ALNUM[randomInt(UPPER_ALNUM.length)];
  return out;
}
