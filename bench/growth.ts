/**
 * Phase 7 of `npm run bench` (data growth): fills a SQLite database, with
 * the server stopped, with filler users and audit entries by SQL bulk
 * inserts, so the second-factor phase can be measured on a small and on a
 * large database. Untimed setup; the time it takes is printed.
 *
 * - Filler users are copies of a template user (the first real bench user):
 *   the same password hash, an entity and an account each, usernames
 *   `filler<N>`, and what a user who logged in leaves behind, copied from
 *   the template's rows: a device, a session, its login flow, a used code
 *   and a lockout row. They never log in: they make the tables and their
 *   indexes as large as a deployment's.
 * - Filler audit entries come before the chain (seq −M … −1), spread over
 *   the year before now, one user each (round robin), a handful of event
 *   kinds. The keyed chain and its signed head (X1) stay as they are: the
 *   server appends after the signed head, so the real entries and the
 *   head are untouched. `sls audit verify` would report the filler entries;
 *   the bench database is thrown away.
 * - The audit table's secondary indexes are dropped during the insert and
 *   built again afterwards (a sort instead of random B-tree inserts).
 */
import BetterSqlite3 from 'better-sqlite3';
import { performance } from 'node:perf_hooks';

export interface SeedResult {
  users: number;
  /** Devices, sessions and login flows: one of each per filler user, as many as the users who logged in. */
  devices: number;
  sessions: number;
  flows: number;
  auditEntries: number;
  seconds: number;
  fileMiB: number;
}

const EVENTS = ['login.password_ok', 'login.second_factor_ok', 'session.created', 'login.password_wrong', 'session.ended'];
/** Rows per INSERT … SELECT: bounded statements, one transaction each. */
const CHUNK = 500_000;

function series(from: number, to: number): string {
  // a recursive CTE: better-sqlite3's SQLite has no generate_series
  return `with recursive s(i) as (select ${from} union all select i + 1 from s where i < ${to - 1})`;
}

/**
 * Inserts, for each i of the series `s`, a copy of the first row of `table`
 * that `where` finds (with the template user's id as its parameter), its
 * columns in `own` replaced by SQL expressions of i; nothing when there is
 * no such row.
 */
function copyPerFiller(db: BetterSqlite3.Database, s: string, table: string, where: string, templateId: string, own: Record<string, string>): void {
  const columns = (db.prepare('select name from pragma_table_info(?)').all(table) as { name: string }[]).map((c) => c.name);
  db.prepare(
    `${s} insert into ${table} (${columns.map((c) => `"${c}"`).join(', ')})
     select ${columns.map((c) => own[c] ?? `t."${c}"`).join(', ')} from s, (select * from ${table} where ${where} limit 1) t`,
  ).run(templateId);
}

/**
 * Grows the database at `path` to `users` users and `auditEntries` audit
 * entries (counting those already there), adding filler rows only.
 */
export function seedGrowth(path: string, target: { users: number; auditEntries: number }): SeedResult {
  const t0 = performance.now();
  const db = new BetterSqlite3(path);
  try {
    // the server is stopped: this connection is alone, and a crash would only lose a throw-away database
    db.pragma('journal_mode = DELETE');
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -1000000');
    db.pragma('temp_store = MEMORY');
    const count = (table: string): number => (db.prepare(`select count(*) as n from ${table}`).get() as { n: number }).n;
    const template = db.prepare("select id from users where username not like 'filler%' order by created_at limit 1").get() as { id: string } | undefined;
    if (!template) throw new Error('seedGrowth: no user to copy');
    const fillersBefore = (db.prepare("select count(*) as n from users where id like 'usr_fill_%'").get() as { n: number }).n;
    const usersToAdd = Math.max(0, target.users - count('users'));
    for (let from = fillersBefore; from < fillersBefore + usersToAdd; from += CHUNK) {
      const to = Math.min(fillersBefore + usersToAdd, from + CHUNK);
      const s = series(from, to);
      db.transaction(() => {
        db.prepare(
          `${s} insert into entities (id, kind, name, identification_enc, identification_digest, created_at)
           select 'ent_fill_' || i, e.kind, 'filler ' || i, null, null, e.created_at
           from s, users u join entities e on e.id = u.entity_id where u.id = ?`,
        ).run(template.id);
        db.prepare(
          `${s} insert into accounts (id, account_number, entity_id, equity_usd_cents, primary_user_id, created_at)
           select 'acc_fill_' || i, 'F' || i, 'ent_fill_' || i, 0, 'usr_fill_' || i, a.created_at
           from s, users u join accounts a on a.id = u.account_id where u.id = ?`,
        ).run(template.id);
        const own: Record<string, string> = {
          id: "'usr_fill_' || i",
          username: "'filler' || i",
          entity_id: "'ent_fill_' || i",
          account_id: "'acc_fill_' || i",
          email: 'null',
          last_device_id: 'null',
        };
        copyPerFiller(db, s, 'users', 'id = ?', template.id, own);
        // what a user who logs in leaves behind: a device, a session, its flow, a used code, a lockout row
        const fill = (prefix: string) => `'${prefix}_fill_' || i`;
        const user = { user_id: fill('usr'), device_id: fill('dev'), flow_id: fill('flw'), session_id: fill('ses') };
        copyPerFiller(db, s, 'devices', 'user_id = ?', template.id, { id: fill('dev'), user_id: user.user_id, serial: "'FILL' || i" });
        copyPerFiller(db, s, 'sessions', 'user_id = ?', template.id, { ...user, id: fill('ses'), token_hash: "'fill' || i" });
        copyPerFiller(db, s, 'login_flows', 'user_id = ?', template.id, { ...user, id: fill('flw'), username: "'filler' || i", claim_hash: 'null' });
        copyPerFiller(db, s, 'used_codes', 'device_id in (select id from devices where user_id = ?)', template.id, { device_id: fill('dev') });
        copyPerFiller(db, s, 'lockouts', 'username = (select username from users where id = ?)', template.id, { username: "'filler' || i" });
      })();
    }

    const entriesToAdd = Math.max(0, target.auditEntries - count('audit_log'));
    if (entriesToAdd > 0) {
      const fillers = Math.max(1, fillersBefore + usersToAdd);
      const lowest = (db.prepare('select min(seq) as s from audit_log').get() as { s: number | null }).s ?? 1;
      const top = Math.min(0, lowest) - 1; // the newest filler entry: just below anything already there
      const bottom = top - entriesToAdd + 1;
      const now = Date.now();
      const spacingMs = Math.max(1, Math.floor((365 * 24 * 3600 * 1000) / entriesToAdd));
      const indexes = db.prepare("select name, sql from sqlite_master where type = 'index' and tbl_name = 'audit_log' and sql is not null").all() as {
        name: string;
        sql: string;
      }[];
      for (const index of indexes) db.exec(`drop index "${index.name}"`);
      const events = `case (-i) % ${EVENTS.length} ${EVENTS.map((e, k) => `when ${k} then '${e}'`).join(' ')} end`;
      for (let from = bottom; from <= top; from += CHUNK) {
        const to = Math.min(top + 1, from + CHUNK);
        db.transaction(() => {
          db.prepare(
            `${series(from, to)} insert into audit_log (seq, at, event, actor, user_id, username, ip, data, prev_hash, hash)
             select i, ${now} - (${top} - i + 1) * ${spacingMs}, ${events}, null,
                    'usr_fill_' || ((-i) % ${fillers}), 'filler' || ((-i) % ${fillers}),
                    '10.' || ((-i) % 250) || '.' || ((-i / 250) % 250) || '.7', '{"flowId":"flo_filler"}',
                    printf('%064x', -i + 1), printf('%064x', -i)
             from s`,
          ).run();
        })();
      }
      for (const index of indexes) db.exec(index.sql);
    }
    db.exec('analyze');
    db.pragma('journal_mode = WAL');
    const pages = db.pragma('page_count', { simple: true }) as number;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    return {
      users: count('users'),
      devices: count('devices'),
      sessions: count('sessions'),
      flows: count('login_flows'),
      auditEntries: count('audit_log'),
      seconds: Math.round((performance.now() - t0) / 100) / 10,
      fileMiB: Math.round((pages * pageSize) / 2 ** 20),
    };
  } finally {
    db.close();
  }
}
