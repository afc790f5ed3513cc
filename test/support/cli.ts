/** Runs the real `sls` command (compiled in dist/ by `npm test`'s build step) and real server processes. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { vi } from 'vitest';
import { environmentLanguage } from '../../src/i18n/i18n.js';
import { TEST_MASTER_KEY, type TestDatabase } from './harness.js';

export const SLS_BIN = fileURLToPath(new URL('../../bin/sls.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cliEnv(database: TestDatabase, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SLS_DATA_DIR: database.dataDir,
    SLS_DATABASE_URL: database.url,
    SLS_MASTER_KEY: TEST_MASTER_KEY,
    SLS_LOG_LEVEL: 'warn',
    // X5: the throttle is off in the tests of other rules; its own tests set limits
    ...Object.fromEntries(['LOGIN', 'ANSWER', 'SEND', 'ACTIVATION', 'HELPDESK', 'ADMIN'].map((kind) => [`SLS_LIMIT_${kind}`, 'off'])),
    LANG: 'C',
    LC_ALL: '',
    ...extra,
  };
}

export function sls(args: string[], env: NodeJS.ProcessEnv, input?: string, cwd?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [SLS_BIN, ...args], { env, timeout: 30_000, ...(cwd ? { cwd } : {}) }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    // a command that refuses its input stops reading it: the rest cannot be written (EPIPE), which is no failure of the test
    child.stdin!.on('error', () => undefined);
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

type Main = (argv: string[]) => Promise<number>;

/** `main` of src/cli/main.ts, loaded once per language of the environment: sls reads its language when it loads. */
const mains = new Map<string, Promise<Main>>();

function mainFor(env: NodeJS.ProcessEnv): Promise<Main> {
  const language = environmentLanguage(env);
  let loaded = mains.get(language);
  if (!loaded) {
    loaded = (async () => {
      const saved = process.env;
      process.env = { ...env };
      try {
        // a fresh instance of the command (and of what it imports), its language read under ENV
        vi.resetModules();
        return (await import('../../src/cli/main.js')).main;
      } finally {
        process.env = saved;
      }
    })();
    mains.set(language, loaded);
  }
  return loaded;
}

/** The runs in this process, one at a time: the environment, the working folder and the standard streams are the process's. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * Runs `sls ARGS` as `sls()` does, but in this process: `main(argv)` of
 * src/cli/main.ts (what bin/sls.js runs), with ENV as the environment and
 * CWD as the working folder for the time of the run, its standard output and
 * error captured and its exit code returned. A real process starts Node and
 * loads the whole server (about a second, more on a loaded machine): the
 * files of many commands run them here, and keep real processes (`sls`) for
 * what only a process shows (its exit code, standard input, a terminal) —
 * each such file runs a few, which answer as `main` does.
 */
export function slsInProcess(args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<CliResult> {
  const run = queue.then(async (): Promise<CliResult> => {
    const main = await mainFor(env);
    const savedEnv = process.env;
    const savedCwd = process.cwd();
    try {
      process.env = { ...env };
      if (cwd) process.chdir(cwd);
      return await captured(() => main([process.execPath, SLS_BIN, ...args]));
    } finally {
      process.env = savedEnv;
      process.chdir(savedCwd);
    }
  });
  queue = run.catch(() => undefined);
  return run;
}

/** Runs RUN (an `sls` in this process) with its standard output and error captured: nothing reaches the terminal. */
export async function captured(run: () => Promise<number>): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const text = (chunk: string | Uint8Array) => (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += text(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += text(chunk);
    return true;
  });
  try {
    const code = await run();
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** What it printed up to the line with its URL. */
  started: string;
  stop(): Promise<void>;
}

/** Starts `sls serve --port 0` and waits for the URL it prints. */
export function startServer(env: NodeJS.ProcessEnv, args: string[] = []): Promise<ServerProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SLS_BIN, 'serve', '--port', '0', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start: ${output}`));
    }, 30_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /listening on (https?:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve({
          url: match[1]!,
          child,
          started: output,
          stop: () =>
            new Promise<void>((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${output}`));
    });
  });
}
