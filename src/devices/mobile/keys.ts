/**
 * The server's half of the mobile authenticator's cryptography (K4, K13,
 * K14; docs/decisions/0004): the app's public keys are checked and used
 * here with node:crypto, in the exact formats of the app's WebCrypto code
 * (src/mobile-app/protocol.ts; a test holds the two to each other).
 */
import { createCipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import { SlsError } from '../../errors.js';
import { pinProblem } from '../../mobile-app/protocol.js';

export const MOBILE_SUITE = 'OCRA-1:HOTP-SHA256-8:QN08-PSHA256';
export const OCRA_KEY_INFO = 'sls-mobile-ocra/1';
export const MESSAGE_KEY_INFO = 'sls-mobile-message/1';
export const ANSWER_PREFIX = 'sls-push-answer/1';

export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

export interface SealedMessage {
  serverKey: PublicJwk;
  salt: string;
  nonce: string;
  ciphertext: string;
}

/** A coordinate of a P-256 point as RFC 7518 §6.2.1.2 writes it: 32 bytes, base64url without padding, and only so. */
const isCoordinate = (text: string): boolean => {
  const bytes = Buffer.from(text, 'base64url');
  return bytes.length === 32 && bytes.toString('base64url') === text;
};

/**
 * A P-256 public key from the app; VALIDATION_ERROR when it is not one (or not on the curve), or is written otherwise
 * than the app's WebCrypto exports it (a coordinate with a leading zero byte: node:crypto reads it, the app could not).
 */
export function publicKeyOf(jwk: PublicJwk, field: string): KeyObject {
  try {
    if (!isCoordinate(jwk.x) || !isCoordinate(jwk.y)) throw new Error('not 32 bytes');
    const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, format: 'jwk' });
    if (key.asymmetricKeyType !== 'ec') throw new Error('not EC');
    return key;
  } catch {
    throw new SlsError('VALIDATION_ERROR', { reason: 'public_key', field }, `${field} is not a P-256 public key`);
  }
}

function jwkOf(key: KeyObject): PublicJwk {
  const jwk = key.export({ format: 'jwk' });
  return { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! };
}

/** ECDH with a one-time server key, then HKDF-SHA-256: the key and what the phone needs to derive it too. */
function agree(phoneKey: PublicJwk, info: string): { key: Buffer; serverKey: PublicJwk; salt: Buffer } {
  const server = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const shared = diffieHellman({ privateKey: server.privateKey, publicKey: publicKeyOf(phoneKey, 'agreementKey') });
  const salt = randomBytes(16);
  const key = Buffer.from(hkdfSync('sha256', shared, salt, Buffer.from(info, 'utf8'), 32));
  return { key, serverKey: jwkOf(server.publicKey), salt };
}

/** K4: the challenge/response key agreed with the phone at activation. */
export function agreeOcraKey(agreementKey: PublicJwk): { seed: Buffer; serverKey: PublicJwk; salt: string } {
  const { key, serverKey, salt } = agree(agreementKey, OCRA_KEY_INFO);
  return { seed: key, serverKey, salt: salt.toString('base64url') };
}

/** K14: a message only the phone can read (AES-256-GCM under a key agreed with its agreement key). */
export function sealToPhone(agreementKey: PublicJwk, plaintext: string): SealedMessage {
  const { key, serverKey, salt } = agree(agreementKey, MESSAGE_KEY_INFO);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return { serverKey, salt: salt.toString('base64url'), nonce: nonce.toString('base64url'), ciphertext: ciphertext.toString('base64url') };
}

/**
 * K2, when a PIN is chosen: 4 to 6 characters (letters, digits, special
 * characters), at least one digit, not trivial — the app's own rule
 * (src/mobile-app/protocol.ts), so that the two never disagree.
 */
export function assertNewMobilePin(pin: string): void {
  const problem = pinProblem(pin);
  if (problem) throw new SlsError('INVALID_PIN', { reason: problem });
}

/** The P input of the suite: SHA-256 of the PIN, hex (of a PIN of the right shape; null otherwise). */
export function mobilePinHash(pin: string): string | null {
  const problem = pinProblem(pin);
  if (problem !== null && problem !== 'trivial') return null;
  return createHash('sha256').update(pin, 'utf8').digest('hex');
}

export type Decision = 'approve' | 'deny';

/** What the phone signs to answer a push request (K13). */
export function answerMessage(requestId: string, number: string, decision: Decision, proof: string): string {
  return [ANSWER_PREFIX, requestId, number, decision, proof].join('\n');
}

/** The WebAuthn challenge of a biometric approval: SHA-256 of the answer message, base64url. */
export function answerChallenge(message: string): string {
  return createHash('sha256').update(message, 'utf8').digest('base64url');
}

/** Whether the signature (ECDSA P-256 / SHA-256, r‖s, base64url) is the phone's over the message. */
export function verifyAnswer(signingKey: PublicJwk, message: string, signature: string): boolean {
  if (!/^[A-Za-z0-9_-]{80,100}$/.test(signature)) return false;
  try {
    return verify(
      'sha256',
      Buffer.from(message, 'utf8'),
      { key: publicKeyOf(signingKey, 'signingKey'), dsaEncoding: 'ieee-p1363' },
      Buffer.from(signature, 'base64url'),
    );
  } catch {
    return false;
  }
}
