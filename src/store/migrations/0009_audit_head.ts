import { PostgresAdapter, sql, type Kysely } from 'kysely';

const GENESIS = '0'.repeat(64);

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // X1: the head of the audit chain (newest seq and hash), signed under a key
  // derived from the master key, kept apart from the entries. One row (id 1).
  // `legacy_until`: entries up to it were chained with plain SHA-256 before
  // this migration (decision 0006); later ones by HMAC. The migration has no
  // key: it records the newest entry unsigned, and the server signs the row
  // when it first starts (AuditLog.anchor), before any append.
  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('legacy_until', 'bigint', (c) => c.notNull())
    .addColumn('signature', 'text')
    .execute();
  const newest = await db.selectFrom('audit_log').select(['seq', 'hash', 'at']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  await db
    .insertInto('audit_head')
    .values({
      id: 1,
      seq: newest?.seq ?? 0,
      hash: newest?.hash ?? GENESIS,
      at: newest?.at ?? 0,
      legacy_until: newest?.seq ?? 0,
      signature: null,
    })
    .execute();

  // X1: queries by event type, newest first
  await db.schema.createIndex('audit_log_event_seq').on('audit_log').columns(['event', 'seq']).execute();

  await createAuditGuards(db);
}

/**
 * X1: the entries are append-only, and the head is never removed nor moved
 * back. Someone with the rights to drop these triggers can still tamper:
 * then the keyed chain and the signed head tell (`sls audit verify`).
 * Exported for the tamper tests, which drop the triggers as an attacker would
 * and put them back.
 */
export async function createAuditGuards(db: Kysely<any>): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql`
      create or replace function audit_log_refuse_change() returns trigger language plpgsql as $$
      begin
        raise exception 'audit_log is append-only: % refused', tg_op;
      end
      $$`.execute(db);
    await sql`create trigger audit_log_no_update_delete before update or delete on audit_log for each row execute function audit_log_refuse_change()`.execute(
      db,
    );
    await sql`create trigger audit_log_no_truncate before truncate on audit_log for each statement execute function audit_log_refuse_change()`.execute(db);
    await sql`
      create or replace function audit_head_forward_only() returns trigger language plpgsql as $$
      begin
        if tg_op <> 'UPDATE' then
          raise exception 'audit_head is never removed: % refused', tg_op;
        end if;
        if new.id <> old.id or new.seq < old.seq or new.legacy_until <> old.legacy_until then
          raise exception 'audit_head only moves forward';
        end if;
        return new;
      end
      $$`.execute(db);
    await sql`create trigger audit_head_forward before update or delete on audit_head for each row execute function audit_head_forward_only()`.execute(db);
    await sql`create trigger audit_head_no_truncate before truncate on audit_head for each statement execute function audit_head_forward_only()`.execute(db);
  } else {
    await sql`create trigger audit_log_no_update before update on audit_log begin select raise(abort, 'audit_log is append-only: UPDATE refused'); end`.execute(
      db,
    );
    await sql`create trigger audit_log_no_delete before delete on audit_log begin select raise(abort, 'audit_log is append-only: DELETE refused'); end`.execute(
      db,
    );
    await sql`create trigger audit_head_no_delete before delete on audit_head begin select raise(abort, 'audit_head is never removed: DELETE refused'); end`.execute(
      db,
    );
    await sql`
      create trigger audit_head_forward before update on audit_head
      when new.id <> old.id or new.seq < old.seq or new.legacy_until <> old.legacy_until
      begin select raise(abort, 'audit_head only moves forward'); end`.execute(db);
  }
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
