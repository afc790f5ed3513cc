// Adds up a V8 CPU profile (BENCH_CPU_PROF=DIR) by package and by function: node bench/profile-summary.mjs DIR
import { readFileSync, readdirSync } from 'node:fs';
const dir = process.argv[2];
const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
const p = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
p.samples.forEach((id, i) => {
  self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);
// the shares of the time the server was not idle: what docs/benchmarks.md compares
const idle = [...self].filter(([id]) => byId.get(id).callFrame.functionName === '(idle)').reduce((a, [, t]) => a + t, 0);
const busy = total - idle;
const group = (n) => {
  const u = n.callFrame.url || '';
  if (!u) return `(${n.callFrame.functionName || 'native'})`;
  const m = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(u);
  if (m) return m[1];
  const s = /\/(src|dist)\/(.+)$/.exec(u);
  if (s) return s[2].replace(/\.js$/, '').replace(/\/[^/]+$/, '/*');
  if (u.startsWith('node:')) return u;
  return u;
};
const agg = (key) => {
  const m = new Map();
  for (const [id, t] of self) {
    const k = key(byId.get(id));
    m.set(k, (m.get(k) ?? 0) + t);
  }
  return [...m].sort((a, b) => b[1] - a[1]);
};
const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)} %${((100 * t) / busy).toFixed(1).padStart(6)} %`;
console.log(`total sampled ${(total / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms; columns: share of all, share of busy`);
console.log('-- by package / folder');
for (const [k, t] of agg(group).slice(0, 18)) console.log(pct(t), k);
console.log('-- by function');
for (const [k, t] of agg(
  (n) => `${n.callFrame.functionName || '(anonymous)'} ${(n.callFrame.url || '').replace(/.*\/(node_modules|dist|src)\//, '')}:${n.callFrame.lineNumber + 1}`,
).slice(0, 22))
  console.log(pct(t), k);
