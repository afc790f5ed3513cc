/**
 * The online security code card and code-card logins (S1–S4, D4, R1): from
 * the temporary passcode to the printed card, its activation, 21 days of
 * full access, and the card's end when the DSC+ is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY, MINUTE } from '../src/clock.js';
import { DATABASES, PASSWORD, cardAnswer, createUser, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, claimOf, get, postJson, startLogin } from './support/api.js';
import type { User } from '../src/identity/users.js';
import type { CardFile } from '../src/devices/devices.js';

let h: Harness;
let agentId: string;

beforeAll(async () => {
  h = await startHarness('sqlite');
  agentId = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user.id;
});
afterAll(async () => {
  await h.close();
});

/** A client whose card is at home: client services issue a temporary passcode (R1). */
async function clientWithPasscode(): Promise<{ user: User; card: CardFile; passcode: string }> {
  const { user, card } = await createUserWithCard(h.services);
  const verification = await h.services.helpDesk.verifyIdentity(agentId, user.username, { method: 'id_document' });
  const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agentId, user.username, { verificationId: verification.id });
  return { user, card, passcode };
}

async function login(
  username: string,
  respond: (challenge: { type: string; indexes?: [number, number]; question?: string }) => string,
  app: 'portal' | 'trading' = 'portal',
) {
  const start = await startLogin(h.app, username, PASSWORD, app);
  if (start.status !== 200) return start;
  return answer(h.app, start.body.id, respond(start.body.challenge));
}

function codesFor(codes: string[]) {
  return (challenge: { indexes?: [number, number] }) => codes[challenge.indexes![0] - 1]! + codes[challenge.indexes![1] - 1]!;
}

/** The whole S2 procedure through the API: get, print, confirm, activate. */
async function activateOnlineCard(token: string): Promise<{ codes: string[]; deviceId: string; expiresAt: string }> {
  const card = await postJson(h.app, '/api/v1/online-card', {}, bearer(token));
  expect(card.status).toBe(200);
  const pdf = await h.app.inject({ method: 'GET', url: '/api/v1/online-card/card.pdf', headers: bearer(token) });
  expect(pdf.statusCode).toBe(200);
  expect(pdf.headers['content-type']).toBe('application/pdf');
  expect(pdf.rawPayload.subarray(0, 5).toString()).toBe('%PDF-');
  expect((await postJson(h.app, '/api/v1/online-card/printed', {}, bearer(token))).body.printConfirmed).toBe(true);
  const begin = await postJson(h.app, `/api/v1/devices/${card.body.deviceId}/activation`, {}, bearer(token));
  expect(begin.status).toBe(200);
  expect(begin.body.challenge).toMatchObject({ type: 'index', indexes: [expect.any(Number), expect.any(Number)] });
  const done = await postJson(
    h.app,
    `/api/v1/devices/${card.body.deviceId}/activation/${begin.body.id}`,
    { response: codesFor(card.body.codes)(begin.body.challenge) },
    bearer(token),
  );
  expect(done.status).toBe(200);
  expect(done.body.state).toBe('active');
  return { codes: card.body.codes, deviceId: card.body.deviceId, expiresAt: done.body.expiresAt };
}

describe('the online security code card (S2, S3)', () => {
  it('S2: a user logged in with a temporary passcode gets the card: 120 codes of 3 digits, the same until activated', async () => {
    const { user, passcode } = await clientWithPasscode();
    const token = (await login(user.username, () => passcode)).body.session.token;
    const first = await postJson(h.app, '/api/v1/online-card', {}, bearer(token));
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ state: 'requested', printConfirmed: false });
    expect(first.body.codes).toHaveLength(120);
    for (const code of first.body.codes) expect(code).toMatch(/^\d{3}$/);
    const again = await postJson(h.app, '/api/v1/online-card', {}, bearer(token));
    expect(again.body.deviceId).toBe(first.body.deviceId);
    const png = await h.app.inject({ method: 'GET', url: '/api/v1/online-card/card.png', headers: bearer(token) });
    expect(png.headers['content-type']).toBe('image/png');
    expect(png.rawPayload.subarray(1, 4).toString()).toBe('PNG');
  });

  it('S2: a user logged in with a permanent device is not offered an online card', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const token = (await login(user.username, (c) => cardAnswer(card, c.question!))).body.session.token;
    const res = await postJson(h.app, '/api/v1/online-card', {}, bearer(token));
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('ONLINE_CARD_NOT_AVAILABLE');
  });

  it('S2: activation needs the printing confirmed, then the codes of two index numbers, and shows the expiry date', async () => {
    const { user, passcode } = await clientWithPasscode();
    const token = (await login(user.username, () => passcode)).body.session.token;
    const card = await postJson(h.app, '/api/v1/online-card', {}, bearer(token));
    const early = await postJson(h.app, `/api/v1/devices/${card.body.deviceId}/activation`, {}, bearer(token));
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('PRINT_NOT_CONFIRMED');
    await postJson(h.app, '/api/v1/online-card/printed', {}, bearer(token));
    const begin = await postJson(h.app, `/api/v1/devices/${card.body.deviceId}/activation`, {}, bearer(token));
    const right = codesFor(card.body.codes)(begin.body.challenge);
    const spaced = await postJson(
      h.app,
      `/api/v1/devices/${card.body.deviceId}/activation/${begin.body.id}`,
      { response: `${right.slice(0, 3)} ${right.slice(3)}` },
      bearer(token),
    );
    expect(spaced.status).toBe(401);
    expect(spaced.body.error.hints).toEqual(['Security card and device codes contain no spaces between the characters.']);
    const done = await postJson(h.app, `/api/v1/devices/${card.body.deviceId}/activation/${begin.body.id}`, { response: right }, bearer(token));
    expect(done.body).toMatchObject({ state: 'active', expiresAt: new Date(h.clock.now() + 21 * DAY).toISOString() });
  });

  it('N1, S2, L8 (decision 0036): an online card activated is told to the user (a new device of full access for 21 days: a session of the passcode, stolen, could activate one of its own), once, by its serial; a second card activated is told again', async () => {
    const { user, passcode } = await clientWithPasscode();
    const token = (await login(user.username, () => passcode)).body.session.token;
    const told = async () => (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'onlineCardActivated');
    expect(await told()).toEqual([]);
    const first = await activateOnlineCard(token);
    const serial = (await h.services.devices.get(first.deviceId)).serial!;
    const once = await told();
    expect(once.length).toBeGreaterThan(0);
    expect(once.map((n) => n.channel)).toEqual([...new Set(once.map((n) => n.channel))]);
    expect(once.every((n) => n.body.includes(serial) && n.body.includes(user.username))).toBe(true);
    await activateOnlineCard(token);
    expect((await told()).length).toBe(once.length * 2);
  });

  it('S1/S3: with the active card, logins show two index numbers; full access to portal and trading for 21 days, then none', async () => {
    const { user, passcode } = await clientWithPasscode();
    const token = (await login(user.username, () => passcode)).body.session.token;
    const { codes } = await activateOnlineCard(token);

    h.clock.advance(3 * DAY); // the passcode no longer opens trading; the card does
    const start = await startLogin(h.app, user.username, PASSWORD, 'trading');
    expect(start.body.devices.map((d: { type: string }) => d.type)).toEqual(['online_card']);
    expect(start.body.challenge).toMatchObject({ type: 'index' });
    const trading = await answer(h.app, start.body.id, codesFor(codes)(start.body.challenge));
    expect(trading.status).toBe(200);
    expect((await get(h.app, '/api/v1/session', bearer(trading.body.session.token))).body.scope).toBe('full');

    h.clock.advance(18 * DAY - MINUTE);
    expect((await login(user.username, codesFor(codes), 'portal')).status).toBe(200);
    h.clock.advance(MINUTE);
    const expired = await startLogin(h.app, user.username, PASSWORD, 'portal');
    expect(expired.status).toBe(403);
    expect(['ONLINE_CARD_EXPIRED', 'TEMP_PASSCODE_EXPIRED']).toContain(expired.body.error.code);
    expect((await startLogin(h.app, user.username, PASSWORD, 'trading')).body.error.code).toBe('ONLINE_CARD_EXPIRED');
  });

  it("L4/S4: starting logins without answering shows the same pending pair; an accepted answer uses up its pair and cells for the card's life", async () => {
    const { user, passcode } = await clientWithPasscode();
    const token = (await login(user.username, () => passcode)).body.session.token;
    const { codes } = await activateOnlineCard(token);
    h.clock.advance(3 * DAY); // past the passcode's trading window: the card is what trading logins offer
    const cells = (indexes: [number, number]) => [...indexes].sort((x, y) => x - y).join('-');
    const pending = await startLogin(h.app, user.username, PASSWORD, 'trading');
    for (let i = 0; i < 5; i++) {
      const again = await startLogin(h.app, user.username, PASSWORD, 'trading');
      expect(cells(again.body.challenge.indexes)).toBe(cells(pending.body.challenge.indexes));
    }
    // the activation used two cells; every accepted answer two more, never asked again
    const used = new Set<number>();
    let start = pending;
    for (let i = 0; i < 10; i++) {
      const indexes = start.body.challenge.indexes as [number, number];
      expect(
        indexes.some((index) => used.has(index)),
        `login ${i}`,
      ).toBe(false);
      expect((await answer(h.app, start.body.id, codesFor(codes)(start.body.challenge))).status).toBe(200);
      for (const index of indexes) used.add(index);
      start = await startLogin(h.app, user.username, PASSWORD, 'trading');
    }
  });

  it('D4: when the DSC+ is reactivated, the online card and the temporary passcode stop working', async () => {
    const { user, card, passcode } = await clientWithPasscode();
    const token = (await login(user.username, () => passcode)).body.session.token;
    await activateOnlineCard(token);
    const [dsc] = (await get(h.app, '/api/v1/devices', bearer(token))).body.devices;
    const begin = await postJson(h.app, `/api/v1/devices/${dsc.id}/activation`, {}, bearer(token));
    const done = await postJson(
      h.app,
      `/api/v1/devices/${dsc.id}/activation/${begin.body.id}`,
      { response: cardAnswer(card, begin.body.challenge.question) },
      bearer(token),
    );
    expect(done.body.state).toBe('active');
    const start = await startLogin(h.app, user.username);
    expect(start.body.devices.map((d: { type: string }) => d.type)).toEqual(['dscplus']);
    const states = (await h.services.devices.listForUser(user.id)).map((d) => [d.type, d.state]);
    expect(states).toEqual(
      expect.arrayContaining([
        ['online_card', 'revoked'],
        ['temp_passcode', 'revoked'],
        ['dscplus', 'active'],
      ]),
    );
    expect((await startLogin(h.app, user.username, PASSWORD, 'trading')).body.devices).toHaveLength(1);
  });

  it('T1, S2: a new temporary passcode ends the online card shown under the one before and never activated: a new passcode, a new card', async () => {
    const { user, passcode } = await clientWithPasscode();
    const token = (await login(user.username, () => passcode)).body.session.token;
    const first = await postJson(h.app, '/api/v1/online-card', {}, bearer(token));
    expect(first.body.state).toBe('requested');
    // the printout may be what was lost: client services issue another passcode
    const verification = await h.services.helpDesk.verifyIdentity(agentId, user.username, { method: 'id_document' });
    const next = await h.services.helpDesk.issueTemporaryPasscode(agentId, user.username, { verificationId: verification.id });
    expect((await h.services.devices.get(first.body.deviceId)).state).toBe('revoked');
    const audit = await h.services.audit.list({ userId: user.id });
    expect(audit.some((e) => e.event === 'device.state_changed' && e.data.deviceId === first.body.deviceId && e.data.to === 'revoked')).toBe(true);
    const again = (await login(user.username, () => next.passcode)).body.session.token;
    const second = await postJson(h.app, '/api/v1/online-card', {}, bearer(again));
    expect(second.status).toBe(200);
    expect(second.body.deviceId).not.toBe(first.body.deviceId);
    expect(second.body.codes).not.toEqual(first.body.codes);
    // the old card cannot be activated any more
    const begin = await postJson(h.app, `/api/v1/devices/${first.body.deviceId}/activation`, {}, bearer(again));
    expect(begin.status).toBeGreaterThanOrEqual(400);
    expect(begin.status).toBeLessThan(500);
  });
  it('S2, S3, L8: activating a new online card ends the one activated before, and the sessions it opened', async () => {
    const { user, passcode } = await clientWithPasscode();
    const token = (await login(user.username, () => passcode)).body.session.token;
    const first = await activateOnlineCard(token);
    h.clock.advance(3 * DAY); // past the passcode's trading window: the card is what trading logins offer
    const opened = await login(user.username, codesFor(first.codes), 'trading');
    expect(opened.status).toBe(200);
    // the passcode session (a new one: the first ended with its 12 hours) prints and activates another card
    const temp = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'temp_passcode' && d.state === 'active')!;
    const withPasscode = await startLogin(h.app, user.username, PASSWORD, 'portal');
    expect((await postJson(h.app, `/api/v1/login/${withPasscode.body.id}`, { device: temp.id }, claimOf(withPasscode))).status).toBe(200);
    const again = (await answer(h.app, withPasscode.body.id, passcode)).body.session.token;
    const second = await activateOnlineCard(again);
    expect(second.deviceId).not.toBe(first.deviceId);
    expect((await h.services.devices.get(first.deviceId)).state).toBe('revoked');
    const audit = await h.services.audit.list({ userId: user.id });
    expect(audit.some((e) => e.event === 'device.state_changed' && e.data.deviceId === first.deviceId && e.data.to === 'revoked')).toBe(true);
    // the first card's session ended; a login offers only the new card
    expect((await get(h.app, '/api/v1/session', bearer(opened.body.session.token))).status).toBe(401);
    const start = await startLogin(h.app, user.username, PASSWORD, 'trading');
    expect(start.body.devices.map((d: { id: string }) => d.id)).toEqual([second.deviceId]);
    expect((await answer(h.app, start.body.id, codesFor(first.codes)(start.body.challenge))).status).toBe(401);
  });
});

describe('the portal only for the online card (T3)', () => {
  it('T3: after day 2 a passcode session may print and activate the card, but not request a DSC+, change a PIN or report a card', async () => {
    const { user, passcode } = await clientWithPasscode();
    await h.services.users.setEquity(user.accountNumber, 5_000_000, 'test');
    h.clock.advance(2 * DAY);
    const token = (await login(user.username, () => passcode)).body.session.token as string;
    expect((await get(h.app, '/api/v1/session', bearer(token))).body.scope).toBe('online_card_only');
    const [dsc] = await h.services.devices.listForUser(user.id);
    const address = { name: 'A', line1: 'B', city: 'C', postalCode: '1', country: 'US' };
    for (const [path, body] of [
      ['/api/v1/dscplus/requests', { address, pin: '1234' }],
      [`/api/v1/devices/${dsc!.id}/lost`, { reason: 'lost' }],
    ] as const) {
      const res = await postJson(h.app, path, body, bearer(token));
      expect(res.status, path).toBe(403);
      expect(res.body.error.code).toBe('SCOPE_ONLINE_CARD_ONLY');
    }
    await activateOnlineCard(token);
  });
});

describe('legacy Security Code Card (S1, D1)', () => {
  it('S1: an imported card logs in with the codes under two index numbers', async () => {
    const { user } = await createUserWithCard(h.services);
    const codes = Array.from({ length: 100 }, (_, i) => String((i * 37) % 1000).padStart(3, '0'));
    const device = await h.services.onlineCards.importSecurityCodeCard(user.id, 'SCC-0042', codes, 'test');
    expect(device).toMatchObject({ type: 'scc', state: 'active', serial: 'SCC-0042' });
    const start = await startLogin(h.app, user.username);
    const switched = await postJson(h.app, `/api/v1/login/${start.body.id}`, { device: device.id }, claimOf(start));
    expect(switched.body.challenge).toMatchObject({ type: 'index' });
    const [a, b] = switched.body.challenge.indexes as [number, number];
    expect(Math.max(a, b)).toBeLessThanOrEqual(100);
    expect((await answer(h.app, start.body.id, codes[a - 1]! + codes[b - 1]!)).status).toBe(200);
    await expect(h.services.onlineCards.importSecurityCodeCard(user.id, 'SCC-0042', codes, 'test')).rejects.toMatchObject({ code: 'SERIAL_TAKEN' });
    await expect(h.services.onlineCards.importSecurityCodeCard(user.id, 'SCC-0043', codes.slice(0, 50), 'test')).rejects.toMatchObject({
      code: 'VALIDATION_ERROR',
    });
  });
});

describe('legacy Security Code Card of repeated codes (S1, S4)', () => {
  it('S1, S4: a card whose codes repeat (100 times the same code; 10 codes in turn) is refused at import: one answer seen would open the next logins; nothing imported', async () => {
    const user = await createUser(h.services);
    for (const [serial, codes] of [
      ['SCC-SAME', Array.from({ length: 100 }, () => '000')],
      ['SCC-TEN', Array.from({ length: 100 }, (_, i) => String(i % 10).padStart(3, '0'))],
    ] as const) {
      await expect(h.services.onlineCards.importSecurityCodeCard(user.id, serial, [...codes], 'test')).rejects.toMatchObject({
        code: 'VALIDATION_ERROR',
        params: { reason: 'scc_repeated' },
      });
    }
    expect(await h.services.devices.listForUser(user.id)).toEqual([]);
    // codes drawn at random repeat a few times: still a card
    const drawn = Array.from({ length: 100 }, (_, i) => String(i < 90 ? i * 7 : i - 90).padStart(3, '0'));
    await h.services.onlineCards.importSecurityCodeCard(user.id, 'SCC-DRAWN', drawn, 'test');
  });
});

describe.each(DATABASES)('the online card under concurrent requests (%s)', (database) => {
  let own: Harness;
  beforeAll(async () => {
    own = await startHarness(database);
  });
  afterAll(async () => {
    await own?.close();
  });

  it('S2: requests for the card at once get one card, the same for all', async () => {
    const agent = (await createUserWithCard(own.services, '1234', { role: 'client_services' })).user.id;
    const { user } = await createUserWithCard(own.services);
    const verification = await own.services.helpDesk.verifyIdentity(agent, user.username, { method: 'id_document' });
    const { passcode } = await own.services.helpDesk.issueTemporaryPasscode(agent, user.username, { verificationId: verification.id });
    const start = await startLogin(own.app, user.username, PASSWORD);
    const token = (await answer(own.app, start.body.id, passcode)).body.session.token;
    const answers = await Promise.all([1, 2, 3, 4].map(() => postJson(own.app, '/api/v1/online-card', {}, bearer(token))));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(new Set(answers.map((a) => a.body.deviceId)).size).toBe(1);
    const cards = (await own.services.devices.listForUser(user.id)).filter((d) => d.type === 'online_card');
    expect(cards).toHaveLength(1);
  });
});
