/**
 * X3, X4: every `sls` command answers bad input with a clear error, found
 * from the command line itself (commander's tree of commands, not a hand
 * list): a command added to src/cli/ is fuzzed without editing this test.
 *
 * Each leaf command is run with its required arguments and options missing,
 * an unknown option, and then each of its arguments and value options in
 * turn given a fixed list of bad values (empty, blank, 5,000 characters,
 * control characters, NUL, right-to-left marks, non-numbers and numbers
 * out of range, unknown usernames, ids and serials of a plausible form;
 * for the options that take files, files that do not exist, a folder, an
 * empty file, bytes that are no text), the other required ones given a
 * plausible value. `--db` is given unusable databases.
 *
 * The runs are in-process (`main(argv)` of src/cli/main.ts, its standard
 * output and error captured): a few hundred child processes would take
 * minutes. A sample runs as real `sls` processes, to prove the process
 * answers as `main` does.
 *
 * Every refusal: a non-zero exit, standard error starting with `sls: ` (commander's
 * usage errors too, from the translation files), no stack trace, no internal error text (an
 * "unexpected error", SQLITE_, TypeError, ENOENT …), nothing secret (the
 * master key, a password, a PIN or key given); the stored data unchanged
 * (every table but the audit log, notices and counters). Runs that succeed
 * are listed in ACCEPTED, with why. After it all, `sls audit verify` passes.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Command, type Argument, type Option } from 'commander';
import { sql } from 'kysely';
import { createServices, type Services } from '../src/services.js';
import { DATABASES, PASSWORD, TEST_MASTER_KEY, createUserWithCard, openTestDatabase, testConfig, type TestDatabase } from './support/harness.js';
import { type CliResult, captured, cliEnv, sls } from './support/cli.js';
import type { CardFile } from '../src/devices/devices.js';
import { messagesOf } from '../src/i18n/resources.js';

vi.setConfig({ testTimeout: 420_000, hookTimeout: 120_000 });

/** The tables a refused command must leave as they were (not the audit log, notices, counters, login failures of its own). */
const STORED = [
  'accounts',
  'api_keys',
  'deposit_holds',
  'device_sharings',
  'devices',
  'entities',
  'fx_rates',
  'identity_verifications',
  'lockouts',
  'oidc_clients',
  'oidc_keys',
  'opt_outs',
  'phones',
  'sessions',
  'users',
  'withdrawals',
];

/** Text that is never for people: an error the command did not expect, or a library's own. */
const INTERNAL = [
  /unexpected error/i,
  /^\s+at /m,
  /SQLITE_/,
  /\b(TypeError|RangeError|ReferenceError|SyntaxError|AssertionError)\b/,
  /Cannot read propert/,
  /is not a function/,
  /undefined|\[object /,
  /\bE[A-Z]{3,}: /, // ENOENT: no such file …
  /Something went wrong/i,
];

/**
 * X2: the codes whose reason is a key of the translation files (errors.CODE_reason): their
 * message without one ("The request is not valid: {{reason}}") prints the reason as written
 * in the code, English, whatever the language. Matched per language, from the files themselves.
 */
const REASON_IS_A_KEY = ['VALIDATION_ERROR', 'INVALID_SUITE', 'INVALID_PSKC'];

function untranslatedReason(language: 'en' | 'fr' | 'zh-Hant'): (stderr: string) => boolean {
  const errors = messagesOf(language).errors as Record<string, string>;
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const line = (text: string) =>
    new RegExp(
      `^sls: ${text
        .split(/(\{\{\w+\}\})/)
        .map((part) => (/^\{\{\w+\}\}$/.test(part) ? '.*' : literal(part)))
        .join('')}$`,
      'm',
    );
  const checks = REASON_IS_A_KEY.map((code) => ({
    generic: line(errors[code]!),
    // a message of its own may begin as the generic one does ("Invalid OCRA suite {{suite}}: …")
    specific: Object.keys(errors)
      .filter((key) => key.startsWith(`${code}_`))
      .map((key) => line(errors[key]!)),
  }));
  return (stderr) => checks.some(({ generic, specific }) => generic.test(stderr) && !specific.some((own) => own.test(stderr)));
}

type Run = CliResult;

type Main = (argv: string[]) => Promise<number>;

/** Runs `sls ARGS` in this process (captured): a run that hangs for 15 s counts as one (code -1). */
function runInProcess(main: Main, args: string[]): Promise<Run> {
  return captured(async () => {
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      main(['node', 'sls', ...args]),
      new Promise<number>((resolve) => {
        timer = setTimeout(() => resolve(-1), 15_000);
      }),
    ]);
    clearTimeout(timer);
    return code;
  });
}

// ------------------------------------------------------------------ the commands, from commander's tree

interface Slot {
  /** `--user` or `<username>` */
  key: string;
  option?: Option;
  argument?: Argument;
  required: boolean;
}

interface Leaf {
  path: string[];
  command: Command;
  slots: Slot[];
  hasDb: boolean;
}

function leaves(command: Command, path: string[] = []): Leaf[] {
  const children = command.commands.filter((c) => c.name() !== 'help');
  if (children.length > 0) return children.flatMap((c) => leaves(c, [...path, c.name()]));
  const slots: Slot[] = [
    ...command.registeredArguments.map((argument) => ({ key: `<${argument.name()}>`, argument, required: argument.required })),
    ...command.options
      .filter((option) => option.required && option.long !== '--db')
      .map((option) => ({ key: option.long!, option, required: option.mandatory })),
  ];
  return [{ path, command, slots, hasDb: command.options.some((o) => o.long === '--db') }];
}

/** Commands that run until stopped when they are given what they need: only their refusals are tried, in a child process. */
const LONG_RUNNING = new Set(['serve', 'dsc']);

// ------------------------------------------------------------------ the bad values

interface Bad {
  label: string;
  value: string;
}

const BAD_STRINGS: Bad[] = [
  { label: 'empty', value: '' },
  { label: 'blank', value: '   ' },
  { label: 'over-long (5,000 characters)', value: 'a'.repeat(5_000) },
  { label: 'control characters', value: 'a\u0001\u0007\b\t\n\r\u001b\u007fb' },
  { label: 'NUL', value: 'a\u0000b' },
  { label: 'lone surrogate', value: 'a\ud800b' },
  { label: 'right-to-left marks', value: '\u202eabc\u200f' },
  { label: 'option-like', value: '--help' },
];

/** Where a number goes (its plausible value is one): other numbers and not numbers. */
const BAD_NUMBERS: Bad[] = [
  { label: 'not a number', value: 'abc' },
  { label: 'negative', value: '-1' },
  { label: 'huge', value: '99999999999999999999999' },
  { label: 'not whole', value: '1.555' },
  { label: 'exponent', value: '1e3' },
  { label: 'hexadecimal', value: '0x10' },
];

/** A value of the plausible one's form that names nothing: its prefix kept (ent_, U…), letters z, digits 9. */
function unknownLike(value: string): Bad {
  const keep = /^[a-z]+_|^[A-Z]/.exec(value)?.[0] ?? '';
  return { label: 'unknown, of the right form', value: keep + value.slice(keep.length).replace(/[a-z]/g, 'z').replace(/[A-Z]/g, 'Z').replace(/\d/g, '9') };
}

function fileSlot(slot: Slot): boolean {
  return /file/.test(slot.key) || ['--card', '--out'].includes(slot.key);
}

function badFiles(dir: string): Bad[] {
  const empty = join(dir, 'empty');
  const binary = join(dir, 'binary');
  const json = join(dir, 'wrong.json');
  writeFileSync(empty, '');
  writeFileSync(binary, Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80, 0x9f, 0xc3, 0x28]));
  writeFileSync(json, '{"serial": 5, "seed": [], "suite": null}');
  mkdirSync(join(dir, 'folder'));
  return [
    { label: 'file that does not exist', value: join(dir, 'missing', 'nothing.txt') },
    { label: 'a folder', value: join(dir, 'folder') },
    { label: 'an empty file', value: empty },
    { label: 'bytes that are no text', value: binary },
    { label: 'JSON of the wrong shape', value: json },
    { label: 'under a file', value: join(empty, 'x') },
    { label: 'over-long path', value: join(dir, 'a'.repeat(5_000)) },
  ];
}

/** What --db is given: databases it cannot use. */
function unusableDatabases(dir: string): Bad[] {
  return [
    { label: 'empty', value: '' },
    { label: 'a folder', value: join(dir, 'folder') },
    { label: 'a file that is no database', value: join(dir, 'binary') },
    { label: 'another kind of database', value: 'mysql://root@127.0.0.1/sls' },
    { label: 'a PostgreSQL URL that is not one', value: 'postgres://%zz@/' },
  ];
}

// ------------------------------------------------------------------ the database, seeded

interface Seed {
  deviceId: string;
  entityId: string;
  verificationId: string;
  accountNumber: string;
  card: CardFile;
  cardFile: string;
  dir: string;
}

async function seed(services: Services, dir: string): Promise<Seed> {
  const { user, card } = await createUserWithCard(services, '1234', { username: 'alice', accountNumber: 'U7000001' });
  await services.users.create({ username: 'agent', password: PASSWORD, role: 'client_services' }, 'test');
  await services.devices.addDscPlus({ userId: (await services.users.getByUsername('agent')).id, pin: '1234' }, 'test');
  const device = (await services.devices.listForUser(user.id))[0]!;
  const agent = await services.users.getByUsername('agent');
  const verification = await services.helpDesk.viaCommandLine().verifyIdentity(agent.id, 'alice', { method: 'id_document' });
  const cardFile = join(dir, 'card.json');
  writeFileSync(cardFile, JSON.stringify(card));
  return {
    deviceId: device.id,
    entityId: user.entityId,
    verificationId: verification.id,
    accountNumber: 'U7000001',
    card,
    cardFile,
    dir,
  };
}

/** A plausible value for each slot (by its name; by command and name where they differ), so that only the slot tried is bad. */
function plausible(leaf: Leaf, slot: Slot, s: Seed): string {
  const choices = slot.option?.argChoices ?? slot.argument?.argChoices;
  if (choices) return choices[0]!;
  const name = `${leaf.path.join(' ')} ${slot.key}`;
  const byCommand: Record<string, string> = {
    'user create --username': 'newuser1',
    'staff create --username': 'newstaff1',
    'helpdesk lock --reason': 'reported compromise',
    'device import-pskc <file>': new URL('./fixtures/pskc/batch-plain.xml', import.meta.url).pathname,
    'device import-scc <file>': join(s.dir, 'scc.txt'),
    'fx import <file>': join(s.dir, 'rates.txt'),
    'device add-dscplus --serial': 'ZZ0000001',
    'token --card': s.cardFile,
  };
  const byName: Record<string, string> = {
    '--user': 'alice',
    '<username>': 'alice',
    '--confirm': 'alice',
    '--username': 'alice',
    '--staff': 'agent',
    '--password': PASSWORD,
    '--account': s.accountNumber,
    '--equity': '1000',
    '--entity': s.entityId,
    '<entity>': s.entityId,
    '--kind': 'individual',
    '--name': 'A name',
    '--role': 'client_services',
    '--method': 'id_document',
    '--verification': s.verificationId,
    '--mobile': 'FR:612345678',
    '--device': s.deviceId,
    '--serial': 'ZZ0000001',
    '--out': join(s.dir, 'out', 'file.json'),
    '--pin': '1234',
    '--card': s.cardFile,
    '--challenge': '123456',
    '--suite': 'OCRA-1:HOTP-SHA1-6:QN08',
    '--key': '3132333435363738393031323334353637383930',
    '--question': '12345678',
    '<currency>': 'EUR',
    '<rate>': '1.08',
    '<client-id>': 'cli_aaaaaaaaaaaaaaaaaaaaaaaaaa',
    '<id>': 'key_aaaaaaaaaaaaaaaaaaaaaaaaaa',
    '<language>': 'fr',
    '--language': 'fr',
    '--time-zone': 'Europe/Paris',
    '--scope': 'withdrawals',
    '--app': 'portal',
    '--redirect-uri': 'https://rp.example/cb',
    '--limit': '5',
  };
  return byCommand[name] ?? byName[slot.key] ?? 'x';
}

/** X1, D5: secrets a command needs, optional since their -file twin may give them instead. */
const GIVEN_SECRETS = new Set(['device add-dscplus --pin', 'ocra --key']);

/** The argv of LEAF with every required slot plausible, SLOT (if any) given VALUE. */
function argv(leaf: Leaf, s: Seed, db: string, slot?: Slot, value?: string): string[] {
  const args: string[] = [...leaf.path];
  for (const other of leaf.slots.filter((o) => o.argument)) args.push(other === slot ? value! : plausible(leaf, other, s));
  for (const other of leaf.slots.filter((o) => o.option)) {
    if (other === slot) args.push(`${other.key}=${value}`);
    // X1: --password is optional (--password-stdin is the other way), and so are the secrets a -file option gives too
    // (--pin of add-dscplus, --key of ocra): given, so the other slots are what is refused
    else if (other.required || other.key === '--password' || GIVEN_SECRETS.has(`${leaf.path.join(' ')} ${other.key}`))
      args.push(other.key, plausible(leaf, other, s));
  }
  if (leaf.hasDb) args.push('--db', db);
  return args;
}

/** The refusals run again in French (X2), by the end of their label: a command given nothing, and a bad value of each kind (text, number, file). */
const FRENCH_SAMPLE = [': nothing given', ': an unknown option', ': an extra argument', ': empty', ': not a number', ': JSON of the wrong shape'];

/** Messages the translation files give the same in English and French (SPEC: "BAD CHARACTER"), as sls prints them. */
const SAME_IN_FRENCH = new Set(
  Object.entries(messagesOf('en').errors as Record<string, string>)
    .filter(([key, text]) => (messagesOf('fr').errors as Record<string, string>)[key] === text)
    .map(([, text]) => `sls: ${text}\n`),
);

/** Runs that succeed, by "command slot: label", with why they may. */
const ACCEPTED: Record<string, string> = {
  'user create --username: unknown': 'a new username of the right form: the user is created',
  'staff create --username: unknown': 'a new username of the right form: the staff member is created',
  'user create --password: control characters': 'a password may hold any character but NUL (it is never shown)',
  'staff create --password: control characters': 'a password may hold any character but NUL (it is never shown)',
  'account create --account: unknown': 'a new account number of the right form: the account is opened',
  'apikey create --name:': 'the name is free text of the operator, for the operator',
  'helpdesk verify --notes:': 'free text of the staff member, kept as given (as the API keeps it)',
  'helpdesk lock --reason:': 'free text of the staff member, kept as given (as the API keeps it)',
  'audit list --user:': 'a filter: no entries for a user that does not exist',
  'audit list --type: unknown': 'a filter: no entries of an event that never happened',
  'device add-dscplus --out:': 'any path the operator may write: relative to where sls runs; a file there is replaced',
  'device import-pskc --key: over-long': 'the plain batch needs no key: it is not read',
  'device import-scc --serial:': 'the serial printed on a card, any text',
  'fx set <currency>: unknown': 'a currency code of the right form (there is no list of them)',
  'fx set <rate>: not whole': 'a rate of currency is not a whole number',
  'ocra --key: over-long': 'an HMAC key may have any length (RFC 2104): a computation of the operator, nothing stored',
};

// ------------------------------------------------------------------ the checks

async function storedData(services: Services): Promise<string> {
  const parts: string[] = [];
  for (const table of STORED) {
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(services.store.db);
    parts.push(`${table}:${JSON.stringify(rows.rows.map((r) => JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? String(v) : v))).sort())}`);
  }
  return parts.join('\n');
}

function problemsOf(label: string, args: string[], run: Run, secrets: string[], language: 'en' | 'fr' | 'zh-Hant' = 'en'): string[] {
  const problems: string[] = [];
  const say = (what: string) =>
    problems.push(
      `${label}: ${what}\n    sls ${args.map((a) => JSON.stringify(a.length > 60 ? `${a.slice(0, 40)}…(${a.length})` : a)).join(' ')}\n    exit ${run.code}; stderr: ${JSON.stringify(run.stderr.slice(0, 300))}`,
    );
  if (run.code === -1) say('no answer within 15 s');
  else if (run.code === 0) say('exit 0 on bad input');
  // X2: commander's usage errors too (an unknown option, a missing argument …): from the translation files, as every sls error
  if (run.code !== 0 && !run.stderr.startsWith('sls: ')) say('standard error does not start with "sls: "');
  for (const pattern of INTERNAL) if (pattern.test(run.stderr)) say(`internal error text (${pattern})`);
  for (const secret of secrets) if (secret.length >= 4 && (run.stdout + run.stderr).includes(secret)) say('a secret printed');
  if (run.stderr.split('\n').filter((l) => l.startsWith('sls: ')).length > 1) say('more than one error line');
  if (untranslatedReason(language)(run.stderr)) say('a reason not from the translation files (X2)');
  return problems;
}

// ------------------------------------------------------------------ the runs

for (const name of DATABASES) {
  describe(`every sls command on bad input (${name})`, () => {
    let database: TestDatabase;
    let services: Services;
    let s: Seed;
    let dir: string;
    let files: Bad[];
    let main: Main;
    let mainInFrench: Main;
    let program: Command;
    const saved = { ...process.env };
    const cwd = process.cwd();

    beforeAll(async () => {
      database = await openTestDatabase(name);
      services = await createServices(testConfig(database), { warn: () => undefined });
      dir = mkdtempSync(join(tmpdir(), 'sls-cli-bad-'));
      s = await seed(services, dir);
      writeFileSync(join(dir, 'scc.txt'), Array.from({ length: 100 }, (_, i) => String(i).padStart(3, '0')).join('\n'));
      writeFileSync(join(dir, 'rates.txt'), 'EUR 1.08\n');
      files = badFiles(dir);
      // an --out of a relative path is written where sls runs: here, not in the repository
      process.chdir(dir);
      Object.assign(process.env, cliEnv(database, { SLS_LOG_LEVEL: 'silent' }));
      // sls of this environment's language, loaded afresh (the other database's run may have loaded it in French)
      vi.resetModules();
      ({ main } = await import('../src/cli/main.js'));
      program = (await import('../src/cli/main.js')).buildProgram();
      // X2: sls of a French environment (its language is read when it loads): a sample of the refusals again, in French
      process.env.LC_ALL = 'fr_FR.UTF-8';
      vi.resetModules();
      ({ main: mainInFrench } = await import('../src/cli/main.js'));
      process.env.LC_ALL = '';
      vi.resetModules();
    });

    afterAll(async () => {
      process.env = saved;
      process.chdir(cwd);
      await services?.close();
      await database?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('X3, X4, X2: each command, its required arguments missing, an unknown option, each argument and option given bad values: refused clearly, in words of the translation files (a sample again in French), nothing changed', async () => {
      // the commands that create come last: what they accept would otherwise be known to the others
      const all = leaves(program)
        .filter((leaf) => !LONG_RUNNING.has(leaf.path[0]!))
        .sort((a, b) => Number(a.path.at(-1) === 'create') - Number(b.path.at(-1) === 'create'));
      expect(all.length).toBeGreaterThan(40);
      const problems: string[] = [];
      const accepted = new Set<string>();
      const secrets = [TEST_MASTER_KEY, PASSWORD, s.card.seed];
      let stored = await storedData(services);
      const inFrenchToo = name === 'sqlite';
      const tryRun = async (label: string, args: string[], extraSecrets: string[] = []): Promise<void> => {
        const run = await runInProcess(main, args);
        const helped = run.code === 0 && run.stdout.startsWith('Usage: sls ') && args.includes('--help');
        const acceptable = run.code === 0 && (helped || Object.keys(ACCEPTED).some((key) => label.startsWith(key)));
        if (acceptable) accepted.add(label);
        else problems.push(...problemsOf(label, args, run, [...secrets, ...extraSecrets]));
        const after = await storedData(services);
        if (run.code !== 0 && after !== stored) problems.push(`${label}: refused, but the stored data changed`);
        stored = after;
        // X2: a sample in French: its own words, no reason left in English (on one database: the words do not depend on it)
        if (inFrenchToo && run.code !== 0 && run.stderr.startsWith('sls: ') && FRENCH_SAMPLE.some((sample) => label.endsWith(sample))) {
          const french = await runInProcess(mainInFrench, args);
          problems.push(...problemsOf(`${label} (fr)`, args, french, [...secrets, ...extraSecrets], 'fr'));
          if (french.stderr === run.stderr && !SAME_IN_FRENCH.has(run.stderr))
            problems.push(`${label} (fr): the same text as in English (X2): ${JSON.stringify(run.stderr.slice(0, 200))}`);
          stored = await storedData(services);
        }
      };
      for (const leaf of all) {
        const name = leaf.path.join(' ');
        const db = leaf.hasDb ? ['--db', database.url] : [];
        if (leaf.slots.some((slot) => slot.required)) await tryRun(`${name}: nothing given`, [...leaf.path, ...db]);
        await tryRun(`${name}: an unknown option`, [...argv(leaf, s, database.url), '--no-such-option']);
        await tryRun(`${name}: an extra argument`, [...argv(leaf, s, database.url), 'extra']);
        for (const slot of leaf.slots) {
          const usual = plausible(leaf, slot, s);
          const values = [
            ...BAD_STRINGS,
            ...(/^\d/.test(usual) ? BAD_NUMBERS : []),
            ...(fileSlot(slot) ? files : /^[0-9a-fA-F.]+$/.test(usual) ? [] : [unknownLike(usual)]),
          ];
          const secret = ['--password', '--pin', '--key', '--pin-hash'].includes(slot.key);
          for (const bad of values) {
            await tryRun(`${name} ${slot.key}: ${bad.label}`, argv(leaf, s, database.url, slot, bad.value), secret ? [bad.value] : []);
          }
        }
        // --db is the same option everywhere: tried on the first command of each group
        if (leaf.hasDb && all.find((other) => other.path[0] === leaf.path[0] && other.hasDb) === leaf) {
          for (const bad of unusableDatabases(dir)) await tryRun(`${name} --db: ${bad.label}`, [...argv(leaf, s, bad.value)]);
        }
      }
      expect(problems, problems.join('\n')).toEqual([]);
      // every exception of ACCEPTED is still needed
      expect(Object.keys(ACCEPTED).filter((key) => ![...accepted].some((label) => label.startsWith(key)))).toEqual([]);
      // X1: the audit chain still verifies
      expect(await runInProcess(main, ['audit', 'verify', '--db', database.url])).toMatchObject({ code: 0 });
    });

    it("X2, X3: commander's own usage errors (an unknown command or option, a required option or argument missing, an option without its value, too many arguments) are told as every sls error, from the translation files, in the environment's language", async () => {
      const usage: [string[], string, string][] = [
        [['frobnicate'], 'sls has no command “frobnicate”: see sls --help.', "sls n'a pas de commande « frobnicate » : voir sls --help."],
        [
          ['user', 'creat'],
          'sls user has no command “creat”. Did you mean create? See sls user --help.',
          "sls user n'a pas de commande « creat ». Vouliez-vous dire create ? Voir sls user --help.",
        ],
        [
          ['user', 'show', 'alice', '--jsn'],
          'sls user show has no option “--jsn”. Did you mean --json? See sls user show --help.',
          "sls user show n'a pas d'option « --jsn ». Vouliez-vous dire --json ? Voir sls user show --help.",
        ],
        [
          ['user', 'show'],
          'sls user show needs the argument “username”: see sls user show --help.',
          "sls user show a besoin de l'argument « username » : voir sls user show --help.",
        ],
        [
          ['staff', 'create', '--username', 'x', '--password-stdin'],
          'sls staff create needs the option “--role <r>”: see sls staff create --help.',
          "sls staff create a besoin de l'option « --role <r> » : voir sls staff create --help.",
        ],
        [
          ['user', 'show', 'alice', '--db'],
          'The option “--db <url>” needs a value: see sls user show --help.',
          "L'option « --db <url> » a besoin d'une valeur : voir sls user show --help.",
        ],
        [
          ['user', 'show', 'alice', 'bob'],
          'Too many arguments for sls user show (1 expected, 2 given): see sls user show --help.',
          "Trop d'arguments pour sls user show (1 attendus, 2 donnés) : voir sls user show --help.",
        ],
      ];
      for (const [args, english, french] of usage) {
        expect([args, await runInProcess(main, args)]).toEqual([args, { code: 1, stdout: '', stderr: `sls: ${english}\n` }]);
        expect([args, await runInProcess(mainInFrench, args)]).toEqual([args, { code: 1, stdout: '', stderr: `sls: ${french}\n` }]);
      }
    });

    it("X2, X3: commander's usage errors are known by their error codes (err.code), never by its English words: a commander that words them otherwise (an upgrade, a translation) leaves sls's messages, names and exit code as they were", async () => {
      // commander's reports, worded otherwise: its error() is given another text, with the same names and the same code
      const reword = (message: string) =>
        message
          .replace(/^error: /, 'Fehler: ')
          .replaceAll("'", '"')
          .replace('Did you mean', 'Meinten Sie')
          .replace('Expected', 'Erwartet')
          .replace('but got', 'erhalten');
      const reports = ['unknownCommand', 'unknownOption', 'missingArgument', 'optionMissingArgument', 'missingMandatoryOptionValue', '_excessArguments'];
      const proto = Command.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
      const spies = reports.map((name) => {
        const original = proto[name]!;
        expect(typeof original, name).toBe('function');
        return vi.spyOn(proto, name).mockImplementation(function (this: Command, ...args: unknown[]) {
          const error = this.error;
          Object.defineProperty(this, 'error', {
            configurable: true,
            value: (message: string, options?: { code?: string; exitCode?: number }) => error.call(this, reword(message), options),
          });
          try {
            return original.apply(this, args);
          } finally {
            delete (this as unknown as Record<string, unknown>).error;
          }
        });
      });
      try {
        const usage: [string[], string][] = [
          [['frobnicate'], 'sls has no command “frobnicate”: see sls --help.'],
          [['user', 'creat'], 'sls user has no command “creat”. Did you mean create? See sls user --help.'],
          [['user', 'show', 'alice', '--jsn'], 'sls user show has no option “--jsn”. Did you mean --json? See sls user show --help.'],
          [['user', 'show', 'alice', '--no-such-option'], 'sls user show has no option “--no-such-option”: see sls user show --help.'],
          [['user', 'show'], 'sls user show needs the argument “username”: see sls user show --help.'],
          [['staff', 'create', '--username', 'x', '--password-stdin'], 'sls staff create needs the option “--role <r>”: see sls staff create --help.'],
          [['user', 'show', 'alice', '--db'], 'The option “--db <url>” needs a value: see sls user show --help.'],
          [['user', 'show', 'alice', 'bob'], 'Too many arguments for sls user show (1 expected, 2 given): see sls user show --help.'],
        ];
        for (const [args, english] of usage) {
          expect([args, await runInProcess(main, args)]).toEqual([args, { code: 1, stdout: '', stderr: `sls: ${english}\n` }]);
        }
        // the reworded reports were the ones used
        for (const spy of spies) expect(spy).toHaveBeenCalled();
      } finally {
        for (const spy of spies) spy.mockRestore();
      }
    });

    it('X3, C3: sls ocra refuses a question longer than its suite allows, of another format, or an input the suite does not take, with a message for a command line', async () => {
      const key = '3132333435363738393031323334353637383930';
      const ocra = (suite: string, ...more: string[]) => runInProcess(main, ['ocra', '--suite', suite, '--key', key, ...more]);
      const refusals: [string[], string][] = [
        [
          ['--question', '123456789'],
          '“--question” is longer than the suite allows: at most 8 characters. For a mutual challenge-response, give --question twice, one challenge each, in the order of the computation.',
        ],
        [
          ['--question', '9'.repeat(300)],
          '“--question” is longer than the suite allows: at most 8 characters. For a mutual challenge-response, give --question twice, one challenge each, in the order of the computation.',
        ],
        [['--question', '1', '--question', '2', '--question', '3'], 'Give --question once, or twice for a mutual challenge-response (one challenge each).'],
        [['--question', '12a'], '“--question” must be digits only: the suite’s challenge is numeric (QN).'],
        [['--question', ''], '“--question” must be digits only: the suite’s challenge is numeric (QN).'],
        [['--question', '12', '--pin', '1234'], 'The suite OCRA-1:HOTP-SHA1-6:QN08 takes no --pin: leave it out.'],
        [['--question', '12', '--counter', '1'], 'The suite OCRA-1:HOTP-SHA1-6:QN08 takes no --counter: leave it out.'],
        [['--question', '1\u0000'], '“--question” holds a character that is not text (NUL, or half of a surrogate pair): remove it and run the command again.'],
      ];
      for (const [args, message] of refusals) {
        const run = await ocra('OCRA-1:HOTP-SHA1-6:QN08', ...args);
        expect([args, run.code, run.stdout, run.stderr]).toEqual([args, 1, '', `sls: ${message}\n`]);
      }
      const missing = await ocra('OCRA-1:HOTP-SHA1-6:QN08-PSHA1', '--question', '12');
      expect(missing.stderr).toBe('sls: The suite OCRA-1:HOTP-SHA1-6:QN08-PSHA1 needs --pin.\n');
      const alphanumeric = await ocra('OCRA-1:HOTP-SHA256-8:QA08', '--question', 'CLI22220SRV11110');
      expect(alphanumeric.stderr).toMatch(/^sls: “--question” is longer than the suite allows: at most 8 characters/);
      // RFC 6287 C.2: the mutual challenge-response, its two challenges given one each (client then server)
      const mutual = await ocra(
        'OCRA-1:HOTP-SHA256-8:QA08',
        '--key',
        '3132333435363738393031323334353637383930313233343536373839303132',
        '--question',
        'CLI22220',
        '--question',
        'SRV11110',
      );
      expect([mutual.code, mutual.stdout]).toEqual([0, '28247970\n']);
      // the emulators: a challenge of another length than the login shows
      const card = await runInProcess(main, ['dsc', '--card', s.cardFile, '--pin', '1234', '--challenge', '1234567']);
      expect([card.code, card.stderr]).toEqual([1, 'sls: The challenge is the 6 digits shown at login.\n']);
      const notCard = await runInProcess(main, ['token', '--card', join(dir, 'missing', 'token.json')]);
      expect([notCard.code, notCard.stderr]).toEqual([
        1,
        `sls: The file ${join(dir, 'missing', 'token.json')} cannot be read: give the file written by sls device add-dscplus or sls device assign.\n`,
      ]);
    });

    it('X3, X4: as real processes, a sample answers as in-process: refused with one line, the exit code non-zero', async () => {
      const env = cliEnv(database);
      const notText = join(dir, 'sample-binary');
      writeFileSync(notText, Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]));
      const before = await storedData(services);
      const sample: string[][] = [
        ['user', 'create', '--username', 'a'.repeat(5_000), '--password', PASSWORD, '--db', database.url],
        ['device', 'add-dscplus', '--user', 'alice', '--pin', '1234', '--out', join(dir, 'folder'), '--db', database.url],
        ['helpdesk', 'unlock', '--staff', 'agent', '--user', 'alice', '--verification', 'ver_zzzz', '--db', database.url],
        ['dsc', '--card', notText],
        ['serve', '--db', join(dir, 'folder')],
        ['nosuchcommand'],
      ];
      const runs = await Promise.all(sample.map((args) => sls(args, env)));
      for (const [i, run] of runs.entries()) {
        expect(problemsOf(sample[i]!.slice(0, 2).join(' '), sample[i]!, run, [TEST_MASTER_KEY, PASSWORD])).toEqual([]);
      }
      expect(await storedData(services)).toBe(before);
    });
  });
}
