#!/usr/bin/env node
/**
 * `npm run screens`: regenerates the pictures of every page in docs/screens
 * (test/browser/screens.browser.test.ts with SLS_SCREENS_DIR), then makes
 * them small with pngquant when it is installed (apt-get install pngquant):
 * a 256-colour palette, as PNG still, about a quarter of the size.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = 'docs/screens';
const test = spawnSync('npx', ['vitest', 'run', 'test/browser/screens.browser.test.ts'], {
  stdio: 'inherit',
  env: { ...process.env, SLS_SCREENS_DIR: dir },
});
if (test.status !== 0) process.exit(test.status ?? 1);

const files = readdirSync(dir, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(join(dir, d.name))
      .filter((f) => f.endsWith('.png'))
      .map((f) => join(dir, d.name, f)),
  );
const quant = spawnSync('pngquant', ['--force', '--ext', '.png', '--strip', '--speed', '1', '--quality', '60-90', '--skip-if-larger', ...files], {
  stdio: 'inherit',
});
if (quant.error) console.log('pngquant is not installed: the pictures are kept as Chromium wrote them (apt-get install pngquant to make them smaller).');
// 98: a file would have grown, 99: below the quality asked for; that file is kept as it was
else if (![0, 98, 99].includes(quant.status ?? 0)) process.exit(quant.status ?? 1);
console.log(`${files.length} pictures in ${dir}`);
