/**
 * What a session may do, decided in one place by named checks (GUIDE
 * lesson 4), for every API route and page that acts with a session:
 *
 * - A5: a session opened with a one-time password from client services may
 *   only step up and change the password (PASSWORD_CHANGE_REQUIRED);
 * - L8: a trading session opens trading only: portal tasks need a portal
 *   session (PORTAL_SESSION_REQUIRED);
 * - T3: a temporary passcode older than 2 days opens only the online card
 *   pages and the reactivation of a device (SCOPE_ONLINE_CARD_ONLY);
 * - X7, V1: a change of the security settings needs a step-up with the
 *   device within the last minutes (STEP_UP_REQUIRED);
 * - V1, X7: so does every action of staff on an account or a setting (the
 *   help desk and admin API, the console's forms): a stolen staff session
 *   alone must not hand over a client's account (STEP_UP_REQUIRED).
 *
 * docs/decisions/0011-sessions-and-step-up.md
 */
import { SlsError, type ErrorCode } from '../errors.js';
import type { Session } from '../sessions/sessions.js';

/**
 * What a request needs of its session:
 * - `any`: to know who is signed in, to log out;
 * - `portal`: to read the portal's pages and the account's settings;
 * - `settings`: to change a portal setting that is not a security setting
 *   (the notices' language and time zone, N1): a full-scope portal session,
 *   no step-up (T3: a limited session only prints and activates the card);
 * - `temporary`: the online security card and reactivating a device (T3);
 * - `step_up`: to verify again (V1);
 * - `password`: to change the password (A5: also while a change is required);
 * - `security`: to change the security settings (X7);
 * - `staff`: to read in the help desk console and API (search, a user's
 *   page, the audit log); the staff member's role is checked by the help
 *   desk (FORBIDDEN_ROLE);
 * - `staff_action`: every action of staff that changes something (an
 *   identity verification, a temporary passcode, a password reset, an
 *   unlock, a device's state, an OpenID client, an equity…): as `staff`,
 *   with a fresh step-up as for `security` (V1, X7; decision 0011);
 * - `application`: to open an application through OpenID Connect (I1; the
 *   caller matches the client's app, portal or trading, to the session's).
 */
export type SessionNeed = 'any' | 'portal' | 'settings' | 'temporary' | 'step_up' | 'password' | 'security' | 'staff' | 'staff_action' | 'application';

interface SessionCheck {
  name: string;
  /** The refusal, or null when the check lets the session through. */
  refuse(session: Session, need: SessionNeed, now: number, stepUpFreshMs: number): ErrorCode | null;
}

const passwordChangeFirst: SessionCheck = {
  name: 'password-change-first',
  refuse: (session, need) => (session.passwordChangeRequired && !['any', 'step_up', 'password'].includes(need) ? 'PASSWORD_CHANGE_REQUIRED' : null),
};

const portalTasksInThePortal: SessionCheck = {
  name: 'portal-tasks-in-the-portal',
  refuse: (session, need) => (need !== 'any' && need !== 'application' && session.app !== 'portal' ? 'PORTAL_SESSION_REQUIRED' : null),
};

const temporaryScope: SessionCheck = {
  name: 'temporary-passcode-scope',
  refuse: (session, need) => (session.scope !== 'full' && !['any', 'portal', 'temporary'].includes(need) ? 'SCOPE_ONLINE_CARD_ONLY' : null),
};

/** The needs that ask for a step-up within the last minutes (V1). */
const FRESH_STEP_UP_NEEDS: readonly SessionNeed[] = ['security', 'password', 'staff_action'];

const freshStepUp: SessionCheck = {
  name: 'fresh-step-up',
  refuse: (session, need, now, stepUpFreshMs) =>
    FRESH_STEP_UP_NEEDS.includes(need) && (session.verifiedAt === null || session.verifiedAt <= now - stepUpFreshMs) ? 'STEP_UP_REQUIRED' : null,
};

const CHECKS: readonly SessionCheck[] = [passwordChangeFirst, portalTasksInThePortal, temporaryScope, freshStepUp];

/** The first refusal of the checks, with the check's name, or null when the session may. */
export function sessionRefusal(session: Session, need: SessionNeed, now: number, stepUpFreshMs: number): { code: ErrorCode; check: string } | null {
  for (const check of CHECKS) {
    const code = check.refuse(session, need, now, stepUpFreshMs);
    if (code) return { code, check: check.name };
  }
  return null;
}

/** Where a step-up starts, told with STEP_UP_REQUIRED. */
export const STEP_UP_API = '/api/v1/step-up';

export function refusalError(code: ErrorCode): SlsError {
  return code === 'STEP_UP_REQUIRED' ? new SlsError(code, { stepUp: STEP_UP_API }) : new SlsError(code);
}
