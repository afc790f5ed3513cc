/**
 * X2, issue 16 item 1: Traditional Chinese text uses full-width punctuation.
 * Next to a Chinese character, the ASCII , . : ; ? ! ( ) of English text are
 * written ，。：；？！（）. Placeholders ({{x}}), URLs, codes, numbers and
 * Latin text keep their ASCII punctuation (10:30, example.com, espeak-ng).
 * docs/glossary.md, "Punctuation in Traditional Chinese", states the rule.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const LOCALES = resolve(import.meta.dirname, '../src/i18n/locales');

/** CJK ideographs, CJK punctuation and full-width forms. */
const CJK = '[\\u3000-\\u303f\\u3400-\\u9fff\\uf900-\\ufaff\\uff00-\\uffef]';
/** ASCII punctuation right after a CJK character, or , : ; ? ! ( right before one (spaces between ignored). */
const AFTER_CJK = new RegExp(`${CJK} *[,.:;?!()]`, 'u');
const BEFORE_CJK = new RegExp(`[,:;?!(] *${CJK}`, 'u');
/** Parentheses close as they open: a "（" closed by ")" after Latin text is caught here. */
const FULL_WIDTH_PAIRS: [string, string][] = [
  ['（', '）'],
  ['(', ')'],
];

/** What the rule looks at: placeholders and URLs taken out. */
function prose(text: string): string {
  return text.replace(/\{\{[^}]*\}\}/g, ' ').replace(/https?:\/\/\S+/g, ' ');
}

/** Why a zh-Hant text breaks the rule, or null. */
function punctuationFault(text: string): string | null {
  const t = prose(text);
  const after = AFTER_CJK.exec(t);
  if (after) return `ASCII punctuation after a Chinese character: "${after[0]}"`;
  const before = BEFORE_CJK.exec(t);
  if (before) return `ASCII punctuation before a Chinese character: "${before[0]}"`;
  for (const [open, close] of FULL_WIDTH_PAIRS) {
    const opened = [...t].filter((c) => c === open).length;
    const closed = [...t].filter((c) => c === close).length;
    if (opened !== closed) return `unpaired ${open}${close}: ${opened} "${open}", ${closed} "${close}"`;
  }
  return null;
}

function zhTexts(): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (area: string, prefix: string, node: unknown): void => {
    if (typeof node === 'string') found.set(`${area}:${prefix}`, node);
    else if (node && typeof node === 'object') for (const [k, v] of Object.entries(node)) walk(area, prefix === '' ? k : `${prefix}.${k}`, v);
  };
  for (const area of readdirSync(LOCALES, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    walk(area.name, '', JSON.parse(readFileSync(join(LOCALES, area.name, 'zh-Hant.json'), 'utf8')));
  }
  return found;
}

describe('X2: full-width punctuation in Traditional Chinese (issue 16 item 1)', () => {
  it('X2: the check refuses ASCII , . : ; ? ! ( ) next to Chinese and lets placeholders, URLs, numbers and Latin text be', () => {
    for (const bad of [
      '此號碼不是手機號碼:無法接收短信。',
      '每日 {{perDay}} 美元,5 個工作日',
      '沒有收到安全驗證碼?',
      '語音(自動電話讀出驗證碼)',
      '僅有文字記錄（未安裝 espeak-ng)。',
      '請先刪除一個;再試',
      '完成.',
      '完成 !',
    ])
      expect(punctuationFault(bad), bad).not.toBeNull();
    for (const good of [
      '此號碼不是手機號碼：無法接收短信。',
      '每日 {{perDay}} 美元，5 個工作日',
      '語音音頻：{{path}}',
      '{{time}}. 之後',
      '請打開 https://example.com/app?x=1. 然後登錄',
      '於 10:30 前，金額 1,000.50 美元',
      '僅有文字記錄（未安裝 espeak-ng）。',
      '移動驗證程序（IB Key, v2.1）',
    ])
      expect(punctuationFault(good), good).toBeNull();
  });

  it('X2: every zh-Hant text of src/i18n/locales uses full-width punctuation next to Chinese characters', () => {
    const faults: string[] = [];
    for (const [key, text] of zhTexts()) {
      const fault = punctuationFault(text);
      if (fault) faults.push(`${key}: ${fault} in "${text}"`);
    }
    expect(faults).toEqual([]);
  });
});
