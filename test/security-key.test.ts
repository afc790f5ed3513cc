/**
 * FIDO2 security keys and passkeys through the JSON API, on SQLite and
 * PostgreSQL (docs/decisions/0014-security-keys.md), with a software
 * authenticator: registration after a step-up (X7), the login's webauthn
 * challenge answered once (L2, L4), wrong keys counted (L3), a counter that
 * goes back (a cloned key: suspended, notice, audit), the model allow-list,
 * names and removal, step-up and trading logins with the key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { relyingPartyOf } from '../src/devices/security-key/security-key.js';
import { DATABASES, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, claimOf, get, postJson, startLogin, stepUp, type ApiResponse, type Json } from './support/api.js';
import { SoftwareAuthenticator, type Where } from './support/software-authenticator.js';
import { verifiedNumber } from './support/phone.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';

function send(app: FastifyInstance, method: 'PATCH' | 'DELETE', url: string, headers: Record<string, string>, payload?: unknown) {
  return app.inject({
    method,
    url,
    headers: { ...headers, ...(payload ? { 'content-type': 'application/json' } : {}) },
    ...(payload ? { payload: payload as object } : {}),
  });
}

describe.each(DATABASES)('D6: security keys on %s', (database) => {
  let h: Harness;
  let where: Where;

  beforeAll(async () => {
    h = await startHarness(database);
    where = relyingPartyOf(h.services.config);
  });
  afterAll(async () => {
    await h.close();
  });

  /** A user with a DSC+, signed in to the portal with it: the bearer headers. */
  async function signedIn(): Promise<{ user: User; card: CardFile; auth: Record<string, string> }> {
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(done.status).toBe(200);
    return { user, card, auth: bearer(done.body.session.token as string) };
  }

  /** Registers `key` under `name` (the session has stepped up). */
  async function register(auth: Record<string, string>, key: SoftwareAuthenticator, name: string): Promise<ApiResponse> {
    const started = await postJson(h.app, '/api/v1/security-keys/registration', {}, auth);
    expect(started.status).toBe(200);
    return postJson(
      h.app,
      '/api/v1/security-keys',
      { name, state: started.body.state, credential: key.register(started.body.options as { challenge: string }, where) },
      auth,
    );
  }

  /** A user with a DSC+ and a registered key; the next logins offer the card first (it was used last). */
  async function withKey(
    key = new SoftwareAuthenticator(),
  ): Promise<{ user: User; card: CardFile; key: SoftwareAuthenticator; keyId: string; auth: Record<string, string> }> {
    const { user, card, auth } = await signedIn();
    await stepUp(h.app, auth, (challenge) => cardAnswer(card, challenge.question as string));
    const made = await register(auth, key, 'Blue key');
    expect(made.status).toBe(201);
    return { user, card, key, keyId: made.body.id as string, auth };
  }

  /** A login of the user that switched to the key: the flow with its webauthn challenge. */
  async function loginToKey(user: User, keyId: string, app: 'portal' | 'trading' = 'portal'): Promise<Json> {
    const start = await startLogin(h.app, user.username, undefined, app);
    expect(start.status).toBe(200);
    if (start.body.device.id === keyId) return start.body;
    const switched = await postJson(h.app, `/api/v1/login/${start.body.id as string}`, { device: keyId }, claimOf(start));
    expect(switched.status).toBe(200);
    return switched.body;
  }

  it('X7: registering a security key needs a fresh step-up; then it is listed with its name, model and attestation format', async () => {
    const { card, auth } = await signedIn();
    const key = new SoftwareAuthenticator();
    const refused = await postJson(h.app, '/api/v1/security-keys/registration', {}, auth);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('STEP_UP_REQUIRED');
    await stepUp(h.app, auth, (challenge) => cardAnswer(card, challenge.question as string));
    const made = await register(auth, key, '  Blue key  ');
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({
      name: 'Blue key',
      state: 'active',
      aaguid: key.aaguid,
      fmt: 'none',
      transports: ['usb'],
      synced: false,
      lastUsedAt: null,
    });
    const listed = await get(h.app, '/api/v1/security-keys', auth);
    expect(listed.body.keys.map((k: Json) => k.id)).toEqual([made.body.id]);
    // the same key twice is refused; the credential is sealed, only its id, model and format are in the clear
    expect((await register(auth, key, 'Again')).body.error.code).toBe('SECURITY_KEY_ALREADY_REGISTERED');
    const row = await h.services.store.db.selectFrom('devices').selectAll().where('id', '=', made.body.id).executeTakeFirstOrThrow();
    expect(row.type).toBe('security_key');
    expect(row.params).toContain(key.id);
    expect(row.secret_enc).not.toContain(key.id);
    const added = (await h.services.audit.list({ userId: row.user_id! })).find((e) => e.event === 'device.added');
    expect(added?.data).toMatchObject({ deviceId: made.body.id, type: 'security_key', aaguid: key.aaguid, fmt: 'none' });
  });

  it('L4/X7: the same registration sent five times at once registers one key (on each database)', async () => {
    const { user, auth, card } = await signedIn();
    await stepUp(h.app, auth, (challenge) => cardAnswer(card, challenge.question as string));
    const key = new SoftwareAuthenticator();
    const started = await postJson(h.app, '/api/v1/security-keys/registration', {}, auth);
    const body = { name: 'copy', state: started.body.state, credential: key.register(started.body.options as { challenge: string }, where) };
    const answers = await Promise.all(Array.from({ length: 5 }, () => postJson(h.app, '/api/v1/security-keys', body, auth)));
    expect(answers.filter((a) => a.status < 300)).toHaveLength(1);
    for (const refused of answers.filter((a) => a.status >= 300)) expect(refused.body.error.code).toBe('SECURITY_KEY_ALREADY_REGISTERED');
    expect(await h.services.securityKeys.list(user.id)).toHaveLength(1);
  });

  it("D6, X7: a credential id another user registered is refused as one's own is, with the same answer (nothing tells whose it is), and audited", async () => {
    const key = new SoftwareAuthenticator();
    const { user: holder, auth: holderAuth, keyId } = await withKey(key);
    const again = await register(holderAuth, key, 'Again');
    // another user presents the same credential id (a copy of the key, or an authenticator that claims the id)
    const { user, card, auth } = await signedIn();
    await stepUp(h.app, auth, (challenge) => cardAnswer(card, challenge.question as string));
    const refused = await register(auth, key, 'Not mine');
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body).toEqual(again.body);
    expect(refused.body.error.code).toBe('SECURITY_KEY_ALREADY_REGISTERED');
    expect(await h.services.securityKeys.list(user.id)).toEqual([]);
    expect((await h.services.securityKeys.list(holder.id)).map((k) => k.id)).toEqual([keyId]);
    const audited = (await h.services.audit.list({ userId: user.id })).find((e) => e.event === 'device.proof_failed');
    expect(audited?.data).toMatchObject({ purpose: 'security_key_registration', type: 'security_key', reason: 'already_registered' });
  });

  it('D6, L4: the same credential id sent by two users at once is registered for one of them only (on each database)', async () => {
    const key = new SoftwareAuthenticator();
    const users = await Promise.all([signedIn(), signedIn()]);
    const bodies = [];
    for (const { auth, card } of users) {
      await stepUp(h.app, auth, (challenge) => cardAnswer(card, challenge.question as string));
      const started = await postJson(h.app, '/api/v1/security-keys/registration', {}, auth);
      bodies.push({ auth, body: { name: 'same', state: started.body.state, credential: key.register(started.body.options as { challenge: string }, where) } });
    }
    const answers = await Promise.all(bodies.flatMap(({ auth, body }) => [1, 2, 3].map(() => postJson(h.app, '/api/v1/security-keys', body, auth))));
    expect(answers.filter((a) => a.status < 300)).toHaveLength(1);
    for (const refused of answers.filter((a) => a.status >= 300)) expect(refused.body.error.code).toBe('SECURITY_KEY_ALREADY_REGISTERED');
    const keys = await Promise.all(users.map(({ user }) => h.services.securityKeys.list(user.id)));
    expect(keys.flat()).toHaveLength(1);
  });

  it('D6, X7: a credential id that reaches the unique index past the check (another registration committed in between) is refused 409 SECURITY_KEY_ALREADY_REGISTERED and audited, not a 500', async () => {
    const key = new SoftwareAuthenticator();
    const other = await signedIn();
    const { user, card, auth } = await signedIn();
    await stepUp(h.app, auth, (challenge) => cardAnswer(card, challenge.question as string));
    // the other user's key lands in the gap between the registration's check and its insert (a hook, not a timing)
    const devices = h.services.devices as unknown as { insert: (db: unknown, input: Record<string, unknown>) => Promise<string> };
    const insert = devices.insert;
    let fired = false;
    devices.insert = async function (this: unknown, db, input) {
      if (!fired && input.credentialId === key.id) {
        fired = true;
        devices.insert = insert;
        await insert.call(this, db, { ...input, userId: other.user.id, label: 'theirs' });
      }
      return insert.call(this, db, input);
    };
    try {
      const refused = await register(auth, key, 'Not mine');
      expect(fired).toBe(true);
      expect(refused.status, JSON.stringify(refused.body)).toBe(409);
      expect(refused.body.error.code).toBe('SECURITY_KEY_ALREADY_REGISTERED');
    } finally {
      devices.insert = insert;
    }
    expect(await h.services.securityKeys.list(user.id)).toEqual([]);
    const audited = (await h.services.audit.list({ userId: user.id })).find((e) => e.event === 'device.proof_failed');
    expect(audited?.data).toMatchObject({ purpose: 'security_key_registration', type: 'security_key', reason: 'already_registered' });
  });

  it('X7: a registration answered with a wrong challenge, or by another session, is refused', async () => {
    const { auth, card } = await signedIn();
    await stepUp(h.app, auth, (challenge) => cardAnswer(card, challenge.question as string));
    const key = new SoftwareAuthenticator();
    const started = await postJson(h.app, '/api/v1/security-keys/registration', {}, auth);
    const wrong = await postJson(
      h.app,
      '/api/v1/security-keys',
      { name: 'k', state: started.body.state, credential: key.register({ challenge: 'AAAA' }, where) },
      auth,
    );
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.code).toBe('SECURITY_KEY_NOT_VERIFIED');
    const elsewhere = await postJson(
      h.app,
      '/api/v1/security-keys',
      { name: 'k', state: started.body.state, credential: key.register(started.body.options, { ...where, origin: 'https://evil.example' }) },
      auth,
    );
    expect(elsewhere.body.error.code).toBe('SECURITY_KEY_NOT_VERIFIED');
    const other = await signedIn();
    await stepUp(h.app, other.auth, (challenge) => cardAnswer(other.card, challenge.question as string));
    const stolen = await postJson(
      h.app,
      '/api/v1/security-keys',
      { name: 'k', state: started.body.state, credential: key.register(started.body.options, where) },
      other.auth,
    );
    expect(stolen.status).toBe(410);
    expect(stolen.body.error.code).toBe('SECURITY_KEY_REGISTRATION_EXPIRED');
    const badName = await postJson(
      h.app,
      '/api/v1/security-keys',
      { name: ' ', state: started.body.state, credential: key.register(started.body.options, where) },
      auth,
    );
    expect(badName.body.error.code).toBe('SECURITY_KEY_NAME_INVALID');
  });

  it('L2/L4: the login asks for the key (webauthn options) and accepts its assertion once; the same assertion is refused after', async () => {
    const { user, key, keyId } = await withKey();
    const flow = await loginToKey(user, keyId);
    expect(flow.challenge.type).toBe('webauthn');
    expect(flow.challenge.options).toMatchObject({ rpId: where.rpId, userVerification: 'preferred', allowCredentials: [{ id: key.id, type: 'public-key' }] });
    const assertion = key.assert(flow.challenge.options, where);
    const done = await answer(h.app, flow.id, assertion);
    expect(done.status).toBe(200);
    expect(done.body.state).toBe('done');
    expect(done.body.session.token).toBeTruthy();
    // L4: once: the flow is done, and another login's challenge is another
    expect((await answer(h.app, flow.id, assertion)).status).toBe(410);
    const next = await startLogin(h.app, user.username);
    // L6: the key used last is offered first now
    expect(next.body.device.id).toBe(keyId);
    const replayed = await answer(h.app, next.body.id, assertion);
    expect(replayed.status).toBe(401);
    expect(replayed.body.error.code).toBe('LOGIN_FAILED');
    expect((await answer(h.app, next.body.id, key.assert(next.body.challenge.options, where))).status).toBe(200);
    const listed = await get(h.app, '/api/v1/security-keys', bearer(done.body.session.token as string));
    expect(listed.body.keys[0].lastUsedAt).not.toBeNull();
  });

  it('L4: two concurrent submissions of the same assertion: exactly one wins', async () => {
    const { user, key, keyId } = await withKey();
    const flow = await loginToKey(user, keyId);
    const assertion = key.assert(flow.challenge.options, where);
    const results = await Promise.all([answer(h.app, flow.id, assertion), answer(h.app, flow.id, assertion)]);
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
  });

  it('L3: another key, or a broken assertion, is a wrong answer: refused and counted, with the hint', async () => {
    const { user, keyId } = await withKey();
    const flow = await loginToKey(user, keyId);
    const stranger = new SoftwareAuthenticator();
    const wrong = await answer(h.app, flow.id, stranger.assert(flow.challenge.options, where));
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toMatchObject({ code: 'LOGIN_FAILED', attemptsLeft: 2 });
    expect(wrong.body.error.hints.join(' ')).toContain('security key');
    const broken = await answer(h.app, flow.id, '{"id": "nothing"}');
    expect(broken.body.error).toMatchObject({ code: 'LOGIN_FAILED', attemptsLeft: 1 });
    const failures = (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'login.second_factor_failed');
    expect(failures).toHaveLength(2);
    expect(failures.map((e) => (e.data as { failures: number }).failures).sort()).toEqual([1, 2]);
  });

  it("L3, D6: an assertion signed by another key under this key's credential id, or made for another origin or relying party (a phishing page), is a wrong answer, counted", async () => {
    const { user, key, keyId } = await withKey();
    const flow = await loginToKey(user, keyId);
    const stranger = new SoftwareAuthenticator();
    const relabelled = { ...JSON.parse(stranger.assert(flow.challenge.options, where)), id: key.id, rawId: key.id };
    const answers = [
      JSON.stringify(relabelled),
      key.assert(flow.challenge.options, { ...where, origin: 'https://sls.example.evil' }),
      key.assert(flow.challenge.options, { ...where, rpId: 'evil.example' }),
    ];
    const refused = [];
    for (const response of answers) refused.push(await answer(h.app, flow.id, response));
    expect(refused.map((r) => r.status)).toEqual([401, 401, 401]);
    // the third wrong answer uses the login up (L4)
    expect(refused.map((r) => r.body.error.attemptsLeft)).toEqual([2, 1, 0]);
    const failures = (await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'login.second_factor_failed');
    expect(failures).toHaveLength(3);
  });

  it('X3: an answer longer than 64 characters is refused unless it is a JSON assertion, and never beyond 8 KB', async () => {
    const { user, key, keyId } = await withKey();
    const flow = await loginToKey(user, keyId);
    expect((await answer(h.app, flow.id, '1'.repeat(65))).status).toBe(400);
    expect((await answer(h.app, flow.id, `{"id":"${'a'.repeat(8200)}"}`)).status).toBe(400);
    // nothing was counted: the key still answers on the first attempt
    const done = await answer(h.app, flow.id, key.assert(flow.challenge.options, where));
    expect(done.status).toBe(200);
    expect(done.body.attemptsLeft).toBe(3);
  });

  it('clone: a signature counter that goes back refuses the answer, suspends the key, tells the user and audits device.clone_suspected', async () => {
    const { user, key, keyId, auth } = await withKey();
    const first = await loginToKey(user, keyId);
    expect((await answer(h.app, first.id, key.assert(first.challenge.options, where, 7))).status).toBe(200);
    // a copy of the key, behind the original
    const second = await startLogin(h.app, user.username);
    expect(second.body.device.id).toBe(keyId);
    const cloned = await answer(h.app, second.body.id, key.assert(second.body.challenge.options, where, 3));
    expect(cloned.status).toBe(401);
    expect(cloned.body.error.code).toBe('LOGIN_FAILED');
    expect((await h.services.devices.get(keyId)).state).toBe('suspended');
    const events = (await h.services.audit.list({ userId: user.id })).map((e) => e.event);
    expect(events).toContain('device.clone_suspected');
    expect(events).toContain('login.second_factor_failed');
    const entry = (await h.services.audit.list({ userId: user.id })).find((e) => e.event === 'device.clone_suspected')!;
    expect(entry.data).toMatchObject({ deviceId: keyId, counter: 3, stored: 7 });
    expect((await h.services.notifier.list({ userId: user.id })).map((n) => n.template)).toContain('securityKeySuspended');
    // the suspended key is no longer offered, and cannot prove itself back
    const third = await startLogin(h.app, user.username);
    expect(third.body.devices.map((d: Json) => d.id)).not.toContain(keyId);
    const reactivation = await postJson(h.app, `/api/v1/devices/${keyId}/activation`, {}, auth);
    expect(reactivation.status).toBe(409);
    expect(reactivation.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
    // nor does the security settings page offer it (the page reads the kind's capabilities)
    const token = auth.authorization!.replace(/^Bearer /, '');
    const account = await h.app.inject({ method: 'GET', url: '/account', cookies: { '__Host-sls_session': token } });
    expect(account.statusCode).toBe(200);
    expect(account.body).toContain('id="devices-heading"');
    expect(account.body).not.toContain(`reactivate-${keyId}`);
  });

  it('clone: the same counter again is refused without suspending the key (a replayed signature)', async () => {
    const { user, key, keyId } = await withKey();
    const first = await loginToKey(user, keyId);
    expect((await answer(h.app, first.id, key.assert(first.challenge.options, where, 5))).status).toBe(200);
    const second = await startLogin(h.app, user.username);
    expect((await answer(h.app, second.body.id, key.assert(second.body.challenge.options, where, 5))).status).toBe(401);
    expect((await h.services.devices.get(keyId)).state).toBe('active');
    expect((await answer(h.app, second.body.id, key.assert(second.body.challenge.options, where, 6))).status).toBe(200);
  });

  it('L4, clone: a copy of the key answering at the same moment as the original never puts the stored counter back', async () => {
    const { user, key, keyId } = await withKey();
    const first = await loginToKey(user, keyId);
    expect((await answer(h.app, first.id, key.assert(first.challenge.options, where, 5))).status).toBe(200);
    const storedCounter = async () => (await h.services.devices.readSecret<{ counter: number }>(h.services.store.db, keyId)).counter;
    for (let round = 0, counter = 10; round < 6; round++, counter += 10) {
      const [a, b] = [await startLogin(h.app, user.username), await startLogin(h.app, user.username)];
      if (a.body.device?.id !== keyId || b.body.device?.id !== keyId) break; // suspended: a copy was caught
      // both checked against the same stored counter; the copy is one behind the original
      const sent = [
        { flow: a.body.id as string, counter: counter + 2, assertion: key.assert(a.body.challenge.options, where, counter + 2) },
        { flow: b.body.id as string, counter: counter + 1, assertion: key.assert(b.body.challenge.options, where, counter + 1) },
      ];
      const results = await Promise.all(sent.map((x) => answer(h.app, x.flow, x.assertion)));
      const taken = sent.filter((_, i) => results[i]!.status === 200).map((x) => x.counter);
      for (const result of results) expect([200, 401, 410]).toContain(result.status);
      // whatever was taken, the stored counter is the highest of it: never an older one written last
      if (taken.length > 0) expect(await storedCounter()).toBe(Math.max(...taken));
    }
  });

  it('M6, L6, D6: the only way to log in is not removed: a key with no other active device and no verified number is refused 409 KEY_IN_USE (as a number is, PHONE_IN_USE) and still works; once a number is verified it is removed', async () => {
    const { user, key, keyId, auth } = await withKey();
    // the card goes (returned): the key is the user's only device
    const cardId = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!.id;
    await h.services.store.db.updateTable('devices').set({ state: 'revoked' }).where('id', '=', cardId).execute();
    h.clock.advance(1000); // the key's step-up is the session's last proof (not one of the same millisecond as the card's)
    await stepUp(h.app, auth, (challenge) => key.assert(challenge.options, where, 1));
    const refused = await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, auth);
    expect([refused.statusCode, refused.json().error.code]).toEqual([409, 'KEY_IN_USE']);
    expect(refused.json().error.message).toMatch(/only way to log in/);
    expect((await h.services.devices.get(keyId)).state).toBe('active');
    // M2: with a verified number the user can still log in (by SMS): the key goes
    await verifiedNumber(h, user.id);
    expect((await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, auth)).statusCode).toBe(204);
    expect((await h.services.devices.get(keyId)).state).toBe('revoked');
  });

  it("M6, L6, D6, X4: two keys that are each other's only company, removed at once by one stepped-up session: one stays (the check is made under the lock), the other removal is refused", async () => {
    const { user, key, keyId, auth } = await withKey();
    const laptop = new SoftwareAuthenticator();
    const second = await register(auth, laptop, 'Laptop passkey');
    expect(second.status).toBe(201);
    const cardId = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!.id;
    await h.services.store.db.updateTable('devices').set({ state: 'revoked' }).where('id', '=', cardId).execute();
    h.clock.advance(1000);
    // the two keys are equally strong and neither used yet: the step-up asks either (L6), so the key it names answers
    await stepUp(h.app, auth, (challenge) => {
      const asked = (challenge.options as { allowCredentials?: { id: string }[] }).allowCredentials?.map((c) => c.id) ?? [];
      return (asked.includes(laptop.id) ? laptop : key).assert(challenge.options, where, 1);
    });
    const results = await Promise.all([keyId, second.body.id as string].map((id) => send(h.app, 'DELETE', `/api/v1/security-keys/${id}`, auth)));
    expect(results.map((r) => r.statusCode).sort()).toContain(204);
    expect(
      results.some((r) => r.statusCode >= 400),
      results.map((r) => `${r.statusCode} ${r.body}`).join('; '),
    ).toBe(true);
    const active = (await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'security_key' && d.state === 'active');
    expect(active).toHaveLength(1);
  });

  it('N1, D6, X7: a security key registered or removed is told to the user (e-mail and SMS, by its name), who may not have done it: a session stepped up by someone else binds a key of theirs; told once, in the transaction that registers it', async () => {
    const { user, keyId, auth } = await withKey();
    const told = async (template: string) => (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === template);
    const added = await told('securityKeyAdded');
    expect(added.length).toBeGreaterThan(0);
    expect(added.map((n) => n.channel)).toEqual([...new Set(added.map((n) => n.channel))]);
    expect(added.every((n) => n.body.includes('Blue key') && n.body.includes(user.username))).toBe(true);
    // a second key: told again; the key that was already there is no new key
    const second = await register(auth, new SoftwareAuthenticator(), 'Laptop passkey');
    expect(second.status).toBe(201);
    expect((await told('securityKeyAdded')).filter((n) => n.body.includes('Laptop passkey'))).toHaveLength(added.length);
    expect(await told('securityKeyRemoved')).toEqual([]);
    const removed = await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, auth);
    expect(removed.statusCode).toBe(204);
    const gone = await told('securityKeyRemoved');
    expect(gone.length).toBeGreaterThan(0);
    expect(gone.every((n) => n.body.includes('Blue key'))).toBe(true);
  });

  it('names: keys are renamed and removed (after a step-up); a removed key is neither listed nor offered', async () => {
    const { user, keyId, auth, card } = await withKey();
    const second = await register(auth, new SoftwareAuthenticator(), 'Laptop passkey');
    expect(second.status).toBe(201);
    const renamed = await send(h.app, 'PATCH', `/api/v1/security-keys/${keyId}`, auth, { name: 'Red key' });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json()).toMatchObject({ id: keyId, name: 'Red key' });
    expect((await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, auth)).statusCode).toBe(204);
    expect((await get(h.app, '/api/v1/security-keys', auth)).body.keys.map((k: Json) => k.name)).toEqual(['Laptop passkey']);
    expect((await send(h.app, 'DELETE', `/api/v1/security-keys/${keyId}`, auth)).statusCode).toBe(404);
    const start = await startLogin(h.app, user.username);
    expect(start.body.devices.map((d: Json) => d.id)).not.toContain(keyId);
    // another user's key is not found
    const other = await signedIn();
    await stepUp(h.app, other.auth, (challenge) => cardAnswer(other.card, challenge.question as string));
    expect((await send(h.app, 'DELETE', `/api/v1/security-keys/${second.body.id as string}`, other.auth)).statusCode).toBe(404);
    expect(card).toBeTruthy();
  });

  it('L8/V1: the key opens a trading login and answers a step-up', async () => {
    const { user, key, keyId } = await withKey();
    const trading = await loginToKey(user, keyId, 'trading');
    const done = await answer(h.app, trading.id, key.assert(trading.challenge.options, where));
    expect(done.status).toBe(200);
    expect(done.body.app).toBe('trading');
    const portal = await loginToKey(user, keyId);
    const session = await answer(h.app, portal.id, key.assert(portal.challenge.options, where));
    const auth = bearer(session.body.session.token as string);
    const verified = await stepUp(h.app, auth, (challenge) => {
      expect(challenge.type).toBe('webauthn');
      return key.assert(challenge.options as { challenge: string }, where);
    });
    expect(verified.body.state).toBe('done');
    // the step-up opens the security settings
    expect((await postJson(h.app, '/api/v1/security-keys/registration', {}, auth)).status).toBe(200);
  });

  it("W1/D2: a security key ranks between the DSC+ and the mobile authenticator; its withdrawal limits are the mobile authenticator's", async () => {
    const { user, auth, keyId } = await withKey();
    const limits = await get(h.app, '/api/v1/withdrawal-limits', auth);
    // the DSC+ is still there and stronger
    expect(limits.body.device).toBe('dscplus');
    const devices = (await get(h.app, '/api/v1/devices', auth)).body.devices as Json[];
    for (const d of devices.filter((d) => d.type === 'dscplus')) await h.services.devices.setState(d.id as string, 'revoked', 'cli');
    expect(await h.services.withdrawals.limitsOfUser(user.id)).toEqual({
      device: 'security_key',
      perDayUsd: 1_000_000,
      fiveBusinessDaysUsd: 1_000_000,
    });
    // W1, D2: this session proved the DSC+, since revoked: it proves nothing any more (the None row) until it verifies again
    expect((await get(h.app, '/api/v1/withdrawal-limits', auth)).body).toEqual({ device: null, perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 });
    expect(keyId).toBeTruthy();
  });
});

describe('D6: the authenticator model allow-list (SLS_SECURITY_KEY_AAGUIDS)', () => {
  const allowed = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('sqlite', { securityKeyAaguids: [allowed] });
  });
  afterAll(async () => {
    await h.close();
  });

  it('a key of another model is refused (403 SECURITY_KEY_MODEL_NOT_ALLOWED, audited); a listed model is registered', async () => {
    const where = relyingPartyOf(h.services.config);
    const { user, card } = await createUserWithCard(h.services);
    const start = await startLogin(h.app, user.username);
    const auth = bearer((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token as string);
    await stepUp(h.app, auth, (challenge) => cardAnswer(card, challenge.question as string));
    for (const [key, status] of [
      [new SoftwareAuthenticator('00000000-0000-0000-0000-000000000001'), 403],
      [new SoftwareAuthenticator(allowed), 201],
    ] as const) {
      const started = await postJson(h.app, '/api/v1/security-keys/registration', {}, auth);
      // an allow-list asks for the model's attestation
      expect(started.body.options.attestation).toBe('direct');
      const made = await postJson(
        h.app,
        '/api/v1/security-keys',
        { name: 'k', state: started.body.state, credential: key.register(started.body.options, where) },
        auth,
      );
      expect(made.status).toBe(status);
      if (status === 403) expect(made.body.error.code).toBe('SECURITY_KEY_MODEL_NOT_ALLOWED');
    }
    const refusal = (await h.services.audit.list({ userId: user.id })).find((e) => e.event === 'device.proof_failed');
    expect(refusal?.data).toMatchObject({ reason: 'model_not_allowed' });
  });

  it('the setting is validated: AAGUIDs only', async () => {
    const { loadConfig } = await import('../src/config.js');
    expect(loadConfig({ SLS_SECURITY_KEY_AAGUIDS: ` ${allowed.toUpperCase()} ,` }).securityKeyAaguids).toEqual([allowed]);
    let refused: unknown;
    try {
      loadConfig({ SLS_SECURITY_KEY_AAGUIDS: 'yubikey' });
    } catch (error) {
      refused = error;
    }
    expect(refused).toMatchObject({ code: 'INVALID_CONFIG', params: { setting: 'SLS_SECURITY_KEY_AAGUIDS' } });
  });
});
