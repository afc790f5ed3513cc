/**
 * X3, I2: bad input gets a clear error on every route, found from the app
 * itself (not from a hand list), on every database.
 *
 * The JSON API: every operation of the OpenAPI document the app serves is
 * sent a fixed list of bad requests made from its own schemas (no random
 * seed): the body missing or of another JSON type, each required field
 * removed, each field given every other type, strings over-long, at their
 * limit and one over it, with control characters, NUL, lone surrogates,
 * emoji or right-to-left marks, numbers negative, huge or not whole,
 * NaN-like strings, unknown extra fields; path parameters empty-ish,
 * over-long, with %00, ..%2f, unicode, or well formed but unknown (the
 * prefixes of src/crypto/random.ts newId); query parameters alike. Each is
 * sent without credentials and with the credential the operation takes (a
 * stepped-up client session, a stepped-up staff session, an API key).
 *
 * The document is the oracle of what is bad. A request its schemas refuse,
 * whose path names nothing (or a client's path another user's device), or
 * without the credential it needs must be refused: 4xx with the error shape (a stable UPPER_SNAKE code of
 * src/errors.ts, with that code's status, and a message), and the users it
 * named unchanged. A request its schemas accept but whose values are hostile
 * (a NUL in a note, a right-to-left mark in a name …) reaches the handlers,
 * on users of its own (and on a real login flow, step-up, PIN change, phone
 * or authenticator activation where the path names one the document can
 * make): never a 5xx, never a hang, every refusal in the error shape, and
 * nothing changed when all of an operation's requests were refused.
 *
 * Every operation is also sent bad headers (credentials of the wrong form, a
 * broken cookie, a garbled Accept-Language, another character set, a forged
 * request id or forwarded address).
 *
 * The pages: every POST route of the app (from its route table) is sent bad
 * fields of its forms (found on the pages), over-long values and bad path
 * parameters, with a valid CSRF token and a session; every GET page bad path
 * parameters and query values: never a 5xx, a 4xx page with its error code
 * or a redirect.
 *
 * After it all, the audit chain still verifies.
 */
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import { SESSION_COOKIE } from '../src/http/session-cookie.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, claimOf, get, postJson, startLogin, stepUp } from './support/api.js';
import { Agent, alertBox, elements, forms } from './support/html.js';
import { openApiAjv } from './support/openapi-check.js';
import { type Answer, apiProblem, pageProblem, within } from './support/bad-input.js';
import { routesOf } from './support/routes.js';
import { SoftwareAuthenticator, registerSecurityKey } from './support/software-authenticator.js';
import { relyingPartyOf } from '../src/devices/security-key/security-key.js';

/** How long any one answer may take: a request that hangs is a defect too. */
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

// biome-ignore lint/suspicious/noExplicitAny: the document, its schemas, the bodies made from them and the answers are JSON
type Json = any;

// ------------------------------------------------------------------ the fixed lists of bad values

/** Strings every string field, query parameter and form field is given. */
const HOSTILE_STRINGS: [string, string][] = [
  ['empty', ''],
  ['blank', '   '],
  ['over-long (10,000 characters)', 'a'.repeat(10_000)],
  ['control characters', 'a\u0001\u0007\b\t\n\r\u001b\u007f\u0085b'],
  ['NUL', 'a\u0000b'],
  ['only NUL', '\u0000'],
  ['lone high surrogate', 'a\ud800b'],
  ['lone low surrogate', '\udc00'],
  ['emoji', '😀👍🏽👨‍👩‍👧'],
  ['right-to-left marks', '\u202eabc\u200f\u2067x\u2069'],
  ['NaN', 'NaN'],
  ['Infinity', '-Infinity'],
  ['negative', '-1'],
  ['huge', '1e308'],
  ['not whole', '0.5'],
  ['markup', '<script>alert(1)</script>'],
  ['a JSON object', '{"id":"x","response":{"clientDataJSON":null}}'],
  ['broken JSON', '{"'],
  ['SQL', "' or 1=1 --"],
  ['traversal', '../../etc/passwd'],
  ['__proto__', '__proto__'],
];

/** Every field is also given each of these: the wrong type for most, and numbers out of range. */
const TYPED_VALUES: [string, unknown][] = [
  ['number', 12345],
  ['negative number', -1],
  ['not-whole number', 1.5],
  ['huge number', 1e308],
  ['boolean', true],
  ['object', { a: 'b' }],
  ['array', ['a']],
  ['empty array', []],
  ['null', null],
];

/** The body as a whole. */
const BODY_SHAPES: [string, string | undefined][] = [
  ['no body', undefined],
  ['null', 'null'],
  ['an array', '[1,2]'],
  ['a string', '"x"'],
  ['a number', '42'],
  ['an empty object', '{}'],
];

/** The prefixes of our ids (src/crypto/random.ts newId), for ids well formed but unknown. */
const ID_PREFIXES = ['flw', 'dev', 'phn', 'shr', 'msg', 'usr', 'ver', 'ses', 'key', 'acc'];

/** In a client's path, where the id of a device of another user goes (the target of staff's, whose devices must stay as they are). */
const ANOTHER_USERS_DEVICE = "{another user's device}";

/** Path parameters, as written in the URL. */
const PATH_VALUES: [string, string][] = [
  ['empty', ''],
  ['blank', '%20'],
  ['dot', '.'],
  ['dot dot', '..'],
  ['%00', 'a%00b'],
  ['..%2f', '..%2f..%2fapi%2fv1%2fsession'],
  ['encoded slash', 'a%2Fb'],
  ['bad escape', '%zz'],
  ['invalid UTF-8', '%ED%A0%80'],
  ['unicode', encodeURIComponent('é😀')],
  ['right-to-left mark', encodeURIComponent('\u202eabc')],
  ['upper case', 'ADMIN'],
  ['one over 64 characters', 'a'.repeat(65)],
  ['over-long (300 characters)', 'a'.repeat(300)],
  ...ID_PREFIXES.map((prefix): [string, string] => [`unknown ${prefix}_ id`, `${prefix}_${'a'.repeat(26)}`]),
];

/** Headers no client of ours sends. */
const BAD_HEADERS: [string, Record<string, string>][] = [
  ['Authorization: Basic', { authorization: 'Basic dXNlcjpwYXNz' }],
  ['Authorization: Bearer alone', { authorization: 'Bearer' }],
  ['Authorization: a Bearer token of 5,000 characters', { authorization: `Bearer ${'a'.repeat(5_000)}` }],
  ['Authorization: an API key of the wrong form', { authorization: 'Bearer sls_x_y_z' }],
  ['Authorization: an unknown API key', { authorization: `Bearer sls_${'a'.repeat(26)}_${'b'.repeat(43)}` }],
  ['Cookie: broken escapes', { cookie: '__Host-sls_session=%zz; sls_lang=%ED%A0%80; sls_tz=%00' }],
  ['Cookie: a session cookie of 4,000 characters', { cookie: `__Host-sls_session=${'a'.repeat(4_000)}` }],
  ['Accept-Language: garbled', { 'accept-language': `${'*;q=abc,'.repeat(200)}zh-Hant;q=2` }],
  ['Content-Type: application/json; charset=utf-16', { 'content-type': 'application/json; charset=utf-16' }],
  ['X-Request-Id: 1,000 characters', { 'x-request-id': 'a'.repeat(1_000) }],
  ['X-Forwarded-For: not an address', { 'x-forwarded-for': 'not an address, ::ffff:999.1.1.1' }],
];

// ------------------------------------------------------------------ the operations of the document

interface Parameter {
  name: string;
  in: 'path' | 'query';
  required: boolean;
  schema: Json;
}

interface Operation {
  method: string;
  path: string;
  id: string;
  tags: string[];
  /** What credential the operation takes: none, a client's session, a staff session, an API key (the equity: either of the last two). */
  credentials: ('client' | 'staff' | 'apiKey')[];
  parameters: Parameter[];
  body: Json | undefined;
  validateBody: ValidateFunction | undefined;
  validateParameter: Map<string, ValidateFunction>;
}

const STAFF_TAGS = ['help desk', 'admin'];

function operationsOf(document: Json): Operation[] {
  const ajv = openApiAjv(document);
  return Object.entries<Json>(document.paths).flatMap(([path, item]) =>
    Object.entries<Json>(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, op]) => {
        const schemes = new Set<string>((op.security ?? []).flatMap((requirement: Json) => Object.keys(requirement)));
        const tags: string[] = op.tags ?? [];
        const credentials: Operation['credentials'] = [];
        if (schemes.has('bearer') || schemes.has('cookie')) credentials.push(tags.some((t) => STAFF_TAGS.includes(t)) ? 'staff' : 'client');
        if (schemes.has('apiKey')) credentials.push('apiKey');
        const parameters: Parameter[] = (op.parameters ?? []).map((p: Json) => ({ name: p.name, in: p.in, required: Boolean(p.required), schema: p.schema }));
        const body = op.requestBody?.content?.['application/json']?.schema;
        return {
          method: method.toUpperCase(),
          path,
          id: op.operationId as string,
          tags,
          credentials,
          parameters,
          body,
          validateBody: body ? ajv.compile(body) : undefined,
          validateParameter: new Map(parameters.map((p) => [`${p.in}:${p.name}`, ajv.compile(p.schema)])),
        };
      }),
  );
}

// ------------------------------------------------------------------ plausible values from a schema

/** Values tried, in order, for a string with a pattern. */
const PATTERN_CANDIDATES = ['USD', 'ABCD1234', 'abc', 'a', 'A', '1', '12', 'ref-1', '2026-03-01', '2026-03-01T09:30:00Z'];

/** Some fields are better given a value that means something (a country, a number …). */
const NAMED_VALUES: Record<string, unknown> = {
  country: 'US',
  number: '2025550143',
  pin: '1234',
  newPin: '5678',
  currency: 'USD',
  amount: '100.00',
  reference: 'fuzz-1',
  kty: 'EC',
  crv: 'P-256',
  endpoint: 'https://push.example.test/endpoint',
};

/** A value the schema accepts (as far as this simple reading goes): the base the mutations change one thing of. */
function sample(schema: Json, name = ''): unknown {
  if (!schema || typeof schema !== 'object') return 'a';
  if (name in NAMED_VALUES && (schema.type === 'string' || schema.anyOf)) return NAMED_VALUES[name];
  if (schema.const !== undefined) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  if (Array.isArray(schema.anyOf)) return sample(schema.anyOf[0], name);
  if (Array.isArray(schema.oneOf)) return sample(schema.oneOf[0], name);
  switch (schema.type) {
    case 'object':
      return Object.fromEntries(((schema.required ?? []) as string[]).map((key) => [key, sample(schema.properties?.[key], key)]));
    case 'array':
      return schema.minItems ? Array.from({ length: schema.minItems }, () => sample(schema.items)) : [sample(schema.items)];
    case 'integer':
    case 'number':
      return Math.max(schema.minimum ?? 1, 1);
    case 'boolean':
      return true;
    case 'null':
      return null;
    default: {
      if (schema.pattern) {
        const pattern = new RegExp(schema.pattern);
        const found = PATTERN_CANDIDATES.find((c) => pattern.test(c));
        if (found) return found;
      }
      return 'a'.repeat(Math.max(schema.minLength ?? 1, 1));
    }
  }
}

/** Every property of a body schema, nested objects and array items included: its path, schema and whether its parent requires it. */
function fieldsOf(schema: Json, at: (string | number)[] = []): { at: (string | number)[]; schema: Json; required: boolean }[] {
  if (schema?.type !== 'object' || !schema.properties) return [];
  return Object.entries<Json>(schema.properties).flatMap(([key, child]) => {
    const here = [...at, key];
    const nested =
      child.type === 'object' ? fieldsOf(child, here) : child.type === 'array' && child.items?.type === 'object' ? fieldsOf(child.items, [...here, 0]) : [];
    return [{ at: here, schema: child, required: ((schema.required ?? []) as string[]).includes(key) }, ...nested];
  });
}

const clone = <T>(value: T): T => (value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T));

/** The base body with the value at `at` set (or removed, for undefined); the parents made as the base has them. */
function withField(base: Json, at: (string | number)[], value: unknown, remove = false): Json {
  const body = clone(base);
  let node = body;
  for (const key of at.slice(0, -1)) {
    if (node[key] === undefined || node[key] === null || typeof node[key] !== 'object') node[key] = typeof key === 'number' ? [] : {};
    node = node[key];
  }
  const last = at.at(-1)!;
  if (remove) delete node[last];
  else node[last] = value;
  return body;
}

// ------------------------------------------------------------------ the bad requests of an operation

interface BadRequest {
  op: Operation;
  what: string;
  /** Path parameters as written in the URL; missing ones take the context's real values. */
  path: Record<string, string>;
  query: string;
  /** The body as sent (JSON text), or undefined for none. */
  payload: string | undefined;
  /** Whether the document's schemas refuse it, or its path names nothing: then it must be refused. */
  refused: boolean;
  /** Sent without credentials only (with them it would do what the route does: a logout …). */
  anonymousOnly?: boolean;
}

/** JSON text, with lone surrogates as escapes (as JSON.stringify writes them). */
const json = (value: unknown): string => JSON.stringify(value);

function queryString(pairs: [string, string][]): string {
  return pairs.length === 0 ? '' : `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`;
}

/** A query value as written in a URL; a lone surrogate cannot be, so it goes as the bytes of one (not UTF-8). */
function encodeQueryValue(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return '%ED%A0%80';
  }
}

function badRequests(op: Operation): BadRequest[] {
  const out: BadRequest[] = [];
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const queryParams = op.parameters.filter((p) => p.in === 'query');
  const baseQuery: [string, string][] = queryParams.filter((p) => p.required).map((p) => [p.name, encodeQueryValue(String(sample(p.schema, p.name)))]);
  const baseBody = op.body ? sample(op.body) : undefined;
  const basePayload = baseBody === undefined ? undefined : json(baseBody);
  const bodyValid = (body: unknown) => (op.validateBody ? op.validateBody(body) : body === undefined);
  const queryValid = (name: string, value: unknown) => op.validateParameter.get(`query:${name}`)!(value);

  // the body as a whole; a route without a body is given one only where its path names nothing (so nothing happens)
  const unknownPath = Object.fromEntries(pathParams.map((p) => [p.name, `${ID_PREFIXES[0]}_${'b'.repeat(26)}`]));
  // (a bare POST of a session, such as the logout, reads no body: it is given one without credentials only)
  const bare = !op.body && pathParams.length === 0;
  for (const [what, payload] of BODY_SHAPES) {
    if (op.method === 'GET' || (!op.body && payload === undefined) || (bare && op.credentials.length === 0)) continue;
    const value = payload === undefined ? undefined : JSON.parse(payload);
    out.push({
      op,
      what: `body: ${what}`,
      path: op.body ? {} : unknownPath,
      query: queryString(baseQuery),
      payload,
      refused: op.body ? !bodyValid(value) : true,
      ...(bare ? { anonymousOnly: true } : {}),
    });
  }
  if (op.body) {
    out.push({
      op,
      what: 'body: an unknown extra field',
      path: {},
      query: queryString(baseQuery),
      payload: json({ ...(baseBody as Json), zzUnknown: 1 }),
      refused: !bodyValid({ ...(baseBody as Json), zzUnknown: 1 }),
    });
    out.push({
      op,
      what: 'body: __proto__',
      path: {},
      query: queryString(baseQuery),
      payload: `{"__proto__":{"admin":true},${(basePayload ?? '{}').slice(1)}`.replace(/,}$/, '}'),
      refused: true,
    });
    for (const field of fieldsOf(op.body)) {
      const name = field.at.join('.');
      if (field.required) {
        const body = withField(baseBody, field.at, undefined, true);
        out.push({ op, what: `${name}: removed`, path: {}, query: queryString(baseQuery), payload: json(body), refused: !bodyValid(body) });
      }
      const values: [string, unknown][] = [...TYPED_VALUES, ...HOSTILE_STRINGS];
      if (typeof field.schema.maxLength === 'number' && field.schema.maxLength < 10_000) {
        values.push(['at its maximum length', 'a'.repeat(field.schema.maxLength)], ['one over its maximum length', 'a'.repeat(field.schema.maxLength + 1)]);
      }
      for (const [what, value] of values) {
        const body = withField(baseBody, field.at, value);
        out.push({ op, what: `${name}: ${what}`, path: {}, query: queryString(baseQuery), payload: json(body), refused: !bodyValid(body) });
      }
    }
  }
  // path parameters: nothing they name exists (or is the client's), so every one is refused
  for (const param of pathParams) {
    for (const [what, value] of PATH_VALUES) {
      out.push({ op, what: `path ${param.name}: ${what}`, path: { [param.name]: value }, query: queryString(baseQuery), payload: basePayload, refused: true });
    }
    if (param.name === 'deviceId' && op.credentials.includes('client')) {
      out.push({
        op,
        what: `path ${param.name}: another user's device`,
        path: { [param.name]: ANOTHER_USERS_DEVICE },
        query: queryString(baseQuery),
        payload: basePayload,
        refused: true,
      });
    }
  }
  // query parameters
  for (const param of queryParams) {
    const others = baseQuery.filter(([name]) => name !== param.name);
    if (param.required) out.push({ op, what: `query ${param.name}: missing`, path: {}, query: queryString(others), payload: basePayload, refused: true });
    for (const [what, value] of HOSTILE_STRINGS) {
      out.push({
        op,
        what: `query ${param.name}: ${what}`,
        path: {},
        query: queryString([...others, [param.name, encodeQueryValue(value)]]),
        payload: basePayload,
        refused: !queryValid(param.name, value),
      });
    }
    out.push({
      op,
      what: `query ${param.name}: repeated`,
      path: {},
      query: queryString([...others, [param.name, 'a'], [param.name, 'b']]),
      payload: basePayload,
      refused: true,
    });
    out.push({
      op,
      what: `query ${param.name}: invalid UTF-8`,
      path: {},
      query: queryString([...others, [param.name, '%ED%A0%80']]),
      payload: basePayload,
      refused: !queryValid(param.name, '\ufffd\ufffd\ufffd'),
    });
  }
  if (op.method === 'GET')
    out.push({
      op,
      what: 'query: an unknown parameter',
      path: {},
      query: queryString([...baseQuery, ['zzUnknown', '%00']]),
      payload: undefined,
      refused: false,
    });
  return out;
}

// ------------------------------------------------------------------ sending and judging

// ------------------------------------------------------------------ the pages

/** A route pattern as a regular expression over paths (`:name` a segment). */
const patternOf = (url: string): RegExp => new RegExp(`^${url.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&').replace(/:[A-Za-z0-9_]+/g, '[^/]+')}$`);

/** Form field values, written as a browser would (a lone surrogate cannot be: it goes as bytes that are not UTF-8). */
const WEB_VALUES: [string, string][] = [
  ...HOSTILE_STRINGS.filter(([what]) => !what.startsWith('lone')).map(([what, value]): [string, string] => [what, encodeURIComponent(value)]),
  ['invalid UTF-8', '%ED%A0%80'],
  ['bad escape', '%zz'],
];

/** Path parameters of the pages: a few of the API's. */
const WEB_PATH_VALUES = PATH_VALUES.filter(([what]) =>
  ['%00', '..%2f', 'invalid UTF-8', 'unicode', 'over-long (300 characters)', 'unknown flw_ id', 'bad escape'].includes(what),
);

/** The fields of a form and the value each has in the page (the first option of a choice). */
function fieldsOfForm(inner: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const tag of ['input', 'select', 'textarea']) {
    for (const control of elements(inner, tag)) {
      const name = control.attrs.name;
      if (!name || name === '_csrf' || fields.has(name) || ['submit', 'button'].includes(control.attrs.type ?? '')) continue;
      fields.set(name, tag === 'select' ? (elements(control.inner, 'option')[0]?.attrs.value ?? '') : tag === 'textarea' ? '' : (control.attrs.value ?? ''));
    }
  }
  return fields;
}

/** A url-encoded body: the pairs as given (already encoded). */
const formBody = (pairs: [string, string][]): string => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${v}`).join('&');

/** Whether an answer used up (or found gone) the thing its path named: a success, a flow over or expired, a wrong answer counted. */
function usedUp(answer: Answer): boolean {
  if (answer === 'timeout' || answer.statusCode < 400) return true;
  const code = String((JSON.parse(answer.body || 'null') as Json)?.error?.code);
  return /^FLOW_|_NOT_FOUND$|_EXPIRED$|^LOGIN_FAILED$/.test(code);
}

// ------------------------------------------------------------------ the test

interface Person {
  user: User;
  card: CardFile;
  role: 'client' | 'admin';
  token: string;
}

describe.each(DATABASES)('bad input on every route on %s (X3, I2)', (database) => {
  let h: Harness;
  let document: Json;
  let operations: Operation[];
  let staff: Person;
  /** Whose state the refused requests must leave alone: the client C acting, the target T of staff. */
  let client: Person;
  let target: Person;
  /** Who the accepted-shape requests act as and on: their state may change. */
  let victim: Person;
  let apiKey: string;

  /** A stepped-up session of the user with the card, or null when the card no longer logs in (a request reported it lost …). */
  async function signIn(user: User, card: CardFile): Promise<string | null> {
    await h.services.lockout.reset(user.username);
    const [cardDevice] = (await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'dscplus' && d.state === 'active');
    if (!cardDevice || user.status !== 'active') return null;
    let started = await startLogin(h.app, user.username);
    if (started.status !== 200) return null;
    // a request may have given the user another device, offered first: the card, by its id
    if (started.body.device?.id !== cardDevice.id)
      started = await postJson(h.app, `/api/v1/login/${started.body.id as string}`, { device: cardDevice.id }, claimOf(started));
    const done = await answer(h.app, started.body.id, cardAnswer(card, started.body.challenge.question));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    // V1 (decision 0042): the step-up replaced the session's token
    return (await stepUp(h.app, bearer(done.body.session.token as string), (challenge) => cardAnswer(card, challenge.question as string))).body.session
      .token as string;
  }

  async function person(role: 'client' | 'admin' = 'client'): Promise<Person> {
    const { user, card } = await createUserWithCard(h.services, '1234', role === 'admin' ? { role } : {});
    return { user, card, role, token: (await signIn(user, card))! };
  }

  /**
   * The person with a working session, stepped up within the last minutes:
   * the same (signed in again if a request ended their session or locked
   * them), or one made anew when their card no longer logs in.
   */
  async function fresh(p: Person): Promise<Person> {
    const session = await get(h.app, '/api/v1/session', bearer(p.token));
    const verifiedAt = session.status === 200 && session.body.verifiedAt ? Date.parse(session.body.verifiedAt) : 0;
    if (verifiedAt > h.clock.now() - h.services.config.policy.stepUpFreshMs + 60_000) return p;
    const user = await h.services.users.get(p.user.id);
    const token = await signIn(user, p.card);
    return token ? { ...p, user, token } : person(p.role);
  }

  beforeAll(async () => {
    h = await startHarness(database);
    document = (await get(h.app, '/api/openapi.json')).body;
    operations = operationsOf(document);
    staff = await person('admin');
    client = await person();
    target = await person();
    victim = await person();
    apiKey = (await h.services.apiKeys.create({ name: 'fuzz', scopes: ['withdrawals', 'accounts'] }, 'test')).key;
  }, 60_000);
  afterAll(async () => h?.close());

  /** The real values of path parameters for a context: the acting client's own things, or the target's of staff. */
  async function realPath(op: Operation, actor: Person, on: Person): Promise<Record<string, string>> {
    const [device] = await h.services.devices.listForUser((op.credentials.includes('client') ? actor : on).user.id);
    const values: Record<string, string> = {
      username: on.user.username,
      number: on.user.accountNumber,
      deviceId: device!.id,
    };
    return Object.fromEntries(op.parameters.filter((p) => p.in === 'path').map((p) => [p.name, values[p.name] ?? `${ID_PREFIXES[0]}_${'c'.repeat(26)}`]));
  }

  function url(op: Operation, path: Record<string, string>, query: string): string {
    return op.path.replace(/\{([^}]+)\}/g, (_, name: string) => path[name] ?? '') + query;
  }

  /** The credentials a request is sent with: none, and the operation's own (the headers of the acting client, staff member or key). */
  function credentialsOf(op: Operation): [string, (actor: Person) => Record<string, string>][] {
    const sets: [string, (actor: Person) => Record<string, string>][] = [['no credentials', () => ({})]];
    for (const kind of op.credentials) {
      if (kind === 'apiKey') sets.push(['an API key', () => bearer(apiKey)]);
      else if (kind === 'staff') sets.push(['a staff session', () => bearer(staff.token)]);
      else sets.push(['a client session', (actor) => bearer(actor.token)]);
    }
    return sets;
  }

  /**
   * What makes the thing the last path parameter of `op` names: the
   * operation of the document that does (POST on the path before it,
   * answering its `id`), or a security key registered as a browser would.
   */
  function makerOf(op: Operation): { maker: Operation | 'security key'; param: string } | null {
    const found = /^(.*)\/\{([^}]+)\}[^{]*$/.exec(op.path);
    if (found?.[2] === 'keyId') return { maker: 'security key', param: 'keyId' };
    const maker = found ? operations.find((o) => o.method === 'POST' && o.path === found[1]) : undefined;
    return found && maker ? { maker, param: found[2]! } : null;
  }

  let phones = 0;
  /**
   * The resource a path names, made for real by its maker, as the actor: a
   * login flow, a step-up, a PIN change, a phone, an authenticator
   * activation …; null where the maker refuses (a sharing needs an owner).
   */
  async function make(op: Operation, actor: Person): Promise<Record<string, string> | null> {
    const found = makerOf(op);
    if (!found) return null;
    const { maker, param } = found;
    if (maker === 'security key') {
      return { keyId: await registerSecurityKey(h.app, bearer(actor.token), new SoftwareAuthenticator(), relyingPartyOf(h.services.config)) };
    }
    phones += 1;
    const real: Record<string, unknown> = {
      username: actor.user.username,
      password: PASSWORD,
      app: 'portal',
      purpose: 'activate',
      country: 'FR',
      number: `6${String(20_000_000 + phones)}`,
    };
    const body = maker.body ? { ...(sample(maker.body) as Json) } : undefined;
    for (const key of Object.keys(body ?? {})) if (key in real) body[key] = real[key];
    const answer = await within(h.app, {
      method: 'POST',
      url: url(maker, await realPath(maker, actor, actor), ''),
      headers: { ...(maker.credentials.includes('client') ? bearer(actor.token) : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { payload: json(body) } : {}),
    });
    if (answer === 'timeout' || answer.statusCode >= 300) return null;
    const id = JSON.parse(answer.body).id;
    return typeof id === 'string' ? { [param]: id } : null;
  }

  async function send(
    op: Operation,
    bad: BadRequest,
    actor: Person,
    on: Person,
    headers: Record<string, string>,
    made: Record<string, string> | null = null,
  ): Promise<Answer> {
    const path = { ...(await realPath(op, actor, on)), ...(made ?? {}), ...bad.path };
    for (const [name, value] of Object.entries(path)) {
      if (value === ANOTHER_USERS_DEVICE) path[name] = (await h.services.devices.listForUser(on.user.id))[0]!.id;
    }
    return within(h.app, {
      method: op.method as 'POST',
      url: url(op, path, bad.query),
      headers: { ...(bad.payload === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(bad.payload === undefined ? {} : { payload: bad.payload }),
    });
  }

  /** What refused requests must leave alone: the users' rows and everything of theirs. */
  async function stateOf(people: Person[], counters = true): Promise<Json> {
    const db = h.services.store.db;
    const ids = people.map((p) => p.user.id);
    // the lock's rows are keyed by the username's keyed digest (L3, X1)
    const lockKeys = people.map((p) => h.services.audit.usernameDigest(p.user.username));
    const accounts = people.map((p) => p.user.accountId);
    const byId = <T extends object>(rows: T[], key = 'id') => [...rows].sort((a: Json, b: Json) => String(a[key]).localeCompare(String(b[key])));
    const devices = byId(await db.selectFrom('devices').selectAll().where('user_id', 'in', ids).execute());
    const deviceIds = devices.map((d) => d.id as string);
    return {
      users: byId(await db.selectFrom('users').selectAll().where('id', 'in', ids).execute()),
      accounts: byId(await db.selectFrom('accounts').selectAll().where('id', 'in', accounts).execute()),
      devices,
      sessions: byId(
        await db
          .selectFrom('sessions')
          .select(['id', 'user_id', 'app', 'revoked_at', 'verified_at', 'scope', 'expires_at', 'device_id'])
          .where('user_id', 'in', ids)
          .execute(),
      ),
      phones: byId(await db.selectFrom('phones').selectAll().where('user_id', 'in', ids).execute()),
      ...(counters
        ? {
            lockouts: byId(await db.selectFrom('lockouts').selectAll().where('username', 'in', lockKeys).execute(), 'username'),
            failures: byId(await db.selectFrom('login_failures').selectAll().where('username', 'in', lockKeys).execute()),
          }
        : {}),
      verifications: byId(await db.selectFrom('identity_verifications').selectAll().where('user_id', 'in', ids).execute()),
      sharings: byId(
        await db
          .selectFrom('device_sharings')
          .selectAll()
          .where((eb) => eb.or([eb('requester_id', 'in', ids), eb('owner_id', 'in', ids)]))
          .execute(),
      ),
      optOuts: byId(await db.selectFrom('opt_outs').selectAll().where('user_id', 'in', ids).execute(), 'user_id'),
      withdrawals: byId(await db.selectFrom('withdrawals').selectAll().where('account_id', 'in', accounts).execute()),
      pushSubscriptions:
        deviceIds.length === 0 ? [] : byId(await db.selectFrom('push_subscriptions').selectAll().where('device_id', 'in', deviceIds).execute(), 'device_id'),
    };
  }

  it('X3: a NUL or half of a surrogate pair in any text (a path parameter, the query, a JSON field or key, a form field) is refused with 400 VALIDATION_ERROR naming the field, before the route reads it, on SQLite as on PostgreSQL (which cannot store a NUL)', async () => {
    staff = await fresh(staff);
    victim = await fresh(victim);
    const asStaff = bearer(staff.token);
    const refused = async (method: string, url: string, payload: unknown, headers: Record<string, string>, field: string) => {
      const res = await h.app.inject({
        method: method as 'POST',
        url,
        headers: { ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(payload === undefined ? {} : { payload: json(payload) }),
      });
      expect([url, res.statusCode, res.json().error.code]).toEqual([url, 400, 'VALIDATION_ERROR']);
      expect(res.json().error.message).toBe(`“${field}” holds a character that is not text (NUL, or half of a surrogate pair): remove it and send again.`);
    };
    const before = await stateOf([target]);
    await refused('GET', '/api/v1/helpdesk/users?q=a%00', undefined, asStaff, 'q');
    await refused('GET', `/api/v1/helpdesk/users/${target.user.username}%00`, undefined, asStaff, 'username');
    await refused('POST', `/api/v1/helpdesk/users/${target.user.username}/verifications`, { method: 'id_document', notes: 'seen\u0000' }, asStaff, 'notes');
    await refused('POST', `/api/v1/helpdesk/users/${target.user.username}/lock`, { reason: 'fraud \ud83d' }, asStaff, 'reason');
    await refused('POST', '/api/v1/mobile/requests', { devices: [{ deviceId: 'dev_a\u0000', token: 't' }] }, {}, 'devices.0.deviceId');
    await refused('POST', '/api/v1/login', { username: 'a', password: 'b', app: 'portal', 'x\udc00': 1 }, {}, 'body');
    expect(await stateOf([target])).toEqual(before);
    // in the language asked for
    const fr = await h.app.inject({ method: 'GET', url: '/api/v1/helpdesk/users?q=%00', headers: { ...asStaff, 'accept-language': 'fr' } });
    expect(fr.json().error.message).toContain('« q »');
    // a page: its error page, with the code
    const browser = await browserOf(victim);
    const [device] = await h.services.devices.listForUser(victim.user.id);
    const page = await browser.agent.post(`/devices/${device!.id}%00/lost`, { _csrf: browser.csrf, reason: 'lost' });
    expect([page.status, alertBox(page.html)?.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect((await h.services.devices.get(device!.id)).state).toBe('active');
    // text with emoji and right-to-left marks is text
    const note = await h.app.inject({
      method: 'POST',
      url: `/api/v1/helpdesk/users/${victim.user.username}/verifications`,
      headers: { ...asStaff, 'content-type': 'application/json' },
      payload: json({ method: 'id_document', notes: 'passport 👍🏽 \u202eok' }),
    });
    expect(note.statusCode).toBe(200);
  });

  it("X2, X3: a request its schemas refuse is told why in the language asked for, each field's path (as zod names it) with its reason from the translation files: the code, the status and the shape of the answer unchanged", async () => {
    const send = async (url: string, payload: string | undefined, language: string, headers: Record<string, string> = {}) => {
      const res = await h.app.inject({
        method: 'POST',
        url,
        headers: { ...headers, 'accept-language': language, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(payload === undefined ? {} : { payload }),
      });
      expect([url, res.statusCode, Object.keys(res.json().error).sort(), res.json().error.code]).toEqual([
        url,
        400,
        ['code', 'message', 'requestId'],
        'VALIDATION_ERROR',
      ]);
      return res.json().error.message as string;
    };
    const tell = (language: string) =>
      Promise.all([
        send('/api/v1/login', '{}', language),
        send('/api/v1/login', json({ username: 5, password: 'a'.repeat(1025), app: 'portal' }), language),
        send('/api/v1/login', '[1]', language),
        send('/api/v1/withdrawals/check', json({ account: 'acc 1', amount: 10, currency: 'USD' }), language, bearer(apiKey)),
      ]);
    expect(await tell('fr-FR,fr;q=0.9')).toEqual([
      "La requête n'est pas valide : /username : obligatoire ; /password : obligatoire ; /app : doit être l'une des valeurs portal, trading",
      "La requête n'est pas valide : /username : doit être du texte ; /password : 1024 caractères au plus",
      "La requête n'est pas valide : / : doit être un objet",
      "La requête n'est pas valide : /account : 4 à 16 lettres majuscules ou chiffres",
    ]);
    expect(await tell('zh-TW')).toEqual([
      '請求無效：/username：必須提供；/password：必須提供；/app：須為以下其中之一：portal, trading',
      '請求無效：/username：須為文字；/password：最多 1024 個字元',
      '請求無效：/：須為物件',
      '請求無效：/account：須為 4 至 16 個大寫字母或數字',
    ]);
    expect(await tell('en')).toEqual([
      'The request is not valid: /username: required; /password: required; /app: must be one of portal, trading',
      'The request is not valid: /username: must be text; /password: at most 1024 characters',
      'The request is not valid: /: must be an object',
      'The request is not valid: /account: 4 to 16 upper-case letters or digits',
    ]);
  });

  it('X3, I2: every operation of the OpenAPI document is sent its bad requests', () => {
    expect(operations.length).toBeGreaterThan(70);
    expect(operations.filter((op) => badRequests(op).length === 0).map((op) => `${op.method} ${op.path}`)).toEqual([]);
  });

  it('X3, I2: bad input the document refuses, or a path that names nothing, is answered 4xx with a stable error code and a message, unauthenticated or with a session of the right kind; the users named are unchanged', async () => {
    const before = await stateOf([client, target, staff]);
    const problems: string[] = [];
    let sent = 0;
    for (const op of operations) {
      const requests = badRequests(op);
      for (const [who, headers] of credentialsOf(op)) {
        // without the credentials a route needs, any request is refused
        const refusedAll = who === 'no credentials' && op.credentials.length > 0;
        for (const bad of requests) {
          if ((bad.anonymousOnly && who !== 'no credentials') || !(bad.refused || refusedAll)) continue;
          const answer = await send(op, bad, client, target, headers(client));
          sent += 1;
          const problem = apiProblem(answer, true);
          if (problem) problems.push(`${op.method} ${op.path} (${who}) ${bad.what}: ${problem}`);
        }
      }
    }
    expect(problems.slice(0, 60), `${problems.length} of ${sent} answers`).toEqual([]);
    expect(sent).toBeGreaterThan(5000);
    expect(await stateOf([client, target, staff])).toEqual(before);
  }, 240_000);

  it('X3: values the document accepts but which are hostile (NUL, lone surrogates, right-to-left marks, at the maximum length …) reach the handlers and never meet a 5xx or a hang; every refusal has a stable code', async () => {
    const problems: string[] = [];
    let sent = 0;
    for (const op of operations) {
      const requests = badRequests(op).filter((r) => !r.refused);
      if (requests.length === 0) continue;
      victim = await fresh(victim);
      staff = await fresh(staff);
      // where the path names a thing the document can make (a login flow, a step-up …), the values go to a real one, of a user of its own
      const makes = makerOf(op) !== null;
      let actor = makes ? await person() : victim;
      let made: Record<string, string> | null = null;
      let makings = 0;
      let failed = true;
      const verificationId =
        op.credentials.includes('staff') && op.body?.properties?.verificationId
          ? (await h.services.helpDesk.verifyIdentity(staff.user.id, victim.user.username, { method: 'id_document' })).id
          : null;
      // what the requests named, unchanged where every one was refused (the failures counted and the locks they made aside)
      const before = makes ? null : await stateOf([actor], false);
      let accepted = false;
      for (const [who, headers] of credentialsOf(op)) {
        if (who === 'no credentials' && op.credentials.length > 0) continue; // refused, above
        for (const bad of requests) {
          // wrong passwords and answers lock a username: reset after each, so that each value reaches the check it is meant for
          if (failed) for (const username of [actor.user.username, 'a']) await h.services.lockout.reset(username);
          if (makes && made === null) {
            // a user starts so many flows an hour: another user now and then
            if (makings > 0 && makings % 8 === 0) actor = await person();
            made = await make(op, actor);
            makings += 1;
          }
          // a help desk action names the caller's identity verification: a real one (its id for the sample "a")
          const payload = verificationId ? bad.payload?.replace('"verificationId":"a"', `"verificationId":"${verificationId}"`) : bad.payload;
          const answer = await send(op, { ...bad, payload }, actor, actor, headers(actor), made);
          // a new one for the next request where this one used it up
          if (made && usedUp(answer)) made = null;
          failed = answer === 'timeout' || answer.statusCode === 401 || answer.statusCode === 423;
          accepted ||= answer !== 'timeout' && answer.statusCode < 400;
          sent += 1;
          const problem = apiProblem(answer, false);
          if (problem) problems.push(`${op.method} ${op.path} (${who}) ${bad.what}: ${problem}`);
        }
      }
      if (before && !accepted) {
        const after = await stateOf([actor], false);
        const changed = Object.keys(after).filter((table) => !isDeepStrictEqual(after[table], before[table]));
        if (changed.length > 0) problems.push(`${op.method} ${op.path}: every request refused, yet ${changed.join(', ')} changed`);
      }
    }
    expect(problems.slice(0, 60), `${problems.length} of ${sent} answers`).toEqual([]);
    expect(sent).toBeGreaterThan(1000);
  }, 240_000);

  it('X3: bad headers (credentials of the wrong form, a broken cookie, a garbled Accept-Language or time zone, another character set, a forged request id) on every operation: 4xx where the operation needs credentials, never a 5xx or a hang', async () => {
    const problems: string[] = [];
    let sent = 0;
    for (const op of operations) {
      const [bad] = badRequests(op).filter((r) => r.what === 'body: an unknown extra field' || r.what === 'query: an unknown parameter');
      for (const [what, headers] of BAD_HEADERS) {
        const answer = await send(op, bad ?? { op, what, path: {}, query: '', payload: undefined, refused: false }, client, target, headers);
        sent += 1;
        const problem = apiProblem(answer, op.credentials.length > 0);
        if (problem) problems.push(`${op.method} ${op.path} ${what}: ${problem}`);
      }
    }
    expect(problems.slice(0, 60), `${problems.length} of ${sent} answers`).toEqual([]);
  });

  /** A browser signed in with the person's session, and a CSRF token of that session. */
  async function browserOf(p: Person): Promise<{ agent: Agent; csrf: string }> {
    const agent = new Agent(h.app);
    agent.jar.set(SESSION_COOKIE, p.token);
    const page = await agent.get('/step-up?next=/account');
    const csrf = elements(forms(page.html)[0]?.inner ?? '', 'input').find((i) => i.attrs.name === '_csrf')?.attrs.value;
    expect(csrf, `a CSRF token on the step-up page: ${page.status}`).toBeTruthy();
    return { agent, csrf: csrf! };
  }

  /** The real values of the pages' path parameters: the web client's own things; unknown ids for the rest. */
  async function realWebPath(url: string, on: Person): Promise<string> {
    const [device] = await h.services.devices.listForUser(on.user.id);
    const flowId = url.startsWith('/step-up') ? webThings.stepUpFlowId : webThings.loginFlowId;
    const values: Record<string, string | undefined> = { username: on.user.username, deviceId: device!.id, size: '192', ...webThings, flowId };
    return url.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => values[name] ?? `${name === 'verificationId' ? 'ver' : 'flw'}_${'d'.repeat(26)}`);
  }

  /** What the pages' paths name, made for real for the web client: a phone, a security key, an identity verification, an OpenID client, a login and a step-up. */
  let webThings: Record<string, string> = {};

  async function makeWebThings(p: Person): Promise<void> {
    phones += 1;
    const phone = await h.services.phones.add(p.user.id, { country: 'FR', number: `6${String(30_000_000 + phones)}` }, 'test', null);
    const keyId = await registerSecurityKey(h.app, bearer(p.token), new SoftwareAuthenticator(), relyingPartyOf(h.services.config));
    const verification = await h.services.helpDesk.verifyIdentity(staff.user.id, p.user.username, { method: 'id_document' });
    const { client } = await h.services.oidc.clients.create(
      { name: 'Fuzzed', app: 'portal', redirectUris: ['https://rp.example.test/cb'], public: true },
      'test',
    );
    webThings = { phoneId: phone.id, keyId, verificationId: verification.id, clientId: client.clientId };
    await makeWebFlow(p, '/login/:flowId');
    await makeWebFlow(p, '/step-up/:flowId');
  }

  /** A new login flow, or a step-up of the web client's session, for the pages under `url`. */
  async function makeWebFlow(p: Person, url: string): Promise<void> {
    if (url.startsWith('/step-up/')) webThings.stepUpFlowId = (await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, bearer(p.token))).body.id;
    else if (url.startsWith('/login/')) webThings.loginFlowId = (await startLogin(h.app, p.user.username)).body.id;
  }

  it('X3: every form of the pages (each POST route of the app, from its route table) answers bad fields, over-long values and bad path parameters, sent with a valid CSRF token and a session, with a page of its error or a redirect: never a 5xx', async () => {
    let webClient = await person();
    const routes = routesOf(h.app);
    const posts = routes.filter((r) => r.method === 'POST' && !r.url.startsWith('/api/') && !r.url.includes('*'));
    const pages = routes.filter(
      (r) => r.method === 'GET' && !r.url.startsWith('/api/') && !r.url.includes('*') && !/^\/(dev|app|oidc|\.well-known)\b/.test(r.url),
    );
    expect(posts.length).toBeGreaterThan(40);

    // the forms the pages show, by the POST route they go to
    await makeWebThings(webClient);
    const fieldsOf = new Map<string, Map<string, string>>();
    const client = await browserOf(webClient);
    const staffBrowser = await browserOf(staff);
    for (const page of pages) {
      const shown = await (page.url.startsWith('/helpdesk') ? staffBrowser : client).agent.get(await realWebPath(page.url, webClient));
      for (const form of forms(shown.html)) {
        const action = (form.attrs.action ?? '').split('?')[0]!;
        const route = posts.find((r) => patternOf(r.url).test(action));
        if (!route) continue;
        const known = fieldsOf.get(route.url) ?? new Map<string, string>();
        for (const [name, value] of fieldsOfForm(form.inner)) if (!known.has(name)) known.set(name, value);
        fieldsOf.set(route.url, known);
      }
    }
    expect(fieldsOf.size).toBeGreaterThan(25);
    // a route whose form no page showed here (it needs a state: a verification, a sharing …) is given every field name of the pages
    const everyName = [...new Set([...fieldsOf.values()].flatMap((fields) => [...fields.keys()]))];

    const problems: string[] = [];
    let sent = 0;
    for (const route of posts) {
      webClient = await fresh(webClient);
      staff = await fresh(staff);
      // a flow of its own for each route under one (the bad answers use it up)
      await makeWebFlow(webClient, route.url);
      const { agent, csrf } = await browserOf(route.url.startsWith('/helpdesk') ? staff : webClient);
      const url = await realWebPath(route.url, webClient);
      const fields = fieldsOf.get(route.url);
      const base: [string, string][] = fields ? [...fields].map(([name, value]) => [name, encodeURIComponent(value)]) : [];
      const requests: [string, string, [string, string][]][] = [
        ['only the CSRF token', url, []],
        ['an unknown field', url, [...base, ['zzUnknown', 'x']]],
      ];
      if (fields) {
        for (const name of fields.keys()) {
          const others = base.filter(([n]) => n !== name);
          for (const [what, value] of WEB_VALUES) requests.push([`${name}: ${what}`, url, [...others, [name, value]]]);
          requests.push([`${name}: repeated`, url, [...others, [name, 'a'], [name, 'b']]]);
        }
      } else {
        for (const [what, value] of WEB_VALUES)
          requests.push([
            `every field: ${what}`,
            url,
            everyName.map((name): [string, string] => [name, what.startsWith('over-long') ? 'a'.repeat(1_000) : value]),
          ]);
        requests.push([
          'every field repeated',
          url,
          everyName.flatMap((name): [string, string][] => [
            [name, 'a'],
            [name, 'b'],
          ]),
        ]);
      }
      for (const param of route.url.match(/:[A-Za-z0-9_]+/g) ?? []) {
        for (const [what, value] of WEB_PATH_VALUES) {
          const bad = await realWebPath(route.url.replace(param, value), webClient);
          requests.push([`path ${param}: ${what}`, bad, base]);
        }
      }
      for (const [what, target, pairs] of requests) {
        const answer = await within(h.app, {
          method: 'POST',
          url: target,
          cookies: Object.fromEntries(agent.jar),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: formBody([['_csrf', encodeURIComponent(csrf)], ...pairs]),
        });
        sent += 1;
        // wrong passwords lock the user: unlocked, so that each value reaches the check it is meant for
        if (answer === 'timeout' || answer.statusCode === 401 || answer.statusCode === 423) await h.services.lockout.reset(webClient.user.username);
        const problem = pageProblem(answer, target);
        if (problem) problems.push(`POST ${route.url} ${what}: ${problem}`);
      }
    }
    expect(problems.slice(0, 60), `${problems.length} of ${sent} answers`).toEqual([]);
    expect(sent).toBeGreaterThan(1000);
  }, 240_000);

  it('X3: every page (each GET route of the app but the API) answers bad path parameters and hostile query values, with a session, with a page of its error or a redirect: never a 5xx', async () => {
    let webClient = await person();
    await makeWebThings(webClient);
    const pages = routesOf(h.app).filter((r) => r.method === 'GET' && !r.url.startsWith('/api/') && !r.url.includes('*'));
    expect(pages.length).toBeGreaterThan(25);
    const problems: string[] = [];
    let sent = 0;
    for (const page of pages) {
      webClient = await fresh(webClient);
      staff = await fresh(staff);
      const { agent } = await browserOf(page.url.startsWith('/helpdesk') ? staff : webClient);
      const url = await realWebPath(page.url, webClient);
      const targets: [string, string][] = WEB_VALUES.map(([what, value]) => [`query: ${what}`, `${url}?next=${value}&lang=${value}&q=${value}&done=${value}`]);
      for (const param of page.url.match(/:[A-Za-z0-9_]+/g) ?? []) {
        for (const [what, value] of WEB_PATH_VALUES) targets.push([`path ${param}: ${what}`, await realWebPath(page.url.replace(param, value), webClient)]);
      }
      for (const [what, target] of targets) {
        const answer = await within(h.app, { method: 'GET', url: target, cookies: Object.fromEntries(agent.jar) });
        sent += 1;
        const problem = pageProblem(answer, target);
        if (problem) problems.push(`GET ${page.url} ${what}: ${problem}`);
      }
    }
    expect(problems.slice(0, 60), `${problems.length} of ${sent} answers`).toEqual([]);
    expect(sent).toBeGreaterThan(500);
  }, 120_000);

  it('X1, X3: after all of it the audit chain verifies', async () => {
    expect(await h.services.audit.verify()).toMatchObject({ ok: true });
  });
});
