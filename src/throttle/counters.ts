/**
 * The counters behind the throttle (X5), shared by every server process:
 * rows of the database (SQLite for one machine, PostgreSQL for several), or
 * Redis when SLS_REDIS_URL is set. A counter counts the hits of one key in
 * one fixed window; an increment is one atomic statement (an upsert, or
 * INCR), never read-modify-write.
 *
 * When Redis fails (unreachable, stopped, or answering too slowly), the
 * database counts instead: the throttle neither opens (unlimited guesses)
 * nor closes (a login outage for everyone), and stays shared by every
 * process (docs/decisions/0017-throttle-without-redis.md).
 */
import { lazyPackage } from '../lazy-package.js';
import type { Store } from '../store/database.js';

const ioredis = lazyPackage<typeof import('ioredis')>('ioredis');

export interface Counters {
  /** Counts a hit of `key` in the window that starts at `windowStart`; returns the hits so far, this one included. */
  hit(key: string, windowStart: number, windowMs: number): Promise<number>;
  /** Forgets windows that ended before `before` (the database's; Redis expires its own). */
  prune(before: number): Promise<void>;
  close(): Promise<void>;
}

export function databaseCounters(store: Store): Counters {
  return {
    async hit(key, windowStart) {
      const row = await store.db
        .insertInto('rate_counters')
        .values({ key, window_start: windowStart, hits: 1 })
        .onConflict((oc) => oc.columns(['key', 'window_start']).doUpdateSet((eb) => ({ hits: eb('rate_counters.hits', '+', 1) })))
        .returning('hits')
        .executeTakeFirstOrThrow();
      return Number(row.hits);
    },
    async prune(before) {
      await store.db.deleteFrom('rate_counters').where('window_start', '<', before).execute();
    },
    close: async () => undefined,
  };
}

/** How long a hit waits for Redis before the database counts it instead. */
export const REDIS_TIMEOUT_MS = 500;
/** After Redis failed to answer, how long the database counts alone before Redis is asked again. */
export const REDIS_PAUSE_MS = 5_000;

/**
 * Redis counters: INCR, and an expiry that outlives the window, in one
 * transaction. While Redis is not connected, or for a pause after it failed
 * or took too long, `fallback` (the database's counters) counts instead;
 * `onFallback` is told of each hit it counts.
 */
export function redisCounters(url: string, fallback: Counters, onFallback: () => void = () => undefined): Counters {
  // no retries: a command the connection lost fails at once, and the database counts it
  const redis = new (ioredis().Redis)(url, { lazyConnect: false, maxRetriesPerRequest: 0, enableOfflineQueue: true, commandTimeout: REDIS_TIMEOUT_MS });
  // a lost connection is retried by the client; it must never end the process
  redis.on('error', () => undefined);
  let pausedUntil = 0;
  const usable = (): boolean => Date.now() >= pausedUntil && ['wait', 'connecting', 'connect', 'ready'].includes(redis.status);
  const incr = async (name: string, windowMs: number): Promise<number> => {
    const results = await redis
      .multi()
      .incr(name)
      .pexpire(name, windowMs * 2)
      .exec();
    const [error, hits] = results?.[0] ?? [new Error('no reply'), 0];
    if (error) throw error;
    return Number(hits);
  };
  return {
    async hit(key, windowStart, windowMs) {
      if (usable()) {
        try {
          return await incr(`sls:rate:${key}:${windowStart}`, windowMs);
        } catch (error) {
          pausedUntil = Date.now() + REDIS_PAUSE_MS;
          // a connection that stopped answering (a hung server, a peer gone without a word) is dropped, with what waits on it, and opened again
          if ((error as Error).message === 'Command timed out') redis.disconnect(true);
        }
      }
      onFallback();
      return fallback.hit(key, windowStart, windowMs);
    },
    // the database's counters, kept while Redis was away
    prune: (before) => fallback.prune(before),
    close: async () => {
      redis.disconnect();
    },
  };
}
