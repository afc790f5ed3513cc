import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // I1, L8 (RFC 8628): the grant was given to a device (a device code approved), not to the browser: a new login of the
  // same user in that browser carries it over to the new session (the device cannot sign in again by itself)
  await db.schema
    .alterTable('oidc_grant_sessions')
    .addColumn('device_code', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // … and the new session is linked to the provider session for the back-channel logout of those grants only: the
  // browser's provider session does not stand on it (what the new login proved goes through an interaction first)
  await db.schema
    .alterTable('oidc_session_links')
    .addColumn('devices_only', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
