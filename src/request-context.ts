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
  /**
   * V1, L8 (decision 0042): the hash of the token the request was let through with: a session whose token was
   * replaced since (a step-up) no longer acts for that copy of the old one.
   */
  tokenHash?: string | undefined;
  /** The request ended this session itself (a logout, a credential it stood on withdrawn): what it writes next is its own doing. */
  endedHere: boolean;
  /**
   * X1, X7 (decision 0032): the roles the staff member's action was let through for (the help desk's role check), read
   * again under the lock: a staff member demoted meanwhile is refused as the check would have refused them.
   */
  staffRoles?: StaffRolesNeeded | undefined;
  /** A2, O3 (decision 0032): the request changes the security settings on the user's right to: read again under the lock. */
  securityRight?: boolean | undefined;
}

/** What a staff request's role was checked for (`HelpDesk.staff`, `admin`, `staffOnSharing`), for the check under the lock and its audit entry. */
export interface StaffRolesNeeded {
  roles: readonly string[];
  action: string;
  via: string;
  path?: string | undefined;
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
export function actOnSession(
  acting: Omit<ActingSession, 'endedHere' | 'proof' | 'staffRoles' | 'securityRight'> & { proof?: ActingSession['proof']; securityRight?: boolean },
): void {
  const context = requestContext.getStore();
  if (!context) return;
  const before = context.acting?.sessionId === acting.sessionId ? context.acting : undefined;
  context.acting = {
    ...acting,
    proof: before?.proof ?? acting.proof ?? null,
    endedHere: before?.endedHere ?? false,
    staffRoles: before?.staffRoles,
    securityRight: (before?.securityRight ?? false) || (acting.securityRight ?? false),
  };
}

/**
 * X1, X7 (decision 0032): the staff member acting with the request's session was let through by the help desk's role
 * check for `needed.roles`; under the lock their role is read again. Checked again in one request (a view, then an
 * action), the roles that pass every check are kept, with the last action's name.
 */
export function actingNeedsRole(userId: string, needed: StaffRolesNeeded): void {
  const acting = actingSession();
  if (acting?.userId !== userId) return;
  const roles = acting.staffRoles ? acting.staffRoles.roles.filter((role) => needed.roles.includes(role)) : needed.roles;
  acting.staffRoles = { ...needed, roles };
}

/** A2, O3 (decision 0032): the user acting with the request's session was found to have the right to change the security settings. */
export function actingNeedsSecurityRight(userId: string): void {
  const acting = actingSession();
  if (acting?.userId === userId) acting.securityRight = true;
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

/** V1, L8 (decision 0042): the request being handled replaced its session's token itself: it goes on with the new one. */
export function notedRotated(sessionId: string, tokenHash: string): void {
  const acting = actingSession();
  if (acting?.sessionId === sessionId) acting.tokenHash = tokenHash;
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
