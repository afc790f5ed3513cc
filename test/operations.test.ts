/** X6: readiness apart from liveness, and what counts as a database outage (answered 503, not 500). */
import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { DATABASES, startHarness, type Harness } from './support/harness.js';
import { isDatabaseUnavailable, openStore, parseDatabaseUrl } from '../src/store/database.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
import { openSignals } from '../src/push/signals.js';

describe.each(DATABASES)('readiness on %s', (dbName) => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  it('X6: /ready answers 200 with the database once migrated; /health is liveness only', async () => {
    h = await startHarness(dbName);
    const ready = await h.app.inject({ method: 'GET', url: '/api/v1/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready', database: dbName });
    expect((await h.app.inject({ method: 'GET', url: '/api/v1/health' })).json()).toEqual({ status: 'ok' });
  });

  it('X6: a schema behind this version (another process still migrating) is not ready: 503 MIGRATIONS_PENDING with Retry-After', async () => {
    h = await startHarness(dbName);
    await sql`delete from kysely_migration where name = ${'0012_rate_counters'}`.execute(h.services.store.db);
    const ready = await h.app.inject({ method: 'GET', url: '/api/v1/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().error.code).toBe('MIGRATIONS_PENDING');
    expect(ready.headers['retry-after']).toBe('5');
  });

  it('X6: when the server stops, a waiting long poll looks a last time and answers at once', async () => {
    h = await startHarness(dbName);
    const signals = openSignals(h.services.store);
    let checks = 0;
    const waiting = signals.waitFor(['flow:none'], 60_000, async () => {
      checks += 1;
      return null;
    });
    signals.stopWaiting();
    // answered without its minute passing (the test's own timeout would end first)
    await expect(waiting).resolves.toBeNull();
    expect(checks).toBeGreaterThanOrEqual(1);
    await signals.close();
  });
});

describe('X6: which failures are a database outage', () => {
  it('X6: lost or refused connections and a busy SQLite file are; constraint violations and bugs are not', () => {
    const outages = [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
      Object.assign(new Error('connection failure'), { code: '08006' }),
      Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }),
    ];
    for (const error of outages) expect(isDatabaseUnavailable(error), error.message).toBe(true);
    const others = [
      Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' }),
      Object.assign(new Error('UNIQUE constraint failed'), { code: 'SQLITE_CONSTRAINT_UNIQUE' }),
      new TypeError("Cannot read properties of undefined (reading 'id')"),
      'a string',
      null,
    ];
    for (const error of others) expect(isDatabaseUnavailable(error), String(error)).toBe(false);
  });

  it('X4: database URLs: files, memory and PostgreSQL (also over a Unix socket) are taken; the rest refused', () => {
    expect(parseDatabaseUrl('postgres://u@db.example:5433/sls')).toEqual({ dialect: 'postgres', location: 'postgres://u@db.example:5433/sls' });
    expect(parseDatabaseUrl('postgresql:///sls?host=/var/run/postgresql').dialect).toBe('postgres');
    expect(parseDatabaseUrl('sqlite::memory:')).toEqual({ dialect: 'sqlite', location: ':memory:' });
    expect(parseDatabaseUrl('sqlite:/var/lib/sls/sls.db')).toEqual({ dialect: 'sqlite', location: '/var/lib/sls/sls.db' });
    for (const url of ['localhost:5432/sls', 'postgres://db.example', 'postgres:db', 'mysql://h/db', 'sqlite:']) {
      expect(() => parseDatabaseUrl(url), url).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }));
    }
  });
});

describe('X4: several server processes starting on one SQLite file', () => {
  it('X4: a server that opens the file while another process is writing to it (still in rollback mode, setting it up) waits and starts, it does not fail with "database is locked"', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sls-open-'));
    const file = join(dir, 'sls.db');
    // the other process: a write under way on a file not yet in WAL mode, held for a moment
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
         const db = new Database(${JSON.stringify(file)});
         db.exec('begin immediate'); db.exec('create table t(x)'); db.exec('insert into t values (1)');
         process.stdout.write('writing\\n');
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 800);
         db.exec('commit'); db.close();`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => writer.once('exit', resolve));
    await new Promise((resolve) => writer.stdout.once('data', resolve));
    const store = openStore(file);
    try {
      const { rows } = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(store.db);
      expect(rows[0]?.journal_mode).toBe('wal');
      const count = await sql<{ n: number }>`select count(*) as n from t`.execute(store.db);
      expect(count.rows[0]?.n).toBe(1);
    } finally {
      await store.close();
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
