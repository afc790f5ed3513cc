import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // K3, K12: how an approved push was confirmed (pin or biometric), and the session it gave
  await db.schema.alterTable('login_flows').addColumn('confirmed_by', 'text').execute();
  // K3: only whoever started a login may take the session the phone approved
  await db.schema.alterTable('login_flows').addColumn('claim_hash', 'text').execute();
  await db.schema.alterTable('sessions').addColumn('confirmed_by', 'text').execute();
  // V1, K11: when the user last verified again, with a device, for a portal task
  await db.schema.alterTable('sessions').addColumn('verified_at', 'bigint').execute();
  // the app's live connection asks for the open requests of its devices
  await db.schema.createIndex('login_flows_device_state').on('login_flows').columns(['device_id', 'state']).execute();

  // K14: messages sealed to a phone (temporary passwords), until the app has shown them
  await db.schema
    .createTable('app_messages')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('sealed', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('app_messages_device').on('app_messages').column('device_id').execute();

  // K3: where a phone's push service takes messages for the app (sealed: it holds the app's keys)
  await db.schema
    .createTable('push_subscriptions')
    .addColumn('device_id', 'text', (c) => c.primaryKey().references('devices.id'))
    .addColumn('subscription_enc', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
