/**
 * I2: the OpenAPI document as integrators' tools expect it. Only the JSON
 * API is described (the pages, /dev/* and /metrics are not), and every
 * operation declares the error answers the server's own hooks give besides
 * the route's: body limit (413), content type (415), malformed input (400),
 * bad path parameters (404), no credential or one refused (401, 403), the throttle (429), stopping or the database
 * away (503), and the unexpected (500).
 */
import type { FastifySchema } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import type { ZodType } from 'zod';
import { ErrorSchema } from './errors.js';
import { throttledKind } from './throttle-hook.js';

/** The prefix of the routes the document describes. */
export const API_PREFIX = '/api/v1/';

/** Methods whose body Fastify parses, so that its size and content type can be refused. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

type Status = 400 | 401 | 403 | 404 | 413 | 415 | 429 | 500 | 503;

const described = (text: string): ZodType => ErrorSchema.describe(text);

const COMMON: Record<Status, ZodType> = {
  400: described('Bad input (VALIDATION_ERROR, MALFORMED_JSON …): the message says what to correct'),
  401: described('UNAUTHENTICATED (no session, or it ended) or API_KEY_REQUIRED: the WWW-Authenticate header says which credential'),
  403: described(
    "The session may not do this (its app, its scope, PASSWORD_CHANGE_REQUIRED, STEP_UP_REQUIRED …), or a browser's request came from another site (CSRF_FAILED)",
  ),
  404: described('NOT_FOUND: no such resource (or a malformed path parameter)'),
  413: described('PAYLOAD_TOO_LARGE: the body is over 16 KB'),
  415: described('UNSUPPORTED_MEDIA_TYPE: the body must be application/json, in UTF-8, without a content encoding'),
  429: described('TOO_MANY_REQUESTS: too many from this address; the Retry-After header says when to try again (X5)'),
  500: described('INTERNAL_ERROR: unexpected; quote the requestId to the operators'),
  503: described('SHUTTING_DOWN (the server is stopping) or DATABASE_UNAVAILABLE: try again after the Retry-After header (X6); MIGRATIONS_PENDING on /ready'),
};

/**
 * The statuses a route answers through the global hooks and handlers,
 * whatever its handler does: a helper shared by every route, so a route
 * declares only its own answers.
 */
export function commonErrorStatuses(method: string, url: string, schema: FastifySchema | undefined): Status[] {
  const statuses: Status[] = [500, 503];
  const hasBody = BODY_METHODS.has(method);
  if (hasBody || schema?.querystring || schema?.params || schema?.headers || url.includes(':')) statuses.push(400);
  // a session or an API key: none (401), or one that may not do this (403: the session guard's refusals, CSRF, the key's scope)
  if ((schema?.security as Record<string, string[]>[] | undefined)?.some((requirement) => Object.keys(requirement).length > 0)) statuses.push(401, 403);
  if (url.includes(':')) statuses.push(404);
  if (hasBody) statuses.push(413, 415);
  // L8, X3: a state-changing request a browser sent from another site (CSRF_FAILED, src/http/cross-site.ts)
  if (hasBody && !statuses.includes(403)) statuses.push(403);
  if (throttledKind(method, url)) statuses.push(429);
  return statuses.sort();
}

/** The error answers of commonErrorStatuses, as route response schemas (zod). */
export function commonErrorResponses(method: string, url: string, schema: FastifySchema | undefined): Partial<Record<Status, ZodType>> {
  return Object.fromEntries(commonErrorStatuses(method, url, schema).map((status) => [status, COMMON[status]]));
}

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

/** @fastify/swagger's transform: hides what is not the API, adds the common errors, then zod → JSON Schema. */
export function openApiTransform(document: TransformInput): ReturnType<typeof jsonSchemaTransform> {
  const { url, route } = document;
  if (!url.startsWith(API_PREFIX)) return { schema: { hide: true }, url };
  const schema = document.schema as (FastifySchema & { response?: Record<string, unknown> }) | undefined;
  const method = (Array.isArray(route.method) ? route.method[0] : route.method) as string;
  const response = { ...commonErrorResponses(method, url, schema), ...(schema?.response ?? {}) };
  return jsonSchemaTransform({ ...document, schema: { ...schema, response } as typeof document.schema });
}
