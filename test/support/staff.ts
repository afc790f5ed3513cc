/**
 * V1, X7: staff act (the help desk and admin API, the console's forms) only
 * with a step-up of their session within the last minutes, as a client
 * changes a security setting. The one helper the tests use to give a staff
 * session its step-up, with the staff member's own card.
 */
import type { FastifyInstance } from 'fastify';
import type { CardFile } from '../../src/devices/devices.js';
import { SESSION_COOKIE } from '../../src/http/session-cookie.js';
import type { IssuedPasscode } from '../../src/helpdesk/helpdesk.js';
import type { Services } from '../../src/services.js';
import { bearer, stepUp } from './api.js';
import { cardAnswer } from './harness.js';

/** A browser signed in through the pages (test/support/html.ts's Agent, or any with a cookie jar): its session cookie carries the token. */
export interface SignedInBrowser {
  readonly jar: Map<string, string>;
}

/** A real browser's context signed in through the pages (Playwright's BrowserContext). */
export interface SignedInContext {
  cookies(): Promise<{ name: string; value: string }[]>;
}

type StaffSession = string | Record<string, string> | SignedInBrowser | SignedInContext;

/**
 * Steps up a staff session with the staff member's `card`: a Bearer token,
 * the headers that carry it, or a browser signed in through the pages (its
 * session cookie). The session may then act until the step-up is stale.
 */
export async function stepUpStaff(app: FastifyInstance, session: StaffSession, card: CardFile): Promise<void> {
  await stepUp(app, await headersOf(session), (challenge) => cardAnswer(card, challenge.question as string));
}

async function headersOf(session: StaffSession): Promise<Record<string, string>> {
  if (typeof session === 'string') return bearer(session);
  let token: string | undefined;
  if ('jar' in session && session.jar instanceof Map) token = session.jar.get(SESSION_COOKIE);
  else if ('cookies' in session && typeof session.cookies === 'function') token = (await session.cookies()).find((c) => c.name === SESSION_COOKIE)?.value;
  else return session as Record<string, string>;
  if (!token) throw new Error('no session to step up: not signed in');
  return bearer(token);
}

/**
 * T1: client services verify the caller's identity, then issue a temporary
 * passcode (its user's permanent devices `suspended` or `lost`, as staff say).
 */
export async function issuePasscode(services: Services, staffUserId: string, username: string, deviceStatus?: 'suspended' | 'lost'): Promise<IssuedPasscode> {
  const verification = await services.helpDesk.verifyIdentity(staffUserId, username, { method: 'id_document' });
  return services.helpDesk.issueTemporaryPasscode(staffUserId, username, { verificationId: verification.id, ...(deviceStatus ? { deviceStatus } : {}) });
}
