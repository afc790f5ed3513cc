import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateHotp, generateTotp } from './hotp.js';

const file = JSON.parse(readFileSync(new URL('../../test/vectors/hotp_totp_vectors.json', import.meta.url), 'utf8')) as {
  hotp_rfc4226: { secret: { hex: string }; vectors: { count: number; hotp: string }[] };
  totp_rfc6238: { vectors: { unix_time: number; mode: string; seed_hex: string; totp: string }[] };
};

describe('C3: HOTP and TOTP primitives pass the RFC vectors', () => {
  it.each(file.hotp_rfc4226.vectors)('C3: RFC 4226 HOTP count $count -> $hotp', (v) => {
    expect(generateHotp(Buffer.from(file.hotp_rfc4226.secret.hex, 'hex'), v.count)).toBe(v.hotp);
  });
  it.each(file.totp_rfc6238.vectors)('C3: RFC 6238 TOTP $mode at $unix_time -> $totp', (v) => {
    const algorithm = v.mode.toLowerCase() as 'sha1' | 'sha256' | 'sha512';
    expect(generateTotp(Buffer.from(v.seed_hex, 'hex'), v.unix_time * 1000, { algorithm, digits: 8 })).toBe(v.totp);
  });
});
