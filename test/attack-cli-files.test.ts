/**
 * The files and the standard input `sls` reads, attacked (X1, X3, A1, C8):
 * personal data given on the command line (every user of the machine sees a
 * process's arguments, the shell keeps them), and inputs that never end or
 * never open — a huge file, /dev/zero, a FIFO with no writer, an endless
 * standard input — handed to the operator. Each file sls reads whole is
 * bounded and opened without blocking; each is refused with a stable error
 * from the translation files, nothing stored.
 *
 * What only a process shows (standard input, a FIFO that would hold the
 * process) runs as real `sls` processes; the rest in this process.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, writeFileSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createServices, type Services } from '../src/services.js';
import { loadConfig } from '../src/config.js';
import { DATABASES, PASSWORD, openTestDatabase, testConfig, uniqueUsername, type TestDatabase } from './support/harness.js';
import { cliEnv, sls, slsInProcess, type CliResult } from './support/cli.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 60_000 });

/** A refusal as every sls error: exit 1, one line "sls: …" saying WHAT, no stack. */
function expectRefused(run: CliResult, what: RegExp): void {
  expect(run.code, run.stdout + run.stderr).toBe(1);
  expect(run.stderr).toMatch(/^sls: /);
  expect(run.stderr).toMatch(what);
  expect(run.stderr).not.toMatch(/^\s+at |unexpected error|E[A-Z]{3,}: /m);
}

describe.each(DATABASES)('the files and standard input sls reads (%s)', (name) => {
  let db: TestDatabase;
  let env: NodeJS.ProcessEnv;
  let services: Services;
  let dir: string;
  let fifo: string;
  let huge: string;

  beforeAll(async () => {
    db = await openTestDatabase(name);
    env = cliEnv(db);
    services = await createServices(testConfig(db));
    dir = mkdtempSync(join(tmpdir(), 'sls-cli-files-'));
    fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // 65 MiB, without writing them (a sparse file): more than a PSKC batch, than any text file sls reads
    huge = join(dir, 'huge');
    const fd = openSync(huge, 'w');
    ftruncateSync(fd, 65 * 1024 * 1024);
    closeSync(fd);
  });
  afterAll(async () => {
    await services?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('X1, A1: sls entity create takes the date of birth, the document number and the SSN from files only their owner reads or from standard input (--dob-file, --id-number-file, --ssn-file): never on the command line; a file others may read is refused', async () => {
    const dob = join(dir, 'dob');
    const number = join(dir, 'number');
    writeFileSync(dob, '1971-03-04\n', { mode: 0o600 });
    writeFileSync(number, 'X1234567\n', { mode: 0o600 });
    const withDocument = await slsInProcess(
      [
        'entity',
        'create',
        '--kind',
        'individual',
        '--name',
        'Ann Fox',
        '--citizenship',
        'FR',
        '--residence',
        'FR',
        '--dob-file',
        dob,
        '--id-type',
        'passport',
        '--id-number-file',
        number,
      ],
      env,
    );
    expect(withDocument.code, withDocument.stderr).toBe(0);
    const document = await services.entities.view(withDocument.stdout.trim(), true);
    expect(document.identification).toMatchObject({ dateOfBirth: '1971-03-04', documentType: 'passport', documentNumber: 'X1234567' });

    // a real process: the SSN on standard input
    const withSsn = await sls(
      ['entity', 'create', '--kind', 'individual', '--name', 'Bob Fox', '--citizenship', 'US', '--residence', 'US', '--dob-file', dob, '--ssn-file', '-'],
      env,
      '234-56-7891\n',
    );
    expect(withSsn.code, withSsn.stderr).toBe(0);
    expect(withSsn.stderr).not.toContain('234-56-7891');
    expect((await services.entities.view(withSsn.stdout.trim(), true)).identification).toMatchObject({ ssn: '234-56-7891', dateOfBirth: '1971-03-04' });

    // a file the group or others may read is refused, naming the option, the SSN not printed
    const exposed = join(dir, 'ssn-exposed');
    writeFileSync(exposed, '234-56-7892\n');
    chmodSync(exposed, 0o644);
    const before = (await services.store.db.selectFrom('entities').select('id').execute()).length;
    const refused = await slsInProcess(
      [
        'entity',
        'create',
        '--kind',
        'individual',
        '--name',
        'Cy Fox',
        '--citizenship',
        'US',
        '--residence',
        'US',
        '--dob',
        '1971-03-04',
        '--ssn-file',
        exposed,
      ],
      env,
    );
    expectRefused(refused, /--ssn-file/);
    expect(refused.stderr).not.toContain('234-56-7892');
    // both ways at once: which one is meant?
    expectRefused(
      await slsInProcess(
        [
          'entity',
          'create',
          '--kind',
          'individual',
          '--name',
          'Cy Fox',
          '--citizenship',
          'US',
          '--residence',
          'US',
          '--dob',
          '1971-03-04',
          '--ssn',
          '234-56-7892',
          '--ssn-file',
          number,
        ],
        env,
      ),
      /--ssn/,
    );
    expect((await services.store.db.selectFrom('entities').select('id').execute()).length).toBe(before);
  });

  it('X3, C8: every file sls reads whole is bounded: a file too big or a device (/dev/zero) given to import-scc, import-pskc, fx import, dsc --card, token --card, or named by SLS_SUPPORT_FILE or SLS_HOLIDAYS_FILE is refused with a stable error, nothing stored', async () => {
    const username = uniqueUsername('scc');
    expect((await slsInProcess(['user', 'create', '--username', username, '--password', PASSWORD], env)).code).toBe(0);
    const devicesBefore = (await services.store.db.selectFrom('devices').select('id').execute()).length;
    const runs: [string[], RegExp][] = [
      [['device', 'import-scc', huge, '--user', username, '--serial', 'SCC-HUGE'], /bigger than such a file may be \(1 MiB at most\)/],
      [['device', 'import-scc', '/dev/zero', '--user', username, '--serial', 'SCC-ZERO'], /cannot be read/],
      [['device', 'import-pskc', huge], /bigger than a batch may be \(64 MiB at most\)/],
      [['device', 'import-pskc', '/dev/zero'], /PSKC/],
      [['fx', 'import', huge], /bigger than such a file may be \(1 MiB at most\)/],
      [['fx', 'import', '/dev/zero'], /cannot be read/],
      [['dsc', '--card', huge, '--pin', '1234', '--challenge', '123456'], /bigger than such a file may be \(1 MiB at most\)/],
      [['dsc', '--card', '/dev/zero', '--pin', '1234', '--challenge', '123456'], /cannot be read/],
      [['token', '--card', huge], /bigger than such a file may be \(1 MiB at most\)/],
      [['token', '--card', '/dev/zero'], /cannot be read/],
    ];
    for (const [args, what] of runs) expectRefused(await slsInProcess(args, env), what);
    expect((await services.store.db.selectFrom('devices').select('id').execute()).length).toBe(devicesBefore);
    // the files the settings name, read at every start and every command
    const setting = (extra: Record<string, string>) => () => loadConfig({ SLS_MASTER_KEY: '00'.repeat(32), ...extra });
    expect(setting({ SLS_SUPPORT_FILE: huge })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_SUPPORT_FILE', reason: 'too large' }) }),
    );
    expect(setting({ SLS_HOLIDAYS_FILE: '/dev/zero' })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_HOLIDAYS_FILE', reason: 'cannot be read' }) }),
    );
  });

  it('X3, C2: the interactive card (sls dsc --card) reads standard input a line at a time, at most 1 KiB a line: a longer line (an endless stream without a line end) is refused with VALIDATION_ERROR stdin_line_too_long, exit 1; lines of a PIN and a challenge still answer', async () => {
    const card = join(dir, 'card.json');
    writeFileSync(
      card,
      JSON.stringify({ format: 'sls-dscplus-card/1', serial: 'DSC-LINES', suite: 'OCRA-1:HOTP-SHA256-8:QN06-PSHA1', seed: '31'.repeat(32) }),
      {
        mode: 0o600,
      },
    );
    // 4 MiB without a line end, where the card waits for the press, then for the PIN
    for (const input of ['7'.repeat(4 * 1024 * 1024), `\n${'1'.repeat(4 * 1024 * 1024)}\n`]) {
      const run = await sls(['dsc', '--card', card], env, input);
      expectRefused(run, /A line of standard input is longer than 1 KiB/);
      expect(run.stdout).not.toMatch(/\d{8}/);
    }
    const answered = await sls(['dsc', '--card', card], env, `\n1234\n${'x'.repeat(1000)}\n654321\n`);
    expect(answered.code, answered.stderr).toBe(0);
    expect(answered.stdout).toMatch(/│\d{8} +│/);
  });

  it('X3, X1: a FIFO no one writes to, given as a file (import-scc, import-pskc, --ssn-file, dsc --card, SLS_HOLIDAYS_FILE), and a standard input longer than a password are refused at once: the command never waits for ever nor reads without end', async () => {
    const username = uniqueUsername('fifo');
    expect((await slsInProcess(['user', 'create', '--username', username, '--password', PASSWORD], env)).code).toBe(0);
    // real processes: an open of a FIFO that blocked would hold this test's process (sls() ends one after 30 s, failing the test)
    const [scc, pskc, ssn, card, holidays] = await Promise.all([
      sls(['device', 'import-scc', fifo, '--user', username, '--serial', 'SCC-FIFO'], env),
      sls(['device', 'import-pskc', fifo], env),
      sls(
        ['entity', 'create', '--kind', 'individual', '--name', 'Di Fox', '--citizenship', 'US', '--residence', 'US', '--dob', '1971-03-04', '--ssn-file', fifo],
        env,
      ),
      sls(['dsc', '--card', fifo, '--pin', '1234', '--challenge', '123456'], env),
      // a setting naming a FIFO: every command (and the server's start) would wait on it
      sls(['user', 'show', username], { ...env, SLS_HOLIDAYS_FILE: fifo }),
    ]);
    expectRefused(scc, /cannot be read/);
    expectRefused(pskc, /PSKC/);
    expectRefused(ssn, /--ssn-file/);
    expectRefused(card, /cannot be read/);
    expectRefused(holidays, /SLS_HOLIDAYS_FILE/);
    // a password and then 70 KiB more: no password is that, and standard input is read to 64 KiB at most
    const endless = await sls(['user', 'create', '--username', uniqueUsername('stdin'), '--password-stdin'], env, `${PASSWORD}\n${'x'.repeat(70 * 1024)}`);
    expectRefused(endless, /64 KiB/);
  });
});
