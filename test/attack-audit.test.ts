/**
 * Attacks on the audit chain (X1, decisions 0006 and 0016) by someone who can
 * write the database but does not hold the master key: resetting the head to
 * "legacy, unsigned" so that the next start signs a rewritten log, rolling
 * the tail back to an older, genuinely signed head, and breaking the chain
 * while the server runs (it must notice by itself, not only `sls audit verify`).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { MINUTE } from '../src/clock.js';
import { createServices } from '../src/services.js';
import type { Store } from '../src/store/database.js';
import { DATABASES, createUser, testConfig, type Harness, startHarness } from './support/harness.js';
import { asAttacker, plainSha256, rechain } from './support/audit.js';

/** Ten entries, one minute apart. */
async function tenEntries(h: Harness): Promise<void> {
  for (let i = 1; i <= 10; i++) {
    await h.services.audit.record({ event: 'session.ended', username: `user${i}`, data: { i } });
    h.clock.advance(MINUTE);
  }
}

/** The attack of decision 0006's "Limits": every entry rewritten with plain SHA-256, the head reset to "legacy, unsigned". */
async function rewriteAsLegacy(store: Store): Promise<void> {
  await asAttacker(store, async () => {
    await sql`update audit_log set username = 'someone_else' where seq = 4`.execute(store.db);
    await rechain(store, 1, plainSha256);
    const last = await store.db.selectFrom('audit_log').select(['seq', 'hash', 'at']).orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
    await store.db.updateTable('audit_head').set({ seq: last.seq, hash: last.hash, at: last.at, legacy_until: last.seq, signature: null }).execute();
  });
}

describe.each(DATABASES)('attacks on the audit chain on %s (X1)', (dbName) => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness(dbName);
    // a user (its creation is entry 1), then ten entries: 2 to 11
    await createUser(h.services);
    await tenEntries(h);
  });
  afterEach(async () => {
    await h.close();
  });

  it('X1: a log rewritten with plain SHA-256 and its head reset to unsigned is not signed again by the next start; verify reports it', async () => {
    await rewriteAsLegacy(h.services.store);
    const warnings: string[] = [];
    await expect(createServices(testConfig(h.database), { warn: (message) => warnings.push(message) })).rejects.toMatchObject({
      code: 'AUDIT_NOT_ANCHORED',
    });
    // the head stays unsigned: nothing blessed the rewritten entries
    const head = await h.services.store.db.selectFrom('audit_head').select('signature').executeTakeFirstOrThrow();
    expect(head.signature).toBeNull();
    const result = await h.services.audit.verify();
    expect(result.ok).toBe(false);
    expect(result.ok ? [] : result.findings).toEqual([{ reason: 'head_unsigned', seq: 11 }]);
  });

  it('X1: a log emptied and its head reset to that of a new database is not signed by the next start while users remain', async () => {
    const store = h.services.store;
    await asAttacker(store, async () => {
      await store.db.deleteFrom('audit_log').execute();
      await store.db
        .updateTable('audit_head')
        .set({ seq: 0, hash: '0'.repeat(64), at: 0, legacy_until: 0, signature: null })
        .execute();
    });
    await expect(createServices(testConfig(h.database), { warn: () => undefined })).rejects.toMatchObject({ code: 'AUDIT_NOT_ANCHORED', params: { seq: 0 } });
    expect((await h.services.audit.verify()).ok).toBe(false);
  });

  it('X1, X6: a transaction that appended two entries and then failed (rolled back) leaves the chain as it was: the next entries are appended, the check and verify find it intact, also after a restart', async () => {
    await expect(
      h.services.store.serialized('audit_log', async (trx) => {
        await h.services.audit.append(trx, [{ event: 'session.ended', data: { i: 'a' } }]);
        await h.services.audit.append(trx, [{ event: 'session.ended', data: { i: 'b' } }]);
        throw new Error('failed after two appends');
      }),
    ).rejects.toThrow('failed after two appends');
    // entry 12, not a head "moved back" below the rolled-back 13
    await h.services.audit.record({ event: 'session.ended', data: { i: 'after' } });
    expect(await h.services.chainWatch.run()).toMatchObject({ intact: true, verifiedSeq: 12 });
    expect((await h.services.audit.verify()).ok).toBe(true);
    await h.services.audit.keepSeen();
    const restarted = await createServices(testConfig(h.database), { warn: () => undefined });
    try {
      await restarted.audit.record({ event: 'session.ended', data: { i: 'restarted' } });
      expect(await restarted.chainWatch.run()).toMatchObject({ intact: true, verifiedSeq: 13 });
    } finally {
      await restarted.close();
    }
  });

  it('X1: the newest entries removed and an older, genuinely signed head put back: the server appends nothing over it, and its check after a restart reports it', async () => {
    const store = h.services.store;
    const older = await store.db.selectFrom('audit_head').selectAll().executeTakeFirstOrThrow();
    await h.services.audit.record({ event: 'session.ended' }, { event: 'session.ended' });
    await h.services.audit.record({ event: 'session.ended' });
    // the server checked the chain (entries 1 to 14)
    expect(await h.services.chainWatch.run()).toMatchObject({ intact: true, verifiedSeq: 14 });
    // the attacker cuts entries 12 to 14 and puts back the head of entry 11, which the server itself signed
    await asAttacker(store, async () => {
      await store.db.deleteFrom('audit_log').where('seq', '>', older.seq).execute();
      await store.db.updateTable('audit_head').set(older).execute();
    });
    await expect(h.services.audit.record({ event: 'session.ended' })).rejects.toMatchObject({
      code: 'AUDIT_CHAIN_BROKEN',
      params: { reason: 'head_moved_back', seq: 11, verified: 14 },
    });
    // after a restart, the position the check kept says how far the log had been verified
    const warnings: string[] = [];
    const restarted = await createServices(testConfig(h.database), { warn: (message) => warnings.push(message) });
    try {
      expect(await restarted.chainWatch.run()).toMatchObject({ intact: false, finding: { reason: 'head_moved_back', seq: 11, verified: 14 } });
      expect(warnings.at(-1)).toMatch(/signed head names entry 11, older than entry 14/);
    } finally {
      await restarted.close();
    }
  });

  it('X1: entries appended after the last check and cut while the server was stopped, an older signed head put back: the restarted server reports it, appends nothing over it, and sees a tail appended over by another process', async () => {
    const store = h.services.store;
    // the server checked the chain (entries 1 to 11); the head of entry 11 is copied by the attacker
    expect(await h.services.chainWatch.run()).toMatchObject({ intact: true, verifiedSeq: 11 });
    const older = await store.db.selectFrom('audit_head').selectAll().executeTakeFirstOrThrow();
    // a process appends 12 to 14 and stops before its next check
    const first = await createServices(testConfig(h.database), { warn: () => undefined });
    await first.audit.record({ event: 'session.ended' });
    await first.audit.record({ event: 'session.ended' }, { event: 'session.ended' });
    await first.close();
    await asAttacker(store, async () => {
      await store.db.deleteFrom('audit_log').where('seq', '>', older.seq).execute();
      await store.db.updateTable('audit_head').set(older).execute();
    });
    const warnings: string[] = [];
    const restarted = await createServices(testConfig(h.database), { warn: (message) => warnings.push(message) });
    try {
      await expect(restarted.audit.record({ event: 'session.ended' })).rejects.toMatchObject({
        code: 'AUDIT_CHAIN_BROKEN',
        params: { reason: 'head_moved_back', seq: 11, verified: 14 },
      });
      expect(await restarted.chainWatch.run()).toMatchObject({ intact: false, finding: { reason: 'head_moved_back', seq: 11, verified: 14 } });
      expect(warnings.at(-1)).toMatch(/signed head names entry 11, older than entry 14/);
    } finally {
      await restarted.close();
    }
    // a process that never saw entry 14 appends over the cut tail: the entry 14 it writes is not the one seen
    await h.services.audit.record({ event: 'session.ended' }, { event: 'session.ended' }, { event: 'session.ended' });
    const again = await createServices(testConfig(h.database), { warn: () => undefined });
    try {
      expect(await again.chainWatch.run()).toMatchObject({ intact: false, finding: { reason: 'checkpoint_mismatch', seq: 14 } });
    } finally {
      await again.close();
    }
  });

  it('X1: the server checks its own chain from where it left off: an entry altered after the check is reported once, by a log line, the metrics and an audit entry', async () => {
    const warnings: string[] = [];
    const services = await createServices(testConfig(h.database), { warn: (message) => warnings.push(message), clock: h.clock });
    try {
      await services.scheduler.runDue();
      expect(await services.metrics.text()).toMatch(/^sls_audit_chain_intact 1$[\s\S]*^sls_audit_chain_verified_seq 11$/m);
      for (let i = 0; i < 3; i++) await services.audit.record({ event: 'session.ended', data: { i } });
      await asAttacker(services.store, () => sql`update audit_log set data = '{"i":9}' where seq = 13`.execute(services.store.db));
      await services.scheduler.runDue();
      await services.scheduler.runDue();
      expect(warnings).toEqual(['The audit log has been tampered with: entry 13 was altered.']);
      expect(await services.metrics.text()).toMatch(/^sls_audit_chain_intact 0$[\s\S]*^sls_audit_chain_verified_seq 11$/m);
      const [broken] = await services.audit.list({ type: 'audit.chain_broken' });
      expect(broken).toMatchObject({ actor: 'system', data: { reason: 'entry_altered', seq: 13 } });
    } finally {
      await services.close();
    }
  });
});
