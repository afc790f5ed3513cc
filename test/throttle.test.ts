/**
 * X5: automation is throttled per client address and globally, with the
 * counters shared by every process (the database, or Redis); 429
 * TOO_MANY_REQUESTS with Retry-After; a limit never tells whether a
 * username exists, and the lock (L3) stays apart. Also which address is
 * believed behind proxies (SLS_TRUST_PROXY).
 */
import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SECOND } from '../src/clock.js';
import { loadConfig } from '../src/config.js';
import { DEFAULT_LIMITS, NETWORK_FACTOR, clientOf, networkOf, type Limits } from '../src/throttle/throttle.js';
import { throttledKind } from '../src/http/throttle-hook.js';
import { DATABASES, PASSWORD, createUserWithCard, startHarness, uniqueUsername, type Harness } from './support/harness.js';
import { redisUrl } from './support/environment.js';
import { startTcpProxy } from './support/tcp-proxy.js';
import type { FastifyInstance } from 'fastify';

/** No limit but the one a test sets. */
const OFF: Limits = Object.fromEntries(Object.keys(DEFAULT_LIMITS).map((k) => [k, { perAddress: 0, global: 0 }])) as unknown as Limits;

/** An address of its own for each test, so that tests sharing Redis never share a counter. */
function address(): string {
  return `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
}

async function loginFrom(app: FastifyInstance, remoteAddress: string, username: string, password = PASSWORD) {
  const res = await app.inject({ method: 'POST', url: '/api/v1/login', remoteAddress, payload: { username, password, app: 'portal' } });
  // the body without the request's own id (error.requestId), which differs for every request
  const { error, ...rest } = res.json() as { error?: { code: string; message: string; requestId?: string } };
  const body: { error?: { code: string; message: string } } = rest;
  if (error) {
    const { requestId: _ignored, ...same } = error;
    body.error = same;
  }
  return { status: res.statusCode, headers: res.headers, body };
}

const BACKENDS: { name: string; db: 'sqlite' | 'postgres'; redis?: string }[] = [
  ...DATABASES.map((db) => ({ name: db, db })),
  ...(redisUrl ? [{ name: 'redis', db: 'sqlite' as const, redis: redisUrl }] : []),
];

describe.each(BACKENDS)('the throttle, counters in $name (X5)', ({ db, redis }) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(db, {
      limits: { ...OFF, login: { perAddress: 3, global: 0 }, send: { perAddress: 2, global: 0 }, answer: { perAddress: 4, global: 0 } },
      redisUrl: redis,
    });
  });
  afterAll(async () => h.close());

  it('X5: login starts from one address are limited (429 TOO_MANY_REQUESTS, Retry-After), whatever the usernames; another address goes on', async () => {
    const from = address();
    const statuses: number[] = [];
    // a script trying one password on many usernames, real and not
    const { user } = await createUserWithCard(h.services);
    for (const username of [user.username, uniqueUsername('ghost'), uniqueUsername('ghost'), user.username, uniqueUsername('ghost')]) {
      const res = await loginFrom(h.app, from, username, 'one guess for all');
      statuses.push(res.status);
      if (res.status === 429) {
        expect(res.body.error?.code).toBe('TOO_MANY_REQUESTS');
        expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
      }
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    // the same answer for a username that exists and one that does not
    const real = await loginFrom(h.app, from, user.username);
    const ghost = await loginFrom(h.app, from, uniqueUsername('ghost'));
    expect([real.status, real.body]).toEqual([ghost.status, ghost.body]);
    // the lock counts only what was checked: the throttled ones never reached the password
    expect((await h.services.lockout.status(user.username)).failures).toBe(1);
    expect((await loginFrom(h.app, address(), user.username)).status).toBe(200);
    // the next minute, the address may start again
    h.clock.advance(61 * SECOND);
    expect((await loginFrom(h.app, from, user.username)).status).toBe(200);
  });

  it("X5: an IPv6 client is counted by its /64 (one subscriber's network, not one of its 2^64 addresses); IPv4, also written IPv4-mapped, by its address", async () => {
    const hex = () => randomInt(0x10000).toString(16);
    const network = `2001:db8:${hex()}:${hex()}`;
    const statuses: number[] = [];
    for (const from of [`${network}::1`, `${network}::2`, `${network}:0:0:0:3`, `${network}:ffff:ffff:ffff:ffff`, `${network.toUpperCase()}::5`])
      statuses.push((await loginFrom(h.app, from, uniqueUsername('ghost'), 'x')).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    // the next /64 is another client
    expect((await loginFrom(h.app, `2001:db8:${hex()}:${hex()}::1`, uniqueUsername('ghost'), 'x')).status).toBe(401);
    // IPv4: each address its own, the same whether written plain or IPv4-mapped (a dual-stack listener)
    const v4 = address();
    const mapped = [v4, `::ffff:${v4}`, v4, `::ffff:${v4}`];
    const v4Statuses: number[] = [];
    for (const from of mapped) v4Statuses.push((await loginFrom(h.app, from, uniqueUsername('ghost'), 'x')).status);
    expect(v4Statuses).toEqual([401, 401, 401, 429]);
    expect((await loginFrom(h.app, `::ffff:${address()}`, uniqueUsername('ghost'), 'x')).status).toBe(401);
  });

  it('X5: codes sent by SMS or voice and second-factor answers have limits of their own', async () => {
    const { user } = await createUserWithCard(h.services);
    const from = address();
    const start = await loginFrom(h.app, from, user.username);
    const flowId = (start.body as { id: string }).id;
    const claim = { 'x-claim-token': (start.body as { claimToken: string }).claimToken };
    const answers = [];
    for (let i = 0; i < 5; i++)
      answers.push(
        (await h.app.inject({ method: 'POST', url: `/api/v1/login/${flowId}`, headers: claim, remoteAddress: from, payload: { response: '00000000' } }))
          .statusCode,
      );
    // 3 wrong answers use the challenge up (410 after), the 5th is over the address's limit of 4
    expect(answers).toEqual([401, 401, 401, 410, 429]);
    const resends = [];
    for (let i = 0; i < 3; i++)
      resends.push(
        (
          await h.app.inject({
            method: 'POST',
            url: `/api/v1/login/${flowId}/code`,
            remoteAddress: from,
            payload: { channel: 'sms' },
            headers: { 'x-claim-token': String((start.body as { claimToken: string }).claimToken) },
          })
        ).statusCode,
      );
    expect(resends.slice(2)).toEqual([429]);
  });
});

/** X5: the same throttle, counted in the database while a configured Redis is unreachable (decision 0017). */
const UNREACHABLE_REDIS = DATABASES.map((db) => ({ name: `${db}, Redis unreachable`, db, redis: 'redis://127.0.0.1:1' }));

describe.each([...BACKENDS, ...UNREACHABLE_REDIS])('the throttle of an IPv6 /48, counters in $name (X5)', ({ db, redis }) => {
  it("X5: an IPv6 client sending from many /64s of one /48 (a small hosting customer's 65,536 networks) is limited at the /48's wider limit; another /48 goes on", async () => {
    const h = await startHarness(db, { limits: { ...OFF, login: { perAddress: 2, global: 0 } }, redisUrl: redis });
    try {
      const hex = () => randomInt(0x10000).toString(16);
      const site = `2001:db8:${hex()}`;
      const statuses: number[] = [];
      // one login start from each of 21 /64s of the /48: each /64 far under its limit of 2
      for (let i = 0; i < NETWORK_FACTOR * 2 + 1; i++)
        statuses.push((await loginFrom(h.app, `${site}:${i.toString(16)}::1`, uniqueUsername('ghost'), 'x')).status);
      expect(statuses.slice(0, NETWORK_FACTOR * 2).every((s) => s === 401)).toBe(true);
      expect(statuses[NETWORK_FACTOR * 2]).toBe(429);
      // the next /48 is another client; IPv4 keeps its limit per address
      expect((await loginFrom(h.app, `2001:db8:${hex()}:1::1`, uniqueUsername('ghost'), 'x')).status).toBe(401);
      expect((await loginFrom(h.app, address(), uniqueUsername('ghost'), 'x')).status).toBe(401);
    } finally {
      await h.close();
    }
  });
});

describe('the entitlement API (X5, I3)', () => {
  it('X5/I3: guessed API keys from one address are refused by the throttle after its limit, before they are checked or audited', async () => {
    const h = await startHarness('sqlite', { limits: { ...OFF, integration: { perAddress: 3, global: 0 } } });
    try {
      const from = address();
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await h.app.inject({
          method: 'POST',
          url: '/api/v1/withdrawals/check',
          remoteAddress: from,
          headers: { authorization: `Bearer sls_${'a'.repeat(26)}_${'b'.repeat(43)}`, 'content-type': 'application/json' },
          payload: { account: 'U0000000', amount: 1, currency: 'USD' },
        });
        statuses.push(res.statusCode);
      }
      expect(statuses).toEqual([401, 401, 401, 429, 429, 429]);
      expect(await h.services.audit.list({ type: 'apikey.refused', limit: 100 })).toHaveLength(3);
    } finally {
      await h.close();
    }
  });
});

describe('the global limit (X5)', () => {
  it("X5: the whole service has a limit too; a request refused at its address's limit does not spend it", async () => {
    const h = await startHarness('sqlite', { limits: { ...OFF, login: { perAddress: 2, global: 5 } } });
    try {
      const greedy = address();
      const refusedAtAddress = [];
      for (let i = 0; i < 6; i++) refusedAtAddress.push((await loginFrom(h.app, greedy, uniqueUsername(), 'x')).status);
      expect(refusedAtAddress).toEqual([401, 401, 429, 429, 429, 429]);
      // 2 counted globally: 3 more from others pass, then the service's limit
      const others = [];
      for (let i = 0; i < 4; i++) others.push(await loginFrom(h.app, address(), uniqueUsername(), 'x'));
      expect(others.map((r) => r.status)).toEqual([401, 401, 401, 429]);
      expect(others[3]!.body.error?.message).toContain('too many requests of this kind');
    } finally {
      await h.close();
    }
  });

  it('X5: who a client is for its limit: an IPv6 /64 however written, an IPv4 address however mapped', () => {
    const cases: [string, string][] = [
      ['192.0.2.1', '192.0.2.1'],
      ['::ffff:192.0.2.1', '192.0.2.1'],
      ['::FFFF:c000:201', '192.0.2.1'],
      ['0:0:0:0:0:ffff:192.0.2.1', '192.0.2.1'],
      ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
      ['2001:0DB8:0001:0002:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
      ['2001:db8::', '2001:db8::/64'],
      ['fe80::1%eth0', 'fe80::/64'],
      ['64:ff9b::192.0.2.1', '64:ff9b::/64'],
      // a proxy that writes the client's port; IPv4 written the old ways
      ['192.0.2.1:5678', '192.0.2.1'],
      ['[2001:db8:1:2::1]:443', '2001:db8:1:2::/64'],
      ['[2001:db8:1:2::1]', '2001:db8:1:2::/64'],
      ['192.0.2.01', '192.0.2.1'],
    ];
    expect(cases.map(([written]) => clientOf(written))).toEqual(cases.map(([, client]) => client));
  });

  it('X5: the wider network of a client for its second limit: an IPv6 /48 however written; none for IPv4, however mapped', () => {
    const cases: [string, string | null][] = [
      ['192.0.2.1', null],
      ['::ffff:192.0.2.1', null],
      ['2001:db8:1:2::1', '2001:db8:1::/48'],
      ['2001:0DB8:0001:ffff:ffff:ffff:ffff:ffff', '2001:db8:1::/48'],
      ['fe80::1%eth0', 'fe80::/48'],
      ['not an address', null],
    ];
    expect(cases.map(([written]) => networkOf(written))).toEqual(cases.map(([, network]) => network));
  });

  it('X5: the table of throttled routes covers every route a script would repeat, API and pages', () => {
    const cases: [string, string, string | null][] = [
      ['POST', '/api/v1/login', 'login'],
      ['POST', '/login', 'login'],
      ['POST', '/api/v1/step-up', 'login'],
      ['POST', '/step-up', 'login'],
      ['POST', '/api/v1/login/:flowId', 'answer'],
      ['POST', '/login/:flowId', 'answer'],
      ['POST', '/api/v1/login/:flowId/session', 'answer'],
      ['POST', '/api/v1/step-up/:id', 'answer'],
      ['POST', '/step-up/:flowId/complete', 'answer'],
      ['POST', '/api/v1/mobile/requests/:id', 'answer'],
      ['POST', '/api/v1/devices/:deviceId/pin/:flowId', 'answer'],
      ['POST', '/api/v1/password', 'answer'],
      ['POST', '/api/v1/sharing', 'login'],
      ['POST', '/sharing/new', 'login'],
      ['POST', '/api/v1/sharing/:id/answer', 'answer'],
      ['POST', '/sharing/:id/answer', 'answer'],
      ['POST', '/api/v1/login/:flowId/code', 'send'],
      ['POST', '/login/:flowId/code', 'send'],
      ['POST', '/api/v1/phones/:phoneId/verification', 'send'],
      ['POST', '/api/v1/mobile/activations/:id/token', 'send'],
      ['POST', '/api/v1/mobile/activations', 'activation'],
      ['POST', '/api/v1/mobile/activations/:id/proof', 'activation'],
      ['POST', '/api/v1/mobile/activations/:id/complete', 'activation'],
      ['GET', '/api/v1/helpdesk/users', 'helpdesk'],
      ['POST', '/helpdesk/users/:username/unlock', 'helpdesk'],
      ['GET', '/api/v1/admin/audit', 'admin'],
      ['POST', '/api/v1/withdrawals', 'integration'],
      ['POST', '/api/v1/withdrawals/check', 'integration'],
      ['GET', '/api/v1/entitlements', 'integration'],
      ['GET', '/api/v1/session', null],
      ['GET', '/login/:flowId', null],
      ['POST', '/api/v1/mobile/requests', null],
    ];
    for (const [method, route, kind] of cases) expect([method, route, throttledKind(method, route)]).toEqual([method, route, kind]);
  });
});

describe('which client address is believed (X5, K13)', () => {
  it('X5: SLS_TRUST_PROXY names the proxies or their hops; a bare "true" is refused', () => {
    expect(loadConfig({ SLS_TRUST_PROXY: '127.0.0.1,10.0.0.0/8' }).trustProxy).toEqual(['127.0.0.1', '10.0.0.0/8']);
    expect(loadConfig({ SLS_TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({}).trustProxy).toBe(false);
    for (const bad of ['true', '*', '10.0.0.0/99', 'proxy.example']) {
      expect(() => loadConfig({ SLS_TRUST_PROXY: bad }), bad).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }));
    }
  });

  it('X5, K13: a client behind a trusted proxy is known by its address; a client writing X-Forwarded-For itself is not believed', async () => {
    const h = await startHarness('sqlite', { trustProxy: ['10.1.2.3'] });
    try {
      const { user } = await createUserWithCard(h.services);
      const login = async (remoteAddress: string, forwarded: string) =>
        h.app.inject({
          method: 'POST',
          url: '/api/v1/login',
          remoteAddress,
          headers: { 'x-forwarded-for': forwarded },
          payload: { username: user.username, password: PASSWORD, app: 'portal' },
        });
      const viaProxy = (await login('10.1.2.3', '198.51.100.7')).json() as { id: string };
      const forged = (await login('203.0.113.9', '198.51.100.66')).json() as { id: string };
      const flows = await h.services.store.db.selectFrom('login_flows').select(['id', 'ip']).where('id', 'in', [viaProxy.id, forged.id]).execute();
      expect(Object.fromEntries(flows.map((f) => [f.id, f.ip]))).toEqual({ [viaProxy.id]: '198.51.100.7', [forged.id]: '203.0.113.9' });
    } finally {
      await h.close();
    }
  });

  it("X5: a trusted proxy that writes the client's port in X-Forwarded-For (198.51.100.7:1234, [2001:db8::1]:1234) does not make each connection a new client; a forged prefix is not believed", async () => {
    const h = await startHarness('sqlite', { trustProxy: ['10.1.2.3'], limits: { ...OFF, login: { perAddress: 3, global: 0 } } });
    try {
      const from = (forwarded: string) =>
        h.app.inject({
          method: 'POST',
          url: '/api/v1/login',
          remoteAddress: '10.1.2.3',
          headers: { 'x-forwarded-for': forwarded },
          payload: { username: uniqueUsername('ghost'), password: 'x', app: 'portal' },
        });
      const v4 = address();
      const statuses: number[] = [];
      for (let port = 1000; port < 1005; port++) statuses.push((await from(`${address()}, ${v4}:${port}`)).statusCode);
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      const v6: number[] = [];
      const network = `2001:db8:${randomInt(0x10000).toString(16)}:1`;
      for (let port = 1000; port < 1005; port++) v6.push((await from(`[${network}::${port.toString(16)}]:${port}`)).statusCode);
      expect(v6).toEqual([401, 401, 401, 429, 429]);
    } finally {
      await h.close();
    }
  });

  it('M7, X5: the development outbox page is served only when asked for and only while messages stay in the outbox', async () => {
    for (const [overrides, served] of [
      [{ outboxPage: 'off' as const }, false],
      [{ outboxPage: 'on' as const }, true],
    ] as const) {
      const h = await startHarness('sqlite', overrides);
      try {
        expect((await h.app.inject({ method: 'GET', url: '/dev/outbox' })).statusCode).toBe(served ? 200 : 404);
      } finally {
        await h.close();
      }
    }
    const withGateway = loadConfig({
      SLS_OUTBOX_PAGE: 'on',
      SLS_SMS_PROVIDER: 'twilio',
      SLS_TWILIO_ACCOUNT_SID: 'AC1',
      SLS_TWILIO_AUTH_TOKEN: 't',
      SLS_TWILIO_FROM: '+15005550006',
    });
    const { outboxPageServed } = await import('../src/config.js');
    expect(outboxPageServed(withGateway)).toBe(false);
  });
});

/** X5, decision 0017: Redis configured but unreachable (nothing listens on port 1): the processes count in their shared database. */
const REDIS_UNREACHABLE = { name: 'the database, Redis unreachable', db: DATABASES[DATABASES.length - 1]!, redis: 'redis://127.0.0.1:1' };

describe.each([...BACKENDS, REDIS_UNREACHABLE])('the throttle across two server processes, counters in $name (X5)', ({ db, redis }) => {
  it("X5: one client's login starts are counted once across both processes", async () => {
    const { openTestDatabase } = await import('./support/harness.js');
    const { cliEnv, startServer } = await import('./support/cli.js');
    const database = await openTestDatabase(db);
    // the client's address comes through a trusted proxy (this machine), one of its own for this test
    const env = cliEnv(database, { SLS_LIMIT_LOGIN: '4/1000', SLS_TRUST_PROXY: '127.0.0.1', ...(redis ? { SLS_REDIS_URL: redis } : {}) });
    const [a, b] = await Promise.all([startServer(env), startServer(env)]);
    try {
      let statuses: number[] = [];
      // a burst within one minute's window (tried again if a window ended during it)
      for (let tries = 0; tries < 3; tries++) {
        const client = address();
        const minute = Math.floor(Date.now() / 60_000);
        statuses = [];
        for (let i = 0; i < 6; i++) {
          const res = await fetch(`${(i % 2 ? a : b).url}/api/v1/login`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-forwarded-for': client },
            body: JSON.stringify({ username: uniqueUsername('ghost'), password: 'x', app: 'portal' }),
          });
          statuses.push(res.status);
        }
        if (Math.floor(Date.now() / 60_000) === minute) break;
      }
      expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await database.drop();
    }
  });
});

describe('the device authorization grant (X5, I1)', () => {
  /** Four forms posted one after another from one new address: their statuses. */
  async function postFormsFromOneAddress(h: Harness, url: string, payload: (i: number) => string): Promise<number[]> {
    const from = address();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const posted = await h.app.inject({
        method: 'POST',
        url,
        remoteAddress: from,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: payload(i),
      });
      statuses.push(posted.statusCode);
    }
    return statuses;
  }

  it('X5/I1: user codes typed on the device page are counted like answers: over the limit, 429 before the provider looks the code up', async () => {
    const h = await startHarness('sqlite', { limits: { ...OFF, answer: { perAddress: 3, global: 0 } } });
    try {
      const statuses = await postFormsFromOneAddress(h, '/oidc/device', (i) => `xsrf=x&user_code=BCDF-GHJ${i}`);
      // the first three reach the provider (no form of this browser: a new form), the fourth is refused
      expect(statuses.slice(0, 3)).toEqual([303, 303, 303]);
      expect(statuses[3]).toBe(429);
    } finally {
      await h.close();
    }
  });

  it("X5/I1: device codes asked for from one address are counted like login starts: a public client's id does not let anyone flood codes and audit entries", async () => {
    const h = await startHarness('sqlite', { limits: { ...OFF, login: { perAddress: 3, global: 0 } } });
    try {
      const { client } = await h.services.oidc.clients.create({ name: 'Desk', app: 'trading', redirectUris: [], public: true, deviceGrant: true }, 'test');
      const statuses = await postFormsFromOneAddress(h, '/oidc/device/auth', () => `client_id=${client.clientId}&scope=openid`);
      expect(statuses).toEqual([200, 200, 200, 429]);
      // the requests taken are audited (after the answer); the refused one is not
      const requested = async () =>
        (await h.services.store.db.selectFrom('audit_log').select('seq').where('event', '=', 'oidc.device_requested').execute()).length;
      await expect.poll(requested).toBe(3);
    } finally {
      await h.close();
    }
  });
});

type FakeRedis = { url: string; close(): Promise<void> };

/** A TCP server on 127.0.0.1 in Redis's place: SERVE speaks (or not) on each connection; close() cuts them all. */
async function fakeRedis(serve: (socket: import('node:net').Socket) => void): Promise<FakeRedis> {
  const { createServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    serve(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A Redis that accepts connections and never answers (hung, or a network that drops every reply). */
function silentRedis(): Promise<FakeRedis> {
  return fakeRedis(() => undefined);
}

/** A Redis that answers its client's handshake, then refuses every command with an error (out of memory, say). */
function refusingRedis(): Promise<FakeRedis> {
  const info = '# Server\r\nredis_version:7.2.0\r\nloading:0\r\n';
  return fakeRedis((socket) => {
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString('latin1');
      // each command is an array of bulk strings: *N, then $len and the bytes, N times
      for (;;) {
        const lines = pending.split('\r\n');
        const count = /^\*(\d+)$/.exec(lines[0] ?? '');
        if (!count || lines.length < 1 + 2 * Number(count[1]) + 1) return;
        const name = (lines[2] ?? '').toUpperCase();
        pending = lines.slice(1 + 2 * Number(count[1])).join('\r\n');
        socket.write(name === 'INFO' ? `$${info.length}\r\n${info}\r\n` : "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
      }
    });
  });
}

/**
 * A relay to the real Redis that can go silent: `freeze()` stops carrying
 * bytes on the connections open through it (a peer gone without a word, a
 * network that drops packets: the client's connection still looks ready)
 * and on new ones; `thaw()` carries new connections again, the frozen ones
 * stay dead.
 */
async function freezingRelay(target: URL): Promise<{ url: string; freeze(): void; thaw(): void; close(): Promise<void> }> {
  const { createServer, connect } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  let frozen = false;
  const server = createServer((client) => {
    sockets.add(client);
    client.on('error', () => undefined);
    if (frozen) return;
    const upstream = connect(Number(target.port || 6379), target.hostname);
    sockets.add(upstream);
    upstream.on('error', () => undefined);
    let live = true;
    const carry = (to: import('node:net').Socket) => (chunk: Buffer) => {
      if (frozen) live = false;
      if (live) to.write(chunk);
    };
    client.on('data', carry(upstream));
    upstream.on('data', carry(client));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (one just given up). */
async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Five login starts with a wrong password from one address, over a limit of 3: the statuses. */
async function fiveGuesses(h: Harness, username: string, from = address()): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await loginFrom(h.app, from, username, 'one guess for all')).status);
  return statuses;
}

async function fallbacks(h: Harness): Promise<number> {
  const line = (await h.services.metrics.text()).split('\n').find((l) => l.startsWith('sls_throttle_fallbacks_total'));
  return Number(line?.split(' ')[1] ?? 0);
}

/** Waits (at most TIMEOUT ms) until a login from a new address is counted by Redis again, not by the database. */
async function untilRedisCountsAgain(h: Harness, username: string, timeout: number): Promise<void> {
  await vi.waitFor(
    async () => {
      const before = await fallbacks(h);
      await loginFrom(h.app, address(), username, 'a guess');
      expect(await fallbacks(h)).toBe(before);
    },
    { timeout, interval: 200 },
  );
}

describe.each(DATABASES)('the throttle when Redis fails, on %s (X5, X6, decision 0017)', (db) => {
  const limits = { ...OFF, login: { perAddress: 3, global: 0 } };

  /** Redis as it fails: a closed port, a server that accepts and never answers, one that answers every command with an error (out of memory). */
  const failing: [string, () => Promise<{ url: string; close: () => Promise<void> }>][] = [
    ['unreachable (a closed port)', async () => ({ url: `redis://127.0.0.1:${await closedPort()}`, close: async () => undefined })],
    ['that accepts and never answers', silentRedis],
    ['that answers every command with an error (out of memory)', refusingRedis],
  ];

  it.each(failing)(
    'X5, X6: a Redis %s: each request is answered, counted by the database instead; the limit holds (429), never a 500 nor an unlimited guess',
    async (_name, start) => {
      const redis = await start();
      const h = await startHarness(db, { limits, redisUrl: redis.url });
      try {
        const { user } = await createUserWithCard(h.services);
        expect(await fiveGuesses(h, user.username)).toEqual([401, 401, 401, 429, 429]);
        expect((await h.services.lockout.status(user.username)).failures).toBe(3);
        expect(await fallbacks(h)).toBeGreaterThanOrEqual(5);
      } finally {
        await h.close();
        await redis.close();
      }
    },
  );

  it.skipIf(!redisUrl)(
    'X5, X6: Redis gone silent mid-run (the connection still looks open): the database counts, the limit holds; the silent connection is dropped, and Redis counts again once it answers',
    async () => {
      const relay = await freezingRelay(new URL(redisUrl!));
      const h = await startHarness(db, { limits, redisUrl: relay.url });
      try {
        const { user } = await createUserWithCard(h.services);
        expect((await loginFrom(h.app, address(), user.username, 'a guess')).status).toBe(401);
        expect(await fallbacks(h)).toBe(0);
        relay.freeze();
        expect(await fiveGuesses(h, user.username)).toEqual([401, 401, 401, 429, 429]);
        expect(await fallbacks(h)).toBeGreaterThanOrEqual(5);
        relay.thaw();
        await untilRedisCountsAgain(h, user.username, 30_000);
      } finally {
        await h.close();
        await relay.close();
      }
    },
  );

  it.skipIf(!redisUrl)('X5, X6: Redis stopped mid-run: the database counts from then on (the limit holds), and Redis counts again once back', async () => {
    const target = new URL(redisUrl!);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
    const h = await startHarness(db, { limits, redisUrl: `redis://${proxy.host}:${proxy.port}` });
    try {
      const { user } = await createUserWithCard(h.services);
      const from = address();
      expect((await loginFrom(h.app, from, user.username, 'a guess')).status).toBe(401);
      expect(await fallbacks(h)).toBe(0);
      proxy.down();
      expect(await fiveGuesses(h, user.username, from)).toEqual([401, 401, 401, 429, 429]);
      expect(await fallbacks(h)).toBeGreaterThanOrEqual(5);
      // back: Redis counts again (its count of this address, one, goes on)
      proxy.up();
      await untilRedisCountsAgain(h, user.username, 20_000);
    } finally {
      await h.close();
      await proxy.close();
    }
  });
});
