/**
 * Issue 15: the SQL statements a complete login sends to the database,
 * counted at the driver (better-sqlite3's statements, node-postgres'
 * queries), BEGIN and COMMIT included: each is a round trip on PostgreSQL.
 * In process, through the real HTTP stack (Fastify inject), on a fresh
 * database. `npx tsx bench/statements.ts [--list] [postgres]` prints them;
 * bench/run.ts prints the counts ("statements per login").
 */
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { answer, startLogin } from '../test/support/api.js';
import { cardAnswer, createUserWithCard, startHarness } from '../test/support/harness.js';

export interface StatementCount {
  database: 'sqlite' | 'postgres';
  /** POST /api/v1/login: the password, the flow. */
  firstFactor: string[];
  /** POST /api/v1/login/{id}: the card's response, the session. */
  secondFactor: string[];
}

let recording: string[] | null = null;
let patched = false;

/** Wraps the drivers' execution once: every statement run while `recording` is set is appended to it. */
function patchDrivers(): void {
  if (patched) return;
  patched = true;
  const probe = new BetterSqlite3(':memory:');
  const statement = Object.getPrototypeOf(probe.prepare('select 1')) as Record<string, unknown>;
  probe.close();
  for (const method of ['run', 'all', 'get', 'iterate']) {
    const original = statement[method] as (...args: unknown[]) => unknown;
    statement[method] = function (this: { source: string }, ...args: unknown[]) {
      recording?.push(this.source);
      return original.apply(this, args);
    };
  }
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const text = args[0];
    recording?.push(typeof text === 'string' ? text : String((text as { text?: string })?.text ?? text));
    return query.apply(this, args);
  } as typeof pg.Client.prototype.query;
}

async function record<T>(into: string[], fn: () => Promise<T>): Promise<T> {
  recording = into;
  try {
    return await fn();
  } finally {
    recording = null;
  }
}

/** One complete login (DSC+ card), after one untimed to warm up the caches; its statements. */
export async function countStatements(database: 'sqlite' | 'postgres' = 'sqlite'): Promise<StatementCount> {
  patchDrivers();
  const harness = await startHarness(database);
  try {
    const { services, app } = harness;
    const result: StatementCount = { database, firstFactor: [], secondFactor: [] };
    for (const counted of [false, true]) {
      const { user, card } = await createUserWithCard(services);
      const started = await record(counted ? result.firstFactor : [], () => startLogin(app, user.username));
      if (started.status !== 200) throw new Error(`POST /api/v1/login: ${started.status} ${JSON.stringify(started.body)}`);
      const response = cardAnswer(card, started.body.challenge.question as string);
      const done = await record(counted ? result.secondFactor : [], () => answer(app, started.body.id as string, response));
      if (done.status !== 200 || done.body.state !== 'done') throw new Error(`POST /api/v1/login/{id}: ${done.status} ${JSON.stringify(done.body)}`);
    }
    return result;
  } finally {
    await harness.close();
  }
}

/** "begin … commit": the transactions among the statements. */
export function commits(statements: string[]): number {
  return statements.filter((s) => /^\s*commit\b/i.test(s)).length;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const database = process.argv.includes('postgres') ? 'postgres' : 'sqlite';
  if (database === 'postgres' && !process.env.SLS_TEST_DATABASE_URL) throw new Error('postgres: set SLS_TEST_DATABASE_URL');
  const counted = await countStatements(database);
  for (const [name, list] of [
    ['POST /api/v1/login', counted.firstFactor],
    ['POST /api/v1/login/{id}', counted.secondFactor],
  ] as const) {
    process.stdout.write(`${database} ${name}: ${list.length} statements, ${commits(list)} commits\n`);
    if (process.argv.includes('--list')) for (const s of list) process.stdout.write(`   ${s.replace(/\s+/g, ' ').slice(0, 200)}\n`);
  }
}
