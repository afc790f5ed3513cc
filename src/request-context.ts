/**
 * What the server knows of the request being handled, for code far from the
 * HTTP layer: its id, carried into the audit entries written while it runs
 * (node:async_hooks; set by the app's first onRequest hook).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestContext {
  requestId: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

/** The id of the request being handled, or undefined outside a request (CLI, background jobs). */
export function currentRequestId(): string | undefined {
  return requestContext.getStore()?.requestId;
}
