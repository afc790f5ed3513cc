/**
 * X4, issue 15: SQLite's write-ahead log is copied back into the database
 * file by a worker thread with a connection of its own, not by whichever
 * commit crosses the log's threshold. That copy writes every page the log
 * holds and waits for the disk twice (fsync); done by a commit, it stops
 * the event loop and every request with it for that long. The server's own
 * connection still checkpoints, as SQLite does by default, once the log
 * holds `FALLBACK_PAGES` pages: if the thread falls behind or cannot run,
 * the log never grows without bound.
 *
 * The thread wakes every `everyMs`; it checkpoints only when another
 * connection committed since its last look (`PRAGMA data_version`, which a
 * checkpoint does not change: the server's waiters, push/signals.ts, are
 * not woken by it). PASSIVE: it never waits for readers or writers.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The server connection's own threshold (SQLite's default is 1,000 pages): only if the thread falls behind. */
export const FALLBACK_PAGES = 10_000;

const CHECKPOINT_EVERY_MS = 100;
const STOP_TIMEOUT_MS = 5_000;

// CommonJS, evaluated in the worker: better-sqlite3 is loaded from the path the server resolved
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
function start() {
  let db;
  try {
    db = new Database(workerData.file, { fileMustExist: true });
    db.pragma('synchronous = NORMAL');
  } catch (error) {
    parentPort.postMessage({ failed: String(error && error.message) });
    parentPort.close();
    return;
  }
  let version = null;
  const checkpoint = () => {
    try {
      const now = db.pragma('data_version', { simple: true });
      if (now === version) return;
      version = now;
      db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // a busy or failed checkpoint is tried again at the next tick; the server's connection is the fallback
    }
  };
  const timer = setInterval(checkpoint, workerData.everyMs);
  parentPort.postMessage({ ready: true });
  parentPort.once('message', () => {
    clearInterval(timer);
    db.close();
    parentPort.close();
  });
}
start();
`;

export interface BackgroundCheckpoints {
  /** Stops the thread and closes its connection. */
  stop(): Promise<void>;
}

/**
 * Starts the thread for the database file at `file`. `fallBack` runs if it
 * cannot open the file or fails: the server's connection then checkpoints
 * as SQLite does by default.
 */
export function checkpointInBackground(file: string, fallBack: () => void): BackgroundCheckpoints {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(THREAD, { eval: true, workerData: { driver, file, everyMs: CHECKPOINT_EVERY_MS } });
  // the thread never keeps the process alive
  worker.unref();
  let running = true;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const stopped = () => {
    if (running) fallBack();
    running = false;
  };
  worker.on('message', (message: { failed?: string }) => {
    if (message.failed !== undefined) stopped();
  });
  worker.on('error', stopped);
  void exited.then(stopped);
  return {
    stop: async () => {
      if (!running) return;
      running = false;
      // held until it has closed its connection: a process closing its store waits for that
      worker.ref();
      worker.postMessage('stop');
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS).unref());
      if ((await Promise.race([exited, timeout])) === 'timeout') await worker.terminate();
    },
  };
}
