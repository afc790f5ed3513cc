/**
 * X2, X3: why a schema (zod) refused a value, in words of the translation
 * files (validation.*) rather than zod's own English. The machine-readable
 * facts (the issue's code, the limits, the values allowed) become the
 * values of the text; a schema's own message is a reason of words, looked
 * up as validation.custom.<words joined by _> ("account number":
 * validation.custom.account_number).
 */
import type { Told } from '../errors.js';
import { hasTranslation } from './i18n.js';

/** A schema issue as zod (and fastify-type-provider-zod's params) carry it. */
export interface SchemaIssue {
  code: string;
  message: string;
  expected?: unknown;
  origin?: unknown;
  format?: unknown;
  maximum?: unknown;
  minimum?: unknown;
  inclusive?: unknown;
  values?: unknown;
  keys?: unknown;
  divisor?: unknown;
}

const TYPES = new Set(['string', 'number', 'int', 'boolean', 'object', 'array']);
const NUMBERS = new Set(['number', 'int', 'bigint']);
const LISTS = new Set(['array', 'set']);

/** The key of a schema's own message (a reason of words), when the files have it. */
export function customReasonKey(message: string): string | null {
  const key = `validation.custom.${message.replace(/\W+/g, '_')}`;
  return hasTranslation(key, 'en') ? key : null;
}

const number = (value: unknown): string | number => (typeof value === 'number' ? value : String(value));
const literal = (value: unknown): string => (typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value)));

/**
 * The reason for people of one issue. `missing`: the value was not given at
 * all (zod says "expected string, received undefined": told as required).
 */
export function issueReason(issue: SchemaIssue, missing = false): Told {
  const own = customReasonKey(issue.message);
  if (own) return { key: own };
  const origin = String(issue.origin ?? '');
  switch (issue.code) {
    case 'invalid_type': {
      if (missing) return { key: 'validation.required' };
      const expected = String(issue.expected ?? '');
      return TYPES.has(expected) ? { key: `validation.type_${expected}` } : { key: 'validation.type', params: { expected } };
    }
    case 'too_big': {
      const maximum = number(issue.maximum);
      if (origin === 'string') return { key: 'validation.too_big_string', params: { maximum } };
      if (LISTS.has(origin)) return { key: 'validation.too_big_list', params: { maximum } };
      if (NUMBERS.has(origin))
        return { key: issue.inclusive === false ? 'validation.too_big_number_exclusive' : 'validation.too_big_number', params: { maximum } };
      return { key: 'validation.too_big' };
    }
    case 'too_small': {
      const minimum = number(issue.minimum);
      if (origin === 'string') return minimum === 1 ? { key: 'validation.empty' } : { key: 'validation.too_small_string', params: { minimum } };
      if (LISTS.has(origin)) return minimum === 1 ? { key: 'validation.empty_list' } : { key: 'validation.too_small_list', params: { minimum } };
      if (NUMBERS.has(origin))
        return { key: issue.inclusive === false ? 'validation.too_small_number_exclusive' : 'validation.too_small_number', params: { minimum } };
      return { key: 'validation.too_small' };
    }
    case 'invalid_value': {
      const values = Array.isArray(issue.values) ? issue.values.map(literal) : [];
      if (values.length === 1) return { key: 'validation.invalid_value_one', params: { value: values[0]! } };
      return { key: 'validation.invalid_value', params: { values: values.join(', ') } };
    }
    case 'invalid_format': {
      const format = String(issue.format ?? '');
      return format === 'email' || format === 'url' ? { key: `validation.invalid_format_${format}` } : { key: 'validation.invalid_format' };
    }
    case 'unrecognized_keys':
      return { key: 'validation.unrecognized_keys', params: { keys: Array.isArray(issue.keys) ? issue.keys.map(String).join(', ') : '' } };
    case 'not_multiple_of':
      return { key: 'validation.not_multiple_of', params: { divisor: number(issue.divisor) } };
    case 'invalid_union':
      return { key: 'validation.invalid_union' };
    case 'invalid_key':
      return { key: 'validation.invalid_key' };
    case 'invalid_element':
      return { key: 'validation.invalid_element' };
    default:
      return { key: 'validation.invalid' };
  }
}

/** An issue of a field: its path (as the code gave it, machine-readable) and its reason. */
export function fieldIssue(path: string, reason: Told): Told {
  return { key: 'validation.issue', params: { path, reason } };
}
