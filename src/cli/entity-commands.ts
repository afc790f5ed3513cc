/**
 * `sls entity`, `sls account create` and the primary user's right (A1, A2,
 * A6): an entity with its identification data (shown masked), its accounts,
 * and who of an account's users may change its security settings.
 */
import type { Command, Option } from 'commander';
import type { Translate } from '../i18n/i18n.js';
import type { Services } from '../services.js';
import { maskIdentification, type MaskedIdentification } from '../identity/entities.js';
import { SecretInputs, secretFileOption, visibleSecret } from './secrets.js';

interface DbOption {
  db?: string;
}

export interface EntityCommandsContext {
  program: Command;
  user: Command;
  account: Command;
  withServices<T>(options: DbOption, fn: (services: Services) => Promise<T>): Promise<T>;
  print(line: string): void;
  printJson(value: unknown): void;
  dbOption(): Option;
  amountOption(value: string): number;
  t: Translate;
}

interface EntityOptions extends DbOption {
  kind: string;
  name: string;
  dob?: string;
  citizenship?: string;
  residence?: string;
  idType?: string;
  idNumber?: string;
  ssn?: string;
  dobFile?: string;
  idNumberFile?: string;
  ssnFile?: string;
}

function printIdentification(print: (line: string) => void, id: MaskedIdentification): void {
  for (const [key, value] of Object.entries(id)) if (value !== null) print(`${key.padEnd(18)} ${value}`);
}

export function registerEntityCommands(c: EntityCommandsContext): void {
  const { program, user, account, withServices, print, printJson, dbOption, amountOption, t } = c;
  const entity = program.command('entity').description('the individuals and organisations behind usernames, with their identification data');

  entity
    .command('create')
    .description('create an entity; prints its id, for `sls user create --entity` and `sls account create --entity`')
    .requiredOption('--kind <k>', 'individual or organisation')
    .requiredOption('--name <n>', 'the name of the person or the company')
    // X1, A1: identification data is personal: like a secret, each has a -file twin the process list and the shell history never show
    .addOption(secretFileOption('--dob', 'date of birth (individuals)'))
    .option('--dob <yyyy-mm-dd>', visibleSecret('date of birth (individuals)', '--dob'))
    .option('--citizenship <cc>', 'citizenship, ISO 3166 country code (individuals)')
    .option('--residence <cc>', 'country of legal residence (of registration, for an organisation), ISO 3166 country code')
    .option('--id-type <t>', 'passport, national_id, drivers_license, residence_permit; company_registration, tax_id for an organisation')
    .addOption(secretFileOption('--id-number', 'the number of that document'))
    .option('--id-number <n>', visibleSecret('the number of that document', '--id-number'))
    .addOption(secretFileOption('--ssn', 'Social Security Number, for US citizens and residents instead of a document'))
    .option('--ssn <nnn-nn-nnnn>', visibleSecret('Social Security Number, for US citizens and residents instead of a document', '--ssn'))
    .addOption(dbOption())
    .action(async (options: EntityOptions) => {
      const given = new SecretInputs();
      const dob = await given.get({ flag: '--dob', value: options.dob, file: options.dobFile });
      const idNumber = await given.get({ flag: '--id-number', value: options.idNumber, file: options.idNumberFile });
      const ssn = await given.get({ flag: '--ssn', value: options.ssn, file: options.ssnFile });
      await withServices(options, async (s) => {
        const created = await s.entities.create(
          {
            kind: options.kind,
            name: options.name,
            identification: {
              dateOfBirth: dob,
              citizenship: options.citizenship,
              residenceCountry: options.residence,
              documentType: options.idType,
              documentNumber: idNumber,
              ssn,
            },
          },
          'cli',
        );
        print(created.id);
        process.stderr.write(`${t('accounts.cli.entityCreated', { id: created.id, name: created.name })}\n`);
        printIdentification((line) => process.stderr.write(`${line}\n`), maskIdentification(created.identification));
      });
    });

  entity
    .command('show')
    .description('show an entity: its identification data, masked, and its accounts and usernames')
    .argument('<entity>')
    .option('--json', 'print JSON')
    .addOption(dbOption())
    .action(async (id: string, options: DbOption & { json?: boolean }) => {
      await withServices(options, async (s) => {
        const view = await s.entities.view(id);
        if (options.json) return printJson(view);
        print(`${'id'.padEnd(18)} ${view.id}`);
        print(`${'kind'.padEnd(18)} ${view.kind}`);
        print(`${'name'.padEnd(18)} ${view.name}`);
        printIdentification(print, view.identification as MaskedIdentification);
        for (const a of view.accounts) print(`account            ${a.accountNumber}  ${a.usernames.join(' ') || '-'}`);
      });
    });

  account
    .command('create')
    .description('open an account for an entity; its first user (`sls user create --account A`) is its primary user')
    .requiredOption('--entity <id>', 'the entity')
    .option('--account <a>', 'the account number (default: a new one)')
    .option('--equity <usd>', 'account equity in USD', amountOption)
    .addOption(dbOption())
    .action(async (options: DbOption & { entity: string; account?: string; equity?: number }) => {
      await withServices(options, async (s) => {
        const created = await s.users.createAccount(
          {
            entityId: options.entity,
            ...(options.account !== undefined ? { accountNumber: options.account } : {}),
            ...(options.equity !== undefined ? { equityUsd: options.equity } : {}),
          },
          'cli',
        );
        print(created.accountNumber);
      });
    });

  for (const granted of [true, false]) {
    user
      .command(granted ? 'grant-security' : 'revoke-security')
      .description(
        granted
          ? 'give a user the right to change the security settings of the account (the primary user always has it)'
          : 'take back the right to change the security settings (never from the primary user)',
      )
      .argument('<username>')
      .addOption(dbOption())
      .action(async (username: string, options: DbOption) => {
        await withServices(options, async (s) => {
          const changed = await s.securityRights.setRight(username, granted, 'cli');
          const key = granted ? (changed ? 'granted' : 'alreadyGranted') : changed ? 'revoked' : 'alreadyRevoked';
          print(t(`accounts.cli.${key}`, { username }));
        });
      });
  }
}
