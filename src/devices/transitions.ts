/**
 * D3: the states a device may move between. `Devices.transition` is the one
 * writer of a device's state: it refuses a move this table (or the kind's own)
 * does not allow, writes it only if nobody changed the device meanwhile, and
 * audits it.
 *
 *   stock ──► active                       (a DSC+ from stock assigned, D1)
 *   requested ──► shipped ──► active       (C4 shipped, C6 activated)
 *   requested ──► active                   (S2 printed online card, M2 SMS confirmed at login)
 *   active ◄──► suspended                  (D4 temporarily unavailable, K-clone suspicion; reactivated)
 *   shipped ◄──► suspended                 (H5 set aside while sharing; on its way again when it ends)
 *   requested, shipped, active, suspended ──► lost ──► returned   (C5; a card found again comes back)
 *   any but revoked/returned ──► returned, revoked      (C5 return, replaced, removed, used up, expired)
 */
import type { DeviceState } from '../store/schema.js';

export type Transitions = Readonly<Partial<Record<DeviceState, readonly DeviceState[]>>>;

/** The moves of a permanent device. */
export const DEVICE_TRANSITIONS: Transitions = {
  stock: ['active', 'revoked'],
  requested: ['shipped', 'active', 'lost', 'returned', 'revoked'],
  shipped: ['active', 'suspended', 'lost', 'returned', 'revoked'],
  active: ['suspended', 'lost', 'returned', 'revoked'],
  suspended: ['active', 'shipped', 'lost', 'returned', 'revoked'],
  lost: ['returned', 'revoked'],
};

/** The moves of a temporary device (T, S2): it starts requested or active and ends revoked. */
export const TEMPORARY_TRANSITIONS: Transitions = {
  requested: ['active', 'revoked'],
  active: ['revoked'],
};

export function allowedMove(table: Transitions, from: DeviceState, to: DeviceState): boolean {
  return table[from]?.includes(to) ?? false;
}
