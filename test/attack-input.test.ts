/**
 * X3, L1: bad input the generated sweeps (test/bad-input, test/fuzz-api,
 * test/cli-bad-input, test/fuzz-cli-files) do not reach: a form body whose
 * bytes are not UTF-8 (they judge only that no 5xx comes back, not what is
 * stored), the OpenID Provider's own error answers, a chunked body past the
 * limit, malformed keys and signatures on the authenticator's wire API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, type Harness } from './support/harness.js';
import { answer, bearer, postJson, startLogin, stepUp, withCard } from './support/api.js';
import { Agent, alertBox, csrfOf, form } from './support/html.js';
import { listeningHarness } from './support/oidc.js';
import { SoftwareAuthenticator, registerSecurityKey } from './support/software-authenticator.js';
import { TestPhone, harnessInbox } from './support/phone.js';
import { usernamesInEveryState } from './support/enumeration.js';
import { activationMessage, publicKeys, signAnswer } from '../src/mobile-app/protocol.js';
import { createSign, generateKeyPairSync } from 'node:crypto';
import { SESSION_COOKIE } from '../src/http/session-cookie.js';
import { relyingPartyOf } from '../src/devices/security-key/security-key.js';

/** Bidirectional controls (Unicode's embeddings, overrides and isolates): text after them is shown reordered. */
const BIDI_NAMES: [string, string][] = [
  ['a right-to-left override (U+202E)', 'Blue \u202eyek'],
  ['a left-to-right embedding (U+202A)', '\u202aBlue key'],
  ['a pop (U+202C)', 'Blue key\u202c'],
  ['a right-to-left isolate (U+2067 … U+2069)', 'Blue \u2067key\u2069'],
  ['a first-strong isolate (U+2068)', '\u2068Blue key'],
];

const FORM = 'application/x-www-form-urlencoded';

describe.each(DATABASES)('bad input the sweeps do not reach (%s)', (database) => {
  let h: Harness;
  let base: string;
  beforeAll(async () => {
    ({ h, issuer: base } = await listeningHarness(database));
  });
  afterAll(async () => h?.close());

  /** A user signed in with their card and stepped up, in a browser: the agent and the user. */
  async function steppedUpBrowser() {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    const loggedIn = (await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token as string;
    // V1 (decision 0042): the session goes on with the token the step-up gave it
    const token = (await stepUp(h.app, bearer(loggedIn), withCard(card))).body.session.token as string;
    const agent = new Agent(h.app);
    agent.jar.set(SESSION_COOKIE, token);
    return { agent, user, token };
  }

  const passwordHashOf = async (userId: string) =>
    (await h.services.store.db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirstOrThrow()).password_hash;

  it('X3, A4: a form body is UTF-8 or refused: a new password sent in Latin-1 bytes (or naming another charset), or with an escape of no UTF-8, is refused (415 UNSUPPORTED_MEDIA_TYPE, 400 VALIDATION_ERROR), never stored as U+FFFD or as the escape; the old password still opens, and the same password in UTF-8 is taken', async () => {
    const { agent, user } = await steppedUpBrowser();
    const hash = await passwordHashOf(user.id);
    const typed = 'Grüne Wiese im Sommerregen';
    const post = async (contentType: string, newPassword: Buffer) => {
      const page = await agent.get('/password');
      const csrf = csrfOf(form(page.html, '/password'));
      const payload = Buffer.concat([
        Buffer.from(`_csrf=${encodeURIComponent(csrf)}&currentPassword=${encodeURIComponent(PASSWORD)}&newPassword=`),
        newPassword,
        Buffer.from('&confirmPassword='),
        newPassword,
      ]);
      const res = await h.app.inject({
        method: 'POST',
        url: '/password',
        headers: { 'content-type': contentType },
        cookies: Object.fromEntries(agent.jar),
        payload,
      });
      return { status: res.statusCode, code: alertBox(res.body)?.code, text: alertBox(res.body)?.text };
    };
    const cases: [string, string, Buffer, number, string][] = [
      ['Latin-1 bytes', FORM, Buffer.from(typed, 'latin1'), 400, 'VALIDATION_ERROR'],
      ['Latin-1 bytes, the charset named', `${FORM}; charset=iso-8859-1`, Buffer.from(typed, 'latin1'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['UTF-8 bytes under another charset named', `${FORM}; charset=windows-1252`, Buffer.from(typed, 'utf8'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['Latin-1 escapes', FORM, Buffer.from(encodeURIComponent(typed).replaceAll('%C3%BC', '%FC')), 400, 'VALIDATION_ERROR'],
      ['an escape of half a surrogate pair in UTF-8', FORM, Buffer.from(`${encodeURIComponent(typed)}%ED%A0%80`), 400, 'VALIDATION_ERROR'],
      ['a bad escape', FORM, Buffer.from(`${encodeURIComponent(typed)}%zz`), 400, 'VALIDATION_ERROR'],
    ];
    for (const [what, contentType, newPassword, status, code] of cases) {
      const answered = await post(contentType, newPassword);
      expect([answered.status, answered.code], what).toEqual([status, code]);
      expect(answered.text, what).toMatch(/UTF-8/);
      expect(await passwordHashOf(user.id), what).toBe(hash);
    }
    // the old password still opens; the same new password as a browser sends it (UTF-8, escaped) is taken, and opens
    expect((await startLogin(h.app, user.username, PASSWORD)).status).toBe(200);
    const taken = await post(FORM, Buffer.from(encodeURIComponent(typed)));
    expect(taken.status, JSON.stringify(taken)).toBe(303);
    expect((await startLogin(h.app, user.username, typed)).status).toBe(200);
    expect((await startLogin(h.app, user.username, PASSWORD)).status).toBe(401);
  });

  it('N1, D6, X3 (decision 0041): a security key named with a bidirectional control (an override, an embedding, an isolate) is refused 400 SECURITY_KEY_NAME_INVALID at registration and on rename: no key added or renamed, no notice (the warning a key added sends its owner) reordered by a name its adder chose', async () => {
    const { token, user } = await steppedUpBrowser();
    const session = bearer(token);
    const where = relyingPartyOf(h.services.config);
    const keyId = await registerSecurityKey(h.app, session, new SoftwareAuthenticator(), where);
    const notices = async () => (await h.services.notifier.list({ userId: user.id })).length;
    const before = await notices();
    for (const [what, name] of BIDI_NAMES) {
      const started = await postJson(h.app, '/api/v1/security-keys/registration', {}, session);
      const made = await postJson(
        h.app,
        '/api/v1/security-keys',
        { name, state: started.body.state, credential: new SoftwareAuthenticator().register(started.body.options as { challenge: string }, where) },
        session,
      );
      expect([made.status, made.body.error?.code], `register: ${what}`).toEqual([400, 'SECURITY_KEY_NAME_INVALID']);
      const renamed = await h.app.inject({ method: 'PATCH', url: `/api/v1/security-keys/${keyId}`, headers: session, payload: { name } });
      expect([renamed.statusCode, renamed.json().error?.code], `rename: ${what}`).toEqual([400, 'SECURITY_KEY_NAME_INVALID']);
    }
    const keys = (await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'security_key' && d.state === 'active');
    expect(keys.map((k) => k.label)).toEqual(['Blue key']);
    expect(await notices()).toBe(before);
    // right-to-left letters themselves are a name (Hebrew, Arabic), and so are the marks that only say a direction
    const hebrew = await h.app.inject({ method: 'PATCH', url: `/api/v1/security-keys/${keyId}`, headers: session, payload: { name: 'מפתח כחול\u200f' } });
    expect(hebrew.statusCode, hebrew.body).toBe(200);
  });

  it('I1, X3: the OpenID Provider answers bad input at each of its endpoints (repeated or broken parameters, malformed Basic and Bearer credentials, bodies of another type or over the limit, unknown paths) with a 4xx: its JSON error (`error`, `error_description`) at the token, user info, introspection, revocation, device and logout endpoints, a page at the authorization endpoint; never a 5xx (held)', async () => {
    const { client } = await h.services.oidc.clients.create(
      { name: 'Input', app: 'trading', redirectUris: ['http://127.0.0.1:9/cb'], public: true, deviceGrant: true },
      'test',
    );
    const id = client.clientId;
    const basic = (text: string) => `Basic ${Buffer.from(text).toString('base64')}`;
    const cases: [string, string, string | undefined, Record<string, string>, 'json' | 'html' | 'any'][] = [
      ['GET', '/oidc/auth', undefined, {}, 'html'],
      ['GET', `/oidc/auth?client_id=${id}&client_id=x`, undefined, {}, 'html'],
      ['GET', '/oidc/auth?client_id=%ED%A0%80', undefined, {}, 'html'],
      ['GET', '/oidc/auth?client_id=a%00b', undefined, {}, 'html'],
      ['GET', '/oidc/auth/abc', undefined, {}, 'html'],
      ['POST', '/oidc/token', '', { 'content-type': FORM }, 'json'],
      ['POST', '/oidc/token', '{"grant_type":"refresh_token"}', { 'content-type': 'application/json' }, 'json'],
      ['POST', '/oidc/token', '{', { 'content-type': 'application/json' }, 'json'],
      ['POST', '/oidc/token', 'grant_type=x&grant_type=y', { 'content-type': FORM }, 'json'],
      ['POST', '/oidc/token', `grant_type=authorization_code&code=%ED%A0%80&client_id=${id}`, { 'content-type': FORM }, 'json'],
      [
        'POST',
        '/oidc/token',
        `grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=${'a'.repeat(5000)}&client_id=${id}`,
        { 'content-type': FORM },
        'json',
      ],
      ['POST', '/oidc/token', 'grant_type=client_credentials', { 'content-type': FORM, authorization: 'Basic !!!' }, 'json'],
      ['POST', '/oidc/token', 'grant_type=client_credentials', { 'content-type': FORM, authorization: basic('no colon') }, 'json'],
      ['POST', '/oidc/token', 'grant_type=client_credentials', { 'content-type': FORM, authorization: basic('%E9:%zz') }, 'json'],
      ['POST', '/oidc/token', 'grant_type=client_credentials', { 'content-type': FORM, authorization: `Basic ${'a'.repeat(8000)}` }, 'json'],
      ['POST', '/oidc/token', `a=${'a'.repeat(200_000)}`, { 'content-type': FORM }, 'json'],
      ['POST', '/oidc/token', '--x--', { 'content-type': 'multipart/form-data; boundary=x' }, 'json'],
      ['GET', '/oidc/me', undefined, { authorization: 'Bearer' }, 'json'],
      ['GET', '/oidc/me', undefined, { authorization: 'Bearer a b c' }, 'json'],
      ['GET', '/oidc/me', undefined, { authorization: 'Bearer eyJhbGciOiJub25lIn0.e30.' }, 'json'],
      ['GET', '/oidc/me?access_token=x&access_token=y', undefined, {}, 'json'],
      ['POST', '/oidc/token/introspection', 'token=x', { 'content-type': FORM }, 'json'],
      ['POST', '/oidc/token/revocation', 'token=x', { 'content-type': FORM }, 'json'],
      ['GET', '/oidc/session/end?id_token_hint=junk', undefined, {}, 'json'],
      ['GET', '/oidc/session/end?id_token_hint=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.AAAA&post_logout_redirect_uri=javascript:alert(1)', undefined, {}, 'json'],
      ['POST', '/oidc/session/end/confirm', 'xsrf=1&logout=yes', { 'content-type': FORM }, 'json'],
      ['POST', '/oidc/device/auth', 'client_id=%ED%A0%80', { 'content-type': FORM }, 'json'],
      ['POST', '/oidc/device/auth', `client_id=${id}&scope=%00`, { 'content-type': FORM }, 'json'],
      ['GET', `/oidc/interaction/${'a'.repeat(300)}`, undefined, {}, 'any'],
      ['GET', '/oidc/interaction/..%2f..', undefined, {}, 'any'],
      ['GET', '/oidc/nothing', undefined, {}, 'any'],
      ['PUT', '/oidc/token', 'x', { 'content-type': FORM }, 'any'],
    ];
    for (const [method, url, body, headers, kind] of cases) {
      const what = `${method} ${url.slice(0, 100)} ${headers.authorization?.slice(0, 20) ?? ''}`;
      const res = await fetch(base + url, { method, headers, body, redirect: 'manual' });
      const text = await res.text();
      expect(res.status, `${what}: ${text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(res.status, what).toBeLessThan(500);
      if (kind === 'json') expect(JSON.parse(text), what).toMatchObject({ error: expect.stringMatching(/^[a-z_]+$/), error_description: expect.any(String) });
      if (kind === 'html') expect(res.headers.get('content-type'), what).toMatch(/^text\/html/);
    }
    // the device page's form, given junk, sends the browser back to it (a 303), never a 5xx
    for (const body of ['user_code=%00&xsrf=x', `user_code=${'A'.repeat(10_000)}`, 'user_code=a&user_code=b']) {
      const res = await fetch(`${base}/oidc/device`, { method: 'POST', headers: { 'content-type': FORM }, body, redirect: 'manual' });
      expect(res.status, body.slice(0, 40)).toBeLessThan(500);
    }
  });

  it("L1, H2: the pages' sharing form answers a wrong password for an owner in every state (ordinary, disabled, opted out, without device, on SMS, sharing a device, staff) as for an unknown owner: status, headers and page (held)", async () => {
    const usernames = await usernamesInEveryState(h);
    const { agent } = await steppedUpBrowser();
    const seen = async (ownerUsername: string) => {
      const page = await agent.get('/sharing/new');
      const answered = await agent.submit(page, '/sharing/new', { ownerUsername, ownerPassword: 'one guess for all' });
      const { 'x-request-id': _id, date: _date, 'set-cookie': _cookies, 'content-length': _length, ...headers } = answered.headers;
      return {
        status: answered.status,
        headers,
        html: answered.html
          .replace(/name="_csrf" value="[^"]*"/g, '')
          .replace(/"requestId":"[^"]*"|data-request-id="[^"]*"/g, '')
          .replaceAll(ownerUsername, 'NAME'),
      };
    };
    const unknown = await seen(usernames.unknown);
    expect(unknown.status).toBe(401);
    for (const [state, username] of Object.entries(usernames)) expect(await seen(username), state).toEqual(unknown);
  });

  it("K1, X3: the authenticator's wire API refuses malformed keys and signatures with a stable 4xx and binds nothing: a point off the curve, a coordinate of 33 bytes or in base64 with + and /, padding; a signature empty, DER-encoded, of another message or by another key (held)", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const phone = new TestPhone(base, harnessInbox(h));
    const view = await phone.start(user.username);
    expect(view.proof).toBe('device');
    const keys = await publicKeys(await phone.keysFor(view.id));
    const claim = { 'x-claim-token': view.claimToken };
    const response = cardAnswer(card, (view.challenge as { question: string }).question);
    const b64 = (bytes: Buffer) => bytes.toString('base64url');
    const badKeys: [string, Record<string, string>][] = [
      ['off the curve', { ...keys.signingKey, x: b64(Buffer.alloc(32, 1)), y: b64(Buffer.alloc(32, 2)) }],
      ['the point at infinity', { ...keys.signingKey, x: b64(Buffer.alloc(32)), y: b64(Buffer.alloc(32)) }],
      ['a coordinate of 33 bytes', { ...keys.signingKey, x: b64(Buffer.concat([Buffer.from([0]), Buffer.from(keys.signingKey.x, 'base64url')])) }],
      ['base64 with + and /', { ...keys.signingKey, x: Buffer.from(keys.signingKey.x, 'base64url').toString('base64') }],
      ['padding', { ...keys.signingKey, x: `${keys.signingKey.x}=` }],
      ['a curve named otherwise', { ...keys.signingKey, crv: 'P-384' }],
    ];
    for (const [what, signingKey] of badKeys) {
      const res = await postJson(h.app, `/api/v1/mobile/activations/${view.id}/proof`, { response, signingKey, agreementKey: keys.agreementKey }, claim);
      expect([res.status, res.body.error?.code], what).toEqual([400, 'VALIDATION_ERROR']);
      const swapped = await postJson(
        h.app,
        `/api/v1/mobile/activations/${view.id}/proof`,
        { response, signingKey: keys.signingKey, agreementKey: signingKey },
        claim,
      );
      expect([swapped.status, swapped.body.error?.code], `agreement key ${what}`).toEqual([400, 'VALIDATION_ERROR']);
    }
    const proven = await phone.prove(view, response);
    const phoneKeys = await phone.keysFor(view.id);
    const message = activationMessage(view.id);
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const der = createSign('sha256').update(message).sign(other.privateKey).toString('base64url');
    const badSignatures: [string, string][] = [
      ['empty', ''],
      ['not base64url', '!'.repeat(86)],
      ['zeros', 'A'.repeat(86)],
      ['DER-encoded, by another key', der],
      ['of another message', await signAnswer(phoneKeys.signing.privateKey, activationMessage('flw_other'))],
      ['by another key', createSign('sha256').update(message).sign({ key: other.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')],
    ];
    for (const [what, signature] of badSignatures) {
      const res = await postJson(
        h.app,
        `/api/v1/mobile/activations/${view.id}/complete`,
        { pin: 'ab12', ...keys, signature, label: 'Phone' },
        { 'x-claim-token': proven.claimToken },
      );
      expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBeGreaterThanOrEqual(400);
      expect(res.status, what).toBeLessThan(500);
      expect(res.body.error?.code, what).toMatch(/^[A-Z_]+$/);
    }
    expect((await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'mobile' && d.state === 'active')).toEqual([]);
  });
});
