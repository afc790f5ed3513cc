/**
 * I1: the provider's storage on our database (SQLite or PostgreSQL, through
 * Kysely): authorization codes, tokens, the provider's sessions, grants and
 * interactions are rows, so a login started on one server process finishes
 * on another. An artefact past its expiry is not found (our clock), and the
 * scheduler deletes it. Clients come from the clients table (`sls client`).
 *
 * D5, I1: an opaque artefact's value is its id (an authorization code, an
 * access or refresh token, a device code, the provider's session cookie):
 * the id column keeps only a keyed digest of it, and the copy the provider
 * puts in the payload (`jti`) is sealed under the master key, so that a copy
 * of the database gives no token that works (as for our own sessions and
 * API keys). The device flow's user code (RFC 8628) likewise: it is looked up
 * by a keyed digest of it, and its copy in the payload is sealed.
 */
import type { Clock } from '../clock.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Store } from '../store/database.js';

type Payload = Record<string, unknown> & { grantId?: string; uid?: string; userCode?: string; consumed?: number };

/** The models revoked with their grant (a reused refresh token or code revokes them all). */
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'Grant']);

export interface OidcAdapter {
  upsert(id: string, payload: Payload, expiresIn?: number): Promise<void>;
  find(id: string): Promise<Payload | undefined>;
  findByUserCode(userCode: string): Promise<Payload | undefined>;
  findByUid(uid: string): Promise<Payload | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

/** How the provider sees a registered client (its metadata). */
export type ClientMetadata = Record<string, unknown>;

/** D5: what the id column keeps of an artefact's id (its value, for an opaque token): a keyed digest. */
export function artifactKey(box: SecretBox, id: string): string {
  return box.digest(id, 'oidc-artifact');
}

/** D5: what the user code column keeps of a device's user code (RFC 8628, as the provider normalized it): a keyed digest. */
export function userCodeKey(box: SecretBox, userCode: string): string {
  return box.digest(userCode, 'oidc-user-code');
}

/** RFC 8628 §3.2: the seconds a device waits between two polls of the token endpoint, as told in its device authorization response. */
export const DEVICE_POLL_INTERVAL_S = 5;
/** RFC 8628 §3.5: what a poll too soon adds to the device code's interval, for this and every later poll. */
const SLOW_DOWN_STEP_S = 5;
/** Our own rows among the provider's: a device code's last poll and its interval (not a provider model). */
const DEVICE_POLL = 'SlsDevicePoll';

/**
 * A row of our own among the provider's artefacts (a model it never reads):
 * written once, the first writer's payload kept; true for the writer that put it.
 */
export async function putMark(store: Store, model: string, id: string, payload: unknown, expiresAt: number | null): Promise<boolean> {
  const put = await store.db
    .insertInto('oidc_artifacts')
    .values({ model, id, payload: JSON.stringify(payload), grant_id: null, uid: null, user_code: null, expires_at: expiresAt, consumed_at: null })
    .onConflict((oc) => oc.columns(['model', 'id']).doNothing())
    .executeTakeFirst();
  return Number(put.numInsertedOrUpdatedRows ?? 0) === 1;
}

/**
 * RFC 8628 §3.5: whether a device's poll with this (existing) device code
 * comes no sooner than its interval after its last poll answered; a poll
 * too soon is answered slow_down by the caller and raises the code's
 * interval by 5 s.
 * The first poll may come at once (§3.4). Counted in the database, under a
 * keyed digest of the code (D5), so that server processes sharing it agree;
 * of concurrent polls, one at most passes (a compare-and-set of the row),
 * the others are too soon.
 */
export async function devicePollAllowed(store: Store, clock: Clock, box: SecretBox, deviceCode: string, expiresAt: number | null): Promise<boolean> {
  const now = clock.now();
  const id = artifactKey(box, deviceCode);
  if (await putMark(store, DEVICE_POLL, id, { at: now, interval: DEVICE_POLL_INTERVAL_S }, expiresAt)) return true;
  const row = await store.db.selectFrom('oidc_artifacts').select('payload').where('model', '=', DEVICE_POLL).where('id', '=', id).executeTakeFirst();
  if (!row) return false;
  const last = JSON.parse(row.payload) as { at: number; interval: number };
  const soon = now - last.at < last.interval * 1000;
  // counted from the last poll answered: a device that backs off as told (5 s more at each slow_down) is answered again
  // even if it began too fast, and answered polls are never closer than the interval
  const next = soon ? { at: last.at, interval: last.interval + SLOW_DOWN_STEP_S } : { at: now, interval: last.interval };
  const updated = await store.db
    .updateTable('oidc_artifacts')
    .set({ payload: JSON.stringify(next) })
    .where('model', '=', DEVICE_POLL)
    .where('id', '=', id)
    .where('payload', '=', row.payload)
    .executeTakeFirst();
  // another poll changed the row since it was read: it came at the same time, so this one is too soon
  return !soon && Number(updated.numUpdatedRows) === 1;
}

/** RFC 8628: the provider's write that marks a device code confirmed in a browser (`inFlight`), before its login. */
function isConfirmation(payload: Payload): boolean {
  return payload.inFlight === true && payload.accountId === undefined && payload.error === undefined;
}

/**
 * `alreadyUsed`: the provider's own error (invalid_grant) for an artefact a
 * concurrent copy of the request consumed first. `devicePoll`: whether the
 * request looking up a device code is the device's poll of the token
 * endpoint, the error to answer a poll too soon with (RFC 8628 §3.5:
 * slow_down), and the one to answer a poll with a code past its expiry
 * (§3.5: expired_token), given the client the code was issued to (null when
 * the polling client is another: the code is not found for it).
 */
export function adapterClass(
  store: Store,
  clock: Clock,
  box: SecretBox,
  clientMetadata: (clientId: string) => Promise<ClientMetadata | undefined>,
  alreadyUsed: () => Error,
  devicePoll: { polling: () => boolean; slowDown: () => Error; expired: (clientId: unknown) => Error | null } = {
    polling: () => false,
    slowDown: alreadyUsed,
    expired: () => null,
  },
  /** RFC 8628: the error a user code confirmed a moment ago in another browser is answered with (the page: "already used"). */
  deviceCodeUsed: () => Error = alreadyUsed,
) {
  return class DatabaseAdapter implements OidcAdapter {
    constructor(private readonly model: string) {}

    private get sealContext(): string {
      return `oidc-artifact:${this.model}`;
    }

    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      if (this.model === 'Client') return;
      if (this.model === 'DeviceCode' && isConfirmation(payload)) return this.confirm(id, payload);
      const stored = { ...payload };
      if (typeof payload.jti === 'string') stored.jti = box.seal(payload.jti, this.sealContext);
      if (typeof payload.userCode === 'string') stored.userCode = box.seal(payload.userCode, this.sealContext);
      const row = {
        model: this.model,
        id: artifactKey(box, id),
        payload: JSON.stringify(stored),
        grant_id: typeof payload.grantId === 'string' && GRANTABLE.has(this.model) ? payload.grantId : this.model === 'Grant' ? id : null,
        uid: typeof payload.uid === 'string' ? payload.uid : null,
        user_code: typeof payload.userCode === 'string' ? userCodeKey(box, payload.userCode) : null,
        expires_at: typeof expiresIn === 'number' ? clock.now() + expiresIn * 1000 : null,
        consumed_at: null,
      };
      await store.db
        .insertInto('oidc_artifacts')
        .values(row)
        .onConflict((oc) =>
          oc
            .columns(['model', 'id'])
            .doUpdateSet({ payload: row.payload, grant_id: row.grant_id, uid: row.uid, user_code: row.user_code, expires_at: row.expires_at }),
        )
        .execute();
    }

    /**
     * RFC 8628, L4: a user code confirmed in a browser (the provider marks its
     * device code `inFlight`, then the login follows) once, on any number of
     * processes: the provider checks "not in flight" before it writes, and
     * two browsers confirming at once both pass that check (each would log
     * in, and the device get the tokens of whoever finished last). The mark
     * is written only over the row as it was read, unconfirmed; otherwise
     * the code was used (the page says so).
     */
    private async confirm(id: string, payload: Payload): Promise<void> {
      const key = artifactKey(box, id);
      const row = await store.db.selectFrom('oidc_artifacts').select('payload').where('model', '=', this.model).where('id', '=', key).executeTakeFirst();
      const before = row ? (JSON.parse(row.payload) as Payload) : undefined;
      if (!row || !before || before.inFlight || before.accountId || before.error) throw deviceCodeUsed();
      const stored = { ...payload, ...(typeof payload.jti === 'string' ? { jti: box.seal(payload.jti, this.sealContext) } : {}) };
      if (typeof payload.userCode === 'string') stored.userCode = box.seal(payload.userCode, this.sealContext);
      const updated = await store.db
        .updateTable('oidc_artifacts')
        .set({ payload: JSON.stringify(stored) })
        .where('model', '=', this.model)
        .where('id', '=', key)
        .where('payload', '=', row.payload)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) throw deviceCodeUsed();
    }

    /** `expired`: also a row past its expiry (the provider then says so itself: a device's code typed too late). */
    private async findWhere(column: 'id' | 'uid' | 'user_code', value: string, expired = false): Promise<Payload | undefined> {
      return (await this.findRow(column, value, expired))?.payload;
    }

    /** The payload as the provider reads it (`findWhere`), and when the row expires. */
    private async findRow(
      column: 'id' | 'uid' | 'user_code',
      value: string,
      expired = false,
    ): Promise<{ payload: Payload; expiresAt: number | null } | undefined> {
      const row = await store.db
        .selectFrom('oidc_artifacts')
        .select(['payload', 'expires_at', 'consumed_at'])
        .where('model', '=', this.model)
        .where(column, '=', column === 'id' ? artifactKey(box, value) : column === 'user_code' ? userCodeKey(box, value) : value)
        .executeTakeFirst();
      if (!row) return undefined;
      if (!expired && row.expires_at !== null && row.expires_at <= clock.now()) return undefined;
      const stored = JSON.parse(row.payload) as Payload;
      // the provider's own copy of the id: the one asked for, else unsealed
      const jti = column === 'id' ? value : typeof stored.jti === 'string' ? box.open(stored.jti, this.sealContext).toString('utf8') : undefined;
      // the device's user code, which the provider compares with the one typed
      const userCode = typeof stored.userCode === 'string' ? box.open(stored.userCode, this.sealContext).toString('utf8') : undefined;
      const payload = { ...stored, ...(jti === undefined ? {} : { jti }), ...(userCode === undefined ? {} : { userCode }) };
      return {
        payload: row.consumed_at === null ? payload : { ...payload, consumed: Math.floor(row.consumed_at / 1000) },
        expiresAt: row.expires_at,
      };
    }

    async find(id: string): Promise<Payload | undefined> {
      // the registered clients are the only ones
      if (this.model === 'Client') return clientMetadata(id);
      const polled = this.model === 'DeviceCode' && devicePoll.polling();
      // RFC 8628 §3.5: a device polling with its code past its expiry is told expired_token (a new code is needed), as the
      // provider would say itself of a code it found: a code nobody issued, or pruned since, is not found (invalid_grant)
      const found = await this.findRow('id', id, polled);
      if (polled && found?.expiresAt != null && found.expiresAt <= clock.now()) {
        const expired = devicePoll.expired(found.payload.clientId);
        if (expired) throw expired;
        return undefined;
      }
      // RFC 8628 §3.5: a device's poll with a code that exists (a code nobody issued leaves nothing to count);
      // the count expires with the code (the scheduler prunes both)
      if (found !== undefined && polled) {
        if (!(await devicePollAllowed(store, clock, box, id, found.expiresAt))) throw devicePoll.slowDown();
      }
      return found?.payload;
    }

    /** RFC 8628: the code a user typed; one typed too late is found, and the provider answers "expired". */
    findByUserCode(userCode: string): Promise<Payload | undefined> {
      return this.findWhere('user_code', userCode, true);
    }

    findByUid(uid: string): Promise<Payload | undefined> {
      return this.findWhere('uid', uid);
    }

    /**
     * L4: of concurrent copies of one code (or refresh token), exactly one
     * consumes it, on any number of processes: the provider checks "not
     * consumed" before it consumes, and copies may all pass that check. The
     * others are refused and the grant revoked, as a reuse is.
     */
    async consume(id: string): Promise<void> {
      const consumed = await store.db
        .updateTable('oidc_artifacts')
        .set({ consumed_at: clock.now() })
        .where('model', '=', this.model)
        .where('id', '=', artifactKey(box, id))
        .where('consumed_at', 'is', null)
        .executeTakeFirst();
      if (Number(consumed.numUpdatedRows) === 1) return;
      const row = await store.db
        .selectFrom('oidc_artifacts')
        .select('grant_id')
        .where('model', '=', this.model)
        .where('id', '=', artifactKey(box, id))
        .executeTakeFirst();
      if (row?.grant_id) await this.revokeByGrantId(row.grant_id);
      throw alreadyUsed();
    }

    async destroy(id: string): Promise<void> {
      await store.db.deleteFrom('oidc_artifacts').where('model', '=', this.model).where('id', '=', artifactKey(box, id)).execute();
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await revokeGrants(store, [grantId]);
    }
  };
}

/** Revokes grants: every artefact given under them (codes, tokens, the grant itself) is deleted. */
export async function revokeGrants(store: Store, grantIds: string[]): Promise<void> {
  if (grantIds.length > 0) await store.db.deleteFrom('oidc_artifacts').where('grant_id', 'in', grantIds).execute();
}

/**
 * RFC 8628 §3.5: how long a device code is kept past its expiry, so that a device still polling with it is told
 * `expired_token` (ask the user for a new code), not `invalid_grant` (a code nobody issued), after the scheduler ran.
 */
export const EXPIRED_DEVICE_CODE_KEPT_MS = 24 * 60 * 60 * 1000;

/** The scheduler: deletes every artefact past its expiry (an expired device code a day later: EXPIRED_DEVICE_CODE_KEPT_MS). */
export async function pruneArtifacts(store: Store, clock: Clock): Promise<number> {
  const now = clock.now();
  const result = await store.db
    .deleteFrom('oidc_artifacts')
    .where('expires_at', '<=', now)
    .where((eb) => eb.or([eb('model', '!=', 'DeviceCode'), eb('expires_at', '<=', now - EXPIRED_DEVICE_CODE_KEPT_MS)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
