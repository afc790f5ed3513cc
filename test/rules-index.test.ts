/**
 * The rule index, docs/rules.md, against the titles of the tests and SPEC.md:
 * every rule a test names is in the index, no rule the tests name is left
 * "not built yet", every linked test file names its rule, and (when SPEC.md is
 * beside the repository, ../shared/SPEC.md) the index covers exactly the rules
 * SPEC.md defines. Refresh the index with `node scripts/rules-index.mjs`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SPEC_PATH,
  INDEX_PATH,
  NOT_BUILT,
  ROOT,
  collectNamedRules,
  findTestFiles,
  linkedFiles,
  parseIndex,
  parseSpec,
  rulesInTitle,
  titlesOf,
  updateIndex,
} from '../scripts/rules-index.mjs';

const page = readFileSync(INDEX_PATH, 'utf8');
const entries = parseIndex(page);
const named = collectNamedRules(ROOT);
const specText = existsSync(DEFAULT_SPEC_PATH) ? readFileSync(DEFAULT_SPEC_PATH, 'utf8') : undefined;

describe('the rule index, docs/rules.md', () => {
  it('reads test titles as vitest takes them: it, describe, test, it.each(rows)(…), describe.skipIf(…)(…), over several lines; not in comments, strings or regular expressions', () => {
    const source = [
      "// it('Q1: in a line comment')",
      "/* describe('Q2: in a block comment') */",
      'const s = "it(\'Q3: in a string\')";',
      "const r = /it\\('Q4: in a regular expression'/;",
      "describe('group (Q5, Q6)', () => {",
      '  it(',
      "    'Q7/Q8: on the next line',",
      '    () => {},',
      '  );',
      '  it.each([',
      "    ['a', 1],",
      "    ['b (2)', 2],",
      "  ])('Q9: %s', () => {});",
      '  describe.skipIf(!ok || check(1))("Q10: double quotes", () => {});',
      "  it.each(['fr', 'zh-Hant'] as const)(`Q11: template ${1 + 2}`, () => {});",
      "  it.concurrent('Q12, Q13: a modifier', () => {});",
      "  page.it('Q14: a method named it is no test');",
      "  test('Q15: test() too', () => {});",
      '  it(name, () => {});',
      '});',
    ].join('\n');
    expect(titlesOf(source)).toEqual([
      'group (Q5, Q6)',
      'Q7/Q8: on the next line',
      'Q9: %s',
      'Q10: double quotes',
      'Q11: template ${1 + 2}',
      'Q12, Q13: a modifier',
      'Q15: test() too',
    ]);
    expect(rulesInTitle('L3/X1: locks')).toEqual(['L3', 'X1']);
    expect(rulesInTitle('K1, K2, M3: activation')).toEqual(['K1', 'K2', 'M3']);
    expect(rulesInTitle('lockout (L3)')).toEqual(['L3']);
    expect(rulesInTitle('M2FS, SHA256, H1b, RFC 6287 and E.164 name no rule')).toEqual([]);
  });

  it('reads every test file under test/ and src/, this one included', () => {
    const files = findTestFiles(ROOT);
    expect(files).toContain('test/rules-index.test.ts');
    expect(files).toContain('test/login-api.test.ts');
    expect(files.some((f) => f.startsWith('src/'))).toBe(true);
    expect(files.some((f) => f.startsWith('test/browser/'))).toBe(true);
    expect(named.get('L3')).toContain('test/login-api.test.ts');
  });

  it('the rule index names every rule the tests name', () => {
    expect(named.size).toBeGreaterThan(0);
    const inIndex = new Set(entries.map((e) => e.id));
    const missing = [...named].filter(([id]) => !inIndex.has(id)).map(([id, files]) => `${id}, named by ${files.join(', ')}`);
    expect(missing).toEqual([]);
  });

  it('no rule that a test names is marked "not built yet" (run node scripts/rules-index.mjs)', () => {
    const stale = entries
      .filter((e) => named.has(e.id) && e.lines.join('\n').toLowerCase().includes(NOT_BUILT))
      .map((e) => `${e.id}, named by ${(named.get(e.id) ?? []).join(', ')}`);
    expect(stale).toEqual([]);
  });

  it('every rule has a Tests line: "not built yet", or links to test files that exist and name the rule', () => {
    const wrong: string[] = [];
    for (const entry of entries) {
      if (entry.testsLine === undefined) {
        wrong.push(`${entry.id}: no "- Tests:" line`);
        continue;
      }
      const links = linkedFiles(entry.testsLine);
      if (links.length === 0 && entry.testsLine.trim() !== NOT_BUILT) wrong.push(`${entry.id}: "${entry.testsLine}" is neither links nor "${NOT_BUILT}"`);
      for (const file of links) {
        if (!existsSync(join(ROOT, file))) wrong.push(`${entry.id}: ${file} does not exist`);
        else if (!(named.get(entry.id) ?? []).includes(file)) wrong.push(`${entry.id}: ${file} names no such rule in its titles`);
      }
    }
    expect(entries.length).toBeGreaterThan(0);
    expect(wrong).toEqual([]);
  });

  it('node scripts/rules-index.mjs rewrites the Tests lines and nothing else', () => {
    const before = [
      '## L. Logging in',
      '',
      '- **L3** [seed] Ten failures lock.',
      '  Second line of the description.',
      '  - Tests: [test/old.test.ts](../test/old.test.ts)',
      '- **L9** [ours] No Tests line yet.',
      '',
      'After the list.',
    ].join('\n');
    const named = new Map([['L3', ['src/a.test.ts', 'test/b.test.ts']]]);
    expect(updateIndex(before, named)).toBe(
      [
        '## L. Logging in',
        '',
        '- **L3** [seed] Ten failures lock.',
        '  Second line of the description.',
        '  - Tests: [src/a.test.ts](../src/a.test.ts), [test/b.test.ts](../test/b.test.ts)',
        '- **L9** [ours] No Tests line yet.',
        `  - Tests: ${NOT_BUILT}`,
        '',
        'After the list.',
      ].join('\n'),
    );
  });

  it.skipIf(specText === undefined)(
    'the rule index names only the rules SPEC.md defines, every one of them, under its section, marked [seed]/[ours] as there',
    () => {
      const spec = parseSpec(specText ?? '');
      expect(spec.length).toBeGreaterThan(0);
      const defined = new Map(spec.map((r) => [r.id, r]));
      const undefinedIds = [...new Set(page.match(/\b[A-Z]\d{1,2}\b/g) ?? [])].filter((id) => !defined.has(id));
      expect(undefinedIds).toEqual([]);
      const listed = entries.map((e) => e.id);
      expect(listed.filter((id, i) => listed.indexOf(id) !== i)).toEqual([]);
      expect(spec.filter((r) => !listed.includes(r.id)).map((r) => r.id)).toEqual([]);
      const misplaced = entries.flatMap((e) => {
        const rule = defined.get(e.id);
        if (!rule) return [];
        const problems: string[] = [];
        if (e.section !== rule.section) problems.push(`${e.id} under "${e.section}", in SPEC.md under "${rule.section}"`);
        if (e.tags.join(' ') !== rule.tags.join(' ')) problems.push(`${e.id} marked [${e.tags.join('] [')}], in SPEC.md [${rule.tags.join('] [')}]`);
        return problems;
      });
      expect(misplaced).toEqual([]);
    },
  );
});
