import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // A5: a one-time password from client services works for one login within a limited time
  await db.schema.alterTable('users').addColumn('password_expires_at', 'bigint').execute();
  await db.schema.alterTable('users').addColumn('password_used_at', 'bigint').execute();
  // L4: the flows a user started lately and those still open are counted at every start
  await db.schema.createIndex('login_flows_user_created').on('login_flows').columns(['user_id', 'created_at']).execute();
  // L8: the sessions a changed credential opened are found by their device
  await db.schema.createIndex('sessions_device').on('sessions').column('device_id').execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
