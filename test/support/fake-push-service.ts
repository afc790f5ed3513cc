/**
 * A local stand-in for a phone's Web Push service (K3 tests), speaking the
 * protocol a real one does:
 *
 *   POST /push/{id}   RFC 8030: TTL required; 201 Created with a Location
 *
 * It issues subscriptions as a browser would get them (a P-256 ECDH key pair
 * and a 16-byte auth secret per subscription, kept here to decrypt), checks
 * the VAPID Authorization header (RFC 8292: ES256 JWT valid for the key k,
 * aud = this origin, exp in the future and within 24 h, sub present), checks
 * Content-Encoding: aes128gcm and decrypts the body itself with node:crypto
 * (RFC 8291 and RFC 8188), independently of the sender's library. What it
 * accepted is recorded, decrypted.
 *
 * It can be told to fail the next requests with a status (its error body
 * quotes the request's Authorization header, so tests can check nothing
 * leaks), to hang without answering, or to forget a subscription (410).
 */
import { createDecipheriv, createECDH, createHmac, createPublicKey, randomBytes, randomUUID, verify } from 'node:crypto';
import type { ECDH } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** The claims of a VAPID JWT that the fake accepted. */
export interface VapidClaims {
  aud: string;
  exp: number;
  sub: string;
}

export interface FakePushRequest {
  path: string;
  headers: IncomingHttpHeaders;
  /** The body as received (encrypted). */
  body: Buffer;
  /** The status answered, or undefined if the request was left hanging. */
  status: number | undefined;
}

export interface ReceivedPush {
  endpoint: string;
  /** The decrypted payload, parsed as JSON. */
  payload: unknown;
  ttl: number;
  urgency: string | undefined;
  topic: string | undefined;
  /** The VAPID public key (k) the push was signed with. */
  vapidKey: string;
  claims: VapidClaims;
  /** The raw JWT, so tests can check it does not leak. */
  jwt: string;
}

export interface FakePushService {
  /** e.g. http://127.0.0.1:41234: the VAPID audience. */
  origin: string;
  /** A new subscription, as PushManager.subscribe() would return it; restricted to one VAPID key if given (RFC 8292 §4). */
  subscribe(options?: { applicationServerKey?: string }): FakeSubscription;
  /** The subscription is gone: further pushes get 410 Gone. */
  unsubscribe(endpoint: string): void;
  /** Every request received, answered or not, in order. */
  requests: FakePushRequest[];
  /** Pushes accepted (201) and decrypted. */
  received: ReceivedPush[];
  /** The next `count` requests are answered `status`, whatever they hold. */
  failNext(count: number, status: number): void;
  /** The next `count` requests get no answer until the server closes. */
  hangNext(count: number): void;
  close(): Promise<void>;
}

interface Subscriber {
  ecdh: ECDH;
  publicKey: Buffer;
  auth: Buffer;
  applicationServerKey: string | undefined;
  gone: boolean;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    reason: string,
  ) {
    super(reason);
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function hkdf(salt: Buffer, ikm: Buffer, info: Buffer, length: number): Buffer {
  // RFC 5869 with one block of output, as RFC 8291 uses it (length ≤ 32).
  const prk = createHmac('sha256', salt).update(ikm).digest();
  return createHmac('sha256', prk)
    .update(Buffer.concat([info, Buffer.from([1])]))
    .digest()
    .subarray(0, length);
}

/** RFC 8291 §3.4 + RFC 8188 §2: decrypts an aes128gcm body for the subscriber, a single record. */
export function decryptAes128gcm(body: Buffer, subscriber: { ecdh: ECDH; publicKey: Buffer; auth: Buffer }): Buffer {
  if (body.length < 21) throw new Refusal(400, 'body too short for an aes128gcm header');
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20]!;
  if (idlen !== 65) throw new Refusal(400, 'keyid must be the sender public key (65 bytes)');
  const senderKey = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  if (rs < 18 || record.length > rs || record.length < 17) throw new Refusal(400, 'a push message is one record (RFC 8291 §4)');
  const shared = subscriber.ecdh.computeSecret(senderKey);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), subscriber.publicKey, senderKey]);
  const ikm = hkdf(subscriber.auth, shared, keyInfo, 32);
  const cek = hkdf(salt, ikm, Buffer.from('Content-Encoding: aes128gcm\0'), 16);
  const nonce = hkdf(salt, ikm, Buffer.from('Content-Encoding: nonce\0'), 12); // record 0: XOR 0
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  } catch {
    throw new Refusal(400, 'decryption failed');
  }
  // Padding: zeros after the delimiter; 2 marks the last record.
  let end = plain.length - 1;
  while (end >= 0 && plain[end] === 0) end--;
  if (end < 0 || plain[end] !== 2) throw new Refusal(400, 'bad padding delimiter');
  return plain.subarray(0, end);
}

/** RFC 8292 §2–3: the `vapid t=…, k=…` header, its ES256 signature for k, and its claims. */
export function checkVapid(authorization: string | undefined, origin: string, nowMs = Date.now()): { claims: VapidClaims; key: string; jwt: string } {
  const match = /^vapid\s+(.+)$/i.exec(authorization ?? '');
  if (!match) throw new Refusal(401, 'missing vapid authorization');
  const params = Object.fromEntries(
    match[1]!.split(',').map((part) => {
      const at = part.indexOf('=');
      return [part.slice(0, at).trim(), part.slice(at + 1).trim()];
    }),
  );
  const jwt = params.t;
  const key = params.k;
  if (!jwt || !key) throw new Refusal(401, 'vapid needs t and k');
  const raw = Buffer.from(key, 'base64url');
  if (raw.length !== 65 || raw[0] !== 4) throw new Refusal(401, 'k is not an uncompressed P-256 key');
  const [header, payload, signature] = jwt.split('.');
  if (!header || !payload || !signature || jwt.split('.').length !== 3) throw new Refusal(401, 'malformed JWT');
  const head = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: string };
  if (head.alg !== 'ES256') throw new Refusal(401, 'JWT alg must be ES256');
  const publicKey = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') },
    format: 'jwk',
  });
  const valid = verify('sha256', Buffer.from(`${header}.${payload}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
  if (!valid) throw new Refusal(401, 'bad JWT signature');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Partial<VapidClaims>;
  if (claims.aud !== origin) throw new Refusal(401, 'JWT aud is not this push service');
  const now = Math.floor(nowMs / 1000);
  if (typeof claims.exp !== 'number' || claims.exp <= now || claims.exp > now + 24 * 3600) throw new Refusal(401, 'JWT exp not within 24 h');
  if (typeof claims.sub !== 'string' || !claims.sub) throw new Refusal(401, 'JWT sub missing');
  return { claims: claims as VapidClaims, key, jwt };
}

export async function startFakePushService(): Promise<FakePushService> {
  const subscribers = new Map<string, Subscriber>();
  const requests: FakePushRequest[] = [];
  const received: ReceivedPush[] = [];
  const failures: number[] = [];
  let hangs = 0;
  let origin = '';

  function answer(res: ServerResponse, request: FakePushRequest, status: number, text = ''): void {
    request.status = status;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const body = await readBody(req);
    const request: FakePushRequest = { path, headers: req.headers, body, status: undefined };
    requests.push(request);

    if (hangs > 0) {
      hangs--;
      return; // never answered; closeAllConnections() ends it
    }
    const failure = failures.shift();
    // Quote the request back, as some services do, so tests can see it is not passed on.
    if (failure) return answer(res, request, failure, `refused: ${req.headers.authorization ?? ''} ${body.toString('base64url')}`);

    const match = /^\/push\/([A-Za-z0-9-]+)$/.exec(path);
    const subscriber = match ? subscribers.get(match[1]!) : undefined;
    if (!subscriber) return answer(res, request, 404, 'no such subscription');
    if (req.method !== 'POST') return answer(res, request, 405);
    if (subscriber.gone) return answer(res, request, 410, 'subscription expired');
    try {
      const ttlHeader = req.headers.ttl;
      if (typeof ttlHeader !== 'string' || !/^\d+$/.test(ttlHeader)) throw new Refusal(400, 'TTL header required (RFC 8030 §5.2)');
      const vapid = checkVapid(req.headers.authorization, origin);
      if (subscriber.applicationServerKey && subscriber.applicationServerKey !== vapid.key)
        throw new Refusal(403, 'not the key this subscription is restricted to');
      if (req.headers['content-encoding'] !== 'aes128gcm') throw new Refusal(415, 'Content-Encoding must be aes128gcm');
      const payload = JSON.parse(decryptAes128gcm(body, subscriber).toString('utf8')) as unknown;
      const header = (name: string) => (typeof req.headers[name] === 'string' ? (req.headers[name] as string) : undefined);
      received.push({
        endpoint: `${origin}${path}`,
        payload,
        ttl: Number(ttlHeader),
        urgency: header('urgency'),
        topic: header('topic'),
        vapidKey: vapid.key,
        claims: vapid.claims,
        jwt: vapid.jwt,
      });
      res.setHeader('location', `${origin}/message/${randomUUID()}`);
      return answer(res, request, 201);
    } catch (error) {
      if (error instanceof Refusal) return answer(res, request, error.status, error.message);
      throw error;
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) {
        res.writeHead(500);
        res.end();
      } else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  origin = `http://127.0.0.1:${port}`;

  return {
    origin,
    requests,
    received,
    subscribe(options = {}) {
      const ecdh = createECDH('prime256v1');
      const publicKey = ecdh.generateKeys();
      const auth = randomBytes(16);
      const id = randomUUID();
      subscribers.set(id, { ecdh, publicKey, auth, applicationServerKey: options.applicationServerKey, gone: false });
      return { endpoint: `${origin}/push/${id}`, keys: { p256dh: publicKey.toString('base64url'), auth: auth.toString('base64url') } };
    },
    unsubscribe(endpoint) {
      const id = endpoint.slice(endpoint.lastIndexOf('/') + 1);
      const subscriber = subscribers.get(id);
      if (subscriber) subscriber.gone = true;
    },
    failNext(count, status) {
      for (let i = 0; i < count; i++) failures.push(status);
    },
    hangNext(count) {
      hangs += count;
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
