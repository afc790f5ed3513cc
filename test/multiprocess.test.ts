/**
 * Several server processes sharing one database (X4): the lockout and
 * single use are exact across processes, and a flow started on one process
 * completes on another. Also the README quick start, as written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATABASES, PASSWORD, openTestDatabase, type TestDatabase } from './support/harness.js';
import { cliEnv, sls, slsInProcess, startServer, type ServerProcess } from './support/cli.js';
import { TestPhone, tokenIn } from './support/phone.js';

interface Reply {
  status: number;
  body: { id?: string; claimToken?: string; state?: string; challenge?: { question: string }; session?: { token: string }; error?: { code: string } };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Reply['body'] };
}

/** L8: the header of the login's claim token: only the client that started a login answers it. */
function claimed(flow: { claimToken?: string }): Record<string, string> {
  return { 'x-claim-token': String(flow.claimToken) };
}

describe.each(DATABASES)('two server processes on one %s database', (dbName) => {
  let db: TestDatabase;
  let env: NodeJS.ProcessEnv;
  let a: ServerProcess;
  let b: ServerProcess;
  // the servers are processes; the commands that make users and read the outbox run in this process (slsInProcess):
  // each process would cost a start of Node (the commands as processes: the describes below)

  async function userWithCard(username: string): Promise<string> {
    expect((await slsInProcess(['user', 'create', '--username', username, '--password', PASSWORD], env)).code).toBe(0);
    const cardPath = join(db.dataDir, `${username}.json`);
    expect((await slsInProcess(['device', 'add-dscplus', '--user', username, '--pin', '1234', '--out', cardPath], env)).code).toBe(0);
    return cardPath;
  }

  async function respond(cardPath: string, question: string): Promise<string> {
    return (await slsInProcess(['dsc', '--card', cardPath, '--pin', '1234', '--challenge', question], env)).stdout.trim();
  }

  beforeAll(async () => {
    db = await openTestDatabase(dbName);
    env = cliEnv(db);
    // both at once on the new database: one migrates, the other waits for it
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await db.drop();
  });

  it('L7/X4: a login started on one process is completed on the other', async () => {
    const card = await userWithCard('crossproc');
    const start = await post(`${a.url}/api/v1/login`, { username: 'crossproc', password: PASSWORD, app: 'portal' });
    expect(start.status).toBe(200);
    const done = await post(`${b.url}/api/v1/login/${start.body.id}`, { response: await respond(card, start.body.challenge!.question) }, claimed(start.body));
    expect(done.status).toBe(200);
    const session = await fetch(`${a.url}/api/v1/session`, { headers: { authorization: `Bearer ${done.body.session!.token}` } });
    expect(session.status).toBe(200);
  });

  it('K3/X4: a login started on one process is approved from a phone connected to the other; the waiting login page hears of it', async () => {
    // X7: the number is put on record out of band, as at account opening
    expect((await slsInProcess(['user', 'create', '--username', 'pushproc', '--password', PASSWORD, '--mobile', 'FR:698765432'], env)).code).toBe(0);
    const inbox = {
      activationToken: async (username: string) =>
        tokenIn(JSON.parse((await slsInProcess(['outbox', '--user', username, '--json'], env)).stdout) as { template: string; body: string }[]),
      tick: () => undefined,
    };
    const phone = new TestPhone(b.url, inbox);
    await phone.activate('pushproc');
    // the phone's live connection is held by process b
    const phoneWaits = phone.poll(20);
    const start = await post(`${a.url}/api/v1/login`, { username: 'pushproc', password: PASSWORD, app: 'portal' });
    expect(start.body.challenge).toMatchObject({ type: 'push' });
    const { requests } = await phoneWaits;
    expect(requests.map((r) => r.username)).toEqual(['pushproc']);
    // the login page's live connection is held by process a
    const pageWaits = fetch(`${a.url}/api/v1/login/${start.body.id}?wait=20`, { headers: { 'x-claim-token': start.body.claimToken as string } }).then(
      (r) => r.json() as Promise<{ state: string }>,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await phone.approve(requests[0]!, (start.body.challenge as unknown as { number: string }).number)).toEqual({ state: 'approved' });
    expect((await pageWaits).state).toBe('approved');
    const session = await post(`${a.url}/api/v1/login/${start.body.id}/session`, { claimToken: start.body.claimToken });
    expect([session.status, session.body.state]).toEqual([200, 'done']);
  });

  it('L3: 30 concurrent wrong passwords across both processes: exactly 10 are checked, the rest deferred (429) or LOCKED, then LOCKED', async () => {
    await userWithCard('lockproc');
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => post(`${(i % 2 ? a : b).url}/api/v1/login`, { username: 'lockproc', password: 'wrong password', app: 'portal' })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.filter((s) => s === 423 || s === 429)).toHaveLength(20);
    const right = await post(`${a.url}/api/v1/login`, { username: 'lockproc', password: PASSWORD, app: 'portal' });
    expect(right.status).toBe(423);
  });

  it('L3/L4: 30 copies of the right SMS code sent to both processes at once: exactly one login, never a 423 nor a lock', async () => {
    expect((await slsInProcess(['user', 'create', '--username', 'smsrace', '--password', PASSWORD, '--mobile', 'FR:687654321'], env)).code).toBe(0);
    const start = await post(`${a.url}/api/v1/login`, { username: 'smsrace', password: PASSWORD, app: 'portal' });
    expect(start.status).toBe(200);
    const outbox = JSON.parse((await slsInProcess(['outbox', '--user', 'smsrace', '--json'], env)).stdout) as { template: string; body: string }[];
    const code = /\b(\d{6})\b/.exec(outbox.find((m) => m.template === 'loginCode')!.body)![1]!;
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => post(`${(i % 2 ? a : b).url}/api/v1/login/${start.body.id}`, { response: code }, claimed(start.body))),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 423)).toEqual([]);
    for (const r of results.filter((x) => x.status !== 200)) expect(['FLOW_EXPIRED', 'TOO_MANY_ATTEMPTS']).toContain(r.body.error?.code);
    const shown = JSON.parse((await slsInProcess(['user', 'show', 'smsrace', '--json'], env)).stdout) as { locked: boolean };
    expect(shown.locked).toBe(false);
  });

  it('L3: 30 wrong card responses over 10 flows, sent to both processes at once (on SQLite each answer one transaction, decision 0019): exactly 10 are counted, then LOCKED', async () => {
    await userWithCard('wrongproc');
    const flows = [];
    for (let i = 0; i < 10; i++)
      flows.push((await post(`${(i % 2 ? a : b).url}/api/v1/login`, { username: 'wrongproc', password: PASSWORD, app: 'portal' })).body);
    const results = await Promise.all(
      flows.flatMap((flow, i) =>
        Array.from({ length: 3 }, (_, j) => post(`${((i + j) % 2 ? a : b).url}/api/v1/login/${flow.id}`, { response: '00000000' }, claimed(flow))),
      ),
    );
    // 401: counted; 423: locked; 429: deferred while others were in flight; 410: its flow failed meanwhile
    expect(results.filter((r) => r.status === 401)).toHaveLength(10);
    for (const r of results.filter((x) => x.status !== 401)) expect([410, 423, 429]).toContain(r.status);
    const shown = JSON.parse((await slsInProcess(['user', 'show', 'wrongproc', '--json'], env)).stdout) as { locked: boolean };
    expect(shown.locked).toBe(true);
    expect((await post(`${b.url}/api/v1/login`, { username: 'wrongproc', password: PASSWORD, app: 'portal' })).status).toBe(423);
  });

  it('L4: the same response sent to both processes at once: exactly one login', async () => {
    const card = await userWithCard('onceproc');
    const start = await post(`${a.url}/api/v1/login`, { username: 'onceproc', password: PASSWORD, app: 'trading' });
    const response = await respond(card, start.body.challenge!.question);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => post(`${(i % 2 ? a : b).url}/api/v1/login/${start.body.id}`, { response }, claimed(start.body))),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 200)) expect([401, 410, 429]).toContain(r.status);
  });
});

describe.each(DATABASES)('several commands at once on a new %s database (X4)', (dbName) => {
  it('X4: the first start migrates while the others wait; every command works', async () => {
    const db = await openTestDatabase(dbName);
    try {
      const env = cliEnv(db);
      const results = await Promise.all(['a', 'b', 'c', 'd'].map((u) => sls(['user', 'create', '--username', `same${u}`, '--password', PASSWORD], env)));
      for (const r of results) expect(r.stderr).toBe('');
      expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
      expect((await sls(['audit', 'verify'], env)).code).toBe(0);
    } finally {
      await db.drop();
    }
  });
});

describe('the README quick start, as written', () => {
  let db: TestDatabase;
  let server: ServerProcess | undefined;
  beforeAll(async () => {
    db = await openTestDatabase('sqlite');
  });
  afterAll(async () => {
    await server?.stop();
    await db.drop();
  });

  it("L1/L2/C2: create a user and a card with sls, start the server, log in with the emulator's response", async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    // the commands to run as written: not those with a placeholder (… for an id the reader fills in); a password
    // is given on standard input (X1: `printf '%s\n' 'the phrase' | npx sls user create … --password-stdin`)
    const lines = [...readme.matchAll(/^\s*(?:printf '%s\\n' '([^']*)' \| )?npx sls (.+)$/gm)]
      .map((m) => ({ input: m[1], command: m[2]!.trim() }))
      .filter((c) => !c.command.includes('…') && !(c.input ?? '').includes('…'));
    const commands = lines.map((c) => c.command);
    expect(commands.length).toBeGreaterThanOrEqual(3);
    // the data directory of the quick start is the default ./data: run the commands with this test's instead
    const { SLS_DATABASE_URL: _unused, ...env } = cliEnv(db);
    const cwd = db.dataDir;
    const run = (line: string) => {
      const args = line.match(/'[^']*'|\S+/g)!.map((a) => a.replace(/^'|'$/g, ''));
      const input = lines.find((c) => c.command === line)?.input;
      // relative paths (data/alice-card.json) are the test's: run in its directory, where data/ does not exist yet
      return sls(args, env, input === undefined ? undefined : `${input}\n`, cwd);
    };
    for (const line of commands.filter((c) => c.startsWith('user create') || c.startsWith('staff create') || c.startsWith('device add-dscplus'))) {
      const res = await run(line);
      expect(res.code, `${line}: ${res.stderr}`).toBe(0);
    }
    server = await startServer(env);
    const username = /--username (\S+)/.exec(commands.find((c) => c.startsWith('user create'))!)![1]!;
    const password = lines.find((c) => c.command.startsWith('user create'))!.input!;
    const start = await post(`${server.url}/api/v1/login`, { username, password, app: 'portal' });
    expect(start.status).toBe(200);
    const dscLine = commands.find((c) => c.startsWith('dsc --card') && c.includes('--challenge'))!;
    const response = (await run(dscLine.replace(/--challenge \S+/, `--challenge ${start.body.challenge!.question}`))).stdout.trim();
    const done = await post(`${server.url}/api/v1/login/${start.body.id}`, { response }, claimed(start.body));
    expect(done.status).toBe(200);
    expect(done.body.state).toBe('done');
  });
});
