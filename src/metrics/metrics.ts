/**
 * The server's metrics in the Prometheus text format (prom-client), behind
 * GET /metrics (docs/operations.md, decision 0013). Each Metrics has its own
 * registry: several servers in one process (the tests) never share a count.
 *
 * Labels have few values, all known in advance (applications, device types,
 * flow kinds, outcomes, channels): never a username, an address or an id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditInput } from '../audit/audit-log.js';
import type { DeliveryResult, Observer, SecondFactorAnswer } from './observer.js';

const APPS = new Set(['portal', 'trading']);
const FLOW_KINDS = new Set(['login', 'activation', 'pin_change', 'mobile_activation', 'step_up', 'sharing']);

/** A label value from a known set, or `other` (a label never takes a value from a client). */
function known(set: Set<string>, value: unknown, fallback = 'other'): string {
  return typeof value === 'string' && set.has(value) ? value : fallback;
}

/** Connections of the database pool (PostgreSQL); SQLite has one connection. */
export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

export interface MetricsSources {
  /** Notices waiting for the outbox worker, by status (a cheap count, on each scrape). */
  outboxPending(): Promise<{ pending: number; sending: number }>;
  pool(): PoolStats;
  /** The registered device types: the only values of the device_type label. */
  deviceTypes: readonly string[];
}

export class Metrics implements Observer {
  readonly registry = new Registry();
  private readonly loginsStarted: Counter<'app' | 'device_type'>;
  private readonly loginsSucceeded: Counter<'app' | 'device_type'>;
  private readonly loginsFailed: Counter<'app' | 'device_type' | 'stage'>;
  private readonly locks: Counter;
  private readonly answerSeconds: Histogram<'kind' | 'device_type' | 'outcome'>;
  private readonly deliveries: Counter<'channel' | 'result'>;
  private readonly longPolls: Gauge;
  private readonly throttleFallbacks: Counter;
  private readonly auditChainIntact: Gauge;
  private readonly auditChainVerified: Gauge;
  private processMetrics = false;

  private readonly deviceTypes: Set<string>;

  constructor(sources: MetricsSources) {
    this.deviceTypes = new Set(sources.deviceTypes);
    const registers = [this.registry];
    this.loginsStarted = new Counter({
      name: 'sls_logins_started_total',
      help: 'Login flows started: the password was right and the challenge of the device offered first issued',
      labelNames: ['app', 'device_type'],
      registers,
    });
    this.loginsSucceeded = new Counter({
      name: 'sls_logins_succeeded_total',
      help: 'Logins completed with a session',
      labelNames: ['app', 'device_type'],
      registers,
    });
    this.loginsFailed = new Counter({
      name: 'sls_logins_failed_total',
      help: 'Failed login attempts: a wrong password (stage=password, device_type=none) or a wrong second-factor answer',
      labelNames: ['app', 'device_type', 'stage'],
      registers,
    });
    this.locks = new Counter({ name: 'sls_locks_total', help: 'Users locked after consecutive failures (L3)', registers });
    this.answerSeconds = new Histogram({
      name: 'sls_second_factor_answer_seconds',
      help: 'Time the server took to handle a second-factor answer, by flow kind, device type and outcome',
      labelNames: ['kind', 'device_type', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.deliveries = new Counter({
      name: 'sls_deliveries_total',
      help: 'Delivery attempts of notices (outbox worker: email, sms, voice) and push requests, by result',
      labelNames: ['channel', 'result'],
      registers,
    });
    this.longPolls = new Gauge({ name: 'sls_long_polls_waiting', help: 'Long polls (login pages, apps, step-ups) waiting now', registers });
    this.throttleFallbacks = new Counter({
      name: 'sls_throttle_fallbacks_total',
      help: 'Hits of the throttle counted by the database because Redis was unreachable or too slow (X5, decision 0017)',
      registers,
    });
    this.auditChainIntact = new Gauge({
      name: 'sls_audit_chain_intact',
      help: "The server's own check of the audit chain (X1): 1 intact up to sls_audit_chain_verified_seq, 0 broken (the log says what), absent before the first check",
      registers,
    });
    this.auditChainVerified = new Gauge({
      name: 'sls_audit_chain_verified_seq',
      help: "The newest audit entry the server's own check has verified (X1); it follows the log's head",
      registers,
    });
    new Gauge({
      name: 'sls_outbox_notices',
      help: 'Notices in the outbox not delivered yet, by status (pending: waiting for an attempt; sending: claimed by a worker)',
      labelNames: ['status'],
      registers,
      async collect() {
        try {
          const counts = await sources.outboxPending();
          this.set({ status: 'pending' }, counts.pending);
          this.set({ status: 'sending' }, counts.sending);
        } catch {
          // the database is away: the scrape still answers, without this gauge's new value
        }
      },
    });
    const pool = (name: string, help: string, pick: (s: PoolStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(pick(sources.pool()));
        },
      });
    pool('sls_db_pool_connections', 'Database connections open (SQLite: 1)', (s) => s.total);
    pool('sls_db_pool_idle_connections', 'Database connections open and idle', (s) => s.idle);
    pool('sls_db_pool_waiting_requests', 'Queries waiting for a database connection', (s) => s.waiting);
  }

  /** Adds the process metrics (CPU, memory, event loop, GC) once: only servers that serve /metrics measure them. */
  enableProcessMetrics(): void {
    if (this.processMetrics) return;
    this.processMetrics = true;
    collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** X1: the server's own check of the audit chain (ChainWatch). */
  chainChecked(result: { intact: boolean; verifiedSeq: number }): void {
    this.auditChainIntact.set(result.intact ? 1 : 0);
    this.auditChainVerified.set(result.verifiedSeq);
  }

  /** X5: Redis failed, and the database counted a hit of the throttle instead. */
  throttleFellBack(): void {
    this.throttleFallbacks.inc();
  }

  loginStarted(app: string, deviceType: string): void {
    this.loginsStarted.inc({ app: known(APPS, app), device_type: known(this.deviceTypes, deviceType) });
  }

  secondFactorAnswered(answer: SecondFactorAnswer): void {
    const deviceType = known(this.deviceTypes, answer.deviceType, 'unknown');
    this.answerSeconds.observe({ kind: known(FLOW_KINDS, answer.kind), device_type: deviceType, outcome: answer.outcome }, answer.seconds);
    if (answer.kind === 'login' && answer.outcome === 'wrong') {
      this.loginsFailed.inc({ app: known(APPS, answer.app), device_type: deviceType, stage: 'second_factor' });
    }
  }

  audited(entries: readonly AuditInput[]): void {
    for (const entry of entries) {
      const data = entry.data ?? {};
      switch (entry.event) {
        case 'login.succeeded':
          this.loginsSucceeded.inc({ app: known(APPS, data.app), device_type: known(this.deviceTypes, data.deviceType) });
          break;
        case 'login.password_failed':
          // the first factor of other flows (step-up, activation) is no login
          if (APPS.has(data.app as string)) this.loginsFailed.inc({ app: known(APPS, data.app), device_type: 'none', stage: 'password' });
          break;
        case 'login.locked':
          this.locks.inc();
          break;
        case 'push.sent':
          this.deliveries.inc({ channel: 'push', result: 'sent' });
          break;
        case 'push.failed':
          this.deliveries.inc({ channel: 'push', result: 'failed' });
          break;
        default:
          break;
      }
    }
  }

  delivered(delivery: DeliveryResult): void {
    this.deliveries.inc({ channel: delivery.channel, result: delivery.result });
  }

  waiting(): () => void {
    this.longPolls.inc();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.longPolls.dec();
    };
  }
}
