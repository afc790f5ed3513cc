/**
 * Attacks through the help desk (T1–T5, A5, L3, K14, R2, C6, X7): someone
 * who deceived client services into a temporary passcode, or who holds a
 * help-desk seat, must get no more than the rules give them. Each test
 * names the rule it proves, and failed before its fix (or guards a path no
 * other test walks), on every database.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parsePskc } from '../src/devices/dscplus/pskc.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import type { Role } from '../src/store/schema.js';
import { DATABASES, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, postJson, startLogin, stepUp, type Json } from './support/api.js';
import { Agent, byId, textById } from './support/html.js';
import { cliEnv, sls } from './support/cli.js';
import { stepUpStaff } from './support/staff.js';
import { PASSWORD } from './support/harness.js';

// the CLI case runs `sls` processes
vi.setConfig({ testTimeout: 60_000 });

const ADDRESS = { name: 'M. Stranger', line1: '9 Rue du Faux', city: 'Lyon', postalCode: '69001', country: 'FR' };

describe.each(DATABASES)('attacks through the help desk on %s', (database) => {
  let h: Harness;
  let stock: string[];

  beforeAll(async () => {
    h = await startHarness(database);
    const plain = readFileSync(new URL('./fixtures/pskc/batch-plain.xml', import.meta.url), 'utf8');
    // the batch's cards, under serials of their own, enough for every test
    const keys = Array.from({ length: 4 }, (_, round) => parsePskc(plain).map((key) => ({ ...key, serial: `ATK${round}${key.serial}` }))).flat();
    stock = (await h.services.devices.importStock(keys, 'test', 'batch')).map((d) => d.serial!);
  });
  afterAll(async () => h.close());

  /** A staff member of that role with their own card, and an API session of theirs stepped up with it (V1, X7). */
  async function staffMember(role: Role = 'client_services'): Promise<{ user: User; card: CardFile; headers: Record<string, string> }> {
    const { user, card } = await createUserWithCard(h.services, '1234', { role });
    const start = await startLogin(h.app, user.username);
    const token = (await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token as string;
    await stepUpStaff(h.app, token, card);
    return { user, card, headers: bearer(token) };
  }

  /** A portal session of a client, stepped up with `respond` (a DSC+ request is a security setting, X7). */
  async function clientSession(user: User, respond: (challenge: Json) => string): Promise<Record<string, string>> {
    const start = await startLogin(h.app, user.username);
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const done = await answer(h.app, start.body.id, respond(start.body.challenge));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    const headers = bearer(done.body.session.token as string);
    await stepUp(h.app, headers, respond);
    return headers;
  }

  /**
   * R2: someone who deceived the help desk: a temporary passcode issued to
   * the client's account (the card reported lost), and a session opened and
   * stepped up with it; then a DSC+ requested to the deceiver's address.
   */
  async function requestedUnderTemporaryAccess(agentId: string, address = ADDRESS) {
    const { user, card } = await createUserWithCard(h.services);
    const verification = await h.services.helpDesk.verifyIdentity(agentId, user.username, { method: 'security_questions' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agentId, user.username, { verificationId: verification.id, deviceStatus: 'lost' });
    const headers = await clientSession(user, () => passcode);
    const made = await postJson(h.app, '/api/v1/dscplus/requests', { address, pin: '2468' }, headers);
    expect(made.status, JSON.stringify(made.body)).toBe(200);
    return { user, card, deviceId: made.body.device.id as string };
  }

  const auditOf = async (user: User, event: string) =>
    (await h.services.audit.list({ username: user.username, limit: 100 })).filter((e) => e.event === event).map((e) => e.data as Json);

  // ------------------------------------------------------------------ R2, C6: a replacement ordered under temporary access

  it('R2, C6, T3: a DSC+ requested under a temporary passcode is allowed and marked as such (the device and its device.requested entry); one requested with the permanent card is not', async () => {
    const agent = await staffMember();
    const deceived = await requestedUnderTemporaryAccess(agent.user.id);
    const device = await h.services.devices.get(deceived.deviceId);
    expect(device).toMatchObject({ state: 'requested', params: { request: { temporaryAccess: true, address: { city: 'Lyon', country: 'FR' } } } });
    expect(await auditOf(deceived.user, 'device.requested')).toEqual([expect.objectContaining({ deviceId: deceived.deviceId, temporaryAccess: true })]);

    const { user, card } = await createUserWithCard(h.services);
    const headers = await clientSession(user, (challenge) => cardAnswer(card, challenge.question));
    const made = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, headers);
    expect(made.status).toBe(200);
    expect((await h.services.devices.get(made.body.device.id)).params).toMatchObject({ request: { temporaryAccess: false } });
    expect(await auditOf(user, 'device.requested')).toEqual([expect.objectContaining({ temporaryAccess: false })]);
    // and it ships without any confirmation
    const shipped = await postJson(h.app, `/api/v1/helpdesk/devices/${made.body.device.id}/ship`, { serial: stock.shift() }, agent.headers);
    expect([shipped.status, shipped.body.state]).toEqual([200, 'shipped']);
  });

  it('R2, C6, X7: the help desk API shows the address to confirm and refuses to ship such a card without addressConfirmed (409 ADDRESS_NOT_CONFIRMED, audited, nothing shipped); with it the card ships and the confirmation is audited', async () => {
    const agent = await staffMember();
    const { user, deviceId } = await requestedUnderTemporaryAccess(agent.user.id);

    const seen = await get(h.app, `/api/v1/helpdesk/users/${user.username}`, agent.headers);
    expect(seen.body.devices.find((d: Json) => d.id === deviceId)).toMatchObject({ state: 'requested', addressToConfirm: ADDRESS });
    expect(seen.body.devices.filter((d: Json) => d.id !== deviceId).map((d: Json) => d.addressToConfirm)).toEqual([null, null]);

    const serial = stock.shift()!;
    for (const body of [{ serial }, { serial, addressConfirmed: false }]) {
      const refused = await postJson(h.app, `/api/v1/helpdesk/devices/${deviceId}/ship`, body, agent.headers);
      expect([refused.status, refused.body.error?.code]).toEqual([409, 'ADDRESS_NOT_CONFIRMED']);
      expect(refused.body.error.message).toContain('Lyon');
    }
    expect((await h.services.devices.get(deviceId)).state).toBe('requested');
    expect((await h.services.devices.listStock()).map((d) => d.serial)).toContain(serial);
    const refusal = expect.objectContaining({ deviceId, reason: 'address_not_confirmed', country: 'FR' });
    expect(await auditOf(user, 'device.ship_refused')).toEqual([refusal, refusal]);

    const shipped = await postJson(h.app, `/api/v1/helpdesk/devices/${deviceId}/ship`, { serial, addressConfirmed: true }, agent.headers);
    expect([shipped.status, shipped.body.state]).toEqual([200, 'shipped']);
    const entries = (await h.services.audit.list({ username: user.username, limit: 100 })).filter((e) => e.event === 'device.shipped');
    expect(entries.map((e) => [e.actor, e.data])).toEqual([
      [`staff:${agent.user.id}`, expect.objectContaining({ serial, temporaryAccess: true, addressConfirmed: true })],
    ]);
    // the services refuse the same way (the card cannot be shipped by a caller that forgets the option)
    const other = await requestedUnderTemporaryAccess(agent.user.id);
    await expect(h.services.dscPlusRequests.ship(agent.user.id, other.deviceId, stock[0]!)).rejects.toMatchObject({ code: 'ADDRESS_NOT_CONFIRMED' });
  });

  it('R2, C6, X2: the console warns with the address and asks for the confirmation; a form sent without the box is refused on the page; with it the card ships', async () => {
    const { user: staffUser, card } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const browser = new Agent(h.app);
    const login = await browser.get('/login');
    const started = await browser.submit(login, '/login', { username: staffUser.username, password: PASSWORD, app: 'portal' });
    const challenge = await browser.get(started.location!);
    await browser.submit(challenge, started.location!, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) });
    await stepUpStaff(h.app, browser, card);
    const { user, deviceId } = await requestedUnderTemporaryAccess(staffUser.id);

    const path = `/helpdesk/users/${user.username}`;
    const page = await browser.get(path);
    expect(page.status).toBe(200);
    const warning = textById(page.html, `confirm-address-${deviceId}`);
    expect(warning).toContain('temporary passcode');
    expect(warning).toContain('M. Stranger, 9 Rue du Faux, 69001 Lyon, FR');
    const box = byId(page.html, `address-confirmed-${deviceId}`);
    expect(box?.attrs).toMatchObject({ type: 'checkbox', name: 'addressConfirmed', value: 'yes', required: '' });

    const serial = stock.shift()!;
    const refused = await browser.submit(page, `${path}/devices/${deviceId}/ship`, { serial });
    expect(refused.status).toBe(409);
    expect(byId(refused.html, 'form-error')?.attrs['data-code']).toBe('ADDRESS_NOT_CONFIRMED');
    expect((await h.services.devices.get(deviceId)).state).toBe('requested');

    const shipped = await browser.submit(await browser.get(path), `${path}/devices/${deviceId}/ship`, { serial, addressConfirmed: 'yes' });
    expect(shipped.status, shipped.html).toBe(303);
    expect((await h.services.devices.get(deviceId)).state).toBe('shipped');
    expect(await auditOf(user, 'device.shipped')).toEqual([expect.objectContaining({ addressConfirmed: true })]);
    // shipped, the card has no address to confirm any more
    expect(textById((await browser.get(path)).html, `confirm-address-${deviceId}`)).toBeUndefined();
  });

  it('R2, C6, X7: `sls helpdesk ship` refuses such a card without --address-confirmed (exit 1, one line) and ships it with it', async () => {
    const agent = await staffMember();
    const { deviceId } = await requestedUnderTemporaryAccess(agent.user.id);
    const env = cliEnv(h.database);
    const out = `${h.database.dataDir}/shipped-${deviceId}.json`;
    const serial = stock.shift()!;
    const args = ['helpdesk', 'ship', '--staff', agent.user.username, '--device', deviceId, '--serial', serial, '--out', out];
    const refused = await sls(args, env);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringContaining('Lyon')]);
    expect((await h.services.devices.get(deviceId)).state).toBe('requested');
    const shipped = await sls([...args, '--address-confirmed'], env);
    expect([shipped.code, shipped.stderr]).toEqual([0, '']);
    expect((await h.services.devices.get(deviceId)).state).toBe('shipped');
  });

  it('N1, R2, X2: the dscplusRequested notice names the city and country the card ships to, in en, fr and zh-Hant', async () => {
    const agent = await staffMember();
    const expected = { en: ['Lyon', 'France'], fr: ['Lyon', 'France'], 'zh-Hant': ['Lyon', '法國'] } as const;
    for (const [language, words] of Object.entries(expected)) {
      const { user } = await createUserWithCard(h.services);
      await h.services.noticePreferences.choose(user.id, { language, timeZone: null }, 'test');
      const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'security_questions' });
      const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.user.id, user.username, { verificationId: verification.id });
      const headers = await clientSession(user, () => passcode);
      expect((await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, headers)).status).toBe(200);
      const notices = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'dscplusRequested');
      expect(notices.length).toBeGreaterThan(0);
      for (const notice of notices) {
        expect(notice.language).toBe(language);
        for (const word of words) expect(notice.body, `${language} ${notice.channel}`).toContain(word);
      }
    }
  });
});
