/**
 * Drivers of the built-in device kinds for the conformance suite
 * (test/device-conformance.test.ts, issue 12 item 6): for each kind, a user
 * who holds only a device of that kind, made the way the product makes one
 * (a card issued, a code card imported, a passcode from client services, a
 * number verified, the app activated, a key registered), and what the user
 * answers to the kind's prompt — right or wrong — read from where the user
 * would read it (the card, the inbox, the phone, the key).
 */
import { expect } from 'vitest';
import type { User } from '../../src/identity/users.js';
import { relyingPartyOf } from '../../src/devices/security-key/security-key.js';
import type { Prompt } from '../../src/devices/types.js';
import { cardAnswer, createUser, createUserWithCard, type Harness, wrongAnswer } from './harness.js';
import { answer, bearer, loginSession, postJson, startLogin, stepUp, withCard, type Json } from './api.js';
import type { CardFile } from '../../src/devices/devices.js';
import { stepUpStaff } from './staff.js';
import { TestPhone, harnessInbox, listen, smsUser } from './phone.js';
import { SoftwareAuthenticator, registerSecurityKey } from './software-authenticator.js';
import { randomBytes } from 'node:crypto';
import { tokenDisplay } from '../../src/cli/token-emulator.js';
import type { ImportedKey } from '../../src/devices/types.js';

/** A user holding only a device of one kind, and how they answer its prompt. */
export interface Holder {
  user: User;
  /** Their one active device. */
  deviceId: string;
  /**
   * The prompt to answer in a login just started (`flow`: its view). Most
   * kinds answer the prompt shown; the mobile authenticator asks for its
   * offline challenge (K4) instead of approving the push.
   */
  answerable(flow: Json): Promise<Json>;
  /** The right answer to a prompt. */
  right(prompt: Json): Promise<string>;
  /** A wrong answer of the right shape (another key's assertion for a security key). */
  wrong(prompt: Json): Promise<string>;
}

export interface KindDriver {
  /** The prompt a login shows first for the kind (what the client must show, L2). */
  prompt: Prompt['type'];
  /** L4: the accepted answer is refused in a new login; false where the kind reuses it by design (T2: the temporary passcode is static). */
  singleUse: boolean;
  /** A new user holding only a device of this kind. */
  holder(h: Harness): Promise<Holder>;
}

/** The user's other active devices step aside (revoked, audited), so that only `keep` is offered. */
export async function onlyDevice(h: Harness, user: User, keep: string): Promise<void> {
  for (const device of await h.services.devices.listForUser(user.id)) {
    if (device.id !== keep && device.state === 'active') await h.services.devices.setState(device.id, 'revoked', 'test', 'conformance: one device');
  }
  const active = (await h.services.devices.listForUser(user.id)).filter((d) => d.state === 'active');
  expect(active.map((d) => d.id)).toEqual([keep]);
}

const shown = async (flow: Json): Promise<Json> => flow.challenge as Json;

/** A digit string with its last digit changed. */
const wrongDigits = (right: string): string => wrongAnswer(right);

/** A portal session opened with a DSC+ (the bearer headers). */
const cardSession = (h: Harness, username: string, card: CardFile) => loginSession(h.app, username, withCard(card));

/** T1: client services verify the caller and issue a temporary passcode, through the help desk's JSON API. */
async function issuePasscode(h: Harness, username: string): Promise<{ passcode: string; deviceId: string }> {
  const { user: agent, card } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
  const staff = await cardSession(h, agent.username, card);
  // V1, X7: staff act after a step-up
  await stepUpStaff(h.app, staff, card);
  const verified = await postJson(h.app, `/api/v1/helpdesk/users/${username}/verifications`, { method: 'id_document' }, staff);
  expect(verified.status, JSON.stringify(verified.body)).toBe(200);
  const issued = await postJson(h.app, `/api/v1/helpdesk/users/${username}/temporary-passcode`, { verificationId: verified.body.id }, staff);
  expect(issued.status, JSON.stringify(issued.body)).toBe(200);
  return { passcode: issued.body.passcode as string, deviceId: issued.body.deviceId as string };
}

/** T2: a passcode of the same alphabet with its last character changed. */
const wrongPasscode = (right: string): string => right.slice(0, -1) + (right.endsWith('A') ? 'B' : 'A');

/** The codes under a code card's two index numbers, one after the other (S1). */
const indexAnswer = (codes: string[], prompt: Json): string => codes[prompt.indexes[0] - 1]! + codes[prompt.indexes[1] - 1]!;

const phones = new WeakMap<Harness, Promise<TestPhone>>();
/** One phone (the app's own code in Node) for a harness; its server listens on a local port. */
function phoneOf(h: Harness): Promise<TestPhone> {
  let phone = phones.get(h);
  if (!phone) {
    phone = listen(h).then((base) => new TestPhone(base, harnessInbox(h)));
    phones.set(h, phone);
  }
  return phone;
}

/** The newest login code sent to a user (the development outbox, as the phone would show it). */
async function lastLoginCode(h: Harness, userId: string): Promise<string> {
  const [message] = (await h.services.notifier.list({ userId })).filter((n) => n.template === 'loginCode');
  expect(message, 'a login code was sent').toBeDefined();
  return /\b(\d{6})\b/.exec(message!.body)![1]!;
}

/** D1: the PSKC keys of the legacy devices: the DSC (OCRA without PIN) and the Platinum / Gold tokens (HOTP, TOTP). */
export const LEGACY_KEYS = {
  dsc: { family: 'ocra', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc#ocra', suite: 'OCRA-1:HOTP-SHA1-8:QN06' },
  token_hotp: { family: 'hotp', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:hotp' },
  token_totp: { family: 'totp', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc:totp', responseLength: 8 },
} as const satisfies Record<string, Pick<ImportedKey, 'family' | 'algorithm' | 'suite' | 'responseLength'>>;

export const BUILT_IN_DRIVERS: Record<string, KindDriver> = {
  dscplus: {
    prompt: 'ocra',
    singleUse: true,
    async holder(h) {
      const { user, card } = await createUserWithCard(h.services);
      const [device] = await h.services.devices.listForUser(user.id);
      return {
        user,
        deviceId: device!.id,
        answerable: shown,
        right: async (prompt) => cardAnswer(card, prompt.question),
        wrong: async (prompt) => wrongDigits(cardAnswer(card, prompt.question)),
      };
    },
  },

  scc: {
    prompt: 'index',
    singleUse: true,
    async holder(h) {
      const user = await createUser(h.services);
      const codes = Array.from({ length: 100 }, (_, i) => String((i * 37 + 11) % 1000).padStart(3, '0'));
      const device = await h.services.onlineCards.importSecurityCodeCard(user.id, `SCC-${user.username}`, codes, 'test');
      return {
        user,
        deviceId: device.id,
        answerable: shown,
        right: async (prompt) => indexAnswer(codes, prompt),
        wrong: async (prompt) => wrongDigits(indexAnswer(codes, prompt)),
      };
    },
  },

  online_card: {
    prompt: 'index',
    singleUse: true,
    async holder(h) {
      // S2: a client with a temporary passcode gets the card, prints it, confirms the print and activates it with its codes
      const { user } = await createUserWithCard(h.services);
      const { passcode, deviceId: passcodeId } = await issuePasscode(h, user.username);
      const start = await startLogin(h.app, user.username);
      const session = bearer((await answer(h.app, start.body.id, passcode)).body.session.token as string);
      const card = await postJson(h.app, '/api/v1/online-card', {}, session);
      expect(card.status, JSON.stringify(card.body)).toBe(200);
      const codes = card.body.codes as string[];
      expect((await postJson(h.app, '/api/v1/online-card/printed', {}, session)).body.printConfirmed).toBe(true);
      const begin = await postJson(h.app, `/api/v1/devices/${card.body.deviceId}/activation`, {}, session);
      const done = await postJson(
        h.app,
        `/api/v1/devices/${card.body.deviceId}/activation/${begin.body.id}`,
        { response: indexAnswer(codes, begin.body.challenge) },
        session,
      );
      expect(done.body.state, JSON.stringify(done.body)).toBe('active');
      // the temporary passcode it grew from is still active (both are temporary, D4): it steps aside here
      expect((await h.services.devices.get(passcodeId)).state).toBe('active');
      await onlyDevice(h, user, card.body.deviceId as string);
      return {
        user,
        deviceId: card.body.deviceId as string,
        answerable: shown,
        right: async (prompt) => indexAnswer(codes, prompt),
        wrong: async (prompt) => wrongDigits(indexAnswer(codes, prompt)),
      };
    },
  },

  temp_passcode: {
    prompt: 'passcode',
    singleUse: false,
    async holder(h) {
      // T1: the card is at home; the help desk issues a passcode and the card is suspended
      const { user } = await createUserWithCard(h.services);
      const { passcode, deviceId } = await issuePasscode(h, user.username);
      await onlyDevice(h, user, deviceId);
      return { user, deviceId, answerable: shown, right: async () => passcode, wrong: async () => wrongPasscode(passcode) };
    },
  },

  sms: {
    prompt: 'sms',
    singleUse: true,
    async holder(h) {
      // M2: a verified number enrols the user in SMS
      const user = await smsUser(h);
      const device = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'sms' && d.state === 'active');
      expect(device, 'enrolled in SMS').toBeDefined();
      await onlyDevice(h, user, device!.id);
      return {
        user,
        deviceId: device!.id,
        answerable: shown,
        right: async () => lastLoginCode(h, user.id),
        wrong: async () => wrongDigits(await lastLoginCode(h, user.id)),
      };
    },
  },

  mobile: {
    prompt: 'push',
    singleUse: true,
    async holder(h) {
      // K1: the app is activated with a token sent to the verified number; the SMS device then steps aside
      const user = await smsUser(h);
      const phone = await phoneOf(h);
      const enrolment = await phone.activate(user.username);
      await onlyDevice(h, user, enrolment.deviceId);
      return {
        user,
        deviceId: enrolment.deviceId,
        // K4: "no notification": the login shows a challenge the app answers offline
        async answerable(flow) {
          // L8: only whoever started the login (its claim token) asks for the offline challenge
          const offline = await postJson(h.app, `/api/v1/login/${flow.id as string}/offline`, {}, { 'x-claim-token': String(flow.claimToken) });
          expect(offline.status, JSON.stringify(offline.body)).toBe(200);
          return offline.body.challenge as Json;
        },
        right: (prompt) => phone.respond(user.username, prompt.question),
        wrong: async (prompt) => wrongDigits(await phone.respond(user.username, prompt.question)),
      };
    },
  },

  security_key: {
    prompt: 'webauthn',
    singleUse: true,
    async holder(h) {
      // X7: registered from the security settings after a step-up with the card; the card then steps aside
      const where = relyingPartyOf(h.services.config);
      const { user, card } = await createUserWithCard(h.services);
      const session = await cardSession(h, user.username, card);
      await stepUp(h.app, session, (challenge) => cardAnswer(card, challenge.question as string));
      const key = new SoftwareAuthenticator();
      const deviceId = await registerSecurityKey(h.app, session, key, where, 'Conformance key');
      await onlyDevice(h, user, deviceId);
      // another key of the same model: its assertions are wrong answers
      const other = new SoftwareAuthenticator(key.aaguid);
      return {
        user,
        deviceId,
        answerable: shown,
        right: async (prompt) => key.assert(prompt.options as { challenge: string }, where),
        wrong: async (prompt) => other.assert(prompt.options as { challenge: string }, where),
      };
    },
  },
  dsc: legacyDriver('ocra', LEGACY_KEYS.dsc),
  token_hotp: legacyDriver('otp', LEGACY_KEYS.token_hotp),
  token_totp: legacyDriver('otp', LEGACY_KEYS.token_totp),
};

let legacySerial = 0;

/**
 * D1: a legacy device imported from a (PSKC) key into the stock and issued
 * to `user` by staff (beside any device they hold); `display` is what the
 * device shows for a prompt, read with the emulator from the issued file —
 * an event-based token at the counter the server expects now (the user
 * presses the button once).
 */
export async function legacyDevice(
  h: Harness,
  user: User,
  key: Pick<ImportedKey, 'family' | 'algorithm' | 'suite' | 'responseLength'>,
): Promise<{ deviceId: string; display: (prompt: Json) => Promise<string> }> {
  legacySerial += 1;
  const serial = `LEG${String(legacySerial).padStart(4, '0')}${randomBytes(2).toString('hex')}`;
  const imported: ImportedKey = { serial, keyId: '1', secret: randomBytes(20), ...key };
  await h.services.devices.importStock([imported], 'test', 'conformance');
  const { devices, file } = await h.services.devices.assignStock(serial, user.id, 'test');
  const deviceId = devices[0]!.id;
  const display = async (prompt: Json): Promise<string> => {
    const fileKey = file.keys[0]!;
    if (fileKey.algorithm === 'hotp') {
      const { counter } = await h.services.devices.readSecret<{ counter: number }>(h.services.store.db, deviceId);
      return tokenDisplay({ ...fileKey, counter }, h.clock.now()).code;
    }
    return tokenDisplay(fileKey, h.clock.now(), prompt.question as string | undefined).code;
  };
  return { deviceId, display };
}

/** D1: a holder of a legacy device alone (`legacyDevice`). */
function legacyDriver(prompt: Prompt['type'], key: Pick<ImportedKey, 'family' | 'algorithm' | 'suite' | 'responseLength'>): KindDriver {
  return {
    prompt,
    singleUse: true,
    async holder(h) {
      const user = await createUser(h.services);
      const { deviceId, display } = await legacyDevice(h, user, key);
      return { user, deviceId, answerable: shown, right: display, wrong: async (prompt) => wrongDigits(await display(prompt)) };
    },
  };
}
