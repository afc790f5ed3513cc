/**
 * L3 lockout: 10 consecutive failed login attempts within any 24-hour period
 * lock the username until 24 hours after the last failed attempt; while
 * locked, even the correct credentials are refused.
 *
 * Exact under concurrency and across server processes: every attempt first
 * reserves a row (`pending`) and is let through only if the failures and
 * the attempts in flight leave room, so no more than 10 guesses are ever
 * checked in the window. Only real failures lock: when the room is taken by
 * attempts still in flight, the attempt is deferred (TOO_MANY_ATTEMPTS, try
 * again in a moment), never refused as LOCKED — a burst of copies of a right
 * answer never turns into a lock. An attempt left pending by a process that
 * died is dropped after `PENDING_TTL_MS`: its result was never told to
 * anyone (docs/decisions/0005-lockout-in-flight.md). The state is keyed by
 * the username as typed, so an unknown username locks exactly like a real
 * one (no user enumeration, L1) — by its keyed digest, not its text, which
 * is often a password typed one field too early (X1; decision 0001).
 */
import type { Clock } from '../clock.js';
import type { PolicyConfig } from '../config.js';
import { SlsError } from '../errors.js';
import { newId } from '../crypto/random.js';
import type { Executor, Store, Tx } from '../store/database.js';
import { prepared } from '../store/prepared.js';
import { USERNAME_DIGEST_PREFIX } from '../audit/audit-log.js';

/**
 * How long an attempt may stay in flight. A check takes milliseconds; one
 * still pending after this was left by a process that died, and no longer
 * takes room.
 */
export const PENDING_TTL_MS = 60_000;

/** The mark in `meta` that the lock's rows are all keyed by digest (`keyTypedUsernames`). */
const TYPED_USERNAMES_KEYED = 'lockout_keyed_by_digest';

export interface Attempt {
  id: string;
  /** The lock's key: the keyed digest of the username as typed. */
  key: string;
}

export interface FailureOutcome {
  /** True when this failure locked the username. */
  locked: boolean;
  lockedUntil: number | null;
  failures: number;
}

export interface LockoutStatus {
  locked: boolean;
  /** Null while unlocked, and while locked by client services (until they lift it). */
  lockedUntil: number | null;
  /** Locked by client services, until they lift it. */
  byStaff: boolean;
  failures: number;
}

/** The end of a lock that only staff lift, an admin (decision 0020; the latest time a date can hold). */
const LIFTED_BY_STAFF = 8_640_000_000_000_000;

// the statements of every attempt, built once (issue 15)
/** The lockout row, created if need be, and locked (PostgreSQL: an upsert that updates locks the row as FOR UPDATE does). */
const lockRow = prepared<{ username: string }>()((db, p) =>
  db
    .insertInto('lockouts')
    .values({ username: p.username, locked_until: null, reset_at: 0 })
    .onConflict((oc) => oc.column('username').doUpdateSet((eb) => ({ username: eb.ref('excluded.username') })))
    .returning('locked_until'),
);
const countAttempts = prepared<{ username: string; since: number; liveSince: number }>()((db, p) =>
  db
    .selectFrom('login_failures')
    .select((eb) => [
      eb.fn.sum<number>(eb.case().when('state', '=', 'failed').then(1).else(0).end()).as('failures'),
      eb.fn
        .sum<number>(
          eb
            .case()
            .when(eb.and([eb('state', '=', 'pending'), eb('at', '>', p.liveSince)]))
            .then(1)
            .else(0)
            .end(),
        )
        .as('in_flight'),
      eb.fn
        .sum<number>(
          eb
            .case()
            .when(eb.and([eb('state', '=', 'pending'), eb('at', '<=', p.liveSince)]))
            .then(1)
            .else(0)
            .end(),
        )
        .as('stale'),
    ])
    .where('username', '=', p.username)
    .where('at', '>', p.since),
);
const insertPending = prepared<{ id: string; username: string; at: number }>()((db, p) =>
  db.insertInto('login_failures').values({ id: p.id, username: p.username, at: p.at, state: 'pending' }),
);
const deleteAttempt = prepared<{ id: string }>()((db, p) => db.deleteFrom('login_failures').where('id', '=', p.id));
const resetRow = prepared<{ username: string; now: number }>()((db, p) =>
  db
    .insertInto('lockouts')
    .values({ username: p.username, locked_until: null, reset_at: p.now })
    .onConflict((oc) => oc.column('username').doUpdateSet({ locked_until: null, reset_at: p.now })),
);
/**
 * L3: the lock's end and the failures that count now, in one statement (`lockedNow`, a claim's hot path): those
 * in the window (a reset deleted those before it, whatever their times: decision 0038).
 */
const lockNow = prepared<{ username: string; since: number }>()((db, p) =>
  db
    .selectFrom('login_failures')
    .select((eb) => [
      eb.fn.countAll<number>().as('failures'),
      eb.selectFrom('lockouts').select('lockouts.locked_until').where('lockouts.username', '=', p.username).as('locked_until'),
    ])
    .where('login_failures.username', '=', p.username)
    .where('login_failures.state', '=', 'failed')
    .where('login_failures.at', '>', p.since),
);
/**
 * L3 (decision 0038): a reset deletes every failure recorded before it, by the order of the lock's row, never by
 * their times: a process whose clock is ahead or behind another's records times the others' do not compare with.
 */
const deleteFailures = prepared<{ username: string }>()((db, p) =>
  db.deleteFrom('login_failures').where('username', '=', p.username).where('state', '=', 'failed'),
);

export class Lockout {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly policy: Pick<PolicyConfig, 'lockoutThreshold' | 'lockoutWindowMs'>,
    /** The keyed digest of a username as typed (the audit log's, `AuditLog.usernameDigest`): the rows' key. */
    private readonly keyOf: (username: string) => string,
  ) {}

  /**
   * The lock a transaction admitted an attempt on with nothing to start
   * again: no lock, no failure in the window, none left pending by a dead
   * process. `reset` in that same transaction has nothing to do (SQLite's
   * one-transaction answer holds the database alone from `admit` to
   * `reset`, docs/decisions/0019; on PostgreSQL they are two transactions).
   */
  private readonly admittedClean = new WeakMap<Tx, string>();

  private async state(key: string): Promise<{ lockedUntil: number | null }> {
    const row = await this.store.db.selectFrom('lockouts').select('locked_until').where('username', '=', key).executeTakeFirst();
    return { lockedUntil: row?.locked_until ?? null };
  }

  private async countFailures(db: Executor, key: string, since: number): Promise<number> {
    const row = await db
      .selectFrom('login_failures')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('username', '=', key)
      .where('at', '>', since)
      .where('state', '=', 'failed')
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /**
   * The failures in the window and the attempts still being checked (not
   * those a dead process left behind), read in one statement: one snapshot,
   * so that a failure recorded meanwhile is counted once, as one or the other.
   * `stale`: the attempts in the window a dead process left pending, to be
   * dropped (older ones take no room either, and `prune` drops them).
   */
  private async countFailuresAndInFlight(
    db: Executor,
    username: string,
    since: number,
    now: number,
  ): Promise<{ failures: number; inFlight: number; stale: number }> {
    const row = await countAttempts.first(db, { username, since, liveSince: now - PENDING_TTL_MS });
    return { failures: Number(row?.failures ?? 0), inFlight: Number(row?.in_flight ?? 0), stale: Number(row?.stale ?? 0) };
  }

  /**
   * The window's start: the failures after it count. Not the last reset's time (decision 0038): the reset deleted
   * the failures before it, and a failure another process records after it, by a clock behind the resetting one's,
   * still counts.
   */
  private windowStart(now: number): number {
    return now - this.policy.lockoutWindowMs;
  }

  /**
   * Reserves an attempt; throws LOCKED when the username is locked, or
   * TOO_MANY_ATTEMPTS when attempts in flight take the room that is left
   * (nothing is counted: the caller may try again in a moment). Attempts on
   * one username are serialised by a lock on its lockout row, so each sees
   * every attempt admitted before it. `first` runs in the same transaction
   * before the lock is taken (a flow's answer taken, say): when it throws,
   * or the attempt is refused, nothing of either is kept.
   */
  async begin(typed: string, first?: (trx: Tx) => Promise<void>): Promise<Attempt> {
    return this.store.transaction(async (trx) => {
      await first?.(trx);
      const attempt = await this.admit(trx, typed);
      await this.hold(trx, attempt);
      return attempt;
    });
  }

  /**
   * `begin`'s check, in the caller's transaction, with nothing recorded yet:
   * LOCKED or TOO_MANY_ATTEMPTS, else the attempt, which takes no room until
   * `hold` records it. For a caller whose transaction holds the database
   * alone until it ends (SQLite), so that no other attempt needs to see this
   * one in flight (docs/decisions/0019).
   */
  async admit(trx: Tx, typed: string): Promise<Attempt> {
    const now = this.clock.now();
    const username = this.keyOf(typed);
    const { locked_until: lockedUntil } = (await lockRow.first(trx, { username }))!;
    if (lockedUntil !== null && lockedUntil > now) throw new SlsError('LOCKED', {});
    const { failures, inFlight, stale } = await this.countFailuresAndInFlight(trx, username, this.windowStart(now), now);
    if (failures >= this.policy.lockoutThreshold) throw new SlsError('LOCKED', {});
    // failures plus attempts still being checked: no more guesses than the threshold
    if (failures + inFlight >= this.policy.lockoutThreshold) {
      throw new SlsError('TOO_MANY_ATTEMPTS', { retryAfterSeconds: 1 });
    }
    // attempts a dead process left pending take no room any more; they are dropped when there are some
    if (stale > 0)
      await trx
        .deleteFrom('login_failures')
        .where('username', '=', username)
        .where('state', '=', 'pending')
        .where('at', '<=', now - PENDING_TTL_MS)
        .execute();
    if (this.store.dialect === 'sqlite' && lockedUntil === null && failures === 0 && stale === 0) this.admittedClean.set(trx, username);
    return { id: newId('att'), key: username };
  }

  /** Records an admitted attempt as in flight, in the caller's transaction: `fail` counts it, `release` ends it. */
  async hold(trx: Tx, attempt: Attempt): Promise<void> {
    await insertPending.execute(trx, { id: attempt.id, username: attempt.key, at: this.clock.now() });
  }

  /** The attempt did not fail (for example a correct password before the second factor). */
  async release(attempt: Attempt, db: Executor = this.store.db): Promise<void> {
    await deleteAttempt.execute(db, { id: attempt.id });
  }

  /** Counts the attempt as a failure and locks the username at the threshold. */
  async fail(attempt: Attempt): Promise<FailureOutcome> {
    const now = this.clock.now();
    const updated = await this.store.db.updateTable('login_failures').set({ state: 'failed', at: now }).where('id', '=', attempt.id).executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) {
      await this.store.db.insertInto('login_failures').values({ id: attempt.id, username: attempt.key, at: now, state: 'failed' }).execute();
    }
    const failures = await this.countFailures(this.store.db, attempt.key, this.windowStart(now));
    if (failures < this.policy.lockoutThreshold) return { locked: false, lockedUntil: null, failures };
    const lockedUntil = now + this.policy.lockoutWindowMs;
    // Exactly one of several concurrent failures locks; the others extend the lock to their own time.
    const locked = await this.store.db
      .updateTable('lockouts')
      .set({ locked_until: lockedUntil })
      .where('username', '=', attempt.key)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
      .returning('username')
      .executeTakeFirst();
    if (!locked) {
      await this.store.db
        .updateTable('lockouts')
        .set({ locked_until: lockedUntil })
        .where('username', '=', attempt.key)
        .where('locked_until', '<', lockedUntil)
        .execute();
    }
    return { locked: locked !== undefined, lockedUntil, failures };
  }

  /**
   * L3 (decisions 0005, 0027): whether the username is locked now — by
   * failures or by client services — read in the caller's transaction, with
   * nothing recorded: what `admit` refuses as LOCKED. A login approved on the
   * phone before a lock is not taken after it.
   */
  async lockedNow(db: Executor, typed: string): Promise<boolean> {
    const now = this.clock.now();
    const row = await lockNow.first(db, { username: this.keyOf(typed), since: now - this.policy.lockoutWindowMs });
    const lockedUntil = row?.locked_until ?? null;
    return (lockedUntil !== null && Number(lockedUntil) > now) || Number(row?.failures ?? 0) >= this.policy.lockoutThreshold;
  }

  /**
   * Client services lock the username (L3, L8): every attempt is refused as
   * LOCKED — the same answer as any lock, so that it tells nobody the user
   * exists — until they lift it (`reset`). In the caller's transaction.
   */
  async lockUntilLifted(username: string, trx: Tx): Promise<void> {
    await trx
      .insertInto('lockouts')
      .values({ username: this.keyOf(username), locked_until: LIFTED_BY_STAFF, reset_at: 0 })
      .onConflict((oc) => oc.column('username').doUpdateSet({ locked_until: LIFTED_BY_STAFF }))
      .execute();
  }

  /**
   * Whether client services locked the username (`lockUntilLifted`), read in
   * the caller's transaction: the lock only an admin lifts (decision 0020).
   */
  async lockedByStaff(username: string, db: Executor = this.store.db): Promise<boolean> {
    const row = await db.selectFrom('lockouts').select('locked_until').where('username', '=', this.keyOf(username)).executeTakeFirst();
    return row !== undefined && Number(row.locked_until) === LIFTED_BY_STAFF;
  }

  /**
   * A complete successful login, or client services lifting the lock: the
   * count starts again — every failure recorded before it is deleted, and
   * every one recorded after it counts, whatever time the processes that
   * recorded them keep (decision 0038). Runs in the given transaction, or in its own.
   */
  async reset(username: string, trx?: Tx): Promise<void> {
    if (!trx) return this.store.transaction((own) => this.reset(username, own));
    const now = this.clock.now();
    const key = this.keyOf(username);
    // no failure counted from the lock's row on, and none can be until this transaction ends: the count is where a reset would put it
    if (this.admittedClean.get(trx) === key) return;
    await resetRow.execute(trx, { username: key, now });
    await deleteFailures.execute(trx, { username: key });
  }

  async status(username: string): Promise<LockoutStatus> {
    const now = this.clock.now();
    const key = this.keyOf(username);
    const { lockedUntil } = await this.state(key);
    const failures = await this.countFailures(this.store.db, key, this.windowStart(now));
    const locked = lockedUntil !== null && lockedUntil > now;
    const byStaff = lockedUntil === LIFTED_BY_STAFF;
    return { locked, lockedUntil: locked && !byStaff ? lockedUntil : null, byStaff, failures };
  }

  /**
   * At start: the rows a version before kept under the username's text
   * (a lock client services set lasts until they lift it) are moved to its
   * keyed digest, a lock's end and a reset the later of the two where both
   * exist. Returns how many usernames were moved. Any process may run it at
   * once with another: each move is one transaction, and a moved row is no
   * longer found. Done once: a mark in `meta` says so, and later starts
   * read only that (this version never keeps a username's text).
   */
  async keyTypedUsernames(): Promise<number> {
    const done = await this.store.db.selectFrom('meta').select('value').where('key', '=', TYPED_USERNAMES_KEYED).executeTakeFirst();
    if (done) return 0;
    const typed = new Set<string>();
    const notDigest = (table: 'lockouts' | 'login_failures') =>
      this.store.db.selectFrom(table).select('username').distinct().where('username', 'not like', `${USERNAME_DIGEST_PREFIX}%`).execute();
    for (const row of [...(await notDigest('lockouts')), ...(await notDigest('login_failures'))]) typed.add(row.username);
    for (const username of typed) {
      const key = this.keyOf(username);
      await this.store.transaction(async (trx) => {
        const rows = await trx.selectFrom('lockouts').selectAll().where('username', 'in', [username, key]).execute();
        const old = rows.find((r) => r.username === username);
        if (old) {
          const both = rows.map((r) => r.locked_until).filter((until): until is number => until !== null);
          const lockedUntil = both.length > 0 ? Math.max(...both) : null;
          const resetAt = Math.max(...rows.map((r) => r.reset_at));
          await trx.deleteFrom('lockouts').where('username', '=', username).execute();
          await trx
            .insertInto('lockouts')
            .values({ username: key, locked_until: lockedUntil, reset_at: resetAt })
            .onConflict((oc) => oc.column('username').doUpdateSet({ locked_until: lockedUntil, reset_at: resetAt }))
            .execute();
        }
        await trx.updateTable('login_failures').set({ username: key }).where('username', '=', username).execute();
      });
    }
    await this.store.db
      .insertInto('meta')
      .values({ key: TYPED_USERNAMES_KEYED, value: String(this.clock.now()) })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    return typed.size;
  }

  /** Forgets failures that can no longer count. */
  async prune(): Promise<void> {
    const horizon = this.clock.now() - this.policy.lockoutWindowMs;
    await this.store.db.deleteFrom('login_failures').where('at', '<', horizon).execute();
    await this.store.db
      .deleteFrom('lockouts')
      .where('reset_at', '<', horizon)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', horizon)]))
      .execute();
  }
}
