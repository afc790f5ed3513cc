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
import { createPrivateKey, createSign, randomUUID } from 'node:crypto';
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { Device, DeviceKinds } from '../devices/types.js';
import type { Session } from '../sessions/sessions.js';
import type { Store } from '../store/database.js';
import type { Confirmation } from '../store/schema.js';
import type { WithdrawalLimits } from '../policy/withdrawal-limits.js';
import { acrOf, amrOf, type Acr } from './claims.js';
import type { OidcClients } from './clients.js';
import type { OidcKeys } from './keys.js';
import { pruneArtifacts, revokeGrants } from './adapter.js';

export const DEFAULT_ISSUER = 'http://localhost:8080';

/** What a session's last proof was: the login's device, or the device of its last step-up (V1). */
export interface LoginProof {
  /** Milliseconds: the login, or the last step-up. */
  authTime: number;
  acr: Acr;
  amr: string[];
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
  /** L8: whether a session of ours lives (`Sessions.liveById`); `renew`: its idle timer renewed. */
  liveSession: (sessionId: string, options: { renew: boolean }) => Promise<boolean>;
  /** Fetch for the back-channel (tests pass nothing: the global fetch). */
  fetch?: typeof fetch;
  /** W1: a user's limits as the entitlement API decides them (opted out: the None row; sharing: the shared device). */
  withdrawalLimitsOf: (userId: string) => Promise<WithdrawalLimits>;
}

/** Our own rows among the provider's: when the approval of a device began (not a provider model). */
const DEVICE_APPROVAL = 'SlsDeviceApproval';

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
    const { device, at, confirmedBy } = await this.deps.lastProof(session);
    const kind = device ? this.deps.deviceKind(device.type) : null;
    return { authTime: at, acr: acrOf(kind), amr: amrOf(kind, confirmedBy) };
  }

  /**
   * RFC 8628 §5.4: when the approval of a device began (our clock, in
   * milliseconds), recorded at its first look so that every process agrees;
   * only a login made after it approves the device.
   */
  async deviceApprovalStarted(interactionUid: string, expiresAt: number): Promise<number> {
    const { db } = this.deps.store;
    await db
      .insertInto('oidc_artifacts')
      .values({
        model: DEVICE_APPROVAL,
        id: interactionUid,
        payload: JSON.stringify({ since: this.deps.clock.now() }),
        grant_id: null,
        uid: null,
        user_code: null,
        expires_at: expiresAt,
        consumed_at: null,
      })
      .onConflict((oc) => oc.columns(['model', 'id']).doNothing())
      .execute();
    const row = await db
      .selectFrom('oidc_artifacts')
      .select('payload')
      .where('model', '=', DEVICE_APPROVAL)
      .where('id', '=', interactionUid)
      .executeTakeFirstOrThrow();
    return (JSON.parse(row.payload) as { since: number }).since;
  }

  /** The claims of the `sls.entitlements` scope: the session's scope (T3) and the user's W1 limits (the entitlement API's). */
  async entitlements(userId: string, oidcSessionUid: string | undefined): Promise<Record<string, unknown>> {
    const limits = await this.deps.withdrawalLimitsOf(userId);
    const linked = oidcSessionUid
      ? await this.deps.store.db
          .selectFrom('oidc_session_links')
          .innerJoin('sessions', 'sessions.id', 'oidc_session_links.sls_session_id')
          .select(['sessions.scope', 'sessions.app'])
          .where('oidc_session_links.oidc_session_uid', '=', oidcSessionUid)
          .orderBy('oidc_session_links.created_at', 'desc')
          .executeTakeFirst()
      : undefined;
    return {
      sls_session_scope: linked?.scope ?? null,
      sls_app: linked?.app ?? null,
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
   * out (as a request of the browser's does).
   */
  async standsOnLiveSession(oidcSessionUid: string, options: { renew: boolean } = { renew: false }): Promise<boolean> {
    const ours = await this.deps.store.db
      .selectFrom('oidc_session_links')
      .select('sls_session_id')
      .where('oidc_session_uid', '=', oidcSessionUid)
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    return ours !== undefined && (await this.deps.liveSession(ours.sls_session_id, options));
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
    const newest = await this.deps.store.db
      .selectFrom('oidc_session_links')
      .select('sls_session_id')
      .where('oidc_session_uid', '=', oidcSessionUid)
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    return newest?.sls_session_id === slsSessionId;
  }

  /**
   * L8: a login of ours finishes an interaction of the provider session. When
   * it is another session than the one the provider session stood on, and
   * that one has ended (idle, expired: no back-channel logout revoked its
   * grants), the grants given under it are revoked, audited — its tokens
   * stand on it, and never come back to life with a later login in the same
   * browser. (While it lives, they stand on the newest, as the provider session does.)
   */
  async loginFinished(oidcSessionUid: string, slsSessionId: string, grants: { grantId: string; clientId: string }[], userId: string): Promise<void> {
    if (grants.length === 0 || (await this.standsOn(oidcSessionUid, slsSessionId)) || (await this.standsOnLiveSession(oidcSessionUid))) return;
    await this.deps.store.serialized('audit_log', async (trx) => {
      await trx
        .deleteFrom('oidc_artifacts')
        .where(
          'grant_id',
          'in',
          grants.map((g) => g.grantId),
        )
        .execute();
      await this.deps.audit.append(
        trx,
        grants.map(({ grantId, clientId }) => ({
          event: 'oidc.grant_revoked' as const,
          actor: 'system',
          userId,
          data: { grantId, clientId, route: 'another_session' },
        })),
      );
    });
  }

  /** A provider session stands on our session: when ours ends, its clients are told. */
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
      .onConflict((oc) => oc.columns(['oidc_session_uid', 'sls_session_id']).doNothing())
      .execute();
  }

  /** The scheduler: expired artefacts and retired keys past their tokens' lifetime. */
  async prune(): Promise<number> {
    return (await pruneArtifacts(this.deps.store, this.deps.clock)) + (await this.deps.keys.prune());
  }

  /**
   * Back-channel logout: for each provider session standing on a session of
   * ours that ended, a logout token to each of its clients that asked for
   * them; its grants are revoked and the provider session deleted. Returns
   * the logout tokens delivered.
   */
  async deliverBackChannel(): Promise<number> {
    const { store, clock } = this.deps;
    const now = clock.now();
    const due = await store.db
      .selectFrom('oidc_session_links')
      .innerJoin('sessions', 'sessions.id', 'oidc_session_links.sls_session_id')
      .select(['oidc_session_links.oidc_session_uid', 'oidc_session_links.sls_session_id', 'oidc_session_links.user_id', 'oidc_session_links.attempts'])
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
      const result = await this.logOut(link.oidc_session_uid, link.user_id);
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
              data: { sessionId: link.sls_session_id, clients: result.clients, failed: result.failed },
            },
          ]);
        });
        await this.forget(link.oidc_session_uid);
      }
    }
    return delivered;
  }

  /** Sends the logout tokens of one provider session; which clients were told, which failed. */
  private async logOut(oidcSessionUid: string, userId: string): Promise<{ delivered: number; clients: string[]; failed: string[] }> {
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
    const clients: string[] = [];
    const failed: string[] = [];
    for (const [clientId, authorization] of authorizations) {
      const client = await this.deps.clients.find(clientId);
      if (!client?.backchannelLogoutUri) continue;
      const token = await this.logoutToken(clientId, payload.accountId ?? userId, authorization.sid);
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
