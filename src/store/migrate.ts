import { Migrator, sql, type Migration, type MigrationProvider } from 'kysely';
import { SlsError } from '../errors.js';
import type { Store } from './database.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_helpdesk.js';
import * as m0003 from './migrations/0003_code_cards.js';
import * as m0004 from './migrations/0004_device_requests.js';
import * as m0005 from './migrations/0005_password_reset.js';
import * as m0006 from './migrations/0006_mobile_numbers.js';
import * as m0007 from './migrations/0007_mobile_authenticator.js';
import * as m0008 from './migrations/0008_second_factor_paths.js';
import * as m0009 from './migrations/0009_audit_head.js';
import * as m0011 from './migrations/0011_outbox_worker.js';
import * as m0012 from './migrations/0012_rate_counters.js';
import * as m0013 from './migrations/0013_withdrawals.js';
import * as m0016 from './migrations/0016_user_language.js';
import * as m0017 from './migrations/0017_device_sharing.js';
import * as m0018 from './migrations/0018_opt_out.js';
import * as m0019 from './migrations/0019_oidc.js';
import * as m0020 from './migrations/0020_oidc_device_grant.js';
import * as m0021 from './migrations/0021_sharing_requester_index.js';
import * as m0022 from './migrations/0022_security_key_credentials.js';
import * as m0023 from './migrations/0023_oidc_grant_sessions.js';
import * as m0024 from './migrations/0024_oidc_device_grant_sessions.js';
import * as m0027 from './migrations/0027_flow_allowances.js';
import * as m0030 from './migrations/0030_outbox_sealed_codes.js';
import * as m0031 from './migrations/0031_helpdesk_handovers.js';

/** Migrations are compiled in, so they run the same from the sources and from dist/. */
const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_helpdesk': m0002,
  '0003_code_cards': m0003,
  '0004_device_requests': m0004,
  '0005_password_reset': m0005,
  '0006_mobile_numbers': m0006,
  '0007_mobile_authenticator': m0007,
  '0008_second_factor_paths': m0008,
  '0009_audit_head': m0009,
  '0011_outbox_worker': m0011,
  '0012_rate_counters': m0012,
  '0013_withdrawals': m0013,
  '0016_user_language': m0016,
  '0017_device_sharing': m0017,
  '0018_opt_out': m0018,
  '0019_oidc': m0019,
  '0020_oidc_device_grant': m0020,
  '0021_sharing_requester_index': m0021,
  '0022_security_key_credentials': m0022,
  '0023_oidc_grant_sessions': m0023,
  '0024_oidc_device_grant_sessions': m0024,
  '0027_flow_allowances': m0027,
  '0030_outbox_sealed_codes': m0030,
  '0031_helpdesk_handovers': m0031,
};

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

const ATTEMPTS = 10;

/**
 * Brings the schema up to date. Safe when several processes start at once on
 * a new database: the migrator takes a lock once its own tables exist, and
 * creating those tables can collide (a busy SQLite file, a duplicate
 * PostgreSQL catalog entry); then the loser waits a moment and tries again,
 * finding the work done. `upTo`: stop after that migration (a test of a
 * later migration on the data of an earlier schema).
 */
export async function migrateToLatest(store: Store, upTo?: string): Promise<string[]> {
  const state = await migrationState(store);
  // X4: a database a newer version migrated is not rewound or half-used
  if (state.unknown.length > 0) throw new SlsError('DATABASE_SCHEMA_NEWER', { migration: state.unknown[0]! });
  // X4: an up-to-date database (every start but the first) needs no migrator, nor its lock
  if (!upTo && state.pending.length === 0) return [];
  const migrator = new Migrator({ db: store.db, provider, migrationTableSchema: await currentSchema(store) });
  let lastError: unknown;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const { error, results } = upTo ? await migrator.migrateTo(upTo) : await migrator.migrateToLatest();
    if (!error) return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    lastError = error;
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 400));
  }
  throw new SlsError('INVALID_CONFIG', { setting: 'database', reason: 'migration failed' }, String(lastError));
}

/**
 * PostgreSQL: the schema the connection creates tables in. The migrator must be
 * told it: otherwise it looks for its bookkeeping tables in every schema of the
 * database, takes another schema's for its own and never creates them here.
 */
async function currentSchema(store: Store): Promise<string | undefined> {
  if (store.dialect !== 'postgres') return undefined;
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(store.db);
  return rows[0]?.schema;
}

export interface MigrationState {
  /** Migrations recorded in the database. */
  applied: string[];
  /** Migrations of this version not yet applied. */
  pending: string[];
  /** Migrations the database has that this version does not know (a newer version ran). */
  unknown: string[];
}

/** What the database's schema is, next to this version's migrations (readiness, start; X4, X6). */
export async function migrationState(store: Store): Promise<MigrationState> {
  let applied: string[];
  try {
    const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(store.db);
    applied = rows.map((row) => row.name);
  } catch (error) {
    // a new database: no migration recorded yet
    const e = error as { code?: string; message?: string };
    if (e.code !== '42P01' && !/no such table/.test(e.message ?? '')) throw error;
    applied = [];
  }
  const known = Object.keys(MIGRATIONS);
  return {
    applied,
    pending: known.filter((name) => !applied.includes(name)),
    unknown: applied.filter((name) => !known.includes(name)),
  };
}
