/**
 * One data layer over SQLite (embedded default) and PostgreSQL (several
 * server processes), chosen by the database URL (X4).
 */
import { closeSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type SqliteDatabase,
  type SqliteStatement,
  type Transaction,
} from 'kysely';
import pg from 'pg';
import { SlsError } from '../errors.js';
import { ensureDirectory } from '../directories.js';
import type { Schema } from './schema.js';
import { type BackgroundCheckpoints, checkpointInBackground, FALLBACK_PAGES } from './checkpoints.js';

export type DialectName = 'sqlite' | 'postgres';
export type Db = Kysely<Schema>;
export type Tx = Transaction<Schema>;
/** Either the database or a transaction: repositories accept both. */
export type Executor = Kysely<Schema> | Transaction<Schema>;

export interface ParsedDatabaseUrl {
  dialect: DialectName;
  /** File path (or ":memory:") for SQLite; connection string for PostgreSQL. */
  location: string;
}

/** X3: told as errors.INVALID_CONFIG_malformed_URL: use a file path, sqlite:PATH or postgres://USER@HOST:PORT/DATABASE. */
const MALFORMED = 'malformed URL';

export function parseDatabaseUrl(url: string): ParsedDatabaseUrl {
  if (/^postgres(ql)?:/i.test(url)) return { dialect: 'postgres', location: checkPostgresUrl(url) };
  if (url === ':memory:' || url === 'sqlite::memory:') return { dialect: 'sqlite', location: ':memory:' };
  let path = url;
  if (url.startsWith('sqlite://')) path = url.slice('sqlite://'.length);
  else if (url.startsWith('sqlite:')) path = url.slice('sqlite:'.length);
  else if (url.startsWith('file:')) path = url.slice('file:'.length);
  // X4: anything else with a scheme (mysql://…, localhost:5432/db) is a mistake, not a file name to create
  else if (/^[a-z][a-z0-9+.-]*:/i.test(url)) throw new SlsError('INVALID_CONFIG', { setting: 'SLS_DATABASE_URL', reason: MALFORMED });
  if (path.length === 0) throw new SlsError('INVALID_CONFIG', { setting: 'SLS_DATABASE_URL', reason: 'empty path' });
  return { dialect: 'sqlite', location: path === ':memory:' ? path : resolve(path) };
}

function checkPostgresUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SlsError('INVALID_CONFIG', { setting: 'SLS_DATABASE_URL', reason: MALFORMED });
  }
  if (!url.includes('://') || (parsed.hostname === '' && !parsed.searchParams.has('host')) || parsed.pathname.length < 2) {
    throw new SlsError('INVALID_CONFIG', { setting: 'SLS_DATABASE_URL', reason: MALFORMED });
  }
  return url;
}

/** The database for people to read: a file path, or the PostgreSQL URL without its password. */
export function describeDatabase(location: string): string {
  if (!/^postgres(ql)?:/i.test(location)) return location;
  const url = new URL(location);
  url.password = '';
  url.search = '';
  return url.toString();
}

/** The parts of a PostgreSQL URL the start messages name (X4). */
function postgresParts(location: string): Record<string, string> {
  const url = new URL(location);
  const host = url.hostname || url.searchParams.get('host') || 'localhost';
  const port = url.port || '5432';
  return {
    server: `${host}:${port}`,
    host,
    port,
    user: decodeURIComponent(url.username) || 'postgres',
    database: decodeURIComponent(url.pathname.slice(1)),
  };
}

/** A connection that could not be made is not tried again for a while, doubling up to this (X6). */
const BACKOFF_MAX_MS = 2_000;
const BACKOFF_CODE = 'SLS_DATABASE_BACKOFF';

/**
 * X6: while PostgreSQL cannot be reached, requests fail at once (503)
 * instead of each waiting for its own connection attempt; the next attempt
 * comes after 100 ms, 200 ms … at most 2 s, and the first that connects
 * ends the back-off.
 */
function backingOff(pool: pg.Pool): { connect(): Promise<pg.PoolClient>; end(): Promise<void> } {
  let failures = 0;
  let retryAt = 0;
  return {
    async connect() {
      if (Date.now() < retryAt) throw Object.assign(new Error('the database could not be reached a moment ago'), { code: BACKOFF_CODE });
      try {
        const client = await pool.connect();
        failures = 0;
        return client;
      } catch (error) {
        if (isDatabaseUnavailable(error)) {
          failures += 1;
          retryAt = Date.now() + Math.min(BACKOFF_MAX_MS, 100 * 2 ** (failures - 1));
        }
        throw error;
      }
    },
    end: () => pool.end(),
  };
}

const UNREACHABLE_ERRNO = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE']);
/** Messages of node-postgres when a connection could not be made or was lost. */
const LOST_CONNECTION =
  /Connection terminated|timeout exceeded when trying to connect|not queryable|Connection ended|terminating connection|the database system is (starting up|shutting down|in recovery mode)/i;

/**
 * X6: whether an error means the database cannot be reached right now (a
 * restart, a failover, a terminated connection, a busy SQLite file): the
 * request is answered 503 and may be tried again; nothing was written.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  // PostgreSQL: connection exceptions (08…), operator intervention (57P01-57P03), too many connections
  if (/^08/.test(code) || ['57P01', '57P02', '57P03', '53300'].includes(code)) return true;
  if (UNREACHABLE_ERRNO.has(code) || code === BACKOFF_CODE || code === KEPT_STATEMENT_FAILED) return true;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_TIMEOUT') return true;
  return typeof e.message === 'string' && LOST_CONNECTION.test(e.message);
}

/**
 * Whether an error is a unique index refusing a row: `index` its name on
 * PostgreSQL (23505), `columns` as SQLite names them ("devices.credential_id").
 * A clash that reaches the index past the caller's own check is then told
 * as the check would have told it, not as a 500.
 */
export function isUniqueViolation(error: unknown, index: string, columns: string): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { code?: unknown; constraint?: unknown; message?: unknown };
  if (e.code === '23505') return e.constraint === index;
  return e.code === 'SQLITE_CONSTRAINT_UNIQUE' && typeof e.message === 'string' && e.message.includes(`UNIQUE constraint failed: ${columns}`);
}

/**
 * X4: why a database cannot be used at start, as an error naming the cause
 * and the fix; null when the error is not one of those.
 */
export function databaseStartFailure(error: unknown, location: string): SlsError | null {
  if (error instanceof SlsError) return error;
  const e = (error ?? {}) as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const reason = typeof e.message === 'string' && e.message !== '' ? e.message : code;
  if (!/^postgres(ql)?:/i.test(location)) {
    return code.startsWith('SQLITE_') ? new SlsError('DATABASE_FILE_UNUSABLE', { path: location, reason }) : null;
  }
  const parts = postgresParts(location);
  if (code === '3D000') return new SlsError('DATABASE_NOT_FOUND', parts);
  if (code === '28P01' || code === '28000') return new SlsError('DATABASE_REFUSED', { ...parts, reason });
  if (isDatabaseUnavailable(error)) return new SlsError('DATABASE_UNREACHABLE', { ...parts, reason });
  return null;
}

/** better-sqlite3 with prepared statements kept for reuse (Kysely prepares every query). */
function cachingDatabase(db: BetterSqlite3.Database): SqliteDatabase {
  const statements = new Map<string, SqliteStatement>();
  return {
    close: () => db.close(),
    prepare(text: string): SqliteStatement {
      let statement = statements.get(text);
      if (!statement) {
        statement = db.prepare(text) as unknown as SqliteStatement;
        if (statements.size > 500) statements.clear();
        statements.set(text, statement);
      }
      return statement;
    },
  };
}

/**
 * SQLite transactions start with BEGIN IMMEDIATE: the write lock is taken at
 * once, so two server processes sharing the file never meet a lock upgrade
 * that SQLite must refuse (SQLITE_BUSY_SNAPSHOT); they wait instead.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: ConstructorParameters<typeof SqliteDialect>[0];
  constructor(config: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

const INT8_OID = 20;
const NUMERIC_OID = 1700;

export interface Store {
  db: Db;
  dialect: DialectName;
  /** Where the database is: a file path, ':memory:', or the PostgreSQL URL (for a listening connection). */
  location: string;
  /** Runs `fn` in a transaction (SQLite: BEGIN IMMEDIATE). */
  transaction<T>(fn: (trx: Tx) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in a transaction that holds a named lock across every server
   * process sharing the database (PostgreSQL advisory lock; SQLite's write
   * lock already serialises writers).
   */
  serialized<T>(lockName: string, fn: (trx: Tx) => Promise<T>): Promise<T>;
  /** Takes the named lock for the rest of a transaction already open (see `serialized`). */
  lockWithin(trx: Tx, lockName: string): Promise<void>;
  /** The connections held: open, idle, and requests waiting for one (metrics, X6). */
  pool(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

function lockKey(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/**
 * Statements kept prepared on every PostgreSQL connection (issue 15): the
 * hot paths' statements, built once (store/prepared.ts), are sent as named
 * statements, so each connection parses and analyses one of them once
 * rather than on every request. Only texts registered here (a number fixed
 * by the code) are kept; any other query stays unnamed.
 */
const namedStatements = new Map<string, string>();

/** Registers a statement's text (PostgreSQL placeholders) to be kept prepared on each connection. */
export function keepPrepared(text: string): void {
  if (!namedStatements.has(text)) namedStatements.set(text, `sls_${namedStatements.size + 1}`);
}

/**
 * PostgreSQL's codes for a kept statement that cannot be used: its result
 * columns changed (another process migrated the schema), or the server
 * connection does not hold it (deallocated; a pooler in transaction mode
 * that hands each transaction another server connection).
 */
const KEPT_STATEMENT_UNUSABLE = new Set(['0A000', '26000', '42P05']);
const KEPT_STATEMENT_FAILED = 'SLS_KEPT_STATEMENT_FAILED';

/**
 * Sends the registered statements by name (pg prepares a name once per
 * connection, then only binds it). A newer server process migrating the
 * schema while this one runs can change what a kept statement returns
 * (`select *` of a table given a column), which PostgreSQL refuses ("cached
 * plan must not change result type"), and a pooler in transaction mode may
 * not hold it on the server connection it picked: the connection then sends
 * every statement unnamed. Outside a transaction the statement runs again at
 * once; inside one the transaction has failed, and the request is answered
 * 503, to be tried again (X6).
 */
function preparingNamedStatements(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  let named = true;
  let inTransaction = false;
  (client as { query: unknown }).query = (config: unknown, values?: unknown, callback?: unknown) => {
    if (typeof config === 'string') {
      if (/^(begin|start transaction)\b/i.test(config)) inTransaction = true;
      else if (/^(commit|rollback)\b/i.test(config)) inTransaction = false;
    }
    const name = named && typeof config === 'string' ? namedStatements.get(config) : undefined;
    if (name === undefined || callback !== undefined) return query(config, values, callback);
    return (query({ name, text: config, values }) as Promise<unknown>).catch((error: unknown) => {
      if (!KEPT_STATEMENT_UNUSABLE.has(String((error as { code?: unknown } | null)?.code))) throw error;
      named = false;
      if (!inTransaction) return query(config, values);
      throw Object.assign(new Error('a statement kept prepared on this connection could not be used'), { code: KEPT_STATEMENT_FAILED, cause: error });
    });
  };
}

const ADVISORY_LOCK = 'select pg_advisory_xact_lock($1)';
keepPrepared(ADVISORY_LOCK);

/** The transaction-scoped lock of a name (PostgreSQL), a statement with no query to build. */
function advisoryLock(name: string): CompiledQuery {
  return CompiledQuery.raw(ADVISORY_LOCK, [lockKey(name)]);
}

/** How long a request waits for a PostgreSQL connection before it is answered 503 (X6). */
const CONNECT_TIMEOUT_MS = 5_000;

export function openStore(url: string): Store {
  const parsed = parseDatabaseUrl(url);
  if (parsed.dialect === 'sqlite') return openSqlite(parsed.location);
  return openPostgres(parsed.location);
}

/** SQLite's own threshold of a connection's automatic checkpoint, in pages of the log. */
const SQLITE_DEFAULT_CHECKPOINT_PAGES = 1000;

/** How long a statement waits for another process's lock on the SQLite file. */
const BUSY_TIMEOUT_MS = 10_000;

/**
 * X4: switches the file to WAL mode, waiting for the other processes that
 * share it. SQLite refuses the switch at once (SQLITE_BUSY, no busy wait)
 * while another process is writing a file still in rollback mode — two
 * servers starting together on a new file — since waiting could deadlock;
 * the lock is released between attempts, so trying again is safe.
 */
function enterWalMode(raw: BetterSqlite3.Database): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      raw.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
      // a server starting up has nothing else to do: wait synchronously, briefly
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20 + Math.random() * 80);
    }
  }
}

function openSqlite(location: string): Store {
  if (location !== ':memory:') {
    ensureDirectory(dirname(location), 'SLS_DATABASE_URL (or SLS_DATA_DIR)');
    // X4: a new database file is readable by its owner only (SQLite gives its -wal and -shm files the same mode)
    try {
      closeSync(openSync(location, 'wx', 0o600));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new SlsError('DATABASE_FILE_UNUSABLE', { path: location, reason: (error as Error).message });
    }
  }
  let raw: BetterSqlite3.Database;
  try {
    raw = new BetterSqlite3(location, { timeout: BUSY_TIMEOUT_MS });
    enterWalMode(raw);
    raw.pragma('synchronous = NORMAL');
    raw.pragma('foreign_keys = ON');
  } catch (error) {
    throw databaseStartFailure(error, location) ?? error;
  }
  // issue 15: the log is copied into the file by a thread of its own, not by a commit on the event loop
  let checkpoints: BackgroundCheckpoints | null = null;
  if (location !== ':memory:') {
    raw.pragma(`wal_autocheckpoint = ${FALLBACK_PAGES}`);
    checkpoints = checkpointInBackground(location, () => {
      try {
        raw.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_CHECKPOINT_PAGES}`);
      } catch {
        // closed meanwhile: nothing left to checkpoint from here
      }
    });
  }
  const db = new Kysely<Schema>({ dialect: new ImmediateSqliteDialect({ database: cachingDatabase(raw) }) });
  return {
    db,
    dialect: 'sqlite',
    location,
    transaction: (fn) => db.transaction().execute(fn),
    serialized: (_name, fn) => db.transaction().execute(fn),
    // BEGIN IMMEDIATE took SQLite's write lock: the transaction is alone already
    lockWithin: async () => undefined,
    pool: () => ({ total: 1, idle: 0, waiting: 0 }),
    close: async () => {
      await checkpoints?.stop();
      await db.destroy();
    },
  };
}

function openPostgres(location: string): Store {
  const pool = new pg.Pool({
    connectionString: location,
    max: 10,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID || oid === NUMERIC_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // X6: a connection the database ends (a restart, a failover, pg_terminate_backend) never ends the
  // process: an idle client's error is the pool's, a checked-out client's would otherwise be thrown
  // (the query under way fails and is answered 503); the pool then opens new connections as needed
  pool.on('error', () => undefined);
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    preparingNamedStatements(client);
  });
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: backingOff(pool) }) });
  return {
    db,
    dialect: 'postgres',
    location,
    transaction: (fn) => db.transaction().execute(fn),
    serialized: (name, fn) =>
      db.transaction().execute(async (trx) => {
        await trx.executeQuery(advisoryLock(name));
        return fn(trx);
      }),
    lockWithin: async (trx, name) => {
      await trx.executeQuery(advisoryLock(name));
    },
    pool: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: () => db.destroy(),
  };
}
