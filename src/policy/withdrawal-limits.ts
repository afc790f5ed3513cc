/**
 * W1: how much a user may withdraw, by the device that protects them: the
 * strongest active permanent device (D2). Temporary access (a temporary
 * passcode, the online card) protects nobody's withdrawals: without a
 * permanent device the limits are those of a user who opted out.
 * Recording withdrawals against the windows is W3's business.
 */
import { DEVICE_STRENGTH, isTemporary, type Device, type DeviceType } from '../devices/types.js';

export interface WithdrawalLimits {
  /** The device that sets the limits; null when none protects the user. */
  device: DeviceType | null;
  /** USD; null when unlimited. */
  perDayUsd: number | null;
  fiveBusinessDaysUsd: number | null;
}

type PermanentType = Exclude<DeviceType, 'online_card' | 'temp_passcode'>;

/** The rows of W1 for the device types the system has, and for none. */
const W1: Record<PermanentType | 'none', { perDayUsd: number | null; fiveBusinessDaysUsd: number | null }> = {
  none: { perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 },
  sms: { perDayUsd: 200_000, fiveBusinessDaysUsd: 600_000 },
  scc: { perDayUsd: 200_000, fiveBusinessDaysUsd: 600_000 },
  mobile: { perDayUsd: 1_000_000, fiveBusinessDaysUsd: 1_000_000 },
  // docs/decisions/0014-security-keys.md: the mobile authenticator's row
  security_key: { perDayUsd: 1_000_000, fiveBusinessDaysUsd: 1_000_000 },
  dscplus: { perDayUsd: null, fiveBusinessDaysUsd: null },
};

export function withdrawalLimits(devices: Device[]): WithdrawalLimits {
  const protecting = devices.filter((d) => d.state === 'active' && !isTemporary(d.type)).sort((a, b) => DEVICE_STRENGTH[b.type] - DEVICE_STRENGTH[a.type])[0];
  const type = (protecting?.type ?? null) as PermanentType | null;
  return { device: type, ...W1[type ?? 'none'] };
}
