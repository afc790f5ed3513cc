/**
 * `sls apikey` and `sls fx` (I3, W3), and withdrawals recorded by two server
 * processes sharing one database: 20 concurrent withdrawals that together
 * exceed the daily limit, split across both processes, and exactly the ones
 * that fit are accepted (W3, X4).
 *
 * The servers are real `sls serve` processes, and so is the first `sls apikey
 * create`; the other commands run in this process (`slsInProcess`: `main(argv)`
 * of bin/sls.js, its output and exit code captured), a real process costing a
 * start of Node and of the server each.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATABASES, PASSWORD, openTestDatabase, type TestDatabase } from './support/harness.js';
import { openStore } from '../src/store/database.js';
import { cliEnv, sls, slsInProcess, startServer, type ServerProcess } from './support/cli.js';

interface Reply {
  status: number;
  body: { error?: { code: string }; allowed?: boolean; remaining?: { dayUsd: number | null }; amountUsd?: number };
}

async function post(url: string, body: unknown, key: string): Promise<Reply> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Reply['body'] };
}

describe.each(DATABASES)('withdrawals with sls and two server processes on %s', (dbName) => {
  let db: TestDatabase;
  let env: NodeJS.ProcessEnv;
  let a: ServerProcess;
  let b: ServerProcess;
  let key: string;

  beforeAll(async () => {
    db = await openTestDatabase(dbName);
    env = cliEnv(db);
    const created = await sls(['apikey', 'create', '--name', 'back office', '--scope', 'withdrawals'], env);
    expect(created.code, created.stderr).toBe(0);
    key = created.stdout.trim();
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await db?.drop();
  });

  it('I3: sls apikey create prints the key once, list shows it without its secret, revoke ends it on every process', async () => {
    expect(key).toMatch(/^sls_[a-z2-7]{26}_[A-Za-z0-9_-]{43}$/);
    const other = await slsInProcess(['apikey', 'create', '--name', 'reports', '--scope', 'withdrawals,accounts'], env);
    expect(other.stderr).toContain('never shown again');
    const otherKey = other.stdout.trim();
    const listed = JSON.parse((await slsInProcess(['apikey', 'list', '--json'], env)).stdout) as {
      id: string;
      name: string;
      scopes: string[];
      revokedAt: number | null;
    }[];
    expect(listed.map((k) => [k.name, k.scopes])).toEqual([
      ['back office', ['withdrawals']],
      ['reports', ['withdrawals', 'accounts']],
    ]);
    const text = (await slsInProcess(['apikey', 'list'], env)).stdout;
    expect(text).toContain('reports');
    expect(text).not.toContain(otherKey.split('_').slice(2).join('_'));
    const id = listed.find((k) => k.name === 'reports')!.id;
    expect((await slsInProcess(['user', 'create', '--username', 'revokeacct', '--password', PASSWORD, '--account', 'REV0001'], env)).code).toBe(0);
    const body = { account: 'REV0001', amount: 1, currency: 'USD' };
    expect((await post(`${a.url}/api/v1/withdrawals/check`, body, otherKey)).status).toBe(200);
    const revoked = await slsInProcess(['apikey', 'revoke', id], env);
    expect(revoked.code).toBe(0);
    for (const server of [a, b]) {
      const res = await post(`${server.url}/api/v1/withdrawals/check`, body, otherKey);
      expect([res.status, res.body.error?.code]).toEqual([401, 'API_KEY_REVOKED']);
    }
    const missing = await slsInProcess(['apikey', 'revoke', 'key_nosuchkey'], env);
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringContaining('There is no API key key_nosuchkey')]);
    const badScope = await slsInProcess(['apikey', 'create', '--name', 'x', '--scope', 'everything'], env);
    expect([badScope.code, badScope.stderr]).toEqual([1, expect.stringContaining('withdrawals, accounts')]);
    const audit = (await slsInProcess(['audit', 'list', '--type', 'apikey.*', '--json'], env)).stdout;
    expect((JSON.parse(audit) as { event: string }[]).map((e) => e.event)).toEqual(
      expect.arrayContaining(['apikey.created', 'apikey.revoked', 'apikey.refused']),
    );
  });

  it('W3: sls fx set, import and list; a server converts with them at once; a bad rate or currency is refused', async () => {
    expect((await slsInProcess(['user', 'create', '--username', 'fxacct', '--password', PASSWORD, '--account', 'FX00001'], env)).code).toBe(0);
    const before = await post(`${b.url}/api/v1/withdrawals/check`, { account: 'FX00001', amount: 100, currency: 'EUR' }, key);
    expect([before.status, before.body.error?.code]).toEqual([400, 'CURRENCY_UNKNOWN']);
    expect((await slsInProcess(['fx', 'set', 'EUR', '1.08'], env)).stdout).toContain('EUR  1.08 USD per unit');
    const file = join(db.dataDir, 'rates.txt');
    writeFileSync(file, '# rates of the day\nGBP 1.27\nJPY,0.0067\n');
    expect((await slsInProcess(['fx', 'import', file], env)).stdout).toContain('2 exchange rate(s) set');
    const rates = JSON.parse((await slsInProcess(['fx', 'list', '--json'], env)).stdout) as { currency: string; usdPerUnit: string; stale: boolean }[];
    expect(rates.map((r) => [r.currency, r.usdPerUnit, r.stale])).toEqual([
      ['EUR', '1.08', false],
      ['GBP', '1.27', false],
      ['JPY', '0.0067', false],
    ]);
    expect((await slsInProcess(['fx', 'list'], env)).stdout).not.toContain('STALE');
    // W3 (decision 0040): a rate set 97 hours ago is named stale, with the command that renews it
    const store = openStore(db.url);
    try {
      await store.db
        .updateTable('fx_rates')
        .set({ updated_at: Date.now() - 97 * 3_600_000 })
        .where('currency', '=', 'JPY')
        .execute();
    } finally {
      await store.close();
    }
    const listed = (await slsInProcess(['fx', 'list'], env)).stdout.split('\n');
    expect(listed.filter((line) => line.includes('STALE'))).toEqual([expect.stringContaining('sls fx set JPY')]);
    expect(listed.find((line) => line.startsWith('JPY'))).toContain('STALE');
    await slsInProcess(['fx', 'set', 'JPY', '0.0067'], env);
    const after = await post(`${b.url}/api/v1/withdrawals/check`, { account: 'FX00001', amount: 100, currency: 'EUR' }, key);
    expect([after.status, after.body.amountUsd]).toEqual([200, 108]);
    const badRate = await slsInProcess(['fx', 'set', 'EUR', '-1'], env);
    expect([badRate.code, badRate.stderr]).toEqual([1, expect.stringContaining('The rate -1 is not valid')]);
    expect((await slsInProcess(['fx', 'set', 'USD', '2'], env)).stderr).toContain('USD is the base currency');
    expect((await slsInProcess(['fx', 'set', 'EURO', '1'], env)).stderr).toContain('EURO is not a currency code');
  }, 120_000);

  it('W3/X4: 20 concurrent withdrawals across both processes that together exceed the daily limit: exactly the ones that fit are accepted', async () => {
    // no active device: W1's None row, USD 50,000 a day
    expect((await slsInProcess(['user', 'create', '--username', 'raceacct', '--password', PASSWORD, '--account', 'RACE0001'], env)).code).toBe(0);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        post(`${(i % 2 ? a : b).url}/api/v1/withdrawals`, { account: 'RACE0001', amount: 4_000, currency: 'USD', reference: `race-${i}` }, key),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(12);
    for (const r of results.filter((x) => x.status !== 201)) expect([r.status, r.body.error?.code]).toEqual([409, 'WITHDRAWAL_LIMIT_EXCEEDED']);
    const left = await post(`${a.url}/api/v1/withdrawals/check`, { account: 'RACE0001', amount: 2_000, currency: 'USD' }, key);
    expect(left.body).toMatchObject({ allowed: true, remaining: { dayUsd: 2_000 } });
    expect((await slsInProcess(['audit', 'verify'], env)).code).toBe(0);
  });
});
