/**
 * The common interface of second-factor device types (GUIDE lesson 1): each
 * type lives in its own folder and implements a challenge and a check; the
 * login flow knows nothing of how a device works.
 */
import type { PolicyConfig } from '../config.js';
import type { ErrorCode } from '../errors.js';
import type { DeviceState, SessionScope } from '../store/schema.js';
import type { Transitions } from './transitions.js';

/** M7: codes sent by SMS or voice have 6 digits (the SMS device's, and the mobile authenticator's activation token). */
export const SMS_CODE_DIGITS = 6;

/** The device types this server ships (src/devices/registry.ts); a deployment may register more kinds. */
export type BuiltInDeviceType = 'dscplus' | 'dsc' | 'token_hotp' | 'token_totp' | 'mobile' | 'scc' | 'sms' | 'online_card' | 'temp_passcode' | 'security_key';

/** A device type: the name of a registered kind. */
export type DeviceType = string;

/** W1: what a user may withdraw while a device of a kind protects them (USD; null: unlimited). */
export interface WithdrawalRow {
  perDayUsd: number | null;
  fiveBusinessDaysUsd: number | null;
}

/** What a login with a device may open (T3, S3): the session's scope, or why not. */
/** `until`: when the decision stops holding (T3, S3: the end of the device's window); a session it opens ends by then (L8). */
export type AccessDecision = { allowed: true; scope: SessionScope; check: string; until?: number } | { allowed: false; reason: ErrorCode; check: string };

/** The policy figures a kind's access window reads (T3, S3). */
export type AccessPolicy = Pick<PolicyConfig, 'temporaryPasscodeLifeMs' | 'temporaryPasscodeFullMs' | 'onlineCardLifeMs'>;

export interface Device {
  id: string;
  userId: string | null;
  type: DeviceType;
  state: DeviceState;
  serial: string | null;
  label: string | null;
  params: Record<string, unknown>;
  createdAt: number;
  activatedAt: number | null;
  lastUsedAt: number | null;
  expiresAt: number | null;
}

/** What the client must show for the second factor (part of the flow's public view). */
export type Prompt =
  | { type: 'ocra'; question: string; digits: number }
  | { type: 'passcode' }
  /** D1: the one-time password a token shows (Platinum, Gold: HOTP or TOTP); nothing to type into it. */
  | { type: 'otp'; digits: number }
  /** S1: the codes under two index numbers of a card, one after the other. */
  | { type: 'index'; indexes: [number, number] }
  /** M4, M5: a code sent to a mobile number by SMS or read by an automated call. */
  | SmsPrompt
  /**
   * K3, K13: a push request to the mobile authenticator; the login screen
   * shows the 2-digit number the user types into the app.
   */
  | { type: 'push'; number: string }
  /** A FIDO2 security key or passkey: options for navigator.credentials.get (PublicKeyCredentialRequestOptionsJSON). */
  | { type: 'webauthn'; options: Record<string, unknown> };

/** Whether a prompt is a code sent by SMS or voice (M4, M5), which may be sent again. */
export function isCodePrompt(prompt: Prompt | null | undefined): prompt is SmsPrompt {
  return prompt?.type === 'sms';
}

/** How the code of an SMS challenge went out (M4, M5, M7). */
export interface SmsPrompt {
  type: 'sms';
  /** The number, masked (M6). */
  to: string;
  channel: 'sms' | 'voice';
  /** sent; failed (the gateway refused or did not answer); limited (send limits reached). */
  delivery: 'sent' | 'failed' | 'limited';
  /**
   * M7: why a delivery failed when it is not the gateway: the number's
   * country is not served (SLS_SMS_COUNTRIES), by SMS or voice. Shown after
   * the password only, with the masked number that already shows its calling code.
   */
  reason?: 'country_not_served';
  /** ISO time from which a new code may be requested (M5). */
  resendAfter: string;
  /** Codes sent in this login so far. */
  sends: number;
  /** The number is confirmed by this code: a new applicant starting on SMS (M2). */
  confirmsNumber: boolean;
  digits: number;
}

export interface Challenge {
  prompt: Prompt;
  /** Server-side state needed to check the answer; sealed to the flow. */
  verifier: Record<string, unknown>;
  /** A code to send to the user out of band (SMS, voice); never shown or stored in clear. */
  code?: string;
}

export interface CheckResult {
  ok: boolean;
  /**
   * Identify the accepted answer for single use (L4): they are recorded per
   * device with the answer, and an answer any of whose keys was recorded
   * before — even concurrently — is refused. Without keys the flow's id is
   * the key (the answer is single-use within its flow).
   */
  replayKeys?: string[];
  /** The accepted answer left the device without another answer to give: it is used up (S4). */
  usedUp?: boolean;
  /** The device's secret after this answer (a signature counter that moved on): written when the answer is accepted. */
  secret?: unknown;
}

/** Where the pages are, for devices bound to it (WebAuthn): SLS_PUBLIC_URL, or http://localhost:<port>. */
export interface RelyingParty {
  origin: string;
  rpId: string;
}

/** Why a device's check found it compromised: it is suspended, audited as `device.<reason>` and its user told. */
export type Suspicion = 'clone_suspected';

export interface DeviceContext {
  device: Device;
  /** Decrypts the device secret (D5). */
  secret<T>(): T;
  /** Whether an answer with this replay key was already accepted for the device. */
  wasUsed(replayKey: string): Promise<boolean>;
  /** Which of these replay keys were already accepted for the device. */
  used(replayKeys: string[]): Promise<Set<string>>;
  /** A keyed digest bound to this device, for secrets kept only as hashes (T5). */
  digest(value: string): string;
  /** Where the pages are (WebAuthn's relying party). */
  relyingParty: RelyingParty;
  /** The server's time now (ms), for time-based codes (TOTP). */
  now: number;
  /** The device looks compromised: it is suspended (if active), audited as `device.<reason>`, and its user told. */
  suspect(reason: Suspicion, data: Record<string, unknown>): Promise<void>;
}

/**
 * D1, C8: a key read from an import file (PSKC, RFC 6030), decrypted: what a
 * kind needs to make a device of it.
 */
export interface ImportedKey {
  /** DeviceInfo/SerialNo: the physical device's serial (several keys may share it). */
  serial: string;
  /** DeviceInfo/Manufacturer. */
  manufacturer?: string;
  /** DeviceInfo/Model (e.g. Platinum, Gold). */
  model?: string;
  /** Key@Id. */
  keyId: string;
  /** Key@Algorithm URI, e.g. `urn:ietf:params:xml:ns:keyprov:pskc:hotp`. */
  algorithm: string;
  /** The algorithm family the URI names: event-based (RFC 4226), time-based (RFC 6238) one-time passwords, or OCRA (RFC 6287). */
  family: 'hotp' | 'totp' | 'ocra';
  /** AlgorithmParameters/Suite: the OCRA suite of an OCRA key; the hash (e.g. HMAC-SHA256) of an HOTP or TOTP key. */
  suite?: string;
  /** AlgorithmParameters/ResponseFormat@Length: the digits of the code. */
  responseLength?: number;
  /** The (decrypted) key bytes. */
  secret: Buffer;
  /** Data/Counter: the event counter (HOTP). */
  counter?: number;
  /** Data/Time: T0, the Unix time (seconds) the time steps count from (TOTP). */
  time?: number;
  /** Data/TimeInterval: the time step in seconds (TOTP). */
  timeInterval?: number;
  /** Data/TimeDrift: the token clock's known drift, in time steps (TOTP). */
  timeDrift?: number;
}

/** What an imported key makes: the stock device of a kind, before it is issued to a user. */
export interface StockItem {
  /** The secret sealed in the device row (D5). */
  secret: unknown;
  params: Record<string, unknown>;
  label: string;
}

/** D1: an import's drift windows for one-time-password tokens (`sls device import-pskc --look-ahead --time-window`). */
export interface ImportSettings {
  /** HOTP: how many counters past the expected one an answer may be (RFC 4226 §7.4 look-ahead). */
  lookAhead?: number;
  /** TOTP: how many time steps either side of now an answer may be (RFC 6238 §5.2, §6). */
  timeWindow?: number;
}

/** D1, C8: how a kind's devices come from imported keys and are issued from the stock. */
export interface StockKind {
  /** The stock device an imported key makes, or null when the key's algorithm is not this kind's. */
  fromKey(key: ImportedKey, settings: ImportSettings): StockItem | null;
  /**
   * D1: a stock device is issued to a user as it is (`sls device assign`,
   * the legacy tokens); false when the kind has its own issuing path (the
   * DSC+ takes its PIN).
   */
  assignAsIs: boolean;
  /** What the emulator's file (`sls token --card`) holds for an issued device: its algorithm and parameters, from its secret. */
  tokenFile?(device: Device, secret: unknown): Record<string, unknown>;
}

export interface DeviceCapabilities {
  reactivate?: boolean;
  /** C5, H5: sent back to the broker when no longer needed (its deposit released): the DSC+. */
  returnable?: boolean;
  changePin?: boolean;
  reportLost?: boolean;
}

/** What the user may do with a device now: its kind's capabilities in the device's state. */
export interface DeviceActions {
  reactivate: boolean;
  changePin: boolean;
  reportLost: boolean;
}

export function deviceActions(device: Pick<Device, 'state'>, kind: Pick<DeviceKind, 'capabilities'>): DeviceActions {
  const can = kind.capabilities ?? {};
  return {
    reactivate: can.reactivate === true && (device.state === 'suspended' || device.state === 'shipped'),
    changePin: can.changePin === true && device.state === 'active',
    reportLost: can.reportLost === true && ['active', 'suspended', 'shipped'].includes(device.state),
  };
}

export interface DeviceKind {
  type: DeviceType;
  /**
   * D2: the kind's rank for sharing and for the withdrawal limits, higher is
   * stronger (DSC+ = Platinum = Gold tokens 100 > security key 80 > legacy
   * DSC 70 > mobile authenticator 60 > SCC 40 > SMS 20 > temporary kinds).
   */
  strength: number;
  /**
   * I1: what a login with it proved, as RFC 8176 authentication method
   * references in the ID token's `amr` (besides `pwd`): `hwk` a hardware
   * key, `swk` a software key, `otp` a one-time code, `sms`, `pin`; empty
   * for a temporary kind that proves no device; none said: `mfa` only.
   */
  amr?: readonly string[];
  /**
   * I1: what a typed answer (challenge/response) proves besides `amr`, for a
   * kind whose other way to answer says it by how the phone confirmed (K3:
   * `pin`, `user`): the authenticator's offline response has the PIN folded
   * in (K4), so `pin`.
   */
  typedAmr?: readonly string[];
  /**
   * T, S2: the kind stands in for a permanent device for a while: it protects
   * no withdrawals, and it ends when a permanent device is activated (D4).
   */
  temporary: boolean;
  /**
   * H, K6, D6, K7: a physical security device the user holds — a card or a
   * token that shows codes (DSC+, Platinum / Gold, the legacy DSC, the
   * Security Code Card). Only such a device is shared between usernames
   * (H1): not the mobile authenticator (K6: users are added in the app), not
   * SMS (a phone number), not a security key (D6: each username registers
   * its own), not a temporary kind. It is also what proves possession
   * instead of an SMS token when the mobile authenticator is activated,
   * migrated or recovered (K7, K8).
   */
  physical?: boolean;
  /**
   * K7, K8, X7: a device that is not physical (never shared, H) but proves
   * possession as a physical one does when the mobile authenticator is
   * activated, migrated or recovered: a security key (D6), with its
   * assertion. A password and a number on record never move its protection
   * to a phone.
   */
  provesPossession?: boolean;
  /** W1: the limits while this kind is the user's strongest permanent device; temporary kinds have none. */
  withdrawalRow?: WithdrawalRow;
  /**
   * T3, S3: what a login with the device may open, by its age; without it an
   * active device opens everything.
   */
  access?(device: Device, app: 'portal' | 'trading', now: number, policy: AccessPolicy): AccessDecision;
  /**
   * S2: a kind the user activates by itself once it is ready (the online
   * card, after its print is confirmed): why it is not ready, or null; and
   * how long it lasts from activation.
   */
  selfActivation?: { notReady(device: Device): ErrorCode | null; lifeMs(policy: AccessPolicy): number };
  /** D3: the kind's own state moves, when they are not those of its class (src/devices/transitions.ts). */
  transitions?: Transitions;
  /** T3, S2: a session opened with it says the access is temporary and leads to the online security card. */
  leadsToOnlineCard?: boolean;
  /**
   * M2: a requested device of this kind is offered at login and activated by
   * its first accepted answer (a new applicant's SMS number, confirmed by the code).
   */
  confirmedAtLogin?: boolean;
  /** A5: the app on the device receives messages from client services (a one-time password). */
  receivesMessages?: boolean;
  /** Translation keys of the steps shown with the kind's challenge at login and step-up (L2, K4). */
  promptSteps?: string[];
  /** Translation keys of hints shown after a wrong answer (L5). */
  failureHints: string[];
  issueChallenge(ctx: DeviceContext): Promise<Challenge>;
  checkResponse(ctx: DeviceContext, verifier: Record<string, unknown>, response: string): Promise<CheckResult>;
  /**
   * `checkResponse` uses nothing of its context but the secret, `digest` and
   * `now` (no used answers read, nothing suspected): it may run inside the
   * transaction that takes the answer (docs/decisions/0019).
   */
  pureCheck?: boolean;
  /**
   * What a user may do with a device of this kind from the security
   * settings; the pages and the device proofs read these flags, never the
   * type. `reactivate`: a suspended or shipped device comes back by proving
   * itself (D4, C6) — not a key suspended as cloned, which would prove
   * itself; `changePin`: its PIN is changed with a proof (C3); `reportLost`:
   * reported lost, it is replaced (C5).
   */
  capabilities?: DeviceCapabilities;
  /**
   * K3, V1: a push request answered in the device's app, offered before
   * `issueChallenge` at login and step-up (the mobile authenticator).
   */
  pushChallenge?(): Challenge;
  /** M5: a new code to send by SMS or read by an automated call (the SMS device). */
  codeChallenge?(ctx: DeviceContext, channel: 'sms' | 'voice'): Challenge;
  /**
   * D1, C8: devices of the kind come from imported keys (PSKC), each key
   * to the kind its algorithm names. Without it no key imports as this kind.
   */
  stock?: StockKind;
}

/**
 * The registry of device kinds (src/devices/registry.ts): the composition
 * root passes it to the flows, which never import a kind themselves.
 */
export type DeviceKinds = ((type: string) => DeviceKind) & {
  /** Every registered kind. */
  readonly all: readonly DeviceKind[];
};

/** The types of the registered temporary kinds (T, S2). */
export function temporaryTypes(kinds: DeviceKinds): DeviceType[] {
  return kinds.all.filter((k) => k.temporary).map((k) => k.type);
}

/** A mobile number of a user (M1, M2, M6); src/devices/sms/phones.ts keeps them. */
export interface Phone {
  id: string;
  country: string;
  e164: string;
  /** For showing: the calling code and the last two digits (M6). */
  masked: string;
  verified: boolean;
  verifiedAt: number | null;
  createdAt: number;
  /** A confirm code was sent and may still be entered. */
  codePending: boolean;
  /** When a new confirm code may be requested (M1). */
  resendAfter: number | null;
}

/**
 * R2, D2, K7 (decision 0023): a device reported lost by its user from a
 * session that proved only a weaker device, within the wait after the report
 * (`params.weakerLossReport.until`): it still counts as held when a new
 * device is bound, so that whoever holds the password and a SIM never
 * reports a DSC+ lost and brings in a device of their own at once. A card
 * marked returned keeps the wait (decision 0036): a return by client
 * services is no admin's confirmation, and one unverified starts it. A staff
 * member's (`untilConfirmed`, decision 0035): until an admin ends the wait.
 */
export function lossUnconfirmed(device: Device, now: number): boolean {
  const report = device.params.weakerLossReport as { until?: unknown; untilConfirmed?: unknown } | undefined;
  // X7, D2 (decision 0035): a staff member's card waits until an admin ends the wait, never by itself
  return (
    (device.state === 'lost' || device.state === 'returned') && typeof report?.until === 'number' && (report.until > now || report.untilConfirmed === true)
  );
}
