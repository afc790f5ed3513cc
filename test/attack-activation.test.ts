/**
 * Attacks on the mobile authenticator's activation as a bearer (K1, K7, K8,
 * L3, L8), on every database: whoever learnt an activation's id — a log, a
 * Referer, a proxy — but not its claim token (the `claimToken` of
 * POST /mobile/activations, given only to whoever entered the password)
 * sends no activation token, counts no wrong proof towards the user's lock
 * and finishes nothing: each step is 404 FLOW_NOT_FOUND, as for an unknown id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES, PASSWORD, startHarness, type Harness } from './support/harness.js';
import { postJson } from './support/api.js';
import { APP_PIN, smsUser, tokenIn } from './support/phone.js';
import { activationMessage, generatePhoneKeys, publicKeys, signAnswer } from '../src/mobile-app/protocol.js';

describe.each(DATABASES)('attacks on a mobile activation known by its id on %s', (database) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(database);
  });
  afterAll(async () => h.close());

  const start = (username: string) => postJson(h.app, '/api/v1/mobile/activations', { username, password: PASSWORD, purpose: 'activate' });
  const claim = (token: string): Record<string, string> => ({ 'x-claim-token': token });

  it('K1, K7, K8, L3, L8: with only an activation’s id, sending its token sends no SMS, a proof counts nothing and the completion is refused, each 404 FLOW_NOT_FOUND as for an unknown id, audited; its owner activates', async () => {
    const user = await smsUser(h);
    const started = await start(user.username);
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    const id = started.body.id as string;
    const own = claim(started.body.claimToken as string);
    expect(started.body.claimToken).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const phoneId = started.body.phones[0].id as string;
    // another activation of the same user: its claim token is no key to this one
    const other = await start(user.username);
    expect(other.status).toBe(200);
    expect(other.body.claimToken).not.toBe(started.body.claimToken);

    const keys = await generatePhoneKeys();
    const keyJson = await publicKeys(keys);
    const signature = await signAnswer(keys.signing.privateKey, activationMessage(id));
    const unknownId = 'flw_aaaaaaaaaaaaaaaaaaaaaaaaaa';
    const unknown = await postJson(h.app, `/api/v1/mobile/activations/${unknownId}/token`, { phoneId }, own);
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'FLOW_NOT_FOUND']);
    const strangers: Record<string, string>[] = [{}, claim('not-the-token'), claim(''), claim(other.body.claimToken as string)];
    for (const headers of strangers) {
      const what = JSON.stringify(headers);
      const sent = await postJson(h.app, `/api/v1/mobile/activations/${id}/token`, { phoneId }, headers);
      expect([sent.status, sent.body], what).toEqual([404, unknown.body]);
      const proof = await postJson(h.app, `/api/v1/mobile/activations/${id}/proof`, { response: '000000', ...keyJson }, headers);
      expect([proof.status, proof.body], what).toEqual([404, unknown.body]);
      const done = await postJson(h.app, `/api/v1/mobile/activations/${id}/complete`, { pin: APP_PIN, ...keyJson, signature }, headers);
      expect([done.status, done.body], what).toEqual([404, unknown.body]);
    }
    // no SMS went out, no answer was taken, nothing counted towards the lock (L3)
    expect((await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'activationToken')).toHaveLength(0);
    const row = await h.services.store.db.selectFrom('login_flows').select(['attempts', 'state']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toEqual({ attempts: 0, state: 'second_factor' });
    expect((await h.services.lockout.status(user.username)).failures).toBe(0);
    const refused = (await h.services.audit.list({ userId: user.id, limit: 100 }))
      .filter((e) => e.event === 'mobile.claim_refused')
      .map((e) => String((e.data as { action?: string }).action))
      .sort();
    expect(refused).toEqual([...Array(4).fill('complete'), ...Array(4).fill('proof'), ...Array(4).fill('token')]);

    // whoever entered the password goes on with its claim token
    const sent = await postJson(h.app, `/api/v1/mobile/activations/${id}/token`, { phoneId }, own);
    expect([sent.status, sent.body.challenge?.type], JSON.stringify(sent.body)).toEqual([200, 'sms']);
    const token = tokenIn(await h.services.notifier.list({ userId: user.id }));
    const proven = await postJson(h.app, `/api/v1/mobile/activations/${id}/proof`, { response: token, ...keyJson }, own);
    expect([proven.status, proven.body.proven, proven.body.attemptsLeft], JSON.stringify(proven.body)).toEqual([200, true, 3]);
    // proven, the id alone still finishes nothing
    const stolen = await postJson(h.app, `/api/v1/mobile/activations/${id}/complete`, { pin: APP_PIN, ...keyJson, signature });
    expect([stolen.status, stolen.body]).toEqual([404, unknown.body]);
    const done = await postJson(h.app, `/api/v1/mobile/activations/${id}/complete`, { pin: APP_PIN, ...keyJson, signature }, own);
    expect([done.status, done.body.username], JSON.stringify(done.body)).toEqual([200, user.username]);
    // ended, it is still 404 without the claim token (no oracle of its state), 410 with it
    const after = await postJson(h.app, `/api/v1/mobile/activations/${id}/proof`, { response: token, ...keyJson });
    expect([after.status, after.body]).toEqual([404, unknown.body]);
    const again = await postJson(h.app, `/api/v1/mobile/activations/${id}/proof`, { response: token, ...keyJson }, own);
    expect([again.status, again.body.error.code]).toEqual([410, 'FLOW_EXPIRED']);
  });
});
