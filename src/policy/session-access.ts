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
 *   device within the last minutes, the device still standing (L8: not
 *   revoked, lost or unshared since) (STEP_UP_REQUIRED);
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

/** What a session's last proof is worth now (`StepUp.proof`, through `Devices.usableBy`). */
export interface ProofStanding {
  /**
   * L8, H: the device of the session's last proof (its latest step-up's,
   * else its login's) is still active and still the user's own or shared
   * with them: not revoked, reported lost, suspended, replaced or unshared.
   */
  stands: boolean;
  /** T3, X7: that device is permanent, not a temporary passcode or online card (false when it no longer stands). */
  permanent: boolean;
}

/** What the checks know besides the session: the time, the policy, and the session's last proof, read only when a check asks. */
export interface AccessContext {
  now: number;
  stepUpFreshMs: number;
  proof: () => Promise<ProofStanding>;
}

interface SessionCheck {
  name: string;
  /** The refusal, or null when the check lets the session through. */
  refuse(session: Session, need: SessionNeed, context: AccessContext): ErrorCode | null | Promise<ErrorCode | null>;
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
export const FRESH_STEP_UP_NEEDS: readonly SessionNeed[] = ['security', 'password', 'staff_action'];

/**
 * V1, X7, L8: a step-up within the last minutes, with a device that still
 * stands: a step-up made with a device since revoked, reported lost,
 * suspended, replaced or no longer shared proves nothing any more (as for
 * the permanent proof of staff and the acr told to applications). The
 * device is read only for a need that asks for a fresh step-up and a
 * session that has one: no other request pays for it.
 */
const freshStepUp: SessionCheck = {
  name: 'fresh-step-up',
  refuse: async (session, need, { now, stepUpFreshMs, proof }) => {
    if (!FRESH_STEP_UP_NEEDS.includes(need)) return null;
    if (session.verifiedAt === null || session.verifiedAt <= now - stepUpFreshMs) return 'STEP_UP_REQUIRED';
    return (await proof()).stands ? null : 'STEP_UP_REQUIRED';
  },
};

const CHECKS: readonly SessionCheck[] = [passwordChangeFirst, portalTasksInThePortal, temporaryScope, freshStepUp];

/**
 * The first refusal of the checks, with the check's name, or null when the session may. `beforeStepUp`: only the checks
 * that come before the fresh step-up's (a staff route checks the role between them, decision 0034).
 */
export async function sessionRefusal(
  session: Session,
  need: SessionNeed,
  context: AccessContext,
  options: { beforeStepUp?: boolean } = {},
): Promise<{ code: ErrorCode; check: string } | null> {
  for (const check of CHECKS) {
    if (options.beforeStepUp && check === freshStepUp) break;
    const code = await check.refuse(session, need, context);
    if (code) return { code, check: check.name };
  }
  return null;
}

/** Where a step-up starts, told with STEP_UP_REQUIRED. */
export const STEP_UP_API = '/api/v1/step-up';

export function refusalError(code: ErrorCode): SlsError {
  return code === 'STEP_UP_REQUIRED' ? new SlsError(code, { stepUp: STEP_UP_API }) : new SlsError(code);
}
