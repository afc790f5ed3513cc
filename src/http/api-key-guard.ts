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
import type { ApiKey, ApiKeys, ApiKeyScope } from '../entitlements/api-keys.js';
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

export class ApiKeyGuard {
  constructor(private readonly apiKeys: Pick<ApiKeys, 'authenticate'>) {}

  /** Whether the request presents an API key (`Bearer sls_…`) rather than a session's token. */
  presented(request: FastifyRequest): boolean {
    const header = request.headers.authorization;
    return typeof header === 'string' && /^Bearer\s+sls_/i.test(header);
  }

  async require(request: FastifyRequest, scope: ApiKeyScope): Promise<ApiKey> {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new SlsError('API_KEY_REQUIRED', { scope });
    return this.apiKeys.authenticate(match[1]!, scope, { ip: request.ip ?? null, method: request.method, path: request.url.split('?')[0]! });
  }
}
