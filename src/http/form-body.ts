/**
 * X3: the pages' form bodies (application/x-www-form-urlencoded) read as
 * strictly as the API's JSON (errors.ts): text is UTF-8 or refused, never
 * changed on the way in. Another charset named is 415 UNSUPPORTED_MEDIA_TYPE;
 * bytes that are not UTF-8, a %-escape of bytes that are not (Latin-1's %E9,
 * half a surrogate pair's %ED%A0%80) or no escape at all (%zz) are 400
 * VALIDATION_ERROR. Read leniently (as @fastify/formbody did), a new password
 * typed in Latin-1 was stored as U+FFFD for each letter beyond ASCII (so
 * "Grüne" and "Grøne" were one password, and neither the one typed), and an
 * escape the decoder could not read was kept as its letters.
 *
 * A field sent more than once is an array, as before (the routes refuse it
 * where text goes); the object has no prototype (no __proto__ pollution).
 */
import type { FastifyInstance } from 'fastify';
import { SlsError } from '../errors.js';
import { charsetOf } from './errors.js';

const FORM_BODY_CONTENT_TYPE = 'application/x-www-form-urlencoded';

/** What a page's form may weigh. */
export const FORM_BODY_LIMIT = 16 * 1024;

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

export type FormBody = Record<string, string | string[]>;

/** One name or value: `+` is a space, every %-escape one of UTF-8 (URIError otherwise). */
const decode = (part: string): string => decodeURIComponent(part.replaceAll('+', ' '));

/** A url-encoded form's fields; VALIDATION_ERROR (reason not_utf8) when an escape is not of UTF-8 text. */
export function parseForm(text: string): FormBody {
  const fields: FormBody = Object.create(null);
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    let name: string;
    let value: string;
    try {
      name = decode(at === -1 ? pair : pair.slice(0, at));
      value = at === -1 ? '' : decode(pair.slice(at + 1));
    } catch {
      throw new SlsError('VALIDATION_ERROR', { reason: 'not_utf8' });
    }
    const had = fields[name];
    fields[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  return fields;
}

/** The url-encoded body parser of a plugin's scope (the pages'). */
export function registerFormBody(app: FastifyInstance): void {
  app.addContentTypeParser(FORM_BODY_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: FORM_BODY_LIMIT }, (request, body, done) => {
    const charset = charsetOf(request.headers['content-type']);
    if (charset !== null && charset !== 'utf-8' && charset !== 'utf8')
      return done(new SlsError('UNSUPPORTED_MEDIA_TYPE', { reason: 'form_charset' }), undefined);
    let text: string;
    try {
      text = STRICT_UTF8.decode(body as Buffer);
    } catch {
      return done(new SlsError('VALIDATION_ERROR', { reason: 'not_utf8' }), undefined);
    }
    try {
      return done(null, parseForm(text));
    } catch (error) {
      return done(error as Error, undefined);
    }
  });
}
