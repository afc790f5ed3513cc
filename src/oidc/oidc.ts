/**
 * I1: the OpenID Provider's side of the domain — what the HTTP layer's
 * provider (oidc-provider, mounted in http/oidc.ts) asks of us: which of our
 * sessions stands behind a provider session, what a login proved (`acr`,
 * `amr`, `auth_time`), the claims of the `sls.entitlements` scope, and the
 * back-channel logout (OpenID Connect Back-Channel Logout 1.0) of every
 * client of a session when our session ends (L8: logout, password change or
 * reset, temporary passcode revoked, device lost, authenticator moved, staff).
 *
 * Our sessions end in many places (`Sessions.endWhere`, `Sessions.end`);
 * rather than hook each, the delivery reads which linked sessions have ended:
 * it runs from the scheduler (every process, every minute; a claim per link
 * so only one process sends) and at once when a session ends here. A client
 * that does not answer 200/204 is tried again, 5 times at most.
 */
import { createHash, createPrivateKey, createSign, randomUUID } from 'node:crypto';
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { Device, DeviceKinds } from '../devices/types.js';
import { toSession, type Session } from '../sessions/sessions.js';
import type { Store } from '../store/database.js';
import type { Confirmation } from '../store/schema.js';
import type { WithdrawalLimits } from '../policy/withdrawal-limits.js';
import { acrOf, acrRank, amrOf, type Acr } from './claims.js';
import type { OidcClients } from './clients.js';
import type { OidcKeys } from './keys.js';
import { pruneArtifacts, putMark, revokeGrants } from './adapter.js';

export const DEFAULT_ISSUER = 'http://localhost:8080';

/** What a session's last proof was: the login's device, or the device of its last step-up (V1). */
export interface LoginProof {
  /** Milliseconds: the login, or the last step-up. */
  authTime: number;
  acr: Acr;
  amr: string[];
}

/** I1, L8: the session of ours a token stands on, the device of its last proof (null: none that stands) and that proof as claims. */
export interface TokenStanding {
  session: Session;
  device: Device | null;
  proof: LoginProof;
}

export interface OpenIdDeps {
  store: Store;
  clock: Clock;
  audit: AuditLog;
  deviceKind: DeviceKinds;
  clients: OidcClients;
  keys: OidcKeys;
  issuer: string;
  /** The session's last proof: its latest step-up's device, else its login's (`StepUp.lastProof`). */
  lastProof: (session: Session) => Promise<{ device: Device | null; at: number; confirmedBy: Confirmation | null }>;
  /** L8: whether a session of ours lives (`Sessions.liveById`); `renew`: its idle timer renewed, if it is a session of `app` (when named). */
  liveSession: (sessionId: string, options: { renew: boolean; app?: string | undefined }) => Promise<boolean>;
  /** Fetch for the back-channel (tests pass nothing: the global fetch). */
  fetch?: typeof fetch;
  /** W1: the limits of a session of the user whose last proof was that device (`Withdrawals.limitsProvedBy`; none: the None row). */
  withdrawalLimitsOf: (userId: string, proved: Device | null) => Promise<WithdrawalLimits>;
}

/** Our own rows among the provider's: when the approval of a device began (not a provider model). */
const DEVICE_APPROVAL = 'SlsDeviceApproval';
/** … and the browser an interaction began in (decision 0037: a digest of its cookie). */
const INTERACTION_BROWSER = 'SlsInteractionBrowser';

/** A browser's cookie as it is kept: a digest (a copy of the database names no browser's cookie). */
function browserDigest(browser: string): string {
  return createHash('sha256').update(`sls-oidc-browser\0${browser}`).digest('base64url');
}

const MAX_ATTEMPTS = 5;
const RETRY_MS = 60_000;
const TIMEOUT_MS = 5_000;
const LOGOUT_TOKEN_TTL_S = 120;

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** After a session ends in a transaction, the delivery looks this much later (the transaction has committed by then; if not, the scheduler's next run sends). */
const NUDGE_DELAY_MS = 250;

export class OpenIdConnect {
  private nudged: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly deps: OpenIdDeps) {}

  /** Sessions ended: deliver their back-channel logouts soon, in this process (errors wait for the scheduler). */
  nudge(): void {
    if (this.nudged || this.closed) return;
    this.nudged = setTimeout(() => {
      this.nudged = null;
      this.deliverBackChannel().catch(() => undefined);
    }, NUDGE_DELAY_MS);
    this.nudged.unref();
  }

  /** No more deliveries from this process (the services are closing). */
  stop(): void {
    this.closed = true;
    if (this.nudged) clearTimeout(this.nudged);
    this.nudged = null;
  }

  get clients(): OidcClients {
    return this.deps.clients;
  }

  get keys(): OidcKeys {
    return this.deps.keys;
  }

  get issuer(): string {
    return this.deps.issuer;
  }

  /** What the session's last proof was (the login, or a later step-up in it), as claims. */
  async proof(session: Session): Promise<LoginProof> {
    return (await this.lastProof(session)).proof;
  }

  /** The device of the session's last proof (null: none that stands), and that proof as claims. */
  private async lastProof(session: Session): Promise<{ device: Device | null; proof: LoginProof }> {
    const { device, at, confirmedBy } = await this.deps.lastProof(session);
    const kind = device ? this.deps.deviceKind(device.type) : null;
    return { device, proof: { authTime: at, acr: acrOf(kind), amr: amrOf(kind, confirmedBy) } };
  }

  /**
   * I1, RFC 8628 §5.4 (decision 0037): the browser an interaction began in
   * (its `__Host-` cookie), recorded when the provider sends that browser to
   * it, once: the first record stands.
   */
  async interactionBegan(interactionUid: string, browser: string, expiresAt: number): Promise<void> {
    await putMark(this.deps.store, INTERACTION_BROWSER, interactionUid, { browser: browserDigest(browser) }, expiresAt);
  }

  /**
   * Whether the interaction began in this browser (its cookie, if any): its
   * `__Secure-` cookies planted in another browser (a sibling subdomain may
   * set them) finish nothing there.
   */
  async interactionOfBrowser(interactionUid: string, browser: string | undefined): Promise<boolean> {
    if (!browser) return false;
    const row = await this.deps.store.db
      .selectFrom('oidc_artifacts')
      .select('payload')
      .where('model', '=', INTERACTION_BROWSER)
      .where('id', '=', interactionUid)
      .executeTakeFirst();
    return row !== undefined && (JSON.parse(row.payload) as { browser: string }).browser === browserDigest(browser);
  }

  /**
   * RFC 8628 §5.4: when the approval of a device began (our clock, in
   * milliseconds), recorded at its first look so that every process agrees;
   * only a login made after it approves the device.
   */
  async deviceApprovalStarted(interactionUid: string, expiresAt: number): Promise<number> {
    const { db } = this.deps.store;
    await putMark(this.deps.store, DEVICE_APPROVAL, interactionUid, { since: this.deps.clock.now() }, expiresAt);
    const row = await db
      .selectFrom('oidc_artifacts')
      .select('payload')
      .where('model', '=', DEVICE_APPROVAL)
      .where('id', '=', interactionUid)
      .executeTakeFirstOrThrow();
    return (JSON.parse(row.payload) as { since: number }).since;
  }

  /**
   * I1, L8: the session of ours a token stands on (`tokenSession`), and what
   * its last proof was (its login's, or its latest step-up's): null when
   * there is none, or it is another user's. Worked out once per token use
   * (findAccount), for its liveness, its claims and its entitlements.
   */
  async tokenStanding(userId: string, oidcSessionUid: string | undefined, grantId: string | undefined): Promise<TokenStanding | null> {
    const sessionId = await this.tokenSession(oidcSessionUid, grantId);
    if (sessionId === undefined) return null;
    const row = await this.deps.store.db.selectFrom('sessions').selectAll().where('id', '=', sessionId).where('user_id', '=', userId).executeTakeFirst();
    if (!row) return null;
    const session = toSession(row, false);
    return { session, ...(await this.lastProof(session)) };
  }

  /** L8: whether the session a token stands on lives (`liveSession`; `renew`: its idle timer renewed, if a session of `app`). */
  async standingLives(standing: TokenStanding | null, options: { renew: boolean; app?: string | undefined }): Promise<boolean> {
    return standing !== null && (await this.deps.liveSession(standing.session.id, options));
  }

  /**
   * I1, D2: what a token (a refresh token, a code) tells of the login —
   * `acr`, `amr`, `auth_time` — is never more than the proof of the session
   * it stands on now: a device's grant carried over to a weaker login of its
   * user (RFC 8628, `Sessions.endReplaced`), or a session whose last step-up
   * was made with a weaker device, claims that proof from then on (the
   * rotated refresh token keeps it). A proof as strong or stronger changes
   * nothing: the token was given for what it says.
   */
  claimsNoMore(claims: { acr?: string; amr?: string[]; authTime?: number }, standing: TokenStanding): { acr: string; amr: string[]; authTime: number } | null {
    if (claims.acr === undefined || acrRank(standing.proof.acr) >= acrRank(claims.acr)) return null;
    return { acr: standing.proof.acr, amr: standing.proof.amr, authTime: Math.floor(standing.proof.authTime / 1000) };
  }

  /**
   * The claims of the `sls.entitlements` scope: the session's scope (T3) and
   * its W1 limits. W1, I1, D2: an application applies those limits to what
   * the user asks for in this session, so they are those of what the session
   * proved, never more: the weaker of the user's row (the entitlement API's:
   * opted out, sharing) and the row of the device of the session's last proof
   * (its login's, or its latest step-up's). Someone holding the password and
   * the SIM of a user who also holds a DSC+ logs in with SMS: the SMS row, not
   * unlimited; a temporary passcode, the password alone, or a device since
   * revoked or lost: the None row. The session is the one the token stands
   * on (`tokenStanding`); none: the None row.
   */
  async entitlements(userId: string, standing: TokenStanding | null): Promise<Record<string, unknown>> {
    const limits = await this.deps.withdrawalLimitsOf(userId, standing?.device ?? null);
    return {
      sls_session_scope: standing?.session.scope ?? null,
      sls_app: standing?.session.app ?? null,
      sls_withdrawal_limits: { device: limits.device, per_day_usd: limits.perDayUsd, five_business_days_usd: limits.fiveBusinessDaysUsd },
    };
  }

  /**
   * L8, T3: a provider session stands on ours. Its tokens are refreshed,
   * introspected and their claims read only while the newest of our sessions
   * under it lives: not revoked, not past its end, which a temporary device
   * brings forward (T3: day 2, day 12; S3: day 21), nor idle (a portal
   * session's 30 minutes), its user active. The provider's own lifetimes
   * count from the first token and know nothing of that end. `renew`: a
   * refresh is the application in use, which keeps our session from idling
   * out (as a request of the browser's does) — a session of the client's own
   * app (`app`): a device's grant carried over to a portal login does not
   * keep that one alive. A token of a grant recorded
   * under a session of ours (`grantGiven`) stands on that session, whatever
   * the browser logged in since: a device's grant carried over to a new login
   * of its user (RFC 8628, `Sessions.endReplaced`) on the new one.
   */
  async standsOnLiveSession(
    oidcSessionUid: string,
    options: { renew: boolean; grantId?: string | undefined; app?: string | undefined } = { renew: false },
  ): Promise<boolean> {
    const ours = await this.tokenSession(oidcSessionUid, options.grantId);
    return ours !== undefined && (await this.deps.liveSession(ours, { renew: options.renew, app: options.app }));
  }

  /** I1, L8: the session of ours a token stands on: its grant's (`grantSession`), else the provider session's (`standingSession`). */
  private async tokenSession(oidcSessionUid: string | undefined, grantId: string | undefined): Promise<string | undefined> {
    const given = grantId === undefined ? undefined : await this.grantSession(grantId);
    return given ?? (oidcSessionUid === undefined ? undefined : await this.standingSession(oidcSessionUid));
  }

  /** I1, L8: the session of ours a grant was given under (or carried over to), if recorded. */
  private async grantSession(grantId: string): Promise<string | undefined> {
    const row = await this.deps.store.db.selectFrom('oidc_grant_sessions').select('sls_session_id').where('grant_id', '=', grantId).executeTakeFirst();
    return row?.sls_session_id;
  }

  /** I1, L8: the session of ours the provider session stands on: the newest linked to it. */
  async standingSession(oidcSessionUid: string): Promise<string | undefined> {
    const newest = await this.deps.store.db
      .selectFrom('oidc_session_links')
      .select('sls_session_id')
      .where('oidc_session_uid', '=', oidcSessionUid)
      // a session linked only for the devices' grants it carries over (RFC 8628) is not the browser's login here
      .where('devices_only', '=', 0)
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    return newest?.sls_session_id;
  }

  /**
   * I1, L8, T3: whether the provider session stands on this very session of
   * ours (the newest linked to it, by the login that finished its last
   * interaction). A later session of the same user in the same browser is
   * not it: it may have been opened with a weaker device (its acr and amr
   * are not the provider session's) or be limited (T3, A5), so it goes
   * through the interaction, where what it proved and may do are checked.
   */
  async standsOn(oidcSessionUid: string, slsSessionId: string): Promise<boolean> {
    return (await this.standingSession(oidcSessionUid)) === slsSessionId;
  }

  /**
   * L8: a login of ours finishes an interaction of the provider session. A
   * grant of it given under another session of ours that has ended (idle,
   * expired, replaced by this very login: L8) is revoked, audited — its
   * tokens stand on that session, and never come back to life with a later
   * login in the same browser. A grant given before the records (migration 0023) counts
   * as given under the session the provider session stood on. (While that
   * session lives, its grants go on, as the provider session does.)
   */
  async loginFinished(oidcSessionUid: string, slsSessionId: string, grants: { grantId: string; clientId: string }[], userId: string): Promise<void> {
    if (grants.length === 0) return;
    const { store } = this.deps;
    const recorded = await store.db
      .selectFrom('oidc_grant_sessions')
      .select(['grant_id', 'sls_session_id'])
      .where(
        'grant_id',
        'in',
        grants.map((g) => g.grantId),
      )
      .execute();
    const under = new Map(recorded.map((row) => [row.grant_id, row.sls_session_id]));
    const standing = await this.standingSession(oidcSessionUid);
    const lives = new Map<string, boolean>();
    const ended: typeof grants = [];
    for (const grant of grants) {
      const session = under.get(grant.grantId) ?? standing;
      if (session === slsSessionId) continue;
      if (session !== undefined && !lives.has(session)) lives.set(session, await this.deps.liveSession(session, { renew: false }));
      if (session === undefined || !lives.get(session)) ended.push(grant);
    }
    if (ended.length === 0) return;
    await store.serialized('audit_log', async (trx) => {
      const revoked: typeof grants = [];
      for (const grant of ended) {
        // revoked already (the back-channel logout of its session): nothing to audit again
        const deleted = await trx.deleteFrom('oidc_artifacts').where('grant_id', '=', grant.grantId).executeTakeFirst();
        if (Number(deleted.numDeletedRows) > 0) revoked.push(grant);
      }
      if (revoked.length === 0) return;
      await this.deps.audit.append(
        trx,
        revoked.map(({ grantId, clientId }) => ({
          event: 'oidc.grant_revoked' as const,
          actor: 'system',
          userId,
          data: { grantId, clientId, route: 'another_session' },
        })),
      );
    });
  }

  /**
   * I1, L8: a grant was given (or goes on) under this session of ours, its
   * client told this sid: when that session ends, the grant is revoked and
   * the client told, even if the provider session goes on with another login.
   * `device`: given to a device (RFC 8628), which a new login of the same user
   * in the browser carries over (`Sessions.endReplaced`).
   */
  async grantGiven(given: { grantId: string; clientId: string; sid: string; oidcSessionUid: string; slsSessionId: string; device: boolean }): Promise<void> {
    const row = {
      grant_id: given.grantId,
      client_id: given.clientId,
      sid: given.sid,
      oidc_session_uid: given.oidcSessionUid,
      sls_session_id: given.slsSessionId,
      created_at: this.deps.clock.now(),
      device_code: given.device ? 1 : 0,
    };
    await this.deps.store.db
      .insertInto('oidc_grant_sessions')
      .values(row)
      .onConflict((oc) =>
        oc.column('grant_id').doUpdateSet({
          sid: row.sid,
          oidc_session_uid: row.oidc_session_uid,
          sls_session_id: row.sls_session_id,
          // once a device holds the grant, it stays the device's
          ...(given.device ? { device_code: 1 } : {}),
        }),
      )
      .execute();
  }

  /** A provider session stands on our session (also one linked for devices' grants only, since): when ours ends, its clients are told. */
  async link(oidcSessionUid: string, session: Session): Promise<void> {
    await this.deps.store.db
      .insertInto('oidc_session_links')
      .values({
        oidc_session_uid: oidcSessionUid,
        sls_session_id: session.id,
        user_id: session.userId,
        created_at: this.deps.clock.now(),
        logged_out_at: null,
        attempts: 0,
        next_attempt_at: 0,
      })
      .onConflict((oc) =>
        oc
          .columns(['oidc_session_uid', 'sls_session_id'])
          .doUpdateSet({ devices_only: 0, created_at: this.deps.clock.now() })
          .where('oidc_session_links.devices_only', '=', 1),
      )
      .execute();
  }

  /** The scheduler: expired artefacts and retired keys past their tokens' lifetime. */
  async prune(): Promise<number> {
    const pruned = (await pruneArtifacts(this.deps.store, this.deps.clock)) + (await this.deps.keys.prune());
    await this.pruneSessionLinks();
    await this.pruneGrantRecords();
    return pruned;
  }

  /**
   * The links of sessions of ours that ended (revoked, past their end, idle, or gone), once no back-channel logout of
   * theirs waits, and once the provider session is gone or stands on a later link: the session a provider session stands
   * on (its newest link) never changes by a prune.
   */
  private async pruneSessionLinks(): Promise<void> {
    const now = this.deps.clock.now();
    await this.deps.store.db
      .deleteFrom('oidc_session_links as link')
      .where(({ exists, not, selectFrom }) =>
        not(
          exists(
            selectFrom('sessions')
              .select('sessions.id')
              .whereRef('sessions.id', '=', 'link.sls_session_id')
              .where('sessions.revoked_at', 'is', null)
              .where('sessions.expires_at', '>', now)
              .where((eb) => eb.or([eb('sessions.idle_expires_at', 'is', null), eb('sessions.idle_expires_at', '>', now)])),
          ),
        ),
      )
      // a logout waiting to be sent (deliverBackChannel) keeps its link
      .where(({ eb, exists, not, or, selectFrom }) =>
        or([
          eb('link.logged_out_at', 'is not', null),
          not(
            exists(
              selectFrom('sessions').select('sessions.id').whereRef('sessions.id', '=', 'link.sls_session_id').where('sessions.revoked_at', 'is not', null),
            ),
          ),
        ]),
      )
      .where(({ exists, not, or, selectFrom }) =>
        or([
          not(
            exists(
              selectFrom('oidc_artifacts')
                .select('oidc_artifacts.id')
                .where('oidc_artifacts.model', '=', 'Session')
                .whereRef('oidc_artifacts.uid', '=', 'link.oidc_session_uid'),
            ),
          ),
          exists(
            selectFrom('oidc_session_links as later')
              .select('later.sls_session_id')
              .whereRef('later.oidc_session_uid', '=', 'link.oidc_session_uid')
              .whereRef('later.created_at', '>', 'link.created_at')
              .where('later.devices_only', '=', 0),
          ),
        ]),
      )
      .execute();
  }

  /** The records of grants that are gone, once no back-channel logout of their session waits to tell their client. */
  private async pruneGrantRecords(): Promise<void> {
    await this.deps.store.db
      .deleteFrom('oidc_grant_sessions')
      .where(({ exists, not, selectFrom }) =>
        not(
          exists(
            selectFrom('oidc_artifacts')
              .select('oidc_artifacts.id')
              .where('oidc_artifacts.model', '=', 'Grant')
              // the grant's own id (its row's id is a keyed digest of it, D5)
              .whereRef('oidc_artifacts.grant_id', '=', 'oidc_grant_sessions.grant_id'),
          ),
        ),
      )
      .where(({ exists, not, selectFrom }) =>
        not(
          exists(
            selectFrom('oidc_session_links')
              .select('oidc_session_links.oidc_session_uid')
              .whereRef('oidc_session_links.oidc_session_uid', '=', 'oidc_grant_sessions.oidc_session_uid')
              .whereRef('oidc_session_links.sls_session_id', '=', 'oidc_grant_sessions.sls_session_id')
              .where('oidc_session_links.logged_out_at', 'is', null),
          ),
        ),
      )
      .execute();
  }

  /**
   * Back-channel logout: for each provider session standing on a session of
   * ours that ended, a logout token to each of its clients that asked for
   * them; its grants are revoked and the provider session deleted. When the
   * provider session goes on with another session of ours — a new login in
   * the same browser replaced the ended one (L8), or it stands on a later one
   * that lives — only the grants given under the ended session are revoked
   * and only their clients told, with the sid each was given then; the
   * provider session and what the later login was given stay. Returns the
   * logout tokens delivered.
   */
  async deliverBackChannel(): Promise<number> {
    const { store, clock } = this.deps;
    const now = clock.now();
    const due = await store.db
      .selectFrom('oidc_session_links')
      .innerJoin('sessions', 'sessions.id', 'oidc_session_links.sls_session_id')
      .select([
        'oidc_session_links.oidc_session_uid',
        'oidc_session_links.sls_session_id',
        'oidc_session_links.user_id',
        'oidc_session_links.attempts',
        'oidc_session_links.created_at',
        'oidc_session_links.replaced_by',
      ])
      .where('oidc_session_links.logged_out_at', 'is', null)
      .where('oidc_session_links.next_attempt_at', '<=', now)
      .where('sessions.revoked_at', 'is not', null)
      .limit(50)
      .execute();
    let delivered = 0;
    for (const link of due) {
      // claim the link: one process sends
      const claimed = await store.db
        .updateTable('oidc_session_links')
        .set({ attempts: link.attempts + 1, next_attempt_at: now + RETRY_MS * (link.attempts + 1) })
        .where('oidc_session_uid', '=', link.oidc_session_uid)
        .where('sls_session_id', '=', link.sls_session_id)
        .where('attempts', '=', link.attempts)
        .where('logged_out_at', 'is', null)
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) continue;
      const goesOn = link.replaced_by !== null || (await this.standsOnAnotherLiveSession(link));
      const result = goesOn
        ? await this.logOutGrantsOf(link.oidc_session_uid, link.sls_session_id, link.user_id)
        : await this.logOut(link.oidc_session_uid, link.sls_session_id, link.user_id);
      delivered += result.delivered;
      if (result.failed.length === 0 || link.attempts + 1 >= MAX_ATTEMPTS) {
        await store.serialized('audit_log', async (trx) => {
          await trx
            .updateTable('oidc_session_links')
            .set({ logged_out_at: now })
            .where('oidc_session_uid', '=', link.oidc_session_uid)
            .where('sls_session_id', '=', link.sls_session_id)
            .execute();
          await this.deps.audit.append(trx, [
            {
              event: 'oidc.backchannel_logout',
              actor: 'system',
              userId: link.user_id,
              data: {
                sessionId: link.sls_session_id,
                clients: result.clients,
                failed: result.failed,
                ...(link.replaced_by !== null ? { replacedBy: link.replaced_by } : {}),
                ...(goesOn ? { providerSession: 'kept' } : {}),
              },
            },
          ]);
        });
        if (!goesOn) await this.forget(link.oidc_session_uid);
      }
    }
    return delivered;
  }

  /** Whether the provider session also stands on a session of ours linked since (or at once) that has not ended. */
  private async standsOnAnotherLiveSession(link: { oidc_session_uid: string; sls_session_id: string; created_at: number }): Promise<boolean> {
    const other = await this.deps.store.db
      .selectFrom('oidc_session_links')
      .innerJoin('sessions', 'sessions.id', 'oidc_session_links.sls_session_id')
      .select('oidc_session_links.sls_session_id')
      .where('oidc_session_links.oidc_session_uid', '=', link.oidc_session_uid)
      .where('oidc_session_links.sls_session_id', '!=', link.sls_session_id)
      .where('oidc_session_links.created_at', '>=', link.created_at)
      .where('sessions.revoked_at', 'is', null)
      .executeTakeFirst();
    return other !== undefined;
  }

  /**
   * Ends one provider session: all its grants are revoked, and the clients whose grant was given under our session
   * that ended (`slsSessionId`) are told (a client left from an earlier session of ours was told when that one ended).
   */
  private async logOut(oidcSessionUid: string, slsSessionId: string, userId: string): Promise<{ delivered: number; clients: string[]; failed: string[] }> {
    const row = await this.deps.store.db
      .selectFrom('oidc_artifacts')
      .select('payload')
      .where('model', '=', 'Session')
      .where('uid', '=', oidcSessionUid)
      .executeTakeFirst();
    if (!row) return { delivered: 0, clients: [], failed: [] };
    const payload = JSON.parse(row.payload) as { accountId?: string; authorizations?: Record<string, { sid?: string; grantId?: string }> };
    const authorizations = Object.entries(payload.authorizations ?? {});
    const grants = authorizations.map(([, a]) => a.grantId).filter((g): g is string => typeof g === 'string');
    // L8: the tokens die first, then the clients are told: never a moment (nor a retry's minutes) when a client
    // that heard of the logout, or did not hear yet, can still refresh
    await revokeGrants(this.deps.store, grants);
    const recorded =
      grants.length === 0
        ? []
        : await this.deps.store.db.selectFrom('oidc_grant_sessions').select(['grant_id', 'sls_session_id']).where('grant_id', 'in', grants).execute();
    const under = new Map(recorded.map((row) => [row.grant_id, row.sls_session_id]));
    return this.tell(
      authorizations
        .filter(([, { grantId }]) => grantId === undefined || (under.get(grantId) ?? slsSessionId) === slsSessionId)
        .map(([clientId, { sid }]) => ({ clientId, sid })),
      payload.accountId ?? userId,
    );
  }

  /**
   * L8: the grants given under one session of ours in a provider session that goes on: they are revoked, then their
   * clients told, each with the sid it was given under that session (the later login's grants have sids of their own).
   */
  private async logOutGrantsOf(
    oidcSessionUid: string,
    slsSessionId: string,
    userId: string,
  ): Promise<{ delivered: number; clients: string[]; failed: string[] }> {
    const given = await this.deps.store.db
      .selectFrom('oidc_grant_sessions')
      .select(['grant_id', 'client_id', 'sid'])
      .where('oidc_session_uid', '=', oidcSessionUid)
      .where('sls_session_id', '=', slsSessionId)
      .execute();
    await revokeGrants(
      this.deps.store,
      given.map((g) => g.grant_id),
    );
    return this.tell(
      given.map((g) => ({ clientId: g.client_id, sid: g.sid })),
      userId,
    );
  }

  /** Posts a logout token to each client that asked for them; which clients took it, which failed. */
  private async tell(
    authorizations: { clientId: string; sid: string | undefined }[],
    sub: string,
  ): Promise<{ delivered: number; clients: string[]; failed: string[] }> {
    const clients: string[] = [];
    const failed: string[] = [];
    for (const { clientId, sid } of authorizations) {
      const client = await this.deps.clients.find(clientId);
      if (!client?.backchannelLogoutUri) continue;
      const token = await this.logoutToken(clientId, sub, sid);
      try {
        const response = await (this.deps.fetch ?? fetch)(client.backchannelLogoutUri, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ logout_token: token }).toString(),
          redirect: 'manual',
          signal: AbortSignal.timeout(TIMEOUT_MS),
        });
        if (response.status === 200 || response.status === 204) clients.push(clientId);
        else failed.push(clientId);
      } catch {
        failed.push(clientId);
      }
    }
    return { delivered: clients.length, clients, failed };
  }

  /** A logout token (Back-Channel Logout 1.0 §2.4), signed with the current key. */
  private async logoutToken(clientId: string, sub: string, sid: string | undefined): Promise<string> {
    const [key] = await this.deps.keys.published();
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', kid: key!.kid, typ: 'logout+jwt' };
    const claims = {
      iss: this.deps.issuer,
      aud: clientId,
      iat: now,
      exp: now + LOGOUT_TOKEN_TTL_S,
      jti: randomUUID(),
      sub,
      ...(sid ? { sid } : {}),
      events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
    };
    const input = `${base64url(header)}.${base64url(claims)}`;
    const signature = createSign('RSA-SHA256')
      .update(input)
      .sign(createPrivateKey({ key: key!, format: 'jwk' }));
    return `${input}.${signature.toString('base64url')}`;
  }

  /** The provider session, once every client was told or given up on (its grants were revoked before any was told, by logOut). */
  private async forget(oidcSessionUid: string): Promise<void> {
    await this.deps.store.db.deleteFrom('oidc_artifacts').where('model', '=', 'Session').where('uid', '=', oidcSessionUid).execute();
  }
}
