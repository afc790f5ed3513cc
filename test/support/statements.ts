/**
 * The SQL statements the server sends, recorded at the drivers
 * (better-sqlite3's statements, node-postgres' queries) with their
 * parameters, BEGIN and COMMIT included: each is a round trip on
 * PostgreSQL. Used by the bench's count of statements per login and by the
 * test that every statement of the hot paths reads through an index. Also
 * the queries Kysely builds (`recordBuiltQueries`): the hot paths build none.
 */
import BetterSqlite3 from 'better-sqlite3';
import { DefaultQueryCompiler } from 'kysely';
import pg from 'pg';

export interface Statement {
  sql: string;
  parameters: unknown[];
}

let recording: Statement[] | null = null;
let patched = false;

/** Wraps the drivers' execution once: every statement run while recording is appended to the list. */
function patchDrivers(): void {
  if (patched) return;
  patched = true;
  const probe = new BetterSqlite3(':memory:');
  const statement = Object.getPrototypeOf(probe.prepare('select 1')) as Record<string, unknown>;
  probe.close();
  for (const method of ['run', 'all', 'get', 'iterate']) {
    const original = statement[method] as (...args: unknown[]) => unknown;
    statement[method] = function (this: { source: string }, ...args: unknown[]) {
      recording?.push({ sql: this.source, parameters: args });
      return original.apply(this, args);
    };
  }
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const [first, second] = args;
    if (typeof first === 'string') recording?.push({ sql: first, parameters: Array.isArray(second) ? second : [] });
    else if (first && typeof first === 'object' && 'text' in first) {
      const config = first as { text: string; values?: unknown[] };
      recording?.push({ sql: config.text, parameters: config.values ?? [] });
    }
    return query.apply(this, args);
  } as typeof pg.Client.prototype.query;
}

// patched as this module loads, before any connection is opened: the store binds each new connection's
// `query` as it connects (store/database.ts), so a connection opened before the patch would go unrecorded
patchDrivers();

/** Runs `fn`, appending to `into` every statement sent meanwhile (by anything in this process). */
export async function recordStatements<T>(into: Statement[], fn: () => Promise<T>): Promise<T> {
  recording = into;
  try {
    return await fn();
  } finally {
    recording = null;
  }
}

/** "begin … commit": the transactions among the statements. */
export function commits(statements: readonly string[]): number {
  return statements.filter((sql) => /^\s*commit\b/i.test(sql)).length;
}

let building: string[] | null = null;
let compilerPatched = false;

/**
 * Runs `fn`, appending to `into` the SQL of every query Kysely builds and
 * compiles meanwhile (a statement built once, `store/prepared.ts`, is
 * compiled at its first use only).
 */
export async function recordBuiltQueries<T>(into: string[], fn: () => Promise<T>): Promise<T> {
  if (!compilerPatched) {
    compilerPatched = true;
    const compile = DefaultQueryCompiler.prototype.compileQuery;
    DefaultQueryCompiler.prototype.compileQuery = function (this: DefaultQueryCompiler, ...args: Parameters<typeof compile>) {
      const compiled = compile.apply(this, args);
      building?.push(compiled.sql.replace(/\s+/g, ' '));
      return compiled;
    };
  }
  building = into;
  try {
    return await fn();
  } finally {
    building = null;
  }
}
