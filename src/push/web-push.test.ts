import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import webpush from 'web-push';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakePushService } from '../../test/support/fake-push-service.js';
import { closedPort } from '../../test/support/delivery.js';
import type { FakePushService } from '../../test/support/fake-push-service.js';
import { SECOND, TestClock } from '../clock.js';
import type { PushNotice, PushOutcome } from './provider.js';
import { checkVapidKeys, generateVapidKeys, loadVapidKeys, pushTopic, webPushProvider } from './web-push.js';
import type { WebPushOptions } from './web-push.js';

const SUBJECT = 'mailto:security@example.com';
const vapid = generateVapidKeys();

let fake: FakePushService;
let clock: TestClock;
beforeEach(async () => {
  fake = await startFakePushService();
  clock = new TestClock(Date.now());
});
afterEach(async () => {
  await fake.close();
});

function provider(overrides: Partial<WebPushOptions> = {}) {
  return webPushProvider({
    vapid: { ...vapid, subject: SUBJECT },
    timeoutMs: 2_000,
    clock,
    retry: { attempts: 3, baseDelayMs: 100, sleep: async () => undefined },
    ...overrides,
  });
}

function notice(overrides: Partial<PushNotice> = {}): PushNotice {
  return {
    requestId: 'flw_01J9Z6Q8R4T2V7X3Y5A1B0C9D8',
    username: 'alice.martin',
    kind: 'login',
    app: 'portal',
    expiresAt: new Date(clock.now() + 120 * SECOND).toISOString(),
    title: 'Demande de connexion',
    body: 'Ouvrez l’app pour approuver — « portail »',
    ...overrides,
  };
}

describe('K3: push requests reach a closed app through Web Push', () => {
  it("K3: a push request reaches the phone's push service encrypted (RFC 8291) with VAPID (RFC 8292), and the app decrypts the notice", async () => {
    const subscription = fake.subscribe();
    const sent = notice();
    expect(await provider().send(subscription, sent)).toEqual({ status: 'sent' });
    expect(fake.requests).toHaveLength(1);
    const request = fake.requests[0]!;
    expect(request.headers['content-encoding']).toBe('aes128gcm');
    expect(request.headers['content-type']).toBe('application/octet-stream');
    // The push service sees ciphertext only.
    const wire = request.body.toString('latin1');
    for (const clear of [sent.requestId, sent.username, 'Demande', 'portal']) expect(wire).not.toContain(clear);
    expect(fake.received).toHaveLength(1);
    const push = fake.received[0]!;
    expect(push.endpoint).toBe(subscription.endpoint);
    expect(push.payload).toEqual(sent);
    expect(push.urgency).toBe('high');
  });

  it('K3: the VAPID JWT is ES256 for our public key, aud = the push service origin, exp in the future within 24 h, sub = our contact', async () => {
    const subscription = fake.subscribe({ applicationServerKey: vapid.publicKey });
    expect(await provider().send(subscription, notice())).toEqual({ status: 'sent' });
    const push = fake.received[0]!;
    expect(push.vapidKey).toBe(vapid.publicKey);
    expect(push.claims.aud).toBe(fake.origin);
    expect(push.claims.sub).toBe(SUBJECT);
    const now = Math.floor(Date.now() / 1000);
    expect(push.claims.exp).toBeGreaterThan(now);
    expect(push.claims.exp).toBeLessThanOrEqual(now + 24 * 3600);
    expect(fake.requests[0]!.headers.authorization).toBe(`vapid t=${push.jwt}, k=${vapid.publicKey}`);
  });

  it('K3: a subscription restricted to another VAPID key refuses the push (403), failed and not retried', async () => {
    const other = generateVapidKeys();
    const subscription = fake.subscribe({ applicationServerKey: other.publicKey });
    expect(await provider().send(subscription, notice())).toEqual({ status: 'failed', error: 'web-push: push refused with HTTP 403' });
    expect(fake.requests).toHaveLength(1);
    expect(fake.received).toEqual([]);
  });

  it('K13: TTL is the whole seconds left until the request expires, never below 0 nor above ttlSeconds', async () => {
    const subscription = fake.subscribe();
    await provider().send(subscription, notice({ expiresAt: new Date(clock.now() + 90_400).toISOString() }));
    await provider().send(subscription, notice({ expiresAt: new Date(clock.now() - 5 * SECOND).toISOString() }));
    await provider().send(subscription, notice({ expiresAt: new Date(clock.now() + 600 * SECOND).toISOString() }));
    await provider({ ttlSeconds: 30 }).send(subscription, notice());
    expect(fake.received.map((push) => push.ttl)).toEqual([90, 0, 120, 30]);
    expect(fake.requests.map((request) => request.headers.ttl)).toEqual(['90', '0', '120', '30']);
  });

  it('K3: the Topic is base64url, at most 32 characters, the same for a request id and not the id itself', async () => {
    const subscription = fake.subscribe();
    await provider().send(subscription, notice({ requestId: 'a request id with spaces, and more than thirty-two characters' }));
    await provider().send(subscription, notice({ requestId: 'a request id with spaces, and more than thirty-two characters' }));
    await provider().send(subscription, notice({ requestId: 'flw_2' }));
    const topics = fake.received.map((push) => push.topic);
    for (const topic of topics) expect(topic).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
    expect(topics[0]).toBe(topics[1]);
    expect(topics[2]).not.toBe(topics[0]);
    expect(topics[2]).toBe(pushTopic('flw_2'));
    expect(topics[2]).not.toContain('flw_2');
  });

  it.each([410, 404])('K3: HTTP %i from the push service means the subscription is gone: expired, not retried', async (status) => {
    const subscription = fake.subscribe();
    fake.failNext(1, status);
    expect(await provider().send(subscription, notice())).toEqual({ status: 'expired' });
    expect(fake.requests).toHaveLength(1);
  });

  it('K3: an unsubscribed (410) or unknown (404) endpoint is expired', async () => {
    const gone = fake.subscribe();
    fake.unsubscribe(gone.endpoint);
    expect(await provider().send(gone, notice())).toEqual({ status: 'expired' });
    const unknown = { ...fake.subscribe(), endpoint: `${fake.origin}/push/no-such-id` };
    expect(await provider().send(unknown, notice())).toEqual({ status: 'expired' });
    expect(fake.requests.map((request) => request.status)).toEqual([410, 404]);
  });

  it('K3: a 500 then a 201 is retried with backoff and sent once', async () => {
    const subscription = fake.subscribe();
    fake.failNext(1, 500);
    const waits: number[] = [];
    const outcome = await provider({ retry: { attempts: 3, baseDelayMs: 100, sleep: async (ms) => void waits.push(ms) } }).send(subscription, notice());
    expect(outcome).toEqual({ status: 'sent' });
    expect(fake.requests.map((request) => request.status)).toEqual([500, 201]);
    expect(fake.received).toHaveLength(1);
    expect(waits).toEqual([100]);
  });

  it('K3: 429, 503 and a timeout are retried; after the last attempt the push failed with the last status', async () => {
    const subscription = fake.subscribe();
    fake.failNext(1, 429);
    fake.hangNext(1);
    fake.failNext(1, 503);
    const waits: number[] = [];
    const outcome = await provider({ timeoutMs: 150, retry: { attempts: 3, baseDelayMs: 100, sleep: async (ms) => void waits.push(ms) } }).send(
      subscription,
      notice(),
    );
    expect(outcome).toEqual({ status: 'failed', error: 'web-push: push refused with HTTP 503' });
    expect(fake.requests).toHaveLength(3);
    expect(waits).toEqual([100, 200]);
  });

  it('K3: a 400 is not retried: failed at once', async () => {
    const subscription = fake.subscribe();
    fake.failNext(1, 400);
    expect(await provider().send(subscription, notice())).toEqual({ status: 'failed', error: 'web-push: push refused with HTTP 400' });
    expect(fake.requests).toHaveLength(1);
  });

  it('K3: no answer within the timeout is failed, and the request is abandoned in time', async () => {
    const subscription = fake.subscribe();
    fake.hangNext(1);
    const started = Date.now();
    const outcome = await provider({ timeoutMs: 200, retry: { attempts: 1 } }).send(subscription, notice());
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(outcome).toEqual({ status: 'failed', error: 'web-push: no answer within 200 ms' });
  });

  it('K3: a refused connection is failed with the error kind', async () => {
    const subscription = { ...fake.subscribe(), endpoint: `http://127.0.0.1:${await closedPort()}/push/x` };
    expect(await provider({ retry: { attempts: 1 } }).send(subscription, notice())).toEqual({
      status: 'failed',
      error: 'web-push: network error (ECONNREFUSED)',
    });
  });

  it('K3: a subscription with bad keys or a bad endpoint is failed without a request', async () => {
    const good = fake.subscribe();
    const outcomes = [
      await provider().send({ ...good, keys: { ...good.keys, p256dh: 'bm90IGEga2V5' } }, notice()),
      await provider().send({ ...good, keys: { ...good.keys, auth: '' } }, notice()),
      await provider().send({ ...good, endpoint: 'file:///etc/passwd' }, notice()),
      await provider().send({ ...good, endpoint: 'not a url' }, notice()),
    ];
    for (const outcome of outcomes) expect(outcome).toEqual({ status: 'failed', error: 'web-push: invalid subscription' });
    expect(fake.requests).toEqual([]);
  });

  it('K13: error strings hold the status or error kind only: never the payload, the keys or the JWT', async () => {
    const subscription = fake.subscribe();
    const sent = notice();
    const outcomes: PushOutcome[] = [];
    for (const status of [400, 401, 403, 413, 429, 500]) {
      fake.failNext(1, status);
      outcomes.push(await provider({ retry: { attempts: 1 } }).send(subscription, sent));
    }
    fake.hangNext(1);
    outcomes.push(await provider({ timeoutMs: 100, retry: { attempts: 1 } }).send(subscription, sent));
    outcomes.push(await provider().send({ ...subscription, keys: { ...subscription.keys, p256dh: `${subscription.keys.p256dh.slice(0, -4)}AAAA` } }, sent));
    const jwts = fake.requests.map(
      (request) =>
        String(request.headers.authorization)
          .replace(/^vapid t=/, '')
          .split(',')[0]!,
    );
    expect(jwts.length).toBeGreaterThan(0);
    const secrets = [
      vapid.privateKey,
      vapid.publicKey,
      subscription.keys.p256dh,
      subscription.keys.auth,
      sent.requestId,
      sent.username,
      sent.title,
      sent.body,
      JSON.stringify(sent),
      ...jwts,
      ...fake.requests.map((request) => request.body.toString('base64url')),
    ];
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('failed');
      const seen = JSON.stringify(outcome);
      for (const secret of secrets) expect(seen).not.toContain(secret);
      expect(seen).not.toMatch(/eyJ/); // no JWT part
    }
  });

  it('K3: misconfigured VAPID keys or subject are refused when the provider is made', () => {
    const other = generateVapidKeys();
    expect(() => provider({ vapid: { publicKey: other.publicKey, privateKey: vapid.privateKey, subject: SUBJECT } })).toThrow(/does not match/);
    expect(() => provider({ vapid: { ...vapid, subject: 'http://example.com' } })).toThrow(/subject/);
    expect(() => provider({ vapid: { ...vapid, privateKey: 'short', subject: SUBJECT } })).toThrow(/private key/);
    try {
      provider({ vapid: { ...vapid, publicKey: `${vapid.publicKey}AA`, subject: SUBJECT } });
      expect.unreachable();
    } catch (error) {
      expect(String(error)).not.toContain(vapid.privateKey);
    }
  });
});

describe('K3: the VAPID key pair', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sls-vapid-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('K3: generateVapidKeys makes a P-256 pair, base64url (65-byte public key, 32-byte private key)', () => {
    const keys = generateVapidKeys();
    expect(Buffer.from(keys.publicKey, 'base64url')).toHaveLength(65);
    expect(Buffer.from(keys.privateKey, 'base64url')).toHaveLength(32);
    expect(() => checkVapidKeys(keys)).not.toThrow();
    expect(generateVapidKeys().publicKey).not.toBe(keys.publicKey);
  });

  it('K3: loadVapidKeys creates <dataDir>/vapid.json with mode 0600 on first use and reuses it after', () => {
    const dataDir = join(dir, 'data');
    const first = loadVapidKeys({ dataDir });
    expect(first.origin).toBe('generated-key-file');
    expect(first.path).toBe(join(dataDir, 'vapid.json'));
    expect(statSync(first.path!).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(first.path!, 'utf8'))).toEqual(first.keys);
    expect(() => checkVapidKeys(first.keys)).not.toThrow();
    const again = loadVapidKeys({ dataDir });
    expect(again).toEqual({ keys: first.keys, origin: 'key-file', path: first.path });
  });

  it('K3: configured keys are used as they are, and must come as a matching pair', () => {
    expect(loadVapidKeys({ ...vapid, dataDir: dir })).toEqual({ keys: vapid, origin: 'configured' });
    expect(() => loadVapidKeys({ publicKey: vapid.publicKey, dataDir: dir })).toThrow(/together/);
    expect(() => loadVapidKeys({ publicKey: generateVapidKeys().publicKey, privateKey: vapid.privateKey, dataDir: dir })).toThrow(/does not match/);
  });

  it('K3: the stored key pair signs pushes the push service accepts', async () => {
    const { keys } = loadVapidKeys({ dataDir: dir });
    const subscription = fake.subscribe({ applicationServerKey: keys.publicKey });
    expect(await provider({ vapid: { ...keys, subject: SUBJECT } }).send(subscription, notice())).toEqual({ status: 'sent' });
    expect(fake.received[0]!.vapidKey).toBe(keys.publicKey);
  });
});

describe('K3: the fake push service refuses what a real one refuses (so the tests above prove something)', () => {
  /** A request as web-push builds it, with headers changed by `change`. */
  async function post(
    subscription: { endpoint: string; keys: { p256dh: string; auth: string } },
    change: (headers: Record<string, string>) => void,
    body?: Buffer,
  ) {
    const details = webpush.generateRequestDetails(subscription, JSON.stringify(notice()), {
      vapidDetails: { subject: SUBJECT, ...vapid },
      TTL: 60,
    });
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(details.headers)) if (name !== 'Content-Length') headers[name] = String(value);
    change(headers);
    const response = await fetch(subscription.endpoint, { method: 'POST', headers, body: body ?? details.body });
    await response.arrayBuffer();
    return response.status;
  }
  const vapidHeader = (audience: string, keys = vapid, expiration?: number) =>
    webpush.getVapidHeaders(audience, SUBJECT, keys.publicKey, keys.privateKey, 'aes128gcm', expiration).Authorization;

  it('K3: it accepts a well-formed push and refuses: no TTL, another encoding, no VAPID, a JWT of another key, another aud, an expired JWT, a body for other keys', async () => {
    const subscription = fake.subscribe();
    const other = fake.subscribe();
    const otherKeys = generateVapidKeys();
    const now = Math.floor(Date.now() / 1000);
    expect(await post(subscription, () => undefined)).toBe(201);
    expect(await post(subscription, (h) => delete h.TTL)).toBe(400);
    expect(await post(subscription, (h) => (h['Content-Encoding'] = 'aesgcm'))).toBe(415);
    expect(await post(subscription, (h) => delete h.Authorization)).toBe(401);
    expect(await post(subscription, (h) => (h.Authorization = vapidHeader(fake.origin, otherKeys).replace(/k=.*$/, `k=${vapid.publicKey}`)))).toBe(401);
    expect(await post(subscription, (h) => (h.Authorization = vapidHeader('https://push.example.net')))).toBe(401);
    expect(await post(subscription, (h) => (h.Authorization = vapidHeader(fake.origin, vapid, now - 60)))).toBe(401);
    const forOther = webpush.generateRequestDetails(other, 'x', { vapidDetails: { subject: SUBJECT, ...vapid }, TTL: 60 }).body;
    expect(await post(subscription, () => undefined, forOther)).toBe(400);
    expect(fake.received).toHaveLength(1);
  });
});
