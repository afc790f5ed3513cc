/**
 * L4, decision 0024: a browser the user completed a login with a second
 * factor in (a device cookie, as OWASP's "device cookies" against lockout
 * attacks): its token, bound to the user and the time it was given by a keyed
 * digest, lets that browser's later logins count in the recognised clients'
 * allowance (decision 0018) from any address, for 90 days — the owner
 * travelling, on a new network, with their own laptop. Someone holding only
 * the password never completes a login, so never holds one. It is no
 * credential: it opens nothing, and only chooses which allowance a flow
 * started with the right password counts in.
 */
import { constantTimeEqual } from '../crypto/constant-time.js';
import type { SecretBox } from '../crypto/secret-box.js';

/** How long a known browser stays known (as a recognised client, decision 0018). */
export const KNOWN_CLIENT_MS = 90 * 24 * 60 * 60 * 1000;

const PURPOSE = 'sls-known-client';

function digestOf(box: SecretBox, userId: string, issuedAt: number): string {
  return box.digest(`${userId}\0${issuedAt}`, PURPOSE);
}

/** The token of a browser in which the user just completed a login with a device. */
export function knownClientToken(box: SecretBox, userId: string, now: number): string {
  return `${now.toString(36)}.${digestOf(box, userId, now)}`;
}

/** Whether a browser's token was given to this user, less than 90 days ago. */
export function isKnownClient(box: SecretBox, userId: string, token: string | undefined, now: number): boolean {
  const match = token === undefined ? null : /^([0-9a-z]{1,11})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match) return false;
  const issuedAt = Number.parseInt(match[1]!, 36);
  if (!Number.isSafeInteger(issuedAt) || issuedAt > now || now - issuedAt >= KNOWN_CLIENT_MS) return false;
  return constantTimeEqual(match[2]!, digestOf(box, userId, issuedAt));
}
