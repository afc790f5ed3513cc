/**
 * A user changing their own password (A4, A5): the current password proves
 * it is them; a wrong one counts towards the lock like a login's (L3).
 */
import type { Services } from '../services.js';
import { SlsError } from '../errors.js';
import { verifyPassword } from '../crypto/password.js';

export type PasswordDeps = Pick<Services, 'users' | 'lockout' | 'audit' | 'notifier'>;

export class Passwords {
  constructor(private readonly deps: PasswordDeps) {}

  async change(userId: string, currentPassword: string, newPassword: string, ip: string | null): Promise<void> {
    const { users, lockout, audit, notifier } = this.deps;
    const user = await users.get(userId);
    const attempt = await lockout.begin(user.username);
    if (!(await verifyPassword(await users.passwordHash(user.id), currentPassword))) {
      const failure = await lockout.fail(attempt);
      await audit.record({ event: 'login.password_failed', userId: user.id, username: user.username, ip, data: { during: 'password change', failures: failure.failures } });
      throw new SlsError('INVALID_CREDENTIALS');
    }
    await lockout.release(attempt);
    if (newPassword === currentPassword) throw new SlsError('WEAK_PASSWORD', { reason: 'unchanged' });
    await users.setPassword(user.id, newPassword, { actor: `user:${user.id}`, oneTime: false });
    await notifier.notify(user, 'passwordChanged', { username: user.username });
  }
}
