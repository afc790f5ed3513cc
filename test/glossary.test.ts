/**
 * X2, issue 16 item 1: one vocabulary, the seeds' own. docs/glossary.md names
 * each of the product's terms in English, French and Traditional Chinese, and
 * the variants that must not be used; every locale file
 * (src/i18n/locales/<area>/<lang>.json) is checked against it: each text of a
 * language is free of the forbidden variants, and the language's texts use
 * the glossary's term.
 *
 * Entries where today's texts still disagree are PENDING: their test expects
 * the disagreement (it.fails), so it fails as soon as the wording is fixed —
 * then remove the entry from PENDING.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const LANGUAGES = ['en', 'fr', 'zh-Hant'] as const;
type Lang = (typeof LANGUAGES)[number];

const ROOT = resolve(import.meta.dirname, '..');
const LOCALES = join(ROOT, 'src/i18n/locales');

interface Entry {
  id: string;
  use: Record<Lang, string[]>;
  not: Record<Lang, string[]>;
}

/**
 * Entry and language whose texts disagree with the glossary today, with what
 * they say instead (issue 16 item 1: another pass fixes the wording).
 */
const PENDING: Record<string, string> = {};

function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|')
    .map((c) => c.trim());
}

function variants(cell: string | undefined): string[] {
  return (cell ?? '')
    .split('·')
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** The entries of docs/glossary.md: a "### id" heading, then its table's "use" and "not" rows. */
function readGlossary(): Entry[] {
  const entries: Entry[] = [];
  let current: Entry | null = null;
  for (const line of readFileSync(join(ROOT, 'docs/glossary.md'), 'utf8').split('\n')) {
    const heading = /^### (\S+)\s*$/.exec(line);
    if (heading) {
      current = { id: heading[1]!, use: { en: [], fr: [], 'zh-Hant': [] }, not: { en: [], fr: [], 'zh-Hant': [] } };
      entries.push(current);
      continue;
    }
    if (!current || !line.startsWith('|')) continue;
    const [row, ...byLang] = cells(line);
    if (row !== 'use' && row !== 'not') continue;
    LANGUAGES.forEach((lang, i) => {
      current![row][lang] = variants(byLang[i]);
    });
  }
  return entries;
}

/** Every text of a language: "area:key" → text. */
function texts(lang: Lang): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (area: string, prefix: string, node: unknown): void => {
    if (typeof node === 'string') found.set(`${area}:${prefix}`, node);
    else if (node && typeof node === 'object') for (const [k, v] of Object.entries(node)) walk(area, prefix === '' ? k : `${prefix}.${k}`, v);
  };
  for (const area of readdirSync(LOCALES, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    walk(area.name, '', JSON.parse(readFileSync(join(LOCALES, area.name, `${lang}.json`), 'utf8')));
  }
  return found;
}

const fold = (lang: Lang, s: string): string => (lang === 'zh-Hant' ? s : s.toLowerCase());

/** What the texts of a language do against an entry: the forbidden variants found, and whether the term is used. */
function check(entry: Entry, lang: Lang, all: Map<string, string>): { forbidden: string[]; used: boolean } {
  const forbidden: string[] = [];
  let used = entry.use[lang].length === 0;
  for (const [key, text] of all) {
    const t = fold(lang, text);
    for (const bad of entry.not[lang]) if (t.includes(fold(lang, bad))) forbidden.push(`${key}: "${bad}" in "${text}"`);
    if (entry.use[lang].some((term) => t.includes(fold(lang, term)))) used = true;
  }
  return { forbidden, used };
}

const glossary = readGlossary();
const byLang = Object.fromEntries(LANGUAGES.map((lang) => [lang, texts(lang)])) as Record<Lang, Map<string, string>>;

describe('X2: the glossary (docs/glossary.md)', () => {
  it('X2: names each term in en, fr and zh-Hant, once per id, and the seed words of issue 16 are in it', () => {
    expect(glossary.length).toBeGreaterThanOrEqual(20);
    expect(new Set(glossary.map((e) => e.id)).size).toBe(glossary.length);
    for (const entry of glossary) for (const lang of LANGUAGES) expect(entry.use[lang], `${entry.id} ${lang}`).not.toEqual([]);
    const words = glossary.flatMap((e) => LANGUAGES.flatMap((lang) => e.use[lang]));
    for (const seed of [
      'Authenticate',
      'Migrate',
      'Recover',
      'response code',
      'response string',
      'challenge code',
      'Secure Login Device',
      'temporary passcode',
      'online security card',
      '登錄',
      '激活',
      '響應碼',
    ])
      expect(words, seed).toContain(seed);
  });

  it('X2: every PENDING mark names an entry and a language of the glossary', () => {
    for (const mark of Object.keys(PENDING)) {
      const [id, lang] = mark.split('/') as [string, Lang];
      expect(
        glossary.map((e) => e.id),
        mark,
      ).toContain(id);
      expect(LANGUAGES, mark).toContain(lang);
    }
  });
});

describe('X2: every locale file uses the glossary’s terms', () => {
  for (const entry of glossary) {
    for (const lang of LANGUAGES) {
      const pending = PENDING[`${entry.id}/${lang}`];
      const title = `X2: ${entry.id} in ${lang}: ${entry.use[lang].join(' · ')}${entry.not[lang].length ? `, never ${entry.not[lang].join(' · ')}` : ''}`;
      const body = () => {
        const { forbidden, used } = check(entry, lang, byLang[lang]);
        expect(forbidden).toEqual([]);
        expect(used, `no ${lang} text uses ${entry.use[lang].join(' or ')}`).toBe(true);
      };
      if (pending) it.fails(`${title} (pending: ${pending})`, body);
      else it(title, body);
    }
  }
});
