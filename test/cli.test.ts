/**
 * The `sls` command against a real database. What only a process shows runs
 * as a real `sls` process: its exit code on success and on usage errors, the
 * language read from the environment when it starts, the interactive card on
 * standard input and on a terminal. The other commands run in this process
 * (`slsInProcess`: `main(argv)`, what bin/sls.js runs, its output and exit
 * code captured), each real process costing a start of Node and of the server.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { cardAnswer, sqliteDatabase, testConfig, type TestDatabase } from './support/harness.js';
import { createServices } from '../src/services.js';
import { verifyPassword } from '../src/crypto/password.js';
import type { Session } from '../src/sessions/sessions.js';
import { cliEnv, SLS_BIN, sls, slsInProcess } from './support/cli.js';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/main.js';
import type { CardFile } from '../src/devices/devices.js';

// some cases run several `sls` processes (about a second each, more on a loaded machine)
vi.setConfig({ testTimeout: 90_000 });

let db: TestDatabase;
let env: NodeJS.ProcessEnv;
const fixture = (name: string) => new URL(`./fixtures/pskc/${name}`, import.meta.url).pathname;

beforeAll(async () => {
  db = await sqliteDatabase();
  env = cliEnv(db);
});
afterAll(async () => {
  await db.drop();
});

describe('sls user', () => {
  it('A1/A6: user create makes a user, account and equity; user show prints them', async () => {
    const created = await sls(
      ['user', 'create', '--username', 'alice', '--password', 'correct horse battery', '--account', 'U1000001', '--equity', '2500000'],
      env,
    );
    expect(created).toMatchObject({ code: 0, stdout: 'Created user alice in account U1000001.\n' });
    const shown = await sls(['user', 'show', 'alice', '--json'], env);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      username: 'alice',
      account: 'U1000001',
      equityUsd: 2_500_000,
      primaryUser: true,
      locked: false,
      devices: [],
    });
  });

  it('A3/A4: bad usernames and weak passwords exit non-zero with a one-line message', async () => {
    const cases: [string[], string][] = [
      [['--username', 'bob!', '--password', 'correct horse battery'], 'sls: BAD CHARACTER\n'],
      [['--username', 'Bob', '--password', 'correct horse battery'], 'sls: Usernames are lower case: use only lower-case letters and digits.\n'],
      [['--username', 'bob', '--password', 'short'], 'sls: This password is too short: use at least 8 characters.\n'],
      [['--username', 'alice', '--password', 'correct horse battery'], 'sls: The user name alice is already taken.\n'],
      [
        ['--username', 'bob', '--password', 'correct horse battery', '--equity', 'lots'],
        'sls: The amount must be a number with at most 2 decimals, like 1500000 or 1500000.50.\n',
      ],
    ];
    for (const [args, stderr] of cases) {
      const res = await slsInProcess(['user', 'create', ...args], env);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.stderr).toBe(stderr);
    }
    expect((await slsInProcess(['user', 'show', 'nobody'], env)).stderr).toBe('sls: No such user.\n');
  });

  it('X1, A4: user create and staff create take the password on standard input (--password-stdin), where the process list and the shell history never show it; neither way, or both, is refused with one line', async () => {
    const typed = 'a phrase on standard input 7';
    const user = await sls(['user', 'create', '--username', 'stdinuser', '--password-stdin'], env, `${typed}\n`);
    expect(user, user.stderr).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Created user stdinuser in account U\d{7}\.\n$/) });
    const staff = await sls(['staff', 'create', '--username', 'stdinagent', '--password-stdin', '--role', 'client_services'], env, `${typed}\r\n`);
    expect(staff, staff.stderr).toMatchObject({ code: 0 });
    // the password typed is the password: it checks (the line's end is not part of it)
    const services = await createServices(testConfig(db), { warn: () => undefined });
    try {
      for (const username of ['stdinuser', 'stdinagent']) {
        const row = await services.users.getByUsername(username);
        expect(await verifyPassword(await services.users.passwordHash(row.id), typed), username).toBe(true);
      }
    } finally {
      await services.close();
    }
    const refusals: [string[], string | undefined, string][] = [
      [
        ['--username', 'nopassword'],
        undefined,
        'sls: Give the password on standard input with --password-stdin (or with --password, which other users of this machine can see).\n',
      ],
      [
        ['--username', 'twopasswords', '--password', typed, '--password-stdin'],
        `${typed}\n`,
        'sls: Give the password once: --password-stdin or --password, not both.\n',
      ],
      [
        ['--username', 'emptypassword', '--password-stdin'],
        '',
        'sls: Give the password on standard input with --password-stdin (or with --password, which other users of this machine can see).\n',
      ],
    ];
    for (const [args, input, stderr] of refusals) {
      const run = await sls(['user', 'create', ...args], env, input);
      expect([args, run.code, run.stderr]).toEqual([args, 1, stderr]);
    }
  });

  it('M2/M6: user create --mobile puts a number on record for the first login to confirm; a trunk prefix is refused', async () => {
    const refused = await slsInProcess(['user', 'create', '--username', 'carol', '--password', 'correct horse battery', '--mobile', 'FR:0612345678'], env);
    expect(refused).toMatchObject({ code: 1, stderr: 'sls: Enter the number without its leading 0: the country is chosen separately.\n' });
    expect((await slsInProcess(['user', 'show', 'carol'], env)).stderr).toBe('sls: No such user.\n');
    const created = await slsInProcess(['user', 'create', '--username', 'carol', '--password', 'correct horse battery', '--mobile', 'FR:612345678'], env);
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('Mobile number +33 •••• ••78 on record: the first login confirms it by SMS.');
    const shown = JSON.parse((await slsInProcess(['user', 'show', 'carol', '--json'], env)).stdout);
    expect(shown.mobileNumbers).toMatchObject([{ number: '+33612345678', verified: false }]);
  });

  it('A6: account set-equity changes the equity', async () => {
    expect((await slsInProcess(['account', 'set-equity', '--account', 'U1000001', '--equity', '999999.99'], env)).code).toBe(0);
    expect(JSON.parse((await slsInProcess(['user', 'show', 'alice', '--json'], env)).stdout).equityUsd).toBe(999999.99);
  });
});

describe('sls device and the card emulator (C2, C3, C8)', () => {
  let card: CardFile;
  let cardPath: string;

  it('C2: device add-dscplus issues an active card and writes the card file', async () => {
    cardPath = join(db.dataDir, 'card.json');
    const res = await slsInProcess(['device', 'add-dscplus', '--user', 'alice', '--pin', '1234', '--out', cardPath], env);
    expect(res.code).toBe(0);
    card = JSON.parse(readFileSync(cardPath, 'utf8')) as CardFile;
    expect(card).toMatchObject({
      format: 'sls-dscplus-card/1',
      suite: 'OCRA-1:HOTP-SHA256-8:QN06-PSHA1',
      pin: '1234',
      serial: expect.stringMatching(/^DSC\d{7}$/),
    });
    expect(card.seed).toMatch(/^[0-9a-f]{64}$/);
    expect(res.stdout).toBe(`Issued DSC+ ${card.serial} to alice; card file written to ${cardPath}.\n`);
    const list = JSON.parse((await slsInProcess(['device', 'list', '--user', 'alice', '--json'], env)).stdout);
    expect(list).toMatchObject([{ type: 'dscplus', serial: card.serial, state: 'active' }]);
  });

  it('C2/C3: sls dsc --pin --challenge prints only the 8-digit response', async () => {
    const res = await slsInProcess(['dsc', '--card', cardPath, '--pin', '1234', '--challenge', '123456'], env);
    expect(res).toMatchObject({ code: 0, stdout: `${cardAnswer(card, '123456')}\n` });
    const wrongPin = await slsInProcess(['dsc', '--card', cardPath, '--pin', '4321', '--challenge', '123456'], env);
    expect(wrongPin.stdout.trim()).not.toBe(cardAnswer(card, '123456'));
  });

  it('C2: the interactive card shows PIN> then CHALLNG> then the response', async () => {
    const res = await sls(['dsc', '--card', cardPath], env, '\n1234\n654321\n');
    expect(res.code).toBe(0);
    const pin = res.stdout.indexOf('PIN>');
    const challenge = res.stdout.indexOf('CHALLNG>');
    const response = res.stdout.indexOf(cardAnswer(card, '654321'));
    expect(pin).toBeGreaterThan(0);
    expect(challenge).toBeGreaterThan(pin);
    expect(response).toBeGreaterThan(challenge);
  });

  it('C2: the card takes a challenge of exactly 6 digits: another length is Err and asked again, or refused on the command line', async () => {
    const res = await sls(['dsc', '--card', cardPath], env, '\n1234\n12345\n1234567\n654321\n');
    expect(res.stdout.split('Err').length - 1).toBe(2);
    expect(res.stdout).toContain(cardAnswer(card, '654321'));
    for (const challenge of ['12345', '1234567']) {
      const refused = await slsInProcess(['dsc', '--card', cardPath, '--pin', '1234', '--challenge', challenge], env);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain('6 digits');
    }
  });

  it.skipIf(!existsSync('/usr/bin/script'))('C2: on a terminal the typed PIN is shown as stars, the challenge as typed', async () => {
    // script(1) gives the emulator a terminal; the answers are typed after each prompt, as a person would
    const child = spawn('script', ['-qec', `node ${SLS_BIN} dsc --card ${cardPath}`, '/dev/null'], { env });
    let shown = '';
    const typing: [string, string][] = [
      ['[press]', '\n'],
      ['PIN> ', '1234\n'],
      ['CHALLNG> ', '654321\n'],
    ];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no response: ${shown}`)), 10_000);
      child.stdout.on('data', (chunk: Buffer) => {
        shown += chunk.toString();
        const [prompt, keys] = typing[0] ?? [];
        if (prompt && shown.trimEnd().endsWith(prompt.trim())) {
          typing.shift();
          child.stdin.write(keys);
        }
        if (shown.includes(cardAnswer(card, '654321'))) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill();
    expect(shown).toContain('PIN> ****');
    expect(shown).not.toMatch(/PIN> 1234/);
    expect(shown).toContain('CHALLNG> 654321');
  });

  it('C2: the card refuses a PIN that is not 4 digits (Err) and asks again', async () => {
    const res = await sls(['dsc', '--card', cardPath], env, '\n12\n1234\n111111\n');
    expect(res.stdout).toContain('Err');
    expect(res.stdout).toContain(cardAnswer(card, '111111'));
  });

  it('C8: import-pskc fills the stock (plain, pre-shared key, password) and cards are issued from it', async () => {
    expect((await slsInProcess(['device', 'import-pskc', fixture('batch-plain.xml')], env)).stdout).toBe(
      'Imported 3 cards into the stock (batch batch-plain.xml).\n',
    );
    // X1, D5: the pre-shared key from a file only its owner reads (--key-file), not from the command line
    const keyFile = join(db.dataDir, 'batch-aes.key');
    writeFileSync(keyFile, '000102030405060708090a0b0c0d0e0f\n', { mode: 0o600 });
    const aes = await slsInProcess(['device', 'import-pskc', fixture('batch-aes.xml'), '--key-file', keyFile], env);
    expect(aes, aes.stderr).toMatchObject({ code: 0 });
    expect((await slsInProcess(['device', 'import-pskc', fixture('batch-pbkdf2.xml'), '--password', 'correct horse battery', '--batch', 'b3'], env)).code).toBe(
      0,
    );
    const stock = JSON.parse((await slsInProcess(['device', 'list', '--stock', '--json'], env)).stdout) as { serial: string }[];
    expect(stock.map((d) => d.serial)).toEqual(['DSC0000001', 'DSC0000002', 'DSC0000003', 'DSC0000101', 'DSC0000102', 'DSC0000201', 'DSC0000202']);

    const out = join(db.dataDir, 'stock-card.json');
    expect((await slsInProcess(['device', 'add-dscplus', '--user', 'alice', '--pin', '2468', '--serial', 'DSC0000101', '--out', out], env)).code).toBe(0);
    const stockCard = JSON.parse(readFileSync(out, 'utf8')) as CardFile;
    expect(stockCard.serial).toBe('DSC0000101');
  });

  it('C8: a wrong key, a repeated batch or a broken file imports nothing', async () => {
    const wrongKey = await slsInProcess(['device', 'import-pskc', fixture('batch-aes.xml'), '--key', 'ffeeddccbbaa99887766554433221100'], env);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(
      /^sls: The PSKC file cannot be imported: (the key or password given does not open it|a MAC does not match: the file was altered, or the key is another)\.\n$/,
    );
    const again = await slsInProcess(['device', 'import-pskc', fixture('batch-plain.xml')], env);
    expect(again.stderr).toBe('sls: Serial number already in use: DSC0000001, DSC0000002, DSC0000003.\n');
    const broken = join(db.dataDir, 'broken.xml');
    writeFileSync(broken, '<KeyContainer');
    expect((await slsInProcess(['device', 'import-pskc', broken], env)).code).toBe(1);
    expect((await slsInProcess(['device', 'import-pskc', join(db.dataDir, 'missing.xml')], env)).stderr).toBe(
      `sls: The PSKC file ${join(db.dataDir, 'missing.xml')} cannot be read: check its name and its permissions.\n`,
    );
    // X3: a file bigger than any batch (here sparse: 65 MiB of nothing) is refused before it is read; a folder is no file
    const huge = join(db.dataDir, 'huge.xml');
    writeFileSync(huge, '');
    truncateSync(huge, 65 * 1024 * 1024);
    expect(await slsInProcess(['device', 'import-pskc', huge], env)).toMatchObject({
      code: 1,
      stderr: `sls: The PSKC file ${huge} is bigger than a batch may be (64 MiB at most): split the batch, or check that it is the right file.\n`,
    });
    expect((await slsInProcess(['device', 'import-pskc', db.dataDir], env)).stderr).toBe(
      `sls: The PSKC file ${db.dataDir} cannot be read: check its name and its permissions.\n`,
    );
    const stock = JSON.parse((await slsInProcess(['device', 'list', '--stock', '--json'], env)).stdout) as unknown[];
    expect(stock).toHaveLength(6);
  });

  it('C2: a PIN that is not 4 digits is refused when issuing a card', async () => {
    const res = await slsInProcess(['device', 'add-dscplus', '--user', 'alice', '--pin', '12345', '--out', join(db.dataDir, 'x.json')], env);
    expect(res).toMatchObject({ code: 1, stderr: 'sls: The PIN must be 4 digits.\n' });
  });
});

describe('sls ocra (C3)', () => {
  const vectors = JSON.parse(readFileSync(new URL('./vectors/ocra_vectors.json', import.meta.url), 'utf8')) as {
    suites: {
      suite: string;
      vectors: {
        key_hex: string;
        question: string;
        challenges?: { client: string; server: string; order: string };
        counter: number | null;
        pin: string | null;
        pin_hash_hex: string | null;
        timestamp_hex: string | null;
        expected: string;
      }[];
    }[];
  };
  // one vector of every suite of RFC 6287 Appendix C, through the command line
  const picks = vectors.suites.map((s) => ({ suite: s.suite, ...s.vectors[1]! }));

  it.each(picks)('C3: $suite question $question -> $expected', async (v) => {
    // RFC 6287 §7.3: a mutual challenge-response's two challenges, one --question each, in the order of the computation
    const [first, second] =
      v.challenges?.order === 'server||client' ? [v.challenges.server, v.challenges.client] : [v.challenges?.client, v.challenges?.server];
    const questions = v.challenges ? ['--question', first!, '--question', second!] : ['--question', v.question];
    const args = ['ocra', '--suite', v.suite, '--key', v.key_hex, ...questions];
    if (v.counter !== null) args.push('--counter', String(v.counter));
    if (v.pin_hash_hex !== null) args.push('--pin-hash', v.pin_hash_hex);
    if (v.timestamp_hex !== null) args.push('--timestamp', v.timestamp_hex);
    const res = await slsInProcess(args, env);
    expect(res).toMatchObject({ code: 0, stdout: `${v.expected}\n` });
  });

  it('C3: --pin gives the same value as --pin-hash', async () => {
    const res = await slsInProcess(
      [
        'ocra',
        '--suite',
        'OCRA-1:HOTP-SHA256-8:QN08-PSHA1',
        '--key',
        '3132333435363738393031323334353637383930313233343536373839303132',
        '--question',
        '00000000',
        '--pin',
        '1234',
      ],
      env,
    );
    expect(res.stdout).toBe('83238735\n');
  });

  it('C3: malformed suites and inputs exit non-zero with one line', async () => {
    const bad = [
      ['ocra', '--suite', 'OCRA-9:HOTP-SHA1-6:QN08', '--key', '00', '--question', '1'],
      ['ocra', '--suite', 'OCRA-1:HOTP-SHA1-6:QN08', '--key', 'zz', '--question', '1'],
      ['ocra', '--suite', 'OCRA-1:HOTP-SHA1-6:QN08', '--key', '00', '--question', 'abc'],
      ['ocra', '--suite', 'OCRA-1:HOTP-SHA1-6:C-QN08', '--key', '00', '--question', '1'],
      ['ocra', '--suite', 'OCRA-1:HOTP-SHA1-6:QN08-T1M', '--key', '00', '--question', '1', '--timestamp', 'xyz'],
    ];
    for (const args of bad) {
      const res = await slsInProcess(args, env);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(res.stderr).toMatch(/^sls: /);
    }
  });
});

describe('secrets kept off the command line (X1, D5)', () => {
  /** A file holding SECRET, of MODE. */
  function secretFile(name: string, secret: string, mode = 0o600): string {
    const path = join(db.dataDir, name);
    writeFileSync(path, secret, { mode });
    chmodSync(path, mode);
    return path;
  }

  it('X1, D5, C2: device add-dscplus takes the PIN on standard input (--pin-file -): the arguments of the running sls, which every user of the machine can read, hold no PIN', async () => {
    expect((await slsInProcess(['user', 'create', '--username', 'cara', '--password', 'correct horse battery'], env)).code).toBe(0);
    const out = join(db.dataDir, 'cara.json');
    const child = spawn(process.execPath, [SLS_BIN, 'device', 'add-dscplus', '--user', 'cara', '--pin-file', '-', '--out', out], { env });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // what `ps` shows of it while it waits for the PIN (spawn returns once sls runs)
    const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
    expect(argv).toContain('--pin-file');
    expect(argv.join(' ')).not.toMatch(/7391/);
    child.stdin.end('7391\n');
    expect(await exited, stderr).toBe(0);
    const card = JSON.parse(readFileSync(out, 'utf8')) as CardFile;
    expect(card.pin).toBe('7391');
    // and the card answers with that PIN, read from a file of its owner (first line)
    const pinFile = secretFile('cara.pin', '7391\nnot read\n');
    expect(await slsInProcess(['dsc', '--card', out, '--pin-file', pinFile, '--challenge', '123456'], env)).toMatchObject({
      code: 0,
      stdout: `${cardAnswer(card, '123456')}\n`,
    });
  });

  it('X1, D5, X3: a secret file other users may read, a folder, an empty file, a secret given twice or not at all: refused with one line, nothing issued', async () => {
    expect((await slsInProcess(['user', 'create', '--username', 'dora', '--password', 'correct horse battery'], env)).code).toBe(0);
    const out = join(db.dataDir, 'dora.json');
    const issue = (...more: string[]) => slsInProcess(['device', 'add-dscplus', '--user', 'dora', '--out', out, ...more], env);
    const exposed = secretFile('dora-exposed.pin', '7391\n', 0o644);
    const group = secretFile('dora-group.pin', '7391\n', 0o640);
    const empty = secretFile('dora-empty.pin', '\n');
    const folder = join(db.dataDir, 'pin-folder');
    mkdirSync(folder);
    const cases: [string[], string][] = [
      [
        ['--pin-file', exposed],
        `sls: The file ${exposed} of --pin-file may be read or changed by other users (mode 0644), or is not yours: run chmod 600 ${exposed} as its owner, then run the command again.\n`,
      ],
      [['--pin-file', group], expect.stringContaining('(mode 0640)') as unknown as string],
      [
        ['--pin-file', folder],
        `sls: The file ${folder} of --pin-file cannot be read as a secret: give a file (not a folder) of at most 64 KiB that you can read.\n`,
      ],
      [['--pin-file', empty], 'sls: --pin-file gave nothing: the secret is the first line of the file or of standard input.\n'],
      [['--pin-file', secretFile('dora.pin', '7391'), '--pin', '7391'], 'sls: Give --pin once: --pin-file or --pin, not both.\n'],
      [
        [],
        'sls: Give --pin-file: a file only you can read (chmod 600), or - and the secret on standard input (or --pin, which other users of this machine can see).\n',
      ],
    ];
    for (const [more, stderr] of cases) {
      const res = await issue(...more);
      expect(res, more.join(' ')).toMatchObject({ code: 1, stdout: '', stderr });
    }
    expect(existsSync(out)).toBe(false);
    expect(JSON.parse((await slsInProcess(['device', 'list', '--user', 'dora', '--json'], env)).stdout)).toEqual([]);
    // standard input gives one secret: two of them asked of it is refused before it is read
    const twice = await sls(
      ['ocra', '--suite', 'OCRA-1:HOTP-SHA256-8:QN08-PSHA1', '--key-file', '-', '--pin-file', '-', '--question', '00000000'],
      env,
      '00\n',
    );
    expect(twice).toMatchObject({
      code: 1,
      stderr: 'sls: Standard input gives one secret only: --key-file reads it already; give --pin-file a file only you can read.\n',
    });
  });

  it('X1, D5, C3: sls ocra takes its key, PIN and hashed PIN from files or standard input, with the values of the command line', async () => {
    const key = '3132333435363738393031323334353637383930313233343536373839303132';
    const base = ['ocra', '--suite', 'OCRA-1:HOTP-SHA256-8:QN08-PSHA1', '--question', '00000000'];
    const keyFile = secretFile('ocra.key', `${key}\n`);
    expect(await slsInProcess([...base, '--key-file', keyFile, '--pin-file', secretFile('ocra.pin', '1234\n')], env)).toMatchObject({
      code: 0,
      stdout: '83238735\n',
    });
    const pinHash = '7110eda4d09e062aa5e4a390b0a572ac0d2c0220';
    expect(await slsInProcess([...base, '--key-file', keyFile, '--pin-hash-file', secretFile('ocra.pinhash', pinHash)], env)).toMatchObject({
      code: 0,
      stdout: '83238735\n',
    });
    expect(await sls([...base, '--key-file', '-', '--pin', '1234'], env, `${key}\n`)).toMatchObject({ code: 0, stdout: '83238735\n' });
    // a file of no hex is refused naming the file's option
    expect((await slsInProcess([...base, '--key-file', secretFile('ocra.bad', 'not hex'), '--pin', '1234'], env)).stderr).toMatch(/^sls: .*--key-file/);
  });
});

describe('sls audit (X1)', () => {
  it('X1: audit list shows the events of a user; audit verify checks the chain', async () => {
    const list = await slsInProcess(['audit', 'list', '--user', 'alice', '--json'], env);
    const events = (JSON.parse(list.stdout) as { event: string }[]).map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['user.created', 'device.added']));
    const verify = await slsInProcess(['audit', 'verify'], env);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^Audit log intact: \d+ entries, head [0-9a-f]{64}\.\n$/);
  });

  it('X1: audit verify exits non-zero when an entry was altered (by someone who first dropped the append-only trigger)', async () => {
    const raw = new BetterSqlite3(db.url.slice('sqlite:'.length));
    expect(() => raw.prepare("update audit_log set event = 'user.deleted' where seq = 1").run()).toThrow(/append-only/);
    raw.exec('drop trigger audit_log_no_update');
    raw.prepare("update audit_log set event = 'user.deleted' where seq = 1").run();
    raw.close();
    const verify = await slsInProcess(['audit', 'verify'], env);
    expect(verify.code).toBe(1);
    expect(verify.stderr).toBe('sls: The audit log has been tampered with: entry 1 was altered.\n');
  });
});

describe('usage errors', () => {
  it('X3: unknown commands, missing options and bad numbers exit non-zero', async () => {
    expect((await sls(['frobnicate'], env)).code).not.toBe(0);
    expect((await sls(['user', 'create', '--username', 'x'], env)).code).not.toBe(0);
    const port = await sls(['serve', '--port', 'eighty'], env);
    expect(port.code).toBe(1);
    expect(port.stderr).toBe('sls: “--port” must be a whole number from 0 to 65535.\n');
    expect((await sls(['dsc', '--card', '/nonexistent.json', '--pin', '1234', '--challenge', '1'], env)).stderr).toMatch(/cannot be read/);
    expect((await sls(['user', 'show', 'alice'], { ...env, SLS_DATABASE_URL: 'mysql://x' })).stderr).toMatch(/^sls: Invalid setting SLS_DATABASE_URL/);
  });

  it('X2: messages follow the language of the environment', async () => {
    const res = await sls(['user', 'show', 'nobody'], { ...env, LANG: 'fr_FR.UTF-8' });
    expect(res.stderr).toBe('sls: Utilisateur inconnu.\n');
  });
});

describe('sls device import-scc, helpdesk ship and jobs run (S1, C6, C8)', () => {
  it('S1: import-scc imports a legacy card from its codes; bad files import nothing', async () => {
    const file = join(db.dataDir, 'scc.txt');
    writeFileSync(file, ['# SCC 0042', ...Array.from({ length: 100 }, (_, i) => `${i + 1},${String(i).padStart(3, '0')}`)].join('\n'));
    const res = await slsInProcess(['device', 'import-scc', file, '--user', 'alice', '--serial', 'SCC-0042'], env);
    expect(res).toMatchObject({ code: 0, stdout: 'Imported Security Code Card SCC-0042 (100 codes) for alice.\n' });
    writeFileSync(file, '1,123\n3,456\n');
    expect((await slsInProcess(['device', 'import-scc', file, '--user', 'alice', '--serial', 'SCC-0043'], env)).stderr).toBe(
      'sls: Line 2: index 3 is out of order (the codes go from index 1, one after the other).\n',
    );
    writeFileSync(file, '12\n');
    expect((await slsInProcess(['device', 'import-scc', file, '--user', 'alice', '--serial', 'SCC-0043'], env)).code).toBe(1);
    const types = (JSON.parse((await slsInProcess(['device', 'list', '--user', 'alice', '--json'], env)).stdout) as { type: string }[]).map((d) => d.type);
    expect(types.filter((t) => t === 'scc')).toHaveLength(1);
  });

  it('C6/C8: a requested DSC+ is shipped from the stock with a card file; jobs run activates it three weeks later', async () => {
    expect((await slsInProcess(['staff', 'create', '--username', 'agent', '--password', 'correct horse battery', '--role', 'client_services'], env)).code).toBe(
      0,
    );
    expect((await slsInProcess(['account', 'set-equity', '--account', 'U1000001', '--equity', '2000000'], env)).code).toBe(0);
    const services = await createServices(testConfig(db), { warn: () => undefined });
    const alice = await services.users.getByUsername('alice');
    // a session opened with alice's card (R2: not under temporary access)
    const [aliceCard] = await services.devices.listForUser(alice.id);
    const session = { userId: alice.id, scope: 'full', deviceId: aliceCard!.id, createdAt: Date.now(), verifiedAt: null } as Session;
    const { device } = await services.dscPlusRequests.request(session, {
      address: { name: 'Alice', line1: '1 Main St', city: 'Springfield', postalCode: '12345', country: 'US' },
      pin: '2468',
    });
    await services.close();
    const out = join(db.dataDir, 'shipped.json');
    const shipped = await slsInProcess(['helpdesk', 'ship', '--staff', 'agent', '--device', device.id, '--serial', 'DSC0000102', '--out', out], env);
    expect(shipped).toMatchObject({ code: 0, stdout: `Shipped DSC+ DSC0000102; card file written to ${out}.\n` });
    const card = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
    expect(card).toMatchObject({ serial: 'DSC0000102', suite: 'OCRA-1:HOTP-SHA256-8:QN06-PSHA1' });
    expect(card.pin).toBeUndefined();
    expect((await slsInProcess(['dsc', '--card', out, '--pin', '2468', '--challenge', '123456'], env)).stdout).toMatch(/^\d{8}\n$/);
    // X6: then the notices due are delivered (alice has no address: none)
    expect((await slsInProcess(['jobs', 'run'], env)).stdout).toMatch(
      /^Jobs run: 0 card\(s\) auto-activated, 0 notice\(s\) sent\.\nOutbox: 0 notice\(s\) delivered, 0 to try again later, 0 failed\.\n$/,
    );
    const again = await slsInProcess(['helpdesk', 'ship', '--staff', 'agent', '--device', device.id, '--serial', 'DSC0000201', '--out', out], env);
    expect(again.stderr).toBe('sls: The device cannot do that in its state (shipped).\n');
  });
});

describe('the command line of a mature tool (issue 16)', () => {
  it('[ours] sls --version prints the version of package.json', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) expect(await slsInProcess([flag], process.env)).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('[ours] no help text names a rule of the specification (A1, C6 …): they are for the code, not for operators', () => {
    const helps: string[] = [];
    const walk = (command: Command): void => {
      helps.push(command.helpInformation());
      command.commands.forEach(walk);
    };
    walk(buildProgram());
    expect(helps.length).toBeGreaterThan(40);
    const named = helps.flatMap((help) => help.split('\n').filter((line) => /\b[A-Z]\d{1,2}\b(?![.:]\d)|\[ours\]/.test(line)));
    expect(named).toEqual([]);
  });
});
