import { Migrator, type Migration, type MigrationProvider } from 'kysely';
import { SlsError } from '../errors.js';
import type { Store } from './database.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_helpdesk.js';
import * as m0003 from './migrations/0003_code_cards.js';
import * as m0004 from './migrations/0004_device_requests.js';

/** Migrations are compiled in, so they run the same from the sources and from dist/. */
const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_helpdesk': m0002,
  '0003_code_cards': m0003,
  '0004_device_requests': m0004,
};

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/**
 * Brings the schema up to date. Safe when several processes start at once:
 * the migrator takes a lock (a lock table on SQLite, an advisory lock on PostgreSQL).
 */
export async function migrateToLatest(store: Store): Promise<string[]> {
  const migrator = new Migrator({ db: store.db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    throw new SlsError('INVALID_CONFIG', { setting: 'database', reason: 'migration failed' }, String(error));
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
