/**
 * W1: how much a user may withdraw, by the device that protects them: the
 * strongest active permanent device (D2). Temporary access (a temporary
 * passcode, the online card) protects nobody's withdrawals: without a
 * permanent device the limits are those of a user who opted out. Each kind
 * carries its strength and its row; this decides among them.
 * Recording withdrawals against the windows is W3's business.
 */
import type { Device, DeviceKinds, DeviceType, WithdrawalRow } from '../devices/types.js';

export interface WithdrawalLimits extends WithdrawalRow {
  /** The device that sets the limits; null when none protects the user. */
  device: DeviceType | null;
}

/** W1's row for a user no permanent device protects (and for one who opted out, O2). */
export const NO_DEVICE_ROW: WithdrawalRow = { perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 };

export function withdrawalLimits(devices: Device[], kinds: DeviceKinds): WithdrawalLimits {
  const protecting = devices.filter((d) => d.state === 'active' && !kinds(d.type).temporary).sort((a, b) => kinds(b.type).strength - kinds(a.type).strength)[0];
  if (!protecting) return { device: null, ...NO_DEVICE_ROW };
  return { device: protecting.type, ...(kinds(protecting.type).withdrawalRow ?? NO_DEVICE_ROW) };
}

/** How weak a row is: its daily limit, then its 5-day limit (null: unlimited); the lower, the weaker. */
function weakness(l: WithdrawalRow): [number, number] {
  return [l.perDayUsd ?? Number.POSITIVE_INFINITY, l.fiveBusinessDaysUsd ?? Number.POSITIVE_INFINITY];
}

/** The weaker of two rows (the lower daily limit, then the lower 5-day limit); `a` when they are alike. */
export function weakerLimits(a: WithdrawalLimits, b: WithdrawalLimits): WithdrawalLimits {
  const [aDay, aFive] = weakness(a);
  const [bDay, bFive] = weakness(b);
  return bDay < aDay || (bDay === aDay && bFive < aFive) ? b : a;
}
