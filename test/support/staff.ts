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
  cookies(): Promise<BrowserCookie[]>;
  addCookies(cookies: BrowserCookie[]): Promise<void>;
}

/** A cookie as Playwright reads and writes it. */
interface BrowserCookie {
  name: string;
  value: string;
  domain: string;
  path: string;
  expires: number;
  httpOnly: boolean;
  secure: boolean;
  sameSite: 'Lax' | 'Strict' | 'None';
}

type StaffSession = string | Record<string, string> | SignedInBrowser | SignedInContext;

/**
 * Steps up a staff session with the staff member's `card`: a Bearer token,
 * the headers that carry it, or a browser signed in through the pages (its
 * session cookie). The session may then act until the step-up is stale.
 * V1, L8 (decision 0042): the step-up replaced the session's token: headers
 * and browsers take the new one in place; the new token is returned (a
 * Bearer token given as a string is not the session's any more).
 */
export async function stepUpStaff(app: FastifyInstance, session: StaffSession, card: CardFile): Promise<string> {
  const headers = await headersOf(session);
  const done = await stepUp(app, headers, (challenge) => cardAnswer(card, challenge.question as string));
  const token = done.body.session.token as string;
  if (typeof session !== 'string') {
    if ('jar' in session && session.jar instanceof Map) session.jar.set(SESSION_COOKIE, token);
    else if ('cookies' in session && typeof session.cookies === 'function') {
      const context = session as SignedInContext;
      const cookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE)!;
      await context.addCookies([{ ...cookie, value: token }]);
    }
  }
  return token;
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
