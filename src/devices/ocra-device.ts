/**
 * Challenge/response by OCRA (RFC 6287) with the PIN folded in, for the
 * kinds that answer that way: the DSC+ (C3) and the mobile authenticator
 * when no notification comes (K4, K5). A kind passes the suite its devices
 * use when their parameters name none.
 */
import { SlsError } from '../errors.js';
import { generateOcraChallenge, parseOcraSuite, verifyOcra, type OcraSuite } from '../crypto/ocra.js';
import type { Challenge, CheckResult, DeviceContext, DeviceKind } from './types.js';

/** What such a kind seals in the device row: the OCRA key and the P input (hex). */
export interface OcraSecret {
  seed: string;
  pinHash: string;
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

export function ocraChallengeResponse(defaultSuite: string): Pick<DeviceKind, 'issueChallenge' | 'checkResponse'> {
  return {
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
      const ok = verifyOcra(suite, { key: Buffer.from(secret.seed, 'hex'), question, pinHash: Buffer.from(secret.pinHash, 'hex') }, response);
      return ok ? { ok, replayKeys: [`q:${question}`] } : { ok };
    },
  };
}
