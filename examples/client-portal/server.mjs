#!/usr/bin/env node
/**
 * Client Portal: an example relying party of the Secure Login System (issue 14
 * item 9). A small web app on node:http that logs its users in through the
 * OpenID Provider with openid-client (authorization code + PKCE), shows who
 * logged in and with which device (amr, acr, auth_time), and asks for a
 * step-up (max_age=0: the device again) before a withdrawal goes ahead.
 *
 *   npx sls client create --name "Client Portal" --app portal --redirect-uri http://localhost:3000/callback \
 *     --post-logout-redirect-uri http://localhost:3000/
 *   PORTAL_CLIENT_ID=cli_… PORTAL_CLIENT_SECRET=… node examples/client-portal/server.mjs
 *
 * Settings (environment, or --issuer/--client-id/--client-secret/--port/--url):
 *   SLS_ISSUER            the provider (default http://localhost:8080)
 *   PORTAL_CLIENT_ID      the client id `sls client create` printed
 *   PORTAL_CLIENT_SECRET  its secret
 *   PORTAL_PORT           where the portal listens (default 3000)
 *   PORTAL_URL            the portal's address in the browser (default http://localhost:<port>);
 *                         the redirect URI is <PORTAL_URL>/callback, the post-logout one <PORTAL_URL>/
 *
 * Sessions are kept in memory: this is an example, not a product.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as oidc from 'openid-client';

const SCOPE = 'openid profile sls.entitlements';
const COOKIE = 'portal_session';

function settings(argv = process.argv.slice(2), env = process.env) {
  const { values } = parseArgs({
    args: argv,
    options: {
      issuer: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      port: { type: 'string' },
      url: { type: 'string' },
    },
  });
  const port = Number(values.port ?? env.PORTAL_PORT ?? 3000);
  const clientId = values['client-id'] ?? env.PORTAL_CLIENT_ID;
  const clientSecret = values['client-secret'] ?? env.PORTAL_CLIENT_SECRET;
  if (!clientId || !clientSecret) {
    throw new Error('Client Portal: set PORTAL_CLIENT_ID and PORTAL_CLIENT_SECRET (or --client-id and --client-secret): `sls client create` prints them.');
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`Client Portal: not a port: ${values.port ?? env.PORTAL_PORT}`);
  return {
    issuer: values.issuer ?? env.SLS_ISSUER ?? 'http://localhost:8080',
    clientId,
    clientSecret,
    port,
    url: (values.url ?? env.PORTAL_URL ?? `http://localhost:${port}`).replace(/\/$/, ''),
  };
}

const escapeHtml = (value) => String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const isoTime = (seconds) => (typeof seconds === 'number' ? new Date(seconds * 1000).toISOString() : 'unknown');

function page(title, body) {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)} · Client Portal</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}dt{font-weight:bold}dd{margin:0 0 .5rem}code{background:#eee;padding:0 .2rem}</style>
</head>
<body><header><p>Client Portal <small>(an example relying party of the Secure Login System)</small></p></header>
<main>
<h1>${escapeHtml(title)}</h1>
${body}
</main></body></html>`;
}

function claimsList(claims) {
  const amr = Array.isArray(claims.amr) ? claims.amr.join(' ') : '';
  return `<dl>
<dt>User</dt><dd id="username">${escapeHtml(claims.preferred_username ?? claims.sub)}</dd>
<dt>Subject (<code>sub</code>)</dt><dd id="sub">${escapeHtml(claims.sub)}</dd>
<dt>How (<code>amr</code>)</dt><dd id="amr">${escapeHtml(amr)}</dd>
<dt>Level (<code>acr</code>)</dt><dd id="acr">${escapeHtml(claims.acr ?? '')}</dd>
<dt>Last proof (<code>auth_time</code>)</dt><dd id="auth-time" data-epoch="${escapeHtml(claims.auth_time ?? '')}">${escapeHtml(isoTime(claims.auth_time))}</dd>
</dl>`;
}

/** Starts the portal; resolves once it listens. */
export async function startPortal(options) {
  const { issuer, clientId, clientSecret, port, url } = options;
  const redirectUri = `${url}/callback`;
  const execute = new URL(issuer).protocol === 'http:' ? [oidc.allowInsecureRequests] : [];
  const config = await oidc.discovery(new URL(issuer), clientId, undefined, oidc.ClientSecretBasic(clientSecret), { execute });

  /** session id → { csrf, user?: claims, idToken?, pending?: { verifier, state, nonce, purpose, amount?, asked? }, withdrawals: [] } */
  const sessions = new Map();

  function sessionOf(req, res) {
    const cookie = (req.headers.cookie ?? '')
      .split(';')
      .map((part) => part.trim().split('='))
      .find(([name]) => name === COOKIE);
    const id = cookie?.[1];
    if (id && sessions.has(id)) return sessions.get(id);
    const fresh = randomBytes(24).toString('base64url');
    const session = { id: fresh, csrf: randomBytes(24).toString('base64url'), withdrawals: [] };
    sessions.set(fresh, session);
    const secure = url.startsWith('https:') ? '; Secure' : '';
    res.setHeader('set-cookie', `${COOKIE}=${fresh}; Path=/; HttpOnly; SameSite=Lax${secure}`);
    return session;
  }

  function send(res, status, html) {
    res.writeHead(status, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      // the Withdraw form ends, through the redirect, at the provider: form-action covers redirects too
      'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${new URL(issuer).origin}; frame-ancestors 'none'`,
      'x-content-type-options': 'nosniff',
    });
    res.end(html);
  }

  function redirect(res, location) {
    res.writeHead(303, { location, 'cache-control': 'no-store' });
    res.end();
  }

  async function readForm(req) {
    let body = '';
    for await (const chunk of req) {
      body += chunk;
      if (body.length > 10_000) throw new Error('form too large');
    }
    return new URLSearchParams(body);
  }

  function sameToken(a, b) {
    const x = Buffer.from(a ?? '');
    const y = Buffer.from(b ?? '');
    return x.length === y.length && timingSafeEqual(x, y);
  }

  /** Sends the browser to the provider; `extra` holds max_age for a step-up. */
  async function authorize(res, session, purpose, extra = {}) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    session.pending = { verifier, state, nonce, purpose, asked: Math.floor(Date.now() / 1000), ...extra.pending };
    const target = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: SCOPE,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...extra.params,
    });
    redirect(res, target.href);
  }

  function home(session) {
    if (!session.user) {
      return page(
        'Welcome',
        `<p>Log in with your Secure Login System account: your password, then your device.</p>
<p><a id="login" href="/login">Log in</a></p>`,
      );
    }
    return page(
      'Your account',
      `<p id="signed-in">Signed in as ${escapeHtml(session.user.preferred_username ?? session.user.sub)}.</p>
${claimsList(session.user)}
<h2>Withdraw</h2>
<p>A withdrawal asks you to verify again with your device.</p>
<form method="post" action="/withdraw">
<input type="hidden" name="_csrf" value="${escapeHtml(session.csrf)}">
<label for="amount">Amount (USD)</label> <input id="amount" name="amount" inputmode="decimal" required pattern="[0-9]+(\\.[0-9]{1,2})?" value="100">
<button id="withdraw" type="submit">Withdraw</button>
</form>
<form method="post" action="/logout"><input type="hidden" name="_csrf" value="${escapeHtml(session.csrf)}"><button id="logout" type="submit">Log out</button></form>`,
    );
  }

  async function callback(req, res, session) {
    const pending = session.pending;
    if (!pending) return send(res, 400, page('Login failed', '<p id="error">This answer was not expected. <a href="/">Start again</a>.</p>'));
    session.pending = undefined;
    let tokens;
    try {
      tokens = await oidc.authorizationCodeGrant(config, new URL(req.url, url), {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        ...(pending.purpose === 'withdraw' ? { maxAge: 0 } : {}),
      });
    } catch (error) {
      const code = error?.error ?? error?.code ?? 'error';
      const text = error?.error_description ?? error?.message ?? String(error);
      return send(res, 400, page('Login failed', `<p id="error" data-code="${escapeHtml(code)}">${escapeHtml(text)}</p><p><a href="/">Back</a></p>`));
    }
    const claims = tokens.claims();
    let info = {};
    try {
      info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    } catch {
      // the ID token alone is enough to show who logged in
    }
    const user = { ...claims, preferred_username: info.preferred_username ?? claims.preferred_username, sls_withdrawal_limits: info.sls_withdrawal_limits };
    session.idToken = tokens.id_token;
    if (pending.purpose === 'login') {
      session.user = user;
      return redirect(res, '/');
    }
    // the step-up: the same user, verified after the withdrawal was asked for
    if (!session.user || claims.sub !== session.user.sub) {
      return send(res, 403, page('Withdrawal refused', '<p id="error">The verification was made by another user.</p><p><a href="/">Back</a></p>'));
    }
    if (typeof claims.auth_time !== 'number' || claims.auth_time < pending.asked) {
      return send(res, 403, page('Withdrawal refused', '<p id="error">You did not verify again with your device.</p><p><a href="/">Back</a></p>'));
    }
    session.user = { ...session.user, ...user };
    session.withdrawals.push({ amount: pending.amount, at: claims.auth_time });
    return send(
      res,
      200,
      page(
        'Withdrawal done',
        `<p id="done">Done: USD ${escapeHtml(pending.amount)} withdrawn after you verified again at <span id="new-auth-time">${escapeHtml(isoTime(claims.auth_time))}</span>.</p>
${claimsList(session.user)}
<p><a id="home" href="/">Back to your account</a></p>`,
      ),
    );
  }

  async function handle(req, res) {
    const path = new URL(req.url, url).pathname;
    const session = sessionOf(req, res);
    if (req.method === 'GET' && path === '/') return send(res, 200, home(session));
    if (req.method === 'GET' && path === '/login') return authorize(res, session, 'login');
    if (req.method === 'GET' && path === '/callback') return callback(req, res, session);
    if (req.method === 'POST' && (path === '/withdraw' || path === '/logout')) {
      const form = await readForm(req);
      if (!sameToken(form.get('_csrf'), session.csrf))
        return send(res, 403, page('Refused', '<p id="error">The form has expired. <a href="/">Start again</a>.</p>'));
      if (path === '/logout') {
        const idToken = session.idToken;
        sessions.delete(session.id);
        res.setHeader('set-cookie', `${COOKIE}=; Path=/; Max-Age=0`);
        if (!idToken) return redirect(res, '/');
        // RP-initiated logout: the Secure Login System session ends too (the provider asks the user to confirm)
        return redirect(res, oidc.buildEndSessionUrl(config, { id_token_hint: idToken, post_logout_redirect_uri: `${url}/` }).href);
      }
      if (!session.user) return redirect(res, '/');
      const amount = form.get('amount') ?? '';
      if (!/^[0-9]{1,9}(\.[0-9]{1,2})?$/.test(amount))
        return send(res, 400, page('Withdraw', '<p id="error">Enter an amount in USD, such as 100 or 250.50.</p><p><a href="/">Back</a></p>'));
      // the step-up: max_age=0 makes the provider ask for the device again
      return authorize(res, session, 'withdraw', { params: { max_age: '0' }, pending: { amount } });
    }
    return send(res, 404, page('Not found', '<p><a href="/">Client Portal</a></p>'));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      if (!res.headersSent) send(res, 500, page('Error', `<p id="error">${escapeHtml(error?.message ?? error)}</p>`));
      else res.end();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return { server, url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const portal = await startPortal(settings());
    console.log(`Client Portal listening on ${portal.url} (redirect URI ${portal.url}/callback)`);
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
