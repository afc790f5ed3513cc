/**
 * Confirmation by fingerprint or face (K3, K12): a WebAuthn credential of
 * the phone's platform authenticator, registered at activation, and an
 * assertion with user verification for each approval. The server speaks
 * base64url (as @simplewebauthn names the fields); the browser speaks
 * ArrayBuffers: converted here by hand.
 */
import { fromBase64Url, toBase64Url } from './protocol.js';
import type { WebAuthnAssertion, WebAuthnCreationOptions, WebAuthnRegistration } from './api.js';

/** Whether this phone can confirm with fingerprint or face (a user-verifying platform authenticator). */
export async function biometricAvailable(): Promise<boolean> {
  try {
    if (typeof PublicKeyCredential === 'undefined' || !navigator.credentials) return false;
    return await PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable();
  } catch {
    return false;
  }
}

/** Registers a platform credential with the server's options (navigator.credentials.create). */
export async function createCredential(options: WebAuthnCreationOptions): Promise<WebAuthnRegistration> {
  // what a WebAuthn library may add to the contract's options: credentials to leave out, extensions
  const extra = options as WebAuthnCreationOptions & {
    excludeCredentials?: { id: string; type: 'public-key'; transports?: AuthenticatorTransport[] }[];
    extensions?: AuthenticationExtensionsClientInputs;
  };
  const publicKey: PublicKeyCredentialCreationOptions = {
    challenge: fromBase64Url(options.challenge),
    rp: { ...(options.rp.id ? { id: options.rp.id } : {}), name: options.rp.name },
    user: { id: fromBase64Url(options.user.id), name: options.user.name, displayName: options.user.displayName },
    pubKeyCredParams: options.pubKeyCredParams.map((p) => ({ type: p.type, alg: p.alg })),
    ...(options.timeout ? { timeout: options.timeout } : {}),
    ...(options.authenticatorSelection ? { authenticatorSelection: { ...options.authenticatorSelection } } : {}),
    ...(options.attestation ? { attestation: options.attestation } : {}),
    ...(extra.excludeCredentials
      ? {
          excludeCredentials: extra.excludeCredentials.map((c) => ({
            type: c.type,
            id: fromBase64Url(c.id),
            ...(c.transports ? { transports: c.transports } : {}),
          })),
        }
      : {}),
    ...(extra.extensions ? { extensions: extra.extensions } : {}),
  };
  const credential = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential | null;
  if (!credential) throw new DOMException('no credential', 'NotAllowedError');
  const response = credential.response as AuthenticatorAttestationResponse;
  const transports = typeof response.getTransports === 'function' ? response.getTransports() : undefined;
  return {
    id: credential.id,
    rawId: toBase64Url(credential.rawId),
    type: 'public-key',
    response: {
      clientDataJSON: toBase64Url(response.clientDataJSON),
      attestationObject: toBase64Url(response.attestationObject),
      ...(transports ? { transports } : {}),
    },
    clientExtensionResults: { ...credential.getClientExtensionResults() } as Record<string, unknown>,
    ...(credential.authenticatorAttachment ? { authenticatorAttachment: credential.authenticatorAttachment } : {}),
  };
}

/** An assertion with user verification over a challenge (base64url), by the credential registered at activation. */
export function getAssertion(credentialId: string, challenge: string, rpId: string | null): Promise<WebAuthnAssertion> {
  return assertion({
    challenge: fromBase64Url(challenge),
    allowCredentials: [{ type: 'public-key', id: fromBase64Url(credentialId) }],
    userVerification: 'required',
    timeout: 60_000,
    ...(rpId ? { rpId } : {}),
  });
}

/** K7, D6: a security key's assertion for the options of the server's challenge (navigator.credentials.get, base64url fields). */
export function securityKeyAssertion(options: Record<string, unknown>): Promise<WebAuthnAssertion> {
  const allowed = Array.isArray(options.allowCredentials) ? (options.allowCredentials as { id: string; transports?: AuthenticatorTransport[] }[]) : [];
  return assertion({
    challenge: fromBase64Url(String(options.challenge)),
    allowCredentials: allowed.map((c) => ({ type: 'public-key', id: fromBase64Url(c.id), ...(c.transports ? { transports: c.transports } : {}) })),
    userVerification: (options.userVerification as UserVerificationRequirement | undefined) ?? 'preferred',
    ...(typeof options.timeout === 'number' ? { timeout: options.timeout } : {}),
    ...(typeof options.rpId === 'string' ? { rpId: options.rpId } : {}),
  });
}

async function assertion(publicKey: PublicKeyCredentialRequestOptions): Promise<WebAuthnAssertion> {
  const credential = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential | null;
  if (!credential) throw new DOMException('no credential', 'NotAllowedError');
  const response = credential.response as AuthenticatorAssertionResponse;
  return {
    id: credential.id,
    rawId: toBase64Url(credential.rawId),
    type: 'public-key',
    response: {
      clientDataJSON: toBase64Url(response.clientDataJSON),
      authenticatorData: toBase64Url(response.authenticatorData),
      signature: toBase64Url(response.signature),
      ...(response.userHandle ? { userHandle: toBase64Url(response.userHandle) } : {}),
    },
    clientExtensionResults: { ...credential.getClientExtensionResults() } as Record<string, unknown>,
    ...(credential.authenticatorAttachment ? { authenticatorAttachment: credential.authenticatorAttachment } : {}),
  };
}
