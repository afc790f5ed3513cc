/**
 * The dependency rules of docs/architecture.md ("Dependencies"), checked on
 * the imports of every file under src/ (tests included, generated files
 * none): no file-level import cycle, type-only imports included; the
 * composition root (services.ts) imported only by http/ and cli/; device
 * kinds (devices/<kind>/) reached only through their registry, which the
 * composition root injects; devices/ and flows/ never reach up to helpdesk/
 * or http/; delivery/ (the providers) never imports notify/ (their consumer).
 *
 * The installed TypeScript (7.x) has no JavaScript compiler API
 * (`createSourceFile`), so the imports are read by the small scanner below:
 * it skips comments, strings, template literals and regular expressions, and
 * reads `import … from '…'`, `import type …`, `import '…'`,
 * `export … from '…'` and `import('…')` (also in type positions).
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readString, skipRegex, skipTrivia } from '../scripts/rules-index.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

// ---------------------------------------------------------------- the scanner

/** The module specifiers a TypeScript source imports or re-exports, static, type-only and dynamic. */
function importsOf(source: string): string[] {
  const s = source;
  const found: string[] = [];
  let prev = ''; // the last significant character of code, to tell a regular expression from a division
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    const skipped = skipTrivia(s, i);
    if (skipped !== i) {
      i = skipped;
      continue;
    }
    if (c === '"' || c === "'") {
      i = readString(s, i).end;
      prev = c;
      continue;
    }
    if (c === '`') {
      i = skipTemplate(s, i, found);
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
      while (j < s.length && /[\w$]/.test(s[j]!)) j++;
      const word = s.slice(i, j);
      if ((word === 'import' || word === 'export') && prev !== '.') {
        const rest = s.slice(i, i + 4000);
        const m =
          /^import\s*\(\s*(['"])([^'"\n]+)\1/.exec(rest) ??
          /^import\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s*from\s*)?(['"])([^'"\n]+)\1/.exec(rest) ??
          /^export\s+(?:type\s+)?(?:\*(?:\s+as\s+[\w$]+)?|\{[^}]*\})\s*from\s*(['"])([^'"\n]+)\1/.exec(rest);
        if (m) {
          found.push(m[2]!);
          i += m[0].length;
          prev = "'";
          continue;
        }
      }
      i = j;
      prev = 'a';
      continue;
    }
    if (!/\s/.test(c)) prev = c;
    i++;
  }
  return found;
}

/** A template literal at i, with `${…}` expressions (which may import, or hold templates of their own). */
function skipTemplate(s: string, i: number, found: string[]): number {
  let k = i + 1;
  while (k < s.length) {
    if (s[k] === '\\') {
      k += 2;
    } else if (s[k] === '`') {
      return k + 1;
    } else if (s[k] === '$' && s[k + 1] === '{') {
      let depth = 1;
      const start = k + 2;
      k = start;
      while (k < s.length && depth > 0) {
        const c = s[k]!;
        if (c === '"' || c === "'") k = readString(s, k).end;
        else if (c === '`') k = skipTemplate(s, k, []);
        else {
          if (c === '{') depth++;
          if (c === '}') depth--;
          k++;
        }
      }
      found.push(...importsOf(s.slice(start, k - 1)));
    } else {
      k++;
    }
  }
  return k;
}

// ---------------------------------------------------------------- the graph

/** Every .ts file under src/, as paths relative to src/ with `/`. */
function sourceFiles(): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(SRC, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.d.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    files.push(
      path
        .slice(SRC.length + 1)
        .split(/[\\/]/)
        .join('/'),
    );
  }
  return files.sort();
}

/** A relative specifier of `from` resolved to a file under src/ (`.js` → `.ts`, a folder → its index), or undefined. */
function resolveSpecifier(from: string, specifier: string, files: Set<string>): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = posix.normalize(posix.join(posix.dirname(from), specifier));
  const candidates = [base, base.replace(/\.(m|c)?js$/, '.$1ts'), `${base}.ts`, `${base}/index.ts`];
  return candidates.find((c) => files.has(c));
}

interface Edge {
  from: string;
  to: string;
}

function importGraph(): { files: string[]; edges: Edge[]; unresolved: string[] } {
  const files = sourceFiles();
  const known = new Set(files);
  const edges: Edge[] = [];
  const unresolved: string[] = [];
  for (const from of files) {
    const seen = new Set<string>();
    for (const specifier of importsOf(readFileSync(join(SRC, from), 'utf8'))) {
      if (!specifier.startsWith('.')) continue;
      const to = resolveSpecifier(from, specifier, known);
      if (to === undefined) {
        // an import leaving src/ (a test's support file) is not part of the graph; one inside must resolve
        const target = posix.normalize(posix.join(posix.dirname(from), specifier));
        if (!target.startsWith('../') && !existsSync(join(SRC, target))) unresolved.push(`${from} → ${specifier}`);
        continue;
      }
      if (seen.has(to)) continue;
      seen.add(to);
      edges.push({ from, to });
    }
  }
  return { files, edges, unresolved };
}

/** The elementary cycles of the graph, each once, as `a → b → a`; one per strongly connected component's shortest loops. */
function cyclesOf(files: string[], edges: Edge[]): string[] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of edges) next.get(e.from)!.push(e.to);
  // Tarjan's strongly connected components
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
      }
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (next.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const f of files) if (!indexOf.has(f)) visit(f);
  // within each component, the shortest loop through each file (breadth first), deduplicated
  const cycles = new Set<string>();
  for (const component of components) {
    const inside = new Set(component);
    for (const startFile of [...component].sort()) {
      const parent = new Map<string, string>();
      const queue = [startFile];
      let closing: string | undefined;
      while (queue.length > 0 && closing === undefined) {
        const v = queue.shift()!;
        for (const w of next.get(v) ?? []) {
          if (!inside.has(w)) continue;
          if (w === startFile) {
            closing = v;
            break;
          }
          if (!parent.has(w)) {
            parent.set(w, v);
            queue.push(w);
          }
        }
      }
      if (closing === undefined) continue;
      const path = [closing];
      while (path[0] !== startFile) path.unshift(parent.get(path[0]!)!);
      // the same loop found from another of its files is written from its smallest file
      const smallest = path.indexOf([...path].sort()[0]!);
      const rotated = [...path.slice(smallest), ...path.slice(0, smallest)];
      cycles.add([...rotated, rotated[0]].join(' → '));
    }
  }
  return [...cycles].sort();
}

// ---------------------------------------------------------------- the rules

const graph = importGraph();
const isTest = (f: string) => f.endsWith('.test.ts');
const deviceKind = (f: string) => /^devices\/([^/]+)\//.exec(f)?.[1];
const under = (f: string, ...folders: string[]) => folders.some((d) => f.startsWith(`${d}/`));
const show = (edges: Edge[]) => edges.map((e) => `  src/${e.from} → src/${e.to}`).join('\n');

interface Rule {
  name: string;
  /** Heads the list of offending imports. */
  message: string;
  breaks: (e: Edge) => boolean;
  /** Imports (from, to) the rule refuses, and some it allows: the rule's own test. */
  refuses: [string, string][];
  allows: [string, string][];
}

const RULES: Rule[] = [
  {
    name: 'the composition root (services.ts) is imported only by http/ and cli/',
    message: 'services.ts imported outside src/http/ and src/cli/',
    breaks: (e) => e.to === 'services.ts' && !under(e.from, 'http', 'cli') && !isTest(e.from),
    refuses: [
      ['flows/login.ts', 'services.ts'],
      ['devices/mobile/enrolment.ts', 'services.ts'],
    ],
    allows: [
      ['http/api/login.ts', 'services.ts'],
      ['cli/main.ts', 'services.ts'],
    ],
  },
  {
    name: 'flows/, policy/, helpdesk/, identity/ and sessions/ know no device kind (devices/<kind>/) nor the registry of kinds',
    message: "imports of a device kind's folder (or of the registry, which the composition root injects)",
    breaks: (e) => under(e.from, 'flows', 'policy', 'helpdesk', 'identity', 'sessions') && (deviceKind(e.to) !== undefined || e.to === 'devices/registry.ts'),
    refuses: [
      ['flows/login.ts', 'devices/sms/sms.ts'],
      ['helpdesk/helpdesk.ts', 'devices/registry.ts'],
      ['policy/access.ts', 'devices/mobile/mobile.ts'],
    ],
    allows: [
      ['flows/login.ts', 'devices/types.ts'],
      ['helpdesk/helpdesk.ts', 'devices/devices.ts'],
    ],
  },
  {
    name: 'no device kind imports another kind (devices/a/ → devices/b/), nor the registry that holds them all',
    message: 'one device kind importing another (or every other, through the registry)',
    breaks: (e) => {
      const a = deviceKind(e.from);
      const b = deviceKind(e.to);
      return a !== undefined && ((b !== undefined && a !== b) || e.to === 'devices/registry.ts');
    },
    refuses: [
      ['devices/mobile/mobile.ts', 'devices/dscplus/dscplus.ts'],
      ['devices/mobile/enrolment.ts', 'devices/registry.ts'],
    ],
    allows: [
      ['devices/mobile/enrolment.ts', 'devices/mobile/keys.ts'],
      ['devices/mobile/mobile.ts', 'devices/ocra-device.ts'],
      ['devices/registry.ts', 'devices/sms/sms.ts'],
    ],
  },
  {
    name: 'devices/ and flows/ import neither helpdesk/ nor http/',
    message: 'devices/ or flows/ reaching up to helpdesk/ or http/',
    breaks: (e) => under(e.from, 'devices', 'flows') && under(e.to, 'helpdesk', 'http'),
    refuses: [
      ['flows/activation.ts', 'helpdesk/helpdesk.ts'],
      ['devices/dscplus/requests.ts', 'http/errors.ts'],
    ],
    allows: [
      ['devices/dscplus/requests.ts', 'flows/ports.ts'],
      ['helpdesk/helpdesk.ts', 'devices/types.ts'],
    ],
  },
  {
    name: 'delivery/ (the providers) does not import notify/ (their consumer)',
    message: 'delivery/ importing notify/',
    breaks: (e) => under(e.from, 'delivery') && under(e.to, 'notify'),
    refuses: [['delivery/twilio.ts', 'notify/notifier.ts']],
    allows: [['notify/notifier.ts', 'delivery/provider.ts']],
  },
];

describe('[ours] architecture: the dependency rules of docs/architecture.md, on the imports under src/', () => {
  it('[ours] architecture: the scanner reads every kind of import, and no others', () => {
    const source = [
      "import { a, type B } from './a.js';",
      "import type {\n  C,\n  D,\n} from '../c/d.js';",
      "import * as e from './e.js';",
      "import f, { g } from './f.js';",
      "import './side-effect.js';",
      "export { h } from './h.js';",
      "export type { I } from './i.js';",
      "export * from './j.js';",
      "export * as k from './k.js';",
      "type L = import('./l.js').L;",
      "const m = await import('./m.js');",
      "// import { n } from './comment.js';",
      "/* import('./block-comment.js') */",
      'const o = "import { p } from \'./string.js\'";',
      "const q = `${await import('./in-template.js')} import('./template-text.js')`;",
      "const r = /import\\('.\\/regex.js'\\)/;",
      'const s = import.meta.url;',
      'export const t = 1;',
    ].join('\n');
    expect(importsOf(source)).toEqual([
      './a.js',
      '../c/d.js',
      './e.js',
      './f.js',
      './side-effect.js',
      './h.js',
      './i.js',
      './j.js',
      './k.js',
      './l.js',
      './m.js',
      './in-template.js',
    ]);
  });

  it('[ours] architecture: every relative import under src/ resolves to a file', () => {
    expect(graph.edges.length).toBeGreaterThan(100);
    expect(graph.unresolved, graph.unresolved.join('\n')).toEqual([]);
  });

  it('[ours] architecture: no file-level import cycle under src/, type-only imports included', () => {
    const cycles = cyclesOf(graph.files, graph.edges);
    expect(cycles, `import cycles (each printed from its first file):\n  ${cycles.join('\n  ')}`).toEqual([]);
  });

  it.each(RULES)('[ours] architecture: $name', ({ message, breaks }) => {
    const bad = show(graph.edges.filter(breaks));
    expect(bad, `${message}:\n${bad}`).toBe('');
  });

  it('[ours] architecture: each rule refuses an import it names and lets an allowed one pass', () => {
    for (const rule of RULES) {
      for (const [from, to] of rule.refuses) expect(rule.breaks({ from, to }), `${rule.name}: ${from} → ${to}`).toBe(true);
      for (const [from, to] of rule.allows) expect(rule.breaks({ from, to }), `${rule.name}: ${from} → ${to}`).toBe(false);
    }
  });

  it('[ours] architecture: the cycle finder finds a loop of three and prints it from its first file', () => {
    const edges = [
      { from: 'b.ts', to: 'c.ts' },
      { from: 'c.ts', to: 'a.ts' },
      { from: 'a.ts', to: 'b.ts' },
      { from: 'a.ts', to: 'd.ts' },
    ];
    expect(cyclesOf(['a.ts', 'b.ts', 'c.ts', 'd.ts'], edges)).toEqual(['a.ts → b.ts → c.ts → a.ts']);
    expect(cyclesOf(['a.ts', 'b.ts'], [{ from: 'a.ts', to: 'b.ts' }])).toEqual([]);
  });
});
