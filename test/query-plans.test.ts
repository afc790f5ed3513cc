/**
 * X4 (deployments that outgrow one machine), issue 15: every statement of
 * the hottest paths finds its rows through an index, so that a login costs
 * the same with a thousand users as with a million. The statements are
 * recorded at the driver while the real HTTP stack serves a complete card
 * login, a session being used, and a push approval taken as a session; each
 * is then explained with its own parameters:
 * - SQLite: `EXPLAIN QUERY PLAN` must show no `SCAN` of a table (a `SEARCH`
 *   through an index or the primary key is fine);
 * - PostgreSQL: `EXPLAIN` with sequential scans disabled must show no `Seq
 *   Scan` (the planner still scans when no index can serve the statement,
 *   which is what this test looks for; with the setting on it would scan the
 *   small tables of a test anyway, a cost choice, not a missing index).
 * No timing: the plans are read, not measured.
 */
import { CompiledQuery, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answer, bearer, claimSession, get, startLogin } from './support/api.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { TestPhone, harnessInbox, listen, smsUser } from './support/phone.js';
import { recordBuiltQueries, recordStatements, type Statement } from './support/statements.js';

/** Statements with nothing to plan: transactions, locks and notifications, and one-row inserts of given values. */
const NOTHING_TO_PLAN =
  /^\s*(begin|commit|rollback|savepoint|release|pragma|select pg_advisory_xact_lock|select pg_notify|listen|unlisten|insert into "\w+" \([^)]*\) values)/i;

/** The parameters a driver was given: better-sqlite3 gets the list as its one argument, node-postgres as a list. */
function parametersOf(statement: Statement): unknown[] {
  const [first] = statement.parameters;
  return statement.parameters.length === 1 && Array.isArray(first) ? first : statement.parameters;
}

/** The tables a statement scans row by row, with no index (empty: every row it touches is found through one). */
async function scannedTables(h: Harness, statement: Statement): Promise<string[]> {
  const { store } = h.services;
  const parameters = parametersOf(statement);
  if (store.dialect === 'sqlite') {
    const plan = await store.db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${statement.sql}`, parameters));
    return plan.rows.map((row) => /^SCAN (\w+)/.exec(row.detail)?.[1]).filter((table): table is string => table !== undefined);
  }
  return store.transaction(async (trx) => {
    await sql`set local enable_seqscan = off`.execute(trx);
    const plan = await trx.executeQuery<{ 'QUERY PLAN': unknown }>(CompiledQuery.raw(`explain (format json) ${statement.sql}`, parameters));
    const scanned: string[] = [];
    const walk = (node: Record<string, unknown>): void => {
      if (node['Node Type'] === 'Seq Scan') scanned.push(String(node['Relation Name']));
      for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
    };
    walk((plan.rows[0]!['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan);
    return scanned;
  });
}

/** Every planned statement of `statements` that scans a table, with the tables. */
async function scans(h: Harness, statements: Statement[]): Promise<{ sql: string; scanned: string[] }[]> {
  const found: { sql: string; scanned: string[] }[] = [];
  for (const statement of statements) {
    if (NOTHING_TO_PLAN.test(statement.sql)) continue;
    const scanned = await scannedTables(h, statement);
    if (scanned.length > 0) found.push({ sql: statement.sql.replace(/\s+/g, ' ').slice(0, 160), scanned });
  }
  return found;
}

describe.each(DATABASES)('the hot paths read through indexes (%s)', (db) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(db);
  });
  afterAll(async () => {
    await h.close();
  });

  it('X4, L2, L4: a complete card login and a session being used: no statement scans a table', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const statements: Statement[] = [];
    const done = await recordStatements(statements, async () => {
      const started = await startLogin(h.app, user.username);
      return answer(h.app, started.body.id as string, cardAnswer(card, started.body.challenge.question as string));
    });
    expect(done.body.state).toBe('done');
    const session = await recordStatements(statements, () => get(h.app, '/api/v1/session', bearer(done.body.session.token as string)));
    expect(session.status).toBe(200);
    // the recording saw the login's statements: the flow written, the session created
    expect(statements.some((s) => /insert into "sessions"/.test(s.sql))).toBe(true);
    expect(await scans(h, statements)).toEqual([]);
  });

  it('X4, K3: a push request polled, approved and taken as a session: no statement scans a table', async () => {
    const phone = new TestPhone(await listen(h), harnessInbox(h));
    const user = await smsUser(h);
    await phone.activate(user.username);
    const login = await startLogin(h.app, user.username, PASSWORD, 'trading');
    expect(login.body.challenge.type).toBe('push');
    const statements: Statement[] = [];
    const claimed = await recordStatements(statements, async () => {
      const request = await phone.request(user.username);
      await phone.approve(request, login.body.challenge.number as string);
      return claimSession(h.app, login);
    });
    expect(claimed.status).toBe(200);
    expect(statements.some((s) => /update "login_flows" set "state"/.test(s.sql))).toBe(true);
    expect(await scans(h, statements)).toEqual([]);
  });

  it('X4, issue 15: a card login, a session being used, a push approval and its claim build no statement (each is built once, then only run)', async () => {
    const phone = new TestPhone(await listen(h), harnessInbox(h));
    const pushUser = await smsUser(h);
    await phone.activate(pushUser.username);
    const hotPaths = async ({ user, card }: Awaited<ReturnType<typeof createUserWithCard>>) => {
      const started = await startLogin(h.app, user.username);
      const done = await answer(h.app, started.body.id as string, cardAnswer(card, started.body.challenge.question as string));
      expect(done.body.state).toBe('done');
      expect((await get(h.app, '/api/v1/session', bearer(done.body.session.token as string))).status).toBe(200);
      const login = await startLogin(h.app, pushUser.username, PASSWORD, 'trading');
      await phone.approve(await phone.request(pushUser.username), login.body.challenge.number as string);
      expect((await claimSession(h.app, login)).status).toBe(200);
    };
    // the first time builds each statement once, for this dialect
    await hotPaths(await createUserWithCard(h.services));
    const cardUser = await createUserWithCard(h.services);
    const built: string[] = [];
    await recordBuiltQueries(built, () => hotPaths(cardUser));
    expect(built).toEqual([]);
  });
});
