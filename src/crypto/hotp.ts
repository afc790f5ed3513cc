/**
 * HOTP (RFC 4226) and TOTP (RFC 6238): small pure functions in oslo's style.
 */
import { createHmac } from 'node:crypto';

export type HashAlgorithm = 'sha1' | 'sha256' | 'sha512';

/** RFC 4226 §5.3 dynamic truncation of an HMAC value, reduced to `digits` decimal digits. */
export function truncateToDigits(hmac: Buffer, digits: number): string {
  const offset = hmac[hmac.length - 1]! & 0x0f;
  const binary = ((hmac[offset]! & 0x7f) << 24) | (hmac[offset + 1]! << 16) | (hmac[offset + 2]! << 8) | hmac[offset + 3]!;
  if (digits === 0) return String(binary);
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/** The 8-byte big-endian encoding of a counter (RFC 4226 §5.2). */
export function counterBytes(counter: bigint | number): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(BigInt(counter));
  return buffer;
}

export interface HotpOptions {
  digits?: number;
  algorithm?: HashAlgorithm;
}

export function generateHotp(key: Buffer, counter: bigint | number, options: HotpOptions = {}): string {
  const hmac = createHmac(options.algorithm ?? 'sha1', key)
    .update(counterBytes(counter))
    .digest();
  return truncateToDigits(hmac, options.digits ?? 6);
}

export interface TotpOptions extends HotpOptions {
  /** Time step in seconds (X), default 30. */
  period?: number;
  /** Unix time in seconds to start counting steps (T0), default 0. */
  epoch?: number;
}

/** The TOTP time-step counter T for a Unix time in milliseconds. */
export function totpCounter(unixMillis: number, options: TotpOptions = {}): bigint {
  const period = options.period ?? 30;
  const epoch = options.epoch ?? 0;
  return BigInt(Math.floor((Math.floor(unixMillis / 1000) - epoch) / period));
}

export function generateTotp(key: Buffer, unixMillis: number, options: TotpOptions = {}): string {
  return generateHotp(key, totpCounter(unixMillis, options), options);
}
