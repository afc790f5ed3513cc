import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One file per core, and at least two: much of a file's time is spent waiting on the server processes,
    // Chromium and the databases it starts, so two files share two cores well (vitest's default is cores − 1,
    // one file at a time on a 2-core machine). Each file has a database schema and ports of its own.
    maxWorkers: Math.max(2, availableParallelism()),
  },
});
