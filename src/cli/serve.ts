/** `sls serve` / `npm start`: the server on the configured database, until SIGINT or SIGTERM. */
import type { Config } from '../config.js';
import { createServices } from '../services.js';
import { buildApp } from '../http/app.js';
import { environmentLanguage, translator } from '../i18n/i18n.js';
import { parseDatabaseUrl } from '../store/database.js';

const SCHEDULER_INTERVAL_MS = 60 * 1000;

export async function serve(config: Config, print: (line: string) => void): Promise<void> {
  const t = translator(environmentLanguage());
  let log: ((event: { id: string; outcome: string; attempts: number; error?: string }) => void) | undefined;
  const services = await createServices(config, { logOutbox: (event) => log?.(event) });
  const app = await buildApp(services);
  // X6: the outbox worker of this process; a failed attempt is logged with its status code only
  log = (event) => {
    if (event.outcome === 'sent') app.log.debug({ notification: event.id, attempts: event.attempts }, 'notice sent');
    else app.log.warn({ notification: event.id, attempts: event.attempts, outcome: event.outcome, error: event.error }, 'notice not delivered');
  };
  services.outbox.start();
  const maintenance = setInterval(() => {
    services.scheduler.runDue().catch((error: unknown) => app.log.error({ err: error }, 'scheduled work failed'));
  }, SCHEDULER_INTERVAL_MS);
  maintenance.unref();

  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const url = config.publicUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const database = parseDatabaseUrl(config.databaseUrl);
  print(t('cli.serving', { url }));
  print(t('cli.database', { database: database.dialect === 'sqlite' ? database.location : 'PostgreSQL' }));

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      clearInterval(maintenance);
      app
        .close()
        // services.close() stops the outbox worker first (it waits a moment for the deliveries under way)
        .then(() => services.close())
        .finally(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
