/**
 * X1: what a reader of the audit log may ask for, from the command line or
 * the admin API, checked once: a time range in ISO 8601, an event type (or a
 * family, `login.*`), a username, a page size and the cursor of the page
 * before. Bad input is a VALIDATION_ERROR that says which part is wrong.
 */
import { z } from 'zod';
import { SlsError } from '../errors.js';
import type { AuditQuery } from './audit-log.js';

/** A date (`2026-03-01`, midnight UTC) or a date and time with its offset (`2026-03-01T09:30:00Z`, `…+01:00`). */
export const AuditTime = z.union([z.iso.datetime({ offset: true }), z.iso.date()]);

/** An event name (`login.locked`) or every event of a family (`login.*`). */
export const AuditType = z
  .string()
  .max(64)
  .regex(/^[a-z][a-z_]*(\.[a-z][a-z_]*)*(\.\*)?$/);

/** The `next` of the page before: entries older than it follow. */
export const AuditCursor = z.string().regex(/^[1-9]\d{0,14}$/);

export interface AuditFilterInput {
  since?: string | undefined;
  until?: string | undefined;
  type?: string | undefined;
  user?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

export interface AuditFilterLimits {
  defaultLimit: number;
  maxLimit: number;
}

function time(value: string | undefined, field: 'since' | 'until'): number | undefined {
  if (value === undefined) return undefined;
  if (!AuditTime.safeParse(value).success) throw new SlsError('VALIDATION_ERROR', { reason: 'audit_time', field });
  return Date.parse(value);
}

export function parseAuditFilter(input: AuditFilterInput, limits: AuditFilterLimits): AuditQuery & { limit: number } {
  const since = time(input.since, 'since');
  const until = time(input.until, 'until');
  if (since !== undefined && until !== undefined && since >= until) throw new SlsError('VALIDATION_ERROR', { reason: 'audit_range' });
  if (input.type !== undefined && !AuditType.safeParse(input.type).success) throw new SlsError('VALIDATION_ERROR', { reason: 'audit_type' });
  if (input.user !== undefined && (input.user.length === 0 || input.user.length > 64)) throw new SlsError('VALIDATION_ERROR', { reason: 'audit_user' });
  const limit = input.limit ?? limits.defaultLimit;
  if (!Number.isInteger(limit) || limit < 1 || limit > limits.maxLimit) throw new SlsError('VALIDATION_ERROR', { reason: 'audit_limit', max: limits.maxLimit });
  if (input.cursor !== undefined && !AuditCursor.safeParse(input.cursor).success) throw new SlsError('VALIDATION_ERROR', { reason: 'audit_cursor' });
  return {
    limit,
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(input.type !== undefined ? { type: input.type } : {}),
    ...(input.user !== undefined ? { username: input.user } : {}),
    ...(input.cursor !== undefined ? { before: Number(input.cursor) } : {}),
  };
}
