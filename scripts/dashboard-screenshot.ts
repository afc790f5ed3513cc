/**
 * `npm run dashboard`: the Grafana dashboard of docs/grafana/ and a picture
 * of it, drawn here (no Grafana needed).
 *
 *   1. writes docs/grafana/sls-dashboard.json from the panels below (their
 *      PromQL queries);
 *   2. starts a server on a temporary SQLite database on 127.0.0.1, runs a
 *      small bounded load against it (logins with DSC+ cards for portal and
 *      trading, wrong passwords and answers, one user locked, long polls)
 *      and scrapes GET /metrics every 2 s;
 *   3. evaluates each panel's query on those scrapes (rates, gauges,
 *      histogram quantiles, as Prometheus would), draws the panels as SVG in
 *      an HTML page, and has Chromium (playwright-core, /usr/bin/chromium or
 *      SLS_CHROMIUM) save it as docs/grafana/dashboard.png.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { loadConfig } from '../src/config.js';
import { createServices, type Services } from '../src/services.js';
import { buildApp } from '../src/http/app.js';
import { generateOcra, parseOcraSuite } from '../src/crypto/ocra.js';
import type { CardFile } from '../src/devices/devices.js';

const OUT_DIR = resolve(import.meta.dirname, '../docs/grafana');
const CHROMIUM = process.env.SLS_CHROMIUM ?? '/usr/bin/chromium';
const ROUNDS = 12;
const SCRAPE_EVERY_MS = 2_000;
const PASSWORD = 'correct horse battery staple';
const PIN = '1234';
const TOKEN = randomBytes(24).toString('hex');

// ---------------------------------------------------------------- panels --

type Labels = Record<string, string>;
interface Scrape {
  t: number;
  samples: { name: string; labels: Labels; value: number }[];
}
type Series = { name: string; points: (number | null)[] };

interface Panel {
  title: string;
  description: string;
  unit: 'reqps' | 's' | 'short' | 'bytes' | 'percentunit';
  targets: { expr: string; legend: string }[];
  /** The same queries, evaluated on the scrapes of this script (one point per scrape interval). */
  evaluate(scrapes: Scrape[]): Series[];
}

function matches(labels: Labels, filter: Labels): boolean {
  return Object.entries(filter).every(([k, v]) => labels[k] === v);
}

function groupKey(labels: Labels, by: string[]): string {
  return by.map((k) => labels[k] ?? '').join(' ');
}

/** sum by (by) (rate(name{filter}[…])) between consecutive scrapes. */
function rate(scrapes: Scrape[], name: string, filter: Labels, by: string[], perSecond = true): Map<string, (number | null)[]> {
  const out = new Map<string, (number | null)[]>();
  for (let i = 1; i < scrapes.length; i += 1) {
    const [a, b] = [scrapes[i - 1]!, scrapes[i]!];
    const dt = perSecond ? (b.t - a.t) / 1000 : 1;
    for (const s of b.samples) {
      if (s.name !== name || !matches(s.labels, filter)) continue;
      const before = a.samples.find((p) => p.name === name && JSON.stringify(p.labels) === JSON.stringify(s.labels))?.value ?? 0;
      const key = groupKey(s.labels, by);
      if (!out.has(key)) out.set(key, new Array(scrapes.length - 1).fill(0));
      out.get(key)![i - 1]! += Math.max(0, s.value - before) / dt;
    }
  }
  return out;
}

/** sum by (by) (name{filter}) at each scrape (from the second, to line up with rates). */
function gauge(scrapes: Scrape[], name: string, filter: Labels, by: string[]): Map<string, (number | null)[]> {
  const out = new Map<string, (number | null)[]>();
  scrapes.slice(1).forEach((scrape, i) => {
    for (const s of scrape.samples) {
      if (s.name !== name || !matches(s.labels, filter)) continue;
      const key = groupKey(s.labels, by);
      if (!out.has(key)) out.set(key, new Array(scrapes.length - 1).fill(0));
      out.get(key)![i]! += s.value;
    }
  });
  return out;
}

/** histogram_quantile(q, sum by (le) (increase(name_bucket[…]))), per interval; null without observations. */
function quantile(scrapes: Scrape[], q: number, name: string, filter: Labels): (number | null)[] {
  const byLe = rate(scrapes, `${name}_bucket`, filter, ['le'], false);
  const les = [...byLe.keys()].sort((x, y) => (x === '+Inf' ? 1 : y === '+Inf' ? -1 : Number(x) - Number(y)));
  return new Array(scrapes.length - 1).fill(0).map((_, i) => {
    const total = byLe.get('+Inf')?.[i] ?? 0;
    if (!total) return null;
    const rank = q * total;
    let prevLe = 0;
    let prevCount = 0;
    for (const le of les) {
      const count = byLe.get(le)![i]!;
      if (count >= rank) {
        if (le === '+Inf') return prevLe;
        const upper = Number(le);
        return count === prevCount ? upper : prevLe + ((upper - prevLe) * (rank - prevCount)) / (count - prevCount);
      }
      prevLe = le === '+Inf' ? prevLe : Number(le);
      prevCount = count;
    }
    return prevLe;
  });
}

function named(map: Map<string, (number | null)[]>, label: (key: string) => string): Series[] {
  return [...map.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, points]) => ({ name: label(key), points }));
}

const PANELS: Panel[] = [
  {
    title: 'Logins by result',
    description: 'Login flows started, completed and failed attempts per second, by application',
    unit: 'reqps',
    targets: [
      { expr: 'sum by (app) (rate(sls_logins_started_total[$__rate_interval]))', legend: 'started {{app}}' },
      { expr: 'sum by (app) (rate(sls_logins_succeeded_total[$__rate_interval]))', legend: 'succeeded {{app}}' },
      { expr: 'sum by (app, stage) (rate(sls_logins_failed_total[$__rate_interval]))', legend: 'failed {{app}} ({{stage}})' },
    ],
    evaluate: (s) => [
      ...named(rate(s, 'sls_logins_started_total', {}, ['app']), (k) => `started ${k}`),
      ...named(rate(s, 'sls_logins_succeeded_total', {}, ['app']), (k) => `succeeded ${k}`),
      ...named(rate(s, 'sls_logins_failed_total', {}, ['app', 'stage']), (k) => `failed ${k.replace(' ', ' (')})`),
    ],
  },
  {
    title: 'Second-factor answer latency',
    description: 'Time the server takes to check a second-factor answer: p50 and p99 over all device types',
    unit: 's',
    targets: [
      { expr: 'histogram_quantile(0.5, sum by (le) (rate(sls_second_factor_answer_seconds_bucket[$__rate_interval])))', legend: 'p50' },
      { expr: 'histogram_quantile(0.99, sum by (le) (rate(sls_second_factor_answer_seconds_bucket[$__rate_interval])))', legend: 'p99' },
    ],
    evaluate: (s) => [
      { name: 'p50', points: quantile(s, 0.5, 'sls_second_factor_answer_seconds', {}) },
      { name: 'p99', points: quantile(s, 0.99, 'sls_second_factor_answer_seconds', {}) },
    ],
  },
  {
    title: 'Locks (L3)',
    description: 'Users locked after 10 consecutive failures, per interval',
    unit: 'short',
    targets: [{ expr: 'sum(increase(sls_locks_total[$__rate_interval]))', legend: 'locks' }],
    evaluate: (s) => named(rate(s, 'sls_locks_total', {}, [], false), () => 'locks'),
  },
  {
    title: 'Throttle counted without Redis (X5)',
    description: 'Hits of the throttle the database counted because Redis was unreachable or too slow (decision 0017): above zero, Redis needs looking at',
    unit: 'short',
    targets: [{ expr: 'sum(increase(sls_throttle_fallbacks_total[$__rate_interval]))', legend: 'counted by the database' }],
    evaluate: (s) => named(rate(s, 'sls_throttle_fallbacks_total', {}, [], false), () => 'counted by the database'),
  },
  {
    title: 'Deliveries by result',
    description: 'Delivery attempts of the outbox worker (email, SMS, voice) and push requests, per second',
    unit: 'reqps',
    targets: [{ expr: 'sum by (channel, result) (rate(sls_deliveries_total[$__rate_interval]))', legend: '{{channel}} {{result}}' }],
    evaluate: (s) => named(rate(s, 'sls_deliveries_total', {}, ['channel', 'result']), (k) => k),
  },
  {
    title: 'Outbox not delivered yet',
    description: 'Notices waiting for the worker (pending) or being delivered (sending)',
    unit: 'short',
    targets: [{ expr: 'sum by (status) (sls_outbox_notices)', legend: '{{status}}' }],
    evaluate: (s) => named(gauge(s, 'sls_outbox_notices', {}, ['status']), (k) => k),
  },
  {
    title: 'Long polls waiting',
    description: 'Login pages, apps and step-ups waiting for the phone, summed over the servers',
    unit: 'short',
    targets: [{ expr: 'sum(sls_long_polls_waiting)', legend: 'waiting' }],
    evaluate: (s) => named(gauge(s, 'sls_long_polls_waiting', {}, []), () => 'waiting'),
  },
  {
    title: 'Database pool',
    description: 'Connections open and idle, and queries waiting for a connection (SQLite: one connection)',
    unit: 'short',
    targets: [
      { expr: 'sum(sls_db_pool_connections)', legend: 'open' },
      { expr: 'sum(sls_db_pool_idle_connections)', legend: 'idle' },
      { expr: 'sum(sls_db_pool_waiting_requests)', legend: 'waiting' },
    ],
    evaluate: (s) => [
      ...named(gauge(s, 'sls_db_pool_connections', {}, []), () => 'open'),
      ...named(gauge(s, 'sls_db_pool_idle_connections', {}, []), () => 'idle'),
      ...named(gauge(s, 'sls_db_pool_waiting_requests', {}, []), () => 'waiting'),
    ],
  },
  {
    title: 'Process CPU',
    description: 'CPU used by each server process (1 = one core)',
    unit: 'percentunit',
    targets: [{ expr: 'rate(process_cpu_seconds_total{job="sls"}[$__rate_interval])', legend: '{{instance}}' }],
    evaluate: (s) => named(rate(s, 'process_cpu_seconds_total', {}, []), () => 'cpu'),
  },
  {
    title: 'Process memory',
    description: 'Resident memory and V8 heap used of each server process',
    unit: 'bytes',
    targets: [
      { expr: 'process_resident_memory_bytes{job="sls"}', legend: 'resident {{instance}}' },
      { expr: 'sum by (instance) (nodejs_heap_size_used_bytes{job="sls"})', legend: 'heap used {{instance}}' },
    ],
    evaluate: (s) => [
      ...named(gauge(s, 'process_resident_memory_bytes', {}, []), () => 'resident'),
      ...named(gauge(s, 'nodejs_heap_size_used_bytes', {}, []), () => 'heap used'),
    ],
  },
];

function grafanaDashboard(): unknown {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's own variable syntax, filled in when the dashboard is imported
  const datasource = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };
  return {
    __inputs: [{ name: 'DS_PROMETHEUS', label: 'Prometheus', type: 'datasource', pluginId: 'prometheus', pluginName: 'Prometheus' }],
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      { type: 'panel', id: 'timeseries', name: 'Time series', version: '' },
    ],
    title: 'Secure Login System',
    uid: 'sls-overview',
    description:
      'Logins, second-factor latency, locks, the throttle without Redis, deliveries, outbox, long polls, database pool and processes (docs/operations.md, Metrics)',
    tags: ['sls'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timezone: 'browser',
    templating: { list: [] },
    annotations: { list: [] },
    panels: PANELS.map((panel, i) => ({
      id: i + 1,
      type: 'timeseries',
      title: panel.title,
      description: panel.description,
      datasource,
      gridPos: { h: 8, w: 8, x: (i % 3) * 8, y: Math.floor(i / 3) * 8 },
      fieldConfig: { defaults: { unit: panel.unit, min: 0, custom: { lineWidth: 2, fillOpacity: 10 } }, overrides: [] },
      options: { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'none' } },
      targets: panel.targets.map((target, j) => ({ refId: String.fromCharCode(65 + j), datasource, expr: target.expr, legendFormat: target.legend })),
    })),
  };
}

// ------------------------------------------------------------------ load --

interface Client {
  base: string;
  // biome-ignore lint/suspicious/noExplicitAny: the load reads a few fields of each answer
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Record<string, any> }>;
}

function client(base: string): Client {
  return {
    base,
    async post(path, body, headers = {}) {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
  };
}

interface LoadUser {
  username: string;
  card: CardFile;
}

async function makeUser(services: Services, n: number): Promise<LoadUser> {
  const username = `load${n}${randomBytes(2).toString('hex')}`;
  const user = await services.users.create({ username, password: PASSWORD, equityUsd: 2_000_000, email: `${username}@example.invalid` }, 'dashboard');
  const { card } = await services.devices.addDscPlus({ userId: user.id, pin: PIN }, 'dashboard');
  return { username, card };
}

function cardAnswer(card: CardFile, question: string): string {
  return generateOcra(parseOcraSuite(card.suite), { key: Buffer.from(card.seed, 'hex'), question, pin: PIN });
}

async function login(c: Client, user: LoadUser, app: 'portal' | 'trading', options: { wrongPassword?: boolean; wrongAnswer?: boolean } = {}): Promise<void> {
  const start = await c.post('/api/v1/login', { username: user.username, password: options.wrongPassword ? 'not the password' : PASSWORD, app });
  if (start.status !== 200) return;
  const right = cardAnswer(user.card, start.body.challenge.question as string);
  // L8: the login is answered with its claim token, as its client does
  const claim = { 'x-claim-token': start.body.claimToken as string };
  if (options.wrongAnswer)
    await c.post(`/api/v1/login/${start.body.id as string}`, { response: right.replace(/\d$/, (d) => String((Number(d) + 1) % 10)) }, claim);
  await c.post(`/api/v1/login/${start.body.id as string}`, { response: right }, claim);
}

function parsePrometheus(text: string, t: number): Scrape {
  const samples: Scrape['samples'] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { t, samples };
}

/** The throttle (X5) counts every request of this one address: off, so that the load is what the panels show. */
const NO_LIMITS = Object.fromEntries(['LOGIN', 'ANSWER', 'SEND', 'ACTIVATION', 'HELPDESK', 'ADMIN'].map((kind) => [`SLS_LIMIT_${kind}`, 'off']));

async function runLoad(): Promise<Scrape[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sls-dashboard-'));
  const config = loadConfig(
    {
      SLS_DATA_DIR: dataDir,
      SLS_MASTER_KEY: randomBytes(32).toString('hex'),
      SLS_LOG_LEVEL: 'silent',
      SLS_METRICS_TOKEN: TOKEN,
      SLS_OUTBOX_POLL_MS: '500',
      ...NO_LIMITS,
    },
    { databaseUrl: `sqlite:${join(dataDir, 'sls.db')}` },
  );
  const services = await createServices(config, { warn: () => undefined });
  const app = await buildApp(services, { logger: false });
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const c = client(`http://127.0.0.1:${port}`);
    services.outbox.start();
    const users = await Promise.all(Array.from({ length: 8 }, (_, i) => makeUser(services, i)));
    const victim = await makeUser(services, 99);
    const scrapes: Scrape[] = [];
    const scrape = async () => {
      const res = await fetch(`${c.base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
      scrapes.push(parsePrometheus(await res.text(), Date.now()));
    };
    const polls: Promise<unknown>[] = [];
    await scrape();
    for (let round = 0; round < ROUNDS; round += 1) {
      const due = Date.now() + SCRAPE_EVERY_MS;
      // a wave that rises and falls, so the panels show some shape
      const logins = 1 + Math.round(3 * Math.sin((Math.PI * round) / (ROUNDS - 1)));
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < logins; i += 1) {
        const user = users[(round * 3 + i) % users.length]!;
        work.push(login(c, user, i % 2 === 0 ? 'portal' : 'trading', { wrongAnswer: (round + i) % 4 === 0 }));
      }
      if (round % 3 === 1) work.push(login(c, users[round % users.length]!, 'portal', { wrongPassword: true }));
      // L3: the victim's 10 consecutive wrong passwords, over rounds 5 and 6
      if (round === 5 || round === 6) for (let i = 0; i < 5; i += 1) work.push(login(c, victim, 'trading', { wrongPassword: true }));
      // long polls: a few login pages waiting for a phone, for a few seconds
      if (round >= 3 && round <= 8) {
        for (let i = 0; i < (round % 3) + 1; i += 1)
          polls.push(services.signals.waitFor([`flow:dashboard-${round}-${i}`], 3_000 + 1_000 * i, async () => null));
      }
      await Promise.all(work);
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
      await scrape();
    }
    await Promise.all(polls);
    return scrapes;
  } finally {
    await app.close();
    await services.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- render --

const COLORS = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#5794f2', '#b877d9', '#fade2a', '#37872d'];

function formatValue(value: number, unit: Panel['unit']): string {
  if (unit === 'bytes') {
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let v = value;
    let u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u += 1;
    }
    return `${v.toFixed(v < 10 && u > 0 ? 1 : 0)} ${units[u]}`;
  }
  if (unit === 's') return value < 1 ? `${(value * 1000).toFixed(value < 0.01 ? 1 : 0)} ms` : `${value.toFixed(2)} s`;
  if (unit === 'percentunit') return `${(value * 100).toFixed(0)}%`;
  if (unit === 'reqps') return `${Number(value.toFixed(2))} req/s`;
  return String(Number(value.toFixed(2)));
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[ch]!);
}

function chart(panel: Panel, series: Series[], times: number[]): string {
  const [w, h, left, right, top, bottom] = [520, 230, 62, 10, 10, 26];
  const values = series.flatMap((s) => s.points.filter((p): p is number => p !== null));
  const floor = panel.unit === 'percentunit' ? 0.1 : panel.unit === 's' ? 0.01 : 1;
  const max = Math.max(...values, floor) * 1.15;
  const x = (i: number) => left + ((w - left - right) * i) / Math.max(1, times.length - 1);
  const y = (v: number) => top + (h - top - bottom) * (1 - v / max);
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const v = max * f;
      return `<line x1="${left}" x2="${w - right}" y1="${y(v)}" y2="${y(v)}" stroke="#2c3235"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${escapeXml(formatValue(v, panel.unit))}</text>`;
    })
    .join('');
  const start = times[0] ?? 0;
  const ticks = times
    .map((t, i) => (i % 2 === 0 ? `<text x="${x(i)}" y="${h - 8}" text-anchor="middle">+${Math.round((t - start) / 1000)}s</text>` : ''))
    .join('');
  const lines = series
    .map((s, k) => {
      const color = COLORS[k % COLORS.length]!;
      const segments: string[] = [];
      let current: string[] = [];
      s.points.forEach((p, i) => {
        if (p === null) {
          if (current.length) segments.push(current.join(' '));
          current = [];
        } else current.push(`${x(i).toFixed(1)},${y(p).toFixed(1)}`);
      });
      if (current.length) segments.push(current.join(' '));
      return segments
        .map((points) => {
          const pts = points.split(' ');
          const area =
            pts.length > 1
              ? `<polygon points="${pts[0]!.split(',')[0]},${y(0)} ${points} ${pts.at(-1)!.split(',')[0]},${y(0)}" fill="${color}" opacity="0.1"/>`
              : '';
          const dots = pts.length === 1 ? `<circle cx="${pts[0]!.split(',')[0]}" cy="${pts[0]!.split(',')[1]}" r="3" fill="${color}"/>` : '';
          return `${area}<polyline points="${points}" fill="none" stroke="${color}" stroke-width="2"/>${dots}`;
        })
        .join('');
    })
    .join('');
  const legend = series.map((s, k) => `<span class="key"><i style="background:${COLORS[k % COLORS.length]}"></i>${escapeXml(s.name)}</span>`).join('');
  return `<section class="panel"><h2 title="${escapeXml(panel.description)}">${escapeXml(panel.title)}</h2>
<svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}">${grid}${ticks}${lines}</svg>
<div class="legend">${legend || '<span class="key">no data</span>'}</div></section>`;
}

function page(scrapes: Scrape[]): string {
  const times = scrapes.slice(1).map((s) => s.t);
  const panels = PANELS.map((panel) => chart(panel, panel.evaluate(scrapes), times)).join('\n');
  const span = Math.round((scrapes.at(-1)!.t - scrapes[0]!.t) / 1000);
  return `<!doctype html><html><head><meta charset="utf-8"><style>
body { margin: 0; background: #111217; color: #ccccdc; font: 13px/1.4 "DejaVu Sans", sans-serif; }
header { padding: 12px 16px; border-bottom: 1px solid #2c3235; display: flex; justify-content: space-between; }
header h1 { font-size: 17px; margin: 0; color: #fff; font-weight: 500; }
main { display: grid; grid-template-columns: repeat(3, 544px); gap: 8px; padding: 8px; }
.panel { background: #181b1f; border: 1px solid #2c3235; border-radius: 2px; padding: 6px 10px 8px; }
.panel h2 { font-size: 13px; margin: 0 0 4px; color: #fff; font-weight: 500; }
svg text { fill: #8e8e9e; font-size: 10px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 11px; min-height: 16px; }
.key i { display: inline-block; width: 12px; height: 3px; margin-right: 5px; vertical-align: middle; }
</style></head><body>
<header><h1>Secure Login System</h1><span>${scrapes.length} scrapes of GET /metrics over ${span} s · npm run dashboard</span></header>
<main>${panels}</main></body></html>`;
}

async function screenshot(html: string, path: string): Promise<void> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const tab = await browser.newPage({ viewport: { width: 1656, height: 900 }, deviceScaleFactor: 1 });
    await tab.setContent(html, { waitUntil: 'load' });
    await tab.screenshot({ path, fullPage: true });
  } finally {
    await browser.close();
  }
}

writeFileSync(join(OUT_DIR, 'sls-dashboard.json'), `${JSON.stringify(grafanaDashboard(), null, 2)}\n`);
const scrapes = await runLoad();
await screenshot(page(scrapes), join(OUT_DIR, 'dashboard.png'));
process.stdout.write(`docs/grafana/sls-dashboard.json and docs/grafana/dashboard.png written (${scrapes.length} scrapes)\n`);
