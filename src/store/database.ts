/**
 * One data layer over SQLite (embedded default) and PostgreSQL (several
 * server processes), chosen by the database URL (X4).
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  sql,
  type DatabaseConnection,
  type Driver,
  type SqliteDatabase,
  type SqliteStatement,
  type Transaction,
} from 'kysely';
import pg from 'pg';
import { SlsError } from '../errors.js';
import type { Schema } from './schema.js';

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

export function parseDatabaseUrl(url: string): ParsedDatabaseUrl {
  if (/^postgres(ql)?:\/\//.test(url)) return { dialect: 'postgres', location: url };
  if (url === ':memory:' || url === 'sqlite::memory:') return { dialect: 'sqlite', location: ':memory:' };
  let path = url;
  if (url.startsWith('sqlite://')) path = url.slice('sqlite://'.length);
  else if (url.startsWith('sqlite:')) path = url.slice('sqlite:'.length);
  else if (url.startsWith('file:')) path = url.slice('file:'.length);
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new SlsError('INVALID_CONFIG', {
      setting: 'SLS_DATABASE_URL',
      reason: 'use a file path, sqlite:PATH or postgres://…',
    });
  }
  if (path.length === 0) throw new SlsError('INVALID_CONFIG', { setting: 'SLS_DATABASE_URL', reason: 'empty path' });
  return { dialect: 'sqlite', location: path === ':memory:' ? path : resolve(path) };
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

export function openStore(url: string): Store {
  const parsed = parseDatabaseUrl(url);
  if (parsed.dialect === 'sqlite') {
    if (parsed.location !== ':memory:') mkdirSync(dirname(parsed.location), { recursive: true });
    const raw = new BetterSqlite3(parsed.location);
    raw.pragma('journal_mode = WAL');
    raw.pragma('busy_timeout = 10000');
    raw.pragma('synchronous = NORMAL');
    raw.pragma('foreign_keys = ON');
    const db = new Kysely<Schema>({ dialect: new ImmediateSqliteDialect({ database: cachingDatabase(raw) }) });
    return {
      db,
      dialect: 'sqlite',
      location: parsed.location,
      transaction: (fn) => db.transaction().execute(fn),
      serialized: (_name, fn) => db.transaction().execute(fn),
      // BEGIN IMMEDIATE took SQLite's write lock: the transaction is alone already
      lockWithin: async () => undefined,
      close: () => db.destroy(),
    };
  }
  const pool = new pg.Pool({
    connectionString: parsed.location,
    max: 10,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID || oid === NUMERIC_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client that loses its connection must not crash the process.
  pool.on('error', () => undefined);
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    dialect: 'postgres',
    location: parsed.location,
    transaction: (fn) => db.transaction().execute(fn),
    serialized: (name, fn) =>
      db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(${lockKey(name)})`.execute(trx);
        return fn(trx);
      }),
    lockWithin: async (trx, name) => {
      await sql`select pg_advisory_xact_lock(${lockKey(name)})`.execute(trx);
    },
    close: () => db.destroy(),
  };
}
