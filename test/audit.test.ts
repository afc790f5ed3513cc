/**
 * The audit log cannot be rewritten unnoticed (X1): the append-only triggers
 * on SQLite and PostgreSQL, and, once an attacker with rights on the
 * database drops them, what `verify` finds: an edited entry, an edit with the
 * chain recomputed by plain SHA-256, the newest entries deleted, the table
 * emptied, a forged head; with a checkpoint kept elsewhere, also a rewrite by
 * someone holding the master key and a rollback to an older copy. Entries
 * chained before the keyed chain stay verifiable. Then queries by time, type
 * and user, a page at a time, through the admin API.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { sql } from 'kysely';
import { DAY, HOUR, MINUTE } from '../src/clock.js';
import { createServices } from '../src/services.js';
import { openStore, type Store } from '../src/store/database.js';
import { migrateToLatest } from '../src/store/migrate.js';
import { auditKeys, findingError, type VerifyResult } from '../src/audit/audit-log.js';
import { describeError, translator } from '../src/i18n/i18n.js';
import {
  DATABASES,
  PASSWORD,
  TEST_MASTER_KEY,
  cardAnswer,
  createUser,
  createUserWithCard,
  openTestDatabase,
  startHarness,
  testConfig,
  type Harness,
} from './support/harness.js';
import { answer, bearer, get, startLogin } from './support/api.js';
import { asAttacker, dropAuditGuards, plainSha256, rechain } from './support/audit.js';
import type { Role } from '../src/store/schema.js';

const en = translator('en');
const keys = auditKeys(Buffer.from(TEST_MASTER_KEY, 'hex'));

/** The keyed hash, as someone holding the master key computes it. */
function keyedSha256(prevHash: string, row: Parameters<typeof plainSha256>[1]): string {
  const canonical = JSON.stringify([row.seq, row.at, row.event, row.actor, row.user_id, row.username, row.ip, row.data]);
  return createHmac('sha256', keys.chain).update(prevHash).update('\n').update(canonical).digest('hex');
}

function findingsOf(result: VerifyResult) {
  expect(result.ok).toBe(false);
  return result.ok ? [] : result.findings;
}

function messagesOf(result: VerifyResult): string[] {
  return findingsOf(result).map((f) => describeError(en, findingError(f)));
}

/** Ten entries, seq 1 to 10, one minute apart. */
async function tenEntries(h: Harness): Promise<void> {
  for (let i = 1; i <= 10; i++) {
    await h.services.audit.record({ event: 'session.ended', username: `user${i}`, data: { i } });
    h.clock.advance(MINUTE);
  }
}

describe.each(DATABASES)('the audit log on %s: tampering is detected (X1)', (dbName) => {
  let h: Harness;
  let store: Store;
  beforeEach(async () => {
    h = await startHarness(dbName);
    store = h.services.store;
    await tenEntries(h);
  });
  afterEach(async () => {
    await h.close();
  });

  it('X1: UPDATE and DELETE of entries are refused while the triggers are in place (TRUNCATE too on PostgreSQL); the head is never deleted nor moved back', async () => {
    await expect(sql`update audit_log set data = '{}' where seq = 3`.execute(store.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_log where seq = 10`.execute(store.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_log`.execute(store.db)).rejects.toThrow(/append-only/);
    if (dbName === 'postgres') await expect(sql`truncate audit_log`.execute(store.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_head`.execute(store.db)).rejects.toThrow(/never removed/);
    await expect(sql`update audit_head set seq = 7`.execute(store.db)).rejects.toThrow(/only moves forward/);
    if (dbName === 'postgres') await expect(sql`truncate audit_head`.execute(store.db)).rejects.toThrow(/never removed/);
    // appends go on, and nothing changed
    await h.services.audit.record({ event: 'session.ended', data: { i: 11 } });
    expect(await h.services.audit.verify()).toMatchObject({ ok: true, entries: 11, seq: 11, legacyUntil: 0 });
  });

  it('X1: an edited entry is reported by its seq', async () => {
    await asAttacker(store, () => sql`update audit_log set data = '{"i":40}' where seq = 4`.execute(store.db));
    const result = await h.services.audit.verify();
    expect(findingsOf(result)).toEqual([{ reason: 'entry_altered', seq: 4, last: 4 }]);
    expect(result).toMatchObject({ brokenAt: 4, reason: 'entry_altered' });
    expect(messagesOf(result)).toEqual(['The audit log has been tampered with: entry 4 was altered.']);
  });

  it('X1: an entry edited and the chain recomputed with plain SHA-256 (without the key) is reported, head included', async () => {
    await asAttacker(store, async () => {
      await sql`update audit_log set username = 'someone_else' where seq = 4`.execute(store.db);
      await rechain(store, 4, plainSha256);
      // the attacker moves the head onto the new chain too, but cannot sign it
      const last = await store.db.selectFrom('audit_log').select('hash').where('seq', '=', 10).executeTakeFirstOrThrow();
      await store.db.updateTable('audit_head').set({ hash: last.hash }).execute();
    });
    const result = await h.services.audit.verify();
    expect(findingsOf(result)).toEqual([{ reason: 'head_forged' }, { reason: 'entry_altered', seq: 4, last: 10 }]);
    expect(messagesOf(result)).toEqual([
      'The audit log has been tampered with: its head does not carry a valid signature.',
      'The audit log has been tampered with: entries 4 to 10 were altered.',
    ]);
  });

  it('X1: deleting the newest entries is reported (the entries after N are missing), and stays reported after new appends', async () => {
    await asAttacker(store, () => store.db.deleteFrom('audit_log').where('seq', '>', 7).execute());
    const result = await h.services.audit.verify();
    expect(findingsOf(result)).toEqual([{ reason: 'newest_missing', seq: 7, head: 10 }]);
    expect(messagesOf(result)).toEqual(['The audit log has been tampered with: the entries after 7 are missing (the signed head names entry 10).']);
    // the chain goes on from the signed head, not from what the table holds: the hole stays
    await h.services.audit.record({ event: 'session.ended', data: { i: 11 } });
    expect(findingsOf(await h.services.audit.verify())).toEqual([{ reason: 'entries_missing', seq: 8, last: 10 }]);
  });

  it('X1: deleting one entry in the middle, or the oldest ones, is reported by the seqs missing', async () => {
    await asAttacker(store, () => store.db.deleteFrom('audit_log').where('seq', '=', 5).execute());
    const middle = await h.services.audit.verify();
    expect(findingsOf(middle)).toEqual([{ reason: 'entries_missing', seq: 5, last: 5 }]);
    expect(messagesOf(middle)).toEqual(['The audit log has been tampered with: entry 5 is missing.']);
    await asAttacker(store, () => store.db.deleteFrom('audit_log').where('seq', '<=', 3).execute());
    expect(findingsOf(await h.services.audit.verify())).toEqual([
      { reason: 'entries_missing', seq: 1, last: 3 },
      { reason: 'entries_missing', seq: 5, last: 5 },
    ]);
  });

  it('X1: an entry deleted and the later ones renumbered to close the gap is reported', async () => {
    await asAttacker(store, async () => {
      await store.db.deleteFrom('audit_log').where('seq', '=', 5).execute();
      for (let seq = 6; seq <= 10; seq++)
        await store.db
          .updateTable('audit_log')
          .set({ seq: seq - 1 })
          .where('seq', '=', seq)
          .execute();
    });
    expect(findingsOf(await h.services.audit.verify())).toEqual([
      { reason: 'link_broken', seq: 5 },
      { reason: 'entry_altered', seq: 5, last: 9 },
      { reason: 'newest_missing', seq: 9, head: 10 },
    ]);
  });

  it("X1: two entries swapped (each given the other's seq) are reported", async () => {
    await asAttacker(store, async () => {
      await store.db.updateTable('audit_log').set({ seq: 100 }).where('seq', '=', 4).execute();
      await store.db.updateTable('audit_log').set({ seq: 4 }).where('seq', '=', 5).execute();
      await store.db.updateTable('audit_log').set({ seq: 5 }).where('seq', '=', 100).execute();
    });
    expect(findingsOf(await h.services.audit.verify())).toEqual([
      { reason: 'link_broken', seq: 4 },
      { reason: 'entry_altered', seq: 4, last: 5 },
    ]);
  });

  it('X1: emptying the table is reported', async () => {
    await asAttacker(store, async () => {
      if (dbName === 'postgres') await sql`truncate audit_log`.execute(store.db);
      else await store.db.deleteFrom('audit_log').execute();
    });
    const result = await h.services.audit.verify();
    expect(result).toMatchObject({ ok: false, entries: 0 });
    expect(findingsOf(result)).toEqual([{ reason: 'table_emptied', head: 10 }]);
    expect(messagesOf(result)).toEqual(['The audit log has been tampered with: it was emptied (the signed head names entry 10).']);
  });

  it('X1: a head moved back without the key, or removed, is reported, and appends refuse to sign over it', async () => {
    const seven = await store.db.selectFrom('audit_log').selectAll().where('seq', '=', 7).executeTakeFirstOrThrow();
    await asAttacker(store, async () => {
      await store.db.deleteFrom('audit_log').where('seq', '>', 7).execute();
      await store.db.updateTable('audit_head').set({ seq: 7, hash: seven.hash, at: seven.at }).execute();
    });
    expect(findingsOf(await h.services.audit.verify())).toEqual([{ reason: 'head_forged' }]);
    await expect(h.services.audit.record({ event: 'session.ended' })).rejects.toMatchObject({ code: 'AUDIT_CHAIN_BROKEN', params: { reason: 'head_forged' } });

    await asAttacker(store, () => store.db.deleteFrom('audit_head').execute());
    expect(findingsOf(await h.services.audit.verify())).toEqual([{ reason: 'head_missing' }]);
    await expect(h.services.audit.record({ event: 'session.ended' })).rejects.toMatchObject({ code: 'AUDIT_CHAIN_BROKEN', params: { reason: 'head_missing' } });
    // a restart does not make a new head either
    const again = await createServices(testConfig(h.database), { clock: h.clock, warn: () => undefined });
    expect(findingsOf(await again.audit.verify())).toEqual([{ reason: 'head_missing' }]);
    await again.close();
  });

  it('X1: the head row replaced by an older one, genuinely signed, is reported: the entries after it are not covered', async () => {
    const older = await store.db.selectFrom('audit_head').selectAll().executeTakeFirstOrThrow();
    await h.services.audit.record({ event: 'session.ended', data: { i: 11 } }, { event: 'session.ended', data: { i: 12 } });
    await asAttacker(store, async () => {
      await store.db.deleteFrom('audit_head').execute();
      await store.db.insertInto('audit_head').values(older).execute();
    });
    expect(findingsOf(await h.services.audit.verify())).toEqual([{ reason: 'entries_unsigned', seq: 11, last: 12 }]);
  });

  it('X1: entries written around the server (not covered by the signed head) are reported', async () => {
    const ten = await store.db.selectFrom('audit_log').selectAll().where('seq', '=', 10).executeTakeFirstOrThrow();
    const row = { ...ten, seq: 11, data: '{"i":11}' };
    await store.db
      .insertInto('audit_log')
      .values({ ...row, prev_hash: ten.hash, hash: plainSha256(ten.hash, row) })
      .execute();
    expect(findingsOf(await h.services.audit.verify())).toEqual([
      { reason: 'entry_altered', seq: 11, last: 11 },
      { reason: 'entries_unsigned', seq: 11, last: 11 },
    ]);
  });

  describe('with a checkpoint kept elsewhere', () => {
    let checkpoint: string;
    beforeEach(async () => {
      checkpoint = await h.services.audit.checkpoint();
      await h.services.audit.record({ event: 'session.ended', data: { i: 11 } }, { event: 'session.ended', data: { i: 12 } });
    });

    it('X1: the checkpoint is one signed line (seq, hash, time, signature); verify proves that nothing up to it changed', async () => {
      const ten = await store.db.selectFrom('audit_log').select('hash').where('seq', '=', 10).executeTakeFirstOrThrow();
      expect(checkpoint).toBe(`sls-audit-checkpoint/1 seq=10 hash=${ten.hash} at=${new Date(h.clock.now()).toISOString()} sig=${checkpoint.split(' sig=')[1]}`);
      expect(checkpoint).toMatch(/ sig=[A-Za-z0-9_-]{43}$/);
      expect(await h.services.audit.verify({ checkpoint })).toMatchObject({ ok: true, entries: 12, checkpoint: { seq: 10 } });
    });

    it('X1: an entry before the checkpoint changed fails verify', async () => {
      await asAttacker(store, () => sql`update audit_log set event = 'login.succeeded' where seq = 3`.execute(store.db));
      expect(findingsOf(await h.services.audit.verify({ checkpoint }))).toEqual([{ reason: 'entry_altered', seq: 3, last: 3 }]);
    });

    it('X1: a rewrite by someone holding the master key passes the chain and the head, but not the checkpoint', async () => {
      await asAttacker(store, async () => {
        await sql`update audit_log set username = 'someone_else' where seq = 3`.execute(store.db);
        await rechain(store, 3, keyedSha256);
        const last = await store.db.selectFrom('audit_log').select(['hash', 'at']).where('seq', '=', 12).executeTakeFirstOrThrow();
        const head = await store.db.selectFrom('audit_head').selectAll().executeTakeFirstOrThrow();
        const signature = createHmac('sha256', keys.head).update(`sls-audit-head/1\n12\n${last.hash}\n${head.at}\n0`).digest('hex');
        await store.db.updateTable('audit_head').set({ hash: last.hash, signature }).execute();
      });
      expect((await h.services.audit.verify()).ok).toBe(true);
      const result = await h.services.audit.verify({ checkpoint });
      expect(findingsOf(result)).toEqual([{ reason: 'checkpoint_mismatch', seq: 10 }]);
      expect(messagesOf(result)).toEqual(['The audit log does not match the checkpoint: entry 10 has changed since the checkpoint was taken.']);
    });

    it('X1: a rollback to an older copy of the log (entries and head, genuinely signed) fails the checkpoint', async () => {
      const older = await h.services.store.db.selectFrom('audit_head').selectAll().executeTakeFirstOrThrow();
      await h.services.audit.record({ event: 'session.ended', data: { i: 13 } });
      const newer = await h.services.audit.checkpoint();
      await asAttacker(store, async () => {
        await store.db.deleteFrom('audit_log').where('seq', '>', 12).execute();
        await store.db.updateTable('audit_head').set(older).execute();
      });
      expect((await h.services.audit.verify()).ok).toBe(true);
      expect(findingsOf(await h.services.audit.verify({ checkpoint: newer }))).toEqual([{ reason: 'checkpoint_missing', seq: 13 }]);
    });

    it('X1: entries deleted after the checkpoint are reported by the head, the checkpoint still matching; deleted up to it, the checkpoint is missing too', async () => {
      await asAttacker(store, () => store.db.deleteFrom('audit_log').where('seq', '>', 10).execute());
      expect(findingsOf(await h.services.audit.verify({ checkpoint }))).toEqual([{ reason: 'newest_missing', seq: 10, head: 12 }]);
      await asAttacker(store, () => store.db.deleteFrom('audit_log').where('seq', '>', 8).execute());
      expect(findingsOf(await h.services.audit.verify({ checkpoint }))).toEqual([
        { reason: 'newest_missing', seq: 8, head: 12 },
        { reason: 'checkpoint_missing', seq: 10 },
      ]);
    });

    it('X1: the oldest entries, up to and beyond the checkpoint, deleted: the seqs missing and the checkpoint are reported', async () => {
      await asAttacker(store, () => store.db.deleteFrom('audit_log').where('seq', '<=', 11).execute());
      expect(findingsOf(await h.services.audit.verify({ checkpoint }))).toEqual([
        { reason: 'entries_missing', seq: 1, last: 11 },
        { reason: 'checkpoint_missing', seq: 10 },
      ]);
    });

    it('X1: a checkpoint line altered, or signed by another server, is reported; a line that is not a checkpoint is a VALIDATION_ERROR', async () => {
      const altered = checkpoint.replace('seq=10', 'seq=9');
      expect(findingsOf(await h.services.audit.verify({ checkpoint: altered }))).toEqual([
        { reason: 'checkpoint_forged', seq: 9 },
        { reason: 'checkpoint_mismatch', seq: 9 },
      ]);
      const other = await openTestDatabase('sqlite');
      try {
        const foreign = await createServices({ ...testConfig(other), masterKey: 'ab'.repeat(32) }, { warn: () => undefined });
        await foreign.audit.record({ event: 'session.ended' });
        const theirs = await foreign.audit.checkpoint();
        await foreign.close();
        expect(findingsOf(await h.services.audit.verify({ checkpoint: theirs }))[0]).toEqual({ reason: 'checkpoint_forged', seq: 1 });
      } finally {
        await other.drop();
      }
      for (const line of [
        '',
        'seq=10',
        checkpoint.replace(' sig=', ' signature='),
        checkpoint.replace(/at=\S+/, 'at=2026-02-30T00:00:00.000Z'),
        `${checkpoint} extra`,
      ]) {
        await expect(h.services.audit.verify({ checkpoint: line }), line).rejects.toMatchObject({ code: 'VALIDATION_ERROR', params: { reason: 'checkpoint' } });
      }
    });
  });

  it('X1: a checkpoint is refused on a log that does not verify', async () => {
    await asAttacker(store, () => store.db.deleteFrom('audit_log').where('seq', '=', 10).execute());
    await expect(h.services.audit.checkpoint()).rejects.toMatchObject({ code: 'AUDIT_CHAIN_BROKEN', params: { reason: 'newest_missing', seq: 9, head: 10 } });
  });
});

describe.each(DATABASES)('entries from before the keyed chain, on %s (X1, decision 0006)', (dbName) => {
  it('X1: entries chained with plain SHA-256 before migration 0009 verify as they are, anchored by the first keyed entry; rewriting them is reported', async () => {
    const database = await openTestDatabase(dbName);
    try {
      // a database as the previous version left it: migrated to 0007, five entries chained with plain SHA-256
      const old = openStore(database.url);
      // the migrator the server starts with, stopped after 0007 (it tries again when the catalog moves under it: another
      // test file's schema dropped while it reads the tables of every schema)
      expect(await migrateToLatest(old, '0007_mobile_authenticator')).toContain('0007_mobile_authenticator');
      let prevHash = '0'.repeat(64);
      for (let seq = 1; seq <= 5; seq++) {
        const row = { seq, at: Date.UTC(2025, 5, seq), event: 'login.succeeded', actor: null, user_id: null, username: `legacy${seq}`, ip: null, data: '{}' };
        const hash = plainSha256(prevHash, row);
        await old.db
          .insertInto('audit_log')
          .values({ ...row, prev_hash: prevHash, hash })
          .execute();
        prevHash = hash;
      }
      await old.close();

      // a start does not sign the old entries: the operator anchors them (decision 0006)
      await expect(createServices(testConfig(database), { warn: () => undefined })).rejects.toMatchObject({ code: 'AUDIT_NOT_ANCHORED', params: { seq: 5 } });
      const services = await createServices(testConfig(database), { warn: () => undefined, allowUnanchoredAudit: true });
      try {
        expect(findingsOf(await services.audit.verify())).toEqual([{ reason: 'head_unsigned', seq: 5 }]);
        expect(await services.audit.anchor()).toMatchObject({ legacyUntil: 5, hash: prevHash, firstAt: Date.UTC(2025, 5, 1), lastAt: Date.UTC(2025, 5, 5) });
        // the anchoring is the first keyed entry; a second anchor has nothing to do
        expect(await services.audit.anchor()).toBeNull();
        expect(await services.audit.verify()).toMatchObject({ ok: true, entries: 6, seq: 6, legacyUntil: 5 });
        const [anchored] = await services.audit.list({ type: 'audit.anchored' });
        expect(anchored).toMatchObject({ seq: 6, actor: 'cli', data: { legacyUntil: 5, hash: prevHash } });
        await services.audit.record({ event: 'session.ended' });
        expect(await services.audit.verify()).toMatchObject({ ok: true, entries: 7, legacyUntil: 5 });
        const [six] = await services.audit.list({ before: 7, limit: 1 });
        expect(six!.seq).toBe(6);

        // without the key, the old entries can be rewritten and their chain recomputed with plain SHA-256,
        // but the first keyed entry still names the old entry 5's hash, under its HMAC
        await dropAuditGuards(services.store);
        await sql`update audit_log set username = 'someone_else' where seq = 2`.execute(services.store.db);
        await rechain(services.store, 2, plainSha256, 5);
        expect(findingsOf(await services.audit.verify())).toEqual([{ reason: 'link_broken', seq: 6 }]);

        // a restart does not sign again over the rewritten entries
        const again = await createServices(testConfig(database), { warn: () => undefined });
        expect((await again.audit.verify()).ok).toBe(false);
        await again.close();
      } finally {
        await services.close();
      }
    } finally {
      await database.drop();
    }
  });
});

describe.each(DATABASES)('the admin API of the audit log on %s (X1)', (dbName) => {
  let h: Harness;
  const start = Date.UTC(2026, 0, 5, 9, 0, 0);
  let alice: Awaited<ReturnType<typeof createUser>>;
  let bob: Awaited<ReturnType<typeof createUser>>;

  async function tokenOf(role: Role): Promise<string> {
    const { user, card } = await createUserWithCard(h.services, '1234', { role });
    const started = await startLogin(h.app, user.username, PASSWORD);
    const done = await answer(h.app, started.body.id, cardAnswer(card, started.body.challenge.question));
    expect(done.status).toBe(200);
    return done.body.session.token as string;
  }

  beforeAll(async () => {
    h = await startHarness(dbName);
    h.clock.set(start);
    alice = await createUser(h.services);
    bob = await createUser(h.services);
    // one entry an hour from 10:00: alternately about alice and bob, of three types
    const events = ['login.password_failed', 'login.succeeded', 'session.ended'] as const;
    for (let i = 0; i < 12; i++) {
      h.clock.set(start + HOUR + i * HOUR);
      const user = i % 2 === 0 ? alice : bob;
      await h.services.audit.record({ event: events[i % 3]!, userId: user.id, username: user.username, data: { i } });
    }
    h.clock.set(start + DAY);
  });
  afterAll(async () => {
    await h.close();
  });

  const at = (hours: number) => new Date(start + hours * HOUR).toISOString();

  it('X1: an admin reads the audit log by time range, event type and user, newest first', async () => {
    const token = await tokenOf('admin');
    const list = async (query: string) => {
      const res = await get(h.app, `/api/v1/admin/audit?${query}`, bearer(token));
      expect(res.status, query).toBe(200);
      return res.body as {
        entries: { seq: number; at: string; event: string; actor: string | null; userId: string; username: string; hash: string; data: { i: number } }[];
        next: string | null;
      };
    };
    const window = await list(`since=${at(3)}&until=${at(6)}`);
    expect(window.entries.map((e) => e.data.i)).toEqual([4, 3, 2]);
    expect(window.entries[0]).toMatchObject({ at: at(5), event: 'login.succeeded', username: alice.username, userId: alice.id, actor: null });
    expect(window.entries[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(window.next).toBeNull();

    expect((await list(`type=session.ended&since=${at(0)}&until=${at(13)}`)).entries.map((e) => e.data.i)).toEqual([11, 8, 5, 2]);
    const family = await list(`type=login.*&since=${at(0)}&until=${at(13)}`);
    expect(family.entries.map((e) => e.data.i)).toEqual([10, 9, 7, 6, 4, 3, 1, 0]);
    expect((await list(`user=${bob.username}&type=login.succeeded`)).entries.map((e) => e.data.i)).toEqual([7, 1]);
    // a date alone is midnight UTC; an offset counts
    expect((await list(`since=2026-01-05&until=2026-01-05T12:30:00%2B01:00&type=login.*`)).entries.map((e) => e.data.i)).toEqual([1, 0]);
  });

  it('X1: pages of `limit` entries follow each other with `next` until it is null', async () => {
    const token = await tokenOf('admin');
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(h.app, `/api/v1/admin/audit?since=${at(1)}&until=${at(13)}&limit=5${cursor ? `&cursor=${cursor}` : ''}`, bearer(token));
      expect(res.status).toBe(200);
      expect(res.body.entries.length).toBeLessThanOrEqual(5);
      seen.push(...(res.body.entries as { data: { i: number } }[]).map((e) => e.data.i));
      cursor = res.body.next as string | null;
      pages += 1;
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  });

  it("X1: the admin's queries are themselves audited", async () => {
    const token = await tokenOf('admin');
    const session = await get(h.app, '/api/v1/session', bearer(token));
    await get(h.app, `/api/v1/admin/audit?type=session.ended&limit=2`, bearer(token));
    const [entry] = await h.services.audit.list({ type: 'audit.queried', limit: 1 });
    expect(entry).toMatchObject({ actor: `staff:${session.body.user.id}`, data: { type: 'session.ended', entries: 2 } });
  });

  it('X1: client services, compliance and clients are refused (403 FORBIDDEN_ROLE); without a session, 401', async () => {
    for (const role of ['client_services', 'compliance', 'client'] as const) {
      const res = await get(h.app, '/api/v1/admin/audit', bearer(await tokenOf(role)));
      expect(res.status, role).toBe(403);
      expect(res.body.error.code).toBe('FORBIDDEN_ROLE');
    }
    const none = await get(h.app, '/api/v1/admin/audit');
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('UNAUTHENTICATED');
    const unknown = await get(h.app, '/api/v1/admin/audit', bearer('not-a-session'));
    expect(unknown.status).toBe(401);
  });

  it('X1/X3: bad times, ranges, types, limits and cursors are 400 VALIDATION_ERROR', async () => {
    const token = await tokenOf('admin');
    for (const query of [
      'since=yesterday',
      'since=2026-01-05T10:00:00',
      'until=2026-02-30',
      'since=1736067600000',
      `since=${at(5)}&until=${at(5)}`,
      `since=${at(6)}&until=${at(5)}`,
      'type=LOGIN',
      'type=login.*.*',
      "type=login'--",
      'limit=0',
      'limit=1001',
      'limit=ten',
      'cursor=0',
      'cursor=abc',
      `user=${'a'.repeat(65)}`,
    ]) {
      const res = await get(h.app, `/api/v1/admin/audit?${query}`, bearer(token));
      expect(res.status, query).toBe(400);
      expect(res.body.error.code, query).toBe('VALIDATION_ERROR');
    }
    const range = await get(h.app, `/api/v1/admin/audit?since=${at(6)}&until=${at(5)}`, { ...bearer(token), 'accept-language': 'fr' });
    expect(range.body.error.message).toBe('Le début de la période doit précéder sa fin.');
  });

  it('X1/I2: the route is in the OpenAPI description with its statuses and an operationId', async () => {
    const res = await get(h.app, '/api/openapi.json');
    const operation = res.body.paths['/api/v1/admin/audit'].get;
    expect(operation.operationId).toBe('listAuditEntries');
    // its own answers, and the server's (I2: the throttle, stopping, the database away, the unexpected)
    expect(Object.keys(operation.responses).sort()).toEqual(['200', '400', '401', '403', '429', '500', '503']);
    expect(operation.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['cursor', 'limit', 'since', 'type', 'until', 'user']);
    expect(operation.security).toEqual([{ bearer: [] }]);
  });
});
