/**
 * The counters behind the throttle (X5), shared by every server process:
 * rows of the database (SQLite for one machine, PostgreSQL for several), or
 * Redis when SLS_REDIS_URL is set. A counter counts the hits of one key in
 * one fixed window; an increment is one atomic statement (an upsert, or
 * INCR), never read-modify-write.
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

/** Redis counters: INCR, and an expiry that outlives the window, in one transaction. */
export function redisCounters(url: string): Counters {
  const redis = new (ioredis().Redis)(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
  // a lost connection is retried by the client; it must never end the process
  redis.on('error', () => undefined);
  return {
    async hit(key, windowStart, windowMs) {
      const name = `sls:rate:${key}:${windowStart}`;
      const results = await redis
        .multi()
        .incr(name)
        .pexpire(name, windowMs * 2)
        .exec();
      const [error, hits] = results?.[0] ?? [new Error('no reply'), 0];
      if (error) throw error;
      return Number(hits);
    },
    prune: async () => undefined,
    close: async () => {
      redis.disconnect();
    },
  };
}
