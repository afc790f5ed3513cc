import { SlsError } from '../errors.js';
import { dscPlus } from './dscplus/dscplus.js';
import { temporaryPasscode } from './temp-passcode/temp-passcode.js';
import { onlineCard, securityCodeCard } from './code-card/code-card.js';
import { smsDevice } from './sms/sms.js';
import { mobileDevice } from './mobile/mobile.js';
import { securityKey } from './security-key/security-key.js';
import type { DeviceKind, DeviceType } from './types.js';

const KINDS: Record<DeviceType, DeviceKind> = {
  dscplus: dscPlus,
  mobile: mobileDevice,
  scc: securityCodeCard,
  sms: smsDevice,
  online_card: onlineCard,
  temp_passcode: temporaryPasscode,
  security_key: securityKey,
};

export function deviceKind(type: string): DeviceKind {
  const kind = KINDS[type as DeviceType];
  if (!kind) throw new SlsError('DEVICE_NOT_AVAILABLE', { type }, `unknown device type ${type}`);
  return kind;
}
