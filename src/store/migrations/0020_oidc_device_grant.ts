import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // I1 (RFC 8628): a client that may use the device authorization grant (a trading platform without a browser)
  await db.schema
    .alterTable('oidc_clients')
    .addColumn('device_grant', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
