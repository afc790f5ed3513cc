/**
 * Statements of the hot paths built once (issue 15): Kysely builds and
 * compiles a query on every call (its operation tree, frozen copies, the
 * SQL text), which costs more than SQLite running it. A `Prepared` query is
 * built once per dialect with named placeholders, compiled, and then run
 * with its parameters put in place; the SQLite driver keeps the prepared
 * statement for its text (store/database.ts), PostgreSQL gets the same text.
 *
 *   const byId = prepared<{ id: string }>()((db, p) => db.selectFrom('users').selectAll().where('id', '=', p.id));
 *   const rows = (await byId.execute(db, { id })).rows;
 *
 * A placeholder may stand only where a value goes (never a column or a
 * list whose length varies); every one must become a parameter, or the
 * first build throws.
 */
import { type Compilable, type CompiledQuery, type Insertable, PostgresAdapter, type QueryResult } from 'kysely';
import { type Executor, keepPrepared } from './database.js';
import type { Schema } from './schema.js';

const MARK = '\u0000sls-placeholder:';

interface Template<R> {
  compiled: CompiledQuery<R>;
  /** For each parameter: the placeholder's name, or null for a constant of the query. */
  slots: (string | null)[];
}

export class Prepared<P extends Record<string, unknown>, R> {
  /** One template per dialect (its adapter's class): `?` for SQLite, `$1` for PostgreSQL. */
  private readonly templates = new Map<unknown, Template<R>>();

  constructor(private readonly build: (db: Executor, p: P) => Compilable<R>) {}

  private template(db: Executor): Template<R> {
    const key = db.getExecutor().adapter.constructor;
    let template = this.templates.get(key);
    if (!template) {
      const used = new Set<string>();
      const placeholders = new Proxy({} as P, {
        get: (_target, name) => {
          used.add(String(name));
          return `${MARK}${String(name)}`;
        },
      });
      const compiled = this.build(db, placeholders).compile();
      const slots = compiled.parameters.map((value) => (typeof value === 'string' && value.startsWith(MARK) ? value.slice(MARK.length) : null));
      const missing = [...used].filter((name) => !slots.includes(name));
      if (missing.length > 0) throw new Error(`prepared query: placeholder ${missing.join(', ')} is not a parameter of ${compiled.sql}`);
      template = { compiled, slots };
      if (db.getExecutor().adapter instanceof PostgresAdapter) keepPrepared(compiled.sql);
      this.templates.set(key, template);
    }
    return template;
  }

  /** Runs the statement in `db` (the database, or a transaction) with these values. */
  execute(db: Executor, values: P): Promise<QueryResult<R>> {
    const { compiled, slots } = this.template(db);
    const parameters = compiled.parameters.map((constant, i) => {
      const name = slots[i];
      return name === null || name === undefined ? constant : values[name];
    });
    return db.executeQuery<R>({ ...compiled, parameters });
  }

  /** The first row, or undefined. */
  async first(db: Executor, values: P): Promise<R | undefined> {
    return (await this.execute(db, values)).rows[0];
  }

  /** How many rows an update or delete changed. */
  async changed(db: Executor, values: P): Promise<number> {
    return Number((await this.execute(db, values)).numAffectedRows ?? 0);
  }
}

/** A query built once: `prepared<Params>()((db, p) => query using p.name …)`. */
export function prepared<P extends Record<string, unknown>>() {
  return <R>(build: (db: Executor, p: P) => Compilable<R>): Prepared<P, R> => new Prepared<P, R>(build);
}

const inserts = new Map<string, Prepared<Record<string, unknown>, unknown>>();

/**
 * Inserts one row, with a statement built once per table and set of
 * columns (the row's keys, in their order).
 */
export async function insertRow<T extends keyof Schema & string>(db: Executor, table: T, row: Insertable<Schema[T]>): Promise<void> {
  const columns = Object.keys(row);
  const key = `${table}(${columns.join(',')})`;
  let insert = inserts.get(key);
  if (!insert) {
    insert = new Prepared<Record<string, unknown>, unknown>((db, p) =>
      db.insertInto(table).values(Object.fromEntries(columns.map((column) => [column, p[column]])) as Insertable<Schema[T]>),
    );
    inserts.set(key, insert);
  }
  await insert.execute(db, row as Record<string, unknown>);
}
