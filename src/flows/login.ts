/**
 * The login flow (L1–L8): a persisted object with an id, a state, an expiry
 * and what the client must show next. The JSON API and the web pages drive
 * the same flows.
 *
 *   start(username, password) ──► second_factor ──answer──► done (a session)
 *                                      │  ├─switch device (M2FS, L6)
 *                                      │  ├─new code by SMS or voice (M5)
 *                                      │  ├─phone approves (K3) ──► approved ──claim──► done
 *                                      │  ├─phone denies (K13) ──► denied
 *                                      │  └─no notification (K4): a challenge for the app instead
 *                                      └─ 3 wrong answers / 5 minutes (a push: 2) ──► failed / expired
 *
 * SMS codes are sent once the flow is stored; a gateway failure or a send
 * limit is shown in the challenge (`delivery`), and the user may ask again.
 * Push requests are answered through src/devices/mobile/push-requests.ts.
 */
import { isKnownClient, knownClientToken } from './known-clients.js';
import { ALLOWANCE, type Allowance } from '../throttle/allowance.js';
import type { Clock } from '../clock.js';
import type { Config, PolicyConfig } from '../config.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Devices } from '../devices/devices.js';
import type { User, Users } from '../identity/users.js';
import type { ExpressedPreferences, NoticePreferences } from '../identity/notice-preferences.js';
import type { Attempt, Lockout } from '../policy/lockout.js';
import { SlsError, type ErrorCode } from '../errors.js';
import { decideAccess } from '../policy/access.js';
import { newId, newToken } from '../crypto/random.js';
import { constantTimeEqual } from '../crypto/constant-time.js';
import {
  isCodePrompt,
  type Challenge,
  type Device,
  type DeviceKind,
  type DeviceKinds,
  type DeviceType,
  type Prompt,
  type SmsPrompt,
} from '../devices/types.js';
import type { Language } from '../i18n/i18n.js';
import { newSessionId, type App, type IssuedSession, type Sessions } from '../sessions/sessions.js';
import type { Confirmation, SessionScope } from '../store/schema.js';
import type { Store, Tx } from '../store/database.js';
import { flowTopic, type Signals } from '../push/signals.js';
import { challengeTtlMs, completeFlow, failFlow, findFlow, newFlowRow, promptOf, verifierContext, viewState, type FlowRow } from './flow-rows.js';
import { accepted, type Answers } from './answers.js';
import type { FlowLimits } from './flow-limits.js';
import type { CheckedPassword, FirstFactor } from './first-factor.js';
import type { Observer } from '../metrics/observer.js';
import type { CodeDelivery, LoginPhones, PushApprovals, SharedDevices } from './ports.js';
import type { OptedOutUsers } from '../identity/opt-out.js';

/**
 * `approved`: the phone approved (K3); the session is taken with POST
 * /login/{id}/session. `denied`: the phone said "this wasn't me" (K13).
 */
export type FlowViewState = 'second_factor' | 'approved' | 'done' | 'failed' | 'denied' | 'expired';

export interface DeviceSummary {
  id: string;
  type: DeviceType;
  label: string | null;
}

export interface FlowView {
  id: string;
  state: FlowViewState;
  app: App;
  username: string;
  expiresAt: string;
  device: DeviceSummary | null;
  devices: DeviceSummary[];
  challenge: Prompt | null;
  attemptsLeft: number;
}

export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
  /** The language of the request: codes sent by SMS or voice are written in it. */
  language?: Language;
  /**
   * N1: what the person expressed — the language chosen on the pages or
   * named by Accept-Language (not the server's fallback), the browser's
   * time zone — remembered for the notices at a complete login.
   */
  expressed?: ExpressedPreferences;
  /**
   * L8: the session token of the cookie the browser presented with the
   * login: the session the login opens for it ends that one (a new cookie
   * replaces it). Only the cookie's: a Bearer token or a body names none.
   */
  replaces?: string;
  /** L4, decision 0024: the token of the browser's known-client cookie (flows/known-clients.ts), if it sent one. */
  knownClient?: string;
}

/**
 * A login just started. `claimToken` is given only to whoever entered the
 * password: with it, and only with it, they take the session once the phone
 * approves (K3) — the flow id alone is not enough.
 */
export type StartedFlow = FlowView & { claimToken: string; session?: IssuedSession };

export interface StartInput extends RequestMeta {
  username: string;
  password: string;
  app: App;
}

/** Device changes allowed in one flow (each issues a new challenge). */
const MAX_DEVICE_SWITCHES = 10;

function summary(device: Device): DeviceSummary {
  return { id: device.id, type: device.type, label: device.label };
}

/** What the login flows need; the composition root passes them. */
export interface LoginDeps {
  store: Store;
  clock: Clock;
  config: Config;
  policy: PolicyConfig;
  box: SecretBox;
  audit: AuditLog;
  users: Users;
  devices: Devices;
  /** The registry of device kinds. */
  deviceKind: DeviceKinds;
  lockout: Lockout;
  sessions: Sessions;
  signals: Signals;
  phones: LoginPhones;
  smsCodes: CodeDelivery;
  pushRequests: PushApprovals;
  firstFactor: FirstFactor;
  answers: Answers;
  flowLimits: FlowLimits;
  /** N1: a complete login remembers the language of its user's notices. */
  noticePreferences: Pick<NoticePreferences, 'remember'>;
  /** Told of each login started (metrics). */
  observer?: Pick<Observer, 'loginStarted'>;
  /** H: the device another username shares with the user (offered first). */
  sharedDevices?: Pick<SharedDevices, 'sharedWith' | 'withOwnDevices'>;
  /** O1: who opted out of the second factor for trading logins (identity/opt-out.ts); nobody when absent. */
  optedOut?: OptedOutUsers;
}

/** O2: the user opted back in while their password-only login was being opened (rolls its transaction back). */
const OPTED_BACK_IN = new Error('opted back in');
/** A5: the one-time password the password-only login began with opened another session meanwhile (rolls its transaction back). */
const ONE_TIME_USED = new Error('one-time password used');
/**
 * What the transaction that would open a login's session found under the
 * lock and refuses (it rolls that transaction back): the flow fails with
 * it, audited, and the caller is answered (`LoginFlows.failingFlow`).
 */
class RefusedUnderLock extends Error {
  constructor(
    readonly event: 'login.refused_locked' | 'login.flow_refused',
    readonly data: Record<string, unknown>,
    readonly answer: SlsError,
  ) {
    super(event);
  }
}
/** A5: the one-time password a login with a device began with opened another session meanwhile: 410, as if it came later. */
const oneTimePasswordUsed = () =>
  new RefusedUnderLock('login.flow_refused', { reason: 'one_time_password_used', code: 'FLOW_EXPIRED' }, new SlsError('FLOW_EXPIRED'));
/** L3 (decisions 0005, 0027): the user was locked between the phone's approval and the claim: 423, as a locked user's first factor. */
const lockedSinceApproval = () => new RefusedUnderLock('login.refused_locked', { factor: 'second', step: 'claim' }, new SlsError('LOCKED', {}));

export class LoginFlows {
  constructor(private readonly deps: LoginDeps) {}

  private sealContext(flowId: string): string {
    return verifierContext('login', flowId);
  }

  private row(flowId: string): Promise<FlowRow> {
    return findFlow(this.deps.store.db, flowId, 'login');
  }

  /**
   * L8, K3: the flow, for whoever started it: the holder of its claim token
   * (the API's `claimToken`, the page's claim cookie). A request that reads,
   * answers, changes or watches a login (its view, an answer, a device switch,
   * the offline challenge, a new code, the live connection) with only its id
   * is refused as if there were no such flow (404 FLOW_NOT_FOUND: the id tells
   * nothing), before anything is counted, and audited.
   */
  private async ownedRow(flowId: string, claimToken: string | undefined, meta: { ip: string | null }, action: string): Promise<FlowRow> {
    const row = await this.row(flowId);
    if (!this.holdsClaim(row, claimToken)) {
      await this.deps.audit.record({ event: 'login.claim_refused', userId: row.user_id, username: row.username, ip: meta.ip, data: { flowId, action } });
      throw new SlsError('FLOW_NOT_FOUND');
    }
    return row;
  }

  /** K3, L8: whether the token is the flow's claim token (compared by its keyed digest, in constant time). */
  private holdsClaim(row: FlowRow, claimToken: string | undefined): boolean {
    return claimToken !== undefined && claimToken !== '' && row.claim_hash !== null && constantTimeEqual(this.claimHash(claimToken), row.claim_hash);
  }

  private isOpen(row: FlowRow): boolean {
    return row.state === 'second_factor' && row.expires_at > this.deps.clock.now();
  }

  /**
   * The user's active devices that may open the application now (access
   * policy), the one offered first at the front (L6); when none may, the
   * reason of the first refusal (an expired temporary passcode …).
   */
  private async offeredDevices(
    userId: string,
    lastDeviceId: string | null,
    app: App,
    known?: { own: Device[]; shared: Device | null },
  ): Promise<{ usable: Device[]; refusal: ErrorCode | null }> {
    const { devices, clock, policy } = this.deps;
    const now = clock.now();
    const usable: Device[] = [];
    let refusal: ErrorCode | null = null;
    // H: a device shared with the user answers first (its owner's lock stays theirs: the lock is per username)
    const { own, shared } = known ?? (await this.userDevices(userId));
    const candidates = devices.offerOrder(own, lastDeviceId);
    for (const device of shared ? [shared, ...candidates.filter((d) => d.id !== shared.id)] : candidates) {
      const decision = decideAccess(device, this.deps.deviceKind(device.type), app, now, policy);
      if (decision.allowed) usable.push(device);
      else refusal ??= decision.reason;
    }
    return { usable, refusal };
  }

  /** The user's own devices (every state) and the one shared with them (H), in one read. */
  private async userDevices(userId: string): Promise<{ own: Device[]; shared: Device | null }> {
    if (this.deps.sharedDevices) return this.deps.sharedDevices.withOwnDevices(userId);
    return { own: await this.deps.devices.listForUser(userId), shared: null };
  }

  private async devicesOf(row: FlowRow): Promise<Device[]> {
    const user = await this.deps.users.get(row.user_id);
    const { usable } = await this.offeredDevices(user.id, user.lastDeviceId, row.app);
    if (row.device_id && !usable.some((d) => d.id === row.device_id)) {
      // a new applicant's SMS device, waiting for its first code (M2)
      const waiting = await this.deps.devices.get(row.device_id);
      if (isWaitingFirstAnswer(waiting, this.deps.deviceKind(waiting.type))) return [waiting, ...usable];
    }
    return usable;
  }

  private view(row: FlowRow, devices: Device[]): FlowView {
    const device = devices.find((d) => d.id === row.device_id) ?? null;
    const open = this.isOpen(row);
    return {
      id: row.id,
      state: viewState(row, this.deps.clock.now()),
      app: row.app,
      username: row.username,
      expiresAt: new Date(row.expires_at).toISOString(),
      device: device ? summary(device) : null,
      devices: devices.map(summary),
      challenge: open && row.prompt ? (JSON.parse(row.prompt) as Prompt) : null,
      attemptsLeft: Math.max(0, this.deps.policy.challengeMaxAttempts - wrongAnswers(row)),
    };
  }

  /** The flow as it is now, for a caller that checked the claim already (the answer of a step it took). */
  private async current(flowId: string): Promise<FlowView> {
    const row = await this.row(flowId);
    return this.view(row, await this.devicesOf(row));
  }

  /**
   * L7, L8: the flow as the client that started it sees it (the API's `claimToken`, the page's claim cookie); read
   * with its id alone, FLOW_NOT_FOUND as for an unknown id (audited): an id in a log, a Referer or over a shoulder
   * tells nothing of the login, its user or its devices.
   */
  async owned(flowId: string, claimToken: string | undefined, meta: { ip: string | null }): Promise<FlowView> {
    const row = await this.ownedRow(flowId, claimToken, meta, 'view');
    return this.view(row, await this.devicesOf(row));
  }

  /** First factor (L1), then the challenge of the device offered first (L2, L6). */
  async start(input: StartInput): Promise<StartedFlow> {
    const { lockout } = this.deps;
    const { firstFactor } = this.deps;
    const { user, attempt, checked } = await firstFactor.check({ ...input, purpose: input.app });
    // O1: a user who opted out logs in to trading with the password alone (O2: unless they opted back in meanwhile)
    if (input.app === 'trading' && (await this.optedOut(user.id, attempt))) {
      const opened = await this.passwordOnly(input, user, attempt, checked);
      if (opened) return opened;
    }
    let row: FlowRow;
    let active: Device[];
    let challenge: Challenge;
    const claimToken = newToken();
    try {
      const offered = await this.offeredDevices(user.id, user.lastDeviceId, input.app);
      active = offered.usable;
      if (active.length === 0) {
        // M2: a verified number enrols the user in SMS; a new applicant confirms the number on record
        const sms = await this.deps.phones.deviceForLogin(user.id, input.ip);
        if (sms) active = [sms];
      }
      const device = active[0];
      if (!device) throw new SlsError(offered.refusal ?? 'NO_ACTIVE_DEVICE');
      challenge = await this.challengeFor(device);
      row = this.newFlow(input, user.id, user.username, device.id, challenge, claimToken);
    } catch (error) {
      await lockout.release(attempt);
      throw error;
    }
    try {
      // the password was right: the attempt is not a failure
      // decision 0024: a browser the user completed a login in counts as a recognised client, from any address
      const known = isKnownClient(this.deps.box, user.id, input.knownClient, this.deps.clock.now());
      const stored = async (trx: Tx) => {
        // A4, L8: a password changed or reset since it was checked starts nothing
        await firstFactor.assertStillCurrent(trx, checked, input.ip, 'login');
        await lockout.release(attempt, trx);
      };
      row = { ...row, recognised: await this.deps.flowLimits.insert(row, stored, known) };
    } catch (error) {
      await lockout.release(attempt);
      await firstFactor.auditChanged(error);
      throw error;
    }
    if (challenge.code !== undefined) row = await this.sendCode(row, active[0]!, challenge, input);
    if (challenge.prompt.type === 'push') row = await this.deps.pushRequests.announce(row, input.language);
    this.deps.observer?.loginStarted(input.app, active[0]!.type);
    return { ...this.view(row, active), claimToken };
  }

  // ---- O1: the trading login of a user who opted out (identity/opt-out.ts) ----

  private async optedOut(userId: string, attempt: Attempt): Promise<boolean> {
    try {
      return (await this.deps.optedOut?.isOptedOut(userId)) ?? false;
    } catch (error) {
      await this.deps.lockout.release(attempt);
      throw error;
    }
  }

  /**
   * O1: the password completes the login. The flow is stored done, under
   * the same flow limits (L4), with its session in the same transaction:
   * the session records that no second factor was used (no device), the
   * password's attempt is no failure, but the lock's count goes on (L3: no
   * device was proven, and guesses at the user's codes still count), audited
   * as every login (`secondFactor: none`). O2, L8: whether the user
   * is still opted out is read again under the audit log's lock, which
   * opting back in holds while it ends the sessions the password alone
   * opened: a login that raced it opens nothing (null), and the device is
   * asked for as usual.
   */
  private async passwordOnly(
    input: StartInput,
    user: User,
    attempt: Attempt,
    checked: CheckedPassword,
  ): Promise<(StartedFlow & { session: IssuedSession }) | null> {
    const { clock, store, sessions, lockout, audit, users } = this.deps;
    const now = clock.now();
    const claimToken = newToken();
    const sessionId = newSessionId();
    const row: FlowRow = {
      id: newId('flw'),
      kind: 'login',
      app: input.app,
      username: user.username,
      user_id: user.id,
      state: 'done',
      device_id: null,
      prompt: null,
      verifier: null,
      attempts: 0,
      device_switches: 0,
      expires_at: now,
      created_at: now,
      updated_at: now,
      ip: input.ip,
      user_agent: input.userAgent,
      session_id: sessionId,
      confirmed_by: null,
      claim_hash: this.claimHash(claimToken),
    };
    let session: IssuedSession | undefined;
    try {
      await this.deps.flowLimits.insert(row, async (trx) => {
        await lockout.release(attempt, trx);
        await store.lockWithin(trx, 'audit_log');
        // A4, L8: read under the audit lock, which a change of the password holds while it ends sessions (no deadlock on its row)
        await this.deps.firstFactor.assertStillCurrent(trx, checked, input.ip, 'login');
        if (!(await this.deps.optedOut?.isOptedOut(user.id, trx))) throw OPTED_BACK_IN;
        session = await sessions.create(
          {
            id: sessionId,
            userId: user.id,
            app: input.app,
            flowId: row.id,
            deviceId: null,
            deviceType: null,
            ip: input.ip,
            userAgent: input.userAgent,
            scope: 'full',
          },
          trx,
        );
        if (!(await users.markOneTimePasswordUsed(trx, user.id, now))) throw ONE_TIME_USED;
        await sessions.endReplaced(trx, input.replaces, { userId: user.id, sessionId, ip: input.ip });
        // L3: the password alone proves no device: the count of the guesses at the user's codes goes on (no reset)
        await audit.append(trx, [
          {
            event: 'login.succeeded',
            userId: user.id,
            username: user.username,
            ip: input.ip,
            data: { flowId: row.id, app: input.app, deviceId: null, deviceType: null, secondFactor: 'none', optedOut: true, sessionId },
          },
        ]);
      });
    } catch (error) {
      await lockout.release(attempt);
      if (error === OPTED_BACK_IN) return null;
      if (error === ONE_TIME_USED) {
        // A5: as if it came a moment later, when the password it gave was a used one-time password (a wrong one)
        await audit.record({
          event: 'login.flow_refused',
          userId: user.id,
          username: user.username,
          ip: input.ip,
          data: { flowId: row.id, kind: 'login', reason: 'one_time_password_used', code: 'INVALID_CREDENTIALS' },
        });
        throw new SlsError('INVALID_CREDENTIALS');
      }
      await this.deps.firstFactor.auditChanged(error);
      throw error;
    }
    return { ...this.view(row, []), claimToken, session: session! };
  }

  // ---- end O1 ----

  /**
   * The challenge of a login: the device's, except for the mobile
   * authenticator, which gets a push request first (K3); challenge/response
   * only when the user asks for it (K4).
   */
  private async challengeFor(device: Device): Promise<Challenge> {
    const kind = this.deps.deviceKind(device.type);
    if (kind.pushChallenge) return kind.pushChallenge();
    return kind.issueChallenge(await this.deps.devices.context(device));
  }

  /** Sends the code of an SMS challenge (M4, M5) and records in the flow's prompt how it went. */
  private async sendCode(row: FlowRow, device: Device, challenge: Challenge, meta: RequestMeta): Promise<FlowRow> {
    const { smsCodes, store, audit, config } = this.deps;
    const previous = promptOf(row);
    // decision 0018: a code of a recognised client's flow is counted in that allowance of the send limits
    const prompt = await smsCodes.deliverChallenge(
      device,
      challenge,
      meta.language ?? config.defaultLanguage,
      isCodePrompt(previous) ? previous.sends : 0,
      (row.recognised ?? ALLOWANCE.other) as Allowance,
    );
    await store.db
      .updateTable('login_flows')
      .set({ prompt: JSON.stringify(prompt) })
      .where('id', '=', row.id)
      .execute();
    await audit.record({
      event: prompt.delivery === 'limited' ? 'sms.rate_limited' : 'login.code_sent',
      userId: row.user_id,
      username: row.username,
      ip: meta.ip,
      data: { flowId: row.id, deviceId: device.id, channel: prompt.channel, delivery: prompt.delivery, sends: prompt.sends },
    });
    return { ...row, prompt: JSON.stringify(prompt) };
  }

  /**
   * M5: "Didn't receive a security code?" / "Request new Security Code": a
   * new code by SMS or read by an automated call. The old code stops
   * working; the wrong answers already given still count (a new code never
   * resets them), and a login may send only a few codes.
   */
  async resendCode(flowId: string, claimToken: string | undefined, channel: 'sms' | 'voice', meta: RequestMeta): Promise<FlowView> {
    const { devices, clock, policy, store, box } = this.deps;
    const row = await this.ownedRow(flowId, claimToken, meta, 'code');
    if (!this.isOpen(row)) throw new SlsError('FLOW_EXPIRED');
    const current = promptOf(row);
    if (!isCodePrompt(current)) throw new SlsError('FLOW_STATE', { reason: 'not_sms' });
    const now = clock.now();
    if (current.sends >= policy.smsSendsPerFlow) throw new SlsError('SMS_RATE_LIMITED', { reason: 'flow', retryAfter: new Date(row.expires_at).toISOString() });
    if (Date.parse(current.resendAfter) > now) throw new SlsError('SMS_TOO_SOON', { retryAfter: current.resendAfter });
    const device = await devices.get(row.device_id!);
    const kind = this.deps.deviceKind(device.type);
    if (!kind.codeChallenge) throw new SlsError('FLOW_STATE', { reason: 'not_sms' });
    const challenge = kind.codeChallenge(await devices.context(device), channel);
    // claims the resend: of concurrent requests one sends; the others find the flow changed, or read a prompt that says "too soon"
    const claim: SmsPrompt = { ...current, sends: current.sends + 1, resendAfter: new Date(now + policy.smsLoginResendMs).toISOString() };
    const claimed = await store.db
      .updateTable('login_flows')
      .set({
        verifier: box.sealJson(challenge.verifier, this.sealContext(flowId)),
        prompt: JSON.stringify(claim),
        expires_at: now + policy.smsCodeTtlMs,
        updated_at: now,
      })
      .where('id', '=', flowId)
      .where('state', '=', 'second_factor')
      .where('updated_at', '=', row.updated_at)
      .where('prompt', '=', row.prompt!)
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) throw new SlsError('SMS_TOO_SOON', { retryAfter: current.resendAfter });
    await this.sendCode({ ...row, updated_at: now }, device, challenge, meta);
    return this.current(flowId);
  }

  private claimHash(claimToken: string): string {
    return this.deps.box.digest(claimToken, 'login-claim');
  }

  private newFlow(input: StartInput, userId: string, username: string, deviceId: string, challenge: Challenge, claimToken: string): FlowRow {
    const { clock, policy, box } = this.deps;
    const now = clock.now();
    const id = newId('flw');
    return newFlowRow({
      id,
      kind: 'login',
      app: input.app,
      username,
      userId,
      deviceId,
      prompt: challenge.prompt,
      sealedVerifier: box.sealJson(challenge.verifier, this.sealContext(id)),
      now,
      expiresAt: now + challengeTtlMs(challenge, policy),
      ip: input.ip,
      userAgent: input.userAgent,
      sessionId: null,
      claimHash: this.claimHash(claimToken),
    });
  }

  /** M2FS (L6): answer with another of the user's active devices; a new challenge is issued. */
  async switchDevice(flowId: string, claimToken: string | undefined, deviceId: string, meta: RequestMeta): Promise<FlowView> {
    const { clock, policy, store, box, audit, users } = this.deps;
    const row = await this.ownedRow(flowId, claimToken, meta, 'device');
    if (!this.isOpen(row)) throw new SlsError('FLOW_EXPIRED');
    if (row.device_switches >= MAX_DEVICE_SWITCHES) throw new SlsError('FLOW_STATE', { reason: 'too many device changes' });
    const user = await users.get(row.user_id);
    const device = (await this.offeredDevices(user.id, user.lastDeviceId, row.app)).usable.find((d) => d.id === deviceId);
    if (!device) throw new SlsError('DEVICE_NOT_FOUND', { id: deviceId });
    const challenge = await this.challengeFor(device);
    const now = clock.now();
    const updated = await store.db
      .updateTable('login_flows')
      .set((eb) => ({
        device_id: device.id,
        prompt: JSON.stringify(challenge.prompt),
        verifier: box.sealJson(challenge.verifier, this.sealContext(flowId)),
        expires_at: now + challengeTtlMs(challenge, policy),
        device_switches: eb('device_switches', '+', 1),
        updated_at: now,
      }))
      .where('id', '=', flowId)
      .where('state', '=', 'second_factor')
      .where('expires_at', '>', now)
      // L4: the limit counted in the row, so that concurrent changes (on one process or several) never pass it together
      .where('device_switches', '<', MAX_DEVICE_SWITCHES)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) {
      const current = await this.row(flowId);
      if (this.isOpen(current) && current.device_switches >= MAX_DEVICE_SWITCHES) throw new SlsError('FLOW_STATE', { reason: 'too many device changes' });
      throw new SlsError('FLOW_EXPIRED');
    }
    await audit.record({
      event: 'login.device_switched',
      userId: user.id,
      username: user.username,
      ip: meta.ip,
      data: { flowId, from: row.device_id, to: device.id, type: device.type },
    });
    if (challenge.code !== undefined) await this.sendCode({ ...row, prompt: JSON.stringify(challenge.prompt) }, device, challenge, meta);
    // the request to the previous device is gone; a push request goes to the new one
    await this.deps.signals.publish(flowTopic(flowId));
    if (challenge.prompt.type === 'push') await this.deps.pushRequests.announce(await this.row(flowId), meta.language);
    return this.current(flowId);
  }

  /**
   * K4: "Click here if you do not receive the notification": the push
   * request is withdrawn and the screen shows a challenge to type into the
   * app, which answers offline (K10).
   */
  async offline(flowId: string, claimToken: string | undefined, meta: RequestMeta): Promise<FlowView> {
    const row = await this.ownedRow(flowId, claimToken, meta, 'offline');
    const device = await this.deps.pushRequests.offline(row);
    await this.deps.audit.record({
      event: 'login.offline_requested',
      userId: row.user_id,
      username: row.username,
      ip: meta.ip,
      data: { flowId, deviceId: device.id },
    });
    return this.current(flowId);
  }

  /**
   * The login page's live connection (K3): answers when the flow is no
   * longer waiting for the phone (approved, failed, expired, answered) or
   * after `waitMs`, with the flow as it is then.
   */
  async wait(flowId: string, claimToken: string | undefined, meta: { ip: string | null }, waitMs: number, abort?: AbortSignal): Promise<FlowView> {
    const owned = await this.ownedRow(flowId, claimToken, meta, 'wait');
    const row = (await this.deps.pushRequests.waitForPhone(() => this.row(flowId), waitMs, abort, owned)) ?? (await this.row(flowId));
    return this.view(row, await this.devicesOf(row));
  }

  /**
   * K3: the phone approved the login; the login page takes its session
   * ("the login proceeds by itself"). Once: a second claim finds the flow
   * done. Only with the claim token given to whoever started the login: an
   * approval never hands a session to someone who merely knows the flow id.
   * With `wait.ms`, the claim is also the page's live connection: it waits
   * (at most that long) for the phone, and takes the session as soon as
   * the approval is in, one request instead of a wait and a claim. A claim
   * whose client went away meanwhile (`wait.abort`) takes nothing.
   */
  async claim(
    flowId: string,
    claimToken: string,
    meta: RequestMeta,
    wait: { ms: number; abort?: AbortSignal } = { ms: 0 },
  ): Promise<{ flow: FlowView; session: IssuedSession }> {
    // L8: as every request on the login: without its claim token, 404 as for an unknown id (no oracle of its existence)
    let row = await this.ownedRow(flowId, claimToken, meta, 'claim');
    if (wait.ms > 0 && row.state === 'second_factor') {
      const ended = await this.deps.pushRequests.waitForPhone(() => this.row(flowId), wait.ms, wait.abort, row);
      if (wait.abort?.aborted) throw new SlsError('FLOW_STATE', { reason: 'not_approved' });
      row = ended ?? (await this.row(flowId));
    }
    const { device, scope } = await this.deps.pushRequests.approval(row, row.app);
    const now = this.deps.clock.now();
    const sessionId = newSessionId();
    const session = await this.failingFlow(row, 'approved', meta, () =>
      this.deps.store.serialized('audit_log', async (trx) => {
        // L3 (decisions 0005, 0027): a lock by failures that landed since the phone approved refuses the login
        if (await this.deps.lockout.lockedNow(trx, row.username)) throw lockedSinceApproval();
        if (!(await completeFlow(trx, flowId, now, sessionId, 'approved'))) return null;
        return this.openSession(trx, row, device, { sessionId, scope, confirmedBy: row.confirmed_by, meta });
      }),
    );
    if (!session) throw new SlsError('FLOW_EXPIRED');
    const { usable } = await this.offeredDevices(row.user_id, device.id, row.app);
    return { flow: this.view({ ...row, state: 'done', session_id: sessionId }, usable), session };
  }

  /**
   * The refusals found under the lock by the transaction that would open the
   * session (`RefusedUnderLock`): A5, a one-time password that opened another
   * session meanwhile (two logins it started at once, on one server process
   * or two: started again, it is refused as a wrong one); L3 (decisions
   * 0005, 0027), a login approved on the phone and taken once the user is
   * locked (ten failures since the approval, or client services: a lock
   * stops logins, whatever was entered). The flow fails, audited, the page
   * waiting on it is told, and the caller gets the refusal's answer.
   */
  private async failingFlow<T>(row: FlowRow, open: 'second_factor' | 'approved', meta: RequestMeta, take: () => Promise<T>): Promise<T> {
    try {
      return await take();
    } catch (error) {
      if (!(error instanceof RefusedUnderLock)) throw error;
      await failFlow(this.deps.store.db, row.id, this.deps.clock.now(), open);
      await this.deps.audit.record({
        event: error.event,
        userId: row.user_id,
        username: row.username,
        ip: meta.ip,
        data: { flowId: row.id, kind: row.kind, ...error.data },
      });
      await this.deps.signals.publish(flowTopic(row.id));
      throw error.answer;
    }
  }

  /**
   * The end of a complete login, in the transaction that closed the flow: a
   * new session, the device offered first next time (L6), the lock's count
   * started again when a permanent device was proven (L3), audited.
   */
  private async openSession(
    trx: Tx,
    row: FlowRow,
    device: Device,
    options: { sessionId: string; scope: SessionScope; confirmedBy: Confirmation | null; meta: RequestMeta },
  ): Promise<IssuedSession> {
    const { sessions, devices, lockout, audit } = this.deps;
    const now = this.deps.clock.now();
    // L8: the device as a revocation that raced this login left it (the audit lock is held): revoked, lost or no longer shared, no session
    await devices.markUsed(trx, device.id, row.user_id);
    // L6: the device offered first next time; A5: a one-time password opens this session and no other
    const loggedIn = await this.deps.users.loggedInWith(trx, row.user_id, device.id, now);
    if (!loggedIn) throw oneTimePasswordUsed();
    const { passwordMustChange } = loggedIn;
    // T3, S3: a temporary device's session ends with the window it was opened in (full access ends after day 2)
    const access = decideAccess(device, this.deps.deviceKind(device.type), row.app, now, this.deps.policy);
    const endsBy = access.allowed ? access.until : undefined;
    const session = await sessions.create(
      {
        id: options.sessionId,
        userId: row.user_id,
        app: row.app,
        flowId: row.id,
        deviceId: device.id,
        deviceType: device.type,
        ip: options.meta.ip,
        userAgent: options.meta.userAgent,
        scope: options.scope,
        confirmedBy: options.confirmedBy,
        passwordMustChange,
        ...(endsBy !== undefined ? { endsBy } : {}),
      },
      trx,
    );
    await sessions.endReplaced(trx, options.meta.replaces, { userId: row.user_id, sessionId: session.id, ip: options.meta.ip });
    // L3: only a login that proved a permanent device starts the count again: a temporary passcode is static and the online
    // card is printed from its session, so a login with either would give whoever holds them fresh guesses at the real device
    if (!this.deps.deviceKind(device.type).temporary) await lockout.reset(row.username, trx);
    if (options.meta.expressed) await this.deps.noticePreferences.remember(trx, row.user_id, options.meta.expressed);
    await audit.append(trx, [
      {
        event: 'login.succeeded',
        userId: row.user_id,
        username: row.username,
        ip: options.meta.ip,
        data: {
          flowId: row.id,
          app: row.app,
          deviceId: device.id,
          deviceType: device.type,
          sessionId: session.id,
          ...(options.confirmedBy ? { confirmedBy: options.confirmedBy } : {}),
        },
      },
    ]);
    // decision 0024: the browser is known to this user from now on (its cookie; a client that is no browser ignores it)
    return { ...session, knownClient: knownClientToken(this.deps.box, row.user_id, now) };
  }

  /**
   * Second factor (L2, L4): at most 3 answers within 5 minutes; an accepted
   * answer is single-use even when submitted concurrently (the answer
   * protocol of flows/answers.ts).
   */
  async answer(flowId: string, claimToken: string | undefined, response: string, meta: RequestMeta): Promise<{ flow: FlowView; session: IssuedSession }> {
    const { clock, policy, devices, box } = this.deps;
    // L8, L3: only the client that started the login answers it: whoever learnt its id neither takes its session with a
    // code they saw, nor uses up its answers and the user's count of failures (404 as for an unknown id, audited)
    const row = await this.ownedRow(flowId, claimToken, meta, 'answer');
    if (!this.isOpen(row)) throw new SlsError('FLOW_EXPIRED');
    // K3: a push request is answered on the phone; typing needs the challenge of K4
    if (promptOf(row)?.type === 'push') throw new SlsError('FLOW_STATE', { reason: 'push' });
    const now = clock.now();
    const sessionId = newSessionId();
    // the flow's device comes with the others the answer's view shows: one read
    const known = await this.userDevices(row.user_id);
    const device = [...known.own, ...(known.shared ? [known.shared] : [])].find((d) => d.id === row.device_id) ?? (await devices.get(row.device_id!));
    const kind = this.deps.deviceKind(device.type);
    let scope: SessionScope = 'full';
    // the answer changes the device's state (a card used up, S4; a new applicant's number confirmed, M2): read the devices again after
    let deviceChanged = isWaitingFirstAnswer(device, kind);
    // read before the answer's transaction: a check that reads nothing else runs inside it (docs/decisions/0019)
    const context = await devices.checkContext(device, kind);
    const session = await this.failingFlow(row, 'second_factor', meta, () =>
      this.deps.answers.answerFlow({
        row,
        deviceType: device.type,
        ip: meta.ip,
        failed: { event: 'login.second_factor_failed', data: { deviceId: device.id } },
        hints: kind.failureHints,
        checkInside: kind.pureCheck === true,
        check: async () => {
          // the device may have been replaced, or its window closed, since the challenge
          const access = decideAccess(device, kind, row.app, now, policy);
          if ((device.state !== 'active' && !isWaitingFirstAnswer(device, kind)) || !access.allowed)
            throw new SlsError(access.allowed ? 'DEVICE_NOT_AVAILABLE' : access.reason);
          scope = access.scope;
          const check = await kind.checkResponse(context, box.openJson<Record<string, unknown>>(row.verifier!, this.sealContext(flowId)), response);
          if (check.usedUp) deviceChanged = true;
          return check.ok ? accepted(device, check, flowId) : null;
        },
        accept: async (trx) => {
          if (!(await completeFlow(trx, flowId, now, sessionId))) return null;
          // a new applicant's first code reached the number: it is verified and SMS is active (M2)
          if (isWaitingFirstAnswer(device, kind)) await this.deps.phones.completeEnrolment(trx, device, meta.ip);
          return this.openSession(trx, row, device, { sessionId, scope, confirmedBy: null, meta });
        },
      }),
    );
    const { usable } = await this.offeredDevices(row.user_id, device.id, row.app, deviceChanged ? undefined : known);
    return { flow: this.view({ ...row, state: 'done', session_id: sessionId, attempts: row.attempts + 1 }, usable), session };
  }
}

/** L2: the answers of a flow that counted against its three: all of them, but the one that completed it. */
function wrongAnswers(row: FlowRow): number {
  return row.state === 'done' ? Math.max(0, row.attempts - 1) : row.attempts;
}

/** A device of a new applicant, waiting for the first answer at login to confirm it (M2: the SMS number). */
function isWaitingFirstAnswer(device: Device, kind: Pick<DeviceKind, 'confirmedAtLogin'>): boolean {
  return kind.confirmedAtLogin === true && device.state === 'requested';
}
