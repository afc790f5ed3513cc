import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // D6, X7 (decision 0014): a WebAuthn credential id is registered once, across users; the unique index makes it
  // so whatever the order of two registrations. NULL for every other device (NULLs are distinct on both databases).
  await db.schema.alterTable('devices').addColumn('credential_id', 'text').execute();
  // the keys registered before: their credential id, from their params. An id registered by several users before this
  // check goes to one key (not removed, else the first registered); the others are kept as they were, without it.
  const keys = await db
    .selectFrom('devices')
    .select(['id', 'params', 'state'])
    .where('type', '=', 'security_key')
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  const claimed = new Map<string, string>();
  for (const key of [...keys.filter((k) => k.state !== 'revoked'), ...keys.filter((k) => k.state === 'revoked')]) {
    const params = typeof key.params === 'string' ? JSON.parse(key.params) : key.params;
    const credentialId = params?.credentialId;
    if (typeof credentialId === 'string' && !claimed.has(credentialId)) claimed.set(credentialId, key.id);
  }
  for (const [credentialId, id] of claimed) await db.updateTable('devices').set({ credential_id: credentialId }).where('id', '=', id).execute();
  await db.schema.createIndex('devices_credential_id').on('devices').column('credential_id').unique().execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
