/**
 * `sls apikey` and `sls fx`: the integrators' API keys (I3) and the
 * operator's exchange rates (W3). docs/entitlements.md.
 */
import { readableTime } from './format.js';
import { readTextFile } from './files.js';
import type { Command, Option } from 'commander';
import { parseScopes } from '../entitlements/api-keys.js';
import { parseRatesFile } from '../entitlements/fx.js';
import type { Translate } from '../i18n/i18n.js';
import type { Services } from '../services.js';

interface DbOption {
  db?: string;
}

/** What the command line's main file shares with its command groups. */
export interface CliKit {
  t: Translate;
  print(line: string): void;
  printJson(value: unknown): void;
  dbOption(): Option;
  withServices<T>(options: DbOption, fn: (services: Services) => Promise<T>): Promise<T>;
}

/** A moment for people, in the server's time zone (SLS_TIME_ZONE); '-' for never. */
function when(services: Pick<Services, 'config'>, ms: number | null): string {
  return ms === null ? '-' : readableTime(services.config.timeZone)(ms);
}

export function registerEntitlementCommands(program: Command, kit: CliKit): void {
  const { t, print, printJson, dbOption, withServices } = kit;

  const apikey = program.command('apikey').description("integrators' API keys for the entitlement API (docs/entitlements.md)");
  apikey
    .command('create')
    .description('create an API key; prints it once (only a keyed digest is kept)')
    .requiredOption('--name <n>', 'who uses it, e.g. "back office"')
    .requiredOption('--scope <s>', 'comma-separated: withdrawals (checks, records, entitlements), accounts')
    .addOption(dbOption())
    .action(async (options: DbOption & { name: string; scope: string }) => {
      const scopes = parseScopes(options.scope);
      await withServices(options, async (s) => {
        const { key, apiKey } = await s.apiKeys.create({ name: options.name, scopes }, 'cli');
        // the key alone on standard output, for a script to capture; the explanation on standard error
        print(key);
        process.stderr.write(`${t('entitlements.apiKeyCreated', { id: apiKey.id, name: apiKey.name, scopes: apiKey.scopes.join(',') })}\n`);
      });
    });

  apikey
    .command('list')
    .description('the API keys: id, name, scopes, when created and last used, revoked or not (never the secret)')
    .option('--json', 'print JSON')
    .addOption(dbOption())
    .action(async (options: DbOption & { json?: boolean }) => {
      await withServices(options, async (s) => {
        const keys = await s.apiKeys.list();
        if (options.json) return printJson(keys);
        if (keys.length === 0) return print(t('entitlements.noApiKeys'));
        for (const k of keys) {
          print(
            t('entitlements.apiKeyLine', {
              id: k.id,
              name: k.name,
              scopes: k.scopes.join(','),
              createdAt: when(s, k.createdAt),
              createdBy: k.createdBy,
              lastUsedAt: when(s, k.lastUsedAt),
              status: k.revokedAt === null ? t('entitlements.active') : t('entitlements.revoked', { at: when(s, k.revokedAt) }),
            }),
          );
        }
      });
    });

  apikey
    .command('revoke')
    .description('revoke an API key at once, on every server process')
    .argument('<id>', 'the key id (key_…), from sls apikey list')
    .addOption(dbOption())
    .action(async (id: string, options: DbOption) => {
      await withServices(options, async (s) => {
        const key = await s.apiKeys.revoke(id, 'cli');
        print(t('entitlements.apiKeyRevoked', { id: key.id }));
      });
    });

  const fx = program.command('fx').description('exchange rates for withdrawals in other currencies: USD per unit');
  fx.command('set')
    .description('set the rate of a currency: USD per unit, e.g. sls fx set EUR 1.08')
    .argument('<currency>', 'ISO 4217 code')
    .argument('<rate>', 'USD per unit of the currency')
    .addOption(dbOption())
    .action(async (currency: string, rate: string, options: DbOption) => {
      await withServices(options, async (s) => {
        const set = await s.fx.set([{ currency, rate }], 'cli');
        for (const r of set)
          print(t('entitlements.fxLine', { currency: r.currency, rate: r.usdPerUnit, updatedAt: when(s, r.updatedAt), updatedBy: r.updatedBy }));
      });
    });

  fx.command('import')
    .description('set the rates of a file, all or none: lines "CURRENCY RATE" (e.g. "EUR 1.08"); # starts a comment')
    .argument('<file>')
    .addOption(dbOption())
    .action(async (file: string, options: DbOption) => {
      // X3: a regular file of at most 1 MiB
      const rates = parseRatesFile(readTextFile(file));
      await withServices(options, async (s) => {
        const set = await s.fx.set(rates, 'cli');
        print(t('entitlements.fxSet', { count: set.length }));
      });
    });

  fx.command('list')
    .description('the exchange rates (USD is always 1)')
    .option('--json', 'print JSON')
    .addOption(dbOption())
    .action(async (options: DbOption & { json?: boolean }) => {
      await withServices(options, async (s) => {
        const rates = await s.fx.list();
        if (options.json) return printJson(rates);
        if (rates.length === 0) return print(t('entitlements.noFxRates'));
        for (const r of rates) {
          const line = t('entitlements.fxLine', { currency: r.currency, rate: r.usdPerUnit, updatedAt: when(s, r.updatedAt), updatedBy: r.updatedBy });
          // W3 (decision 0040): the operator sees which rates convert nothing before a withdrawal is refused
          print(r.stale ? `${line}  ${t('entitlements.fxStale', { currency: r.currency })}` : line);
        }
      });
    });
}
