/**
 * Text for people (X2) in English, French and Traditional Chinese, from the
 * translation files in ./locales; never inline.
 */
import i18next, { type TFunction } from 'i18next';
import Negotiator from 'negotiator';
import { messagesOf } from './resources.js';
import { SlsError, type ErrorCode, type ErrorParams, type Told } from '../errors.js';

export const LANGUAGES = ['en', 'fr', 'zh-Hant'] as const;
export type Language = (typeof LANGUAGES)[number];

const instance = i18next.createInstance();
void instance.init({
  resources: {
    en: { translation: messagesOf('en') },
    fr: { translation: messagesOf('fr') },
    'zh-Hant': { translation: messagesOf('zh-Hant') },
  },
  lng: 'en',
  fallbackLng: 'en',
  supportedLngs: [...LANGUAGES],
  interpolation: { escapeValue: false },
  initAsync: false,
  returnNull: false,
  showSupportNotice: false,
} as Parameters<typeof instance.init>[0]);

export type Translate = ((key: string, params?: Record<string, unknown>) => string) & {
  /** The language it writes, and the time zone its messages write times in (issue 16: never a raw ISO time). */
  readonly language?: Language;
  readonly timeZone?: string;
};

export function isLanguage(value: unknown): value is Language {
  return typeof value === 'string' && (LANGUAGES as readonly string[]).includes(value);
}

export function translator(language: Language, timeZone = 'UTC'): Translate {
  const t: TFunction = instance.getFixedT(language);
  return Object.assign((key: string, params?: Record<string, unknown>) => t(key, params as Record<string, unknown>) as string, { language, timeZone });
}

/** A moment as people of the language write it, with its time zone: "5 déc. 2026, 23:15:49 UTC". */
export function formatMoment(language: Language, ms: number, timeZone = 'UTC'): string {
  return new Intl.DateTimeFormat(language === 'zh-Hant' ? 'zh-TW' : language, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    timeZone,
    timeZoneName: 'short',
  }).format(new Date(ms));
}

const ISO_MOMENT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

function isTold(value: unknown): value is Told {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as Told).key === 'string';
}

/** X2: text to tell in the reader's language (its values told first); a list of them joined as the language joins reasons. */
export function tell(t: Translate, told: Told | Told[]): string {
  if (Array.isArray(told)) return told.map((one) => tell(t, one)).join(t('validation.separator'));
  const params: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(told.params ?? {})) params[name] = isTold(value) ? tell(t, value) : value;
  return t(told.key, params);
}

/** The params of a message with every moment (an ISO time, as the API's details carry it) written for people, and text to tell told. */
function forPeople(t: Translate, params: ErrorParams): Record<string, string | number | string[]> {
  const out: Record<string, string | number | string[]> = {};
  for (const [name, value] of Object.entries(params)) {
    if (isTold(value) || (Array.isArray(value) && value.some(isTold))) out[name] = tell(t, value as Told | Told[]);
    else
      out[name] =
        typeof value === 'string' && ISO_MOMENT.test(value)
          ? formatMoment(t.language ?? 'en', Date.parse(value), t.timeZone ?? 'UTC')
          : (value as string | number | string[]);
  }
  return out;
}

/** Whether a language's files define the key (its own text, not a fallback). */
export function hasTranslation(key: string, language: Language): boolean {
  return instance.exists(key, { lng: language, fallbackLng: false } as Parameters<typeof instance.exists>[1]);
}

/** The best of our languages for an Accept-Language header. */
export function negotiateLanguage(acceptLanguage: string | undefined, fallback: Language = 'en'): Language {
  return acceptedLanguage(acceptLanguage) ?? fallback;
}

/** The best of our languages an Accept-Language header names; null when it names none of them (N1: nothing to remember). */
export function acceptedLanguage(acceptLanguage: string | undefined): Language | null {
  if (!acceptLanguage) return null;
  const negotiator = new Negotiator({ headers: { 'accept-language': acceptLanguage } });
  // zh-TW, zh-HK and zh-Hant all read Traditional Chinese; other zh does too (our only Chinese).
  const preferred = negotiator.languages(['en', 'fr', 'zh-Hant', 'zh-TW', 'zh-HK', 'zh-MO', 'zh']);
  for (const tag of preferred) {
    if (tag.startsWith('zh')) return 'zh-Hant';
    if (isLanguage(tag)) return tag;
  }
  return null;
}

/** The language of the environment (LANG/LC_ALL), for the command line. */
export function environmentLanguage(env: NodeJS.ProcessEnv = process.env): Language {
  const value = (env.LC_ALL || env.LC_MESSAGES || env.LANG || '').toLowerCase();
  if (value.startsWith('fr')) return 'fr';
  if (value.startsWith('zh')) return 'zh-Hant';
  return 'en';
}

/**
 * The message of an error for people, in a language: errors.CODE_<reason> when
 * the files have it (a reason of words, as INVALID_PSKC's "not XML", is looked
 * up with its words joined by _: errors.INVALID_PSKC_not_XML), else errors.CODE.
 */
export function errorMessage(t: Translate, code: ErrorCode, raw: ErrorParams = {}): string {
  const params = forPeople(t, raw);
  // the reason as the code gave it (a reason to tell is told in the generic message)
  const specific = typeof raw.reason === 'string' ? `errors.${code}_${raw.reason.replace(/\W+/g, '_')}` : undefined;
  if (specific && instance.exists(specific)) return t(specific, params);
  return t(`errors.${code}`, params);
}

export function describeError(t: Translate, error: unknown): string {
  if (error instanceof SlsError) return errorMessage(t, error.code, error.params);
  return errorMessage(t, 'INTERNAL_ERROR');
}
