/**
 * The atomic steps every flow kind shares (logins, device proofs): they are
 * conditional updates, so concurrent requests and several server processes
 * never exceed a flow's answers or reopen it (GUIDE lesson 6).
 */
import type { Executor } from '../store/database.js';

/**
 * Takes one of an open flow's answers (L4: at most 3, within 5 minutes).
 * Returns how many were taken with this one, or null when the flow is
 * closed, expired or used up.
 */
export async function reserveAnswer(db: Executor, flowId: string, now: number, maxAttempts: number): Promise<number | null> {
  const row = await db
    .updateTable('login_flows')
    .set((eb) => ({ attempts: eb('attempts', '+', 1), updated_at: now }))
    .where('id', '=', flowId)
    .where('state', '=', 'second_factor')
    .where('expires_at', '>', now)
    .where('attempts', '<', maxAttempts)
    .returning('attempts')
    .executeTakeFirst();
  return row?.attempts ?? null;
}

/** Closes an open flow as failed (its answers are used up, or the user is locked). */
export async function failFlow(db: Executor, flowId: string, now: number): Promise<void> {
  await db.updateTable('login_flows').set({ state: 'failed', updated_at: now }).where('id', '=', flowId).where('state', '=', 'second_factor').execute();
}

/** The accepted answer closes the flow; false when another request closed it first. */
export async function completeFlow(db: Executor, flowId: string, now: number, sessionId: string | null = null): Promise<boolean> {
  const done = await db
    .updateTable('login_flows')
    .set({ state: 'done', updated_at: now, ...(sessionId ? { session_id: sessionId } : {}) })
    .where('id', '=', flowId)
    .where('state', '=', 'second_factor')
    .executeTakeFirst();
  return Number(done.numUpdatedRows) === 1;
}
