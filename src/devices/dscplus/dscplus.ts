/**
 * Digital Security Card+ (C2, C3): a PIN-protected challenge/response card.
 * The login screen shows a 6-digit challenge; the card, with the user's
 * 4-digit soft PIN folded in, answers with 8 digits, per the OCRA suite
 * OCRA-1:HOTP-SHA256-8:QN06-PSHA1.
 */
import { createHash } from 'node:crypto';
import { SlsError } from '../../errors.js';
import { generateOcraChallenge, parseOcraSuite, verifyOcra, type OcraSuite } from '../../crypto/ocra.js';
import type { Challenge, CheckResult, DeviceContext, DeviceKind } from '../types.js';

export const DSCPLUS_SUITE = 'OCRA-1:HOTP-SHA256-8:QN06-PSHA1';

/** What is sealed in the device row. */
export interface DscPlusSecret {
  /** The card seed, hex. */
  seed: string;
  /** SHA-1 of the soft PIN, hex (the P input of the suite). */
  pinHash: string;
}

export function assertSoftPin(pin: string): void {
  if (!/^\d{4}$/.test(pin)) throw new SlsError('INVALID_PIN', { digits: 4 });
}

/** The P input of the suite: SHA-1 of the soft PIN, hex. */
export function softPinHash(pin: string): string {
  assertSoftPin(pin);
  return createHash('sha1').update(pin, 'utf8').digest('hex');
}

export function dscPlusSecret(seed: Buffer, pin: string): DscPlusSecret {
  return { seed: seed.toString('hex'), pinHash: softPinHash(pin) };
}

const suites = new Map<string, OcraSuite>();
function suiteOf(ctx: DeviceContext): OcraSuite {
  const text = typeof ctx.device.params.suite === 'string' ? ctx.device.params.suite : DSCPLUS_SUITE;
  let suite = suites.get(text);
  if (!suite) {
    suite = parseOcraSuite(text);
    suites.set(text, suite);
  }
  return suite;
}

const MAX_DRAWS = 8;

export const dscPlus: DeviceKind = {
  type: 'dscplus',
  failureHints: ['hints.noSpaces'],

  async issueChallenge(ctx: DeviceContext): Promise<Challenge> {
    const suite = suiteOf(ctx);
    // A challenge already answered on this card is never asked again: its
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
    const suite = suiteOf(ctx);
    const secret = ctx.secret<DscPlusSecret>();
    const ok = verifyOcra(suite, { key: Buffer.from(secret.seed, 'hex'), question, pinHash: Buffer.from(secret.pinHash, 'hex') }, response);
    return ok ? { ok, replayKeys: [`q:${question}`] } : { ok };
  },
};
