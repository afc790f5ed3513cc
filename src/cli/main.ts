/**
 * The `sls` command: run the server, manage users and devices, emulate a
 * DSC+ card, compute OCRA values and read the audit log. Every command reads
 * the same database as `npm start` (SLS_DATABASE_URL or --db); errors exit
 * non-zero with a one-line message.
 */
import { columns, readableTime } from './format.js';
import { closeSync, constants, existsSync, fchmodSync, fstatSync, ftruncateSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { ensureDirectory } from '../directories.js';
import { Command, CommanderError, Option } from 'commander';
import { loadConfig, type Config } from '../config.js';
import { SlsError } from '../errors.js';
import { createServices, type ServiceOptions, type Services } from '../services.js';
import { describeError, environmentLanguage, translator } from '../i18n/i18n.js';
import { decodePskc, parsePskc } from '../devices/dscplus/pskc.js';
import { generateOcra, parseOcraSuite, type OcraSuite } from '../crypto/ocra.js';
import { runCardEmulator, cardResponse, readCardFile } from './dsc-emulator.js';
import { pressToken } from './token-emulator.js';
import { VERIFICATION_METHODS } from '../helpdesk/helpdesk.js';
import type { Role } from '../store/schema.js';
import { refuseCountryNotServed, toE164 } from '../delivery/phone.js';
import { outboxAudioPath } from '../delivery/speech.js';
import { findingError } from '../audit/audit-log.js';
import { parseAuditFilter } from '../audit/audit-query.js';
import { registerEntityCommands } from './entity-commands.js';
import { registerOptOutCommands } from './opt-out-commands.js';
import { registerEntitlementCommands } from './entitlements.js';
import { registerOidcCommands } from './oidc-commands.js';
import { isText } from '../http/text-input.js';
import { SecretInputs, readStandardInput, secretFileOption, visibleSecret } from './secrets.js';
import { HEX_BYTES, readBoundedFile, readTextFile, sizeText } from './files.js';

const t = translator(environmentLanguage());

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

interface DbOption {
  db?: string;
}

function configFor(options: DbOption & { port?: number }): Config {
  return loadConfig(process.env, {
    ...(options.db !== undefined ? { databaseUrl: options.db } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
  });
}

/** X1: the audit commands that read, verify or anchor the log run on a head not anchored yet (decision 0006). */
const UNANCHORED: ServiceOptions = { allowUnanchoredAudit: true };

async function withServices<T>(options: DbOption, fn: (services: Services) => Promise<T>, serviceOptions: ServiceOptions = {}): Promise<T> {
  const services = await createServices(configFor(options), serviceOptions);
  try {
    return await fn(services);
  } finally {
    await services.close();
  }
}

function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new SlsError('VALIDATION_ERROR', { reason: 'whole_number', field: name, min, max });
    }
    return Number(value);
  };
}

function amountOption(value: string): number {
  if (!/^\d+(\.\d{1,2})?$/.test(value)) throw new SlsError('VALIDATION_ERROR', { reason: 'amount_option' });
  return Number(value);
}

interface MobileNumber {
  country: string;
  number: string;
}

/** COUNTRY:DIGITS, checked as the settings page checks it (M6). */
function mobileOption(value: string): MobileNumber {
  const match = /^([A-Za-z]{2}):(.*)$/.exec(value);
  if (!match) throw new SlsError('VALIDATION_ERROR', { reason: 'mobile_option', field: '--mobile' });
  toE164(match[1]!, match[2]!);
  return { country: match[1]!.toUpperCase(), number: match[2]! };
}

function hexOption(name: string) {
  return (value: string): Buffer => {
    if (!HEX_BYTES.test(value)) throw new SlsError('VALIDATION_ERROR', { reason: 'hex_bytes', field: name });
    return Buffer.from(value, 'hex');
  };
}

/**
 * X3, C3: the question of `sls ocra`: one challenge of the suite's format and
 * at most its length (QN08: 8 digits), or two for a mutual challenge-response
 * (RFC 6287 §7.3: the two challenges concatenated, in the order of the
 * computation), each within the suite's length.
 */
function ocraQuestion(suite: OcraSuite, questions: string[]): string {
  if (questions.length < 1 || questions.length > 2) throw new SlsError('VALIDATION_ERROR', { reason: 'ocra_questions' });
  const { format, maxLength } = suite.challenge;
  const shape = { N: /^\d+$/, A: /^[\x21-\x7e]+$/, H: /^[0-9a-fA-F]+$/ }[format];
  for (const question of questions) {
    if (!shape.test(question)) throw new SlsError('VALIDATION_ERROR', { reason: `ocra_question_${format}`, field: '--question' });
    if (question.length > maxLength) throw new SlsError('VALIDATION_ERROR', { reason: 'ocra_question_length', field: '--question', max: maxLength });
  }
  return questions.join('');
}

const dbOption = (): Option => new Option('--db <url>', 'database URL (default: SLS_DATABASE_URL or ./data/sls.db)');

interface StaffOptions extends DbOption {
  staff: string;
}

/** A help-desk command: it acts as the named staff member (audited with their id). */
function staffCommand(parent: Command, name: string, description: string): Command {
  return parent.command(name).description(description).requiredOption('--staff <s>', 'the staff member acting').addOption(dbOption());
}

/**
 * Runs a help-desk command as the named staff member, through the help desk
 * of the server's command line: only there may an admin act on another
 * admin (X7); every other rule of the console applies.
 */
async function asStaff<T>(options: StaffOptions, fn: (services: Services, staffUserId: string) => Promise<T>): Promise<T> {
  return withServices(options, async (s) => fn({ ...s, helpDesk: s.helpDesk.viaCommandLine() }, (await s.users.getByUsername(options.staff)).id));
}
const iso = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString());

/** A card or token file (a secret), opened before anything is issued: see `withSecretFile`. */
interface SecretFile {
  write(text: string): void;
  discard(): void;
}

/**
 * X4: a card or token file (a secret) is opened before the device is issued,
 * so that a path it cannot be written at (a folder, a folder missing, a name
 * too long) refuses the command with nothing issued, rather than issuing a
 * card whose secret is then lost. Its folder is created if only it is
 * missing (like data/ before the first start); the file is readable by its
 * owner only; a file that was there is replaced only once the device is
 * issued, and a file made for a refused command is removed.
 */
function openSecretFile(path: string): SecretFile {
  let fd: number;
  let existed: boolean;
  try {
    ensureDirectory(dirname(resolve(path)), '--out');
    existed = existsSync(path);
    // X4, D5: never through a symbolic link (another user of the machine may have planted it where the file goes)
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (error) {
    if (error instanceof SlsError) throw error;
    throw new SlsError((error as NodeJS.ErrnoException).code === 'ELOOP' ? 'OUTPUT_FILE_UNSAFE' : 'OUTPUT_FILE_UNUSABLE', { path });
  }
  // … nor into a file of another user (it stays theirs to read, whatever its mode), or what is not a plain file
  const stat = fstatSync(fd);
  const uid = process.getuid?.();
  if (!stat.isFile() || (uid !== undefined && stat.uid !== uid)) {
    closeSync(fd);
    throw new SlsError('OUTPUT_FILE_UNSAFE', { path });
  }
  return {
    write(text) {
      ftruncateSync(fd);
      writeSync(fd, text, 0);
      fchmodSync(fd, 0o600);
      closeSync(fd);
    },
    discard() {
      closeSync(fd);
      if (!existed) rmSync(path, { force: true });
    },
  };
}

/** C8, X3: a PSKC batch is at most this big (tens of thousands of keys): a bigger file, or a device, is no batch. */
const MAX_PSKC_BYTES = 64 * 1024 * 1024;

/** Runs ISSUE with the --out file open; writes what it returns there, or removes the file if it throws. */
async function withSecretFile<T>(path: string, issue: () => Promise<{ text: string; result: T }>): Promise<T> {
  const file = openSecretFile(path);
  let issued: { text: string; result: T };
  try {
    issued = await issue();
  } catch (error) {
    file.discard();
    throw error;
  }
  file.write(issued.text);
  return issued.result;
}

/**
 * X3: what a command is given is text, as what a request brings: an
 * argument or option with a NUL or half of a surrogate pair (PostgreSQL
 * cannot hold a NUL: its query would fail) is refused before the command
 * runs, naming it, on both databases the same (in the words of a command
 * line: "run the command again", not the API's "send again").
 */
function refuseWhatIsNotText(_program: Command, command: Command): void {
  for (const [i, value] of command.processedArgs.entries()) {
    if (typeof value === 'string' && !isText(value)) {
      throw new SlsError('VALIDATION_ERROR', { reason: 'not_text_argument', field: command.registeredArguments[i]?.name() ?? String(i + 1) });
    }
  }
  for (const option of command.options) {
    const value: unknown = command.getOptionValue(option.attributeName());
    const values = Array.isArray(value) ? value : [value];
    if (values.some((v) => typeof v === 'string' && !isText(v))) {
      throw new SlsError('VALIDATION_ERROR', { reason: 'not_text_argument', field: option.long ?? option.flags });
    }
  }
}

/**
 * X2, X3: commander's own usage errors (an unknown option or command, an
 * argument or option missing, too many arguments), known by commander's
 * stable error code (`err.code`) and the names commander passes to its
 * reports (SlsCommand keeps them), never by the words of its messages: a
 * commander that words them otherwise (an upgrade, a translation) changes
 * nothing. VALIDATION_ERROR with a reason of the translation files
 * (errors.VALIDATION_ERROR_usage_*), printed as every sls error ("sls: …")
 * in the environment's language; an error of another code, or one whose
 * names were not kept, is the general `usage` reason.
 */
const USAGE: Record<string, string> = {
  'commander.unknownOption': 'usage_unknown_option',
  'commander.unknownCommand': 'usage_unknown_command',
  'commander.missingArgument': 'usage_missing_argument',
  'commander.optionMissingArgument': 'usage_option_missing_argument',
  'commander.missingMandatoryOptionValue': 'usage_missing_option',
  'commander.excessArguments': 'usage_excess_arguments',
};

/** The command as it is typed: "sls user create". */
function commandLine(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** The names a usage error is about, as commander passed them to its report (the option, the argument, the counts). */
export type UsageNames = Record<string, string>;

/**
 * What commander suggests instead of an unknown option or command ("Did you
 * mean --json?"): the one name the command knows (its options' and its
 * ancestors', or its commands') that the report quotes, whatever its words.
 */
function suggestionIn(command: Command, message: string, code: string, typed: string): string | undefined {
  const known = new Set<string>();
  if (code === 'commander.unknownOption') {
    for (let c: Command | null = command; c; c = c.parent) for (const option of c.options) if (option.long) known.add(option.long);
  } else {
    for (const sub of command.commands) for (const name of [sub.name(), ...sub.aliases()]) known.add(name);
  }
  known.delete(typed);
  const said = message.match(/--?[A-Za-z0-9][\w-]*|[A-Za-z0-9][\w-]*/g) ?? [];
  return said.filter((word) => known.has(word)).at(-1);
}

export function usageError(command: Command, message: string, code: string, names?: UsageNames): SlsError {
  const reason = USAGE[code];
  if (!reason || !names) return new SlsError('VALIDATION_ERROR', { reason: 'usage', command: commandLine(command) });
  const params: Record<string, string> = { ...names, command: commandLine(command) };
  const typed = names.option ?? names.name;
  const suggestion =
    typed !== undefined && (code === 'commander.unknownOption' || code === 'commander.unknownCommand')
      ? suggestionIn(command, message, code, typed)
      : undefined;
  if (suggestion !== undefined) params.suggestion = suggestion;
  return new SlsError('VALIDATION_ERROR', { ...params, reason: suggestion === undefined ? reason : `${reason}_suggestion` });
}

/** Commander's reports of usage errors (methods it calls before error()), by their names, with what they are given. */
type Reports = Record<string, (this: Command, ...args: unknown[]) => unknown>;
const reports = Command.prototype as unknown as Reports;

/**
 * `sls` and its commands: commander's usage errors are thrown as SlsErrors,
 * never printed by commander in English. Each report commander makes keeps
 * the names it is given, for error() (usageError).
 */
class SlsCommand extends Command {
  private told: UsageNames | undefined;

  override createCommand(name?: string): Command {
    return new SlsCommand(name);
  }

  /** Runs commander's report with the names kept while it runs (it calls error() when it refuses). */
  private report(name: string, names: UsageNames, args: unknown[]): unknown {
    this.told = names;
    try {
      return reports[name]!.apply(this, args);
    } finally {
      this.told = undefined;
    }
  }

  unknownOption(flag: string): unknown {
    return this.report('unknownOption', { option: flag }, [flag]);
  }

  unknownCommand(): unknown {
    return this.report('unknownCommand', { name: String(this.args[0]) }, []);
  }

  missingArgument(name: string): unknown {
    return this.report('missingArgument', { argument: name }, [name]);
  }

  optionMissingArgument(option: Option): unknown {
    return this.report('optionMissingArgument', { option: option.flags }, [option]);
  }

  missingMandatoryOptionValue(option: Option): unknown {
    return this.report('missingMandatoryOptionValue', { option: option.flags }, [option]);
  }

  _excessArguments(received: string[]): unknown {
    return this.report('_excessArguments', { expected: String(this.registeredArguments.length), got: String(received.length) }, [received]);
  }

  override error(message: string, errorOptions?: { code?: string; exitCode?: number }): never {
    throw usageError(this, message, errorOptions?.code ?? 'commander.error', this.told);
  }
}

/** How a command that sets a password is given it. */
interface PasswordOptions {
  password?: string;
  passwordStdin?: boolean;
}

/**
 * X1, A4: the password of `user create` and `staff create`: from standard
 * input (--password-stdin, its first line without the line's end), which
 * neither the process list (`ps`) nor the shell's history shows; or, for
 * scripts of before, --password. One of them, once.
 */
async function passwordOf(options: PasswordOptions): Promise<string> {
  if (options.passwordStdin && options.password !== undefined) throw new SlsError('VALIDATION_ERROR', { reason: 'password_twice' });
  if (!options.passwordStdin) {
    if (options.password === undefined) throw new SlsError('VALIDATION_ERROR', { reason: 'password_missing' });
    return options.password;
  }
  // X3: standard input holds a password, not an endless stream (`< /dev/zero`): read to 64 KiB at most
  const line = (await readStandardInput()).split(/\r?\n/, 1)[0] ?? '';
  if (line === '') throw new SlsError('VALIDATION_ERROR', { reason: 'password_missing' });
  return line;
}

/** The version of package.json (the package's root is two folders above dist/cli and src/cli). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(): Command {
  const program = new SlsCommand('sls')
    .description('Secure Login System: two-factor authentication server')
    .version(packageVersion(), '-V, --version', 'print the version of the Secure Login System')
    .exitOverride()
    .hook('preAction', refuseWhatIsNotText);

  program
    .command('serve')
    .description('run the server (what `npm start` runs)')
    .option('--port <n>', 'port to listen on (default: SLS_PORT or 8080)', intOption('--port', 0, 65535))
    .addOption(dbOption())
    .action(async (options: DbOption & { port?: number }) => {
      // the HTTP server's modules (fastify, the OpenID provider, the pages) load only for `sls serve`
      const { serve } = await import('./serve.js');
      await serve(configFor(options), print);
    });

  const user = program.command('user').description('users');
  user
    .command('create')
    .description('create a user, with a new account unless --account names an existing one')
    .requiredOption('--username <u>', 'lower-case letters and digits')
    .option('--password-stdin', 'read the password from standard input (its first line): the process list and the shell history never show it')
    .option('--password <p>', 'the password, at least 8 characters, not a common password (other users of this machine can see it: prefer --password-stdin)')
    .option('--account <a>', 'account number to join or create')
    .option('--entity <id>', 'the entity the user belongs to (`sls entity create`); without --account, a new account of the entity')
    .option('--equity <usd>', 'account equity in USD', amountOption)
    .option('--email <e>', 'e-mail address for notifications')
    .option('--mobile <country:digits>', 'mobile number on record, confirmed by SMS at the first login, e.g. FR:612345678', mobileOption)
    .addOption(dbOption())
    .action(
      async (
        options: DbOption & PasswordOptions & { username: string; account?: string; entity?: string; equity?: number; email?: string; mobile?: MobileNumber },
      ) => {
        const password = await passwordOf(options);
        await withServices(options, async (s) => {
          // M7: a number of a country the operator sends no SMS to is refused before the user is created
          if (options.mobile) refuseCountryNotServed(toE164(options.mobile.country, options.mobile.number), s.config.policy.smsCountries);
          const created = await s.users.create(
            {
              username: options.username,
              password,
              ...(options.account !== undefined ? { accountNumber: options.account } : {}),
              ...(options.entity !== undefined ? { entityId: options.entity } : {}),
              ...(options.equity !== undefined ? { equityUsd: options.equity } : {}),
              ...(options.email !== undefined ? { email: options.email } : {}),
            },
            'cli',
          );
          print(t('cli.userCreated', { username: created.username, account: created.accountNumber }));
          if (options.mobile) {
            const phone = await s.phones.add(created.id, options.mobile, 'cli', null);
            print(t('cli.mobileOnRecord', { number: phone.masked }));
          }
        });
      },
    );

  user
    .command('show')
    .description('show a user, the account, devices and lock state')
    .argument('<username>')
    .option('--json', 'print JSON')
    .addOption(dbOption())
    .action(async (username: string, options: DbOption & { json?: boolean }) => {
      await withServices(options, async (s) => {
        const u = await s.users.getByUsername(username);
        const account = await s.users.account(u.accountId);
        const devices = await s.devices.listForUser(u.id);
        const phones = await s.phones.list(u.id);
        const lock = await s.lockout.status(u.username);
        const view = {
          id: u.id,
          username: u.username,
          account: account.accountNumber,
          entity: u.entityId,
          equityUsd: account.equityUsd,
          primaryUser: account.primaryUserId === u.id,
          canChangeSecurity: u.canChangeSecurity,
          status: u.status,
          email: u.email,
          createdAt: iso(u.createdAt),
          locked: lock.locked,
          lockedUntil: iso(lock.lockedUntil),
          lockedByStaff: lock.byStaff,
          recentFailures: lock.failures,
          devices: devices.map((d) => ({ id: d.id, type: d.type, serial: d.serial, state: d.state, lastUsedAt: iso(d.lastUsedAt) })),
          mobileNumbers: phones.map((p) => ({ id: p.id, number: p.e164, verified: p.verified })),
        };
        if (options.json) return printJson(view);
        for (const [key, value] of Object.entries(view)) {
          if (key !== 'devices' && key !== 'mobileNumbers') print(`${key.padEnd(18)} ${String(value)}`);
        }
        for (const p of view.mobileNumbers) print(`mobile             ${p.id}  ${p.number}  ${p.verified ? 'verified' : 'not verified'}`);
        for (const d of view.devices) print(`device             ${d.id}  ${d.type}  ${d.serial ?? ''}  ${d.state}  last used ${d.lastUsedAt}`);
      });
    });

  const account = program.command('account').description('accounts of an entity');
  account
    .command('set-equity')
    .description('set the equity of an account in USD (decides DSC+ eligibility)')
    .requiredOption('--account <a>', 'account number')
    .requiredOption('--equity <usd>', 'equity in USD', amountOption)
    .addOption(dbOption())
    .action(async (options: DbOption & { account: string; equity: number }) => {
      await withServices(options, async (s) => {
        const account = await s.users.setEquity(options.account, options.equity, 'cli');
        print(`${account.accountNumber} equity USD ${account.equityUsd}`);
      });
    });

  registerEntityCommands({ program, user, account, withServices, print, printJson, dbOption, amountOption, t });
  registerOptOutCommands({ user, withServices, print, dbOption, t });

  program
    .command('staff')
    .description('help desk staff (client services, compliance, admin)')
    .command('create')
    .description('create a staff user; give them a DSC+ with `device add-dscplus` to log in')
    .requiredOption('--username <u>', 'lower-case letters and digits')
    .option('--password-stdin', 'read the password from standard input (its first line): the process list and the shell history never show it')
    .option('--password <p>', 'the password, at least 8 characters, not a common password (other users of this machine can see it: prefer --password-stdin)')
    .requiredOption('--role <r>', 'client_services, compliance or admin')
    .addOption(dbOption())
    .action(async (options: DbOption & PasswordOptions & { username: string; role: string }) => {
      if (!['client_services', 'compliance', 'admin'].includes(options.role)) {
        throw new SlsError('VALIDATION_ERROR', { reason: 'staff_role', field: '--role' });
      }
      const password = await passwordOf(options);
      await withServices(options, async (s) => {
        const created = await s.users.create({ username: options.username, password, role: options.role as Role }, 'cli');
        print(t('cli.staffCreated', { username: created.username, role: created.role }));
      });
    });

  const helpdesk = program.command('helpdesk').description('client services at the telephone; --staff names who acts');
  staffCommand(helpdesk, 'verify', "record how the caller's identity was verified; prints the verification id (valid 30 minutes)")
    .requiredOption('--user <u>', 'the caller')
    .requiredOption('--method <m>', VERIFICATION_METHODS.join(', '))
    .option('--notes <text>', 'what was checked')
    .action(async (options: StaffOptions & { user: string; method: string; notes?: string }) => {
      await asStaff(options, async (s, staffId) => {
        const v = await s.helpDesk.verifyIdentity(staffId, options.user, {
          method: options.method,
          ...(options.notes !== undefined ? { notes: options.notes } : {}),
        });
        print(v.id);
      });
    });

  staffCommand(helpdesk, 'issue-passcode', 'issue a temporary passcode to a verified caller; prints it once')
    .requiredOption('--user <u>', 'the caller')
    .requiredOption('--verification <id>', 'from `sls helpdesk verify`')
    .option('--lost', 'the permanent device is lost (default: temporarily unavailable)')
    .action(async (options: StaffOptions & { user: string; verification: string; lost?: boolean }) => {
      await asStaff(options, async (s, staffId) => {
        const issued = await s.helpDesk.issueTemporaryPasscode(staffId, options.user, {
          verificationId: options.verification,
          deviceStatus: options.lost ? 'lost' : 'suspended',
        });
        print(issued.passcode);
        const time = readableTime(s.config.timeZone);
        process.stderr.write(`${t('cli.passcodeIssued', { fullUntil: time(issued.fullAccessUntil), until: time(issued.expiresAt) })}\n`);
      });
    });

  staffCommand(helpdesk, 'revoke-passcode', "end the caller's temporary passcode")
    .requiredOption('--user <u>', 'the caller')
    .action(async (options: StaffOptions & { user: string }) => {
      await asStaff(options, async (s, staffId) => {
        print(t('cli.passcodesRevoked', { count: await s.helpDesk.revokeTemporaryPasscode(staffId, options.user) }));
      });
    });

  staffCommand(helpdesk, 'reset-password', 'a one-time password for a verified caller who forgot theirs; prints it once')
    .requiredOption('--user <u>', 'the caller')
    .requiredOption('--verification <id>', 'from `sls helpdesk verify`')
    .action(async (options: StaffOptions & { user: string; verification: string }) => {
      await asStaff(options, async (s, staffId) => {
        const { temporaryPassword } = await s.helpDesk.resetPassword(staffId, options.user, { verificationId: options.verification });
        // K14: a user with a mobile authenticator receives it in the app
        print(temporaryPassword ?? t('cli.passwordSentToApp', { username: options.user }));
      });
    });

  staffCommand(helpdesk, 'unlock', 'lift the lock of a verified caller (a lock staff placed: an admin only)')
    .requiredOption('--user <u>', 'the caller')
    .requiredOption('--verification <id>', 'from `sls helpdesk verify`')
    .action(async (options: StaffOptions & { user: string; verification: string }) => {
      await asStaff(options, async (s, staffId) => {
        await s.helpDesk.unlock(staffId, options.user, { verificationId: options.verification });
        print(t('cli.unlocked', { username: options.user }));
      });
    });

  staffCommand(helpdesk, 'lock', 'lock a user until an admin lifts it (unlock), and end every session')
    .requiredOption('--user <u>', 'the user')
    .requiredOption('--reason <text>', 'why (a reported compromise, fraud …)')
    .action(async (options: StaffOptions & { user: string; reason: string }) => {
      await asStaff(options, async (s, staffId) => {
        const ended = await s.helpDesk.lockUser(staffId, options.user, { reason: options.reason });
        print(t('cli.userLockedByStaff', { username: options.user, count: ended }));
      });
    });

  staffCommand(helpdesk, 'end-sessions', 'end every session of a user: a stolen laptop, a shared computer')
    .requiredOption('--user <u>', 'the user')
    .action(async (options: StaffOptions & { user: string }) => {
      await asStaff(options, async (s, staffId) => {
        print(t('cli.sessionsEnded', { username: options.user, count: await s.helpDesk.endSessions(staffId, options.user) }));
      });
    });

  staffCommand(helpdesk, 'add-phone', 'put a mobile number on record for a verified caller: the way for a user without any device to enrol')
    .requiredOption('--user <u>', 'the caller')
    .requiredOption('--verification <id>', 'from `sls helpdesk verify`')
    .requiredOption('--mobile <country:digits>', 'the number, e.g. FR:612345678', mobileOption)
    .action(async (options: StaffOptions & { user: string; verification: string; mobile: MobileNumber }) => {
      await asStaff(options, async (s, staffId) => {
        const phone = await s.helpDesk.addPhone(staffId, options.user, { verificationId: options.verification, ...options.mobile });
        print(t('cli.mobileOnRecord', { number: phone.masked }));
      });
    });

  staffCommand(helpdesk, 'ship', 'ship a requested DSC+ with a card of the stock; writes its card file (without the PIN, which the user chose)')
    .requiredOption('--device <id>', 'the requested device (see `sls device list --user U`)')
    .requiredOption('--serial <serial>', 'a card of the imported stock')
    .requiredOption('--out <file>', 'where to write the card file for `sls dsc`')
    .option('--address-confirmed', 'you confirmed the shipping address with the client (required for a card requested under temporary access)')
    .action(async (options: StaffOptions & { device: string; serial: string; out: string; addressConfirmed?: boolean }) => {
      await asStaff(options, async (s, staffId) => {
        const card = await withSecretFile(options.out, async () => {
          const { card } = await s.dscPlusRequests.ship(staffId, options.device, options.serial, { addressConfirmed: options.addressConfirmed === true });
          return { text: `${JSON.stringify(card, null, 2)}\n`, result: card };
        });
        print(t('cli.shipped', { serial: card.serial, path: options.out }));
      });
    });

  staffCommand(helpdesk, 'returned', 'a DSC+ came back: returned, its USD 20 deposit released')
    .requiredOption('--device <id>', 'the device')
    .option('--verification <id>', 'from `sls helpdesk verify`: the owner may bind a new device at once (without it, a card in use waits 3 days)')
    .action(async (options: StaffOptions & { device: string; verification?: string }) => {
      await asStaff(options, async (s, staffId) => {
        const device = await s.dscPlusRequests.markReturned(staffId, options.device, options.verification);
        print(t('cli.deviceState', { id: device.id, state: device.state }));
      });
    });

  staffCommand(helpdesk, 'lost', 'a DSC+ lost or stolen (its deposit is kept) or damaged')
    .requiredOption('--device <id>', 'the device')
    .addOption(new Option('--reason <r>', 'why').choices(['lost', 'stolen', 'damaged']).default('lost'))
    .option('--verification <id>', 'from `sls helpdesk verify`: the owner may bind a new device at once (without it, they wait 3 days)')
    .action(async (options: StaffOptions & { device: string; reason: 'lost' | 'stolen' | 'damaged'; verification?: string }) => {
      await asStaff(options, async (s, staffId) => {
        const actor = { staffUserId: staffId, ...(options.verification !== undefined ? { verificationId: options.verification } : {}) };
        const device = await s.dscPlusRequests.reportLost(actor, options.device, options.reason);
        print(t('cli.deviceState', { id: device.id, state: device.state }));
      });
    });

  staffCommand(helpdesk, 'confirm-loss', 'end the wait after a DSC+ loss reported with a weaker proof, for a verified owner (an admin only)')
    .requiredOption('--device <id>', 'the lost device')
    .requiredOption('--verification <id>', 'from `sls helpdesk verify`')
    .action(async (options: StaffOptions & { device: string; verification: string }) => {
      await asStaff(options, async (s, staffId) => {
        const device = await s.dscPlusRequests.confirmLoss(staffId, options.device, options.verification);
        print(t('cli.lossConfirmed', { id: device.id, serial: device.serial ?? '' }));
      });
    });

  user
    .command('notices')
    .description("the language and time zone of a user's notices; `default` for the server's")
    .requiredOption('--user <u>', 'username')
    .option('--language <l>', 'en, fr, zh-Hant or default')
    .option('--time-zone <z>', 'an IANA time zone (Europe/Paris) or default')
    .addOption(dbOption())
    .action(async (options: DbOption & { user: string; language?: string; timeZone?: string }) => {
      await withServices(options, async (s) => {
        const u = await s.users.getByUsername(options.user);
        const current = await s.store.db.selectFrom('users').select(['language', 'time_zone']).where('id', '=', u.id).executeTakeFirstOrThrow();
        const pick = (value: string | undefined, was: string | null): string | null => (value === undefined ? was : value === 'default' ? null : value);
        const language = pick(options.language, current.language);
        const timeZone = pick(options.timeZone, current.time_zone);
        await s.noticePreferences.choose(u.id, { language, timeZone }, 'cli');
        print(t('cli.noticePreferences', { username: u.username, language: language ?? s.config.defaultLanguage, timeZone: timeZone ?? s.config.timeZone }));
      });
    });

  user
    .command('set-language')
    .description(
      "the language (en, fr, zh-Hant) of a user's notices, and with --time-zone the IANA time zone of their times, chosen: " +
        "logins no longer change them; `default` (both) lets the user's logins decide again",
    )
    .argument('<username>')
    .argument('<language>', 'en, fr, zh-Hant, or default')
    .option('--time-zone <zone>', 'an IANA time zone (Asia/Hong_Kong); default: the one the notices use now')
    .addOption(dbOption())
    .action(async (username: string, language: string, options: DbOption & { timeZone?: string }) => {
      await withServices(options, async (s) => {
        const u = await s.users.getByUsername(username);
        const now = await s.noticePreferences.get(u.id);
        const follow = language === 'default' && (options.timeZone === undefined || options.timeZone === 'default');
        const chosen = follow
          ? { language: null, timeZone: null }
          : {
              language: language === 'default' ? null : language,
              timeZone: options.timeZone === 'default' ? null : (options.timeZone ?? now.timeZone),
            };
        const after = await s.noticePreferences.choose(u.id, chosen, 'cli');
        const values = { username: u.username, language: after.effective.language, timeZone: after.effective.timeZone };
        print(t(follow ? 'cli.setLanguageFollow' : 'cli.setLanguage', values));
      });
    });

  program
    .command('jobs')
    .description('background work (what `sls serve` runs every minute)')
    .command('run')
    .description('run the due jobs once: DSC+ auto-activation and its notices, old login failures; then deliver the notices due')
    .addOption(dbOption())
    .action(async (options: DbOption) => {
      await withServices(options, async (s) => {
        const report = await s.scheduler.runDue();
        print(t('cli.jobsRun', { activated: report.autoActivated, notices: report.notices }));
        const delivered = await s.outbox.drain();
        print(t('cli.outboxDrained', { ...delivered }));
      });
    });

  program
    .command('outbox')
    .description('messages to users: notices, SMS and voice codes, with their delivery status')
    .option('--user <u>', 'only this username')
    .addOption(new Option('--status <s>', 'only messages in this state').choices(['pending', 'sending', 'sent', 'failed']))
    .option('--limit <n>', 'how many (default 20)', intOption('--limit', 1, 10000))
    .option('--json', 'print JSON')
    .addOption(dbOption())
    .action(async (options: DbOption & { user?: string; limit?: number; json?: boolean; status?: 'pending' | 'sending' | 'sent' | 'failed' }) => {
      await withServices(options, async (s) => {
        const userId = options.user !== undefined ? (await s.users.getByUsername(options.user)).id : undefined;
        const notices = await s.notifier.list({
          ...(userId ? { userId } : {}),
          ...(options.status ? { status: options.status } : {}),
          limit: options.limit ?? 20,
        });
        if (options.json) return printJson(notices);
        if (notices.length === 0) return print(options.user ? t('cli.noMessagesFor', { username: options.user }) : t('cli.noMessages'));
        const time = readableTime(s.config.timeZone);
        for (const n of notices) {
          print(`${time(n.createdAt)}  ${n.channel}  ${n.recipient}  ${n.status}  ${n.subject ?? ''}\n    ${n.body}`);
          if (n.attempts > 1 || n.error || n.nextAttemptAt !== null) {
            print(
              `    ${t('cli.outboxDelivery', { attempts: n.attempts, next: n.nextAttemptAt === null ? '-' : time(n.nextAttemptAt), error: n.error ?? '-' })}`,
            );
          }
          const audio = outboxAudioPath(s.config.dataDir, n.id);
          if (n.channel === 'voice' && existsSync(audio)) print(`    ${t('cli.outboxAudio', { path: audio })}`);
        }
      });
    });

  const device = program.command('device').description('second-factor devices');
  device
    .command('add-dscplus')
    .description('issue an active DSC+ card to a user and write the card file for `sls dsc`')
    .requiredOption('--user <u>', 'username')
    .addOption(secretFileOption('--pin', "the card's 4-digit soft PIN"))
    .option('--pin <nnnn>', visibleSecret("the card's 4-digit soft PIN", '--pin'))
    .requiredOption('--out <file>', 'where to write the card file (serial, seed, suite, PIN)')
    .option('--serial <s>', 'take this card from the imported stock instead of making a new one')
    .addOption(dbOption())
    .action(async (options: DbOption & { user: string; pin?: string; pinFile?: string; out: string; serial?: string }) => {
      const pin = (await new SecretInputs().get({ flag: '--pin', value: options.pin, file: options.pinFile }, true))!;
      await withServices(options, async (s) => {
        const u = await s.users.getByUsername(options.user);
        const card = await withSecretFile(options.out, async () => {
          const { card } = await s.devices.addDscPlus({ userId: u.id, pin, ...(options.serial !== undefined ? { serial: options.serial } : {}) }, 'cli');
          return { text: `${JSON.stringify(card, null, 2)}\n`, result: card };
        });
        print(t('cli.cardWritten', { serial: card.serial, username: u.username, path: options.out }));
      });
    });

  device
    .command('list')
    .description("list a user's devices, or the cards in stock")
    .option('--user <u>', 'username')
    .option('--stock', 'list the imported cards and tokens not yet issued')
    .option('--json', 'print JSON')
    .addOption(dbOption())
    .action(async (options: DbOption & { user?: string; stock?: boolean; json?: boolean }) => {
      if ((options.user === undefined) === (options.stock === undefined)) {
        throw new SlsError('VALIDATION_ERROR', { reason: 'user_or_stock' });
      }
      await withServices(options, async (s) => {
        const devices =
          options.user !== undefined ? await s.devices.listForUser((await s.users.getByUsername(options.user)).id) : await s.devices.listAllStock();
        const rows = devices.map((d) => ({
          id: d.id,
          type: d.type,
          serial: d.serial,
          state: d.state,
          activatedAt: iso(d.activatedAt),
          lastUsedAt: iso(d.lastUsedAt),
        }));
        if (options.json) return printJson(rows);
        for (const r of rows) print(`${r.id}  ${r.type}  ${r.serial ?? '-'}  ${r.state}  activated ${r.activatedAt}  last used ${r.lastUsedAt}`);
      });
    });

  device
    .command('import-pskc')
    .description(
      'import a batch of devices from a PSKC (RFC 6030) file into the stock: each key as its algorithm says — OCRA with a PIN: DSC+; OCRA without: legacy DSC; HOTP, TOTP: Platinum / Gold tokens',
    )
    .argument('<file>')
    .addOption(secretFileOption('--key', 'the pre-shared key (hex) for encrypted secrets'))
    .option('--key <hex>', visibleSecret('pre-shared key for encrypted secrets', '--key'), hexOption('--key'))
    .addOption(secretFileOption('--password', 'the password for PBKDF2-protected secrets'))
    .option('--password <p>', visibleSecret('password for PBKDF2-protected secrets', '--password'))
    .option('--batch <name>', 'batch name (default: the file name)')
    // D1: each counter or step a window takes in is one more code a guess may hit: at most the resynchronisation's 100 counters, and 10 steps
    .option('--look-ahead <n>', 'HOTP tokens: counters past the expected one a code may be (default 10, at most 100)', intOption('--look-ahead', 0, 100))
    .option('--time-window <n>', 'TOTP tokens: time steps either side of now a code may be (default 1, at most 10)', intOption('--time-window', 0, 10))
    .addOption(dbOption())
    .action(
      async (
        file: string,
        options: DbOption & {
          key?: Buffer;
          keyFile?: string;
          password?: string;
          passwordFile?: string;
          batch?: string;
          lookAhead?: number;
          timeWindow?: number;
        },
      ) => {
        const secrets = new SecretInputs();
        const given = await secrets.get({ flag: '--key', value: options.key, file: options.keyFile });
        const key = typeof given === 'string' ? hexOption('--key-file')(given) : given;
        const password = await secrets.get({ flag: '--password', value: options.password, file: options.passwordFile });
        let xml: string;
        try {
          xml = decodePskc(
            readBoundedFile(file, MAX_PSKC_BYTES, {
              unreadable: () => new SlsError('INVALID_PSKC', { reason: 'unreadable', path: file }),
              tooLarge: () => new SlsError('INVALID_PSKC', { reason: 'too_large', path: file, max: sizeText(MAX_PSKC_BYTES) }),
            }),
          );
        } catch (error) {
          if (error instanceof SlsError) throw error;
          throw new SlsError('INVALID_PSKC', { reason: 'unreadable', path: file });
        }
        const keys = parsePskc(xml, {
          ...(key ? { preSharedKey: key } : {}),
          ...(password !== undefined ? { password } : {}),
        });
        await withServices(options, async (s) => {
          const batch = options.batch ?? basename(file);
          const imported = await s.devices.importStock(keys, 'cli', batch, {
            ...(options.lookAhead !== undefined ? { lookAhead: options.lookAhead } : {}),
            ...(options.timeWindow !== undefined ? { timeWindow: options.timeWindow } : {}),
          });
          print(t('cli.imported', { count: imported.length, batch }));
        });
      },
    );

  device
    .command('assign')
    .description('issue an imported legacy device (DSC, Platinum / Gold token) to the user who holds it and write the file for `sls token`')
    .requiredOption('--user <u>', 'username')
    .requiredOption('--serial <s>', 'the serial of the device in the stock (every key under it), or <serial>/<key id> for one key')
    .requiredOption('--out <file>', 'where to write the token file (its keys and parameters)')
    .addOption(dbOption())
    .action(async (options: DbOption & { user: string; serial: string; out: string }) => {
      await withServices(options, async (s) => {
        const u = await s.users.getByUsername(options.user);
        const { devices, file } = await withSecretFile(options.out, async () => {
          const assigned = await s.devices.assignStock(options.serial, u.id, 'cli');
          return { text: `${JSON.stringify(assigned.file, null, 2)}\n`, result: assigned };
        });
        print(t('legacy.cli.assigned', { serial: file.serial, count: devices.length, username: u.username, path: options.out }));
      });
    });

  device
    .command('import-scc')
    .description('import a user\'s legacy Security Code Card: a file of its codes, one per line from index 1, or "index,code" lines')
    .argument('<file>')
    .requiredOption('--user <u>', 'username')
    .requiredOption('--serial <s>', 'the serial number printed on the card')
    .addOption(dbOption())
    .action(async (file: string, options: DbOption & { user: string; serial: string }) => {
      // X3: a regular file of at most 1 MiB (a card has hundreds of codes, not millions)
      const text = readTextFile(file);
      const codes: string[] = [];
      for (const [n, raw] of text.split(/\r?\n/).entries()) {
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) continue;
        const match = /^(?:(\d{1,4})\s*[,;\t]\s*)?(\d{3})$/.exec(line);
        if (!match) throw new SlsError('VALIDATION_ERROR', { reason: 'scc_line', line: n + 1 });
        const index = match[1] === undefined ? codes.length + 1 : Number(match[1]);
        if (index !== codes.length + 1) throw new SlsError('VALIDATION_ERROR', { reason: 'scc_order', line: n + 1, index });
        codes.push(match[2]!);
      }
      await withServices(options, async (s) => {
        const u = await s.users.getByUsername(options.user);
        const device = await s.onlineCards.importSecurityCodeCard(u.id, options.serial, codes, 'cli');
        print(t('cli.sccImported', { serial: device.serial, username: u.username, count: codes.length }));
      });
    });

  program
    .command('dsc')
    .description('the DSC+ card emulator: press, PIN>, OK, CHALLNG>, OK, the 8-digit response')
    .requiredOption('--card <file>', 'card file written by `sls device add-dscplus`')
    .addOption(secretFileOption('--pin', 'non-interactive: the PIN to type'))
    .option('--pin <nnnn>', visibleSecret('non-interactive: the PIN to type', '--pin'))
    .option('--challenge <nnnnnn>', 'non-interactive: the challenge to type; prints only the response')
    .action(async (options: { card: string; pin?: string; pinFile?: string; challenge?: string }) => {
      const card = readCardFile(options.card);
      const pin = await new SecretInputs().get({ flag: '--pin', value: options.pin, file: options.pinFile });
      if ((pin === undefined) !== (options.challenge === undefined)) {
        throw new SlsError('VALIDATION_ERROR', { reason: 'dsc_pin_challenge' });
      }
      if (pin !== undefined && options.challenge !== undefined) {
        print(cardResponse(card, pin, options.challenge));
        return;
      }
      await runCardEmulator(card, t);
    });

  program
    .command('token')
    .description(
      'the legacy device emulator: a Platinum / Gold token prints its current code (an event-based one moves its counter on in the file); the legacy DSC prints its response to --challenge',
    )
    .requiredOption('--card <file>', 'token file written by `sls device assign`')
    .option('--key <id>', 'which key, when the device holds several (key id, device id or serial)')
    .option('--challenge <n>', 'the legacy DSC: the challenge shown at login')
    .action((options: { card: string; key?: string; challenge?: string }) => {
      print(pressToken(options.card, options.key, Date.now(), options.challenge));
    });

  program
    .command('ocra')
    .description('compute an OCRA (RFC 6287) value; prints only the value')
    .requiredOption('--suite <s>', 'OCRA suite, e.g. OCRA-1:HOTP-SHA256-8:QN06-PSHA1')
    .addOption(secretFileOption('--key', 'the secret key (hex)'))
    .option('--key <hex>', visibleSecret('the secret key', '--key'), hexOption('--key'))
    .requiredOption(
      '--question <q>',
      "the challenge question, at most the suite's length (QN08: 8 digits); twice for a mutual challenge-response, in the order of the computation",
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .addOption(secretFileOption('--pin', 'the PIN'))
    .option('--pin <p>', visibleSecret('the PIN, hashed as the suite says', '--pin'))
    .addOption(secretFileOption('--pin-hash', 'the hashed PIN (hex)'))
    .option('--pin-hash <hex>', visibleSecret('or the hashed PIN', '--pin-hash'), hexOption('--pin-hash'))
    .option('--counter <n>', 'the counter C (decimal)')
    .option('--timestamp <hex>', "the number of the suite's time steps, in hex")
    .option('--session <hex>', 'session information S, hex', hexOption('--session'))
    .action(
      async (given: {
        suite: string;
        key?: Buffer;
        keyFile?: string;
        question: string[];
        pin?: string;
        pinFile?: string;
        pinHash?: Buffer;
        pinHashFile?: string;
        counter?: string;
        timestamp?: string;
        session?: Buffer;
      }) => {
        const secrets = new SecretInputs();
        const key = (await secrets.get({ flag: '--key', value: given.key, file: given.keyFile }, true))!;
        const pin = await secrets.get({ flag: '--pin', value: given.pin, file: given.pinFile });
        const pinHash = await secrets.get({ flag: '--pin-hash', value: given.pinHash, file: given.pinHashFile });
        const options = {
          ...given,
          key: typeof key === 'string' ? hexOption('--key-file')(key) : key,
          pin,
          pinHash: typeof pinHash === 'string' ? hexOption('--pin-hash-file')(pinHash) : pinHash,
        };
        if (options.pin !== undefined && options.pinHash !== undefined) {
          throw new SlsError('VALIDATION_ERROR', { reason: 'ocra_pin_both' });
        }
        if (options.counter !== undefined && !/^\d{1,20}$/.test(options.counter)) {
          throw new SlsError('VALIDATION_ERROR', { reason: 'ocra_counter', field: '--counter' });
        }
        if (options.timestamp !== undefined && !/^[0-9a-fA-F]{1,16}$/.test(options.timestamp)) {
          throw new SlsError('VALIDATION_ERROR', { reason: 'ocra_timestamp', field: '--timestamp' });
        }
        const suite = parseOcraSuite(options.suite);
        // what the suite takes, and only that: an input it ignores was meant for another suite
        for (const [field, given, takes] of [
          ['--pin', options.pin ?? options.pinHash, suite.pinHash !== null],
          ['--counter', options.counter, suite.counter],
          ['--timestamp', options.timestamp, suite.timeStep !== null],
          ['--session', options.session, suite.sessionLength !== null],
        ] as const) {
          if (given !== undefined && !takes) throw new SlsError('VALIDATION_ERROR', { reason: 'ocra_unused', suite: suite.text, field });
          if (given === undefined && takes) throw new SlsError('VALIDATION_ERROR', { reason: 'ocra_missing', suite: suite.text, field });
        }
        const question = ocraQuestion(suite, options.question);
        print(
          generateOcra(suite, {
            key: options.key,
            question,
            ...(options.pin !== undefined ? { pin: options.pin } : {}),
            ...(options.pinHash !== undefined ? { pinHash: options.pinHash } : {}),
            ...(options.counter !== undefined ? { counter: BigInt(options.counter) } : {}),
            ...(options.timestamp !== undefined ? { timestamp: BigInt(`0x${options.timestamp}`) } : {}),
            ...(options.session !== undefined ? { session: options.session } : {}),
          }),
        );
      },
    );

  const audit = program.command('audit').description('the keyed, hash-chained audit log');
  audit
    .command('list')
    .description('audit entries, newest first, a page at a time')
    .option('--user <u>', 'only entries about this username')
    .option('--since <time>', 'from this date or time (ISO 8601: 2026-03-01 or 2026-03-01T09:30:00Z)')
    .option('--until <time>', 'before this date or time (ISO 8601)')
    .option('--type <event>', 'only this event (login.locked) or family of events (login.*)')
    .option('--limit <n>', 'how many (default 50)', intOption('--limit', 1, 100000))
    .option('--cursor <c>', 'the next page: the cursor the page before printed')
    .option('--json', 'print JSON')
    .addOption(dbOption())
    .action(async (options: DbOption & { user?: string; since?: string; until?: string; type?: string; limit?: number; cursor?: string; json?: boolean }) => {
      const query = parseAuditFilter(options, { defaultLimit: 50, maxLimit: 100000 });
      await withServices(
        options,
        async (s) => {
          const { entries, next } = await s.audit.page(query);
          if (options.json) printJson(entries);
          else if (entries.length === 0) print(options.user ? t('cli.noAuditFor', { username: options.user }) : t('cli.noAudit'));
          else {
            const actor = await s.users.actorNames(entries.map((e) => e.actor));
            const time = readableTime(s.config.timeZone);
            const header = ['cli.columns.seq', 'cli.columns.time', 'cli.columns.event', 'cli.columns.user', 'cli.columns.actor', 'cli.columns.data'].map(
              (key) => t(key),
            );
            const rows = entries.map((e) => [String(e.seq), time(e.at), e.event, e.username ?? '-', actor(e.actor), JSON.stringify(e.data)]);
            for (const line of columns([header, ...rows], { right: [0] })) print(line);
          }
          // on standard error, so that standard output stays the entries alone
          if (next !== null) process.stderr.write(`${t('audit.more', { cursor: next })}\n`);
        },
        UNANCHORED,
      );
    });

  audit
    .command('verify')
    .description(
      'recompute the keyed chain and compare it with the signed head (and a checkpoint); exits non-zero and says what it found if entries were altered, removed or added around the server',
    )
    .option('--checkpoint <line>', 'also prove that nothing up to this checkpoint (a line of sls audit checkpoint) changed')
    .addOption(dbOption())
    .action(async (options: DbOption & { checkpoint?: string }) => {
      await withServices(
        options,
        async (s) => {
          const result = await s.audit.verify(options.checkpoint !== undefined ? { checkpoint: options.checkpoint } : {});
          if (!result.ok) {
            // every finding on standard output; the first as the error
            for (const finding of result.findings) print(describeError(t, findingError(finding)));
            throw findingError(result.findings[0]!);
          }
          print(t('cli.auditOk', { entries: result.entries, head: result.head }));
          if (result.legacyUntil > 0) print(t('audit.legacy', { seq: result.legacyUntil }));
          if (result.checkpoint) print(t('audit.checkpointOk', { seq: result.checkpoint.seq }));
        },
        UNANCHORED,
      );
    });

  audit
    .command('anchor')
    .description(
      'once, after upgrading a database from before the keyed chain: verify the entries chained with plain SHA-256, sign the head under the master key and audit it',
    )
    .addOption(dbOption())
    .action(async (options: DbOption) => {
      await withServices(
        options,
        async (s) => {
          const anchored = await s.audit.anchor();
          if (!anchored) {
            print(t('audit.alreadyAnchored'));
            return;
          }
          const time = readableTime(s.config.timeZone);
          print(
            anchored.legacyUntil === 0
              ? t('audit.anchoredEmpty')
              : t('audit.anchored', {
                  count: anchored.legacyUntil,
                  first: time(anchored.firstAt ?? 0),
                  last: time(anchored.lastAt ?? 0),
                  hash: anchored.hash,
                }),
          );
        },
        UNANCHORED,
      );
    });

  audit
    .command('checkpoint')
    .description('verify the log, then print its signed head as one line to keep outside this server (seq, hash, time, signature)')
    .addOption(dbOption())
    .action(async (options: DbOption) => {
      await withServices(options, async (s) => print(await s.audit.checkpoint()));
    });

  registerEntitlementCommands(program, { t, print, printJson, dbOption, withServices });
  registerOidcCommands(program, { t, print, printJson, dbOption, withServices });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has already printed the help or the version (its usage errors are SlsErrors: SlsCommand)
      return error.exitCode;
    }
    // X4: a cause for people, never only "something went wrong"; SLS_DEBUG=1 adds where it happened
    const line = error instanceof SlsError ? describeError(t, error) : t('ops.unexpected', { reason: error instanceof Error ? error.message : String(error) });
    process.stderr.write(`sls: ${line}\n`);
    if ((!(error instanceof SlsError) || error.status >= 500) && process.env.SLS_DEBUG) {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    }
    return 1;
  }
}
