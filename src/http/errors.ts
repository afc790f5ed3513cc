/**
 * Every error leaves as `{"error": {"code", "message"}}` with a stable code
 * and a 4xx status; anything unexpected is logged and answered with a
 * generic 500, never a stack trace (X3).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaValidationError } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SlsError, type ErrorCode } from '../errors.js';
import { errorMessage, tell, translator, type Translate } from '../i18n/i18n.js';
import { isDatabaseUnavailable } from '../store/database.js';
import { fieldIssue, issueReason } from '../i18n/schema-issues.js';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'VALIDATION_ERROR',
  FST_ERR_BAD_URL: 'NOT_FOUND',
  FST_ERR_MAX_PARAM_LENGTH: 'NOT_FOUND',
  FST_CSRF_MISSING_SECRET: 'CSRF_FAILED',
  FST_CSRF_INVALID_TOKEN: 'CSRF_FAILED',
};

/** X6: a request that met a database outage may be tried again after this long. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/** The part of a request a schema checked (fastify's validationContext: body, querystring, params, headers). */
function checkedPart(request: FastifyRequest | undefined, context: unknown): unknown {
  if (!request) return undefined;
  if (context === 'body') return request.body;
  if (context === 'querystring') return request.query;
  if (context === 'params') return request.params;
  if (context === 'headers') return request.headers;
  return undefined;
}

/** Whether a value at a JSON pointer ("/devices/0/token") was not given at all; false when it cannot be told. */
function isMissing(part: unknown, pointer: string): boolean {
  const steps = pointer === '/' ? [] : pointer.split('/').slice(1);
  let value: unknown = part;
  for (const [i, step] of steps.entries()) {
    if (typeof value !== 'object' || value === null) return false;
    if (!Object.hasOwn(value, step)) return i === steps.length - 1;
    value = (value as Record<string, unknown>)[step];
  }
  return value === undefined;
}

/**
 * X2, X3: a request its schemas refused: VALIDATION_ERROR, each field's path
 * (as zod gave it, machine-readable) with its reason from the translation
 * files, told in the request's language when the answer is written.
 */
function schemaRefusal(error: FastifyError & { validation: FastifySchemaValidationError[] }, request?: FastifyRequest): SlsError {
  const part = checkedPart(request, error.validationContext);
  const issues = error.validation.map((v) =>
    fieldIssue(
      v.instancePath || '/',
      issueReason({ ...(v.params as object), code: v.keyword, message: v.message ?? '' }, isMissing(part, v.instancePath || '/')),
    ),
  );
  return new SlsError('VALIDATION_ERROR', { reason: issues });
}

/** Maps any thrown value to an SlsError; the request, when given, tells a field missing from a field of the wrong type. */
export function toSlsError(error: unknown, request?: FastifyRequest): SlsError {
  if (error instanceof SlsError) return error;
  if (isDatabaseUnavailable(error))
    return new SlsError('DATABASE_UNAVAILABLE', { retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS }, String((error as Error).message));
  if (hasZodFastifySchemaValidationErrors(error)) return schemaRefusal(error as FastifyError & { validation: FastifySchemaValidationError[] }, request);
  const e = error as Partial<FastifyError> & { name?: string };
  if (e.code && FASTIFY_CODES[e.code]) return new SlsError(FASTIFY_CODES[e.code]!, { reason: e.message ?? '' });
  if (e.name === 'SyntaxError' && e.statusCode === 400) return new SlsError('MALFORMED_JSON');
  if (e.validation) return new SlsError('VALIDATION_ERROR', { reason: e.message ?? 'invalid request' });
  const status = e.statusCode ?? 500;
  if (status === 404) return new SlsError('NOT_FOUND');
  if (status === 405) return new SlsError('METHOD_NOT_ALLOWED');
  if (status === 413) return new SlsError('PAYLOAD_TOO_LARGE');
  if (status === 415) return new SlsError('UNSUPPORTED_MEDIA_TYPE');
  if (status >= 400 && status < 500) return new SlsError('VALIDATION_ERROR', { reason: e.message ?? 'invalid request' });
  return new SlsError('INTERNAL_ERROR', {}, e.message);
}

export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    hints?: string[];
    attemptsLeft?: number;
    stepUp?: string;
    details?: Record<string, string>;
    requestId?: string;
  };
}

export function errorBody(t: Translate, error: SlsError, requestId?: string): ErrorBody {
  const body: ErrorBody = { error: { code: error.code, message: errorMessage(t, error.code, error.params) } };
  if (Array.isArray(error.params.hints)) body.error.hints = error.params.hints.map((key) => (typeof key === 'string' ? t(key) : tell(t, key)));
  if (typeof error.params.attemptsLeft === 'number') body.error.attemptsLeft = error.params.attemptsLeft;
  if (typeof error.params.stepUp === 'string') body.error.stepUp = error.params.stepUp;
  // A2: NOT_PRIMARY_USER names the user who may change the security settings
  if (typeof error.params.primaryUser === 'string') body.error.details = { primaryUser: error.params.primaryUser };
  if (requestId) body.error.requestId = requestId;
  return body;
}

/** The OpenAPI description of an error answer. */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().describe('Stable UPPER_SNAKE error code'),
      message: z.string().describe('Explanation for people, in the negotiated language'),
      hints: z.array(z.string()).optional().describe('What to check after "Login failed" (L5)'),
      attemptsLeft: z.number().int().optional(),
      stepUp: z.string().optional().describe('STEP_UP_REQUIRED: where the step-up starts (POST, with the password)'),
      details: z
        .record(z.string(), z.string())
        .optional()
        .describe('Facts of the error: NOT_PRIMARY_USER gives `primaryUser`, the user who may change the security settings (A2)'),
      requestId: z.string().optional().describe('The id of the request (also its X-Request-Id header): quote it to the operators'),
    }),
  })
  .describe('Error');

/** The error answers of a route that runs a flow: bad input, sessions, refusals, expiry, lock and limits. */
export const FLOW_ERRORS = {
  400: ErrorSchema,
  401: ErrorSchema,
  403: ErrorSchema,
  404: ErrorSchema,
  409: ErrorSchema,
  410: ErrorSchema,
  423: ErrorSchema,
  429: ErrorSchema,
};

export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const mapped = toSlsError(error, request);
  if (mapped.code === 'DATABASE_UNAVAILABLE') request.log.warn({ err: error }, 'database unavailable');
  else if (mapped.status >= 500) request.log.error({ err: error }, 'unexpected error');
  if (mapped.code === 'UNAUTHENTICATED' || (mapped.status === 401 && mapped.code.startsWith('API_KEY_'))) reply.header('www-authenticate', 'Bearer');
  // 429: when to try again (X5)
  if (typeof mapped.params.retryAfterSeconds === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(mapped.params.retryAfterSeconds))));
  // framework errors (a bad URL) arrive before the language is known
  const t = request.t ?? translator('en');
  return reply
    .status(mapped.status)
    .type('application/json; charset=utf-8')
    .send(errorBody(t, mapped, request.id));
}

/** The charset a Content-Type names (lower case, unquoted), or null when it names none. */
export function charsetOf(contentType: string | undefined): string | null {
  const charset = /;\s*charset\s*=\s*("?)([^";\s]*)\1/i.exec(contentType ?? '')?.[2];
  return charset === undefined ? null : charset.toLowerCase();
}

/** UTF-8 that is UTF-8: a byte that is not is refused, not read as U+FFFD. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

export function registerErrorHandling(app: FastifyInstance, notFound: (request: FastifyRequest, reply: FastifyReply) => FastifyReply): void {
  // An empty JSON body is no body (a bare POST /logout), not a syntax error.
  const defaultJsonParser = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  // a text/plain body is no JSON: 415, as documented (X3)
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    // X3: JSON is UTF-8 (RFC 8259): another charset named is 415, a byte that is no UTF-8 400 — never a text changed
    // silently (a password's byte read as U+FFFD, stored or compared as such)
    const charset = charsetOf(request.headers['content-type']);
    if (charset !== null && charset !== 'utf-8' && charset !== 'utf8') return done(new SlsError('UNSUPPORTED_MEDIA_TYPE', { reason: 'charset' }), undefined);
    let text: string;
    try {
      text = STRICT_UTF8.decode(body as Buffer);
    } catch {
      return done(new SlsError('MALFORMED_JSON', { reason: 'utf8' }), undefined);
    }
    if (text === '') return done(null, undefined);
    return defaultJsonParser(request, text, done);
  });
  // X3: a body is read as sent: one with a content encoding (gzip, deflate, br …) would be read compressed, as if it were
  // not (or a body that is not compressed, as if it were): 415, as RFC 9110 §8.4.1 says, before the body is read
  app.addHook('preParsing', (request, _reply, payload, done) => {
    const encoding = String(request.headers['content-encoding'] ?? '')
      .trim()
      .toLowerCase();
    const hasBody = request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
    if (hasBody && encoding !== '' && encoding !== 'identity') return done(new SlsError('UNSUPPORTED_MEDIA_TYPE', { reason: 'encoding' }), payload);
    done(null, payload);
  });
  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  app.setNotFoundHandler(notFound);
}
