/**
 * `sls user opt-out USER` and `sls user opt-in USER` (O1-O3): an operator
 * changes a client's Secure Login Settings on the server, audited with the
 * actor `cli` and told to the user (N1). Opting out keeps O3 (only a user
 * with the right to change the account's security settings) and needs
 * `--confirm USER`, the username typed again, as the portal asks; opting
 * back in only restores protection, for any client.
 */
import type { Command, Option } from 'commander';
import type { Translate } from '../i18n/i18n.js';
import type { Services } from '../services.js';

interface DbOption {
  db?: string;
}

export interface OptOutCommandsContext {
  user: Command;
  withServices<T>(options: DbOption, fn: (services: Services) => Promise<T>): Promise<T>;
  print(line: string): void;
  dbOption(): Option;
  t: Translate;
}

export function registerOptOutCommands(c: OptOutCommandsContext): void {
  const { user, withServices, print, dbOption, t } = c;

  user
    .command('opt-out')
    .description(
      'opt a client out of the second factor for trading logins: the password alone opens trading; no Pink Sheet / OTCBB trading, the withdrawal limits of a user without a device. Only a user with the right to change the security settings',
    )
    .argument('<username>')
    .requiredOption('--confirm <username>', 'the username again: the client asked for it and accepts the restrictions')
    .addOption(dbOption())
    .action(async (username: string, options: DbOption & { confirm: string }) => {
      await withServices(options, async (s) => {
        const target = await s.users.getByUsername(username);
        const { changed } = await s.optOuts.optOut(target.id, { acknowledged: true, confirmation: options.confirm }, { actor: 'cli' });
        print(t(changed ? 'optOut.cli.optedOut' : 'optOut.cli.alreadyOptedOut', { username }));
      });
    });

  user
    .command('opt-in')
    .description('opt a client back into the Secure Login System: every login asks for the device again and the restrictions end')
    .argument('<username>')
    .addOption(dbOption())
    .action(async (username: string, options: DbOption) => {
      await withServices(options, async (s) => {
        const target = await s.users.getByUsername(username);
        const { changed } = await s.optOuts.optIn(target.id, { actor: 'cli' });
        print(t(changed ? 'optOut.cli.optedIn' : 'optOut.cli.alreadyOptedIn', { username }));
        const active = (await s.devices.activeForUser(target.id, null)).some((d) => !s.deviceKind(d.type).temporary);
        if (changed && !active) process.stderr.write(`${t('optOut.cli.noDevice', { username })}\n`);
      });
    });
}
