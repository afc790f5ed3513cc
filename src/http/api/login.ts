/** The login flow API (L1–L8). */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import type { IssuedSession } from '../../sessions/sessions.js';
import { ErrorSchema } from '../errors.js';
import { loginMeta, requestMeta, setSessionCookie } from '../session-cookie.js';
import { ClaimBody, ClaimHeaders, FlowParams, FlowSchema, LoginStartBody, LoginStepBody, SessionTokenSchema, StartedFlowSchema, WaitQuery } from './schemas.js';

const DoneSchema = FlowSchema.extend({ session: SessionTokenSchema.optional() });

function sessionToken(session: IssuedSession) {
  return { token: session.token, expiresAt: new Date(session.expiresAt).toISOString(), app: session.app };
}

export function loginApi(services: Services): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();

    app.post(
      '/login',
      {
        schema: {
          operationId: 'startLogin',
          security: [],
          tags: ['login'],
          summary: 'Start a login with username and password (first factor)',
          description:
            'On success the flow waits for the second factor of the device offered first. Errors: 400 BAD_CHARACTER ' +
            '(username not letters and digits), 401 INVALID_CREDENTIALS (same answer for an unknown user), ' +
            '423 LOCKED (10 consecutive failures within 24 h), 403 NO_ACTIVE_DEVICE, 429 TOO_MANY_ATTEMPTS (other attempts ' +
            'of the user are being checked: try again), 429 TOO_MANY_FLOWS (too many logins of the user open or started in ' +
            'the last hour; Retry-After). Keep `claimToken`: a login approved on the phone gives its session only to whoever holds it. ' +
            'O1: a trading login of a user who opted out of the second factor is done at once (state "done", with its `session`). ' +
            'K13: for the mobile authenticator the challenge is a push request (type "push", with the number to type into the app); from a client ' +
            'the user has not logged in from lately it is the app\'s challenge instead (type "ocra", as after /offline) once such logins (and step-ups, ' +
            'decision 0030) sent 5 push requests in the hour, or for 24 h after the user answered "this wasn\'t me" (push fatigue; decision 0026). ' +
            'L8: a session given here (also set as a cookie) ends the session of the cookie the request carried (audited, cause `replaced`); a Bearer token is not ended.',
          body: LoginStartBody,
          response: { 200: StartedFlowSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 423: ErrorSchema, 429: ErrorSchema },
        },
      },
      async (request, reply) => {
        const { session, ...flow } = await services.login.start({ ...request.body, ...loginMeta(request, services.config) });
        if (!session) return flow;
        // O1: opted out of the second factor for trading: the password completed the login
        setSessionCookie(reply, services.config, session, services.clock.now());
        return { ...flow, session: sessionToken(session) };
      },
    );

    app.get(
      '/login/:flowId',
      {
        schema: {
          operationId: 'getLogin',
          security: [],
          tags: ['login'],
          summary: 'The current state of a login flow; with `wait`, the live connection of a login waiting for the phone (K3)',
          description:
            "Only for whoever started the login: its claim token in the header `X-Claim-Token` (L8); without it, or with another login's, " +
            '404 FLOW_NOT_FOUND, as for an unknown id. ' +
            'With `wait` (seconds, at most 25) the answer comes when the flow no longer waits for the mobile authenticator ' +
            '(approved, denied, expired, or its challenge changed), or when the time is up.',
          params: FlowParams,
          querystring: WaitQuery,
          headers: ClaimHeaders,
          response: { 200: FlowSchema, 400: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (request, reply) => {
        const wait = request.query.wait ?? 0;
        const claimToken = request.headers['x-claim-token'];
        if (wait === 0) return services.login.owned(request.params.flowId, claimToken, requestMeta(request));
        const abort = new AbortController();
        reply.raw.once('close', () => abort.abort());
        reply.header('cache-control', 'no-store');
        return services.login.wait(request.params.flowId, claimToken, requestMeta(request), wait * 1000, abort.signal);
      },
    );

    app.post(
      '/login/:flowId/session',
      {
        schema: {
          operationId: 'claimLoginSession',
          security: [],
          tags: ['login'],
          summary: 'Take the session of a login approved on the phone (K3)',
          description:
            'Once the flow is `approved`, the session is created (also set as a cookie), once, for the holder of the ' +
            "login's `claimToken`. 404 FLOW_NOT_FOUND (not the token of this login, as for an unknown id), 409 FLOW_STATE (not approved yet), " +
            '410 FLOW_EXPIRED (denied, expired, or already taken); 409 DEVICE_NOT_AVAILABLE when the phone was revoked or reported lost since it approved (L8); ' +
            '423 LOCKED when the user was locked since the phone approved (L3: ten failed logins meanwhile, or client services; the login fails, audited). ' +
            'With `wait` (seconds, at most 25) the claim is also the live connection of the login waiting for the phone: it answers as soon as ' +
            'the phone approved, with the session (one request instead of `GET ?wait` then this), or 410 as soon as it was denied or expired, ' +
            'or 409 FLOW_STATE when still not approved after `wait`. The claim token is checked before it waits. ' +
            'The new session ends the session of the cookie the request carried (L8, audited `replaced`); a Bearer token is not ended.',
          params: FlowParams,
          querystring: WaitQuery,
          body: ClaimBody,
          response: { 200: DoneSchema, 400: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema, 410: ErrorSchema, 423: ErrorSchema },
        },
      },
      async (request, reply) => {
        const wait = request.query.wait ?? 0;
        const abort = new AbortController();
        if (wait > 0) {
          reply.raw.once('close', () => abort.abort());
          reply.header('cache-control', 'no-store');
        }
        const { flow, session } = await services.login.claim(request.params.flowId, request.body.claimToken, loginMeta(request, services.config), {
          ms: wait * 1000,
          abort: abort.signal,
        });
        setSessionCookie(reply, services.config, session, services.clock.now());
        return { ...flow, session: sessionToken(session) };
      },
    );

    app.post(
      '/login/:flowId/offline',
      {
        schema: {
          operationId: 'switchLoginOffline',
          security: [],
          tags: ['login'],
          summary: 'No notification on the phone: a challenge to type into the app instead (K4)',
          description:
            'The push request is withdrawn; the flow shows an 8-digit challenge whose response the app computes offline. 409 FLOW_STATE when the login does not wait for a push. ' +
            "L8: only with the login's claim token (header `X-Claim-Token`): without it 404 FLOW_NOT_FOUND.",
          params: FlowParams,
          headers: ClaimHeaders,
          response: { 200: FlowSchema, 404: ErrorSchema, 409: ErrorSchema, 410: ErrorSchema },
        },
      },
      async (request) => services.login.offline(request.params.flowId, request.headers['x-claim-token'], requestMeta(request)),
    );

    app.post(
      '/login/:flowId',
      {
        schema: {
          operationId: 'answerLogin',
          security: [],
          tags: ['login'],
          summary: 'Answer the challenge, or switch to another device',
          description:
            'Only for whoever started the login: its claim token in the header `X-Claim-Token` (L8); without it 404 FLOW_NOT_FOUND, as for ' +
            'an unknown id, and nothing is counted. ' +
            '`{"response"}` answers the challenge: 200 with state "done" and a session (also set as a cookie), which ends the session ' +
            'of the cookie the request carried (L8, audited `replaced`; a Bearer token is not ended); ' +
            '401 LOGIN_FAILED (with hints and attemptsLeft); 410 FLOW_EXPIRED after 5 minutes, 3 wrong answers or once used; ' +
            '423 LOCKED; 429 TOO_MANY_ATTEMPTS (other answers of the user are being checked at this moment; nothing was counted); ' +
            '409 DEVICE_NOT_AVAILABLE when the device was revoked, reported lost or no longer shared with the user meanwhile (L8, nothing counted). ' +
            '`{"device"}` switches to another active device of the user and returns its challenge (M2FS).',
          params: FlowParams,
          headers: ClaimHeaders,
          body: LoginStepBody,
          response: {
            200: DoneSchema,
            400: ErrorSchema,
            401: ErrorSchema,
            404: ErrorSchema,
            409: ErrorSchema,
            410: ErrorSchema,
            423: ErrorSchema,
            429: ErrorSchema,
          },
        },
      },
      async (request, reply) => {
        if (request.body.device !== undefined) {
          return services.login.switchDevice(request.params.flowId, request.headers['x-claim-token'], request.body.device, requestMeta(request));
        }
        const { flow, session } = await services.login.answer(
          request.params.flowId,
          request.headers['x-claim-token'],
          request.body.response!,
          loginMeta(request, services.config),
        );
        setSessionCookie(reply, services.config, session, services.clock.now());
        return { ...flow, session: sessionToken(session) };
      },
    );

    app.post(
      '/login/:flowId/code',
      {
        schema: {
          operationId: 'resendLoginCode',
          security: [],
          tags: ['login'],
          summary: 'Request a new security code by SMS or voice (M5)',
          description:
            '"Didn\'t receive a security code?" / "Request new Security Code": a new code replaces the old one, sent by SMS or read ' +
            'by an automated call (`voice`). Wrong answers already given still count. The answer is the flow; its challenge tells ' +
            'whether the gateway took the message (`delivery`). Errors: 409 FLOW_STATE (the login does not use SMS), ' +
            '429 SMS_TOO_SOON (wait until `resendAfter`), 429 SMS_RATE_LIMITED (send limits of the number or user, or of this login), 410 FLOW_EXPIRED; ' +
            "L8: only with the login's claim token (header `X-Claim-Token`): without it 404 FLOW_NOT_FOUND.",
          params: FlowParams,
          headers: ClaimHeaders,
          body: z.object({ channel: z.enum(['sms', 'voice']).describe('sms, or voice for an automated call that reads the code') }),
          response: { 200: FlowSchema, 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema, 410: ErrorSchema, 429: ErrorSchema },
        },
      },
      async (request) => services.login.resendCode(request.params.flowId, request.headers['x-claim-token'], request.body.channel, requestMeta(request)),
    );
  };
}
