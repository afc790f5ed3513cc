import { SlsError } from '../errors.js';

export const USERNAME_MAX_LENGTH = 64;

/**
 * A3: only letters and digits, else "BAD CHARACTER". Upper-case letters are
 * valid characters but no username has them (usernames are lower case), so at
 * login they simply do not match (L1), as with the Caps Lock key on.
 */
export function assertUsernameCharacters(username: string): void {
  if (!/^[A-Za-z0-9]+$/.test(username)) throw new SlsError('BAD_CHARACTER');
  if (username.length > USERNAME_MAX_LENGTH) {
    throw new SlsError('VALIDATION_ERROR', { field: 'username', reason: 'username_length', max: USERNAME_MAX_LENGTH });
  }
}

/** A3 for a new username: letters and digits, lower case. */
export function assertNewUsername(username: string): void {
  assertUsernameCharacters(username);
  if (username !== username.toLowerCase()) throw new SlsError('USERNAME_NOT_LOWERCASE');
}
