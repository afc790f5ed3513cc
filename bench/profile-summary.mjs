// Adds up a V8 CPU profile (BENCH_CPU_PROF=DIR) by package and by function:
//   node bench/profile-summary.mjs DIR|FILE              the whole profile (DIR: its main thread's)
//   node bench/profile-summary.mjs DIR|FILE --timeline   busy ms per second, to find a phase's window
//   node bench/profile-summary.mjs DIR|FILE FROM TO      only the samples from FROM to TO seconds
import { readFileSync, readdirSync, statSync } from 'node:fs';
const [path, ...rest] = process.argv.slice(2);
// the main thread's profile of a directory (node names it CPU.<date>.<time>.<pid>.0.<n>.cpuprofile)
const file = statSync(path).isDirectory()
  ? `${path}/${
      readdirSync(path)
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort((a, b) => Number(/\.0\.\d+\.cpuprofile$/.test(b)) - Number(/\.0\.\d+\.cpuprofile$/.test(a)))[0]
    }`
  : path;
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const isIdle = (id) => byId.get(id).callFrame.functionName === '(idle)';
// each sample's time since the profile started, in µs
const at = [];
p.samples.reduce((t, _, i) => {
  at[i] = t + (p.timeDeltas[i] ?? 0);
  return at[i];
}, 0);
if (rest[0] === '--timeline') {
  const perSecond = new Map();
  p.samples.forEach((id, i) => {
    if (isIdle(id)) return;
    const s = Math.floor(at[i] / 1e6);
    perSecond.set(s, (perSecond.get(s) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  for (const [s, t] of [...perSecond].sort((a, b) => a[0] - b[0])) console.log(`${String(s).padStart(4)} s ${(t / 1000).toFixed(0).padStart(5)} ms busy`);
  process.exit(0);
}
const [from, to] = rest.length === 2 ? rest.map((x) => Number(x) * 1e6) : [0, Number.POSITIVE_INFINITY];
const self = new Map();
p.samples.forEach((id, i) => {
  if (at[i] < from || at[i] > to) return;
  self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);
// the shares of the time the server was not idle: what docs/benchmarks.md compares
const idle = [...self].filter(([id]) => isIdle(id)).reduce((a, [, t]) => a + t, 0);
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
