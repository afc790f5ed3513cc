/**
 * Signals between requests, and between server processes: "something about
 * this flow / this device changed". A login page waiting for the phone's
 * approval, and a phone's app waiting for push requests, hold a live
 * connection that such a signal wakes (K3).
 *
 * On PostgreSQL every process LISTENs on one channel and signals are sent
 * with NOTIFY, so a login started on one process learns of an approval that
 * arrived on another, with no extra service. On SQLite they stay in memory,
 * and another process sharing the file is noticed by SQLite's own change
 * counter (`PRAGMA data_version`), read once per process and interval — not
 * once per waiter: ten thousand waiting phones cost one read a second. Signals
 * only wake: waiters read the database again, and every few seconds anyway
 * (every 2 s while nothing else tells them; 10 s while PostgreSQL listens or
 * SQLite's counter is watched), so a lost signal delays and never misleads.
 */
import pg from 'pg';
import { CompiledQuery } from 'kysely';
import { keepPrepared, type Store } from '../store/database.js';

const CHANNEL = 'sls_signals';
// statements with nothing to build, sent as they are (issue 15)
const NOTIFY = 'select pg_notify($1, $2)';
keepPrepared(NOTIFY);
const DATA_VERSION = CompiledQuery.raw('pragma data_version');
/** Waiters read the database again at least this often (SQLite, or PostgreSQL while not listening) … */
const RECHECK_MS = 2_000;
/** … and this often while a PostgreSQL connection listens (signals then arrive from every process). */
const LISTENING_RECHECK_MS = 10_000;
/** After a failed or lost listening connection, the next try waits this long (waiters poll meanwhile). */
const RECONNECT_MS = 1_000;
/** A listening connection that takes longer than this to open is given up (and tried again later). */
const CONNECT_TIMEOUT_MS = 5_000;
/** A waiter waits at most this long for the listening connection before it starts polling anyway. */
const READY_WAIT_MS = 1_000;
/** SQLite: how often a process looks whether another process wrote to the file (then every waiter looks again). */
const CHANGE_POLL_MS = 1_000;

export interface Signals {
  /** Tells every waiter on these topics (in every process) to look again. */
  publish(...topics: string[]): Promise<void>;
  /**
   * Calls `check` until it gives a value, waking on the topics' signals and
   * every few seconds; null when `timeoutMs` passes (or `abort` fires) first.
   */
  waitFor<T>(topics: string[], timeoutMs: number, check: () => Promise<T | null>, abort?: AbortSignal): Promise<T | null>;
  /** The server is stopping (X6): every waiter looks a last time and answers now; new waits do not wait. */
  stopWaiting(): void;
  close(): Promise<void>;
}

/** The event that wakes every waiter when the server stops (not a topic anyone publishes). */
const STOP = Symbol('stop');
/** The event that wakes every waiter to read again (another process wrote to the SQLite file). */
const ANY = Symbol('any');

export const flowTopic = (flowId: string): string => `flow:${flowId}`;
export const deviceTopic = (deviceId: string): string => `device:${deviceId}`;

/**
 * Who waits on what: each waiter's wake-up, by topic. Every waiter also waits
 * on STOP and ANY, so with ten thousand phones waiting those hold ten
 * thousand entries: a waiter leaves its sets in constant time (an
 * EventEmitter's listener arrays are searched and copied on every removal).
 */
class Wakers {
  private readonly byTopic = new Map<string | symbol, Set<() => void>>();

  add(topics: readonly (string | symbol)[], wake: () => void): void {
    for (const topic of topics) {
      const waiting = this.byTopic.get(topic);
      if (waiting) waiting.add(wake);
      else this.byTopic.set(topic, new Set([wake]));
    }
  }

  remove(topics: readonly (string | symbol)[], wake: () => void): void {
    for (const topic of topics) {
      const waiting = this.byTopic.get(topic);
      if (!waiting) continue;
      waiting.delete(wake);
      if (waiting.size === 0) this.byTopic.delete(topic);
    }
  }

  /** Wakes every waiter of the topic (each one leaves the sets as it wakes). */
  wake(topic: string | symbol): void {
    for (const wake of this.byTopic.get(topic) ?? []) wake();
  }
}

class LocalSignals implements Signals {
  protected readonly wakers = new Wakers();
  protected closed = false;
  /** Waiters answer at once (the server is stopping). */
  private stopped = false;

  async publish(...topics: string[]): Promise<void> {
    for (const topic of topics) this.wakers.wake(topic);
  }

  protected async ready(): Promise<void> {}

  /** How long a waiter may rely on signals before it reads the database again. */
  protected recheckMs(): number {
    return RECHECK_MS;
  }

  /** Resolves on a signal of one of the topics, after `ms`, or when aborted. */
  private next(topics: string[], ms: number, abort?: AbortSignal): Promise<void> {
    const waitingOn = [...topics, STOP, ANY];
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.remove(waitingOn, done);
        abort?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(waitingOn, done);
      abort?.addEventListener('abort', done);
    });
  }

  async waitFor<T>(topics: string[], timeoutMs: number, check: () => Promise<T | null>, abort?: AbortSignal): Promise<T | null> {
    const end = Date.now() + timeoutMs;
    // a slow or failing listening connection never holds a waiter: it polls until the connection is there
    if (!this.stopped) await Promise.race([this.ready(), this.next([], Math.min(timeoutMs, READY_WAIT_MS), abort)]);
    for (;;) {
      const value = await check();
      const left = end - Date.now();
      if (value !== null || left <= 0 || abort?.aborted || this.stopped) return value;
      await this.next(topics, Math.min(left, this.recheckMs()), abort);
    }
  }

  stopWaiting(): void {
    this.stopped = true;
    this.wakers.wake(STOP);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopWaiting();
  }
}

/** NOTIFY to send, one LISTENing connection per process to receive. */
class PostgresSignals extends LocalSignals {
  private client: pg.Client | null = null;
  private connecting: Promise<void> | null = null;
  /** No new listening connection before this time (ms since the epoch): a failure backs off. */
  private retryAt = 0;

  constructor(private readonly store: Store) {
    super();
  }

  override async publish(...topics: string[]): Promise<void> {
    for (const topic of topics) await this.store.db.executeQuery(CompiledQuery.raw(NOTIFY, [CHANNEL, topic]));
  }

  protected override recheckMs(): number {
    return this.client ? LISTENING_RECHECK_MS : RECHECK_MS;
  }

  /**
   * Listens from the first waiter on; a failed or lost connection is opened
   * again, at most once every RECONNECT_MS (waiters poll meanwhile).
   */
  protected override ready(): Promise<void> {
    if (this.closed || this.client) return Promise.resolve();
    if (!this.connecting && Date.now() >= this.retryAt) {
      this.connecting = this.listen()
        .catch(() => {
          this.retryAt = Date.now() + RECONNECT_MS;
        })
        .finally(() => {
          this.connecting = null;
        });
    }
    return this.connecting ?? Promise.resolve();
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.store.location, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
    client.on('notification', (message) => {
      if (message.payload) this.wakers.wake(message.payload);
    });
    client.on('error', () => {
      if (this.client === client) this.client = null;
      this.retryAt = Date.now() + RECONNECT_MS;
      client.end().catch(() => undefined);
      if (!this.closed) setTimeout(() => void this.ready(), RECONNECT_MS).unref();
    });
    try {
      await client.connect();
      await client.query(`listen ${CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end();
      return;
    }
    this.client = client;
  }

  override async close(): Promise<void> {
    await super.close();
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }
}

/**
 * SQLite: signals in memory for this process; writes by other processes
 * sharing the file are seen by SQLite's change counter, which one timer per
 * process reads while anyone waits (a change wakes every waiter to look).
 */
class SqliteSignals extends LocalSignals {
  private waiters = 0;
  private timer: NodeJS.Timeout | null = null;
  private version: number | null = null;

  constructor(private readonly store: Store) {
    super();
  }

  protected override recheckMs(): number {
    return this.timer ? LISTENING_RECHECK_MS : RECHECK_MS;
  }

  override async waitFor<T>(topics: string[], timeoutMs: number, check: () => Promise<T | null>, abort?: AbortSignal): Promise<T | null> {
    this.waiters += 1;
    if (!this.timer && !this.closed) {
      this.timer = setInterval(() => void this.watch(), CHANGE_POLL_MS);
      this.timer.unref();
      // the counter as it stands before the first look: a write by another process from now on is seen
      await this.watch();
    }
    try {
      return await super.waitFor(topics, timeoutMs, check, abort);
    } finally {
      this.waiters -= 1;
      if (this.waiters === 0) this.stopWatching();
    }
  }

  /** Reads the change counter; another process's write wakes every waiter. A failed read wakes them too (they read the database). */
  private async watch(): Promise<void> {
    let version: number | null = null;
    try {
      const { rows } = await this.store.db.executeQuery(DATA_VERSION as CompiledQuery<{ data_version: number }>);
      version = rows[0]?.data_version ?? null;
    } catch {
      version = null;
    }
    const changed = version === null || (this.version !== null && version !== this.version);
    this.version = version;
    if (changed) this.wakers.wake(ANY);
  }

  private stopWatching(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.version = null;
  }

  override async close(): Promise<void> {
    this.stopWatching();
    await super.close();
  }
}

export function openSignals(store: Store): Signals {
  return store.dialect === 'postgres' ? new PostgresSignals(store) : new SqliteSignals(store);
}
