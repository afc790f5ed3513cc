import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretBox } from './secret-box.js';
import { decodeMasterKey } from './master-key.js';
import { constantTimeEqual } from './constant-time.js';

describe('D5: secrets at rest', () => {
  const box = new SecretBox(randomBytes(32));

  it('D5: seals with AES-256-GCM and opens only in the same context', () => {
    const sealed = box.seal('seed-material', 'device:dev_1');
    expect(sealed).toMatch(/^v1\.[0-9a-f]{12}\./);
    expect(sealed).not.toContain('seed-material');
    expect(box.open(sealed, 'device:dev_1').toString()).toBe('seed-material');
    expect(() => box.open(sealed, 'device:dev_2')).toThrow();
    expect(box.seal('x', 'c')).not.toBe(box.seal('x', 'c'));
  });

  it('D5: a tampered ciphertext does not open', () => {
    const sealed = box.seal('secret', 'ctx');
    const payload = Buffer.from(sealed.split('.')[2]!, 'base64url');
    payload[14] = payload[14]! ^ 1;
    expect(() => box.open(`v1.${box.keyId}.${payload.toString('base64url')}`, 'ctx')).toThrow();
  });

  it('D5: another master key is told apart', () => {
    const other = new SecretBox(randomBytes(32));
    expect(() => other.open(box.seal('x', 'c'), 'c')).toThrowError(expect.objectContaining({ code: 'MASTER_KEY_MISMATCH' }));
  });

  it('D5: master keys are 32 bytes in hex or base64', () => {
    const key = randomBytes(32);
    expect(decodeMasterKey(key.toString('hex'))).toEqual(key);
    expect(decodeMasterKey(key.toString('base64'))).toEqual(key);
    expect(() => decodeMasterKey('abcd')).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('D5: keyed digests differ by purpose and key', () => {
    expect(box.digest('123456', 'a')).toBe(box.digest('123456', 'a'));
    expect(box.digest('123456', 'a')).not.toBe(box.digest('123456', 'b'));
    expect(new SecretBox(randomBytes(32)).digest('123456', 'a')).not.toBe(box.digest('123456', 'a'));
  });

  it('D5: codes are compared in constant time, whatever their length', () => {
    expect(constantTimeEqual('12345678', '12345678')).toBe(true);
    expect(constantTimeEqual('12345678', '12345679')).toBe(false);
    expect(constantTimeEqual('1234', '12345678')).toBe(false);
    expect(constantTimeEqual('', '')).toBe(true);
  });
});
