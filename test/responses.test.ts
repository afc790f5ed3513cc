/**
 * Responses (X3, L8): every answer of the API is kept by no cache (sessions,
 * claim tokens, codes); a form's CSRF token is bound to the browser's session;
 * a body that is not JSON gets 415 as documented.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, claimSession, get, startLogin } from './support/api.js';
import { Agent, alertBox, csrfOf, form } from './support/html.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness('sqlite');
});
afterAll(async () => h.close());

describe('responses (X3, L8)', () => {
  it('L8/X3: the answers that carry a claim token or a session, and every other API answer, say Cache-Control: no-store', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const started = await startLogin(h.app, user.username);
    expect(started.body.claimToken).toBeDefined();
    expect(started.headers['cache-control']).toBe('no-store');
    const done = await answer(h.app, started.body.id, cardAnswer(card, started.body.challenge.question));
    expect(done.body.session.token).toBeDefined();
    expect(done.headers['cache-control']).toBe('no-store');
    expect((await get(h.app, '/api/v1/session', bearer(done.body.session.token))).headers['cache-control']).toBe('no-store');
    const refused = await claimSession(h.app, started);
    expect(refused.headers['cache-control']).toBe('no-store');
    const failed = await startLogin(h.app, user.username, 'not the password');
    expect(failed.headers['cache-control']).toBe('no-store');
  });

  it('X3: a text/plain body is answered 415 UNSUPPORTED_MEDIA_TYPE, as documented', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/login',
      headers: { 'content-type': 'text/plain' },
      payload: '{"username":"a","password":"b","app":"portal"}',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
  });

  it("X3: a form's CSRF token is bound to the session: one made before the login, or in another session, is refused", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    const loginPage = await agent.get('/login');
    const beforeLogin = csrfOf(form(loginPage.html, '/login'));
    const started = await agent.submit(loginPage, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
    const challenge = await agent.get(started.location!);
    const question = /id="challenge-code"[^>]*>(\d{6})</.exec(challenge.html)![1]!;
    expect((await agent.submit(challenge, started.location!, { response: cardAnswer(card, question) })).location).toBe('/account');
    // the same browser (the same sls_csrf cookie), now signed in: the token of the login page no longer works
    const stale = await agent.post('/logout', { _csrf: beforeLogin });
    expect(stale.status).toBe(403);
    expect(alertBox(stale.html)?.code).toBe('CSRF_FAILED');
    const account = await agent.get('/account');
    const inSession = csrfOf(form(account.html, '/logout'));
    // another session in the same browser: the first session's token is refused
    const second = new Agent(h.app);
    for (const [name, value] of agent.jar) second.jar.set(name, value);
    const start = await startLogin(h.app, user.username);
    const other = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    second.jar.set('__Host-sls_session', other.body.session.token);
    expect((await second.post('/logout', { _csrf: inSession })).status).toBe(403);
    // and in its own session the token works
    expect((await agent.post('/logout', { _csrf: inSession })).location).toBe('/login?loggedOut=1');
  });
});
