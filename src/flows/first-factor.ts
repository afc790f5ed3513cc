/**
 * The first factor (L1, L3), shared by the login, the step-up and the
 * activation of the mobile authenticator (K1): username and password, under
 * the lock, with the same answer, status and time for an unknown user.
 *
 * A5: a one-time password from client services works for one login, within
 * `oneTimePasswordTtlMs`; after that it is a wrong password like any other
 * (the session it opened may still use it to step up and change it). It
 * opens nothing else (PASSWORD_CHANGE_REQUIRED): not the authenticator's
 * activation, nor the owner's side of a sharing.
 */
import { SlsError } from '../errors.js';
import { verifyPassword } from '../crypto/password.js';
import { assertUsernameCharacters } from '../identity/username.js';
import type { OneTimePassword, User, Users } from '../identity/users.js';
import type { Attempt } from '../policy/lockout.js';
import type { Clock } from '../clock.js';
import type { Answers } from './answers.js';
import type { App } from '../sessions/sessions.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Tx } from '../store/database.js';

export interface FirstFactorInput {
  username: string;
  password: string;
  ip: string | null;
  /** What the password opens: an application (portal, trading), the activation of the authenticator, or a step-up. */
  purpose: string;
}

export interface FirstFactorDeps {
  users: Users;
  answers: Answers;
  clock: Clock;
  audit: AuditLog;
}

/**
 * L1: checked against when the username is unknown (or the user disabled),
 * so that it takes as long as a real check: an argon2id hash of a random
 * password nobody kept, with the parameters of every hash (ARGON2_OPTIONS;
 * test/login-api.test.ts checks they agree). A constant, not a hash made at
 * the first unknown username, which would make that check take twice as long.
 */
export const DUMMY_HASH = '$argon2id$v=19$m=19456,t=2,p=1$YFEDNMmmA/979KjbI451Uw$Gs1PVtgNDkuahnKoC9dvv4qvXnEhpbFV9n7o1HsBQ70';

/**
 * A5: what a one-time password from client services opens: a login to an
 * application, whose session may do nothing but change it, and that
 * session's step-up. Not the authenticator's activation, migration or
 * recovery, nor the owner's side of a sharing: a password that may only be
 * changed binds no device (X7).
 */
const ONE_TIME_PURPOSES: readonly string[] = ['portal', 'trading', 'step_up'] satisfies (App | 'step_up')[];

/** The password a first factor was checked against: the user's hash as read then. */
export interface CheckedPassword {
  userId: string;
  username: string;
  hash: string;
}

/**
 * A4, L8: the password was changed or reset between the check and the
 * transaction that stores what it started: refused as a wrong password
 * (the same 401 body), audited by `FirstFactor.auditChanged` once that
 * transaction rolled back.
 */
export class PasswordChangedMeanwhile extends SlsError {
  constructor(
    readonly checked: CheckedPassword,
    readonly ip: string | null,
    readonly kind: string,
  ) {
    super('INVALID_CREDENTIALS');
  }
}

export class FirstFactor {
  constructor(private readonly deps: FirstFactorDeps) {}

  /** A5: a one-time password that expired, or opened its one session already (a step-up within that session may use it). */
  private oneTimeUsedUp(oneTime: OneTimePassword | null, purpose: string): boolean {
    if (!oneTime) return false;
    if (oneTime.expiresAt !== null && oneTime.expiresAt <= this.deps.clock.now()) return true;
    return oneTime.usedAt !== null && purpose !== 'step_up';
  }

  /**
   * The user whose password it is, and the lock attempt still open: the
   * caller releases it once the second step is set up (a right password is
   * no failure), or counts it as one.
   */
  async check(input: FirstFactorInput): Promise<{ user: User; attempt: Attempt; checked: CheckedPassword }> {
    const { answers, users } = this.deps;
    assertUsernameCharacters(input.username);
    const who = { username: input.username, ip: input.ip, data: { factor: 'password', app: input.purpose } };
    const attempt = await answers.begin({ ...who, userId: undefined });

    const found = await users.findForLogin(input.username);
    const user = found?.user ?? null;
    const usable = user !== null && user.status === 'active';
    const hash = usable ? found!.passwordHash : DUMMY_HASH;
    const passwordOk = (await verifyPassword(hash, input.password)) && usable && !this.oneTimeUsedUp(found!.oneTime, input.purpose);
    if (!passwordOk) {
      await answers.fail(attempt, { ...who, userId: user?.id ?? null }, { event: 'login.password_failed', data: { app: input.purpose } });
      throw new SlsError('INVALID_CREDENTIALS');
    }
    if (found!.oneTime && !ONE_TIME_PURPOSES.includes(input.purpose)) {
      // a right password is no failure; the refusal is audited (X1)
      await answers.release(attempt);
      await this.deps.audit.record({
        event: 'login.flow_refused',
        actor: `user:${user!.id}`,
        userId: user!.id,
        username: user!.username,
        ip: input.ip,
        data: { kind: input.purpose, reason: 'one_time_password', code: 'PASSWORD_CHANGE_REQUIRED' },
      });
      throw new SlsError('PASSWORD_CHANGE_REQUIRED', { reason: 'one_time_password' });
    }
    return { user: user!, attempt, checked: { userId: user!.id, username: user!.username, hash: found!.passwordHash } };
  }

  /**
   * A4, L8: in the transaction that stores what the password started (a
   * login's flow, an activation's, a sharing's), the password checked is
   * still the user's. A change or reset ends the flows it sees under way;
   * this sees the change that committed before the flow was stored. On
   * PostgreSQL the user's row is held (FOR SHARE) until the transaction
   * ends, so a change that comes after waits for it and then sees the flow.
   */
  async assertStillCurrent(trx: Tx, checked: CheckedPassword, ip: string | null, kind: string): Promise<void> {
    if (!(await this.deps.users.passwordIs(trx, checked.userId, checked.hash))) throw new PasswordChangedMeanwhile(checked, ip, kind);
  }

  /** The refusal of `assertStillCurrent`, audited after its transaction rolled back (`login.flow_refused`, reason `password_changed`). */
  async auditChanged(error: unknown): Promise<void> {
    if (!(error instanceof PasswordChangedMeanwhile)) return;
    const { checked, ip, kind } = error;
    await this.deps.audit.record({
      event: 'login.flow_refused',
      userId: checked.userId,
      username: checked.username,
      ip,
      data: { kind, reason: 'password_changed', code: 'INVALID_CREDENTIALS' },
    });
  }
}
