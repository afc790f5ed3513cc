/**
 * SMS as a second factor (M4): after username and password a 6-digit code,
 * valid 10 minutes and single use, is sent to the user's verified mobile
 * number, by SMS or, on request, read by an automated call (M5). Only the
 * code's keyed digest is kept, sealed to the login flow. The sending is the
 * flow's business (src/devices/sms/codes.ts), not the device's.
 */
import { constantTimeEqual } from '../../crypto/constant-time.js';
import { newToken, randomDigits } from '../../crypto/random.js';
import { SMS_CODE_DIGITS, type Challenge, type CheckResult, type DeviceContext, type DeviceKind } from '../types.js';

export { SMS_CODE_DIGITS };

/** Non-secret parameters of an SMS device: the number it sends to. */
export interface SmsDeviceParams {
  phoneId: string;
}

export function newSmsCode(): string {
  return randomDigits(SMS_CODE_DIGITS);
}

/** A challenge for a new code: the code to send, and its digest to check against. */
export function smsChallenge(ctx: DeviceContext, channel: 'sms' | 'voice'): Challenge {
  const code = newSmsCode();
  return {
    code,
    // nonce: each code can be accepted once, whichever flow holds it (L4)
    verifier: { digest: ctx.digest(code), nonce: newToken() },
    prompt: {
      type: 'sms',
      to: ctx.device.label ?? '',
      channel,
      delivery: 'sent',
      resendAfter: new Date(0).toISOString(),
      sends: 0,
      confirmsNumber: ctx.device.state === 'requested',
      digits: SMS_CODE_DIGITS,
    },
  };
}

export const smsDevice: DeviceKind = {
  type: 'sms',
  strength: 20,
  amr: ['sms', 'otp'],
  confirmedAtLogin: true,
  temporary: false,
  withdrawalRow: { perDayUsd: 200_000, fiveBusinessDaysUsd: 600_000 },
  capabilities: { reactivate: true },
  failureHints: ['hints.noSpaces'],

  async issueChallenge(ctx: DeviceContext): Promise<Challenge> {
    return smsChallenge(ctx, 'sms');
  },

  // a digest of the answer against the secret's or the challenge's
  pureCheck: true,

  async checkResponse(ctx: DeviceContext, verifier: Record<string, unknown>, response: string): Promise<CheckResult> {
    const digest = typeof verifier.digest === 'string' ? verifier.digest : '';
    return { ok: digest !== '' && constantTimeEqual(ctx.digest(response), digest), replayKeys: [`sms:${String(verifier.nonce)}`] };
  },

  codeChallenge: smsChallenge,
};
