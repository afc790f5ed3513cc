/**
 * What a login with a given device may open, decided in one place from the
 * device's kind and age: a kind with an access window says (the temporary
 * passcode's T3, the online card's S3, in their own folders); every other
 * active device opens everything.
 */
import { SlsError } from '../errors.js';
import type { AccessDecision, AccessPolicy, Device, DeviceKind } from '../devices/types.js';
import type { App } from '../sessions/sessions.js';
import type { SessionScope } from '../store/schema.js';

export type { AccessDecision } from '../devices/types.js';

export function decideAccess(device: Device, kind: Pick<DeviceKind, 'access'>, app: App, now: number, policy: AccessPolicy): AccessDecision {
  return kind.access?.(device, app, now, policy) ?? { allowed: true, scope: 'full', check: 'permanent-device' };
}

/**
 * T3: a session opened with a temporary passcode older than 2 days may only
 * print and activate the online security card (and reactivate a device).
 */
export function assertFullScope(session: { scope: SessionScope }): void {
  if (session.scope !== 'full') throw new SlsError('SCOPE_ONLINE_CARD_ONLY');
}
