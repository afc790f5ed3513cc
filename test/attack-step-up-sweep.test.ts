/**
 * V1, X7, L8: every route that changes something a user or a staff member
 * owns, tried with a session that has not stepped up and with one whose
 * step-up is too old, through the JSON API (a Bearer token) and through the
 * pages (the cookie and a CSRF token of its own), on every database. The
 * app's own route table is read: a route that changes state and is in none
 * of the lists below fails the sweep until someone decides what proof it needs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MINUTE } from '../src/clock.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import { SESSION_COOKIE } from '../src/http/session-cookie.js';
import { DATABASES, PASSWORD, createUser, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { bearer, get, loginSession, send, stepUp, withCard, type ApiResponse } from './support/api.js';
import { Agent, csrfOf, forms } from './support/html.js';
import { routesOf } from './support/routes.js';

const ADDRESS = { name: 'Alice Martin', line1: '1 Main Street', city: 'Springfield', postalCode: '12345', country: 'US' };

type Body = Record<string, unknown> | undefined;
/** A route of the JSON API and a body its schema accepts (the guard answers before anything is looked up). */
type ApiCase = [method: string, url: string, body: Body];

/** X7, V1: the security settings of the signed-in user: a fresh step-up (the password: `password`, the same freshness). */
const USER_API: ApiCase[] = [
  ['POST', '/api/v1/phones', { country: 'FR', number: '612345678' }],
  ['POST', '/api/v1/phones/:phoneId/verification', undefined],
  ['POST', '/api/v1/phones/:phoneId/confirmation', { code: '123456' }],
  ['DELETE', '/api/v1/phones/:phoneId', undefined],
  ['POST', '/api/v1/security-keys/registration', undefined],
  ['POST', '/api/v1/security-keys', { name: 'key', state: 'x', credential: {} }],
  ['PATCH', '/api/v1/security-keys/:keyId', { name: 'key' }],
  ['DELETE', '/api/v1/security-keys/:keyId', undefined],
  ['POST', '/api/v1/secure-login/opt-out', { acknowledgeRisks: true, confirmation: 'x' }],
  ['POST', '/api/v1/secure-login/opt-in', undefined],
  ['POST', '/api/v1/sharing', { ownerUsername: 'someone', ownerPassword: PASSWORD }],
  ['POST', '/api/v1/sharing/:id/answer', { response: '12345678' }],
  ['POST', '/api/v1/sharing/:id/confirmation', { disposition: 'keep' }],
  ['DELETE', '/api/v1/sharing/:id', undefined],
  ['POST', '/api/v1/password', { currentPassword: PASSWORD, newPassword: 'the attacker phrase 1' }],
  ['POST', '/api/v1/devices/:deviceId/lost', { reason: 'lost' }],
  ['POST', '/api/v1/devices/:deviceId/pin', undefined],
  ['POST', '/api/v1/devices/:deviceId/pin/:flowId', { response: '12345678', newPin: '2468' }],
  ['POST', '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }],
  ['POST', '/api/v1/dscplus/requests/preview', { address: ADDRESS, pin: '2468' }],
];

/** V1, X7 (decision 0011): every action of staff: `staff_action`, the same fresh step-up. */
const STAFF_API: ApiCase[] = [
  ['POST', '/api/v1/helpdesk/users/:username/verifications', { method: 'id_document' }],
  ['POST', '/api/v1/helpdesk/users/:username/temporary-passcode', { verificationId: 'x' }],
  ['DELETE', '/api/v1/helpdesk/users/:username/temporary-passcode', undefined],
  ['POST', '/api/v1/helpdesk/users/:username/password-reset', { verificationId: 'x' }],
  ['POST', '/api/v1/helpdesk/users/:username/phones', { verificationId: 'x', country: 'FR', number: '612345678' }],
  ['POST', '/api/v1/helpdesk/users/:username/unlock', { verificationId: 'x' }],
  ['POST', '/api/v1/helpdesk/users/:username/lock', { reason: 'fraud' }],
  ['DELETE', '/api/v1/helpdesk/users/:username/sessions', undefined],
  ['POST', '/api/v1/helpdesk/devices/:deviceId/ship', { serial: 'X1', addressConfirmed: true }],
  ['POST', '/api/v1/helpdesk/devices/:deviceId/returned', {}],
  ['POST', '/api/v1/helpdesk/devices/:deviceId/lost', { reason: 'lost' }],
  ['POST', '/api/v1/helpdesk/devices/:deviceId/loss-confirmed', { verificationId: 'x' }],
  ['POST', '/api/v1/helpdesk/sharing/:id/decision', { decision: 'approve' }],
  ['DELETE', '/api/v1/helpdesk/sharing/:id', undefined],
  ['PUT', '/api/v1/admin/accounts/:number/equity', { equityUsd: 2_000_000 }],
];

/** The pages' forms of the user's security settings: to the step-up page, and back. */
const USER_PAGES = [
  '/password',
  '/dscplus/request',
  '/devices/:deviceId/lost',
  '/devices/:deviceId/pin',
  '/devices/:deviceId/pin/start',
  '/settings/mobile',
  '/settings/mobile/:phoneId/verify',
  '/settings/mobile/:phoneId/confirm',
  '/settings/mobile/:phoneId/remove',
  '/settings/security-keys',
  '/settings/security-keys/:keyId/rename',
  '/settings/security-keys/:keyId/remove',
  '/settings/secure-login/configure',
  '/sharing/new',
  '/sharing/:id/answer',
  '/sharing/:id/confirm',
  '/sharing/:id/cancel',
];

/** The console's forms (staff_action). */
const STAFF_PAGES = [
  '/helpdesk/users/:username/verifications',
  '/helpdesk/users/:username/temporary-passcode',
  '/helpdesk/users/:username/temporary-passcode/revoke',
  '/helpdesk/users/:username/password-reset',
  '/helpdesk/users/:username/phones',
  '/helpdesk/users/:username/devices/:deviceId/ship',
  '/helpdesk/users/:username/devices/:deviceId/lost',
  '/helpdesk/users/:username/devices/:deviceId/returned',
  '/helpdesk/users/:username/devices/:deviceId/loss-confirmed',
  '/helpdesk/users/:username/lock',
  '/helpdesk/users/:username/sessions/end',
  '/helpdesk/users/:username/identification',
  '/helpdesk/users/:username/identification/reveal',
  '/helpdesk/users/:username/equity',
  '/helpdesk/users/:username/unlock',
  '/helpdesk/sharing/:id/decision',
  '/helpdesk/sharing/:id/cancel',
  '/helpdesk/oidc-clients',
  '/helpdesk/oidc-clients/:clientId/delete',
];

/**
 * What changes state and asks no fresh step-up, and why: the login and the
 * step-up themselves (the password and the device are the proof), logout,
 * the temporary access's own pages and a device's reactivation (they prove
 * the device themselves, T3, D4, S2), the notices' language and time zone
 * (no security setting, N1), the mobile authenticator's own API (the
 * password and a proof of possession, no session, K1), withdrawals (an API
 * key, W3), OpenID Connect (its own proofs, I1), and the 404 of any other path.
 */
const NO_STEP_UP = new Set([
  'POST /api/v1/login',
  'POST /api/v1/login/:flowId',
  'POST /api/v1/login/:flowId/session',
  'POST /api/v1/login/:flowId/offline',
  'POST /api/v1/login/:flowId/code',
  'POST /api/v1/logout',
  'POST /api/v1/step-up',
  'POST /api/v1/step-up/:id',
  'POST /api/v1/step-up/:id/offline',
  'POST /api/v1/step-up/:id/complete',
  'POST /api/v1/devices/:deviceId/activation',
  'POST /api/v1/devices/:deviceId/activation/:flowId',
  'POST /api/v1/online-card',
  'POST /api/v1/online-card/printed',
  'PUT /api/v1/notice-preferences',
  'POST /api/v1/withdrawals',
  'POST /api/v1/withdrawals/check',
  'POST /api/v1/mobile/activations',
  'POST /api/v1/mobile/activations/:id/token',
  'POST /api/v1/mobile/activations/:id/proof',
  'POST /api/v1/mobile/activations/:id/complete',
  'POST /api/v1/mobile/requests',
  'POST /api/v1/mobile/requests/:id',
  'POST /api/v1/mobile/messages/:id/ack',
  'POST /api/v1/mobile/push-subscription',
  'POST /login',
  'POST /login/:flowId',
  'POST /login/:flowId/session',
  'POST /login/:flowId/offline',
  'POST /login/:flowId/device',
  'POST /login/:flowId/code',
  'POST /logout',
  'POST /step-up',
  'POST /step-up/:flowId',
  'POST /step-up/:flowId/complete',
  'POST /step-up/:flowId/offline',
  'POST /devices/:deviceId/activate',
  'POST /devices/:deviceId/activate/start',
  'POST /online-card',
  'POST /online-card/printed',
  'POST /settings/notices',
  'POST /oidc/device',
  'POST /oidc/device/auth',
]);

const CHANGES = ['POST', 'PUT', 'PATCH', 'DELETE'];

describe.each(DATABASES)('V1, X7: the step-up every change asks for, route by route (%s)', (database) => {
  let h: Harness;
  let client: { user: User; card: CardFile };
  let staff: { user: User; card: CardFile };
  let target: User;

  beforeAll(async () => {
    h = await startHarness(database);
    client = await createUserWithCard(h.services);
    staff = await createUserWithCard(h.services, '1234', { role: 'admin' });
    target = await createUser(h.services);
  });
  afterAll(async () => h.close());

  /** A route's path with its parameters filled: the target user, and ids nobody holds. */
  const path = (url: string): string =>
    url
      .replace(':username', target.username)
      .replace(':number', '1000001')
      .replace(/:[A-Za-z]+/g, 'x1');

  const sessionOf = async (who: { user: User; card: CardFile }) => loginSession(h.app, who.user.username, withCard(who.card));
  /** A session that stepped up, then waited until its step-up is no longer fresh (5 minutes, SLS_STEP_UP_MINUTES). */
  async function staleSession(who: { user: User; card: CardFile }): Promise<Record<string, string>> {
    const headers = await sessionOf(who);
    await stepUp(h.app, headers, withCard(who.card));
    h.clock.advance(5 * MINUTE);
    return headers;
  }

  async function refusedOnApi(cases: ApiCase[], headers: Record<string, string>): Promise<string[]> {
    const wrong: string[] = [];
    for (const [method, url, body] of cases) {
      const answer: ApiResponse = await send(h.app, method, path(url), headers, body);
      if (answer.status !== 403 || answer.body.error?.code !== 'STEP_UP_REQUIRED' || answer.body.error?.stepUp !== '/api/v1/step-up') {
        wrong.push(`${method} ${url}: ${answer.status} ${answer.body.error?.code ?? ''}`);
      }
    }
    return wrong;
  }

  /** The pages: a browser holding the session's cookie and the CSRF token of a form of its own (the logout's). */
  async function refusedOnPages(urls: string[], headers: Record<string, string>): Promise<string[]> {
    const agent = new Agent(h.app);
    agent.jar.set(SESSION_COOKIE, headers.authorization!.slice('Bearer '.length));
    const account = await agent.get('/account');
    expect(account.status).toBe(200);
    const token = csrfOf(forms(account.html).find((f) => f.attrs.action === '/logout')!);
    const wrong: string[] = [];
    for (const url of urls) {
      const page = await agent.post(path(url), { _csrf: token });
      if (page.status !== 303 || !page.location?.startsWith('/step-up?next=')) wrong.push(`POST ${url}: ${page.status} ${page.location ?? ''}`);
    }
    // the session lives on, unchanged: the refusals changed nothing
    expect((await get(h.app, '/api/v1/session', headers)).status).toBe(200);
    return wrong;
  }

  it('V1, X7: every route that changes state is in the sweep: each asks for a fresh step-up, or is listed with why it does not', () => {
    const listed = new Set([
      ...[...USER_API, ...STAFF_API].map(([method, url]) => `${method} ${url}`),
      ...[...USER_PAGES, ...STAFF_PAGES].map((url) => `POST ${url}`),
      ...NO_STEP_UP,
    ]);
    const unlisted = routesOf(h.app)
      .filter((r) => CHANGES.includes(r.method) && r.url !== '/*')
      .map((r) => `${r.method} ${r.url}`)
      .filter((route) => !listed.has(route));
    expect(unlisted).toEqual([]);
  });

  it("X7, V1: a user's session without a step-up changes no security setting, through the API or the pages (403 STEP_UP_REQUIRED; the step-up page)", async () => {
    const headers = await sessionOf(client);
    expect(await refusedOnApi(USER_API, headers)).toEqual([]);
    expect(await refusedOnPages(USER_PAGES, headers)).toEqual([]);
  });

  it("X7, V1: a user's step-up 5 minutes old is too old for every security setting, through the API or the pages", async () => {
    const headers = await staleSession(client);
    expect(await refusedOnApi(USER_API, headers)).toEqual([]);
    expect(await refusedOnPages(USER_PAGES, headers)).toEqual([]);
  });

  it('X7, V1: a staff session without a step-up takes no staff action, through the API or the console', async () => {
    const headers = await sessionOf(staff);
    expect(await refusedOnApi(STAFF_API, headers)).toEqual([]);
    expect(await refusedOnPages(STAFF_PAGES, headers)).toEqual([]);
  });

  it("X7, V1: a staff member's step-up 5 minutes old is too old for every staff action, through the API or the console", async () => {
    const headers = await staleSession(staff);
    expect(await refusedOnApi(STAFF_API, headers)).toEqual([]);
    expect(await refusedOnPages(STAFF_PAGES, headers)).toEqual([]);
  });

  it('V1, L8: the step-up of one session is no step-up of another session of the same user', async () => {
    const stepped = await sessionOf(client);
    const other = await sessionOf(client);
    await stepUp(h.app, stepped, withCard(client.card));
    expect(await refusedOnApi(USER_API, other)).toEqual([]);
    expect((await send(h.app, 'POST', '/api/v1/phones', bearer(stepped.authorization!.slice(7)), { country: 'FR', number: '612345679' })).status).toBe(201);
  });
});
