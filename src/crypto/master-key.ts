/**
 * The master key that protects device secrets (D5) lives outside the
 * database: SLS_MASTER_KEY, or a key file generated in the data directory on
 * first start (development convenience, announced loudly).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SlsError } from '../errors.js';
import { createFileOnce, ensureDirectory } from '../directories.js';
import { readKeyFile } from '../bounded-file.js';

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
      reason: 'must be 32 bytes',
    });
  }
  return key;
}

export interface MasterKeyOptions {
  masterKey: string | undefined;
  dataDir: string;
  /**
   * Where the database already holds data (for the message), or undefined
   * for a new database: only a new database may get a generated key (X4).
   */
  existingDatabase?: string;
}

export function masterKeyPath(dataDir: string): string {
  return join(dataDir, 'master.key');
}

export function loadMasterKey(options: MasterKeyOptions): MasterKeySource {
  if (options.masterKey) return { key: decodeMasterKey(options.masterKey), origin: 'environment' };
  const path = masterKeyPath(options.dataDir);
  if (existsSync(path)) return { key: decodeMasterKey(readKeyFile(path, 'SLS_MASTER_KEY')), origin: 'key-file', path };
  // a new key beside a database that holds secrets would read none of them: refuse before writing a stray key file
  if (options.existingDatabase !== undefined) throw new SlsError('MASTER_KEY_MISSING', { database: options.existingDatabase, path });
  ensureDirectory(options.dataDir, 'SLS_DATA_DIR');
  const key = randomBytes(32);
  // Another process created it first: use theirs.
  if (!createFileOnce(path, `${key.toString('base64')}\n`)) {
    return { key: decodeMasterKey(readKeyFile(path, 'SLS_MASTER_KEY')), origin: 'key-file', path };
  }
  return { key, origin: 'generated-key-file', path };
}
