/**
 * I1: how a login is told to relying parties. `acr` is a level by the
 * device's strength (D2) and whether the access is temporary (T, S2):
 *
 *   urn:sls:acr:password   the password alone (a trading login opted out of the second factor, O1)
 *   urn:sls:acr:temporary  a temporary passcode or online security card (T3, S3)
 *   urn:sls:acr:device     a permanent device of strength below 60: Security Code Card, SMS
 *   urn:sls:acr:strong     a permanent device of strength 60 and above: mobile authenticator,
 *                          legacy DSC, security key, DSC+, Platinum and Gold tokens
 *
 * A request's `acr_values` names the lowest level it accepts; a higher level
 * satisfies it. `amr` (RFC 8176) is `pwd`, the kind's own references
 * (`hwk`, `swk`, `otp`, `sms`, `pin`), how the phone confirmed (`pin`, or
 * `user` for a biometric the app does not name) or, for an answer typed
 * instead, what that proves (the kind's `typedAmr`: K4's PIN), and `mfa`
 * when a device was proved besides the password.
 */
import type { DeviceKind } from '../devices/types.js';
import type { Confirmation } from '../store/schema.js';

export const ACR_VALUES = ['urn:sls:acr:password', 'urn:sls:acr:temporary', 'urn:sls:acr:device', 'urn:sls:acr:strong'] as const;
export type Acr = (typeof ACR_VALUES)[number];

/** I1: how long ID and access tokens live (seconds); a retired signing key stays published this long and a minute more. */
export const TOKEN_LIFETIME_S = 3600;

/** D2: from this strength on a permanent device is `strong`. */
const STRONG_FROM = 60;

export function acrRank(acr: string): number {
  return (ACR_VALUES as readonly string[]).indexOf(acr);
}

export function acrOf(kind: Pick<DeviceKind, 'strength' | 'temporary'> | null): Acr {
  if (kind === null) return 'urn:sls:acr:password';
  if (kind.temporary) return 'urn:sls:acr:temporary';
  return kind.strength >= STRONG_FROM ? 'urn:sls:acr:strong' : 'urn:sls:acr:device';
}

export function amrOf(kind: Pick<DeviceKind, 'amr' | 'typedAmr'> | null, confirmedBy: Confirmation | null): string[] {
  // no confirmation from the phone: the answer was typed (K4: the authenticator's offline response proves the PIN)
  const amr = new Set(['pwd', ...(kind?.amr ?? []), ...(confirmedBy === null ? (kind?.typedAmr ?? []) : [])]);
  if (confirmedBy === 'pin') amr.add('pin');
  if (confirmedBy === 'biometric') amr.add('user');
  if (kind !== null && amr.size > 1) amr.add('mfa');
  return [...amr];
}

/**
 * The lowest level a request's `acr_values` accepts (space-separated, in
 * preference order): the lowest of those we know; null when none is ours
 * (then any level does, as the values are voluntary).
 */
export function requiredAcrRank(acrValues: string | undefined): number | null {
  if (!acrValues) return null;
  const ranks = acrValues
    .split(' ')
    .map(acrRank)
    .filter((rank) => rank >= 0);
  return ranks.length === 0 ? null : Math.min(...ranks);
}
