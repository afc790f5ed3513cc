import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS, SlsError, type ErrorCode } from '../errors.js';
import { describeError, environmentLanguage, negotiateLanguage, translator } from './i18n.js';
import { AREAS, messagesOf } from './resources.js';

const en = messagesOf('en');
const fr = messagesOf('fr');
const zhHant = messagesOf('zh-Hant');

function keys(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => keys(v, prefix ? `${prefix}.${k}` : k));
}

function placeholders(text: string): string[] {
  return [...text.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]!).sort();
}

describe('X2: every text exists in English, French and Traditional Chinese', () => {
  const english = keys(en);
  it.each([
    ['fr', fr],
    ['zh-Hant', zhHant],
  ])('X2: %s has exactly the English keys, with the same placeholders', (_name, locale) => {
    expect(keys(locale).sort()).toEqual([...english].sort());
    const t = translator(_name as 'fr' | 'zh-Hant');
    const tEn = translator('en');
    for (const key of english) {
      const raw = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], locale) as string;
      const rawEn = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], en) as string;
      expect(placeholders(raw), key).toEqual(placeholders(rawEn));
      expect(typeof t(key)).toBe('string');
      expect(typeof tEn(key)).toBe('string');
    }
  });

  it.each(Object.keys(AREAS))('X2: the %s translation files have the same keys in every language', (area) => {
    const files = AREAS[area]!;
    expect(keys(files.fr).sort()).toEqual(keys(files.en).sort());
    expect(keys(files['zh-Hant']).sort()).toEqual(keys(files.en).sort());
  });

  it('X2/X3: every error code has a message in every language', () => {
    for (const language of ['en', 'fr', 'zh-Hant'] as const) {
      const t = translator(language);
      for (const code of Object.keys(ERROR_STATUS) as ErrorCode[]) {
        const message = describeError(t, new SlsError(code, { reason: 'r', setting: 's', username: 'u', serial: 's', digits: 4, suite: 's', seq: 1 }));
        expect(message, `${language} ${code}`).not.toContain(`errors.${code}`);
      }
    }
  });

  it('X2: the seed messages are kept verbatim in English (L1, L2, A3)', () => {
    const t = translator('en');
    expect(describeError(t, new SlsError('INVALID_CREDENTIALS'))).toBe('Invalid user name password combination');
    expect(describeError(t, new SlsError('LOGIN_FAILED'))).toBe('Login failed');
    expect(describeError(t, new SlsError('BAD_CHARACTER'))).toBe('BAD CHARACTER');
  });

  it('X2: the language is negotiated from Accept-Language and the environment', () => {
    expect(negotiateLanguage('fr-FR,fr;q=0.9,en;q=0.8')).toBe('fr');
    expect(negotiateLanguage('zh-HK')).toBe('zh-Hant');
    expect(negotiateLanguage('zh-TW,zh;q=0.9')).toBe('zh-Hant');
    expect(negotiateLanguage('de-DE')).toBe('en');
    expect(negotiateLanguage(undefined, 'fr')).toBe('fr');
    expect(environmentLanguage({ LANG: 'fr_CA.UTF-8' })).toBe('fr');
    expect(environmentLanguage({ LANG: 'zh_TW.UTF-8' })).toBe('zh-Hant');
    expect(environmentLanguage({})).toBe('en');
  });

  it('X2: no text for people is written inline in the templates', () => {
    const views = new URL('../../views/', import.meta.url);
    const files = readdirSync(views, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
    for (const entry of files) {
      const file = `${entry.parentPath}/${entry.name}`;
      const source = readFileSync(file, 'utf8')
        .replace(/<%[\s\S]*?%>/g, '')
        .replace(/<[^>]*>/g, ' ');
      expect(source.replace(/[\s()—:·]+/g, ''), file).toBe('');
    }
  });
});
