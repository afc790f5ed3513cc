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
import { SESSION_COOKIE } from '../src/http/session-cookie.js';

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
    return { agent, user };
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
});
