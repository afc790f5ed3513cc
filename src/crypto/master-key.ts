/**
 * The master key that protects device secrets (D5) lives outside the
 * database: SLS_MASTER_KEY, or a key file generated in the data directory on
 * first start (development convenience, announced loudly).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SlsError } from '../errors.js';

export interface MasterKeySource {
  key: Buffer;
  origin: 'environment' | 'key-file' | 'generated-key-file';
  path?: string;
}

export function decodeMasterKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
  if (key.length !== 32) {
    throw new SlsError('INVALID_CONFIG', {
      setting: 'SLS_MASTER_KEY',
      reason: 'must be 32 bytes, as 64 hex digits or base64',
    });
  }
  return key;
}

export function loadMasterKey(options: { masterKey: string | undefined; dataDir: string }): MasterKeySource {
  if (options.masterKey) return { key: decodeMasterKey(options.masterKey), origin: 'environment' };
  const path = join(options.dataDir, 'master.key');
  if (existsSync(path)) return { key: decodeMasterKey(readFileSync(path, 'utf8')), origin: 'key-file', path };
  mkdirSync(options.dataDir, { recursive: true });
  const key = randomBytes(32);
  try {
    writeFileSync(path, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // Another process created it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      return { key: decodeMasterKey(readFileSync(path, 'utf8')), origin: 'key-file', path };
    }
    throw error;
  }
  return { key, origin: 'generated-key-file', path };
}
