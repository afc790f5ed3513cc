/**
 * Activating the mobile authenticator on a phone (K1), moving it to a new
 * phone (K7) and re-enabling it after the app lost its data (K8), entirely
 * on the phone, in one flow:
 *
 *   username + password ──► proof of possession ──► new keys, PIN ──► active
 *        (start)               (prove: "proven")       (complete)
 *
 * The proof is checked on its own, before the PIN is chosen (issue 16 item
 * 3): a right one moves the flow, once, from `second_factor` to `approved`
 * ("token proven"), bound to the phone's public keys named with it and
 * expiring after `mobileActivationProvenTtlMs`; the completion requires that
 * state, the same keys and their signature over the activation's id, and
 * moves it to `done`. A completion without the proof is refused
 * (ACTIVATION_NOT_PROVEN) and counts nothing.
 *
 * The proof of possession (X7: no second factor is bound by the password
 * alone; docs/decisions/0009-recovery-and-enrolment.md):
 * - `sms`: an activation token sent by SMS to a number on record — a
 *   verified one, or, for a user no device protects yet, a number put on
 *   record out of band (at account opening, or by client services after
 *   verifying the caller); migration and recovery send it to the number
 *   first used (K7). No number can be added here;
 * - `device`: a user who has an active physical device (DSC+, legacy DSC,
 *   Platinum or Gold token, code card) — their own, or the one another
 *   username shares with them (H) — answers its challenge instead — a
 *   password alone never moves a stronger protection to a phone (K7).
 *
 * Recovery (K8) proves possession like migration, and the recovery PIN on
 * top (the PIN is kept): a password and a PIN, two things one knows, never
 * become the phone. Wrong recovery PINs are counted on the authenticator,
 * where a login never resets them: each is notified to the user, and after
 * `mobileRecoveryMaxFailures` recovery is blocked (Migrate still works).
 * Each guess is counted before it is compared (a right one is given back),
 * so that guesses sent at once on several proven recoveries never pass it.
 *
 * Each proof admits 3 wrong answers, each counted towards the lock (L3),
 * through the answer protocol (flows/answers.ts). The new device replaces
 * the user's previous authenticator at once (K5: one phone per user; the
 * sessions opened with it end, L8), removes SMS (M3, K9) and ends temporary
 * access (D4).
 */
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { SecretBox } from '../../crypto/secret-box.js';
import type { Notification, Notifier } from '../../notify/notifier.js';
import type { Lockout } from '../../policy/lockout.js';
import type { Sessions } from '../../sessions/sessions.js';
import type { SharedDevices, TemporaryDevices } from '../../flows/ports.js';
import { SlsError } from '../../errors.js';
import { newId, newToken, randomDigits } from '../../crypto/random.js';
import { constantTimeEqual } from '../../crypto/constant-time.js';
import type { AuditLog } from '../../audit/audit-log.js';
import { maskPhone } from '../../delivery/phone.js';
import { translator, type Language } from '../../i18n/i18n.js';
import type { User, Users } from '../../identity/users.js';
import type { FirstFactor } from '../../flows/first-factor.js';
import { completeFlow, findFlow, newFlowRow, verifierContext, type FlowRow } from '../../flows/flow-rows.js';
import { accepted, type Accepted, type Answers } from '../../flows/answers.js';
import type { FlowLimits } from '../../flows/flow-limits.js';
import { deviceTopic, type Signals } from '../../push/signals.js';
import type { Store, Tx } from '../../store/database.js';
import type { Devices } from '../devices.js';
import { SMS_CODE_DIGITS, lossUnconfirmed, type Device, type DeviceKinds, type Phone, type Prompt } from '../types.js';
import { agreeOcraKey, assertNewMobilePin, mobilePinHash, MOBILE_SUITE, publicKeyOf, verifyAnswer, type PublicJwk } from './keys.js';
import { activationMessage } from '../../mobile-app/protocol.js';
import type { MobileParams, MobileSecret } from './mobile.js';
import { appTokenHash } from './push-requests.js';
import { registrationOptions, verifyRegistration, type StoredCredential, type WebOrigin } from './webauthn.js';
import type { SecuritySettingsRights } from '../../identity/security-rights.js';

export type ActivationPurpose = 'activate' | 'migrate' | 'recover';
type Proof = 'sms' | 'device';

export interface PhoneChoice {
  id: string;
  number: string;
  verified: boolean;
}

type ActivationChallenge =
  | { type: 'sms'; to: string; channel: 'sms'; delivery: 'sent' | 'failed'; resendAfter: string; digits: number }
  | Extract<Prompt, { type: 'ocra' } | { type: 'index' } | { type: 'otp' } | { type: 'webauthn' }>;

export interface ActivationView {
  id: string;
  purpose: ActivationPurpose;
  username: string;
  proof: Proof;
  phones: PhoneChoice[];
  challenge: ActivationChallenge | null;
  expiresAt: string;
  attemptsLeft: number;
  /** The proof of possession was accepted: the PIN comes next (issue 16 item 3). */
  proven: boolean;
  webauthn: Awaited<ReturnType<typeof registrationOptions>>;
}

/**
 * An activation just started. L8: `claimToken` is given only to whoever
 * entered the password: the token, the proof and the completion need it
 * (the flow keeps its keyed digest), so that the activation's id alone is
 * worth nothing.
 */
export type StartedActivation = ActivationView & { claimToken: string };

export interface ProveInput {
  /** The activation token, or the physical device's answer. */
  response: string;
  /** The phone's public keys: only the phone that proves finishes. */
  signingKey: PublicJwk;
  agreementKey: PublicJwk;
}

export interface CompleteInput {
  pin: string;
  signingKey: PublicJwk;
  agreementKey: PublicJwk;
  /** The signing key's signature over activationMessage(id). */
  signature: string;
  label?: string | undefined;
  credential?: unknown;
}

export interface Activated {
  deviceId: string;
  username: string;
  serverKey: PublicJwk;
  salt: string;
  suite: string;
  appToken: string;
  biometric: boolean;
  credentialId: string | null;
}

export interface EnrolmentMeta {
  ip: string | null;
  userAgent: string | null;
  language: Language;
}

/** What the client is shown, kept as the flow's prompt. */
interface ActivationState {
  purpose: ActivationPurpose;
  proof: Proof;
  phones: PhoneChoice[];
  challenge: ActivationChallenge | null;
}

/** What checks the proof, sealed to the flow. */
interface ActivationVerifier {
  webauthnChallenge: string;
  /** The physical device's challenge verifier (proof `device`). */
  device?: Record<string, unknown>;
  /** The activation token in flight (proof `sms`): its digest, number, end and when it was sent. */
  token?: { digest: string; phoneId: string; expiresAt: number; sentAt: number };
  /** The proof was accepted for these public keys (a digest), at this time. */
  proven?: { keys: string; at: number };
}

const LABEL_MAX = 64;

/** What the enrolment needs; the composition root passes them (other kinds' parts as small interfaces). */
export interface EnrolmentDeps {
  store: Store;
  clock: Clock;
  config: Config;
  box: SecretBox;
  audit: AuditLog;
  users: Users;
  devices: Devices;
  /** The registry of device kinds: a migration is proven with a physical device (K7). */
  deviceKind: DeviceKinds;
  lockout: Lockout;
  notifier: Notifier;
  sessions: Sessions;
  signals: Signals;
  /** K7: the user's mobile numbers (src/devices/sms/phones.ts). */
  phones: { list(userId: string): Promise<Phone[]>; get(userId: string, phoneId: string): Promise<Phone> };
  /** K7: the activation token sent by SMS within the send limits (src/devices/sms/codes.ts). */
  smsCodes: {
    send(message: {
      userId: string;
      to: string;
      channel: 'sms';
      template: 'activationToken';
      code: string;
      language: Language;
    }): Promise<Pick<Notification, 'status'>>;
  };
  firstFactor: FirstFactor;
  helpDesk: TemporaryDevices;
  answers: Answers;
  flowLimits: FlowLimits;
  /** A2: activating, moving or recovering the authenticator changes the security settings. */
  rights: SecuritySettingsRights;
  /** H, K7: the physical device another username shares with the user protects them as their own: it answers instead of an SMS token. */
  sharedDevices?: Pick<SharedDevices, 'sharedWith'>;
}

export class MobileEnrolment {
  constructor(private readonly deps: EnrolmentDeps) {}

  private sealContext(flowId: string): string {
    return verifierContext('mobile_activation', flowId);
  }

  /**
   * The activation at a step: `second_factor`, waiting for its proof, or
   * `approved`, its proof accepted and waiting for the PIN and the keys. At
   * the other step it says which (proven already, or not proven yet); ended
   * or expired, FLOW_EXPIRED.
   */
  private async row(
    flowId: string,
    claimToken: string | undefined,
    meta: { ip: string | null },
    action: 'token' | 'proof' | 'complete',
    step: 'second_factor' | 'approved' = 'second_factor',
  ): Promise<FlowRow> {
    const row = await findFlow(this.deps.store.db, flowId, 'mobile_activation');
    // L8: only for whoever started the activation; without its claim token, as for an unknown id, before anything is sent or counted
    if (!this.holdsClaim(row, claimToken)) {
      await this.deps.audit.record({
        event: 'mobile.claim_refused',
        userId: row.user_id,
        username: row.username,
        ip: meta.ip,
        data: { flowId, action },
      });
      throw new SlsError('FLOW_NOT_FOUND');
    }
    if (row.expires_at <= this.deps.clock.now()) throw new SlsError('FLOW_EXPIRED');
    if (row.state === step) return row;
    if (row.state === 'approved') throw new SlsError('FLOW_STATE', { reason: 'proven' });
    if (row.state === 'second_factor') throw new SlsError('ACTIVATION_NOT_PROVEN');
    throw new SlsError('FLOW_EXPIRED');
  }

  /** L8: whether the token is the activation's claim token (compared by its keyed digest, in constant time). */
  private holdsClaim(row: FlowRow, claimToken: string | undefined): boolean {
    return claimToken !== undefined && claimToken !== '' && row.claim_hash !== null && constantTimeEqual(this.claimHash(claimToken), row.claim_hash);
  }

  private claimHash(claimToken: string): string {
    return this.deps.box.digest(claimToken, 'mobile-activation-claim');
  }

  /** What binds a proof to the phone that gave it: a digest of its two public keys. */
  private keysDigest(flowId: string, keys: { signingKey: PublicJwk; agreementKey: PublicJwk }): string {
    publicKeyOf(keys.signingKey, 'signingKey');
    publicKeyOf(keys.agreementKey, 'agreementKey');
    const text = [keys.signingKey.x, keys.signingKey.y, keys.agreementKey.x, keys.agreementKey.y].join('.');
    return this.deps.box.digest(text, `${this.sealContext(flowId)}:keys`);
  }

  private async view(row: FlowRow, where: WebOrigin): Promise<ActivationView> {
    const state = JSON.parse(row.prompt!) as ActivationState;
    const verifier = this.deps.box.openJson<ActivationVerifier>(row.verifier!, this.sealContext(row.id));
    return {
      id: row.id,
      purpose: state.purpose,
      username: row.username,
      proof: state.proof,
      phones: state.phones,
      challenge: state.challenge,
      expiresAt: new Date(row.expires_at).toISOString(),
      attemptsLeft: this.deps.config.policy.challengeMaxAttempts - row.attempts,
      proven: row.state === 'approved',
      webauthn: await registrationOptions(where, translator(this.deps.config.defaultLanguage)('web.productName'), row.username, verifier.webauthnChallenge),
    };
  }

  private async activeMobile(userId: string): Promise<Device | null> {
    return (await this.deps.devices.listForUser(userId)).find((d) => d.type === 'mobile' && d.state === 'active') ?? null;
  }

  /**
   * Whether a device other than SMS protects the user, or will, or did until
   * it was lost or suspended (all but the final states). SMS is left to the
   * numbers: its protection is a verified number.
   */
  private async hasAnyDevice(userId: string): Promise<boolean> {
    const found = await this.deps.store.db
      .selectFrom('devices')
      .select('id')
      .where('user_id', '=', userId)
      .where('type', '!=', 'sms')
      .where('state', 'in', ['requested', 'shipped', 'active', 'suspended', 'lost'])
      .executeTakeFirst();
    return found !== undefined;
  }

  /**
   * The numbers an activation token may go to (X7): migration and recovery
   * the number first used, while it is on record (K7); otherwise the
   * verified numbers — and, for a user no verified number and no device
   * protects, the numbers put on record out of band (at account opening,
   * by client services), which the token itself verifies (M2). A device
   * suspended, lost or on its way still protects: with it, the password
   * alone never brings a phone in (R2).
   */
  private async phoneChoices(user: User, purpose: ActivationPurpose, current: Device | null): Promise<PhoneChoice[]> {
    const phones = await this.deps.phones.list(user.id);
    const choice = (p: (typeof phones)[number]): PhoneChoice => ({ id: p.id, number: p.masked, verified: p.verified });
    if (purpose !== 'activate') {
      const original = phones.find((p) => p.id === (current?.params as unknown as MobileParams | undefined)?.phoneId);
      if (original) return [choice(original)];
    }
    const verified = phones.filter((p) => p.verified);
    const unprotected = verified.length === 0 && !(await this.hasAnyDevice(user.id));
    return (unprotected ? phones : verified).map(choice);
  }

  /** Step 1: username and password (L1, L3), then the proof the user must give. */
  async start(input: { username: string; password: string; purpose: ActivationPurpose } & EnrolmentMeta, where: WebOrigin): Promise<StartedActivation> {
    const { clock, box, devices, lockout, audit, config } = this.deps;
    const { user, attempt, checked } = await this.deps.firstFactor.check({ ...input, purpose: 'mobile_activation' });
    let row: FlowRow;
    const claimToken = newToken();
    try {
      // A2: told only after the password, so that the notice names nobody to a stranger
      await this.deps.rights.assertMayChange(user.id, { action: `mobile_activation:${input.purpose}`, ip: input.ip });
      const current = await this.activeMobile(user.id);
      if (input.purpose === 'activate' && current) throw new SlsError('MOBILE_ALREADY_ACTIVE');
      if (input.purpose !== 'activate' && !current) throw new SlsError('MOBILE_NOT_ACTIVE');
      // K7: an active physical device (the kind's `physical`) — H: the one shared with the user too —, else a security key
      // (`provesPossession`, D6), answers instead of an SMS token: a password and a number on record never move its protection to a phone
      // D2 (decision 0033): of those, one at least as strong as the authenticator or as the strongest of them: a code card
      // never answers for a user a security key protects (the password and the grid bind no phone a key would refuse)
      const shared = await this.deps.sharedDevices?.sharedWith(user.id);
      const kind = this.deps.deviceKind;
      const provers = [...(shared ? [shared] : []), ...(await devices.activeForUser(user.id, null))].filter(
        (d) => kind(d.type).physical === true || kind(d.type).provesPossession === true,
      );
      const needed = Math.min(kind('mobile').strength, Math.max(0, ...provers.map((d) => kind(d.type).strength)));
      const strongEnough = provers.filter((d) => kind(d.type).strength >= needed);
      const physical = strongEnough.find((d) => kind(d.type).physical === true) ?? strongEnough.find((d) => kind(d.type).provesPossession === true);
      const verifier: ActivationVerifier = { webauthnChallenge: newToken() };
      let state: ActivationState;
      let deviceId: string | null = null;
      if (input.purpose === 'recover') this.assertRecoveryOpen(current!);
      if (physical) {
        const challenge = await this.deps.deviceKind(physical.type).issueChallenge(await devices.context(physical));
        verifier.device = challenge.verifier;
        deviceId = physical.id;
        state = { purpose: input.purpose, proof: 'device', phones: [], challenge: challenge.prompt as ActivationChallenge };
      } else {
        // R2, K7 (decision 0023): a physical device the user reported lost from a weaker proof, within the wait, still
        // stands in the way of an SMS token: the password and a SIM never report a DSC+ lost and bring in a phone at once
        const now = clock.now();
        const pending = (await devices.listForUser(user.id)).find(
          (d) => lossUnconfirmed(d, now) && (this.deps.deviceKind(d.type).physical === true || this.deps.deviceKind(d.type).provesPossession === true),
        );
        if (pending) throw new SlsError('STRONGER_DEVICE_REQUIRED', { reason: 'loss_unconfirmed' });
        // X7, D2 (decision 0035): a staff member's authenticator is what their help-desk seat acts on (decision 0028): the
        // staff password and a SIM never move it, nor recover it, to another phone by an SMS token (an admin does, decision 0010)
        if (input.purpose !== 'activate' && user.role !== 'client') {
          await audit.record({
            event: 'mobile.activation_refused',
            actor: `user:${user.id}`,
            userId: user.id,
            username: user.username,
            ip: input.ip,
            data: { purpose: input.purpose, proof: 'sms', code: 'STRONGER_DEVICE_REQUIRED', reason: 'staff_mobile' },
          });
          throw new SlsError('STRONGER_DEVICE_REQUIRED', { reason: 'staff_mobile' });
        }
        state = { purpose: input.purpose, proof: 'sms', phones: await this.phoneChoices(user, input.purpose, current), challenge: null };
        if (state.phones.length === 0) throw new SlsError('NO_ACTIVE_DEVICE', { reason: 'no_number' });
      }
      const now = clock.now();
      const id = newId('flw');
      row = newFlowRow({
        id,
        kind: 'mobile_activation',
        app: 'portal',
        username: user.username,
        userId: user.id,
        deviceId,
        prompt: state as unknown as Prompt,
        sealedVerifier: box.sealJson(verifier, this.sealContext(id)),
        now,
        expiresAt: now + config.policy.mobileActivationTtlMs,
        ip: input.ip,
        userAgent: input.userAgent,
        sessionId: null,
        claimHash: this.claimHash(claimToken),
      });
    } catch (error) {
      await lockout.release(attempt);
      if (error instanceof SlsError && error.code === 'RECOVERY_BLOCKED') await this.recoveryRefused(user.id, user.username, input.ip, null);
      throw error;
    }
    try {
      await this.deps.flowLimits.insert(row, async (trx) => {
        // A4, L8: a password changed or reset since it was checked starts no activation
        await this.deps.firstFactor.assertStillCurrent(trx, checked, input.ip, 'mobile_activation');
        await lockout.release(attempt, trx);
      });
    } catch (error) {
      await lockout.release(attempt);
      await this.deps.firstFactor.auditChanged(error);
      throw error;
    }
    const state = JSON.parse(row.prompt!) as ActivationState;
    await audit.record({
      event: 'mobile.activation_started',
      userId: user.id,
      username: user.username,
      ip: input.ip,
      data: { flowId: row.id, purpose: state.purpose, proof: state.proof },
    });
    return { ...(await this.view(row, where)), claimToken };
  }

  /** Step 2 (proof `sms`): the activation token, by SMS to a number on record (K1). */
  async sendToken(flowId: string, claimToken: string | undefined, to: { phoneId: string }, meta: EnrolmentMeta, where: WebOrigin): Promise<ActivationView> {
    const { store, clock, box, phones, smsCodes, audit, config } = this.deps;
    const row = await this.row(flowId, claimToken, meta, 'token');
    const state = JSON.parse(row.prompt!) as ActivationState;
    if (state.proof !== 'sms') throw new SlsError('FLOW_STATE', { reason: 'not_sms' });
    const verifier = box.openJson<ActivationVerifier>(row.verifier!, this.sealContext(flowId));
    const now = clock.now();
    if (verifier.token && verifier.token.sentAt + config.policy.smsLoginResendMs > now) {
      throw new SlsError('SMS_TOO_SOON', { retryAfter: new Date(verifier.token.sentAt + config.policy.smsLoginResendMs).toISOString() });
    }
    if (!state.phones.some((p) => p.id === to.phoneId)) throw new SlsError('PHONE_NOT_FOUND');
    const phoneId = to.phoneId;
    const phone = await phones.get(row.user_id, phoneId);
    const token = randomDigits(SMS_CODE_DIGITS);
    verifier.token = { digest: box.digest(token, this.sealContext(flowId)), phoneId, expiresAt: now + config.policy.smsCodeTtlMs, sentAt: now };
    // claims the send: of concurrent requests one sends a token, the others find the flow changed
    const claimed = await store.db
      .updateTable('login_flows')
      .set({ verifier: box.sealJson(verifier, this.sealContext(flowId)), updated_at: now })
      .where('id', '=', flowId)
      .where('updated_at', '=', row.updated_at)
      .where('state', '=', 'second_factor')
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) throw new SlsError('SMS_TOO_SOON', { retryAfter: new Date(now + config.policy.smsLoginResendMs).toISOString() });
    const sent = await smsCodes.send({
      userId: row.user_id,
      to: phone.e164,
      channel: 'sms',
      template: 'activationToken',
      code: token,
      language: meta.language,
    });
    state.challenge = {
      type: 'sms',
      to: maskPhone(phone.e164),
      channel: 'sms',
      delivery: sent.status === 'sent' ? 'sent' : 'failed',
      resendAfter: new Date(now + config.policy.smsLoginResendMs).toISOString(),
      digits: SMS_CODE_DIGITS,
    };
    await store.db
      .updateTable('login_flows')
      .set({ prompt: JSON.stringify(state) })
      .where('id', '=', flowId)
      .execute();
    await audit.record({
      event: 'mobile.token_sent',
      userId: row.user_id,
      username: row.username,
      ip: meta.ip,
      data: { flowId, phoneId, delivery: state.challenge.delivery },
    });
    return this.view({ ...row, prompt: JSON.stringify(state), updated_at: now }, where);
  }

  /**
   * Step 3: the activation token, or the physical device's answer, checked
   * before the PIN is chosen (issue 16 item 3). A wrong one takes one of the
   * flow's 3 answers and counts towards the lock (L3), audited; a right one
   * moves the flow once to "proven" for the keys named with it: of copies
   * sent at once, one is accepted and the others count nothing (410
   * FLOW_EXPIRED). A device's answer is single-use on the device (L4).
   */
  async prove(flowId: string, claimToken: string | undefined, input: ProveInput, meta: EnrolmentMeta, where: WebOrigin): Promise<ActivationView> {
    const { box, clock, config, audit, store } = this.deps;
    const row = await this.row(flowId, claimToken, meta, 'proof');
    const state = JSON.parse(row.prompt!) as ActivationState;
    const verifier = box.openJson<ActivationVerifier>(row.verifier!, this.sealContext(flowId));
    // what the phone sends is checked before the proof takes one of the answers
    const keys = this.keysDigest(flowId, input);
    const actor = `user:${row.user_id}`;
    // X2: a wrong answer is told the hints of what gave it (a security key's, a card's); an SMS token's none
    const hints = state.proof === 'device' ? this.deps.deviceKind((await this.deps.devices.get(row.device_id!)).type).failureHints : [];
    try {
      await this.deps.answers.answerFlow({
        row,
        deviceType: 'mobile',
        ip: meta.ip,
        actor,
        failed: { event: 'mobile.activation_failed', data: { purpose: state.purpose, proof: state.proof, step: 'proof' } },
        hints,
        check: () => this.checkPossession(row, state, verifier, input.response),
        accept: async (trx) => {
          await this.assertProofStands(trx, row, verifier);
          const now = clock.now();
          const proven = await trx
            .updateTable('login_flows')
            .set({
              state: 'approved',
              // the PIN's answers are counted afresh (a recovery PIN, K8)
              attempts: 0,
              verifier: box.sealJson({ ...verifier, proven: { keys, at: now } } satisfies ActivationVerifier, this.sealContext(flowId)),
              expires_at: now + config.policy.mobileActivationProvenTtlMs,
              updated_at: now,
            })
            .where('id', '=', flowId)
            .where('state', '=', 'second_factor')
            .executeTakeFirst();
          if (Number(proven.numUpdatedRows) !== 1) return null;
          await audit.append(trx, [
            {
              event: 'mobile.token_proven',
              actor,
              userId: row.user_id,
              username: row.username,
              ip: meta.ip,
              data: { flowId, purpose: state.purpose, proof: state.proof },
            },
          ]);
          return true;
        },
      });
    } catch (error) {
      throw proofFailed(error, state.proof);
    }
    return this.view(await findFlow(store.db, flowId, 'mobile_activation'), where);
  }

  /** Whether the proof of possession is right; a device's answer, with the keys that make it single-use. */
  private async checkPossession(row: FlowRow, state: ActivationState, verifier: ActivationVerifier, response: string): Promise<Accepted | null> {
    const { devices, box, clock } = this.deps;
    if (state.proof === 'sms') {
      const token = verifier.token;
      const ok = token !== undefined && token.expiresAt > clock.now() && constantTimeEqual(box.digest(response, this.sealContext(row.id)), token.digest);
      return ok ? { replay: null } : null;
    }
    // L8, H: still active, and still the user's own or shared with them
    const device = await devices.usableBy(row.device_id!, row.user_id);
    if (!device) throw new SlsError('DEVICE_NOT_AVAILABLE');
    const check = await this.deps.deviceKind(device.type).checkResponse(await devices.context(device), verifier.device ?? {}, response);
    return check.ok ? accepted(device, check, row.id) : null;
  }

  /**
   * X7, L8: what proved possession still stands, read under the audit lock
   * that a device reported lost and a number removed take too
   * (docs/decisions/0016): the physical device still active and still the
   * user's own or shared with them (H), the number the activation token
   * went to still on record. Either gone since, the proof proves nothing:
   * the activation neither moves on nor binds a phone.
   */
  private async assertProofStands(trx: Tx, row: FlowRow, verifier: ActivationVerifier): Promise<void> {
    if (verifier.token) {
      const phone = await trx.selectFrom('phones').select('id').where('id', '=', verifier.token.phoneId).where('user_id', '=', row.user_id).executeTakeFirst();
      if (!phone) throw new SlsError('PHONE_NOT_FOUND');
    } else if (row.device_id) {
      if (!(await this.deps.devices.usableBy(row.device_id, row.user_id, trx))) throw new SlsError('DEVICE_NOT_AVAILABLE');
    }
  }

  /**
   * K8: whether the recovery PIN is the authenticator's PIN (its hash,
   * compared in constant time). Each guess first takes one of the
   * `mobileRecoveryMaxFailures`, so that guesses sent at once on several
   * proven recoveries are counted exactly; a right PIN gives its guess back.
   * Wrong: the count it reached, for the audit.
   */
  private async recoveryPinOk(userId: string, pin: string): Promise<{ ok: true } | { ok: false; deviceId: string; failures: number }> {
    const current = await this.activeMobile(userId);
    if (!current) throw new SlsError('MOBILE_NOT_ACTIVE');
    const pinHash = (await this.deps.devices.context(current)).secret<MobileSecret>().pinHash;
    // RECOVERY_BLOCKED here, read afresh: other recoveries' guesses may have reached the max since this one started
    const failures = await this.countRecoveryGuess(current.id, +1);
    if (failures === null) throw new SlsError('MOBILE_NOT_ACTIVE');
    const hash = mobilePinHash(pin);
    if (hash !== null && constantTimeEqual(hash, pinHash)) {
      // a right PIN is no failure: its guess is given back before it is accepted (should that fail, it stays counted)
      await this.countRecoveryGuess(current.id, -1);
      return { ok: true };
    }
    return { ok: false, deviceId: current.id, failures };
  }

  /**
   * K8: the authenticator's count of wrong recovery PINs, read and changed
   * in one transaction under the audit lock (one for every process): +1
   * takes a guess before the PIN is compared (RECOVERY_BLOCKED at the max),
   * -1 gives a right PIN's back. The count reached; null when the
   * authenticator was replaced meanwhile.
   */
  private async countRecoveryGuess(deviceId: string, by: 1 | -1): Promise<number | null> {
    const max = this.deps.config.policy.mobileRecoveryMaxFailures;
    return this.deps.store.serialized('audit_log', async (trx) => {
      const device = await trx.selectFrom('devices').select('params').where('id', '=', deviceId).where('state', '=', 'active').executeTakeFirst();
      if (!device) return null;
      const params = JSON.parse(device.params) as MobileParams;
      const failures = params.recoveryFailures ?? 0;
      if (by > 0 && failures >= max) throw new SlsError('RECOVERY_BLOCKED');
      const counted = Math.max(0, failures + by);
      await trx
        .updateTable('devices')
        .set({ params: JSON.stringify({ ...params, recoveryFailures: counted }) })
        .where('id', '=', deviceId)
        .execute();
      return counted;
    });
  }

  /**
   * Step 4, once the proof is accepted: the PIN (a new one; for a recovery,
   * the recovery PIN) and the phone's public keys, the same as at the proof,
   * with their signature. The new authenticator replaces the user's previous
   * one, removes SMS and ends temporary access, in one transaction.
   */
  async complete(flowId: string, claimToken: string | undefined, input: CompleteInput, meta: EnrolmentMeta, where: WebOrigin): Promise<Activated> {
    const { clock, box, users } = this.deps;
    const row = await this.row(flowId, claimToken, meta, 'complete', 'approved');
    const state = JSON.parse(row.prompt!) as ActivationState;
    const verifier = box.openJson<ActivationVerifier>(row.verifier!, this.sealContext(flowId));
    const recovering = state.purpose === 'recover';
    // what the phone sends is checked before an answer is taken
    if (!recovering) assertNewMobilePin(input.pin);
    const pinHash = mobilePinHash(input.pin);
    if (pinHash === null) throw new SlsError('INVALID_PIN', { reason: 'length' });
    // the phone that proved finishes: the same keys, and it holds the signing key
    const keys = this.keysDigest(flowId, input);
    if (!verifier.proven || !constantTimeEqual(keys, verifier.proven.keys) || !verifyAnswer(input.signingKey, activationMessage(flowId), input.signature)) {
      throw new SlsError('ACTIVATION_NOT_PROVEN', { reason: 'keys' });
    }
    const credential: StoredCredential | null =
      input.credential === undefined ? null : await verifyRegistration(where, verifier.webauthnChallenge, input.credential);

    const now = clock.now();
    const agreed = agreeOcraKey(input.agreementKey);
    const appToken = newToken();
    const secret: MobileSecret = {
      seed: agreed.seed.toString('hex'),
      pinHash,
      signingKey: input.signingKey,
      agreementKey: input.agreementKey,
      credential,
      appTokenHash: appTokenHash(appToken),
    };
    const user = await users.get(row.user_id);
    const label =
      (input.label ?? '')
        // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
        .replace(/[\u0000-\u001f\u007f]/g, '')
        .trim()
        .slice(0, LABEL_MAX) || null;
    const actor = `user:${row.user_id}`;
    let wrongPin: { deviceId: string; failures: number } | null = null;

    const activated = await this.deps.answers
      .answerFlow({
        row,
        open: 'approved',
        deviceType: 'mobile',
        ip: meta.ip,
        actor,
        failed: { event: 'mobile.activation_failed', data: { purpose: state.purpose, proof: state.proof, step: 'recovery_pin' } },
        hints: ['hints.mobilePin'],
        check: async () => {
          // K8: the recovery PIN, tried only once possession is proven, each guess counted before it is compared; a new PIN has nothing to check
          if (recovering) {
            const pin = await this.recoveryPinOk(row.user_id, input.pin);
            if (!pin.ok) {
              wrongPin = pin;
              return null;
            }
          }
          return { replay: null };
        },
        accept: async (trx) => {
          await this.assertProofStands(trx, row, verifier);
          if (!(await completeFlow(trx, flowId, now, null, 'approved'))) return null;
          const current =
            (await trx
              .selectFrom('devices')
              .select(['id', 'params'])
              .where('user_id', '=', user.id)
              .where('type', '=', 'mobile')
              .where('state', '=', 'active')
              .executeTakeFirst()) ?? null;
          const phoneId = verifier.token?.phoneId ?? (current ? (JSON.parse(current.params) as MobileParams).phoneId : null);
          const params: MobileParams = { suite: MOBILE_SUITE, phoneId, biometric: credential !== null };
          // the activation token reached the number: it is verified (M1)
          if (verifier.token)
            await trx.updateTable('phones').set({ verified_at: now }).where('id', '=', verifier.token.phoneId).where('verified_at', 'is', null).execute();
          const deviceId = await this.deps.devices.insert(trx, {
            userId: user.id,
            type: 'mobile',
            state: 'active',
            label,
            secret,
            params: { ...params },
            activated: true,
          });
          const replaced = await this.retireDevices(trx, user, deviceId);
          // D4: temporary access ends with the authenticator that replaces it
          await this.deps.helpDesk.revokeTemporaryDevices(user, actor, 'mobile authenticator activated', trx);
          await this.deps.audit.append(trx, [
            {
              event: 'mobile.activated',
              actor,
              userId: user.id,
              username: user.username,
              ip: meta.ip,
              data: { flowId, deviceId, purpose: state.purpose, proof: state.proof, biometric: params.biometric, replaced },
            },
          ]);
          return { deviceId, replaced, biometric: params.biometric };
        },
        afterFailure: async () => {
          if (wrongPin) await this.recoveryFailed(row, meta, wrongPin);
        },
      })
      .catch(async (error: unknown) => {
        if (error instanceof SlsError && error.code === 'RECOVERY_BLOCKED') await this.recoveryRefused(row.user_id, row.username, meta.ip, row.id);
        throw proofFailed(error, 'recovery_pin');
      });
    // the old phone's live connection learns at once that it no longer works (K7)
    if (activated.replaced.length > 0) await this.deps.signals.publish(...activated.replaced.map((r) => deviceTopic(r.deviceId)));
    await this.deps.notifier.notifySoon(user, 'mobileActivated', { username: user.username });
    return {
      deviceId: activated.deviceId,
      username: user.username,
      serverKey: agreed.serverKey,
      salt: agreed.salt,
      suite: MOBILE_SUITE,
      appToken,
      biometric: activated.biometric,
      credentialId: credential?.id ?? null,
    };
  }

  private assertRecoveryOpen(current: Device): void {
    const failures = (current.params as unknown as MobileParams).recoveryFailures ?? 0;
    if (failures >= this.deps.config.policy.mobileRecoveryMaxFailures) throw new SlsError('RECOVERY_BLOCKED');
  }

  /** K8: a recovery refused because wrong recovery PINs reached the maximum (at its start, or a guess past it), audited. */
  private async recoveryRefused(userId: string, username: string, ip: string | null, flowId: string | null): Promise<void> {
    await this.deps.audit.record({
      event: 'mobile.recovery_refused',
      actor: `user:${userId}`,
      userId,
      username,
      ip,
      data: { flowId, code: 'RECOVERY_BLOCKED' },
    });
  }

  /** K8: a wrong recovery PIN, counted on the authenticator when it was guessed (never reset by a login), audited and told to the user. */
  private async recoveryFailed(row: FlowRow, meta: EnrolmentMeta, counted: { deviceId: string; failures: number }): Promise<void> {
    const { audit, users, notifier, config } = this.deps;
    const max = config.policy.mobileRecoveryMaxFailures;
    const { deviceId, failures } = counted;
    await audit.record({
      event: 'mobile.recovery_failed',
      actor: `user:${row.user_id}`,
      userId: row.user_id,
      username: row.username,
      ip: meta.ip,
      data: { flowId: row.id, deviceId, failures, blocked: failures >= max },
    });
    await notifier.notifySoon(await users.get(row.user_id), 'mobileRecoveryFailed', { username: row.username, failures, max });
  }

  /**
   * K5, K7: the user's previous authenticator stops working; M3, K9: SMS
   * is removed. Each change is audited (D3).
   */
  private async retireDevices(trx: Tx, user: User, newDeviceId: string): Promise<{ deviceId: string; type: string }[]> {
    const { devices } = this.deps;
    const retiring = (await devices.listForUser(user.id, trx)).filter(
      (d) => d.id !== newDeviceId && (d.type === 'mobile' || d.type === 'sms') && ['active', 'suspended', 'requested'].includes(d.state),
    );
    const retired: Device[] = [];
    for (const device of retiring) {
      const reason = device.type === 'sms' ? 'mobile authenticator activated' : 'mobile authenticator moved to another phone';
      if (await devices.transition(trx, device, 'revoked', { actor: `user:${user.id}`, username: user.username, reason })) retired.push(device);
    }
    if (retired.length === 0) return [];
    // L8: the sessions the old phone or SMS opened end with them
    await this.deps.sessions.endWhere(trx, { userId: user.id, deviceIds: retired.map((d) => d.id) }, 'device_replaced', `user:${user.id}`);
    return retired.map((d) => ({ deviceId: d.id, type: d.type }));
  }
}

/**
 * A wrong activation token, device answer or recovery PIN says so, not
 * "Login failed" (issue 16 item 1): ACTIVATION_PROOF_FAILED with what was
 * wrong, or that the activation's answers are used up.
 */
function proofFailed(error: unknown, what: Proof | 'recovery_pin'): unknown {
  if (!(error instanceof SlsError) || error.code !== 'LOGIN_FAILED') return error;
  const attemptsLeft = error.params.attemptsLeft as number;
  return new SlsError('ACTIVATION_PROOF_FAILED', { ...error.params, reason: attemptsLeft > 0 ? what : 'used_up' });
}
