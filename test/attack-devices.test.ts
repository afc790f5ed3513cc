/**
 * Attacks on the second-factor devices, their activation and the mobile
 * authenticator's enrolment, by someone who holds less than they should.
 * Each test names the rule it proves, and failed before its fix.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY, MINUTE } from '../src/clock.js';
import { tokenDisplay } from '../src/cli/token-emulator.js';
import type { ImportedKey } from '../src/devices/types.js';
import type { User } from '../src/identity/users.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, postJson, startLogin } from './support/api.js';
import { issuePasscode } from './support/staff.js';
import { TestPhone, harnessInbox, listen, rejected, smsUser } from './support/phone.js';

describe.each(DATABASES)('attacks on devices (%s)', (database) => {
  let h: Harness;
  let base: string;
  let agentId: string;
  let serials = 0;

  beforeAll(async () => {
    h = await startHarness(database);
    base = await listen(h);
    agentId = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user.id;
  });
  afterAll(async () => {
    await h?.close();
  });

  const phone = () => new TestPhone(base, harnessInbox(h));

  /** D1: staff issue a legacy device (imported from PSKC) to a user who holds it; what it displays for a prompt. */
  async function assignLegacy(user: User, key: Pick<ImportedKey, 'family' | 'algorithm' | 'suite'>) {
    serials += 1;
    const serial = `ATK${String(serials).padStart(4, '0')}${randomBytes(2).toString('hex')}`;
    await h.services.devices.importStock([{ serial, keyId: '1', secret: randomBytes(20), ...key }], 'test', 'attack');
    const { devices, file } = await h.services.devices.assignStock(serial, user.id, 'test');
    const deviceId = devices[0]!.id;
    const display = async (question?: string): Promise<string> => {
      const fileKey = file.keys[0]!;
      if (fileKey.algorithm === 'hotp') {
        const { counter } = await h.services.devices.readSecret<{ counter: number }>(h.services.store.db, deviceId);
        return tokenDisplay({ ...fileKey, counter }, h.clock.now()).code;
      }
      return tokenDisplay(fileKey, h.clock.now(), question).code;
    };
    return { deviceId, display };
  }

  describe('K7, X7: the password and the number on record never move the authenticator of a user who holds a physical device', () => {
    it('K7: migration of a Platinum token holder: the token answers, not an SMS to the number first used (a SIM swap is not enough)', async () => {
      const user = await smsUser(h);
      const victim = phone();
      const old = await victim.activate(user.username);
      const token = await assignLegacy(user, { family: 'hotp', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:hotp' });
      // the attacker: the password, and the number (moved to their SIM)
      const attacker = phone();
      const view = await attacker.start(user.username, 'migrate');
      expect(view).toMatchObject({ proof: 'device', challenge: { type: 'otp' } });
      expect(view.phones).toEqual([]);
      expect((await rejected(attacker.api.sendToken(view, { phoneId: 'phn_aaaaaaaaaaaaaaaaaaaaaaaaaa' }))).code).toBe('FLOW_STATE');
      expect((await h.services.devices.get(old.deviceId)).state).toBe('active');
      // whoever holds the token moves the authenticator
      const moved = await attacker.complete(view, await token.display());
      expect((await h.services.devices.get(old.deviceId)).state).toBe('revoked');
      expect((await h.services.devices.get(moved.deviceId)).state).toBe('active');
    });

    it('K7, K1: activation for a holder of a legacy DSC: the card answers its challenge, not an SMS to the verified number', async () => {
      const user = await smsUser(h);
      const dsc = await assignLegacy(user, { family: 'ocra', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc#ocra', suite: 'OCRA-1:HOTP-SHA1-8:QN06' });
      const app = phone();
      const view = await app.start(user.username, 'activate');
      expect(view).toMatchObject({ proof: 'device', challenge: { type: 'ocra' } });
      const question = (view.challenge as { question: string }).question;
      await app.complete(view, await dsc.display(question));
      const states = (await h.services.devices.listForUser(user.id)).map((d) => `${d.type}:${d.state}`).sort();
      expect(states).toEqual(['dsc:active', 'mobile:active', 'sms:revoked']);
    });
  });

  describe('D4: the online security card', () => {
    it('D4, S2: a card printed but not activated when the permanent device is back is inoperable: it can no longer be activated', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const { passcode } = await issuePasscode(h.services, agentId, user.username);
      const start = await startLogin(h.app, user.username, PASSWORD);
      const token = (await answer(h.app, start.body.id, passcode)).body.session.token as string;
      // the card is shown and printed (a PDF kept in the downloads, a sheet left on the printer) but not activated
      const online = await postJson(h.app, '/api/v1/online-card', {}, bearer(token));
      expect((await postJson(h.app, '/api/v1/online-card/printed', {}, bearer(token))).body.printConfirmed).toBe(true);
      const codes = online.body.codes as string[];
      // the DSC+ is back (D4)
      const dsc = (await get(h.app, '/api/v1/devices', bearer(token))).body.devices.find((d: { type: string }) => d.type === 'dscplus');
      const begin = await postJson(h.app, `/api/v1/devices/${dsc.id}/activation`, {}, bearer(token));
      const back = await postJson(
        h.app,
        `/api/v1/devices/${dsc.id}/activation/${begin.body.id}`,
        { response: cardAnswer(card, begin.body.challenge.question) },
        bearer(token),
      );
      expect(back.body.state).toBe('active');
      expect((await h.services.devices.get(online.body.deviceId)).state).toBe('revoked');
      // whoever holds the session and the printout cannot make the card a second factor for 21 days
      const late = await postJson(h.app, `/api/v1/devices/${online.body.deviceId}/activation`, {}, bearer(token));
      expect(late.status).toBe(409);
      expect(late.body.error.code).toBe('DEVICE_NOT_AVAILABLE');
      const login = await startLogin(h.app, user.username);
      expect(login.body.devices.map((d: { type: string }) => d.type)).toEqual(['dscplus']);
      expect(codes).toHaveLength(120);
    });
  });

  describe('T3, S3: a session never outlives the window of the temporary device that opened it', () => {
    it('T3: a temporary-passcode session opened just before day 2 loses its full access at day 2 (portal and trading); one opened before day 12 ends at day 12', async () => {
      const { user } = await createUserWithCard(h.services);
      const { passcode } = await issuePasscode(h.services, agentId, user.username);
      h.clock.advance(2 * DAY - 10 * MINUTE);
      const sessions: Record<string, string> = {};
      for (const app of ['portal', 'trading'] as const) {
        const start = await startLogin(h.app, user.username, PASSWORD, app);
        const done = await answer(h.app, start.body.id, passcode);
        sessions[app] = done.body.session.token as string;
        expect((await get(h.app, '/api/v1/session', bearer(sessions[app]!))).body.scope).toBe('full');
      }
      h.clock.advance(20 * MINUTE);
      // past day 2: no trading, and in the portal only the online card (a new login says so)
      for (const app of ['portal', 'trading']) expect((await get(h.app, '/api/v1/session', bearer(sessions[app]!))).status).toBe(401);
      const again = await startLogin(h.app, user.username, PASSWORD, 'portal');
      const limited = (await answer(h.app, again.body.id, passcode)).body.session.token as string;
      expect((await get(h.app, '/api/v1/session', bearer(limited))).body.scope).toBe('online_card_only');
      expect((await startLogin(h.app, user.username, PASSWORD, 'trading')).body.error.code).toBe('TEMP_PASSCODE_PORTAL_ONLY');
      // day 12: after that, nothing
      h.clock.advance(10 * DAY - 30 * MINUTE);
      const last = await startLogin(h.app, user.username, PASSWORD, 'portal');
      const token = (await answer(h.app, last.body.id, passcode)).body.session.token as string;
      h.clock.advance(20 * MINUTE);
      expect((await get(h.app, '/api/v1/session', bearer(token))).status).toBe(401);
    });

    it('S3: an online-card session opened just before day 21 ends at day 21', async () => {
      const { user } = await createUserWithCard(h.services);
      const { passcode } = await issuePasscode(h.services, agentId, user.username);
      const first = await startLogin(h.app, user.username, PASSWORD);
      const token = (await answer(h.app, first.body.id, passcode)).body.session.token as string;
      const online = await postJson(h.app, '/api/v1/online-card', {}, bearer(token));
      await postJson(h.app, '/api/v1/online-card/printed', {}, bearer(token));
      const codes = online.body.codes as string[];
      const byIndexes = (indexes: [number, number]) => codes[indexes[0] - 1]! + codes[indexes[1] - 1]!;
      const begin = await postJson(h.app, `/api/v1/devices/${online.body.deviceId}/activation`, {}, bearer(token));
      const done = await postJson(
        h.app,
        `/api/v1/devices/${online.body.deviceId}/activation/${begin.body.id}`,
        { response: byIndexes(begin.body.challenge.indexes) },
        bearer(token),
      );
      expect(done.body.state).toBe('active');
      h.clock.advance(21 * DAY - 10 * MINUTE);
      const sessions: string[] = [];
      for (const app of ['portal', 'trading'] as const) {
        const start = await startLogin(h.app, user.username, PASSWORD, app);
        expect(start.body.device.type).toBe('online_card');
        sessions.push((await answer(h.app, start.body.id, byIndexes(start.body.challenge.indexes))).body.session.token as string);
      }
      h.clock.advance(20 * MINUTE);
      for (const session of sessions) expect((await get(h.app, '/api/v1/session', bearer(session))).status).toBe(401);
    });
  });
  describe('C8, D1: a batch handed to the operator never slips a key of its own into a device already in stock', () => {
    const hotp = { family: 'hotp', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:hotp' } as const;
    const totp = { family: 'totp', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:totp' } as const;
    const ocra = { family: 'ocra', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc#ocra', suite: 'OCRA-1:HOTP-SHA1-8:QN06' } as const;

    it('C8, D1: a hostile batch reusing the serial of a device in stock, as another kind or as a key beside its keys, imports nothing; assigning that serial gives only its own keys', async () => {
      serials += 1;
      const single = `STK${serials}${randomBytes(2).toString('hex')}`;
      const shared = `STK${serials}${randomBytes(2).toString('hex')}S`;
      await h.services.devices.importStock(
        [
          { serial: single, keyId: '1', secret: randomBytes(20), ...ocra },
          { serial: shared, keyId: 'a', secret: randomBytes(20), ...hotp },
          { serial: shared, keyId: 'b', secret: randomBytes(20), ...totp },
        ],
        'test',
        'genuine',
      );
      const before = (await h.services.devices.listAllStock()).length;
      // the attacker wrote these keys: whoever is given the device would hold a key the attacker knows
      for (const hostile of [
        [{ serial: single, keyId: '1', secret: randomBytes(20), ...totp }],
        [{ serial: shared, keyId: 'c', secret: randomBytes(20), ...totp }],
        [{ serial: shared, keyId: 'a', secret: randomBytes(20), ...totp }],
        [{ serial: `${shared}/a`, keyId: '1', secret: randomBytes(20), ...totp }],
      ] satisfies ImportedKey[][]) {
        await expect(h.services.devices.importStock(hostile, 'test', 'hostile'), hostile[0]!.serial).rejects.toMatchObject({ code: 'SERIAL_TAKEN' });
      }
      expect((await h.services.devices.listAllStock()).length).toBe(before);
      const { user } = await createUserWithCard(h.services);
      const { devices } = await h.services.devices.assignStock(shared, user.id, 'test');
      expect(devices.map((d) => d.serial).sort()).toEqual([`${shared}/a`, `${shared}/b`]);
    });
  });
});
