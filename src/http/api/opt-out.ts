/**
 * Secure Login Settings (O1-O3): whether the user's trading logins ask for
 * the Secure Login Device, the restrictions while they do not, and opting
 * out and back in. A change needs the right to change the security
 * settings (A2, O3: 403 NOT_PRIMARY_USER naming the primary user) and a
 * fresh step-up (V1, X7: 403 STEP_UP_REQUIRED), as every change of the
 * security settings.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import { ErrorSchema } from '../errors.js';
import { requestMeta } from '../session-cookie.js';
import type { SessionGuard } from '../session-guard.js';

const Usd = z.number().nullable().describe('USD; null: unlimited');

export const SecureLoginSchema = z
  .object({
    username: z.string(),
    account: z.string(),
    tradingSecondFactor: z
      .enum(['always', 'opted_out'])
      .describe('always: every login asks for the Secure Login Device; opted_out: trading logins take the password alone (O1); the portal always asks'),
    optedOutAt: z.string().nullable().describe('When the user opted out (ISO 8601), or null'),
    restrictions: z
      .object({
        otcTrading: z.boolean().describe('May trade Pink Sheet and OTCBB stocks (false while opted out)'),
        withdrawalLimits: z
          .object({ device: z.string().describe('The device that sets the limits (W1), or none'), perDayUsd: Usd, fiveBusinessDaysUsd: Usd })
          .describe('W1: the "None" row while opted out'),
      })
      .nullable()
      .describe('What the user may do (null for staff users, who never trade)'),
    mayChange: z.boolean().describe('Whether this user may change the setting (A2, O3)'),
    primaryUser: z.string().nullable().describe('When not: the user who may (the primary user)'),
  })
  .describe('SecureLoginSettings');

const ChangedSchema = SecureLoginSchema.extend({ changed: z.boolean().describe('false: it was already so; nothing was changed, audited or sent') });

export type SecureLoginView = z.infer<typeof SecureLoginSchema>;

/** The user's Secure Login Settings, for the API and the pages. */
export async function secureLoginView(services: Services, userId: string): Promise<SecureLoginView> {
  const user = await services.users.get(userId);
  const state = await services.optOuts.state(user.id);
  const mayChange = await services.securityRights.mayChange(user.id);
  let restrictions: SecureLoginView['restrictions'] = null;
  if (user.role === 'client') {
    const { standing, entitlements } = await services.withdrawals.entitlements(user.accountNumber, user.username);
    restrictions = {
      otcTrading: entitlements.otcTrading,
      withdrawalLimits: { device: standing.device, perDayUsd: standing.limit.perDayUsd, fiveBusinessDaysUsd: standing.limit.fiveBusinessDaysUsd },
    };
  }
  return {
    username: user.username,
    account: user.accountNumber,
    tradingSecondFactor: state.optedOut ? 'opted_out' : 'always',
    optedOutAt: state.since === null ? null : new Date(state.since).toISOString(),
    restrictions,
    mayChange,
    primaryUser: mayChange ? null : await services.securityRights.holder(user.accountId),
  };
}

export function optOutApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];
    const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema };

    app.get(
      '/secure-login',
      {
        schema: {
          tags: ['secure-login'],
          summary: 'Your Secure Login Settings: whether trading logins ask for the device, and the restrictions while they do not (O1)',
          operationId: 'getSecureLoginSettings',
          security,
          response: { 200: SecureLoginSchema, 401: ErrorSchema, 403: ErrorSchema },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'portal');
        return secureLoginView(services, session.userId);
      },
    );

    app.post(
      '/secure-login/opt-out',
      {
        schema: {
          tags: ['secure-login'],
          summary: 'Opt out of the Secure Login System for trading: trading logins take the password alone (O1)',
          description:
            'The portal still asks for the device. While opted out: no Pink Sheet / OTCBB trading, withdrawal limits of the "None" row ' +
            '(USD 50,000 a day, 100,000 in 5 business days), no W2 benefits. Needs `acknowledgeRisks: true` (the security warnings were read) ' +
            'and `confirmation`, the username typed again: 400 OPT_OUT_NOT_CONFIRMED otherwise. 403 NOT_PRIMARY_USER (O3), STEP_UP_REQUIRED (V1), PERMANENT_DEVICE_REQUIRED (a step-up with temporary access, T3), STRONGER_DEVICE_REQUIRED (a step-up with a device weaker than the user’s strongest, D2: SMS while a DSC+ protects the user); ' +
            '409 OPT_OUT_NOT_CLIENT for staff users. Audited; a notice is sent (N1).',
          operationId: 'optOutOfSecureLogin',
          security,
          body: z.object({
            acknowledgeRisks: z.boolean().describe('The user read the warnings and accepts the restrictions'),
            confirmation: z.string().max(256).describe('The username, typed again'),
          }),
          response: { 200: ChangedSchema, ...errors },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'security');
        await guard.requireProofToAdd(request, session, null);
        const { changed } = await services.optOuts.optOut(
          session.userId,
          { acknowledged: request.body.acknowledgeRisks, confirmation: request.body.confirmation },
          { actor: `user:${session.userId}`, ip: requestMeta(request).ip },
        );
        return { ...(await secureLoginView(services, session.userId)), changed };
      },
    );

    app.post(
      '/secure-login/opt-in',
      {
        schema: {
          tags: ['secure-login'],
          summary: 'Opt back in: "I want to always use my Secure Login Device when logging in" (O2)',
          description:
            'Every login asks for the device again and the restrictions end. A user without an active device may opt back in: ' +
            'the next trading login asks for a device as usual. 403 NOT_PRIMARY_USER (O3), STEP_UP_REQUIRED (V1). Audited; a notice is sent (N1).',
          operationId: 'optBackIntoSecureLogin',
          security,
          response: { 200: ChangedSchema, ...errors },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'security');
        const { changed } = await services.optOuts.optIn(session.userId, { actor: `user:${session.userId}`, ip: requestMeta(request).ip });
        return { ...(await secureLoginView(services, session.userId)), changed };
      },
    );
  };
}
