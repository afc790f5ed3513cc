/**
 * The first factor (L1, L3), shared by the login and by the activation of
 * the mobile authenticator (K1): username and password, under the lock,
 * with the same answer, status and time for an unknown user.
 */
import { SlsError } from '../errors.js';
import { hashPassword, verifyPassword } from '../crypto/password.js';
import { newToken } from '../crypto/random.js';
import type { AuditInput } from '../audit/audit-log.js';
import { assertUsernameCharacters } from '../identity/username.js';
import type { User } from '../identity/users.js';
import type { Attempt } from '../policy/lockout.js';
import type { Services } from '../services.js';

export interface FirstFactorInput {
  username: string;
  password: string;
  ip: string | null;
  /** What the password opens: an application (portal, trading) or the activation of the authenticator. */
  purpose: string;
}

export type FirstFactorDeps = Pick<Services, 'audit' | 'lockout' | 'users' | 'notifier'>;

export class FirstFactor {
  /** Checked against when the username is unknown, so that it takes as long as a real check (L1). */
  private dummyHash: Promise<string> | undefined;

  constructor(private readonly deps: FirstFactorDeps) {}

  /** N1: the user hears of the lock (an unknown username has nobody to tell). */
  async noticeLock(userId: string, until: number | null): Promise<void> {
    const user = await this.deps.users.get(userId);
    await this.deps.notifier.notify(user, 'userLocked', { username: user.username, until: until === null ? '' : new Date(until).toISOString() });
  }

  /**
   * The user whose password it is, and the lock attempt still open: the
   * caller releases it once the second step is set up (a right password is
   * no failure), or counts it as one.
   */
  async check(input: FirstFactorInput): Promise<{ user: User; attempt: Attempt }> {
    const { audit, lockout, users } = this.deps;
    assertUsernameCharacters(input.username);
    const meta = { username: input.username, ip: input.ip };

    let attempt;
    try {
      attempt = await lockout.begin(input.username);
    } catch (error) {
      if (error instanceof SlsError && error.code === 'LOCKED') {
        const user = await users.findByUsername(input.username);
        await audit.record({ event: 'login.refused_locked', userId: user?.id ?? null, ...meta, data: { factor: 'password', app: input.purpose } });
      }
      throw error;
    }

    const found = await users.findForLogin(input.username);
    const user = found?.user ?? null;
    const usable = user !== null && user.status === 'active';
    const hash = usable ? found!.passwordHash : await (this.dummyHash ??= hashPassword(newToken()));
    const passwordOk = (await verifyPassword(hash, input.password)) && usable;
    if (!passwordOk) {
      const outcome = await lockout.fail(attempt);
      const entries: AuditInput[] = [
        { event: 'login.password_failed', userId: user?.id ?? null, ...meta, data: { app: input.purpose, failures: outcome.failures } },
      ];
      if (outcome.locked) {
        entries.push({ event: 'login.locked', userId: user?.id ?? null, ...meta, data: { until: outcome.lockedUntil } });
      }
      await audit.record(...entries);
      if (outcome.locked && user) await this.noticeLock(user.id, outcome.lockedUntil);
      throw new SlsError('INVALID_CREDENTIALS');
    }
    return { user: user!, attempt };
  }
}
