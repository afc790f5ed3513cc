/**
 * The bench's own PostgreSQL database: created fresh for the run on the
 * server named by BENCH_DATABASE_URL (or SLS_TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test), dropped at the end, so that the
 * tests' schemas and data are never touched. Each server process connects
 * with an application_name of its own, so pg_stat_activity tells which
 * process holds which connections.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

export function postgresBaseUrl(): string {
  return process.env.BENCH_DATABASE_URL || process.env.SLS_TEST_DATABASE_URL || DEFAULT_POSTGRES_URL;
}

export interface BenchPostgres {
  /** The new database's name (its backends' process titles carry it). */
  database: string;
  /** Its URL, as a server process gets it, with that process's application_name. */
  url(applicationName?: string): string;
  /** PostgreSQL connections to the database, by application_name (the servers' and the bench's own). */
  connections(): Promise<Record<string, number>>;
  drop(): Promise<void>;
}

/** The URL without its password, for people to read. */
export function describePostgres(url: string): string {
  const u = new URL(url);
  u.password = '';
  return u.toString();
}

async function admin<T>(baseUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates a fresh database; throws when the server cannot be reached or refuses. */
export async function createBenchPostgres(baseUrl: string): Promise<BenchPostgres> {
  const database = `sls_bench_${randomBytes(5).toString('hex')}`;
  await admin(baseUrl, (client) => client.query(`create database ${database}`));
  const urlOf = (applicationName?: string): string => {
    const u = new URL(baseUrl);
    u.pathname = `/${database}`;
    if (applicationName) u.searchParams.set('application_name', applicationName);
    return u.toString();
  };
  const dropDatabase = () =>
    admin(baseUrl, async (client) => {
      // WITH (FORCE): a server that did not stop cleanly must not keep the database alive (PostgreSQL 13+)
      await client.query(`drop database if exists ${database} with (force)`);
    });
  // a run stopped with Ctrl-C (or killed politely) leaves no database behind either
  const onSignal = (signal: NodeJS.Signals): void => {
    void dropDatabase()
      .catch(() => undefined)
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    database,
    url: urlOf,
    connections: () =>
      admin(baseUrl, async (client) => {
        const { rows } = await client.query<{ name: string; n: string }>(
          'select application_name as name, count(*) as n from pg_stat_activity where datname = $1 group by application_name order by 1',
          [database],
        );
        return Object.fromEntries(rows.map((r) => [r.name || '(none)', Number(r.n)]));
      }),
    drop: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      return dropDatabase();
    },
  };
}
