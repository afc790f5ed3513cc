/**
 * Challenge/response by OCRA (RFC 6287), for the kinds that answer that
 * way: with the PIN folded in, the DSC+ (C3) and the mobile authenticator
 * when no notification comes (K4, K5); without a PIN, the legacy DSC (D1).
 * A kind passes the suite its devices use when their parameters name none.
 */
import { SlsError, isSlsError } from '../errors.js';
import { generateOcraChallenge, parseOcraSuite, verifyOcra, type OcraSuite } from '../crypto/ocra.js';
import type { Challenge, CheckResult, DeviceContext, DeviceKind, ImportedKey } from './types.js';

/** What such a kind seals in the device row: the OCRA key and, when its suite has one, the P input (hex). */
export interface OcraSecret {
  seed: string;
  pinHash?: string;
}

const suites = new Map<string, OcraSuite>();
function suiteOf(ctx: DeviceContext, defaultSuite: string): OcraSuite {
  const text = typeof ctx.device.params.suite === 'string' ? ctx.device.params.suite : defaultSuite;
  let suite = suites.get(text);
  if (!suite) {
    suite = parseOcraSuite(text);
    suites.set(text, suite);
  }
  return suite;
}

const MAX_DRAWS = 8;

export function ocraChallengeResponse(defaultSuite: string): Pick<DeviceKind, 'issueChallenge' | 'checkResponse' | 'pureCheck'> {
  return {
    // the secret and the question only
    pureCheck: true,
    async issueChallenge(ctx: DeviceContext): Promise<Challenge> {
      const suite = suiteOf(ctx, defaultSuite);
      // A challenge already answered on this device is never asked again: its
      // response may have been seen (L4 single use).
      for (let draw = 0; draw < MAX_DRAWS; draw++) {
        const question = generateOcraChallenge(suite);
        if (!(await ctx.wasUsed(`q:${question}`))) {
          return { prompt: { type: 'ocra', question, digits: suite.digits }, verifier: { question } };
        }
      }
      throw new SlsError('DEVICE_NOT_AVAILABLE', {}, 'no unused challenge found');
    },

    async checkResponse(ctx: DeviceContext, verifier: Record<string, unknown>, response: string): Promise<CheckResult> {
      const question = String(verifier.question);
      const suite = suiteOf(ctx, defaultSuite);
      const secret = ctx.secret<OcraSecret>();
      const key = Buffer.from(secret.seed, 'hex');
      const ok = verifyOcra(suite, { key, question, ...(secret.pinHash !== undefined ? { pinHash: Buffer.from(secret.pinHash, 'hex') } : {}) }, response);
      return ok ? { ok, replayKeys: [`q:${question}`] } : { ok };
    },
  };
}

/** C2, C3: a DSC+ answers with 8 digits; D1: a legacy DSC with at least 6, the length of every other code (S1, M4). */
const MIN_DSCPLUS_DIGITS = 8;
const MIN_LEGACY_DSC_DIGITS = 6;
/** C2: the login screen's challenge has 6 digits. */
const MIN_CHALLENGE_DIGITS = 6;

/**
 * D1, C8: the suite of an imported OCRA key that a card answers — a numeric
 * challenge typed on its keypad, a truncated response, no counter, session
 * or time input — with or without a PIN (`P`); null for a key of another
 * algorithm. An OCRA key a card cannot answer is refused (INVALID_PSKC).
 */
export function importedCardSuite(key: ImportedKey): OcraSuite | null {
  if (key.family !== 'ocra' || key.suite === undefined) return null;
  let suite: OcraSuite;
  try {
    suite = parseOcraSuite(key.suite);
  } catch (e) {
    if (isSlsError(e)) throw new SlsError('INVALID_PSKC', { reason: 'invalid OCRA suite', suite: key.suite, serial: key.serial });
    throw e;
  }
  const card = suite.challenge.format === 'N' && suite.digits !== 0 && !suite.counter && suite.sessionLength === null && suite.timeStep === null;
  const pin = suite.pinHash === null || suite.pinHash === 'sha1';
  if (!card || !pin) {
    throw new SlsError(
      'INVALID_PSKC',
      { reason: 'unsupported algorithm', suite: key.suite, serial: key.serial },
      `OCRA suite ${key.suite} is not a card's: a numeric challenge, a truncated response, an optional PSHA1 PIN, no counter, session or time`,
    );
  }
  // C2, C3, D1: a response of fewer digits is guessed sooner (a 4-digit one: one in 10,000), a shorter challenge is
  // asked again sooner; a DSC+ (a PIN) answers 8 digits, a legacy DSC at least 6, as every other code; challenges of 6 digits or more
  const minDigits = suite.pinHash === null ? MIN_LEGACY_DSC_DIGITS : MIN_DSCPLUS_DIGITS;
  if (suite.digits < minDigits || suite.challenge.maxLength < MIN_CHALLENGE_DIGITS) {
    throw new SlsError(
      'INVALID_PSKC',
      { reason: 'weak suite', suite: key.suite, serial: key.serial, digits: minDigits, challenge: MIN_CHALLENGE_DIGITS },
      `OCRA suite ${key.suite} is weaker than a card may be: responses of ${minDigits} digits or more, challenges of ${MIN_CHALLENGE_DIGITS} or more`,
    );
  }
  return suite;
}
