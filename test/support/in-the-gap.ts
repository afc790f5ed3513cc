/**
 * L8 (decisions 0031, 0042): puts another request's work in the gap of a
 * request under test — after it checked its session, before it writes —
 * through a hook on the store, never a timing.
 */
import { currentRequestId, requestContext } from '../../src/request-context.js';
import type { Store } from '../../src/store/database.js';

export interface Gap<T> {
  /** Whether `act` ran (a request opened a transaction). */
  fired: () => boolean;
  /** What `act` gave, once it ran. */
  result: () => T | undefined;
  /** Takes the hook off the store (done by itself when `act` runs). */
  restore: () => void;
}

/**
 * Runs `act` to its end the first time code inside an HTTP request opens a
 * transaction on `store`, outside that request's context, as another request
 * or process would.
 */
export function inTheGap<T>(store: Store, act: () => Promise<T>): Gap<T> {
  const original = { transaction: store.transaction, serialized: store.serialized };
  let fired = false;
  let result: T | undefined;
  const restore = () => {
    store.transaction = original.transaction;
    store.serialized = original.serialized;
  };
  const first = async () => {
    if (fired || currentRequestId() === undefined) return;
    fired = true;
    restore();
    result = await requestContext.exit(act);
  };
  store.transaction = async (fn) => {
    await first();
    return original.transaction(fn);
  };
  store.serialized = async (name, fn) => {
    await first();
    return original.serialized(name, fn);
  };
  return { fired: () => fired, result: () => result, restore };
}
