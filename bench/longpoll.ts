/**
 * Phase 8 of `npm run bench` (long polls): many mobile apps holding their
 * live connection (`POST /api/v1/mobile/requests`, wait 25 s) at once, as
 * the phones of a deployment do all day. Measured: the server's resident
 * memory per waiting connection, the server's CPU while they only wait
 * (their periodic re-reads of the database), and the wake-up latency of
 * one approval (phase 5's path, bench/approval.ts) while they wait.
 *
 * The waiting connections use the tokens of a few idle activated phones,
 * spread evenly (a phone holds one connection in real life; the server's
 * cost of a waiting connection does not depend on whose token it is).
 * Every connection polls again as soon as its answer (after 25 s) arrives.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { approvalPhase, type ApprovalPhase, type BenchPhone } from './approval.js';
import { cpuWindow, round } from './lib.js';

/** Waiting connections opened at a time, then a short pause (the listen backlog is 511). */
const BATCH = 250;
const WAIT_SECONDS = 25;
/** How long the server may take to have every connection waiting (it reads each one's token and requests first). */
const TAKE_IN_LIMIT_MS = 30_000;
/** Once they all wait, a moment before the idle window. */
const SETTLE_MS = 1_000;
/** The idle window in which the server's CPU is read while they all wait: one period of their re-reads (signals.ts), so each waiter reads once in it. */
const IDLE_WINDOW_MS = 10_000;

export interface LongPollPhase {
  waiters: number;
  /** Waiting connections open when the approvals began, and when they ended. */
  openAtStart: number;
  openAtEnd: number;
  /** Polls answered before their 25 s, other than by the server stopping: should be 0. */
  answeredEarly: number;
  /**
   * Waiting connections that failed (a reset, mostly when they poll again on
   * a kept-alive socket) and were opened again at once, as the app does
   * after a pause; with the seconds since the phase began of the first few.
   */
  reconnected: number;
  reconnectErrors: string[];
  rssBeforeMiB: number;
  rssWaitingMiB: number;
  rssPerWaiterKiB: number;
  /** Server CPU, % of one core, while the connections only wait (no approval under way). */
  idleServerCpuPercentOfCore: number | null;
  approval: ApprovalPhase;
  openSeconds: number;
  /** Seconds from the first connection until the server counted them all waiting (its sls_long_polls_waiting gauge); null if it never did within the limit. */
  takenInSeconds: number | null;
}

type Fail = (phase: string, what: string) => void;

/** The server's resident set size (KiB), from /proc; null elsewhere. */
export function rssKiB(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** The server's count of waiting long polls (GET /metrics, sls_long_polls_waiting); 0 when it cannot be read. */
function waitingOnServer(base: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve(Number(/^sls_long_polls_waiting (\d+)/m.exec(text)?.[1] ?? 0)));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
  });
}

/** This process's soft limit on open files (the waiting connections' sockets), from /proc; null elsewhere. */
export function openFilesLimit(): number | null {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!match) return null;
    return match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
  } catch {
    return null;
  }
}

export async function longPollPhase(options: {
  base: string;
  serverPid: number;
  cores: number;
  waiters: number;
  idlePhones: BenchPhone[];
  approver: BenchPhone;
  password: string;
  approvals: { warmup: number; samples: number };
  fail: Fail;
  progress: (line: string) => void;
  /** --quick: a shorter settling time and idle window. */
  quick?: boolean;
  /** The server's SLS_METRICS_TOKEN: its gauge of waiting long polls tells when every connection waits. */
  metricsToken: string;
}): Promise<LongPollPhase> {
  const settleMs = options.quick ? SETTLE_MS / 2 : SETTLE_MS;
  const idleWindowMs = options.quick ? IDLE_WINDOW_MS / 3 : IDLE_WINDOW_MS;
  const { base, serverPid, waiters, idlePhones, fail } = options;
  const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  let stopping = false;
  let open = 0;
  let answeredEarly = 0;
  let reconnected = 0;
  const reconnectErrors: string[] = [];
  const phaseStart = performance.now();

  const poll = (phone: BenchPhone): Promise<{ status: number; ms: number }> =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ devices: [{ deviceId: phone.deviceId, token: phone.token }], wait: WAIT_SECONDS });
      const t0 = performance.now();
      const req = http.request(
        `${base}/api/v1/mobile/requests`,
        { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const waiter = async (k: number): Promise<void> => {
    const phone = idlePhones[k % idlePhones.length]!;
    while (!stopping) {
      open += 1;
      try {
        const { status, ms } = await poll(phone);
        if (stopping) return;
        if (status !== 200) fail('long poll', `POST /api/v1/mobile/requests (waiting): HTTP ${status}`);
        else if (ms < (WAIT_SECONDS - 1) * 1000) answeredEarly += 1;
      } catch (error) {
        if (stopping) return;
        reconnected += 1;
        if (reconnectErrors.length < 5) reconnectErrors.push(`${(error as Error).message} at ${round((performance.now() - phaseStart) / 1000, 1)} s`);
        if (reconnected > Math.max(10, waiters / 10)) {
          fail('long poll', `more than a tenth of the waiting connections failed: ${(error as Error).message}`);
          return;
        }
      } finally {
        open -= 1;
      }
    }
  };

  await new Promise((resolve) => setTimeout(resolve, 500));
  const rssBefore = rssKiB(serverPid);
  const t0 = performance.now();
  const loops: Promise<void>[] = [];
  for (let k = 0; k < waiters; k++) {
    loops.push(waiter(k));
    if ((k + 1) % BATCH === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const openSeconds = round((performance.now() - t0) / 1000, 1);
  options.progress(`phase 8: ${waiters} connections opened in ${openSeconds} s; waiting for the server to take them in`);
  // the server works through the new connections for a while after they are open: the idle window starts once all wait
  let takenInSeconds: number | null = null;
  while (performance.now() - t0 < TAKE_IN_LIMIT_MS) {
    if ((await waitingOnServer(base, options.metricsToken)) >= waiters) {
      takenInSeconds = round((performance.now() - t0) / 1000, 1);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  options.progress(
    takenInSeconds === null
      ? `phase 8: WARNING: the server did not count all ${waiters} connections waiting within ${TAKE_IN_LIMIT_MS / 1000} s`
      : `phase 8: all waiting ${takenInSeconds} s after the first was opened`,
  );
  await new Promise((resolve) => setTimeout(resolve, settleMs));

  const stopIdle = cpuWindow(options.cores, serverPid);
  await new Promise((resolve) => setTimeout(resolve, idleWindowMs));
  const idle = stopIdle();
  const rssWaiting = rssKiB(serverPid);
  const openAtStart = open;

  options.progress(`phase 8: ${options.approvals.samples} approvals while ${openAtStart} connections wait`);
  const approval = await approvalPhase(base, options.approver, options.password, fail, options.approvals);
  const openAtEnd = open;

  stopping = true;
  agent.destroy();
  await Promise.all(loops);
  return {
    waiters,
    openAtStart,
    openAtEnd,
    answeredEarly,
    reconnected,
    reconnectErrors,
    rssBeforeMiB: rssBefore === null ? Number.NaN : round(rssBefore / 1024, 1),
    rssWaitingMiB: rssWaiting === null ? Number.NaN : round(rssWaiting / 1024, 1),
    rssPerWaiterKiB: rssBefore === null || rssWaiting === null ? Number.NaN : round((rssWaiting - rssBefore) / waiters, 2),
    idleServerCpuPercentOfCore: idle.serverMs === null ? null : round((idle.serverMs / idle.elapsedMs) * 100, 1),
    approval,
    openSeconds,
    takenInSeconds,
  };
}
