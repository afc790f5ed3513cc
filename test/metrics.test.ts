/**
 * Observability (X6; X1 for the audit entries, X3 for error bodies):
 * GET /metrics protected by a token or the client's address, counters that
 * move with logins, locks and deliveries, a request id in the response
 * header, error bodies, audit entries and JSON log lines.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { buildApp } from '../src/http/app.js';
import { loadConfig } from '../src/config.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, uniqueUsername, wrongAnswer, type Harness } from './support/harness.js';
import { answer, get, startLogin } from './support/api.js';

const TOKEN = 'metrics-token-0123456789abcdef0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };

/** The value of one sample of the Prometheus text, or undefined when it is not there. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => found[key] === value) && Object.keys(found).length === Object.keys(labels).length) {
      return Number(match[3]);
    }
  }
  return undefined;
}

async function scrape(h: Harness): Promise<string> {
  const res = await get(h.app, '/metrics', AUTH);
  expect(res.status).toBe(200);
  return res.raw.body;
}

describe('X6: GET /metrics is served only when protected', () => {
  it('X6: without SLS_METRICS_TOKEN or SLS_METRICS_ALLOW, /metrics is 404 NOT_FOUND', async () => {
    const h = await startHarness('sqlite');
    try {
      const res = await get(h.app, '/metrics', AUTH);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
    } finally {
      await h.close();
    }
  });

  it('X6: with a token, no token or a wrong one is 401 UNAUTHENTICATED; the right one gets the Prometheus text', async () => {
    const h = await startHarness('sqlite', { metrics: { token: TOKEN, allow: [] } });
    try {
      const none = await get(h.app, '/metrics');
      expect(none.status).toBe(401);
      expect(none.body.error.code).toBe('UNAUTHENTICATED');
      const wrong = await get(h.app, '/metrics', { authorization: `Bearer ${TOKEN.slice(0, -1)}x` });
      expect(wrong.status).toBe(401);
      expect(wrong.body.error.code).toBe('UNAUTHENTICATED');
      const basic = await get(h.app, '/metrics', { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` });
      expect(basic.status).toBe(401);
      const ok = await get(h.app, '/metrics', AUTH);
      expect(ok.status).toBe(200);
      expect(ok.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(ok.headers['cache-control']).toBe('no-store');
      expect(ok.raw.body).toContain('# TYPE sls_logins_started_total counter');
      // the process metrics of prom-client
      expect(sample(ok.raw.body, 'process_resident_memory_bytes')).toBeGreaterThan(0);
      expect(sample(ok.raw.body, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    } finally {
      await h.close();
    }
  });

  it('X6: with SLS_METRICS_ALLOW, an allowed address reads /metrics without a token; any other gets 404', async () => {
    const h = await startHarness('sqlite', { metrics: { token: null, allow: ['10.0.0.0/8', '127.0.0.1'] } });
    try {
      const local = await h.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1' });
      expect(local.statusCode).toBe(200);
      const inRange = await h.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '10.1.2.3' });
      expect(inRange.statusCode).toBe(200);
      const outside = await h.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.7' });
      expect(outside.statusCode).toBe(404);
      expect(outside.json().error.code).toBe('NOT_FOUND');
    } finally {
      await h.close();
    }
  });

  it('X6: with both set, the address must be allowed and the token right', async () => {
    const h = await startHarness('sqlite', { metrics: { token: TOKEN, allow: ['127.0.0.1'] } });
    try {
      expect((await h.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1' })).statusCode).toBe(401);
      expect((await h.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.7', headers: AUTH })).statusCode).toBe(404);
      expect((await h.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1', headers: AUTH })).statusCode).toBe(200);
    } finally {
      await h.close();
    }
  });

  it('X6: SLS_METRICS_TOKEN and SLS_METRICS_ALLOW are validated with the setting named', () => {
    expect(loadConfig({ SLS_METRICS_TOKEN: TOKEN, SLS_METRICS_ALLOW: '127.0.0.1, 10.0.0.0/8' }).metrics).toEqual({
      token: TOKEN,
      allow: ['127.0.0.1', '10.0.0.0/8'],
    });
    expect(loadConfig({}).metrics).toEqual({ token: null, allow: [] });
    const invalid = (setting: string) => expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting }) });
    expect(() => loadConfig({ SLS_METRICS_TOKEN: 'short' })).toThrowError(invalid('SLS_METRICS_TOKEN'));
    expect(() => loadConfig({ SLS_METRICS_TOKEN: `${TOKEN} with spaces` })).toThrowError(invalid('SLS_METRICS_TOKEN'));
    expect(() => loadConfig({ SLS_METRICS_ALLOW: 'prometheus.local' })).toThrowError(invalid('SLS_METRICS_ALLOW'));
    expect(() => loadConfig({ SLS_METRICS_ALLOW: '10.0.0.0/33' })).toThrowError(invalid('SLS_METRICS_ALLOW'));
  });
});

describe.each(DATABASES)('X6: metrics on %s', (dbName) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dbName, { metrics: { token: TOKEN, allow: [] } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('X6: a login moves started, failed (second factor) and succeeded, and the answer latency histogram', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const before = await scrape(h);
    const labels = { app: 'trading', device_type: 'dscplus' };
    const start = await startLogin(h.app, user.username, PASSWORD, 'trading');
    expect(start.status).toBe(200);
    const wrong = await answer(h.app, start.body.id, wrongAnswer(cardAnswer(card, start.body.challenge.question)));
    expect(wrong.status).toBe(401);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(done.status).toBe(200);
    const after = await scrape(h);
    const delta = (name: string, l: Record<string, string>) => (sample(after, name, l) ?? 0) - (sample(before, name, l) ?? 0);
    expect(delta('sls_logins_started_total', labels)).toBe(1);
    expect(delta('sls_logins_succeeded_total', labels)).toBe(1);
    expect(delta('sls_logins_failed_total', { ...labels, stage: 'second_factor' })).toBe(1);
    const histogram = { kind: 'login', device_type: 'dscplus' };
    expect(delta('sls_second_factor_answer_seconds_count', { ...histogram, outcome: 'wrong' })).toBe(1);
    expect(delta('sls_second_factor_answer_seconds_count', { ...histogram, outcome: 'accepted' })).toBe(1);
    expect(delta('sls_second_factor_answer_seconds_bucket', { ...histogram, outcome: 'accepted', le: '+Inf' })).toBe(1);
    expect(sample(after, 'sls_second_factor_answer_seconds_sum', { ...histogram, outcome: 'accepted' })).toBeGreaterThan(0);
  });

  it('X6: 10 wrong passwords count 10 failures and one lock (L3); the lock notice waits in the outbox, then is delivered', async () => {
    const { user } = await createUserWithCard(h.services);
    await h.services.outbox.drain();
    const before = await scrape(h);
    for (let i = 0; i < 10; i += 1) expect((await startLogin(h.app, user.username, 'not the password')).status).toBe(401);
    const after = await scrape(h);
    const delta = (text: string, name: string, l: Record<string, string> = {}) => (sample(text, name, l) ?? 0) - (sample(before, name, l) ?? 0);
    expect(delta(after, 'sls_logins_failed_total', { app: 'portal', device_type: 'none', stage: 'password' })).toBe(10);
    expect(delta(after, 'sls_locks_total')).toBe(1);
    // the gauge is the outbox as it is: the lock notice (e-mail) waits for the worker
    const waiting = await h.services.store.db.selectFrom('notifications').select('id').where('status', '=', 'pending').execute();
    expect(waiting.length).toBeGreaterThan(0);
    expect(sample(after, 'sls_outbox_notices', { status: 'pending' })).toBe(waiting.length);

    const report = await h.services.outbox.drain();
    expect(report.sent).toBeGreaterThan(0);
    const delivered = await scrape(h);
    expect(sample(delivered, 'sls_outbox_notices', { status: 'pending' })).toBe(0);
    expect(delta(delivered, 'sls_deliveries_total', { channel: 'email', result: 'sent' })).toBe(report.sent);
  });

  it('X6: long polls waiting are counted while they wait', async () => {
    const abort = new AbortController();
    const waiting = h.services.signals.waitFor([`flow:${uniqueUsername('nothing')}`], 60_000, async () => null, abort.signal);
    expect(sample(await scrape(h), 'sls_long_polls_waiting')).toBe(1);
    abort.abort();
    expect(await waiting).toBeNull();
    expect(sample(await scrape(h), 'sls_long_polls_waiting')).toBe(0);
  });

  it("X6: the database pool is reported (SQLite: one connection; PostgreSQL: the pool's own counts)", async () => {
    const text = await scrape(h);
    const total = sample(text, 'sls_db_pool_connections');
    if (dbName === 'sqlite') {
      expect(total).toBe(1);
      expect(sample(text, 'sls_db_pool_waiting_requests')).toBe(0);
    } else {
      // the pg.Pool's own counts: the queries before opened a connection at least, at most the pool's 10
      expect(total).toBeGreaterThanOrEqual(1);
      expect(total).toBeLessThanOrEqual(10);
      expect(sample(text, 'sls_db_pool_idle_connections')).toBeLessThanOrEqual(total!);
      // the scrape's own count of the outbox may be waiting for a connection being opened
      expect(sample(text, 'sls_db_pool_waiting_requests')).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('request ids (X3, X1, X6)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('sqlite');
  });
  afterAll(async () => {
    await h.close();
  });

  it('X3: every answer has an X-Request-Id; an error body carries the same id as error.requestId', async () => {
    const ok = await get(h.app, '/api/v1/health');
    expect(ok.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const res = await startLogin(h.app, uniqueUsername('ghost'), 'not the password');
    expect(res.status).toBe(401);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.requestId).toBe(res.headers['x-request-id']);
    expect(res.headers['x-request-id']).not.toBe(ok.headers['x-request-id']);
    const missing = await get(h.app, '/api/v1/nothing-here');
    expect(missing.status).toBe(404);
    expect(missing.requestId).toBe(missing.headers['x-request-id']);
  });

  it('X1: an audit entry written during a request carries its request id', async () => {
    const { user } = await createUserWithCard(h.services);
    const res = await startLogin(h.app, user.username, 'not the password');
    expect(res.status).toBe(401);
    const [entry] = await h.services.audit.list({ username: user.username, type: 'login.password_failed' });
    expect(entry?.data.requestId).toBe(res.headers['x-request-id']);
    // and the chain still verifies with the id in the entry's data
    expect((await h.services.audit.verify()).ok).toBe(true);
  });

  it("X6: a client's own X-Request-Id is not taken; a trusted proxy's well-formed one is", async () => {
    const forged = await get(h.app, '/api/v1/health', { 'x-request-id': 'chosen-by-client' });
    expect(forged.headers['x-request-id']).not.toBe('chosen-by-client');
    const proxied = await startHarness('sqlite', { trustProxy: ['127.0.0.1'] });
    try {
      const fromProxy = await proxied.app.inject({
        method: 'GET',
        url: '/api/v1/health',
        remoteAddress: '127.0.0.1',
        headers: { 'x-request-id': 'lb-4f2a.9_c' },
      });
      expect(fromProxy.headers['x-request-id']).toBe('lb-4f2a.9_c');
      const malformed = await proxied.app.inject({
        method: 'GET',
        url: '/api/v1/health',
        remoteAddress: '127.0.0.1',
        headers: { 'x-request-id': 'two words\n' },
      });
      expect(malformed.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      const notProxy = await proxied.app.inject({
        method: 'GET',
        url: '/api/v1/health',
        remoteAddress: '192.0.2.7',
        headers: { 'x-request-id': 'lb-4f2a.9_c' },
      });
      expect(notProxy.headers['x-request-id']).not.toBe('lb-4f2a.9_c');
    } finally {
      await proxied.close();
    }
  });

  it('X6: log lines are JSON with the request id, and never the Authorization header, cookies or the body', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(
          ...chunk
            .toString('utf8')
            .split('\n')
            .filter((line) => line !== ''),
        );
        done();
      },
    });
    const app = await buildApp(h.services, { logger: { level: 'info', stream } });
    await app.ready();
    try {
      const secret = 'sessiontokensecret0123456789';
      const password = 'password-in-the-body-4711';
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/login',
        payload: { username: uniqueUsername('ghost'), password, app: 'portal' },
        headers: { authorization: `Bearer ${secret}`, cookie: `__Host-sls_session=${secret}` },
      });
      expect(res.statusCode).toBe(401);
      const id = res.headers['x-request-id'];
      const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      const mine = parsed.filter((entry) => entry.reqId === id);
      expect(mine.length).toBeGreaterThanOrEqual(2); // incoming request, request completed
      for (const entry of mine) {
        expect(entry).toMatchObject({ level: expect.any(Number), time: expect.any(Number), reqId: id });
      }
      const all = lines.join('\n');
      expect(all).not.toContain(secret);
      expect(all).not.toContain(password);
    } finally {
      await app.close();
    }
  });
});
