/**
 * I3: the API keys integrators (a broker's back office) call the
 * entitlement API with. `sls apikey create` prints a key once; the server
 * keeps only a keyed digest of its secret (HMAC under a key derived from the
 * master key), compared in constant time. A key has scopes, a name, and may
 * be revoked; it carries no user session. Every use of a key that is
 * malformed, unknown, wrong, revoked or outside its scopes is audited.
 *
 * A key reads `sls_<id>_<secret>`: the id finds the row, the secret proves it.
 */
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { constantTimeEqual } from '../crypto/constant-time.js';
import { newId, newToken } from '../crypto/random.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { SlsError } from '../errors.js';
import type { Executor, Store } from '../store/database.js';

/** What a key may call: the withdrawal checks and entitlements (W1-W3), and account administration. */
export const API_KEY_SCOPES = ['withdrawals', 'accounts'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export interface ApiKey {
  id: string;
  name: string;
  scopes: ApiKeyScope[];
  createdAt: number;
  createdBy: string;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

const KEY_FORMAT = /^sls_([a-z2-7]{26})_([A-Za-z0-9_-]{43})$/;
const NAME_FORMAT = /^[\p{L}\p{N} ._:/()-]{1,64}$/u;
/** `last_used_at` is written at most this often per key (not a write per request). */
const LAST_USED_RESOLUTION_MS = 60_000;

export function parseScopes(text: string): ApiKeyScope[] {
  const scopes = [
    ...new Set(
      text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    ),
  ];
  const bad = scopes.find((s) => !(API_KEY_SCOPES as readonly string[]).includes(s));
  if (scopes.length === 0 || bad !== undefined) {
    throw new SlsError('VALIDATION_ERROR', { field: 'scope', reason: 'api_key_scope', scopes: API_KEY_SCOPES.join(', ') });
  }
  return scopes as ApiKeyScope[];
}

/** Where a refused key was presented, for the audit log. */
export interface KeyUse {
  ip: string | null;
  method: string;
  path: string;
}

export class ApiKeys {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly box: SecretBox,
    private readonly audit: AuditLog,
  ) {}

  /** What an unknown id's presented secret is compared with: the length of a digest, and no digest's value (not base64url). */
  private readonly unknownDigest = '!'.repeat(43);

  private digest(id: string, secret: string): string {
    return this.box.digest(secret, `api-key:${id}`);
  }

  /** A new key; the only time its secret is known. */
  async create(input: { name: string; scopes: ApiKeyScope[] }, actor: string): Promise<{ key: string; apiKey: ApiKey }> {
    const name = input.name.trim();
    if (!NAME_FORMAT.test(name)) throw new SlsError('VALIDATION_ERROR', { field: 'name', reason: 'name_format', symbols: '. _ : / ( ) -' });
    const scopes = parseScopes(input.scopes.join(','));
    const id = newId('key');
    const secret = newToken();
    const now = this.clock.now();
    await this.store.serialized('audit_log', async (trx) => {
      await trx
        .insertInto('api_keys')
        .values({
          id,
          name,
          secret_digest: this.digest(id, secret),
          scopes: JSON.stringify(scopes),
          created_at: now,
          created_by: actor,
          revoked_at: null,
          last_used_at: null,
        })
        .execute();
      await this.audit.append(trx, [{ event: 'apikey.created', actor, data: { keyId: id, name, scopes } }]);
    });
    return { key: `sls_${id.slice('key_'.length)}_${secret}`, apiKey: await this.get(id) };
  }

  async list(): Promise<ApiKey[]> {
    const rows = await this.store.db.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map((row) => this.toKey(row));
  }

  async get(id: string): Promise<ApiKey> {
    const row = await this.store.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new SlsError('API_KEY_NOT_FOUND', { id });
    return this.toKey(row);
  }

  /** Revokes a key at once, for every server process; revoking it again changes nothing. */
  async revoke(id: string, actor: string): Promise<ApiKey> {
    const now = this.clock.now();
    await this.store.serialized('audit_log', async (trx) => {
      const row = await trx.selectFrom('api_keys').select(['id', 'revoked_at']).where('id', '=', id).executeTakeFirst();
      if (!row) throw new SlsError('API_KEY_NOT_FOUND', { id });
      if (row.revoked_at !== null) return;
      await trx.updateTable('api_keys').set({ revoked_at: now }).where('id', '=', id).execute();
      await this.audit.append(trx, [{ event: 'apikey.revoked', actor, data: { keyId: id } }]);
    });
    return this.get(id);
  }

  /**
   * The key a request presents (the Bearer token), if it is valid and has the
   * scope; otherwise the refusal is audited and thrown: API_KEY_INVALID
   * (malformed, unknown, wrong secret), API_KEY_REVOKED, API_KEY_SCOPE.
   */
  async authenticate(token: string, scope: ApiKeyScope, use: KeyUse): Promise<ApiKey> {
    const match = KEY_FORMAT.exec(token);
    if (!match) return this.refuse('API_KEY_INVALID', 'malformed', null, scope, use);
    const id = `key_${match[1]}`;
    const row = await this.store.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    // the same work whether the id is known or not (one keyed digest, one constant-time comparison, against a digest no
    // secret gives when the id is unknown), and the same answer: timing tells nothing about which ids exist
    const matches = constantTimeEqual(this.digest(id, match[2]!), row?.secret_digest ?? this.unknownDigest);
    if (!row) return this.refuse('API_KEY_INVALID', 'unknown', id, scope, use);
    if (!matches) return this.refuse('API_KEY_INVALID', 'wrong_secret', id, scope, use);
    if (row.revoked_at !== null) return this.refuse('API_KEY_REVOKED', 'revoked', id, scope, use);
    const key = this.toKey(row);
    if (!key.scopes.includes(scope)) return this.refuse('API_KEY_SCOPE', 'scope', id, scope, use);
    const now = this.clock.now();
    if (key.lastUsedAt === null || now - key.lastUsedAt >= LAST_USED_RESOLUTION_MS) {
      await this.store.db.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', id).execute();
    }
    return key;
  }

  /**
   * I3: whether the key is still unrevoked, read by a transaction that holds
   * the audit lock (`revoke` takes it): a write made with a key commits only
   * if no revocation committed before it, on any server process.
   */
  async unrevoked(db: Executor, id: string): Promise<boolean> {
    const row = await db.selectFrom('api_keys').select('revoked_at').where('id', '=', id).executeTakeFirst();
    return row !== undefined && row.revoked_at === null;
  }

  /** The refusal of a key revoked while its request was under way (its write rolled back): audited, thrown. */
  async revokedInFlight(id: string, scope: ApiKeyScope, use: KeyUse): Promise<never> {
    return this.refuse('API_KEY_REVOKED', 'revoked_in_flight', id, scope, use);
  }

  private async refuse(
    code: 'API_KEY_INVALID' | 'API_KEY_REVOKED' | 'API_KEY_SCOPE',
    reason: string,
    keyId: string | null,
    scope: string,
    use: KeyUse,
  ): Promise<never> {
    await this.audit.record({
      event: 'apikey.refused',
      actor: keyId ? `apikey:${keyId}` : null,
      ip: use.ip,
      data: { keyId, reason, scope, method: use.method, path: use.path },
    });
    throw new SlsError(code, { scope });
  }

  private toKey(row: {
    id: string;
    name: string;
    scopes: string;
    created_at: number;
    created_by: string;
    revoked_at: number | null;
    last_used_at: number | null;
  }): ApiKey {
    return {
      id: row.id,
      name: row.name,
      scopes: JSON.parse(row.scopes) as ApiKeyScope[],
      createdAt: row.created_at,
      createdBy: row.created_by,
      revokedAt: row.revoked_at,
      lastUsedAt: row.last_used_at,
    };
  }
}
