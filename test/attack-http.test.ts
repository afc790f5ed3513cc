/**
 * Attacks on the HTTP surface itself (I1, L8, X3): a forged Host header
 * behind the configured public URL, cross-site requests that carry the
 * session cookie without an Origin, answers with secrets kept by a cache,
 * pages in a frame, bodies that are no UTF-8. Each test failed before its
 * fix, but the last: it guards the body parsers with bodies no other test
 * sends (they were refused already).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, startLogin } from './support/api.js';
import { Agent, alertBox, csrfOf, form } from './support/html.js';

const PUBLIC_URL = 'https://login.example';

describe.each(DATABASES)('attacks on the HTTP surface (%s)', (database) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(database, { publicUrl: PUBLIC_URL });
  });
  afterAll(async () => h?.close());

  /** A portal session opened through the API: its token, as the session cookie holds it. */
  async function sessionToken(): Promise<string> {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    return (await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token as string;
  }

  it("I1: a forged Host (or X-Forwarded-Host) moves none of the OpenID Provider's addresses: discovery, the device's verification URI and the device page's form name the public URL", async () => {
    const { client } = await h.services.oidc.clients.create({ name: 'Desk', app: 'trading', redirectUris: [], public: true, deviceGrant: true }, 'test');
    for (const forged of [{ host: 'evil.example' }, { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' }]) {
      const what = JSON.stringify(forged);
      const discovery = await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration', headers: forged });
      const metadata = discovery.json() as Record<string, unknown>;
      expect(metadata.issuer, what).toBe(PUBLIC_URL);
      const addresses = Object.entries(metadata).filter(([name]) => name.endsWith('_endpoint') || name.endsWith('_uri'));
      expect(addresses.length, what).toBeGreaterThan(5);
      for (const [name, address] of addresses) expect(String(address), `${what} ${name}`).toMatch(/^https:\/\/login\.example\/oidc\//);

      // RFC 8628: the address the device shows its user, to type the code at
      const device = await h.app.inject({
        method: 'POST',
        url: '/oidc/device/auth',
        headers: { ...forged, 'content-type': 'application/x-www-form-urlencoded' },
        payload: `client_id=${client.clientId}&scope=openid`,
      });
      expect(device.statusCode, what).toBe(200);
      const { verification_uri, verification_uri_complete } = device.json() as Record<string, string>;
      expect(verification_uri, what).toBe(`${PUBLIC_URL}/oidc/device`);
      expect(verification_uri_complete, what).toMatch(/^https:\/\/login\.example\/oidc\/device\?user_code=/);

      const page = await h.app.inject({ method: 'GET', url: '/oidc/device', headers: forged });
      expect(page.body, what).toContain(`action="${PUBLIC_URL}/oidc/device"`);
      expect(page.body, what).not.toContain('evil.example');
    }
  });

  it('L8: a request with the session cookie that another site sent is refused (403 CSRF_FAILED) even without an Origin: Origin null, Sec-Fetch-Site, a foreign Referer; the session lives on', async () => {
    const refused: [string, Record<string, string>][] = [
      ['Origin: null (a sandboxed frame, a redirect)', { origin: 'null' }],
      ['Sec-Fetch-Site: cross-site, no Origin', { 'sec-fetch-site': 'cross-site' }],
      ['Sec-Fetch-Site: same-site (a sibling host), no Origin', { 'sec-fetch-site': 'same-site' }],
      ['a foreign Referer, no Origin', { referer: 'https://evil.example/page' }],
      ['a Referer on a sibling host, no Origin', { referer: 'https://attacker.login.example/' }],
      ['a Referer that is no URL, no Origin', { referer: 'not a url' }],
      ['our Referer, but Sec-Fetch-Site: cross-site', { referer: `${PUBLIC_URL}/account`, 'sec-fetch-site': 'cross-site' }],
    ];
    for (const [what, headers] of refused) {
      const token = await sessionToken();
      const cookie = { cookie: `__Host-sls_session=${token}` };
      const forged = await h.app.inject({ method: 'POST', url: '/api/v1/logout', headers: { ...cookie, ...headers } });
      expect([forged.statusCode, forged.json().error.code], what).toEqual([403, 'CSRF_FAILED']);
      expect((await get(h.app, '/api/v1/session', cookie)).status, what).toBe(200);
    }
    // a request from our own pages, or from a client that is no browser (it sends none of these), still works
    const allowed: [string, Record<string, string>][] = [
      ['our Origin', { origin: PUBLIC_URL }],
      ['Sec-Fetch-Site: same-origin', { 'sec-fetch-site': 'same-origin' }],
      ['our Referer', { referer: `${PUBLIC_URL}/account` }],
      ['none of them', {}],
    ];
    for (const [what, headers] of allowed) {
      const token = await sessionToken();
      const out = await h.app.inject({ method: 'POST', url: '/api/v1/logout', headers: { cookie: `__Host-sls_session=${token}`, ...headers } });
      expect(out.statusCode, what).toBe(204);
    }
  });

  it('L8, X3: a state-changing request a browser says another site sent is refused (403 CSRF_FAILED) whatever it carries: a login form posted with a valid token (login CSRF), the JSON API; our own forms, non-browser clients, Bearer clients and the OpenID Provider are not', async () => {
    const { user } = await createUserWithCard(h.services);
    const refused: [string, Record<string, string>][] = [
      ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
      ['Sec-Fetch-Site: same-site (a sibling host)', { 'sec-fetch-site': 'same-site' }],
      ['a foreign Origin, no Sec-Fetch-Site', { origin: 'https://evil.example' }],
      ['our Origin, but Sec-Fetch-Site: cross-site', { origin: PUBLIC_URL, 'sec-fetch-site': 'cross-site' }],
    ];
    const logins = () => h.services.store.db.selectFrom('login_flows').select('id').where('user_id', '=', user.id).execute();
    for (const [what, headers] of refused) {
      // the attacker's page holds a form of ours and its token (fetched by the attacker): the victim's browser posts it
      const agent = new Agent(h.app);
      const page = await agent.get('/login');
      const before = (await logins()).length;
      const forged = await agent.post(
        '/login',
        { _csrf: csrfOf(form(page.html, '/login')), username: user.username, password: PASSWORD, app: 'portal' },
        headers,
      );
      expect([forged.status, forged.location, alertBox(forged.html)?.code], what).toEqual([403, undefined, 'CSRF_FAILED']);
      const api = await h.app.inject({
        method: 'POST',
        url: '/api/v1/login',
        headers: { ...headers, 'content-type': 'application/json' },
        payload: { username: user.username, password: PASSWORD, app: 'portal' },
      });
      expect([api.statusCode, api.json().error.code], what).toEqual([403, 'CSRF_FAILED']);
      expect((await logins()).length, what).toBe(before);
    }
    const allowed: [string, Record<string, string>][] = [
      ['our own form (Sec-Fetch-Site: same-origin, Origin null under no-referrer)', { 'sec-fetch-site': 'same-origin', origin: 'null' }],
      ['our Origin, no Sec-Fetch-Site', { origin: PUBLIC_URL }],
      ['Origin null, no Sec-Fetch-Site (an older browser, our form)', { origin: 'null' }],
      ['typed by the user (Sec-Fetch-Site: none)', { 'sec-fetch-site': 'none' }],
      ['no browser at all', {}],
    ];
    for (const [what, headers] of allowed) {
      const agent = new Agent(h.app);
      const page = await agent.get('/login');
      const own = await agent.post('/login', { _csrf: csrfOf(form(page.html, '/login')), username: user.username, password: PASSWORD, app: 'portal' }, headers);
      expect([own.status, own.location?.startsWith('/login/')], what).toEqual([303, true]);
    }
    // the mobile app and integrators are no browsers; a Bearer token cannot be sent from another site without CORS
    const mobile = await h.app.inject({
      method: 'POST',
      url: '/api/v1/login',
      headers: { 'content-type': 'application/json' },
      payload: { username: user.username, password: PASSWORD, app: 'portal' },
    });
    expect(mobile.statusCode).toBe(200);
    const withBearer = await h.app.inject({
      method: 'POST',
      url: '/api/v1/logout',
      headers: { authorization: 'Bearer not-a-session', 'sec-fetch-site': 'cross-site' },
    });
    expect(withBearer.json().error.code).toBe('UNAUTHENTICATED');
    // the OpenID Provider: a relying party's server at the token endpoint, its browser at the end-session endpoint
    const token = await h.app.inject({
      method: 'POST',
      url: '/oidc/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://rp.example', 'sec-fetch-site': 'cross-site' },
      payload: 'grant_type=authorization_code&code=x&client_id=nobody',
    });
    expect(token.statusCode).not.toBe(403);
    expect(token.body).not.toContain('CSRF_FAILED');
    const endSession = await h.app.inject({
      method: 'POST',
      url: '/oidc/session/end/confirm',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://rp.example', 'sec-fetch-site': 'cross-site' },
      payload: 'logout=yes&xsrf=none',
    });
    // the provider's own answer (its form secret is checked by it), not ours
    expect(endSession.body).not.toContain('CSRF_FAILED');
  });

  it('L8, X3: an Origin on our host under another scheme (http:// for our https site, a page a network attacker writes) is not ours: the cross-site check and the cookie path refuse it', async () => {
    const { user } = await createUserWithCard(h.services);
    const plain = { origin: 'http://login.example', host: 'login.example' };
    const login = await h.app.inject({
      method: 'POST',
      url: '/api/v1/login',
      headers: { ...plain, 'content-type': 'application/json' },
      payload: { username: user.username, password: PASSWORD, app: 'portal' },
    });
    expect([login.statusCode, login.json().error?.code]).toEqual([403, 'CSRF_FAILED']);
    const token = await sessionToken();
    const cookie = { cookie: `__Host-sls_session=${token}` };
    const forged = await h.app.inject({ method: 'POST', url: '/api/v1/logout', headers: { ...cookie, ...plain } });
    expect([forged.statusCode, forged.json().error.code]).toEqual([403, 'CSRF_FAILED']);
    expect((await get(h.app, '/api/v1/session', cookie)).status).toBe(200);
    // our https origin on the same Host still is ours
    const own = await h.app.inject({ method: 'POST', url: '/api/v1/logout', headers: { ...cookie, origin: PUBLIC_URL, host: 'login.example' } });
    expect(own.statusCode).toBe(204);
  });

  it("L8: no answer that carries a secret or personal data is kept by a cache (Cache-Control: no-store), the OpenID Provider's included; what may be cached says so", async () => {
    const { client } = await h.services.oidc.clients.create({ name: 'Desk', app: 'trading', redirectUris: [], public: true, deviceGrant: true }, 'test');
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    const device = await h.app.inject({ method: 'POST', url: '/oidc/device/auth', headers: form, payload: `client_id=${client.clientId}&scope=openid` });
    const { user_code } = device.json() as { user_code: string };
    const agent = new Agent(h.app);
    agent.jar.set('__Host-sls_session', done.body.session.token);
    const answers: [string, { headers: Record<string, unknown> }][] = [
      ['a login started (its claim token)', start.raw],
      ['a login done (the session token)', done.raw],
      ['the session (who is signed in)', (await get(h.app, '/api/v1/session', bearer(done.body.session.token))).raw],
      ['the account page', (await agent.get('/account')).raw],
      ["a device's codes (RFC 8628)", device],
      ["the device page (its form's secret)", await h.app.inject({ method: 'GET', url: '/oidc/device' })],
      ["the device page with the user's code", await h.app.inject({ method: 'GET', url: `/oidc/device?user_code=${user_code}` })],
      ['the sign-out confirmation (its form secret)', await h.app.inject({ method: 'GET', url: '/oidc/session/end' })],
      [
        'a token request refused',
        await h.app.inject({
          method: 'POST',
          url: '/oidc/token',
          headers: form,
          payload: `client_id=${client.clientId}&grant_type=refresh_token&refresh_token=x`,
        }),
      ],
      ['the discovery document', await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' })],
      ['a page that is not there', await h.app.inject({ method: 'GET', url: '/nothing-here' })],
    ];
    for (const [what, response] of answers) expect(response.headers['cache-control'], what).toBe('no-store');
    // the style sheet and the icon are no secret: they keep their own
    expect((await h.app.inject({ method: 'GET', url: '/static/sls.css' })).headers['cache-control']).toMatch(/^public, max-age=\d+$/);
    expect((await h.app.inject({ method: 'GET', url: '/favicon.ico' })).headers['cache-control']).toMatch(/^public, max-age=\d+$/);
  });

  it("L8, I1: no page may be framed by any site, our own included (clickjacking of a device's approval, of a form): frame-ancestors 'none' and X-Frame-Options: DENY on the pages and the OpenID Provider's", async () => {
    const { client } = await h.services.oidc.clients.create({ name: 'Desk', app: 'trading', redirectUris: [], public: true, deviceGrant: true }, 'test');
    for (const url of ['/login', '/help', '/nothing-here', '/oidc/device', '/oidc/session/end', `/oidc/auth?client_id=${client.clientId}`]) {
      const page = await h.app.inject({ method: 'GET', url });
      expect(String(page.headers['content-type']), url).toMatch(/^text\/html/);
      expect(String(page.headers['content-security-policy']), url).toContain("frame-ancestors 'none'");
      expect(page.headers['x-frame-options'], url).toBe('DENY');
    }
  });

  it('X3: a JSON body is UTF-8 or refused: a byte that is no UTF-8 inside a string (a password typed in Latin-1) is 400 MALFORMED_JSON, not read as U+FFFD; another charset named is 415', async () => {
    const login = (password: string) => `{"username":"alice","password":"${password}","app":"portal"}`;
    const cases: [string, string, Buffer, number, string][] = [
      ['Latin-1 bytes in a string', 'application/json', Buffer.from(login('\u00e9t\u00e9'), 'latin1'), 400, 'MALFORMED_JSON'],
      ['a charset named: ISO-8859-1', 'application/json; charset=iso-8859-1', Buffer.from(login('\u00e9t\u00e9'), 'latin1'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['a charset named: UTF-16', 'application/json; charset=utf-16', Buffer.from(`\ufeff${login('x')}`, 'utf16le'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['UTF-8, named so (quoted, capitals)', 'application/json; charset="UTF-8"', Buffer.from(login('\u00e9t\u00e9'), 'utf8'), 401, 'INVALID_CREDENTIALS'],
      ['UTF-8 with a byte order mark', 'application/json', Buffer.from(`\ufeff${login('\u00e9t\u00e9')}`, 'utf8'), 401, 'INVALID_CREDENTIALS'],
    ];
    for (const [what, contentType, payload, status, code] of cases) {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/login', headers: { 'content-type': contentType }, payload });
      expect([res.statusCode, res.json().error.code], what).toEqual([status, code]);
    }
    const charset = await h.app.inject({
      method: 'POST',
      url: '/api/v1/login',
      headers: { 'content-type': 'application/json; charset=latin1' },
      payload: login('x'),
    });
    expect(charset.json().error.message).toBe('Send the request body as application/json in UTF-8 (no other charset).');
  });

  it('X3: bodies built to break the parser get a 4xx with a stable code and change nothing: very deep JSON, a form field sent twice (an array where text is expected), __proto__ and constructor.prototype keys in a form', async () => {
    const deepArray = `${'['.repeat(7000)}${']'.repeat(7000)}`;
    const deepField = `{"username":${'{"a":'.repeat(2500)}1${'}'.repeat(2500)},"password":"x","app":"portal"}`;
    for (const [what, payload] of [
      ['an array 7000 deep', deepArray],
      ['a field 2500 objects deep', deepField],
    ]) {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/login', headers: { 'content-type': 'application/json' }, payload });
      expect([res.statusCode, res.json().error.code], what).toEqual([400, 'VALIDATION_ERROR']);
    }
    const agent = new Agent(h.app);
    const page = await agent.get('/login');
    const token = csrfOf(form(page.html, '/login'));
    const post = (body: string) =>
      h.app.inject({
        method: 'POST',
        url: '/login',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        cookies: Object.fromEntries(agent.jar),
        payload: body,
      });
    const twice = await post(`_csrf=${token}&username=alice&username=bob&password=x&app=portal`);
    expect([twice.statusCode, alertBox(twice.body)?.code]).toEqual([400, 'VALIDATION_ERROR']);
    const tokenTwice = await post(`_csrf=${token}&_csrf=${token}&username=alice&password=x&app=portal`);
    expect([tokenTwice.statusCode, alertBox(tokenTwice.body)?.code]).toEqual([403, 'CSRF_FAILED']);
    const polluting = await post(`_csrf=${token}&__proto__[polluted]=1&constructor[prototype][polluted]=1&__proto__=x&username=alice&password=x&app=portal`);
    expect([polluting.statusCode, alertBox(polluting.body)?.code]).toEqual([401, 'INVALID_CREDENTIALS']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
