/**
 * L3 lockout: 10 consecutive failed login attempts within any 24-hour period
 * lock the username until 24 hours after the last failed attempt; while
 * locked, even the correct credentials are refused.
 *
 * Exact under concurrency and across server processes: every attempt first
 * reserves a row (`pending`, counted as a failure until cleared) and is let
 * through only if the failures and attempts in flight leave room, so no more
 * than 10 guesses are ever checked in the window. The state is keyed by the
 * username as typed, so an unknown username locks exactly like a real one
 * (no user enumeration, L1).
 */
import type { Clock } from '../clock.js';
import type { PolicyConfig } from '../config.js';
import { SlsError } from '../errors.js';
import { newId } from '../crypto/random.js';
import type { Executor, Store, Tx } from '../store/database.js';

export interface Attempt {
  id: string;
  username: string;
}

export interface FailureOutcome {
  /** True when this failure locked the username. */
  locked: boolean;
  lockedUntil: number | null;
  failures: number;
}

export interface LockoutStatus {
  locked: boolean;
  lockedUntil: number | null;
  failures: number;
}

export class Lockout {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly policy: Pick<PolicyConfig, 'lockoutThreshold' | 'lockoutWindowMs'>,
  ) {}

  private async state(username: string): Promise<{ lockedUntil: number | null; resetAt: number }> {
    const row = await this.store.db
      .selectFrom('lockouts')
      .select(['locked_until', 'reset_at'])
      .where('username', '=', username)
      .executeTakeFirst();
    return { lockedUntil: row?.locked_until ?? null, resetAt: row?.reset_at ?? 0 };
  }

  private async countSince(db: Executor, username: string, since: number, states: ('pending' | 'failed')[]): Promise<number> {
    const row = await db
      .selectFrom('login_failures')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('username', '=', username)
      .where('at', '>', since)
      .where('state', 'in', states)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  private windowStart(now: number, resetAt: number): number {
    return Math.max(now - this.policy.lockoutWindowMs, resetAt - 1);
  }

  /**
   * Reserves an attempt, or throws LOCKED. Attempts on one username are
   * serialised by a lock on its lockout row, so each sees every attempt
   * admitted before it.
   */
  async begin(username: string): Promise<Attempt> {
    const now = this.clock.now();
    const attempt = { id: newId('att'), username };
    await this.store.transaction(async (trx) => {
      await trx
        .insertInto('lockouts')
        .values({ username, locked_until: null, reset_at: 0 })
        .onConflict((oc) => oc.column('username').doNothing())
        .execute();
      let query = trx.selectFrom('lockouts').select(['locked_until', 'reset_at']).where('username', '=', username);
      if (this.store.dialect === 'postgres') query = query.forUpdate();
      const { locked_until: lockedUntil, reset_at: resetAt } = await query.executeTakeFirstOrThrow();
      if (lockedUntil !== null && lockedUntil > now) throw new SlsError('LOCKED', { until: new Date(lockedUntil).toISOString() });
      const counted = await this.countSince(trx, username, this.windowStart(now, resetAt), ['pending', 'failed']);
      // failures plus attempts still being checked: no more guesses than the threshold
      if (counted >= this.policy.lockoutThreshold) throw new SlsError('LOCKED', {});
      await trx.insertInto('login_failures').values({ id: attempt.id, username, at: now, state: 'pending' }).execute();
    });
    return attempt;
  }

  /** The attempt did not fail (for example a correct password before the second factor). */
  async release(attempt: Attempt, db: Executor = this.store.db): Promise<void> {
    await db.deleteFrom('login_failures').where('id', '=', attempt.id).execute();
  }

  /** Counts the attempt as a failure and locks the username at the threshold. */
  async fail(attempt: Attempt): Promise<FailureOutcome> {
    const now = this.clock.now();
    const updated = await this.store.db
      .updateTable('login_failures')
      .set({ state: 'failed', at: now })
      .where('id', '=', attempt.id)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) {
      await this.store.db.insertInto('login_failures').values({ id: attempt.id, username: attempt.username, at: now, state: 'failed' }).execute();
    }
    const { resetAt } = await this.state(attempt.username);
    const failures = await this.countSince(this.store.db, attempt.username, this.windowStart(now, resetAt), ['failed']);
    if (failures < this.policy.lockoutThreshold) return { locked: false, lockedUntil: null, failures };
    const lockedUntil = now + this.policy.lockoutWindowMs;
    // Exactly one of several concurrent failures locks; the others extend the lock to their own time.
    const locked = await this.store.db
      .updateTable('lockouts')
      .set({ locked_until: lockedUntil })
      .where('username', '=', attempt.username)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
      .returning('username')
      .executeTakeFirst();
    if (!locked) {
      await this.store.db
        .updateTable('lockouts')
        .set({ locked_until: lockedUntil })
        .where('username', '=', attempt.username)
        .where('locked_until', '<', lockedUntil)
        .execute();
    }
    return { locked: locked !== undefined, lockedUntil, failures };
  }

  /**
   * A complete successful login, or client services lifting the lock: the
   * count starts again. Runs in the given transaction, or in its own.
   */
  async reset(username: string, trx?: Tx): Promise<void> {
    if (!trx) return this.store.transaction((own) => this.reset(username, own));
    const now = this.clock.now();
    await trx
      .insertInto('lockouts')
      .values({ username, locked_until: null, reset_at: now })
      .onConflict((oc) => oc.column('username').doUpdateSet({ locked_until: null, reset_at: now }))
      .execute();
    await trx.deleteFrom('login_failures').where('username', '=', username).where('at', '<=', now).where('state', '=', 'failed').execute();
  }

  async status(username: string): Promise<LockoutStatus> {
    const now = this.clock.now();
    const { lockedUntil, resetAt } = await this.state(username);
    const failures = await this.countSince(this.store.db, username, this.windowStart(now, resetAt), ['failed']);
    const locked = lockedUntil !== null && lockedUntil > now;
    return { locked, lockedUntil: locked ? lockedUntil : null, failures };
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
