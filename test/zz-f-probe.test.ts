import { it } from 'vitest';
import { readFileSync } from 'node:fs';
import { startHarness, createUserWithCard } from './support/harness.js';
it('probe', async () => {
  const h = await startHarness((process.env.DB as 'sqlite') ?? 'sqlite');
  const doc = JSON.parse(readFileSync('/tmp/f-openapi.json', 'utf8'));
  const out: string[] = [];
  const send = async (method: string, url: string, headers: Record<string, string> = {}, payload?: string) => {
    const r = await h.app.inject({ method: method as 'GET', url, headers, ...(payload === undefined ? {} : { payload }) });
    if (r.statusCode >= 500 || r.statusCode === 0) out.push(`${method} ${url.slice(0, 120)} ${JSON.stringify(headers).slice(0, 80)} ${payload?.slice(0, 60)} → ${r.statusCode} ${r.body.slice(0, 200)}`);
    return r;
  };
  for (const path of Object.keys(doc.paths)) {
    const url = path.replace(/\{[^}]+\}/g, 'flw_' + 'a'.repeat(26));
    for (const m of ['HEAD', 'OPTIONS', 'TRACE', 'PATCH', 'PUT', 'DELETE', 'COPY', 'PROPFIND', 'SEARCH']) await send(m, url);
  }
  const { client } = await h.services.oidc.clients.create({ name: 'F', app: 'portal', redirectUris: ['https://rp.example.test/cb'], public: false }, 'test');
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const eps = ['/oidc/token', '/oidc/auth', '/oidc/device', '/oidc/device/auth', '/oidc/me', '/oidc/token/introspection', '/oidc/token/revocation', '/oidc/session/end', '/oidc/session/end/confirm', '/oidc/jwks', '/oidc/reg', '/oidc/request', '/oidc/backchannel', '/oidc/interaction/abc', '/oidc/interaction/abc/login', '/oidc/../api/v1/health', '/oidc/%00', '/oidc/' + 'a'.repeat(3000)];
  const bodies = ['', 'grant_type=authorization_code&code=x&redirect_uri=https://rp.example.test/cb&client_id=' + client.clientId, 'grant_type=%zz', 'grant_type=refresh_token&refresh_token=' + 'a'.repeat(5000), 'client_id=' + client.clientId + '&client_id=x', 'grant_type[]=a', 'a=%00', 'grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=x&client_id=' + client.clientId, 'token=x&token_type_hint=%00', 'client_id=' + 'x'.repeat(10000), 'x'.repeat(2_000_000)];
  for (const ep of eps) {
    await send('GET', ep);
    await send('GET', ep + '?client_id=' + client.clientId + '&response_type=code&scope=openid&redirect_uri=https://rp.example.test/cb&max_age=1e309&acr_values=' + 'x'.repeat(3000) + '&prompt=login%20none&claims=%7B%22a');
    await send('GET', ep + '?client_id=' + client.clientId + '&client_id=x&response_type=code&scope=openid&scope=x&redirect_uri=https://rp.example.test/cb&max_age=-1&id_token_hint=a.b.c&ui_locales=%ED%A0%80&request=a.b.c&code_challenge=' + 'a'.repeat(200) + '&code_challenge_method=S256');
    await send('GET', ep + '?client_id=' + client.clientId + '&response_type=code&scope=openid&redirect_uri=https://rp.example.test/cb&max_age=99999999999999999999&login_hint=%00&nonce=' + 'n'.repeat(100000));
    for (const b of bodies) {
      await send('POST', ep, form, b);
      await send('POST', ep, { 'content-type': 'application/json' }, b ? JSON.stringify({ grant_type: b }) : '{"a":');
      await send('POST', ep, { ...form, authorization: 'Basic ' + Buffer.from(`${client.clientId}:%zz`).toString('base64') }, b);
      await send('POST', ep, { ...form, authorization: 'Basic ' + Buffer.from(`%E0%A4%A:x`).toString('base64') }, b);
      await send('POST', ep, { ...form, authorization: 'Basic ' + 'a'.repeat(10000) }, b);
      await send('POST', ep, { ...form, authorization: 'Bearer %00' }, b);
      await send('POST', ep, { 'content-type': 'multipart/form-data; boundary=x' }, b);
      await send('POST', ep, { ...form, 'content-encoding': 'gzip' }, b);
    }
  }
  console.log(out.join('\n') || 'NONE');
  await h.close();
}, 300_000);
