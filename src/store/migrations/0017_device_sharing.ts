import { sql, type Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // H1-H5: one physical device shared between usernames of one entity (or of entities with identical identification data)
  await db.schema
    .createTable('device_sharings')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('requester_id', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('owner_id', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    // challenge → review → pending → active; rejected, cancelled, expired
    .addColumn('state', 'text', (c) => c.notNull())
    // the owner's device proof (a flow of kind `sharing`)
    .addColumn('flow_id', 'text')
    // the requester's session that asked (a proof belongs to it)
    .addColumn('session_id', 'text')
    // H5: keep the redundant devices (suspended) or return them (DSC+)
    .addColumn('disposition', 'text')
    // H3: automatic or compliance
    .addColumn('approval', 'text')
    // JSON: the requester's devices suspended while sharing, restored on cancel
    .addColumn('kept_devices', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('decided_at', 'bigint')
    .addColumn('decided_by', 'text')
    .addColumn('note', 'text')
    .addColumn('ended_at', 'bigint')
    .addColumn('ended_by', 'text')
    .execute();
  // one sharing waiting or in force per requester (two concurrent confirmations cannot both pass)
  await sql`create unique index device_sharings_live_requester on device_sharings (requester_id) where state in ('pending', 'active')`.execute(db);
  await db.schema.createIndex('device_sharings_owner').on('device_sharings').columns(['owner_id', 'state']).execute();
  await db.schema.createIndex('device_sharings_state').on('device_sharings').columns(['state', 'created_at']).execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
