/**
 * What a login with a given device may open, decided in one place by named
 * checks (GUIDE lesson 4) from the device and its age:
 *
 * - temporary passcode (T3): full access to portal and trading for 2 days;
 *   then, until day 12, the portal only, for the online security card
 *   pages; after that nothing;
 * - online security card (S3): full access for 21 days from activation;
 * - every other active device: full access.
 */
import type { PolicyConfig } from '../config.js';
import { SlsError, type ErrorCode } from '../errors.js';
import type { Device } from '../devices/types.js';
import type { App } from '../sessions/sessions.js';
import type { SessionScope } from '../store/schema.js';

export type AccessDecision = { allowed: true; scope: SessionScope; check: string } | { allowed: false; reason: ErrorCode; check: string };

export interface AccessCheck {
  name: string;
  /** A decision, or null when the check does not concern this device. */
  decide(device: Device, app: App, now: number, policy: PolicyConfig): AccessDecision | null;
}

const temporaryPasscodeWindow: AccessCheck = {
  name: 'temporary-passcode-window',
  decide(device, app, now, policy) {
    if (device.type !== 'temp_passcode') return null;
    const age = now - (device.activatedAt ?? device.createdAt);
    const check = this.name;
    if (age >= policy.temporaryPasscodeLifeMs) return { allowed: false, reason: 'TEMP_PASSCODE_EXPIRED', check };
    if (age < policy.temporaryPasscodeFullMs) return { allowed: true, scope: 'full', check };
    if (app === 'trading') return { allowed: false, reason: 'TEMP_PASSCODE_PORTAL_ONLY', check };
    return { allowed: true, scope: 'online_card_only', check };
  },
};

const onlineCardWindow: AccessCheck = {
  name: 'online-card-window',
  decide(device, _app, now, policy) {
    if (device.type !== 'online_card') return null;
    const age = now - (device.activatedAt ?? now);
    if (age >= policy.onlineCardLifeMs) return { allowed: false, reason: 'ONLINE_CARD_EXPIRED', check: this.name };
    return { allowed: true, scope: 'full', check: this.name };
  },
};

const CHECKS: AccessCheck[] = [temporaryPasscodeWindow, onlineCardWindow];

export function decideAccess(device: Device, app: App, now: number, policy: PolicyConfig): AccessDecision {
  for (const check of CHECKS) {
    const decision = check.decide(device, app, now, policy);
    if (decision) return decision;
  }
  return { allowed: true, scope: 'full', check: 'permanent-device' };
}

/**
 * T3: a session opened with a temporary passcode older than 2 days may only
 * print and activate the online security card (and reactivate a device).
 */
export function assertFullScope(session: { scope: SessionScope }): void {
  if (session.scope !== 'full') throw new SlsError('SCOPE_ONLINE_CARD_ONLY');
}
