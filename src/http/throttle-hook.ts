/**
 * X5: which requests the throttle counts, by route and method, in one
 * table, and the hook that counts them before anything else is done (no
 * body parsed, no password hashed). The address is the request's, as the
 * trusted proxies tell it (SLS_TRUST_PROXY).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Throttle, Throttled } from '../throttle/throttle.js';

/** [method, route pattern (Fastify's), kind]: API routes and the pages that do the same. */
export const THROTTLED_ROUTES: readonly [string, RegExp, Throttled][] = [
  ['POST', /^\/(api\/v1\/)?login$/, 'login'],
  ['POST', /^\/(api\/v1\/)?step-up$/, 'login'],
  // H2: a sharing request checks the owner's password: a signed-in user would otherwise try passwords on every username
  ['POST', /^\/(api\/v1\/sharing|sharing\/new)$/, 'login'],
  ['POST', /^\/(api\/v1\/)?password$/, 'answer'],
  ['POST', /^\/(api\/v1\/)?login\/:flowId(\/session|\/offline|\/device)?$/, 'answer'],
  ['POST', /^\/(api\/v1\/)?step-up\/:(id|flowId)(\/complete|\/offline)?$/, 'answer'],
  ['POST', /^\/(api\/v1\/)?sharing\/:id\/answer$/, 'answer'],
  ['POST', /^\/api\/v1\/devices\/:deviceId\/(activation|pin)\/:flowId$/, 'answer'],
  ['POST', /^\/devices\/:deviceId\/(activate|pin)$/, 'answer'],
  ['POST', /^\/api\/v1\/mobile\/requests\/:id$/, 'answer'],
  ['POST', /^\/oidc\/device$/, 'answer'],
  ['POST', /^\/oidc\/device\/auth$/, 'login'],
  ['POST', /^\/(api\/v1\/)?login\/:flowId\/code$/, 'send'],
  ['POST', /^\/api\/v1\/phones\/:phoneId\/verification$/, 'send'],
  ['POST', /^\/settings\/mobile\/:phoneId\/verify$/, 'send'],
  ['POST', /^\/api\/v1\/mobile\/activations\/:id\/token$/, 'send'],
  ['POST', /^\/api\/v1\/mobile\/activations(\/:id\/(proof|complete))?$/, 'activation'],
  ['*', /^\/(api\/v1\/)?helpdesk(\/|$)/, 'helpdesk'],
  ['*', /^\/api\/v1\/admin\//, 'admin'],
  ['*', /^\/api\/v1\/(withdrawals(\/check)?|entitlements)$/, 'integration'],
];

/** The kind of throttled request a route is, if it is one. */
export function throttledKind(method: string, route: string | undefined): Throttled | null {
  if (!route) return null;
  const found = THROTTLED_ROUTES.find(([m, pattern]) => (m === '*' || m === method) && pattern.test(route));
  return found ? found[2] : null;
}

/** The OpenID Provider's routes, all handed to it by one route of ours (http/oidc.ts). */
const PROVIDER_ROUTE = '/oidc/*';

/**
 * The route a request is counted under: Fastify's, or, for the OpenID Provider's, its path as the provider's router
 * matches it (ASCII letters in any case, one trailing slash; nothing decoded): POST /oidc/DEVICE or /oidc/device/ is
 * the provider's code verification, counted as /oidc/device.
 */
export function throttledRoute(request: Pick<FastifyRequest, 'routeOptions' | 'url'>): string | undefined {
  const route = request.routeOptions.url;
  if (route !== PROVIDER_ROUTE) return route;
  const path = request.url.split('?')[0]!.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

export function registerThrottle(app: FastifyInstance, throttle: Throttle): void {
  app.addHook('onRequest', async (request) => {
    const kind = throttledKind(request.method, throttledRoute(request));
    if (kind) await throttle.check(kind, request.ip ?? null);
  });
}
