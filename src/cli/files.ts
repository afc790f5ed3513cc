/**
 * X3, X4: the files `sls` reads whole (a PSKC batch, a Security Code Card's
 * codes, exchange rates, a card or token file): a regular file, read to at
 * most a bound, so that a huge file, /dev/zero, a FIFO or a terminal handed
 * to the operator neither fills the memory nor waits for ever. The file is
 * opened without blocking (a FIFO without a writer would hold the open for
 * ever) and checked by what was opened, not by its name; what it holds past
 * the bound (a file growing while it is read) is never read.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { SlsError } from '../errors.js';

/** A text file of the command line (codes, rates, a card or token file): far less than this. */
export const MAX_TEXT_FILE_BYTES = 1024 * 1024;

/** The bound as people read it: "1 MiB", "64 KiB". */
export function sizeText(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

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

/** A text file of the command line: VALIDATION_ERROR file_unreadable (or READABLE's reason), file_too_large. */
export function readTextFile(path: string, unreadableReason = 'file_unreadable', max = MAX_TEXT_FILE_BYTES): string {
  return readBoundedFile(path, max, {
    unreadable: () => new SlsError('VALIDATION_ERROR', { reason: unreadableReason, path }),
    tooLarge: () => new SlsError('VALIDATION_ERROR', { reason: 'file_too_large', path, max: sizeText(max) }),
  }).toString('utf8');
}
