/**
 * The registry of device kinds: the composition root builds it (with the
 * kinds a deployment adds) and passes it to the flows, the policies and the
 * help desk, which never import a kind themselves.
 */
import { SlsError } from '../errors.js';
import { dscPlus } from './dscplus/dscplus.js';
import { temporaryPasscode } from './temp-passcode/temp-passcode.js';
import { onlineCard, securityCodeCard } from './code-card/code-card.js';
import { smsDevice } from './sms/sms.js';
import { mobileDevice } from './mobile/mobile.js';
import { securityKey } from './security-key/security-key.js';
import { legacyDsc } from './dsc/dsc.js';
import { hotpToken, totpToken } from './otp-token/otp-token.js';
import type { DeviceKind, DeviceKinds } from './types.js';

export const BUILT_IN_KINDS: readonly DeviceKind[] = [
  dscPlus,
  hotpToken,
  totpToken,
  securityKey,
  legacyDsc,
  mobileDevice,
  securityCodeCard,
  smsDevice,
  onlineCard,
  temporaryPasscode,
];

/** The kinds by type: the built-in ones and `extra` (a deployment's own; a type may not be registered twice). */
export function deviceKinds(extra: readonly DeviceKind[] = []): DeviceKinds {
  const byType = new Map<string, DeviceKind>();
  for (const kind of [...BUILT_IN_KINDS, ...extra]) {
    if (byType.has(kind.type)) throw new Error(`device kind ${kind.type} is registered twice`);
    byType.set(kind.type, kind);
  }
  const lookup = (type: string): DeviceKind => {
    const kind = byType.get(type);
    if (!kind) throw new SlsError('DEVICE_NOT_AVAILABLE', { type }, `unknown device type ${type}`);
    return kind;
  };
  return Object.assign(lookup, { all: [...byType.values()] });
}
