import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // N1: when the user (or client services, or `sls`) chose the language and time zone of the
  // notices; null while they are only remembered from the user's logins, which may then update them
  await db.schema.alterTable('users').addColumn('notice_preferences_chosen_at', 'bigint').execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
