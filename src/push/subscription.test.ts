import { createECDH, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SlsError } from '../errors.js';
import { DEFAULT_PUSH_SERVICES } from '../config.js';
import { acceptSubscription } from './subscription.js';

const p256dh = (() => {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return ecdh.getPublicKey().toString('base64url');
})();
const auth = randomBytes(16).toString('base64url');

function refusal(endpoint: string, keys = { p256dh, auth }): Record<string, unknown> {
  try {
    acceptSubscription({ endpoint, keys }, DEFAULT_PUSH_SERVICES);
  } catch (error) {
    expect(error).toBeInstanceOf(SlsError);
    expect((error as SlsError).code).toBe('VALIDATION_ERROR');
    return (error as SlsError).params;
  }
  throw new Error('accepted');
}

describe('K3: the push subscriptions the server accepts', () => {
  it('K3: https on port 443 of a known push service (or a subdomain), with a P-256 key and a 16-byte secret', () => {
    for (const endpoint of [
      'https://fcm.googleapis.com/fcm/send/abc',
      'https://fcm.googleapis.com:443/fcm/send/abc',
      'https://updates.push.services.mozilla.com/wpush/v2/x',
      'https://web.push.apple.com/QGx',
    ]) {
      expect(acceptSubscription({ endpoint, keys: { p256dh, auth } }, DEFAULT_PUSH_SERVICES).keys).toEqual({ p256dh, auth });
    }
  });

  it('K3: another port, another scheme, credentials in the URL, an unknown or look-alike host are refused', () => {
    for (const endpoint of [
      'https://fcm.googleapis.com:8443/x',
      'https://fcm.googleapis.com:80/x',
      'http://fcm.googleapis.com/x',
      'https://a:b@fcm.googleapis.com/x',
      'not a url',
    ]) {
      expect(refusal(endpoint)).toEqual({ reason: 'push_endpoint' });
    }
    for (const endpoint of ['https://fcm.googleapis.com.attacker.test/x', 'https://127.0.0.1/x', 'https://[::1]/x', 'https://xfcm.googleapis.com/x']) {
      expect(refusal(endpoint)).toMatchObject({ reason: 'push_service' });
    }
  });

  it('K3: keys that are not base64url, a p256dh that is not an uncompressed point on P-256, an auth not of 16 bytes are refused', () => {
    const point = Buffer.from(p256dh, 'base64url');
    const compressed = createECDH('prime256v1');
    compressed.generateKeys();
    const endpoint = 'https://fcm.googleapis.com/x';
    expect(refusal(endpoint, { p256dh: `${p256dh}=`, auth })).toEqual({ reason: 'push_keys', field: 'p256dh' });
    expect(refusal(endpoint, { p256dh: compressed.getPublicKey(undefined, 'compressed').toString('base64url'), auth })).toEqual({
      reason: 'push_keys',
      field: 'p256dh',
    });
    expect(refusal(endpoint, { p256dh: Buffer.concat([Buffer.from([4]), randomBytes(64)]).toString('base64url'), auth })).toEqual({
      reason: 'push_keys',
      field: 'p256dh',
    });
    expect(refusal(endpoint, { p256dh: point.subarray(0, 64).toString('base64url'), auth })).toEqual({ reason: 'push_keys', field: 'p256dh' });
    expect(refusal(endpoint, { p256dh, auth: randomBytes(32).toString('base64url') })).toEqual({ reason: 'push_keys', field: 'auth' });
    expect(refusal(endpoint, { p256dh, auth: 'a+b/' })).toEqual({ reason: 'push_keys', field: 'auth' });
  });
});
