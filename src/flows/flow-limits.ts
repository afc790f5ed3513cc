/**
 * L4: starting flows is not free. Each user may have only so many flows
 * open at once and start only so many in an hour — logins, step-ups, device
 * proofs and activations of the authenticator alike, whatever the device
 * (docs/decisions/0008-code-card-single-use.md). The count and the new flow
 * are written under one lock per user, so that concurrent starts on several
 * server processes never pass the limit together. The limit is reached only
 * with the right password: it tells nobody whether a username exists.
 *
 * The allowance is counted twice over (docs/decisions/0018-flow-allowance-
 * per-recognised-client.md): flows started from a client (an IPv4 address,
 * an IPv6 /64) from which the user completed a login with a second factor
 * in the last 90 days count in the recognised clients' allowance; all other
 * flows in the other one. Someone holding only the password never completes
 * a login, so never spends the recognised allowance: the owner at their
 * usual clients is not locked out by a password holder elsewhere, and every
 * address of that password holder shares one allowance. Decision 0024
 * (docs/decisions/0024-allowances-of-sessions-and-known-browsers.md): a
 * signed-in session's proofs count in a third allowance, and a browser the
 * user completed a login in is a recognised client from any address.
 */
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { SlsError } from '../errors.js';
import type { ExpressionBuilder } from 'kysely';
import type { Store, Tx } from '../store/database.js';
import type { Schema } from '../store/schema.js';
import { insertRow, prepared } from '../store/prepared.js';
import { clientOf } from '../throttle/throttle.js';
import { ALLOWANCE, ALLOWANCE_NAMES, type Allowance } from '../throttle/allowance.js';
import type { FlowRow } from './flow-rows.js';

const HOUR_MS = 60 * 60 * 1000;

/** Decision 0024: the flows a signed-in session starts to prove a device (flows/activation.ts), counted in the session allowance. */
const SESSION_PROOFS: readonly string[] = ['activation', 'pin_change', 'step_up'];

/** The allowance a flow started by a signed-in session counts in, or null when it is a login's (its client decides). */
export function sessionAllowance(row: Pick<FlowRow, 'kind' | 'session_id'>): Allowance | null {
  return row.session_id !== null && SESSION_PROOFS.includes(row.kind) ? ALLOWANCE.session : null;
}
/** How long a completed login recognises its client (decision 0018). */
export const RECOGNISED_MS = 90 * 24 * HOUR_MS;

export interface FlowLimitsDeps {
  store: Store;
  clock: Clock;
  audit: AuditLog;
  policy: { openFlowsPerUser: number; flowStartsPerHour: number };
}

const isOpen = (eb: ExpressionBuilder<Schema, 'login_flows'>, now: number) => eb.and([eb('state', '=', 'second_factor'), eb('expires_at', '>', now)]);
/** Whether the user completed a login (or a step-up) with a second factor from a client lately (decision 0018). */
const recognisedClient = prepared<{ userId: string; client: string; since: number }>()((db, p) =>
  db
    .selectFrom('login_flows')
    .select('id')
    .where('user_id', '=', p.userId)
    .where('client', '=', p.client)
    .where('state', '=', 'done')
    .where('kind', 'in', ['login', 'step_up'])
    .where('device_id', 'is not', null)
    .where('created_at', '>', p.since)
    .limit(1),
);
/** How many of a user's flows of one allowance are open and how many started in the last hour, in one read, built once (issue 15). */
const flowCounts = prepared<{ userId: string; recognised: number; now: number; hourAgo: number }>()((db, p) =>
  db
    .selectFrom('login_flows')
    .select((eb) => [
      eb.fn.sum<number>(eb.case().when(isOpen(eb, p.now)).then(1).else(0).end()).as('open'),
      eb.fn.min<number>(eb.case().when(isOpen(eb, p.now)).then(eb.ref('expires_at')).end()).as('first_expiry'),
      eb.fn.sum<number>(eb.case().when('created_at', '>', p.hourAgo).then(1).else(0).end()).as('recent'),
    ])
    .where('user_id', '=', p.userId)
    .where('recognised', '=', p.recognised)
    .where((eb) => eb.or([eb('created_at', '>', p.hourAgo), isOpen(eb, p.now)])),
);

export class FlowLimits {
  constructor(private readonly deps: FlowLimitsDeps) {}

  /** TOO_MANY_FLOWS, with the seconds until a flow may start, when the user may not start another now in the allowance `recognised`. */
  private async assertRoom(trx: Tx, userId: string, recognised: number, now: number): Promise<void> {
    const { policy } = this.deps;
    // how many flows of the allowance are open and how many started in the last hour, in one read
    const counts = (await flowCounts.first(trx, { userId, recognised, now, hourAgo: now - HOUR_MS }))!;
    if (Number(counts.open ?? 0) >= policy.openFlowsPerUser) {
      throw new SlsError('TOO_MANY_FLOWS', { reason: 'open', retryAfterSeconds: Math.ceil((Number(counts.first_expiry) - now) / 1000) });
    }
    if (Number(counts.recent ?? 0) >= policy.flowStartsPerHour) {
      const recent = await trx
        .selectFrom('login_flows')
        .select('created_at')
        .where('user_id', '=', userId)
        .where('recognised', '=', recognised)
        .where('created_at', '>', now - HOUR_MS)
        .orderBy('created_at')
        .execute();
      const oldest = recent[recent.length - policy.flowStartsPerHour]!.created_at;
      throw new SlsError('TOO_MANY_FLOWS', { reason: 'hourly', retryAfterSeconds: Math.max(1, Math.ceil((oldest + HOUR_MS - now) / 1000)) });
    }
  }

  /**
   * Stores a new flow if its user may start one now; `alongside` runs in the
   * same transaction. A refusal is audited. The allowance the flow counts in
   * is returned: a signed-in session's proof counts in the session's
   * (decision 0024), a login in its client's (recognised or other, 0018).
   */
  async insert(row: FlowRow, alongside?: (trx: Tx) => Promise<void>, knownClient = false): Promise<Allowance> {
    const { store, clock, audit } = this.deps;
    const client = row.ip ? clientOf(row.ip) : null;
    let recognised: Allowance = sessionAllowance(row) ?? ALLOWANCE.other;
    try {
      await store.transaction(async (trx) => {
        await store.lockWithin(trx, `flows:${row.user_id}`);
        // L8 (decision 0031): a flow a session asks for (a step-up, a device proof, a sharing) is stored only if that
        // session still lives: under the audit lock, which every ending of sessions takes (and then ends the flows it sees)
        if (row.session_id !== null) await store.lockWithin(trx, 'audit_log');
        const now = clock.now();
        // decision 0024: a browser the user completed a login in (its known-client cookie) is recognised from any address
        if (recognised === ALLOWANCE.other && knownClient) recognised = ALLOWANCE.recognised;
        if (recognised === ALLOWANCE.other && client && (await recognisedClient.first(trx, { userId: row.user_id, client, since: now - RECOGNISED_MS })))
          recognised = ALLOWANCE.recognised;
        await this.assertRoom(trx, row.user_id, recognised, now);
        await alongside?.(trx);
        await insertRow(trx, 'login_flows', { ...row, client, recognised });
      });
      return recognised;
    } catch (error) {
      if (error instanceof SlsError && error.code === 'TOO_MANY_FLOWS') {
        await audit.record({
          event: 'login.flow_refused',
          userId: row.user_id,
          username: row.username,
          ip: row.ip,
          data: {
            kind: row.kind,
            reason: error.params.reason ?? null,
            recognised: recognised === ALLOWANCE.recognised,
            allowance: ALLOWANCE_NAMES[recognised],
          },
        });
      }
      throw error;
    }
  }
}
