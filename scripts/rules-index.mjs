#!/usr/bin/env node
// The rule index (docs/rules.md): which test files name which SPEC rule.
//
//   node scripts/rules-index.mjs           rewrite the "Tests:" line of every rule in docs/rules.md
//   node scripts/rules-index.mjs --check   change nothing; exit 1 when docs/rules.md is not current
//   --spec <path>                          SPEC.md to compare with (default: ../shared/SPEC.md
//                                          from the repository root, when it exists)
//
// Plain Node.js, no dependencies. The descriptions of the rules are written by
// hand; this script only regenerates the "Tests:" lines. test/rules-index.test.ts
// imports the same functions to keep the page honest.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const INDEX_PATH = join(ROOT, 'docs', 'rules.md');
export const DEFAULT_SPEC_PATH = resolve(ROOT, '..', 'shared', 'SPEC.md');
export const NOT_BUILT = 'not built yet';

const RULE_ID = /\b[A-Z]\d{1,2}\b/g;
const TEST_FUNCTIONS = new Set(['it', 'describe', 'test']);

/** The test files (`*.test.ts`) under test/ and src/, as sorted paths relative to the root, with `/`. */
export function findTestFiles(root = ROOT) {
  const files = [];
  for (const top of ['test', 'src']) {
    const dir = join(root, top);
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.test.ts')) continue;
      const path = join(entry.parentPath ?? entry.path, entry.name);
      if (path.split(/[\\/]/).includes('node_modules')) continue;
      files.push(
        path
          .slice(root.length + 1)
          .split(/[\\/]/)
          .join('/'),
      );
    }
  }
  return files.sort();
}

/**
 * The rule IDs a title names, such as 'L3/X1: …', 'K1, K2, M3: …', 'lockout (L3)'.
 * Only IDs written out count: a range 'T1-T5' names T1 and T5, not what lies
 * between (a group's label is no proof of every rule in the range).
 */
export function rulesInTitle(title) {
  return [...new Set(title.match(RULE_ID) ?? [])];
}

/**
 * The titles of the `it(…)`, `describe(…)`, `test(…)` calls of a source file,
 * with their modifiers (`it.each(rows)(…)`, `describe.skipIf(cond)(…)`, `it.only(…)`):
 * the first argument when it is a string literal. Comments, strings and regular
 * expressions are skipped, so a call written inside them does not count.
 */
export function titlesOf(source) {
  const s = source;
  const titles = [];
  let prev = ''; // the last significant character of code, to tell a regular expression from a division
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    const skipped = skipTrivia(s, i);
    if (skipped !== i) {
      i = skipped;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      i = readString(s, i).end;
      prev = c;
      continue;
    }
    if (c === '/' && (prev === '' || '(,=:[!&|?{};+-*%<>~^'.includes(prev))) {
      i = skipRegex(s, i);
      prev = '/';
      continue;
    }
    if (/[A-Za-z_$]/.test(c)) {
      let j = i;
      while (j < s.length && /[\w$]/.test(s[j])) j++;
      const word = s.slice(i, j);
      if (TEST_FUNCTIONS.has(word) && prev !== '.') {
        const title = titleOfCall(s, j);
        if (title !== undefined) titles.push(title);
      }
      i = j;
      prev = 'a';
      continue;
    }
    if (!/\s/.test(c)) prev = c;
    i++;
  }
  return titles;
}

/** After `it`/`describe`/`test` at k: follow `.modifier` and `(…)` groups to the call whose first argument is a string. */
function titleOfCall(s, k) {
  for (;;) {
    k = skipSpace(s, k);
    if (s[k] === '.') {
      k = skipSpace(s, k + 1);
      const start = k;
      while (k < s.length && /[\w$]/.test(s[k])) k++;
      if (k === start) return undefined;
      continue;
    }
    if (s[k] === '(') {
      const arg = skipSpace(s, k + 1);
      if (s[arg] === '"' || s[arg] === "'" || s[arg] === '`') return readString(s, arg).value;
      k = skipBalanced(s, k);
      if (k < 0) return undefined;
      continue;
    }
    return undefined;
  }
}

/** A comment at i: the index after it (i itself when there is none). */
export function skipTrivia(s, i) {
  if (s[i] === '/' && s[i + 1] === '/') {
    const end = s.indexOf('\n', i);
    return end < 0 ? s.length : end;
  }
  if (s[i] === '/' && s[i + 1] === '*') {
    const end = s.indexOf('*/', i + 2);
    return end < 0 ? s.length : end + 2;
  }
  return i;
}

function skipSpace(s, i) {
  for (;;) {
    while (i < s.length && /\s/.test(s[i])) i++;
    const skipped = skipTrivia(s, i);
    if (skipped === i) return i;
    i = skipped;
  }
}

/** A string or template literal at i: its end (after the closing quote) and its raw text. */
export function readString(s, i) {
  const quote = s[i];
  let j = i + 1;
  let value = '';
  while (j < s.length && s[j] !== quote) {
    if (s[j] === '\\') {
      value += s[j + 1] ?? '';
      j += 2;
    } else if (quote === '`' && s[j] === '$' && s[j + 1] === '{') {
      const end = skipBalanced(s, j + 1);
      if (end < 0) return { end: s.length, value };
      value += s.slice(j, end);
      j = end;
    } else if (quote !== '`' && s[j] === '\n') {
      break;
    } else {
      value += s[j];
      j++;
    }
  }
  return { end: j + 1, value };
}

/** A regular expression literal at i (its opening slash): the index after it. */
export function skipRegex(s, i) {
  let j = i + 1;
  let inClass = false;
  while (j < s.length && s[j] !== '\n') {
    if (s[j] === '\\') j++;
    else if (s[j] === '[') inClass = true;
    else if (s[j] === ']') inClass = false;
    else if (s[j] === '/' && !inClass) return j + 1;
    j++;
  }
  return j;
}

/** From an opening bracket at i, the index after its matching closing bracket (-1 if none). */
function skipBalanced(s, i) {
  const closing = { '(': ')', '[': ']', '{': '}' };
  const stack = [];
  let j = i;
  while (j < s.length) {
    const skipped = skipTrivia(s, j);
    if (skipped !== j) {
      j = skipped;
      continue;
    }
    const c = s[j];
    if (c === '"' || c === "'" || c === '`') {
      j = readString(s, j).end;
      continue;
    }
    if (c in closing) stack.push(closing[c]);
    else if (c === ')' || c === ']' || c === '}') {
      if (stack.pop() !== c) return -1;
      if (stack.length === 0) return j + 1;
    }
    j++;
  }
  return -1;
}

/** Rule ID → the sorted test files whose titles name it. */
export function collectNamedRules(root = ROOT) {
  const named = new Map();
  for (const file of findTestFiles(root)) {
    for (const title of titlesOf(readFileSync(join(root, file), 'utf8'))) {
      for (const id of rulesInTitle(title)) {
        if (!named.has(id)) named.set(id, new Set());
        named.get(id).add(file);
      }
    }
  }
  return new Map([...named].map(([id, files]) => [id, [...files].sort()]));
}

const RULE_LINE = /^- \*\*([A-Z]\d{1,2})\*\*(.*)$/;
const TAG = /\[(seed|ours)\]/g;

/** The rules SPEC.md defines, in its order: { id, section, tags } (tags: 'seed'/'ours'; X and I are [ours] as a section). */
export function parseSpec(text) {
  const rules = [];
  let section = '';
  let sectionTags = [];
  let current;
  for (const line of text.split('\n')) {
    const heading = /^## ([A-Z])\. (.*)$/.exec(line);
    if (heading) {
      section = `${heading[1]}. ${heading[2]}`.replace(/\s*\[ours\]$/, '');
      sectionTags = [...heading[2].matchAll(TAG)].map((m) => m[1]);
      current = undefined;
      continue;
    }
    const rule = RULE_LINE.exec(line);
    if (rule && section) {
      current = { id: rule[1], section, tags: [], text: rule[2] };
      rules.push(current);
    } else if (current && /^\s+\S/.test(line)) {
      current.text += ` ${line.trim()}`;
    } else {
      current = undefined;
    }
  }
  for (const rule of rules) {
    const tags = [...new Set([...rule.text.matchAll(TAG)].map((m) => m[1]))];
    rule.tags = tags.length > 0 ? tags : sectionTags;
    delete rule.text;
  }
  return rules;
}

/**
 * The rules of docs/rules.md: { id, section, tags, lines, testsLine } where section
 * is the `## ` heading above, lines are the entry's lines (the `- **ID**` line and
 * its indented continuation) and testsLine the text after `- Tests:` (undefined
 * when the entry has none).
 */
export function parseIndex(text) {
  const entries = [];
  let section = '';
  let current;
  for (const line of text.split('\n')) {
    const heading = /^## (.*)$/.exec(line);
    if (heading) section = heading[1].replace(/\s*\[ours\]$/, '');
    const rule = RULE_LINE.exec(line);
    if (rule) {
      const tags = /^\s*((?:\[(?:seed|ours)\]\s*)+)/.exec(rule[2]);
      current = { id: rule[1], section, tags: tags ? [...tags[1].matchAll(TAG)].map((m) => m[1]) : [], lines: [line], testsLine: undefined };
      entries.push(current);
    } else if (current && /^ {2,}\S/.test(line)) {
      current.lines.push(line);
      const tests = /^ {2}- Tests:(?: (.*))?$/.exec(line);
      if (tests) current.testsLine = tests[1] ?? '';
    } else {
      current = undefined;
    }
  }
  return entries;
}

/** The relative links (from docs/) of a "Tests:" line, as paths from the repository root. */
export function linkedFiles(testsLine) {
  return [...testsLine.matchAll(/\]\(\.\.\/([^)\s]+)\)/g)].map((m) => m[1]);
}

export function renderTestsLine(files) {
  return files.length === 0 ? `  - Tests: ${NOT_BUILT}` : `  - Tests: ${files.map((f) => `[${f}](../${f})`).join(', ')}`;
}

/** docs/rules.md with the "Tests:" line of every rule regenerated from the named rules. */
export function updateIndex(text, named) {
  const out = [];
  let inEntry;
  const flush = () => {
    if (inEntry) out.push(renderTestsLine(named.get(inEntry) ?? []));
    inEntry = undefined;
  };
  for (const line of text.split('\n')) {
    const rule = RULE_LINE.exec(line);
    if (rule) {
      flush();
      inEntry = rule[1];
      out.push(line);
    } else if (inEntry && /^ {2,}\S/.test(line)) {
      if (!/^ {2}- Tests:( |$)/.test(line)) out.push(line);
    } else {
      flush();
      out.push(line);
    }
  }
  flush();
  return out.join('\n');
}

/** What keeps docs/rules.md from being complete: rules missing from it, rules SPEC.md does not define. */
export function problems(entries, named, spec) {
  const found = [];
  const inIndex = new Set(entries.map((e) => e.id));
  for (const id of named.keys()) {
    if (!inIndex.has(id)) found.push(`${id} is named by ${named.get(id).join(', ')} but missing from docs/rules.md`);
  }
  if (spec) {
    const defined = new Map(spec.map((r) => [r.id, r]));
    for (const rule of spec) if (!inIndex.has(rule.id)) found.push(`${rule.id} (SPEC.md, ${rule.section}) is missing from docs/rules.md`);
    for (const entry of entries) {
      const rule = defined.get(entry.id);
      if (!rule) found.push(`docs/rules.md names ${entry.id}, which SPEC.md does not define`);
      else if (entry.section !== rule.section) found.push(`${entry.id} is under "${entry.section}" in docs/rules.md, "${rule.section}" in SPEC.md`);
      else if (entry.tags.join(' ') !== rule.tags.join(' ')) {
        found.push(
          `${entry.id} is marked ${entry.tags.map((t) => `[${t}]`).join(' ') || '(nothing)'} in docs/rules.md, ${rule.tags.map((t) => `[${t}]`).join(' ')} in SPEC.md`,
        );
      }
    }
  }
  return found;
}

function main(argv) {
  const check = argv.includes('--check');
  const specArg = argv.indexOf('--spec');
  const specPath = specArg >= 0 ? resolve(argv[specArg + 1] ?? '') : DEFAULT_SPEC_PATH;
  const text = readFileSync(INDEX_PATH, 'utf8');
  const named = collectNamedRules(ROOT);
  if (specArg >= 0 && !existsSync(specPath)) {
    console.error(`rules-index: ${specPath} not found`);
    return 2;
  }
  const spec = existsSync(specPath) ? parseSpec(readFileSync(specPath, 'utf8')) : undefined;
  if (!spec) console.warn(`rules-index: ${specPath} not found; not comparing with SPEC.md`);
  const updated = updateIndex(text, named);
  const found = problems(parseIndex(updated), named, spec);
  for (const problem of found) console.error(`rules-index: ${problem}`);
  if (check) {
    if (updated !== text) console.error('rules-index: docs/rules.md is not current; run node scripts/rules-index.mjs');
    return updated === text && found.length === 0 ? 0 : 1;
  }
  if (updated !== text) writeFileSync(INDEX_PATH, updated);
  const built = parseIndex(updated).filter((e) => named.has(e.id)).length;
  console.log(
    `rules-index: docs/rules.md ${updated === text ? 'was current' : 'updated'}; ${built} rules named by tests, ${parseIndex(updated).length - built} not built yet`,
  );
  return found.length === 0 ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
