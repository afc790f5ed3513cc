/**
 * X3, D1, C2: the files the device emulators read (`sls token --card`, the
 * legacy tokens' file `sls device assign --out` writes; `sls dsc --card`,
 * the DSC+ card file `sls device add-dscplus --out` writes), crafted: a
 * seeded generator (SLS_FUZZ_SEED to replay; in every message) changes one
 * to three things of a well-formed file — a key null, a counter negative or
 * past 2^64, a time step of 0, 99 digits or "x", a seed that is no hex, a
 * hash of another name, the keys not a list, the file not an object.
 *
 * Each run is refused with one `sls: ` line of the translation files (never
 * "unexpected error", a TypeError's words or a RangeError's), or prints the
 * code a device shows: 6 to 10 digits, never NaN nor a code computed with
 * an empty key.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { slsInProcess } from './support/cli.js';
import { SEED, seededRandom } from './support/seeded.js';

// biome-ignore lint/suspicious/noExplicitAny: the files are JSON
type Json = any;

const CASES = 60;

const KEY = '3132333435363738393031323334353637383930';
const SUITE = 'OCRA-1:HOTP-SHA1-6:QN06-PSHA1';

/** Well-formed files, as the commands write them. */
const TOKEN_FILES: Record<string, Json> = {
  hotp: {
    format: 'sls-token/1',
    serial: 'P1',
    keys: [{ deviceId: 'dev_a', type: 'otp_token', serial: 'P1', keyId: null, algorithm: 'hotp', key: KEY, counter: 0, digits: 6, hash: 'sha1' }],
  },
  totp: {
    format: 'sls-token/1',
    serial: 'G1',
    keys: [{ deviceId: 'dev_b', type: 'otp_token', serial: 'G1', keyId: null, algorithm: 'totp', key: KEY, period: 30, t0: 0, digits: 8, hash: 'sha256' }],
  },
  ocra: {
    format: 'sls-token/1',
    serial: 'D1',
    keys: [{ deviceId: 'dev_c', type: 'dsc', serial: 'D1', keyId: null, algorithm: 'ocra', suite: 'OCRA-1:HOTP-SHA1-6:QN08', seed: KEY }],
  },
};
const CARD_FILE = { format: 'sls-dscplus-card/1', serial: 'C1', suite: SUITE, seed: KEY, pin: '1234' };

const BAD: unknown[] = [
  null,
  -1,
  0,
  99,
  1.5,
  1e30,
  -1e30,
  '',
  'x',
  'zz',
  '0',
  'abc',
  true,
  [],
  {},
  [null],
  'a'.repeat(5_000),
  'sha3',
  'OCRA-1:HOTP-SHA1-6:QN99',
];

/** One to three things of FILE changed: a property (of the file or of its first key) replaced or removed, or the whole replaced. */
function crafted(file: Json, random: () => number): { file: Json; what: string } {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  let out: Json = JSON.parse(JSON.stringify(file));
  const said: string[] = [];
  const changes = 1 + Math.floor(random() * 3);
  for (let n = 0; n < changes; n += 1) {
    const value = pick(BAD);
    const where = random();
    if (where < 0.05) {
      out = value;
      said.push(`the file: ${JSON.stringify(value)?.slice(0, 30)}`);
      break;
    }
    const inKey = Array.isArray(out.keys) && out.keys[0] && typeof out.keys[0] === 'object' && where < 0.75;
    const target = inKey ? out.keys[0] : out;
    const name = pick(Object.keys(target).length > 0 ? [...Object.keys(target), 'keys'] : ['keys']);
    if (random() < 0.15) delete target[name];
    else target[name] = value;
    said.push(`${inKey ? 'keys[0].' : ''}${name}: ${JSON.stringify(value)?.slice(0, 30)}`);
  }
  return { file: out, what: said.join('; ') };
}

const ENV = { ...process.env, LANG: 'C', LC_ALL: '', SLS_LOG_LEVEL: 'silent' };

/** What is wrong with a run: a crash, a refusal not told as sls tells it, a code that is no code. */
function problemOf(run: { code: number; stdout: string; stderr: string }, digits: RegExp): string | null {
  if (run.code === 0) return digits.test(run.stdout.trim()) ? null : `printed ${JSON.stringify(run.stdout.slice(0, 60))}, not a code`;
  const lines = run.stderr.trim().split('\n');
  if (!lines[0]?.startsWith('sls: ')) return `refused without an sls: line: ${run.stderr.slice(0, 200)}`;
  if (/unexpected error|TypeError|RangeError|Cannot read|is not a function|out of range|BigInt/.test(run.stderr)) return `crashed: ${lines[0]}`;
  return null;
}

describe('crafted files for the device emulators (X3, D1, C2)', () => {
  const folder = mkdtempSync(join(tmpdir(), 'sls-fuzz-files-'));
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  it('X3, D1: the well-formed files give their codes (the generator starts from files the emulators take)', async () => {
    for (const [kind, file] of Object.entries(TOKEN_FILES)) {
      const path = join(folder, `${kind}.json`);
      writeFileSync(path, JSON.stringify(file));
      const run = await slsInProcess(['token', '--card', path, ...(kind === 'ocra' ? ['--challenge', '12345678'] : [])], ENV);
      expect([kind, run.code, run.stderr], run.stdout).toEqual([kind, 0, '']);
      expect(run.stdout.trim()).toMatch(/^\d{6,8}$/);
    }
    const card = join(folder, 'card.json');
    writeFileSync(card, JSON.stringify(CARD_FILE));
    const run = await slsInProcess(['dsc', '--card', card, '--pin', '1234', '--challenge', '123456'], ENV);
    expect([run.code, run.stderr]).toEqual([0, '']);
  });

  it('X3, D1: sls token given a crafted token file (a key null, a counter negative or past 2^64, a time step of 0, 99 digits, a key that is no hex …) refuses it in one sls: line or prints a code of 6 to 10 digits: never a crash, NaN, or a code of an empty key', async () => {
    const problems: string[] = [];
    for (const [kind, file] of Object.entries(TOKEN_FILES)) {
      const random = seededRandom(`token:${kind}`);
      for (let n = 0; n < CASES; n += 1) {
        const { file: bad, what } = crafted(file, random);
        const path = join(folder, `${kind}-${n}.json`);
        writeFileSync(path, JSON.stringify(bad) ?? 'undefined');
        for (const args of [[], ['--key', 'P1'], ...(kind === 'ocra' ? [['--challenge', '12345678']] : [])]) {
          const run = await slsInProcess(['token', '--card', path, ...args], ENV);
          const problem = problemOf(run, /^\d{6,10}$/);
          if (problem) problems.push(`${kind} ${what} ${args.join(' ')}: ${problem}`);
        }
      }
    }
    // the crafted files that slipped through before: each a refusal now
    for (const [what, key] of [
      ['a key null', null],
      ['a counter of -1', { ...TOKEN_FILES.hotp.keys[0], counter: -1 }],
      ['a counter past 2^64', { ...TOKEN_FILES.hotp.keys[0], counter: 1e30 }],
      ['a time step of 0', { ...TOKEN_FILES.totp.keys[0], period: 0 }],
      ['99 digits', { ...TOKEN_FILES.hotp.keys[0], digits: 99 }],
      ['digits "x"', { ...TOKEN_FILES.hotp.keys[0], digits: 'x' }],
      ['a key that is no hex', { ...TOKEN_FILES.hotp.keys[0], key: 'zz' }],
    ] as const) {
      const path = join(folder, 'known.json');
      writeFileSync(path, JSON.stringify({ ...TOKEN_FILES.hotp, keys: [key] }));
      const run = await slsInProcess(['token', '--card', path], ENV);
      expect([what, run.code, run.stderr.trim()]).toEqual([what, 1, `sls: ${path} is not a token file: give the file written by sls device assign --out.`]);
    }
    expect(problems.slice(0, 40), `seed ${SEED} (SLS_FUZZ_SEED): ${problems.length}`).toEqual([]);
  });

  it('X3, C2: sls dsc given a crafted card file (a seed that is no hex, the file null, a suite of another form …) refuses it in one sls: line or prints a response of the suite: never a crash, nor a response of an empty seed', async () => {
    const problems: string[] = [];
    const random = seededRandom('card');
    for (let n = 0; n < CASES; n += 1) {
      const { file: bad, what } = crafted(CARD_FILE, random);
      const path = join(folder, `card-${n}.json`);
      writeFileSync(path, JSON.stringify(bad) ?? 'undefined');
      const run = await slsInProcess(['dsc', '--card', path, '--pin', '1234', '--challenge', '123456'], ENV);
      const problem = problemOf(run, /^\d{6,10}$/);
      if (problem) problems.push(`${what}: ${problem}`);
    }
    for (const bad of [null, [1], { ...CARD_FILE, seed: 'zz' }, { ...CARD_FILE, seed: '' }, { ...CARD_FILE, seed: '123' }]) {
      const path = join(folder, 'known-card.json');
      writeFileSync(path, JSON.stringify(bad));
      const run = await slsInProcess(['dsc', '--card', path, '--pin', '1234', '--challenge', '123456'], ENV);
      expect([JSON.stringify(bad), run.code, run.stderr.trim()]).toEqual([
        JSON.stringify(bad),
        1,
        `sls: ${path} is not a DSC+ card file: give the file written by sls device add-dscplus.`,
      ]);
    }
    expect(problems.slice(0, 40), `seed ${SEED} (SLS_FUZZ_SEED): ${problems.length}`).toEqual([]);
  });
});
