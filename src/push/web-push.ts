/**
 * Web Push (K3): how a push request reaches a closed app through the
 * phone's push service, as browsers and installed web apps receive it.
 *
 *   POST {subscription.endpoint}                 RFC 8030 (HTTP push)
 *   Authorization: vapid t=<ES256 JWT>, k=<key>  RFC 8292 (VAPID)
 *   Content-Encoding: aes128gcm                  RFC 8291 (message encryption)
 *   TTL, Urgency: high, Topic
 *
 * The `web-push` package builds the request (encryption and VAPID JWT); we
 * send it with fetch, so the deadline and the outcome are ours. The payload
 * is the PushNotice as JSON, readable only by the app (K13: no number to
 * type, nothing secret). TTL is the seconds left until the request expires,
 * so a push service never delivers a dead request; the Topic is a hash of
 * the request id, so the push service does not learn it and a retried push
 * replaces the one it may still hold.
 *
 * Outcomes: 201/202 sent; 404/410 expired (forget the subscription); any
 * other status, a timeout or a network error failed, retried with backoff
 * when it may help (429, 408, 5xx, timeouts, network errors). Error strings
 * name the status or the error kind only: never the payload, the
 * subscription's keys, the VAPID key or the JWT.
 *
 * The VAPID key pair is configured, or generated once and kept in
 * <dataDir>/vapid.json (mode 0600), like the master key (D5).
 */
import { createECDH, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createFileOnce, ensureDirectory } from '../directories.js';
import { readKeyFile } from '../bounded-file.js';
import { join } from 'node:path';
import { lazyPackage } from '../lazy-package.js';
import { systemClock } from '../clock.js';
import type { Clock } from '../clock.js';
import { backoffDelay, DeliveryError, isRetryable, requestWithDeadline } from '../delivery/retry.js';
import type { PushNotice, PushOutcome, PushProvider, PushSubscription } from './provider.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Store } from '../store/database.js';
import { keepFirstMeta, metaValue } from '../store/meta.js';

type WebPushPackage = typeof import('web-push');
const webpush = lazyPackage<WebPushPackage>('web-push');

export interface VapidKeys {
  /** Uncompressed P-256 public key (65 bytes), base64url: the app's applicationServerKey. */
  publicKey: string;
  /** P-256 private scalar (32 bytes), base64url. */
  privateKey: string;
}

export interface WebPushOptions {
  /** The server's VAPID identity (RFC 8292); subject is an https: or mailto: contact. */
  vapid: VapidKeys & { subject: string };
  /** For one attempt, response included. */
  timeoutMs: number;
  /** The most a push may wait at the push service (default 120 s, K13's request lifetime). */
  ttlSeconds?: number;
  /** Attempts in all and backoff (default 3 attempts, 500 ms doubled); tests pass a sleep that does not wait. */
  retry?: { attempts?: number; baseDelayMs?: number; sleep?: (ms: number) => Promise<void> };
  clock?: Clock;
}

const PROVIDER = 'web-push';
const DEFAULT_TTL_SECONDS = 120;

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A new VAPID key pair (P-256), base64url as the app and web-push expect. */
export function generateVapidKeys(): VapidKeys {
  return webpush().generateVAPIDKeys();
}

/** Throws a TypeError naming what is wrong (never the key itself) unless the pair is a valid P-256 pair. */
export function checkVapidKeys(keys: VapidKeys): void {
  const publicKey = Buffer.from(keys.publicKey, 'base64url');
  const privateKey = Buffer.from(keys.privateKey, 'base64url');
  if (!/^[A-Za-z0-9_-]+$/.test(keys.publicKey) || publicKey.length !== 65 || publicKey[0] !== 4) {
    throw new TypeError('VAPID public key must be an uncompressed P-256 point (65 bytes, base64url)');
  }
  if (!/^[A-Za-z0-9_-]+$/.test(keys.privateKey) || privateKey.length !== 32) {
    throw new TypeError('VAPID private key must be 32 bytes, base64url');
  }
  let derived: Buffer;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(privateKey);
    derived = ecdh.getPublicKey();
  } catch {
    throw new TypeError('VAPID private key is not a valid P-256 key');
  }
  if (!derived.equals(publicKey)) throw new TypeError('VAPID public key does not match the private key');
}

/** The settings that give the VAPID keys instead of <dataDir>/vapid.json. */
const VAPID_SETTINGS = 'SLS_VAPID_PUBLIC_KEY/SLS_VAPID_PRIVATE_KEY';

export interface VapidKeySource {
  keys: VapidKeys;
  origin: 'configured' | 'key-file' | 'generated-key-file' | 'recorded';
  path?: string;
}

function readVapidFile(path: string): VapidKeys {
  // X4, X3: at most 4 KiB, never a pipe or a device
  const parsed = JSON.parse(readKeyFile(path, VAPID_SETTINGS)) as Partial<VapidKeys>;
  const keys = { publicKey: String(parsed.publicKey ?? ''), privateKey: String(parsed.privateKey ?? '') };
  checkVapidKeys(keys);
  return keys;
}

/**
 * The configured VAPID keys (both or neither), or the pair kept in
 * <dataDir>/vapid.json, created (mode 0600) on first use. The public key is
 * what apps subscribe with: changing it orphans every subscription.
 */
export function loadVapidKeys(options: { publicKey?: string; privateKey?: string; dataDir: string }): VapidKeySource {
  if (options.publicKey || options.privateKey) {
    if (!options.publicKey || !options.privateKey) throw new TypeError('VAPID public and private keys must be configured together');
    const keys = { publicKey: options.publicKey, privateKey: options.privateKey };
    checkVapidKeys(keys);
    return { keys, origin: 'configured' };
  }
  const path = join(options.dataDir, 'vapid.json');
  if (existsSync(path)) return { keys: readVapidFile(path), origin: 'key-file', path };
  ensureDirectory(options.dataDir, 'SLS_DATA_DIR');
  const keys = generateVapidKeys();
  // Another process created it first: use theirs.
  if (!createFileOnce(path, `${JSON.stringify(keys, null, 2)}\n`)) return { keys: readVapidFile(path), origin: 'key-file', path };
  return { keys, origin: 'generated-key-file', path };
}

/** `meta`'s key of the VAPID keys every process pushes with, sealed under the master key (K3, X4). */
const RECORDED_VAPID_KEYS = 'vapid_keys';
const VAPID_SEAL_CONTEXT = 'vapid-keys';

/**
 * K3, X4: the VAPID keys of every server process sharing the database. The
 * app subscribes with the public key of the process it reached, and a push
 * service refuses, for that subscription, a push signed with another key:
 * processes with data directories of their own (on several machines) must
 * not push each with a pair of its own. Configured keys (SLS_VAPID_*) are
 * used as they are (the same for every process, docs/operations.md);
 * otherwise the pair recorded in the database, sealed, which the first start
 * records from its vapid.json (made if need be): of several first starts at
 * once, one insert wins and every process reads it.
 */
export async function sharedVapidKeys(
  options: { publicKey?: string; privateKey?: string; dataDir: string },
  store: Store,
  box: SecretBox,
): Promise<VapidKeySource> {
  if (options.publicKey || options.privateKey) return loadVapidKeys(options);
  const sealed =
    (await metaValue(store.db, RECORDED_VAPID_KEYS)) ??
    (await keepFirstMeta(store.db, RECORDED_VAPID_KEYS, box.sealJson(loadVapidKeys(options).keys, VAPID_SEAL_CONTEXT)));
  const keys = box.openJson<VapidKeys>(sealed, VAPID_SEAL_CONTEXT);
  checkVapidKeys(keys);
  // a vapid.json of this data directory, used or not, is still named when others may read it
  const path = join(options.dataDir, 'vapid.json');
  return { keys, origin: 'recorded', ...(existsSync(path) ? { path } : {}) };
}

/** RFC 8030 Topic: ≤ 32 base64url characters; a hash, so the push service does not see the request id. */
export function pushTopic(requestId: string): string {
  return createHash('sha256').update(requestId).digest('base64url').slice(0, 32);
}

/** Whole seconds from now until `expiresAt`, between 0 and `max` (0 when it cannot be read). */
function secondsLeft(expiresAt: string, nowMs: number, max: number): number {
  const left = Math.floor((Date.parse(expiresAt) - nowMs) / 1000);
  return Number.isFinite(left) ? Math.min(max, Math.max(0, left)) : 0;
}

/** A Web Push provider (RFC 8030, 8291, 8292). */
export function webPushProvider(options: WebPushOptions): PushProvider {
  const { publicKey, privateKey, subject } = options.vapid;
  checkVapidKeys({ publicKey, privateKey });
  if (!/^(https:\/\/|mailto:)\S+$/.test(subject)) throw new TypeError('VAPID subject must be an https: URL or a mailto: address');
  if (!(options.timeoutMs > 0)) throw new RangeError('timeoutMs must be positive');
  const maxTtl = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(maxTtl) || maxTtl < 0) throw new RangeError('ttlSeconds must be a whole number, 0 or more');
  const attempts = options.retry?.attempts ?? 3;
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError('attempts must be a positive integer');
  const baseDelayMs = options.retry?.baseDelayMs ?? 500;
  const sleep = options.retry?.sleep ?? realSleep;
  const clock = options.clock ?? systemClock;

  /** One push request; resolves 'sent' or 'expired', throws a DeliveryError otherwise. */
  async function attempt(subscription: PushSubscription, notice: PushNotice): Promise<'sent' | 'expired'> {
    let endpoint: URL;
    let details: ReturnType<WebPushPackage['generateRequestDetails']>;
    try {
      endpoint = new URL(subscription.endpoint);
      if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') throw new TypeError('not http(s)');
      // Encrypts for the subscription's keys and signs a fresh JWT (aud = the endpoint's origin, exp 12 h).
      details = webpush().generateRequestDetails(subscription, JSON.stringify(notice), {
        vapidDetails: { subject, publicKey, privateKey },
        contentEncoding: 'aes128gcm',
        TTL: secondsLeft(notice.expiresAt, clock.now(), maxTtl),
        urgency: 'high',
        topic: pushTopic(notice.requestId),
      });
    } catch {
      // web-push's own messages may quote the keys: not passed on.
      throw new DeliveryError(PROVIDER, 'invalid subscription', { retryable: false });
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(details.headers)) {
      // fetch sets Content-Length itself.
      if (name.toLowerCase() !== 'content-length') headers[name] = String(value);
    }

    return requestWithDeadline(PROVIDER, endpoint, { method: 'POST', headers, body: details.body }, options.timeoutMs, async (response) => {
      // Read (and drop) the answer: push services' error texts may quote the request.
      await response.arrayBuffer();
      if (response.status === 201 || response.status === 202) return 'sent';
      if (response.status === 404 || response.status === 410) return 'expired';
      const retryable = response.status === 429 || response.status === 408 || response.status >= 500;
      throw new DeliveryError(PROVIDER, `push refused with HTTP ${response.status}`, { retryable, status: response.status });
    });
  }

  return {
    name: PROVIDER,
    async send(subscription, notice): Promise<PushOutcome> {
      // The backoff of withRetry (src/delivery/retry.ts), over a push rather than a DeliveryProvider.
      for (let n = 1; ; n++) {
        try {
          return { status: await attempt(subscription, notice) };
        } catch (error) {
          if (!isRetryable(error) || n >= attempts) {
            return { status: 'failed', error: error instanceof DeliveryError ? error.message : `${PROVIDER}: unexpected error` };
          }
          await sleep(backoffDelay(baseDelayMs, n));
        }
      }
    },
  };
}
