/**
 * I2: every JSON answer of an /api/v1/ route in the tests is checked
 * against the OpenAPI document the app serves: its status must be declared
 * for the operation, with the answer's media type, and a JSON body must
 * match the declared schema (Ajv, JSON Schema 2020-12 as OpenAPI 3.1 says).
 * A mismatch fails the test that made the request (and the harness's close).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { expect } from 'vitest';

// ajv-formats is CommonJS: its default export is the plugin itself, or under .default
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

// biome-ignore lint/suspicious/noExplicitAny: the document is JSON
type Json = any;

const COMPONENTS_ID = 'urn:sls:openapi:components';

/** Ajv for an OpenAPI 3.1 document: strict, the 2020-12 dialect, the formats, and OpenAPI's own annotation keywords. */
export function openApiAjv(document: Json): Ajv2020 {
  const ajv = new Ajv2020({ strict: true, strictTypes: false, strictTuples: false, allErrors: true });
  addFormats(ajv);
  ajv.addVocabulary(['example', 'discriminator', 'xml', 'externalDocs']);
  ajv.addSchema({ $id: COMPONENTS_ID, $defs: document.components?.schemas ?? {} });
  return ajv;
}

/** A schema of the document with its references to components pointed at the components registered with Ajv. */
function withComponentRefs(schema: Json): Json {
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/components/schemas/', `"${COMPONENTS_ID}#/$defs/`));
}

/** Every response schema of the document: [operation, status, media type, schema]. */
export function responseSchemas(document: Json): [string, string, string, Json][] {
  const found: [string, string, string, Json][] = [];
  for (const [path, item] of Object.entries<Json>(document.paths ?? {}))
    for (const [method, operation] of Object.entries<Json>(item))
      for (const [status, response] of Object.entries<Json>(operation.responses ?? {}))
        for (const [mediaType, content] of Object.entries<Json>(response.content ?? {}))
          found.push([`${method.toUpperCase()} ${path}`, status, mediaType, content.schema ?? {}]);
  return found;
}

/** Fastify's route pattern as the document's path: `/login/:flowId` → `/login/{flowId}`. */
export function documentPath(routeUrl: string): string {
  return routeUrl.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

export class ResponseChecker {
  private readonly ajv: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(private readonly document: Json) {
    this.ajv = openApiAjv(document);
  }

  /** What is wrong with an answer, by the document; null when nothing. */
  check(method: string, routeUrl: string, status: number, contentType: string, body: string): string | null {
    const path = documentPath(routeUrl);
    const operation = this.document.paths?.[path]?.[method.toLowerCase()];
    const where = `${method} ${path} answered ${status}`;
    if (!operation) return `${where}, but the OpenAPI document has no such operation`;
    const response = operation.responses?.[String(status)] ?? operation.responses?.[`${String(status)[0]}XX`] ?? operation.responses?.default;
    if (!response) return `${where}, a status the OpenAPI document does not declare for it (declared: ${Object.keys(operation.responses ?? {}).join(', ')})`;
    const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
    const declared = Object.keys(response.content ?? {});
    if (body.length === 0 && declared.length === 0) return null;
    if (declared.length === 0) return `${where} with a ${mediaType || 'body'}, declared without content`;
    if (!declared.includes(mediaType)) return `${where} as ${mediaType || 'no media type'}; declared: ${declared.join(', ')}`;
    if (mediaType !== 'application/json') return null;
    const key = `${method} ${path} ${status}`;
    let validate = this.compiled.get(key);
    if (!validate) {
      validate = this.ajv.compile(withComponentRefs(response.content[mediaType].schema ?? {}));
      this.compiled.set(key, validate);
    }
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return `${where} with a body that is not JSON: ${body.slice(0, 200)}`;
    }
    if (validate(value)) return null;
    return `${where} with a body its OpenAPI schema rejects: ${this.ajv.errorsText(validate.errors, { separator: '; ' })}\nbody: ${body.slice(0, 1000)}`;
  }
}

/** What the checks found, for the harness to report when it closes. */
export interface ResponseCheck {
  mismatches: string[];
}

/**
 * Adds the check to an app (before it is ready): every answer of an API
 * route goes through it. The document is the one the app itself serves.
 */
export function checkResponsesAgainstOpenApi(app: FastifyInstance, prefix = '/api/v1/'): ResponseCheck {
  const result: ResponseCheck = { mismatches: [] };
  let checker: ResponseChecker | undefined;
  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const routeUrl = request.routeOptions.url;
    if (!routeUrl?.startsWith(prefix) || request.method === 'HEAD') return payload;
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload) && payload !== null && payload !== undefined) return payload; // a stream
    checker ??= new ResponseChecker(app.swagger());
    // Fastify sends no body with a 204 or 304, whatever the handler gave
    const body =
      payload === null || payload === undefined || reply.statusCode === 204 || reply.statusCode === 304
        ? ''
        : Buffer.isBuffer(payload)
          ? payload.toString('latin1')
          : payload;
    const mismatch = checker.check(request.method, routeUrl, reply.statusCode, String(reply.getHeader('content-type') ?? ''), body);
    if (mismatch) {
      result.mismatches.push(mismatch);
      // fails the test that made the request, where it made it
      try {
        expect.soft(mismatch, 'I2: the answer matches the OpenAPI document').toBeNull();
      } catch {
        // outside a test (beforeAll): the harness's close() reports it
      }
    }
    return payload;
  });
  return result;
}
