import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateOcra, generateOcraChallenge, ocraTimestamp, parseOcraSuite, verifyOcra, type OcraInput } from './ocra.js';
import type { SlsError } from '../errors.js';

interface Vector {
  key_hex: string;
  counter: number | null;
  question: string;
  pin: string | null;
  pin_hash_hex: string | null;
  timestamp_hex: string | null;
  expected: string;
}
interface SuiteVectors {
  section: string;
  suite: string;
  mode: string;
  vectors: Vector[];
}
const file = JSON.parse(readFileSync(new URL('../../test/vectors/ocra_vectors.json', import.meta.url), 'utf8')) as {
  suites: SuiteVectors[];
};

describe('C3: OCRA (RFC 6287) passes every vector of Appendix C', () => {
  const cases = file.suites.flatMap((s) => s.vectors.map((v) => ({ ...v, suite: s.suite, label: `${s.section} ${s.mode}` })));
  it('has all the vectors of the RFC', () => {
    expect(cases.length).toBe(70);
  });
  it.each(cases)('C3: $label $suite q=$question c=$counter -> $expected', (v) => {
    const suite = parseOcraSuite(v.suite);
    const input = {
      key: Buffer.from(v.key_hex, 'hex'),
      question: v.question,
      ...(v.counter !== null ? { counter: v.counter } : {}),
      ...(v.pin !== null ? { pin: v.pin } : {}),
      ...(v.timestamp_hex !== null ? { timestamp: BigInt(`0x${v.timestamp_hex}`) } : {}),
    };
    expect(generateOcra(suite, input)).toBe(v.expected);
    expect(verifyOcra(suite, input, v.expected)).toBe(true);
    // the same value from the PIN hash given directly
    if (v.pin_hash_hex !== null) {
      const { pin: _pin, ...withoutPin } = input as typeof input & { pin?: string };
      expect(generateOcra(suite, { ...withoutPin, pinHash: Buffer.from(v.pin_hash_hex, 'hex') })).toBe(v.expected);
    }
  });
});

describe('C3: OCRA suite parsing', () => {
  it('C3: parses the DSC+ suite OCRA-1:HOTP-SHA256-8:QN06-PSHA1', () => {
    const s = parseOcraSuite('OCRA-1:HOTP-SHA256-8:QN06-PSHA1');
    expect(s).toMatchObject({ hash: 'sha256', digits: 8, counter: false, pinHash: 'sha1', sessionLength: null, timeStep: null });
    expect(s.challenge).toEqual({ format: 'N', maxLength: 6 });
  });
  it('C3: parses every DataInput element (C, QH, PSHA512, S, T)', () => {
    const s = parseOcraSuite('OCRA-1:HOTP-SHA1-4:C-QH08-PSHA512-S128-T30S');
    expect(s).toMatchObject({ digits: 4, counter: true, pinHash: 'sha512', sessionLength: 128, timeStep: 30 });
    expect(parseOcraSuite('OCRA-1:HOTP-SHA1-6:QN08-S').sessionLength).toBe(64);
    expect(parseOcraSuite('OCRA-1:HOTP-SHA1-6:QN08-T').timeStep).toBe(60);
    expect(parseOcraSuite('OCRA-1:HOTP-SHA1-6:QN08-T24H').timeStep).toBe(86400);
  });
  it.each([
    'OCRA-2:HOTP-SHA1-6:QN08',
    'OCRA-1:HOTP-MD5-6:QN08',
    'OCRA-1:HOTP-SHA1-3:QN08',
    'OCRA-1:HOTP-SHA1-11:QN08',
    'OCRA-1:HOTP-SHA1-6:QX08',
    'OCRA-1:HOTP-SHA1-6:QN03',
    'OCRA-1:HOTP-SHA1-6:QN65',
    'OCRA-1:HOTP-SHA1-6:C',
    'OCRA-1:HOTP-SHA1-6:QN08-T60M',
    'OCRA-1:HOTP-SHA1-6:QN08-T1M-PSHA1',
    'OCRA-1:HOTP-SHA1-6:QN08-PSHA1-PSHA1',
    'OCRA-1:HOTP-SHA1-6',
    'garbage',
  ])('C3: refuses the malformed suite %s with INVALID_SUITE', (text) => {
    expect(() => parseOcraSuite(text)).toThrowError(expect.objectContaining({ code: 'INVALID_SUITE' }));
  });
});

describe('C3: OCRA computation details', () => {
  const key = Buffer.from('3132333435363738393031323334353637383930', 'hex');
  it('C3: a wrong PIN yields a different response', () => {
    const suite = parseOcraSuite('OCRA-1:HOTP-SHA256-8:QN06-PSHA1');
    const a = generateOcra(suite, { key, question: '123456', pin: '1234' });
    const b = generateOcra(suite, { key, question: '123456', pin: '1235' });
    expect(a).toMatch(/^\d{8}$/);
    expect(a).not.toBe(b);
  });
  it('C3: truncation 0 returns the full HMAC value', () => {
    const full = generateOcra(parseOcraSuite('OCRA-1:HOTP-SHA1-0:QN08'), { key, question: '00000000' });
    expect(full).toMatch(/^[0-9a-f]{40}$/);
    const six = generateOcra(parseOcraSuite('OCRA-1:HOTP-SHA1-6:QN08'), { key, question: '00000000' });
    expect(six).toBe('237653');
  });
  it('C3: session information changes the value and is length checked', () => {
    const suite = parseOcraSuite('OCRA-1:HOTP-SHA1-6:QH08-S016');
    const a = generateOcra(suite, { key, question: 'abcdef12', session: Buffer.from('01', 'hex') });
    const b = generateOcra(suite, { key, question: 'abcdef12', session: Buffer.from('02', 'hex') });
    expect(a).not.toBe(b);
    expect(() => generateOcra(suite, { key, question: 'abcdef12', session: Buffer.alloc(17) })).toThrowError(/session/);
  });
  it('C3, X2: missing inputs and malformed questions are refused, each with a reason of the translation files', () => {
    const refusal = (suite: string, input: Omit<OcraInput, 'key'>): unknown => {
      try {
        generateOcra(parseOcraSuite(suite), { key, ...input });
      } catch (error) {
        return (error as SlsError).params;
      }
      return 'computed';
    };
    expect(refusal('OCRA-1:HOTP-SHA1-6:C-QN08', { question: '1' })).toMatchObject({ reason: 'ocra_missing', field: '--counter' });
    expect(refusal('OCRA-1:HOTP-SHA1-6:QN08-PSHA1', { question: '1' })).toMatchObject({ reason: 'ocra_missing', field: '--pin' });
    expect(refusal('OCRA-1:HOTP-SHA1-6:QN08', { question: '12a' })).toMatchObject({ reason: 'ocra_question_N' });
    expect(refusal('OCRA-1:HOTP-SHA1-6:QH08', { question: 'xyz' })).toMatchObject({ reason: 'ocra_question_H' });
    expect(refusal('OCRA-1:HOTP-SHA1-6:QN08-PSHA1', { question: '1', pinHash: Buffer.alloc(3) })).toMatchObject({ reason: 'ocra_pin_hash_length', bytes: 20 });
    expect(() => parseOcraSuite('OCRA-1:HOTP-SHA1-6:QN08-X')).toThrowError(
      expect.objectContaining({ params: expect.objectContaining({ reason: 'data_input', element: 'X' }) }),
    );
  });
  it('C3: timestamps count the suite time steps since the epoch', () => {
    const suite = parseOcraSuite('OCRA-1:HOTP-SHA512-8:QN08-T1M');
    expect(ocraTimestamp(suite, Date.UTC(2008, 2, 25, 12, 6, 30))).toBe(0x132d0b6n);
  });
  it('C3: random challenges have the suite format and length', () => {
    expect(generateOcraChallenge(parseOcraSuite('OCRA-1:HOTP-SHA256-8:QN06-PSHA1'))).toMatch(/^\d{6}$/);
    expect(generateOcraChallenge(parseOcraSuite('OCRA-1:HOTP-SHA256-8:QH10'))).toMatch(/^[0-9a-f]{10}$/);
    expect(generateOcraChallenge(parseOcraSuite('OCRA-1:HOTP-SHA256-8:QA08'))).toMatch(/^[A-Za-z0-9]{8}$/);
  });
});
