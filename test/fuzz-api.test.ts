/**
 * X3, I2: generated bad input, from a seeded generator, on every operation
 * of the OpenAPI document the app serves and on every form of the pages.
 *
 * test/bad-input.test.ts sends each field a fixed list of values; here a
 * seeded generator (mulberry32: set SLS_FUZZ_SEED to replay a failure; the
 * seed is in every message) mixes what that list lacks: several fields wrong
 * at once, 1 MB strings, nesting thousands deep, arrays for objects, numbers
 * JSON can write but JavaScript cannot hold (1e309, -0, 1e-400, 2^53 + 1),
 * odd Unicode (lone surrogates as JSON escapes, NUL, right-to-left marks,
 * long emoji sequences, combining marks), extra properties at any depth; and
 * what is not a body at all: invalid JSON, an empty body, other content
 * types (form, multipart, text, XML, JSON in another character set), a body
 * on a GET, query parameters repeated, path parameters with `..`, `%00`,
 * over-long or not UTF-8, other methods.
 *
 * Each is sent without credentials and with the credential the operation
 * takes (a stepped-up client session, a stepped-up staff session, an API
 * key). Every answer: never a 5xx, a refusal 4xx with a stable code of
 * src/errors.ts (with that code's status) and a message; what the document
 * refuses is refused; and where every request of an operation was refused,
 * a snapshot of every table of the database (row count and a digest of the
 * rows) is as before, bar the bookkeeping a refusal writes by design.
 *
 * The pages: every POST route of the app not under /api/ is sent, with a
 * session and a valid CSRF token, bodies that are not a form: 1 MB, JSON,
 * multipart, text, empty, bad escapes, the token repeated or nested. Never a
 * 5xx: a 4xx page with its error code, or a redirect.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { sql } from 'kysely';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import { SESSION_COOKIE } from '../src/http/session-cookie.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness, tablesOf } from './support/harness.js';
import { answer, bearer, get, startLogin, stepUp } from './support/api.js';
import { Agent, alertBox, elements, forms } from './support/html.js';
import { openApiAjv } from './support/openapi-check.js';
import { apiProblem, pageProblem, within } from './support/bad-input.js';
import { routesOf } from './support/routes.js';
import { SEED, seededRandom } from './support/seeded.js';

// biome-ignore lint/suspicious/noExplicitAny: the document, its schemas and the bodies made from them are JSON
type Json = any;

/** The seed of the whole run; each operation's generator is seeded from it and the operation's id. */
/** Generated bodies per operation and credential. */
const CASES = 6;
/** Bodies the document accepts, made at random, per operation (they reach the handlers: a password hashed, a row written …). */
const VALID_CASES = 5;
/** Steps of the random walk. */
const WALK_STEPS = 300;
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
const STAFF_TAGS = ['help desk', 'admin'];

// ------------------------------------------------------------------ the seeded generator

class Random {
  private readonly next: () => number;
  /** A stream of its own for each name (SEED and the name, test/support/seeded.ts). */
  constructor(what: string) {
    this.next = seededRandom(what);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

// ------------------------------------------------------------------ bad values

/**
 * A value put in a JSON body: a JavaScript value, or raw JSON text (a number
 * JavaScript cannot hold, a lone surrogate written as an escape).
 */
type Value = { raw: string } | { value: unknown };

const raw = (text: string): Value => ({ raw: text });
const value = (v: unknown): Value => ({ value: v });

const MEGABYTE = 1024 * 1024;

/** Each makes one bad value (what, value); a few are long, so made when picked. */
const BAD_VALUES: [string, () => Value][] = [
  ['null', () => value(null)],
  ['true', () => value(true)],
  ['zero', () => value(0)],
  ['an empty object', () => value({})],
  ['an empty array', () => value([])],
  ['an object', () => value({ a: { b: 'c' } })],
  ['an array of strings', () => value(['a', 'b'])],
  ['an empty string', () => value('')],
  ['a 1 MB string', () => value('a'.repeat(MEGABYTE))],
  ['a string just under the body limit', () => value('b'.repeat(15_000))],
  ['NUL', () => value('a\u0000b')],
  ['a lone high surrogate (escaped)', () => raw('"a\\ud800b"')],
  ['a lone low surrogate (escaped)', () => raw('"\\udfff"')],
  ['right-to-left marks', () => value('\u202e\u200fabc\u2067x\u2069\u061c')],
  ['a long emoji sequence', () => value('👨‍👩‍👧‍👦🏳️‍🌈'.repeat(300))],
  ['combining marks', () => value(`a${'\u0301'.repeat(2_000)}`)],
  ['zero-width and BOM', () => value('\u200b\ufeff\u2060')],
  ['non-characters', () => value('\uffff\ufffe\u{10ffff}')],
  ['"NaN"', () => value('NaN')],
  ['"Infinity"', () => value('Infinity')],
  ['"1e309"', () => value('1e309')],
  ['"0x10"', () => value('0x10')],
  ['Arabic digits', () => value('١٢٣٤')],
  ['full-width digits', () => value('１２３４')],
  ['" 1 "', () => value(' 1 ')],
  ['1e309', () => raw('1e309')],
  ['-1e309', () => raw('-1e309')],
  ['-0', () => raw('-0')],
  ['1e-400', () => raw('1e-400')],
  ['2^53 + 1', () => raw('9007199254740993')],
  ['2^64', () => raw('18446744073709551616')],
  ['a long number', () => raw(`1${'0'.repeat(400)}`)],
  ['-1', () => value(-1)],
  ['0.5', () => value(0.5)],
  ['2^31', () => value(2_147_483_648)],
  ['an array nested 3,000 deep', () => raw(`${'['.repeat(3_000)}${']'.repeat(3_000)}`)],
  ['an object nested 1,000 deep', () => raw(`${'{"a":'.repeat(1_000)}1${'}'.repeat(1_000)}`)],
  ['"__proto__"', () => value('__proto__')],
  ['"../../etc/passwd"', () => value('../../etc/passwd')],
  ['"%00"', () => value('%00')],
  ['markup', () => value('<img src=x onerror=alert(1)>')],
  ['SQL', () => value("'; drop table users; --")],
];

/** A value the schema accepts, as far as this simple reading goes: the base a mutation changes. */
function sample(schema: Json, name = ''): unknown {
  if (!schema || typeof schema !== 'object') return 'a';
  if (schema.const !== undefined) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  if (Array.isArray(schema.anyOf)) return sample(schema.anyOf[0], name);
  if (Array.isArray(schema.oneOf)) return sample(schema.oneOf[0], name);
  switch (schema.type) {
    case 'object':
      return Object.fromEntries(((schema.required ?? []) as string[]).map((key) => [key, sample(schema.properties?.[key], key)]));
    case 'array':
      return Array.from({ length: Math.max(schema.minItems ?? 1, 1) }, () => sample(schema.items));
    case 'integer':
    case 'number':
      return Math.max(schema.minimum ?? 1, 1);
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return 'a'.repeat(Math.max(schema.minLength ?? 1, 1));
  }
}

/** The paths of the properties of a schema (nested objects and array items too), and whether each is required. */
function fieldsOf(schema: Json, at: (string | number)[] = []): { at: (string | number)[]; required: boolean }[] {
  if (schema?.type !== 'object' || !schema.properties) return [];
  return Object.entries<Json>(schema.properties).flatMap(([key, child]) => {
    const here = [...at, key];
    const nested =
      child?.type === 'object' ? fieldsOf(child, here) : child?.type === 'array' && child.items?.type === 'object' ? fieldsOf(child.items, [...here, 0]) : [];
    return [{ at: here, required: ((schema.required ?? []) as string[]).includes(key) }, ...nested];
  });
}

/** A marker a raw value takes in the JavaScript body, replaced by its text once the body is written. */
const MARKER = (i: number) => `\u0001raw${i}\u0001`;

/** The JSON text of a body with raw values in it; and the value it parses to (for the document's schemas), if it parses. */
function write(body: unknown, raws: string[]): { text: string; parsed: unknown; parses: boolean } {
  let text = JSON.stringify(body) ?? '';
  raws.forEach((r, i) => {
    text = text.replace(JSON.stringify(MARKER(i)), r);
  });
  try {
    return { text, parsed: JSON.parse(text), parses: true };
  } catch {
    return { text, parsed: undefined, parses: false };
  }
}

function put(body: Json, at: (string | number)[], v: unknown, remove = false): Json {
  if (at.length === 0) return v;
  let node = body;
  for (const key of at.slice(0, -1)) {
    if (node[key] === null || typeof node[key] !== 'object') node[key] = typeof key === 'number' ? [] : {};
    node = node[key];
  }
  if (remove) delete node[at.at(-1)!];
  else node[at.at(-1)!] = v;
  return body;
}

/** Characters the values the document accepts are made of: text of every kind but NUL and half surrogates (refused before any route). */
const ALPHABET = [
  ...'abcXYZ019 -_.@:/+',
  '\u0001',
  '\t',
  '\n',
  '\u007f',
  '\u00e9',
  '\u202e',
  '\u200f',
  '\u061c',
  '\u0301',
  '\u200b',
  '\ufeff',
  '\uffff',
  '😀',
  '👨‍👩‍👧',
  '中',
  '＜',
  "'",
  '"',
  '\\',
  '<',
  '%',
];

/** Values tried for a string with a pattern: the first the pattern takes. */
const PATTERN_TRIES = [
  'USD',
  'EUR',
  'ABCD1234',
  'ZZZZ',
  '1',
  '12',
  '25',
  '0',
  '99',
  'a',
  'login.*',
  'login.locked',
  'ref-1',
  'a/b:c',
  '2026-03-01',
  '0000-02-29',
  '2026-03-01T09:30:00Z',
];

/** A value the schema accepts, made at random: optional properties or not, lengths and numbers anywhere in their range, edges often. */
function arbitrary(schema: Json, random: Random, name = ''): unknown {
  if (!schema || typeof schema !== 'object') return random.pick(['a', 1, true, null]);
  if (schema.const !== undefined) return schema.const;
  if (Array.isArray(schema.enum)) return random.pick(schema.enum);
  if (Array.isArray(schema.anyOf)) return arbitrary(random.pick(schema.anyOf), random, name);
  if (Array.isArray(schema.oneOf)) return arbitrary(random.pick(schema.oneOf), random, name);
  switch (schema.type) {
    case 'object': {
      const required = new Set<string>(schema.required ?? []);
      const entries = Object.entries<Json>(schema.properties ?? {}).filter(([key]) => required.has(key) || random.chance(0.5));
      return Object.fromEntries(entries.map(([key, child]) => [key, arbitrary(child, random, key)]));
    }
    case 'array': {
      const min = schema.minItems ?? 0;
      const max = Math.min(schema.maxItems ?? 4, min + 4);
      return Array.from({ length: min + random.int(max - min + 1) }, () => arbitrary(schema.items, random));
    }
    case 'integer':
    case 'number': {
      const min = schema.minimum ?? -1_000;
      const max = schema.maximum ?? 1e15;
      const step = schema.type === 'integer' ? 1 : (schema.multipleOf ?? 0.01);
      const edge = random.pick([min, max, min + step, max - step, 0, 1]);
      const v = random.chance(0.5) ? edge : min + Math.floor((random.int(1_000_000) / 1_000_000) * ((max - min) / step)) * step;
      return Math.min(max, Math.max(min, Math.round(v / step) * step));
    }
    case 'boolean':
      return random.chance(0.5);
    case 'null':
      return null;
    default: {
      if (schema.pattern) {
        const pattern = new RegExp(schema.pattern);
        const tries = PATTERN_TRIES.filter((t) => pattern.test(t));
        return tries.length > 0 ? random.pick(tries) : 'a';
      }
      const min = schema.minLength ?? 0;
      const max = Math.min(schema.maxLength ?? 300, 2_000);
      const length = random.pick([min, max, min + random.int(max - min + 1)]);
      let text = '';
      while ([...text].length < length) text += random.pick(ALPHABET);
      // a code point may be two UTF-16 units, as the schema counts them
      while (text.length > max) text = text.slice(0, -1);
      return text.replace(/[\ud800-\udbff]$/, '');
    }
  }
}

// ------------------------------------------------------------------ the operations

interface Operation {
  method: string;
  path: string;
  id: string;
  credentials: ('client' | 'staff' | 'apiKey')[];
  pathParams: string[];
  query: { name: string; required: boolean; schema: Json }[];
  body: Json | undefined;
  validateBody: ValidateFunction | undefined;
}

function operationsOf(document: Json): Operation[] {
  const ajv = openApiAjv(document);
  return Object.entries<Json>(document.paths).flatMap(([path, item]) =>
    Object.entries<Json>(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, op]) => {
        const schemes = new Set<string>((op.security ?? []).flatMap((r: Json) => Object.keys(r)));
        const credentials: Operation['credentials'] = [];
        if (schemes.has('bearer') || schemes.has('cookie')) credentials.push((op.tags ?? []).some((t: string) => STAFF_TAGS.includes(t)) ? 'staff' : 'client');
        if (schemes.has('apiKey')) credentials.push('apiKey');
        const parameters: Json[] = op.parameters ?? [];
        const body = op.requestBody?.content?.['application/json']?.schema;
        return {
          method: method.toUpperCase(),
          path,
          id: op.operationId as string,
          credentials,
          pathParams: parameters.filter((p) => p.in === 'path').map((p) => p.name as string),
          query: parameters.filter((p) => p.in === 'query').map((p) => ({ name: p.name as string, required: Boolean(p.required), schema: p.schema })),
          body,
          validateBody: body ? ajv.compile(body) : undefined,
        };
      }),
  );
}

// ------------------------------------------------------------------ the requests

interface Request {
  what: string;
  method: string;
  /** Path parameters as written in the URL; the others take the context's real values. */
  path: Record<string, string>;
  query: string;
  headers: Record<string, string>;
  payload: string | Buffer | undefined;
  /** Whether it must be refused (the document's schemas refuse it, or it is no JSON body at all). */
  mustRefuse: boolean;
}

const JSON_TYPE = { 'content-type': 'application/json' };

/** Path parameters, as written in the URL. */
const BAD_PATH: [string, string][] = [
  ['..', '..'],
  ['%2e%2e', '%2e%2e'],
  ['..%2f..%2f', '..%2f..%2fhealth'],
  ['%00', 'a%00'],
  ['%', '%'],
  ['not UTF-8', '%C0%AF'],
  ['emoji', encodeURIComponent('👨‍👩‍👧‍👦')],
  ['1,000 characters', 'a'.repeat(1_000)],
  ['right-to-left mark', '%E2%80%AEabc'],
  ['a query in it', 'a%3Fb%3D1'],
];

/** Whole bodies that are no JSON object, or no JSON at all, and what else a client may send instead. */
function notBodies(basePayload: string): [string, Record<string, string>, string | Buffer | undefined][] {
  return [
    ['invalid JSON: cut short', JSON_TYPE, basePayload.slice(0, Math.max(1, basePayload.length - 2))],
    ['invalid JSON: a trailing comma', JSON_TYPE, basePayload.replace(/}$/, ',}')],
    ['invalid JSON: single quotes', JSON_TYPE, "{'a':'b'}"],
    ['invalid JSON: NaN', JSON_TYPE, '{"a":NaN}'],
    ['invalid JSON: not UTF-8', JSON_TYPE, Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0xff, 0x22, 0x7d])],
    ['invalid JSON: two documents', JSON_TYPE, `${basePayload}${basePayload}`],
    ['an empty body', JSON_TYPE, ''],
    ['only white space', JSON_TYPE, ' \n\t '],
    ['a 1 MB body', JSON_TYPE, `{"a":"${'a'.repeat(MEGABYTE)}"}`],
    ['a form', { 'content-type': 'application/x-www-form-urlencoded' }, 'a=1&b=2'],
    ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n'],
    ['text', { 'content-type': 'text/plain' }, basePayload],
    ['XML', { 'content-type': 'application/xml' }, '<a>1</a>'],
    ['JSON in Latin-1', { 'content-type': 'application/json; charset=iso-8859-1' }, basePayload],
    ['a JSON media type of another kind', { 'content-type': 'application/merge-patch+json' }, basePayload],
    ['a garbled content type', { 'content-type': ';;; =' }, basePayload],
    ['a body without a content type', {}, basePayload],
    ['gzip that is not', { ...JSON_TYPE, 'content-encoding': 'gzip' }, basePayload],
  ];
}

/** The generated bad bodies of an operation with a body: one to three things wrong in each. */
function generatedBodies(op: Operation, random: Random): Request[] {
  const out: Request[] = [];
  const fields = fieldsOf(op.body);
  for (let n = 0; n < CASES; n += 1) {
    const body: Json = JSON.parse(JSON.stringify(sample(op.body)));
    const raws: string[] = [];
    const said: string[] = [];
    let whole: Json = body;
    const changes = 1 + random.int(3);
    for (let c = 0; c < changes; c += 1) {
      const [what, make] = random.pick(BAD_VALUES);
      const made = make();
      let v: unknown;
      if ('raw' in made) {
        raws.push(made.raw);
        v = MARKER(raws.length - 1);
      } else v = made.value;
      const kind = random.int(10);
      if (kind === 0 || fields.length === 0) {
        whole = random.chance(0.5) ? v : [whole];
        said.push(`the body: ${random.chance(0.5) ? what : 'an array of it'}`);
        break;
      }
      const field = random.pick(fields);
      if (kind === 1 && field.required) {
        put(whole, field.at, undefined, true);
        said.push(`${field.at.join('.')}: removed`);
      } else if (kind === 2) {
        const extra = [...field.at.slice(0, -1), random.pick(['zz', '__proto__', 'constructor', '', '\u202e', 'a'.repeat(300)])];
        put(whole, extra, v);
        said.push(`extra ${JSON.stringify(extra.join('.'))}: ${what}`);
      } else {
        put(whole, field.at, v);
        said.push(`${field.at.join('.')}: ${what}`);
      }
    }
    const written = write(whole, raws);
    out.push({
      what: said.join('; '),
      method: op.method,
      path: {},
      query: '',
      headers: JSON_TYPE,
      payload: written.text,
      mustRefuse: !written.parses || !op.validateBody!(written.parsed),
    });
  }
  return out;
}

function requestsOf(op: Operation, random: Random): Request[] {
  const out: Request[] = [];
  const basePayload = op.body ? JSON.stringify(sample(op.body)) : undefined;
  const requiredQuery = op.query
    .filter((q) => q.required)
    .map((q) => `${q.name}=${encodeURIComponent(String(sample(q.schema)))}`)
    .join('&');
  const baseQuery = requiredQuery ? `?${requiredQuery}` : '';
  const base = { method: op.method, path: {}, query: baseQuery, headers: basePayload ? JSON_TYPE : {}, payload: basePayload };
  if (op.body) {
    for (const r of generatedBodies(op, random)) out.push({ ...r, query: baseQuery });
    for (const [what, headers, payload] of notBodies(basePayload!)) {
      out.push({ ...base, what, headers, payload, mustRefuse: true });
    }
    // a byte order mark before the JSON may be read past (RFC 8259 §8.1): never a 5xx
    out.push({ ...base, what: 'a byte order mark', payload: `\ufeff${basePayload!}`, mustRefuse: false });
  } else if (op.method === 'GET') {
    // a body on a GET: read by nothing, refused or ignored, never a 5xx
    out.push({ ...base, what: 'a JSON body on a GET', headers: JSON_TYPE, payload: '{"a":1}', mustRefuse: false });
    out.push({ ...base, what: 'invalid JSON on a GET', headers: JSON_TYPE, payload: '{"a":', mustRefuse: false });
    out.push({ ...base, what: 'a 1 MB body on a GET', headers: JSON_TYPE, payload: `"${'a'.repeat(MEGABYTE)}"`, mustRefuse: false });
  }
  // the query: each parameter repeated, given generated bad values; unknown ones repeated; 10 KB of it
  for (const q of op.query) {
    const others = baseQuery.replace(new RegExp(`[?&]${q.name}=[^&]*`), '').replace(/^&/, '?');
    const join = others ? `${others}&` : '?';
    out.push({ ...base, what: `query ${q.name} repeated`, query: `${join}${q.name}=a&${q.name}=b`, mustRefuse: true });
    for (let n = 0; n < 3; n += 1) {
      const [what, make] = random.pick(BAD_VALUES.filter(([w]) => !w.startsWith('a 1 MB')));
      const made = make();
      const text = 'raw' in made ? made.raw : typeof made.value === 'string' ? made.value : JSON.stringify(made.value);
      let encoded: string;
      try {
        encoded = encodeURIComponent(text);
      } catch {
        encoded = '%ED%A0%80';
      }
      out.push({ ...base, what: `query ${q.name}: ${what}`, query: `${join}${q.name}=${encoded}`, mustRefuse: false });
    }
  }
  out.push({
    ...base,
    what: 'query: lang repeated, __proto__ and constructor',
    query: `${baseQuery || '?'}&lang=fr&lang=zh-Hant&__proto__=x&constructor=y`,
    mustRefuse: false,
  });
  out.push({ ...base, what: 'query: 10 KB', query: `${baseQuery || '?'}&${'z=1&'.repeat(2_500)}`, mustRefuse: false });
  out.push({ ...base, what: 'query: bad escapes', query: `${baseQuery || '?'}&%zz=%&lang=%ED%A0%80`, mustRefuse: false });
  // path parameters: nothing they name exists
  for (const name of op.pathParams) {
    for (const [what, v] of BAD_PATH) out.push({ ...base, what: `path ${name}: ${what}`, path: { [name]: v }, mustRefuse: true });
  }
  // another method on the path
  if (op.pathParams.length === 0 && !['DELETE', 'PATCH'].includes(op.method)) {
    out.push({ ...base, what: 'method PATCH', method: 'PATCH', mustRefuse: true });
  }
  return out;
}

// ------------------------------------------------------------------ judging

/** Tables a refused request writes to by design: the audit trail (a refusal may be a security event). Everything else must stay as it was. */
const BOOKKEEPING = new Set(['audit_log', 'audit_head']);
/** L3: where a refusal was a wrong password or answer (401), the failures counted against the username and the lock they make. */
const COUNTERS = ['login_failures', 'lockouts'];

// ------------------------------------------------------------------ the test

interface Person {
  user: User;
  card: CardFile;
  token: string;
}

describe.each(DATABASES)('generated bad input on every operation and form on %s (X3, I2)', (database) => {
  let h: Harness;
  let operations: Operation[];
  let staff: Person;
  let client: Person;
  let target: Person;
  let apiKey: string;
  let tables: string[];

  /** A stepped-up session of the user with the card; null when the card no longer logs in (a request reported it lost …). */
  async function signIn(user: User, card: CardFile): Promise<string | null> {
    await h.services.lockout.reset(user.username);
    const started = await startLogin(h.app, user.username);
    if (started.status !== 200 || started.body.challenge?.question === undefined) return null;
    const done = await answer(h.app, started.body.id, cardAnswer(card, started.body.challenge.question));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    // V1 (decision 0042): the step-up replaced the session's token
    return (await stepUp(h.app, bearer(done.body.session.token as string), (challenge) => cardAnswer(card, challenge.question as string))).body.session
      .token as string;
  }

  async function person(role?: 'admin'): Promise<Person> {
    const { user, card } = await createUserWithCard(h.services, '1234', role ? { role } : {});
    return { user, card, token: (await signIn(user, card))! };
  }

  /** The person's session, stepped up within the last minutes: signed in again when a request ended it, someone new when their card no longer logs in. */
  async function fresh(p: Person, role?: 'admin'): Promise<Person> {
    const session = await get(h.app, '/api/v1/session', bearer(p.token));
    const verifiedAt = session.status === 200 && session.body.verifiedAt ? Date.parse(session.body.verifiedAt) : 0;
    if (verifiedAt > h.clock.now() - h.services.config.policy.stepUpFreshMs + 60_000) return p;
    const token = await signIn(await h.services.users.get(p.user.id), p.card);
    return token ? { ...p, token } : person(role);
  }

  /** Every table: its row count and a digest of its rows (sorted, so that the order a database returns them in does not count). */
  async function snapshot(): Promise<Record<string, string>> {
    const db = h.services.store.db;
    const out: Record<string, string> = {};
    for (const table of tables) {
      if (BOOKKEEPING.has(table)) continue;
      const rows = (await sql<Json>`select * from ${sql.table(table)}`.execute(db)).rows;
      const lines = rows.map((row: Json) => JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).sort();
      out[table] = `${rows.length} ${createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16)}`;
    }
    return out;
  }

  beforeAll(async () => {
    h = await startHarness(database);
    operations = operationsOf((await get(h.app, '/api/openapi.json')).body);
    tables = await tablesOf(h.services.store);
    staff = await person('admin');
    client = await person();
    target = await person();
    apiKey = (await h.services.apiKeys.create({ name: 'fuzz', scopes: ['withdrawals', 'accounts'] }, 'test')).key;
  }, 60_000);
  afterAll(async () => h?.close());

  async function realPath(op: Operation, actor: Person = client): Promise<Record<string, string>> {
    const owner = op.credentials.includes('client') ? actor : target;
    const [device] = await h.services.devices.listForUser(owner.user.id);
    const values: Record<string, string> = { username: target.user.username, number: target.user.accountNumber, deviceId: device!.id };
    return Object.fromEntries(op.pathParams.map((name) => [name, values[name] ?? `flw_${'c'.repeat(26)}`]));
  }

  it('X3, I2: every operation of the OpenAPI document is sent generated bad input, without and with its credential: never a 5xx, every refusal a stable code with its status and a message, what the document refuses refused, and nothing in the database changed where all were refused', async () => {
    expect(operations.length).toBeGreaterThan(70);
    const problems: string[] = [];
    let sent = 0;
    for (const op of operations) {
      staff = await fresh(staff, 'admin');
      client = await fresh(client);
      const random = new Random(op.id);
      const requests = requestsOf(op, random);
      const credentials: [string, Record<string, string>][] = [['no credentials', {}]];
      for (const kind of op.credentials) {
        credentials.push([kind, bearer(kind === 'apiKey' ? apiKey : kind === 'staff' ? staff.token : client.token)]);
      }
      const before = await snapshot();
      let accepted = false;
      let counted = false;
      for (const [who, credential] of credentials) {
        const real = await realPath(op);
        for (const [i, r] of requests.entries()) {
          // without the credential an operation needs, every third request (each is refused before its body counts)
          if (who === 'no credentials' && op.credentials.length > 0 && i % 3 !== 0) continue;
          const path = { ...real, ...r.path };
          const url = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => path[name] ?? '') + r.query;
          const answer = await within(h.app, {
            method: r.method as 'POST',
            url,
            headers: { ...r.headers, ...credential },
            ...(r.payload === undefined ? {} : { payload: r.payload }),
          });
          sent += 1;
          if (answer !== 'timeout' && answer.statusCode < 400) accepted = true;
          // L3: a wrong password or answer is counted against the username, by design
          if (answer !== 'timeout' && answer.statusCode === 401) counted = true;
          const mustRefuse = r.mustRefuse || (who === 'no credentials' && op.credentials.length > 0);
          const problem = apiProblem(answer, mustRefuse);
          if (problem) problems.push(`${op.method} ${op.path} (${who}) ${r.what}: ${problem}`);
          // wrong passwords lock a username: unlocked, so that each request reaches what it is meant for
          if (answer !== 'timeout' && [401, 423].includes(answer.statusCode)) await h.services.lockout.reset(target.user.username);
        }
      }
      if (!accepted) {
        const after = await snapshot();
        const changed = Object.keys(after).filter((table) => after[table] !== before[table] && !(counted && COUNTERS.includes(table)));
        if (changed.length > 0) problems.push(`${op.method} ${op.path}: every request refused, yet ${changed.join(', ')} changed`);
      }
    }
    expect(problems.slice(0, 60), `seed ${SEED} (SLS_FUZZ_SEED): ${problems.length} of ${sent} answers`).toEqual([]);
    expect(sent).toBeGreaterThan(2_000);
  }, 120_000);

  it('X3: bodies and queries the document accepts, made at random (optional fields or not, lengths and numbers anywhere in their range, text of every kind), reach the handlers with the credential the operation takes: never a 5xx or a hang, every refusal a stable code with its status and a message', async () => {
    const problems: string[] = [];
    let sent = 0;
    let victim = await person();
    for (const op of operations) {
      staff = await fresh(staff, 'admin');
      victim = await fresh(victim);
      const random = new Random(`valid:${op.id}`);
      const ajv = openApiAjv({ components: {} });
      const queryChecks = op.query.map((q) => ({ ...q, check: ajv.compile(q.schema) }));
      for (let n = 0; n < VALID_CASES; n += 1) {
        const body = op.body ? arbitrary(op.body, random) : undefined;
        if (op.body && !op.validateBody!(body)) continue;
        const pairs = queryChecks
          .filter((q) => q.required || random.chance(0.5))
          .map((q) => [q.name, String(arbitrary(q.schema, random, q.name))] as const)
          .filter(([name, v]) => queryChecks.find((q) => q.name === name)!.check(v));
        const query = pairs.length === 0 ? '' : `?${pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}`;
        const path = await realPath(op, victim);
        const url = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => path[name] ?? '') + query;
        const kind = op.credentials[0];
        const headers = kind === undefined ? {} : bearer(kind === 'apiKey' ? apiKey : kind === 'staff' ? staff.token : victim.token);
        const answer = await within(h.app, {
          method: op.method as 'POST',
          url,
          headers: { ...headers, ...(body === undefined ? {} : JSON_TYPE) },
          ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
        });
        sent += 1;
        const problem = apiProblem(answer, false);
        if (problem) problems.push(`${op.method} ${url.slice(0, 200)} ${JSON.stringify(body)?.slice(0, 300) ?? ''}: ${problem}`);
        if (answer !== 'timeout' && [401, 423].includes(answer.statusCode)) {
          for (const p of [victim, target]) await h.services.lockout.reset(p.user.username);
        }
      }
    }
    expect(problems.slice(0, 60), `seed ${SEED} (SLS_FUZZ_SEED): ${problems.length} of ${sent} answers`).toEqual([]);
    expect(sent).toBeGreaterThan(300);
  }, 120_000);

  it('X3: a random walk through the API (seeded): clients, staff and a back office call operations in any order, with plausible values and the ids and challenges earlier answers gave, so that requests meet every state the others leave: never a 5xx or a hang, every refusal a stable code', async () => {
    const problems: string[] = [];
    const random = new Random('walk');
    const clients = [await person(), await person(), await person()];
    /** What earlier answers gave: the ids each POST made (by its path), the questions of challenges, claim tokens. */
    const made = new Map<string, string[]>();
    const questions = new Map<string, string>();
    const claims: string[] = [];
    const remember = (key: string, id: string) => made.set(key, [...(made.get(key) ?? []).slice(-4), id]);
    for (let step = 0; step < WALK_STEPS; step += 1) {
      const op = random.pick(operations);
      const who = random.int(clients.length);
      let actor = clients[who]!;
      const other = random.pick([...clients, target]);
      const devices = await h.services.devices.listForUser(actor.user.id);
      const ownPhones = await h.services.phones.list(actor.user.id);
      const pathValues: Record<string, string | undefined> = {
        username: other.user.username,
        number: random.pick([actor, other]).user.accountNumber,
        deviceId: random.pick(devices)?.id,
        phoneId: random.pick(ownPhones)?.id,
      };
      const found = /^(.*)\/\{([^}]+)\}[^{]*$/.exec(op.path);
      const path: Record<string, string> = {};
      for (const name of op.pathParams) {
        const prefix = op.path.slice(0, op.path.indexOf(`{${name}}`) - 1);
        path[name] = pathValues[name] ?? random.pick(made.get(prefix) ?? [`flw_${'e'.repeat(26)}`]);
      }
      const question = questions.get(found ? (path[found[2]!] ?? '') : '');
      const named: Record<string, unknown> = {
        username: actor.user.username,
        ownerUsername: other.user.username,
        password: PASSWORD,
        currentPassword: PASSWORD,
        ownerPassword: PASSWORD,
        confirmation: actor.user.username,
        acknowledgeRisks: true,
        account: random.pick([actor, other]).user.accountNumber,
        country: random.pick(['FR', 'US', 'TW']),
        number: `6${String(40_000_000 + step)}`,
        pin: '1234',
        newPin: '5678',
        currency: 'USD',
        amount: random.pick(['100.00', '0.01', 25_000]),
        reference: `walk-${step}`,
        device: random.pick(devices)?.id,
        deviceId: random.pick(devices)?.id,
        claimToken: random.pick(claims.length > 0 ? claims : ['x']),
        response: question ? cardAnswer(actor.card, question) : undefined,
        app: 'portal',
        purpose: 'activate',
        verificationId: random.pick(made.get('/api/v1/helpdesk/users/{username}/verifications') ?? ['x']),
      };
      let body: Json;
      if (op.body) {
        body = arbitrary(op.body, random);
        if (body && typeof body === 'object' && !Array.isArray(body)) {
          for (const key of Object.keys(op.body.properties ?? {})) {
            if (named[key] !== undefined && (key in body || random.chance(0.7))) body[key] = named[key];
          }
        }
      }
      const credential = op.credentials.includes('staff')
        ? bearer(staff.token)
        : op.credentials.includes('client')
          ? bearer(actor.token)
          : op.credentials.includes('apiKey')
            ? bearer(apiKey)
            : {};
      const url = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => path[name] ?? '');
      const answer = await within(h.app, {
        method: op.method as 'POST',
        url,
        headers: { ...credential, ...(claims.length > 0 ? { 'x-claim-token': random.pick(claims) } : {}), ...(body === undefined ? {} : JSON_TYPE) },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      });
      const problem = apiProblem(answer, false);
      if (problem) problems.push(`step ${step}: ${op.method} ${url} ${JSON.stringify(body)?.slice(0, 300) ?? ''}: ${problem}`);
      if (answer === 'timeout') continue;
      // what it gave, for the steps to come
      if (answer.statusCode < 300 && String(answer.headers['content-type'] ?? '').startsWith('application/json')) {
        const got = JSON.parse(answer.body || 'null');
        if (typeof got?.id === 'string') remember(op.path, got.id);
        if (typeof got?.id === 'string' && typeof got?.challenge?.question === 'string') questions.set(got.id, got.challenge.question);
        if (typeof got?.claimToken === 'string') claims.push(got.claimToken);
      }
      // a person whose session ended, or who was locked, signs in again (someone new when their card no longer logs in)
      if ([401, 403, 423].includes(answer.statusCode)) {
        for (const p of [actor, other]) await h.services.lockout.reset(p.user.username);
        actor = await fresh(actor);
        clients[who] = actor;
        staff = await fresh(staff, 'admin');
      }
    }
    expect(problems.slice(0, 60), `seed ${SEED} (SLS_FUZZ_SEED): ${problems.length} of ${WALK_STEPS} steps`).toEqual([]);
  }, 120_000);

  it('X3, W1, X1: values at the edges of what the document accepts (the largest amounts, cursors and equities, dates of year 0 and 9999, offsets of ±23:59, fractions of a second to the nanosecond) reach the handlers and the database: a stable answer, never a 5xx, on SQLite as on PostgreSQL', async () => {
    staff = await fresh(staff, 'admin');
    const asStaff = bearer(staff.token);
    const asKey = bearer(apiKey);
    const account = target.user.accountNumber;
    const problems: string[] = [];
    const requests: [string, string, Record<string, string>, unknown][] = [];
    for (const q of [
      'cursor=999999999999999',
      'cursor=1',
      'limit=9999',
      'limit=0',
      'limit=0001',
      'since=0000-02-29',
      'since=0000-01-01T00:00:00%2B23:59',
      'until=9999-12-31T23:59:59.999999999-23:59',
      'since=9999-12-31&until=0000-01-01',
      'since=2026-03-01T09:30:00.123456789012345678901234567890Z',
      `type=${'a'.repeat(62)}.*`,
      `user=${encodeURIComponent('\u202e'.repeat(10))}`,
      'type=login.*&user=%20&limit=1&cursor=999999999999999',
    ]) {
      requests.push(['GET', `/api/v1/admin/audit?${q}`, asStaff, undefined]);
    }
    for (const amount of [
      '9999999999999.99',
      9_999_999_999_999.99,
      '0.01',
      0.01,
      '0000000000001',
      '1e5',
      '-0',
      1e300,
      5e-324,
      ' 1.00 ',
      '1.',
      '.5',
      '１２',
      '9'.repeat(32),
    ]) {
      for (const currency of ['USD', 'EUR', 'ZZZ']) {
        requests.push(['POST', '/api/v1/withdrawals/check', asKey, { account, amount, currency }]);
        requests.push(['POST', '/api/v1/withdrawals', asKey, { account, amount, currency, reference: `edge:${String(amount).slice(0, 20)}/${currency}` }]);
      }
    }
    requests.push(['POST', '/api/v1/withdrawals', asKey, { account, amount: '1.00', currency: 'USD', reference: `${'r'.repeat(64)}` }]);
    for (const equityUsd of [10_000_000_000_000, 9_999_999_999_999.99, 0, 0.01, 1e-300]) {
      requests.push(['PUT', `/api/v1/admin/accounts/${account}/equity`, asStaff, { equityUsd }]);
    }
    requests.push(['GET', `/api/v1/entitlements?account=${'Z'.repeat(16)}`, asKey, undefined]);
    requests.push(['GET', `/api/v1/entitlements?account=${account}`, asKey, undefined]);
    for (const [method, url, headers, body] of requests) {
      const answer = await within(h.app, {
        method: method as 'POST',
        url,
        headers: { ...headers, ...(body === undefined ? {} : JSON_TYPE) },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      });
      const problem = apiProblem(answer, false);
      if (problem) problems.push(`${method} ${url} ${JSON.stringify(body) ?? ''}: ${problem}`);
    }
    expect(problems).toEqual([]);
  });

  it('W3, X3: withdrawals recorded at the largest amounts a rate allows never make the sums of the windows overflow: the one that would pass 2^53 US cents is refused 400 AMOUNT_INVALID, and the account is checked, recorded and shown as before, on SQLite as on PostgreSQL', async () => {
    // a DSC+ protects the account: no limit (W1); a rate of 90.07 USD a unit: each withdrawal 9.007·10^15 cents, just under 2^53
    const { user } = await createUserWithCard(h.services);
    await h.services.fx.set([{ currency: 'XAU', rate: '90.07' }], 'test');
    const amount = '1000000000000.00';
    const asKey = { ...bearer(apiKey), ...JSON_TYPE };
    const statuses = new Map<string, number>();
    for (let n = 0; n < 1_030; n += 1) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/api/v1/withdrawals',
        headers: asKey,
        payload: JSON.stringify({ account: user.accountNumber, amount, currency: 'XAU', reference: `big-${n}` }),
      });
      const key = `${res.statusCode} ${res.statusCode >= 400 ? res.json().error.code : ''}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      if (res.statusCode >= 400) break;
    }
    expect([...statuses]).toEqual([
      ['201 ', 1],
      ['400 AMOUNT_INVALID', 1],
    ]);
    // what would pass 2^53 is told so, in the language asked for; what fits is checked, recorded and shown as before
    const big = await h.app.inject({
      method: 'POST',
      url: '/api/v1/withdrawals/check',
      headers: { ...asKey, 'accept-language': 'fr' },
      payload: JSON.stringify({ account: user.accountNumber, amount, currency: 'XAU' }),
    });
    expect([big.statusCode, big.json().error.code, big.json().error.message]).toEqual([
      400,
      'AMOUNT_INVALID',
      "Le montant 1000000000000 XAU est trop élevé : avec les retraits enregistrés ces cinq derniers jours ouvrés, le total en USD dépasserait le plus grand montant qui puisse être compté exactement. Rien n'a été enregistré.",
    ]);
    for (const [method, url, body, status] of [
      ['POST', '/api/v1/withdrawals/check', { account: user.accountNumber, amount: '1.00', currency: 'USD' }, 200],
      ['POST', '/api/v1/withdrawals', { account: user.accountNumber, amount: '1.00', currency: 'USD', reference: 'small-1' }, 201],
      ['GET', `/api/v1/entitlements?account=${user.accountNumber}`, undefined, 200],
    ] as const) {
      const res = await h.app.inject({ method, url, headers: body ? asKey : bearer(apiKey), ...(body ? { payload: JSON.stringify(body) } : {}) });
      expect([url, res.statusCode]).toEqual([url, status]);
    }
    expect((await h.services.store.db.selectFrom('withdrawals').select('id').where('reference', 'like', 'big-%').execute()).length).toBe(1);
  }, 60_000);

  it('X3: a body sent with a content encoding (gzip, deflate, br) is refused 415 UNSUPPORTED_MEDIA_TYPE, saying so in the language asked for, by the API and the pages alike, never read as if it were not encoded', async () => {
    const body = JSON.stringify({ username: target.user.username, password: 'x', app: 'portal' });
    for (const [language, message] of [
      ['en', 'Send the request body without a content encoding (no gzip, deflate or br): it is not decompressed.'],
      ['fr', "Envoyez le corps de la requête sans encodage de contenu (ni gzip, ni deflate, ni br) : il n'est pas décompressé."],
      ['zh-Hant', '請勿以內容編碼（gzip、deflate 或 br）傳送請求內容：伺服器不會解壓縮。'],
    ]) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/api/v1/login',
        headers: { ...JSON_TYPE, 'content-encoding': 'gzip', 'accept-language': language! },
        payload: body,
      });
      expect([res.statusCode, res.json().error.code, res.json().error.message]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE', message]);
    }
    await h.services.lockout.reset(target.user.username);
    const identity = await h.app.inject({ method: 'POST', url: '/api/v1/login', headers: { ...JSON_TYPE, 'content-encoding': 'identity' }, payload: body });
    expect(identity.statusCode).toBe(401);
    const page = await h.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'deflate' },
      payload: `username=${target.user.username}&password=x`,
    });
    expect([page.statusCode, alertBox(page.body)?.code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
    await h.services.lockout.reset(target.user.username);
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

  it('X3: every form of the pages (each POST route of the app but the API) answers a body that is not a form (1 MB, JSON, multipart, text, empty, bad escapes, the CSRF token repeated or nested), with a session and a valid token, with a page of its error or a redirect: never a 5xx', async () => {
    const routes = routesOf(h.app);
    const posts = routes.filter((r) => r.method === 'POST' && !r.url.startsWith('/api/') && !r.url.includes('*'));
    expect(posts.length).toBeGreaterThan(40);
    const problems: string[] = [];
    let sent = 0;
    for (const route of posts) {
      staff = await fresh(staff, 'admin');
      client = await fresh(client);
      const { agent, csrf } = await browserOf(route.url.startsWith('/helpdesk') ? staff : client);
      const [device] = await h.services.devices.listForUser(client.user.id);
      const values: Record<string, string> = { username: target.user.username, deviceId: device!.id };
      const url = route.url.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => values[name] ?? `flw_${'d'.repeat(26)}`);
      const token = encodeURIComponent(csrf);
      const form = { 'content-type': 'application/x-www-form-urlencoded' };
      const bodies: [string, Record<string, string>, string | undefined][] = [
        ['no body', {}, undefined],
        ['an empty form', form, ''],
        ['a 1 MB field', form, `_csrf=${token}&reason=${'a'.repeat(MEGABYTE)}`],
        ['the token twice', form, `_csrf=${token}&_csrf=${token}`],
        ['the token nested', form, `_csrf[a]=${token}&_csrf[]=${token}`],
        ['the token not UTF-8', form, '_csrf=%C0%AF%ff'],
        ['bad escapes', form, `_csrf=${token}&%zz=%&a=%E2%82`],
        ['__proto__ and constructor', form, `_csrf=${token}&__proto__=x&constructor[prototype][admin]=1&hasOwnProperty=1`],
        ['every field repeated', form, `_csrf=${token}${'&reason=a&next=/x&lang=fr&pin=1&password=p&username=u'.repeat(3)}`],
        ['JSON', { 'content-type': 'application/json' }, JSON.stringify({ _csrf: csrf, reason: 'lost' })],
        ['invalid JSON', { 'content-type': 'application/json' }, '{"_csrf":'],
        ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, `--x\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${csrf}\r\n--x--\r\n`],
        ['text', { 'content-type': 'text/plain' }, `_csrf=${token}`],
        ['a form in Latin-1', { 'content-type': 'application/x-www-form-urlencoded; charset=iso-8859-1' }, `_csrf=${token}&reason=%E9`],
      ];
      for (const [what, headers, payload] of bodies) {
        const answer = await within(h.app, {
          method: 'POST',
          url,
          cookies: Object.fromEntries(agent.jar),
          headers,
          ...(payload === undefined ? {} : { payload }),
        });
        sent += 1;
        if (answer !== 'timeout' && [401, 423].includes(answer.statusCode)) await h.services.lockout.reset(client.user.username);
        const problem = pageProblem(answer, route.url);
        if (problem) problems.push(`POST ${route.url} ${what}: ${problem}`);
      }
    }
    expect(problems.slice(0, 60), `${problems.length} of ${sent} answers`).toEqual([]);
    expect(sent).toBeGreaterThan(500);
  }, 120_000);
  it('X3: every form the pages show is sent, with a session and a valid CSRF token, its fields changed at random (seeded): several at once kept, emptied, removed, repeated, over-long, numbers out of range, text of every kind: a page of its error or a redirect, never a 5xx', async () => {
    let webClient = await person();
    const routes = routesOf(h.app);
    const posts = routes.filter((r) => r.method === 'POST' && !r.url.startsWith('/api/') && !r.url.includes('*'));
    const pages = routes.filter(
      (r) => r.method === 'GET' && !r.url.startsWith('/api/') && !r.url.includes('*') && !/^\/(dev|app|oidc|\.well-known)\b/.test(r.url),
    );
    /** The forms shown, by the POST route they go to: their fields and the values the page gave them. */
    const formsOf = new Map<string, { action: string; fields: [string, string][] }>();
    const asClient = await browserOf(webClient);
    const asStaff = await browserOf(staff);
    const [device] = await h.services.devices.listForUser(webClient.user.id);
    const values: Record<string, string> = { username: target.user.username, deviceId: device!.id };
    const fill = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => values[name] ?? `flw_${'d'.repeat(26)}`);
    for (const page of pages) {
      const shown = await (page.url.startsWith('/helpdesk') ? asStaff : asClient).agent.get(fill(page.url));
      for (const f of forms(shown.html)) {
        const action = (f.attrs.action ?? '').split('?')[0]!;
        const route = posts.find((r) => new RegExp(`^${r.url.replace(/:[A-Za-z0-9_]+/g, '[^/]+')}$`).test(action));
        if (!route || formsOf.has(route.url)) continue;
        const fields: [string, string][] = [];
        for (const tag of ['input', 'select', 'textarea']) {
          for (const control of elements(f.inner, tag)) {
            const name = control.attrs.name;
            if (!name || name === '_csrf' || ['submit', 'button'].includes(control.attrs.type ?? '')) continue;
            fields.push([name, tag === 'select' ? (elements(control.inner, 'option')[0]?.attrs.value ?? '') : (control.attrs.value ?? '')]);
          }
        }
        formsOf.set(route.url, { action, fields });
      }
    }
    expect(formsOf.size).toBeGreaterThan(12);
    const problems: string[] = [];
    let sent = 0;
    for (const [route, { action, fields }] of formsOf) {
      webClient = await fresh(webClient);
      staff = await fresh(staff, 'admin');
      const random = new Random(`form:${route}`);
      const { agent, csrf } = await browserOf(route.startsWith('/helpdesk') ? staff : webClient);
      for (let n = 0; n < CASES; n += 1) {
        const pairs: [string, string][] = [['_csrf', csrf]];
        const said: string[] = [];
        for (const [name, value] of fields) {
          const kind = random.int(20);
          if (kind < 9) pairs.push([name, value]);
          else if (kind < 11) said.push(`${name} removed`);
          else if (kind < 12) {
            pairs.push([name, value], [name, 'x']);
            said.push(`${name} repeated`);
          } else if (kind < 13) {
            pairs.push([name, 'a'.repeat(5_000)]);
            said.push(`${name} 5,000 characters`);
          } else if (kind < 15) {
            const v = random.pick(['-1', '0', '1e309', 'NaN', '0x10', '１２３４', '99999999999999999999', '-0', '1.5', ' ']);
            pairs.push([name, v]);
            said.push(`${name}=${v}`);
          } else {
            const v = String(arbitrary({ type: 'string', maxLength: 300 }, random));
            pairs.push([name, v]);
            said.push(`${name}=${JSON.stringify(v.slice(0, 20))}…`);
          }
        }
        const answer = await within(h.app, {
          method: 'POST',
          url: action,
          cookies: Object.fromEntries(agent.jar),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams(pairs).toString(),
        });
        sent += 1;
        if (answer !== 'timeout' && [401, 423].includes(answer.statusCode)) await h.services.lockout.reset(webClient.user.username);
        const problem = pageProblem(answer, action);
        if (problem) problems.push(`POST ${route} ${said.join('; ')}: ${problem}`);
      }
    }
    expect(problems.slice(0, 60), `seed ${SEED} (SLS_FUZZ_SEED): ${problems.length} of ${sent} answers`).toEqual([]);
    expect(sent).toBeGreaterThan(70);
  }, 120_000);
});
