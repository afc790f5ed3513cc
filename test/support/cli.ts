/** Runs the real `sls` command (compiled in dist/ by `npm test`'s build step) and real server processes. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
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
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
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
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve({
          url: match[1]!,
          child,
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
