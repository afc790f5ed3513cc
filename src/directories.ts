/** The directories the server writes in (X4). */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
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

/**
 * X4, D5: creates the key file PATH (mode 0600) holding TEXT, whole or not at
 * all: written and flushed under a name of its own beside it, then linked to
 * PATH, which fails if PATH is there already. Two processes starting at once
 * on one data directory never read a key file half written (an empty
 * master.key stopped the second one's start). False when another process
 * created PATH first: read theirs.
 */
export function createFileOnce(path: string, text: string): boolean {
  const draft = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}`);
  const fd = openSync(draft, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(draft, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    rmSync(draft, { force: true });
  }
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
