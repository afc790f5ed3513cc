/**
 * I3: the one check of an integrator's API key, for every route that takes
 * one (`Authorization: Bearer sls_…`). A key is no session: it never opens a
 * route that needs a user's session, and a session token is no key.
 *
 * 401 API_KEY_REQUIRED (no Bearer key), 401 API_KEY_INVALID (malformed,
 * unknown, wrong), 401 API_KEY_REVOKED, 403 API_KEY_SCOPE; all but the first
 * are audited (`apikey.refused`) by ApiKeys.authenticate.
 */
import type { FastifyRequest } from 'fastify';
import type { ApiKey, ApiKeys, ApiKeyScope, KeyUse } from '../entitlements/api-keys.js';
import type { Executor } from '../store/database.js';
import { SlsError } from '../errors.js';

/** The OpenAPI security requirement of a route that takes an API key. */
export const API_KEY_SECURITY: Record<string, string[]>[] = [{ apiKey: [] }];

/** The OpenAPI security scheme (registered in app.ts). */
export const API_KEY_SCHEME = {
  type: 'http',
  scheme: 'bearer',
  bearerFormat: 'sls_<id>_<secret>',
  description: 'An integrator API key created with `sls apikey create --name N --scope S` (docs/entitlements.md); scoped, revocable.',
} as const;

/**
 * What a write made with a key calls in its transaction, once it holds the
 * audit lock: it throws if the key was revoked meanwhile (the write rolls back).
 */
export type KeyStillValid = (db: Executor) => Promise<void>;

export class ApiKeyGuard {
  constructor(private readonly apiKeys: Pick<ApiKeys, 'authenticate' | 'unrevoked' | 'revokedInFlight'>) {}

  private use(request: FastifyRequest): KeyUse {
    return { ip: request.ip ?? null, method: request.method, path: request.url.split('?')[0]! };
  }

  /** Whether the request presents an API key (`Bearer sls_…`) rather than a session's token. */
  presented(request: FastifyRequest): boolean {
    const header = request.headers.authorization;
    return typeof header === 'string' && /^Bearer\s+sls_/i.test(header);
  }

  async require(request: FastifyRequest, scope: ApiKeyScope): Promise<ApiKey> {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new SlsError('API_KEY_REQUIRED', { scope });
    return this.apiKeys.authenticate(match[1]!, scope, this.use(request));
  }

  /**
   * I3: a write made with a key that commits only if the key is still
   * unrevoked under the audit lock (revoked at once, on every process, even
   * while the request is under way): `write` calls `stillValid` in its
   * transaction once it holds that lock. A key revoked meanwhile: 401
   * API_KEY_REVOKED, audited (`apikey.refused`, reason `revoked_in_flight`).
   */
  async writing<T>(request: FastifyRequest, key: ApiKey, scope: ApiKeyScope, write: (stillValid: KeyStillValid) => Promise<T>): Promise<T> {
    let revoked = false;
    const stillValid: KeyStillValid = async (db) => {
      if (await this.apiKeys.unrevoked(db, key.id)) return;
      revoked = true;
      throw new SlsError('API_KEY_REVOKED', { scope });
    };
    try {
      return await write(stillValid);
    } catch (error) {
      if (revoked) return this.apiKeys.revokedInFlight(key.id, scope, this.use(request));
      throw error;
    }
  }
}
