/**
 * The real server as a child process (`node bin/sls.js serve --port 0`),
 * on 127.0.0.1 and a temporary SQLite database, exactly as an operator
 * starts it. BENCH_CPU_PROF=DIR adds `--cpu-prof --cpu-prof-dir DIR` so a
 * profile of the server is written when it stops; BENCH_CPU_PROF_INTERVAL=µs
 * samples more often than V8's 1,000 µs (100 to see a request of 2 ms).
 */
import { appendFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface ServerEnv {
  dataDir: string;
  databaseUrl: string;
  masterKey: string;
  /** More SLS_* settings (the slow SMTP relay of phase 4). */
  extra?: Record<string, string>;
  /**
   * Raise the server's soft limit on open files to this (phase 8's waiting
   * connections): the server is started through `sh -c 'ulimit -n N; exec node …'`,
   * which can go up to the hard limit only.
   */
  openFiles?: number;
}

export interface RunningServer {
  url: string;
  pid: number;
  /** Everything the server wrote to stderr (warnings and errors: SLS_LOG_LEVEL=warn). */
  stderr(): string;
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

export async function startServer(env: ServerEnv): Promise<RunningServer> {
  const profileDir = process.env.BENCH_CPU_PROF;
  // BENCH_TRACE_GC=FILE: the server's garbage collections (node --trace-gc), appended to FILE
  const gcTrace = process.env.BENCH_TRACE_GC;
  const nodeFlags = [
    ...(profileDir
      ? [
          '--cpu-prof',
          '--cpu-prof-dir',
          profileDir,
          ...(process.env.BENCH_CPU_PROF_INTERVAL ? ['--cpu-prof-interval', process.env.BENCH_CPU_PROF_INTERVAL] : []),
        ]
      : []),
    ...(gcTrace ? ['--trace-gc'] : []),
  ];
  const args = [...nodeFlags, 'bin/sls.js', 'serve', '--port', '0', '--db', env.databaseUrl];
  // `exec` keeps the pid: the one the bench reads CPU and memory of is node's
  const [command, argv] =
    env.openFiles === undefined
      ? [process.execPath, args]
      : ['/bin/sh', ['-c', `ulimit -n ${Math.floor(env.openFiles)} 2>/dev/null || ulimit -n $(ulimit -Hn); exec "$0" "$@"`, process.execPath, ...args]];
  const child: ChildProcess = spawn(command, argv, {
    cwd: ROOT,
    env: {
      ...process.env,
      SLS_HOST: '127.0.0.1',
      SLS_DATA_DIR: env.dataDir,
      SLS_DATABASE_URL: env.databaseUrl,
      SLS_MASTER_KEY: env.masterKey,
      SLS_LOG_LEVEL: 'warn',
      SLS_DEFAULT_LANGUAGE: 'en',
      // one load generator on 127.0.0.1 is what the throttle (X5) is there to stop: the benchmark measures the server without it
      ...Object.fromEntries(['LOGIN', 'ANSWER', 'SEND', 'ACTIVATION', 'HELPDESK', 'ADMIN'].map((kind) => [`SLS_LIMIT_${kind}`, 'off'])),
      // … and so is the per-user limit on flows (L4: 60 starts an hour): a few bench users log in hundreds of times
      SLS_FLOW_STARTS_PER_HOUR: '100000',
      SLS_OPEN_FLOWS_PER_USER: '1000',
      ...env.extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within ${START_TIMEOUT_MS} ms\n${stdout}${stderr}`)), START_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      if (gcTrace) appendFileSync(gcTrace, chunk);
      stdout += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before listening\n${stdout}${stderr}`));
    });
  });
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`unexpected server address ${url}`);

  return {
    url,
    pid: child.pid!,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGINT');
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS).unref());
      if ((await Promise.race([exited, timeout])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
