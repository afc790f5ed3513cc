/**
 * FIDO2 / WebAuthn security keys and passkeys as a second factor
 * (docs/decisions/0014-security-keys.md): the login's challenge is the
 * options of navigator.credentials.get for the key's credential, and the
 * answer the assertion the browser gives, as JSON. The checks are
 * @simplewebauthn/server's; user verification is preferred, not required
 * (the password is the other factor).
 *
 * Single use (L4): the assertion signs the flow's random challenge, which is
 * its replay key. Clone detection: a signature counter that goes back
 * refuses the answer and suspends the key (`device.clone_suspected`, a
 * notice); a counter equal to the stored one refuses the answer only (the
 * same assertion twice).
 */
import { lazyPackage } from '../../lazy-package.js';
import type { AuthenticationResponseJSON, AuthenticatorTransport } from '@simplewebauthn/server';
import type { Challenge, CheckResult, DeviceContext, DeviceKind, RelyingParty } from '../types.js';

const simpleWebAuthn = lazyPackage<typeof import('@simplewebauthn/server')>('@simplewebauthn/server');

/** What is sealed in the device row (D5). */
export interface SecurityKeySecret {
  /** COSE public key, base64url. */
  publicKey: string;
  /** The signature counter of the last accepted assertion (0 for keys without one). */
  counter: number;
  /** The attestation object of the registration, base64url, kept as it came. */
  attestationObject: string;
}

/** What is kept in the clear with the device (params): nothing that proves anything alone. */
export interface SecurityKeyParams {
  credentialId: string;
  transports: string[];
  /** The authenticator model (all zeros when the browser withheld it). */
  aaguid: string;
  /** The attestation statement's format: none, packed, fido-u2f … */
  fmt: string;
  /** singleDevice (a security key) or multiDevice (a synced passkey). */
  credentialDeviceType: string;
  backedUp: boolean;
}

export const SECURITY_KEY_TIMEOUT_MS = 120_000;

/** The relying party of a server: SLS_PUBLIC_URL, or http://localhost:<port> (docs/operations.md). */
export function relyingPartyOf(config: { publicUrl: string | undefined; port: number }): RelyingParty {
  const url = new URL(config.publicUrl ?? `http://localhost:${config.port}`);
  return { origin: url.origin, rpId: url.hostname };
}

function paramsOf(ctx: DeviceContext): SecurityKeyParams {
  return ctx.device.params as unknown as SecurityKeyParams;
}

function parseAssertion(response: string): AuthenticationResponseJSON | null {
  try {
    const parsed = JSON.parse(response) as unknown;
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { id?: unknown }).id !== 'string') return null;
    return parsed as AuthenticationResponseJSON;
  } catch {
    return null;
  }
}

export const securityKey: DeviceKind = {
  type: 'security_key',
  failureHints: ['hints.securityKey'],
  // a key suspended as cloned would prove itself: it is removed and registered again instead
  capabilities: {},
  // K7, X7: a key answers the authenticator's activation, migration and recovery instead of an SMS token
  provesPossession: true,
  // docs/decisions/0014-security-keys.md: between the DSC+ and the mobile authenticator, with the authenticator's W1 row
  strength: 80,
  amr: ['hwk'],
  temporary: false,
  withdrawalRow: { perDayUsd: 1_000_000, fiveBusinessDaysUsd: 1_000_000 },

  async issueChallenge(ctx: DeviceContext): Promise<Challenge> {
    const params = paramsOf(ctx);
    const options = await simpleWebAuthn().generateAuthenticationOptions({
      rpID: ctx.relyingParty.rpId,
      allowCredentials: [{ id: params.credentialId, transports: params.transports as AuthenticatorTransport[] }],
      userVerification: 'preferred',
      timeout: SECURITY_KEY_TIMEOUT_MS,
    });
    return { prompt: { type: 'webauthn', options: options as unknown as Record<string, unknown> }, verifier: { challenge: options.challenge } };
  },

  async checkResponse(ctx: DeviceContext, verifier: Record<string, unknown>, response: string): Promise<CheckResult> {
    const challenge = String(verifier.challenge);
    const params = paramsOf(ctx);
    const assertion = parseAssertion(response);
    // another key's assertion (or no assertion) is a wrong answer
    if (!assertion || assertion.id !== params.credentialId) return { ok: false };
    const secret = ctx.secret<SecurityKeySecret>();
    let newCounter: number;
    try {
      const result = await simpleWebAuthn().verifyAuthenticationResponse({
        response: assertion,
        expectedChallenge: challenge,
        expectedOrigin: ctx.relyingParty.origin,
        expectedRPID: ctx.relyingParty.rpId,
        // the counter is judged below, where going back is told apart from standing still
        credential: { id: params.credentialId, publicKey: Buffer.from(secret.publicKey, 'base64url'), counter: 0 },
        requireUserVerification: false,
      });
      if (!result.verified) return { ok: false };
      newCounter = result.authenticationInfo.newCounter;
    } catch {
      return { ok: false };
    }
    if (secret.counter > 0 && newCounter <= secret.counter) {
      // a signature the key made before another it already made: two keys share the credential
      if (newCounter < secret.counter) await ctx.suspect('clone_suspected', { counter: newCounter, stored: secret.counter });
      return { ok: false };
    }
    return { ok: true, replayKeys: [`c:${challenge}`], secret: { ...secret, counter: newCounter } satisfies SecurityKeySecret };
  },
};
