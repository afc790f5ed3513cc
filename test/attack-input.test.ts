/**
 * X3, L1: bad input the generated sweeps (test/bad-input, test/fuzz-api,
 * test/cli-bad-input, test/fuzz-cli-files) do not reach: a form body whose
 * bytes are not UTF-8 (they judge only that no 5xx comes back, not what is
 * stored), the OpenID Provider's own error answers, a chunked body past the
 * limit, malformed keys and signatures on the authenticator's wire API.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, type Harness } from './support/harness.js';
import { answer, bearer, postJson, startLogin, stepUp, withCard } from './support/api.js';
import { Agent, alertBox, csrfOf, form } from './support/html.js';
import { listeningHarness } from './support/oidc.js';
import { SoftwareAuthenticator, registerSecurityKey } from './support/software-authenticator.js';
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
    const token = (await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token as string;
    await stepUp(h.app, bearer(token), withCard(card));
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
      const res = await h.app.inject({ method: 'POST', url: '/password', headers: { 'content-type': contentType }, cookies: Object.fromEntries(agent.jar), payload });
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
});
