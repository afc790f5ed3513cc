/**
 * The primary user's rights (A2, O3): of the usernames of one account, only
 * the primary user — or a user granted the right — may change the security
 * settings. Every route that changes them (mobile numbers, a DSC+ request, a
 * card reported lost, its PIN, a device's reactivation, security keys, the
 * mobile authenticator's activation, migration and recovery) refuses every
 * other user with 403 NOT_PRIMARY_USER naming the user who has the right, in
 * the API (`details.primaryUser`) and on the pages (the seed's notice); the
 * primary user and a granted user go on. Grants and refusals are audited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, postJson, startLogin, stepUp, type ApiResponse, type Json } from './support/api.js';
import { Agent, alertBox, csrfOf, form, textById, type Page } from './support/html.js';
import { newMobile } from './support/phone.js';
import { cliEnv, sls, slsInProcess } from './support/cli.js';

const ADDRESS = { name: 'Bob Martin', line1: '1 Main Street', city: 'Springfield', postalCode: '12345', country: 'US' };

async function send(h: Harness, method: 'DELETE' | 'PATCH', url: string, headers: Record<string, string>, payload?: unknown): Promise<ApiResponse> {
  const raw = await h.app.inject({
    method,
    url,
    headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return { status: raw.statusCode, body: raw.body ? (raw.json() as Json) : {}, headers: raw.headers, raw };
}

describe.each(DATABASES)('the primary user (A2, O3) on %s', (db) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(db);
  });
  afterAll(async () => h.close());

  interface Member {
    user: User;
    card: CardFile;
    /** The active card. */
    activeId: string;
    /** A second card, suspended: one to reactivate (D4). */
    suspendedId: string;
    phoneId: string;
    headers: Record<string, string>;
  }

  /** A user of the account with an active DSC+, a suspended one, a number on record and a stepped-up portal session. */
  async function member(accountNumber?: string): Promise<Member> {
    const { user, card } = await createUserWithCard(h.services, '1234', accountNumber ? { accountNumber } : {});
    const [active] = await h.services.devices.listForUser(user.id);
    const { device: second } = await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
    await h.services.store.db.updateTable('devices').set({ state: 'suspended' }).where('id', '=', second.id).execute();
    const phone = await h.services.phones.add(user.id, newMobile(), 'test', null);
    const start = await startLogin(h.app, user.username);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const headers = bearer(done.body.session.token);
    await stepUp(h.app, headers, (challenge) => cardAnswer(card, challenge.question));
    return { user, card, activeId: active!.id, suspendedId: second.id, phoneId: phone.id, headers };
  }

  /** Every API route that changes the security settings, as this member. */
  function attempts(m: Member): [string, () => Promise<ApiResponse>][] {
    const h2 = m.headers;
    return [
      ['add a mobile number', () => postJson(h.app, '/api/v1/phones', newMobile(), h2)],
      ['send a confirm code', () => postJson(h.app, `/api/v1/phones/${m.phoneId}/verification`, {}, h2)],
      ['confirm a number', () => postJson(h.app, `/api/v1/phones/${m.phoneId}/confirmation`, { code: '123456' }, h2)],
      ['remove a number', () => send(h, 'DELETE', `/api/v1/phones/${m.phoneId}`, h2)],
      ['preview a DSC+ request', () => postJson(h.app, '/api/v1/dscplus/requests/preview', { address: ADDRESS, pin: '2468' }, h2)],
      ['request a DSC+', () => postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, h2)],
      ['start a PIN change', () => postJson(h.app, `/api/v1/devices/${m.activeId}/pin`, {}, h2)],
      ['finish a PIN change', () => postJson(h.app, `/api/v1/devices/${m.suspendedId}/pin/flw_nosuchflow`, { response: '12345678', newPin: '2468' }, h2)],
      ['reactivate a device', () => postJson(h.app, `/api/v1/devices/${m.suspendedId}/activation`, {}, h2)],
      ['start registering a security key', () => postJson(h.app, '/api/v1/security-keys/registration', {}, h2)],
      ['register a security key', () => postJson(h.app, '/api/v1/security-keys', { name: 'key', state: 'x', credential: {} }, h2)],
      ['rename a security key', () => send(h, 'PATCH', '/api/v1/security-keys/dev_nosuchkey', h2, { name: 'renamed' })],
      ['remove a security key', () => send(h, 'DELETE', '/api/v1/security-keys/dev_nosuchkey', h2)],
      ...(['activate', 'migrate', 'recover'] as const).map((purpose): [string, () => Promise<ApiResponse>] => [
        `${purpose} the mobile authenticator`,
        () => postJson(h.app, '/api/v1/mobile/activations', { username: m.user.username, password: PASSWORD, purpose }),
      ]),
    ];
  }

  /** Reports a card lost last: it ends the card. */
  const reportLost = (m: Member, deviceId: string) => postJson(h.app, `/api/v1/devices/${deviceId}/lost`, { reason: 'damaged' }, m.headers);

  it('A2/O3: a user of the account other than the primary user is refused every change of the security settings: 403 NOT_PRIMARY_USER naming the primary user; audited', async () => {
    const primary = await member();
    const other = await member(primary.user.accountNumber);
    expect(other.user.canChangeSecurity).toBe(false);
    for (const [what, attempt] of [...attempts(other), ['report a card lost', async () => reportLost(other, other.activeId)] as const]) {
      const refused = await attempt();
      expect([what, refused.status, refused.body.error?.code]).toEqual([what, 403, 'NOT_PRIMARY_USER']);
      expect(refused.body.error.details, what).toEqual({ primaryUser: primary.user.username });
      expect(refused.body.error.message, what).toContain(primary.user.username);
      expect(refused.body.error.message, what).toContain('not allowed to change the security settings');
    }
    // nothing changed: the suspended card is still suspended, the number still there, the card active
    expect((await h.services.devices.get(other.suspendedId)).state).toBe('suspended');
    expect((await h.services.phones.list(other.user.id)).map((p) => p.id)).toEqual([other.phoneId]);
    expect((await h.services.devices.get(other.activeId)).state).toBe('active');
    // reading is not changing
    expect((await get(h.app, '/api/v1/devices', other.headers)).status).toBe(200);
    const refusals = (await h.services.audit.list({ userId: other.user.id, limit: 200 })).filter((e) => e.event === 'security.refused_not_primary');
    expect(refusals.length).toBe(attempts(other).length + 1);
    expect(refusals.every((e) => e.data.primaryUser === primary.user.username)).toBe(true);
    expect(refusals.map((e) => e.data.action)).toEqual(
      expect.arrayContaining(['POST /api/v1/phones', 'reactivate', 'mobile_activation:activate', `POST /api/v1/devices/${other.activeId}/lost`]),
    );
  });

  it('A2: the notice is in the language of the request, and the mobile authenticator names nobody before the password is right', async () => {
    const primary = await member();
    const other = await member(primary.user.accountNumber);
    const fr = await postJson(h.app, '/api/v1/phones', newMobile(), { ...other.headers, 'accept-language': 'fr' });
    expect(fr.body.error.code).toBe('NOT_PRIMARY_USER');
    expect(fr.body.error.message).toBe(
      `Votre utilisateur n'est pas autorisé à modifier les paramètres de sécurité de ce compte. Pour modifier les paramètres de sécurité, l'utilisateur ${primary.user.username}, qui dispose de ces droits, doit se connecter au Portail Client.`,
    );
    const wrong = await postJson(h.app, '/api/v1/mobile/activations', { username: other.user.username, password: 'not the password', purpose: 'activate' });
    expect([wrong.status, wrong.body.error.code, wrong.body.error.details]).toEqual([401, 'INVALID_CREDENTIALS', undefined]);
  });

  it('A2/O3: the primary user and a user granted the right (sls user grant-security, audited) are not refused; revoked, refused again; the primary user keeps the right', async () => {
    const primary = await member();
    const granted = await member(primary.user.accountNumber);
    const env = cliEnv(h.database);
    // the first command a real `sls` process, the others in this process (slsInProcess): a process costs a start of Node each
    const grant = await sls(['user', 'grant-security', granted.user.username], env);
    expect(grant, grant.stderr).toMatchObject({ code: 0, stdout: `${granted.user.username} may now change the security settings of the account.\n` });
    expect((await h.services.users.get(granted.user.id)).canChangeSecurity).toBe(true);

    for (const m of [primary, granted]) {
      for (const [what, attempt] of attempts(m)) {
        const answered = await attempt();
        expect([m === primary ? 'primary' : 'granted', what, answered.body.error?.code]).not.toEqual([
          m === primary ? 'primary' : 'granted',
          what,
          'NOT_PRIMARY_USER',
        ]);
      }
      // and the changes go through
      expect((await postJson(h.app, '/api/v1/phones', newMobile(), m.headers)).status).toBe(201);
      expect((await postJson(h.app, `/api/v1/devices/${m.suspendedId}/activation`, {}, m.headers)).status).toBe(200);
      expect((await postJson(h.app, `/api/v1/devices/${m.activeId}/pin`, {}, m.headers)).status).toBe(200);
      // the second card: the active one is this session's own proof, and the session would end with it (L8)
      const lost = await reportLost(m, m.suspendedId);
      expect([lost.status, lost.body.state]).toEqual([200, 'lost']);
    }
    expect((await h.services.audit.list({ userId: granted.user.id, limit: 200 })).find((e) => e.event === 'user.security_right_granted')?.actor).toBe('cli');

    const revoke = await slsInProcess(['user', 'revoke-security', granted.user.username], env);
    expect(revoke.stdout).toBe(`${granted.user.username} may no longer change the security settings of the account.\n`);
    const refused = await postJson(h.app, '/api/v1/phones', newMobile(), granted.headers);
    expect([refused.status, refused.body.error.code, refused.body.error.details]).toEqual([403, 'NOT_PRIMARY_USER', { primaryUser: primary.user.username }]);

    const primaryRevoke = await slsInProcess(['user', 'revoke-security', primary.user.username], env);
    expect(primaryRevoke.code).toBe(1);
    expect(primaryRevoke.stderr).toContain(`${primary.user.username} is the primary user of the account`);
    expect(await h.services.securityRights.mayChange(primary.user.id)).toBe(true);
    const events = (await h.services.audit.list({ userId: granted.user.id, limit: 200 })).map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['user.security_right_granted', 'user.security_right_revoked']));
  });

  describe('A2: the pages', () => {
    /** The whole login through the login pages with the card; ends on the account page. */
    async function pagesOf(m: Member): Promise<{ agent: Agent; account: Page }> {
      const agent = new Agent(h.app);
      const login = await agent.get('/login');
      const started = await agent.submit(login, '/login', { username: m.user.username, password: PASSWORD, app: 'portal' });
      const challenge = await agent.get(started.location!);
      const done = await agent.submit(challenge, started.location!, { response: cardAnswer(m.card, textById(challenge.html, 'challenge-code')!) });
      expect(done.location).toBe('/account');
      return { agent, account: await agent.get('/account') };
    }

    it('A2/O3: every settings page refuses a user other than the primary user with the notice naming the primary user; the account page says so at once', async () => {
      const primary = await member();
      const other = await member(primary.user.accountNumber);
      const { agent, account } = await pagesOf(other);
      const notice = `Your user is not allowed to change the security settings of this account. In order to modify the security settings, the user ${primary.user.username}, who has such rights, needs to log in to the Client Portal.`;
      expect(textById(account.html, 'not-primary')).toBe(notice);
      const card = other.activeId;
      const token = csrfOf(form(account.html, '/logout'));
      const pages: [string, () => Promise<Page>][] = [
        ['GET /settings/mobile', () => agent.get('/settings/mobile')],
        ['POST /settings/mobile', () => agent.post('/settings/mobile', { _csrf: token, ...newMobile() })],
        ['POST /settings/mobile/:id/remove', () => agent.post(`/settings/mobile/${other.phoneId}/remove`, { _csrf: token })],
        ['GET /settings/security-keys', () => agent.get('/settings/security-keys')],
        ['POST /settings/security-keys/:id/remove', () => agent.post('/settings/security-keys/dev_nosuchkey/remove', { _csrf: token })],
        ['GET /dscplus/request', () => agent.get('/dscplus/request')],
        ['POST /dscplus/request', () => agent.post('/dscplus/request', { _csrf: token, step: 'submit', ...ADDRESS, pin: '2468' })],
        ['GET /devices/:id/lost', () => agent.get(`/devices/${card}/lost`)],
        ['POST /devices/:id/lost', () => agent.post(`/devices/${card}/lost`, { _csrf: token, reason: 'lost' })],
        ['GET /devices/:id/pin', () => agent.get(`/devices/${card}/pin`)],
        ['GET /devices/:id/activate', () => agent.get(`/devices/${other.suspendedId}/activate`)],
      ];
      for (const [what, open] of pages) {
        const page = await open();
        expect([what, page.status, alertBox(page.html)?.code]).toEqual([what, 403, 'NOT_PRIMARY_USER']);
        expect(alertBox(page.html)?.text, what).toContain(notice);
      }
      expect((await h.services.devices.get(card)).state).toBe('active');
    });

    it('A2/O3: the primary user and a granted user are led to the step-up (X7) or the page itself, never refused, and see no notice', async () => {
      const primary = await member();
      const granted = await member(primary.user.accountNumber);
      await h.services.securityRights.setRight(granted.user.username, true, 'test');
      for (const m of [primary, granted]) {
        const { agent, account } = await pagesOf(m);
        expect(textById(account.html, 'not-primary')).toBeUndefined();
        for (const path of ['/settings/mobile', '/settings/security-keys', '/dscplus/request', `/devices/${m.activeId}/pin`]) {
          const page = await agent.get(path);
          expect([path, page.status, page.location]).toEqual([path, 303, `/step-up?next=${encodeURIComponent(path)}`]);
        }
        const activate = await agent.get(`/devices/${m.suspendedId}/activate`);
        expect([activate.status, alertBox(activate.html)]).toEqual([200, null]);
      }
    });
  });
});
