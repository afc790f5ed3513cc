/** `sls serve` / `npm start`: the server on the configured database, until SIGINT or SIGTERM. */
import { type Config, isLoopbackHost } from '../config.js';
import { createServices } from '../services.js';
import { buildApp } from '../http/app.js';
import { environmentLanguage, translator } from '../i18n/i18n.js';
import { parseDatabaseUrl } from '../store/database.js';
import { SlsError } from '../errors.js';

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
  // X1: the server checks its audit chain at start, from where it left off (a break is logged and shown by /metrics)
  services.chainWatch.run().catch((error: unknown) => app.log.error({ err: error }, 'audit chain check failed'));
  // M7, D5: the codes that expired while the server was down, and the audio of calls a purge cut short, go at start
  services.notifier.purgeExpiredCodes().catch((error: unknown) => app.log.error({ err: error }, 'purge of expired codes failed'));
  const maintenance = setInterval(() => {
    services.scheduler.runDue().catch((error: unknown) => app.log.error({ err: error }, 'scheduled work failed'));
  }, SCHEDULER_INTERVAL_MS);
  maintenance.unref();

  // X6: a stray rejection (a database gone in the middle of background work) is logged, never the end of the process
  const onRejection = (reason: unknown): void => app.log.error({ err: reason }, 'unhandled rejection');
  process.on('unhandledRejection', onRejection);

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    clearInterval(maintenance);
    process.off('unhandledRejection', onRejection);
    await app.close().catch(() => undefined);
    await services.close();
    throw listenFailure(error, config.host, config.port);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const url = config.publicUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const database = parseDatabaseUrl(config.databaseUrl);
  // I1, D6: reached from other machines, the server must know its own address: a forged Host header must decide nothing
  if (!config.publicUrl && !isLoopbackHost(config.host)) print(t('cli.noPublicUrl', { host: config.host }));
  print(t('cli.serving', { url }));
  print(t('cli.database', { database: database.dialect === 'sqlite' ? database.location : 'PostgreSQL' }));

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) {
        // a second signal: stop now
        app.server.closeAllConnections();
        return;
      }
      stopping = true;
      clearInterval(maintenance);
      const seconds = Math.ceil(config.shutdownTimeoutMs / 1000);
      print(t('ops.stopping', { seconds }));
      // X6: past the timeout, the connections still open are closed (their requests end unanswered)
      let timedOut = false;
      const deadline = setTimeout(() => {
        timedOut = true;
        app.server.closeAllConnections();
      }, config.shutdownTimeoutMs);
      app
        // new requests get 503 SHUTTING_DOWN, waiting long polls answer now, requests under way finish
        .close()
        // services.close() stops the outbox worker first (it waits a moment for the deliveries under way)
        .then(() => services.close())
        .catch((error: unknown) => app.log.error({ err: error }, 'stopping failed'))
        .finally(() => {
          clearTimeout(deadline);
          process.off('unhandledRejection', onRejection);
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          print(timedOut ? t('ops.stopTimedOut', { seconds }) : t('ops.stopped'));
          resolve();
        });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** X4: why the server could not listen, naming the setting that fixes it. */
function listenFailure(error: unknown, host: string, port: number): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new SlsError('PORT_IN_USE', { host, port });
  if (code === 'EACCES' || code === 'EADDRNOTAVAIL') return new SlsError('PORT_NOT_ALLOWED', { host, port, reason: code });
  return error;
}
