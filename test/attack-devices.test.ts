/**
 * Attacks on the second-factor devices, their activation and the mobile
 * authenticator's enrolment, by someone who holds less than they should.
 * Each test names the rule it proves, and failed before its fix.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenDisplay } from '../src/cli/token-emulator.js';
import type { ImportedKey } from '../src/devices/types.js';
import type { User } from '../src/identity/users.js';
import { ApiError } from '../src/mobile-app/api.js';
import { DATABASES, startHarness, type Harness } from './support/harness.js';
import { TestPhone, harnessInbox, listen, smsUser } from './support/phone.js';

async function rejected(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

describe.each(DATABASES)('attacks on devices (%s)', (database) => {
  let h: Harness;
  let base: string;
  let serials = 0;

  beforeAll(async () => {
    h = await startHarness(database);
    base = await listen(h);
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
      expect((await rejected(attacker.api.sendToken(view.id, { phoneId: 'phn_aaaaaaaaaaaaaaaaaaaaaaaaaa' }))).code).toBe('FLOW_STATE');
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
});
