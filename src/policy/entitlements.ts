/**
 * W2: what a user protected by the Secure Login System may do without the
 * security team. The seed's benefits of enrolment: enrolled users may change
 * their banking instructions and e-mail address without contact from the
 * security team, make ACH and EFT deposits beyond an initial USD 20,000
 * account funding, and share one device among their usernames. A user is
 * enrolled while a permanent device protects them (the device W1 names);
 * temporary access (a temporary passcode, the online card) and opting out
 * (O1) enrol no one.
 */
import type { DeviceType } from '../devices/types.js';

/** W2: the initial account funding by ACH/EFT that needs no enrolment (USD). */
export const INITIAL_FUNDING_USD = 20_000;

export interface Entitlements {
  /** Protected by a permanent device (W1's row is not "none"). */
  enrolled: boolean;
  /** May change banking instructions without contact from the security team. */
  changeBankingInstructions: boolean;
  /** May change the e-mail address without contact from the security team. */
  changeEmail: boolean;
  /** May make ACH and EFT deposits beyond the initial funding. */
  achEftBeyondInitialFunding: boolean;
  /** The initial ACH/EFT funding allowed without enrolment (USD). */
  initialFundingUsd: number;
  /** May share one device among the entity's usernames (the sharing rules, H1, still apply). */
  shareDevice: boolean;
  /** O1: may trade Pink Sheet and OTCBB stocks; refused while the user opted out of the second factor for trading. */
  otcTrading: boolean;
}

/** W2, decided by the device that protects the user (null: none); O1: restricted while the user opted out. */
export function entitlementsOf(device: DeviceType | null, optedOut = false): Entitlements {
  const enrolled = device !== null && !optedOut;
  return {
    enrolled,
    changeBankingInstructions: enrolled,
    changeEmail: enrolled,
    achEftBeyondInitialFunding: enrolled,
    initialFundingUsd: INITIAL_FUNDING_USD,
    shareDevice: enrolled,
    otcTrading: !optedOut,
  };
}
