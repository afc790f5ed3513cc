/**
 * X1, D5: the secrets `sls` is given (a PIN, a key, a password) without the
 * command line: every user of the machine sees a process's arguments (`ps`,
 * /proc/<pid>/cmdline) and the shell keeps them in its history. Each secret
 * option `--x` has a twin `--x-file <path>`: the secret is the first line of
 * a file only its owner may read (chmod 600), or of standard input when the
 * path is `-`. The old `--x` stays, for scripts, its help saying who sees it.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { Option } from 'commander';
import { SlsError } from '../errors.js';
import { isText } from '../http/text-input.js';

/** A secret is short: a longer file is not one. */
const MAX_SECRET_BYTES = 64 * 1024;

/** The option that gives secret FLAG from a file or standard input. */
export function secretFileOption(flag: string, what: string): Option {
  return new Option(
    `${flag}-file <path>`,
    `${what} from the first line of a file only you can read (chmod 600), or of standard input with -: the process list and the shell history never show it`,
  );
}

/** The help of a secret given on the command line. */
export function visibleSecret(what: string, flag: string): string {
  return `${what} (other users of this machine can see it: prefer ${flag}-file)`;
}

/** A secret of a command: given as FLAG (VALUE, as its option parsed it) or as FLAG-file (FILE). */
export interface SecretSpec<T> {
  flag: string;
  value: T | undefined;
  file: string | undefined;
}

/** The first line of TEXT, without its end. */
function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0] ?? '';
}

/** X3: standard input, to its end, at most 64 KiB (a secret, not an endless stream). */
export async function readStandardInput(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += bytes.length;
    if (size > MAX_SECRET_BYTES) throw new SlsError('VALIDATION_ERROR', { reason: 'secret_stdin_large' });
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The text of a secret file: a regular file of the user running sls that no
 * one else may read or write (the group's and others' bits all off), at most
 * 64 KiB. Its mode is that of the file opened (a symbolic link is followed:
 * what is checked is what is read).
 */
function readSecretFile(path: string, fileFlag: string): string {
  let fd: number;
  try {
    // X3: without blocking (a FIFO without a writer would hold the open for ever); fstat below refuses what is no file
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch {
    throw new SlsError('VALIDATION_ERROR', { reason: 'secret_file_unreadable', field: fileFlag, path });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.size > MAX_SECRET_BYTES) {
      throw new SlsError('VALIDATION_ERROR', { reason: 'secret_file_unreadable', field: fileFlag, path });
    }
    const uid = process.getuid?.();
    if ((stat.mode & 0o077) !== 0 || (uid !== undefined && stat.uid !== uid)) {
      throw new SlsError('VALIDATION_ERROR', { reason: 'secret_file_exposed', field: fileFlag, path, mode: (stat.mode & 0o777).toString(8).padStart(4, '0') });
    }
    const buffer = Buffer.alloc(stat.size);
    let read = 0;
    while (read < stat.size) {
      const n = readSync(fd, buffer, read, stat.size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read).toString('utf8');
  } catch (error) {
    if (error instanceof SlsError) throw error;
    throw new SlsError('VALIDATION_ERROR', { reason: 'secret_file_unreadable', field: fileFlag, path });
  } finally {
    closeSync(fd);
  }
}

/**
 * The secrets of one command run: standard input gives at most one of them
 * (it is read to its end). Each secret is given once, by its option or by
 * its file; one not given is undefined (`required` refuses it).
 */
export class SecretInputs {
  private stdinBy: string | null = null;

  /** The secret: FLAG's value as given, or the text of FLAG-file (the caller parses it as FLAG's option would). */
  async get<T = string>(spec: SecretSpec<T>, required = false): Promise<T | string | undefined> {
    const fileFlag = `${spec.flag}-file`;
    if (spec.value !== undefined && spec.file !== undefined) {
      throw new SlsError('VALIDATION_ERROR', { reason: 'secret_twice', field: spec.flag, file: fileFlag });
    }
    if (spec.file === undefined) {
      if (spec.value === undefined && required) throw new SlsError('VALIDATION_ERROR', { reason: 'secret_missing', field: spec.flag, file: fileFlag });
      return spec.value;
    }
    let text: string;
    if (spec.file === '-') {
      if (this.stdinBy !== null) throw new SlsError('VALIDATION_ERROR', { reason: 'secret_stdin_twice', field: fileFlag, other: this.stdinBy });
      this.stdinBy = fileFlag;
      text = await readStandardInput();
    } else {
      text = readSecretFile(spec.file, fileFlag);
    }
    const line = firstLine(text);
    if (line === '') throw new SlsError('VALIDATION_ERROR', { reason: 'secret_empty', field: fileFlag });
    // X3: what a file gives is text, as an argument must be (a NUL, half of a surrogate pair: refused)
    if (!isText(line)) throw new SlsError('VALIDATION_ERROR', { reason: 'not_text_argument', field: fileFlag });
    return line;
  }
}
