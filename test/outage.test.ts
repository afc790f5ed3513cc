/**
 * X6: the server survives its database and stops gracefully. PostgreSQL is
 * reached through a local TCP relay that the test cuts and closes, as a
 * restart or a failover would (the database itself keeps serving the other
 * suites); the servers are real processes.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PASSWORD, cardAnswer, openTestDatabase, postgresDatabase, type TestDatabase } from './support/harness.js';
import { cliEnv, sls, startServer, type ServerProcess } from './support/cli.js';
import { postgresUrl } from './support/environment.js';
import { startTcpProxy, throughProxy, type TcpProxy } from './support/tcp-proxy.js';
import { TestPhone, tokenIn } from './support/phone.js';
import type { CardFile } from '../src/devices/devices.js';

// each case runs several `sls` processes (about a second each, more on a loaded machine)
vi.setConfig({ testTimeout: 180_000 });

interface Reply {
  status: number;
  retryAfter: string | null;
  body: { id?: string; claimToken?: string; state?: string; challenge?: { question: string }; session?: { token: string }; error?: { code: string } };
}

async function call(url: string, body?: unknown, token?: string, claimToken?: string): Promise<Reply> {
  const res = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      // L8: only the client that started a login answers it
      ...(claimToken ? { 'x-claim-token': claimToken } : {}),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Reply['body'] };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` (bounded: 60 s, for a loaded two-core machine running the whole suite) until it holds; `seen` says what happened meanwhile. */
async function until(what: string, check: () => Promise<boolean>, seen: () => string = () => '', tries = 300): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`never: ${what} ${seen()}`);
}

describe.skipIf(!postgresUrl)('X6: PostgreSQL goes away and comes back while two server processes serve logins', () => {
  const USERS = 4;
  let db: TestDatabase;
  let proxy: TcpProxy;
  let servers: ServerProcess[] = [];
  const cards: CardFile[] = [];

  beforeAll(async () => {
    db = await postgresDatabase(postgresUrl!);
    proxy = await startTcpProxy(new URL(postgresUrl!).hostname, Number(new URL(postgresUrl!).port || 5432));
    const env = cliEnv({ ...db, url: throughProxy(db.url, proxy) });
    for (let i = 0; i < USERS; i++) {
      expect((await sls(['user', 'create', '--username', `outage${i}`, '--password', PASSWORD], env)).code).toBe(0);
      const path = join(db.dataDir, `card${i}.json`);
      expect((await sls(['device', 'add-dscplus', '--user', `outage${i}`, '--pin', '1234', '--out', path], env)).code).toBe(0);
      cards.push(JSON.parse(readFileSync(path, 'utf8')) as CardFile);
    }
    servers = await Promise.all([startServer(env), startServer(env)]);
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await proxy?.close();
    await db?.drop();
  });

  it('X6: no 5xx but 503 with Retry-After, readiness tells the outage, no acknowledged session lost, no answer accepted twice, back without a restart', async () => {
    const statuses = new Map<string, number>();
    const sessions: { token: string }[] = [];
    const accepted: { server: string; flowId: string; response: string; claimToken: string }[] = [];
    const tally = (reply: Reply): void => {
      const key = `${reply.status} ${reply.body.error?.code ?? 'ok'}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      if (reply.status === 503) expect(reply.retryAfter, key).not.toBeNull();
    };
    let running = true;
    // a connection the client lost (a keep-alive socket closed as it was reused, on a loaded machine) is counted, and the worker goes on
    const networkErrors: string[] = [];
    const attempt = async (url: string, body: unknown, claimToken?: string): Promise<Reply | null> =>
      call(url, body, undefined, claimToken).catch((error: unknown) => {
        networkErrors.push(String((error as Error).cause ?? error));
        return null;
      });
    const worker = async (i: number): Promise<void> => {
      for (let n = 0; running && n < 5000; n++) {
        const server = servers[n % servers.length]!.url;
        const start = await attempt(`${server}/api/v1/login`, { username: `outage${i}`, password: PASSWORD, app: 'portal' });
        if (start) tally(start);
        if (start?.status !== 200) {
          await sleep(50);
          continue;
        }
        const response = cardAnswer(cards[i]!, start.body.challenge!.question, '1234');
        // the answer goes to the other process
        const other = servers[(n + 1) % servers.length]!.url;
        const done = await attempt(`${other}/api/v1/login/${start.body.id}`, { response }, start.body.claimToken);
        if (done) tally(done);
        if (done?.status === 200) {
          sessions.push({ token: done.body.session!.token });
          accepted.push({ server: other, flowId: start.body.id!, response, claimToken: start.body.claimToken! });
        } else await sleep(50);
      }
    };
    const workers = Array.from({ length: USERS }, (_, i) => worker(i));
    const successes = (): number => statuses.get('200 ok') ?? 0;
    const seen = (): string =>
      `(answers: ${JSON.stringify(Object.fromEntries(statuses))}; connections lost: ${networkErrors.length} ${networkErrors.slice(-3).join('; ')})`;

    await until('logins succeed', async () => successes() >= 10, seen);
    // the database ends every connection (pg_terminate_backend, a failover) …
    proxy.cut();
    const afterCut = successes();
    await until('logins succeed after the connections were ended', async () => successes() >= afterCut + 10, seen);
    // … then is gone for a while (a restart)
    proxy.down();
    await until('requests are answered 503', async () => (statuses.get('503 DATABASE_UNAVAILABLE') ?? 0) >= 10, seen);
    for (const server of servers) {
      const ready = await call(`${server.url}/api/v1/ready`);
      expect(ready.status).toBe(503);
      expect(ready.body.error?.code).toBe('DATABASE_UNAVAILABLE');
      expect((await call(`${server.url}/api/v1/health`)).status).toBe(200);
    }
    proxy.up();
    for (const server of servers) await until('ready again', async () => (await call(`${server.url}/api/v1/ready`)).status === 200);
    const afterOutage = successes();
    await until('logins succeed after the outage', async () => successes() >= afterOutage + 10, seen);
    running = false;
    await Promise.all(workers);

    // both processes lived through it
    for (const server of servers) expect(server.child.exitCode).toBeNull();
    const unexpected = [...statuses.keys()].filter((key) => !['200 ok', '503 DATABASE_UNAVAILABLE'].includes(key));
    expect(unexpected, JSON.stringify(Object.fromEntries(statuses))).toEqual([]);
    // every session a client was given still opens
    for (const { token } of sessions) expect((await call(`${servers[0]!.url}/api/v1/session`, undefined, token)).status).toBe(200);
    // and no answer is accepted twice
    for (const { server, flowId, response, claimToken } of accepted)
      expect((await call(`${server}/api/v1/login/${flowId}`, { response }, undefined, claimToken)).status).not.toBe(200);
  });
});

describe('X6: SIGTERM stops the server gracefully', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase('sqlite');
  });
  afterAll(async () => {
    await db.drop();
  });

  it('X6: a waiting long poll is answered at once, the process says so and exits 0', async () => {
    const env = cliEnv(db, { SLS_SHUTDOWN_TIMEOUT_MS: '20000' });
    expect((await sls(['user', 'create', '--username', 'stopping', '--password', PASSWORD, '--mobile', 'FR:698765431'], env)).code).toBe(0);
    const server = await startServer(env);
    let output = '';
    server.child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const inbox = {
      activationToken: async (username: string) =>
        tokenIn(JSON.parse((await sls(['outbox', '--user', username, '--json'], env)).stdout) as { template: string; body: string }[]),
      tick: () => undefined,
    };
    const phone = new TestPhone(server.url, inbox);
    await phone.activate('stopping');
    // the phone's live connection waits up to 25 s for a request
    const poll = phone.poll(25);
    await sleep(300);
    const exited = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
    server.child.kill('SIGTERM');
    // the poll is answered (nothing waiting) before its 25 s are up: the test's own 30 s would end first otherwise
    await expect(poll).resolves.toMatchObject({ requests: [] });
    expect(await exited).toBe(0);
    expect(output).toContain('Stopping: no new requests; finishing those under way (at most 20 s).');
    expect(output).toContain('Stopped.');
    await expect(fetch(`${server.url}/api/v1/health`)).rejects.toThrow();
  });
});
