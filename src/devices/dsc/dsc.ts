/**
 * The legacy Digital Security Card (D1): a challenge/response card without
 * a PIN. The login screen shows a 6-digit challenge; the card answers with
 * 8 digits, per the OCRA (RFC 6287) suite `OCRA-1:HOTP-SHA1-8:QN06`
 * (docs/legacy-devices.md), or the suite its imported key names. It is no
 * longer issued: cards come only from imported keys (PSKC, an OCRA suite
 * without `P`) and are assigned to the users who hold them.
 */
import { importedCardSuite, ocraChallengeResponse } from '../ocra-device.js';
import type { DeviceKind } from '../types.js';

/** D1: the legacy card's suite: a 6-digit numeric challenge, an 8-digit response, no PIN, HMAC-SHA-1. */
export const LEGACY_DSC_SUITE = 'OCRA-1:HOTP-SHA1-8:QN06';

/** What is sealed in the device row: the card seed (hex). */
export interface LegacyDscSecret {
  seed: string;
}

const ocra = ocraChallengeResponse(LEGACY_DSC_SUITE);

export const legacyDsc: DeviceKind = {
  type: 'dsc',
  // D2: DSC+ = Platinum = Gold > DSC > mobile authenticator
  strength: 70,
  amr: ['hwk', 'otp'],
  temporary: false,
  // H, K7: a card the user holds
  physical: true,
  // W1: USD 1M a day, 1.5M in 5 business days
  withdrawalRow: { perDayUsd: 1_000_000, fiveBusinessDaysUsd: 1_500_000 },
  capabilities: { reactivate: true },
  promptSteps: ['legacy.dsc.steps.on', 'legacy.dsc.steps.challenge', 'legacy.dsc.steps.response'],
  failureHints: ['hints.noSpaces'],
  issueChallenge: ocra.issueChallenge,
  checkResponse: ocra.checkResponse,
  pureCheck: ocra.pureCheck,
  stock: {
    fromKey(key) {
      const suite = importedCardSuite(key);
      if (suite === null || suite.pinHash !== null) return null;
      const secret: LegacyDscSecret = { seed: key.secret.toString('hex') };
      return { secret, params: { suite: suite.text }, label: `DSC ${key.serial}` };
    },
    assignAsIs: true,
    tokenFile: (device, secret) => ({ algorithm: 'ocra', suite: device.params.suite ?? LEGACY_DSC_SUITE, seed: (secret as LegacyDscSecret).seed }),
  },
};
