/**
 * X3: judging an answer to bad input (test/bad-input, test/fuzz-api): a
 * 4xx with a stable error code of src/errors.ts, its status and a message,
 * never a 5xx, never no answer; pages alike, with their alert box.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { ERROR_STATUS } from '../../src/errors.js';
import { alertBox } from './html.js';

// biome-ignore lint/suspicious/noExplicitAny: an answer's JSON as the wire gives it
type Json = any;

/** How long an answer to bad input may take: longer is a hang. */
export const ANSWER_WITHIN_MS = 5_000;

export type Answer = LightMyRequestResponse | 'timeout';

/** The app's answer to a request, or 'timeout'. */
export async function within(app: FastifyInstance, options: InjectOptions): Promise<Answer> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ANSWER_WITHIN_MS);
  });
  try {
    return await Promise.race([app.inject(options), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const UPPER_SNAKE = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/;

/** What is wrong with an API answer, or null. */
export function apiProblem(answer: Answer, mustRefuse: boolean): string | null {
  if (answer === 'timeout') return `no answer within ${ANSWER_WITHIN_MS} ms`;
  const status = answer.statusCode;
  let body: Json = null;
  try {
    body = answer.body ? JSON.parse(answer.body) : null;
  } catch {
    body = null;
  }
  const code = body?.error?.code;
  if (status >= 500) return `${status} ${code ?? answer.body.slice(0, 200)}`;
  if (status < 400) return mustRefuse ? `accepted (${status}) what must be refused` : null;
  if (!String(answer.headers['content-type'] ?? '').startsWith('application/json')) return `${status} as ${answer.headers['content-type']}, not the JSON error`;
  if (typeof code !== 'string' || !UPPER_SNAKE.test(code)) return `${status} without a stable UPPER_SNAKE error.code: ${answer.body.slice(0, 200)}`;
  if (!(code in ERROR_STATUS)) return `${status} ${code}: not a code of src/errors.ts`;
  if (ERROR_STATUS[code as keyof typeof ERROR_STATUS] !== status)
    return `${status} ${code}: the code's status is ${ERROR_STATUS[code as keyof typeof ERROR_STATUS]}`;
  if (typeof body.error.message !== 'string' || body.error.message.trim() === '') return `${status} ${code} without a message`;
  return null;
}

/** What is wrong with a page's answer to a bad form, or null: a 5xx, a redirect nowhere, a 4xx page without its error code. */
export function pageProblem(answer: Answer, url: string): string | null {
  if (answer === 'timeout') return `no answer within ${ANSWER_WITHIN_MS} ms`;
  const status = answer.statusCode;
  if (status >= 500) return `${status} ${alertBox(answer.body)?.code ?? answer.body.slice(0, 200)}`;
  if (status >= 300 && status < 400 && !answer.headers.location) return `${status} without a Location`;
  if (status < 400 || url.startsWith('/oidc/')) return null;
  const type = String(answer.headers['content-type'] ?? '');
  const code = type.startsWith('application/json') ? JSON.parse(answer.body)?.error?.code : alertBox(answer.body)?.code;
  return typeof code === 'string' && UPPER_SNAKE.test(code) ? null : `${status} page without a stable error code`;
}
