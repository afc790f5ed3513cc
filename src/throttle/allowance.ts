/**
 * L4, M7: the allowances of a user's flows and codes sent (decisions 0018,
 * 0024), as `login_flows.recognised` and `notifications.recognised` store
 * them: the password alone reaches only `other`; `recognised` is the owner's
 * usual clients' (a login with a second factor completed from there in the
 * last 90 days); `session` the proofs a signed-in session asks for (a
 * step-up, a device's activation or PIN change), which only a completed login
 * reaches. Each has the limits of the others; none spends another's.
 */
export const ALLOWANCE = { other: 0, recognised: 1, session: 2 } as const;
export type Allowance = (typeof ALLOWANCE)[keyof typeof ALLOWANCE];
export const ALLOWANCE_NAMES: Record<Allowance, keyof typeof ALLOWANCE> = { 0: 'other', 1: 'recognised', 2: 'session' };
