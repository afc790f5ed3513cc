/**
 * X1: the server checks its own audit chain, not only `sls audit verify`.
 * At start and then with the scheduler's jobs, it verifies the entries
 * appended since the position it verified last, a bounded number at a time
 * (a 10-million-entry log is walked once, then only its new entries), and
 * keeps that position: in memory, and in `meta` as a signed checkpoint line
 * so that the next start continues from it (one altered or forged is not
 * believed: the check starts again from the first entry). A break is told
 * once: a log line, the gauges, and an `audit.chain_broken` entry when the
 * chain still takes appends. Entries older than the position are not read
 * again (but the position's own entry, which must keep its hash):
 * `sls audit verify` walks the whole log.
 *
 * The newest head the process has seen (its appends read it) is kept in
 * `meta` too, signed (AuditLog.keepSeen), with every check and when the
 * process closes: a restarted process then knows a head put back below it
 * between its runs, or a tail cut and appended over, as one that ran on.
 */
import type { Store } from '../store/database.js';
import { type AuditFinding, type AuditLog, type ChainPosition, findingSeq, GENESIS } from './audit-log.js';

const FIRST: ChainPosition = { seq: 0, hash: GENESIS };
const META_KEY = 'audit_verified';

/** What the watch tells the metrics. */
export interface ChainObserver {
  chainChecked(result: { intact: boolean; verifiedSeq: number }): void;
}

export type ChainCheck = { intact: true; verifiedSeq: number; behind: number } | { intact: false; verifiedSeq: number; finding: AuditFinding };

export class ChainWatch {
  private position: ChainPosition | null = null;
  private running: Promise<ChainCheck> | null = null;
  private reported: string | null = null;

  constructor(
    private readonly deps: {
      store: Store;
      audit: AuditLog;
      observer: ChainObserver;
      /** Told of a break once (the server's log). */
      broken: (finding: AuditFinding) => void;
      /** Entries verified at most per run. */
      maxPerRun?: number;
    },
  ) {}

  /** One check; a run already under way is joined, not doubled. */
  run(): Promise<ChainCheck> {
    this.running ??= this.check().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async check(): Promise<ChainCheck> {
    const { audit, observer } = this.deps;
    const from = await this.start();
    const step = await audit.verifyFrom(from, this.deps.maxPerRun ?? 100_000);
    if (!step.ok) {
      observer.chainChecked({ intact: false, verifiedSeq: from.seq });
      await this.report(step.finding);
      return { intact: false, verifiedSeq: from.seq, finding: step.finding };
    }
    this.reported = null;
    if (step.seq > from.seq || this.position === null) await this.keep({ seq: step.seq, hash: step.hash });
    // and the newest head this process has seen (appends included), for the next start
    await audit.keepSeen();
    observer.chainChecked({ intact: true, verifiedSeq: step.seq });
    return { intact: true, verifiedSeq: step.seq, behind: step.head - step.seq };
  }

  /** Where to continue: the position in memory, or the stored one if it is genuine and further. */
  private async start(): Promise<ChainPosition> {
    const row = await this.deps.store.db.selectFrom('meta').select('value').where('key', '=', META_KEY).executeTakeFirst();
    let stored: ChainPosition | null = null;
    if (row) {
      try {
        const line = this.deps.audit.parseCheckpoint(row.value);
        if (line.genuine) stored = { seq: line.seq, hash: line.hash };
      } catch {
        // not a line: as if absent
      }
    }
    const known = this.position;
    const best = known && (!stored || known.seq >= stored.seq) ? known : (stored ?? FIRST);
    this.deps.audit.noteVerified(best);
    return best;
  }

  private async keep(position: ChainPosition): Promise<void> {
    this.position = position;
    const value = this.deps.audit.positionLine(position);
    await this.deps.store.db
      .insertInto('meta')
      .values({ key: META_KEY, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }

  private async report(finding: AuditFinding): Promise<void> {
    const key = `${finding.reason}:${findingSeq(finding)}`;
    if (this.reported === key) return;
    this.reported = key;
    this.deps.broken(finding);
    // recorded in the chain when it still takes appends (a forged or moved-back head does not)
    await this.deps.audit.record({ event: 'audit.chain_broken', actor: 'system', data: { ...finding } }).catch(() => undefined);
  }
}
