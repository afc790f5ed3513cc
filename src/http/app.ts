/**
 * The HTTP server: the JSON API (documented by OpenAPI at /api/openapi.json)
 * and the web pages, over the same services. Routes parse and validate, call
 * the domain, and map errors (GUIDE lesson 11).
 */
import { browserTimeZone, cookieNames } from './session-cookie.js';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Services } from '../services.js';
import { SlsError } from '../errors.js';
import { LANGUAGES, acceptedLanguage, isLanguage, translator, type Language, type Translate } from '../i18n/i18n.js';
import { registerErrorHandling, sendError } from './errors.js';
import { openApiTransform } from './openapi.js';
import { loginApi } from './api/login.js';
import { sessionApi } from './api/session.js';
import { helpdeskApi } from './api/helpdesk.js';
import { devicesApi } from './api/devices.js';
import { onlineCardApi } from './api/online-card.js';
import { phonesApi } from './api/phones.js';
import { mobileApi } from './api/mobile.js';
import { stepUpApi } from './api/step-up.js';
import { adminApi } from './api/admin.js';
import { operationsApi } from './api/operations.js';
import { securityKeysApi } from './api/security-keys.js';
import { withdrawalsApi } from './api/withdrawals.js';
import { sharingApi } from './api/sharing.js';
import { noticePreferencesApi } from './api/notice-preferences.js';
import { optOutApi } from './api/opt-out.js';
import { API_KEY_SCHEME, ApiKeyGuard } from './api-key-guard.js';
import { securityKeyPages } from './web/security-key-pages.js';
import { optOutPages } from './web/opt-out-pages.js';
import { webPages } from './web/pages.js';
import { portalPages } from './web/portal-pages.js';
import { helpdeskPages } from './web/helpdesk-pages.js';
import { mobilePages } from './web/mobile-pages.js';
import { appPages } from './web/app-pages.js';
import { stepUpPages } from './web/step-up-pages.js';
import { sharingPages } from './web/sharing-pages.js';
import { noticePages } from './web/notice-pages.js';
import { SessionGuard } from './session-guard.js';
import { registerThrottle } from './throttle-hook.js';
import { registerTextInputCheck } from './text-input.js';
import { loggedRequest, registerMetricsRoute, registerRequestContext, requestIdGenerator } from './observability.js';
import { LANGUAGE_COOKIE, PageRenderer } from './web/render.js';
import { oidcFormActionHook, oidcRoutes, ProviderHost } from './oidc.js';
import { oidcClientPages } from './web/oidc-client-pages.js';
import { registerSecurityHeaders } from './security-headers.js';
import { registerCrossSiteCheck } from './cross-site.js';

declare module 'fastify' {
  interface FastifyRequest {
    language: Language;
    /** N1: the language the request asked for (switcher, cookie, Accept-Language), if any. */
    expressedLanguage: Language | null;
    t: Translate;
  }
}

export const API_BODY_LIMIT = 16 * 1024;

export interface AppOptions {
  /** pino logger options, or false for none (tests). */
  logger?: boolean | { level: string; stream?: NodeJS.WritableStream };
}

/**
 * The language the person asked for: the switcher (?lang), its cookie, or
 * Accept-Language when it names one of ours; null when none (N1: a login
 * then remembers nothing, rather than the server's fallback).
 */
function expressedLanguage(request: FastifyRequest): Language | null {
  const query = request.query as Record<string, unknown> | undefined;
  if (isLanguage(query?.lang)) return query.lang;
  const fromCookie = request.cookies?.[LANGUAGE_COOKIE];
  if (isLanguage(fromCookie)) return fromCookie;
  return acceptedLanguage(request.headers['accept-language']);
}

/** Trusts the nearest `hops` proxies in front of the server (X-Forwarded-For read from the right). */
function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops;
}

export async function buildApp(services: Services, options: AppOptions = {}): Promise<FastifyInstance> {
  const { config } = services;
  const logger =
    options.logger === false
      ? false
      : {
          level: typeof options.logger === 'object' ? options.logger.level : config.logLevel,
          // nothing secret in logs (non-negotiable 5)
          redact: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'],
          // … nor a query string's values: a device's user code (RFC 8628's complete link), an ID token named at logout
          serializers: { req: loggedRequest },
          ...(typeof options.logger === 'object' && options.logger.stream ? { stream: options.logger.stream } : {}),
        };
  // X6: from the first SIGTERM on, new requests are answered 503 and waiting long polls answer at once
  let stopping = false;
  const app = Fastify({
    logger,
    // our own 503 (SHUTTING_DOWN) in the usual error shape, below
    return503OnClosing: false,
    bodyLimit: API_BODY_LIMIT,
    // X5, K13: the proxies named, or so many hops in front; never any client's X-Forwarded-For
    trustProxy: typeof config.trustProxy === 'number' ? trustHops(config.trustProxy) : config.trustProxy,
    routerOptions: { maxParamLength: 200 },
    // every request's id: in its log lines (reqId), the X-Request-Id header, error bodies and audit entries
    genReqId: requestIdGenerator(config.trustProxy),
    frameworkErrors: (error, request, reply) => sendError(request, reply, error),
    // not even HTTP (a NUL in the path, a bad Content-Length …): still the error shape of every other answer
    clientErrorHandler: (_error, socket) => {
      if (!socket.writable) return;
      const body = JSON.stringify({ error: { code: 'MALFORMED_REQUEST', message: translator(config.defaultLanguage)('errors.MALFORMED_REQUEST') } });
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerRequestContext(app);

  await app.register(cookie);
  app.decorateRequest('language', 'en');
  app.decorateRequest('t', null as unknown as Translate);
  app.decorateRequest('expressedLanguage', null);
  app.addHook('onRequest', async (request) => {
    request.expressedLanguage = expressedLanguage(request);
    request.language = request.expressedLanguage ?? config.defaultLanguage;
    request.t = translator(request.language, browserTimeZone(request) ?? 'UTC');
  });

  registerSecurityHeaders(app, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        upgradeInsecureRequests: null,
      },
    },
    hsts: config.cookieSecure ? undefined : false,
    // the header of browsers that know no frame-ancestors: no frame, not even ours (as the policy says)
    xFrameOptions: { action: 'deny' },
  });

  await app.register(swagger, {
    openapi: {
      // I2: OpenAPI 3.1, whose schemas are JSON Schema 2020-12 (null is a type, not `nullable`)
      openapi: '3.1.0',
      info: {
        title: 'Secure Login System API',
        version: '1',
        description:
          'Two-factor login flows (password, then a device challenge), sessions and logout. ' +
          `Every error is {"error": {"code", "message"}} with a stable code; messages follow Accept-Language (${LANGUAGES.join(', ')}). ` +
          'Text never holds U+0000 (NUL) or half of a surrogate pair: 400 VALIDATION_ERROR, whatever the field.',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      // the server's public address (SLS_PUBLIC_URL), else wherever the document was fetched from
      servers: [{ url: config.publicUrl ?? '/', description: 'This Secure Login System' }],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'The session token returned when a login completes.' },
          cookie: { type: 'apiKey', in: 'cookie', name: cookieNames(config).session },
          apiKey: API_KEY_SCHEME,
        },
      },
    },
    // I2: only the JSON API, each operation with the errors the server's hooks answer
    transform: openApiTransform,
  });

  app.addHook('onRequest', async (_request, reply) => {
    if (!stopping) return;
    reply.header('connection', 'close');
    throw new SlsError('SHUTTING_DOWN', { retryAfterSeconds: 1 });
  });
  app.addHook('preClose', async () => {
    stopping = true;
    services.signals.stopWaiting();
  });
  // L8, X3: a state-changing request a browser says another site sent is refused before it costs anything
  registerCrossSiteCheck(app, config.publicUrl);
  registerThrottle(app, services.throttle);
  // X3: no NUL nor lone surrogate in what a request brings (PostgreSQL cannot store a NUL): 400, before any route reads it
  registerTextInputCheck(app);
  // L8: answers carry sessions, claim tokens, codes, secrets and personal data: none is kept by a cache unless its route
  // says it may be (the style sheet, the icons). Set on the raw response, as the security headers: the OpenID Provider's
  // answers (its device page with its form's secret) get it too; a route's own cache-control replaces it.
  app.addHook('onRequest', (_request, reply, done) => {
    reply.raw.setHeader('cache-control', 'no-store');
    done();
  });
  const pages = new PageRenderer(config, services.box.digest('sls-csrf-tokens', 'csrf-hmac-key'), services.deviceKind);
  const guard = new SessionGuard({
    sessions: services.sessions,
    audit: services.audit,
    clock: services.clock,
    policy: config.policy,
    rights: services.securityRights,
    ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
    cookieSecure: config.cookieSecure,
    // L8, T3, X7: the last proof (its step-up's, else its login's) still stands, and was a permanent device
    proof: (session) => services.stepUp.proof(session),
    // D2, K7, X7: a weaker proof binds no stronger device
    proofToAddRefusal: (session, type) => services.stepUp.proofToAddRefusal(session, type),
  });
  registerErrorHandling(app, (request, reply) =>
    request.url.startsWith('/api/') ? sendError(request, reply, new SlsError('NOT_FOUND')) : pages.renderError(request, reply, new SlsError('NOT_FOUND')),
  );
  await app.register(operationsApi({ store: services.store, stopping: () => stopping }), { prefix: '/api/v1' });
  await app.register(loginApi(services), { prefix: '/api/v1' });
  await app.register(sessionApi(services, guard), { prefix: '/api/v1' });
  await app.register(devicesApi(services, guard), { prefix: '/api/v1' });
  await app.register(onlineCardApi(services, guard), { prefix: '/api/v1' });
  await app.register(phonesApi(services, guard), { prefix: '/api/v1' });
  await app.register(mobileApi(services), { prefix: '/api/v1' });
  await app.register(stepUpApi(services, guard), { prefix: '/api/v1' });
  await app.register(helpdeskApi(services, guard), { prefix: '/api/v1' });
  const apiKeyGuard = new ApiKeyGuard(services.apiKeys);
  await app.register(adminApi(services, guard, apiKeyGuard), { prefix: '/api/v1' });
  await app.register(securityKeysApi(services, guard), { prefix: '/api/v1' });
  await app.register(noticePreferencesApi(services, guard), { prefix: '/api/v1' });
  await app.register(withdrawalsApi(services, apiKeyGuard), { prefix: '/api/v1' });
  // H1-H5: device sharing (the user's procedure, compliance's decision)
  await app.register(sharingApi(services, guard), { prefix: '/api/v1' });
  await app.register(optOutApi(services, guard), { prefix: '/api/v1' });
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  registerMetricsRoute(app, config, services.metrics);
  // I1: pages of a login for a relying party may send their form on to its redirect URI
  const providerHost = new ProviderHost(services, app.log);
  app.addHook('onSend', oidcFormActionHook(providerHost, config));
  await app.register(webPages(services, pages, guard));
  await app.register(portalPages(services, pages, guard));
  await app.register(helpdeskPages(services, pages, guard));
  await app.register(mobilePages(services, pages, guard));
  await app.register(stepUpPages(services, pages, guard));
  await app.register(securityKeyPages(services, pages, guard));
  await app.register(sharingPages(services, pages, guard));
  await app.register(noticePages(services, pages, guard));
  await app.register(optOutPages(services, pages, guard));
  await app.register(appPages(services, pages));
  // I1: the OpenID Provider under /oidc, its login ours
  await app.register(oidcRoutes(services, pages, providerHost, guard));
  await app.register(oidcClientPages(services, pages, guard));
  return app;
}
