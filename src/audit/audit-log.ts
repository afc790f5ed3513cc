/**
 * The audit log (X1): append-only, each entry chained to the previous one by
 * a SHA-256 hash, so that a changed, removed or inserted entry is detected by
 * `verify()`. Appends are serialised across every server process.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Executor, Store, Tx } from '../store/database.js';
import type { AuditLogTable } from '../store/schema.js';

export type AuditEvent =
  | 'user.created'
  | 'user.password_changed'
  | 'account.equity_changed'
  | 'login.password_failed'
  | 'login.refused_locked'
  | 'login.locked'
  | 'login.second_factor_failed'
  | 'login.device_switched'
  | 'login.flow_exhausted'
  | 'login.succeeded'
  | 'login.attempt_deferred'
  | 'login.flow_refused'
  | 'login.superseded'
  | 'session.refused'
  | 'helpdesk.refused'
  | 'helpdesk.sessions_ended'
  | 'helpdesk.user_locked'
  | 'helpdesk.phone_added'
  | 'device.used_up'
  | 'session.ended'
  | 'device.added'
  | 'device.imported'
  | 'device.state_changed'
  | 'device.assigned'
  | 'device.reactivated'
  | 'device.requested'
  | 'device.shipped'
  | 'device.auto_activated'
  | 'deposit.settled'
  | 'device.activated'
  | 'device.proof_failed'
  | 'device.pin_changed'
  | 'online_card.created'
  | 'online_card.print_confirmed'
  | 'helpdesk.identity_verified'
  | 'helpdesk.temp_passcode_issued'
  | 'helpdesk.unlocked'
  | 'device.enrolled'
  | 'phone.added'
  | 'phone.confirm_code_sent'
  | 'phone.confirm_failed'
  | 'phone.verified'
  | 'phone.removed'
  | 'login.code_sent'
  | 'sms.rate_limited'
  | 'login.offline_requested'
  | 'login.claim_refused'
  | 'login.push_approved'
  | 'login.push_denied'
  | 'push.sent'
  | 'push.failed'
  | 'mobile.activation_started'
  | 'mobile.token_sent'
  | 'mobile.activated'
  | 'mobile.activation_failed'
  | 'mobile.recovery_failed'
  | 'mobile.message_sent'
  | 'stepup.started'
  | 'stepup.verified'
  | 'user.notice_preferences_changed';

export interface AuditInput {
  event: AuditEvent;
  /** Who did it: `user:<id>`, `cli`, `system`, `staff:<id>`. */
  actor?: string | null;
  userId?: string | null;
  username?: string | null;
  ip?: string | null;
  /** Never secrets: ids, states, reasons. */
  data?: Record<string, unknown>;
}

export interface AuditEntry {
  seq: number;
  at: number;
  event: string;
  actor: string | null;
  userId: string | null;
  username: string | null;
  ip: string | null;
  data: Record<string, unknown>;
  hash: string;
}

const GENESIS = '0'.repeat(64);

function entryHash(prevHash: string, row: Omit<AuditLogTable, 'hash' | 'prev_hash'>): string {
  const canonical = JSON.stringify([row.seq, row.at, row.event, row.actor, row.user_id, row.username, row.ip, row.data]);
  return createHash('sha256').update(prevHash).update('\n').update(canonical).digest('hex');
}

export interface AuditQuery {
  userId?: string;
  username?: string;
  since?: number;
  until?: number;
  limit?: number;
}

export type VerifyResult = { ok: true; entries: number; head: string } | { ok: false; entries: number; brokenAt: number; reason: string };

export class AuditLog {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** Appends entries in their own serialised transaction. */
  async record(...inputs: AuditInput[]): Promise<void> {
    await this.store.serialized('audit_log', (trx) => this.append(trx, inputs));
  }

  /** Appends within a transaction that already holds the audit lock (see Store.serialized). */
  async append(trx: Tx, inputs: AuditInput[]): Promise<void> {
    const head = await trx.selectFrom('audit_log').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    let seq = head?.seq ?? 0;
    let prevHash = head?.hash ?? GENESIS;
    const now = this.clock.now();
    for (const input of inputs) {
      seq += 1;
      const row = {
        seq,
        at: now,
        event: input.event,
        actor: input.actor ?? null,
        user_id: input.userId ?? null,
        username: input.username ?? null,
        ip: input.ip ?? null,
        data: JSON.stringify(input.data ?? {}),
      };
      const hash = entryHash(prevHash, row);
      await trx.insertInto('audit_log').values({ ...row, prev_hash: prevHash, hash }).execute();
      prevHash = hash;
    }
  }

  async list(query: AuditQuery = {}, db: Executor = this.store.db): Promise<AuditEntry[]> {
    let q = db.selectFrom('audit_log').selectAll();
    if (query.userId) q = q.where('user_id', '=', query.userId);
    if (query.username) {
      const username = query.username;
      q = q.where((eb) =>
        eb.or([
          eb('username', '=', username),
          eb('user_id', 'in', eb.selectFrom('users').select('id').where('username', '=', username)),
        ]),
      );
    }
    if (query.since !== undefined) q = q.where('at', '>=', query.since);
    if (query.until !== undefined) q = q.where('at', '<', query.until);
    const rows = await q.orderBy('seq', 'desc').limit(query.limit ?? 100).execute();
    return rows.map((r) => ({
      seq: r.seq,
      at: r.at,
      event: r.event,
      actor: r.actor,
      userId: r.user_id,
      username: r.username,
      ip: r.ip,
      data: JSON.parse(r.data) as Record<string, unknown>,
      hash: r.hash,
    }));
  }

  /** Recomputes the whole chain. */
  async verify(): Promise<VerifyResult> {
    let prevHash = GENESIS;
    let expectedSeq = 1;
    let entries = 0;
    const pageSize = 1000;
    for (;;) {
      const rows = await this.store.db
        .selectFrom('audit_log')
        .selectAll()
        .where('seq', '>=', expectedSeq)
        .orderBy('seq')
        .limit(pageSize)
        .execute();
      for (const row of rows) {
        if (row.seq !== expectedSeq) return { ok: false, entries, brokenAt: expectedSeq, reason: 'missing entry' };
        if (row.prev_hash !== prevHash) return { ok: false, entries, brokenAt: row.seq, reason: 'chain link altered' };
        if (entryHash(prevHash, row) !== row.hash) return { ok: false, entries, brokenAt: row.seq, reason: 'entry altered' };
        prevHash = row.hash;
        expectedSeq += 1;
        entries += 1;
      }
      if (rows.length < pageSize) return { ok: true, entries, head: prevHash };
    }
  }
}
