import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // H (issue 15): every login reads the device shared with the user by the requester and the state; the partial
  // unique index of 0017 cannot serve a state given as a parameter, so without this the sharings were scanned
  await db.schema.createIndex('device_sharings_requester').on('device_sharings').columns(['requester_id', 'state']).execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
