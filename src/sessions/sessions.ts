/**
 * Sessions (L8): an opaque bearer token, stored only as its SHA-256 hash.
 * Portal sessions end after 30 minutes idle and 12 hours at most; trading
 * sessions after 12 hours. Logout revokes the session server-side, and every
 * login creates a new session id; a step-up gives the session a new token
 * (decision 0042). A changed or withdrawn credential ends
 * the sessions it opened (`endWhere`), each ending audited with its cause;
 * the session of a user who is no longer active ends with the user.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { PolicyConfig } from '../config.js';
import { newId, newToken } from '../crypto/random.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Notifier } from '../notify/notifier.js';
import type { Executor, Store, Tx } from '../store/database.js';
import { insertRow, prepared } from '../store/prepared.js';
import type { Confirmation, SessionScope, SessionsTable } from '../store/schema.js';
import type { Selectable } from 'kysely';
import { notedEnded, notedRotated } from '../request-context.js';

export type App = 'portal' | 'trading';

export interface Session {
  id: string;
  userId: string;
  app: App;
  deviceId: string | null;
  deviceType: string | null;
  createdAt: number;
  expiresAt: number;
  idleExpiresAt: number | null;
  /** T3: `online_card_only` for a temporary passcode older than 2 days. */
  scope: SessionScope;
  /** K12: how the user confirmed on the mobile authenticator, if that was the device. */
  confirmedBy: Confirmation | null;
  /** V1: when the user last verified again with a device (step-up), or null. */
  verifiedAt: number | null;
  /** A5: the user logged in with a one-time password and must choose a new one before anything else. */
  passwordChangeRequired: boolean;
}

export interface IssuedSession extends Session {
  /** The bearer token: shown once, never stored. */
  token: string;
  /** L4, decision 0024: a login's session: the token of the known-client cookie the browser is given with it. */
  knownClient?: string;
}

export interface NewSession {
  /** Chosen beforehand when the caller records it elsewhere in the same transaction. */
  id?: string;
  userId: string;
  app: App;
  flowId: string | null;
  deviceId: string | null;
  deviceType: string | null;
  ip: string | null;
  userAgent: string | null;
  scope: SessionScope;
  confirmedBy?: Confirmation | null;
  /** A5: known already to the caller (read in its transaction); read here otherwise. */
  passwordMustChange?: boolean;
  /** T3, S3: the end of the window of the device that opened it: the session ends by then, whatever its app allows. */
  endsBy?: number;
}

/** Idle-expiry updates are written at most this often per session. */
const TOUCH_INTERVAL_MS = 30_000;

// the statements of every authenticated request, built once (issue 15)
const sessionOfToken = prepared<{ tokenHash: string }>()((db, p) =>
  db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .selectAll('sessions')
    .select(['users.status as user_status', 'users.password_must_change'])
    .where('sessions.token_hash', '=', p.tokenHash),
);
const renewBiometric = prepared<{ userId: string; now: number; expiresAt: number }>()((db, p) =>
  db
    .updateTable('sessions')
    .set({ expires_at: p.expiresAt })
    .where('user_id', '=', p.userId)
    .where('app', '=', 'trading')
    .where('confirmed_by', '=', 'biometric')
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', p.now),
);
const touchSession = prepared<{ id: string; now: number; idleExpiresAt: number }>()((db, p) =>
  db.updateTable('sessions').set({ last_seen_at: p.now, idle_expires_at: p.idleExpiresAt }).where('id', '=', p.id),
);

/** L8: whether a session lives at `now`: not ended (revoked), not past its end, nor idle past its limit. */
export function livesAt(row: { revoked_at: number | null; expires_at: number; idle_expires_at: number | null }, now: number): boolean {
  return row.revoked_at === null && row.expires_at > now && (row.idle_expires_at === null || row.idle_expires_at > now);
}

/** V1: the device and the phone's confirmation of a session's latest step-up, if it made one: the session's last proof (L8, T3, X7). */
export function latestStepUp(db: Executor, sessionId: string): Promise<{ device_id: string | null; confirmed_by: Confirmation | null } | undefined> {
  return latestStepUpRow.first(db, { sessionId });
}

const latestStepUpRow = prepared<{ sessionId: string }>()((db, p) =>
  db
    .selectFrom('login_flows')
    .select(['device_id', 'confirmed_by'])
    .where('session_id', '=', p.sessionId)
    .where('kind', '=', 'step_up')
    .where('state', '=', 'done')
    .orderBy('updated_at', 'desc')
    .limit(1),
);

export function newSessionId(): string {
  return newId('ses');
}

/** L8: a session token as stored (SHA-256, base64url): what a request's token is checked against. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** Why sessions end (L8), as the audit log says it. */
export type EndCause =
  | 'logout'
  | 'password_changed'
  | 'password_reset'
  | 'temporary_access_ended'
  | 'device_lost'
  | 'device_replaced'
  | 'device_revoked'
  | 'device_returned'
  | 'device_suspected'
  | 'sharing_ended'
  | 'opted_in'
  | 'user_locked'
  | 'ended_by_staff'
  /** K13: the user answered "this wasn't me" on the phone to the step-up this session asked for. */
  | 'push_denied'
  /** A new login in the same browser: its session replaced the one of the cookie the browser presented. */
  | 'replaced';

/** A session's row as a Session (`passwordChangeRequired`: the user's, read beside it). */
export function toSession(row: Selectable<SessionsTable>, passwordChangeRequired: boolean): Session {
  return {
    id: row.id,
    userId: row.user_id,
    app: row.app,
    deviceId: row.device_id,
    deviceType: row.device_type,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    idleExpiresAt: row.idle_expires_at,
    scope: row.scope,
    confirmedBy: row.confirmed_by,
    verifiedAt: row.verified_at,
    passwordChangeRequired,
  };
}

export class Sessions {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly policy: Pick<PolicyConfig, 'portalIdleMs' | 'portalMaxMs' | 'tradingMaxMs' | 'tradingBiometricMs'>,
    private readonly audit: AuditLog,
    /** Told (after the fact, never awaited) that sessions ended: the OpenID Provider tells their clients (I1). */
    private readonly ended: () => void,
    /** N1: tells both users of a sharing request that ended with the sessions. */
    private readonly notifier: Pick<Notifier, 'notify'>,
  ) {}

  private idleMs(app: App): number | null {
    return app === 'portal' ? this.policy.portalIdleMs : null;
  }

  async create(input: NewSession, db: Executor = this.store.db): Promise<IssuedSession> {
    const now = this.clock.now();
    const token = newToken();
    const idle = this.idleMs(input.app);
    const expiresAt = Math.min(now + this.maxMs(input.app, input.confirmedBy ?? null), input.endsBy ?? Number.POSITIVE_INFINITY);
    const row = {
      id: input.id ?? newSessionId(),
      token_hash: tokenHash(token),
      user_id: input.userId,
      app: input.app,
      flow_id: input.flowId,
      device_id: input.deviceId,
      device_type: input.deviceType,
      created_at: now,
      last_seen_at: now,
      idle_expires_at: idle === null ? null : Math.min(now + idle, expiresAt),
      expires_at: expiresAt,
      revoked_at: null,
      ip: input.ip,
      user_agent: input.userAgent,
      scope: input.scope,
      confirmed_by: input.confirmedBy ?? null,
      verified_at: null,
    };
    await insertRow(db, 'sessions', row);
    if (input.confirmedBy) await this.renewBiometricTrading(db, input.userId, now);
    const passwordMustChange =
      input.passwordMustChange ??
      (await db.selectFrom('users').select('password_must_change').where('id', '=', input.userId).executeTakeFirstOrThrow()).password_must_change === 1;
    return { ...toSession(row, passwordMustChange), token };
  }

  /** L8, K12: portal 12 hours; trading 12 hours, or 30 when confirmed by biometric on the mobile authenticator. */
  private maxMs(app: App, confirmedBy: Confirmation | null): number {
    if (app === 'portal') return this.policy.portalMaxMs;
    return confirmedBy === 'biometric' ? this.policy.tradingBiometricMs : this.policy.tradingMaxMs;
  }

  /**
   * K12: biometric trading access lasts "as long as the user authenticates at
   * least once in that period": each authentication on the phone renews the
   * user's live biometric trading sessions for another full period.
   */
  private async renewBiometricTrading(db: Executor, userId: string, now: number): Promise<void> {
    await renewBiometric.execute(db, { userId, now, expiresAt: now + this.policy.tradingBiometricMs });
  }

  /**
   * The live session of a token, its idle timer renewed; null when unknown,
   * expired or revoked, or when its user is no longer active.
   */
  async authenticate(token: string): Promise<Session | null> {
    if (token.length === 0 || token.length > 128) return null;
    const now = this.clock.now();
    const found = await sessionOfToken.first(this.store.db, { tokenHash: tokenHash(token) });
    if (found?.user_status !== 'active') return null;
    const { user_status: _status, password_must_change: mustChange, ...row } = found;
    if (!livesAt(row, now)) return null;
    const idleExpiresAt = await this.renewIdle(row, now);
    return toSession(idleExpiresAt === null ? row : { ...row, last_seen_at: now, idle_expires_at: idleExpiresAt }, mustChange === 1);
  }

  /** A portal session's idle timer renewed by activity (at most once a TOUCH_INTERVAL_MS): its new idle end, or null when not renewed. */
  private async renewIdle(row: { id: string; app: App; last_seen_at: number; expires_at: number }, now: number): Promise<number | null> {
    const idle = this.idleMs(row.app);
    if (idle === null || now - row.last_seen_at < TOUCH_INTERVAL_MS) return null;
    const idleExpiresAt = Math.min(now + idle, row.expires_at);
    await touchSession.execute(this.store.db, { id: row.id, now, idleExpiresAt });
    return idleExpiresAt;
  }

  /**
   * L8, I1: whether a session (by its id: an application's token stands on
   * it) still lives — not revoked, not past its end nor its idle time, its
   * user active. `renew`: the application in use counts as activity (a
   * refresh), so its idle timer is renewed, as a request with its token does.
   */
  async liveById(sessionId: string, options: { renew: boolean; app?: string | undefined }): Promise<boolean> {
    const now = this.clock.now();
    const row = await this.store.db
      .selectFrom('sessions')
      .innerJoin('users', 'users.id', 'sessions.user_id')
      .select([
        'sessions.id',
        'sessions.app',
        'sessions.revoked_at',
        'sessions.expires_at',
        'sessions.idle_expires_at',
        'sessions.last_seen_at',
        'users.status',
      ])
      .where('sessions.id', '=', sessionId)
      .executeTakeFirst();
    if (row?.status !== 'active' || !livesAt(row, now)) return false;
    // L8: the activity of an application of the session's own app (a trading device's refreshes, carried over to a
    // portal login in its browser, RFC 8628, are not that portal session's use)
    if (options.renew && (options.app === undefined || options.app === row.app)) await this.renewIdle(row, now);
    return true;
  }

  /**
   * V1, X7, L8 (decision 0042): the user verified again with a device, in this session: the session gets a new token
   * in the same statement (its id, its links and everything else kept). A copy of the old token (a stolen cookie or
   * Bearer token) ends here: it gets no share of the fresh step-up. Returns the new token, shown once; null when the
   * session ended meanwhile.
   */
  async markVerified(db: Executor, sessionId: string, at: number): Promise<string | null> {
    const token = newToken();
    const hash = tokenHash(token);
    const updated = await db
      .updateTable('sessions')
      .set({ verified_at: at, token_hash: hash })
      .where('id', '=', sessionId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) return null;
    // the request that rotated it acts with the new token from now on (sessions/in-flight.ts)
    notedRotated(sessionId, hash);
    return token;
  }

  /**
   * L8: ends the live sessions of a user — all of them, those opened with
   * some devices or with none (O1), or all but one — in the caller's transaction (which holds
   * the audit log's lock), each audited with its cause. Returns their ids.
   * Ending every session (but perhaps the caller's) ends the logins under way
   * too (`endLoginsUnderWay`).
   */
  async endWhere(
    trx: Tx,
    which: { userId: string; deviceIds?: string[]; withoutDevice?: boolean; exceptSessionId?: string },
    cause: EndCause,
    actor: string,
  ): Promise<string[]> {
    if (which.deviceIds !== undefined && which.deviceIds.length === 0) return [];
    const now = this.clock.now();
    if (which.deviceIds === undefined && !which.withoutDevice) {
      await this.endLoginsUnderWay(trx, which.userId, cause, actor, now);
      await this.endSharingsNotInForce(trx, which.userId, which.exceptSessionId, cause, actor, now);
    }
    let query = trx.selectFrom('sessions').select('id').where('user_id', '=', which.userId).where('revoked_at', 'is', null).where('expires_at', '>', now);
    if (which.deviceIds) query = query.where('device_id', 'in', which.deviceIds);
    // O1: the sessions opened with the password alone (opted out of the second factor for trading)
    if (which.withoutDevice) query = query.where('device_id', 'is', null);
    if (which.exceptSessionId) query = query.where('id', '!=', which.exceptSessionId);
    const ids = (await query.execute()).map((row) => row.id);
    if (ids.length === 0) return [];
    await trx.updateTable('sessions').set({ revoked_at: now }).where('id', 'in', ids).where('revoked_at', 'is', null).execute();
    notedEnded(ids);
    await this.audit.append(
      trx,
      ids.map((sessionId) => ({ event: 'session.ended' as const, actor, userId: which.userId, data: { sessionId, reason: cause } })),
    );
    this.ended();
    return ids;
  }

  /**
   * H2, H3, L8: the sharing requests not yet in force (the owner's device to
   * answer, the review, waiting for compliance) of which the user is the
   * owner, or the requester (but those of the session kept), end with the
   * sessions: they stand on the owner's password as it was and on the
   * requester's session, so a request proven with a password since changed
   * or reset is never confirmed nor approved. Each audited with the cause,
   * and told to both users in the same transaction (N1: the owner may not
   * know of the request, made by someone else with the password).
   */
  private async endSharingsNotInForce(
    trx: Tx,
    userId: string,
    exceptSessionId: string | undefined,
    cause: EndCause,
    actor: string,
    now: number,
  ): Promise<void> {
    const ended = await trx
      .updateTable('device_sharings')
      .set({ state: 'cancelled', ended_at: now, ended_by: actor, updated_at: now })
      .where('state', 'in', ['challenge', 'review', 'pending'])
      .where((eb) =>
        eb.or([
          eb('owner_id', '=', userId),
          exceptSessionId === undefined
            ? eb('requester_id', '=', userId)
            : eb.and([eb('requester_id', '=', userId), eb.or([eb('session_id', 'is', null), eb('session_id', '!=', exceptSessionId)])]),
        ]),
      )
      .returning(['id', 'requester_id', 'owner_id'])
      .execute();
    if (ended.length === 0) return;
    await this.audit.append(
      trx,
      ended.map((row) => ({
        event: 'sharing.cancelled' as const,
        actor,
        userId: row.requester_id,
        data: { sharingId: row.id, ownerId: row.owner_id, reason: cause },
      })),
    );
    const ids = [...new Set(ended.flatMap((row) => [row.requester_id, row.owner_id]))];
    const users = new Map((await trx.selectFrom('users').select(['id', 'username', 'email']).where('id', 'in', ids).execute()).map((user) => [user.id, user]));
    for (const row of ended) {
      const [requester, owner] = [users.get(row.requester_id)!, users.get(row.owner_id)!];
      for (const user of [requester, owner]) {
        await this.notifier.notify(
          user,
          'sharingRequestCancelled',
          { username: user.username, requester: requester.username, owner: owner.username },
          { db: trx },
        );
      }
    }
  }

  /**
   * L8, A5, L3: the user's flows under way that a password opened (L1: a
   * login, a step-up, an activation of the authenticator, a sharing of the
   * user's device, H2), past the password and waiting for the device or for
   * their session, end with the sessions: a login begun with the password a
   * help-desk reset or a change replaced, or from the laptop whose sessions
   * staff end, no longer opens a session, binds a phone or shares a device.
   * Each audited with the cause.
   */
  private async endLoginsUnderWay(trx: Tx, userId: string, cause: EndCause, actor: string, now: number): Promise<void> {
    const ended = await trx
      .updateTable('login_flows')
      .set({ state: 'failed', updated_at: now })
      .where('user_id', '=', userId)
      .where('kind', 'in', ['login', 'step_up', 'mobile_activation', 'sharing'])
      .where('state', 'in', ['second_factor', 'approved'])
      .where('expires_at', '>', now)
      .returning(['id', 'kind'])
      .execute();
    if (ended.length === 0) return;
    await this.audit.append(
      trx,
      ended.map((flow) => ({ event: 'login.flow_ended' as const, actor, userId, data: { flowId: flow.id, kind: flow.kind, reason: cause } })),
    );
  }

  /**
   * L8, H: ends the live sessions opened with some devices, whoever's they
   * are — the owner's, and those of a user the device is shared with —
   * each audited with its cause under its user. Returns their ids.
   */
  async endOpenedWith(trx: Tx, deviceIds: string[], cause: EndCause, actor: string, exceptSessionId?: string): Promise<string[]> {
    if (deviceIds.length === 0) return [];
    // L8: the caller's session is kept only when it stands on another device than the one withdrawn
    if (exceptSessionId !== undefined && !(await this.standsApartFrom(trx, exceptSessionId, deviceIds))) exceptSessionId = undefined;
    const users = await trx
      .selectFrom('sessions')
      .select('user_id')
      .distinct()
      .where('device_id', 'in', deviceIds)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', this.clock.now())
      .execute();
    const ended: string[] = [];
    for (const { user_id: userId } of users) {
      ended.push(...(await this.endWhere(trx, { userId, deviceIds, ...(exceptSessionId ? { exceptSessionId } : {}) }, cause, actor)));
    }
    return ended;
  }

  /**
   * L8: whether a session's last proof — the device of its latest step-up,
   * else of its login (`latestStepUp`, as `StepUp.lastProof` reads it) — is none of
   * `deviceIds`. A credential withdrawn from a session ends the sessions it
   * opened but the caller's, which stepped up with another device (the user
   * who lost a card and proved a phone); not when the caller's own proof is
   * that very credential: whoever holds a SIM or a card, logged in and
   * stepped up with it, removes or reports it and keeps no session standing
   * on nothing. Read in the caller's transaction.
   */
  async standsApartFrom(db: Executor, sessionId: string, deviceIds: readonly string[]): Promise<boolean> {
    const session = await db.selectFrom('sessions').select(['device_id', 'verified_at']).where('id', '=', sessionId).executeTakeFirst();
    if (!session) return false;
    let proof = session.device_id;
    if (session.verified_at !== null) proof = (await latestStepUp(db, sessionId))?.device_id ?? proof;
    return proof !== null && !deviceIds.includes(proof);
  }

  /**
   * L8: a session opened for a browser ends the one its cookie held (`token`,
   * the cookie it presented, never a token named otherwise): the new cookie
   * replaces it, and whoever copied the old one keeps nothing the user
   * believes gone — whichever user it was. In the transaction that opened
   * the new session (which holds the audit log's lock), audited
   * `session.ended` with the cause `replaced` under the ended session's user.
   * Its links to provider sessions say so: the browser's provider session
   * goes on with the new login (I1).
   */
  async endReplaced(trx: Tx, token: string | undefined, by: { userId: string; sessionId: string; ip: string | null }): Promise<void> {
    if (!token || token.length > 128) return;
    const now = this.clock.now();
    const row = await trx
      .selectFrom('sessions')
      .select(['id', 'user_id', 'revoked_at', 'expires_at', 'idle_expires_at'])
      .where('token_hash', '=', tokenHash(token))
      .executeTakeFirst();
    if (!row || row.id === by.sessionId || !livesAt(row, now)) return;
    const revoked = await trx.updateTable('sessions').set({ revoked_at: now }).where('id', '=', row.id).where('revoked_at', 'is', null).executeTakeFirst();
    // ended meanwhile by another cause (audited with it)
    if (Number(revoked.numUpdatedRows) !== 1) return;
    notedEnded([row.id]);
    // I1: the browser's provider session goes on with the new login: the back-channel logout of the ended session
    // ends only the grants given under it and tells only their clients (OpenIdConnect.deliverBackChannel)
    await trx.updateTable('oidc_session_links').set({ replaced_by: by.sessionId }).where('sls_session_id', '=', row.id).execute();
    // RFC 8628: the grants the user gave devices from this browser (a TV, a command line) cannot log in again by
    // themselves: a new login of the same user here carries them over, and they end with it. Another person's login
    // ends them with the session (L8)
    if (row.user_id === by.userId) {
      const carried = await trx
        .updateTable('oidc_grant_sessions')
        .set({ sls_session_id: by.sessionId })
        .where('sls_session_id', '=', row.id)
        .where('device_code', '=', 1)
        .returning('oidc_session_uid')
        .execute();
      // … told by the back-channel logout of the new session when it ends (the browser's provider session does not
      // stand on it for that: what the new login proved is checked by an interaction before it does)
      const now = this.clock.now();
      for (const oidcSessionUid of new Set(carried.map((c) => c.oidc_session_uid))) {
        await trx
          .insertInto('oidc_session_links')
          .values({
            oidc_session_uid: oidcSessionUid,
            sls_session_id: by.sessionId,
            user_id: by.userId,
            created_at: now,
            logged_out_at: null,
            attempts: 0,
            next_attempt_at: 0,
            devices_only: 1,
          })
          .onConflict((oc) => oc.columns(['oidc_session_uid', 'sls_session_id']).doNothing())
          .execute();
      }
    }
    await this.audit.append(trx, [
      {
        event: 'session.ended',
        actor: `user:${by.userId}`,
        userId: row.user_id,
        ip: by.ip,
        data: { sessionId: row.id, reason: 'replaced', replacedBy: by.sessionId },
      },
    ]);
    this.ended();
  }

  /**
   * D4: the session that reactivated a permanent device goes on with it: the
   * temporary device it was opened with no longer works (L8, T3).
   */
  async moveToDevice(trx: Tx, sessionId: string, device: { id: string; type: string }): Promise<void> {
    await trx.updateTable('sessions').set({ device_id: device.id, device_type: device.type, scope: 'full' }).where('id', '=', sessionId).execute();
  }

  /** L8: ends one live session of the user in the caller's transaction (which holds the audit log's lock), audited with its cause; whether it was live. */
  async endOne(trx: Tx, which: { userId: string; sessionId: string }, cause: EndCause, actor: string): Promise<boolean> {
    const now = this.clock.now();
    const ended = await trx
      .updateTable('sessions')
      .set({ revoked_at: now })
      .where('id', '=', which.sessionId)
      .where('user_id', '=', which.userId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    if (Number(ended.numUpdatedRows) !== 1) return false;
    notedEnded([which.sessionId]);
    await this.audit.append(trx, [{ event: 'session.ended', actor, userId: which.userId, data: { sessionId: which.sessionId, reason: cause } }]);
    this.ended();
    return true;
  }

  /** Logout (L8): ends the session of a token server-side, audited; returns it if it was live. */
  async end(token: string, ip: string | null): Promise<Session | null> {
    const session = await this.authenticate(token);
    if (!session) return null;
    // X1: the session ended and its audit entry, both or neither
    await this.store.serialized('audit_log', async (trx) => {
      await trx.updateTable('sessions').set({ revoked_at: this.clock.now() }).where('id', '=', session.id).execute();
      notedEnded([session.id]);
      await this.audit.append(trx, [
        { event: 'session.ended', actor: `user:${session.userId}`, userId: session.userId, ip, data: { sessionId: session.id, reason: 'logout' } },
      ]);
    });
    this.ended();
    return session;
  }
}
