/**
 * Legacy devices (D1, D2, W1) on SQLite and PostgreSQL: the PSKC files
 * written by an independent implementation (python3-pskc, see
 * test/fixtures/pskc/README.md) import as the device their algorithm
 * names; the Platinum / Gold tokens (HOTP, TOTP) and the legacy Digital
 * Security Card (no PIN) log in through the JSON API, against the RFC
 * vectors in ../shared/vectors/, with their drift windows and single use;
 * they set the withdrawal limits of their row and rank as D2 says.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES, createUser, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, startLogin, type ApiResponse } from './support/api.js';
import { decodePskc, parsePskc } from '../src/devices/dscplus/pskc.js';
import { deviceKinds } from '../src/devices/registry.js';
import { generateHotp, generateTotp } from '../src/crypto/hotp.js';
import { generateOcra, parseOcraSuite } from '../src/crypto/ocra.js';
import { tokenDisplay } from '../src/cli/token-emulator.js';
import type { TokenFile } from '../src/devices/devices.js';
import type { ImportedKey } from '../src/devices/types.js';
import type { User } from '../src/identity/users.js';

interface Vector {
  count?: number;
  unix_time?: number;
  mode?: string;
  hotp?: string;
  totp?: string;
}
const VECTORS = JSON.parse(readFileSync(new URL('../../shared/vectors/hotp_totp_vectors.json', import.meta.url), 'utf8')) as {
  hotp_rfc4226: { vectors: Vector[] };
  totp_rfc6238: { vectors: Vector[] };
};
const OCRA_VECTORS = JSON.parse(readFileSync(new URL('../../shared/vectors/ocra_vectors.json', import.meta.url), 'utf8')) as {
  suites: { suite: string; vectors: { question: string; expected: string }[] }[];
};
const hotpVector = (count: number) => VECTORS.hotp_rfc4226.vectors.find((v) => v.count === count)!.hotp!;
const totpVector = (time: number, mode: string) => VECTORS.totp_rfc6238.vectors.find((v) => v.unix_time === time && v.mode === mode)!.totp!;

const PRESHARED = Buffer.from('12345678901234567890123456789012', 'hex');
const SHA1_KEY = Buffer.from('12345678901234567890');

function fixture(name: string): ImportedKey[] {
  return parsePskc(decodePskc(readFileSync(new URL(`./fixtures/pskc/${name}`, import.meta.url))), { preSharedKey: PRESHARED });
}

const ALL = ['legacy-hotp.xml', 'legacy-totp.xml', 'legacy-ocra.xml', 'legacy-encrypted.xml', 'legacy-utf16.xml'];

describe.each(DATABASES)('legacy devices on %s', (database) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(database);
    // python-pskc's files go into the stock the way `sls device import-pskc` puts them
    for (const name of ALL) await h.services.devices.importStock(fixture(name), 'test', name);
  });
  afterAll(async () => {
    await h.close();
  });

  async function issue(serial: string): Promise<{ user: User; file: TokenFile }> {
    const user = await createUser(h.services);
    const { file } = await h.services.devices.assignStock(serial, user.id, 'test');
    return { user, file };
  }

  async function login(user: User, app: 'portal' | 'trading' = 'portal'): Promise<ApiResponse> {
    const start = await startLogin(h.app, user.username, undefined, app);
    expect(start.status).toBe(200);
    return start;
  }

  /** A new login answered with `code`: the answer's response. */
  async function loginWith(user: User, code: string): Promise<ApiResponse> {
    const start = await login(user);
    return answer(h.app, start.body.id as string, code);
  }

  it('D1: the python-pskc files import as the device their algorithm names (HOTP and TOTP: tokens, OCRA with P: DSC+, without: DSC)', async () => {
    const stock = await h.services.devices.listAllStock();
    const typeOf = Object.fromEntries(stock.map((d) => [d.serial, d.type]));
    expect(typeOf).toMatchObject({
      PLT0000001: 'token_hotp',
      GLD0000001: 'token_totp',
      GLD0000002: 'token_totp',
      DSC0000001: 'dsc',
      DSP0000001: 'dscplus',
      DSC0000002: 'dsc',
      PLT0000002: 'token_hotp',
      GLD0000003: 'token_totp',
      'PLT0000003/event': 'token_hotp',
      'PLT0000003/time': 'token_totp',
    });
    // an HOTP key is no longer stocked as a DSC+ card: the DSC+ stock (what client services ship) is the one card with a PIN
    expect((await h.services.devices.listStock()).map((d) => d.serial)).toEqual(['DSP0000001']);
    const byserial = (serial: string) => stock.find((d) => d.serial === serial)!;
    expect(byserial('PLT0000001')).toMatchObject({ label: 'Platinum PLT0000001', params: { digits: 6, hash: 'sha1', lookAhead: 10, model: 'Platinum' } });
    expect(byserial('GLD0000002').params).toMatchObject({ digits: 8, hash: 'sha256', period: 30, timeWindow: 1 });
    expect(byserial('DSC0000002').params).toMatchObject({ suite: 'OCRA-1:HOTP-SHA1-6:QN08' });
    // the encrypted counter (7) is in the sealed secret; the secrets are sealed, never in the clear (D5)
    const row = await h.services.store.db.selectFrom('devices').selectAll().where('serial', '=', 'PLT0000002').executeTakeFirstOrThrow();
    expect(await h.services.devices.readSecret(h.services.store.db, row.id)).toEqual({ key: SHA1_KEY.toString('hex'), counter: 7 });
    expect(row.secret_enc).not.toContain(SHA1_KEY.toString('hex'));
    const imported = (await h.services.audit.list({})).filter((e) => e.event === 'device.imported' && e.data.batch === 'legacy-utf16.xml');
    expect(imported).toHaveLength(1);
    expect(imported[0]!.data).toMatchObject({ count: 2, types: { token_hotp: 1, token_totp: 1 } });
  });

  it('D1: an HOTP token logs in through the JSON API with its RFC 4226 codes; the counter moves forward and a code works once (L4)', async () => {
    const { user, file } = await issue('PLT0000001');
    expect(file.keys).toEqual([expect.objectContaining({ type: 'token_hotp', serial: 'PLT0000001', algorithm: 'hotp', counter: 5, digits: 6, hash: 'sha1' })]);
    const start = await login(user);
    expect(start.body.device).toMatchObject({ type: 'token_hotp', label: 'Platinum PLT0000001' });
    expect(start.body.challenge).toEqual({ type: 'otp', digits: 6 });
    const done = await answer(h.app, start.body.id as string, hotpVector(5));
    expect(done.status).toBe(200);
    expect(done.body.state).toBe('done');
    // the same code again is refused; the next one works
    const again = await loginWith(user, hotpVector(5));
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('LOGIN_FAILED');
    expect((await loginWith(user, hotpVector(6))).body.state).toBe('done');
    // look-ahead: the token was pressed twice without logging in (counters 7, 8 unused): code 9 works, then 8 no longer does
    expect((await loginWith(user, hotpVector(9))).body.state).toBe('done');
    expect((await loginWith(user, hotpVector(8))).body.error.code).toBe('LOGIN_FAILED');
    const device = (await h.services.devices.listForUser(user.id))[0]!;
    expect(await h.services.devices.readSecret(h.services.store.db, device.id)).toMatchObject({ counter: 10 });
  });

  it('D1: an HOTP token out of the look-ahead window resynchronises with two consecutive codes (RFC 4226 §7.4)', async () => {
    const { user, file } = await issue('PLT0000003/event');
    expect(file.serial).toBe('PLT0000003');
    const code = (c: number) => generateHotp(SHA1_KEY, c, { digits: 6 });
    // 20 presses ahead of the server (counter 0, look-ahead 10): one code is not enough
    expect((await loginWith(user, code(20))).body.error.code).toBe('LOGIN_FAILED');
    expect((await loginWith(user, `${code(21)}${code(23)}`)).body.error.code).toBe('LOGIN_FAILED');
    expect((await loginWith(user, `${code(21)}${code(22)}`)).body.state).toBe('done');
    expect((await loginWith(user, code(23))).body.state).toBe('done');
    expect((await loginWith(user, code(22))).body.error.code).toBe('LOGIN_FAILED');
  });

  it('D1: a TOTP token logs in with the RFC 6238 codes at their times (SHA-1 and SHA-256), ±1 time step, each step once (L4)', async () => {
    const { user } = await issue('GLD0000001');
    h.clock.set(1111111109 * 1000);
    expect((await login(user)).body.challenge).toEqual({ type: 'otp', digits: 8 });
    expect((await loginWith(user, totpVector(1111111109, 'SHA1'))).body.state).toBe('done');
    // the same step again is refused
    expect((await loginWith(user, totpVector(1111111109, 'SHA1'))).body.error.code).toBe('LOGIN_FAILED');
    // a token one step ahead is inside the window, two steps ahead is not
    const at = (seconds: number) => generateTotp(SHA1_KEY, seconds * 1000, { digits: 8 });
    expect((await loginWith(user, at(1111111109 + 60))).body.error.code).toBe('LOGIN_FAILED');
    expect((await loginWith(user, at(1111111109 + 30))).body.state).toBe('done');
    // the drift found (+1 step) is kept: a minute later the token's clock is still one step ahead, and that is accepted
    h.clock.advance(60_000);
    expect((await loginWith(user, at(1111111109 + 60 + 30 + 30))).body.state).toBe('done');

    const sha256 = await issue('GLD0000002');
    h.clock.set(1111111109 * 1000);
    expect((await loginWith(sha256.user, totpVector(1111111109, 'SHA1'))).body.error.code).toBe('LOGIN_FAILED');
    expect((await loginWith(sha256.user, totpVector(1111111109, 'SHA256'))).body.state).toBe('done');
    h.clock.set(Date.UTC(2026, 0, 5, 9, 0, 0));
  });

  it('D1: the legacy DSC answers the challenge without a PIN (OCRA-1:HOTP-SHA1-8:QN06); a DSC+ answer (with PIN) is refused', async () => {
    const { user, file } = await issue('DSC0000001');
    const key = file.keys[0]!;
    expect(key).toMatchObject({ type: 'dsc', algorithm: 'ocra', suite: 'OCRA-1:HOTP-SHA1-8:QN06' });
    const start = await login(user);
    expect(start.body.device.type).toBe('dsc');
    const question = start.body.challenge.question as string;
    expect(start.body.challenge).toMatchObject({ type: 'ocra', digits: 8 });
    expect(question).toMatch(/^\d{6}$/);
    const suite = parseOcraSuite('OCRA-1:HOTP-SHA1-8:QN06');
    const withPin = generateOcra(parseOcraSuite('OCRA-1:HOTP-SHA1-8:QN06-PSHA1'), { key: SHA1_KEY, question, pin: '1234' });
    expect((await answer(h.app, start.body.id as string, withPin)).body.error.code).toBe('LOGIN_FAILED');
    const done = await answer(h.app, start.body.id as string, generateOcra(suite, { key: SHA1_KEY, question }));
    expect(done.body.state).toBe('done');
  });

  it('D1: a DSC with the RFC 6287 C.1 suite in its algorithm URI gives the RFC values (through the emulator) and logs in', async () => {
    const { user, file } = await issue('DSC0000002');
    const c1 = OCRA_VECTORS.suites.find((s) => s.suite === 'OCRA-1:HOTP-SHA1-6:QN08')!;
    for (const v of c1.vectors) expect(tokenDisplay(file.keys[0]!, 0, v.question).code).toBe(v.expected);
    const start = await login(user);
    expect(start.body.challenge.question).toMatch(/^\d{8}$/);
    const response = tokenDisplay(file.keys[0]!, 0, start.body.challenge.question as string).code;
    expect((await answer(h.app, start.body.id as string, response)).body.state).toBe('done');
  });

  it('D1: the encrypted file: the HOTP token starts at its encrypted counter (7); the TOTP token works at the server time', async () => {
    const hotp = await issue('PLT0000002');
    expect((await loginWith(hotp.user, hotpVector(6))).body.error.code).toBe('LOGIN_FAILED');
    expect((await loginWith(hotp.user, hotpVector(7))).body.state).toBe('done');
    const totp = await issue('GLD0000003');
    const { code } = tokenDisplay(totp.file.keys[0]!, h.clock.now());
    expect((await loginWith(totp.user, code)).body.state).toBe('done');
  });

  it('W1, D2: a Platinum / Gold token sets unlimited withdrawals, the legacy DSC USD 1M a day and 1.5M in 5 business days', async () => {
    const limits = async (user: User) => {
      const start = await login(user);
      const code = await codeFor(user, start);
      const done = await answer(h.app, start.body.id as string, code);
      expect(done.body.state).toBe('done');
      return (await get(h.app, '/api/v1/withdrawal-limits', bearer(done.body.session.token as string))).body;
    };
    const codeFor = async (user: User, start: ApiResponse): Promise<string> => {
      const file = files.get(user.id)!;
      const key = file.keys[0]!;
      if (key.algorithm === 'hotp') {
        const { code, advanced } = tokenDisplay(key, h.clock.now());
        file.keys[0] = advanced!;
        return code;
      }
      return tokenDisplay(key, h.clock.now(), start.body.challenge?.question as string | undefined).code;
    };
    const files = new Map<string, TokenFile>();
    const stockDsc = await h.services.devices.importStock(
      [
        {
          serial: 'DSC0000009',
          keyId: '1',
          algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:ocra',
          family: 'ocra',
          suite: 'OCRA-1:HOTP-SHA1-8:QN06',
          secret: SHA1_KEY,
        },
      ],
      'test',
      'w1',
    );
    expect(stockDsc[0]!.type).toBe('dsc');
    const dscUser = await issue('DSC0000009');
    files.set(dscUser.user.id, dscUser.file);
    expect(await limits(dscUser.user)).toEqual({ device: 'dsc', perDayUsd: 1_000_000, fiveBusinessDaysUsd: 1_500_000 });
    await h.services.devices.importStock(
      [{ serial: 'PLT0000009', keyId: '1', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', family: 'hotp', secret: SHA1_KEY }],
      'test',
      'w1',
    );
    const tokenUser = await issue('PLT0000009');
    files.set(tokenUser.user.id, tokenUser.file);
    expect(await limits(tokenUser.user)).toEqual({ device: 'token_hotp', perDayUsd: null, fiveBusinessDaysUsd: null });
    // D2: DSC+ = Platinum = Gold > DSC > mobile authenticator > SCC > SMS
    const kinds = deviceKinds();
    const strength = (type: string) => kinds(type).strength;
    expect(strength('token_hotp')).toBe(strength('dscplus'));
    expect(strength('token_totp')).toBe(strength('dscplus'));
    expect(strength('dsc')).toBeLessThan(strength('token_hotp'));
    expect(strength('dsc')).toBeGreaterThan(strength('mobile'));
    expect(strength('mobile')).toBeGreaterThan(strength('scc'));
    expect(strength('scc')).toBeGreaterThan(strength('sms'));
  });

  it('D1: legacy devices cannot be requested new: no device request route names them, and staff issue only imported ones', async () => {
    const openapi = (await get(h.app, '/api/openapi.json')).body as { paths: Record<string, unknown> };
    const requestRoutes = Object.keys(openapi.paths).filter((p) => /request/i.test(p));
    expect(requestRoutes.length).toBeGreaterThan(0);
    for (const route of requestRoutes) expect(route).not.toMatch(/token|legacy|\/dsc\b/i);
    // a serial not in the stock cannot be issued; a DSC+ from the stock takes its PIN on its own path
    const user = await createUser(h.services);
    await expect(h.services.devices.assignStock('PLT9999999', user.id, 'test')).rejects.toMatchObject({ code: 'DEVICE_NOT_FOUND' });
    await expect(h.services.devices.assignStock('DSP0000001', user.id, 'test')).rejects.toMatchObject({ code: 'STOCK_NOT_ASSIGNABLE', status: 409 });
    // a device issued is audited and leaves the stock: it cannot be issued twice
    await h.services.devices.importStock(
      [{ serial: 'GLD0000009', keyId: '1', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:totp', family: 'totp', secret: SHA1_KEY }],
      'test',
      'again',
    );
    const { devices } = await h.services.devices.assignStock('GLD0000009', user.id, 'staff:test');
    expect(devices).toEqual([expect.objectContaining({ type: 'token_totp', state: 'active', userId: user.id })]);
    const added = (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'device.added');
    expect(added.map((e) => [e.actor, e.data.serial, e.data.type, e.data.fromStock])).toEqual([['staff:test', 'GLD0000009', 'token_totp', true]]);
    await expect(h.services.devices.assignStock('GLD0000009', (await createUser(h.services)).id, 'test')).rejects.toMatchObject({
      code: 'DEVICE_NOT_FOUND',
    });
  });

  it('D1: an OCRA key a card cannot answer (counter, time) and an unknown token hash are refused with INVALID_PSKC, nothing imported', async () => {
    const before = (await h.services.devices.listAllStock()).length;
    const bad: ImportedKey[] = [
      {
        serial: 'BAD1',
        keyId: '1',
        algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc#ocra',
        family: 'ocra',
        suite: 'OCRA-1:HOTP-SHA1-8:C-QN08',
        secret: SHA1_KEY,
      },
      { serial: 'BAD2', keyId: '1', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:totp', family: 'totp', suite: 'HMAC-MD5', secret: SHA1_KEY },
    ];
    await expectEachRefused(bad, 'unsupported algorithm', before);
  });

  it('D1, D5: a token or card key shorter than 128 bits (RFC 4226 §4) is refused with INVALID_PSKC: one code seen would give the key away', async () => {
    const before = (await h.services.devices.listAllStock()).length;
    const short = SHA1_KEY.subarray(0, 8);
    const weak: ImportedKey[] = [
      { serial: 'WEAK1', keyId: '1', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', family: 'hotp', secret: short },
      { serial: 'WEAK2', keyId: '1', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:totp', family: 'totp', secret: short },
      { serial: 'WEAK3', keyId: '1', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc#ocra', family: 'ocra', suite: 'OCRA-1:HOTP-SHA1-8:QN06', secret: short },
    ];
    await expectEachRefused(weak, 'weak secret', before);
  });

  it('C2, C3, D1: a card suite weaker than the spec allows (a DSC+ answering 4 or 6 digits, a legacy DSC answering 4, a challenge of 4 digits) is refused with INVALID_PSKC weak suite, nothing imported; the 8-digit DSC+ and a 6-digit legacy DSC import', async () => {
    const before = (await h.services.devices.listAllStock()).length;
    const ocra = (serial: string, suite: string): ImportedKey => ({
      serial,
      keyId: '1',
      algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc#ocra',
      family: 'ocra',
      suite,
      secret: Buffer.from('12345678901234567890123456789012'),
    });
    const weak = [
      ocra('WEAKS1', 'OCRA-1:HOTP-SHA256-4:QN06-PSHA1'),
      ocra('WEAKS2', 'OCRA-1:HOTP-SHA1-6:QN08-PSHA1'),
      ocra('WEAKS3', 'OCRA-1:HOTP-SHA1-4:QN06'),
      ocra('WEAKS4', 'OCRA-1:HOTP-SHA1-8:QN04'),
      ocra('WEAKS5', 'OCRA-1:HOTP-SHA256-8:QN04-PSHA1'),
    ];
    await expectEachRefused(weak, 'weak suite', before);
    await h.services.devices.importStock([ocra('STRONG1', 'OCRA-1:HOTP-SHA256-8:QN06-PSHA1'), ocra('STRONG2', 'OCRA-1:HOTP-SHA1-6:QN08')], 'test', 'strong');
    expect((await h.services.devices.listAllStock()).length).toBe(before + 2);
  });

  /** D1: each of the keys, in a batch beside a good one, refuses the whole batch (INVALID_PSKC for that reason): the stock is as it was. */
  async function expectEachRefused(keys: ImportedKey[], reason: string, stockBefore: number): Promise<void> {
    for (const key of keys) {
      const good: ImportedKey = { serial: 'OK1', keyId: '1', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:hotp', family: 'hotp', secret: SHA1_KEY };
      await expect(h.services.devices.importStock([good, key], 'test', 'refused')).rejects.toMatchObject({
        code: 'INVALID_PSKC',
        status: 400,
        params: { reason, serial: key.serial },
      });
    }
    expect((await h.services.devices.listAllStock()).length).toBe(stockBefore);
  }
});
