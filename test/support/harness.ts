/**
 * Test harness: real databases (a temporary SQLite file; PostgreSQL in a
 * schema of its own when SLS_TEST_DATABASE_URL is set), the real services
 * and HTTP app, and a clock the tests move instead of sleeping.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import { TestClock } from '../../src/clock.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createServices, type ServiceOptions, type Services } from '../../src/services.js';
import { buildApp, type AppOptions } from '../../src/http/app.js';
import { generateOcra, parseOcraSuite } from '../../src/crypto/ocra.js';
import type { CardFile } from '../../src/devices/devices.js';
import type { User } from '../../src/identity/users.js';
import type { Store } from '../../src/store/database.js';
import type { Role } from '../../src/store/schema.js';
import { postgresUrl } from './environment.js';
import { checkResponsesAgainstOpenApi } from './openapi-check.js';

export interface TestDatabase {
  name: 'sqlite' | 'postgres';
  url: string;
  dataDir: string;
  drop(): Promise<void>;
}

export async function sqliteDatabase(): Promise<TestDatabase> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sls-test-'));
  return {
    name: 'sqlite',
    url: `sqlite:${join(dataDir, 'sls.db')}`,
    dataDir,
    drop: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

/** A fresh schema on the test PostgreSQL server, selected through the connection's search_path. */
export async function postgresDatabase(baseUrl: string): Promise<TestDatabase> {
  const schema = `sls_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const dataDir = mkdtempSync(join(tmpdir(), 'sls-test-'));
  return {
    name: 'postgres',
    url: url.toString(),
    dataDir,
    drop: async () => {
      const client = new pg.Client({ connectionString: baseUrl });
      await client.connect();
      await client.query(`drop schema ${schema} cascade`);
      await client.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The tables of the test's own database (PostgreSQL: its schema), by a query that reads no other schema's rows:
 * Kysely's introspection reads every schema of the database, and fails when another test file drops its
 * schema meanwhile (the test files run two at a time).
 */
export async function tablesOf(store: Store): Promise<string[]> {
  const query =
    store.dialect === 'postgres'
      ? sql<{ name: string }>`select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = current_schema() and c.relkind in ('r', 'p') and c.relname not like 'kysely_%'`
      : sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like 'kysely_%'`;
  return (await query.execute(store.db)).rows.map((row) => row.name).sort();
}

/** The databases every conformance suite runs on: SQLite always, PostgreSQL when configured. */
export const DATABASES: ('sqlite' | 'postgres')[] = postgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];

export function openTestDatabase(name: 'sqlite' | 'postgres'): Promise<TestDatabase> {
  return name === 'sqlite' ? sqliteDatabase() : postgresDatabase(postgresUrl!);
}

export const TEST_MASTER_KEY = randomBytes(32).toString('hex');

/** X5: the throttle is off in the tests of other rules (they log in many times from one address); its own tests set limits. */
const NO_LIMITS = Object.fromEntries(['LOGIN', 'ANSWER', 'SEND', 'ACTIVATION', 'HELPDESK', 'ADMIN', 'INTEGRATION'].map((kind) => [`SLS_LIMIT_${kind}`, 'off']));

export function testConfig(database: TestDatabase, overrides: Partial<Config> = {}): Config {
  const config = loadConfig(
    { SLS_MASTER_KEY: TEST_MASTER_KEY, SLS_LOG_LEVEL: 'silent', SLS_DATA_DIR: database.dataDir, SLS_OUTBOX_PAGE: 'on', ...NO_LIMITS },
    { databaseUrl: database.url },
  );
  return { ...config, ...overrides };
}

export interface Harness {
  database: TestDatabase;
  clock: TestClock;
  services: Services;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * What a harness passes to the composition root besides its clock: device kinds of the test's own (issue 12 item 6);
 * and to the app: its logger (none unless a test reads the log lines, X6).
 */
export type HarnessOptions = Pick<ServiceOptions, 'deviceKinds'> & { logger?: AppOptions['logger'] };

export async function startHarness(name: 'sqlite' | 'postgres' = 'sqlite', overrides: Partial<Config> = {}, options: HarnessOptions = {}): Promise<Harness> {
  const database = await openTestDatabase(name);
  const clock = new TestClock();
  const { logger = false, ...serviceOptions } = options;
  const services = await createServices(testConfig(database, overrides), { ...serviceOptions, clock, warn: () => undefined });
  const app = await buildApp(services, { logger });
  // I2: every answer of the API in the tests matches the OpenAPI document
  const openApi = checkResponsesAgainstOpenApi(app);
  await app.ready();
  return {
    database,
    clock,
    services,
    app,
    close: async () => {
      await app.close();
      await services.close();
      await database.drop();
      if (openApi.mismatches.length > 0) throw new Error(`I2: answers the OpenAPI document does not describe:\n${openApi.mismatches.join('\n')}`);
    },
  };
}

export const PASSWORD = 'correct horse battery staple';

let counter = 0;
export function uniqueUsername(prefix = 'user'): string {
  counter += 1;
  return `${prefix}${counter}${randomBytes(3).toString('hex')}`;
}

export interface UserOptions {
  username?: string;
  equityUsd?: number;
  accountNumber?: string;
  role?: Role;
  email?: string;
}

export async function createUser(services: Services, options: UserOptions = {}): Promise<User> {
  const username = options.username ?? uniqueUsername();
  return services.users.create(
    {
      username,
      password: PASSWORD,
      equityUsd: options.equityUsd ?? 2_000_000,
      email: options.email ?? `${username}@example.test`,
      ...(options.accountNumber ? { accountNumber: options.accountNumber } : {}),
      ...(options.role ? { role: options.role } : {}),
    },
    'test',
  );
}

export async function createUserWithCard(services: Services, pin = '1234', options: UserOptions = {}): Promise<{ user: User; card: CardFile }> {
  const user = await createUser(services, options);
  const { card } = await services.devices.addDscPlus({ userId: user.id, pin }, 'test');
  return { user, card };
}

/** The 100 codes of the Security Code Card a sharing's requester holds (S1). */
export const REQUESTER_SCC_CODES = Array.from({ length: 100 }, (_, i) => String((i * 37 + 11) % 1000).padStart(3, '0'));

/**
 * A requester beside an owner (H2): a user of the owner's entity with a
 * Security Code Card of `REQUESTER_SCC_CODES`, in the owner's account and
 * granted the right (A2), or in an account of their own.
 */
export async function createSharingRequester(
  services: Services,
  owner: User,
  where: 'same-account' | 'other-account' = 'same-account',
): Promise<{ requester: User; sccId: string }> {
  const requester = await services.users.create(
    {
      username: `req${owner.username}`,
      password: PASSWORD,
      email: `req${owner.username}@example.test`,
      entityId: owner.entityId,
      ...(where === 'same-account' ? { accountNumber: owner.accountNumber } : {}),
    },
    'test',
  );
  if (where === 'same-account') await services.securityRights.setRight(requester.username, true, 'test');
  const scc = await services.onlineCards.importSecurityCodeCard(requester.id, `SCC-${requester.username}`, REQUESTER_SCC_CODES, 'test');
  return { requester, sccId: scc.id };
}

/** What the card displays for a challenge (the emulator's computation). */
export function cardAnswer(card: CardFile, question: string, pin = card.pin): string {
  return generateOcra(parseOcraSuite(card.suite), { key: Buffer.from(card.seed, 'hex'), question, pin });
}

/** A wrong response of the right shape. */
export function wrongAnswer(right: string): string {
  return right.slice(0, -1) + String((Number(right.at(-1)) + 1) % 10);
}
