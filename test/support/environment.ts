/**
 * Which optional test suites can run here. PostgreSQL runs when
 * SLS_TEST_DATABASE_URL is set, Redis when SLS_TEST_REDIS_URL is; the
 * browser tests when Chromium is installed.
 * Under CI (CI=true) neither may be skipped.
 */
import { existsSync } from 'node:fs';

export const CHROMIUM_PATH = process.env.SLS_CHROMIUM ?? '/usr/bin/chromium';

export const postgresUrl: string | undefined = process.env.SLS_TEST_DATABASE_URL || undefined;
/** X5: the throttle's counters in Redis, when SLS_TEST_REDIS_URL is set. */
export const redisUrl: string | undefined = process.env.SLS_TEST_REDIS_URL || undefined;
export const chromiumAvailable: boolean = existsSync(CHROMIUM_PATH);
/** Voice messages of the outbox are spoken into audio files with espeak-ng (M7). */
export const espeakAvailable: boolean = ['/usr/bin/espeak-ng', '/usr/local/bin/espeak-ng'].some((path) => existsSync(path));
export const underCi: boolean = process.env.CI === 'true' || process.env.CI === '1';

export interface SkippedSuite {
  name: string;
  howToEnable: string;
}

export function skippedSuites(): SkippedSuite[] {
  const skipped: SkippedSuite[] = [];
  if (!postgresUrl) {
    skipped.push({
      name: 'PostgreSQL (repository conformance, multi-process lockout)',
      howToEnable: 'SLS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm test',
    });
  }
  if (!redisUrl) {
    skipped.push({
      name: 'Redis (the throttle counters in Redis)',
      howToEnable: 'SLS_TEST_REDIS_URL=redis://127.0.0.1:6379 npm test',
    });
  }
  if (!chromiumAvailable) {
    skipped.push({
      name: 'browser (real Chromium)',
      howToEnable: `apt-get install -y --no-install-recommends chromium (or SLS_CHROMIUM=/path/to/chromium)`,
    });
  }
  if (!espeakAvailable) {
    skipped.push({
      name: 'voice audio files (espeak-ng)',
      howToEnable: 'apt-get install -y --no-install-recommends espeak-ng',
    });
  }
  return skipped;
}
