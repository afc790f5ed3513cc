/**
 * The mobile authenticator as a device (K): a push request answered in the
 * app (the login flow's business, src/devices/mobile/push-requests.ts), or,
 * when no notification comes, challenge/response typed by the user (K4,
 * K5, K10): the screen shows an 8-digit challenge, the app answers with 8
 * digits computed with the key agreed at activation and the PIN folded in
 * (OCRA-1:HOTP-SHA256-8:QN08-PSHA256). The OCRA steps are those of the
 * DSC+, with the app's suite.
 */
import { randomInt } from 'node:crypto';
import { generateOcraChallenge, parseOcraSuite } from '../../crypto/ocra.js';
import { ocraChallengeResponse } from '../ocra-device.js';
import type { Challenge, DeviceKind } from '../types.js';
import { MOBILE_SUITE, type PublicJwk } from './keys.js';

/** What is sealed in the device row (D5). */
export interface MobileSecret {
  /** The OCRA key agreed with the phone, hex. */
  seed: string;
  /** SHA-256 of the PIN, hex (the P input; also the recovery PIN, K8). */
  pinHash: string;
  /** The phone's ECDSA key: answers to push requests are its signatures (K13). */
  signingKey: PublicJwk;
  /** The phone's ECDH key: messages are sealed to it (K14). */
  agreementKey: PublicJwk;
  /** The WebAuthn platform credential confirming approvals by biometric (K3, K12). */
  credential: { id: string; publicKey: string; counter: number } | null;
  /** Hash of the token of the app's live connection. */
  appTokenHash: string;
}

/** Non-secret parameters. */
export interface MobileParams {
  suite: string;
  /** The number the activation token went to: migration sends the token there again (K7). */
  phoneId: string | null;
  biometric: boolean;
  /** K8: wrong recovery PINs so far; a login never resets them, a new activation starts at 0. */
  recoveryFailures?: number;
}

const ocra = ocraChallengeResponse(MOBILE_SUITE);

export const mobileDevice: DeviceKind = {
  type: 'mobile',
  strength: 60,
  amr: ['swk'],
  // K4: the offline response is computed with the PIN
  typedAmr: ['pin'],
  temporary: false,
  withdrawalRow: { perDayUsd: 1_000_000, fiveBusinessDaysUsd: 1_000_000 },
  receivesMessages: true,
  capabilities: { reactivate: true },
  promptSteps: ['web.challenge.mobileSteps.open', 'web.challenge.mobileSteps.challenge', 'web.challenge.mobileSteps.response'],
  failureHints: ['hints.noSpaces', 'hints.mobilePin'],
  issueChallenge: ocra.issueChallenge,
  checkResponse: ocra.checkResponse,
  pureCheck: ocra.pureCheck,
  pushChallenge: () => pushChallenge(),
};

/** What the server keeps to check the answer to a push request. */
export interface PushVerifier {
  /** The 2-digit number shown on the login screen, typed into the app (K13). */
  number: string;
  /** The question whose OCRA response, with the PIN, proves the PIN in a PIN approval. */
  question: string;
}

const suite = parseOcraSuite(MOBILE_SUITE);

/** K3, K13: a push request: a 2-digit number (10–99) for the screen, a question for the PIN proof. */
export function pushChallenge(): Challenge {
  const verifier: PushVerifier = { number: String(randomInt(10, 100)), question: generateOcraChallenge(suite) };
  return { prompt: { type: 'push', number: verifier.number }, verifier: { ...verifier } };
}
