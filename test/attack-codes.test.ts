/**
 * Attacks on the codes themselves and what guessing them costs (L3, L4, T2,
 * T5, S4, D1, O1): someone who holds the password — and perhaps one static
 * right answer (a temporary passcode) or a trading login without a second
 * factor (O1) — tries to guess a device's code more often than the lock
 * allows, or to have a one-time code accepted after a newer one. Each test
 * names the rule it proves, and failed before its fix (or guards a path no
 * other test walks).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MINUTE } from '../src/clock.js';
import { generateHotp } from '../src/crypto/hotp.js';
import type { CardFile } from '../src/devices/devices.js';
import { hotpToken, totpToken } from '../src/devices/otp-token/otp-token.js';
import type { DeviceKind } from '../src/devices/types.js';
import type { User } from '../src/identity/users.js';
import { DATABASES, PASSWORD, cardAnswer, createUser, createUserWithCard, startHarness, wrongAnswer, type Harness } from './support/harness.js';
import { answer, bearer, postJson, startLogin, stepUp, type ApiResponse } from './support/api.js';
import { stepUpStaff } from './support/staff.js';

const TOKEN_KEY = Buffer.from('12345678901234567890');

describe.each(DATABASES)('attacks on the codes and their guesses (%s)', (database) => {
  let h: Harness;
  let agent: { user: User; card: CardFile };

  beforeAll(async () => {
    h = await startHarness(database);
    h.clock.set(Date.UTC(2026, 0, 5, 9, 0, 0));
    agent = await createUserWithCard(h.services, '1234', { role: 'client_services' });
  });
  afterAll(async () => {
    await h?.close();
  });

  async function signIn(user: User, card: CardFile, app: 'portal' | 'trading' = 'portal'): Promise<string> {
    const start = await startLogin(h.app, user.username, PASSWORD, app);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    return done.body.session.token as string;
  }

  /** T1: client services verify the caller and issue a temporary passcode (the user's card is suspended meanwhile). */
  async function issuePasscode(username: string): Promise<string> {
    const token = await stepUpStaff(h.app, await signIn(agent.user, agent.card), agent.card);
    const verified = await postJson(
      h.app,
      `/api/v1/helpdesk/users/${username}/verifications`,
      { method: 'security_questions', notes: 'date of birth' },
      bearer(token),
    );
    expect(verified.status, JSON.stringify(verified.body)).toBe(200);
    const issued = await postJson(h.app, `/api/v1/helpdesk/users/${username}/temporary-passcode`, { verificationId: verified.body.id }, bearer(token));
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    return issued.body.passcode as string;
  }

  /** A wrong answer to a new proof of the device (reactivating it, D4) in the session: the answer's response. */
  async function wrongProofs(headers: Record<string, string>, deviceId: string, card: CardFile, answers: number): Promise<ApiResponse[]> {
    const started = await postJson(h.app, `/api/v1/devices/${deviceId}/activation`, {}, headers);
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    const responses: ApiResponse[] = [];
    for (let i = 0; i < answers; i++) {
      const wrong = wrongAnswer(cardAnswer(card, started.body.challenge.question));
      responses.push(await postJson(h.app, `/api/v1/devices/${deviceId}/activation/${started.body.id}`, { response: wrong }, headers));
    }
    return responses;
  }

  /** A portal login answered wrongly `answers` times. */
  async function wrongLogin(user: User, card: CardFile, answers: number): Promise<ApiResponse[]> {
    const start = await startLogin(h.app, user.username);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const responses: ApiResponse[] = [];
    for (let i = 0; i < answers; i++) responses.push(await answer(h.app, start.body.id, wrongAnswer(cardAnswer(card, start.body.challenge.question))));
    return responses;
  }

  it('L3, T2, D4: a static temporary passcode does not reset the lock: with the password and the passcode, the suspended card is guessed 10 times in 24 hours, not 9 per passcode login', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const passcode = await issuePasscode(user.username);
    const dscplus = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
    expect(dscplus.state).toBe('suspended');
    const passcodeLogin = async () => {
      const start = await startLogin(h.app, user.username);
      if (start.status !== 200) return start;
      return answer(h.app, start.body.id, passcode);
    };

    const first = await passcodeLogin();
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const headers = bearer(first.body.session.token);
    // three proofs of the suspended card, three wrong answers each: 9 guesses
    for (let i = 0; i < 3; i++) for (const r of await wrongProofs(headers, dscplus.id, card, 3)) expect(r.body.error.code).toBe('LOGIN_FAILED');
    expect((await h.services.lockout.status(user.username)).failures).toBe(9);

    // the passcode logs in again (it is right and static): the guesses made with it still count
    const again = await passcodeLogin();
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect((await h.services.lockout.status(user.username)).failures).toBe(9);
    const [tenth] = await wrongProofs(bearer(again.body.session.token), dscplus.id, card, 1);
    expect(tenth!.body.error.code).toBe('LOGIN_FAILED');
    expect((await h.services.lockout.status(user.username)).locked).toBe(true);
    const locked = await passcodeLogin();
    expect([locked.status, locked.body.error?.code]).toEqual([423, 'LOCKED']);
  });

  it('L3, O1: a trading login with the password alone (opted out) does not reset the lock the portal guesses count towards', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const headers = bearer(await signIn(user, card));
    await stepUp(h.app, headers, (challenge) => cardAnswer(card, challenge.question as string));
    const out = await postJson(h.app, '/api/v1/secure-login/opt-out', { acknowledgeRisks: true, confirmation: user.username }, headers);
    expect(out.status, JSON.stringify(out.body)).toBe(200);

    // three portal logins, three wrong card answers each: 9 guesses
    for (let i = 0; i < 3; i++) for (const r of await wrongLogin(user, card, 3)) expect(r.body.error.code).toBe('LOGIN_FAILED');
    // the password alone opens trading (O1): it proved no device, so the guesses still count
    const trading = await startLogin(h.app, user.username, PASSWORD, 'trading');
    expect(trading.body.state, JSON.stringify(trading.body)).toBe('done');
    expect((await h.services.lockout.status(user.username)).failures).toBe(9);
    const [tenth] = await wrongLogin(user, card, 1);
    expect(tenth!.body.error.code).toBe('LOGIN_FAILED');
    expect((await h.services.lockout.status(user.username)).locked).toBe(true);
    const locked = await startLogin(h.app, user.username, PASSWORD, 'trading');
    expect([locked.status, locked.body.error?.code]).toEqual([423, 'LOCKED']);
  });

  /** Answers `codes` at once in logins of their own, each checked before any is taken (as requests a moment apart would be). */
  async function answeredTogether(kind: DeviceKind, username: string, codes: string[]): Promise<ApiResponse[]> {
    const original = kind.checkResponse;
    let arrived = 0;
    let release: () => void = () => undefined;
    const allChecked = new Promise<void>((resolve) => (release = resolve));
    kind.checkResponse = async (...args) => {
      const result = await original.apply(kind, args);
      if (++arrived === codes.length) release();
      await allChecked;
      return result;
    };
    try {
      const flows: ApiResponse[] = [];
      for (const _ of codes) flows.push(await startLogin(h.app, username));
      return await Promise.all(codes.map((code, i) => answer(h.app, flows[i]!.body.id, code)));
    } finally {
      kind.checkResponse = original;
    }
  }

  /** A user holding a token of `family` imported with TOKEN_KEY (6 digits). */
  async function tokenUser(family: 'hotp' | 'totp'): Promise<User> {
    const serial = `${family.toUpperCase()}CODES${database}`;
    const algorithm = `urn:ietf:params:xml:ns:keyprov:pskc:${family}`;
    await h.services.devices.importStock([{ serial, keyId: '1', algorithm, family, secret: TOKEN_KEY, responseLength: 6, counter: 0 }], 'test', 'attack-codes');
    const user = await createUser(h.services);
    await h.services.devices.assignStock(serial, user.id, 'test');
    return user;
  }

  const code = (counter: number) => generateHotp(TOKEN_KEY, counter, { digits: 6 });

  it('L4, D1: two codes of a time-based token answered at once (the current step and the one before): one logs in, the step never goes back', async () => {
    const user = await tokenUser('totp');
    h.clock.advance(MINUTE);
    const step = Math.floor(h.clock.now() / 30_000);
    const results = await answeredTogether(totpToken, user.username, [code(step), code(step - 1)]);
    expect(
      results.filter((r) => r.status === 200),
      JSON.stringify(results.map((r) => r.body)),
    ).toHaveLength(1);
    // whichever won, the step before the current one is no longer accepted
    const later = await startLogin(h.app, user.username);
    expect((await answer(h.app, later.body.id, code(step - 1))).body.error.code).toBe('LOGIN_FAILED');
  });

  it('L4, D1: two codes of an event-based token answered at once (counters 3 and 1 of the look-ahead): one logs in, the counter never goes back', async () => {
    const user = await tokenUser('hotp');
    const results = await answeredTogether(hotpToken, user.username, [code(3), code(1)]);
    expect(
      results.filter((r) => r.status === 200),
      JSON.stringify(results.map((r) => r.body)),
    ).toHaveLength(1);
    // whichever won, counter 1 is no longer accepted, and the counter is past it
    const later = await startLogin(h.app, user.username);
    expect((await answer(h.app, later.body.id, code(1))).body.error.code).toBe('LOGIN_FAILED');
    const device = (await h.services.devices.listForUser(user.id))[0]!;
    expect(((await h.services.devices.readSecret(h.services.store.db, device.id)) as { counter: number }).counter).toBeGreaterThanOrEqual(2);
  });
});
