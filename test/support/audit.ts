/**
 * X1: tampering with the audit log as an attacker with rights on the
 * database would: first drop the triggers that keep it append-only, then
 * change rows directly. `restoreAuditGuards` puts the triggers back.
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Store } from '../../src/store/database.js';
import { createAuditGuards } from '../../src/store/migrations/0009_audit_head.js';

export async function dropAuditGuards(store: Store): Promise<void> {
  if (store.dialect === 'postgres') {
    await sql`drop trigger audit_log_no_update_delete on audit_log`.execute(store.db);
    await sql`drop trigger audit_log_no_truncate on audit_log`.execute(store.db);
    await sql`drop trigger audit_head_forward on audit_head`.execute(store.db);
    await sql`drop trigger audit_head_no_truncate on audit_head`.execute(store.db);
  } else {
    for (const trigger of ['audit_log_no_update', 'audit_log_no_delete', 'audit_head_no_delete', 'audit_head_forward']) {
      await sql`drop trigger ${sql.id(trigger)}`.execute(store.db);
    }
  }
}

export async function restoreAuditGuards(store: Store): Promise<void> {
  await createAuditGuards(store.db);
}

/** Runs `fn` with the triggers dropped, and puts them back. */
export async function asAttacker<T>(store: Store, fn: () => Promise<T>): Promise<T> {
  await dropAuditGuards(store);
  try {
    return await fn();
  } finally {
    await restoreAuditGuards(store);
  }
}

interface Row {
  seq: number;
  at: number;
  event: string;
  actor: string | null;
  user_id: string | null;
  username: string | null;
  ip: string | null;
  data: string;
}

/** The chain as it was before decision 0006 (and as an attacker without the key can recompute it): plain SHA-256. */
export function plainSha256(prevHash: string, row: Row): string {
  const canonical = JSON.stringify([row.seq, row.at, row.event, row.actor, row.user_id, row.username, row.ip, row.data]);
  return createHash('sha256').update(prevHash).update('\n').update(canonical).digest('hex');
}

/**
 * Rewrites the chain from entry `from` (to `to`) with `hashOf` (plain SHA-256, or the
 * keyed hash for an attacker who holds the master key), after `edit` changed
 * the entries' contents. Run it with the triggers dropped.
 */
export async function rechain(store: Store, from: number, hashOf: (prevHash: string, row: Row) => string, to = Number.MAX_SAFE_INTEGER): Promise<void> {
  const rows = await store.db.selectFrom('audit_log').selectAll().where('seq', '>=', from).where('seq', '<=', to).orderBy('seq').execute();
  const before = await store.db
    .selectFrom('audit_log')
    .select('hash')
    .where('seq', '=', from - 1)
    .executeTakeFirst();
  let prevHash = before?.hash ?? '0'.repeat(64);
  for (const row of rows) {
    const hash = hashOf(prevHash, row);
    await store.db.updateTable('audit_log').set({ prev_hash: prevHash, hash }).where('seq', '=', row.seq).execute();
    prevHash = hash;
  }
}
