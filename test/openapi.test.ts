/**
 * I2: the OpenAPI document of the JSON API is what integrators' tools
 * expect: OpenAPI 3.1 that Ajv compiles, an operationId on every operation,
 * only the API, every status the server answers declared with the error
 * schema, lint-clean by Redocly's recommended rules; and the answers match it
 * (the harness checks every answer of the API tests, test/support/openapi-check.ts).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_BODY_LIMIT } from '../src/http/app.js';
import { throttledKind } from '../src/http/throttle-hook.js';
import { DATABASES, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, postJson, startLogin, type Json } from './support/api.js';
import { ResponseChecker, openApiAjv, responseSchemas } from './support/openapi-check.js';

const run = promisify(execFile);
const BODY_METHODS = ['post', 'put', 'patch', 'delete'];
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

async function documentOf(h: Harness): Promise<Json> {
  const res = await get(h.app, '/api/openapi.json');
  expect(res.status).toBe(200);
  return res.body;
}

function operations(document: Json): { method: string; path: string; operation: Json }[] {
  return Object.entries<Json>(document.paths).flatMap(([path, item]) =>
    Object.entries<Json>(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, operation]) => ({ method, path, operation })),
  );
}

describe('the OpenAPI document (I2)', () => {
  let h: Harness;
  let document: Json;
  beforeAll(async () => {
    h = await startHarness('sqlite');
    document = await documentOf(h);
  });
  afterAll(async () => h.close());

  it('I2: the document is OpenAPI 3.1 and Ajv (JSON Schema 2020-12, strict) compiles every schema in it, with null as a type, never `nullable`', () => {
    expect(document.openapi).toBe('3.1.0');
    const ajv = openApiAjv(document);
    const schemas = responseSchemas(document);
    expect(schemas.length).toBeGreaterThan(100);
    const refused: string[] = [];
    for (const [operation, status, mediaType, schema] of schemas) {
      try {
        ajv.compile(schema);
      } catch (error) {
        refused.push(`${operation} ${status} ${mediaType}: ${(error as Error).message}`);
      }
    }
    for (const { method, path, operation } of operations(document)) {
      for (const parameter of operation.parameters ?? []) ajv.compile(parameter.schema);
      const body = operation.requestBody?.content?.['application/json']?.schema;
      if (body) {
        try {
          ajv.compile(body);
        } catch (error) {
          refused.push(`${method} ${path} request body: ${(error as Error).message}`);
        }
      }
    }
    expect(refused).toEqual([]);
    expect(JSON.stringify(document)).not.toContain('"nullable"');
  });

  it('I2: every operation has an operationId, camelCase and unique', () => {
    const ids = operations(document).map(({ method, path, operation }) => operation.operationId ?? `(none on ${method} ${path})`);
    expect(ids.length).toBeGreaterThan(70);
    expect(ids.filter((id) => !/^[a-z][A-Za-z0-9]*$/.test(id))).toEqual([]);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it('I2: only the JSON API is described: no web page, no /dev/* route, no /metrics', () => {
    const paths = Object.keys(document.paths);
    expect(paths.filter((path) => !path.startsWith('/api/v1/'))).toEqual([]);
    // routes that exist and answer, but are not the API
    expect(paths).not.toContain('/login');
    expect(paths.some((path) => path.startsWith('/dev/'))).toBe(false);
    expect(paths).toContain('/api/v1/login');
  });

  it('I2: every operation declares, with the error schema, the statuses the server answers whatever its handler does (400, 401/403, 404, 413, 415, 429, 500, 503)', () => {
    const missing: string[] = [];
    for (const { method, path, operation } of operations(document)) {
      const route = path.replace(/\{([^}]+)\}/g, ':$1');
      const expected = ['500', '503'];
      // 403: a state-changing request a browser sent from another site (CSRF_FAILED, L8)
      if (BODY_METHODS.includes(method)) expected.push('400', '403', '413', '415');
      if (path.includes('{')) expected.push('400', '404');
      if ((operation.security ?? []).some((requirement: Json) => Object.keys(requirement).length > 0)) expected.push('401', '403');
      if (throttledKind(method.toUpperCase(), route)) expected.push('429');
      for (const status of expected) {
        const schema = operation.responses?.[status]?.content?.['application/json']?.schema;
        if (!schema?.properties?.error?.properties?.code) missing.push(`${method.toUpperCase()} ${path} ${status}`);
      }
    }
    expect(missing).toEqual([]);
    // the throttled login declares 429; the unthrottled session does not need to
    expect(document.paths['/api/v1/login'].post.responses['429']).toBeDefined();
  });

  it('I2: the answers of the body limit (413), of another media type (415), of bad JSON (400) and of an unknown flow (404) are those declared', async () => {
    const checker = new ResponseChecker(document);
    const tooLarge = await postJson(h.app, '/api/v1/login', { username: 'x'.repeat(API_BODY_LIMIT), password: 'p', app: 'portal' });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    const text = await h.app.inject({ method: 'POST', url: '/api/v1/login', headers: { 'content-type': 'text/plain' }, payload: 'username=a' });
    expect(text.statusCode).toBe(415);
    expect(text.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(checker.check('POST', '/api/v1/login', 415, text.headers['content-type'] as string, text.body)).toBeNull();
    const malformed = await h.app.inject({ method: 'POST', url: '/api/v1/login', headers: { 'content-type': 'application/json' }, payload: '{"username":' });
    expect(malformed.statusCode).toBe(400);
    expect(checker.check('POST', '/api/v1/login', 400, malformed.headers['content-type'] as string, malformed.body)).toBeNull();
    const unknown = await postJson(h.app, '/api/v1/login/no-such-flow', { response: '123456' });
    expect(unknown.status).toBe(404);
  });

  it('I2: a drift fails: an answer with a field the schema lacks, a field of the wrong type, or an undeclared status is reported', () => {
    const checker = new ResponseChecker(document);
    const json = 'application/json; charset=utf-8';
    const health = '/api/v1/health';
    expect(checker.check('GET', health, 200, json, '{"status":"ok"}')).toBeNull();
    expect(checker.check('GET', health, 200, json, '{"status":"ok","extra":1}')).toMatch(/schema rejects/);
    expect(checker.check('GET', health, 200, json, '{"status":1}')).toMatch(/schema rejects/);
    expect(checker.check('GET', health, 418, json, '{"status":"ok"}')).toMatch(/does not declare/);
    expect(checker.check('GET', '/api/v1/online-card/card.pdf', 200, json, '{}')).toMatch(/declared: application\/pdf/);
    expect(checker.check('GET', '/api/v1/no-such-route', 200, json, '{}')).toMatch(/no such operation/);
  });

  it('I2: Redocly CLI lints the document with its recommended rules: 0 errors', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'sls-openapi-'));
    try {
      const file = join(folder, 'openapi.json');
      writeFileSync(file, JSON.stringify(document));
      const cli = join(dirname(createRequire(import.meta.url).resolve('@redocly/cli/package.json')), 'bin', 'cli.js');
      const { stdout } = await run(process.execPath, [cli, 'lint', '--extends', 'recommended', '--format', 'json', file], {
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
        maxBuffer: 16 * 1024 * 1024,
      }).catch((error: { stdout?: string; message: string }) => ({ stdout: error.stdout ?? error.message }));
      const report = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
        totals: { errors: number };
        problems: { ruleId: string; severity: string; message: string }[];
      };
      expect(report.problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId}: ${p.message}`)).toEqual([]);
      expect(report.totals.errors).toBe(0);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  }, 60_000);
});

describe.each(DATABASES)('GET /api/v1/session as documented on %s (I2)', (db) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(db);
  });
  afterAll(async () => h.close());

  it('I2: a DSC+ session answers confirmedBy: null, and its own schema accepts it', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const started = await startLogin(h.app, user.username);
    const done = await answer(h.app, started.body.id, cardAnswer(card, started.body.challenge.question));
    const session = await get(h.app, '/api/v1/session', bearer(done.body.session.token));
    expect(session.status).toBe(200);
    expect(session.body.confirmedBy).toBeNull();
    expect(session.body.device.type).toBe('dscplus');
    const checker = new ResponseChecker(await documentOf(h));
    expect(checker.check('GET', '/api/v1/session', 200, session.headers['content-type'] as string, session.raw.body)).toBeNull();
  });
});
