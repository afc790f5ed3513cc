/**
 * The legacy devices through the real `sls` command (D1): python-pskc's
 * files imported by `sls device import-pskc` (UTF-16, several keys under one
 * serial, an encrypted counter), issued with `sls device assign`, and the
 * emulator `sls token --card`: a Platinum / Gold token's codes (HOTP moves
 * its counter on in the file) and the legacy DSC's response to a challenge.
 * The first command runs as a real `sls` process; the others in this process
 * (`slsInProcess`: `main(argv)` of bin/sls.js, output and exit code
 * captured), a real process costing a start of Node and of the server each.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { sqliteDatabase, type TestDatabase } from './support/harness.js';
import { cliEnv, sls, slsInProcess } from './support/cli.js';
import { generateTotp } from '../src/crypto/hotp.js';
import { generateOcra, parseOcraSuite } from '../src/crypto/ocra.js';
import type { TokenFile } from '../src/devices/devices.js';

vi.setConfig({ testTimeout: 90_000 });

const RFC4226 = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
const SHA1_KEY = Buffer.from('12345678901234567890');

let db: TestDatabase;
let env: NodeJS.ProcessEnv;
const fixture = (name: string) => new URL(`./fixtures/pskc/${name}`, import.meta.url).pathname;

beforeAll(async () => {
  db = await sqliteDatabase();
  env = cliEnv(db);
  expect((await sls(['user', 'create', '--username', 'tokenholder', '--password', 'correct horse battery'], env)).code).toBe(0);
  expect((await slsInProcess(['user', 'create', '--username', 'cardholder', '--password', 'correct horse battery'], env)).code).toBe(0);
});
afterAll(async () => {
  await db.drop();
});

describe('sls device import-pskc, assign and sls token (D1)', () => {
  it('D1: a UTF-16 file with two keys under one serial and an encrypted file import as tokens; list --stock shows their types', async () => {
    expect((await slsInProcess(['device', 'import-pskc', fixture('legacy-utf16.xml')], env)).stdout).toBe(
      'Imported 2 cards into the stock (batch legacy-utf16.xml).\n',
    );
    const encrypted = await slsInProcess(
      ['device', 'import-pskc', fixture('legacy-encrypted.xml'), '--key', '12345678901234567890123456789012', '--time-window', '2'],
      env,
    );
    expect(encrypted.code).toBe(0);
    expect((await slsInProcess(['device', 'import-pskc', fixture('legacy-ocra.xml')], env)).code).toBe(0);
    const stock = JSON.parse((await slsInProcess(['device', 'list', '--stock', '--json'], env)).stdout) as { serial: string; type: string }[];
    expect(stock.map((d) => [d.serial, d.type])).toEqual([
      ['DSC0000001', 'dsc'],
      ['DSC0000002', 'dsc'],
      ['DSP0000001', 'dscplus'],
      ['GLD0000003', 'token_totp'],
      ['PLT0000002', 'token_hotp'],
      ['PLT0000003/event', 'token_hotp'],
      ['PLT0000003/time', 'token_totp'],
    ]);
  });

  it('D1, X3: a drift window wider than 100 counters or 10 time steps is refused at import (each one more code a guess may hit); nothing is imported', async () => {
    const before = (await slsInProcess(['device', 'list', '--stock', '--json'], env)).stdout;
    for (const [option, max] of [
      ['--look-ahead', 100],
      ['--time-window', 10],
    ] as const) {
      const refused = await slsInProcess(['device', 'import-pskc', fixture('legacy-utf16.xml'), '--batch', 'wide', option, String(max + 1)], env);
      expect(refused.code, refused.stderr).not.toBe(0);
      expect(refused.stderr).toContain(option);
      expect(refused.stderr).toContain(`from 0 to ${max}.`);
    }
    expect((await slsInProcess(['device', 'list', '--stock', '--json'], env)).stdout).toBe(before);
  });

  it('D1: sls device assign issues both keys of the token; sls token prints the HOTP codes of RFC 4226 in turn and the TOTP code of now', async () => {
    const out = join(db.dataDir, 'token.json');
    const assigned = await slsInProcess(['device', 'assign', '--user', 'tokenholder', '--serial', 'PLT0000003', '--out', out], env);
    expect(assigned).toMatchObject({ code: 0, stdout: `Issued PLT0000003 (2 keys) to tokenholder; token file written to ${out}.\n` });
    const file = JSON.parse(readFileSync(out, 'utf8')) as TokenFile;
    expect(file.keys.map((k) => [k.keyId, k.type, k.algorithm])).toEqual([
      ['event', 'token_hotp', 'hotp'],
      ['time', 'token_totp', 'totp'],
    ]);
    // two keys: the emulator asks which
    expect((await slsInProcess(['token', '--card', out], env)).stderr).toMatch(/give --key/);
    const presses: string[] = [];
    for (let i = 0; i < 3; i++) presses.push((await slsInProcess(['token', '--card', out, '--key', 'event'], env)).stdout.trim());
    expect(presses).toEqual(RFC4226.slice(0, 3));
    expect((JSON.parse(readFileSync(out, 'utf8')) as TokenFile).keys[0]!.counter).toBe(3);
    const before = Date.now();
    const code = (await slsInProcess(['token', '--card', out, '--key', 'time'], env)).stdout.trim();
    const after = Date.now();
    expect([generateTotp(SHA1_KEY, before, { digits: 8 }), generateTotp(SHA1_KEY, after, { digits: 8 })]).toContain(code);
    const devices = JSON.parse((await slsInProcess(['device', 'list', '--user', 'tokenholder', '--json'], env)).stdout) as { type: string; state: string }[];
    expect(devices.map((d) => [d.type, d.state])).toEqual([
      ['token_hotp', 'active'],
      ['token_totp', 'active'],
    ]);
  });

  it('X4, D5: sls token writes the token file back whole, as a new file of its owner only renamed over it: a file others could read becomes 0600, a symbolic link at the path is replaced and its target never written, no file is left beside it', async () => {
    const dir = mkdtempSync(join(db.dataDir, 'press-'));
    const out = join(dir, 'token.json');
    expect((await slsInProcess(['device', 'assign', '--user', 'tokenholder', '--serial', 'PLT0000002', '--out', out], env)).code).toBe(0);
    chmodSync(out, 0o644);
    const first = await slsInProcess(['token', '--card', out], env);
    expect(first.code, first.stderr).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    // a link at the path (planted, or the operator's): the file it names keeps its content; the path now holds the token
    const target = join(dir, 'elsewhere.json');
    renameSync(out, target);
    const kept = readFileSync(target, 'utf8');
    symlinkSync(target, out);
    const second = await slsInProcess(['token', '--card', out], env);
    expect(second.code, second.stderr).toBe(0);
    expect(readFileSync(target, 'utf8')).toBe(kept);
    expect(lstatSync(out).isSymbolicLink()).toBe(false);
    expect((JSON.parse(readFileSync(out, 'utf8')) as TokenFile).keys[0]!.counter).toBe(Number((JSON.parse(kept) as TokenFile).keys[0]!.counter) + 1);
    expect(readdirSync(dir).sort()).toEqual(['elsewhere.json', 'token.json']);
  });

  it('D1: the legacy DSC emulator answers --challenge without a PIN; a DSC+ from the stock is not issued by assign', async () => {
    const out = join(db.dataDir, 'dsc.json');
    expect((await slsInProcess(['device', 'assign', '--user', 'cardholder', '--serial', 'DSC0000001', '--out', out], env)).code).toBe(0);
    const response = (await slsInProcess(['token', '--card', out, '--challenge', '123456'], env)).stdout.trim();
    expect(response).toBe(generateOcra(parseOcraSuite('OCRA-1:HOTP-SHA1-8:QN06'), { key: SHA1_KEY, question: '123456' }));
    expect((await slsInProcess(['token', '--card', out], env)).stderr).toMatch(/--challenge/);
    const refused = await slsInProcess(['device', 'assign', '--user', 'cardholder', '--serial', 'DSP0000001', '--out', join(db.dataDir, 'x.json')], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^sls: Device DSP0000001 is not issued this way/);
  });
});
