/**
 * W1-W3: "may this account withdraw X now?", and the withdrawals accepted.
 *
 * The limit is W1's row of the device that protects the account
 * (policy/withdrawal-limits.ts): each user is protected by their strongest
 * active permanent device (D2) — by the shared device while they share one
 * (H), by none while they opted out (O1); both through `ProtectionHooks`,
 * which the sharing and opt-out work plug in. An account with several
 * usernames is as protected as its least protected active client user,
 * since any of them may ask for a withdrawal; an integrator that knows who
 * asks names the username, and that user's device sets the limit.
 *
 * Withdrawals are counted per account in two windows that roll by business
 * day (entitlements/business-days.ts), in US cents after conversion at the
 * operator's rates (entitlements/fx.ts). Recording runs under a lock per
 * account held across every server process (PostgreSQL advisory lock;
 * SQLite's write lock), so two withdrawals can never both pass a limit that
 * only one of them fits; a reference is recorded once per account. The
 * evaluation then holds the audit lock too, which every change of a user's
 * protection holds to commit: the account is read in one state.
 */
import type { AuditInput, AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { newId } from '../crypto/random.js';
import type { Device, DeviceKinds, DeviceType } from '../devices/types.js';
import { SlsError } from '../errors.js';
import { type Entitlements, entitlementsOf } from '../policy/entitlements.js';
import type { Session } from '../sessions/sessions.js';
import { type WithdrawalLimits, weakerLimits, withdrawalLimits } from '../policy/withdrawal-limits.js';
import type { Executor, Store } from '../store/database.js';
import type { BusinessCalendar } from './business-days.js';
import { type FxRates, toUsdCents } from './fx.js';

/**
 * What other work decides about a user's protection. Until sharing (H) and
 * opt-out (O1) exist, nobody shares and nobody opted out.
 */
export interface ProtectionHooks {
  /** H, W1: the device shared with the user while they share another username's device; null when they do not share. */
  sharedDeviceOf(userId: string, db: Executor): Promise<Device | null>;
  /** O1, W1: whether the user opted out of the second factor: then W1's "None" row, whatever their devices. */
  optedOut(userId: string, db: Executor): Promise<boolean>;
}

export const NO_SHARING_NO_OPT_OUT: ProtectionHooks = {
  sharedDeviceOf: async () => null,
  optedOut: async () => false,
};

export interface WithdrawalsDeps {
  store: Store;
  clock: Clock;
  audit: AuditLog;
  devices: { listForUser(userId: string, db?: Executor): Promise<Device[]> };
  /** The registered kinds: each carries its strength (D2) and its W1 row. */
  deviceKind: DeviceKinds;
  fx: FxRates;
  calendar: BusinessCalendar;
  hooks?: ProtectionHooks;
  /** The device a session last proved, if it still stands (`StepUp.lastProof`): a session's limits are never more than it (W1, D2). */
  lastProof: (session: Session) => Promise<{ device: Device | null }>;
}

export interface WithdrawalRequest {
  /** The account number. */
  account: string;
  /** In the currency: a decimal with at most 2 decimals (a JSON number or a string). */
  amount: number | string;
  /** ISO 4217 code. */
  currency: string;
  /** The username asking, when the integrator knows it; otherwise the account's least protected user decides. */
  username?: string | undefined;
}

export type RefusalReason = 'DAILY_LIMIT' | 'FIVE_BUSINESS_DAYS_LIMIT';

/** The user whose device sets the limit, and the W1 row. */
export interface Protection {
  username: string | null;
  limits: WithdrawalLimits;
}

/** Where an account stands: the device that sets its limits, what was withdrawn and what is left in each window. */
export interface Standing {
  account: string;
  /** The device type that sets the limit, or `none`. */
  device: string;
  username: string | null;
  /** USD; null: unlimited. */
  limit: { perDayUsd: number | null; fiveBusinessDaysUsd: number | null };
  /** USD withdrawn in each window. */
  used: { dayUsd: number; fiveBusinessDaysUsd: number };
  /** USD still allowed in each window; null: unlimited. */
  remaining: { dayUsd: number | null; fiveBusinessDaysUsd: number | null };
  businessDay: string;
  windows: { dayFrom: number; fiveBusinessDaysFrom: number };
}

export interface WithdrawalCheck extends Standing {
  amount: number;
  currency: string;
  usdPerUnit: string;
  amountUsd: number;
  allowed: boolean;
  reason: RefusalReason | null;
}

export interface RecordedWithdrawal {
  id: string;
  reference: string;
  recordedAt: number;
  /** The same reference was recorded before (with the same amount): nothing new was recorded. */
  replayed: boolean;
  /** The windows after the withdrawal. */
  check: WithdrawalCheck;
}

/** An amount in hundredths of its currency. */
export function parseAmount(value: number | string): number {
  const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : value.trim();
  const match = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(text);
  if (!match) throw new SlsError('AMOUNT_INVALID', { amount: String(value) });
  const minor = Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
  if (minor <= 0) throw new SlsError('AMOUNT_INVALID', { amount: String(value) });
  return minor;
}

const cents = (usd: number | null): number | null => (usd === null ? null : Math.round(usd * 100));

/**
 * X3: a withdrawal is counted exactly in its windows, and so are their sums once it is recorded: SQLite's sum() fails
 * past 2^63 (every later check of the account a 500) and sums past 2^53 are no longer exact. An account no limit
 * protects (a DSC+) is refused what would carry its windows' total past 2^53 US cents.
 */
function assertWindowRoom(check: WithdrawalCheck, amountCents: number): void {
  const used = Math.max(Math.round(check.used.dayUsd * 100), Math.round(check.used.fiveBusinessDaysUsd * 100));
  if (!Number.isSafeInteger(used + amountCents)) {
    throw new SlsError('AMOUNT_INVALID', { amount: String(check.amount), currency: check.currency, reason: 'window_too_large' });
  }
}

export class Withdrawals {
  private readonly hooks: ProtectionHooks;
  constructor(private readonly deps: WithdrawalsDeps) {
    this.hooks = deps.hooks ?? NO_SHARING_NO_OPT_OUT;
  }

  private async accountOf(accountNumber: string, db: Executor): Promise<{ id: string; accountNumber: string }> {
    const row = await db.selectFrom('accounts').select(['id', 'account_number']).where('account_number', '=', accountNumber).executeTakeFirst();
    if (!row) throw new SlsError('ACCOUNT_NOT_FOUND', { account: accountNumber });
    return { id: row.id, accountNumber: row.account_number };
  }

  /**
   * W1 for one user: the None row when opted out; the shared device when
   * sharing; else their strongest active permanent device. What the user and
   * their applications are told (GET /withdrawal-limits, sls.entitlements).
   */
  async limitsOfUser(userId: string, db: Executor = this.deps.store.db): Promise<WithdrawalLimits> {
    if (await this.hooks.optedOut(userId, db)) return withdrawalLimits([], this.deps.deviceKind);
    const shared = await this.hooks.sharedDeviceOf(userId, db);
    return withdrawalLimits(shared ? [shared] : await this.deps.devices.listForUser(userId, db), this.deps.deviceKind);
  }

  /**
   * W1, D2, I1: the limits of what a session may ask for — what the user
   * (GET /withdrawal-limits, the account page) and their applications
   * (sls.entitlements) are told: the weaker of the user's row
   * (`limitsOfUser`: opted out, sharing) and the row of the device the
   * session last proved (its login's, or its latest step-up's). Someone
   * holding the password and the SIM of a user who also holds a DSC+ logs
   * in with SMS: the SMS row, not unlimited; a temporary passcode, the
   * password alone, a device since revoked or lost, or no session: the
   * None row.
   */
  async limitsOfSession(userId: string, session: Session | null): Promise<WithdrawalLimits> {
    return this.limitsProvedBy(userId, session === null ? null : (await this.deps.lastProof(session)).device);
  }

  /** `limitsOfSession` for a caller that already knows the device of the session's last proof (`null`: none, or no session). */
  async limitsProvedBy(userId: string, proved: Device | null): Promise<WithdrawalLimits> {
    return weakerLimits(await this.limitsOfUser(userId), withdrawalLimits(proved ? [proved] : [], this.deps.deviceKind));
  }

  /** The user whose device sets the account's limit (the named one, or the least protected), and the row. */
  async protectionOf(accountId: string, username: string | undefined, db: Executor = this.deps.store.db): Promise<Protection> {
    let query = db
      .selectFrom('users')
      .select(['id', 'username'])
      .where('account_id', '=', accountId)
      .where('role', '=', 'client')
      .where('status', '=', 'active')
      .orderBy('username');
    if (username !== undefined) query = query.where('username', '=', username);
    const users = await query.execute();
    if (username !== undefined && users.length === 0) throw new SlsError('USER_NOT_FOUND', { username });
    let weakest: Protection = { username: null, limits: withdrawalLimits([], this.deps.deviceKind) };
    for (const [i, user] of users.entries()) {
      const limits = await this.limitsOfUser(user.id, db);
      if (i === 0 || weakerLimits(weakest.limits, limits) !== weakest.limits) weakest = { username: user.username, limits };
    }
    return weakest;
  }

  private async standing(db: Executor, account: { id: string; accountNumber: string }, username: string | undefined): Promise<Standing> {
    const protection = await this.protectionOf(account.id, username, db);
    const windows = this.deps.calendar.windows(this.deps.clock.now());
    const sumSince = async (from: number): Promise<number> => {
      const row = await db
        .selectFrom('withdrawals')
        .select((eb) => eb.fn.sum<number | string | null>('usd_cents').as('total'))
        .where('account_id', '=', account.id)
        .where('at', '>=', from)
        .executeTakeFirst();
      return Number(row?.total ?? 0);
    };
    const usedDay = await sumSince(windows.dayStart);
    const usedFive = await sumSince(windows.fiveBusinessDaysStart);
    const limitDay = cents(protection.limits.perDayUsd);
    const limitFive = cents(protection.limits.fiveBusinessDaysUsd);
    const usd = (c: number | null) => (c === null ? null : c / 100);
    return {
      account: account.accountNumber,
      device: protection.limits.device ?? 'none',
      username: protection.username,
      limit: { perDayUsd: protection.limits.perDayUsd, fiveBusinessDaysUsd: protection.limits.fiveBusinessDaysUsd },
      used: { dayUsd: usedDay / 100, fiveBusinessDaysUsd: usedFive / 100 },
      remaining: {
        dayUsd: usd(limitDay === null ? null : Math.max(0, limitDay - usedDay)),
        fiveBusinessDaysUsd: usd(limitFive === null ? null : Math.max(0, limitFive - usedFive)),
      },
      businessDay: windows.businessDay,
      windows: { dayFrom: windows.dayStart, fiveBusinessDaysFrom: windows.fiveBusinessDaysStart },
    };
  }

  private async evaluate(
    db: Executor,
    account: { id: string; accountNumber: string },
    request: WithdrawalRequest,
    amountMinor: number,
    recordedRate?: string,
  ): Promise<WithdrawalCheck> {
    return (await this.evaluateCents(db, account, request, amountMinor, recordedRate)).check;
  }

  /** The check, and the amount in integer US cents it was made with: the cents a recording stores (W3; not the dollars times 100, which drift at large amounts). */
  private async evaluateCents(
    db: Executor,
    account: { id: string; accountNumber: string },
    request: WithdrawalRequest,
    amountMinor: number,
    /** The rate a withdrawal was recorded at, for its replay: converted as it was, whatever the rate now (or its age, decision 0040). */
    recordedRate?: string,
  ): Promise<{ check: WithdrawalCheck; amountCents: number }> {
    const usdPerUnit = recordedRate ?? (await this.deps.fx.rate(request.currency, db));
    const amountCents = toUsdCents(amountMinor, usdPerUnit);
    // X3: beyond 2^53 cents the sum is no longer exact (and no longer fits PostgreSQL's bigint)
    if (!Number.isSafeInteger(amountCents)) {
      throw new SlsError('AMOUNT_INVALID', { amount: String(amountMinor / 100), currency: request.currency, reason: 'too_large' });
    }
    const standing = await this.standing(db, account, request.username);
    const over = (remaining: number | null) => remaining !== null && amountCents > Math.round(remaining * 100);
    const reason: RefusalReason | null = over(standing.remaining.dayUsd)
      ? 'DAILY_LIMIT'
      : over(standing.remaining.fiveBusinessDaysUsd)
        ? 'FIVE_BUSINESS_DAYS_LIMIT'
        : null;
    return {
      check: { ...standing, amount: amountMinor / 100, currency: request.currency, usdPerUnit, amountUsd: amountCents / 100, allowed: reason === null, reason },
      amountCents,
    };
  }

  /** W3: whether the account may withdraw the amount now; records nothing. */
  async check(request: WithdrawalRequest): Promise<WithdrawalCheck> {
    const amountMinor = parseAmount(request.amount);
    const account = await this.accountOf(request.account, this.deps.store.db);
    const { check, amountCents } = await this.evaluateCents(this.deps.store.db, account, request, amountMinor);
    assertWindowRoom(check, amountCents);
    return check;
  }

  /**
   * W3: records the withdrawal if it fits both windows, atomically with the
   * check; WITHDRAWAL_LIMIT_EXCEEDED (audited) otherwise. A reference already
   * recorded for the account with the same amount and currency answers the
   * first recording again (`replayed`); with another amount,
   * WITHDRAWAL_REFERENCE_CONFLICT.
   */
  async record(
    request: WithdrawalRequest & { reference: string },
    actor: { apiKeyId: string; ip: string | null; stillValid?: (db: Executor) => Promise<void> },
  ): Promise<RecordedWithdrawal> {
    const amountMinor = parseAmount(request.amount);
    const { store, clock, audit } = this.deps;
    const account = await this.accountOf(request.account, store.db);
    const outcome = await store.serialized(
      `withdrawals:${account.id}`,
      async (trx): Promise<{ recorded: RecordedWithdrawal } | { refused: WithdrawalCheck }> => {
        // W1, O1, H (docs/decisions/0016): the account's protection is read in one state. What changes it — an opt-out or
        // opt-in, a device revoked, lost or activated, a sharing ended — commits under the audit lock: taken first, no
        // such change commits between the reads of one user and another's (PostgreSQL reads each statement afresh), so a
        // user opting out and then another opting back in never make an account look protected as it never was
        await store.lockWithin(trx, 'audit_log');
        // I3: the key is still unrevoked under the lock its revocation takes; otherwise nothing is written
        await actor.stillValid?.(trx);
        const existing = await trx
          .selectFrom('withdrawals')
          .selectAll()
          .where('account_id', '=', account.id)
          .where('reference', '=', request.reference)
          .executeTakeFirst();
        if (existing) {
          if (existing.amount_minor !== amountMinor || existing.currency !== request.currency) {
            throw new SlsError('WITHDRAWAL_REFERENCE_CONFLICT', { reference: request.reference });
          }
          // a retry is told what was recorded, at the rate it was recorded at: never "nothing was recorded" for a rate gone stale since
          const check = await this.evaluate(trx, account, request, amountMinor, existing.usd_per_unit);
          return { recorded: { id: existing.id, reference: existing.reference, recordedAt: existing.at, replayed: true, check } };
        }
        const { check, amountCents } = await this.evaluateCents(trx, account, request, amountMinor);
        assertWindowRoom(check, amountCents);
        const auditData = {
          account: account.accountNumber,
          reference: request.reference,
          amount: check.amount,
          currency: check.currency,
          usdPerUnit: check.usdPerUnit,
          amountUsd: check.amountUsd,
          device: check.device,
          username: check.username,
          keyId: actor.apiKeyId,
        };
        const entry = (input: Omit<AuditInput, 'actor' | 'ip'>): AuditInput => ({ ...input, actor: `apikey:${actor.apiKeyId}`, ip: actor.ip });
        if (!check.allowed) {
          await audit.append(trx, [
            entry({
              event: 'withdrawal.refused',
              data: {
                ...auditData,
                reason: check.reason,
                remainingDayUsd: check.remaining.dayUsd,
                remainingFiveBusinessDaysUsd: check.remaining.fiveBusinessDaysUsd,
              },
            }),
          ]);
          return { refused: check };
        }
        const id = newId('wdr');
        const now = clock.now();
        let userId: string | null = null;
        if (check.username !== null) {
          userId = (await trx.selectFrom('users').select('id').where('username', '=', check.username).executeTakeFirst())?.id ?? null;
        }
        await trx
          .insertInto('withdrawals')
          .values({
            id,
            account_id: account.id,
            reference: request.reference,
            amount_minor: amountMinor,
            currency: check.currency,
            usd_per_unit: check.usdPerUnit,
            usd_cents: amountCents,
            device: check.device,
            user_id: userId,
            api_key_id: actor.apiKeyId,
            at: now,
          })
          .execute();
        await audit.append(trx, [entry({ event: 'withdrawal.recorded', userId, data: { ...auditData, withdrawalId: id } })]);
        return {
          recorded: { id, reference: request.reference, recordedAt: now, replayed: false, check: await this.evaluate(trx, account, request, amountMinor) },
        };
      },
    );
    if ('refused' in outcome) {
      const c = outcome.refused;
      throw new SlsError('WITHDRAWAL_LIMIT_EXCEEDED', {
        reason: c.reason!,
        remainingUsd: String((c.reason === 'DAILY_LIMIT' ? c.remaining.dayUsd : c.remaining.fiveBusinessDaysUsd) ?? 0),
        amountUsd: String(c.amountUsd),
      });
    }
    return outcome.recorded;
  }

  /**
   * O1: whether the named user, or (unnamed) any active client user of the
   * account, opted out: any of them may trade, so the account is restricted.
   */
  private async anyOptedOut(accountId: string, username: string | undefined, db: Executor): Promise<boolean> {
    let query = db.selectFrom('users').select('id').where('account_id', '=', accountId).where('role', '=', 'client').where('status', '=', 'active');
    if (username !== undefined) query = query.where('username', '=', username);
    for (const user of await query.execute()) if (await this.hooks.optedOut(user.id, db)) return true;
    return false;
  }

  /** W1, W2: the account's limits, what is left, and its entitlements, by the device that protects it (O1: restricted when opted out). */
  async entitlements(accountNumber: string, username?: string): Promise<{ standing: Standing; entitlements: Entitlements }> {
    const db = this.deps.store.db;
    const account = await this.accountOf(accountNumber, db);
    const standing = await this.standing(db, account, username);
    const device = standing.device === 'none' ? null : (standing.device as DeviceType);
    return { standing, entitlements: entitlementsOf(device, await this.anyOptedOut(account.id, username, db)) };
  }
}
