/**
 * `sls audit list | checkpoint | verify` (X1) against a real database:
 * queries by time, type and user a page at a time; a checkpoint line kept
 * elsewhere; what verify reports after an attacker (who first drops the
 * append-only triggers) deleted entries. A checkpoint, a verify that finds
 * the log tampered with (its exit code) and a refusal in the environment's
 * language run as real `sls` processes; the other commands in this process
 * (`slsInProcess`: `main(argv)` of bin/sls.js, output and exit code
 * captured), a real process costing a start of Node and of the server each.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import BetterSqlite3 from 'better-sqlite3';
import { HOUR } from '../src/clock.js';
import { TestClock } from '../src/clock.js';
import { createServices } from '../src/services.js';
import { sqliteDatabase, testConfig, type TestDatabase } from './support/harness.js';
import { cliEnv, sls, slsInProcess } from './support/cli.js';

let db: TestDatabase;
let env: NodeJS.ProcessEnv;
const start = Date.UTC(2026, 0, 5, 9, 0, 0);
const at = (hours: number) => new Date(start + hours * HOUR).toISOString();

interface Listed {
  seq: number;
  event: string;
  username: string | null;
  data: { i?: number };
}

async function list(args: string[]): Promise<{ entries: Listed[]; stderr: string }> {
  const res = await slsInProcess(['audit', 'list', '--json', ...args], env);
  expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(0);
  return { entries: JSON.parse(res.stdout) as Listed[], stderr: res.stderr };
}

beforeAll(async () => {
  db = await sqliteDatabase();
  env = cliEnv(db);
  // twelve entries an hour apart from 10:00, about alice (even) and bob (odd), of three types
  const clock = new TestClock(start);
  const services = await createServices(testConfig(db), { clock, warn: () => undefined });
  const events = ['login.password_failed', 'login.succeeded', 'session.ended'] as const;
  for (let i = 0; i < 12; i++) {
    clock.set(start + HOUR + i * HOUR);
    await services.audit.record({ event: events[i % 3]!, username: i % 2 === 0 ? 'alice' : 'bob', data: { i } });
  }
  await services.close();
});
afterAll(async () => {
  await db.drop();
});

// a few `sls` are processes of their own: on a busy machine a test of several takes more than the default 30 s
describe('sls audit list (X1)', { timeout: 120_000 }, () => {
  it('X1: audit list filters by time range, event type and user', async () => {
    expect((await list(['--since', at(3), '--until', at(6)])).entries.map((e) => e.data.i)).toEqual([4, 3, 2]);
    expect((await list(['--type', 'session.ended'])).entries.map((e) => e.data.i)).toEqual([11, 8, 5, 2]);
    expect((await list(['--type', 'login.*', '--user', 'bob'])).entries.map((e) => e.data.i)).toEqual([9, 7, 3, 1]);
    expect((await list(['--since', '2026-01-05', '--until', '2026-01-05T12:30:00+01:00'])).entries.map((e) => e.data.i)).toEqual([1, 0]);
    const text = await slsInProcess(['audit', 'list', '--type', 'login.succeeded', '--user', 'alice'], env);
    // issue 16: a header, aligned columns, times people read (SLS_TIME_ZONE, UTC here), who acted
    expect(text.stdout.split('\n').filter(Boolean)).toEqual([
      ' #  Time                     Event            User   By  Details',
      expect.stringMatching(/^11 {2}2026-01-05 20:00:00 UTC {2}login\.succeeded {2}alice {2}- {3}\{"i":10\}$/),
      expect.stringMatching(/^ 5 {2}2026-01-05 14:00:00 UTC {2}login\.succeeded {2}alice {2}- {3}\{"i":4\}$/),
    ]);
  });

  it('[ours] issue 16: an empty result says so, naming the user asked about', async () => {
    expect(await slsInProcess(['audit', 'list', '--user', 'nobody'], env)).toMatchObject({ code: 0, stdout: 'No audit entries for nobody.\n' });
    expect(await slsInProcess(['audit', 'list', '--type', 'device.renamed'], env)).toMatchObject({ code: 0, stdout: 'No audit entries.\n' });
    expect(await slsInProcess(['outbox'], env)).toMatchObject({ code: 0, stdout: 'No messages.\n' });
  });

  it('X1: audit list pages with --limit and the --cursor it prints on standard error', async () => {
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await list(['--limit', '5', ...(cursor ? ['--cursor', cursor] : [])]);
      expect(page.entries.length).toBeLessThanOrEqual(5);
      seen.push(...page.entries.map((e) => e.data.i!));
      pages += 1;
      const next = /^More entries: add --cursor (\d+)\.\n$/.exec(page.stderr);
      if (!next) {
        expect(page.stderr).toBe('');
        break;
      }
      cursor = next[1];
    }
    expect(pages).toBe(3);
    expect(seen).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  });

  it('X1/X3: a bad time, range, type or cursor exits 1 with one line', async () => {
    const cases: [string[], string][] = [
      [['--since', 'yesterday'], 'sls: Give “since” as a date or a time in ISO 8601, such as 2026-03-01 or 2026-03-01T09:30:00Z.\n'],
      [['--until', '2026-01-05T10:00'], 'sls: Give “until” as a date or a time in ISO 8601, such as 2026-03-01 or 2026-03-01T09:30:00Z.\n'],
      [['--since', at(5), '--until', at(4)], 'sls: The start of the period must come before its end.\n'],
      [['--type', 'login%'], 'sls: The event type must be an event name such as login.locked, or a family such as login.*.\n'],
      [['--cursor', '-3'], 'sls: The cursor must be the next value given with the page before.\n'],
    ];
    for (const [args, stderr] of cases) {
      const res = await slsInProcess(['audit', 'list', ...args], env);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.stderr, args.join(' ')).toBe(stderr);
    }
    const fr = await sls(['audit', 'list', '--since', 'hier'], { ...env, LANG: 'fr_FR.UTF-8' });
    expect(fr.stderr).toBe("sls: Donnez « since » sous la forme d'une date ou d'une heure ISO 8601, comme 2026-03-01 ou 2026-03-01T09:30:00Z.\n");
  });
});

describe('sls audit checkpoint and verify (X1)', { timeout: 120_000 }, () => {
  let line: string;

  it('X1: checkpoint prints one line to keep elsewhere (seq, hash, time, signature); verify --checkpoint proves nothing up to it changed', async () => {
    const checkpoint = await sls(['audit', 'checkpoint'], env);
    expect(checkpoint.code).toBe(0);
    expect(checkpoint.stdout).toMatch(/^sls-audit-checkpoint\/1 seq=12 hash=[0-9a-f]{64} at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z sig=[A-Za-z0-9_-]{43}\n$/);
    line = checkpoint.stdout.trim();
    const verified = await slsInProcess(['audit', 'verify', '--checkpoint', line], env);
    expect(verified).toMatchObject({ code: 0, stderr: '' });
    expect(verified.stdout).toMatch(
      /^Audit log intact: 12 entries, head [0-9a-f]{64}\.\nThe checkpoint of entry 12 matches: nothing up to it has changed\.\n$/,
    );
  });

  it('X1: after the newest entries were deleted (the trigger dropped first), verify says which are missing and that the checkpoint does not match; checkpoint refuses', async () => {
    const raw = new BetterSqlite3(db.url.slice('sqlite:'.length));
    expect(() => raw.prepare('delete from audit_log where seq > 9').run()).toThrow(/append-only/);
    raw.exec('drop trigger audit_log_no_delete');
    raw.prepare('delete from audit_log where seq > 9').run();
    raw.close();
    const missing = await sls(['audit', 'verify'], env);
    expect(missing).toMatchObject({
      code: 1,
      stderr: 'sls: The audit log has been tampered with: the entries after 9 are missing (the signed head names entry 12).\n',
    });
    const againstCheckpoint = await slsInProcess(['audit', 'verify', '--checkpoint', line], env);
    expect(againstCheckpoint.code).toBe(1);
    expect(againstCheckpoint.stdout).toBe(
      [
        'The audit log has been tampered with: the entries after 9 are missing (the signed head names entry 12).',
        'The audit log does not match the checkpoint: entry 12, which the checkpoint names, is missing.',
        '',
      ].join('\n'),
    );
    expect((await slsInProcess(['audit', 'checkpoint'], env)).code).toBe(1);
  });

  it('X1/X3: after the table was emptied, verify says so; a line that is not a checkpoint exits 1 with one line', async () => {
    const raw = new BetterSqlite3(db.url.slice('sqlite:'.length));
    raw.prepare('delete from audit_log').run();
    raw.close();
    expect(await slsInProcess(['audit', 'verify'], env)).toMatchObject({
      code: 1,
      stderr: 'sls: The audit log has been tampered with: it was emptied (the signed head names entry 12).\n',
    });
    for (const bad of ['yesterday', line.replace(/sig=\S+/, 'sig=short')]) {
      const res = await slsInProcess(['audit', 'verify', '--checkpoint', bad], env);
      expect(res).toMatchObject({
        code: 1,
        stderr: 'sls: This is not a checkpoint line. Give the whole line printed by sls audit checkpoint: sls-audit-checkpoint/1 seq=… hash=… at=… sig=….\n',
      });
    }
  });
});
