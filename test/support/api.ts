/** Small helpers to drive the JSON API through the real HTTP stack (Fastify inject). */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { CardFile } from '../../src/devices/devices.js';
import { PASSWORD, cardAnswer } from './harness.js';

export interface Json {
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the tests
  [key: string]: any;
}

export interface ApiResponse {
  status: number;
  /** The JSON body; an error's `requestId` (different for every request) is taken out, into `requestId`. */
  body: Json;
  /** The error body's `requestId`, if it had one. */
  requestId?: string;
  headers: LightMyRequestResponse['headers'];
  raw: LightMyRequestResponse;
}

function wrap(raw: LightMyRequestResponse): ApiResponse {
  let body: Json = {};
  if (raw.body.length > 0 && String(raw.headers['content-type'] ?? '').includes('json')) body = raw.json() as Json;
  const error = body.error as Json | undefined;
  if (error && typeof error === 'object' && typeof error.requestId === 'string') {
    const { requestId, ...rest } = error;
    return { status: raw.statusCode, body: { ...body, error: rest }, requestId: requestId as string, headers: raw.headers, raw };
  }
  return { status: raw.statusCode, body, headers: raw.headers, raw };
}

/**
 * L8: the claim tokens of the logins the tests' client started (POST /api/v1/login), by flow id, as an app keeps the
 * `claimToken` of the login it started: `answer` and `readLogin` present them (X-Claim-Token), as the browser's claim
 * cookie goes with the login pages. A request made otherwise (postJson, get) presents only the headers it is given.
 */
const startedClaims = new Map<string, string>();

function remember(url: string, response: ApiResponse): ApiResponse {
  const { id, claimToken } = response.body;
  if (url.split('?')[0] === '/api/v1/login' && typeof id === 'string' && typeof claimToken === 'string') startedClaims.set(id, claimToken);
  return response;
}

/** L8: the header of the login's claim token, as the client that started the login (with `startLogin` or POST /api/v1/login) presents it. */
export function claimFor(flowId: string): Record<string, string> {
  const token = startedClaims.get(flowId);
  return token === undefined ? {} : { 'x-claim-token': token };
}

export async function postJson(app: FastifyInstance, url: string, payload: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return remember(
    url,
    wrap(await app.inject({ method: 'POST', url, payload: payload as object, headers: { 'content-type': 'application/json', ...headers } })),
  );
}

export async function get(app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return wrap(await app.inject({ method: 'GET', url, headers }));
}

/** A request of any method, with a JSON body when there is one. */
export async function send(app: FastifyInstance, method: string, url: string, headers: Record<string, string> = {}, payload?: unknown): Promise<ApiResponse> {
  return wrap(
    await app.inject({
      method: method as 'POST',
      url,
      headers: { ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(payload === undefined ? {} : { payload: payload as object }),
    }),
  );
}

export function startLogin(
  app: FastifyInstance,
  username: string,
  password = PASSWORD,
  target: 'portal' | 'trading' = 'portal',
  headers: Record<string, string> = {},
) {
  return postJson(app, '/api/v1/login', { username, password, app: target }, headers);
}

/** L2, L8: answers a login's challenge as the client that started it (its claim token, `claimFor`). */
export function answer(app: FastifyInstance, flowId: string, response: string, headers: Record<string, string> = {}) {
  return postJson(app, `/api/v1/login/${flowId}`, { response }, { ...claimFor(flowId), ...headers });
}

/** L7, L8: a login as the client that started it reads it (its claim token: `claimFor`, or the header given, a browser's claim cookie). */
export function readLogin(app: FastifyInstance, flowId: string, claim: Record<string, string> = claimFor(flowId)) {
  return get(app, `/api/v1/login/${flowId}`, claim);
}

/** L8: the header of the claim token a browser keeps in its claim cookie (the login pages'), for the API. */
export function claimHeader(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { 'x-claim-token': token };
}

/** L8: the header that shows a request comes from whoever started the login (its claim token): to watch it, switch its device, ask for a code or the offline challenge. */
export function claimOf(login: ApiResponse): Record<string, string> {
  return { 'x-claim-token': login.body.claimToken as string };
}

/** K3: takes the session of a login approved on the phone, with the login's claim token. */
export function claimSession(app: FastifyInstance, login: ApiResponse, claimToken = login.body.claimToken as string) {
  return postJson(app, `/api/v1/login/${login.body.id as string}/session`, { claimToken });
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/**
 * V1, X7: the session verifies again — its user's password, then the
 * device's response to the challenge (`respond`) — so that the security
 * settings may change for the next minutes. Returns the step-up's answer.
 */
export async function stepUp(
  app: FastifyInstance,
  headers: Record<string, string>,
  respond: (challenge: Json) => string,
  password = PASSWORD,
): Promise<ApiResponse> {
  const started = await postJson(app, '/api/v1/step-up', { password }, headers);
  if (started.status !== 200) throw new Error(`step-up refused: ${started.status} ${JSON.stringify(started.body)}`);
  const done = await postJson(app, `/api/v1/step-up/${started.body.id as string}`, { response: respond(started.body.challenge as Json) }, headers);
  if (done.body.state !== 'done') throw new Error(`step-up not done: ${done.status} ${JSON.stringify(done.body)}`);
  tookNewToken(headers, done);
  return done;
}

/**
 * V1, L8 (decision 0042): a step-up's completion replaced the session's token: the headers it was made with (a Bearer
 * token, or a session cookie) take the new one, in place, so that the session goes on with them. Returns the headers.
 */
export function tookNewToken(headers: Record<string, string>, done: ApiResponse): Record<string, string> {
  const token = done.body.session?.token as string | undefined;
  if (token === undefined) throw new Error(`no new session token in the step-up's answer: ${done.status} ${JSON.stringify(done.body)}`);
  if (headers.authorization !== undefined) headers.authorization = `Bearer ${token}`;
  else if (headers.cookie !== undefined) headers.cookie = headers.cookie.replace(/((?:^|;\s*)(?:__Host-)?sls_session=)[^;]*/, `$1${token}`);
  return headers;
}

/** C2: a DSC+ card file's response to a challenge (`challenge.question`), as `respond` for a login or a step-up. */
export const withCard =
  (card: CardFile) =>
  (challenge: Json): string =>
    cardAnswer(card, challenge.question);

/** S1: a code card's answer to its two index numbers: the codes under them (`codes`, index 1 first), one after the other. */
export const indexAnswerOf =
  (codes: readonly string[]) =>
  (prompt: Json): string => {
    if (prompt.type !== 'index') throw new Error(`a code card's index numbers expected, not ${JSON.stringify(prompt)}`);
    return codes[prompt.indexes[0] - 1]! + codes[prompt.indexes[1] - 1]!;
  };

/**
 * L1, L2: a session opened through the API, the device answering with
 * `respond`; stepped up with it too when asked (V1, X7). Its bearer headers.
 */
export async function loginSession(
  app: FastifyInstance,
  username: string,
  respond: (challenge: Json) => string,
  options: { stepUp?: boolean; target?: 'portal' | 'trading' } = {},
): Promise<Record<string, string>> {
  const start = await startLogin(app, username, PASSWORD, options.target ?? 'portal');
  if (start.status !== 200) throw new Error(`login refused: ${start.status} ${JSON.stringify(start.body)}`);
  const done = await answer(app, start.body.id as string, respond(start.body.challenge as Json));
  if (done.status !== 200) throw new Error(`login not done: ${done.status} ${JSON.stringify(done.body)}`);
  const headers = bearer(done.body.session.token as string);
  if (options.stepUp) await stepUp(app, headers, respond);
  return headers;
}
