/**
 * A second phone for the tests, in Node: the authenticator app's own
 * protocol and API code (src/mobile-app/protocol.ts, api.ts) with its keys
 * in memory, talking HTTP to a listening server. Activation tokens are read
 * from the development outbox, as a developer would.
 */
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import {
  ApiError,
  AuthenticatorApi,
  type ActivationPurpose,
  type StartedActivation,
  type PollResult,
  type PushRequest,
  type WebAuthnAssertion,
  type WebAuthnRegistration,
} from '../../src/mobile-app/api.js';
import {
  activationMessage,
  answerChallenge,
  answerMessage,
  deriveOcraKey,
  generatePhoneKeys,
  ocraResponse,
  openMessage,
  publicKeys,
  signAnswer,
  type AppKey,
  type PhoneKeys,
  type SealedMessage,
} from '../../src/mobile-app/protocol.js';
import type { User } from '../../src/identity/users.js';
import { PASSWORD, createUser, type Harness } from './harness.js';
import type { SoftwareAuthenticator } from './software-authenticator.js';

export const APP_PIN = 'ab12';

let numbers = 0;
/** A French mobile number of its own, so that tests do not share send limits. */
export function newMobile(): { country: string; number: string } {
  numbers += 1;
  return { country: 'FR', number: `6${String(10_000_000 + numbers * 7919 + Math.floor(Math.random() * 1000)).slice(-8)}` };
}

/** M1: a new number on record for the user, confirmed with the code sent to it; its id. */
export async function verifiedNumber(h: Harness, userId: string, number = newMobile()): Promise<string> {
  const meta = { ip: null, language: 'en' as const };
  const phone = await h.services.phones.add(userId, number, 'test', null);
  await h.services.phones.sendConfirmCode(userId, phone.id, meta);
  const [message] = (await h.services.notifier.list({ userId })).filter((n) => n.template === 'confirmCode');
  await h.services.phones.confirm(userId, phone.id, /\b(\d{6})\b/.exec(message!.body)![1]!, meta);
  return phone.id;
}

/** A user protected by SMS: a verified number, enrolled in SMS (M2). */
export async function smsUser(h: Harness): Promise<User> {
  const user = await createUser(h.services);
  await verifiedNumber(h, user.id);
  return user;
}

export interface Enrolment {
  username: string;
  deviceId: string;
  token: string;
  keys: PhoneKeys;
  ocraKey: AppKey;
  pin: string;
}

/** The server of a harness, listening on a free local port (the app speaks HTTP). */
export async function listen(h: Harness): Promise<string> {
  if (!h.app.server.listening) await h.app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
}

/** The activation token in the newest of a user's messages (from the outbox). */
export function tokenIn(messages: { template: string; body: string }[]): string {
  const message = messages.find((n) => n.template === 'activationToken');
  expect(message, 'an activation token was sent').toBeDefined();
  return /\b(\d{6})\b/.exec(message!.body)![1]!;
}

/** Where the phone's SMS arrive: the development outbox, read as a developer would. */
export interface Inbox {
  activationToken(username: string): Promise<string>;
  /** Lets time pass between messages, so that the newest is told apart. */
  tick(): void;
}

/** The inbox of a test harness: its notifier's outbox and its clock. */
export function harnessInbox(h: Harness): Inbox {
  return {
    activationToken: async (username) => tokenIn(await h.services.notifier.list({ userId: (await h.services.users.getByUsername(username)).id })),
    tick: () => h.clock.advance(1000),
  };
}

export class TestPhone {
  readonly enrolments = new Map<string, Enrolment>();
  readonly api: AuthenticatorApi;

  constructor(
    private readonly base: string,
    private readonly inbox: Inbox,
  ) {
    this.api = new AuthenticatorApi(base, 'en');
  }

  /** Username and password in the app: the activation's first step. */
  start(username: string, purpose: ActivationPurpose = 'activate', password = PASSWORD): Promise<StartedActivation> {
    return this.api.startActivation(username, password, purpose);
  }

  /** The keys made for each activation under way: the phone that proves is the one that finishes. */
  private readonly pending = new Map<string, PhoneKeys>();

  /** The keys of an activation under way (made at its first proof). */
  async keysFor(activationId: string): Promise<PhoneKeys> {
    let keys = this.pending.get(activationId);
    if (!keys) {
      keys = await generatePhoneKeys();
      this.pending.set(activationId, keys);
    }
    return keys;
  }

  /** The activation token (or the device's response), before the PIN (issue 16 item 3). */
  async prove(view: StartedActivation, response: string): Promise<StartedActivation> {
    const keys = await this.keysFor(view.id);
    return this.api.proveActivation(view, { response, ...(await publicKeys(keys)) });
  }

  /**
   * The PIN and the keys of a proven activation, signed by the phone; the enrolment is kept for the username.
   * `biometric`: fingerprint or face confirmation registered too (K3, K12), a platform credential of the app's origin.
   */
  async finish(view: StartedActivation, pin = APP_PIN, biometric?: SoftwareAuthenticator): Promise<Enrolment> {
    const keys = await this.keysFor(view.id);
    const signature = await signAnswer(keys.signing.privateKey, activationMessage(view.id));
    const credential = biometric ? (biometric.register(view.webauthn, this.where()) as unknown as WebAuthnRegistration) : undefined;
    const activated = await this.api.completeActivation(view, {
      pin,
      ...(await publicKeys(keys)),
      signature,
      label: 'Test phone',
      ...(credential ? { credential } : {}),
    });
    this.pending.delete(view.id);
    const enrolment: Enrolment = {
      username: activated.username,
      deviceId: activated.deviceId,
      token: activated.appToken,
      keys,
      ocraKey: await deriveOcraKey(keys.agreement.privateKey, activated.serverKey, activated.salt),
      pin,
    };
    this.enrolments.set(enrolment.username, enrolment);
    return enrolment;
  }

  /** Proves the activation with the response given (unless it is proven), then sets up keys and PIN (and biometric). */
  async complete(view: StartedActivation, response: string, pin = APP_PIN, biometric?: SoftwareAuthenticator): Promise<Enrolment> {
    const current = await this.prove(view, response).catch((error: unknown) => {
      if (error instanceof ApiError && error.code === 'FLOW_STATE') return null;
      throw error;
    });
    return this.finish(current ?? view, pin, biometric);
  }

  /** K1: an activation started, its SMS token sent to the first number on record offered; the token as it arrived. */
  async tokenSent(username: string, purpose: ActivationPurpose = 'activate'): Promise<{ view: StartedActivation; token: string }> {
    const view = await this.start(username, purpose);
    expect(view.proof).toBe('sms');
    this.inbox.tick();
    await this.api.sendToken(view, { phoneId: view.phones[0]!.id });
    return { view, token: await this.inbox.activationToken(username) };
  }

  /** K1: the whole activation by SMS token, to the first number on record offered (a recovery: with the recovery PIN, K8). */
  async activate(username: string, options: { purpose?: ActivationPurpose; pin?: string; biometric?: SoftwareAuthenticator } = {}): Promise<Enrolment> {
    const { view, token } = await this.tokenSent(username, options.purpose);
    return this.complete(view, token, options.pin, options.biometric);
  }

  /** Where the app runs (WebAuthn binds the biometric credential to it): the server's origin. */
  where(): { origin: string; rpId: string } {
    const url = new URL(this.base);
    return { origin: url.origin, rpId: url.hostname };
  }

  private tokens() {
    return [...this.enrolments.values()].map((e) => ({ deviceId: e.deviceId, token: e.token }));
  }

  poll(wait = 0, signal?: AbortSignal): Promise<PollResult> {
    return this.api.poll(this.tokens(), wait, signal);
  }

  /** The push request waiting for a user (fails when none). */
  async request(username: string): Promise<PushRequest> {
    const { requests } = await this.poll();
    const request = requests.find((r) => r.username === username);
    expect(request, `a push request for ${username}`).toBeDefined();
    return request!;
  }

  private enrolment(username: string): Enrolment {
    const enrolment = this.enrolments.get(username);
    if (!enrolment) throw new Error(`${username} is not activated on this phone`);
    return enrolment;
  }

  /** K13: approve with the number typed and the PIN. */
  async approve(request: PushRequest, number: string, pin?: string) {
    const e = this.enrolment(request.username);
    const proof = await ocraResponse(e.ocraKey, request.question, pin ?? e.pin);
    const message = answerMessage(request.id, number, 'approve', proof);
    return this.api.answer(request.id, {
      deviceId: e.deviceId,
      token: e.token,
      decision: 'approve',
      number,
      proof,
      signature: await signAnswer(e.keys.signing.privateKey, message),
    });
  }

  /**
   * K3, K13: the signed approval with biometric confirmation (no PIN: the proof is empty), the assertion with
   * `counter` (the authenticator's next by default). Not sent: `send` it, once or more.
   */
  async biometricApproval(request: PushRequest, number: string, key: SoftwareAuthenticator, counter?: number) {
    const e = this.enrolment(request.username);
    const message = answerMessage(request.id, number, 'approve', '');
    const assertion = JSON.parse(key.assert({ challenge: await answerChallenge(message) }, this.where(), counter)) as WebAuthnAssertion;
    const answer = {
      deviceId: e.deviceId,
      token: e.token,
      decision: 'approve' as const,
      number,
      proof: '',
      signature: await signAnswer(e.keys.signing.privateKey, message),
      assertion,
    };
    return { answer, send: () => this.api.answer(request.id, answer) };
  }

  /** K13: "This wasn't me". */
  async deny(request: PushRequest) {
    const e = this.enrolment(request.username);
    const message = answerMessage(request.id, '', 'deny', '');
    return this.api.answer(request.id, {
      deviceId: e.deviceId,
      token: e.token,
      decision: 'deny',
      number: '',
      proof: '',
      signature: await signAnswer(e.keys.signing.privateKey, message),
    });
  }

  /** K4: the response string to a challenge typed into the app, computed offline. */
  respond(username: string, challenge: string, pin?: string): Promise<string> {
    const e = this.enrolment(username);
    return ocraResponse(e.ocraKey, challenge, pin ?? e.pin);
  }

  /** K14: a message sealed to this phone, opened with the user's agreement key. */
  open(username: string, sealed: SealedMessage): Promise<string> {
    return openMessage(this.enrolment(username).keys.agreement.privateKey, sealed);
  }
}

/** The error a call of the app's API ended with (it must end with one). */
export async function rejected(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}
