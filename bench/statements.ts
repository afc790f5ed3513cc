/**
 * Issue 15: the SQL statements a complete login sends to the database,
 * counted at the driver (better-sqlite3's statements, node-postgres'
 * queries), BEGIN and COMMIT included: each is a round trip on PostgreSQL.
 * In process, through the real HTTP stack (Fastify inject), on a fresh
 * database. `npx tsx bench/statements.ts [--list] [postgres]` prints them;
 * bench/run.ts prints the counts ("statements per login").
 */
import { answer, startLogin } from '../test/support/api.js';
import { cardAnswer, createUserWithCard, startHarness } from '../test/support/harness.js';
import { commits, recordStatements, type Statement } from '../test/support/statements.js';

export { commits };

export interface StatementCount {
  database: 'sqlite' | 'postgres';
  /** POST /api/v1/login: the password, the flow. */
  firstFactor: string[];
  /** POST /api/v1/login/{id}: the card's response, the session. */
  secondFactor: string[];
}

/** One complete login (DSC+ card), after one untimed to warm up the caches; its statements. */
export async function countStatements(database: 'sqlite' | 'postgres' = 'sqlite'): Promise<StatementCount> {
  const harness = await startHarness(database);
  try {
    const { services, app } = harness;
    const firstFactor: Statement[] = [];
    const secondFactor: Statement[] = [];
    for (const counted of [false, true]) {
      const { user, card } = await createUserWithCard(services);
      const started = await recordStatements(counted ? firstFactor : [], () => startLogin(app, user.username));
      if (started.status !== 200) throw new Error(`POST /api/v1/login: ${started.status} ${JSON.stringify(started.body)}`);
      const response = cardAnswer(card, started.body.challenge.question as string);
      const done = await recordStatements(counted ? secondFactor : [], () => answer(app, started.body.id as string, response));
      if (done.status !== 200 || done.body.state !== 'done') throw new Error(`POST /api/v1/login/{id}: ${done.status} ${JSON.stringify(done.body)}`);
    }
    return { database, firstFactor: firstFactor.map((s) => s.sql), secondFactor: secondFactor.map((s) => s.sql) };
  } finally {
    await harness.close();
  }
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
