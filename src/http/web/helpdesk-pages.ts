/**
 * The help desk console (T1–T5, L3, A5): server-rendered pages for staff,
 * who log in through the ordinary login pages with their own two factors.
 * Search a caller, see the user's lock state, devices and latest audit
 * entries, record how the caller's identity was verified, issue or revoke a
 * temporary passcode, reset a forgotten password, lift a lock; ship a requested DSC+ with a card of
 * the stock, mark a card lost or returned, and see each card's deposit (C5,
 * C6, C8, D3); see the identification data of the user's entity, masked or
 * (audited) in full, correct it on the basis of a document seen (A1), and
 * set the account's equity (A6). Every action goes through the HelpDesk or DscPlusRequests
 * service, which checks the role and audits it with `staff:<id>`.
 *
 * The pages work without JavaScript. After each action the browser is sent
 * on to a GET page (post/redirect/get), so that reloading never repeats an
 * action. A new secret (a temporary passcode, T5, or a one-time password,
 * A5) travels to its result page sealed in a short-lived cookie of that page
 * only, bound to the staff session, which the page clears as it shows the
 * secret: it is shown once, and a reload does not show it again.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import type { Config } from '../../config.js';
import { SlsError } from '../../errors.js';
import { VERIFICATION_METHODS } from '../../helpdesk/helpdesk.js';
import type { User } from '../../identity/users.js';
import { BASIS_DOCUMENTS, DOCUMENT_TYPES, IDENTIFICATION_FIELDS } from '../../identity/entities.js';
import type { Session } from '../../sessions/sessions.js';
import type { Device } from '../../devices/types.js';
import { unconfirmedAddress, type ShippingAddress } from '../../devices/dscplus/requests.js';
import { lossUnconfirmed } from '../../devices/types.js';
import type { DeviceState } from '../../store/schema.js';
import type { Language } from '../../i18n/i18n.js';
import { toSlsError } from '../errors.js';
import { redirected, type SessionGuard } from '../session-guard.js';
import { cookieNames } from '../session-cookie.js';
import { countryOptions } from './mobile-pages.js';
import { field, registerForms, type PageRenderer } from './render.js';

/**
 * The secrets the console shows once: a temporary passcode (T1–T5) or a
 * one-time password (A5). Each kind has its own result page
 * (`/helpdesk/users/:username/<kind>`) and texts (`helpdesk.<kind>.*`).
 */
const SECRET_KINDS = ['passcode', 'password'] as const;
type SecretKind = (typeof SECRET_KINDS)[number];
/** The cookie that carries a new secret of that kind to its result page, sealed; cleared when shown (`__Secure-` under Secure cookies). */
function secretCookie(config: Pick<Config, 'cookieSecure'>, kind: SecretKind): string {
  const names = cookieNames(config);
  return kind === 'passcode' ? names.helpdeskPasscode : names.helpdeskPassword;
}
/** How long the sealed secret waits for its result page. */
const SECRET_HANDOVER_MS = 2 * 60 * 1000;
/** A value of an audit entry's data as staff read it: times (…At, …Until) in the page's words, not milliseconds or ISO. */
function auditValue(key: string, value: unknown, time: (ms: number) => string): string {
  const isTime = /(At|Until)$/.test(key);
  if (isTime && typeof value === 'number' && value > 1e11) return time(value);
  if (isTime && typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value) && Number.isFinite(Date.parse(value))) return time(Date.parse(value));
  return typeof value === 'string' ? value : JSON.stringify(value);
}

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

/** When a secret stops working, as its page states it: the passcode's full access, then its end (T3). */
interface SecretTimes {
  fullAccessUntil: number;
  expiresAt: number;
}

/** A new secret on its way to its result page. */
interface SealedSecret {
  kind: SecretKind;
  secret: string;
  /** Null for a one-time password: it works until it is used. */
  times: SecretTimes | null;
  issuedAt: number;
  /** The verification in effect, for the way back to the user page. */
  verificationId: string;
  /** T5, A5: the handover's row, which the result page consumes as it shows the secret: once, whoever sends the cookie again. */
  handoverId: string;
}

/** The device actions of the console (C5, C6, C8; R2, decision 0028: an admin ends the wait after a weaker loss report). */
type DeviceAction = 'ship' | 'lost' | 'returned' | 'lossConfirmed';
/** The DSC+ states in which the console offers each device action (D3); `lossConfirmed` also needs a report within its wait, and an admin. */
const DEVICE_ACTIONS: Record<DeviceAction, readonly DeviceState[]> = {
  ship: ['requested'],
  lost: ['active', 'suspended', 'shipped'],
  returned: ['active', 'suspended', 'shipped', 'lost'],
  lossConfirmed: ['lost', 'returned'],
};
/** Where each device action's form posts, under the device's path. */
const DEVICE_ACTION_PATHS: Record<DeviceAction, string> = { ship: 'ship', lost: 'lost', returned: 'returned', lossConfirmed: 'loss-confirmed' };
const LOSS_REASONS = ['lost', 'stolen', 'damaged'] as const;

/** A form of the user page; a device action names its device, as each card has its forms. */
type Action =
  | 'verify'
  | 'issue'
  | 'revoke'
  | 'reset'
  | 'unlock'
  | 'lock'
  | 'endSessions'
  | 'addPhone'
  | 'reveal'
  | 'identification'
  | 'equity'
  | `${DeviceAction}:${string}`;
const NOTICES = [
  'unlocked',
  'revoked',
  'nothingRevoked',
  'passwordSentToApp',
  'locked',
  'sessionsEnded',
  'phoneAdded',
  'identificationCorrected',
  'equitySet',
] as const;
/** Notices about one device, named in the address (`&device=`). */
const DEVICE_NOTICES = ['shipped', 'lost', 'returned', 'lossConfirmed'] as const;

/** A deposit as the page shows it (C5): held, released or kept, with the amount in the page's language. */
interface DepositView {
  status: string;
  amount: string;
  account: string;
}

/** A DSC+ the staff member may act on, with the forms it allows. */
interface CardView {
  device: Device;
  actions: DeviceAction[];
  /** Where a requested card goes (C4). */
  shipTo: ShippingAddress | null;
  /** R2, C6: requested under temporary access: the address is confirmed with the client before shipping. */
  confirmAddress: boolean;
  /** R2, decision 0023: reported lost with a weaker proof, within its wait (an admin may end it, decision 0028). */
  lossWaiting: boolean;
}

interface NoticeView {
  key: string;
  serial?: string | null;
  /** Shipped: when the card activates itself (C6). */
  autoActivateAt?: number;
  deposit?: DepositView | null;
}

interface NoticeQuery {
  done: string;
  deviceId?: string;
}

const usersPath = (username: string): string => `/helpdesk/users/${encodeURIComponent(username)}`;
const verificationPath = (username: string, verificationId: string): string => `${usersPath(username)}/verifications/${encodeURIComponent(verificationId)}`;
/** The page that shows a new secret of that kind once. */
const secretPath = (username: string, kind: SecretKind): string => `${usersPath(username)}/${kind}`;
/** The user page, with the verification in effect if there is one. */
const userPagePath = (username: string, verificationId: string): string =>
  /^[A-Za-z0-9_]{1,64}$/.test(verificationId) ? verificationPath(username, verificationId) : usersPath(username);
const devicePath = (username: string, deviceId: string, action: DeviceAction): string =>
  `${usersPath(username)}/devices/${encodeURIComponent(deviceId)}/${DEVICE_ACTION_PATHS[action]}`;

function money(language: Language, amountUsd: number): string {
  return new Intl.NumberFormat(language === 'zh-Hant' ? 'zh-TW' : language, { style: 'currency', currency: 'USD', currencyDisplay: 'code' }).format(amountUsd);
}

export function helpdeskPages(services: Services, pages: PageRenderer, guard: SessionGuard): FastifyPluginAsync {
  const { config, helpDesk } = services;

  /**
   * The staff member signed in on this browser, or where the browser goes
   * instead (the login page; the password page after a one-time password).
   * A client gets FORBIDDEN_ROLE; a session of limited scope (T3) or a
   * trading session is refused by the session guard. To act (`staff_action`,
   * every form), a role that may act (else FORBIDDEN_ROLE, before any
   * step-up: decision 0034), then a fresh step-up (V1, X7): without one the
   * browser goes to the step-up page, which comes back to `returnTo`.
   */
  async function signedInStaff(
    request: FastifyRequest,
    need: 'staff' | 'staff_action' = 'staff',
    returnTo?: string,
  ): Promise<(Staff & { refused?: SlsError }) | { redirect: string }> {
    // X1, X7 (decision 0034): a role that may not act is refused before the step-up, audited: a client on the error
    // page; compliance, who may look, on the user page (`refused`)
    let actRefused: unknown = null;
    const role = async (userId: string) => {
      await helpDesk.staff(userId, 'view');
      if (need !== 'staff_action') return;
      try {
        await helpDesk.staff(userId, 'act');
      } catch (error) {
        actRefused = error;
        throw error;
      }
    };
    let session: Session | { redirect: string };
    try {
      session = await guard.page(request, need, returnTo, role);
    } catch (error) {
      const viewer = error === actRefused ? await guard.browser(request) : null;
      if (!viewer) throw error;
      return { user: await helpDesk.staff(viewer.userId, 'view'), session: viewer, mayAct: false, refused: toSlsError(error) };
    }
    if (redirected(session)) return session;
    const user = await helpDesk.staff(session.userId, 'view');
    const mayAct = await helpDesk.staff(session.userId, 'act', { quiet: true }).then(
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

  function renderSearch(
    request: FastifyRequest,
    reply: FastifyReply,
    staff: Staff,
    options: { q?: string; results?: User[] | null; error?: unknown } = {},
  ): FastifyReply {
    const error = options.error === undefined ? null : pages.pageError(request, options.error);
    return pages.render(
      request,
      reply,
      'helpdesk/search',
      { staff: staff.user, mayAct: staff.mayAct, q: options.q ?? '', results: options.results ?? null, error },
      { status: error?.status ?? 200, path: '/helpdesk' },
    );
  }

  /** C5: the deposit held for a DSC+, if any. */
  async function depositOf(request: FastifyRequest, device: Device): Promise<DepositView | null> {
    if (device.type !== 'dscplus') return null;
    const hold = await services.dscPlusRequests.hold(device.id);
    return hold ? { status: hold.status, amount: money(request.language, hold.amountUsd), account: hold.account } : null;
  }

  /** The DSC+ cards a staff member who may act can do something with, and the forms each allows. */
  function cardsOf(staff: Staff, devices: Device[]): CardView[] {
    if (!staff.mayAct) return [];
    return devices
      .filter((d) => d.type === 'dscplus')
      .map((device) => {
        const lossWaiting = lossUnconfirmed(device, services.clock.now());
        const actions = (Object.keys(DEVICE_ACTIONS) as DeviceAction[]).filter(
          (a) => DEVICE_ACTIONS[a].includes(device.state) && (a !== 'lossConfirmed' || (lossWaiting && staff.user.role === 'admin')),
        );
        const request = (device.params as { request?: { address?: ShippingAddress } }).request;
        return {
          device,
          actions,
          shipTo: device.state === 'requested' ? (request?.address ?? null) : null,
          confirmAddress: unconfirmedAddress(device) !== null,
          lossWaiting,
        };
      })
      .filter((card) => card.actions.length > 0);
  }

  /** The notice of the address, about this user's device when it names one; null when it does not fit. */
  function noticeFor(query: NoticeQuery | null, devices: Device[], deposits: Map<string, DepositView | null>): NoticeView | null {
    if (!query) return null;
    if (!(DEVICE_NOTICES as readonly string[]).includes(query.done)) return { key: query.done };
    const device = devices.find((d) => d.id === query.deviceId && d.type === 'dscplus');
    if (!device) return null;
    if (query.done === 'shipped') {
      const at = device.params.autoActivateAt;
      return typeof at === 'number' && device.serial ? { key: query.done, serial: device.serial, autoActivateAt: at } : null;
    }
    if (query.done === 'lossConfirmed') return device.params.lossConfirmed ? { key: query.done, serial: device.serial } : null;
    return device.state === query.done ? { key: query.done, serial: device.serial, deposit: deposits.get(device.id) ?? null } : null;
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
    options: { verificationId?: string; error?: unknown; failed?: Action; notice?: NoticeQuery | null; reveal?: boolean } = {},
  ): Promise<FastifyReply> {
    let user: User;
    try {
      // X7: only a user this staff member may act on (never a colleague but for an admin, an admin, or themselves)
      user = await helpDesk.viewUser(staff.user.id, username, options.reveal ? 'view_identification' : 'view');
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
    // A1: the entity's identification data, masked (the user was checked above, once) unless shown in full (checked for it and
    // audited, before the audit entries are read)
    const entity = options.reveal
      ? await helpDesk.identification(staff.user.id, user.username, { reveal: true, ip: request.ip ?? null })
      : await services.entities.view(user.entityId);
    const [lock, devices, audit, account, optOut] = await Promise.all([
      services.lockout.status(user.username),
      services.devices.listForUser(user.id),
      services.audit.list({ username: user.username, limit: AUDIT_ENTRIES }),
      services.users.account(user.accountId),
      // O1: whether the user opted out of the second factor for trading (read-only here; `sls user opt-out/opt-in`)
      services.optOuts.state(user.id),
    ]);
    const deposits = new Map(await Promise.all(devices.map(async (d) => [d.id, await depositOf(request, d)] as const)));
    // who acted, by username rather than id (issue 16)
    const actorName = await services.users.actorNames(audit.map((e) => e.actor));
    const cards = cardsOf(staff, devices);
    // C8: the cards of the stock, when there is a card to ship
    const stock = cards.some((c) => c.actions.includes('ship'))
      ? (await services.devices.listStock()).filter((d) => d.serial !== null).map((d) => d.serial!)
      : [];
    const error = failure === undefined ? null : pages.pageError(request, failure);
    const temporary = devices.find((d) => d.type === 'temp_passcode' && d.state === 'active') ?? null;
    return pages.render(
      request,
      reply,
      'helpdesk/user',
      {
        staff: staff.user,
        mayAct: staff.mayAct,
        // L3, decision 0020: a lock staff placed is lifted by an admin only
        mayLiftStaffLock: staff.user.role === 'admin',
        user,
        lock,
        optOut,
        devices,
        deposits: Object.fromEntries(deposits),
        cards,
        stock,
        reasons: LOSS_REASONS,
        deviceAction: (deviceId: string, action: DeviceAction) => devicePath(user.username, deviceId, action),
        audit,
        actorName,
        auditValue: (key: string, value: unknown) => auditValue(key, value, (ms) => pages.time(request, ms)),
        temporary,
        verification,
        methods: VERIFICATION_METHODS,
        countries: countryOptions(request.language),
        entity,
        identificationFields: IDENTIFICATION_FIELDS,
        documentTypes: DOCUMENT_TYPES[entity.kind],
        basisDocuments: BASIS_DOCUMENTS,
        equity: { account: account.accountNumber, amount: money(request.language, account.equityUsd) },
        error,
        failed: error ? (options.failed ?? null) : null,
        notice: error ? null : noticeFor(options.notice ?? null, devices, deposits),
        base: usersPath(user.username),
        // V1, X7: the forms work after a fresh step-up; until then the page says so, with the way there and back
        stepUpDue: (await guard.allows(staff.session, 'staff_action'))
          ? null
          : verification
            ? verificationPath(user.username, verification.id)
            : usersPath(user.username),
      },
      { status: error?.status ?? 200, path: verification ? verificationPath(user.username, verification.id) : usersPath(user.username) },
    );
  }

  /**
   * Runs a help desk action of a form; its error is shown on the user page.
   * V1, X7: without a fresh step-up the browser goes to the step-up page
   * (the refusal audited), then back to the user page to send the form again.
   */
  async function act(
    request: FastifyRequest<{ Params: { username: string } }>,
    reply: FastifyReply,
    action: Action,
    run: (staff: Staff) => Promise<FastifyReply>,
  ): Promise<FastifyReply> {
    const back = userPagePath(request.params.username, action === 'verify' ? '' : field(request.body, 'verificationId'));
    const staff = await signedInStaff(request, 'staff_action', back);
    if ('redirect' in staff) return reply.redirect(staff.redirect, 303);
    try {
      // X1, X7: a role that may not act (compliance) is refused before the step-up and the form is read (FORBIDDEN_ROLE, audited)
      if (staff.refused) throw staff.refused;
      if (!staff.mayAct) await helpDesk.staff(staff.user.id, 'act');
      return await run(staff);
    } catch (error) {
      const mapped = toSlsError(translatedState(request, error));
      if (mapped.status >= 500) throw error;
      return renderUser(request, reply, staff, request.params.username, {
        verificationId: action === 'verify' ? '' : field(request.body, 'verificationId'),
        error: mapped,
        failed: action,
      });
    }
  }

  function noticeOf(request: FastifyRequest): NoticeQuery | null {
    const query = request.query as Record<string, unknown> | undefined;
    const done = query?.done;
    if (typeof done !== 'string') return null;
    if ((NOTICES as readonly string[]).includes(done)) return { done };
    if ((DEVICE_NOTICES as readonly string[]).includes(done) && typeof query?.device === 'string') return { done, deviceId: query.device };
    return null;
  }

  /**
   * The DSC+ of this user that a device action names, for a staff member who
   * may act: compliance is refused before anything else is looked at, and a
   * device of another user is not found here.
   */
  async function cardFor(staff: Staff, username: string, deviceId: string): Promise<Device> {
    await helpDesk.staff(staff.user.id, 'act');
    const user = await services.users.getByUsername(username);
    const device = await services.devices.get(deviceId);
    if (device.userId !== user.id || device.type !== 'dscplus') throw new SlsError('DEVICE_NOT_FOUND', { id: deviceId });
    return device;
  }

  /** Back to the user page (with the verification in effect) with the notice of a device action. */
  function afterDeviceAction(
    request: FastifyRequest<{ Params: { username: string } }>,
    reply: FastifyReply,
    done: (typeof DEVICE_NOTICES)[number],
    device: Device,
  ): FastifyReply {
    const back = userPagePath(request.params.username, field(request.body, 'verificationId'));
    return reply.redirect(`${back}?done=${done}&device=${encodeURIComponent(device.id)}`, 303);
  }

  /** What a sealed secret is bound to: its kind, the staff session and the user (another session cannot open it). */
  function sealContext(kind: SecretKind, staff: Staff, username: string): string {
    return `helpdesk-${kind}:${staff.session.id}:${username}`;
  }

  function secretCookieOptions(kind: SecretKind, username: string) {
    return { path: secretPath(username, kind), httpOnly: true, secure: config.cookieSecure, sameSite: 'strict' as const };
  }

  /**
   * Sends a new secret on to its result page, sealed in a short-lived cookie
   * of that page only, with the id of its handover (T5, A5), which that page
   * consumes in the database as it shows it.
   */
  async function handOver(reply: FastifyReply, staff: Staff, username: string, secret: Omit<SealedSecret, 'issuedAt' | 'handoverId'>): Promise<FastifyReply> {
    const user = await services.users.getByUsername(username);
    const handoverId = await helpDesk.openHandover(staff.session.id, user.id, secret.kind, SECRET_HANDOVER_MS);
    const sealed: SealedSecret = { ...secret, issuedAt: services.clock.now(), handoverId };
    reply.setCookie(secretCookie(config, secret.kind), services.box.sealJson(sealed, sealContext(secret.kind, staff, username)), {
      ...secretCookieOptions(secret.kind, username),
      maxAge: SECRET_HANDOVER_MS / 1000,
    });
    return reply.redirect(secretPath(username, secret.kind), 303);
  }

  /**
   * The result page of a secret: shows it once and clears its cookie, so that
   * a reload, or the cookie in another staff member's browser, shows it no
   * more; and consumes its handover in the database (T5, A5), so that the
   * same cookie sent again (a proxy log, a second tab, a retry, two loads at
   * once) shows it no more either.
   */
  async function showSecret(request: FastifyRequest<{ Params: { username: string } }>, reply: FastifyReply, kind: SecretKind): Promise<FastifyReply> {
    const staff = await signedInStaff(request);
    if ('redirect' in staff) return reply.redirect(staff.redirect, 303);
    let user: User;
    try {
      user = await helpDesk.viewUser(staff.user.id, request.params.username);
    } catch (error) {
      return renderSearch(request, reply, staff, { error });
    }
    const sealed = request.cookies[secretCookie(config, kind)];
    let issued: SealedSecret | null = null;
    if (sealed) {
      reply.clearCookie(secretCookie(config, kind), secretCookieOptions(kind, user.username));
      try {
        issued = services.box.openJson<SealedSecret>(sealed, sealContext(kind, staff, user.username));
      } catch {
        issued = null; // another session's, or altered
      }
      if (issued && (issued.kind !== kind || issued.issuedAt + SECRET_HANDOVER_MS < services.clock.now())) issued = null;
      const handoverId = issued && typeof issued.handoverId === 'string' ? issued.handoverId : null;
      if (!(await helpDesk.takeHandover({ userId: staff.user.id, sessionId: staff.session.id }, user, kind, handoverId))) issued = null;
    }
    return pages.render(
      request,
      reply,
      'helpdesk/secret',
      { staff: staff.user, user, kind, issued, back: userPagePath(user.username, issued?.verificationId ?? '') },
      { path: secretPath(user.username, kind) },
    );
  }

  /** The page names a device's state in its own language (X2). */
  function translatedState(request: FastifyRequest, error: unknown): unknown {
    const mapped = toSlsError(error);
    const state = mapped.params.state;
    if (mapped.code !== 'DEVICE_STATE' || typeof state !== 'string') return error;
    return new SlsError('DEVICE_STATE', { ...mapped.params, state: request.t(`web.deviceStates.${state}`, { defaultValue: state }) });
  }

  return async (app) => {
    // the same CSRF cookie as the login pages': a token of either is good for both
    await registerForms(app, pages);

    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    app.get('/helpdesk', async (request, reply) => {
      const staff = await signedInStaff(request);
      if ('redirect' in staff) return reply.redirect(staff.redirect, 303);
      const raw = (request.query as Record<string, unknown> | undefined)?.q;
      const q = typeof raw === 'string' ? raw.trim().slice(0, 64) : '';
      const results = q === '' ? null : await helpDesk.search(staff.user.id, q);
      return renderSearch(request, reply, staff, { q, results });
    });

    app.get<{ Params: { username: string } }>('/helpdesk/users/:username', async (request, reply) => {
      const staff = await signedInStaff(request);
      if ('redirect' in staff) return reply.redirect(staff.redirect, 303);
      return renderUser(request, reply, staff, request.params.username, { notice: noticeOf(request) });
    });

    app.get<{ Params: { username: string; verificationId: string } }>('/helpdesk/users/:username/verifications/:verificationId', async (request, reply) => {
      const staff = await signedInStaff(request);
      if ('redirect' in staff) return reply.redirect(staff.redirect, 303);
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
        return handOver(reply, staff, username, {
          kind: 'passcode',
          secret: issued.passcode,
          times: { fullAccessUntil: issued.fullAccessUntil, expiresAt: issued.expiresAt },
          verificationId,
        });
      }),
    );

    /** A5: a forgotten password: a one-time password, which the user replaces at the next login. */
    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/password-reset', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'reset', async (staff) => {
        const verificationId = field(request.body, 'verificationId');
        const { username } = request.params;
        const { temporaryPassword } = await helpDesk.resetPassword(staff.user.id, username, { verificationId });
        // K14: delivered to the user's mobile authenticator, never shown to staff
        if (temporaryPassword === null) return reply.redirect(`${userPagePath(username, verificationId)}?done=passwordSentToApp`, 303);
        return handOver(reply, staff, username, { kind: 'password', secret: temporaryPassword, times: null, verificationId });
      }),
    );

    /** A new secret, once (T5, A5); a reload finds the cookie gone. */
    for (const kind of SECRET_KINDS) {
      app.get<{ Params: { username: string } }>(`/helpdesk/users/:username/${kind}`, async (request, reply) => showSecret(request, reply, kind));
    }

    app.post<{ Params: { username: string } }>(
      '/helpdesk/users/:username/temporary-passcode/revoke',
      { preHandler: app.csrfProtection },
      async (request, reply) =>
        act(request, reply, 'revoke', async (staff) => {
          const revoked = await helpDesk.revokeTemporaryPasscode(staff.user.id, request.params.username);
          const back = userPagePath(request.params.username, field(request.body, 'verificationId'));
          return reply.redirect(`${back}?done=${revoked > 0 ? 'revoked' : 'nothingRevoked'}`, 303);
        }),
    );

    type DeviceRoute = { Params: { username: string; deviceId: string } };

    /** C6/C8: ship a requested DSC+ with a card of the stock; it activates itself three weeks later. */
    app.post<DeviceRoute>('/helpdesk/users/:username/devices/:deviceId/ship', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, `ship:${request.params.deviceId}`, async (staff) => {
        const device = await cardFor(staff, request.params.username, request.params.deviceId);
        const serial = field(request.body, 'serial').trim();
        if (serial === '' || serial.length > 32) throw new SlsError('VALIDATION_ERROR', { field: 'serial', reason: 'stock_serial' });
        // R2, C6: for a card requested under temporary access, the staff member ticks that they confirmed the address
        const addressConfirmed = field(request.body, 'addressConfirmed') === 'yes';
        const { device: shipped } = await services.dscPlusRequests.ship(staff.user.id, device.id, serial, { addressConfirmed });
        return afterDeviceAction(request, reply, 'shipped', shipped);
      }),
    );

    /** C5: a card lost or stolen (its deposit is kept) or damaged: it stops working. */
    app.post<DeviceRoute>('/helpdesk/users/:username/devices/:deviceId/lost', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, `lost:${request.params.deviceId}`, async (staff) => {
        const device = await cardFor(staff, request.params.username, request.params.deviceId);
        const reason = field(request.body, 'reason');
        if (!(LOSS_REASONS as readonly string[]).includes(reason)) throw new SlsError('VALIDATION_ERROR', { field: 'reason', reason: 'loss_reason' });
        // T1, decision 0028: with the verification in effect, the owner does not wait to bind a new device; without one, they do
        const verificationId = field(request.body, 'verificationId');
        const actor = { staffUserId: staff.user.id, ...(verificationId !== '' ? { verificationId } : {}) };
        const lost = await services.dscPlusRequests.reportLost(actor, device.id, reason as (typeof LOSS_REASONS)[number]);
        return afterDeviceAction(request, reply, 'lost', lost);
      }),
    );

    /** R2, decision 0028: an admin, with a verification of their own, ends the wait after a loss reported with a weaker proof. */
    app.post<DeviceRoute>('/helpdesk/users/:username/devices/:deviceId/loss-confirmed', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, `lossConfirmed:${request.params.deviceId}`, async (staff) => {
        const device = await cardFor(staff, request.params.username, request.params.deviceId);
        const confirmed = await services.dscPlusRequests.confirmLoss(staff.user.id, device.id, field(request.body, 'verificationId'));
        return afterDeviceAction(request, reply, 'lossConfirmed', confirmed);
      }),
    );

    /** C5/C7: a card back at the help desk: returned, and its deposit released. */
    app.post<DeviceRoute>('/helpdesk/users/:username/devices/:deviceId/returned', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, `returned:${request.params.deviceId}`, async (staff) => {
        const device = await cardFor(staff, request.params.username, request.params.deviceId);
        // T1, decision 0036: with the verification in effect, the owner does not wait to bind a new device; without one, they do
        const verificationId = field(request.body, 'verificationId');
        const returned = await services.dscPlusRequests.markReturned(staff.user.id, device.id, verificationId !== '' ? verificationId : undefined);
        return afterDeviceAction(request, reply, 'returned', returned);
      }),
    );

    /** L3, L8: lock the user until an admin lifts it (decision 0020); every session ends. */
    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/lock', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'lock', async (staff) => {
        await helpDesk.lockUser(staff.user.id, request.params.username, { reason: field(request.body, 'reason') });
        return reply.redirect(`${userPagePath(request.params.username, field(request.body, 'verificationId'))}?done=locked`, 303);
      }),
    );

    /** L8: every session of the user ends. */
    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/sessions/end', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'endSessions', async (staff) => {
        await helpDesk.endSessions(staff.user.id, request.params.username);
        return reply.redirect(`${userPagePath(request.params.username, field(request.body, 'verificationId'))}?done=sessionsEnded`, 303);
      }),
    );

    /** X7: a mobile number on record for a verified caller, by which a user without a device enrols. */
    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/phones', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'addPhone', async (staff) => {
        const verificationId = field(request.body, 'verificationId');
        await helpDesk.addPhone(staff.user.id, request.params.username, {
          verificationId,
          country: field(request.body, 'country'),
          number: field(request.body, 'number'),
        });
        return reply.redirect(`${userPagePath(request.params.username, verificationId)}?done=phoneAdded`, 303);
      }),
    );

    /** A1: the identification data in full, for this page only; audited. */
    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/identification/reveal', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'reveal', async (staff) =>
        renderUser(request, reply, staff, request.params.username, { verificationId: field(request.body, 'verificationId'), reveal: true }),
      ),
    );

    /** A1: a correction of the identification data, with the document it is based on (type and reference, required; audited). */
    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/identification', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'identification', async (staff) => {
        const identification = Object.fromEntries(IDENTIFICATION_FIELDS.map((f) => [f, field(request.body, f)]));
        await helpDesk.correctIdentification(
          staff.user.id,
          request.params.username,
          { name: field(request.body, 'name'), identification },
          { document: field(request.body, 'basisDocument'), reference: field(request.body, 'basisReference') },
        );
        return reply.redirect(`${userPagePath(request.params.username, field(request.body, 'verificationId'))}?done=identificationCorrected`, 303);
      }),
    );

    /** A6: the account's equity, in USD (decides DSC+ eligibility, C1). */
    app.post<{ Params: { username: string } }>('/helpdesk/users/:username/equity', { preHandler: app.csrfProtection }, async (request, reply) =>
      act(request, reply, 'equity', async (staff) => {
        const amount = field(request.body, 'equityUsd').trim().replace(/,/g, '');
        if (!/^\d{1,13}(\.\d{1,2})?$/.test(amount)) throw new SlsError('VALIDATION_ERROR', { field: 'equity', reason: 'equity_amount' });
        await helpDesk.setEquity(staff.user.id, request.params.username, Number(amount));
        return reply.redirect(`${userPagePath(request.params.username, field(request.body, 'verificationId'))}?done=equitySet`, 303);
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
