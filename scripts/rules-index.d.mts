// Types of rules-index.mjs, for test/rules-index.test.ts.
export declare const ROOT: string;
export declare const INDEX_PATH: string;
export declare const DEFAULT_SPEC_PATH: string;
export declare const NOT_BUILT: string;

export type Tag = 'seed' | 'ours';
export interface SpecRule {
  id: string;
  section: string;
  tags: Tag[];
}
export interface IndexEntry {
  id: string;
  section: string;
  tags: Tag[];
  lines: string[];
  testsLine: string | undefined;
}

export declare function findTestFiles(root?: string): string[];
export declare function rulesInTitle(title: string): string[];
export declare function titlesOf(source: string): string[];
/** The source scanner's parts, shared with test/architecture.test.ts. */
export declare function skipTrivia(s: string, i: number): number;
export declare function readString(s: string, i: number): { end: number; value: string };
export declare function skipRegex(s: string, i: number): number;
export declare function collectNamedRules(root?: string): Map<string, string[]>;
export declare function parseSpec(text: string): SpecRule[];
export declare function parseIndex(text: string): IndexEntry[];
export declare function linkedFiles(testsLine: string): string[];
export declare function renderTestsLine(files: readonly string[]): string;
export declare function updateIndex(text: string, named: ReadonlyMap<string, readonly string[]>): string;
export declare function problems(
  entries: readonly IndexEntry[],
  named: ReadonlyMap<string, readonly string[]>,
  spec: readonly SpecRule[] | undefined,
): string[];
