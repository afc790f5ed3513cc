/**
 * The repository conformance suite: the same tests on SQLite and PostgreSQL
 * (GUIDE lesson 8).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { DAY, HOUR, MINUTE } from '../src/clock.js';
import { createServices } from '../src/services.js';
import {
  DATABASES,
  PASSWORD,
  createUser,
  createUserWithCard,
  openTestDatabase,
  startHarness,
  testConfig,
  uniqueUsername,
  type Harness,
} from './support/harness.js';
import { asAttacker } from './support/audit.js';
import { parsePskc } from '../src/devices/dscplus/pskc.js';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { insertRow, prepared } from '../src/store/prepared.js';
import { isDatabaseUnavailable, openStore } from '../src/store/database.js';
import { migrateToLatest } from '../src/store/migrate.js';
import type { DeviceState } from '../src/store/schema.js';
import { FALLBACK_PAGES } from '../src/store/checkpoints.js';

describe.each(DATABASES)('repositories on %s', (dbName) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dbName);
  });
  afterAll(async () => {
    await h.close();
  });

  describe('identity (A1-A4, A6)', () => {
    it('A1/A2: a new user gets an entity and an account of which it is the primary user', async () => {
      const user = await createUser(h.services, { equityUsd: 1_500_000 });
      expect(user.canChangeSecurity).toBe(true);
      const account = await h.services.users.account(user.accountId);
      expect(account.primaryUserId).toBe(user.id);
      expect(account.equityUsd).toBe(1_500_000);
    });

    it('A1/A2: a second username in the same account shares the entity and is not primary', async () => {
      const first = await createUser(h.services, { accountNumber: `U${randomBytes(3).toString('hex').toUpperCase()}` });
      const second = await createUser(h.services, { accountNumber: first.accountNumber });
      expect(second.entityId).toBe(first.entityId);
      expect(second.accountId).toBe(first.accountId);
      expect(second.canChangeSecurity).toBe(false);
    });

    it('A3: usernames are unique, lower case, letters and digits', async () => {
      const user = await createUser(h.services);
      await expect(createUser(h.services, { username: user.username })).rejects.toMatchObject({ code: 'USERNAME_TAKEN' });
      await expect(createUser(h.services, { username: 'Alice' })).rejects.toMatchObject({ code: 'USERNAME_NOT_LOWERCASE' });
      await expect(createUser(h.services, { username: 'al ice' })).rejects.toMatchObject({ code: 'BAD_CHARACTER' });
      await expect(createUser(h.services, { username: 'al.ice' })).rejects.toMatchObject({ code: 'BAD_CHARACTER' });
    });

    it('A4: passwords are stored as argon2id hashes and checked against common passwords', async () => {
      const user = await createUser(h.services);
      const hash = await h.services.users.passwordHash(user.id);
      expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      expect(hash).not.toContain(PASSWORD);
      const create = (password: string) => h.services.users.create({ username: uniqueUsername(), password }, 'test');
      await expect(create('short')).rejects.toMatchObject({ code: 'WEAK_PASSWORD', params: { reason: 'too_short' } });
      await expect(create('password1')).rejects.toMatchObject({ code: 'WEAK_PASSWORD', params: { reason: 'common' } });
      await expect(create('qwertyuiop')).rejects.toMatchObject({ code: 'WEAK_PASSWORD', params: { reason: 'common' } });
      await expect(create('no composition rules here')).resolves.toBeDefined();
    });

    it('A6: account equity can be changed, and is audited', async () => {
      const user = await createUser(h.services, { equityUsd: 10 });
      const account = await h.services.users.setEquity(user.accountNumber, 1_000_000.5, 'test');
      expect(account.equityUsd).toBe(1_000_000.5);
      await expect(h.services.users.setEquity('NOPE0000', 1, 'test')).rejects.toMatchObject({ code: 'ACCOUNT_NOT_FOUND' });
      const entries = await h.services.audit.list({ limit: 5 });
      expect(entries[0]).toMatchObject({ event: 'account.equity_changed', data: { account: user.accountNumber } });
    });
  });

  describe('devices (D3, D5, C8)', () => {
    it('D5: card secrets are encrypted at rest, bound to their row', async () => {
      const { card } = await createUserWithCard(h.services);
      const row = await h.services.store.db.selectFrom('devices').selectAll().where('serial', '=', card.serial).executeTakeFirstOrThrow();
      expect(row.secret_enc).toMatch(/^v1\./);
      expect(row.secret_enc).not.toContain(card.seed);
      // a sealed secret moved onto another row does not open
      expect(() => h.services.box.open(row.secret_enc!, 'device:dev_other')).toThrow();
      expect(h.services.box.openJson<{ seed: string }>(row.secret_enc!, `device:${row.id}`).seed).toBe(card.seed);
    });

    it('C8: a PSKC batch enters the stock once, and a stock card is issued with its seed', async () => {
      const xml = readFileSync(new URL('./fixtures/pskc/batch-plain.xml', import.meta.url), 'utf8');
      const keys = parsePskc(xml);
      const imported = await h.services.devices.importStock(keys, 'test', 'batch-plain');
      expect(imported.map((d) => d.state)).toEqual(['stock', 'stock', 'stock']);
      await expect(h.services.devices.importStock(keys, 'test', 'again')).rejects.toMatchObject({ code: 'SERIAL_TAKEN' });
      expect((await h.services.devices.listStock()).length).toBe(3);

      const user = await createUser(h.services);
      const { device, card } = await h.services.devices.addDscPlus({ userId: user.id, pin: '4321', serial: 'DSC0000002' }, 'test');
      expect(device).toMatchObject({ state: 'active', serial: 'DSC0000002', userId: user.id });
      expect(card.seed).toBe(keys[1]!.secret.toString('hex'));
      await expect(h.services.devices.addDscPlus({ userId: user.id, pin: '4321', serial: 'DSC0000002' }, 'test')).rejects.toMatchObject({
        code: 'SERIAL_TAKEN',
      });
      expect((await h.services.devices.listStock()).map((d) => d.serial)).toEqual(['DSC0000001', 'DSC0000003']);
    });

    it('D2: devices rank DSC+ > SCC > SMS > temporary ones; with none used yet, the strongest is offered first', async () => {
      const strength = (type: string) => h.services.deviceKind(type).strength;
      expect(strength('dscplus')).toBeGreaterThan(strength('security_key'));
      expect(strength('security_key')).toBeGreaterThan(strength('mobile'));
      expect(strength('mobile')).toBeGreaterThan(strength('scc'));
      expect(strength('scc')).toBeGreaterThan(strength('sms'));
      expect(strength('sms')).toBeGreaterThan(strength('online_card'));
      expect(strength('online_card')).toBeGreaterThan(strength('temp_passcode'));
      const user = await createUser(h.services);
      const codes = Array.from({ length: 100 }, (_, i) => String(i).padStart(3, '0'));
      const scc = await h.services.onlineCards.importSecurityCodeCard(user.id, `SCC-${randomBytes(3).toString('hex')}`, codes, 'test');
      const { device: dsc } = await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
      expect((await h.services.devices.activeForUser(user.id, null)).map((d) => d.id)).toEqual([dsc.id, scc.id]);
      // L6: the last used comes first whatever its strength
      expect((await h.services.devices.activeForUser(user.id, scc.id)).map((d) => d.id)).toEqual([scc.id, dsc.id]);
    });

    it('C2: the soft PIN is 4 digits', async () => {
      const user = await createUser(h.services);
      for (const pin of ['123', '12345', 'abcd', '12 3']) {
        await expect(h.services.devices.addDscPlus({ userId: user.id, pin }, 'test')).rejects.toMatchObject({ code: 'INVALID_PIN' });
      }
      expect(await h.services.devices.listForUser(user.id)).toEqual([]);
    });

    it('D3: state changes are recorded and audited', async () => {
      const { user } = await createUserWithCard(h.services);
      const [device] = await h.services.devices.listForUser(user.id);
      const suspended = await h.services.devices.setState(device!.id, 'suspended', 'test', 'left at home');
      expect(suspended.state).toBe('suspended');
      const [entry] = await h.services.audit.list({ userId: user.id, limit: 1 });
      expect(entry).toMatchObject({ event: 'device.state_changed', data: { from: 'active', to: 'suspended', reason: 'left at home' } });
    });

    it('L4: an accepted answer is consumed once, even by concurrent writers', async () => {
      const { user } = await createUserWithCard(h.services);
      const [device] = await h.services.devices.listForUser(user.id);
      const results = await Promise.all(
        Array.from({ length: 12 }, () => h.services.store.transaction((trx) => h.services.devices.consume(trx, device!.id, ['q:123456']))),
      );
      expect(results.filter(Boolean).length).toBe(1);
      expect(await h.services.devices.wasUsed(device!.id, 'q:123456')).toBe(true);
      expect(await h.services.devices.wasUsed(device!.id, 'q:654321')).toBe(false);
    });
  });

  describe('D6: a credential id registered once (migration 0022)', () => {
    it('D6, X7: the migration keeps every key, gives each credential id to one key (not removed, else the first) and refuses a second insert of it', async () => {
      const database = await openTestDatabase(dbName);
      const store = openStore(database.url);
      try {
        await migrateToLatest(store, '0021_sharing_requester_index');
        const key = (id: string, credentialId: string, state: DeviceState, at: number) => ({
          id,
          user_id: null,
          type: 'security_key',
          state,
          params: JSON.stringify({ credentialId }),
          created_at: at,
          state_changed_at: at,
        });
        // registered before the check: the same id by two users (the first since removed), and a key of its own
        await store.db
          .insertInto('devices')
          .values([
            key('dev_a', 'shared', 'revoked', 1),
            key('dev_b', 'shared', 'active', 2),
            key('dev_c', 'shared', 'active', 3),
            key('dev_d', 'own', 'active', 4),
          ])
          .execute();
        await migrateToLatest(store);
        const rows = await store.db.selectFrom('devices').select(['id', 'state', 'credential_id']).orderBy('id').execute();
        expect(rows).toEqual([
          { id: 'dev_a', state: 'revoked', credential_id: null },
          { id: 'dev_b', state: 'active', credential_id: 'shared' },
          { id: 'dev_c', state: 'active', credential_id: null },
          { id: 'dev_d', state: 'active', credential_id: 'own' },
        ]);
        await expect(
          store.db.updateTable('devices').set({ credential_id: 'own' }).where('id', '=', 'dev_c').execute(),
          'a second key with the id',
        ).rejects.toThrow();
      } finally {
        await store.close();
        await database.drop();
      }
    });
  });

  describe('statements built once (issue 15)', () => {
    it('X4: a prepared statement gives what the query builder gives, each time with its own values, and refuses a placeholder that is not a value', async () => {
      const db = h.services.store.db;
      const a = await createUser(h.services);
      const b = await createUser(h.services);
      const byUsername = prepared<{ username: string }>()((db, p) => db.selectFrom('users').select(['id', 'username']).where('username', '=', p.username));
      for (const user of [a, b, a]) {
        expect(await byUsername.first(db, { username: user.username })).toEqual(
          await db.selectFrom('users').select(['id', 'username']).where('username', '=', user.username).executeTakeFirst(),
        );
      }
      expect(await byUsername.first(db, { username: 'nobody' })).toBeUndefined();
      // a placeholder where no value goes (a limit is inlined nowhere, but a column name would be)
      const misplaced = prepared<{ column: string }>()((db, p) => db.selectFrom('users').select(p.column as 'id'));
      await expect(misplaced.first(db, { column: 'id' })).rejects.toThrow(/not a parameter/);
      // one-row inserts: a statement per set of columns
      await h.services.store.transaction(async (trx) => {
        await insertRow(trx, 'lockouts', { username: `x${a.username}`, locked_until: null, reset_at: 7 });
      });
      expect(await db.selectFrom('lockouts').select('reset_at').where('username', '=', `x${a.username}`).executeTakeFirst()).toEqual({ reset_at: 7 });
    });
  });

  describe('lockout (L3)', () => {
    it('L3: 10 consecutive failures within 24 hours lock until 24 hours after the last one', async () => {
      const username = uniqueUsername();
      for (let i = 0; i < 9; i++) {
        await h.services.lockout.fail(await h.services.lockout.begin(username));
        h.clock.advance(HOUR);
      }
      const tenth = await h.services.lockout.fail(await h.services.lockout.begin(username));
      expect(tenth).toMatchObject({ locked: true, failures: 10, lockedUntil: h.clock.now() + DAY });
      await expect(h.services.lockout.begin(username)).rejects.toMatchObject({ code: 'LOCKED' });
      h.clock.advance(DAY - MINUTE);
      await expect(h.services.lockout.begin(username)).rejects.toMatchObject({ code: 'LOCKED' });
      h.clock.advance(MINUTE);
      const attempt = await h.services.lockout.begin(username);
      await h.services.lockout.release(attempt);
      expect((await h.services.lockout.status(username)).locked).toBe(false);
    });

    it('L3: failures spread over more than 24 hours do not lock', async () => {
      const username = uniqueUsername();
      for (let i = 0; i < 5; i++) await h.services.lockout.fail(await h.services.lockout.begin(username));
      h.clock.advance(23 * HOUR);
      for (let i = 0; i < 4; i++) await h.services.lockout.fail(await h.services.lockout.begin(username));
      h.clock.advance(2 * HOUR);
      const outcome = await h.services.lockout.fail(await h.services.lockout.begin(username));
      expect(outcome).toMatchObject({ locked: false, failures: 5 });
    });

    it('L3: a reset (a complete login or an unlock) starts the count again', async () => {
      const username = uniqueUsername();
      for (let i = 0; i < 9; i++) await h.services.lockout.fail(await h.services.lockout.begin(username));
      await h.services.lockout.reset(username);
      h.clock.advance(1);
      const outcome = await h.services.lockout.fail(await h.services.lockout.begin(username));
      expect(outcome).toMatchObject({ locked: false, failures: 1 });
    });

    it('L3: concurrent attempts never check more than 10 guesses', async () => {
      const username = uniqueUsername();
      const settled = await Promise.allSettled(
        Array.from({ length: 40 }, async () => {
          const attempt = await h.services.lockout.begin(username);
          await h.services.lockout.fail(attempt);
        }),
      );
      const admitted = settled.filter((s) => s.status === 'fulfilled').length;
      expect(admitted).toBe(10);
      // refused while the admitted ones were in flight (try again), or once they had failed (locked)
      for (const s of settled) {
        if (s.status === 'rejected') expect(['LOCKED', 'TOO_MANY_ATTEMPTS']).toContain(s.reason.code);
      }
      expect(await h.services.lockout.status(username)).toMatchObject({ locked: true, failures: 10 });
    });
  });

  describe('audit log (X1)', () => {
    it('X1: entries are hash-chained; concurrent appends keep the chain intact', async () => {
      await Promise.all(Array.from({ length: 20 }, (_, i) => h.services.audit.record({ event: 'session.ended', data: { i } })));
      const result = await h.services.audit.verify();
      expect(result.ok).toBe(true);
    });

    it('X1: an altered entry is detected (by someone who first dropped the append-only triggers)', async () => {
      await h.services.audit.record({ event: 'session.ended', username: 'victim', data: { reason: 'logout' } });
      const [last] = await h.services.audit.list({ limit: 1 });
      await asAttacker(h.services.store, () => sql`update audit_log set data = '{"reason":"tampered"}' where seq = ${last!.seq}`.execute(h.services.store.db));
      const result = await h.services.audit.verify();
      expect(result).toMatchObject({ ok: false, brokenAt: last!.seq, reason: 'entry_altered' });
      await asAttacker(h.services.store, () => sql`update audit_log set data = '{"reason":"logout"}' where seq = ${last!.seq}`.execute(h.services.store.db));
      expect((await h.services.audit.verify()).ok).toBe(true);
    });

    it('X1: a removed entry is detected (by someone who first dropped the append-only triggers)', async () => {
      await h.services.audit.record({ event: 'session.ended', data: { n: 1 } }, { event: 'session.ended', data: { n: 2 } });
      const [last] = await h.services.audit.list({ limit: 2 });
      const removed = last!.seq - 1;
      const row = await h.services.store.db.selectFrom('audit_log').selectAll().where('seq', '=', removed).executeTakeFirstOrThrow();
      await asAttacker(h.services.store, () => h.services.store.db.deleteFrom('audit_log').where('seq', '=', removed).execute());
      expect(await h.services.audit.verify()).toMatchObject({ ok: false, brokenAt: removed, reason: 'entries_missing' });
      await h.services.store.db.insertInto('audit_log').values(row).execute();
      expect((await h.services.audit.verify()).ok).toBe(true);
    });

    it('X1: entries can be queried by user and time', async () => {
      const user = await createUser(h.services);
      h.clock.advance(1);
      const since = h.clock.now();
      await h.services.audit.record({ event: 'session.ended', userId: user.id, data: {} });
      const byUsername = await h.services.audit.list({ username: user.username, since });
      expect(byUsername.map((e) => e.event)).toEqual(['session.ended']);
      expect(await h.services.audit.list({ userId: user.id, until: since })).toHaveLength(1); // user.created
    });
  });

  describe('configuration', () => {
    it('D5: refuses to start with a master key other than the database was set up with', async () => {
      const config = { ...testConfig(h.database), masterKey: randomBytes(32).toString('base64') };
      await expect(createServices(config, { warn: () => undefined })).rejects.toMatchObject({ code: 'MASTER_KEY_MISMATCH' });
    });

    it('migrations are idempotent: a second start on the same database works', async () => {
      const again = await createServices(testConfig(h.database), { warn: () => undefined });
      expect(await again.users.findByUsername('nobody')).toBeNull();
      await again.close();
    });
  });
});

// PostgreSQL only: several schemas of one database (on SQLite a database is a file of its own)
if (DATABASES.includes('postgres')) {
  describe('two schemas on one PostgreSQL database (X4)', () => {
    it('X4: a schema of its own migrates even when another schema of the database already holds migrated tables', async () => {
      const [first, second] = [await openTestDatabase('postgres'), await openTestDatabase('postgres')];
      try {
        for (const database of [first, second]) {
          // the second must not take the first's bookkeeping tables for its own
          const services = await createServices(testConfig(database), { warn: () => undefined });
          expect(await services.users.findByUsername('nobody')).toBeNull();
          await services.close();
        }
      } finally {
        await first.drop();
        await second.drop();
      }
    });
  });

  describe('statements kept prepared on each PostgreSQL connection (issue 15)', () => {
    it('X4, X6: a schema changed under a kept statement (a newer process migrating) costs a retry outside a transaction, a 503 inside one, and never a wrong answer; so does a connection that lost it', async () => {
      const database = await openTestDatabase('postgres');
      const setup = openStore(database.url);
      const [outside, inside, forgetful] = [openStore(database.url), openStore(database.url), openStore(database.url)];
      try {
        await sql`create table kept_probe (id integer primary key, a text)`.execute(setup.db);
        await sql`insert into kept_probe values (1, 'one')`.execute(setup.db);
        type Probe = { kept_probe: { id: number; a: string } };
        const probe = prepared<{ id: number }>()((db, p) => (db as unknown as Kysely<Probe>).selectFrom('kept_probe').selectAll().where('id', '=', p.id));
        // each store's one connection prepares the statement; then another process adds a column
        expect(await probe.first(outside.db, { id: 1 })).toEqual({ id: 1, a: 'one' });
        expect(await probe.first(inside.db, { id: 1 })).toEqual({ id: 1, a: 'one' });
        await sql`alter table kept_probe add column b text default 'new'`.execute(setup.db);
        // outside a transaction the statement runs again at once, unnamed, and sees the new column
        expect(await probe.first(outside.db, { id: 1 })).toEqual({ id: 1, a: 'one', b: 'new' });
        // inside one the transaction has failed: the database unavailable a moment (503 and Retry-After), and the next try works
        const failed = await inside.transaction((trx) => probe.first(trx, { id: 1 })).catch((error: unknown) => error);
        expect(isDatabaseUnavailable(failed)).toBe(true);
        expect(await inside.transaction((trx) => probe.first(trx, { id: 1 }))).toEqual({ id: 1, a: 'one', b: 'new' });
        // a server connection that no longer holds the statement (a pooler in transaction mode): the same
        expect(await probe.first(forgetful.db, { id: 1 })).toEqual({ id: 1, a: 'one', b: 'new' });
        await sql`deallocate all`.execute(forgetful.db);
        expect(await probe.first(forgetful.db, { id: 1 })).toEqual({ id: 1, a: 'one', b: 'new' });
      } finally {
        await Promise.all([setup, outside, inside, forgetful].map((store) => store.close()));
        await database.drop();
      }
    });
  });
}

describe("SQLite's log copied into the file in the background (issue 15)", () => {
  it('X4: the log is checkpointed by a thread of its own, not by a commit, and a checkpoint wakes no waiter', async () => {
    const database = await openTestDatabase('sqlite');
    const file = database.url.slice('sqlite:'.length);
    const store = openStore(database.url);
    try {
      // the server's connection checkpoints only past a threshold far above what this test writes
      const [{ wal_autocheckpoint: threshold }] = (await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(store.db)).rows as [
        { wal_autocheckpoint: number },
      ];
      expect(threshold).toBe(FALLBACK_PAGES);
      await sql`create table probe (id integer primary key, a text)`.execute(store.db);
      for (let i = 0; i < 50; i++) await store.transaction((trx) => sql`insert into probe (a) values (${'x'.repeat(500)})`.execute(trx));
      const dataVersion = async () => (await sql<{ data_version: number }>`pragma data_version`.execute(store.db)).rows[0]!.data_version;
      const before = await dataVersion();
      // the file alone (without its log) gets the rows: read from a copy of it, until the thread has copied them (at most 10 s)
      const copy = join(database.dataDir, 'copy.db');
      let rows = 0;
      for (let tries = 0; tries < 100 && rows < 50; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        try {
          copyFileSync(file, copy);
          const reader = new BetterSqlite3(copy, { readonly: true });
          rows = (reader.prepare('select count(*) as n from probe').get() as { n: number }).n;
          reader.close();
        } catch {
          rows = 0; // the table is not in the file yet
        }
      }
      expect(rows).toBe(50);
      // a checkpoint is no write by another connection: the long polls' watch (push/signals.ts) is not woken by it
      expect(await dataVersion()).toBe(before);
    } finally {
      await store.close();
      await database.drop();
    }
  });
});
