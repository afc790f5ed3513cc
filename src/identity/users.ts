/**
 * Entities, accounts and users (A1–A3, A6). An entity (a person or an
 * organisation) may hold several usernames in one or several accounts; each
 * account has a primary user who may change security settings (A2).
 */
import { randomInt } from 'node:crypto';
import { PostgresAdapter } from 'kysely';
import { constantTimeEqual } from '../crypto/constant-time.js';
import type { Clock } from '../clock.js';
import { SlsError } from '../errors.js';
import { assertPasswordAcceptable, hashPassword } from '../crypto/password.js';
import { newId } from '../crypto/random.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Executor, Store, Tx } from '../store/database.js';
import { prepared } from '../store/prepared.js';
import type { Role } from '../store/schema.js';
import { assertNewUsername } from './username.js';
import { isLanguage } from '../i18n/i18n.js';
import { isTimeZone } from '../config.js';
import { hasIdentification, identificationContext, normalizedIdentification, type Identification } from './entities.js';

export type { Identification } from './entities.js';

export interface User {
  id: string;
  username: string;
  entityId: string;
  accountId: string;
  accountNumber: string;
  email: string | null;
  canChangeSecurity: boolean;
  status: 'active' | 'disabled';
  lastDeviceId: string | null;
  createdAt: number;
  role: Role;
  /** A5: the user logged in with a one-time password and must choose a new one. */
  passwordMustChange: boolean;
}

/** A5: when a one-time password from client services stops working, and when it opened its one session. */
export interface OneTimePassword {
  expiresAt: number | null;
  usedAt: number | null;
}

export interface Account {
  id: string;
  accountNumber: string;
  entityId: string;
  equityUsd: number;
  primaryUserId: string | null;
}

export interface CreateUserInput {
  username: string;
  password: string;
  /** Existing account to join, or the number of a new one; generated when absent. */
  accountNumber?: string;
  /** A1: the entity the user belongs to (`sls entity create`); a new account is the entity's, an existing one must be. */
  entityId?: string;
  equityUsd?: number;
  email?: string;
  entityName?: string;
  identification?: Identification;
  /** Staff are users with a role; everyone else is a client. */
  role?: Role;
}

/** N1: a language of ours and an IANA time zone, or null for the server's; else VALIDATION_ERROR naming the field. */
export function assertNoticePreferences(preferences: { language: string | null; timeZone: string | null }): void {
  const { language, timeZone } = preferences;
  if (language !== null && !isLanguage(language)) throw new SlsError('VALIDATION_ERROR', { field: 'language', reason: 'notice_language' });
  if (timeZone !== null && !isTimeZone(timeZone)) throw new SlsError('VALIDATION_ERROR', { field: 'timeZone', reason: 'notice_time_zone' });
}

export const ROLES: readonly Role[] = ['client', 'client_services', 'compliance', 'admin'];

export function assertAccountNumber(accountNumber: string): void {
  if (!/^[A-Z0-9]{4,16}$/.test(accountNumber)) {
    throw new SlsError('VALIDATION_ERROR', { field: 'account', reason: 'account_number' });
  }
}

export function assertEquity(equityUsd: number): void {
  if (!Number.isFinite(equityUsd) || equityUsd < 0 || equityUsd > 1e13) {
    throw new SlsError('VALIDATION_ERROR', { field: 'equity', reason: 'equity_amount' });
  }
}

/** A user with the account's number: what `User` is made of. */
function baseQuery(db: Executor) {
  return db
    .selectFrom('users')
    .innerJoin('accounts', 'accounts.id', 'users.account_id')
    .select([
      'users.id',
      'users.username',
      'users.entity_id',
      'users.account_id',
      'accounts.account_number',
      'users.email',
      'users.can_change_security',
      'users.status',
      'users.last_device_id',
      'users.created_at',
      'users.role',
      'users.password_must_change',
    ]);
}

// the statements of every login, built once (issue 15)
const userForLogin = prepared<{ username: string }>()((db, p) =>
  baseQuery(db).select(['users.password_hash', 'users.password_expires_at', 'users.password_used_at']).where('users.username', '=', p.username),
);
const userById = prepared<{ id: string }>()((db, p) => baseQuery(db).where('users.id', '=', p.id));
const userByUsername = prepared<{ username: string }>()((db, p) => baseQuery(db).where('users.username', '=', p.username));

/** A4, L8: the user's password hash, in a transaction; on PostgreSQL the row is held against a change until it ends. */
const passwordHashHeld = prepared<{ userId: string }>()((db, p) => {
  const query = db.selectFrom('users').select('password_hash').where('id', '=', p.userId);
  return db.getExecutor().adapter instanceof PostgresAdapter ? query.forShare() : query;
});

const loggedIn = prepared<{ userId: string; deviceId: string; at: number }>()((db, p) =>
  db
    .updateTable('users')
    .set((eb) => ({
      last_device_id: p.deviceId,
      password_used_at: eb
        .case()
        .when(eb.and([eb('password_must_change', '=', 1), eb('password_used_at', 'is', null)]))
        .then(eb.val(p.at))
        .else(eb.ref('password_used_at'))
        .end(),
    }))
    .where('id', '=', p.userId)
    // A5: a one-time password that opened a session already opens no other (two logins it started at once: one)
    .where((eb) => eb.or([eb('password_must_change', '=', 0), eb('password_used_at', 'is', null)]))
    .returning('password_must_change'),
);

export class Users {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly box: SecretBox,
    private readonly audit: AuditLog,
    /** A5: how long a one-time password from client services works. */
    private readonly oneTimePasswordTtlMs: number,
  ) {}

  private toUser(row: {
    id: string;
    username: string;
    entity_id: string;
    account_id: string;
    account_number: string;
    email: string | null;
    can_change_security: number;
    status: 'active' | 'disabled';
    last_device_id: string | null;
    created_at: number;
    role: Role;
    password_must_change: number;
  }): User {
    return {
      id: row.id,
      username: row.username,
      entityId: row.entity_id,
      accountId: row.account_id,
      accountNumber: row.account_number,
      email: row.email,
      canChangeSecurity: row.can_change_security === 1,
      status: row.status,
      lastDeviceId: row.last_device_id,
      createdAt: row.created_at,
      role: row.role,
      passwordMustChange: row.password_must_change === 1,
    };
  }

  async findByUsername(username: string): Promise<User | null> {
    const row = await userByUsername.first(this.store.db, { username });
    return row ? this.toUser(row) : null;
  }

  async getByUsername(username: string): Promise<User> {
    const user = await this.findByUsername(username);
    if (!user) throw new SlsError('USER_NOT_FOUND', { username });
    return user;
  }

  /** `db`: a transaction of the caller's that must see its own writes (and, on SQLite, the only connection while it is open). */
  async get(id: string, db: Executor = this.store.db): Promise<User> {
    const row = await userById.first(db, { id });
    if (!row) throw new SlsError('USER_NOT_FOUND', { id });
    return this.toUser(row);
  }

  /** The usernames of these user ids (an id not found is left out): to show who acted, not an id. */
  async usernames(ids: readonly string[]): Promise<Map<string, string>> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return new Map();
    const rows = await this.store.db.selectFrom('users').select(['id', 'username']).where('id', 'in', unique).execute();
    return new Map(rows.map((row) => [row.id, row.username]));
  }

  /**
   * Who an audit actor is, for people: `user:usr_…` and `staff:usr_…` become
   * the username (staff marked as such); `cli` and `system` stay.
   */
  async actorNames(actors: readonly (string | null)[]): Promise<(actor: string | null) => string> {
    const ids = actors.flatMap((actor) => (actor && /^(user|staff):/.test(actor) ? [actor.slice(actor.indexOf(':') + 1)] : []));
    const names = await this.usernames(ids);
    return (actor) => {
      if (!actor) return '-';
      const [kind, id] = actor.split(':', 2) as [string, string | undefined];
      const name = id !== undefined ? names.get(id) : undefined;
      if (!name) return actor;
      return kind === 'staff' ? `${name} (staff)` : name;
    };
  }

  /** The stored password hash, for the first factor only. */
  async passwordHash(userId: string): Promise<string> {
    const row = await this.store.db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirstOrThrow();
    return row.password_hash;
  }

  /** The user, the password hash and, for a one-time password, its end and use, in one read, for the first factor (L1, A5). */
  async findForLogin(username: string): Promise<{ user: User; passwordHash: string; oneTime: OneTimePassword | null } | null> {
    const row = await userForLogin.first(this.store.db, { username });
    if (!row) return null;
    const user = this.toUser(row);
    const oneTime = user.passwordMustChange ? { expiresAt: row.password_expires_at, usedAt: row.password_used_at } : null;
    return { user, passwordHash: row.password_hash, oneTime };
  }

  /**
   * A5: the one-time password opened its session (in the transaction that
   * opens it, under the audit log's lock); it opens no other. False when it
   * opened one already: two logins it started at once (on one process or
   * two) both passed the first factor, and only the first may open a session.
   */
  /** A4, L8: whether `hash` is still the user's password hash, read in `trx` (FirstFactor.assertStillCurrent). */
  async passwordIs(trx: Tx, userId: string, hash: string): Promise<boolean> {
    const row = await passwordHashHeld.first(trx, { userId });
    return row !== undefined && constantTimeEqual(row.password_hash, hash);
  }

  async markOneTimePasswordUsed(db: Executor, userId: string, at: number): Promise<boolean> {
    const row = await db
      .updateTable('users')
      .set((eb) => ({
        password_used_at: eb.case().when('password_must_change', '=', 1).then(eb.val(at)).else(eb.ref('password_used_at')).end(),
      }))
      .where('id', '=', userId)
      .where((eb) => eb.or([eb('password_must_change', '=', 0), eb('password_used_at', 'is', null)]))
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * A complete login with a device, in the transaction that opens its
   * session: the device is offered first next time (L6), a one-time
   * password opens this session and no other (A5). One statement, which
   * also says whether the user must choose a new password first; null
   * when the one-time password this login began with opened another
   * session meanwhile (`markOneTimePasswordUsed`): this one opens none.
   */
  async loggedInWith(db: Executor, userId: string, deviceId: string, at: number): Promise<{ passwordMustChange: boolean } | null> {
    const row = await loggedIn.first(db, { userId, deviceId, at });
    if (row) return { passwordMustChange: row.password_must_change === 1 };
    if (await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst()) return null;
    throw new SlsError('USER_NOT_FOUND', { id: userId });
  }

  async account(accountId: string): Promise<Account> {
    const row = await this.store.db.selectFrom('accounts').selectAll().where('id', '=', accountId).executeTakeFirst();
    if (!row) throw new SlsError('ACCOUNT_NOT_FOUND', { id: accountId });
    return {
      id: row.id,
      accountNumber: row.account_number,
      entityId: row.entity_id,
      equityUsd: row.equity_usd_cents / 100,
      primaryUserId: row.primary_user_id,
    };
  }

  async create(input: CreateUserInput, actor: string): Promise<User> {
    assertNewUsername(input.username);
    assertPasswordAcceptable(input.password, input.username);
    if (input.accountNumber !== undefined) assertAccountNumber(input.accountNumber);
    if (input.equityUsd !== undefined) assertEquity(input.equityUsd);
    if (input.role !== undefined && !ROLES.includes(input.role)) {
      throw new SlsError('VALIDATION_ERROR', { field: 'role', reason: 'role', roles: ROLES.join(', ') });
    }
    const passwordHash = await hashPassword(input.password);
    const now = this.clock.now();
    const userId = newId('usr');

    await this.store.serialized('audit_log', async (trx) => {
      if (await trx.selectFrom('users').select('id').where('username', '=', input.username).executeTakeFirst()) {
        throw new SlsError('USERNAME_TAKEN', { username: input.username });
      }
      const accountNumber = input.accountNumber ?? (await this.freeAccountNumber(trx));
      let account = await trx.selectFrom('accounts').selectAll().where('account_number', '=', accountNumber).executeTakeFirst();
      if (account && input.entityId !== undefined && account.entity_id !== input.entityId) {
        throw new SlsError('ACCOUNT_ENTITY_MISMATCH', { account: accountNumber, entity: input.entityId });
      }
      if (!account) {
        const entityId = input.entityId ?? (await this.newEntity(trx, input.entityName ?? input.username, input.identification ?? {}, now));
        if (input.entityId !== undefined) await this.assertEntity(trx, input.entityId);
        const accountId = newId('acc');
        await trx
          .insertInto('accounts')
          .values({
            id: accountId,
            account_number: accountNumber,
            entity_id: entityId,
            equity_usd_cents: Math.round((input.equityUsd ?? 0) * 100),
            primary_user_id: null,
            created_at: now,
          })
          .execute();
        account = await trx.selectFrom('accounts').selectAll().where('id', '=', accountId).executeTakeFirstOrThrow();
      } else if (input.equityUsd !== undefined) {
        await trx
          .updateTable('accounts')
          .set({ equity_usd_cents: Math.round(input.equityUsd * 100) })
          .where('id', '=', account.id)
          .execute();
      }
      // A2: the first user of an account is its primary user
      const isPrimary = account.primary_user_id === null;
      await trx
        .insertInto('users')
        .values({
          id: userId,
          username: input.username,
          entity_id: account.entity_id,
          account_id: account.id,
          password_hash: passwordHash,
          password_changed_at: now,
          email: input.email ?? null,
          can_change_security: isPrimary ? 1 : 0,
          last_device_id: null,
          created_at: now,
          role: input.role ?? 'client',
        })
        .execute();
      if (isPrimary) await trx.updateTable('accounts').set({ primary_user_id: userId }).where('id', '=', account.id).execute();
      await this.audit.append(trx, [
        {
          event: 'user.created',
          actor,
          userId,
          username: input.username,
          data: { account: accountNumber, entityId: account.entity_id, primary: isPrimary, role: input.role ?? 'client' },
        },
      ]);
    });
    return this.get(userId);
  }

  /** An account number no account has yet. */
  private async freeAccountNumber(db: Executor): Promise<string> {
    for (;;) {
      const number = `U${String(randomInt(1_000_000, 10_000_000))}`;
      if (!(await db.selectFrom('accounts').select('id').where('account_number', '=', number).executeTakeFirst())) return number;
    }
  }

  private async assertEntity(db: Executor, entityId: string): Promise<void> {
    const found = /^[A-Za-z0-9_]{1,64}$/.test(entityId) && (await db.selectFrom('entities').select('id').where('id', '=', entityId).executeTakeFirst());
    if (!found) throw new SlsError('ENTITY_NOT_FOUND', { entity: entityId });
  }

  /** The entity of a user created without one (`sls user create` alone): the username as its name; its identification data, if any, sealed. */
  private async newEntity(trx: Tx, name: string, identification: Identification, now: number): Promise<string> {
    const entityId = newId('ent');
    await trx
      .insertInto('entities')
      .values({
        id: entityId,
        kind: 'individual',
        name,
        identification_enc: this.box.sealJson(identification, identificationContext(entityId)),
        identification_digest: hasIdentification(identification) ? this.box.digest(normalizedIdentification(identification), 'identification') : null,
        created_at: now,
      })
      .execute();
    return entityId;
  }

  /**
   * A1, A6: a new account of an entity (`sls account create --entity E`);
   * its first user becomes its primary user (A2). Audited.
   */
  async createAccount(input: { entityId: string; accountNumber?: string; equityUsd?: number }, actor: string): Promise<Account> {
    if (input.accountNumber !== undefined) assertAccountNumber(input.accountNumber);
    if (input.equityUsd !== undefined) assertEquity(input.equityUsd);
    const id = newId('acc');
    await this.store.serialized('audit_log', async (trx) => {
      await this.assertEntity(trx, input.entityId);
      const accountNumber = input.accountNumber ?? (await this.freeAccountNumber(trx));
      if (await trx.selectFrom('accounts').select('id').where('account_number', '=', accountNumber).executeTakeFirst()) {
        throw new SlsError('ACCOUNT_TAKEN', { account: accountNumber });
      }
      await trx
        .insertInto('accounts')
        .values({
          id,
          account_number: accountNumber,
          entity_id: input.entityId,
          equity_usd_cents: Math.round((input.equityUsd ?? 0) * 100),
          primary_user_id: null,
          created_at: this.clock.now(),
        })
        .execute();
      await this.audit.append(trx, [
        { event: 'account.created', actor, data: { account: accountNumber, entityId: input.entityId, equityUsd: input.equityUsd ?? 0 } },
      ]);
    });
    return this.account(id);
  }

  /** The account of that number. */
  async accountByNumber(accountNumber: string): Promise<Account> {
    assertAccountNumber(accountNumber);
    const row = await this.store.db.selectFrom('accounts').select('id').where('account_number', '=', accountNumber).executeTakeFirst();
    if (!row) throw new SlsError('ACCOUNT_NOT_FOUND', { account: accountNumber });
    return this.account(row.id);
  }

  /** The users of an account (A1: an account may hold several usernames). */
  async usersOf(accountId: string): Promise<User[]> {
    const rows = await baseQuery(this.store.db).where('users.account_id', '=', accountId).orderBy('users.username').execute();
    return rows.map((row) => this.toUser(row));
  }

  /**
   * A6: sets an account's equity, audited with the actor. `clientsOnly`
   * (an integrator's API key, I3): refused 403 STAFF_TARGET_FORBIDDEN
   * (reason `apikey`, audited as `account.equity_refused`) when a staff
   * member is behind the account (X7, decision 0010: only an admin acts on
   * staff, and a key is no admin) — checked under the lock of the change.
   * `stillValid` runs first under that lock (ApiKeyGuard.writing).
   */
  async setEquity(
    accountNumber: string,
    equityUsd: number,
    actor: string,
    options: { clientsOnly?: boolean; stillValid?: (db: Executor) => Promise<void> } = {},
  ): Promise<Account> {
    assertAccountNumber(accountNumber);
    assertEquity(equityUsd);
    const account = await this.store.db.selectFrom('accounts').select('id').where('account_number', '=', accountNumber).executeTakeFirst();
    if (!account) throw new SlsError('ACCOUNT_NOT_FOUND', { account: accountNumber });
    // X1: the change and its audit entry, both or neither
    const refused = await this.store.serialized('audit_log', async (trx) => {
      // I3: the key that asks is still unrevoked, under the lock its revocation takes
      await options.stillValid?.(trx);
      if (options.clientsOnly && (await this.staffBehindAccount(trx, account.id))) {
        await this.audit.append(trx, [{ event: 'account.equity_refused', actor, data: { account: accountNumber, equityUsd, reason: 'staff' } }]);
        return true;
      }
      await trx
        .updateTable('accounts')
        .set({ equity_usd_cents: Math.round(equityUsd * 100) })
        .where('id', '=', account.id)
        .execute();
      await this.audit.append(trx, [{ event: 'account.equity_changed', actor, data: { account: accountNumber, equityUsd } }]);
      return false;
    });
    if (refused) throw new SlsError('STAFF_TARGET_FORBIDDEN', { reason: 'apikey' });
    return this.account(account.id);
  }

  /**
   * X7, A1: whether a staff member is behind an account: one of its users
   * is staff, or shares an entity (is the same person) with a staff username.
   */
  private async staffBehindAccount(db: Executor, accountId: string): Promise<boolean> {
    const staff = await db
      .selectFrom('users as holder')
      .innerJoin('users as person', 'person.entity_id', 'holder.entity_id')
      .select('person.id')
      .where('holder.account_id', '=', accountId)
      .where('person.role', '!=', 'client')
      .limit(1)
      .executeTakeFirst();
    return staff !== undefined;
  }

  /**
   * Sets a new password (A4 rules). `oneTime`: a password from client
   * services (A5), which the user must replace at the next login.
   * `alongside` runs in the same transaction (what must happen with the new
   * password, or not at all); its result is returned.
   */
  async setPassword<T = void>(
    userId: string,
    password: string,
    options: { actor: string; oneTime: boolean },
    alongside?: (trx: Tx) => Promise<T>,
  ): Promise<T | undefined> {
    const user = await this.get(userId);
    assertPasswordAcceptable(password, user.username);
    const passwordHash = await hashPassword(password);
    const now = this.clock.now();
    return this.store.serialized('audit_log', async (trx) => {
      await trx
        .updateTable('users')
        .set({
          password_hash: passwordHash,
          password_changed_at: now,
          password_must_change: options.oneTime ? 1 : 0,
          password_expires_at: options.oneTime ? now + this.oneTimePasswordTtlMs : null,
          password_used_at: null,
        })
        .where('id', '=', userId)
        .execute();
      // L8: the caller's `alongside` ends the sessions, and with them what the old password started (Sessions.endWhere)
      await this.audit.append(trx, [
        { event: 'user.password_changed', actor: options.actor, userId, username: user.username, data: { oneTime: options.oneTime } },
      ]);
      return alongside?.(trx);
    });
  }

  /**
   * N1: the language and IANA time zone of the user's notices, chosen (on
   * the settings page, by `sls user set-language`); null for the server's
   * default (SLS_DEFAULT_LANGUAGE, SLS_TIME_ZONE). A choice is kept until
   * the next choice: logins no longer change it. Both null take the choice
   * back: the logins' language is remembered again. Audited.
   */
  async setNoticePreferences(userId: string, preferences: { language: string | null; timeZone: string | null }, actor: string): Promise<void> {
    const { language, timeZone } = preferences;
    assertNoticePreferences(preferences);
    const user = await this.get(userId);
    const chosenAt = language === null && timeZone === null ? null : this.clock.now();
    await this.store.serialized('audit_log', async (trx) => {
      await trx.updateTable('users').set({ language, time_zone: timeZone, notice_preferences_chosen_at: chosenAt }).where('id', '=', userId).execute();
      await this.audit.append(trx, [
        { event: 'user.notice_preferences_changed', actor, userId, username: user.username, data: { language, timeZone, source: 'chosen' } },
      ]);
    });
  }

  /** All accounts of a user's entity (A1): where a deposit may be held. */
  async accountsOf(userId: string): Promise<Account[]> {
    const user = await this.get(userId);
    const rows = await this.store.db.selectFrom('accounts').selectAll().where('entity_id', '=', user.entityId).orderBy('account_number').execute();
    return rows.map((row) => ({
      id: row.id,
      accountNumber: row.account_number,
      entityId: row.entity_id,
      equityUsd: row.equity_usd_cents / 100,
      primaryUserId: row.primary_user_id,
    }));
  }

  /**
   * Client services' search (help desk): by username prefix or account number.
   * X7, A1: `hiding` leaves out every username of an entity with a user of
   * those roles, or with that user (the staff member searching): the people
   * they may not act on.
   */
  async search(query: string, limit = 20, hiding?: { roles: readonly Role[]; userId: string }): Promise<User[]> {
    const term = query.trim();
    if (term.length === 0 || term.length > 64) return [];
    let select = baseQuery(this.store.db).where((eb) =>
      eb.or([eb('users.username', 'like', `${term.replace(/[%_\\]/g, '')}%`), eb('accounts.account_number', '=', term.toUpperCase())]),
    );
    if (hiding) {
      select = select.where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('users as same')
              .select('same.id')
              .whereRef('same.entity_id', '=', 'users.entity_id')
              .where((inner) =>
                inner.or([inner('same.id', '=', hiding.userId), ...(hiding.roles.length > 0 ? [inner('same.role', 'in', [...hiding.roles])] : [])]),
              ),
          ),
        ),
      );
    }
    const rows = await select.orderBy('users.username').limit(limit).execute();
    return rows.map((row) => this.toUser(row));
  }
}
