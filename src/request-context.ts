/**
 * What the server knows of the request being handled, for code far from the
 * HTTP layer: its id, carried into the audit entries written while it runs,
 * and the session it acts on the authority of, checked again by every
 * transaction it writes in (node:async_hooks; set by the app's first
 * onRequest hook).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * L8 (decision 0031): the session a request acts on the authority of, once
 * the session guard let it through: each transaction the request writes in
 * reads it again under the audit lock (sessions/in-flight.ts).
 */
export interface ActingSession {
  sessionId: string;
  userId: string;
  /** What the request needed of the session (policy/session-access.ts), told with a refusal. */
  need: string;
  /** V1, T3, X7: the request needed the session's last proof to stand (a fresh step-up, a permanent device): the refusal if it no longer does. */
  proof: 'STEP_UP_REQUIRED' | 'PERMANENT_DEVICE_REQUIRED' | null;
  /** Where the request came from and what it asked, for the audit entry of a refusal. */
  ip: string | null;
  method: string;
  path: string;
  /** The request ended this session itself (a logout, a credential it stood on withdrawn): what it writes next is its own doing. */
  endedHere: boolean;
}

export interface RequestContext {
  requestId: string;
  acting?: ActingSession | undefined;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

/** The id of the request being handled, or undefined outside a request (CLI, background jobs). */
export function currentRequestId(): string | undefined {
  return requestContext.getStore()?.requestId;
}

/** The session the request being handled acts on the authority of, or undefined (no request, no session: a login, an API key, the CLI). */
export function actingSession(): ActingSession | undefined {
  return requestContext.getStore()?.acting;
}

/**
 * L8: the request acts on the authority of a session from now on (the
 * session guard let it through for `need`). Called again in one request, the
 * proof it needs is the first one asked for, kept.
 */
export function actOnSession(acting: Omit<ActingSession, 'endedHere' | 'proof'> & { proof?: ActingSession['proof'] }): void {
  const context = requestContext.getStore();
  if (!context) return;
  const before = context.acting?.sessionId === acting.sessionId ? context.acting : undefined;
  context.acting = { ...acting, proof: before?.proof ?? acting.proof ?? null, endedHere: before?.endedHere ?? false };
}

/** V1, T3, X7: the request needs the last proof of the session it acts with to stand (`ActingSession.proof`). */
export function actingNeedsProof(sessionId: string, refusal: 'STEP_UP_REQUIRED' | 'PERMANENT_DEVICE_REQUIRED'): void {
  const acting = actingSession();
  if (acting?.sessionId === sessionId && acting.proof === null) acting.proof = refusal;
}

/** L8: sessions were ended by the request being handled: the session it acts with among them, it ended it itself. */
export function notedEnded(sessionIds: readonly string[]): void {
  const acting = actingSession();
  if (acting && sessionIds.includes(acting.sessionId)) acting.endedHere = true;
}

/** The request was answered: work it left behind (a timer, a delivery) no longer acts on its session's authority. */
export function requestAnswered(context: RequestContext | undefined): void {
  if (context) context.acting = undefined;
}

/** Runs `fn` for the request being handled but on no session's authority: background work it starts (a push sent, a notice). */
export function detached<T>(fn: () => T): T {
  const context = requestContext.getStore();
  return context ? requestContext.run({ requestId: context.requestId }, fn) : fn();
}
