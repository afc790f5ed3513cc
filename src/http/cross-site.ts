/**
 * L8, X3: defence in depth against cross-site requests, beside the pages'
 * CSRF tokens and the cookie path's origin check (`assertSameOrigin`): a
 * request that changes state (any method but GET, HEAD, OPTIONS) which a
 * browser says another site sent is refused 403 CSRF_FAILED before anything
 * is read, whichever route it reaches and whether or not it carries a cookie
 * (a forged login into the attacker's account, a form of ours posted from
 * elsewhere with a token leaked or fixed). What the browser says: its
 * Sec-Fetch-Site when it sends one (only `same-origin` and `none`, typed by
 * the user, are ours: `same-site` is a sibling host, which may be anyone's);
 * else its Origin, when it sends one that is not ours (the request's Host, under
 * our scheme, or SLS_PUBLIC_URL). `Origin: null` without Sec-Fetch-Site is let through to
 * the CSRF token: our own forms send it under Referrer-Policy no-referrer in
 * browsers that know no Fetch Metadata.
 *
 * Not checked: the OpenID Provider under /oidc and discovery (relying parties
 * and their browsers reach its authorization, end-session and device pages
 * from their own sites, its token endpoint server to server, and it guards its
 * own forms); requests with an Authorization header (a Bearer token, an API
 * key, a client's Basic secret: no browser sends one to us from another site
 * without CORS, which we never grant); clients that are no browser (the
 * mobile app, scripts), which send neither header.
 *
 * A refusal is logged (a warning with what the browser said), not audited:
 * anyone can send such requests, and the audit log is not theirs to fill.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SlsError } from '../errors.js';
import { isOwnOrigin } from './session-cookie.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Routes a relying party, its browser or its server may reach from another site. */
function crossSiteAllowed(path: string): boolean {
  return path === '/oidc' || path.startsWith('/oidc/') || path.startsWith('/.well-known/');
}

/** Why a state-changing request is refused as sent from another site, or null. */
export function crossSiteRefusal(request: FastifyRequest, publicUrl: string | undefined): string | null {
  if (SAFE_METHODS.has(request.method)) return null;
  if (request.headers.authorization !== undefined) return null;
  // the route the request reached, not its path as written (an encoded or doubled slash routes elsewhere than it reads)
  if (crossSiteAllowed(request.routeOptions.url ?? request.url.split('?')[0]!)) return null;
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin' || site === 'none' ? null : `sec-fetch-site:${site}`;
  const { origin } = request.headers;
  if (origin === undefined || origin === 'null') return null;
  return isOwnOrigin(origin, request.headers.host, publicUrl, request.protocol) ? null : 'origin';
}

export function registerCrossSiteCheck(app: FastifyInstance, publicUrl: string | undefined): void {
  app.addHook('onRequest', async (request) => {
    const refusal = crossSiteRefusal(request, publicUrl);
    if (!refusal) return;
    request.log.warn({ refusal, origin: request.headers.origin ?? null, site: request.headers['sec-fetch-site'] ?? null }, 'cross-site request refused');
    throw new SlsError('CSRF_FAILED', { reason: 'cross_site' });
  });
}
