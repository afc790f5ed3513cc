/**
 * X3: the text a request brings (its path parameters, its query, its JSON or
 * form body) is text: no U+0000 (NUL) and no half of a surrogate pair.
 * PostgreSQL cannot hold a NUL in text (the query fails: a 500 where SQLite
 * stored it), and a lone surrogate cannot be written as UTF-8 (it would be
 * stored as U+FFFD, not as sent). Such a request is refused before any route
 * reads it: 400 VALIDATION_ERROR naming the field, on every route, the API's
 * and the pages' alike, and on both databases the same.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SlsError } from '../errors.js';

/** A high surrogate not followed by a low one, or a low surrogate not after a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Text PostgreSQL and UTF-8 can hold: no NUL, no half of a surrogate pair (also what the command line checks, X3). */
export const isText = (s: string): boolean => !s.includes('\u0000') && !LONE_SURROGATE.test(s);

/** Deeper than any request of ours nests (a body is at most 16 KB): not looked into further. */
const MAX_DEPTH = 32;

/** Where in `value` (a parsed body, the query, the parameters) a string or a key is not text ('' for the top), or null. */
export function notText(value: unknown, at = '', depth = 0): string | null {
  if (typeof value === 'string') return isText(value) ? null : at;
  if (value === null || typeof value !== 'object' || depth >= MAX_DEPTH) return null;
  for (const [key, child] of Object.entries(value)) {
    // a key that is not text is not echoed: its object is named
    if (!isText(key)) return at;
    const here = at === '' ? key : `${at}.${key}`;
    const found = notText(child, here, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

/** The check of every request, before its route validates or reads anything. */
export function registerTextInputCheck(app: FastifyInstance): void {
  // a callback hook, not an async one: every request passes here, and most bring nothing to refuse
  app.addHook('preValidation', (request: FastifyRequest, _reply, done) => {
    // the query where the route reads it: an API route that declares one, or a page (no schema); the API's other routes ignore it
    const schema = request.routeOptions.schema;
    const query = schema === undefined || schema.querystring !== undefined ? request.query : undefined;
    for (const [value, whole] of [
      [request.params, 'path'],
      [query, 'query'],
      [request.body, 'body'],
    ] as const) {
      const field = notText(value);
      if (field !== null) return done(new SlsError('VALIDATION_ERROR', { reason: 'not_text', field: field || whole }));
    }
    done();
  });
}
