/**
 * Rendering of the server-side pages: Eta templates from views/, the
 * request's language, the CSRF token of the forms, and the address of the
 * page for the language links.
 */
import { COUNTRY_CODES, countryName } from '../../identity/countries.js';
import type { DeviceKinds, Prompt } from '../../devices/types.js';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import csrf from '@fastify/csrf-protection';
import { Eta } from 'eta';
import type { Config } from '../../config.js';
import { LANGUAGES, type Language } from '../../i18n/i18n.js';
import { errorBody, toSlsError } from '../errors.js';
import { registerFormBody } from '../form-body.js';
import { cookieNames, sessionCookieOf } from '../session-cookie.js';

const VIEWS = fileURLToPath(new URL('../../../views', import.meta.url));
export const LANGUAGE_COOKIE = 'sls_lang';

/**
 * What a form's CSRF token is bound to: the browser's session (a digest of
 * its cookie; none before login), so that a token of one session is refused
 * in another, and a token made before login is refused after it.
 */
export function csrfUserInfo(request: FastifyRequest, config: Pick<Config, 'cookieSecure'>): string {
  const session = sessionCookieOf(request, config) ?? '';
  return session === '' ? 'anonymous' : createHash('sha256').update(`csrf\0${session}`).digest('base64url');
}

/**
 * Forms in a plugin's scope: url-encoded bodies and CSRF tokens (a secret in
 * the CSRF cookie, `__Host-sls_csrf` under Secure cookies (cookieNames), the
 * token in each form's hidden _csrf field, bound to the session with a key
 * derived from the master key).
 */
export async function registerForms(app: FastifyInstance, pages: PageRenderer): Promise<void> {
  registerFormBody(app);
  await app.register(csrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: cookieNames(pages.config).csrf,
    cookieOpts: { path: '/', httpOnly: true, sameSite: 'strict', secure: pages.config.cookieSecure, signed: false },
    getUserInfo: (request) => csrfUserInfo(request, pages.config),
    csrfOpts: { hmacKey: pages.csrfKey },
  });
}

/** A text field of a submitted form ('' when absent or not text). */
export function field(body: unknown, name: string): string {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}

export interface PageError {
  status: number;
  code: string;
  message: string;
  hints: string[];
}

export interface RenderOptions {
  status?: number;
  /**
   * The GET address of the page, for the language links. Pages shown in
   * answer to a POST name it: the POST's own address may not be a page.
   */
  path?: string;
}

function formatTime(language: Language, ms: number): string {
  return `${new Intl.DateTimeFormat(language === 'zh-Hant' ? 'zh-TW' : language, {
    dateStyle: 'medium',
    timeStyle: 'medium',
    timeZone: 'UTC',
  }).format(new Date(ms))} UTC`;
}

/** How the pages ask for the typed answer to a prompt (views/answer-form.eta): translation keys of its label and help. */
interface AnswerField {
  label: string;
  help: string;
  /** Letters, typed in capitals (a temporary passcode), rather than digits. */
  upperCase: boolean;
}

/** Each prompt's typed answer; null where the answer is not typed (approved on the phone, signed by the browser's key). */
const ANSWER_FIELDS: Record<Prompt['type'], AnswerField | null> = {
  ocra: { label: 'web.challenge.response', help: 'web.challenge.responseHelp', upperCase: false },
  passcode: { label: 'web.challenge.passcode', help: 'web.challenge.passcodeHelp', upperCase: true },
  otp: { label: 'legacy.otp.label', help: 'legacy.otp.help', upperCase: false },
  index: { label: 'cards.activate.values', help: 'cards.activate.valuesHelp', upperCase: false },
  sms: { label: 'web.challenge.sms.label', help: 'web.challenge.sms.help', upperCase: false },
  push: null,
  webauthn: null,
};

const COUNTRY_CHOICES = new Map<Language, { code: string; name: string }[]>();

/** The countries of ISO 3166 by their names in a language, in its alphabetical order (address forms). */
function countryChoices(language: Language): { code: string; name: string }[] {
  let choices = COUNTRY_CHOICES.get(language);
  if (!choices) {
    const collator = new Intl.Collator(language);
    choices = [...COUNTRY_CODES].map((code) => ({ code, name: countryName(code, language) })).sort((a, b) => collator.compare(a.name, b.name));
    COUNTRY_CHOICES.set(language, choices);
  }
  return choices;
}

export class PageRenderer {
  private readonly eta = new Eta({ views: VIEWS, cache: true, autoEscape: true });

  /**
   * @param csrfKey the key CSRF tokens are bound to their session with
   * (derived from the master key: the same in every process).
   */
  constructor(
    readonly config: Config,
    readonly csrfKey: string,
    /** The registered device kinds: pages read their flags (the steps of a challenge …), never a type. */
    readonly deviceKind: DeviceKinds,
  ) {}

  /** The error of a page, translated, with its hints (L5). */
  pageError(request: FastifyRequest, error: unknown): PageError {
    const mapped = toSlsError(error, request);
    const body = errorBody(request.t, mapped);
    return { status: mapped.status, code: mapped.code, message: body.error.message, hints: body.error.hints ?? [] };
  }

  /** A time in the page's language and words (what it.time does in a view). */
  time(request: FastifyRequest, ms: number): string {
    return formatTime(request.language, ms);
  }

  render(request: FastifyRequest, reply: FastifyReply, view: string, data: Record<string, unknown>, options: RenderOptions = {}): FastifyReply {
    const query = request.query as Record<string, unknown> | undefined;
    if (typeof query?.lang === 'string' && query.lang === request.language) {
      reply.setCookie(LANGUAGE_COOKIE, request.language, { path: '/', maxAge: 365 * 24 * 3600, sameSite: 'lax', secure: this.config.cookieSecure });
    }
    const path = options.path ?? (request.method === 'GET' ? request.url.split('?')[0] : '/login');
    const helpers = {
      t: request.t,
      lang: request.language,
      languages: LANGUAGES,
      path,
      // the forms' token; pages outside the web plugin (a 404) have no forms
      csrf: typeof reply.generateCsrf === 'function' ? reply.generateCsrf({ userInfo: csrfUserInfo(request, this.config) }) : '',
      time: (ms: number) => formatTime(request.language, ms),
      deviceKind: (type: string) => this.deviceKind(type),
      answerField: (prompt: Prompt) => ANSWER_FIELDS[prompt.type],
      addressCountries: () => countryChoices(request.language),
      money: (amount: number) => new Intl.NumberFormat(request.language === 'zh-Hant' ? 'zh-TW' : request.language).format(amount),
    };
    // a page's own value under a helper's name would be hidden by the helper (or hide it): a programming error, caught by any test of the page
    const clash = Object.keys(helpers).find((name) => name in data);
    if (clash) throw new Error(`page ${view} passes "${clash}", the name of a helper every page gets`);
    const html = this.eta.render(`./${view}`, { ...data, ...helpers });
    return reply
      .status(options.status ?? 200)
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(html);
  }

  renderError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
    const failure = this.pageError(request, error);
    if (failure.status >= 500) request.log.error({ err: error }, 'unexpected error');
    return this.render(request, reply, 'error', { error: failure }, { status: failure.status, path: '/login' });
  }
}
