/**
 * X3, X4: a file read whole, bounded (the command line's inputs, the files
 * the settings name): a regular file, opened without blocking (a FIFO with no
 * writer would hold the open for ever) and checked by what was opened, read
 * to at most a bound (a file growing while it is read is never read past
 * it), so that a huge file, /dev/zero, a FIFO or a terminal neither fills
 * the memory nor waits for ever.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { SlsError } from './errors.js';

export interface BoundedRead {
  /** The error when the file cannot be opened, or is not a regular file. */
  unreadable: () => SlsError;
  /** The error when it holds more than the bound. */
  tooLarge: () => SlsError;
}

/** The bytes of the regular file at PATH, at most MAX of them: otherwise the errors of ON. */
export function readBoundedFile(path: string, max: number, on: BoundedRead): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch {
    throw on.unreadable();
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw on.unreadable();
    if (stat.size > max) throw on.tooLarge();
    // read to its end, in chunks, stopping past the bound (a file that grew while it was read)
    const chunks: Buffer[] = [];
    let read = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, max + 1 - read));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      read += n;
      if (read > max) throw on.tooLarge();
    }
    return Buffer.concat(chunks, read);
  } catch (error) {
    if (error instanceof SlsError) throw error;
    throw on.unreadable();
  } finally {
    closeSync(fd);
  }
}

/** X3: a file a setting names (SLS_HOLIDAYS_FILE, SLS_SUPPORT_FILE, SLS_SMTP_CA_FILE): a regular file of at most 1 MiB. */
export function readSettingFile(path: string, setting: string): string {
  return readBoundedFile(path, 1024 * 1024, {
    unreadable: () => new SlsError('INVALID_CONFIG', { setting, reason: 'cannot be read' }),
    tooLarge: () => new SlsError('INVALID_CONFIG', { setting, reason: 'too large', max: '1 MiB' }),
  }).toString('utf8');
}

/** X4, X3, D5: a key file the server keeps in its data directory (master.key, vapid.json): far less than this. */
export const MAX_KEY_FILE_BYTES = 4 * 1024;

/**
 * The text of a key file in the data directory, instead of SETTING: a
 * regular file of at most 4 KiB, read without blocking, or a start failure
 * (INVALID_CONFIG key_file_unreadable, key_file_too_large) naming it.
 */
export function readKeyFile(path: string, setting: string): string {
  const max = '4 KiB';
  return readBoundedFile(path, MAX_KEY_FILE_BYTES, {
    unreadable: () => new SlsError('INVALID_CONFIG', { setting, reason: 'key file unreadable', path, max }),
    tooLarge: () => new SlsError('INVALID_CONFIG', { setting, reason: 'key file too large', path, max }),
  }).toString('utf8');
}
