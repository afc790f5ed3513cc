import { SlsError } from '../errors.js';
import { dscPlus } from './dscplus/dscplus.js';
import type { DeviceKind, DeviceType } from './types.js';

const KINDS: Record<DeviceType, DeviceKind> = {
  dscplus: dscPlus,
};

export function deviceKind(type: string): DeviceKind {
  const kind = KINDS[type as DeviceType];
  if (!kind) throw new SlsError('DEVICE_NOT_AVAILABLE', { type }, `unknown device type ${type}`);
  return kind;
}
