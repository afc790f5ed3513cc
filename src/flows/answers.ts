/**
 * The answer protocol, once for every flow kind (L3, L4): a login's second
 * factor, a device proof (activation, PIN change, step-up), a push approval
 * and the authenticator's activation all answer the same way:
 *
 *   begin an attempt under the lock ─► take one of the flow's answers ─►
 *   check ─► right: use it up (single use) and act, in one transaction
 *         └► wrong: count the failure, audit it, lock at the threshold,
 *                   tell the user of the lock (N1)
 *
 * A locked user's answer fails the flow and is audited on every path; an
 * attempt deferred because others are in flight counts nothing (it is no
 * failure: a burst of copies of a right answer never becomes a lock).
 */
import type { AuditEvent, AuditInput, AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { SlsError } from '../errors.js';
import type { Devices } from '../devices/devices.js';
import type { CheckResult, Device } from '../devices/types.js';
import type { Users } from '../identity/users.js';
import type { Notifier } from '../notify/notifier.js';
import type { Attempt, FailureOutcome, Lockout } from '../policy/lockout.js';
import type { Executor, Store, Tx } from '../store/database.js';
import type { FlowState } from '../store/schema.js';
import { failFlow, findFlow, reserveAnswer, type FlowRow } from './flow-rows.js';
import { noObserver, type AnswerOutcome, type Observer } from '../metrics/observer.js';

export interface AnswersDeps {
  store: Store;
  clock: Clock;
  lockout: Lockout;
  audit: AuditLog;
  users: Users;
  devices: Devices;
  notifier: Notifier;
  policy: { challengeMaxAttempts: number };
  /** Told of each answer, its outcome and how long it took (metrics). */
  observer?: Pick<Observer, 'secondFactorAnswered'>;
}

/** Who attempts: the username as typed (the lock's key), the user when known, from where. */
export interface AttemptOf {
  username: string;
  /** Undefined: looked up by the username when a refusal is audited. */
  userId: string | null | undefined;
  ip: string | null;
  /** Told in the audit entries of a refusal (the factor, the application, the flow …). */
  data?: Record<string, unknown>;
}

/** A right answer: the replay keys that make it single-use on its device (L4), if it has any. */
export interface Accepted {
  replay: { deviceId: string; keys: string[] } | null;
  /** The answer was the device's last (a code card without unused cells, S4): it is used up with it. */
  usedUp?: boolean;
  /**
   * The device's secret after the answer (a security key's signature
   * counter), written with its acceptance if the device's secret is still
   * the one the check read (`checked`); otherwise the answer is not taken.
   */
  secret?: { checked: Device; value: unknown };
}

/** The accepted answer of a device's check: its replay keys, or the flow's id when it has none. */
export function accepted(device: Device, check: CheckResult, flowId: string): Accepted {
  return {
    replay: { deviceId: device.id, keys: check.replayKeys ?? [`flow:${flowId}`] },
    ...(check.usedUp ? { usedUp: true } : {}),
    ...(check.secret !== undefined ? { secret: { checked: device, value: check.secret } } : {}),
  };
}

export interface FlowAnswer<T> {
  /** The open flow being answered. */
  row: FlowRow;
  /**
   * The state in which the flow takes answers: `second_factor`, or
   * `approved` for a second answer after a first one was accepted (the
   * recovery PIN after the mobile authenticator's proven token, K8).
   */
  open?: FlowState;
  /** The type of the device answered with, for the metrics. */
  deviceType?: string;
  ip: string | null;
  /** Who acts, in the audit entries (`user:<id>` for a device proof); none for a login. */
  actor?: string;
  /** The audit entry of a wrong answer; attemptsLeft and failures are added. */
  failed: { event: AuditEvent; data?: Record<string, unknown> };
  /** Hints shown after a wrong answer (L5). */
  hints: string[];
  /** Checks the answer: accepted, or null when wrong. Throwing refuses without counting anything. */
  check(): Promise<Accepted | null>;
  /**
   * `check` reads nothing from the database (what it needs was read before):
   * on SQLite it runs inside the one transaction that takes the answer,
   * checks it and uses it up (docs/decisions/0019).
   */
  checkInside?: boolean;
  /** In the transaction that uses the answer up: what the answer does; null when the flow changed meanwhile (FLOW_EXPIRED, nothing counted). */
  accept(trx: Tx): Promise<T | null>;
  /** After a wrong answer was counted (the recovery PIN's own count, a signal to waiting pages …). */
  afterFailure?(): Promise<void>;
}

/** Thrown inside the accepting transaction to undo it: the answer's replay keys were recorded a moment ago. */
class AlreadyUsed extends Error {}
/** Thrown inside the accepting transaction to undo it: the flow changed meanwhile (answered, switched, withdrawn). */
class FlowChanged extends Error {}
/** Thrown inside the one transaction of an answer to undo it: the lock refused the attempt (`cause`: LOCKED, TOO_MANY_ATTEMPTS). */
class Refused extends Error {
  constructor(override readonly cause: unknown) {
    super('refused by the lock');
  }
}

export class Answers {
  constructor(private readonly deps: AnswersDeps) {}

  /**
   * An attempt under the lock (L3). LOCKED and TOO_MANY_ATTEMPTS are
   * audited; `onLocked` runs first for a locked user (a flow fails).
   * `first` runs in the attempt's transaction (see Lockout.begin).
   */
  async begin(who: AttemptOf, onLocked?: () => Promise<void>, first?: (trx: Tx) => Promise<void>): Promise<Attempt> {
    try {
      return await this.deps.lockout.begin(who.username, first);
    } catch (error) {
      await this.refused(error, who, onLocked);
      throw error;
    }
  }

  /** An attempt the lock refused (LOCKED, TOO_MANY_ATTEMPTS), audited; `onLocked` runs first for a locked user. Other errors pass. */
  private async refused(error: unknown, who: AttemptOf, onLocked?: () => Promise<void>): Promise<void> {
    if (!(error instanceof SlsError) || (error.code !== 'LOCKED' && error.code !== 'TOO_MANY_ATTEMPTS')) return;
    if (error.code === 'LOCKED') await onLocked?.();
    const userId = who.userId === undefined ? ((await this.deps.users.findByUsername(who.username))?.id ?? null) : who.userId;
    await this.deps.audit.record({
      event: error.code === 'LOCKED' ? 'login.refused_locked' : 'login.attempt_deferred',
      userId,
      username: who.username,
      ip: who.ip,
      data: who.data ?? {},
    });
  }

  /** The attempt was no failure (a right password before the second factor, a refusal that checked nothing). */
  release(attempt: Attempt, db?: Executor): Promise<void> {
    return this.deps.lockout.release(attempt, db);
  }

  /**
   * Counts a wrong answer or password (L3): the failure, its audit entry
   * (with `failures`), the lock when it is reached (audited, and told to
   * the user in the background, N1).
   */
  async fail(
    attempt: Attempt,
    who: AttemptOf & { userId: string | null; actor?: string },
    entry: { event: AuditEvent; data?: Record<string, unknown> },
    more: AuditInput[] = [],
  ): Promise<FailureOutcome> {
    const outcome = await this.deps.lockout.fail(attempt);
    const meta = { ...(who.actor ? { actor: who.actor } : {}), userId: who.userId, username: who.username, ip: who.ip };
    const entries: AuditInput[] = [{ event: entry.event, ...meta, data: { ...entry.data, failures: outcome.failures } }, ...more];
    if (outcome.locked) entries.push({ event: 'login.locked', ...meta, data: { until: outcome.lockedUntil } });
    await this.deps.audit.record(...entries);
    if (outcome.locked && who.userId) await this.noticeLock(who.userId, outcome.lockedUntil);
    return outcome;
  }

  /** N1: the user hears of the lock, through the outbox, without holding up the answer. */
  private async noticeLock(userId: string, until: number | null): Promise<void> {
    const user = await this.deps.users.get(userId);
    await this.deps.notifier.notifySoon(user, 'userLocked', { username: user.username, until: until === null ? '' : new Date(until).toISOString() });
  }

  /** The whole protocol for an answer to an open flow (L3, L4), observed (outcome, time taken). */
  async answerFlow<T>(spec: FlowAnswer<T>): Promise<T> {
    const observer = this.deps.observer ?? noObserver;
    const started = performance.now();
    const observe = (outcome: AnswerOutcome) =>
      observer.secondFactorAnswered({
        kind: spec.row.kind,
        app: spec.row.kind === 'login' ? spec.row.app : null,
        deviceType: spec.deviceType ?? null,
        outcome,
        seconds: (performance.now() - started) / 1000,
      });
    try {
      const result = await this.answerOpenFlow(spec);
      observe('accepted');
      return result;
    } catch (error) {
      observe(answerOutcome(error));
      throw error;
    }
  }

  private async answerOpenFlow<T>(spec: FlowAnswer<T>): Promise<T> {
    const { store, clock, policy } = this.deps;
    const { row } = spec;
    const who: AttemptOf & { userId: string; actor?: string } = {
      username: row.username,
      userId: row.user_id,
      ip: spec.ip,
      data: { flowId: row.id, kind: row.kind, factor: 'second' },
      ...(spec.actor ? { actor: spec.actor } : {}),
    };
    const open = spec.open ?? 'second_factor';
    if (spec.checkInside && store.dialect === 'sqlite') return this.answerInOneTransaction(spec, who, open);
    // one of the flow's answers is taken in the attempt's transaction: one commit for both
    let attempts: number | null = null;
    const attempt = await this.begin(
      who,
      () => failFlow(store.db, row.id, clock.now(), open),
      async (trx) => {
        attempts = await reserveAnswer(trx, row.id, clock.now(), policy.challengeMaxAttempts, open);
      },
    );
    if (attempts === null) {
      await this.release(attempt);
      throw new SlsError('FLOW_EXPIRED');
    }
    let accepted: Accepted | null;
    try {
      accepted = await spec.check();
    } catch (error) {
      await this.release(attempt);
      throw error;
    }
    if (accepted) {
      try {
        return await store.transaction(async (trx) => {
          // the answer used up and the attempt ended first: rows that no transaction holding the audit lock waits for, so
          // that lock (PostgreSQL: one for every process) is held for fewer round trips (docs/decisions/0016)
          if (accepted.replay && !(await this.deps.devices.consume(trx, accepted.replay.deviceId, accepted.replay.keys))) throw new AlreadyUsed();
          await this.release(attempt, trx);
          await store.lockWithin(trx, 'audit_log');
          // another answer changed the secret since this one was checked (two answers of one key at once): this one is not taken
          if (accepted.secret && !(await this.deps.devices.replaceCheckedSecret(trx, accepted.secret.checked, accepted.secret.value))) throw new FlowChanged();
          const result = await spec.accept(trx);
          if (result === null) throw new FlowChanged();
          if (accepted.replay && accepted.usedUp) await this.deps.devices.markUsedUp(trx, accepted.replay.deviceId, spec.actor ?? `user:${row.user_id}`);
          return result;
        });
      } catch (error) {
        if (!(error instanceof AlreadyUsed)) {
          // the flow changed under a right answer (or the database failed): no failure to count
          await this.release(attempt);
          throw error instanceof FlowChanged ? new SlsError('FLOW_EXPIRED') : error;
        }
      }
      // the same answer was accepted a moment ago: by this flow (it is used up), or by another (a wrong answer here)
      const current = await findFlow(store.db, row.id, row.kind);
      if (current.state !== open) {
        await this.release(attempt);
        throw new SlsError('FLOW_EXPIRED');
      }
    }
    return this.countWrong(spec, attempt, attempts, who, open);
  }

  /**
   * SQLite (docs/decisions/0019): the attempt, the check and the answer's
   * use in one transaction. BEGIN IMMEDIATE holds the database's write lock
   * until it ends, so no other attempt runs meanwhile and none needs to see
   * this one in flight: a right answer leaves no pending row behind, and one
   * commit does the work of two. A wrong answer is held in flight as `begin`
   * holds it, and counted as on the other path.
   */
  private async answerInOneTransaction<T>(spec: FlowAnswer<T>, who: AttemptOf & { userId: string; actor?: string }, open: FlowState): Promise<T> {
    const { store, clock, policy, lockout, devices } = this.deps;
    const { row } = spec;
    let ended: { result: T } | { attempt: Attempt; attempts: number } | null;
    try {
      ended = await store.transaction(async (trx) => {
        const attempts = await reserveAnswer(trx, row.id, clock.now(), policy.challengeMaxAttempts, open);
        let attempt: Attempt;
        try {
          attempt = await lockout.admit(trx, who.username);
        } catch (error) {
          throw new Refused(error);
        }
        if (attempts === null) return null;
        const accepted = await spec.check();
        // a right answer accepted a moment ago, by another flow, counts as a wrong one (L4)
        if (accepted && (!accepted.replay || (await devices.consume(trx, accepted.replay.deviceId, accepted.replay.keys)))) {
          if (accepted.secret && !(await devices.replaceCheckedSecret(trx, accepted.secret.checked, accepted.secret.value))) throw new FlowChanged();
          const result = await spec.accept(trx);
          if (result === null) throw new FlowChanged();
          if (accepted.replay && accepted.usedUp) await devices.markUsedUp(trx, accepted.replay.deviceId, spec.actor ?? `user:${row.user_id}`);
          return { result };
        }
        await lockout.hold(trx, attempt);
        return { attempt, attempts };
      });
    } catch (error) {
      if (error instanceof FlowChanged) throw new SlsError('FLOW_EXPIRED');
      if (!(error instanceof Refused)) throw error;
      await this.refused(error.cause, who, () => failFlow(store.db, row.id, clock.now(), open));
      throw error.cause;
    }
    if (ended === null) throw new SlsError('FLOW_EXPIRED');
    if ('result' in ended) return ended.result;
    return this.countWrong(spec, ended.attempt, ended.attempts, who, open);
  }

  /** A wrong answer (L3, L5): the flow fails with its last one; the failure is counted and audited; LOGIN_FAILED with the hints. */
  private async countWrong<T>(
    spec: FlowAnswer<T>,
    attempt: Attempt,
    attempts: number,
    who: AttemptOf & { userId: string; actor?: string },
    open: FlowState,
  ): Promise<never> {
    const { store, clock, policy } = this.deps;
    const { row } = spec;
    const attemptsLeft = policy.challengeMaxAttempts - attempts;
    const more: AuditInput[] = [];
    if (attemptsLeft <= 0) {
      await failFlow(store.db, row.id, clock.now(), open);
      more.push({ event: 'login.flow_exhausted', userId: row.user_id, username: row.username, ip: spec.ip, data: { flowId: row.id } });
    }
    await this.fail(attempt, who, { event: spec.failed.event, data: { flowId: row.id, ...spec.failed.data, attemptsLeft } }, more);
    await spec.afterFailure?.();
    throw new SlsError('LOGIN_FAILED', { attemptsLeft, hints: spec.hints });
  }
}

/** How a refused answer ended, for the metrics. */
function answerOutcome(error: unknown): AnswerOutcome {
  if (!(error instanceof SlsError)) return 'refused';
  if (error.code === 'LOGIN_FAILED') return 'wrong';
  if (error.code === 'FLOW_EXPIRED') return 'expired';
  if (error.code === 'LOCKED') return 'locked';
  return 'refused';
}
