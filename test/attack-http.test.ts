/**
 * Attacks on the HTTP surface itself (I1, L8): a forged Host header
 * behind the configured public URL, cross-site requests that carry the
 * session cookie without an Origin, answers with secrets kept by a cache,
 * pages in a frame. Each test failed before its fix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES, startHarness, type Harness } from './support/harness.js';

const PUBLIC_URL = 'https://login.example';

describe.each(DATABASES)('attacks on the HTTP surface (%s)', (database) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(database, { publicUrl: PUBLIC_URL });
  });
  afterAll(async () => h?.close());

  it("I1: a forged Host (or X-Forwarded-Host) moves none of the OpenID Provider's addresses: discovery, the device's verification URI and the device page's form name the public URL", async () => {
    const { client } = await h.services.oidc.clients.create({ name: 'Desk', app: 'trading', redirectUris: [], public: true, deviceGrant: true }, 'test');
    for (const forged of [{ host: 'evil.example' }, { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' }]) {
      const what = JSON.stringify(forged);
      const discovery = await h.app.inject({ method: 'GET', url: '/.well-known/openid-configuration', headers: forged });
      const metadata = discovery.json() as Record<string, unknown>;
      expect(metadata.issuer, what).toBe(PUBLIC_URL);
      const addresses = Object.entries(metadata).filter(([name]) => name.endsWith('_endpoint') || name.endsWith('_uri'));
      expect(addresses.length, what).toBeGreaterThan(5);
      for (const [name, address] of addresses) expect(String(address), `${what} ${name}`).toMatch(/^https:\/\/login\.example\/oidc\//);

      // RFC 8628: the address the device shows its user, to type the code at
      const device = await h.app.inject({
        method: 'POST',
        url: '/oidc/device/auth',
        headers: { ...forged, 'content-type': 'application/x-www-form-urlencoded' },
        payload: `client_id=${client.clientId}&scope=openid`,
      });
      expect(device.statusCode, what).toBe(200);
      const { verification_uri, verification_uri_complete } = device.json() as Record<string, string>;
      expect(verification_uri, what).toBe(`${PUBLIC_URL}/oidc/device`);
      expect(verification_uri_complete, what).toMatch(/^https:\/\/login\.example\/oidc\/device\?user_code=/);

      const page = await h.app.inject({ method: 'GET', url: '/oidc/device', headers: forged });
      expect(page.body, what).toContain(`action="${PUBLIC_URL}/oidc/device"`);
      expect(page.body, what).not.toContain('evil.example');
    }
  });
});
