/**
 * Biometric confirmation on the phone (K3, K12) through WebAuthn: a
 * platform credential (fingerprint, face) registered at activation, and
 * assertions with user verification over an answer to a push request.
 * The checks are @simplewebauthn/server's.
 */
import { lazyPackage } from '../../lazy-package.js';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { SlsError } from '../../errors.js';

const simpleWebAuthn = lazyPackage<typeof import('@simplewebauthn/server')>('@simplewebauthn/server');

/** Where the app runs: WebAuthn binds credentials to it. */
export interface WebOrigin {
  origin: string;
  rpId: string;
}

export interface StoredCredential {
  id: string;
  /** COSE public key, base64url. */
  publicKey: string;
  counter: number;
}

const TIMEOUT_MS = 60_000;

/** Options for navigator.credentials.create: a platform authenticator with user verification. */
export async function registrationOptions(where: WebOrigin, rpName: string, username: string, challenge: string) {
  return simpleWebAuthn().generateRegistrationOptions({
    rpName,
    rpID: where.rpId,
    userName: username,
    challenge: Buffer.from(challenge, 'base64url'),
    timeout: TIMEOUT_MS,
    attestationType: 'none',
    authenticatorSelection: { authenticatorAttachment: 'platform', userVerification: 'required', residentKey: 'discouraged' },
  });
}

/** The credential of a registration answering `challenge`; VALIDATION_ERROR when it does not verify. */
export async function verifyRegistration(where: WebOrigin, challenge: string, response: unknown): Promise<StoredCredential> {
  try {
    const result = await simpleWebAuthn().verifyRegistrationResponse({
      response: response as RegistrationResponseJSON,
      expectedChallenge: challenge,
      expectedOrigin: where.origin,
      expectedRPID: where.rpId,
      requireUserVerification: true,
    });
    if (!result.verified) throw new Error('not verified');
    const { credential } = result.registrationInfo;
    return { id: credential.id, publicKey: Buffer.from(credential.publicKey).toString('base64url'), counter: credential.counter };
  } catch {
    throw new SlsError('VALIDATION_ERROR', { reason: 'webauthn' }, 'the biometric credential did not verify');
  }
}

/** The new signature counter when the assertion is the credential's, with user verification, over `challenge`; null otherwise. */
export async function verifyAssertion(where: WebOrigin, credential: StoredCredential, challenge: string, response: unknown): Promise<number | null> {
  try {
    const result = await simpleWebAuthn().verifyAuthenticationResponse({
      response: response as AuthenticationResponseJSON,
      expectedChallenge: challenge,
      expectedOrigin: where.origin,
      expectedRPID: where.rpId,
      credential: { id: credential.id, publicKey: Buffer.from(credential.publicKey, 'base64url'), counter: credential.counter },
      requireUserVerification: true,
    });
    return result.verified ? result.authenticationInfo.newCounter : null;
  } catch {
    return null;
  }
}
