/**
 * The outbox worker (X6, N1): delivers the notices stored by
 * Notifier.notify(), in every server process and in `sls jobs run`.
 *
 * - A notice is *claimed* by one conditional `UPDATE … RETURNING` (on
 *   PostgreSQL its candidates are picked `FOR UPDATE SKIP LOCKED`): status
 *   `sending`, a fresh claim token, one more attempt, and a lease
 *   (`lease_until`) renewed while its delivery runs. Two workers, in one
 *   process or many, never hold the same notice.
 * - One attempt per claim. Sent: `sent`. A failure that may pass (timeouts,
 *   SMTP 4xx, HTTP 429 and 5xx): back to `pending`, `next_attempt_at` after
 *   an exponential backoff, the error kept; after the last attempt, or a
 *   failure that will not pass (a refused recipient, bad credentials, a relay
 *   without the TLS required): `failed`. Every outcome is recorded only if
 *   the claim is still this worker's.
 * - A process that stops or dies while delivering leaves its notices
 *   `sending`; their lease lapses (SLS_OUTBOX_LEASE_MS) and any worker takes
 *   them again. A notice handed to the gateway by a process killed before it
 *   could record it may thus go out twice; never is one sent by two live
 *   workers, nor lost.
 *
 * Codes (next_attempt_at null) are never taken: they are delivered inline.
 */
import { randomBytes } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Clock } from '../clock.js';
import type { OutboxConfig } from '../config.js';
import { backoffDelay, isRetryable } from '../delivery/retry.js';
import type { Executor, Store } from '../store/database.js';
import type { NotificationsTable } from '../store/schema.js';
import type { Notifier, OutgoingMessage } from './notifier.js';

export type OutboxOutcome = 'sent' | 'retrying' | 'failed' | 'lost';

export interface OutboxReport {
  sent: number;
  retrying: number;
  failed: number;
}

export interface OutboxWorkerDeps {
  store: Store;
  clock: Clock;
  notifier: Pick<Notifier, 'providerFor' | 'onQueued'>;
  config: OutboxConfig;
  /** Told of what happened to each attempt (for the logs; never the message). */
  log?: (event: { id: string; channel: OutgoingMessage['channel']; outcome: OutboxOutcome; attempts: number; error?: string }) => void;
}

type Row = Selectable<NotificationsTable>;

/** The wait before attempt `attempts + 1`: base, 2·base, 4·base …, at most `max`. */
export function retryDelay(config: Pick<OutboxConfig, 'retryBaseMs' | 'retryMaxMs'>, attempts: number): number {
  return Math.min(config.retryMaxMs, backoffDelay(config.retryBaseMs, Math.max(1, attempts)));
}

export class OutboxWorker {
  private started = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private again = false;
  private readonly inFlight = new Set<Promise<OutboxOutcome>>();

  constructor(private readonly deps: OutboxWorkerDeps) {
    deps.notifier.onQueued(() => this.wake());
  }

  /** Runs in the background: every pollMs, and at once when this process stores a notice or a delivery ends. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops taking notices and waits (at most graceMs) for the deliveries under way; those still running keep their lease. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopped = true;
    this.started = false;
    clearTimeout(this.timer);
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  /** Looks for due notices soon (a notice was stored, a delivery ended). */
  wake(): void {
    if (!this.started || this.stopped) return;
    if (this.ticking) this.again = true;
    else this.schedule(0);
  }

  /**
   * Claims the notices due now (as many as the concurrency allows) and
   * delivers them; resolves when those deliveries are recorded.
   */
  async runOnce(): Promise<OutboxReport> {
    const free = Math.max(0, this.deps.config.concurrency - this.inFlight.size);
    const outcomes = await Promise.all(await this.claimAndDeliver(free));
    return tally(outcomes);
  }

  /** Runs until no notice is due now (what `sls jobs run` does); retries due later are left for later. */
  async drain(): Promise<OutboxReport> {
    const total: OutboxReport = { sent: 0, retrying: 0, failed: 0 };
    for (;;) {
      const report = await this.runOnce();
      total.sent += report.sent;
      total.retrying += report.retrying;
      total.failed += report.failed;
      if (report.sent + report.retrying + report.failed === 0 && this.inFlight.size === 0) return total;
      if (report.sent + report.retrying + report.failed === 0) await Promise.race([...this.inFlight]);
    }
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    try {
      do {
        this.again = false;
        const free = this.deps.config.concurrency - this.inFlight.size;
        if (free > 0 && !this.stopped) {
          const launched = await this.claimAndDeliver(free);
          // a full batch: more may be waiting
          if (launched.length === free) this.again = true;
        }
      } while (this.again && !this.stopped);
    } catch {
      // the database may be away a moment: the next poll tries again
    } finally {
      this.ticking = false;
      if (this.started && !this.stopped) this.schedule(this.deps.config.pollMs);
    }
  }

  /** Claims up to `limit` due notices and starts their deliveries. */
  private async claimAndDeliver(limit: number): Promise<Promise<OutboxOutcome>[]> {
    if (limit <= 0) return [];
    const claim = randomBytes(12).toString('base64url');
    const rows = await this.claim(limit, claim);
    return rows.map((row) => {
      const delivery = this.deliver(row, claim);
      this.inFlight.add(delivery);
      void delivery.finally(() => {
        this.inFlight.delete(delivery);
        this.wake();
      });
      return delivery;
    });
  }

  /** Due: pending and its time has come, or claimed by a worker whose lease lapsed. Never a code (no next_attempt_at). */
  private due(db: Executor, now: number) {
    return db
      .selectFrom('notifications')
      .select('id')
      .where('next_attempt_at', 'is not', null)
      .where((eb) =>
        eb.or([eb.and([eb('status', '=', 'pending'), eb('next_attempt_at', '<=', now)]), eb.and([eb('status', '=', 'sending'), eb('lease_until', '<=', now)])]),
      );
  }

  private async claim(limit: number, claim: string): Promise<Row[]> {
    const { store, clock, config } = this.deps;
    const now = clock.now();
    // a read first: an idle poll takes no write lock
    if (!(await this.due(store.db, now).limit(1).executeTakeFirst())) return [];
    let candidates = this.due(store.db, now).orderBy('next_attempt_at').limit(limit);
    if (store.dialect === 'postgres') candidates = candidates.forUpdate().skipLocked();
    return (
      store.db
        .updateTable('notifications')
        .set((eb) => ({ status: 'sending', claim, lease_until: now + config.leaseMs, attempts: eb('attempts', '+', 1) }))
        .where('id', 'in', candidates)
        // checked again on the row itself: a row another worker claimed meanwhile is not taken
        .where('next_attempt_at', 'is not', null)
        .where((eb) =>
          eb.or([
            eb.and([eb('status', '=', 'pending'), eb('next_attempt_at', '<=', now)]),
            eb.and([eb('status', '=', 'sending'), eb('lease_until', '<=', now)]),
          ]),
        )
        .returningAll()
        .execute()
    );
  }

  private async deliver(row: Row, claim: string): Promise<OutboxOutcome> {
    const { store, clock, config, notifier } = this.deps;
    const provider = notifier.providerFor(row.channel);
    const message: OutgoingMessage = {
      id: row.id,
      channel: row.channel,
      recipient: row.recipient,
      subject: row.subject,
      body: row.body,
      language: row.language as OutgoingMessage['language'],
    };
    // the lease is renewed while the gateway takes its time, so no other worker takes the notice meanwhile
    const renew = setInterval(
      () => {
        void store.db
          .updateTable('notifications')
          .set({ lease_until: clock.now() + config.leaseMs })
          .where('id', '=', row.id)
          .where('claim', '=', claim)
          .where('status', '=', 'sending')
          .execute()
          .catch(() => undefined);
      },
      Math.max(50, Math.floor(config.leaseMs / 3)),
    );
    renew.unref();

    let failure: { error: string; retryable: boolean } | null = null;
    try {
      await provider.deliver(message);
    } catch (error) {
      failure = { error: error instanceof Error ? error.message.slice(0, 500) : 'delivery failed', retryable: isRetryable(error) };
    } finally {
      clearInterval(renew);
    }

    const now = clock.now();
    const outcome: OutboxOutcome = !failure ? 'sent' : failure.retryable && row.attempts < config.maxAttempts ? 'retrying' : 'failed';
    const update =
      outcome === 'sent'
        ? { status: 'sent' as const, sent_at: now, error: null, next_attempt_at: null, lease_until: null, provider: provider.name }
        : outcome === 'retrying'
          ? {
              status: 'pending' as const,
              error: failure!.error,
              next_attempt_at: now + retryDelay(config, row.attempts),
              lease_until: null,
              provider: provider.name,
            }
          : { status: 'failed' as const, error: failure!.error, next_attempt_at: null, lease_until: null, provider: provider.name };
    let recorded = false;
    try {
      const result = await store.db.updateTable('notifications').set(update).where('id', '=', row.id).where('claim', '=', claim).executeTakeFirst();
      recorded = Number(result.numUpdatedRows) === 1;
    } catch {
      // the database is away: the lease lapses and the notice is taken again
    }
    const final: OutboxOutcome = recorded ? outcome : 'lost';
    this.deps.log?.({ id: row.id, channel: row.channel, outcome: final, attempts: row.attempts, ...(failure ? { error: failure.error } : {}) });
    return final;
  }
}

function tally(outcomes: OutboxOutcome[]): OutboxReport {
  return {
    sent: outcomes.filter((o) => o === 'sent').length,
    retrying: outcomes.filter((o) => o === 'retrying').length,
    failed: outcomes.filter((o) => o === 'failed').length,
  };
}
