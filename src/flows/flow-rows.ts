/**
 * The atomic steps every flow kind shares (logins, device proofs): they are
 * conditional updates, so concurrent requests and several server processes
 * never exceed a flow's answers or reopen it (GUIDE lesson 6).
 */
import type { Selectable } from 'kysely';
import type { PolicyConfig } from '../config.js';
import type { Challenge, Prompt } from '../devices/types.js';
import type { Executor } from '../store/database.js';
import { prepared } from '../store/prepared.js';
import { SlsError } from '../errors.js';
import type { FlowState, LoginFlowsTable } from '../store/schema.js';

/** A flow as its kind builds it; the allowance it counts in (decision 0018) is the flow limits' to write. */
export type FlowRow = Omit<Selectable<LoginFlowsTable>, 'client' | 'recognised'> & Partial<Pick<Selectable<LoginFlowsTable>, 'recognised'>>;

const FLOW_ID = /^flw_[a-z2-7]{26}$/;

// the statements every answer runs, built once (issue 15)
const flowById = prepared<{ id: string; kind: FlowRow['kind'] }>()((db, p) =>
  db.selectFrom('login_flows').selectAll().where('id', '=', p.id).where('kind', '=', p.kind),
);
const takeAnswer = prepared<{ id: string; now: number; max: number; open: FlowState }>()((db, p) =>
  db
    .updateTable('login_flows')
    .set((eb) => ({ attempts: eb('attempts', '+', 1), updated_at: p.now }))
    .where('id', '=', p.id)
    .where('state', '=', p.open)
    .where('expires_at', '>', p.now)
    .where('attempts', '<', p.max)
    .returning('attempts'),
);
const closeFlow = prepared<{ id: string; now: number; from: FlowState }>()((db, p) =>
  db.updateTable('login_flows').set({ state: 'done', updated_at: p.now }).where('id', '=', p.id).where('state', '=', p.from),
);
const closeFlowWithSession = prepared<{ id: string; now: number; from: FlowState; sessionId: string }>()((db, p) =>
  db.updateTable('login_flows').set({ state: 'done', updated_at: p.now, session_id: p.sessionId }).where('id', '=', p.id).where('state', '=', p.from),
);

/**
 * A flow of a kind by its id (and, for a device proof, of the session that
 * asked for it); FLOW_NOT_FOUND otherwise, open or not.
 */
export async function findFlow(db: Executor, flowId: string, kind: FlowRow['kind'], sessionId?: string): Promise<FlowRow> {
  if (!FLOW_ID.test(flowId)) throw new SlsError('FLOW_NOT_FOUND');
  const row = await flowById.first(db, { id: flowId, kind });
  if (!row || (sessionId !== undefined && row.session_id !== sessionId)) throw new SlsError('FLOW_NOT_FOUND');
  return row;
}

/** What the flow's client is shown now (the challenge, a push request …), if anything. */
export function promptOf(row: FlowRow): Prompt | null {
  return row.prompt ? (JSON.parse(row.prompt) as Prompt) : null;
}

/** The state a client is told: a flow still waiting (for an answer, or for its approval to be taken) is `expired` once its time is up. */
export function viewState(row: FlowRow, now: number): FlowState | 'expired' {
  const waiting = row.state === 'second_factor' || row.state === 'approved';
  return waiting && row.expires_at <= now ? 'expired' : row.state;
}

/**
 * What a flow's verifier is sealed to (D5): its id, under the name of its
 * kind — a login's, a device proof's (activation, PIN change, step-up), or
 * an activation of the mobile authenticator's.
 */
export function verifierContext(kind: FlowRow['kind'], flowId: string): string {
  switch (kind) {
    case 'login':
      return `flow:${flowId}`;
    case 'mobile_activation':
      return `mobile_activation:${flowId}`;
    default:
      return `activation:${flowId}`;
  }
}

/**
 * How long a challenge may be answered: a code sent by SMS or voice 10
 * minutes (M7), a push request 2 (K13), one shown on screen 5 (L4).
 */
export function challengeTtlMs(challenge: Challenge, policy: PolicyConfig): number {
  if (challenge.prompt.type === 'push') return policy.pushTtlMs;
  return challenge.code === undefined ? policy.challengeTtlMs : policy.smsCodeTtlMs;
}

export interface NewFlow {
  id: string;
  kind: FlowRow['kind'];
  app: FlowRow['app'];
  username: string;
  userId: string;
  deviceId: string | null;
  prompt: Prompt;
  /** The challenge's verifier, already sealed to the flow. */
  sealedVerifier: string;
  now: number;
  expiresAt: number;
  ip: string | null;
  userAgent: string | null;
  /** The session a device proof belongs to; null for a login. */
  sessionId: string | null;
  /** A login's: the digest of the secret that takes its session once approved (K3). */
  claimHash?: string;
}

/** The row of a new flow waiting for the answer to its challenge, no answer taken yet. */
export function newFlowRow(flow: NewFlow): FlowRow {
  return {
    id: flow.id,
    kind: flow.kind,
    app: flow.app,
    username: flow.username,
    user_id: flow.userId,
    state: 'second_factor',
    device_id: flow.deviceId,
    prompt: JSON.stringify(flow.prompt),
    verifier: flow.sealedVerifier,
    attempts: 0,
    device_switches: 0,
    expires_at: flow.expiresAt,
    created_at: flow.now,
    updated_at: flow.now,
    ip: flow.ip,
    user_agent: flow.userAgent,
    session_id: flow.sessionId,
    confirmed_by: null,
    claim_hash: flow.claimHash ?? null,
  };
}

/**
 * Takes one of an open flow's answers (L4: at most 3, within 5 minutes).
 * Returns how many were taken with this one, or null when the flow is
 * closed, expired or used up.
 */
export async function reserveAnswer(db: Executor, flowId: string, now: number, maxAttempts: number, open: FlowState = 'second_factor'): Promise<number | null> {
  const row = await takeAnswer.first(db, { id: flowId, now, max: maxAttempts, open });
  return row?.attempts ?? null;
}

/** Closes an open flow as failed (its answers are used up, or the user is locked). */
export async function failFlow(db: Executor, flowId: string, now: number, open: FlowState = 'second_factor'): Promise<void> {
  await db.updateTable('login_flows').set({ state: 'failed', updated_at: now }).where('id', '=', flowId).where('state', '=', open).execute();
}

/**
 * The accepted answer (or the taking of an approved login's session) closes
 * the flow; false when another request closed it first.
 */
export async function completeFlow(
  db: Executor,
  flowId: string,
  now: number,
  sessionId: string | null = null,
  from: FlowState = 'second_factor',
): Promise<boolean> {
  const changed = sessionId
    ? await closeFlowWithSession.changed(db, { id: flowId, now, from, sessionId })
    : await closeFlow.changed(db, { id: flowId, now, from });
  return changed === 1;
}
