/**
 * `sls client` and `sls oidc`: the OpenID Provider's relying parties and its
 * signing keys (I1). docs/oidc.md.
 */
import type { Command } from 'commander';
import type { OidcClient } from '../oidc/clients.js';
import type { CliKit } from './entitlements.js';

interface DbOption {
  db?: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerOidcCommands(program: Command, kit: CliKit): void {
  const { t, print, printJson, dbOption, withServices } = kit;

  const line = (c: OidcClient): string =>
    [
      c.clientId,
      c.app,
      `${c.public ? 'public' : 'confidential'}${c.deviceGrant ? '+device' : ''}`,
      c.name,
      c.redirectUris.join(',') || '-',
      c.backchannelLogoutUri ?? '-',
    ].join('\t');

  const client = program.command('client').description('the OpenID Connect clients (relying parties) of the provider (docs/oidc.md)');
  client
    .command('create')
    .description(
      'register a client; prints its secret once (only a keyed digest is kept); --public for a client without secret (PKCE); --device for a platform without a browser (device code)',
    )
    .requiredOption('--name <n>', 'its name, e.g. "Client Portal"')
    .requiredOption('--app <app>', 'portal or trading: the application its logins open')
    .option('--redirect-uri <url>', 'where the provider sends the browser back (repeatable; at least one unless --device)', collect)
    .option('--post-logout-redirect-uri <url>', 'where RP-initiated logout may send the browser (repeatable)', collect)
    .option('--backchannel-logout-uri <url>', 'where logout tokens are posted when a session ends')
    .option('--public', 'a public client (browser or native app): no secret, PKCE required')
    .option('--device', 'may use the device authorization grant (RFC 8628): it shows a code the user approves on a phone or computer')
    .option('--json', 'print JSON')
    .addOption(dbOption())
    .action(
      async (
        options: DbOption & {
          name: string;
          app: string;
          redirectUri?: string[];
          postLogoutRedirectUri?: string[];
          backchannelLogoutUri?: string;
          public?: boolean;
          device?: boolean;
          json?: boolean;
        },
      ) => {
        await withServices(options, async (s) => {
          const { client: created, secret } = await s.oidc.clients.create(
            {
              name: options.name,
              app: options.app,
              redirectUris: options.redirectUri ?? [],
              postLogoutRedirectUris: options.postLogoutRedirectUri ?? [],
              backchannelLogoutUri: options.backchannelLogoutUri ?? null,
              public: options.public === true,
              deviceGrant: options.device === true,
            },
            'cli',
          );
          if (options.json) return printJson({ ...created, clientSecret: secret });
          print(t('oidc.cli.created', { clientId: created.clientId, name: created.name, app: created.app }));
          print(secret === null ? t('oidc.cli.public') : t('oidc.cli.secret', { secret }));
          if (created.deviceGrant) print(t('oidc.cli.device'));
        });
      },
    );

  client
    .command('list')
    .description('the clients: id, app, type, name, redirect URIs, back-channel logout URI (never a secret)')
    .option('--json', 'print JSON')
    .addOption(dbOption())
    .action(async (options: DbOption & { json?: boolean }) => {
      await withServices(options, async (s) => {
        const clients = await s.oidc.clients.list();
        if (options.json) return printJson(clients);
        if (clients.length === 0) return print(t('oidc.cli.none'));
        for (const c of clients) print(line(c));
      });
    });

  client
    .command('show')
    .description("one client's registration")
    .argument('<client-id>', 'cli_…, from sls client list')
    .addOption(dbOption())
    .action(async (clientId: string, options: DbOption) => {
      await withServices(options, async (s) => printJson(await s.oidc.clients.get(clientId)));
    });

  client
    .command('delete')
    .description('delete a client: its tokens stop working at once')
    .argument('<client-id>', 'cli_…, from sls client list')
    .addOption(dbOption())
    .action(async (clientId: string, options: DbOption) => {
      await withServices(options, async (s) => {
        await s.oidc.clients.delete(clientId, 'cli');
        print(t('oidc.cli.deleted', { clientId }));
      });
    });

  const oidc = program.command('oidc').description('the OpenID Provider (docs/oidc.md)');
  oidc
    .command('rotate-keys')
    .description('a new signing key signs from now on (every server process within seconds); the old one stays published until its tokens expire')
    .addOption(dbOption())
    .action(async (options: DbOption) => {
      await withServices(options, async (s) => {
        await s.oidc.keys.published();
        const { kid, retired } = await s.oidc.keys.rotate('cli');
        print(t('oidc.cli.rotated', { kid, retired: retired.join(', ') || '-' }));
      });
    });
}
