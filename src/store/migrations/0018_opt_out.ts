import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // O1: the users who opted out of the second factor for trading logins; opting back in (O2) deletes the row
  await db.schema
    .createTable('opt_outs')
    .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id'))
    .addColumn('opted_out_at', 'bigint', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
