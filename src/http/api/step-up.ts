/**
 * Step-up (V1, K11): a portal task asks the signed-in user to verify again
 * with a device. The mobile authenticator answers with a push approval
 * (then `complete`), or offline; other devices answer their challenge. The
 * session's `verifiedAt` tells a portal task when it last happened.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import { FLOW_ERRORS } from '../errors.js';
import type { StepUpView } from '../../flows/activation.js';
import type { Session } from '../../sessions/sessions.js';
import { requestMeta, setSessionCookie, type PresentedToken } from '../session-cookie.js';
import type { SessionGuard } from '../session-guard.js';
import { answerText, ChallengeSchema, WaitQuery } from './schemas.js';

const StepUpSchema = z
  .object({
    id: z.string(),
    state: z
      .enum(['second_factor', 'approved', 'done', 'failed', 'denied', 'expired'])
      .describe('done: verified; approved: approved on the phone, POST complete'),
    deviceId: z.string(),
    challenge: ChallengeSchema.nullable(),
    expiresAt: z.string(),
    attemptsLeft: z.number().int(),
    session: z
      .object({ token: z.string() })
      .optional()
      .describe(
        "V1, L8 (decision 0042): only in the answer that completed the step-up: the session's new token. The token the request came with " +
          'has ended (401 UNAUTHENTICATED from now on); a request made with the session cookie gets the new one in Set-Cookie too',
      ),
  })
  .describe('StepUp');
const StepUpParams = z.object({ id: z.string().max(64) });

export function stepUpApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  /** V1, L8 (decision 0042): the step-up this request completed replaced the session's token: a cookie's browser gets the new one. */
  const rotated = (reply: FastifyReply, token: PresentedToken, session: Session, view: StepUpView): StepUpView => {
    if (view.session && token.via === 'cookie') {
      setSessionCookie(reply, services.config, { token: view.session.token, expiresAt: session.expiresAt }, services.clock.now());
    }
    return view;
  };
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];
    const { stepUp } = services;

    app.post(
      '/step-up',
      {
        schema: {
          operationId: 'startStepUp',
          tags: ['step-up'],
          summary: "Verify again for a portal task (V1): the password, then a push to the mobile authenticator or the device's challenge",
          description:
            "The password of the session's user first, under the login's lock: 401 INVALID_CREDENTIALS, 423 LOCKED. " +
            'Then the device offered first: 403 NO_ACTIVE_DEVICE when none may open the portal. The mobile authenticator gets a push request, ' +
            'or, beyond 5 push requests in the hour (step-ups not approved, logins from unrecognised clients) or for 24 h after a "this wasn\'t me", ' +
            'the app\'s challenge (`type: "ocra"`) instead ' +
            '(push fatigue, K13, decision 0030).',
          security,
          body: z.object({ password: z.string().min(1).max(1024) }),
          response: { 200: StepUpSchema, ...FLOW_ERRORS },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'step_up');
        return stepUp.start(session, request.body.password, requestMeta(request));
      },
    );

    app.get(
      '/step-up/:id',
      {
        schema: {
          operationId: 'getStepUp',
          tags: ['step-up'],
          summary: 'A step-up; with `wait` (seconds, at most 25), answers when it no longer waits for the phone',
          security,
          params: StepUpParams,
          querystring: WaitQuery,
          response: { 200: StepUpSchema, ...FLOW_ERRORS },
        },
      },
      async (request, reply) => {
        const { session } = await guard.require(request, 'step_up');
        const abort = new AbortController();
        reply.raw.once('close', () => abort.abort());
        return stepUp.wait(session, request.params.id, (request.query.wait ?? 0) * 1000, abort.signal);
      },
    );

    app.post(
      '/step-up/:id',
      {
        schema: {
          operationId: 'answerStepUp',
          tags: ['step-up'],
          summary: "Answer the step-up's challenge",
          description:
            'Answered right, the step-up is done and the session gets a new token (`session.token`; the old one ends, decision 0042). ' +
            '401 LOGIN_FAILED with attemptsLeft (3 in all, counted towards the lock); 409 FLOW_STATE while it waits for a push approval; ' +
            '409 DEVICE_NOT_AVAILABLE when the device was revoked, reported lost or no longer shared with the user meanwhile (L8, H: nothing verified).',
          security,
          params: StepUpParams,
          body: z.object({ response: answerText(1) }),
          response: { 200: StepUpSchema, ...FLOW_ERRORS },
        },
      },
      async (request, reply) => {
        const { session, token } = await guard.require(request, 'step_up');
        return rotated(reply, token, session, await stepUp.answer(session, request.params.id, request.body.response));
      },
    );

    app.post(
      '/step-up/:id/offline',
      {
        schema: {
          operationId: 'switchStepUpOffline',
          tags: ['step-up'],
          summary: 'No notification on the phone: a challenge for the app instead (K4)',
          security,
          params: StepUpParams,
          response: { 200: StepUpSchema, ...FLOW_ERRORS },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'step_up');
        return stepUp.offline(session, request.params.id);
      },
    );

    app.post(
      '/step-up/:id/complete',
      {
        schema: {
          operationId: 'completeStepUp',
          tags: ['step-up'],
          summary: 'Take the verification the phone approved (K11)',
          description:
            'Done, the session gets a new token (`session.token`; the old one ends, decision 0042). ' +
            '409 DEVICE_NOT_AVAILABLE when the phone was replaced, revoked or reported lost since it approved (L8: nothing verified); 410 FLOW_EXPIRED; ' +
            '423 LOCKED when the user was locked since the phone approved (L3: the step-up fails, audited).',
          security,
          params: StepUpParams,
          response: { 200: StepUpSchema, ...FLOW_ERRORS },
        },
      },
      async (request, reply) => {
        const { session, token } = await guard.require(request, 'step_up');
        return rotated(reply, token, session, await stepUp.complete(session, request.params.id));
      },
    );
  };
}
