/**
 * X4, D5: the files that hold secrets at rest — the data directory, the
 * generated master.key and vapid.json, the SQLite database and its -wal and
 * -shm files — are readable by their owner only whatever the process umask;
 * one that other users of the machine may read (copied, restored from a
 * backup, chmod'ed) is named at every start, loudly, with the fix.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.js';
import { createServices } from '../src/services.js';
import { DATABASES, openTestDatabase, type TestDatabase } from './support/harness.js';
import { cliEnv, slsInProcess } from './support/cli.js';
import { espeakAvailable } from './support/environment.js';
import { outboxProvider } from '../src/delivery/outbox.js';
import { outboxAudioPath } from '../src/delivery/speech.js';

const modeOf = (path: string): number => statSync(path).mode & 0o777;

describe.each(DATABASES)('secrets at rest on disk, on %s (X4, D5)', (dbName) => {
  let database: TestDatabase;
  let scratch: string;
  let dataDir: string;
  let databaseUrl: string;
  const umaskBefore = process.umask();
  beforeEach(async () => {
    database = await openTestDatabase(dbName);
    scratch = mkdtempSync(join(tmpdir(), 'sls-rest-'));
    dataDir = join(scratch, 'data');
    databaseUrl = dbName === 'sqlite' ? `sqlite:${join(dataDir, 'sls.db')}` : database.url;
  });
  afterEach(async () => {
    process.umask(umaskBefore);
    rmSync(scratch, { recursive: true, force: true });
    await database.drop();
  });

  /** A start of the server's services with no SLS_MASTER_KEY (the key file in the data directory), Web Push on (vapid.json); what it warned. */
  async function start(): Promise<string[]> {
    const warnings: string[] = [];
    const config = loadConfig({ SLS_LOG_LEVEL: 'silent', SLS_DATA_DIR: dataDir, SLS_PUSH_PROVIDER: 'web-push' }, { databaseUrl });
    const services = await createServices(config, { warn: (message) => warnings.push(message) });
    await services.audit.record({ event: 'session.ended', data: {} });
    await services.close();
    return warnings;
  }

  it.each([
    ['000', 0o000],
    ['022', 0o022],
  ])('X4, D5: under umask %s the data directory is 0700 and master.key, vapid.json and the SQLite files 0600', async (_label, umask) => {
    process.umask(umask);
    await start();
    expect(modeOf(dataDir)).toBe(0o700);
    const files = ['master.key', 'vapid.json', ...(dbName === 'sqlite' ? ['sls.db', 'sls.db-wal', 'sls.db-shm'] : [])];
    for (const file of files) {
      if (file.startsWith('sls.db-') && !existsSync(join(dataDir, file))) continue;
      expect(modeOf(join(dataDir, file)), file).toBe(0o600);
    }
  });

  it('X4, D5: a master.key, vapid.json or SQLite database that other users may read is named at every start, with the chmod that fixes it; none once fixed', async () => {
    expect((await start()).filter((w) => w.includes('other users'))).toEqual([]);
    const exposed = ['master.key', ...(dbName === 'sqlite' ? ['sls.db'] : []), 'vapid.json'];
    for (const file of exposed) chmodSync(join(dataDir, file), 0o644);
    const warnings = await start();
    expect(warnings.filter((w) => w.includes('other users'))).toEqual(
      exposed.map(
        (file) =>
          `WARNING: ${join(dataDir, file)} holds secrets and other users of this machine may read it (mode 644). Make it readable by its owner only: chmod 600 ${join(dataDir, file)}`,
      ),
    );
    for (const file of exposed) chmodSync(join(dataDir, file), 0o600);
    expect((await start()).filter((w) => w.includes('other users'))).toEqual([]);
  });

  it('X4, D5: a data directory that other users may write in (they could plant a master.key or replace the database) is named at every start, with the chmod that fixes it', async () => {
    await start();
    chmodSync(dataDir, 0o777);
    expect((await start()).filter((w) => w.includes('may write in it'))).toEqual([
      `WARNING: ${dataDir} holds secrets and other users of this machine may write in it (mode 777): they could plant or replace its key files or database. Make it its owner's only: chmod 700 ${dataDir}`,
    ]);
    chmodSync(dataDir, 0o755); // others may list it, not write in it: its files are 0600
    expect((await start()).filter((w) => w.startsWith('WARNING'))).toEqual([]);
  });

  it('X4, C2: a card file written by sls --out is 0600 under umask 000, new or replacing a file that was 0644', async () => {
    const env = cliEnv(database);
    expect((await slsInProcess(['user', 'create', '--username', 'alice', '--password', 'correct horse battery'], env)).code).toBe(0);
    process.umask(0o000);
    const fresh = join(scratch, 'cards', 'new.json');
    expect((await slsInProcess(['device', 'add-dscplus', '--user', 'alice', '--pin', '1234', '--out', fresh], env)).code).toBe(0);
    expect(modeOf(fresh)).toBe(0o600);
    const replaced = join(scratch, 'cards', 'old.json');
    writeFileSync(replaced, '{}', { mode: 0o644 });
    expect((await slsInProcess(['device', 'add-dscplus', '--user', 'alice', '--pin', '1234', '--out', replaced], env)).code).toBe(0);
    expect(modeOf(replaced)).toBe(0o600);
  });

  it('X4, D5, C2: sls --out never writes a card through a symbolic link planted where it goes, nor into a file of another user: refused, nothing issued, their file untouched', async () => {
    const env = cliEnv(database);
    expect((await slsInProcess(['user', 'create', '--username', 'bob', '--password', 'correct horse battery'], env)).code).toBe(0);
    const shared = join(scratch, 'shared');
    mkdirSync(shared);
    // another user's file that this one may write (or root, who may write any): the card would stay theirs to read
    const theirs = join(shared, 'theirs.json');
    writeFileSync(theirs, 'their file\n', { mode: 0o666 });
    chmodSync(theirs, 0o666);
    const planted = join(shared, 'card.json');
    symlinkSync(theirs, planted);
    const refusals: [string, number][] = [[planted, 0]];
    if (process.getuid?.() === 0) {
      chownSync(theirs, 65534, 65534);
      refusals.push([theirs, 65534]);
    }
    for (const [out] of refusals) {
      const res = await slsInProcess(['device', 'add-dscplus', '--user', 'bob', '--pin', '1234', '--out', out], env);
      expect(res, out).toMatchObject({ code: 1, stdout: '' });
      expect(res.stderr).toBe(
        `sls: The file ${out} is a symbolic link, not a plain file, or belongs to another user: a card or token file is written only into a file of yours, which no one else could then read. Nothing was issued; give another --out.\n`,
      );
    }
    expect(readFileSync(theirs, 'utf8')).toBe('their file\n');
    expect(modeOf(theirs)).toBe(0o666);
    expect(JSON.parse((await slsInProcess(['device', 'list', '--user', 'bob', '--json'], env)).stdout)).toEqual([]);
  });

  it('X4, M7: the development outbox speaks a voice code into <dataDir>/outbox, a folder 0700 with files 0600, under umask 000', async () => {
    process.umask(0o000);
    await start();
    const message = {
      id: 'ntf_aaaaaaaaaaaaaaaaaaaaaaaaaa',
      channel: 'voice' as const,
      recipient: '+15550100',
      subject: null,
      body: 'Your security code is 123456.',
      language: 'en' as const,
    };
    await outboxProvider(dataDir).deliver(message);
    const audio = outboxAudioPath(dataDir, message.id);
    expect(modeOf(join(dataDir, 'outbox'))).toBe(0o700);
    if (espeakAvailable) expect(modeOf(audio)).toBe(0o600);
    // a folder an earlier version made 0755 is made the owner's at the next voice code
    chmodSync(join(dataDir, 'outbox'), 0o755);
    await outboxProvider(dataDir).deliver({ ...message, id: 'ntf_bbbbbbbbbbbbbbbbbbbbbbbbbb' });
    expect(modeOf(join(dataDir, 'outbox'))).toBe(0o700);
  });
});

describe('key files made at the first start (X4, D5)', () => {
  /** The key files FILES of four threads starting at once on one new data directory, as the built server loads them (dist/). */
  async function firstStartsAtOnce(dataDir: string): Promise<string[]> {
    const modules = { masterKey: join(process.cwd(), 'dist/crypto/master-key.js'), webPush: join(process.cwd(), 'dist/push/web-push.js') };
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      Promise.all([import(workerData.modules.masterKey), import(workerData.modules.webPush)]).then(([m, w]) => {
        // every thread ready, then all at once
        const ready = new Int32Array(workerData.ready);
        Atomics.add(ready, 0, 1);
        while (Atomics.load(ready, 0) < workerData.threads) {}
        try {
          const key = m.loadMasterKey({ masterKey: undefined, dataDir: workerData.dataDir }).key.toString('hex');
          const vapid = w.loadVapidKeys({ dataDir: workerData.dataDir }).keys.publicKey;
          parentPort.postMessage(key + ' ' + vapid);
        } catch (error) {
          parentPort.postMessage('refused: ' + error.message);
        }
      });`;
    const threads = 4;
    const ready = new SharedArrayBuffer(4);
    return Promise.all(
      Array.from(
        { length: threads },
        () =>
          new Promise<string>((resolve, reject) => {
            const worker = new Worker(code, { eval: true, workerData: { modules, dataDir, threads, ready } });
            worker.once('message', (message: string) => {
              resolve(message);
              void worker.terminate();
            });
            worker.once('error', reject);
          }),
      ),
    );
  }

  it('X4, D5: four processes starting at once on a new data directory all use one master key and one VAPID pair: a key file is never read half written (an empty master.key refused a start)', async () => {
    if (!existsSync(join(process.cwd(), 'dist/crypto/master-key.js'))) throw new Error('npm run build first (npm test does)');
    const scratch = mkdtempSync(join(tmpdir(), 'sls-first-'));
    try {
      for (let round = 0; round < 30; round++) {
        const dataDir = join(scratch, `data${round}`);
        mkdirSync(dataDir, { mode: 0o700 });
        const loaded = await firstStartsAtOnce(dataDir);
        expect(new Set(loaded).size, loaded.join('\n')).toBe(1);
        expect(loaded[0]).not.toMatch(/^refused/);
        // nothing left beside them: the drafts are gone
        expect(readdirSync(dataDir).sort()).toEqual(['master.key', 'vapid.json']);
        expect(modeOf(join(dataDir, 'master.key'))).toBe(0o600);
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
