/**
 * I1: what the OpenID tests drive the provider with: a small cookie-keeping
 * user agent over fetch (the provider needs a listening server and its own
 * cookies, which app.inject does not keep).
 */
import * as oidc from 'openid-client';
import { expect } from 'vitest';
import { answer, startLogin, type Json } from './api.js';
import { freePort } from './delivery.js';
import type { Config } from '../../src/config.js';
import { PASSWORD, startHarness, type Harness, type HarnessOptions } from './harness.js';

/** A browser: keeps cookies (by name), follows nothing by itself. */
export class Browser {
  readonly jar = new Map<string, string>();
  constructor(private readonly base: string) {}

  async request(
    url: string,
    init: { method?: string; form?: Record<string, string> } = {},
  ): Promise<{ status: number; location: string | null; html: string; setCookies: string[] }> {
    const target = new URL(url, this.base);
    const headers: Record<string, string> = { cookie: [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(target, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    const setCookies = response.headers.getSetCookie();
    for (const line of setCookies) {
      const [pair, ...attributes] = line.split(';');
      const name = pair!.slice(0, pair!.indexOf('=')).trim();
      const value = pair!.slice(pair!.indexOf('=') + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) <= Date.now()));
      if (value === '' || expired) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    const location = response.headers.get('location');
    return { status: response.status, location: location ? new URL(location, target).href : null, html: await response.text(), setCookies };
  }
}

/** Never fetched: the test clients' redirect URI, where a code would arrive. */
export const TEST_REDIRECT_URI = 'http://127.0.0.1:9/cb';

/**
 * A harness whose app listens on a free port of its own, its public URL the
 * issuer (the provider needs a listening server); the clock set on the
 * system's, which the provider reads.
 */
export async function listeningHarness(
  database: 'sqlite' | 'postgres',
  overrides: Partial<Config> = {},
  options: HarnessOptions = {},
): Promise<{ h: Harness; issuer: string }> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const h = await startHarness(database, { ...overrides, publicUrl: issuer }, options);
  h.clock.set(Date.now());
  await h.app.listen({ port, host: '127.0.0.1' });
  return { h, issuer };
}

/** A confidential client of the provider, registered and discovered through openid-client. */
export async function registeredClient(
  h: Harness,
  issuer: string,
  app: 'portal' | 'trading',
  name: string,
): Promise<{ configuration: oidc.Configuration; clientId: string }> {
  const created = await h.services.oidc.clients.create({ name, app, redirectUris: [TEST_REDIRECT_URI] }, 'test');
  const configuration = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.ClientSecretBasic(created.secret!), {
    execute: [oidc.allowInsecureRequests],
  });
  return { configuration, clientId: created.client.clientId };
}

/** A login through the JSON API, answered with `respond`; its session put in the browser as the login page would. */
export async function signIn(
  h: Harness,
  browser: Browser,
  username: string,
  respond: (flow: Json) => Promise<string> | string,
  app: 'portal' | 'trading' = 'portal',
): Promise<string> {
  const start = await startLogin(h.app, username, PASSWORD, app);
  expect(start.status, JSON.stringify(start.body)).toBe(200);
  const done = await answer(h.app, start.body.id as string, await respond(start.body));
  expect(done.status, JSON.stringify(done.body)).toBe(200);
  const token = done.body.session.token as string;
  browser.jar.set('__Host-sls_session', token);
  return token;
}
