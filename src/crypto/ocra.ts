/**
 * OCRA: OATH Challenge-Response Algorithm (RFC 6287).
 *
 * A complete implementation: CryptoFunction HOTP-SHA1/SHA256/SHA512 with
 * 4–10 digits or 0 (no truncation: the full HMAC as hex), DataInput
 * C | QAxx/QNxx/QHxx | P<hash> | Snnn | T<step>. Proven against every vector of
 * RFC 6287 Appendix C (see ocra.test.ts).
 */
import { createHash, createHmac, randomBytes, randomInt } from 'node:crypto';
import { SlsError } from '../errors.js';
import { constantTimeEqual } from './constant-time.js';
import { counterBytes, truncateToDigits, type HashAlgorithm } from './hotp.js';
import { randomDigits } from './random.js';

export type ChallengeFormat = 'A' | 'N' | 'H';

export interface OcraSuite {
  /** The suite string exactly as given (it is part of the HMAC input). */
  text: string;
  hash: HashAlgorithm;
  /** 0 means no truncation; otherwise 4–10. */
  digits: number;
  counter: boolean;
  challenge: { format: ChallengeFormat; maxLength: number };
  pinHash: HashAlgorithm | null;
  /** Length of the session information in bytes, or null. */
  sessionLength: number | null;
  /** Time-step size in seconds, or null. */
  timeStep: number | null;
}

const HASHES: Record<string, HashAlgorithm> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };
const HASH_BYTES: Record<HashAlgorithm, number> = { sha1: 20, sha256: 32, sha512: 64 };
const TIME_UNIT_SECONDS: Record<string, number> = { S: 1, M: 60, H: 3600 };
const QUESTION_BYTES = 128;

/** X2: `reason` is a key of the translation files (errors.INVALID_SUITE_<reason>), its params beside it. */
function invalidSuite(suite: string, reason: string, params: Record<string, string> = {}): SlsError {
  return new SlsError('INVALID_SUITE', { suite, reason, ...params }, `invalid OCRA suite ${suite}: ${reason}`);
}

/** Parses an OCRASuite string `<Algorithm>:<CryptoFunction>:<DataInput>` (RFC 6287 §6). */
export function parseOcraSuite(text: string): OcraSuite {
  const parts = text.split(':');
  if (parts.length !== 3) throw invalidSuite(text, 'parts');
  const [algorithm, cryptoFunction, dataInput] = parts as [string, string, string];
  if (algorithm !== 'OCRA-1') throw invalidSuite(text, 'version');

  const crypto = /^HOTP-(SHA1|SHA256|SHA512)-(\d{1,2})$/.exec(cryptoFunction);
  if (!crypto) throw invalidSuite(text, 'crypto_function');
  const digits = Number(crypto[2]);
  if (digits !== 0 && (digits < 4 || digits > 10)) throw invalidSuite(text, 'truncation');

  const suite: OcraSuite = {
    text,
    hash: HASHES[crypto[1]!]!,
    digits,
    counter: false,
    challenge: { format: 'N', maxLength: 8 },
    pinHash: null,
    sessionLength: null,
    timeStep: null,
  };

  const inputs = dataInput.split('-');
  let index = 0;
  if (inputs[index] === 'C') {
    suite.counter = true;
    index++;
  }
  const question = /^Q([ANH])(\d{2})$/.exec(inputs[index] ?? '');
  if (!question) throw invalidSuite(text, 'challenge');
  const maxLength = Number(question[2]);
  if (maxLength < 4 || maxLength > 64) throw invalidSuite(text, 'challenge_length');
  suite.challenge = { format: question[1] as ChallengeFormat, maxLength };
  index++;

  for (const input of inputs.slice(index)) {
    const pin = /^P(SHA1|SHA256|SHA512)$/.exec(input);
    const session = /^S(\d{3})?$/.exec(input);
    const time = /^T(?:(\d{1,2})([SMH]))?$/.exec(input);
    if (pin && suite.pinHash === null && suite.sessionLength === null && suite.timeStep === null) {
      suite.pinHash = HASHES[pin[1]!]!;
    } else if (session && suite.sessionLength === null && suite.timeStep === null) {
      const length = session[1] === undefined ? 64 : Number(session[1]);
      if (length < 1 || length > 512) throw invalidSuite(text, 'session_length');
      suite.sessionLength = length;
    } else if (time && suite.timeStep === null) {
      const amount = time[1] === undefined ? 1 : Number(time[1]);
      const unit = time[2] ?? 'M';
      const valid = unit === 'H' ? amount >= 0 && amount <= 48 : amount >= 1 && amount <= 59;
      if (!valid) throw invalidSuite(text, 'time_step');
      suite.timeStep = amount * TIME_UNIT_SECONDS[unit]!;
    } else {
      throw invalidSuite(text, 'data_input', { element: input });
    }
  }
  return suite;
}

export interface OcraInput {
  key: Buffer;
  /** The challenge question (for mutual modes, both challenges concatenated). */
  question: string;
  counter?: bigint | number;
  /** The PIN in clear; hashed with the suite's P hash. */
  pin?: string;
  /** Or the already hashed PIN. */
  pinHash?: Buffer;
  /** Session information as bytes (left-padded with zeros to the suite's length). */
  session?: Buffer;
  /** Number of time steps (of the suite's size) since the Unix epoch. */
  timestamp?: bigint | number;
}

/** X2: `reason` is a key of the translation files (errors.VALIDATION_ERROR_<reason>), its params beside it. */
function invalidInput(suite: OcraSuite, reason: string, params: Record<string, string | number> = {}): SlsError {
  return new SlsError('VALIDATION_ERROR', { reason, suite: suite.text, ...params }, `OCRA input for ${suite.text}: ${reason}`);
}

/** The 128-byte question block of the DataInput (RFC 6287 §5.1 and Appendix B). */
export function encodeQuestion(suite: OcraSuite, question: string): Buffer {
  let hex: string;
  switch (suite.challenge.format) {
    case 'N':
      if (!/^\d+$/.test(question)) throw invalidInput(suite, 'ocra_question_N', { field: '--question' });
      hex = BigInt(question).toString(16);
      break;
    case 'H':
      if (!/^[0-9a-fA-F]+$/.test(question)) throw invalidInput(suite, 'ocra_question_H', { field: '--question' });
      hex = question;
      break;
    case 'A': {
      if (!/^[\x21-\x7e]+$/.test(question)) throw invalidInput(suite, 'ocra_question_A', { field: '--question' });
      const bytes = Buffer.from(question, 'ascii');
      if (bytes.length > QUESTION_BYTES) throw invalidInput(suite, 'ocra_question_length', { field: '--question', max: QUESTION_BYTES });
      return Buffer.concat([bytes, Buffer.alloc(QUESTION_BYTES - bytes.length)]);
    }
  }
  if (hex.length > QUESTION_BYTES * 2) throw invalidInput(suite, 'ocra_question_length', { field: '--question', max: QUESTION_BYTES });
  // The hex string is right-padded with "0" nibbles, so an odd length shifts by a nibble.
  return Buffer.from(hex.padEnd(QUESTION_BYTES * 2, '0'), 'hex');
}

function hashPin(suite: OcraSuite, input: OcraInput): Buffer {
  const algorithm = suite.pinHash!;
  if (input.pinHash !== undefined) {
    if (input.pinHash.length !== HASH_BYTES[algorithm]) {
      throw invalidInput(suite, 'ocra_pin_hash_length', { field: '--pin-hash', bytes: HASH_BYTES[algorithm] });
    }
    return input.pinHash;
  }
  if (input.pin === undefined) throw invalidInput(suite, 'ocra_missing', { field: '--pin' });
  return createHash(algorithm).update(input.pin, 'utf8').digest();
}

/** The DataInput message that is HMACed (RFC 6287 §5.1). */
export function ocraDataInput(suite: OcraSuite, input: OcraInput): Buffer {
  const parts: Buffer[] = [Buffer.from(suite.text, 'ascii'), Buffer.alloc(1)];
  if (suite.counter) {
    if (input.counter === undefined) throw invalidInput(suite, 'ocra_missing', { field: '--counter' });
    parts.push(counterBytes(input.counter));
  }
  parts.push(encodeQuestion(suite, input.question));
  if (suite.pinHash) parts.push(hashPin(suite, input));
  if (suite.sessionLength !== null) {
    if (input.session === undefined) throw invalidInput(suite, 'ocra_missing', { field: '--session' });
    if (input.session.length > suite.sessionLength) {
      throw invalidInput(suite, 'ocra_session_length', { field: '--session', bytes: suite.sessionLength });
    }
    parts.push(Buffer.alloc(suite.sessionLength - input.session.length), input.session);
  }
  if (suite.timeStep !== null) {
    if (input.timestamp === undefined) throw invalidInput(suite, 'ocra_missing', { field: '--timestamp' });
    parts.push(counterBytes(input.timestamp));
  }
  return Buffer.concat(parts);
}

export function generateOcra(suite: OcraSuite, input: OcraInput): string {
  const hmac = createHmac(suite.hash, input.key).update(ocraDataInput(suite, input)).digest();
  if (suite.digits === 0) return hmac.toString('hex');
  return truncateToDigits(hmac, suite.digits);
}

/** Checks a response in constant time. */
export function verifyOcra(suite: OcraSuite, input: OcraInput, response: string): boolean {
  return constantTimeEqual(generateOcra(suite, input), response);
}

/** The number of time steps of the suite's size at a given time, for the T input. */
export function ocraTimestamp(suite: OcraSuite, unixMillis: number): bigint {
  if (suite.timeStep === null) throw invalidInput(suite, 'ocra_unused', { field: '--timestamp' });
  return BigInt(Math.floor(unixMillis / 1000 / Math.max(suite.timeStep, 1)));
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A random challenge question of the suite's format and full length, from the CSPRNG. */
export function generateOcraChallenge(suite: OcraSuite): string {
  const length = suite.challenge.maxLength;
  switch (suite.challenge.format) {
    case 'N':
      return randomDigits(length);
    case 'H':
      return randomBytes(Math.ceil(length / 2))
        .toString('hex')
        .slice(0, length);
    case 'A': {
      let out = '';
      for (let i = 0; i < length; i++) out += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
      return out;
    }
  }
}
