/**
 * X7, L8, T3, A5, I1, I3, X1, H5, D2 (decisions 0010, 0011, 0028): who may
 * call what, read from the app's own route table. Every route of the app (the
 * JSON API and the pages) is classified below by what it needs of its
 * caller; a route in no list fails the matrix until someone decides. Then
 * every route is tried as each kind of caller that has LESS than it needs —
 * nobody; the holder of a login whose password was right (its claim token, no
 * session); an API key, of either scope; a session's token where a key is
 * asked; an OpenID application's tokens; a session of temporary access past
 * day 2 (T3); a trading session, and one opened by the password alone (O1);
 * a client, client services and compliance, with and without a step-up,
 * against the staff and admin routes; staff against a staff account
 * (decision 0010); a session stepped up by SMS, a code card or the mobile
 * authenticator where a stronger device protects the user (D2, decision
 * 0028), and a code card proving possession for the authenticator where a
 * security key does (K7, decision 0033); the app's own API (K) with no token,
 * a session's, another phone's, a suspended, lost or revoked app's, or on
 * another user's request; a real mobile activation and a real device code
 * (RFC 8628) from another client; another client, and a sharing's requester,
 * against this client's ids — and the refusal is asserted: the route's
 * stable 4xx code (the pages: the login or step-up page, or the error page
 * with the code), and nothing written (every table as before but the audit
 * log and the failure counters).
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import type { Role } from '../src/store/schema.js';
import { SESSION_COOKIE } from '../src/http/session-cookie.js';
import {
  DATABASES,
  PASSWORD,
  REQUESTER_SCC_CODES,
  cardAnswer,
  createUser,
  createUserWithCard,
  startHarness,
  type Harness,
  tablesOf,
} from './support/harness.js';
import { answer, bearer, claimFor, indexAnswerOf, loginSession, postJson, send, startLogin, withCard, type Json, tookNewToken } from './support/api.js';
import { Agent, alertBox, csrfOf, forms, type Page } from './support/html.js';
import { routesOf } from './support/routes.js';
import { issuePasscode } from './support/staff.js';
import { TestPhone, harnessInbox, listen, rejected, verifiedNumber } from './support/phone.js';
import { activationMessage, answerMessage, generatePhoneKeys, publicKeys, signAnswer } from '../src/mobile-app/protocol.js';
import { sharingPair } from './support/sharing.js';
import { LEGACY_KEYS, legacyDevice } from './support/kind-drivers.js';
import { SoftwareAuthenticator, registerSecurityKey } from './support/software-authenticator.js';
import { relyingPartyOf } from '../src/devices/security-key/security-key.js';
import * as oidc from 'openid-client';
import { Browser, TEST_REDIRECT_URI, listeningHarness, registeredClient, signIn } from './support/oidc.js';

/**
 * What a route needs of its caller:
 * - `public`: nobody in particular (the login's start, the help, the app's files, the OpenID discovery …);
 * - `own`: a proof of its own, no session (the mobile authenticator's API, K1; OpenID Connect's device pages, I1; the
 *   operator's /metrics token; the dev outbox, on in the tests only);
 * - `flow`: a login's claim token (L8);
 * - the session needs of policy/session-access.ts: `any`, `portal`, `settings`, `temporary`, `step_up`, `password`,
 *   `security`, `staff` (to read, any staff role), `act` (help desk or admin, fresh step-up), `decide` (a sharing's decision:
 *   compliance or admin, H3), `end_sharing` (staff ending a sharing: any staff role, H3), `admin` (the admin role, to read), `admin_act` (the admin role, fresh step-up);
 * - `key`: an integrator's API key (I3).
 */
type Need =
  | 'public'
  | 'own'
  | 'flow'
  | 'any'
  | 'portal'
  | 'settings'
  | 'temporary'
  | 'step_up'
  | 'password'
  | 'security'
  | 'staff'
  | 'act'
  | 'decide'
  | 'end_sharing'
  | 'admin'
  | 'admin_act'
  | 'key';

const ADDRESS = { name: 'Alice Martin', line1: '1 Main Street', city: 'Springfield', postalCode: '12345', country: 'US' };

/** The JSON API: each route, what it needs and a body its schema accepts (so that the refusal is the caller's, not the body's). */
/** The one route a session or an API key opens (A6, I3). */
const EQUITY_API = 'PUT /api/v1/admin/accounts/:number/equity';

const API: [route: string, need: Need, body?: Json][] = [
  ['GET /api/openapi.json', 'public'],
  ['GET /api/v1/health', 'public'],
  ['GET /api/v1/ready', 'public'],
  ['POST /api/v1/login', 'public'],
  ['GET /api/v1/login/:flowId', 'flow'],
  ['POST /api/v1/login/:flowId', 'flow', { response: '12345678' }],
  ['POST /api/v1/login/:flowId/session', 'flow', { claimToken: 'x' }],
  ['POST /api/v1/login/:flowId/offline', 'flow'],
  ['POST /api/v1/login/:flowId/code', 'flow', { channel: 'sms' }],
  ['POST /api/v1/mobile/activations', 'own'],
  ['POST /api/v1/mobile/activations/:id/token', 'own'],
  ['POST /api/v1/mobile/activations/:id/proof', 'own'],
  ['POST /api/v1/mobile/activations/:id/complete', 'own'],
  ['POST /api/v1/mobile/requests', 'own'],
  ['POST /api/v1/mobile/requests/:id', 'own'],
  ['POST /api/v1/mobile/messages/:id/ack', 'own'],
  ['POST /api/v1/mobile/push-subscription', 'own'],
  ['GET /api/v1/session', 'any'],
  ['POST /api/v1/logout', 'any'],
  ['GET /api/v1/devices', 'portal'],
  ['GET /api/v1/dscplus/eligibility', 'portal'],
  ['GET /api/v1/phones', 'portal'],
  ['GET /api/v1/secure-login', 'portal'],
  ['GET /api/v1/security-keys', 'portal'],
  ['GET /api/v1/sharing', 'portal'],
  ['GET /api/v1/sharing/:id', 'portal'],
  ['GET /api/v1/withdrawal-limits', 'portal'],
  ['GET /api/v1/notice-preferences', 'portal'],
  ['PUT /api/v1/notice-preferences', 'settings', { language: 'fr', timeZone: null }],
  ['GET /api/v1/online-card/card.pdf', 'temporary'],
  ['GET /api/v1/online-card/card.png', 'temporary'],
  ['POST /api/v1/online-card', 'temporary'],
  ['POST /api/v1/online-card/printed', 'temporary'],
  ['POST /api/v1/devices/:deviceId/activation', 'temporary'],
  ['POST /api/v1/devices/:deviceId/activation/:flowId', 'temporary', { response: '12345678' }],
  ['POST /api/v1/step-up', 'step_up', { password: PASSWORD }],
  ['GET /api/v1/step-up/:id', 'step_up'],
  ['POST /api/v1/step-up/:id', 'step_up', { response: '12345678' }],
  ['POST /api/v1/step-up/:id/offline', 'step_up'],
  ['POST /api/v1/step-up/:id/complete', 'step_up'],
  ['POST /api/v1/password', 'password', { currentPassword: PASSWORD, newPassword: 'the attacker phrase 1' }],
  ['POST /api/v1/phones', 'security', { country: 'FR', number: '612345678' }],
  ['POST /api/v1/phones/:phoneId/verification', 'security'],
  ['POST /api/v1/phones/:phoneId/confirmation', 'security', { code: '123456' }],
  ['DELETE /api/v1/phones/:phoneId', 'security'],
  ['POST /api/v1/security-keys/registration', 'security'],
  ['POST /api/v1/security-keys', 'security', { name: 'key', state: 'x', credential: {} }],
  ['PATCH /api/v1/security-keys/:keyId', 'security', { name: 'key' }],
  ['DELETE /api/v1/security-keys/:keyId', 'security'],
  ['POST /api/v1/secure-login/opt-out', 'security', { acknowledgeRisks: true, confirmation: 'x' }],
  ['POST /api/v1/secure-login/opt-in', 'security'],
  ['POST /api/v1/sharing', 'security', { ownerUsername: 'someone', ownerPassword: PASSWORD }],
  ['POST /api/v1/sharing/:id/answer', 'security', { response: '12345678' }],
  ['POST /api/v1/sharing/:id/confirmation', 'security', { disposition: 'keep' }],
  ['DELETE /api/v1/sharing/:id', 'security'],
  ['POST /api/v1/devices/:deviceId/lost', 'security', { reason: 'lost' }],
  ['POST /api/v1/devices/:deviceId/pin', 'security'],
  ['POST /api/v1/devices/:deviceId/pin/:flowId', 'security', { response: '12345678', newPin: '2468' }],
  ['POST /api/v1/dscplus/requests', 'security', { address: ADDRESS, pin: '2468' }],
  ['POST /api/v1/dscplus/requests/preview', 'security', { address: ADDRESS, pin: '2468' }],
  ['GET /api/v1/helpdesk/users', 'staff', { q: 'user' }],
  ['GET /api/v1/helpdesk/users/:username', 'staff'],
  ['GET /api/v1/helpdesk/sharing', 'staff'],
  ['POST /api/v1/helpdesk/users/:username/verifications', 'act', { method: 'id_document' }],
  ['POST /api/v1/helpdesk/users/:username/temporary-passcode', 'act', { verificationId: 'x' }],
  ['DELETE /api/v1/helpdesk/users/:username/temporary-passcode', 'act'],
  ['POST /api/v1/helpdesk/users/:username/password-reset', 'act', { verificationId: 'x' }],
  ['POST /api/v1/helpdesk/users/:username/phones', 'act', { verificationId: 'x', country: 'FR', number: '612345678' }],
  ['POST /api/v1/helpdesk/users/:username/unlock', 'act', { verificationId: 'x' }],
  ['POST /api/v1/helpdesk/users/:username/lock', 'act', { reason: 'fraud' }],
  ['DELETE /api/v1/helpdesk/users/:username/sessions', 'act'],
  ['POST /api/v1/helpdesk/devices/:deviceId/ship', 'act', { serial: 'X1', addressConfirmed: true }],
  ['POST /api/v1/helpdesk/devices/:deviceId/returned', 'act'],
  ['POST /api/v1/helpdesk/devices/:deviceId/lost', 'act', { reason: 'lost' }],
  ['POST /api/v1/helpdesk/devices/:deviceId/loss-confirmed', 'act', { verificationId: 'x' }],
  ['POST /api/v1/helpdesk/sharing/:id/decision', 'decide', { decision: 'approve' }],
  ['DELETE /api/v1/helpdesk/sharing/:id', 'end_sharing'],
  ['GET /api/v1/admin/audit', 'admin'],
  // A6 (decision 0034): the equity's rule is the console's: staff who may act (client services, admins); or an `accounts` key
  [EQUITY_API, 'act', { equityUsd: 2_000_000 }],
  ['POST /api/v1/withdrawals', 'key', { account: 'U1000001', amount: 100, currency: 'USD', reference: 'r1' }],
  ['POST /api/v1/withdrawals/check', 'key', { account: 'U1000001', amount: 100, currency: 'USD' }],
  ['GET /api/v1/entitlements', 'key', { account: 'U1000001' }],
];

/** The pages (and what is served beside them): each route and what it needs. */
const PAGES: [route: string, need: Need][] = [
  ['GET /', 'public'],
  ['GET /*', 'public'],
  ['TRACE /*', 'public'],
  ['QUERY /*', 'public'],
  ['POST /*', 'public'],
  ['PUT /*', 'public'],
  ['PATCH /*', 'public'],
  ['DELETE /*', 'public'],
  ['OPTIONS /*', 'public'],
  ['GET /.well-known/openid-configuration', 'public'],
  ['GET /app', 'public'],
  ['GET /app/', 'public'],
  ['GET /app/*', 'public'],
  ['GET /app/icon-:size.png', 'public'],
  ['GET /app/manifest.webmanifest', 'public'],
  ['GET /app/sw.js', 'public'],
  ['GET /favicon.ico', 'public'],
  ['GET /help', 'public'],
  ['GET /login', 'public'],
  ['POST /login', 'public'],
  ['GET /metrics', 'own'],
  ['GET /dev/outbox', 'own'],
  ['GET /dev/outbox/:id/audio', 'own'],
  ['GET /oidc/interaction/:uid', 'own'],
  ['POST /oidc/device', 'own'],
  ['POST /oidc/device/auth', 'own'],
  ['GET /login/:flowId', 'flow'],
  ['GET /login/:flowId/wait', 'flow'],
  ['POST /login/:flowId', 'flow'],
  ['POST /login/:flowId/session', 'flow'],
  ['POST /login/:flowId/offline', 'flow'],
  ['POST /login/:flowId/device', 'flow'],
  ['POST /login/:flowId/code', 'flow'],
  ['POST /logout', 'any'],
  // L8: a trading session is told it is signed in, and nothing of the portal
  ['GET /account', 'any'],
  ['GET /settings/mobile', 'portal'],
  ['GET /settings/notices', 'portal'],
  ['GET /settings/secure-login', 'portal'],
  ['GET /settings/secure-login/confirmation', 'portal'],
  ['GET /settings/security-keys', 'portal'],
  ['GET /sharing', 'portal'],
  ['GET /sharing/:id', 'portal'],
  ['POST /settings/notices', 'settings'],
  ['GET /online-card', 'temporary'],
  ['GET /online-card/card.pdf', 'temporary'],
  ['GET /online-card/card.png', 'temporary'],
  ['POST /online-card', 'temporary'],
  ['POST /online-card/printed', 'temporary'],
  ['GET /devices/:deviceId/activate', 'temporary'],
  ['POST /devices/:deviceId/activate', 'temporary'],
  ['POST /devices/:deviceId/activate/start', 'temporary'],
  ['GET /step-up', 'step_up'],
  ['GET /step-up/:flowId', 'step_up'],
  ['POST /step-up', 'step_up'],
  ['POST /step-up/:flowId', 'step_up'],
  ['POST /step-up/:flowId/complete', 'step_up'],
  ['POST /step-up/:flowId/offline', 'step_up'],
  ['GET /password', 'password'],
  ['POST /password', 'password'],
  ['GET /dscplus/request', 'security'],
  ['POST /dscplus/request', 'security'],
  ['GET /devices/:deviceId/lost', 'security'],
  ['POST /devices/:deviceId/lost', 'security'],
  ['GET /devices/:deviceId/pin', 'security'],
  ['POST /devices/:deviceId/pin', 'security'],
  ['POST /devices/:deviceId/pin/start', 'security'],
  ['POST /settings/mobile', 'security'],
  ['POST /settings/mobile/:phoneId/verify', 'security'],
  ['POST /settings/mobile/:phoneId/confirm', 'security'],
  ['POST /settings/mobile/:phoneId/remove', 'security'],
  ['POST /settings/security-keys', 'security'],
  ['POST /settings/security-keys/:keyId/rename', 'security'],
  ['POST /settings/security-keys/:keyId/remove', 'security'],
  ['GET /settings/secure-login/configure', 'security'],
  ['POST /settings/secure-login/configure', 'security'],
  ['GET /sharing/new', 'security'],
  ['POST /sharing/new', 'security'],
  ['POST /sharing/:id/answer', 'security'],
  ['POST /sharing/:id/confirm', 'security'],
  ['POST /sharing/:id/cancel', 'security'],
  ['GET /helpdesk', 'staff'],
  ['GET /helpdesk/sharing', 'staff'],
  ['GET /helpdesk/users/:username', 'staff'],
  ['GET /helpdesk/users/:username/verifications/:verificationId', 'staff'],
  // a new secret's result page: it shows only what was sealed for this staff session (T5, A5)
  ['GET /helpdesk/users/:username/passcode', 'staff'],
  ['GET /helpdesk/users/:username/password', 'staff'],
  ['POST /helpdesk/users/:username/verifications', 'act'],
  ['POST /helpdesk/users/:username/temporary-passcode', 'act'],
  ['POST /helpdesk/users/:username/temporary-passcode/revoke', 'act'],
  ['POST /helpdesk/users/:username/password-reset', 'act'],
  ['POST /helpdesk/users/:username/phones', 'act'],
  ['POST /helpdesk/users/:username/devices/:deviceId/ship', 'act'],
  ['POST /helpdesk/users/:username/devices/:deviceId/lost', 'act'],
  ['POST /helpdesk/users/:username/devices/:deviceId/returned', 'act'],
  ['POST /helpdesk/users/:username/devices/:deviceId/loss-confirmed', 'act'],
  ['POST /helpdesk/users/:username/lock', 'act'],
  ['POST /helpdesk/users/:username/sessions/end', 'act'],
  ['POST /helpdesk/users/:username/identification', 'act'],
  ['POST /helpdesk/users/:username/identification/reveal', 'act'],
  ['POST /helpdesk/users/:username/equity', 'act'],
  ['POST /helpdesk/users/:username/unlock', 'act'],
  ['POST /helpdesk/sharing/:id/decision', 'decide'],
  ['POST /helpdesk/sharing/:id/cancel', 'end_sharing'],
  ['GET /helpdesk/oidc-clients', 'admin'],
  ['POST /helpdesk/oidc-clients', 'admin_act'],
  ['POST /helpdesk/oidc-clients/:clientId/delete', 'admin_act'],
];

const SESSION_NEEDS: Need[] = [
  'any',
  'portal',
  'settings',
  'temporary',
  'step_up',
  'password',
  'security',
  'staff',
  'act',
  'decide',
  'end_sharing',
  'admin',
  'admin_act',
];
/** T3: what a session of temporary access past day 2 may still do. */
const LIMITED_MAY: Need[] = ['any', 'portal', 'temporary'];
const STAFF_NEEDS: Need[] = ['staff', 'act', 'decide', 'end_sharing', 'admin', 'admin_act'];
/** X1, X7, H3: what each staff role may not do. */
const ROLE_MAY_NOT: Record<Exclude<Role, 'client' | 'admin'>, Need[]> = {
  client_services: ['decide', 'admin', 'admin_act'],
  compliance: ['act', 'admin', 'admin_act'],
};

/** The audit log and, where a wrong password or answer was counted, the failure counters (L3): all a refusal may write. */
const BOOKKEEPING = new Set(['audit_log', 'audit_head', 'login_failures', 'lockouts']);

/** The error code a page shows (its alert box), or a page's JSON answer gives (the login's wait). */
function codeOf(page: Page): string | undefined {
  if (String(page.headers['content-type'] ?? '').includes('json')) return (JSON.parse(page.html) as Json).error?.code;
  return alertBox(page.html)?.code;
}

/** Every table but the bookkeeping: its row count and a digest of its rows (sorted: the order a database returns them in does not count). */
async function snapshotOf(h: Harness, tables: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of tables) {
    if (BOOKKEEPING.has(table)) continue;
    const rows = (await sql<Json>`select * from ${sql.table(table)}`.execute(h.services.store.db)).rows;
    const lines = rows.map((row: Json) => JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).sort();
    out[table] = `${rows.length} ${createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16)}`;
  }
  return out;
}

interface Caller {
  user: User;
  card?: CardFile;
  headers: Record<string, string>;
}

describe.each(DATABASES)('X7, L8, T3, I3: who may call what, route by route (%s)', (database) => {
  let h: Harness;
  let tables: string[];
  /** The client whose things the others try. */
  let owner: Caller;
  let ownerIds: Record<string, string>;
  let other: Caller;
  let limited: Caller;
  let trading: Caller;
  let staff: Record<Role, Caller>;
  let apiKey: string;
  let flow: { id: string; claimToken: string };

  async function session(role?: Role, options: { stepUp?: boolean; target?: 'portal' | 'trading' } = { stepUp: true }): Promise<Caller> {
    const { user, card } = await createUserWithCard(h.services, '1234', role ? { role } : {});
    return { user, card, headers: await loginSession(h.app, user.username, withCard(card), options) };
  }

  beforeAll(async () => {
    h = await startHarness(database);
    tables = await tablesOf(h.services.store);
    const admin = await createUserWithCard(h.services, '1234', { role: 'admin' });
    // T3: a temporary passcode's session opened past day 2 (the clock moves first: every other session is opened after)
    const temp = await createUser(h.services);
    const { passcode } = await issuePasscode(h.services, admin.user.id, temp.username);
    h.clock.advance(h.services.config.policy.temporaryPasscodeFullMs + 60_000);
    const start = await startLogin(h.app, temp.username);
    const done = await answer(h.app, start.body.id, passcode);
    limited = { user: temp, headers: bearer(done.body.session.token) };
    expect((await send(h.app, 'GET', '/api/v1/session', limited.headers)).body.scope).toBe('online_card_only');

    owner = await session();
    other = await session();
    trading = await session(undefined, { target: 'trading' });
    staff = {
      client: await session(),
      client_services: await session('client_services'),
      compliance: await session('compliance'),
      admin: await session('admin'),
    };
    apiKey = (await h.services.apiKeys.create({ name: 'matrix', scopes: ['withdrawals', 'accounts'] }, 'test')).key;
    const login = await startLogin(h.app, owner.user.username);
    flow = { id: login.body.id, claimToken: login.body.claimToken };

    // the owner's things, for another client to try (IDOR)
    const [device] = await h.services.devices.listForUser(owner.user.id);
    const phone = await postJson(h.app, '/api/v1/phones', { country: 'FR', number: '612345670' }, owner.headers);
    expect(phone.status, JSON.stringify(phone.body)).toBe(201);
    const pin = await postJson(h.app, `/api/v1/devices/${device!.id}/pin`, {}, owner.headers);
    expect(pin.status, JSON.stringify(pin.body)).toBe(200);
    const stepUpFlow = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, owner.headers);
    const keyId = await registerSecurityKey(h.app, owner.headers, new SoftwareAuthenticator(), relyingPartyOf(h.services.config));
    ownerIds = { deviceId: device!.id, phoneId: phone.body.id, keyId, flowId: stepUpFlow.body.id, id: stepUpFlow.body.id, pinFlowId: pin.body.id };
  }, 60_000);
  afterAll(async () => h?.close());

  /** A route's path: the owner's username, account and ids where it has them, else ids nobody holds. */
  function path(url: string, ids: Record<string, string> = {}): string {
    return url
      .replace(':username', ids.username ?? owner.user.username)
      .replace(':number', ids.number ?? owner.user.accountNumber)
      .replace(/:([A-Za-z]+)/g, (_, name: string) => ids[name] ?? `flw_${'c'.repeat(26)}`)
      .replace('/*', '/nothing-here');
  }

  const snapshot = () => snapshotOf(h, tables);

  /** The tables a run of refusals changed (none, if they were refusals). */
  async function unchanged(run: () => Promise<string[]>): Promise<string[]> {
    const before = await snapshot();
    const wrong = await run();
    const after = await snapshot();
    for (const table of Object.keys(after)) if (after[table] !== before[table]) wrong.push(`table ${table} changed`);
    return wrong;
  }

  /** An API request: a GET's `body` is its query. */
  function request(method: string, url: string, headers: Record<string, string>, body: Json | undefined) {
    if (method === 'GET') return send(h.app, method, body ? `${url}?${new URLSearchParams(body)}` : url, headers);
    return send(h.app, method, url, headers, body ?? (method === 'DELETE' ? undefined : {}));
  }

  /** Every API route the caller has less than, tried: each answer must be `expected(need)` (status and code). */
  async function api(
    headers: Record<string, string>,
    expected: (need: Need, route: string) => [number, string] | null,
    ids: Record<string, string> = {},
  ): Promise<string[]> {
    const wrong: string[] = [];
    for (const [route, need, body] of API) {
      const want = expected(need, route);
      if (!want) continue;
      const [method, url] = route.split(' ') as [string, string];
      const answer = await request(method, path(url, ids), headers, body);
      const got: [number, string] = [answer.status, answer.body.error?.code ?? ''];
      if (got[0] !== want[0] || got[1] !== want[1]) wrong.push(`${route} (${need}): ${got.join(' ')}, not ${want.join(' ')}`);
    }
    return wrong;
  }

  /** A browser with the caller's session cookie (or none) and a CSRF token of its own. */
  async function browser(headers?: Record<string, string>): Promise<{ agent: Agent; csrf: string }> {
    const agent = new Agent(h.app);
    if (headers) agent.jar.set(SESSION_COOKIE, headers.authorization!.slice('Bearer '.length));
    const page = await agent.get('/login');
    const form = forms(page.html).find((f) => f.attrs.action === '/login');
    return { agent, csrf: form ? csrfOf(form) : '' };
  }

  /**
   * Every page the caller has less than, tried (GET, or POST with a valid CSRF token): `expected(need)` is `login` (the
   * browser goes to the login page), `step-up` (to the step-up page, which comes back), `password` (to the password page, A5) or the code of the 4xx error page.
   */
  async function pages(
    headers: Record<string, string> | undefined,
    expected: (need: Need, route: string) => 'login' | 'step-up' | 'password' | [number, string] | null,
    ids: Record<string, string> = {},
  ): Promise<string[]> {
    const { agent, csrf } = await browser(headers);
    const wrong: string[] = [];
    for (const [route, need] of PAGES) {
      const want = expected(need, route);
      if (!want) continue;
      const [method, url] = route.split(' ') as [string, string];
      const page = method === 'GET' ? await agent.get(path(url, ids)) : await agent.post(path(url, ids), { _csrf: csrf });
      const got = page.status === 303 || page.status === 302 ? `${page.status} ${page.location ?? ''}` : `${page.status} ${codeOf(page) ?? ''}`;
      const ok =
        want === 'login'
          ? page.status === 303 && /^\/login(\?|$)/.test(page.location ?? '')
          : want === 'step-up'
            ? page.status === 303 && (page.location ?? '').startsWith('/step-up?next=')
            : want === 'password'
              ? page.status === 303 && page.location === '/password'
              : page.status === want[0] && codeOf(page) === want[1];
      if (!ok) wrong.push(`${route} (${need}): ${got}, not ${typeof want === 'string' ? want : want.join(' ')}`);
    }
    return wrong;
  }

  it('X7: every route of the app is classified by what it needs of its caller (a new route fails here until someone decides)', () => {
    const listed = new Set([...API, ...PAGES].map(([route]) => route));
    const served = routesOf(h.app)
      .filter((r) => r.method !== 'HEAD')
      .map((r) => `${r.method} ${r.url}`);
    expect(served.filter((route) => !listed.has(route))).toEqual([]);
    expect([...listed].filter((route) => !served.includes(route))).toEqual([]);
  });

  it('L8, I3: nobody (no cookie, no token) is refused every route that needs a session (401 UNAUTHENTICATED; the pages: the login page) or a key (401 API_KEY_REQUIRED); nothing written', async () => {
    const wrong = await unchanged(async () => [
      ...(await api({}, (need) => (need === 'key' ? [401, 'API_KEY_REQUIRED'] : SESSION_NEEDS.includes(need) ? [401, 'UNAUTHENTICATED'] : null))),
      ...(await pages(undefined, (need) => (SESSION_NEEDS.includes(need) ? 'login' : null))),
    ]);
    expect(wrong).toEqual([]);
  });

  it('L8: the holder of a login whose password was right (its claim token, no session) is nobody to the routes that need a session: 401 UNAUTHENTICATED; nothing written', async () => {
    const claim = { 'x-claim-token': flow.claimToken };
    const wrong = await unchanged(async () => [
      ...(await api(claim, (need) => (SESSION_NEEDS.includes(need) ? [401, 'UNAUTHENTICATED'] : null))),
      // the claim token as a Bearer token is no session either
      ...(await api(bearer(flow.claimToken), (need) => (SESSION_NEEDS.includes(need) ? [401, 'UNAUTHENTICATED'] : null))),
    ]);
    expect(wrong).toEqual([]);
  });

  it("L8: another client's session is no login's claim: a login's routes with its id alone are 404 FLOW_NOT_FOUND; nothing written", async () => {
    const wrong = await unchanged(async () => api(other.headers, (need) => (need === 'flow' ? [404, 'FLOW_NOT_FOUND'] : null), { flowId: flow.id }));
    expect(wrong).toEqual([]);
  });

  it("L8: a browser without the login's claim cookie (another's, or none) reads and answers no login's pages by its id: 404 FLOW_NOT_FOUND; nothing written", async () => {
    const wrong = await unchanged(async () => {
      const out: string[] = [];
      for (const headers of [undefined, other.headers]) {
        out.push(...(await pages(headers, (need) => (need === 'flow' ? [404, 'FLOW_NOT_FOUND'] : null), { flowId: flow.id })));
      }
      return out;
    });
    expect(wrong).toEqual([]);
  });

  it("I3: an API key is no session (401 UNAUTHENTICATED on every session route, an admin's too but the equity its scope opens), and a session's token is no key (401 API_KEY_INVALID); nothing written", async () => {
    const wrong = await unchanged(async () => [
      ...(await api(bearer(apiKey), (need, route) => (SESSION_NEEDS.includes(need) && route !== EQUITY_API ? [401, 'UNAUTHENTICATED'] : null))),
      ...(await api(staff.admin.headers, (need) => (need === 'key' ? [401, 'API_KEY_INVALID'] : null))),
    ]);
    expect(wrong).toEqual([]);
  });

  it("I3: an API key opens only its scope's routes: a `withdrawals` key sets no equity, an `accounts` key checks, records and reads no withdrawal (403 API_KEY_SCOPE); nothing written", async () => {
    const withdrawals = (await h.services.apiKeys.create({ name: 'matrix-w', scopes: ['withdrawals'] }, 'test')).key;
    const accounts = (await h.services.apiKeys.create({ name: 'matrix-a', scopes: ['accounts'] }, 'test')).key;
    const wrong = await unchanged(async () => [
      ...(await api(bearer(withdrawals), (_, route) => (route === EQUITY_API ? [403, 'API_KEY_SCOPE'] : null))),
      ...(await api(bearer(accounts), (need) => (need === 'key' ? [403, 'API_KEY_SCOPE'] : null))),
    ]);
    expect(wrong).toEqual([]);
  });

  it('T3: a session of temporary access past day 2 (online_card_only) does nothing but read the portal, print the online card and reactivate a device: 403 SCOPE_ONLINE_CARD_ONLY elsewhere, through the API and the pages; nothing written', async () => {
    const refused = (need: Need): [number, string] | null =>
      SESSION_NEEDS.includes(need) && !LIMITED_MAY.includes(need) ? [403, 'SCOPE_ONLINE_CARD_ONLY'] : null;
    const wrong = await unchanged(async () => [...(await api(limited.headers, refused)), ...(await pages(limited.headers, refused))]);
    expect(wrong).toEqual([]);
  });

  it('L8: a trading session opens trading only: 403 PORTAL_SESSION_REQUIRED on every portal, settings and staff route; nothing written', async () => {
    const refused = (need: Need): [number, string] | null => (SESSION_NEEDS.includes(need) && need !== 'any' ? [403, 'PORTAL_SESSION_REQUIRED'] : null);
    const wrong = await unchanged(async () => [...(await api(trading.headers, refused)), ...(await pages(trading.headers, refused))]);
    expect(wrong).toEqual([]);
  });

  it("A5: a session opened with client services' one-time password does nothing but step up and change the password: 403 PASSWORD_CHANGE_REQUIRED elsewhere (the pages: the password page); nothing written", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const verification = await h.services.helpDesk.verifyIdentity(staff.admin.user.id, user.username, { method: 'id_document' });
    const { temporaryPassword } = await h.services.helpDesk.resetPassword(staff.admin.user.id, user.username, { verificationId: verification.id });
    const start = await startLogin(h.app, user.username, temporaryPassword!);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const done = await answer(h.app, start.body.id, withCard(card)(start.body.challenge));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const headers = bearer(done.body.session.token);
    const mayDo: Need[] = ['any', 'step_up', 'password'];
    const wrong = await unchanged(async () => [
      ...(await api(headers, (need) => (SESSION_NEEDS.includes(need) && !mayDo.includes(need) ? [403, 'PASSWORD_CHANGE_REQUIRED'] : null))),
      ...(await pages(headers, (need) => (SESSION_NEEDS.includes(need) && !mayDo.includes(need) ? 'password' : null))),
    ]);
    expect(wrong).toEqual([]);
  });

  it('O1, L8: a session opened by the password alone (opted out of the second factor for trading) is a trading session and nothing more: 403 PORTAL_SESSION_REQUIRED on every portal, settings and staff route, through the API and the pages; nothing written', async () => {
    const opted = await session();
    const out = await postJson(h.app, '/api/v1/secure-login/opt-out', { acknowledgeRisks: true, confirmation: opted.user.username }, opted.headers);
    expect(out.status, JSON.stringify(out.body)).toBe(200);
    const login = await startLogin(h.app, opted.user.username, PASSWORD, 'trading');
    expect(login.body).toMatchObject({ state: 'done', device: null, session: { app: 'trading' } });
    const headers = bearer(login.body.session.token);
    const refused = (need: Need): [number, string] | null => (SESSION_NEEDS.includes(need) && need !== 'any' ? [403, 'PORTAL_SESSION_REQUIRED'] : null);
    const wrong = await unchanged(async () => [...(await api(headers, refused)), ...(await pages(headers, refused))]);
    expect(wrong).toEqual([]);
  });

  it("X1, X7: a client's stepped-up session is refused every staff and admin route (403 FORBIDDEN_ROLE), through the API and the console; nothing written", async () => {
    const refused = (need: Need): [number, string] | null => (STAFF_NEEDS.includes(need) ? [403, 'FORBIDDEN_ROLE'] : null);
    const wrong = await unchanged(async () => [...(await api(staff.client.headers, refused)), ...(await pages(staff.client.headers, refused))]);
    expect(wrong).toEqual([]);
  });

  it("X1, X7, H3: the role is checked before the id a staff route names is looked up: a client's device action on the help desk, client services' decision on a sharing, compliance's equity form: 403 FORBIDDEN_ROLE, audited as helpdesk.refused (reason role) under who asked, never a 404 or 400 that tells of the id or the form", async () => {
    const unknown = `flw_${'c'.repeat(26)}`;
    const cases: [Caller, () => Promise<{ status: number; code: string | undefined }>][] = [
      [
        staff.client,
        async () =>
          ((r) => ({ status: r.status, code: r.body.error?.code }))(
            await postJson(h.app, `/api/v1/helpdesk/devices/${unknown}/returned`, {}, staff.client.headers),
          ),
      ],
      [
        staff.client_services,
        async () =>
          ((r) => ({ status: r.status, code: r.body.error?.code }))(
            await postJson(h.app, `/api/v1/helpdesk/sharing/${unknown}/decision`, { decision: 'approve' }, staff.client_services.headers),
          ),
      ],
      [
        staff.compliance,
        async () => {
          const { agent } = await browser(staff.compliance.headers);
          const csrf = csrfOf(forms((await agent.get('/account')).html).find((f) => f.attrs.action === '/logout')!);
          const page = await agent.post(`/helpdesk/users/${owner.user.username}/equity`, { equityUsd: 'not a number', _csrf: csrf });
          return { status: page.status, code: alertBox(page.html)?.code };
        },
      ],
    ];
    for (const [who, attempt] of cases) {
      const before = (await h.services.audit.list({ userId: who.user.id, limit: 500 })).filter((e) => e.event === 'helpdesk.refused').length;
      expect([who.user.role, await attempt()]).toEqual([who.user.role, { status: 403, code: 'FORBIDDEN_ROLE' }]);
      const refused = (await h.services.audit.list({ userId: who.user.id, limit: 500 })).filter((e) => e.event === 'helpdesk.refused');
      expect(refused).toHaveLength(before + 1);
      expect(refused.map((e) => (e.data as Json).reason)).toContain('role');
    }
  });

  it.each(['client_services', 'compliance'] as const)(
    'X1, X7, H3: %s, stepped up, is refused what its role may not do (403 FORBIDDEN_ROLE), through the API and the console; nothing written',
    async (role) => {
      const refused = (need: Need): [number, string] | null => (ROLE_MAY_NOT[role].includes(need) ? [403, 'FORBIDDEN_ROLE'] : null);
      const wrong = await unchanged(async () => [...(await api(staff[role].headers, refused)), ...(await pages(staff[role].headers, refused))]);
      expect(wrong).toEqual([]);
    },
  );

  it.each(['client', 'client_services', 'compliance'] as const)(
    'X1, X7 (decisions 0011, 0034): %s without a step-up is refused what its role may not read or do (403 FORBIDDEN_ROLE, the role checked before the step-up), and sent to the step-up only before a staff action its role may take (403 STEP_UP_REQUIRED; the console: the step-up page); nothing written',
    async (role) => {
      const who = await session(role === 'client' ? undefined : role, { stepUp: false });
      const mayNot = role === 'client' ? STAFF_NEEDS : ROLE_MAY_NOT[role];
      const actions: Need[] = ['act', 'decide', 'end_sharing', 'admin_act'];
      const before = (await h.services.audit.list({ userId: who.user.id, limit: 500 })).filter((e) => e.event === 'helpdesk.refused').length;
      const wrong = await unchanged(async () => [
        ...(await api(who.headers, (need) => (mayNot.includes(need) ? [403, 'FORBIDDEN_ROLE'] : actions.includes(need) ? [403, 'STEP_UP_REQUIRED'] : null))),
        ...(await pages(who.headers, (need) => (mayNot.includes(need) ? [403, 'FORBIDDEN_ROLE'] : actions.includes(need) ? 'step-up' : null))),
      ]);
      expect(wrong).toEqual([]);
      // X1: each refusal by role is audited as such (helpdesk.refused, reason role), never as a step-up missed
      const refused = (await h.services.audit.list({ userId: who.user.id, limit: 500 })).filter((e) => e.event === 'helpdesk.refused');
      const tried = [...API, ...PAGES].filter(([, need]) => mayNot.includes(need)).length;
      expect(refused.length - before).toBe(tried);
      expect(new Set(refused.map((e) => (e.data as Json).reason))).toEqual(new Set(['role']));
    },
  );

  it('V1, L8: a step-up belongs to the session that started it: another session of the same user reads, answers and completes none of it by its id (404 FLOW_NOT_FOUND), through the API and the pages; nothing written', async () => {
    const second = { ...owner, headers: await loginSession(h.app, owner.user.username, withCard(owner.card!)) };
    const stepUpRoute = (route: string) => /step-up\/:(id|flowId)/.test(route);
    const wrong = await unchanged(async () => {
      const out: string[] = [];
      for (const [route, need, body] of API.filter(([r]) => stepUpRoute(r))) {
        const [method, url] = route.split(' ') as [string, string];
        const answer = await request(method, path(url, ownerIds), second.headers, body);
        if (answer.status !== 404 || answer.body.error?.code !== 'FLOW_NOT_FOUND')
          out.push(`${route} (${need}): ${answer.status} ${answer.body.error?.code ?? ''}`);
      }
      out.push(...(await pages(second.headers, (need, route) => (need === 'step_up' && route.includes(':flowId') ? [404, 'FLOW_NOT_FOUND'] : null), ownerIds)));
      return out;
    });
    expect(wrong).toEqual([]);
  });

  it("T1, X7: a colleague's identity verification is theirs alone: client services present an admin's verification of the owner to issue a passcode, reset the password, add a number, unlock, or read it: 404 VERIFICATION_NOT_FOUND, through the API and the console; nothing written", async () => {
    const verification = await h.services.helpDesk.verifyIdentity(staff.admin.user.id, owner.user.username, { method: 'id_document' });
    const agent = staff.client_services;
    const cases: [string, string, Json][] = [
      ['POST', 'temporary-passcode', { verificationId: verification.id }],
      ['POST', 'password-reset', { verificationId: verification.id }],
      ['POST', 'phones', { verificationId: verification.id, country: 'FR', number: '612345671' }],
      ['POST', 'unlock', { verificationId: verification.id }],
    ];
    const wrong = await unchanged(async () => {
      const out: string[] = [];
      for (const [method, action, body] of cases) {
        const answer = await request(method, `/api/v1/helpdesk/users/${owner.user.username}/${action}`, agent.headers, body);
        if (answer.status !== 404 || answer.body.error?.code !== 'VERIFICATION_NOT_FOUND')
          out.push(`${method} ${action}: ${answer.status} ${answer.body.error?.code ?? ''}`);
      }
      const { agent: browserOf } = await browser(agent.headers);
      const page = await browserOf.get(`/helpdesk/users/${owner.user.username}/verifications/${verification.id}`);
      if (page.status !== 404 || codeOf(page) !== 'VERIFICATION_NOT_FOUND')
        out.push(`the verification's page: ${page.status} ${page.location ?? codeOf(page) ?? ''}`);
      return out;
    });
    expect(wrong).toEqual([]);
  });

  it.each([
    ['client_services', 'an admin'],
    ['admin', 'another admin'],
    ['client_services', 'their own account'],
  ] as const)(
    'X7 (decision 0010): %s, stepped up, acts on no staff account (%s): 403 STAFF_TARGET_FORBIDDEN on every staff route that names its username, account or device, through the API and the console; nothing written',
    async (role, target) => {
      const actor = staff[role];
      const them = target === 'another admin' ? await session('admin') : target === 'an admin' ? staff.admin : actor;
      const [device] = await h.services.devices.listForUser(them.user.id);
      const ids = { username: them.user.username, number: them.user.accountNumber, deviceId: device!.id };
      const names = (route: string) => /:(username|number|deviceId)/.test(route);
      const wrong = await unchanged(async () => {
        const out: string[] = [];
        // (the equity through the admin API is an `act` since decision 0034: client services try it too)
        const needs: Need[] = role === 'admin' ? ['staff', 'act', 'admin_act'] : ['staff', 'act'];
        for (const [route, need, body] of API.filter(([r, n]) => names(r) && needs.includes(n))) {
          const [method, url] = route.split(' ') as [string, string];
          const answer = await request(method, path(url, ids), actor.headers, body);
          if (answer.status !== 403 || answer.body.error?.code !== 'STAFF_TARGET_FORBIDDEN')
            out.push(`${route} (${need}): ${answer.status} ${answer.body.error?.code ?? ''}`);
        }
        const { agent } = await browser(actor.headers);
        const account = await agent.get('/account');
        const csrf = csrfOf(forms(account.html).find((f) => f.attrs.action === '/logout')!);
        for (const [route, need] of PAGES.filter(([r, n]) => names(r) && ['staff', 'act'].includes(n))) {
          const [method, url] = route.split(' ') as [string, string];
          const page = method === 'GET' ? await agent.get(path(url, ids)) : await agent.post(path(url, ids), { _csrf: csrf });
          if (page.status !== 403 || alertBox(page.html)?.code !== 'STAFF_TARGET_FORBIDDEN')
            out.push(`${route} (${need}): ${page.status} ${page.location ?? alertBox(page.html)?.code ?? ''}`);
        }
        return out;
      });
      expect(wrong).toEqual([]);
    },
  );

  /** D2: a user with a number (SMS) and a DSC+ (their strongest), whose session was opened and stepped up by SMS: the password and a SIM. */
  async function smsSteppedUp(role?: Role): Promise<{ user: User; headers: Record<string, string>; keyId: string }> {
    const user = await createUser(h.services, role ? { role } : {});
    await verifiedNumber(h, user.id);
    const { card } = await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
    // a key of theirs, registered with the card (their strongest), for the SMS session to try to remove
    const keyId = await registerSecurityKey(
      h.app,
      await loginSession(h.app, user.username, withCard(card), { stepUp: true }),
      new SoftwareAuthenticator(),
      relyingPartyOf(h.services.config),
    );
    const sms = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'sms' && d.state === 'active')!;
    const code = async (not: string[]) =>
      (await h.services.notifier.list({ userId: user.id }))
        .filter((n) => n.template === 'loginCode')
        .map((n) => /\b(\d{6})\b/.exec(n.body)![1]!)
        .find((c) => !not.includes(c))!;
    const start = await startLogin(h.app, user.username);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    if (start.body.device.id !== sms.id) await postJson(h.app, `/api/v1/login/${start.body.id}`, { device: sms.id }, claimFor(start.body.id));
    const loginCode = await code([]);
    const logged = await answer(h.app, start.body.id, loginCode);
    expect(logged.status, JSON.stringify(logged.body)).toBe(200);
    const headers = bearer(logged.body.session.token);
    const step = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
    expect(step.body.deviceId).toBe(sms.id);
    const stepped = await postJson(h.app, `/api/v1/step-up/${step.body.id}`, { response: await code([loginCode]) }, headers);
    expect(stepped.body.state, JSON.stringify(stepped.body)).toBe('done');
    tookNewToken(headers, stepped);
    return { user, headers, keyId };
  }

  /**
   * D2, O1, H5, D6: what a session whose last proof is weaker than the user's strongest device may not do through the
   * API — bind or remove a security key, opt out, share a device —; the requests answered otherwise than
   * 403 STRONGER_DEVICE_REQUIRED.
   */
  async function notRefusedStronger(headers: Record<string, string>, user: User, keyId: string, options: { keys?: boolean } = {}): Promise<string[]> {
    const keys: [string, string, Json?][] = [
      ['POST', '/api/v1/security-keys/registration'],
      ['POST', '/api/v1/security-keys', { name: 'key', state: 'x', credential: {} }],
      ['DELETE', `/api/v1/security-keys/${keyId}`],
    ];
    const cases: [string, string, Json?][] = [
      ...(options.keys === false ? [] : keys),
      ['POST', '/api/v1/secure-login/opt-out', { acknowledgeRisks: true, confirmation: user.username }],
      ['POST', '/api/v1/sharing', { ownerUsername: owner.user.username, ownerPassword: PASSWORD }],
    ];
    const out: string[] = [];
    for (const [method, url, body] of cases) {
      const answer = await request(method, url, headers, body);
      if (answer.status !== 403 || answer.body.error?.code !== 'STRONGER_DEVICE_REQUIRED')
        out.push(`${method} ${url}: ${answer.status} ${answer.body.error?.code ?? ''}`);
    }
    return out;
  }

  it('D2, O1, H5: a client protected by a DSC+ whose session was opened and stepped up by SMS binds no security key, removes none, opts out of nothing and shares no device: 403 STRONGER_DEVICE_REQUIRED; nothing written', async () => {
    const { user, headers, keyId } = await smsSteppedUp();
    const wrong = await unchanged(() => notRefusedStronger(headers, user, keyId));
    expect(wrong).toEqual([]);
  });

  it('X7, D2 (decision 0028): an admin protected by a DSC+ whose session was opened and stepped up by SMS (the password and a SIM) takes no staff action: 403 STRONGER_DEVICE_REQUIRED on every one, through the API and the console; nothing written', async () => {
    const { headers } = await smsSteppedUp('admin');
    const refused = (need: Need): [number, string] | null =>
      ['act', 'decide', 'end_sharing', 'admin_act'].includes(need) ? [403, 'STRONGER_DEVICE_REQUIRED'] : null;
    const wrong = await unchanged(async () => [...(await api(headers, refused, ownerIds)), ...(await pages(headers, refused, ownerIds))]);
    expect(wrong).toEqual([]);
  });

  /** K1: one phone (the app's own code in Node) for the harness, its server listening on a local port. */
  let phone: TestPhone | undefined;
  async function phoneOf(): Promise<TestPhone> {
    phone ??= new TestPhone(await listen(h), harnessInbox(h));
    return phone;
  }

  let sccSerial = 0;
  /** D1: a Security Code Card imported for the user (legacy); its device id. */
  async function withScc(user: User): Promise<string> {
    sccSerial += 1;
    return (await h.services.onlineCards.importSecurityCodeCard(user.id, `SCCM-${sccSerial}-${Date.now() % 100_000}`, REQUESTER_SCC_CODES, 'test')).id;
  }

  /** K1, K7: the mobile authenticator activated on the phone, possession proven by the user's DSC+ (or the code card, `respond`); its device id. */
  async function withMobile(user: User, respond: (challenge: Json) => string): Promise<string> {
    const app = await phoneOf();
    const view = await app.start(user.username);
    expect(view.proof, JSON.stringify(view)).toBe('device');
    return (await app.complete(view, respond(view.challenge as Json))).deviceId;
  }

  /** How a device answers a login's or a step-up's prompt (`offline`: the app's offline challenge for a push, K4). */
  type Answerer = (prompt: Json, offline: () => Promise<Json>) => Promise<string>;
  type Weak = 'scc' | 'mobile' | 'key' | 'dsc';
  type Strongest = 'dscplus' | 'mobile' | 'key' | 'token';

  /** D6: a security key of the user's, registered on the proof of `session`; its device id and its answers. */
  async function withKey(session: Record<string, string>): Promise<{ deviceId: string; answer: Answerer }> {
    const where = relyingPartyOf(h.services.config);
    const key = new SoftwareAuthenticator();
    const deviceId = await registerSecurityKey(h.app, session, key, where);
    return { deviceId, answer: async (prompt) => key.assert(prompt.options as { challenge: string }, where) };
  }

  /** D1: a legacy device (a DSC, or a Platinum / Gold token) issued to the user from the stock; its device id and its answers. */
  async function withLegacy(user: User, kind: keyof typeof LEGACY_KEYS): Promise<{ deviceId: string; answer: Answerer }> {
    const { deviceId, display } = await legacyDevice(h, user, LEGACY_KEYS[kind]);
    return { deviceId, answer: (prompt) => display(prompt) };
  }

  /**
   * D2: a user protected by `strongest` (a DSC+, the mobile authenticator, a security key or a Platinum / Gold token) who
   * also holds a weaker device (a code card, the authenticator, a security key or a legacy DSC), whose session was opened
   * and stepped up with the weaker one; a security key of theirs, registered on the proof of the stronger (the strongest
   * itself when it is a key), for that session to try to remove.
   */
  async function weakerSteppedUp(weak: Weak, strongest: Strongest, role?: Role): Promise<{ user: User; headers: Record<string, string>; keyId: string }> {
    let user: User;
    let strongSession: () => Promise<Record<string, string>>;
    let strongKeyId: string | null = null;
    let weakDevice: { deviceId: string; answer: Answerer } | null = null;
    if (strongest === 'dscplus' || strongest === 'key') {
      const made = await createUserWithCard(h.services, '1234', role ? { role } : {});
      user = made.user;
      strongSession = () => loginSession(h.app, user.username, withCard(made.card), { stepUp: true });
      if (strongest === 'key') {
        // the key, registered on the card's proof, then the card given back: the key protects the user
        const key = await withKey(await strongSession());
        const [card] = (await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'dscplus');
        await h.services.devices.setState(card!.id, 'revoked', 'test', 'matrix: the key is the strongest');
        strongKeyId = key.deviceId;
        strongSession = () => deviceSession(user, key.deviceId, key.answer);
      }
      if (weak === 'mobile') weakDevice = { deviceId: await withMobile(user, withCard(made.card)), answer: mobileAnswer(user) };
    } else if (strongest === 'token') {
      user = await createUser(h.services, role ? { role } : {});
      const token = await withLegacy(user, 'token_hotp');
      strongSession = () => deviceSession(user, token.deviceId, token.answer);
    } else {
      // the code card, the only device, proves possession for the authenticator (K7); the code card is then the weaker
      user = await createUser(h.services, role ? { role } : {});
      weakDevice = { deviceId: await withScc(user), answer: sccAnswer };
      const mobileId = await withMobile(user, indexAnswerOf(REQUESTER_SCC_CODES));
      const u = user;
      strongSession = () => deviceSession(u, mobileId, mobileAnswer(u));
    }
    if (!weakDevice) {
      if (weak === 'scc') weakDevice = { deviceId: await withScc(user), answer: sccAnswer };
      else if (weak === 'key') weakDevice = await withKey(await strongSession());
      else if (weak === 'dsc') weakDevice = await withLegacy(user, 'dsc');
      else throw new Error(`no ${weak} beside ${strongest} here`);
    }
    const keyId = strongKeyId ?? (weak === 'key' ? weakDevice.deviceId : (await withKey(await strongSession())).deviceId);
    return { user, keyId, headers: await deviceSession(user, weakDevice.deviceId, weakDevice.answer) };
  }

  const sccAnswer: Answerer = async (prompt) => indexAnswerOf(REQUESTER_SCC_CODES)(prompt);
  /** K4: the app's response to the challenge (the offline one, for a push). */
  const mobileAnswer =
    (user: User): Answerer =>
    async (prompt, offline) => {
      const challenge = prompt.type === 'push' ? await offline() : prompt;
      return (await phoneOf()).respond(user.username, challenge.question as string);
    };

  /** A portal session opened and stepped up with the device `deviceId`, answered by `answerWith`. */
  async function deviceSession(user: User, deviceId: string, answerWith: Answerer): Promise<Record<string, string>> {
    const start = await startLogin(h.app, user.username);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    let prompt = start.body.challenge as Json;
    if (start.body.device.id !== deviceId) {
      const switched = await postJson(h.app, `/api/v1/login/${start.body.id}`, { device: deviceId }, claimFor(start.body.id));
      expect(switched.status, JSON.stringify(switched.body)).toBe(200);
      prompt = switched.body.challenge as Json;
    }
    const offlineLogin = async () => (await postJson(h.app, `/api/v1/login/${start.body.id}/offline`, {}, claimFor(start.body.id))).body.challenge as Json;
    const logged = await answer(h.app, start.body.id, await answerWith(prompt, offlineLogin));
    expect(logged.status, JSON.stringify(logged.body)).toBe(200);
    const headers = bearer(logged.body.session.token);
    const step = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
    expect(step.body.deviceId, JSON.stringify(step.body)).toBe(deviceId);
    const offlineStep = async () => (await postJson(h.app, `/api/v1/step-up/${step.body.id}/offline`, {}, headers)).body.challenge as Json;
    const stepped = await postJson(h.app, `/api/v1/step-up/${step.body.id}`, { response: await answerWith(step.body.challenge, offlineStep) }, headers);
    expect(stepped.body.state, JSON.stringify(stepped.body)).toBe('done');
    return tookNewToken(headers, stepped);
  }

  /**
   * The rows: the weaker device a session proved, the user's strongest. A security key's proof binds and removes a key
   * (D2, D6: it is as strong as the device it would add or remove), so its rows try the opt-out and the sharing only; a
   * Platinum / Gold token is never the weaker (D2: as strong as a DSC+).
   */
  const WEAKER: [Weak, Strongest][] = [
    ['scc', 'dscplus'],
    ['mobile', 'dscplus'],
    ['scc', 'mobile'],
    ['key', 'dscplus'],
    ['dsc', 'dscplus'],
    ['dsc', 'key'],
    ['key', 'token'],
    ['dsc', 'token'],
  ];

  it.each(WEAKER)(
    'D2, O1, H5, D6, D1: a client whose strongest device is above the %s their session was opened and stepped up with (%s) binds no security key a key would not, removes none, opts out of nothing and shares no device: 403 STRONGER_DEVICE_REQUIRED; nothing written',
    async (weak, strongest) => {
      const { user, headers, keyId } = await weakerSteppedUp(weak, strongest);
      const keys = weak !== 'key';
      const wrong = await unchanged(async () => {
        const out = await notRefusedStronger(headers, user, keyId, { keys });
        const { agent } = await browser(headers);
        const csrf = csrfOf(forms((await agent.get('/account')).html).find((f) => f.attrs.action === '/logout')!);
        for (const url of keys ? ['/settings/security-keys', `/settings/security-keys/${keyId}/remove`] : []) {
          const page = await agent.post(url, { _csrf: csrf, name: 'key' });
          if (page.status !== 403 || codeOf(page) !== 'STRONGER_DEVICE_REQUIRED')
            out.push(`POST ${url}: ${page.status} ${page.location ?? codeOf(page) ?? ''}`);
        }
        return out;
      });
      expect(wrong).toEqual([]);
    },
  );

  it.each(WEAKER)(
    'X7, D2, D1 (decision 0028): an admin whose session was opened and stepped up with a %s, weaker than their strongest device (%s), takes no staff action: 403 STRONGER_DEVICE_REQUIRED on every one, through the API and the console; nothing written',
    async (weak, strongest) => {
      const { headers } = await weakerSteppedUp(weak, strongest, 'admin');
      const refused = (need: Need): [number, string] | null =>
        ['act', 'decide', 'end_sharing', 'admin_act'].includes(need) ? [403, 'STRONGER_DEVICE_REQUIRED'] : null;
      const wrong = await unchanged(async () => [...(await api(headers, refused, ownerIds)), ...(await pages(headers, refused, ownerIds))]);
      expect(wrong).toEqual([]);
    },
  );

  it('K7, D2, D6: a client holding a code card and a security key (their strongest) proves possession with the key, not the code card, to bring the mobile authenticator to a phone: whoever holds the password and the grid binds no phone; nothing but the refused proof counted', async () => {
    const user = await createUser(h.services);
    await withScc(user);
    const sccSession = await loginSession(h.app, user.username, indexAnswerOf(REQUESTER_SCC_CODES), { stepUp: true });
    // a user whose strongest is the code card may add a key on its proof (D2: an upgrade)
    await registerSecurityKey(h.app, sccSession, new SoftwareAuthenticator(), relyingPartyOf(h.services.config));
    const app = await phoneOf();
    const view = await app.start(user.username);
    expect([view.proof, (view.challenge as Json | null)?.type]).toEqual(['device', 'webauthn']);
    // the grid's answer proves nothing
    expect((await rejected(app.prove(view, '123456'))).code).toBe('ACTIVATION_PROOF_FAILED');
    expect((await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'mobile')).toEqual([]);
  });

  it("K1, K3, K13, K14, L8: the app's own API opens only with the phone's own token, for its own active authenticator's requests: no token, a session's token (Bearer or in the body), another phone's device key, a suspended, lost or revoked app, another user's request id: 400 VALIDATION_ERROR, 401 APP_TOKEN_INVALID or 410 FLOW_EXPIRED, never an approval; nothing written", async () => {
    const app = await phoneOf();
    const other = new TestPhone(await listen(h), harnessInbox(h));
    const made = await createUserWithCard(h.services);
    await withMobile(made.user, withCard(made.card));
    const stranger = await createUserWithCard(h.services);
    const strangerView = await other.start(stranger.user.username);
    await other.complete(strangerView, cardAnswer(stranger.card, (strangerView.challenge as Json).question));
    const anyone = await createUserWithCard(h.services);
    await withMobile(anyone.user, withCard(anyone.card));
    /** A login waiting for the user's phone; the request the phone sees, and the number on the login screen. */
    const waiting = async (username: string, on: TestPhone) => {
      const login = await startLogin(h.app, username);
      const mobile = (login.body.devices as Json[]).find((d) => d.type === 'mobile')!;
      const switched = await postJson(h.app, `/api/v1/login/${login.body.id}`, { device: mobile.id }, claimFor(login.body.id));
      expect(switched.body.challenge?.type, JSON.stringify(switched.body)).toBe('push');
      return { login, request: await on.request(username), number: switched.body.challenge.number as string };
    };
    const mine = await waiting(made.user.username, app);
    const theirs = await waiting(stranger.user.username, other);
    const e = app.enrolments.get(made.user.username)!;
    const s = other.enrolments.get(stranger.user.username)!;
    const session = await loginSession(h.app, anyone.user.username, withCard(anyone.card));
    const sessionToken = session.authorization!.slice('Bearer '.length);
    const approval = async (requestId: string, number: string, by: { deviceId: string; token: string }, signer: typeof e, pin = signer.pin) => {
      const proof = await app.respond(made.user.username, mine.request.question, pin).catch(() => '00000000');
      const message = answerMessage(requestId, number, 'approve', proof);
      return { ...by, decision: 'approve', number, proof, signature: await signAnswer(signer.keys.signing.privateKey, message) };
    };
    const ecdh = (await import('node:crypto')).createECDH('prime256v1');
    const subscription = {
      endpoint: 'https://fcm.googleapis.com/fcm/send/matrix',
      keys: { p256dh: ecdh.generateKeys().toString('base64url'), auth: Buffer.alloc(16, 7).toString('base64url') },
    };
    const message = (await h.services.store.db.selectFrom('app_messages').select('id').executeTakeFirst())?.id ?? `msg_${'c'.repeat(26)}`;

    const tryAll = async (label: string, by: Record<string, string>, headers: Record<string, string>, want: [number, string]) => {
      const out: string[] = [];
      const calls: [string, Json][] = [
        [`/api/v1/mobile/requests/${mine.request.id}`, await approval(mine.request.id, mine.number, { deviceId: by.deviceId!, token: by.token! }, e)],
        [`/api/v1/mobile/messages/${message}/ack`, by],
        ['/api/v1/mobile/push-subscription', { ...by, subscription }],
      ];
      for (const [url, body] of calls) {
        const answer = await postJson(h.app, url, body, headers);
        if (answer.status !== want[0] || answer.body.error?.code !== want[1])
          out.push(`${label}: POST ${url}: ${answer.status} ${answer.body.error?.code ?? ''}`);
      }
      const polled = await postJson(h.app, '/api/v1/mobile/requests', { devices: [by], wait: 0 }, headers);
      if (polled.status === 200 ? polled.body.requests.length > 0 : polled.status !== 400)
        out.push(`${label}: poll ${polled.status} ${JSON.stringify(polled.body)}`);
      return out;
    };

    const wrong = await unchanged(async () => {
      const out: string[] = [];
      // no credential at all; the app's device id alone
      out.push(...(await tryAll('no token', {}, {}, [400, 'VALIDATION_ERROR'])));
      out.push(...(await tryAll('the device id alone', { deviceId: e.deviceId }, {}, [400, 'VALIDATION_ERROR'])));
      // a client session instead of the phone's own proof
      out.push(...(await tryAll('a session (Bearer)', { deviceId: e.deviceId, token: 'x' }, session, [401, 'APP_TOKEN_INVALID'])));
      out.push(...(await tryAll('a session token as the app token', { deviceId: e.deviceId, token: sessionToken }, session, [401, 'APP_TOKEN_INVALID'])));
      // another phone's token for this phone's device, and its own device answering this phone's request
      out.push(...(await tryAll("another phone's token", { deviceId: e.deviceId, token: s.token }, {}, [401, 'APP_TOKEN_INVALID'])));
      const foreign = await postJson(
        h.app,
        `/api/v1/mobile/requests/${mine.request.id}`,
        await approval(mine.request.id, mine.number, { deviceId: s.deviceId, token: s.token }, s),
      );
      if (foreign.status !== 410 || foreign.body.error?.code !== 'FLOW_EXPIRED')
        out.push(`another phone's device on this request: ${foreign.status} ${foreign.body.error?.code}`);
      // this phone, with its own token and key, on another user's request id
      const stray = await postJson(
        h.app,
        `/api/v1/mobile/requests/${theirs.request.id}`,
        await approval(theirs.request.id, theirs.number, { deviceId: e.deviceId, token: e.token }, e),
      );
      if (stray.status !== 410 || stray.body.error?.code !== 'FLOW_EXPIRED') out.push(`another user's request id: ${stray.status} ${stray.body.error?.code}`);
      return out;
    });
    expect(wrong).toEqual([]);

    // a suspended, lost, revoked app: its own token and key no longer answer
    for (const state of ['suspended', 'lost', 'revoked'] as const) {
      const user = await createUserWithCard(h.services);
      const deviceId = await withMobile(user.user, withCard(user.card));
      const pending = await waiting(user.user.username, app);
      await h.services.devices.setState(deviceId, state, 'test', 'matrix');
      const own = app.enrolments.get(user.user.username)!;
      const refusals = await unchanged(async () => {
        const out = await tryAll(`a ${state} app`, { deviceId, token: own.token }, {}, [401, 'APP_TOKEN_INVALID']);
        const proof = await app.respond(user.user.username, pending.request.question);
        const signed = { deviceId, token: own.token, decision: 'approve', number: pending.number, proof };
        const answer = await postJson(h.app, `/api/v1/mobile/requests/${pending.request.id}`, {
          ...signed,
          signature: await signAnswer(own.keys.signing.privateKey, answerMessage(pending.request.id, pending.number, 'approve', proof)),
        });
        if (answer.status !== 401 || answer.body.error?.code !== 'APP_TOKEN_INVALID')
          out.push(`a ${state} app's own approval: ${answer.status} ${answer.body.error?.code}`);
        return out;
      });
      expect(refusals).toEqual([]);
    }
  });

  it("K1, K7, L8: a real mobile activation's token, proof and completion are nobody else's: without its claim token, with another activation's, or with a client session's, 404 FLOW_NOT_FOUND, no SMS sent, nothing counted or bound; nothing written but the audit", async () => {
    const user = await createUser(h.services);
    await verifiedNumber(h, user.id);
    const app = await phoneOf();
    const view = await app.start(user.username);
    expect(view.proof).toBe('sms');
    const another = await app.start((await createUserWithCard(h.services)).user.username);
    const keys = await generatePhoneKeys();
    const pub = await publicKeys(keys);
    const signature = await signAnswer(keys.signing.privateKey, activationMessage(view.id));
    const steps: [string, Json][] = [
      ['token', { phoneId: view.phones[0]!.id }],
      ['proof', { response: '123456', ...pub }],
      ['complete', { pin: 'ab12', ...pub, signature }],
    ];
    const wrong = await unchanged(async () => {
      const out: string[] = [];
      for (const [label, headers] of [
        ['no claim token', {}],
        ["another activation's claim token", { 'x-claim-token': another.claimToken }],
        ["a client session's token", { ...owner.headers, 'x-claim-token': owner.headers.authorization!.slice('Bearer '.length) }],
      ] as [string, Record<string, string>][]) {
        for (const [step, body] of steps) {
          const answer = await postJson(h.app, `/api/v1/mobile/activations/${view.id}/${step}`, body, headers);
          if (answer.status !== 404 || answer.body.error?.code !== 'FLOW_NOT_FOUND')
            out.push(`${label}, ${step}: ${answer.status} ${answer.body.error?.code ?? ''}`);
        }
      }
      return out;
    });
    expect(wrong).toEqual([]);
    expect((await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'activationToken')).toEqual([]);
  });

  it("H5, X7: a sharing's requester, stepped up with the owner's card, acts on none of the owner's things by their ids: the card (lost, PIN, activation), the owner's number: 404; nor does another client on the sharing by its id; through the API and the pages; nothing written", async () => {
    const p = await sharingPair(h);
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
    await postJson(h.app, `/api/v1/sharing/${started.body.id}/answer`, { response: cardAnswer(p.card, started.body.challenge.question) }, p.headers);
    const confirmed = await postJson(h.app, `/api/v1/sharing/${started.body.id}/confirmation`, { disposition: 'keep' }, p.headers);
    expect(confirmed.body.state, JSON.stringify(confirmed.body)).toBe('active');
    const phoneId = await verifiedNumber(h, p.owner.id);
    const requester = await loginSession(h.app, p.requester.username, withCard(p.card), { stepUp: true });
    const [card] = (await h.services.devices.listForUser(p.owner.id)).filter((d) => d.type === 'dscplus');
    // and another client against the sharing, by its id
    const ids = { deviceId: card!.id, phoneId, id: started.body.id as string };
    const theirs = (route: string) => /:(deviceId|phoneId)/.test(route) && !route.includes('/helpdesk/');
    const sharingRoute = (route: string) => / \/(api\/v1\/)?sharing\/:id/.test(route);
    const wrong = await unchanged(async () => {
      const out: string[] = [];
      for (const [route, need, body] of API.filter(([r, n]) => theirs(r) && SESSION_NEEDS.includes(n))) {
        const [method, url] = route.split(' ') as [string, string];
        const answer = await request(method, path(url, ids), requester, body);
        if (answer.status !== 404) out.push(`${route} (${need}): ${answer.status} ${answer.body.error?.code ?? ''}`);
      }
      const { agent } = await browser(requester);
      const account = await agent.get('/account');
      const csrf = csrfOf(forms(account.html).find((f) => f.attrs.action === '/logout')!);
      for (const [route, need] of PAGES.filter(([r, n]) => theirs(r) && SESSION_NEEDS.includes(n))) {
        const [method, url] = route.split(' ') as [string, string];
        const fields: Record<string, Record<string, string>> = {
          'POST /devices/:deviceId/lost': { reason: 'lost' },
          'POST /devices/:deviceId/pin': { flow: `flw_${'c'.repeat(26)}`, response: '12345678', newPin: '2468' },
        };
        const page = method === 'GET' ? await agent.get(path(url, ids)) : await agent.post(path(url, ids), { ...fields[route], _csrf: csrf });
        if (page.status !== 404) out.push(`${route} (${need}): ${page.status} ${page.location ?? alertBox(page.html)?.code ?? ''}`);
      }
      for (const [route, need, body] of API.filter(([r]) => sharingRoute(r))) {
        const [method, url] = route.split(' ') as [string, string];
        const answer = await request(method, path(url, ids), other.headers, body);
        if (answer.status !== 404) out.push(`another client: ${route} (${need}): ${answer.status} ${answer.body.error?.code ?? ''}`);
      }
      const stranger = await browser(other.headers);
      const strangerCsrf = csrfOf(forms((await stranger.agent.get('/account')).html).find((f) => f.attrs.action === '/logout')!);
      for (const [route, need] of PAGES.filter(([r]) => sharingRoute(r))) {
        const [method, url] = route.split(' ') as [string, string];
        const page = method === 'GET' ? await stranger.agent.get(path(url, ids)) : await stranger.agent.post(path(url, ids), { _csrf: strangerCsrf });
        if (page.status !== 404) out.push(`another client: ${route} (${need}): ${page.status} ${page.location ?? alertBox(page.html)?.code ?? ''}`);
      }
      return out;
    });
    expect(wrong).toEqual([]);
  });

  it("X7, L8: another client's stepped-up session is refused the owner's device, phone and step-up by their ids (404), through the API and the pages; nothing written", async () => {
    const ids = ['deviceId', 'phoneId', 'keyId', 'flowId', 'id'];
    const theirs = (route: string) =>
      ids.some((id) => route.includes(`:${id}`)) && !route.includes('/helpdesk/') && !route.includes('/login/') && !route.includes('/mobile/');
    const apiRoutes = new Set(API.filter(([route, need]) => theirs(route) && SESSION_NEEDS.includes(need)).map(([route]) => route));
    const pageRoutes = new Set(PAGES.filter(([route, need]) => theirs(route) && SESSION_NEEDS.includes(need)).map(([route]) => route));
    // the owner's flows: a PIN change's for the PIN's routes, a step-up's for the others (a sharing's id is nobody's)
    const idsOf = (route: string) => (route.includes('/pin') ? { ...ownerIds, flowId: ownerIds.pinFlowId! } : ownerIds);
    /** What a form sends beside its CSRF token, right but for whose the ids are (the check of the form is no refusal of the caller). */
    const FIELDS: Record<string, Record<string, string>> = {
      'POST /devices/:deviceId/lost': { reason: 'lost' },
      'POST /devices/:deviceId/pin': { flow: ownerIds.pinFlowId!, response: '12345678', newPin: '2468' },
      'POST /step-up/:flowId': { response: '12345678' },
    };
    const wrong = await unchanged(async () => {
      const out: string[] = [];
      for (const [route, need, body] of API.filter(([r]) => apiRoutes.has(r))) {
        const [method, url] = route.split(' ') as [string, string];
        const answer = await request(method, path(url, idsOf(route)), other.headers, body);
        if (answer.status !== 404) out.push(`${route} (${need}): ${answer.status} ${answer.body.error?.code ?? ''}`);
      }
      const { agent } = await browser(other.headers);
      const account = await agent.get('/account');
      const csrf = csrfOf(forms(account.html).find((f) => f.attrs.action === '/logout')!);
      for (const [route, need] of PAGES.filter(([r]) => pageRoutes.has(r))) {
        const [method, url] = route.split(' ') as [string, string];
        const page = method === 'GET' ? await agent.get(path(url, idsOf(route))) : await agent.post(path(url, idsOf(route)), { ...FIELDS[route], _csrf: csrf });
        if (page.status !== 404) out.push(`${route} (${need}): ${page.status} ${page.location ?? alertBox(page.html)?.code ?? ''}`);
      }
      return out;
    });
    expect(wrong).toEqual([]);
  });
});

describe.each(DATABASES)('I1, I3: an OpenID token is no session and no key (%s)', (database) => {
  let h: Harness;
  let issuer: string;

  beforeAll(async () => {
    ({ h, issuer } = await listeningHarness(database));
  }, 60_000);
  afterAll(async () => h?.close());

  it("I1, I3: a portal application's access, refresh and ID tokens, as a Bearer token, open no route of the API: 401 UNAUTHENTICATED where a session is needed, 401 API_KEY_INVALID where a key is; nothing written", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const client = (await registeredClient(h, issuer, 'portal', 'Matrix portal')).configuration;
    const browser = new Browser(issuer);
    await signIn(h, browser, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string));
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    let url = oidc.buildAuthorizationUrl(client, {
      redirect_uri: TEST_REDIRECT_URI,
      scope: 'openid offline_access',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    }).href;
    for (let hop = 0; hop < 12 && !url.startsWith(TEST_REDIRECT_URI); hop++) url = (await browser.request(url)).location!;
    const tokens = await oidc.authorizationCodeGrant(client, new URL(url), { pkceCodeVerifier: verifier, expectedState: state });
    const presented = { access: tokens.access_token, refresh: tokens.refresh_token!, id: tokens.id_token! };
    expect(Object.values(presented).every((t) => typeof t === 'string' && t.length > 0)).toBe(true);

    const tables = await tablesOf(h.services.store);
    const before = await snapshotOf(h, tables);
    const wrong: string[] = [];
    for (const [kind, token] of Object.entries(presented)) {
      for (const [route, need, body] of API) {
        const want = need === 'key' ? 'API_KEY_INVALID' : (SESSION_NEEDS as string[]).includes(need) ? 'UNAUTHENTICATED' : null;
        if (!want) continue;
        const [method, path] = route.split(' ') as [string, string];
        const filled = path
          .replace(':username', user.username)
          .replace(':number', user.accountNumber)
          .replace(/:[A-Za-z]+/g, `flw_${'c'.repeat(26)}`);
        const headers = { authorization: `Bearer ${token}` };
        const answer =
          method === 'GET'
            ? await send(h.app, method, body ? `${filled}?${new URLSearchParams(body)}` : filled, headers)
            : await send(h.app, method, filled, headers, body ?? (method === 'DELETE' ? undefined : {}));
        if (answer.status !== 401 || answer.body.error?.code !== want)
          wrong.push(`${kind} token, ${route} (${need}): ${answer.status} ${answer.body.error?.code ?? ''}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(await snapshotOf(h, tables)).toEqual(before);
  }, 60_000);

  it("I1, L8 (RFC 8628): no client, a session's token or a client without the grant gets no device code; a real device code's user code goes on only in the browser that took it up: another browser (no form session, or its own) with that browser's form token confirms nothing, and opens none of its interaction; the device is still told authorization_pending", async () => {
    const created = await h.services.oidc.clients.create({ name: 'Matrix desk', app: 'trading', redirectUris: [], public: true, deviceGrant: true }, 'test');
    const device = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    // the device authorization endpoint asks for the client's own id: none, a session's token, or a client without the grant, no code
    const portal = await h.services.oidc.clients.create({ name: 'Matrix web', app: 'portal', redirectUris: [TEST_REDIRECT_URI], public: true }, 'test');
    const { user: holderUser, card: holderCard } = await createUserWithCard(h.services);
    const sessionToken = (await loginSession(h.app, holderUser.username, withCard(holderCard))).authorization!;
    const asked: string[] = [];
    for (const [label, headers, form] of [
      ['no client', {}, { scope: 'openid' }],
      ["a session's Bearer token", { authorization: sessionToken }, { scope: 'openid' }],
      ['a client without the device grant', {}, { scope: 'openid', client_id: portal.client.clientId }],
    ] as [string, Record<string, string>, Record<string, string>][]) {
      const answered = await fetch(`${issuer}/oidc/device/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams(form),
      });
      const body = (await answered.json()) as Json;
      if (answered.status < 400 || answered.status >= 500 || body.user_code !== undefined) asked.push(`${label}: ${answered.status} ${JSON.stringify(body)}`);
    }
    expect(asked).toEqual([]);
    const code = await oidc.initiateDeviceAuthorization(device, { scope: 'openid' });
    const xsrf = (html: string) => /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    const confirmation = (html: string) => html.includes('name="confirm"');
    const holder = new Browser(issuer);
    const form = xsrf((await holder.request('/oidc/device')).html)!;
    const typed = await holder.request('/oidc/device', { form: { xsrf: form, user_code: code.user_code } });
    expect(confirmation(typed.html), typed.html.slice(0, 300)).toBe(true);
    const confirmToken = xsrf(typed.html)!;

    const wrong: string[] = [];
    const stranger = new Browser(issuer);
    const signedIn = new Browser(issuer);
    const { user, card } = await createUserWithCard(h.services);
    await signIn(h, signedIn, user.username, (flow) => cardAnswer(card, (flow.challenge as Json).question as string), 'trading');
    await signedIn.request('/oidc/device');
    for (const [label, browser] of [
      ['no form session', stranger],
      ['its own form session', signedIn],
    ] as const) {
      for (const fields of [{ user_code: code.user_code }, { user_code: code.user_code, confirm: 'yes' }] as Record<string, string>[]) {
        const page = await browser.request('/oidc/device', { form: { xsrf: confirmToken, ...fields } });
        if (confirmation(page.html) || page.location?.includes('/oidc/interaction/'))
          wrong.push(`${label}, ${Object.keys(fields).join('+')}: ${page.status} ${page.location ?? page.html.slice(0, 120)}`);
      }
    }
    // the holder's confirmation starts an interaction: its id alone opens it in no other browser
    const confirmed = await holder.request('/oidc/device', { form: { xsrf: confirmToken, user_code: code.user_code, confirm: 'yes' } });
    const interaction = confirmed.location!;
    expect(interaction, String(confirmed.status)).toContain('/oidc/interaction/');
    for (const [label, browser] of [
      ['no cookie', stranger],
      ['a signed-in browser', signedIn],
    ] as const) {
      const page = await browser.request(interaction);
      if (page.status !== 410 || alertBox(page.html)?.code !== 'OIDC_INTERACTION_EXPIRED')
        wrong.push(`the interaction, ${label}: ${page.status} ${page.location ?? ''}`);
    }
    expect(wrong).toEqual([]);
    const polled = await oidc
      .genericGrantRequest(device, 'urn:ietf:params:oauth:grant-type:device_code', { device_code: code.device_code })
      .catch((e: unknown) => e as Json);
    expect(polled.error).toBe('authorization_pending');
  }, 60_000);
});
