import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // M7, D5: a code the development outbox delivers is stored masked in `body`; its text with the code is kept sealed
  // (sealed_body) only until the code expires (sealed_until), then removed by the background jobs
  await db.schema.alterTable('notifications').addColumn('sealed_body', 'text').execute();
  await db.schema.alterTable('notifications').addColumn('sealed_until', 'bigint').execute();
  // codes stored by a version before in clear in the development outbox: masked, as a gateway's copies are
  const stored: { id: string; body: string }[] = await db
    .selectFrom('notifications')
    .select(['id', 'body'])
    .where('provider', '=', 'outbox')
    .where('template', 'in', ['loginCode', 'confirmCode', 'activationToken'])
    .execute();
  for (const { id, body } of stored) {
    const masked = body.replace(/(?<!\d)\d{6}(?!\d)/g, '••••••');
    if (masked !== body) await db.updateTable('notifications').set({ body: masked }).where('id', '=', id).execute();
  }
  await db.schema.createIndex('notifications_sealed_until').on('notifications').column('sealed_until').execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
