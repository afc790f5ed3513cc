import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // T5, A5: a secret of the help desk console (a temporary passcode, a one-time password) on its way to the page that
  // shows it once: its sealed cookie names a row here, which that page deletes as it shows it; a cookie sent again finds none
  await db.schema
    .createTable('helpdesk_handovers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('session_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('helpdesk_handovers_expires_at').on('helpdesk_handovers').column('expires_at').execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
