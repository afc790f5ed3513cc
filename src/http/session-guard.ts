/**
 * The one place where a request's session is checked against what the
 * request needs (policy/session-access.ts): every API route and page that
 * acts with a session asks here. A refusal is audited.
 */
import type { FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { PolicyConfig } from '../config.js';
import { SlsError } from '../errors.js';
import { FRESH_STEP_UP_NEEDS, refusalError, sessionRefusal, type AccessContext, type ProofStanding, type SessionNeed } from '../policy/session-access.js';
import { actOnSession, actingNeedsProof } from '../request-context.js';
import { tokenHash, type Session, type Sessions } from '../sessions/sessions.js';
import type { SecuritySettingsRights } from '../identity/security-rights.js';
import type { DeviceType } from '../devices/types.js';
import { assertSameOrigin, fromOwnOrigin, presentedToken, sessionCookieOf, type PresentedToken } from './session-cookie.js';

export interface SessionGuardDeps {
  sessions: Sessions;
  audit: AuditLog;
  clock: Clock;
  policy: Pick<PolicyConfig, 'stepUpFreshMs'>;
  /** A2, O3: who may change the security settings of an account. */
  rights: SecuritySettingsRights;
  /**
   * L8, T3, X7: what the session's last proof (its latest step-up, else its
   * login) is worth now: whether its device still stands, and whether it is
   * a permanent device, not a temporary passcode or online card (nor the
   * password alone). `StepUp.proof`.
   */
  proof: (session: Session) => Promise<ProofStanding>;
  /** D2, K7, X7, R2: why the session's last proof may not bind a new device of a type, or null (`StepUp.proofToAddRefusal`). */
  proofToAddRefusal: (session: Session, type: DeviceType | null) => Promise<'weaker' | 'loss_unconfirmed' | null>;
  /** The public URL the operator configured (SLS_PUBLIC_URL): our origin behind a proxy that rewrites Host. */
  publicUrl?: string;
  /** Whether cookies are Secure: the session cookie's name then carries `__Host-` (cookieNames). */
  cookieSecure: boolean;
}

/**
 * X1, X7 (decision 0034): a staff-only route's role check, by the user behind the session: it throws 403
 * FORBIDDEN_ROLE (audited `helpdesk.refused`, reason `role`) for a role the route is not for.
 */
export type StaffRoleCheck = (userId: string) => Promise<unknown>;

export class SessionGuard {
  /** The proof of a session read once per request (a request authenticates its own Session object), for the freshness and the permanence alike. */
  private readonly proofs = new WeakMap<Session, Promise<ProofStanding>>();

  constructor(private readonly deps: SessionGuardDeps) {}

  private proofOf(session: Session): Promise<ProofStanding> {
    let proof = this.proofs.get(session);
    if (!proof) {
      proof = this.deps.proof(session);
      this.proofs.set(session, proof);
    }
    return proof;
  }

  private context(session: Session): AccessContext {
    return { now: this.deps.clock.now(), stepUpFreshMs: this.deps.policy.stepUpFreshMs, proof: () => this.proofOf(session) };
  }

  /**
   * The refusal of a session for a need, audited, or null. `role`: a staff-only route's role check (it throws 403
   * FORBIDDEN_ROLE, audited `helpdesk.refused`), made after the session's own checks and before the fresh step-up's
   * (X1, X7, decision 0034): a client or a staff member whose role may not act hears of their role, not of a step-up.
   */
  async refusal(request: FastifyRequest, session: Session, need: SessionNeed, role?: StaffRoleCheck): Promise<SlsError | null> {
    if (role) {
      const early = await sessionRefusal(session, need, this.context(session), { beforeStepUp: true });
      if (early) {
        await this.audited(request, session, need, early.code, early.check);
        return refusalError(early.code);
      }
      await role(session.userId);
    }
    const refused = await sessionRefusal(session, need, this.context(session));
    // A2, O3: a user without the right to change the security settings is told who has it before any step-up
    if (need === 'security' && (!refused || refused.code === 'STEP_UP_REQUIRED')) {
      const notPrimary = await this.deps.rights.refusal(session.userId, { action: `${request.method} ${request.url.split('?')[0]}`, ip: request.ip ?? null });
      if (notPrimary) return notPrimary;
    }
    if (!refused) {
      // X7, T3: staff act on others' accounts only on the proof of a permanent device, never on a temporary passcode's
      if (need === 'staff_action' && !(await this.hasPermanentProof(session))) {
        await this.audited(request, session, need, 'PERMANENT_DEVICE_REQUIRED', 'permanent-proof');
        return new SlsError('PERMANENT_DEVICE_REQUIRED');
      }
      // X7, D2 (decision 0028): and on the proof of their strongest device: the staff password and a SIM (an SMS step-up
      // while a DSC+ protects the staff member) take over no client's account
      if (need === 'staff_action' && (await this.deps.proofToAddRefusal(session, null)) !== null) {
        await this.audited(request, session, need, 'STRONGER_DEVICE_REQUIRED', 'proof-strength');
        return new SlsError('STRONGER_DEVICE_REQUIRED', { reason: 'staff' });
      }
      return null;
    }
    // a page that leads to the step-up before showing a settings form refuses nothing
    const leads = refused.code === 'STEP_UP_REQUIRED' && request.method === 'GET';
    if (!leads) await this.audited(request, session, need, refused.code, refused.check);
    return refusalError(refused.code);
  }

  /** A refusal of a session, audited as `session.refused`. */
  private async audited(request: FastifyRequest, session: Session, need: SessionNeed, code: string, check: string | undefined): Promise<void> {
    await this.deps.audit.record({
      event: 'session.refused',
      actor: `user:${session.userId}`,
      userId: session.userId,
      ip: request.ip ?? null,
      data: { sessionId: session.id, need, code, check, method: request.method, path: request.url.split('?')[0] },
    });
  }

  /**
   * The live session of an API request (a Bearer token, or the cookie of our
   * own pages for a request that changes state), if it may do what it needs;
   * UNAUTHENTICATED or the refusal otherwise.
   */
  async require(request: FastifyRequest, need: SessionNeed, role?: StaffRoleCheck): Promise<{ session: Session; token: PresentedToken }> {
    const token = presentedToken(request, this.deps);
    const session = token ? await this.deps.sessions.authenticate(token.token) : null;
    if (!session || !token) throw new SlsError('UNAUTHENTICATED');
    if (token.via === 'cookie' && request.method !== 'GET' && request.method !== 'HEAD') assertSameOrigin(request, this.deps.publicUrl);
    const refused = await this.refusal(request, session, need, role);
    if (refused) throw refused;
    this.acting(request, session, need, token.token);
    return { session, token };
  }

  /**
   * L8 (decision 0031): the request acts on the session's authority from now
   * on: each transaction it writes in reads the session again under the
   * audit lock (sessions/in-flight.ts), and, for a need of a fresh step-up,
   * that its last proof still stands.
   */
  private acting(request: FastifyRequest, session: Session, need: SessionNeed, token: string): void {
    actOnSession({
      // V1 (decision 0042): and that its token is still the one the request came with (not replaced by a step-up)
      tokenHash: tokenHash(token),
      sessionId: session.id,
      userId: session.userId,
      need,
      proof: FRESH_STEP_UP_NEEDS.includes(need) ? 'STEP_UP_REQUIRED' : null,
      // A2, O3 (decision 0032): the right to change the security settings, checked by `refusal`, is read again under the lock
      securityRight: need === 'security',
      ip: request.ip ?? null,
      method: request.method,
      path: request.url.split('?')[0]!,
    });
  }

  /** T3, X7: whether the session's last proof was a permanent device (requirePermanentProof, without refusing). */
  async hasPermanentProof(session: Session): Promise<boolean> {
    return (await this.proofOf(session)).permanent;
  }

  /**
   * T3, W1, X7: temporary access never makes itself permanent. A new
   * permanent second factor (a security key) and opting out of the second
   * factor need the session's last proof to be a permanent device; a step-up
   * with a temporary passcode or online card is not enough (their access
   * ends, what they would bind would not). 403 PERMANENT_DEVICE_REQUIRED,
   * audited as every refusal of a session.
   */
  async requirePermanentProof(request: FastifyRequest, session: Session): Promise<void> {
    if (await this.hasPermanentProof(session)) {
      // L8: and it must still stand when the request writes (decision 0031)
      actingNeedsProof(session.id, 'PERMANENT_DEVICE_REQUIRED');
      return;
    }
    await this.audited(request, session, 'security', 'PERMANENT_DEVICE_REQUIRED', 'permanent-proof');
    throw new SlsError('PERMANENT_DEVICE_REQUIRED');
  }

  /**
   * D2, K7, X7: a new security device of `type` is bound only on the proof of
   * a permanent device (requirePermanentProof) at least as strong as the new
   * one or as the user's strongest: a weaker proof (SMS: the password and a
   * SIM) never binds a stronger device. `null`: opting out of the second
   * factor (O1), which sets every device aside for trading: the proof of the
   * user's strongest device (a weaker one would outlive it: the SIM got back,
   * trading with the password alone goes on); the same for sharing another
   * username's device (H1c, H5), which sets every device of the user aside
   * for the shared one (`forWhat` `sharing`). 403 STRONGER_DEVICE_REQUIRED
   * (reason `opt_out` or `sharing` for those), audited.
   */
  async requireProofToAdd(request: FastifyRequest, session: Session, type: DeviceType | null, forWhat: 'opt_out' | 'sharing' = 'opt_out'): Promise<void> {
    await this.requireProofOf(request, session, type, type === null ? forWhat : undefined);
  }

  /**
   * D2, D6, K7, X7: a security device of `type` is set aside by its user
   * (a security key removed) only on the proof it would take to add it: a
   * weaker proof never removes a stronger device. Otherwise the password and
   * a SIM remove the key, and then, the strongest device gone, bind the
   * mobile authenticator with an SMS token (K7) or a key of their own. A
   * lost key is reported to client services (R2). 403 STRONGER_DEVICE_REQUIRED
   * (reason `remove`), audited.
   */
  async requireProofToRemove(request: FastifyRequest, session: Session, type: DeviceType): Promise<void> {
    await this.requireProofOf(request, session, type, 'remove');
  }

  /** `requireProofToAdd` and `requireProofToRemove`: 403 STRONGER_DEVICE_REQUIRED with `reason` (or `loss_unconfirmed`, R2), audited. */
  private async requireProofOf(request: FastifyRequest, session: Session, type: DeviceType | null, reason: string | undefined): Promise<void> {
    await this.requirePermanentProof(request, session);
    const refusal = await this.deps.proofToAddRefusal(session, type);
    if (refusal === null) return;
    await this.audited(request, session, 'security', 'STRONGER_DEVICE_REQUIRED', refusal === 'weaker' ? 'proof-strength' : 'loss-unconfirmed');
    // R2 (decision 0023): the strongest device was reported lost from a weaker proof: told so, with the way out
    throw new SlsError('STRONGER_DEVICE_REQUIRED', refusal === 'loss_unconfirmed' ? { reason: 'loss_unconfirmed' } : reason ? { reason } : {});
  }

  /**
   * Whether the session may do what the need asks, now; nothing is audited
   * (a page that shows forms says whether a step-up is due before they work).
   */
  async allows(session: Session, need: SessionNeed): Promise<boolean> {
    return (await sessionRefusal(session, need, this.context(session))) === null;
  }

  /**
   * L8: the session cookie a request carries beside the token it was
   * authenticated with (a Bearer token sent from a browser that is signed
   * in too), if the request passes the cookie path's CSRF check; null when
   * there is none, it is the same token, or the request comes from another
   * site (the cookie then speaks for nothing: its live session is left, and
   * the refusal audited as `session.refused`, code CSRF_FAILED — never silent).
   */
  async otherCookie(request: FastifyRequest, token: PresentedToken): Promise<string | null> {
    const cookie = sessionCookieOf(request, this.deps);
    if (!cookie || cookie === token.token) return null;
    if (fromOwnOrigin(request, this.deps.publicUrl)) return cookie;
    const session = await this.deps.sessions.authenticate(cookie);
    if (session) await this.audited(request, session, 'any', 'CSRF_FAILED', 'origin');
    return null;
  }

  /** The browser's session (its cookie), or null: the page then sends the user to the login page. */
  async browser(request: FastifyRequest): Promise<Session | null> {
    const token = sessionCookieOf(request, this.deps);
    return token ? this.deps.sessions.authenticate(token) : null;
  }

  /**
   * A page's session, if it may do what the page needs; otherwise where the
   * browser goes: the login page, the password page (A5), or the step-up
   * page, which comes back to `returnTo` (X7). Other refusals are thrown, to
   * be shown on the error page.
   */
  async page(
    request: FastifyRequest,
    need: SessionNeed,
    returnTo: string = request.url.split('?')[0]!,
    role?: StaffRoleCheck,
  ): Promise<Session | { redirect: string }> {
    const token = sessionCookieOf(request, this.deps);
    const session = token ? await this.deps.sessions.authenticate(token) : null;
    if (!session || !token) return { redirect: '/login' };
    const refused = await this.refusal(request, session, need, role);
    if (!refused) {
      this.acting(request, session, need, token);
      return session;
    }
    if (refused.code === 'PASSWORD_CHANGE_REQUIRED') return { redirect: '/password' };
    if (refused.code === 'STEP_UP_REQUIRED') return { redirect: `/step-up?next=${encodeURIComponent(returnTo)}` };
    throw refused;
  }

  /**
   * L8: where a page goes once the user withdrew a credential (a number, a
   * card, a key, a sharing): its own page; or, when that ended the very
   * session (it stood on that credential), the login page, which says so.
   */
  async afterWithdrawal(session: Session, to: string): Promise<string> {
    return (await this.deps.sessions.liveById(session.id, { renew: false })) ? to : '/login?ended=device';
  }
}

/** Whether `page` sent the browser elsewhere. */
export function redirected(found: Session | { redirect: string }): found is { redirect: string } {
  return 'redirect' in found;
}
