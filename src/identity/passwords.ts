/**
 * A user changing their own password (A4, A5): the current password proves
 * it is them; a wrong one counts towards the lock like a login's (L3). The
 * user's other sessions end with the old password (L8); a one-time password
 * from client services is replaced.
 */
import { SlsError } from '../errors.js';
import { verifyPassword } from '../crypto/password.js';
import type { Answers } from '../flows/answers.js';
import type { Notifier } from '../notify/notifier.js';
import type { Session, Sessions } from '../sessions/sessions.js';
import type { Users } from './users.js';

export interface PasswordDeps {
  users: Users;
  answers: Answers;
  notifier: Notifier;
  sessions: Sessions;
}

export class Passwords {
  constructor(private readonly deps: PasswordDeps) {}

  async change(session: Session, currentPassword: string, newPassword: string, ip: string | null): Promise<void> {
    const { users, answers, notifier, sessions } = this.deps;
    const user = await users.get(session.userId);
    const who = { username: user.username, userId: user.id, ip, actor: `user:${user.id}`, data: { during: 'password change' } };
    const attempt = await answers.begin(who);
    if (!(await verifyPassword(await users.passwordHash(user.id), currentPassword))) {
      await answers.fail(attempt, who, { event: 'login.password_failed', data: { during: 'password change' } });
      throw new SlsError('INVALID_CREDENTIALS');
    }
    await answers.release(attempt);
    if (newPassword === currentPassword) throw new SlsError('WEAK_PASSWORD', { reason: 'unchanged' });
    await users.setPassword(user.id, newPassword, { actor: `user:${user.id}`, oneTime: false }, (trx) =>
      sessions.endWhere(trx, { userId: user.id, exceptSessionId: session.id }, 'password_changed', `user:${user.id}`),
    );
    await notifier.notifySoon(user, 'passwordChanged', { username: user.username });
  }
}
