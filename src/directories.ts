/** The directories the server writes in (X4). */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { SlsError } from './errors.js';

/**
 * X4: a directory the server writes in (the data directory, the SQLite
 * file's folder) is created, readable by its owner only, when its parent
 * exists; a path whose parent is missing too is a mistake and is refused
 * rather than created anywhere on disk.
 */
export function ensureDirectory(directory: string, setting: string): void {
  if (existsSync(directory)) {
    if (!statSync(directory).isDirectory()) throw new SlsError('DIRECTORY_MISSING', { directory, setting });
    return;
  }
  if (!existsSync(dirname(directory))) throw new SlsError('DIRECTORY_MISSING', { directory, setting });
  mkdirSync(directory, { mode: 0o700 });
}
