import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // M1, M6: a user's mobile numbers in E.164, verified by a confirm code sent by SMS
  await db.schema
    .createTable('phones')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('country', 'text', (c) => c.notNull())
    .addColumn('e164', 'text', (c) => c.notNull())
    .addColumn('verified_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    // the confirm code in flight: its keyed digest, its end, the wrong answers it took
    .addColumn('confirm_digest', 'text')
    .addColumn('confirm_expires_at', 'bigint')
    .addColumn('confirm_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('confirm_sent_at', 'bigint')
    .addUniqueConstraint('phones_user_number', ['user_id', 'e164'])
    .execute();
  await db.schema.createIndex('phones_e164').on('phones').column('e164').execute();

  // send limits per number and per user count the messages sent (M7)
  await db.schema.createIndex('notifications_recipient_time').on('notifications').columns(['recipient', 'created_at']).execute();
  await db.schema.createIndex('notifications_user_time').on('notifications').columns(['user_id', 'created_at']).execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
