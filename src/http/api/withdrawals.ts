/**
 * The entitlement API for a broker's back office (W1-W3, I3; docs/entitlements.md):
 * "may this account withdraw X now?", the record of an accepted withdrawal,
 * and the account's W1 limits and W2 entitlements. Integrators call it with
 * an API key of scope `withdrawals`, never with a user's session.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import type { Standing, WithdrawalCheck } from '../../entitlements/withdrawals.js';
import { ErrorSchema } from '../errors.js';
import { API_KEY_SECURITY, type ApiKeyGuard } from '../api-key-guard.js';

const Account = z
  .string()
  // X2: told as validation.custom.account_number (4 to 16 upper-case letters or digits)
  .regex(/^[A-Z0-9]{4,16}$/, 'account number')
  .describe('The account number');
const Username = z
  .string()
  .min(1)
  .max(64)
  .describe('Optional: the username asking; its device sets the limit (default: the least protected user of the account)');
const Amount = z
  .union([z.number(), z.string().max(32)])
  .describe('In the currency, positive, at most 2 decimals; a JSON number or a decimal string ("1500.50")');
const Currency = z
  .string()
  // X2: told as validation.custom.currency_code (an ISO 4217 code such as USD or EUR)
  .regex(/^[A-Z]{3}$/, 'currency code')
  .describe('ISO 4217; USD, or a currency the operator gave a rate (sls fx set)');
const Reference = z
  .string()
  // X2: told as validation.custom.withdrawal_reference (1 to 64 letters, digits or . _ : / -)
  .regex(/^[A-Za-z0-9._:/-]{1,64}$/, 'withdrawal reference')
  .describe("The back office's own reference: a withdrawal is recorded once per account and reference");

const Usd = z.number().nullable().describe('USD; null: unlimited');
const StandingShape = {
  account: z.string(),
  device: z.string().describe('The device type that sets the limit (W1): dscplus, security_key, mobile, scc, sms, or none'),
  username: z.string().nullable().describe('The user whose device sets the limit'),
  limit: z.object({ perDayUsd: Usd, fiveBusinessDaysUsd: Usd }).describe('W1'),
  used: z.object({ dayUsd: z.number(), fiveBusinessDaysUsd: z.number() }).describe('USD withdrawn in each window'),
  remaining: z.object({ dayUsd: Usd, fiveBusinessDaysUsd: Usd }).describe('USD still allowed in each window'),
  businessDay: z.string().describe('The business day the windows end with (YYYY-MM-DD); a weekend or holiday counts towards the next'),
  windows: z.object({ dayFrom: z.string(), fiveBusinessDaysFrom: z.string() }).describe('Where each window starts (ISO 8601); both end now'),
};

const CheckSchema = z
  .object({
    allowed: z.boolean(),
    reason: z.enum(['DAILY_LIMIT', 'FIVE_BUSINESS_DAYS_LIMIT']).optional().describe('Why not, when not allowed'),
    amount: z.number(),
    currency: z.string(),
    usdPerUnit: z.string().describe('The rate used (USD per unit)'),
    amountUsd: z.number(),
    ...StandingShape,
  })
  .describe('WithdrawalCheck');

const RecordedSchema = z
  .object({
    id: z.string(),
    reference: z.string(),
    recordedAt: z.string(),
    replayed: z.boolean().describe('The reference was recorded before with the same amount: nothing new was recorded'),
    amount: z.number(),
    currency: z.string(),
    amountUsd: z.number(),
    ...StandingShape,
  })
  .describe('RecordedWithdrawal');

const EntitlementsSchema = z
  .object({
    ...StandingShape,
    entitlements: z
      .object({
        enrolled: z.boolean().describe('Protected by a permanent device'),
        changeBankingInstructions: z.boolean().describe('May change banking instructions without contact from the security team'),
        changeEmail: z.boolean().describe('May change the e-mail address without contact from the security team'),
        achEftBeyondInitialFunding: z.boolean().describe('May make ACH and EFT deposits beyond the initial funding'),
        initialFundingUsd: z.number().describe('The initial ACH/EFT funding allowed without enrolment'),
        shareDevice: z.boolean().describe('May share one device among the entity’s usernames (H1 still applies)'),
        otcTrading: z
          .boolean()
          .describe(
            'O1: may trade Pink Sheet and OTCBB stocks; false while the user (or, unnamed, any user of the account) opted out of the second factor for trading',
          ),
      })
      .describe('W2'),
  })
  .describe('Entitlements');

const iso = (ms: number) => new Date(ms).toISOString();

function standingView(s: Standing) {
  return {
    account: s.account,
    device: s.device,
    username: s.username,
    limit: s.limit,
    used: s.used,
    remaining: s.remaining,
    businessDay: s.businessDay,
    windows: { dayFrom: iso(s.windows.dayFrom), fiveBusinessDaysFrom: iso(s.windows.fiveBusinessDaysFrom) },
  };
}

function checkView(c: WithdrawalCheck) {
  return {
    allowed: c.allowed,
    ...(c.reason ? { reason: c.reason } : {}),
    amount: c.amount,
    currency: c.currency,
    usdPerUnit: c.usdPerUnit,
    amountUsd: c.amountUsd,
    ...standingView(c),
  };
}

export function withdrawalsApi(services: Services, keys: ApiKeyGuard): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema };

    app.post(
      '/withdrawals/check',
      {
        schema: {
          tags: ['entitlements'],
          summary: 'May this account withdraw this amount now? (W1, W3)',
          description:
            'Records nothing. The limit is W1’s row of the device that protects the account; the windows roll by business day. ' +
            '400 CURRENCY_UNKNOWN for a currency without a rate, or (reason `stale`) whose rate is older than SLS_FX_RATE_MAX_AGE_HOURS ' +
            '(decision 0040); 404 ACCOUNT_NOT_FOUND.',
          operationId: 'checkWithdrawal',
          security: API_KEY_SECURITY,
          body: z.object({ account: Account, amount: Amount, currency: Currency, username: Username.optional() }),
          response: { 200: CheckSchema, ...errors },
        },
      },
      async (request) => {
        await keys.require(request, 'withdrawals');
        return checkView(await services.withdrawals.check(request.body));
      },
    );

    app.post(
      '/withdrawals',
      {
        schema: {
          tags: ['entitlements'],
          summary: 'Record an accepted withdrawal, if it fits the limits (W3)',
          description:
            'Checked and recorded atomically: concurrent withdrawals, on any server process, never together pass a limit; ' +
            'the limit is read in one state of the account, never from opt-outs, devices or sharings changing meanwhile (W1, O1). ' +
            '201 recorded; 200 the same reference recorded before with the same amount (nothing new); ' +
            '409 WITHDRAWAL_LIMIT_EXCEEDED (nothing recorded; the refusal is audited); 409 WITHDRAWAL_REFERENCE_CONFLICT (the reference was used for another amount); ' +
            '400 CURRENCY_UNKNOWN for a currency without a rate, or (reason `stale`) whose rate is older than SLS_FX_RATE_MAX_AGE_HOURS ' +
            '(decision 0040; nothing recorded); ' +
            '401 API_KEY_REVOKED also when the key is revoked while the request is under way (nothing recorded).',
          operationId: 'recordWithdrawal',
          security: API_KEY_SECURITY,
          body: z.object({ account: Account, amount: Amount, currency: Currency, reference: Reference, username: Username.optional() }),
          response: { 200: RecordedSchema, 201: RecordedSchema, ...errors, 409: ErrorSchema },
        },
      },
      async (request, reply) => {
        const key = await keys.require(request, 'withdrawals');
        const recorded = await keys.writing(request, key, 'withdrawals', (stillValid) =>
          services.withdrawals.record(request.body, { apiKeyId: key.id, ip: request.ip ?? null, stillValid }),
        );
        const c = recorded.check;
        return reply.status(recorded.replayed ? 200 : 201).send({
          id: recorded.id,
          reference: recorded.reference,
          recordedAt: iso(recorded.recordedAt),
          replayed: recorded.replayed,
          amount: c.amount,
          currency: c.currency,
          amountUsd: c.amountUsd,
          ...standingView(c),
        });
      },
    );

    app.get(
      '/entitlements',
      {
        schema: {
          tags: ['entitlements'],
          summary: 'The account’s withdrawal limits, what is left, and its entitlements (W1, W2)',
          description: 'Decided by the device that protects the account (or the named user).',
          operationId: 'getEntitlements',
          security: API_KEY_SECURITY,
          querystring: z.object({ account: Account, username: Username.optional() }),
          response: { 200: EntitlementsSchema, ...errors },
        },
      },
      async (request) => {
        await keys.require(request, 'withdrawals');
        const { standing, entitlements } = await services.withdrawals.entitlements(request.query.account, request.query.username);
        return { ...standingView(standing), entitlements };
      },
    );
  };
}
