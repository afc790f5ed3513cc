/**
 * X3, X4: the files `sls` reads whole (a PSKC batch, a Security Code Card's
 * codes, exchange rates, a card or token file): regular files read to a
 * bound (src/bounded-file.ts), refused with a stable error otherwise.
 */
import { SlsError } from '../errors.js';
import { readBoundedFile } from '../bounded-file.js';

export { readBoundedFile } from '../bounded-file.js';

/** X3: a key or seed as the command line takes it (options, card and token files): hex of whole bytes, at least one (Buffer.from would read "zz" as no key at all, and compute with it). */
export const HEX_BYTES = /^(?:[0-9a-fA-F]{2})+$/;

/** A text file of the command line (codes, rates, a card or token file): far less than this. */
export const MAX_TEXT_FILE_BYTES = 1024 * 1024;

/** The bound as people read it: "1 MiB", "64 KiB". */
export function sizeText(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

/** A text file of the command line: VALIDATION_ERROR file_unreadable (or UNREADABLE_REASON), file_too_large. */
export function readTextFile(path: string, unreadableReason = 'file_unreadable', max = MAX_TEXT_FILE_BYTES): string {
  return readBoundedFile(path, max, {
    unreadable: () => new SlsError('VALIDATION_ERROR', { reason: unreadableReason, path }),
    tooLarge: () => new SlsError('VALIDATION_ERROR', { reason: 'file_too_large', path, max: sizeText(max) }),
  }).toString('utf8');
}
