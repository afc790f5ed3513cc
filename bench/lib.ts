/**
 * Benchmark helpers: a closed-loop load runner, latency statistics, CPU
 * accounting (this process and the server child) and the machine
 * description. Nothing here asserts a speed; run.ts prints ratios.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  os: string;
  argon2Package: string;
  uvThreadpoolSize: number;
  /** 1-minute load average when the run started: other work on the machine disturbs every figure. */
  loadAverageAtStart: number;
}

function packageVersion(name: string): string {
  try {
    const text = readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8');
    return `${name} ${(JSON.parse(text) as { version: string }).version}`;
  } catch {
    return `${name} (version unknown)`;
  }
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${platform()} ${release()} ${arch()}`,
    argon2Package: packageVersion('@node-rs/argon2'),
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
    loadAverageAtStart: round(loadavg()[0] ?? 0, 2),
  };
}

export interface LatencyStats {
  n: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function latencyStats(samples: number[]): LatencyStats {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    p50Ms: round(percentile(sorted, 50), 2),
    p99Ms: round(percentile(sorted, 99), 2),
    meanMs: round(sorted.length ? sum / sorted.length : Number.NaN, 2),
    maxMs: round(sorted.at(-1) ?? Number.NaN, 2),
  };
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** CPU time (user + system, ms) of this process, worker threads included. */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU time (user + system, ms) of another process, all its threads (the
 * libuv threadpool running argon2 included), from /proc on Linux; null
 * elsewhere.
 */
export function processCpuMs(pid: number): number | null {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** CPU time (ms) of a process's main thread alone: in node, JavaScript, SQLite and HTTP parsing; not the libuv threadpool. */
export function mainThreadCpuMs(pid: number): number | null {
  return statCpuMs(`/proc/${pid}/task/${pid}/stat`);
}

function statCpuMs(path: string): number | null {
  try {
    const stat = readFileSync(path, 'utf8');
    // the command name may hold spaces: fields start after the closing parenthesis
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** Busy and total CPU time of the whole machine (ms, all cores), from /proc/stat on Linux; null elsewhere. */
function machineCpuMs(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [, ...values] = line.trim().split(/\s+/);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = values.map(Number) as number[];
    // interrupts are left out: loopback TCP of our own requests is handled there
    const busy = user! + nice! + system! + steal!;
    const toMs = (ticks: number): number => (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
    return { busy: toMs(busy), total: toMs(busy + idle! + iowait! + irq! + softirq!) };
  } catch {
    return null;
  }
}

export interface CpuShares {
  elapsedMs: number;
  /** CPU ms of the bench process (the HTTP client, or argon2 in phase 1). */
  clientMs: number;
  /** CPU ms of the server child (of all of them, when there are several), when it can be read. */
  serverMs: number | null;
  /** CPU ms of the server's main thread (the event loop; all servers' added up), when it can be read. */
  serverMainMs: number | null;
  /** CPU ms of each server process, in the order given. */
  perServerMs: (number | null)[];
  /** CPU ms of the PostgreSQL backends serving the watched database (null: none watched, or /proc unreadable). */
  postgresMs: number | null;
  /** How many such backends were seen during the window. */
  postgresBackends: number;
  /** Share of the machine (all cores) used by the bench, the servers and their PostgreSQL backends. */
  ours: number;
  /**
   * Share of the machine used by anything else during the window (other
   * processes, the hypervisor's steal): the measurement is disturbed when
   * this is not near 0.
   */
  others: number | null;
}

/** What a CPU window watches besides this process: server children, and the PostgreSQL backends of one database. */
export interface Watched {
  servers: number[];
  /** The database whose backends are counted (found by their process titles in /proc; update_process_title is on by default). */
  postgresDatabase?: string;
}

function watchedOf(who: number | Watched | undefined): Watched {
  if (who === undefined) return { servers: [] };
  return typeof who === 'number' ? { servers: [who] } : who;
}

/**
 * CPU ms of every PostgreSQL backend of `database` on this machine, by pid.
 * A backend's title reads "postgres: [cluster: ]USER DATABASE HOST(PORT) STATE".
 */
export function postgresBackendsCpuMs(database: string): Map<number, number> {
  const found = new Map<number, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return found;
  }
  for (const pid of pids) {
    let title: string;
    try {
      title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (!title.startsWith('postgres: ') || !title.includes(` ${database} `)) continue;
    const cpu = processCpuMs(Number(pid));
    if (cpu !== null) found.set(Number(pid), cpu);
  }
  return found;
}

/** Starts measuring CPU use; call the result to stop. */
export function cpuWindow(cores: number, who?: number | Watched): () => CpuShares {
  const watched = watchedOf(who);
  const servers0 = watched.servers.map((pid) => processCpuMs(pid));
  const mains0 = watched.servers.map((pid) => mainThreadCpuMs(pid));
  const pg0 = watched.postgresDatabase ? postgresBackendsCpuMs(watched.postgresDatabase) : null;
  const client0 = ownCpuMs();
  const machine0 = machineCpuMs();
  const t0 = performance.now();
  return () => {
    const elapsedMs = performance.now() - t0;
    const clientMs = ownCpuMs() - client0;
    const perServerMs = watched.servers.map((pid, i) => {
      const now = processCpuMs(pid);
      return now !== null && servers0[i] !== null ? now - servers0[i]! : null;
    });
    const perMainMs = watched.servers.map((pid, i) => {
      const now = mainThreadCpuMs(pid);
      return now !== null && mains0[i] !== null ? now - mains0[i]! : null;
    });
    const sum = (values: (number | null)[]): number | null =>
      values.length === 0 || values.some((v) => v === null) ? null : values.reduce<number>((a, b) => a + b!, 0);
    const pg1 = watched.postgresDatabase ? postgresBackendsCpuMs(watched.postgresDatabase) : null;
    let postgresMs: number | null = null;
    let postgresBackends = 0;
    if (pg0 && pg1) {
      // a backend opened during the window counts from 0; one closed during it is lost (pools keep theirs while busy)
      postgresMs = 0;
      for (const [pid, cpu] of pg1) postgresMs += cpu - (pg0.get(pid) ?? 0);
      postgresBackends = new Set([...pg0.keys(), ...pg1.keys()]).size;
    }
    const machine1 = machineCpuMs();
    const serverMs = sum(perServerMs);
    const serverMainMs = sum(perMainMs);
    const capacity = elapsedMs * cores;
    const oursMs = clientMs + (serverMs ?? 0) + (postgresMs ?? 0);
    const others = machine0 && machine1 ? Math.max(0, (machine1.busy - machine0.busy - oursMs) / capacity) : null;
    return {
      elapsedMs,
      clientMs,
      serverMs,
      serverMainMs,
      perServerMs,
      postgresMs,
      postgresBackends,
      ours: round(oursMs / capacity, 3),
      others: others === null ? null : round(others, 3),
    };
  };
}

/**
 * Waits (bounded) until other processes leave the machine nearly idle, so
 * that a phase does not start while something else is running. Returns the
 * share of the machine the others used in the last sample.
 */
export async function waitForQuiet(
  cores: number,
  options: { serverPid?: number; watched?: Watched; maxWaitMs: number; threshold: number; onWait?: (others: number) => void },
): Promise<{ waitedMs: number; others: number | null }> {
  const t0 = performance.now();
  let warned = false;
  for (;;) {
    const stop = cpuWindow(cores, options.watched ?? options.serverPid);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { others } = stop();
    const waitedMs = Math.round(performance.now() - t0);
    if (others === null || others <= options.threshold || waitedMs >= options.maxWaitMs) return { waitedMs, others };
    if (!warned) options.onWait?.(others);
    warned = true;
  }
}

export interface Failure {
  phase: string;
  what: string;
}

export interface LoadResult {
  ops: number;
  elapsedMs: number;
  ratePerSecond: number;
  latency: LatencyStats;
  /** CPU ms per operation in the bench process (the HTTP client). */
  clientCpuMsPerOp: number;
  /** CPU ms per operation in the server child, when it can be read. */
  serverCpuMsPerOp: number | null;
  /** Of which the server's main thread (JavaScript, SQLite, HTTP): the rest is the threadpool (argon2id) and V8's helper threads. */
  serverMainThreadCpuMsPerOp: number | null;
  /** CPU ms per operation of each server process, when there are several (the load spread over them). */
  perServerCpuMsPerOp?: (number | null)[];
  /** CPU ms per operation of the PostgreSQL backends of the bench's database. */
  postgresCpuMsPerOp?: number | null;
  /** Share of the machine (all cores) used by the server and the client during the window. */
  cpuOurs: number;
  /** Share of the machine used by other processes during the window. */
  cpuOthers: number | null;
  concurrency: number;
}

/**
 * A closed loop: `concurrency` virtual users, each running `perVu`
 * operations one after the other (the next starts when the previous has
 * completed). Each operation's latency is recorded; the rate is completed
 * operations over the wall time of the whole window.
 */
export async function closedLoop(options: {
  concurrency: number;
  perVu: number;
  op: (vu: number, i: number) => Promise<void>;
  serverPid?: number;
  /** Instead of serverPid: several servers, and PostgreSQL's backends. */
  watched?: Watched;
  cores: number;
}): Promise<LoadResult> {
  const { concurrency, perVu, op } = options;
  const latencies: number[] = [];
  const stop = cpuWindow(options.cores, options.watched ?? options.serverPid);
  await Promise.all(
    Array.from({ length: concurrency }, async (_, vu) => {
      for (let i = 0; i < perVu; i++) {
        const t0 = performance.now();
        await op(vu, i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const cpu = stop();
  const ops = concurrency * perVu;
  return {
    ops,
    elapsedMs: round(cpu.elapsedMs, 1),
    ratePerSecond: round((ops * 1000) / cpu.elapsedMs, 1),
    latency: latencyStats(latencies),
    clientCpuMsPerOp: round(cpu.clientMs / ops, 3),
    serverCpuMsPerOp: cpu.serverMs === null ? null : round(cpu.serverMs / ops, 3),
    serverMainThreadCpuMsPerOp: cpu.serverMainMs === null ? null : round(cpu.serverMainMs / ops, 3),
    ...(cpu.perServerMs.length > 1 ? { perServerCpuMsPerOp: cpu.perServerMs.map((ms) => (ms === null ? null : round(ms / ops, 3))) } : {}),
    ...(options.watched?.postgresDatabase ? { postgresCpuMsPerOp: cpu.postgresMs === null ? null : round(cpu.postgresMs / ops, 3) } : {}),
    cpuOurs: cpu.ours,
    cpuOthers: cpu.others,
    concurrency,
  };
}

/** A plain text table with right-aligned numbers. */
export function table(header: string[], rows: (string | number | null)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (c === null ? '-' : typeof c === 'number' ? formatNumber(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (Math.abs(n) >= 1000) return Math.round(n).toString();
  if (Math.abs(n) >= 100) return n.toFixed(1);
  if (Math.abs(n) >= 10) return n.toFixed(2);
  return n.toFixed(3);
}

export function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)} %`;
}
