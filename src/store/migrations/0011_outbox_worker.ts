import { sql, type Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // X6, N1: notices are delivered by a worker from the outbox, with retries and a lease
  // attempts: delivery attempts made so far (claims); next_attempt_at: when a worker may
  // try (null for messages delivered inline, codes, and for finished ones); lease_until and
  // claim: the worker that holds the message while it delivers, and until when.
  await db.schema
    .alterTable('notifications')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('notifications').addColumn('next_attempt_at', 'bigint').execute();
  await db.schema.alterTable('notifications').addColumn('lease_until', 'bigint').execute();
  await db.schema.alterTable('notifications').addColumn('claim', 'text').execute();
  await db.schema.createIndex('notifications_due').on('notifications').columns(['status', 'next_attempt_at']).execute();
  // notices written before the worker existed and never sent are handed to it
  await sql`update notifications set next_attempt_at = created_at where status = 'pending' and template not in ('loginCode', 'confirmCode', 'activationToken')`.execute(
    db,
  );

  // N1: the language and time zone of a user's notices, when the user has chosen them
  await db.schema.alterTable('users').addColumn('language', 'text').execute();
  await db.schema.alterTable('users').addColumn('time_zone', 'text').execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
