/**
 * The mobile authenticator's installable web app (K1–K14, docs/decisions/0004)
 * as the server serves it, without a browser: the page /app, its manifest,
 * its service worker, its icons and its ES modules, in the three languages
 * (X2), under the app's content security policy.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './support/harness.js';
import { byId, decode, elements, expectEveryControlLabelled, h1s, htmlLang, languageLinks } from './support/html.js';
import { messagesOf, type Messages } from '../src/i18n/resources.js';
import { APP_JS } from '../src/http/web/app-pages.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness('sqlite');
});
afterAll(async () => {
  await h.close();
});

const LANGS = ['en', 'fr', 'zh-Hant'] as const;
type Lang = (typeof LANGS)[number];

function flatten(messages: Messages | string, into: string[] = []): string[] {
  if (typeof messages === 'string') into.push(messages);
  else for (const value of Object.values(messages)) flatten(value, into);
  return into;
}

/** The texts of a page people read: between the tags, outside scripts. */
function pageTexts(html: string): string[] {
  const body = html.replace(/<script\b[\s\S]*?<\/script>/gi, ' ').replace(/<head>[\s\S]*?<\/head>/, ' ');
  return body
    .split(/<[^>]*>/)
    .map((s) => decode(s).replace(/\s+/g, ' ').trim())
    .filter(Boolean);
}

function expectAppCsp(headers: Record<string, unknown>): void {
  const csp = String(headers['content-security-policy']);
  expect(csp).toContain("default-src 'self'");
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toContain('unsafe-inline');
  expect(csp).not.toContain('unsafe-eval');
}

async function getPage(lang: Lang) {
  const response = await h.app.inject({ method: 'GET', url: `/app?lang=${lang}` });
  return { response, html: response.body };
}

/** The element ids the browser tests drive (see the brief of the app's screens). */
const IDS = [
  'users',
  'add-user',
  'migrate',
  'recover',
  'authenticate',
  'connection',
  'act-username',
  'act-password',
  'act-continue',
  'act-send-token',
  'act-challenge',
  'act-token',
  'act-pin',
  'act-pin-again',
  'act-biometric',
  'act-activate',
  'act-done',
  'act-finish',
  'request',
  'req-username',
  'req-app',
  'req-ip',
  'req-time',
  'req-number',
  'req-pin',
  'req-approve',
  'req-deny',
  'req-back',
  'req-outcome',
  'cr-user',
  'cr-challenge',
  'cr-pin',
  'cr-generate',
  'cr-response',
  'message',
  'msg-username',
  'msg-password',
];

describe('the authenticator page /app (K1, K3, K4, K13, K14, X2)', () => {
  it.each(LANGS)('X2/K1: /app?lang=%s is the app in that language: one h1, the language links, every control labelled', async (lang) => {
    const { response, html } = await getPage(lang);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expectAppCsp(response.headers);
    expect(htmlLang(html)).toBe(lang);
    const t = messagesOf(lang);
    const title = (t.authenticator as Messages).title as string;
    expect(h1s(html)).toEqual([title]);
    expect(elements(html, 'a').find((a) => a.attrs.class === 'skip')?.attrs.href).toBe('#main');
    expect(languageLinks(html).map((l) => l.href)).toEqual(['/app?lang=en', '/app?lang=fr', '/app?lang=zh-Hant']);
    expect(
      languageLinks(html)
        .filter((l) => l.current)
        .map((l) => l.hreflang),
    ).toEqual([lang]);
    expectEveryControlLabelled(html);
    for (const id of IDS) expect(byId(html, id), id).toBeDefined();
  });

  it('K1/K3: the page links its manifest, its module script and its styles; no inline script or style (CSP)', async () => {
    const { html } = await getPage('en');
    const links = elements(html, 'link');
    expect(links.find((l) => l.attrs.rel === 'manifest')?.attrs.href).toBe('/app/manifest.webmanifest');
    expect(links.filter((l) => l.attrs.rel === 'stylesheet').map((l) => l.attrs.href)).toEqual(['/static/sls.css', '/static/authenticator.css']);
    const scripts = elements(html, 'script');
    expect(scripts.filter((s) => s.attrs.src).map((s) => [s.attrs.type, s.attrs.src])).toEqual([['module', '/app/js/app.js']]);
    // the only script without src is data, which a browser does not run
    for (const script of scripts.filter((s) => !s.attrs.src)) expect(script.attrs.type).toBe('application/json');
    expect(html).not.toMatch(/\sstyle=/i);
    expect(html).not.toMatch(/<style\b/i);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    expect(byId(html, 'authenticator')?.attrs['data-vapid-key']).toBe('');
  });

  it.each(LANGS)("X2: every text of the page in %s comes from that language's translations", async (lang) => {
    const { html } = await getPage(lang);
    const known = new Set(flatten(messagesOf(lang)));
    const texts = pageTexts(html);
    expect(texts.length).toBeGreaterThan(30);
    for (const text of texts) expect(known.has(text), `${lang}: "${text}"`).toBe(true);
  });

  it('X2: the page in French or Traditional Chinese shows none of the English texts, but for those its translation keeps as they are', async () => {
    const english = new Set(pageTexts((await getPage('en')).html));
    for (const lang of ['fr', 'zh-Hant'] as const) {
      const kept = sameInBoth(lang);
      const leftovers = pageTexts((await getPage(lang)).html).filter((text) => english.has(text) && !kept.has(text));
      expect(leftovers, lang).toEqual([]);
    }
  });

  it.each(LANGS)('X2: the texts the script shows are in the page (%s), so that the script has none of its own', async (lang) => {
    const { html } = await getPage(lang);
    const island = elements(html, 'script').find((s) => s.attrs.id === 'app-text');
    expect(island?.attrs.type).toBe('application/json');
    const texts = JSON.parse(island!.inner) as Record<string, unknown>;
    const messages = messagesOf(lang);
    expect(texts).toEqual({ authenticator: messages.authenticator, apps: messages.apps });
  });

  it("X2: the app's modules contain no English text of the app", () => {
    const english = flatten(messagesOf('en').authenticator as Messages).filter((text) => text.length > 12);
    for (const module of ['app.js', 'activation.js', 'requests.js', 'offline.js', 'connection.js', 'dom.js']) {
      const source = readFileSync(`${APP_JS}/${module}`, 'utf8');
      for (const text of english) expect(source.includes(text), `${module}: "${text}"`).toBe(false);
    }
  });
});

/** The texts a translation keeps as in English under the same key (names: "English", "Challenge" in French). */
function sameInBoth(lang: 'fr' | 'zh-Hant'): Set<string> {
  const entries = (messages: Messages, prefix = ''): [string, string][] =>
    Object.entries(messages).flatMap(([k, v]) => (typeof v === 'string' ? [[`${prefix}${k}`, v] as [string, string]] : entries(v, `${prefix}${k}.`)));
  const en = new Map(entries(messagesOf('en')));
  return new Set(
    entries(messagesOf(lang))
      .filter(([key, value]) => en.get(key) === value)
      .map(([, value]) => value),
  );
}

describe('the manifest (K1: an installable app)', () => {
  it.each(LANGS)('K1/X2: /app/manifest.webmanifest in %s: application/manifest+json, translated name, scope /app, standalone, icons', async (lang) => {
    const response = await h.app.inject({ method: 'GET', url: `/app/manifest.webmanifest?lang=${lang}` });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/manifest\+json/);
    expectAppCsp(response.headers);
    const manifest = response.json() as Record<string, unknown> & { icons: { src: string; sizes: string; type: string }[] };
    const t = (messagesOf(lang).authenticator as Messages).manifest as Messages;
    expect(manifest.name).toBe(t.name);
    expect(manifest.short_name).toBe(t.shortName);
    expect(manifest.lang).toBe(lang);
    expect(manifest.start_url).toBe('/app');
    // the page is /app itself: a scope of /app/ would leave it out (and the service worker could not serve it offline)
    expect(manifest.scope).toBe('/app');
    expect(manifest.display).toBe('standalone');
    expect(manifest.icons.map((i) => i.sizes)).toEqual(['any', '192x192', '512x512']);
  });

  it('X2: the manifest follows Accept-Language when the address names no language', async () => {
    const names = await Promise.all(
      ['en-US', 'fr-FR', 'zh-TW'].map(
        async (accept) =>
          (await h.app.inject({ method: 'GET', url: '/app/manifest.webmanifest', headers: { 'accept-language': accept } })).json().name as string,
      ),
    );
    expect(new Set(names).size).toBe(3);
  });

  it('K1: every icon of the manifest is served, the PNGs at their size', async () => {
    const manifest = (await h.app.inject({ method: 'GET', url: '/app/manifest.webmanifest' })).json() as {
      icons: { src: string; sizes: string; type: string }[];
    };
    for (const icon of manifest.icons) {
      const response = await h.app.inject({ method: 'GET', url: icon.src });
      expect(response.statusCode, icon.src).toBe(200);
      expect(response.headers['content-type']).toContain(icon.type);
      if (icon.type === 'image/png') {
        const png = response.rawPayload;
        expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
        const size = Number(icon.sizes.split('x')[0]);
        expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([size, size]);
      }
    }
    expect((await h.app.inject({ method: 'GET', url: '/app/icon-64.png' })).statusCode).toBe(404);
  });
});

describe('the service worker (K3, K4, K10)', () => {
  it.each(LANGS)('K10: /app/sw.js (%s) is JavaScript, may control /app, and lists the app shell for offline use', async (lang) => {
    const response = await h.app.inject({ method: 'GET', url: '/app/sw.js', headers: { 'accept-language': lang } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/javascript/);
    expect(response.headers['service-worker-allowed']).toBe('/app');
    expect(response.headers['cache-control']).toBe('no-cache');
    expectAppCsp(response.headers);
    const source = response.body;
    const files = JSON.parse(/self\.SHELL_FILES = (.*);/.exec(source)![1]!) as string[];
    expect(files).toEqual(
      expect.arrayContaining(['/app', '/static/sls.css', '/static/authenticator.css', '/app/js/app.js', '/app/js/protocol.js', '/app/js/api.js']),
    );
    expect(files.some((f) => f.startsWith('/api/'))).toBe(false);
    expect(source).toMatch(/self\.SHELL_VERSION = "[0-9a-f]{16}";/);
    for (const event of ['install', 'activate', 'fetch', 'push', 'notificationclick']) expect(source).toContain(`addEventListener('${event}'`);
    // the worker has no text for people: the push gives title and body in the user's language
    expect(source).toContain('notice.title');
    for (const file of files) expect((await h.app.inject({ method: 'GET', url: file })).statusCode, file).toBe(200);
  });
});

describe("the app's modules (K1)", () => {
  it('K1: /app/js/app.js and every module it imports are served as JavaScript, with relative .js imports only', async () => {
    const seen = new Set<string>();
    const queue = ['/app/js/app.js'];
    while (queue.length) {
      const url = queue.shift()!;
      if (seen.has(url)) continue;
      seen.add(url);
      const response = await h.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      expect(response.headers['content-type'], url).toMatch(/^(text|application)\/javascript/);
      for (const m of response.body.matchAll(/^\s*(?:import|export)\b[^'";]*?from\s+'([^']+)'/gm)) {
        const specifier = m[1]!;
        expect(specifier, `${url} imports ${specifier}`).toMatch(/^\.\/[\w-]+\.js$/);
        queue.push(new URL(specifier, `http://x${url}`).pathname);
      }
    }
    expect([...seen]).toEqual(expect.arrayContaining(['/app/js/app.js', '/app/js/api.js', '/app/js/protocol.js', '/app/js/storage.js', '/app/js/webauthn.js']));
  });

  it('K1: only the compiled modules are served under /app/js/', async () => {
    expect((await h.app.inject({ method: 'GET', url: '/app/js/app.ts' })).statusCode).toBe(404);
    expect((await h.app.inject({ method: 'GET', url: '/app/js/nothing.js' })).statusCode).toBe(404);
  });
});
