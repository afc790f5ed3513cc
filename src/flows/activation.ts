/**
 * Proving a device with an answer, in the portal, to act on it. The proof is
 * a flow like a login's: one challenge, 5 minutes, 3 answers, single use; a
 * wrong answer counts towards the lock (L3).
 *
 * Activation:
 * - a permanent device that was temporarily unavailable (`suspended`) is
 *   reactivated, and a replacement received (`shipped`) is activated; either
 *   way the temporary passcode and online card stop working at once (D4, C6);
 * - an online security card (`requested`, once its printing was confirmed)
 *   is activated with the codes under two index numbers and then gives full
 *   access for 21 days (S2, S3).
 *
 * PIN change (C7): the old PIN is proven with a response, then the DSC+
 * takes the new one.
 *
 * Step-up (V1, K11): a portal task asks the signed-in user to verify again
 * with the device offered first. The mobile authenticator gets a push
 * request (approved on the phone, then taken here), or, when no
 * notification comes, a challenge to answer offline; other devices answer
 * their challenge. The session records when.
 */
import { ALLOWANCE } from '../throttle/allowance.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Devices } from '../devices/devices.js';
import type { Lockout } from '../policy/lockout.js';
import type { Notifier } from '../notify/notifier.js';
import { SlsError } from '../errors.js';
import { newId } from '../crypto/random.js';
import type { AuditLog } from '../audit/audit-log.js';
import { deviceActions, lossUnconfirmed, type Device, type DeviceActions, type DeviceKinds, type DeviceType, type Prompt } from '../devices/types.js';
import type { User, Users } from '../identity/users.js';
import { latestStepUp, type Session, type Sessions } from '../sessions/sessions.js';
import type { Store, Tx } from '../store/database.js';
import type { Confirmation } from '../store/schema.js';
import { challengeTtlMs, completeFlow, failFlow, findFlow, newFlowRow, promptOf, verifierContext, viewState, type FlowRow } from './flow-rows.js';
import { accepted, type Answers } from './answers.js';
import type { FlowLimits } from './flow-limits.js';
import type { CodeDelivery, PushApprovals, SharedDevices, TemporaryDevices } from './ports.js';
import { assertFullScope, decideAccess } from '../policy/access.js';
import type { ProofStanding } from '../policy/session-access.js';
import type { Language } from '../i18n/i18n.js';
import type { RequestMeta } from './login.js';
import type { FirstFactor } from './first-factor.js';
import type { SecuritySettingsRights } from '../identity/security-rights.js';

export interface ActivationView {
  id: string;
  deviceId: string;
  challenge: Prompt;
  expiresAt: string;
  attemptsLeft: number;
}

/** A step-up in progress or done (V1). */
export interface StepUpView {
  id: string;
  state: 'second_factor' | 'approved' | 'done' | 'failed' | 'denied' | 'expired';
  deviceId: string;
  challenge: Prompt | null;
  expiresAt: string;
  attemptsLeft: number;
  /**
   * V1, L8 (decision 0042): only in the answer of the request that completed the step-up: the session's new token,
   * which replaced the one the request came with (that one ended).
   */
  session?: { token: string };
}

type Purpose = 'activation' | 'pin_change' | 'step_up';

/** What the device proofs need; the composition root passes them. */
export interface ActivationDeps {
  store: Store;
  clock: Clock;
  config: Config;
  box: SecretBox;
  audit: AuditLog;
  users: Users;
  devices: Devices;
  /** The registry of device kinds. */
  deviceKind: DeviceKinds;
  /** C7: the P input of a card's new soft PIN, its format checked (the DSC+ kind's `softPinHash`). */
  softPinHash: (pin: string) => string;
  lockout: Lockout;
  notifier: Notifier;
  sessions: Sessions;
  smsCodes: CodeDelivery;
  pushRequests: PushApprovals;
  helpDesk: TemporaryDevices;
  answers: Answers;
  flowLimits: FlowLimits;
  /** A2: reactivating a permanent device changes the security settings. */
  rights: SecuritySettingsRights;
  /** H: a device shared with the user verifies their step-ups (V1). */
  sharedDevices?: SharedDevices;
}

export class DeviceActivation {
  constructor(private readonly deps: ActivationDeps) {}

  private sealContext(flowId: string): string {
    return verifierContext('activation', flowId);
  }

  private async ownDevice(session: Session, deviceId: string, purpose?: Purpose): Promise<Device> {
    const device = await this.deps.devices.get(deviceId).catch(() => null);
    // H: a step-up may be answered by the device another username shares with the user
    const shared = purpose === 'step_up' && device ? (await this.deps.sharedDevices?.sharedWith(session.userId))?.id === device.id : false;
    if (!device || (device.userId !== session.userId && !shared)) throw new SlsError('DEVICE_NOT_FOUND', { id: deviceId });
    return device;
  }

  /** Whether the device can be activated now, and why not. */
  private assertActivatable(device: Device): void {
    // a device the user activates by itself once it is ready (S2: the online card, printed)
    const self = this.deps.deviceKind(device.type).selfActivation;
    if (self) {
      const notReady = self.notReady(device);
      if (notReady) throw new SlsError(notReady, {}, `device is ${device.state}`);
      return;
    }
    // a permanent device temporarily unavailable (D4), or a replacement received (C6)
    if (!this.actions(device).reactivate) throw new SlsError('DEVICE_NOT_AVAILABLE', {}, `device is ${device.state}`);
  }

  /**
   * H5: while a sharing is in force the user's own permanent devices are set
   * aside: they come back when it ends, not by their own proof
   * (409 DEVICE_NOT_AVAILABLE, reason sharing).
   */
  private async assertNotSetAside(userId: string, device: Device, db?: Tx): Promise<void> {
    if (this.deps.deviceKind(device.type).temporary) return;
    if (await this.deps.sharedDevices?.setsAside(userId, db)) throw new SlsError('DEVICE_NOT_AVAILABLE', { reason: 'sharing' }, 'set aside by a sharing');
  }

  private assertPinChangeable(device: Device): void {
    if (!this.actions(device).changePin) throw new SlsError('DEVICE_NOT_AVAILABLE', {}, `device is ${device.state}`);
  }

  /** What the user may do with the device now (the security settings show these; the proofs check them). */
  actions(device: Device): DeviceActions {
    return deviceActions(device, this.deps.deviceKind(device.type));
  }

  private assertReady(device: Device, purpose: Purpose): void {
    if (purpose === 'activation') this.assertActivatable(device);
    else if (purpose === 'pin_change') this.assertPinChangeable(device);
    else if (device.state !== 'active') throw new SlsError('DEVICE_NOT_AVAILABLE', {}, `device is ${device.state}`);
  }

  /**
   * Whether the session may start the proof now (the device its user's, the
   * right to change it, the device ready), without starting it: what a page
   * shown by a GET checks, which changes nothing (no flow, no message).
   */
  async assertMayStart(session: Session, deviceId: string, purpose: Purpose, meta: Partial<RequestMeta> = {}): Promise<Device> {
    if (purpose === 'pin_change') assertFullScope(session);
    const device = await this.ownDevice(session, deviceId, purpose);
    // A2: a permanent device is (re)activated only by a user with the right; a temporary one (S2: the online card) is the user's own interim access
    if (purpose === 'activation' && !this.deps.deviceKind(device.type).temporary) {
      await this.deps.rights.assertMayChange(session.userId, { action: 'reactivate', ip: meta.ip ?? null });
    }
    this.assertReady(device, purpose);
    if (purpose === 'activation') await this.assertNotSetAside(session.userId, device);
    return device;
  }

  /** The device's challenge, kept in a flow of the session's user. */
  /** `meta`: the request's language (an SMS code is written in it) and where it comes from (shown with a push, K13). */
  async issue(session: Session, deviceId: string, purpose: Purpose, meta: Partial<RequestMeta> = {}): Promise<ActivationView> {
    const language = meta.language ?? this.deps.config.defaultLanguage;
    const { clock, box, devices, users, config, smsCodes } = this.deps;
    const device = await this.assertMayStart(session, deviceId, purpose, meta);
    const user = await users.get(session.userId);
    // V1, K11: the mobile authenticator verifies a step-up by push
    const kind = this.deps.deviceKind(device.type);
    const challenge = purpose === 'step_up' && kind.pushChallenge ? kind.pushChallenge() : await kind.issueChallenge(await devices.context(device));
    // a suspended SMS device is proven with a code sent to its number (M4), counted in the session's allowance (decision 0024)
    const prompt = challenge.code === undefined ? challenge.prompt : await smsCodes.deliverChallenge(device, challenge, language, 0, ALLOWANCE.session);
    const now = clock.now();
    const id = newId('flw');
    const expiresAt = now + challengeTtlMs(challenge, config.policy);
    const row = newFlowRow({
      id,
      kind: purpose,
      app: session.app,
      username: user.username,
      userId: user.id,
      deviceId: device.id,
      prompt,
      sealedVerifier: box.sealJson(challenge.verifier, this.sealContext(id)),
      now,
      expiresAt,
      // K13: a push request shows the phone where it comes from
      ip: meta.ip ?? null,
      userAgent: meta.userAgent ?? null,
      sessionId: session.id,
    });
    await this.deps.flowLimits.insert(row);
    // K13 (decision 0030): a step-up's push may be withheld, the app's challenge shown instead
    const shown = prompt.type === 'push' ? await this.deps.pushRequests.announce(row, language) : row;
    return {
      id,
      deviceId: device.id,
      challenge: promptOf(shown) ?? prompt,
      expiresAt: new Date(shown.expires_at).toISOString(),
      attemptsLeft: config.policy.challengeMaxAttempts,
    };
  }

  private async openFlow(session: Session, flowId: string, purpose: Purpose) {
    // a proof belongs to the session that asked for it (V1: another session of the same user cannot answer it)
    const row = await findFlow(this.deps.store.db, flowId, purpose, session.id);
    if (row.state !== 'second_factor' || row.expires_at <= this.deps.clock.now()) throw new SlsError('FLOW_EXPIRED');
    return row;
  }

  /**
   * Checks the answer of an open flow; when right, runs `proven` in the
   * transaction that uses the answer up (single use), and returns the device.
   */
  async prove(
    session: Session,
    flowId: string,
    purpose: Purpose,
    response: string,
    proven: (trx: Tx, device: Device, user: User, now: number) => Promise<boolean>,
  ): Promise<Device> {
    const { clock, box, devices, users } = this.deps;
    const row = await this.openFlow(session, flowId, purpose);
    // K3: a push request is approved on the phone, not typed: no answer is taken for it
    if (promptOf(row)?.type === 'push') throw new SlsError('FLOW_STATE', { reason: 'push' });
    const now = clock.now();
    const user = await users.get(session.userId);
    const device = await devices.get(row.device_id!);
    const kind = this.deps.deviceKind(device.type);
    // read before the answer's transaction: a check that reads nothing else runs inside it (docs/decisions/0019)
    const context = await devices.checkContext(device, kind);
    await this.deps.answers.answerFlow({
      row,
      deviceType: device.type,
      ip: null,
      actor: `user:${user.id}`,
      failed: { event: 'device.proof_failed', data: { purpose, deviceId: device.id } },
      hints: kind.failureHints,
      checkInside: kind.pureCheck === true,
      check: async () => {
        this.assertReady(device, purpose);
        const check = await kind.checkResponse(context, box.openJson(row.verifier!, this.sealContext(flowId)), response);
        return check.ok ? accepted(device, check, flowId) : null;
      },
      accept: async (trx) => ((await completeFlow(trx, flowId, now)) && (await proven(trx, device, user, now)) ? true : null),
    });
    return devices.get(device.id);
  }

  /** An open proof of the session's user, to show its challenge again (after a wrong answer). */
  async view(session: Session, flowId: string, purpose: Purpose = 'activation'): Promise<ActivationView> {
    const row = await this.openFlow(session, flowId, purpose);
    return {
      id: row.id,
      deviceId: row.device_id!,
      challenge: JSON.parse(row.prompt!) as Prompt,
      expiresAt: new Date(row.expires_at).toISOString(),
      attemptsLeft: this.deps.config.policy.challengeMaxAttempts - row.attempts,
    };
  }

  start(session: Session, deviceId: string, language?: Language): Promise<ActivationView> {
    return this.issue(session, deviceId, 'activation', language ? { language } : {});
  }

  async complete(session: Session, flowId: string, response: string): Promise<Device> {
    const { config, devices, helpDesk, notifier } = this.deps;
    const device = await this.prove(session, flowId, 'activation', response, async (trx, proven, user, now) => {
      // H5 (docs/decisions/0016): a sharing that came into force meanwhile set the device aside
      await this.assertNotSetAside(user.id, proven, trx);
      const kind = this.deps.deviceKind(proven.type);
      const activated = await devices.transition(trx, proven, 'active', {
        actor: `user:${user.id}`,
        username: user.username,
        event: proven.state === 'suspended' ? 'device.reactivated' : 'device.activated',
        ...(kind.selfActivation ? { set: { expires_at: now + kind.selfActivation.lifeMs(config.policy) } } : {}),
      });
      // L8 (docs/decisions/0016): the device left the state it was proven in meanwhile (reported lost, revoked, activated by another proof)
      if (!activated) throw new SlsError('DEVICE_NOT_AVAILABLE');
      // S2, S3, L8: a new online card replaces the one activated before (its printout may be what was lost): that one ends, and the sessions it opened
      if (kind.selfActivation) {
        await this.endReplaced(trx, user, proven);
        // N1 (decision 0036): a new device of full access for weeks: the user hears of it, as of a key or an authenticator
        await notifier.notify(user, 'onlineCardActivated', { username: user.username, serial: proven.serial ?? '' }, { db: trx });
      }
      // D4: a permanent device back in use ends the temporary ones, and their sessions; this session goes on with the device (L8)
      if (!kind.temporary)
        await helpDesk.revokeTemporaryDevices(user, `user:${user.id}`, 'permanent device activated', trx, { id: session.id, device: proven });
      return true;
    });
    if (!this.deps.deviceKind(device.type).temporary) {
      const user = await this.deps.users.get(session.userId);
      await notifier.notify(user, 'deviceReactivated', { username: user.username });
    }
    return device;
  }

  /**
   * S2, S3, L8: the user's other active devices of the type just activated by
   * the user (the online card) are revoked, audited, and the sessions they
   * opened end (`device_replaced`): one online card at a time, the newest.
   */
  private async endReplaced(trx: Tx, user: User, activated: Device): Promise<void> {
    const { devices, sessions } = this.deps;
    const actor = `user:${user.id}`;
    const older = (await devices.listForUser(user.id, trx)).filter((d) => d.type === activated.type && d.id !== activated.id && d.state === 'active');
    const revoked: string[] = [];
    for (const device of older) {
      if (await devices.transition(trx, device, 'revoked', { actor, username: user.username, reason: 'replaced', data: { by: activated.id } })) {
        revoked.push(device.id);
      }
    }
    await sessions.endWhere(trx, { userId: user.id, deviceIds: revoked }, 'device_replaced', actor);
  }

  /** C7: the old PIN proven with the card's response. */
  startPinChange(session: Session, deviceId: string): Promise<ActivationView> {
    assertFullScope(session);
    return this.issue(session, deviceId, 'pin_change');
  }

  /** C7: … then the new PIN; a wrong old PIN gives a wrong response and changes nothing. */
  async completePinChange(session: Session, flowId: string, response: string, newPin: string): Promise<Device> {
    const pinHash = this.deps.softPinHash(newPin);
    const { devices, audit } = this.deps;
    return this.prove(session, flowId, 'pin_change', response, async (trx, device, user) => {
      // L8: the card as a report of its loss that raced the proof left it
      await devices.markUsed(trx, device.id, user.id);
      const secret = await devices.readSecret<{ pinHash: string }>(trx, device.id);
      await devices.writeSecret(trx, device.id, { ...secret, pinHash });
      await audit.append(trx, [
        { event: 'device.pin_changed', actor: `user:${user.id}`, userId: user.id, username: user.username, data: { deviceId: device.id } },
      ]);
      // N1: the user hears of it, in its transaction (whoever holds the card and its old PIN shuts the owner out)
      await this.deps.notifier.notify(user, 'pinChanged', { username: user.username, serial: device.serial ?? '' }, { db: trx });
      return true;
    });
  }
}

/**
 * Step-up (V1, K11): verifying again, in the portal: the password, then the
 * device offered first. A stolen session alone never passes it.
 */
export class StepUp {
  constructor(
    private readonly activation: DeviceActivation,
    private readonly deps: ActivationDeps & { firstFactor: FirstFactor },
  ) {}

  private row(session: Session, flowId: string): Promise<FlowRow> {
    return findFlow(this.deps.store.db, flowId, 'step_up', session.id);
  }

  /**
   * T3, X7, I1: the session's last proof — the device of its latest step-up,
   * else of its login (null: the password alone, or a device since deleted)
   * — when it was given, and how the phone confirmed it (K3: that proof's
   * own, never the login's when a step-up came after). L8, H: a device
   * since revoked, reported lost, suspended or no longer shared with the
   * user proves nothing any more: null too (no permanent proof, the
   * password's acr) until the user verifies again with a device they hold.
   */
  async lastProof(session: Session): Promise<{ device: Device | null; at: number; confirmedBy: Confirmation | null }> {
    let deviceId = session.deviceId;
    let at = session.createdAt;
    let confirmedBy = session.confirmedBy;
    if (session.verifiedAt !== null) {
      const stepUp = await latestStepUp(this.deps.store.db, session.id);
      if (stepUp?.device_id) {
        deviceId = stepUp.device_id;
        confirmedBy = stepUp.confirmed_by;
      }
      at = Math.max(at, session.verifiedAt);
    }
    const device = deviceId ? await this.deps.devices.usableBy(deviceId, session.userId) : null;
    return { device, at, confirmedBy };
  }

  /**
   * L8, T3, X7: what the session's last proof is worth now: whether its
   * device still stands (a fresh step-up counts only then, policy/
   * session-access.ts), and whether it is a permanent device — not a
   * temporary passcode or online card, nor the password alone.
   */
  async proof(session: Session): Promise<ProofStanding> {
    const { device } = await this.lastProof(session);
    return { stands: device !== null, permanent: device !== null && !this.deps.deviceKind(device.type).temporary };
  }

  /**
   * D2, K7, X7: whether the session's last proof may bind a new device of
   * `type`: a permanent device that still stands, at least as strong as the
   * new device or as the strongest active permanent device the user holds
   * (their own, or the one shared with them, H). A weaker proof never binds a
   * stronger device (as a password and a number on record never move a
   * physical device's protection to a phone, K7): whoever has the password
   * and a user's SIM registers no security key of their own while a DSC+
   * protects the user; a user with SMS alone still may (an upgrade, R2).
   * `null`: giving up the second factor (O1): the strongest device's proof.
   * Answers why not, or null when it may: `weaker`; `loss_unconfirmed` when
   * only a device the user reported lost from a weaker proof, within the
   * wait after the report (R2, decision 0023), outranks the proof.
   */
  async proofToAddRefusal(session: Session, type: DeviceType | null): Promise<'weaker' | 'loss_unconfirmed' | null> {
    const { device } = await this.lastProof(session);
    const kind = this.deps.deviceKind;
    if (!device || kind(device.type).temporary) return 'weaker';
    const needed = (types: string[]) => {
      const strongest = Math.max(0, ...types.filter((t) => !kind(t).temporary).map((t) => kind(t).strength));
      return Math.min(strongest, type === null ? Number.POSITIVE_INFINITY : kind(type).strength);
    };
    const held = await this.deps.devices.activeTypesProtecting(session.userId);
    const proved = kind(device.type).strength;
    if (proved < needed(held)) return 'weaker';
    const now = this.deps.clock.now();
    const lost = (await this.deps.devices.listForUser(session.userId)).filter((d) => lossUnconfirmed(d, now)).map((d) => d.type);
    return proved < needed([...held, ...lost]) ? 'loss_unconfirmed' : null;
  }

  /** T3, X7: whether the session's last proof was a permanent device (`proof`). */
  async hasPermanentProof(session: Session): Promise<boolean> {
    return (await this.proof(session)).permanent;
  }

  async view(session: Session, flowId: string): Promise<StepUpView> {
    const row = await this.row(session, flowId);
    const now = this.deps.clock.now();
    return {
      id: row.id,
      state: viewState(row, now),
      deviceId: row.device_id!,
      challenge: row.state === 'second_factor' && row.expires_at > now ? promptOf(row) : null,
      expiresAt: new Date(row.expires_at).toISOString(),
      attemptsLeft: this.deps.config.policy.challengeMaxAttempts - row.attempts,
    };
  }

  /** The device offered first (L6): the last used, then the strongest, that may open the portal now. */
  async start(session: Session, password: string, meta: RequestMeta): Promise<StepUpView> {
    const { users, devices, clock, config, lockout } = this.deps;
    const { username } = await users.get(session.userId);
    // the password first, under the login's lock (L3)
    const { user, attempt } = await this.deps.firstFactor.check({ username, password, ip: meta.ip, purpose: 'step_up' });
    try {
      const now = clock.now();
      const shared = await this.deps.sharedDevices?.sharedWith(user.id);
      const device = [...(shared ? [shared] : []), ...(await devices.activeForUser(user.id, user.lastDeviceId))].find(
        (d) => decideAccess(d, this.deps.deviceKind(d.type), 'portal', now, config.policy).allowed,
      );
      if (!device) throw new SlsError('NO_ACTIVE_DEVICE');
      const issued = await this.activation.issue(session, device.id, 'step_up', meta);
      await this.deps.audit.record({
        event: 'stepup.started',
        actor: `user:${user.id}`,
        userId: user.id,
        username: user.username,
        ip: meta.ip,
        data: { flowId: issued.id, deviceId: device.id, type: device.type },
      });
      return await this.view(session, issued.id);
    } finally {
      // a right password is no failure
      await lockout.release(attempt);
    }
  }

  /** Answers when the step-up no longer waits for the phone (or its challenge changed), or after `waitMs`. */
  async wait(session: Session, flowId: string, waitMs: number, abort?: AbortSignal): Promise<StepUpView> {
    await this.deps.pushRequests.waitForPhone(() => this.row(session, flowId), waitMs, abort);
    return this.view(session, flowId);
  }

  /** A typed answer to the device's challenge. */
  async answer(session: Session, flowId: string, response: string): Promise<StepUpView> {
    let token: string | null = null;
    await this.activation.prove(session, flowId, 'step_up', response, async (trx, device, user, now) => {
      token = await this.verified(trx, session, user, flowId, device.id, now);
      return true;
    });
    return this.rotated(await this.view(session, flowId), token);
  }

  /** V1, L8 (decision 0042): the view of the request that completed the step-up carries the session's new token. */
  private rotated(view: StepUpView, token: string | null): StepUpView {
    return token === null ? view : { ...view, session: { token } };
  }

  /** K11: the phone approved; the portal takes the verification, once. */
  async complete(session: Session, flowId: string): Promise<StepUpView> {
    const row = await this.row(session, flowId);
    // the phone that approved may have been replaced, or its access closed, since
    const { device } = await this.deps.pushRequests.approval(row, 'portal');
    const now = this.deps.clock.now();
    const user = await this.deps.users.get(session.userId);
    let locked = false;
    let token: string | null = null;
    const done = await this.deps.store.serialized('audit_log', async (trx) => {
      // L3 (decisions 0005, 0027): a lock that landed since the phone approved refuses the step-up, as it refuses its password
      if (await this.deps.lockout.lockedNow(trx, user.username)) {
        locked = true;
        return false;
      }
      if (!(await completeFlow(trx, flowId, now, null, 'approved'))) return false;
      token = await this.verified(trx, session, user, flowId, device.id, now);
      return true;
    });
    if (locked) {
      await failFlow(this.deps.store.db, flowId, now, 'approved');
      await this.deps.audit.record({
        event: 'login.refused_locked',
        actor: `user:${user.id}`,
        userId: user.id,
        username: user.username,
        data: { flowId, kind: 'step_up', factor: 'second', step: 'complete' },
      });
      throw new SlsError('LOCKED', {});
    }
    if (!done) throw new SlsError('FLOW_EXPIRED');
    return this.rotated(await this.view(session, flowId), token);
  }

  /** K4: no notification on the phone: a challenge to answer offline instead. */
  async offline(session: Session, flowId: string): Promise<StepUpView> {
    await this.deps.pushRequests.offline(await this.row(session, flowId));
    return this.view(session, flowId);
  }

  /**
   * V1: the session verified again, with the device if it still stands (L8, H: revoked, lost or no longer shared
   * meanwhile, 409). L8, X7 (decision 0042): and its token replaced, in the same transaction: a copy of the old one
   * (stolen) gets no share of the fresh step-up. The new token, or null when the session ended meanwhile.
   */
  private async verified(trx: Tx, session: Session, user: User, flowId: string, deviceId: string, now: number): Promise<string | null> {
    await this.deps.devices.markUsed(trx, deviceId, user.id);
    const token = await this.deps.sessions.markVerified(trx, session.id, now);
    const actor = `user:${user.id}`;
    await this.deps.audit.append(trx, [
      { event: 'stepup.verified', actor, userId: user.id, username: user.username, data: { flowId, sessionId: session.id } },
      ...(token === null
        ? []
        : [{ event: 'session.rotated' as const, actor, userId: user.id, username: user.username, data: { flowId, sessionId: session.id } }]),
    ]);
    return token;
  }
}
