/**
 * The mobile authenticator as an installable web app (K1–K14,
 * docs/decisions/0004): the page /app, its manifest, its service worker,
 * its icons, and its ES modules (compiled from src/mobile-app by
 * tsconfig.app.json into dist/mobile-app, served as they are at /app/js/).
 *
 * The page carries every text the script shows, in the page's language
 * (X2): the translations under `authenticator` (and the application names)
 * in a JSON data island, so that the script has no text of its own. The
 * app's scope is /app (the page itself), so that the service worker serves
 * the page when there is no network (K4, K10).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import type { Services } from '../../services.js';
import type { Language } from '../../i18n/i18n.js';
import { messagesOf, type Messages } from '../../i18n/resources.js';
import { SlsError } from '../../errors.js';
import type { PageRenderer } from './render.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The app's compiled modules (npm run build). */
export const APP_JS = join(ROOT, 'dist', 'mobile-app');
const PUBLIC = join(ROOT, 'public');
const SERVICE_WORKER = join(PUBLIC, 'app-sw.js');
const ICON_SVG = join(PUBLIC, 'authenticator-icon.svg');

/** The page's address and the app's scope. */
export const APP_PATH = '/app';
export const ICON_SIZES = [192, 512] as const;

const THEME_COLOR = '#0b4f9c';
const BACKGROUND_COLOR = '#f6f7f9';

/** The files the service worker keeps for offline use: the page, its styles and icon, every module. */
export function shellFiles(): string[] {
  const modules = existsSync(APP_JS)
    ? readdirSync(APP_JS)
        .filter((name) => name.endsWith('.js'))
        .sort()
        .map((name) => `${APP_PATH}/js/${name}`)
    : [];
  return [APP_PATH, '/static/sls.css', '/static/authenticator.css', '/static/authenticator-icon.svg', ...modules];
}

/** The version of the shell: changes whenever one of its files does, and with it the service worker. */
function shellVersion(files: string[], worker: string): string {
  const hash = createHash('sha256').update(worker);
  for (const file of files) {
    hash.update(file);
    const path = file.startsWith(`${APP_PATH}/js/`)
      ? join(APP_JS, file.slice(`${APP_PATH}/js/`.length))
      : file.startsWith('/static/')
        ? join(PUBLIC, file.slice('/static/'.length))
        : null;
    if (path && existsSync(path)) hash.update(readFileSync(path));
  }
  return hash.digest('hex').slice(0, 16);
}

let serviceWorker: string | undefined;

/**
 * The service worker: public/app-sw.js, preceded by the list of the shell's
 * files and its version. Read and hashed once: the browser asks for it at
 * every visit, and the files do not change while the server runs.
 */
function serviceWorkerSource(): string {
  if (serviceWorker === undefined) {
    const worker = readFileSync(SERVICE_WORKER, 'utf8');
    const files = shellFiles();
    serviceWorker = `self.SHELL_VERSION = ${JSON.stringify(shellVersion(files, worker))};\nself.SHELL_FILES = ${JSON.stringify(files)};\n${worker}`;
  }
  return serviceWorker;
}

/** JSON for a <script type="application/json"> data island: nothing in it can close the element. */
function dataIsland(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const islands = new Map<Language, string>();

/** The texts the script shows, in one language: the `authenticator` translations and the application names. */
export function appTexts(language: Language): { authenticator: Messages; apps: Messages } {
  const messages = messagesOf(language);
  return { authenticator: messages.authenticator as Messages, apps: messages.apps as Messages };
}

function textIsland(language: Language): string {
  let island = islands.get(language);
  if (!island) {
    island = dataIsland(appTexts(language));
    islands.set(language, island);
  }
  return island;
}

const icons = new Map<number, Promise<Buffer>>();

/** The SVG icon drawn as a PNG of a size (Chromium's installability wants 192 and 512 px). */
function pngIcon(size: number): Promise<Buffer> {
  let icon = icons.get(size);
  if (!icon) {
    icon = (async () => {
      const image = await loadImage(readFileSync(ICON_SVG));
      const canvas = createCanvas(size, size);
      canvas.getContext('2d').drawImage(image, 0, 0, size, size);
      return canvas.encode('png');
    })();
    icon.catch(() => icons.delete(size));
    icons.set(size, icon);
  }
  return icon;
}

export function appPages(services: Services, pages: PageRenderer): FastifyPluginAsync {
  return async (app) => {
    app.setErrorHandler((error, request, reply) => pages.renderError(request, reply, error));

    // the app's modules: the compiled files only; the service worker keeps them for offline use
    if (existsSync(APP_JS)) {
      await app.register(fastifyStatic, {
        root: APP_JS,
        prefix: `${APP_PATH}/js/`,
        decorateReply: false,
        allowedPath: (path) => path.endsWith('.js'),
        cacheControl: true,
        maxAge: 0,
        setHeaders: (res) => res.setHeader('cache-control', 'no-cache'),
      });
    }

    app.get(APP_PATH, async (request, reply) =>
      pages.render(
        request,
        reply,
        'authenticator',
        {
          textJson: textIsland(request.language),
          // Web Push (K3): the server's VAPID public key, once push is configured
          // K3: the key the app subscribes to Web Push with, when a push provider is configured
          vapidKey: services.vapidPublicKey ?? '',
        },
        { path: APP_PATH },
      ),
    );

    app.get(`${APP_PATH}/`, async (_request, reply) => reply.redirect(APP_PATH, 301));

    app.get(`${APP_PATH}/manifest.webmanifest`, async (request: FastifyRequest, reply: FastifyReply) => {
      const t = request.t;
      const manifest = {
        id: APP_PATH,
        name: t('authenticator.manifest.name'),
        short_name: t('authenticator.manifest.shortName'),
        description: t('authenticator.manifest.description'),
        lang: request.language,
        dir: 'ltr',
        start_url: APP_PATH,
        scope: APP_PATH,
        display: 'standalone',
        orientation: 'portrait',
        background_color: BACKGROUND_COLOR,
        theme_color: THEME_COLOR,
        icons: [
          { src: '/static/authenticator-icon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' },
          ...ICON_SIZES.map((size) => ({ src: `${APP_PATH}/icon-${size}.png`, sizes: `${size}x${size}`, type: 'image/png', purpose: 'any' })),
        ],
      };
      return reply
        .header('cache-control', 'no-cache')
        .header('vary', 'accept-language, cookie')
        .type('application/manifest+json; charset=utf-8')
        .send(JSON.stringify(manifest));
    });

    app.get<{ Params: { size: string } }>(`${APP_PATH}/icon-:size.png`, async (request, reply) => {
      const size = Number(request.params.size);
      if (!(ICON_SIZES as readonly number[]).includes(size)) throw new SlsError('NOT_FOUND');
      return reply
        .header('cache-control', 'public, max-age=86400')
        .type('image/png')
        .send(await pngIcon(size));
    });

    app.get(`${APP_PATH}/sw.js`, async (_request, reply) =>
      reply
        .header('cache-control', 'no-cache')
        // the worker's scope is /app, the page itself, above the script's folder
        .header('service-worker-allowed', APP_PATH)
        .type('text/javascript; charset=utf-8')
        .send(serviceWorkerSource()),
    );
  };
}
