/**
 * What the flows ask of the services around them, as small interfaces: the
 * flows import no device kind (src/devices/<kind>/) and not the help desk;
 * the composition root (src/services.ts) passes the objects that do the work
 * (the mobile authenticator's push requests, the SMS codes and numbers, the
 * help desk), and device kinds may take these types in turn.
 */
import type { Allowance } from '../throttle/allowance.js';
import type { Challenge, Device, SmsPrompt } from '../devices/types.js';
import type { Language } from '../i18n/i18n.js';
import type { User } from '../identity/users.js';
import type { App } from '../sessions/sessions.js';
import type { Executor, Tx } from '../store/database.js';
import type { SessionScope } from '../store/schema.js';
import type { FlowRow } from './flow-rows.js';

/** K3, K4, K13: push requests to the mobile authenticator (src/devices/mobile/push-requests.ts). */
export interface PushApprovals {
  /**
   * Signals the device of a new request and asks the push provider to wake the app; or, when the phone must
   * be left alone (K13: push fatigue), makes the flow's prompt the app's challenge (K4). The flow as it now stands.
   */
  announce(row: FlowRow, language?: Language): Promise<FlowRow>;
  /** K4: no notification came; the flow's push request becomes a challenge typed from the app. */
  offline(row: FlowRow): Promise<Device>;
  /** Waits until the flow is no longer a pending push request, or `waitMs` has passed. */
  waitForPhone(read: () => Promise<FlowRow>, waitMs: number, abort?: AbortSignal, first?: FlowRow): Promise<FlowRow | null>;
  /** The device and scope of an approved push request. */
  approval(row: FlowRow, app: App): Promise<{ device: Device; scope: SessionScope }>;
}

/** M4, M5, M7: sends the code of an SMS challenge within the send limits (src/devices/sms/codes.ts). */
export interface CodeDelivery {
  deliverChallenge(device: Device, challenge: Challenge, language: Language, sends?: number, allowance?: Allowance): Promise<SmsPrompt>;
}

/** M2: the SMS device of a user with a verified number, or of a new applicant (src/devices/sms/phones.ts). */
export interface LoginPhones {
  deviceForLogin(userId: string, ip: string | null): Promise<Device | null>;
  /** The number of an SMS device proven in a login is verified. */
  completeEnrolment(trx: Tx, device: Device, ip: string | null): Promise<void>;
}

/** T, S2: temporary devices end once a permanent one is activated (src/helpdesk/helpdesk.ts). */
export interface TemporaryDevices {
  revokeTemporaryDevices(user: User, actor: string, reason: string, trx?: Tx, keepSession?: { id: string; device: Device }): Promise<number>;
}

/** H: the device another username shares with the user, while the sharing is in force (src/sharing/sharing.ts). */
export interface SharedDevices {
  /** The shared device if it is active, else null. */
  sharedWith(userId: string): Promise<Device | null>;
  /** The user's own devices (every state) and the shared one as `sharedWith` gives it, in one read. */
  withOwnDevices(userId: string): Promise<{ own: Device[]; shared: Device | null }>;
  /** H5: whether a sharing in force sets the user's own devices aside (they come back when the sharing ends). */
  setsAside(userId: string, db?: Executor): Promise<boolean>;
}
