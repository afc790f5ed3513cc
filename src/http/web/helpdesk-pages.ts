/**
 * The help desk console (T1–T5, L3, A5): server-rendered pages for staff,
 * who log in through the ordinary login pages with their own two factors.
 * Search a caller, see the user's lock state, devices and latest audit
 * entries, record how the caller's identity was verified, issue or revoke a
 * temporary passcode, lift a lock. Every action goes through the HelpDesk
 * service, which checks the role and audits it with `staff:<id>`.
 *
 * The pages work without JavaScript. After each action the browser is sent
 * on to a GET page (post/redirect/get), so that reloading never repeats an
 * action. A new temporary passcode travels to its result page sealed in a
 * short-lived cookie of that page only, which the page clears as it shows the
 * passcode: it is shown once, and a reload does not show it again (T5).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { SlsError } from '../../errors.js';
import { VERIFICATION_METHODS } from '../../helpdesk/helpdesk.js';
import type { User } from '../../identity/users.js';
import type { Session } from '../../sessions/sessions.js';
import { toSlsError } from '../errors.js';
import { SESSION_COOKIE } from '../session-cookie.js';
import { field, registerForms, type PageRenderer } from './render.js';

/** The cookie that carries a new passcode to its result page, sealed; cleared when shown. */
const PASSCODE_COOKIE = 'sls_hd_passcode';
/** How long the sealed passcode waits for its result page. */
const PASSCODE_HANDOVER_MS = 2 * 60 * 1000;
/** How many audit entries the user page shows. */
const AUDIT_ENTRIES = 30;

interface Staff {
  user: User;
  session: Session;
  /** Whether the role may act (client services, admin) or only look (compliance). */
  mayAct: boolean;
}

interface VerificationView {
  id: string;
  method: string;
  expiresAt: number;
  valid: boolean;
}

interface SealedPasscode {
  passcode: string;
  fullAccessUntil: number;
  expiresAt: number;
  issuedAt: number;
  verificationId: string;
}

type Action = 'verify' | 'issue' | 'revoke' | 'unlock';
const NOTICES = ['unlocked', 'revoked', 'nothingRevoked'] as const;

const usersPath = (username: string): string => `/helpdesk/users/${encodeURIComponent(username)}`;
const verificationPath = (username: string, verificationId: string): string =>
  `${usersPath(username)}/verifications/${encodeURIComponent(verificationId)}`;
const passcodePath = (username: string): string => `${usersPath(username)}/passcode`;
/** The user page, with the verification in effect if there is one. */
const userPagePath = (username: string, verificationId: string): string =>
  /^[A-Za-z0-9_]{1,64}$/.test(verificationId) ? verificationPath(username, verificationId) : usersPath(username);

export function helpdeskPages(services: Services, pages: PageRenderer): FastifyPluginAsync {
  const { config, helpDesk } = services;

  /**
   * The staff member signed in on this browser, or null (no live session).
   * A client, or a session of limited scope (T3), gets FORBIDDEN_ROLE.
   */
  async function signedInStaff(request: FastifyRequest): Promise<Staff | null> {
    const token = request.cookies[SESSION_COOKIE];
    const session = token ? await services.sessions.authenticate(token) : null;
    if (!session) return null;
    if (session.scope !== 'full') throw new SlsError('FORBIDDEN_ROLE', { role: 'temporary access' });
    const user = await helpDesk.staff(session.userId, 'view');
    const mayAct = await helpDesk.staff(session.userId, 'act').then(
      () => true,
      (error: unknown) => {
        if (toSlsError(error).code === 'FORBIDDEN_ROLE') return false;
        throw error;
      },
    );
    return { user, session, mayAct };
  }

  /** The recorded verification of this user, as the page shows it. */
  async function verificationOf(staff: Staff, user: User, verificationId: string): Promise<VerificationView> {
    const v = await services.helpDesk.verification(staff.user.id, user.username, verificationId);
    return { id: v.id, method: v.method, expiresAt: v.expiresAt, valid: v.expiresAt > services.clock.now() };
  }

  function renderSearch(request: FastifyRequest, reply: FastifyReply, staff: Staff, options: { q?: string; results?: User[] | null; error?: unknown } = {}): FastifyReply {
    const error = options.error === undefined ? null : pages.pageError(request, options.error);
    return pages.render(
      request,
      reply,
      'helpdesk/search',
      { staff: staff.user, mayAct: staff.mayAct, q: options.q ?? '', results: options.results ?? null, error },
      { status: error?.status ?? 200, path: '/helpdesk' },
    );
  }

  /**
   * The user page. An error of an action is shown in its error box; when the
   * user cannot be shown at all (unknown user), the search page shows the error.
   */
  async function renderUser(
    request: FastifyRequest,
    reply: FastifyReply,
    staff: Staff,
    username: string,
    options: { verificationId?: string; error?: unknown; failed?: Action; notice?: string | null } = {},
  ): Promise<FastifyReply> {
    let user: User;
    try {
      user = await services.users.getByUsername(username);
    } catch (error) {
      return renderSearch(request, reply, staff, { error });
    }
    let failure: unknown = options.error;
    let verification: VerificationView | null = null;
    if (options.verificationId) {
      try {
        verification = await verificationOf(staff, user, options.verificationId);
      } catch (error) {
        failure ??= error;
      }
    }
    const [lock, devices, audit] = await Promise.all([
      services.lockout.status(user.username),
      services.devices.listForUser(user.id),
      services.audit.list({ username: user.username, limit: AUDIT_ENTRIES }),
    ]);
    const error = failure === undefined ? null : pages.pageError(request, failure);
    const temporary = devices.find((d) => d.type === 'temp_passcode' && d.state === 'active') ?? null;
    return pages.render(
      request,
      reply,
      'helpdesk/user',
      {
        staff: staff.user,
        mayAct: staff.mayAct,
        user,
        lock,
        devices,
        audit,
        temporary,
        verification,
        methods: VERIFICATION_METHODS,
        error,
        failed: error ? (options.failed ?? null) : null,
        notice: options.notice ?? null,
        base: usersPath(user.username),
      },
      { status: error?.status ?? 200, path: verification ? verificationPath(user.username, verification.id) : usersPath(user.username) },
    );
  }

  /** Runs a help desk action of a form; its error is shown on the user page. */
  async function act(
    request: FastifyRequest<{ Params: { username: string } }>,
    reply: FastifyReply,
    action: Action,
    run: (staff: Staff) => Promise<FastifyReply>,
  ): Promise<FastifyReply> {
    const staff = await signedInStaff(request);
    if (!staff) return reply.redirect('/login', 303);
    try {
      return await run(staff);
    } catch (error) {
      const mapped = toSlsError(error);
      if (mapped.status >= 500) throw error;
      return renderUser(request, reply, staff, request.params.username, {
        verificationId: action === 'verify' ? '' : field(request.body, 'verificationId'),
        error: mapped,
        failed: action,
      });
    }
  }

  function noticeOf(request: FastifyRequest): string | null {
    const done = (request.query as Record<string, unknown> | undefined)?.done;
    return typeof done === 'string' && (NOTICES as readonly string[]).includes(done) ? done : null;
  }

  return async (app) => {
    // the same sls_csrf cookie as the login pages': a token of either is good for both
    await registerForms(app, config);

    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    app.get('/helpdesk', async (request, reply) => {
      const staff = await signedInStaff(request);
      if (!staff) return reply.redirect('/login', 303);
      const raw = (request.query as Record<string, unknown> | undefined)?.q;
      const q = typeof raw === 'string' ? raw.trim().slice(0, 64) : '';
      const results = q === '' ? null : await helpDesk.search(staff.user.id, q);
      return renderSearch(request, reply, staff, { q, results });
    });

    app.get<{ Params: { username: string } }>('/helpdesk/users/:username', async (request, reply) => {
      const staff = await signedInStaff(request);
      if (!staff) return reply.redirect('/login', 303);
      return renderUser(request, reply, staff, request.params.username, { notice: noticeOf(request) });
    });

    app.get<{ Params: { username: string; verificationId: string } }>('/helpdesk/users/:username/verifications/:verificationId', async (request, reply) => {
      const staff = await signedInStaff(request);
      if (!staff) return reply.redirect('/login', 303);
      return renderUser(request, reply, staff, request.params.username, { verificationId: request.params.verificationId, notice: noticeOf(request) });
    });

    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/verifications', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'verify', async (staff) => {
        const notes = field(request.body, 'notes').trim();
        const verification = await helpDesk.verifyIdentity(staff.user.id, request.params.username, {
          method: field(request.body, 'method'),
          ...(notes !== '' ? { notes } : {}),
        });
        return reply.redirect(verificationPath(request.params.username, verification.id), 303);
      }),
    );

    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/temporary-passcode', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'issue', async (staff) => {
        const deviceStatus = field(request.body, 'deviceStatus') || 'suspended';
        if (deviceStatus !== 'suspended' && deviceStatus !== 'lost') {
          throw new SlsError('VALIDATION_ERROR', { field: 'deviceStatus', reason: 'suspended or lost' });
        }
        const verificationId = field(request.body, 'verificationId');
        const { username } = request.params;
        const issued = await helpDesk.issueTemporaryPasscode(staff.user.id, username, { verificationId, deviceStatus });
        const sealed: SealedPasscode = {
          passcode: issued.passcode,
          fullAccessUntil: issued.fullAccessUntil,
          expiresAt: issued.expiresAt,
          issuedAt: services.clock.now(),
          verificationId,
        };
        reply.setCookie(PASSCODE_COOKIE, services.box.sealJson(sealed, `helpdesk-passcode:${staff.session.id}:${username}`), {
          path: passcodePath(username),
          httpOnly: true,
          secure: config.cookieSecure,
          sameSite: 'strict',
          maxAge: PASSCODE_HANDOVER_MS / 1000,
        });
        return reply.redirect(passcodePath(username), 303);
      }),
    );

    /** The new passcode, once (T5); a reload finds the cookie gone. */
    app.get<{ Params: { username: string } }>('/helpdesk/users/:username/passcode', async (request, reply) => {
      const staff = await signedInStaff(request);
      if (!staff) return reply.redirect('/login', 303);
      let user: User;
      try {
        user = await services.users.getByUsername(request.params.username);
      } catch (error) {
        return renderSearch(request, reply, staff, { error });
      }
      const sealed = request.cookies[PASSCODE_COOKIE];
      let issued: SealedPasscode | null = null;
      if (sealed) {
        reply.clearCookie(PASSCODE_COOKIE, { path: passcodePath(user.username), httpOnly: true, secure: config.cookieSecure, sameSite: 'strict' });
        try {
          issued = services.box.openJson<SealedPasscode>(sealed, `helpdesk-passcode:${staff.session.id}:${user.username}`);
        } catch {
          issued = null; // another session's, or altered
        }
        if (issued && issued.issuedAt + PASSCODE_HANDOVER_MS < services.clock.now()) issued = null;
      }
      return pages.render(
        request,
        reply,
        'helpdesk/passcode',
        { staff: staff.user, user, issued, back: userPagePath(user.username, issued?.verificationId ?? '') },
        { path: passcodePath(user.username) },
      );
    });

    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/temporary-passcode/revoke', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'revoke', async (staff) => {
        const revoked = await helpDesk.revokeTemporaryPasscode(staff.user.id, request.params.username);
        const back = userPagePath(request.params.username, field(request.body, 'verificationId'));
        return reply.redirect(`${back}?done=${revoked > 0 ? 'revoked' : 'nothingRevoked'}`, 303);
      }),
    );

    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/unlock', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'unlock', async (staff) => {
        const verificationId = field(request.body, 'verificationId');
        await helpDesk.unlock(staff.user.id, request.params.username, { verificationId });
        return reply.redirect(`${userPagePath(request.params.username, verificationId)}?done=unlocked`, 303);
      }),
    );
  };
}
