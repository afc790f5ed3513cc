/**
 * The mobile authenticator's side of the protocol (K1, K3, K4, K13, K14):
 * what the app computes with keys that never leave the phone. It uses only
 * WebCrypto, so the same code runs in the installable web app and, in the
 * tests, in Node as a second phone.
 *
 * Keys, generated on the phone as non-extractable WebCrypto keys:
 * - an ECDSA P-256 signing key: every answer to a push request is a
 *   signature over the request's id, the number the user typed and the
 *   decision (K13);
 * - an ECDH P-256 agreement key: with the server's key it derives the
 *   HMAC key of the offline challenge/response (K4, OCRA, RFC 6287), and
 *   it opens the messages sealed to the phone (temporary passwords, K14).
 *
 * The server keeps the public keys, the derived HMAC key (sealed, D5) and
 * the SHA-256 of the PIN, which is part of every response (the OCRA P
 * input): a wrong PIN gives a wrong response, which the server counts
 * towards the lock (L3), so the PIN cannot be guessed on a stolen phone.
 */

/** The OCRA suite of the app's challenge/response: 8-digit challenge and response, PIN folded in. */
export const MOBILE_SUITE = 'OCRA-1:HOTP-SHA256-8:QN08-PSHA256';
export const MOBILE_CHALLENGE_DIGITS = 8;
/** HKDF info of the challenge/response key. */
export const OCRA_KEY_INFO = 'sls-mobile-ocra/1';
/** HKDF info of the key that seals a message to the phone (K14). */
export const MESSAGE_KEY_INFO = 'sls-mobile-message/1';
/** First line of the signed answer to a push request. */
export const ANSWER_PREFIX = 'sls-push-answer/1';

type Subtle = typeof crypto.subtle;
/** A WebCrypto key, as both the DOM and Node typings name it. */
export type AppKey = Awaited<ReturnType<Subtle['importKey']>>;

/** A P-256 public key as JWK. */
export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

/**
 * K2: PINs anyone would try first: the commonest 4- and 6-digit PINs
 * (published analyses of leaked PIN sets) and patterns on a keypad.
 * Repetitions, runs of digits and years are refused by rule, below.
 */
const COMMON_PINS = new Set([
  '1004',
  '6969',
  '1122',
  '1313',
  '2580',
  '0852',
  '1470',
  '0741',
  '3690',
  '0963',
  '1379',
  '7913',
  '1397',
  '1593',
  '3571',
  '7531',
  '9513',
  '5683',
  '112233',
  '159753',
  '147258',
  '258369',
  '369258',
  '357951',
  '789456',
  '456123',
  '321654',
  '102030',
  '101010',
  '520520',
  '520131',
  '131420',
]);

/** A run of consecutive digits, up or down (1234, 3210, 456789). */
function isDigitRun(pin: string): boolean {
  if (!/^\d+$/.test(pin)) return false;
  const steps = new Set([...pin].slice(1).map((c, i) => (Number(c) - Number(pin[i]!) + 10) % 10));
  return steps.size === 1 && (steps.has(1) || steps.has(9));
}

/** A trivial PIN (K2): one character or a short group repeated (1111, 1212, 123123), a run of digits, a year, or a common PIN. */
export function isTrivialPin(pin: string): boolean {
  const lower = pin.toLowerCase();
  return /^(.+)\1+$/.test(lower) || isDigitRun(lower) || /^(19|20)\d\d$/.test(lower) || COMMON_PINS.has(lower);
}

/** K2: 4 to 6 characters, letters, digits and special characters, at least one digit, not trivial. */
export function pinProblem(pin: string): 'length' | 'digit' | 'characters' | 'trivial' | null {
  const characters = [...pin];
  if (characters.length < 4 || characters.length > 6) return 'length';
  if (!/^[\x21-\x7e]+$/.test(pin)) return 'characters';
  if (!/\d/.test(pin)) return 'digit';
  if (isTrivialPin(pin)) return 'trivial';
  return null;
}

const encoder = new TextEncoder();

export function toBase64Url(data: ArrayBuffer | ArrayBufferView): string {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function publicJwk(jwk: { x?: string; y?: string }): PublicJwk {
  return { kty: 'EC', crv: 'P-256', x: jwk.x ?? '', y: jwk.y ?? '' };
}

/** The keys of one user's activation on this phone. */
export interface PhoneKeys {
  signing: { privateKey: AppKey; publicKey: AppKey };
  agreement: { privateKey: AppKey; publicKey: AppKey };
}

/** New key pairs; the private halves cannot be exported, not even by the app. */
export async function generatePhoneKeys(): Promise<PhoneKeys> {
  const signing = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as PhoneKeys['signing'];
  const agreement = (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveKey', 'deriveBits'])) as PhoneKeys['agreement'];
  return { signing, agreement };
}

/** The public halves, sent to the server at activation. */
export async function publicKeys(keys: PhoneKeys): Promise<{ signingKey: PublicJwk; agreementKey: PublicJwk }> {
  return {
    signingKey: publicJwk(await crypto.subtle.exportKey('jwk', keys.signing.publicKey)),
    agreementKey: publicJwk(await crypto.subtle.exportKey('jwk', keys.agreement.publicKey)),
  };
}

/** A key derived from the phone's agreement key and a server key: ECDH, then HKDF-SHA-256. */
async function agreedKey(privateKey: AppKey, serverKey: PublicJwk, salt: Uint8Array<ArrayBuffer>, info: string, use: 'hmac' | 'aes'): Promise<AppKey> {
  const peer = await crypto.subtle.importKey('jwk', serverKey, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: peer }, privateKey, 256);
  const base = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  const params = { name: 'HKDF', hash: 'SHA-256', salt, info: encoder.encode(info) };
  return use === 'hmac'
    ? crypto.subtle.deriveKey(params, base, { name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign'])
    : crypto.subtle.deriveKey(params, base, { name: 'AES-GCM', length: 256 }, false, ['decrypt']);
}

/** The challenge/response key agreed at activation with the server's key and salt. */
export function deriveOcraKey(agreementPrivateKey: AppKey, serverKey: PublicJwk, salt: string): Promise<AppKey> {
  return agreedKey(agreementPrivateKey, serverKey, fromBase64Url(salt), OCRA_KEY_INFO, 'hmac');
}

/** SHA-256 of the PIN: the P input of the suite. */
export async function pinHash(pin: string): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(pin)));
}

/** The 128-byte question block of a numeric challenge (RFC 6287 §5.1). */
function numericQuestion(question: string): Uint8Array<ArrayBuffer> {
  const hex = BigInt(question).toString(16).padEnd(256, '0');
  const bytes = new Uint8Array(128);
  for (let i = 0; i < 128; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/**
 * K4: the response string to a challenge, with the PIN folded in
 * (OCRA-1:HOTP-SHA256-8:QN08-PSHA256). Works offline.
 */
export async function ocraResponse(ocraKey: AppKey, question: string, pin: string): Promise<string> {
  if (!/^\d{1,8}$/.test(question)) throw new Error('the challenge has up to 8 digits');
  const suite = encoder.encode(MOBILE_SUITE);
  const p = await pinHash(pin);
  const q = numericQuestion(question);
  const message = new Uint8Array(suite.length + 1 + q.length + p.length);
  message.set(suite, 0);
  message.set(q, suite.length + 1);
  message.set(p, suite.length + 1 + q.length);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', ocraKey, message));
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = ((mac[offset]! & 0x7f) << 24) | (mac[offset + 1]! << 16) | (mac[offset + 2]! << 8) | mac[offset + 3]!;
  return String(binary % 10 ** 8).padStart(8, '0');
}

export type Decision = 'approve' | 'deny';

/** What a push answer signs (K13): the request, the number typed, the decision and the PIN proof. */
export function answerMessage(requestId: string, number: string, decision: Decision, proof: string): string {
  return [ANSWER_PREFIX, requestId, number, decision, proof].join('\n');
}

/** What crosses the activation's two steps: the phone that proved the token finishes with the same keys (issue 16 item 3). */
export const ACTIVATION_PREFIX = 'sls-activation/1';

/** What the phone signs to finish an activation it proved: the activation's id. */
export function activationMessage(activationId: string): string {
  return [ACTIVATION_PREFIX, activationId].join('\n');
}

/** The WebAuthn challenge of a biometric approval: SHA-256 of the answer message, base64url. */
export async function answerChallenge(message: string): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(message))));
}

/** ECDSA P-256 / SHA-256 signature over the message, r‖s, base64url. */
export async function signAnswer(signingPrivateKey: AppKey, message: string): Promise<string> {
  const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, signingPrivateKey, encoder.encode(message));
  return toBase64Url(new Uint8Array(signature));
}

/** A message sealed to the phone (K14): the server's one-time key, a nonce and AES-GCM ciphertext. */
export interface SealedMessage {
  serverKey: PublicJwk;
  salt: string;
  nonce: string;
  ciphertext: string;
}

/** Opens a message sealed to this phone's agreement key; only this phone can. */
export async function openMessage(agreementPrivateKey: AppKey, sealed: SealedMessage): Promise<string> {
  const key = await agreedKey(agreementPrivateKey, sealed.serverKey, fromBase64Url(sealed.salt), MESSAGE_KEY_INFO, 'aes');
  const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64Url(sealed.nonce) }, key, fromBase64Url(sealed.ciphertext));
  return new TextDecoder().decode(plain);
}
