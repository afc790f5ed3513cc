/**
 * I1: the provider's signing keys. The first start generates one (RSA 2048,
 * RS256), sealed with the master key in the database; `sls oidc rotate-keys`
 * adds a new one that signs from then on, and retires the old one, which
 * stays published in the JWKS until every token it signed has expired, so
 * relying parties go on verifying them.
 */
import { generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { newId } from '../crypto/random.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Store } from '../store/database.js';

export type SigningJwk = JsonWebKey & { kid: string; alg: 'RS256'; use: 'sig' };

const SEAL_CONTEXT = 'oidc-signing-key';

function newKey(): SigningJwk {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: newId('kid'), alg: 'RS256', use: 'sig' };
}

export class OidcKeys {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly box: SecretBox,
    private readonly audit: AuditLog,
    /** How long a retired key stays published: the longest lifetime of what it signed. */
    private readonly retiredKeptMs: number,
  ) {}

  /**
   * The keys to publish, the signing one first; a key is made on the first
   * call (several processes starting at once: the insert that loses finds the winner's).
   */
  async published(): Promise<SigningJwk[]> {
    let rows = await this.rows();
    if (rows.length === 0) {
      const key = newKey();
      await this.store.serialized('oidc_keys', async (trx) => {
        const existing = await trx.selectFrom('oidc_keys').select('kid').where('retired_at', 'is', null).executeTakeFirst();
        if (existing) return;
        await trx
          .insertInto('oidc_keys')
          .values({ kid: key.kid, sealed_jwk: this.box.sealJson(key, SEAL_CONTEXT), created_at: this.clock.now(), retired_at: null })
          .execute();
      });
      rows = await this.rows();
    }
    return rows.map((row) => this.box.openJson<SigningJwk>(row.sealed_jwk, SEAL_CONTEXT));
  }

  /** The kids published, signing one first: what a process compares to know its provider is current. */
  async fingerprint(): Promise<string> {
    return (await this.rows()).map((row) => row.kid).join(',');
  }

  private async rows() {
    const now = this.clock.now();
    const rows = await this.store.db.selectFrom('oidc_keys').select(['kid', 'sealed_jwk', 'created_at', 'retired_at']).execute();
    return rows
      .filter((row) => row.retired_at === null || row.retired_at + this.retiredKeptMs > now)
      .sort((a, b) => (a.retired_at === null ? 0 : 1) - (b.retired_at === null ? 0 : 1) || b.created_at - a.created_at);
  }

  /** A new signing key; the current one is retired (still published until its tokens expire). */
  async rotate(actor: string): Promise<{ kid: string; retired: string[] }> {
    const key = newKey();
    const now = this.clock.now();
    let retired: string[] = [];
    await this.store.serialized('audit_log', async (trx) => {
      retired = (await trx.selectFrom('oidc_keys').select('kid').where('retired_at', 'is', null).execute()).map((row) => row.kid);
      await trx.updateTable('oidc_keys').set({ retired_at: now }).where('retired_at', 'is', null).execute();
      await trx
        .insertInto('oidc_keys')
        .values({ kid: key.kid, sealed_jwk: this.box.sealJson(key, SEAL_CONTEXT), created_at: now, retired_at: null })
        .execute();
      await this.audit.append(trx, [{ event: 'oidc.keys_rotated', actor, data: { kid: key.kid, retired } }]);
    });
    return { kid: key.kid, retired };
  }

  /** Forgets retired keys whose tokens have all expired (the scheduler). */
  async prune(): Promise<number> {
    const result = await this.store.db
      .deleteFrom('oidc_keys')
      .where('retired_at', 'is not', null)
      .where('retired_at', '<=', this.clock.now() - this.retiredKeptMs)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
