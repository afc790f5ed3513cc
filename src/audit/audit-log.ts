/**
 * The audit log (X1): append-only, each entry chained to the previous one by
 * an HMAC-SHA-256 under a key derived from the master key, and a head (the
 * newest seq and hash) signed under another derived key and kept apart from
 * the entries, in `audit_head`, moved in the transaction of every append.
 *
 * Without the key, an edited entry cannot be given a matching hash, and
 * deleting the newest entries or emptying the table leaves the signed head
 * pointing past the end: `verify()` reports either. A checkpoint (the head
 * signed, as one line of text) kept outside the database also catches a
 * rollback to an older copy of the database, or a rewrite by someone holding
 * the master key. Entries chained with plain SHA-256 before the keyed chain
 * existed stay as they are, anchored by the first keyed entry (decision 0006).
 * Appends are serialised across every server process.
 */
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { sql } from 'kysely';
import type { Clock } from '../clock.js';
import { constantTimeEqual } from '../crypto/constant-time.js';
import { SlsError } from '../errors.js';
import type { Executor, Store, Tx } from '../store/database.js';
import { insertRow, prepared } from '../store/prepared.js';
import type { AuditHeadTable, AuditLogTable } from '../store/schema.js';
import { currentRequestId } from '../request-context.js';

export type AuditEvent =
  | 'user.created'
  | 'user.password_changed'
  | 'account.equity_changed'
  | 'account.equity_refused'
  | 'account.created'
  | 'entity.created'
  | 'entity.identification_corrected'
  | 'entity.identification_viewed'
  | 'user.security_right_granted'
  | 'user.security_right_revoked'
  | 'security.refused_not_primary'
  | 'user.opted_out'
  | 'user.opted_in'
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
  | 'login.flow_ended'
  | 'session.refused'
  | 'helpdesk.refused'
  | 'helpdesk.verification_refused'
  | 'helpdesk.secret_refused'
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
  | 'device.ship_refused'
  | 'device.loss_confirmed'
  | 'device.auto_activated'
  | 'deposit.settled'
  | 'device.activated'
  | 'device.proof_failed'
  | 'device.pin_changed'
  | 'device.clone_suspected'
  | 'device.renamed'
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
  | 'sms.country_refused'
  | 'login.offline_requested'
  | 'login.claim_refused'
  | 'login.push_approved'
  | 'login.push_denied'
  | 'login.push_withheld'
  | 'push.sent'
  | 'push.failed'
  | 'mobile.activation_started'
  | 'mobile.token_sent'
  | 'mobile.token_proven'
  | 'mobile.claim_refused'
  | 'mobile.activated'
  | 'mobile.activation_failed'
  | 'mobile.recovery_failed'
  | 'mobile.recovery_refused'
  | 'mobile.activation_refused'
  | 'mobile.message_sent'
  | 'stepup.started'
  | 'stepup.verified'
  /** V1, L8 (decision 0042): a step-up replaced its session's token (data: the step-up, the session; never a token). */
  | 'session.rotated'
  | 'user.notice_preferences_changed'
  | 'audit.queried'
  | 'apikey.created'
  | 'oidc.client_created'
  | 'oidc.client_deleted'
  | 'oidc.keys_rotated'
  | 'oidc.login'
  | 'oidc.backchannel_logout'
  | 'oidc.grant_revoked'
  | 'oidc.device_requested'
  | 'oidc.device_refused'
  | 'apikey.revoked'
  | 'apikey.refused'
  | 'fx.rate_set'
  | 'withdrawal.recorded'
  | 'withdrawal.refused'
  // H1-H5, T4: sharing one device between usernames
  | 'sharing.started'
  | 'sharing.refused'
  | 'sharing.proof_failed'
  | 'sharing.proven'
  | 'sharing.requested'
  | 'sharing.approved'
  | 'sharing.rejected'
  | 'sharing.cancelled'
  | 'helpdesk.temp_passcode_refused'
  // X1: the operator anchored the entries chained before the keyed chain (sls audit anchor); the server found the chain broken
  | 'audit.anchored'
  | 'audit.chain_broken';

export interface AuditInput {
  event: AuditEvent;
  /** Who did it: `user:<id>`, `cli`, `system`, `staff:<id>`. */
  actor?: string | null;
  userId?: string | null;
  /** Without `userId` (a username typed that names nobody), only its keyed digest is kept (`usernameDigest`). */
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

/** The keys of the chain, of its head and of typed usernames, each derived from the master key with a label of its own. */
export interface AuditKeys {
  chain: Buffer;
  head: Buffer;
  /** The keyed digest of a username as typed (`usernameDigest`). */
  username: Buffer;
}

export function auditKeys(masterKey: Buffer): AuditKeys {
  const derive = (label: string) => Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), label, 32));
  return { chain: derive('sls audit-chain v1'), head: derive('sls audit-head v1'), username: derive('sls typed-username v1') };
}

/** What starts a typed username's digest: a colon is no username's character (A3), so a digest is never a username. */
export const USERNAME_DIGEST_PREFIX = 'hmac:';

/**
 * X1, L1: what is kept of a username as typed that names nobody, in the
 * audit log and as the lock's key (L3): a keyed digest, never the text,
 * which is often a password typed one field too early. The same text gives
 * the same digest, so staff still find the entries by the username they
 * type, and the lock still counts an unknown username as a known one.
 */
export function usernameDigest(key: Buffer, username: string): string {
  return USERNAME_DIGEST_PREFIX + createHmac('sha256', key).update(username).digest('base64url');
}

/** The prev_hash of the first entry. */
export const GENESIS = '0'.repeat(64);

type Chained = Omit<AuditLogTable, 'hash' | 'prev_hash'>;

function canonical(row: Chained): string {
  return JSON.stringify([row.seq, row.at, row.event, row.actor, row.user_id, row.username, row.ip, row.data]);
}

/** How entries were chained before decision 0006 (and still are verified, up to `legacy_until`). */
function legacyHash(prevHash: string, row: Chained): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonical(row)).digest('hex');
}

function keyedHash(key: Buffer, prevHash: string, row: Chained): string {
  return createHmac('sha256', key).update(prevHash).update('\n').update(canonical(row)).digest('hex');
}

type Head = Omit<AuditHeadTable, 'id' | 'signature'>;

function headSignature(key: Buffer, head: Head): string {
  return createHmac('sha256', key).update(`sls-audit-head/1\n${head.seq}\n${head.hash}\n${head.at}\n${head.legacy_until}`).digest('hex');
}

/**
 * A checkpoint: one line an operator keeps outside the database, e.g.
 * `sls-audit-checkpoint/1 seq=42 hash=… at=2026-01-05T09:00:00.000Z sig=…`.
 * The signature covers everything before ` sig=`.
 */
export interface Checkpoint {
  seq: number;
  hash: string;
  at: number;
  /** Signed under this master key. */
  genuine: boolean;
}

const CHECKPOINT_VERSION = 'sls-audit-checkpoint/1';
/** `meta`'s key of the newest head a process saw (AuditLog.keepSeen), a signed checkpoint line. */
const SEEN_KEY = 'audit_seen';
const CHECKPOINT_LINE = /^sls-audit-checkpoint\/1 seq=(\d{1,15}) hash=([0-9a-f]{64}) at=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) sig=([A-Za-z0-9_-]{43})$/;

function checkpointSignature(key: Buffer, body: string): string {
  return createHmac('sha256', key).update(body).digest('base64url');
}

/** What `verify()` found wrong; seq numbers are those of the entries concerned. */
export type AuditFinding =
  /** entries seq…last no longer have the hash they were chained with */
  | { reason: 'entry_altered'; seq: number; last: number }
  /** entry seq does not follow the one before it: an earlier entry was rewritten */
  | { reason: 'link_broken'; seq: number }
  /** entries seq…last are missing between others */
  | { reason: 'entries_missing'; seq: number; last: number }
  /** the entries after seq are missing: the signed head names entry head */
  | { reason: 'newest_missing'; seq: number; head: number }
  /** no entry is left: the signed head names entry head */
  | { reason: 'table_emptied'; head: number }
  /** entries seq…last are not covered by the signed head (written around the server) */
  | { reason: 'entries_unsigned'; seq: number; last: number }
  /** the newest entry is not the one the signed head names */
  | { reason: 'head_mismatch'; seq: number }
  | { reason: 'head_missing' }
  | { reason: 'head_forged' }
  /** the head is not signed at all: the state migration 0009 leaves before `sls audit anchor`, or a reset to it (decision 0006) */
  | { reason: 'head_unsigned'; seq: number }
  /** the signed head names entry seq, older than entry verified, which this server saw it name: the head was put back (its entries after seq removed) */
  | { reason: 'head_moved_back'; seq: number; verified: number }
  /** the checkpoint line does not carry this server's signature */
  | { reason: 'checkpoint_forged'; seq: number }
  /** the entry the checkpoint names has another hash now */
  | { reason: 'checkpoint_mismatch'; seq: number }
  /** the entry the checkpoint names is gone */
  | { reason: 'checkpoint_missing'; seq: number };

export type AuditFindingReason = AuditFinding['reason'];

export type VerifyResult =
  | {
      ok: true;
      entries: number;
      /** The newest entry's seq and hash (the signed head). */
      seq: number;
      head: string;
      /** Entries up to this seq are chained with plain SHA-256 (before the keyed chain; 0 for none). */
      legacyUntil: number;
      /** The checkpoint verified against, if one was given. */
      checkpoint: { seq: number } | null;
    }
  | {
      ok: false;
      entries: number;
      /** The first finding's seq (0 when it names none) and reason. */
      brokenAt: number;
      reason: AuditFindingReason;
      findings: AuditFinding[];
      legacyUntil: number;
    };

/** The seq a finding names first, if any. */
export function findingSeq(finding: AuditFinding): number {
  if ('seq' in finding) return finding.seq;
  if ('head' in finding) return finding.head;
  return 0;
}

const MAX_FINDINGS = 50;

// the statements of every append, built once (issue 15)
const readHead = prepared<Record<string, never>>()((db) => db.selectFrom('audit_head').selectAll().where('id', '=', 1));
const moveHead = prepared<{ seq: number; hash: string; at: number; signature: string }>()((db, p) =>
  db.updateTable('audit_head').set({ seq: p.seq, hash: p.hash, at: p.at, signature: p.signature }).where('id', '=', 1),
);

class Findings {
  readonly list: AuditFinding[] = [];

  add(finding: AuditFinding): void {
    const last = this.list.at(-1);
    // runs of altered entries are one finding
    if (finding.reason === 'entry_altered' && last?.reason === 'entry_altered' && last.last + 1 === finding.seq) {
      last.last = finding.last;
      return;
    }
    if (this.list.some((f) => f.reason === finding.reason && findingSeq(f) === findingSeq(finding))) return;
    if (this.list.length < MAX_FINDINGS) this.list.push(finding);
  }
}

export interface AuditQuery {
  userId?: string;
  username?: string;
  since?: number;
  until?: number;
  /** An event name (`login.locked`) or a family of them (`login.*`). */
  type?: string;
  /** Only entries older than this seq: the `next` of the page before. */
  before?: number;
  limit?: number;
}

export interface AuditPage {
  entries: AuditEntry[];
  /** The `before` of the next page, or null on the last page. */
  next: number | null;
}

function toEntry(r: AuditLogTable): AuditEntry {
  return {
    seq: r.seq,
    at: r.at,
    event: r.event,
    actor: r.actor,
    userId: r.user_id,
    username: r.username,
    ip: r.ip,
    data: JSON.parse(r.data) as Record<string, unknown>,
    hash: r.hash,
  };
}

/** Told of the entries appended (the operators' metrics count logins, locks … from them). */
export interface AuditListener {
  audited(entries: readonly AuditInput[]): void;
}

/** Where a check of the chain left off: entries up to seq verified, seq's hash. */
export interface ChainPosition {
  seq: number;
  hash: string;
}

/** One step of the server's own check of the chain (ChainWatch). */
export type ChainStep = { ok: true; seq: number; hash: string; head: number } | { ok: false; finding: AuditFinding };

export class AuditLog {
  /**
   * X1: the newest head this process read or verified, or read at start as
   * the one kept signed in `meta` by a process before it (`keepSeen`): a
   * head put back below it was rolled back by someone else, and the entry
   * at its seq must keep its hash (a tail cut and appended over).
   */
  private highest: ChainPosition | null = null;
  /**
   * The transactions this process appended in: a head read in one of them
   * after its first append is not committed yet (the transaction may still
   * roll back), so it is not a head this process knows was reached.
   */
  private readonly appendedIn = new WeakSet<Tx>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly keys: AuditKeys,
    /** Told of every entry appended (the metrics' counters of logins, locks, push requests). */
    private readonly observer: AuditListener = { audited: () => undefined },
  ) {}

  /** Appends entries in their own serialised transaction. */
  async record(...inputs: AuditInput[]): Promise<void> {
    await this.store.serialized('audit_log', (trx) => this.append(trx, inputs));
  }

  /**
   * Appends within a transaction that already holds the audit lock (see
   * Store.serialized), and moves the signed head in the same transaction.
   * The chain continues from the signed head, not from whatever the table
   * holds: entries deleted before an append stay missing. A head that is
   * missing or not signed by us is refused (AUDIT_CHAIN_BROKEN) rather than
   * signed over, which would hide what was done.
   */
  async append(trx: Tx, inputs: AuditInput[]): Promise<void> {
    if (inputs.length === 0) return;
    // X1: a second append in one transaction reads the first one's head, which a rollback takes back: not noted as reached
    const head = await this.trustedHead(trx, !this.appendedIn.has(trx));
    this.appendedIn.add(trx);
    let seq = head.seq;
    let prevHash = head.hash;
    const now = this.clock.now();
    const rows: AuditLogTable[] = [];
    // the request that wrote the entry, to find its log lines (a field of the hashed data: the chain's format is unchanged)
    const requestId = currentRequestId();
    for (const input of inputs) {
      seq += 1;
      const row = {
        seq,
        at: now,
        event: input.event,
        actor: input.actor ?? null,
        user_id: input.userId ?? null,
        username: this.usernameOf(input),
        ip: input.ip ?? null,
        data: JSON.stringify(requestId && input.data?.requestId === undefined ? { ...input.data, requestId } : (input.data ?? {})),
      };
      const hash = keyedHash(this.keys.chain, prevHash, row);
      rows.push({ ...row, prev_hash: prevHash, hash });
      prevHash = hash;
    }
    if (rows.length === 1) await insertRow(trx, 'audit_log', rows[0]!);
    else await trx.insertInto('audit_log').values(rows).execute();
    const moved: Head = { seq, hash: prevHash, at: now, legacy_until: head.legacy_until };
    await moveHead.execute(trx, { seq, hash: prevHash, at: now, signature: headSignature(this.keys.head, moved) });
    this.observer.audited(inputs);
  }

  /** An entry's username: a user's as it is, a username typed that names nobody as its keyed digest (X1, L1). */
  private usernameOf(input: AuditInput): string | null {
    if (!input.username) return null;
    return input.userId ? input.username : this.usernameDigest(input.username);
  }

  /** The keyed digest of a username as typed (the lock's key too, L3). */
  usernameDigest(username: string): string {
    return usernameDigest(this.keys.username, username);
  }

  private async trustedHead(db: Executor, committed = true): Promise<AuditHeadTable> {
    const head = await readHead.first(db, {});
    if (!head) throw new SlsError('AUDIT_CHAIN_BROKEN', { reason: 'head_missing', seq: 0 });
    if (!this.headGenuine(head)) throw findingError(this.headFinding(head));
    // a genuinely signed head older than one already seen: the tail was cut and an older head put back (never appended over)
    if (this.highest && head.seq < this.highest.seq) throw findingError({ reason: 'head_moved_back', seq: head.seq, verified: this.highest.seq });
    if (committed) this.noteVerified({ seq: head.seq, hash: head.hash });
    return head;
  }

  /** A head this process knows was reached (read, verified, or kept by an earlier process): appends refuse a head put back below it. */
  noteVerified(position: ChainPosition): void {
    if (!this.highest || position.seq > this.highest.seq) this.highest = { ...position };
  }

  /**
   * X1, decision 0006: keeps the newest head this process has seen in `meta`
   * as a signed checkpoint line (with the chain's check and when the process
   * closes), so that the next start knows it too: a head moved back between
   * two runs of the server is then reported, as within one run. Only moves
   * forward (another process may have kept a newer one).
   */
  async keepSeen(): Promise<void> {
    if (!this.highest) return;
    await this.store.serialized('audit_log', async (trx) => {
      // the head as it is now when genuine and not older (this process's own last appends moved it)
      const head = await readHead.first(trx, {});
      if (head && this.headGenuine(head)) this.noteVerified({ seq: head.seq, hash: head.hash });
      const seen = this.highest!;
      if (seen.seq === 0) return;
      const kept = await this.storedSeen(trx);
      if (kept && kept.seq >= seen.seq) return;
      const value = this.positionLine(seen);
      await trx
        .insertInto('meta')
        .values({ key: SEEN_KEY, value })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
        .execute();
    });
  }

  /** The newest head kept by `keepSeen`, when its line is genuine. */
  private async storedSeen(db: Executor): Promise<ChainPosition | null> {
    const row = await db.selectFrom('meta').select('value').where('key', '=', SEEN_KEY).executeTakeFirst();
    if (!row) return null;
    try {
      const line = this.parseCheckpoint(row.value);
      return line.genuine ? { seq: line.seq, hash: line.hash } : null;
    } catch {
      return null;
    }
  }

  /**
   * X1: verifies at most `max` entries after `from` (a position verified
   * before) towards the signed head as it is now, as `verify` does: the
   * server's own incremental check (ChainWatch). Entries up to `from` are
   * not read again but for `from` itself, which must keep its hash.
   */
  async verifyFrom(from: ChainPosition, max: number): Promise<ChainStep> {
    const db = this.store.db;
    const head = await readHead.first(db, {});
    if (!head) return { ok: false, finding: { reason: 'head_missing' } };
    if (!this.headGenuine(head)) return { ok: false, finding: this.headFinding(head) };
    if (head.seq < from.seq) return { ok: false, finding: { reason: 'head_moved_back', seq: head.seq, verified: from.seq } };
    // the newest head seen (by this process or, kept in meta, one before it): not below it, and its entry kept its hash
    const seen = this.highest;
    if (seen && seen.seq > from.seq) {
      if (head.seq < seen.seq) return { ok: false, finding: { reason: 'head_moved_back', seq: head.seq, verified: seen.seq } };
      const kept = await db.selectFrom('audit_log').select('hash').where('seq', '=', seen.seq).executeTakeFirst();
      if (!kept) return { ok: false, finding: { reason: 'checkpoint_missing', seq: seen.seq } };
      if (kept.hash !== seen.hash) return { ok: false, finding: { reason: 'checkpoint_mismatch', seq: seen.seq } };
    }
    if (from.seq > 0) {
      const kept = await db.selectFrom('audit_log').select('hash').where('seq', '=', from.seq).executeTakeFirst();
      if (!kept) return { ok: false, finding: { reason: 'checkpoint_missing', seq: from.seq } };
      if (kept.hash !== from.hash) return { ok: false, finding: { reason: 'checkpoint_mismatch', seq: from.seq } };
    }
    let seq = from.seq;
    let prevHash = from.hash;
    const until = Math.min(head.seq, from.seq + max);
    while (seq < until) {
      const rows = await db.selectFrom('audit_log').selectAll().where('seq', '>', seq).where('seq', '<=', until).orderBy('seq').limit(1000).execute();
      if (rows.length === 0) break;
      for (const row of rows) {
        if (row.seq > seq + 1) return { ok: false, finding: { reason: 'entries_missing', seq: seq + 1, last: row.seq - 1 } };
        if (row.prev_hash !== prevHash) return { ok: false, finding: { reason: 'link_broken', seq: row.seq } };
        const computed = row.seq <= head.legacy_until ? legacyHash(row.prev_hash, row) : keyedHash(this.keys.chain, row.prev_hash, row);
        if (computed !== row.hash) return { ok: false, finding: { reason: 'entry_altered', seq: row.seq, last: row.seq } };
        seq = row.seq;
        prevHash = row.hash;
      }
    }
    if (seq < until) {
      return { ok: false, finding: seq === 0 ? { reason: 'table_emptied', head: head.seq } : { reason: 'newest_missing', seq, head: head.seq } };
    }
    if (seq === head.seq && prevHash !== head.hash) return { ok: false, finding: { reason: 'head_mismatch', seq } };
    this.noteVerified({ seq, hash: prevHash });
    return { ok: true, seq, hash: prevHash, head: head.seq };
  }

  /** A position as a signed checkpoint line (kept by ChainWatch in the database: forged, it is not believed). */
  positionLine(position: ChainPosition): string {
    const body = `${CHECKPOINT_VERSION} seq=${position.seq} hash=${position.hash} at=${new Date(this.clock.now()).toISOString()}`;
    return `${body} sig=${checkpointSignature(this.keys.head, body)}`;
  }

  private headGenuine(head: AuditHeadTable): boolean {
    return head.signature !== null && constantTimeEqual(head.signature, headSignature(this.keys.head, head));
  }

  /** What a head that is not genuine is: never signed (head_unsigned), or signed by someone else (head_forged). */
  private headFinding(head: AuditHeadTable): AuditFinding {
    return head.signature === null ? { reason: 'head_unsigned', seq: head.seq } : { reason: 'head_forged' };
  }

  /**
   * X1, decision 0006: run at every start, before any append. The head of a
   * new database (no entry, no user: nothing that could have been audited)
   * is signed here. Any other unsigned head is never signed by a start: it
   * is either a database upgraded from before the keyed chain, which the
   * operator anchors once with `sls audit anchor`, or a log rewritten with
   * plain SHA-256 and its head reset to that state, which a start must not
   * bless. Then AUDIT_NOT_ANCHORED, unless `allowUnanchored` (the audit
   * commands, which read, verify and anchor).
   */
  async open(options: { allowUnanchored?: boolean } = {}): Promise<void> {
    // the newest head a process before this one saw (keepSeen): appends refuse a head put back below it
    const seen = await this.storedSeen(this.store.db);
    if (seen) this.noteVerified(seen);
    const head = await readHead.first(this.store.db, {});
    if (!head || head.signature !== null) return;
    const signed = await this.store.serialized('audit_log', async (trx) => {
      const now = await readHead.first(trx, {});
      if (!now || now.signature !== null) return true;
      if (now.seq !== 0 || now.legacy_until !== 0 || now.hash !== GENESIS) return false;
      const entry = await trx.selectFrom('audit_log').select('seq').limit(1).executeTakeFirst();
      const user = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst();
      if (entry || user) return false;
      await trx
        .updateTable('audit_head')
        .set({ signature: headSignature(this.keys.head, now) })
        .where('id', '=', 1)
        .execute();
      return true;
    });
    if (!signed && !options.allowUnanchored) throw new SlsError('AUDIT_NOT_ANCHORED', { seq: head.legacy_until });
  }

  /**
   * `sls audit anchor` (decision 0006): signs the head migration 0009
   * recorded over the entries chained with plain SHA-256 before the keyed
   * chain, once those entries verify so, and records that it did as the
   * first keyed entry. Null when the head is already signed. A head that
   * keyed entries have moved is never signed: it was forged.
   */
  async anchor(actor = 'cli'): Promise<{ legacyUntil: number; hash: string; firstAt: number | null; lastAt: number | null } | null> {
    return this.store.serialized('audit_log', async (trx) => {
      const head = await readHead.first(trx, {});
      if (!head) throw new SlsError('AUDIT_CHAIN_BROKEN', { reason: 'head_missing', seq: 0 });
      if (head.signature !== null) {
        if (this.headGenuine(head)) return null;
        throw findingError({ reason: 'head_forged' });
      }
      if (head.seq !== head.legacy_until) throw findingError({ reason: 'head_forged' });
      // every entry up to the head chained with plain SHA-256, none missing, none beyond it
      const findings = new Findings();
      let prevHash = GENESIS;
      let expectedSeq = 1;
      let firstAt: number | null = null;
      let lastAt: number | null = null;
      for (;;) {
        const rows = await trx
          .selectFrom('audit_log')
          .selectAll()
          .where('seq', '>=', expectedSeq)
          .where('seq', '<=', head.seq)
          .orderBy('seq')
          .limit(1000)
          .execute();
        for (const row of rows) {
          if (row.seq > expectedSeq) findings.add({ reason: 'entries_missing', seq: expectedSeq, last: row.seq - 1 });
          else if (row.prev_hash !== prevHash) findings.add({ reason: 'link_broken', seq: row.seq });
          if (legacyHash(row.prev_hash, row) !== row.hash) findings.add({ reason: 'entry_altered', seq: row.seq, last: row.seq });
          firstAt ??= row.at;
          lastAt = row.at;
          prevHash = row.hash;
          expectedSeq = row.seq + 1;
        }
        if (rows.length < 1000) break;
      }
      const beyond = await trx.selectFrom('audit_log').select('seq').where('seq', '>', head.seq).orderBy('seq').limit(1).executeTakeFirst();
      if (beyond) findings.add({ reason: 'entries_unsigned', seq: beyond.seq, last: beyond.seq });
      if (expectedSeq - 1 < head.seq) {
        findings.add(expectedSeq === 1 ? { reason: 'table_emptied', head: head.seq } : { reason: 'newest_missing', seq: expectedSeq - 1, head: head.seq });
      } else if (prevHash !== head.hash) findings.add({ reason: 'head_mismatch', seq: head.seq });
      const [finding] = findings.list;
      if (finding) throw findingError(finding);
      await trx
        .updateTable('audit_head')
        .set({ signature: headSignature(this.keys.head, head) })
        .where('id', '=', 1)
        .execute();
      await this.append(trx, [{ event: 'audit.anchored', actor, data: { legacyUntil: head.legacy_until, hash: head.hash } }]);
      return { legacyUntil: head.legacy_until, hash: head.hash, firstAt, lastAt };
    });
  }

  /** Entries newest first, filtered. */
  async list(query: AuditQuery = {}, db: Executor = this.store.db): Promise<AuditEntry[]> {
    let q = db.selectFrom('audit_log').selectAll();
    if (query.userId) q = q.where('user_id', '=', query.userId);
    // a username typed that named nobody is kept as its digest: found by the same text, and shown as the text asked for
    const digest = query.username ? this.usernameDigest(query.username) : null;
    if (query.username) {
      const username = query.username;
      q = q.where((eb) =>
        eb.or([eb('username', 'in', [username, digest!]), eb('user_id', 'in', eb.selectFrom('users').select('id').where('username', '=', username))]),
      );
    }
    if (query.since !== undefined) q = q.where('at', '>=', query.since);
    if (query.until !== undefined) q = q.where('at', '<', query.until);
    if (query.type !== undefined) {
      if (query.type.endsWith('.*')) {
        // a family: every name that starts with "login." (not LIKE, where "_" is a wildcard; not a range, which collations reorder)
        const prefix = query.type.slice(0, -1);
        q = q.where(sql<string>`substr(event, 1, ${sql.lit(prefix.length)})`, '=', prefix);
      } else {
        q = q.where('event', '=', query.type);
      }
    }
    if (query.before !== undefined) q = q.where('seq', '<', query.before);
    const rows = await q
      .orderBy('seq', 'desc')
      .limit(query.limit ?? 100)
      .execute();
    return rows.map((row) => (digest !== null && row.username === digest ? { ...toEntry(row), username: query.username! } : toEntry(row)));
  }

  /** One page of `list`, and where the next one starts. */
  async page(query: AuditQuery & { limit: number }): Promise<AuditPage> {
    const rows = await this.list({ ...query, limit: query.limit + 1 });
    const entries = rows.slice(0, query.limit);
    return { entries, next: rows.length > query.limit ? entries.at(-1)!.seq : null };
  }

  /** A checkpoint line of the head, once the whole chain verified. */
  async checkpoint(): Promise<string> {
    const result = await this.verify();
    if (!result.ok) throw findingError(result.findings[0]!);
    return this.positionLine({ seq: result.seq, hash: result.head });
  }

  /** Reads a checkpoint line; VALIDATION_ERROR when it is not one. */
  parseCheckpoint(line: string): Checkpoint {
    const text = line.trim();
    const match = CHECKPOINT_LINE.exec(text);
    const at = match ? Date.parse(match[3]!) : NaN;
    if (!match || Number.isNaN(at) || new Date(at).toISOString() !== match[3]) throw new SlsError('VALIDATION_ERROR', { reason: 'checkpoint' });
    const body = text.slice(0, text.lastIndexOf(' sig='));
    return { seq: Number(match[1]), hash: match[2]!, at, genuine: constantTimeEqual(match[4]!, checkpointSignature(this.keys.head, body)) };
  }

  /**
   * Recomputes the whole chain and compares its end with the signed head;
   * with a checkpoint, also that the entry it names still has its hash.
   * Reports every finding (altered runs of entries as one), not only the
   * first. Appends may go on meanwhile: the head is read after the entries,
   * and rows and head are always committed together.
   */
  async verify(options: { checkpoint?: string | Checkpoint } = {}): Promise<VerifyResult> {
    const checkpoint = typeof options.checkpoint === 'string' ? this.parseCheckpoint(options.checkpoint) : options.checkpoint;
    const db = this.store.db;
    const findings = new Findings();
    const headOf = () => readHead.first(db, {});
    const first = await headOf();
    if (!first) findings.add({ reason: 'head_missing' });
    else if (!this.headGenuine(first)) findings.add(this.headFinding(first));
    if (checkpoint && !checkpoint.genuine) findings.add({ reason: 'checkpoint_forged', seq: checkpoint.seq });

    // Without a head, the entries chained with plain SHA-256 are those from the first that verify so.
    let legacyUntil = first ? first.legacy_until : null;
    let expectedSeq = 1;
    let prevHash = GENESIS;
    let prevAltered = false;
    let entries = 0;
    let checkpointSeen = checkpoint?.seq === 0;
    if (checkpoint?.seq === 0 && checkpoint.hash !== GENESIS) findings.add({ reason: 'checkpoint_mismatch', seq: 0 });
    const pageSize = 1000;
    for (;;) {
      const rows = await db.selectFrom('audit_log').selectAll().where('seq', '>=', expectedSeq).orderBy('seq').limit(pageSize).execute();
      for (const row of rows) {
        if (row.seq > expectedSeq) findings.add({ reason: 'entries_missing', seq: expectedSeq, last: row.seq - 1 });
        else if (row.prev_hash !== prevHash && !prevAltered) findings.add({ reason: 'link_broken', seq: row.seq });
        if (legacyUntil === null && legacyHash(row.prev_hash, row) !== row.hash) legacyUntil = row.seq - 1;
        const legacy = legacyUntil === null || row.seq <= legacyUntil;
        const computed = legacy ? legacyHash(row.prev_hash, row) : keyedHash(this.keys.chain, row.prev_hash, row);
        prevAltered = computed !== row.hash;
        if (prevAltered) findings.add({ reason: 'entry_altered', seq: row.seq, last: row.seq });
        if (checkpoint && row.seq === checkpoint.seq) {
          checkpointSeen = true;
          if (row.hash !== checkpoint.hash) findings.add({ reason: 'checkpoint_mismatch', seq: row.seq });
        }
        prevHash = row.hash;
        expectedSeq = row.seq + 1;
        entries += 1;
      }
      if (rows.length === pageSize) continue;

      // The end of the table: compare it with the head as it is now.
      const lastSeq = expectedSeq - 1;
      const head = await headOf();
      if (!head) {
        findings.add({ reason: 'head_missing' });
      } else if (head.seq > lastSeq) {
        // appended meanwhile, or removed?
        const more = await db.selectFrom('audit_log').select('seq').where('seq', '>=', expectedSeq).limit(1).executeTakeFirst();
        if (more) continue;
        findings.add(entries === 0 ? { reason: 'table_emptied', head: head.seq } : { reason: 'newest_missing', seq: lastSeq, head: head.seq });
      } else if (head.seq < lastSeq) {
        findings.add({ reason: 'entries_unsigned', seq: head.seq + 1, last: lastSeq });
      } else if (head.hash !== prevHash) {
        findings.add({ reason: 'head_mismatch', seq: lastSeq });
      }
      if (head && !this.headGenuine(head)) findings.add(this.headFinding(head));
      if (checkpoint && !checkpointSeen) findings.add({ reason: 'checkpoint_missing', seq: checkpoint.seq });

      const [firstFinding] = findings.list;
      if (firstFinding) {
        return {
          ok: false,
          entries,
          brokenAt: findingSeq(firstFinding),
          reason: firstFinding.reason,
          findings: findings.list,
          legacyUntil: legacyUntil ?? lastSeq,
        };
      }
      return { ok: true, entries, seq: lastSeq, head: prevHash, legacyUntil: legacyUntil ?? lastSeq, checkpoint: checkpoint ? { seq: checkpoint.seq } : null };
    }
  }
}

/**
 * A finding as an error whose message (`errors.AUDIT_CHAIN_BROKEN_<reason>`)
 * says what was found; a run of one entry reads as one entry.
 */
export function findingError(finding: AuditFinding): SlsError {
  const { reason, ...params } = finding;
  const single = 'last' in finding && finding.last === finding.seq;
  const message = single ? reason.replace(/^entries_/, 'entry_') : reason === 'entry_altered' ? 'entries_altered' : reason;
  return new SlsError('AUDIT_CHAIN_BROKEN', { ...params, seq: findingSeq(finding), reason: message });
}
