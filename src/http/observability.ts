/**
 * The operators' view of the server (docs/operations.md, decision 0013):
 * a request id on every request (the X-Request-Id header, error bodies,
 * log lines, audit entries) and GET /metrics, protected.
 */
import { randomUUID } from 'node:crypto';
import { BlockList, isIPv4 } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config, TrustProxy } from '../config.js';
import { constantTimeEqual } from '../crypto/constant-time.js';
import { SlsError } from '../errors.js';
import type { Metrics } from '../metrics/metrics.js';
import { requestAnswered, requestContext, type RequestContext } from '../request-context.js';
import { sendError } from './errors.js';

/** An id a proxy may hand on: short, and nothing a log line could be confused by. */
export const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** A BlockList of addresses and CIDR ranges (IPv4 and IPv6), as the settings name them. */
function addressMatcher(entries: string[]): (address: string | undefined) => boolean {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits] = entry.split('/') as [string, string | undefined];
    const type = isIPv4(address) ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(bits), type);
  }
  return (address) => {
    if (!address) return false;
    const plain = address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
    return list.check(plain, isIPv4(plain) ? 'ipv4' : 'ipv6');
  };
}

/**
 * The id of a request: the X-Request-Id a trusted proxy sent when it is well
 * formed (the connection comes from a proxy SLS_TRUST_PROXY names, or any
 * peer when it counts hops), else a new random UUID. A client's own header
 * is never taken: ids in the logs and the audit are the server's or its
 * proxy's.
 */
export function requestIdGenerator(trustProxy: TrustProxy): (req: IncomingMessage) => string {
  const trusted: (address: string | undefined) => boolean =
    trustProxy === false ? () => false : typeof trustProxy === 'number' ? () => trustProxy > 0 : addressMatcher(trustProxy);
  return (req) => {
    const incoming = req.headers['x-request-id'];
    if (typeof incoming === 'string' && REQUEST_ID.test(incoming) && trusted(req.socket?.remoteAddress)) return incoming;
    return randomUUID();
  };
}

/**
 * An address as the log lines show it: the path, and of the query string
 * only the names (`?user_code=…`). Values may be secrets: a device's user
 * code in RFC 8628's complete link, an ID token named at logout.
 */
export function loggedUrl(url: string): string {
  const mark = url.indexOf('?');
  if (mark < 0) return url;
  const names = url
    .slice(mark + 1)
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => `${pair.split('=')[0]!.slice(0, 64)}=…`);
  return `${url.slice(0, mark)}?${names.join('&')}`;
}

/** What a log line tells of a request (pino's `req`): Fastify's own fields, the address without its query values. */
export function loggedRequest(request: { method: string; url: string; host?: string; ip?: string; socket?: { remotePort?: number } }) {
  return { method: request.method, url: loggedUrl(request.url), host: request.host, remoteAddress: request.ip, remotePort: request.socket?.remotePort };
}

/**
 * The request's id in the X-Request-Id response header, and for the code the
 * request runs (the audit log): set on arrival, and again once the body is
 * read (its stream's events run outside the request's async context) — one
 * context per request, which also says on which session's authority the
 * request acts (L8, decision 0031) until it is answered: what it leaves
 * behind (a timer, a delivery) acts on no session's authority. Not when the
 * client goes away: the handler still runs, and its writes are still checked.
 */
export function registerRequestContext(app: FastifyInstance): void {
  const contexts = new WeakMap<FastifyRequest, RequestContext>();
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    const context: RequestContext = { requestId: request.id };
    contexts.set(request, context);
    requestContext.run(context, done);
  });
  app.addHook('preValidation', (request, _reply, done) => {
    requestContext.run(contexts.get(request) ?? { requestId: request.id }, done);
  });
  app.addHook('onResponse', (request, _reply, done) => {
    requestAnswered(contexts.get(request));
    done();
  });
}

/**
 * GET /metrics in the Prometheus text format. Not there (404) unless
 * SLS_METRICS_TOKEN or SLS_METRICS_ALLOW is set; then the client's address
 * must be allowed (404 otherwise: nothing tells it the endpoint exists) and
 * the bearer token right (401), each when set.
 */
export function registerMetricsRoute(app: FastifyInstance, config: Pick<Config, 'metrics'>, metrics: Metrics): void {
  const { token, allow } = config.metrics;
  const enabled = token !== null || allow.length > 0;
  const allowed = allow.length > 0 ? addressMatcher(allow) : () => true;
  if (enabled) metrics.enableProcessMetrics();
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (!enabled || !allowed(request.ip)) return sendError(request, reply, new SlsError('NOT_FOUND'));
    if (token !== null) {
      const header = request.headers.authorization ?? '';
      const given = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
      if (!constantTimeEqual(given, token)) return sendError(request, reply, new SlsError('UNAUTHENTICATED'));
    }
    const text = await metrics.text();
    return reply.header('cache-control', 'no-store').type(metrics.contentType).send(text);
  });
}
