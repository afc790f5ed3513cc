/**
 * The admin API (X1): the audit log by time range, event type and user, a
 * page at a time, for staff with the `admin` role, who call it with the
 * Bearer token of their own two-factor session. Every query is itself
 * audited (`audit.queried`, with the admin's id).
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import type { User } from '../../identity/users.js';
import { AuditCursor, AuditTime, AuditType, parseAuditFilter } from '../../audit/audit-query.js';
import { ErrorSchema } from '../errors.js';
import { STAFF_STEP_UP } from './schemas.js';
import { requestMeta } from '../session-cookie.js';
import type { SessionGuard } from '../session-guard.js';
import { API_KEY_SECURITY, type ApiKeyGuard } from '../api-key-guard.js';

export const AUDIT_PAGE_DEFAULT = 100;
export const AUDIT_PAGE_MAX = 1000;

const AuditEntrySchema = z
  .object({
    seq: z.number().int().describe('Position in the chain, from 1'),
    at: z.string().describe('When (ISO 8601, UTC)'),
    event: z.string().describe('What happened, e.g. login.succeeded'),
    actor: z.string().nullable().describe('Who did it: user:<id>, staff:<id>, cli, system'),
    userId: z.string().nullable(),
    username: z.string().nullable(),
    ip: z.string().nullable(),
    data: z.record(z.string(), z.unknown()).describe('Ids, states and reasons; never secrets'),
    hash: z.string().describe('The keyed hash that chains the entry (compare with a checkpoint)'),
  })
  .describe('AuditEntry');

const AuditQuerystring = z.object({
  since: AuditTime.optional().describe('Entries at or after this date or time (ISO 8601: 2026-03-01 or 2026-03-01T09:30:00Z)'),
  until: AuditTime.optional().describe('Entries before this date or time (ISO 8601)'),
  type: AuditType.optional().describe('An event (login.locked) or a family of events (login.*)'),
  user: z.string().min(1).max(64).optional().describe('Entries about this username'),
  limit: z
    .string()
    .regex(/^\d{1,4}$/)
    .transform(Number)
    .pipe(z.number().int().min(1).max(AUDIT_PAGE_MAX))
    .optional()
    .describe(`Entries per page, 1 to ${AUDIT_PAGE_MAX} (default ${AUDIT_PAGE_DEFAULT})`),
  cursor: AuditCursor.optional().describe('The next page: the "next" of the page before'),
});

const EquityBody = z.object({
  equityUsd: z.number().min(0).max(1e13).multipleOf(0.01).describe('The account equity in USD, cents at most; it decides DSC+ eligibility (C1)'),
});

const AccountSchema = z
  .object({
    account: z.string().describe('The account number'),
    equityUsd: z.number(),
    dscPlusEligible: z.boolean().describe('C1: equity above the threshold'),
  })
  .describe('AccountEquity');

export function adminApi(services: Services, guard: SessionGuard, apiKeys: ApiKeyGuard): FastifyPluginAsync {
  /**
   * The admin behind the request's session (a staff session of full scope,
   * T3, A5): to read; to act (`staff_action`), with a fresh step-up as well
   * (V1, X7: 403 STEP_UP_REQUIRED otherwise).
   */
  async function adminOf(request: FastifyRequest, need: 'staff' | 'staff_action'): Promise<User> {
    // X1, X7 (decision 0034): a role below admin asking the admin API is refused before the step-up, audited
    const role = (userId: string) => services.helpDesk.admin(userId, 'admin', request.url.split('?')[0]!);
    const { session } = await guard.require(request, need, role);
    return role(session.userId);
  }

  /**
   * A6, X7 (decision 0034): the staff member who may act (client services or an admin: the console's rule for the same
   * change), with a fresh step-up; any other role 403 FORBIDDEN_ROLE before the step-up, audited.
   */
  async function actingStaffOf(request: FastifyRequest): Promise<string> {
    const role = (userId: string) => services.helpDesk.staff(userId, 'act');
    const { session } = await guard.require(request, 'staff_action', role);
    await role(session.userId);
    return session.userId;
  }

  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();

    app.get(
      '/admin/audit',
      {
        schema: {
          tags: ['admin'],
          summary: 'The audit log, newest first, by time range, event type and user (X1)',
          description:
            'Staff with the admin role only. A page holds at most `limit` entries; `next` is the cursor of the following page ' +
            '(null on the last). Times are ISO 8601; `since` is inclusive, `until` exclusive.',
          operationId: 'listAuditEntries',
          security: [{ bearer: [] }],
          querystring: AuditQuerystring,
          response: {
            200: z.object({ entries: z.array(AuditEntrySchema), next: z.string().nullable() }),
            400: ErrorSchema,
            401: ErrorSchema,
            403: ErrorSchema,
          },
        },
      },
      async (request) => {
        const admin = await adminOf(request, 'staff');
        const query = parseAuditFilter(request.query, { defaultLimit: AUDIT_PAGE_DEFAULT, maxLimit: AUDIT_PAGE_MAX });
        const page = await services.audit.page(query);
        const { since, until, type, user, cursor } = request.query;
        await services.audit.record({
          event: 'audit.queried',
          actor: `staff:${admin.id}`,
          ip: requestMeta(request).ip,
          data: { since, until, type, user, cursor, entries: page.entries.length },
        });
        return {
          entries: page.entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
          next: page.next === null ? null : String(page.next),
        };
      },
    );

    app.put(
      '/admin/accounts/:number/equity',
      {
        schema: {
          tags: ['admin'],
          summary: 'Set the equity of an account (A6)',
          description:
            'Staff who may act for clients (client services or an admin, as in the console: one rule, decision 0034; compliance and clients 403 FORBIDDEN_ROLE), ' +
            'with the Bearer token of their own session, or an integrator with an API key of the `accounts` scope ' +
            '(`sls apikey create --scope accounts`). The equity decides whether the account may request a ' +
            'DSC+ (C1). 404 ACCOUNT_NOT_FOUND; 400 VALIDATION_ERROR for a negative amount or more than two decimals; staff are refused 403 STAFF_TARGET_FORBIDDEN ' +
            "on their own account, a staff member's but by an admin, or an admin's (X7, decision 0010; `sls account set-equity` instead), and an API key 403 STAFF_TARGET_FORBIDDEN " +
            '(reason `apikey`, audited as `account.equity_refused`) on an account with a staff member behind it: a staff username, or a client username of a staff ' +
            "member's entity (X7: only an admin acts on staff). Audited. A staff session: " +
            STAFF_STEP_UP,
          operationId: 'setAccountEquity',
          security: [{ bearer: [] }, ...API_KEY_SECURITY],
          params: z.object({ number: z.string().max(16).describe('The account number, e.g. U1234567') }),
          body: EquityBody,
          response: { 200: AccountSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (request) => {
        // A6: the back office's integration sets it with its API key; staff with their session, under X7 and the role as in the console
        const key = apiKeys.presented(request) ? await apiKeys.require(request, 'accounts') : null;
        const account = key
          ? await apiKeys.writing(request, key, 'accounts', (stillValid) =>
              services.users.setEquity(request.params.number, request.body.equityUsd, `apikey:${key.id}`, { clientsOnly: true, stillValid }),
            )
          : await services.helpDesk.setAccountEquity(await actingStaffOf(request), request.params.number, request.body.equityUsd);
        return {
          account: account.accountNumber,
          equityUsd: account.equityUsd,
          dscPlusEligible: account.equityUsd > services.config.policy.dscPlusMinEquityUsd,
        };
      },
    );
  };
}
