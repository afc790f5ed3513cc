/**
 * L8, X4, K7 (docs/decisions/0031): a request that acts on a session's
 * authority writes only while that session lives. The session guard checks
 * the session when the request arrives; the request writes later, in a
 * transaction under the audit lock. Whatever ends sessions — a logout, a
 * password changed or reset, client services ending them or locking the
 * user, a device withdrawn — takes that same lock. So every transaction a
 * request writes in reads its session again once it holds the lock: ended,
 * expired, its token replaced by a step-up since (decision 0042: the request
 * came with the old one) or its user no longer active, the transaction rolls back and the
 * request is answered as it would have been had it arrived a moment later
 * (401 UNAUTHENTICATED); when it needed its last proof to stand (a fresh
 * step-up, a permanent device) and that device was withdrawn meanwhile,
 * with that refusal. Each refusal is audited (`session.refused`, check
 * `ended-in-flight` or `proof-withdrawn-in-flight`).
 *
 * One place for every route: the store every service is given checks, on
 * PostgreSQL, each transaction that takes the audit lock (`serialized`,
 * `lockWithin`) and, on SQLite, each transaction (BEGIN IMMEDIATE: the
 * database's one writer is the lock), once, first. The audit log's own
 * `record` (refusals, reads) keeps the store as opened: a refusal of an
 * ended session is still written. A request with no session (a login, an
 * API key, the OpenID Provider's endpoints) or no request at all (the
 * command line, the scheduler) is not checked; nor is what a request does
 * once it ended its own session (a logout, a password change), nor what it
 * left to run after its answer (`request-context.ts`).
 */
import type { AuditInput, AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { SlsError, type ErrorParams } from '../errors.js';
import { STEP_UP_API } from '../policy/session-access.js';
import { actingSession, type ActingSession } from '../request-context.js';
import type { Executor, Store, Tx } from '../store/database.js';
import { prepared } from '../store/prepared.js';
import { hasSecurityRight } from '../identity/security-rights.js';
import { latestStepUp, livesAt } from './sessions.js';

/** The lock of the audit chain, which every ending of sessions takes (`Sessions.endWhere`, decision 0016). */
export const AUDIT_LOCK = 'audit_log';

export interface InFlightDeps {
  clock: Clock;
  /** The audit log, on the store as opened (its `record` is not checked). */
  audit: Pick<AuditLog, 'record'>;
  /** X7, T3, L8: whether a device still stands for the user (active, their own or shared with them), read in the transaction (`Devices.usableBy`). */
  stands: (db: Executor, deviceId: string, userId: string) => Promise<boolean>;
  /** A2: the user the NOT_PRIMARY_USER notice names for an account, read in the transaction (`SecurityRights.holder`). */
  holder: (db: Executor, accountId: string) => Promise<string | null>;
}

/** The acting session as it stands now, with what decides its user's rights: one statement, built once (every request with a session). */
const actingNow = prepared<{ sessionId: string }>()((db, p) =>
  db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .leftJoin('accounts', 'accounts.id', 'users.account_id')
    .select([
      'sessions.revoked_at',
      'sessions.token_hash',
      'sessions.expires_at',
      'sessions.idle_expires_at',
      'sessions.device_id',
      'sessions.verified_at',
      'users.status',
      'users.id',
      'users.username',
      'users.role',
      'users.account_id',
      'users.can_change_security',
      'accounts.primary_user_id',
    ])
    .where('sessions.id', '=', p.sessionId),
);

/** Thrown in a transaction whose request's session ended (or whose proof was withdrawn) since the request was let through. */
export class EndedInFlight extends SlsError {
  audited = false;

  constructor(
    code: 'UNAUTHENTICATED' | 'STEP_UP_REQUIRED' | 'PERMANENT_DEVICE_REQUIRED',
    readonly acting: ActingSession,
    readonly check: 'ended-in-flight' | 'proof-withdrawn-in-flight',
  ) {
    super(code, code === 'STEP_UP_REQUIRED' ? { stepUp: STEP_UP_API } : {});
  }
}

/**
 * X1, X7, A2, O3 (decision 0032): the staff member's role, or the user's right to change the security settings, lost
 * since the request was let through for it: refused as the check would have refused it then (403 FORBIDDEN_ROLE,
 * NOT_PRIMARY_USER), its audit entry (`helpdesk.refused`, `security.refused_not_primary`) written after the rollback.
 */
export class LostRightInFlight extends SlsError {
  audited = false;

  constructor(
    code: 'FORBIDDEN_ROLE' | 'NOT_PRIMARY_USER',
    details: ErrorParams,
    readonly entry: AuditInput,
  ) {
    super(code, details);
  }
}

/** Why the acting session may no longer write, read in the transaction that holds the lock; null when it may. */
async function refusalOf(trx: Tx, acting: ActingSession, deps: InFlightDeps): Promise<EndedInFlight | LostRightInFlight | null> {
  const row = await actingNow.first(trx, { sessionId: acting.sessionId });
  if (row?.status !== 'active' || !livesAt(row, deps.clock.now())) return new EndedInFlight('UNAUTHENTICATED', acting, 'ended-in-flight');
  // V1, L8 (decision 0042): the session's token was replaced since (a step-up): the request's copy of the old one ended
  if (acting.tokenHash !== undefined && row.token_hash !== acting.tokenHash) return new EndedInFlight('UNAUTHENTICATED', acting, 'ended-in-flight');
  // X1, X7: the role the staff member's action was let through for (an admin demoted them meanwhile)
  const roles = acting.staffRoles;
  if (roles && !roles.roles.includes(row.role)) {
    return new LostRightInFlight(
      'FORBIDDEN_ROLE',
      { role: row.role },
      {
        event: 'helpdesk.refused',
        actor: `${row.role === 'client' ? 'user' : 'staff'}:${row.id}`,
        userId: row.id,
        username: row.username,
        ip: acting.ip,
        data: {
          action: roles.action,
          reason: 'role',
          role: row.role,
          status: row.status,
          via: roles.via,
          ...(roles.path ? { path: roles.path } : {}),
          check: 'in-flight',
        },
      },
    );
  }
  // A2, O3: the right to change the security settings (revoked meanwhile: sls user revoke-security)
  if (acting.securityRight && !hasSecurityRight(row)) {
    const primaryUser = await deps.holder(trx, row.account_id);
    return new LostRightInFlight('NOT_PRIMARY_USER', primaryUser === null ? { reason: 'nobody' } : { primaryUser }, {
      event: 'security.refused_not_primary',
      actor: `user:${row.id}`,
      userId: row.id,
      username: row.username,
      ip: acting.ip,
      data: { action: `${acting.method} ${acting.path}`, primaryUser, check: 'in-flight' },
    });
  }
  if (acting.proof === null) return null;
  // the session's last proof: its latest step-up's device, else its login's (StepUp.lastProof)
  let deviceId = row.device_id;
  if (row.verified_at !== null) deviceId = (await latestStepUp(trx, acting.sessionId))?.device_id ?? deviceId;
  if (deviceId !== null && (await deps.stands(trx, deviceId, acting.userId))) return null;
  return new EndedInFlight(acting.proof, acting, 'proof-withdrawn-in-flight');
}

/** The store every service is given: `store`, whose transactions check again the session the request acts with. */
export function checkingActingSessions(store: Store, deps: InFlightDeps): Store {
  const checked = new WeakSet<Tx>();
  const check = async (trx: Tx): Promise<void> => {
    const acting = actingSession();
    if (!acting || acting.endedHere || checked.has(trx)) return;
    checked.add(trx);
    const refusal = await refusalOf(trx, acting, deps);
    if (refusal) throw refusal;
  };
  /** The refusal audited once the transaction rolled back. */
  const refusing = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      if (error instanceof LostRightInFlight && !error.audited) {
        error.audited = true;
        await deps.audit.record(error.entry);
      }
      if (error instanceof EndedInFlight && !error.audited) {
        error.audited = true;
        const { acting } = error;
        await deps.audit.record({
          event: 'session.refused',
          actor: `user:${acting.userId}`,
          userId: acting.userId,
          ip: acting.ip,
          data: { sessionId: acting.sessionId, need: acting.need, code: error.code, check: error.check, method: acting.method, path: acting.path },
        });
      }
      throw error;
    }
  };
  const everyTransaction = store.dialect === 'sqlite';
  return {
    ...store,
    transaction: (fn) =>
      refusing(() =>
        store.transaction(async (trx) => {
          if (everyTransaction) await check(trx);
          return fn(trx);
        }),
      ),
    serialized: (name, fn) =>
      refusing(() =>
        store.serialized(name, async (trx) => {
          if (everyTransaction || name === AUDIT_LOCK) await check(trx);
          return fn(trx);
        }),
      ),
    lockWithin: async (trx, name) => {
      await store.lockWithin(trx, name);
      if (name === AUDIT_LOCK) await check(trx);
    },
  };
}
