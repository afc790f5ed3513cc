/**
 * Digital Security Card+ (C2, C3): a PIN-protected challenge/response card.
 * The login screen shows a 6-digit challenge; the card, with the user's
 * 4-digit soft PIN folded in, answers with 8 digits, per the OCRA suite
 * OCRA-1:HOTP-SHA256-8:QN06-PSHA1.
 */
import { createHash } from 'node:crypto';
import { SlsError } from '../../errors.js';
import { importedCardSuite, ocraChallengeResponse } from '../ocra-device.js';
import type { DeviceKind } from '../types.js';

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

const ocra = ocraChallengeResponse(DSCPLUS_SUITE);

export const dscPlus: DeviceKind = {
  type: 'dscplus',
  strength: 100,
  amr: ['hwk', 'otp', 'pin'],
  temporary: false,
  // H, K7: a card the user holds
  physical: true,
  // W1: no limit
  withdrawalRow: { perDayUsd: null, fiveBusinessDaysUsd: null },
  capabilities: { reactivate: true, changePin: true, reportLost: true, returnable: true },
  promptSteps: [
    'web.challenge.dscplusSteps.press',
    'web.challenge.dscplusSteps.pin',
    'web.challenge.dscplusSteps.challenge',
    'web.challenge.dscplusSteps.response',
  ],
  failureHints: ['hints.noSpaces'],
  issueChallenge: ocra.issueChallenge,
  checkResponse: ocra.checkResponse,
  pureCheck: ocra.pureCheck,
  // C8, D1: an imported OCRA key whose suite has a PIN (P) is a DSC+ card; it takes its PIN when issued (C4)
  stock: {
    fromKey(key) {
      const suite = importedCardSuite(key);
      if (suite === null || suite.pinHash === null) return null;
      return { secret: { seed: key.secret.toString('hex') }, params: { suite: suite.text }, label: `DSC+ ${key.serial}` };
    },
    assignAsIs: false,
  },
};
