/**
 * Temporary passcode (T1–T5): a static, case-sensitive, upper-case
 * alphanumeric code that client services give a caller whose identity they
 * verified, used in place of the device's code. It is shown once and kept
 * only as a keyed hash. How long it opens what is the access policy's
 * business (src/policy/access.ts).
 */
import { constantTimeEqual } from '../../crypto/constant-time.js';
import { randomUpperAlnum } from '../../crypto/random.js';
import type { Challenge, CheckResult, DeviceContext, DeviceKind } from '../types.js';

export const TEMP_PASSCODE_LENGTH = 8;

/** What is sealed in the device row: only the passcode's digest. */
export interface TempPasscodeSecret {
  digest: string;
}

export function newTemporaryPasscode(): string {
  return randomUpperAlnum(TEMP_PASSCODE_LENGTH);
}

export const temporaryPasscode: DeviceKind = {
  type: 'temp_passcode',
  strength: 1,
  amr: [],
  temporary: true,
  leadsToOnlineCard: true,
  failureHints: ['hints.passcodeUpperCase'],
  // T3: full access to portal and trading for 2 days; then, until day 12, the portal only, for the online security card pages
  access(device, app, now, policy) {
    const start = device.activatedAt ?? device.createdAt;
    const age = now - start;
    const check = 'temporary-passcode-window';
    if (age >= policy.temporaryPasscodeLifeMs) return { allowed: false, reason: 'TEMP_PASSCODE_EXPIRED', check };
    if (age < policy.temporaryPasscodeFullMs) return { allowed: true, scope: 'full', check, until: start + policy.temporaryPasscodeFullMs };
    if (app === 'trading') return { allowed: false, reason: 'TEMP_PASSCODE_PORTAL_ONLY', check };
    return { allowed: true, scope: 'online_card_only', check, until: start + policy.temporaryPasscodeLifeMs };
  },

  async issueChallenge(): Promise<Challenge> {
    return { prompt: { type: 'passcode' }, verifier: {} };
  },

  // a digest of the answer against the secret's or the challenge's
  pureCheck: true,

  async checkResponse(ctx: DeviceContext, _verifier: Record<string, unknown>, response: string): Promise<CheckResult> {
    // static by design (T2): reusable until it expires, so no replay key
    return { ok: constantTimeEqual(ctx.digest(response), ctx.secret<TempPasscodeSecret>().digest) };
  },
};
