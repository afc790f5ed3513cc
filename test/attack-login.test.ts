/**
 * Attacks on the login flow as a bearer (L7, L8, L3), on every database:
 * whoever learnt a login's id — a log, a Referer, a shared link, over a
 * shoulder — but not its claim token (the API's `claimToken`, the page's
 * claim cookie) reads nothing of it, answers nothing and counts nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, wrongAnswer, type Harness } from './support/harness.js';
import { claimOf, get, postJson, startLogin } from './support/api.js';
import { Agent, csrfOf, form, textById } from './support/html.js';
import { cookieNames } from '../src/http/session-cookie.js';

describe.each(DATABASES)('attacks on a login flow known by its id on %s', (database) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(database);
  });
  afterAll(async () => h.close());

  async function refusals(userId: string): Promise<string[]> {
    return (await h.services.audit.list({ userId }))
      .filter((e) => e.event === 'login.claim_refused')
      .map((e) => String((e.data as { action?: string }).action))
      .sort();
  }

  it('L7, L8, L3, K3: with only a login’s id, reading it, answering it (even with the right code) or taking its session is 404 FLOW_NOT_FOUND as for an unknown id, audited; no answer nor failure is counted; its owner reads it and logs in', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const login = await startLogin(h.app, user.username);
    expect(login.status).toBe(200);
    const id = login.body.id as string;
    const right = cardAnswer(card, login.body.challenge.question);
    const unknown = await get(h.app, '/api/v1/login/flw_aaaaaaaaaaaaaaaaaaaaaaaaaa');
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'FLOW_NOT_FOUND']);
    for (const headers of [{}, { 'x-claim-token': 'not-the-token' }, { 'x-claim-token': '' }] as Record<string, string>[]) {
      const what = JSON.stringify(headers);
      const read = await get(h.app, `/api/v1/login/${id}`, headers);
      expect([read.status, read.body], what).toEqual([404, unknown.body]);
      const wrong = await postJson(h.app, `/api/v1/login/${id}`, { response: wrongAnswer(right) }, headers);
      expect([wrong.status, wrong.body], what).toEqual([404, unknown.body]);
      const taken = await postJson(h.app, `/api/v1/login/${id}`, { response: right }, headers);
      expect([taken.status, taken.body.session], what).toEqual([404, undefined]);
    }
    // nor taking its session (K3): the same answer as for an unknown id, no oracle of the login's existence
    const taking = await postJson(h.app, `/api/v1/login/${id}/session`, { claimToken: 'x'.repeat(43) });
    expect([taking.status, taking.body]).toEqual([404, unknown.body]);
    // another login's claim token is no key to this one
    const other = await startLogin(h.app, user.username);
    expect((await get(h.app, `/api/v1/login/${id}`, claimOf(other))).status).toBe(404);
    expect((await postJson(h.app, `/api/v1/login/${id}`, { response: right }, claimOf(other))).status).toBe(404);
    // nothing was counted: the flow keeps its three answers, the user's lock its count (L3)
    expect((await h.services.lockout.status(user.username)).failures).toBe(0);
    const own = await get(h.app, `/api/v1/login/${id}`, claimOf(login));
    expect([own.status, own.body.state, own.body.attemptsLeft]).toEqual([200, 'second_factor', 3]);
    expect(await refusals(user.id)).toEqual([...Array(7).fill('answer'), 'claim', ...Array(4).fill('view')].sort());
    const done = await postJson(h.app, `/api/v1/login/${id}`, { response: right }, claimOf(login));
    expect([done.status, done.body.state]).toEqual([200, 'done']);
    expect(await h.services.sessions.authenticate(done.body.session.token)).not.toBeNull();
  });

  it('L8: the login page’s form answered from another browser (no claim cookie) opens no session there and counts nothing; the browser that started the login still logs in', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const owner = new Agent(h.app);
    const start = await owner.get('/login');
    const posted = await owner.submit(start, '/login', { username: user.username, password: PASSWORD });
    expect(posted.status).toBe(303);
    const flowPath = posted.location!;
    expect(owner.jar.has(cookieNames(h.services.config).claim)).toBe(true);
    const challenge = await owner.get(flowPath);
    const question = textById(challenge.html, 'challenge-code') ?? '';
    expect(question).toMatch(/^\d{6}$/);
    const right = cardAnswer(card, question);
    // the other browser has a page of its own (its CSRF token) and the login's address
    const stranger = new Agent(h.app);
    const page = await stranger.get('/login');
    const csrf = csrfOf(form(page.html, '/login'));
    const tried = await stranger.post(flowPath, { _csrf: csrf, response: right });
    expect(tried.status).not.toBe(303);
    expect(stranger.jar.has(cookieNames(h.services.config).session)).toBe(false);
    expect(tried.html).not.toContain('challenge-code');
    expect((await stranger.get(flowPath)).html).not.toContain(question);
    expect((await h.services.lockout.status(user.username)).failures).toBe(0);
    const done = await owner.submit(challenge, flowPath, { response: right });
    expect([done.status, done.location]).toEqual([303, '/account']);
    expect(owner.jar.has(cookieNames(h.services.config).session)).toBe(true);
  });
});
