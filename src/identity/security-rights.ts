/**
 * The primary user's rights (A2, O3): each account has a primary user, and
 * only a user with the right to change security settings may change them —
 * the primary user always, another user of the account once granted the
 * right (`sls user grant-security`). Every other user is refused with the
 * seed's notice naming the user who has that right (403 NOT_PRIMARY_USER,
 * `details.primaryUser`).
 *
 * This is the one place of the rule: the session guard asks it for every
 * request that changes the security settings (need `security`), the device
 * proofs for a device's reactivation, and the mobile authenticator's
 * activation after the password. Refusals, grants and revocations are audited.
 */
import type { AuditLog } from '../audit/audit-log.js';
import { SlsError } from '../errors.js';
import { actingNeedsSecurityRight } from '../request-context.js';
import type { Executor, Store } from '../store/database.js';

/** Where a refusal happened, for its audit entry. */
export interface RightsContext {
  /** What was attempted: `PUT /api/v1/…`, `mobile_activation:activate`, `reactivate`. */
  action: string;
  ip?: string | null;
}

/** What the flows and the session guard ask of the rights. */
export interface SecuritySettingsRights {
  /** The refusal (audited) of a user who may not change the security settings, or null. */
  refusal(userId: string, context: RightsContext): Promise<SlsError | null>;
  /** Throws that refusal. */
  assertMayChange(userId: string, context: RightsContext): Promise<void>;
}

interface RightsRow {
  id: string;
  username: string;
  account_id: string;
  can_change_security: number;
  primary_user_id: string | null;
}

/** A2: the one rule: the account's primary user, or a user granted the right. */
export function hasSecurityRight(row: { id: string; can_change_security: number; primary_user_id: string | null }): boolean {
  return row.primary_user_id === row.id || row.can_change_security === 1;
}

export class SecurityRights implements SecuritySettingsRights {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
  ) {}

  private async row(db: Executor, where: { id: string } | { username: string }): Promise<RightsRow> {
    const query = db
      .selectFrom('users')
      .innerJoin('accounts', 'accounts.id', 'users.account_id')
      .select(['users.id', 'users.username', 'users.account_id', 'users.can_change_security', 'accounts.primary_user_id']);
    const row = await ('id' in where ? query.where('users.id', '=', where.id) : query.where('users.username', '=', where.username)).executeTakeFirst();
    if (!row) throw new SlsError('USER_NOT_FOUND', 'id' in where ? { id: where.id } : { username: where.username });
    return row;
  }

  private static allowed(row: RightsRow): boolean {
    return hasSecurityRight(row);
  }

  /** A2: whether the user may change the security settings of the account. */
  async mayChange(userId: string): Promise<boolean> {
    return SecurityRights.allowed(await this.row(this.store.db, { id: userId }));
  }

  /**
   * The user the notice names: the account's primary user, or, if the
   * account has none, the first user granted the right; null if nobody has it.
   */
  async holder(accountId: string, db: Executor = this.store.db): Promise<string | null> {
    const account = await db.selectFrom('accounts').select('primary_user_id').where('id', '=', accountId).executeTakeFirst();
    if (account?.primary_user_id) {
      const primary = await db.selectFrom('users').select('username').where('id', '=', account.primary_user_id).executeTakeFirst();
      if (primary) return primary.username;
    }
    const granted = await db
      .selectFrom('users')
      .select('username')
      .where('account_id', '=', accountId)
      .where('can_change_security', '=', 1)
      .orderBy('username')
      .executeTakeFirst();
    return granted?.username ?? null;
  }

  async refusal(userId: string, context: RightsContext): Promise<SlsError | null> {
    const row = await this.row(this.store.db, { id: userId });
    if (SecurityRights.allowed(row)) {
      // decision 0032: a request on a session writes on that right only while it stands (sessions/in-flight.ts)
      actingNeedsSecurityRight(userId);
      return null;
    }
    const primaryUser = await this.holder(row.account_id);
    await this.audit.record({
      event: 'security.refused_not_primary',
      actor: `user:${row.id}`,
      userId: row.id,
      username: row.username,
      ip: context.ip ?? null,
      data: { action: context.action, primaryUser },
    });
    return primaryUser === null ? new SlsError('NOT_PRIMARY_USER', { reason: 'nobody' }) : new SlsError('NOT_PRIMARY_USER', { primaryUser });
  }

  async assertMayChange(userId: string, context: RightsContext): Promise<void> {
    const refused = await this.refusal(userId, context);
    if (refused) throw refused;
  }

  /**
   * A2: the primary user's right given to another user of the account, or
   * taken back (`sls user grant-security`, `revoke-security`). The primary
   * user always keeps it. Audited when it changes; false when it was already so.
   */
  async setRight(username: string, granted: boolean, actor: string): Promise<boolean> {
    return this.store.serialized('audit_log', async (trx) => {
      const row = await this.row(trx, { username });
      if (!granted && row.primary_user_id === row.id) throw new SlsError('PRIMARY_USER_RIGHT', { username });
      if ((row.can_change_security === 1) === granted) return false;
      await trx
        .updateTable('users')
        .set({ can_change_security: granted ? 1 : 0 })
        .where('id', '=', row.id)
        .execute();
      await this.audit.append(trx, [
        { event: granted ? 'user.security_right_granted' : 'user.security_right_revoked', actor, userId: row.id, username: row.username, data: {} },
      ]);
      return true;
    });
  }
}
