/**
 * PSKC importer (RFC 6030, Portable Symmetric Key Container) for batches of
 * devices: DSC+ and legacy DSC challenge/response cards (OCRA) and the
 * legacy Platinum and Gold one-time-password tokens (HOTP, TOTP). Each key
 * keeps its algorithm; the kind it makes is decided by the registered kinds
 * (`DeviceKind.stock`, D1).
 *
 * Supported:
 * - key algorithms `urn:ietf:params:xml:ns:keyprov:pskc:hotp`, `…:totp`
 *   (`#` or `:` before the name, any case), and OCRA: `…pskc#ocra` / `…:ocra`
 *   with a `<Suite>`, or the suite in the URI (`…#OCRA-1:HOTP-SHA1-8:QN06`);
 * - several keys under one serial (several `<Key>` in a `KeyPackage`, as
 *   python-pskc writes them, or several `KeyPackage`s with one `SerialNo`);
 *   a key Id may appear once per serial;
 * - `Data/Counter`, `Time`, `TimeInterval`, `TimeDrift` as PlainValue or
 *   EncryptedValue (an encrypted integer: ASCII digits, otherwise big-endian
 *   bytes — python-pskc's reading);
 * - documents in UTF-8 or UTF-16 (`decodePskc` reads the bytes: BOM, or the
 *   zero bytes of `<?xml` without one);
 * - namespaced or prefix-free documents (namespace prefixes are stripped, so
 *   `pskc:`, `xenc:`, `ds:`, `pkcs5:` and `xenc11:` elements are all found by
 *   their local names);
 * - `Data/Secret/PlainValue` (base64);
 * - `Data/Secret/EncryptedValue` with xmlenc aes128-cbc, aes192-cbc and
 *   aes256-cbc (CipherValue = base64(IV || ciphertext), PKCS#7 padding) under
 *   a pre-shared key (§6.1) or a PBKDF2 password-derived key (§6.2);
 * - `MACMethod` hmac-sha1/sha256/sha384/sha512 with an encrypted `MACKey`:
 *   every encrypted value must carry a `ValueMAC` over its CipherValue bytes
 *   (§6.1.1), checked before decryption.
 *
 * Every problem is an `INVALID_PSKC` SlsError whose `reason` is one of the
 * short strings in `REASONS`. Secret bytes never appear in an error.
 */
import { createDecipheriv, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { lazyPackage } from '../../lazy-package.js';
import { SlsError, isSlsError } from '../../errors.js';
import { parseOcraSuite } from '../../crypto/ocra.js';
import type { ImportedKey } from '../types.js';

/** A key of a PSKC file (the suite of an OCRA key is validated; see `ImportedKey`). */
export type PskcKey = ImportedKey;

export interface PskcDecryption {
  /** Pre-shared transport key (EncryptionKey/KeyName), 16, 24 or 32 bytes. */
  preSharedKey?: Buffer;
  /** Password for an EncryptionKey/DerivedKey (PBKDF2). */
  password?: string;
}

/** The `reason` values an INVALID_PSKC error can carry. */
export const REASONS = {
  notXml: 'not XML',
  dtd: 'DTD not allowed',
  notContainer: 'not a PSKC KeyContainer',
  version: 'unsupported version',
  noPackage: 'no KeyPackage',
  duplicateElement: 'duplicate element',
  missingSerial: 'missing serial',
  missingKey: 'missing key',
  missingKeyId: 'missing key id',
  missingSecret: 'missing secret',
  duplicateKey: 'duplicate key',
  keyRequired: 'pre-shared key required',
  passwordRequired: 'password required',
  keyLength: 'wrong key length',
  wrongKey: 'wrong key',
  missingMac: 'missing MAC',
  macMismatch: 'MAC mismatch',
  unsupportedAlgorithm: 'unsupported algorithm',
  invalidSuite: 'invalid OCRA suite',
  invalidValue: 'invalid value',
  weakSecret: 'weak secret',
} as const;

type Reason = (typeof REASONS)[keyof typeof REASONS];
type HmacHash = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
type XmlNode = Record<string, unknown>;

interface Cipher {
  name: 'aes-128-cbc' | 'aes-192-cbc' | 'aes-256-cbc';
  keyBytes: number;
}

interface MacMethod {
  hash: HmacHash;
  key: Buffer;
}

/** What is needed to open encrypted values in one document. */
interface Keys {
  encryptionKey: Buffer;
  mac: MacMethod | undefined;
}

interface Pbkdf2Params {
  salt: Buffer;
  iterations: number;
  keyLength: number | undefined;
  hash: HmacHash;
}

const PSKC_VERSION = '1.0';
const AES_BLOCK_BYTES = 16;
/** Bounds the work a hostile file can ask for (PBKDF2-HMAC-SHA1 at 10^7 rounds takes a few seconds). */
const MAX_PBKDF2_ITERATIONS = 10_000_000;

const OCRA_PREFIX = 'OCRA-1';

/** What a key algorithm URI names: the one-time-password and challenge/response families. */
export type PskcAlgorithm = ImportedKey['family'];

/** The family of a key algorithm URI, or null when it is none this server knows. */
export function pskcAlgorithm(uri: string): PskcAlgorithm | null {
  const name = /[#:]([^#:]+)$/.exec(uri)?.[1]?.toLowerCase();
  if (name === 'hotp' || name === 'totp' || name === 'ocra') return name;
  return isOcraUri(uri) ? 'ocra' : null;
}

const CIPHERS: Readonly<Record<string, Cipher>> = {
  'http://www.w3.org/2001/04/xmlenc#aes128-cbc': { name: 'aes-128-cbc', keyBytes: 16 },
  'http://www.w3.org/2001/04/xmlenc#aes192-cbc': { name: 'aes-192-cbc', keyBytes: 24 },
  'http://www.w3.org/2001/04/xmlenc#aes256-cbc': { name: 'aes-256-cbc', keyBytes: 32 },
};

const HMACS: Readonly<Record<string, HmacHash>> = {
  'http://www.w3.org/2000/09/xmldsig#hmac-sha1': 'sha1',
  'http://www.w3.org/2000/09/xmldsig#hmac-sha256': 'sha256',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha224': 'sha224',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha256': 'sha256',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha384': 'sha384',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha512': 'sha512',
  'http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#hmac-sha1': 'sha1',
};

const KDF_PBKDF2 = 'http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2';

const TEXT = '#text';
const ATTR = '@_';

const xmlPackage = lazyPackage<typeof import('fast-xml-parser')>('fast-xml-parser');
let xmlParser: import('fast-xml-parser').XMLParser | undefined;

/** The parser, made on the first import (the package loads then: lazy-package.ts). */
const parser = (): import('fast-xml-parser').XMLParser =>
  (xmlParser ??= new (xmlPackage().XMLParser)({
    ignoreAttributes: false,
    attributeNamePrefix: ATTR,
    textNodeName: TEXT,
    removeNSPrefix: true,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    alwaysCreateTextNode: true,
    ignoreDeclaration: true,
    ignorePiTags: true,
    // Every element becomes an array of objects, so one and many look alike.
    isArray: (_name: string, _path: unknown, _leaf: boolean, isAttribute: boolean): boolean => !isAttribute,
  }));

// ---------------------------------------------------------------------------
// errors

function invalid(reason: Reason, detail: string, extra: Record<string, string | number> = {}): SlsError {
  return new SlsError('INVALID_PSKC', { reason, ...extra }, `invalid PSKC: ${reason}: ${detail}`);
}

// ---------------------------------------------------------------------------
// XML access

function isNode(value: unknown): value is XmlNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** All child elements called `name` (local name). */
function children(node: XmlNode, name: string): XmlNode[] {
  if (!Object.hasOwn(node, name)) return [];
  const value = node[name];
  return Array.isArray(value) ? value.filter(isNode) : [];
}

/** The child element `name`, or undefined; more than one is an error. */
function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  if (node === undefined) return undefined;
  const found = children(node, name);
  if (found.length > 1) throw invalid(REASONS.duplicateElement, `more than one <${name}>`, { element: name });
  return found[0];
}

/** Follows a path of single child elements. */
function path(node: XmlNode | undefined, ...names: string[]): XmlNode | undefined {
  return names.reduce<XmlNode | undefined>((current, name) => child(current, name), node);
}

/** Trimmed text content, or undefined when absent or empty. */
function text(node: XmlNode | undefined): string | undefined {
  const value = node?.[TEXT];
  if (typeof value !== 'string') return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function attribute(node: XmlNode | undefined, name: string): string | undefined {
  const key = ATTR + name;
  if (node === undefined || !Object.hasOwn(node, key)) return undefined;
  const value = node[key];
  if (typeof value !== 'string') return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

/** Parses the document and returns its KeyContainer element. */
function parseContainer(xml: string): XmlNode {
  const source = xml.replace(/^\uFEFF/, '');
  if (/<!DOCTYPE/i.test(source)) throw invalid(REASONS.dtd, 'document type declarations are refused');
  if (xmlPackage().XMLValidator.validate(source) !== true) throw invalid(REASONS.notXml, 'document is not well-formed XML');
  let document: unknown;
  try {
    document = parser().parse(source);
  } catch (e) {
    throw invalid(REASONS.notXml, `XML parser failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isNode(document)) throw invalid(REASONS.notXml, 'no document element');
  const roots = Object.keys(document);
  if (roots.length !== 1 || roots[0] !== 'KeyContainer') {
    throw invalid(REASONS.notContainer, `document element is <${roots.join('>, <')}>`);
  }
  const containers = children(document, 'KeyContainer');
  if (containers.length !== 1) throw invalid(REASONS.notContainer, 'expected exactly one KeyContainer');
  return containers[0]!;
}

// ---------------------------------------------------------------------------
// values

/** Strict base64 (whitespace allowed between groups, as in the RFC figures). */
function decodeBase64(value: string, what: string): Buffer {
  const compact = value.replace(/\s+/g, '');
  const valid = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact);
  if (!valid) throw invalid(REASONS.invalidValue, `${what} is not base64`);
  return Buffer.from(compact, 'base64');
}

function parseUnsigned(value: string, what: string): number {
  const parsed = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed)) throw invalid(REASONS.invalidValue, `${what} is not a non-negative integer`);
  return parsed;
}

function lookupCipher(uri: string | undefined, where: string): Cipher {
  const cipher = uri === undefined ? undefined : CIPHERS[uri];
  if (cipher === undefined) {
    throw invalid(REASONS.unsupportedAlgorithm, `${where}: encryption method ${uri ?? '(none)'}`);
  }
  return cipher;
}

function lookupHmac(uri: string | undefined, where: string): HmacHash {
  const hash = uri === undefined ? undefined : HMACS[uri];
  if (hash === undefined) throw invalid(REASONS.unsupportedAlgorithm, `${where}: MAC algorithm ${uri ?? '(none)'}`);
  return hash;
}

/** An xenc EncryptedData-like element: its cipher and the CipherValue bytes (IV || ciphertext). */
interface Encrypted {
  cipher: Cipher;
  cipherValue: Buffer;
}

function readEncrypted(node: XmlNode, where: string): Encrypted {
  const cipher = lookupCipher(attribute(child(node, 'EncryptionMethod'), 'Algorithm'), where);
  const value = text(path(node, 'CipherData', 'CipherValue'));
  if (value === undefined) throw invalid(REASONS.invalidValue, `${where}: no CipherData/CipherValue`);
  const cipherValue = decodeBase64(value, `${where} CipherValue`);
  const bodyBytes = cipherValue.length - AES_BLOCK_BYTES;
  if (bodyBytes < AES_BLOCK_BYTES || bodyBytes % AES_BLOCK_BYTES !== 0) {
    throw invalid(REASONS.invalidValue, `${where}: CipherValue is not IV plus whole AES blocks`);
  }
  return { cipher, cipherValue };
}

/** AES-CBC with PKCS#7 padding; a padding failure means the key is wrong (or the data corrupt). */
function decrypt(encrypted: Encrypted, key: Buffer, where: string): Buffer {
  if (key.length !== encrypted.cipher.keyBytes) {
    throw invalid(REASONS.keyLength, `${where}: ${encrypted.cipher.name} needs a ${encrypted.cipher.keyBytes}-byte key`);
  }
  const iv = encrypted.cipherValue.subarray(0, AES_BLOCK_BYTES);
  const body = encrypted.cipherValue.subarray(AES_BLOCK_BYTES);
  try {
    const decipher = createDecipheriv(encrypted.cipher.name, key, iv);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    throw invalid(REASONS.wrongKey, `${where}: decryption failed (bad padding)`);
  }
}

function verifyMac(encrypted: Encrypted, mac: MacMethod, valueMac: string | undefined, where: string): void {
  if (valueMac === undefined) throw invalid(REASONS.missingMac, `${where}: MACMethod is present but ValueMAC is missing`);
  const expected = decodeBase64(valueMac, `${where} ValueMAC`);
  const actual = createHmac(mac.hash, mac.key).update(encrypted.cipherValue).digest();
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
    throw invalid(REASONS.macMismatch, `${where}: ValueMAC does not match`);
  }
}

// ---------------------------------------------------------------------------
// encryption key and MAC key (KeyContainer level)

function readPbkdf2Params(derivedKey: XmlNode): Pbkdf2Params {
  const method = child(derivedKey, 'KeyDerivationMethod');
  const kdf = attribute(method, 'Algorithm');
  if (kdf !== KDF_PBKDF2) throw invalid(REASONS.unsupportedAlgorithm, `key derivation method ${kdf ?? '(none)'}`);
  const params = child(method, 'PBKDF2-params');
  const salt = text(path(params, 'Salt', 'Specified'));
  if (salt === undefined) throw invalid(REASONS.invalidValue, 'PBKDF2-params: no Salt/Specified');
  const iterationText = text(child(params, 'IterationCount'));
  if (iterationText === undefined) throw invalid(REASONS.invalidValue, 'PBKDF2-params: no IterationCount');
  const iterations = parseUnsigned(iterationText, 'PBKDF2 IterationCount');
  if (iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
    throw invalid(REASONS.invalidValue, `PBKDF2 IterationCount must be 1-${MAX_PBKDF2_ITERATIONS}`);
  }
  const keyLengthText = text(child(params, 'KeyLength'));
  const prf = attribute(child(params, 'PRF'), 'Algorithm');
  return {
    salt: decodeBase64(salt, 'PBKDF2 Salt'),
    iterations,
    keyLength: keyLengthText === undefined ? undefined : parseUnsigned(keyLengthText, 'PBKDF2 KeyLength'),
    hash: prf === undefined ? 'sha1' : lookupHmac(prf, 'PBKDF2 PRF'),
  };
}

function deriveKey(params: Pbkdf2Params, password: string, keyBytes: number): Buffer {
  const length = params.keyLength ?? keyBytes;
  if (length !== keyBytes) throw invalid(REASONS.keyLength, `PBKDF2 KeyLength ${length} does not fit a ${keyBytes}-byte cipher key`);
  return pbkdf2Sync(Buffer.from(password, 'utf8'), params.salt, params.iterations, length, params.hash);
}

/** The transport key, from EncryptionKey (DerivedKey → password, otherwise the pre-shared key). */
function resolveEncryptionKey(container: XmlNode, decryption: PskcDecryption, keyBytes: number): Buffer {
  const derivedKey = path(container, 'EncryptionKey', 'DerivedKey');
  if (derivedKey !== undefined) {
    const params = readPbkdf2Params(derivedKey);
    if (decryption.password === undefined) throw invalid(REASONS.passwordRequired, 'values are encrypted under a password-derived key');
    return deriveKey(params, decryption.password, keyBytes);
  }
  if (decryption.preSharedKey === undefined) throw invalid(REASONS.keyRequired, 'values are encrypted under a pre-shared key');
  return decryption.preSharedKey;
}

function resolveMac(container: XmlNode, encryptionKey: Buffer): MacMethod | undefined {
  const method = child(container, 'MACMethod');
  if (method === undefined) return undefined;
  const hash = lookupHmac(attribute(method, 'Algorithm'), 'MACMethod');
  const macKey = child(method, 'MACKey');
  if (macKey === undefined) throw invalid(REASONS.unsupportedAlgorithm, 'MACMethod without MACKey (MACKeyReference is not supported)');
  return { hash, key: decrypt(readEncrypted(macKey, 'MACKey'), encryptionKey, 'MACKey') };
}

/** The single cipher key size the document needs (MACKey and all encrypted secrets share one key). */
function requiredKeyBytes(container: XmlNode, encryptedSecrets: XmlNode[]): number {
  const macKey = path(container, 'MACMethod', 'MACKey');
  const nodes = macKey === undefined ? encryptedSecrets : [macKey, ...encryptedSecrets];
  const sizes = new Set(nodes.map((node) => lookupCipher(attribute(child(node, 'EncryptionMethod'), 'Algorithm'), 'EncryptedValue').keyBytes));
  if (sizes.size !== 1) throw invalid(REASONS.keyLength, 'encrypted values use ciphers with different key sizes');
  return [...sizes][0]!;
}

function resolveKeys(container: XmlNode, packages: XmlNode[], decryption: PskcDecryption): Keys | undefined {
  const encryptedSecrets = packages.flatMap((pkg) =>
    children(pkg, 'Key').flatMap((key) =>
      ['Secret', ...Object.keys(INTEGER_DATA)].flatMap((name) => {
        const encrypted = path(key, 'Data', name, 'EncryptedValue');
        return encrypted === undefined ? [] : [encrypted];
      }),
    ),
  );
  if (encryptedSecrets.length === 0) return undefined;
  const encryptionKey = resolveEncryptionKey(container, decryption, requiredKeyBytes(container, encryptedSecrets));
  return { encryptionKey, mac: resolveMac(container, encryptionKey) };
}

// ---------------------------------------------------------------------------
// one KeyPackage

/** An EncryptedValue of a data element (`holder`: the element with its ValueMAC), MAC checked, decrypted. */
function openEncrypted(holder: XmlNode, encryptedNode: XmlNode, keys: Keys | undefined, where: string): Buffer {
  if (keys === undefined) throw invalid(REASONS.keyRequired, `${where}: no decryption key`);
  const encrypted = readEncrypted(encryptedNode, where);
  const valueMac = text(child(holder, 'ValueMAC'));
  if (keys.mac !== undefined) verifyMac(encrypted, keys.mac, valueMac, where);
  else if (valueMac !== undefined) throw invalid(REASONS.missingMac, `${where}: ValueMAC present but no MACMethod`);
  return decrypt(encrypted, keys.encryptionKey, where);
}

function readSecret(data: XmlNode | undefined, keys: Keys | undefined, where: string): Buffer {
  const secret = child(data, 'Secret');
  const plain = text(child(secret, 'PlainValue'));
  const encryptedNode = child(secret, 'EncryptedValue');
  if (plain !== undefined && encryptedNode !== undefined) {
    throw invalid(REASONS.invalidValue, `${where}: Secret has both PlainValue and EncryptedValue`);
  }
  let value: Buffer;
  if (encryptedNode !== undefined) {
    value = openEncrypted(secret!, encryptedNode, keys, where);
  } else if (plain !== undefined) {
    value = decodeBase64(plain, `${where} Secret/PlainValue`);
  } else {
    throw invalid(REASONS.missingSecret, `${where}: no Data/Secret/PlainValue or EncryptedValue`);
  }
  if (value.length === 0) throw invalid(REASONS.missingSecret, `${where}: the secret is empty`);
  return value;
}

/** The data elements holding integers (RFC 6030 §4.1), and whether they may be negative. */
const INTEGER_DATA = { Counter: false, Time: false, TimeInterval: false, TimeDrift: true } as const;
type IntegerData = keyof typeof INTEGER_DATA;

/** An encrypted integer's plaintext: ASCII digits, otherwise big-endian bytes (python-pskc's reading). */
function integerFromBytes(bytes: Buffer, where: string): number {
  if (bytes.length > 0 && /^\d+$/.test(bytes.toString('latin1'))) return parseUnsigned(bytes.toString('latin1'), where);
  if (bytes.length === 0 || bytes.length > 8) throw invalid(REASONS.invalidValue, `${where} is not an integer`);
  const value = bytes.reduce((sum, byte) => sum * 256n + BigInt(byte), 0n);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(REASONS.invalidValue, `${where} is too large`);
  return Number(value);
}

/** Data/Counter, Time, TimeInterval or TimeDrift: plain or encrypted (MAC checked like the secret's). */
function readInteger(data: XmlNode | undefined, name: IntegerData, keys: Keys | undefined, where: string): number | undefined {
  const element = child(data, name);
  if (element === undefined) return undefined;
  const what = `${where} ${name}`;
  const encryptedNode = child(element, 'EncryptedValue');
  const plain = text(child(element, 'PlainValue'));
  if (plain !== undefined && encryptedNode !== undefined) throw invalid(REASONS.invalidValue, `${what} has both PlainValue and EncryptedValue`);
  if (encryptedNode !== undefined) return integerFromBytes(openEncrypted(element, encryptedNode, keys, what), what);
  if (plain === undefined) return undefined;
  if (INTEGER_DATA[name] && plain.startsWith('-')) return -parseUnsigned(plain.slice(1), what);
  return parseUnsigned(plain, what);
}

/** The `OCRA-1:…` suite at the end of an algorithm URI (after `#` or `:`), if any. */
function suiteFromUri(algorithm: string): string | undefined {
  const match = /(?:^|[#:])(OCRA-1:.+)$/.exec(algorithm);
  return match?.[1];
}

function isOcraUri(algorithm: string): boolean {
  return suiteFromUri(algorithm) !== undefined || /(?:^|[#:])OCRA-1$/.test(algorithm);
}

/** The OCRA suite for an OCRA key (required and validated); for HOTP and TOTP, the `<Suite>` as written (the hash). */
function readSuite(algorithm: string, parameters: XmlNode | undefined, where: string): string | undefined {
  const family = pskcAlgorithm(algorithm);
  if (family === null) throw invalid(REASONS.unsupportedAlgorithm, `${where}: key algorithm ${algorithm}`);
  if (family !== 'ocra') return text(child(parameters, 'Suite'));
  const fromUri = suiteFromUri(algorithm);
  const fromElement = text(child(parameters, 'Suite'));
  if (fromUri !== undefined && fromElement !== undefined && fromUri !== fromElement) {
    throw invalid(REASONS.invalidSuite, `${where}: Algorithm URI suite ${fromUri} differs from <Suite> ${fromElement}`);
  }
  const suite = fromElement ?? fromUri;
  if (suite === undefined || !suite.startsWith(`${OCRA_PREFIX}:`)) {
    throw invalid(REASONS.invalidSuite, `${where}: OCRA key without a suite`);
  }
  try {
    parseOcraSuite(suite);
  } catch (e) {
    if (isSlsError(e)) throw invalid(REASONS.invalidSuite, `${where}: ${e.message}`, { suite });
    throw e;
  }
  return suite;
}

function readResponseLength(parameters: XmlNode | undefined, where: string): number | undefined {
  const length = attribute(child(parameters, 'ResponseFormat'), 'Length');
  return length === undefined ? undefined : parseUnsigned(length, `${where} ResponseFormat@Length`);
}

function readPackage(pkg: XmlNode, index: number, keys: Keys | undefined): PskcKey[] {
  const device = child(pkg, 'DeviceInfo');
  const serial = text(child(device, 'SerialNo'));
  if (serial === undefined) throw invalid(REASONS.missingSerial, `KeyPackage #${index}: no DeviceInfo/SerialNo`, { index });
  const where = `KeyPackage #${index} (serial ${serial})`;
  const found = children(pkg, 'Key');
  if (found.length === 0) throw invalid(REASONS.missingKey, `${where}: no Key`, { serial });
  return found.map((key, k) => readKey(device, serial, key, found.length > 1 ? `${where} key #${k + 1}` : where, keys));
}

function readKey(device: XmlNode | undefined, serial: string, key: XmlNode, where: string, keys: Keys | undefined): PskcKey {
  const keyId = attribute(key, 'Id');
  if (keyId === undefined) throw invalid(REASONS.missingKeyId, `${where}: Key has no Id`, { serial });
  const algorithm = attribute(key, 'Algorithm');
  if (algorithm === undefined) throw invalid(REASONS.unsupportedAlgorithm, `${where}: Key has no Algorithm`, { serial });
  const parameters = child(key, 'AlgorithmParameters');
  const data = child(key, 'Data');

  const suite = readSuite(algorithm, parameters, where);
  const responseLength = readResponseLength(parameters, where);
  const secret = readSecret(data, keys, where);
  const manufacturer = text(child(device, 'Manufacturer'));
  const model = text(child(device, 'Model'));

  const result: PskcKey = { serial, keyId, algorithm, family: pskcAlgorithm(algorithm)!, secret };
  if (manufacturer !== undefined) result.manufacturer = manufacturer;
  if (model !== undefined) result.model = model;
  if (suite !== undefined) result.suite = suite;
  if (responseLength !== undefined) result.responseLength = responseLength;
  const integers = { counter: 'Counter', time: 'Time', timeInterval: 'TimeInterval', timeDrift: 'TimeDrift' } as const;
  for (const [field, name] of Object.entries(integers) as [keyof typeof integers, IntegerData][]) {
    const value = readInteger(data, name, keys, where);
    if (value !== undefined) result[field] = value;
  }
  return result;
}

/** Several keys may share a serial (one device, several keys); a key Id appears once per serial. */
function rejectDuplicateKeys(keys: PskcKey[]): void {
  const seen = new Set<string>();
  for (const { serial, keyId } of keys) {
    const id = `${serial}\0${keyId}`;
    if (seen.has(id)) throw invalid(REASONS.duplicateKey, `key ${keyId} of serial ${serial} appears more than once`, { serial, keyId });
    seen.add(id);
  }
}

// ---------------------------------------------------------------------------

/**
 * Parses a PSKC document and returns one entry per KeyPackage, with secrets
 * decrypted. All-or-nothing: any problem throws `SlsError('INVALID_PSKC')`.
 */
export function parsePskc(xml: string, decryption: PskcDecryption = {}): PskcKey[] {
  const container = parseContainer(xml);
  const version = attribute(container, 'Version');
  if (version !== PSKC_VERSION) throw invalid(REASONS.version, `Version is ${version ?? '(missing)'}, expected ${PSKC_VERSION}`);
  const packages = children(container, 'KeyPackage');
  if (packages.length === 0) throw invalid(REASONS.noPackage, 'KeyContainer has no KeyPackage');
  const keys = resolveKeys(container, packages, decryption);
  const read = packages.flatMap((pkg, i) => readPackage(pkg, i + 1, keys));
  rejectDuplicateKeys(read);
  return read;
}

/**
 * The text of a PSKC file from its bytes: UTF-8, or UTF-16 (little- or
 * big-endian) by its byte order mark or, without one, by the zero bytes
 * around `<` of its first characters (XML 1.0 Appendix F).
 */
export function decodePskc(bytes: Buffer): string {
  const [b0, b1] = [bytes[0], bytes[1]];
  if (b0 === 0xff && b1 === 0xfe) return bytes.subarray(2).toString('utf16le');
  if (b0 === 0xfe && b1 === 0xff) return swap16(bytes.subarray(2)).toString('utf16le');
  if (b0 === 0x3c && b1 === 0x00) return bytes.toString('utf16le');
  if (b0 === 0x00 && b1 === 0x3c) return swap16(bytes).toString('utf16le');
  return bytes.toString('utf8');
}

function swap16(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes.subarray(0, bytes.length - (bytes.length % 2)));
  return copy.swap16();
}
