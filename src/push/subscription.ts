/**
 * K3: which Web Push subscriptions the server accepts, as one rule for
 * every way in. The server will send requests to the endpoint, so it must be
 * a known push service (SLS_PUSH_SERVICES: the host or a subdomain of it),
 * over https on the default port 443 (no other port, no credentials in the
 * URL): never an address a client chose, an internal host, a port of its
 * choosing. The keys must be usable (RFC 8291): `p256dh` an uncompressed
 * P-256 public key (65 bytes, a point on the curve), `auth` a 16-byte
 * secret, both base64url.
 *
 * A refusal is a VALIDATION_ERROR with the reason `push_endpoint`,
 * `push_service` or `push_keys` (translated; 400).
 */
import { ECDH } from 'node:crypto';
import { SlsError } from '../errors.js';
import type { PushSubscription } from './provider.js';

const BASE64URL = /^[A-Za-z0-9_-]+$/;

function base64url(value: string, field: string): Buffer {
  if (!BASE64URL.test(value)) throw new SlsError('VALIDATION_ERROR', { reason: 'push_keys', field });
  return Buffer.from(value, 'base64url');
}

/** Whether a host is one of the push services (or a subdomain of one). */
export function isKnownPushService(host: string, services: readonly string[]): boolean {
  const h = host.toLowerCase();
  return services.some((known) => h === known || h.endsWith(`.${known}`));
}

/** The subscription, checked; throws VALIDATION_ERROR (400) naming what is wrong. */
export function acceptSubscription(subscription: { endpoint: string; keys: { p256dh: string; auth: string } }, services: readonly string[]): PushSubscription {
  let url: URL;
  try {
    url = new URL(subscription.endpoint);
  } catch {
    throw new SlsError('VALIDATION_ERROR', { reason: 'push_endpoint' });
  }
  // URL drops the default port: any port left is another one
  if (url.protocol !== 'https:' || url.port !== '' || url.username !== '' || url.password !== '') {
    throw new SlsError('VALIDATION_ERROR', { reason: 'push_endpoint' });
  }
  if (!isKnownPushService(url.hostname, services)) throw new SlsError('VALIDATION_ERROR', { reason: 'push_service', host: url.hostname });

  const p256dh = base64url(subscription.keys.p256dh, 'p256dh');
  if (p256dh.length !== 65 || p256dh[0] !== 0x04) throw new SlsError('VALIDATION_ERROR', { reason: 'push_keys', field: 'p256dh' });
  try {
    // throws unless the point is on the curve
    ECDH.convertKey(p256dh, 'prime256v1');
  } catch {
    throw new SlsError('VALIDATION_ERROR', { reason: 'push_keys', field: 'p256dh' });
  }
  if (base64url(subscription.keys.auth, 'auth').length !== 16) throw new SlsError('VALIDATION_ERROR', { reason: 'push_keys', field: 'auth' });
  return { endpoint: url.href, keys: { p256dh: subscription.keys.p256dh, auth: subscription.keys.auth } };
}
