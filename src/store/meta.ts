/**
 * The `meta` table: one value per key that the database, not a process,
 * holds (the master key's id, the VAPID keys every process pushes with …).
 */
import type { Executor } from './database.js';

/** The value recorded under `key`, or null. */
export async function metaValue(db: Executor, key: string): Promise<string | null> {
  const row = await db.selectFrom('meta').select('value').where('key', '=', key).executeTakeFirst();
  return row?.value ?? null;
}

/**
 * X4: records `value` under `key` unless a value is there already, and
 * returns the one kept: of several processes starting at once, the first
 * insert wins and every one reads it.
 */
export async function keepFirstMeta(db: Executor, key: string, value: string): Promise<string> {
  await db
    .insertInto('meta')
    .values({ key, value })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  return (await metaValue(db, key)) ?? value;
}
