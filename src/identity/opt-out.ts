/**
 * Opting out of the Secure Login System for trading, and back in (O1-O3).
 *
 * O1: a user who opted out logs in to the trading platforms with the
 * password alone (flows/login.ts asks `isOptedOut`); the portal still asks
 * for the device. The seed's restrictions follow the user while opted out:
 * no Pink Sheet / OTCBB trading (the entitlement API reports
 * `otcTrading: false`), withdrawal limits of W1's "None" row (the
 * `ProtectionHooks.optedOut` of entitlements/withdrawals.ts), and no W2
 * enrolment benefits.
 *
 * Opting out is explicit: the user acknowledges the security warnings
 * (KB1198) and types their username to confirm (OPT_OUT_NOT_CONFIRMED
 * otherwise). Staff users never opt out (OPT_OUT_NOT_CLIENT).
 *
 * O2: opting back in ("I want to always use my Secure Login Device when
 * logging in", KB2545) restores the second factor for every login at once.
 * A user with no active permanent device may opt back in too: protection is
 * never refused; their next trading login asks for a device as usual (and,
 * without one, is refused NO_ACTIVE_DEVICE until client services help, R1).
 *
 * O3: only a user who may change the account's security settings (A2: the
 * primary user, or a user granted the right) may opt out — from the portal,
 * the API or `sls user opt-out`. Opting back in through the portal and the
 * API passes the same rights guard (with a step-up, V1); an operator may
 * opt any client back in with `sls user opt-in`, since it only restores
 * protection.
 *
 * Each change is audited (`user.opted_out`, `user.opted_in`) and told to
 * the user (N1: notices `optedOut`, `optedIn`), in the same transaction; a
 * repeated request changes nothing and tells nobody.
 */
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { SlsError } from '../errors.js';
import type { Notifier } from '../notify/notifier.js';
import { prepared } from '../store/prepared.js';
import type { Executor, Store } from '../store/database.js';
import type { Sessions } from '../sessions/sessions.js';
import type { SecuritySettingsRights } from './security-rights.js';
import type { User, Users } from './users.js';

/** Whether a user opted out of the second factor for trading logins, and since when. */
export interface OptOutState {
  optedOut: boolean;
  /** When they opted out (ms), or null. */
  since: number | null;
  /** Who opted them out: `user:<id>` or `cli`; null when not opted out. */
  actor: string | null;
}

/** What the login flow asks (O1). */
export interface OptedOutUsers {
  isOptedOut(userId: string, db?: Executor): Promise<boolean>;
}

/** The user's explicit consent to the restrictions (KB1198). */
export interface OptOutConsent {
  /** The checkbox "I understand …" was ticked. */
  acknowledged: boolean;
  /** What the user typed to confirm: their username. */
  confirmation: string;
}

export interface ChangeContext {
  /** `user:<id>` or `cli`. */
  actor: string;
  ip?: string | null;
}

export interface OptOutDeps {
  store: Store;
  clock: Clock;
  audit: AuditLog;
  notifier: Notifier;
  users: Users;
  rights: SecuritySettingsRights;
  /** O2, L8: opting back in ends the sessions the password alone opened. */
  sessions: Pick<Sessions, 'endWhere'>;
}

// read on every trading login (issue 15): built once
const optedOutUser = prepared<{ userId: string }>()((db, p) => db.selectFrom('opt_outs').select('user_id').where('user_id', '=', p.userId));

export class OptOuts implements OptedOutUsers {
  constructor(private readonly deps: OptOutDeps) {}

  async isOptedOut(userId: string, db: Executor = this.deps.store.db): Promise<boolean> {
    return (await optedOutUser.first(db, { userId })) !== undefined;
  }

  async state(userId: string, db: Executor = this.deps.store.db): Promise<OptOutState> {
    const row = await db.selectFrom('opt_outs').selectAll().where('user_id', '=', userId).executeTakeFirst();
    return row ? { optedOut: true, since: Number(row.opted_out_at), actor: row.actor } : { optedOut: false, since: null, actor: null };
  }

  private static assertClient(user: User): void {
    if (user.role !== 'client') throw new SlsError('OPT_OUT_NOT_CLIENT', { username: user.username });
  }

  /**
   * O1: the user opts out of the second factor for trading logins, once
   * they acknowledged the warnings and typed their username; O3: only a
   * user with the right to change the security settings. Returns whether
   * anything changed.
   */
  async optOut(userId: string, consent: OptOutConsent, context: ChangeContext): Promise<{ changed: boolean; state: OptOutState }> {
    const { store, clock, audit, notifier, users, rights } = this.deps;
    const user = await users.get(userId);
    OptOuts.assertClient(user);
    if (!consent.acknowledged) throw new SlsError('OPT_OUT_NOT_CONFIRMED', { reason: 'acknowledgement' });
    if (consent.confirmation.trim() !== user.username) throw new SlsError('OPT_OUT_NOT_CONFIRMED', { reason: 'confirmation', username: user.username });
    await rights.assertMayChange(user.id, { action: 'opt_out', ip: context.ip ?? null });
    const changed = await store.serialized('audit_log', async (trx) => {
      const now = clock.now();
      const inserted = await trx
        .insertInto('opt_outs')
        .values({ user_id: user.id, opted_out_at: now, actor: context.actor })
        .onConflict((oc) => oc.column('user_id').doNothing())
        .returning('user_id')
        .executeTakeFirst();
      if (!inserted) return false;
      await audit.append(trx, [
        { event: 'user.opted_out', actor: context.actor, userId: user.id, username: user.username, ip: context.ip ?? null, data: { app: 'trading' } },
      ]);
      await notifier.notify(user, 'optedOut', { username: user.username, at: new Date(now) }, { db: trx });
      return true;
    });
    return { changed, state: await this.state(user.id) };
  }

  /**
   * O2: back in — every login asks for the device again, and the
   * restrictions end. The rights are the caller's to check (the portal's
   * guard); an operator may always restore protection.
   */
  async optIn(userId: string, context: ChangeContext): Promise<{ changed: boolean; state: OptOutState }> {
    const { store, clock, audit, notifier, users } = this.deps;
    const user = await users.get(userId);
    const changed = await store.serialized('audit_log', async (trx) => {
      const row = await trx.selectFrom('opt_outs').selectAll().where('user_id', '=', user.id).executeTakeFirst();
      if (!row) return false;
      const deleted = await trx.deleteFrom('opt_outs').where('user_id', '=', user.id).executeTakeFirst();
      if (Number(deleted.numDeletedRows) !== 1) return false;
      // L8: the trading sessions opened without the second factor end with the opt-out
      await this.deps.sessions.endWhere(trx, { userId: user.id, withoutDevice: true }, 'opted_in', context.actor);
      await audit.append(trx, [
        {
          event: 'user.opted_in',
          actor: context.actor,
          userId: user.id,
          username: user.username,
          ip: context.ip ?? null,
          data: { app: 'trading', optedOutAt: Number(row.opted_out_at) },
        },
      ]);
      await notifier.notify(user, 'optedIn', { username: user.username, at: new Date(clock.now()) }, { db: trx });
      return true;
    });
    return { changed, state: await this.state(user.id) };
  }
}
