import { skippedSuites, underCi } from './environment.js';

/** Says loudly which suites cannot run here, and refuses to skip them under CI. */
export default function setup(): () => void {
  const skipped = skippedSuites();
  if (skipped.length > 0 && underCi) {
    throw new Error(`CI must run every suite, but these cannot run: ${skipped.map((s) => s.name).join('; ')}`);
  }
  const report = (): void => {
    if (skipped.length === 0) return;
    const lines = skipped.map((s) => `  - SKIPPED ${s.name}\n      enable with: ${s.howToEnable}`);
    process.stdout.write(`\nSuites skipped on this machine:\n${lines.join('\n')}\n\n`);
  };
  report();
  return report;
}
