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

/** The mode of PATH (permission bits, with setuid, setgid and sticky) in octal when one of the bits of OTHERS is set; null otherwise, or when it is not there. */
function modeWith(path: string, others: number): string | null {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o7777;
  } catch {
    return null;
  }
  return (mode & others) === 0 ? null : mode.toString(8).padStart(3, '0');
}

/**
 * X4, D5: the mode of a file holding secrets (a key file, the SQLite
 * database) when other users of the machine may read or write it — copied,
 * restored from a backup or chmod'ed after the server made it 0600 — as
 * three octal digits; null when only its owner may, or it is not there.
 */
export function exposedMode(path: string): string | null {
  return modeWith(path, 0o077);
}

/**
 * X4, D5: the mode of a directory holding such files when other users of
 * the machine may write in it (they could plant or replace a key file or
 * the database), as three or four octal digits; null otherwise.
 */
export function writableByOthers(directory: string): string | null {
  return modeWith(directory, 0o022);
}
