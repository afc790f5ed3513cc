/**
 * Encryption of secrets at rest (D5): AES-256-GCM under a key derived from
 * the master key, bound to the record it belongs to by associated data, so a
 * ciphertext copied onto another row does not decrypt.
 *
 * Format: `v1.<keyId>.<base64url(iv || ciphertext || tag)>`.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { SlsError } from '../errors.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SecretBox {
  readonly keyId: string;
  private readonly encryptionKey: Buffer;
  private readonly digestKey: Buffer;

  constructor(masterKey: Buffer) {
    if (masterKey.length !== 32) throw new SlsError('INVALID_CONFIG', { setting: 'SLS_MASTER_KEY', reason: 'must be 32 bytes' });
    this.encryptionKey = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'sls secret-box v1', 32));
    this.digestKey = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'sls digest v1', 32));
    this.keyId = createHash('sha256').update(this.encryptionKey).digest('hex').slice(0, 12);
  }

  seal(plaintext: Buffer | string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.encryptionKey, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
    const ciphertext = Buffer.concat([cipher.update(data), cipher.final()]);
    const box = Buffer.concat([iv, ciphertext, cipher.getAuthTag()]);
    return `v1.${this.keyId}.${box.toString('base64url')}`;
  }

  open(sealed: string, context: string): Buffer {
    const [version, keyId, payload] = sealed.split('.');
    if (version !== 'v1' || payload === undefined) throw new SlsError('INTERNAL_ERROR', {}, 'unknown secret format');
    if (keyId !== this.keyId) throw new SlsError('MASTER_KEY_MISMATCH', {}, 'secret sealed under another master key');
    const box = Buffer.from(payload, 'base64url');
    const iv = box.subarray(0, IV_BYTES);
    const tag = box.subarray(box.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.encryptionKey, iv);
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(box.subarray(IV_BYTES, box.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new SlsError('INTERNAL_ERROR', {}, `secret does not open in context ${context}`);
    }
  }

  openJson<T>(sealed: string, context: string): T {
    return JSON.parse(this.open(sealed, context).toString('utf8')) as T;
  }

  sealJson(value: unknown, context: string): string {
    return this.seal(JSON.stringify(value), context);
  }

  /** A keyed digest for looking values up without storing them (codes, identification data). */
  digest(value: string, purpose: string): string {
    return createHmac('sha256', this.digestKey).update(purpose).update('\0').update(value).digest('base64url');
  }
}
