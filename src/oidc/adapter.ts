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

/**
 * `alreadyUsed`: the provider's own error (invalid_grant) for an artefact a
 * concurrent copy of the request consumed first.
 */
export function adapterClass(
  store: Store,
  clock: Clock,
  box: SecretBox,
  clientMetadata: (clientId: string) => Promise<ClientMetadata | undefined>,
  alreadyUsed: () => Error,
) {
  return class DatabaseAdapter implements OidcAdapter {
    constructor(private readonly model: string) {}

    private get sealContext(): string {
      return `oidc-artifact:${this.model}`;
    }

    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      if (this.model === 'Client') return;
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

    /** `expired`: also a row past its expiry (the provider then says so itself: a device's code typed too late). */
    private async findWhere(column: 'id' | 'uid' | 'user_code', value: string, expired = false): Promise<Payload | undefined> {
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
      return row.consumed_at === null ? payload : { ...payload, consumed: Math.floor(row.consumed_at / 1000) };
    }

    async find(id: string): Promise<Payload | undefined> {
      // the registered clients are the only ones
      if (this.model === 'Client') return clientMetadata(id);
      return this.findWhere('id', id);
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

/** The scheduler: deletes every artefact past its expiry. */
export async function pruneArtifacts(store: Store, clock: Clock): Promise<number> {
  const result = await store.db.deleteFrom('oidc_artifacts').where('expires_at', '<=', clock.now()).executeTakeFirst();
  return Number(result.numDeletedRows);
}
