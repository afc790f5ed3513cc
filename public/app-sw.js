/*
 * The mobile authenticator's service worker (K3, K4, K10), served at
 * /app/sw.js with the scope /app (the page itself).
 *
 * - Keeps the app shell (the page, its styles, its modules) so that the
 *   offline challenge/response works with no network. Network first: a
 *   fresh copy whenever the server answers, the kept one when it does not.
 *   Nothing under /api/ is ever kept.
 * - Shows push notifications (a PushNotice, src/push/provider.ts: title,
 *   body, one notification per request) and opens the app when one is
 *   tapped.
 *
 * The server puts the list of the shell's files and their version before
 * this text (SHELL_FILES, SHELL_VERSION); a change of any of them changes
 * this worker, which then keeps the new files.
 */
/* eslint-env serviceworker */

const VERSION = self.SHELL_VERSION || 'dev';
const SHELL = self.SHELL_FILES || ['/app', '/static/sls.css', '/static/authenticator.css', '/app/js/app.js'];
const PREFIX = 'sls-app-';
const CACHE = PREFIX + VERSION;
const PAGE = '/app';

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      // one file that fails does not stop the others: it is kept the next time it loads
      .then((cache) => Promise.allSettled(SHELL.map((url) => cache.add(new Request(url, { cache: 'no-cache', credentials: 'same-origin' })))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key.startsWith(PREFIX) && key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

/** Whether a request belongs to the shell (kept for offline use). */
function inShell(url) {
  if (url.origin !== self.location.origin) return false;
  if (url.pathname.startsWith('/api/')) return false;
  return url.pathname === PAGE || url.pathname.startsWith(`${PAGE}/js/`) || SHELL.includes(url.pathname);
}

/** The page is kept once, whatever its query (?lang=…): the last one loaded. */
function cacheKey(url) {
  return url.pathname === PAGE ? PAGE : url.pathname;
}

/**
 * The network first; the kept copy when the network fails or the server
 * answers with an error (a proxy's 502 during a deploy, say): the offline
 * challenge/response must work exactly then (K10).
 */
async function networkFirst(request, url) {
  const cache = await caches.open(CACHE);
  let response;
  try {
    response = await fetch(request);
  } catch (error) {
    const kept = await cache.match(cacheKey(url));
    if (kept) return kept;
    throw error;
  }
  if (response.ok && response.type === 'basic') {
    await cache.put(cacheKey(url), response.clone());
    return response;
  }
  return (await cache.match(cacheKey(url))) ?? response;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (!inShell(url)) return; // the network as usual, /api/ included
  event.respondWith(networkFirst(request, url));
});

// ---------------------------------------------------------------------------
// Push (K3): the payload says which request waits; the app fetches the rest.

self.addEventListener('push', (event) => {
  let notice = {};
  try {
    notice = event.data ? event.data.json() : {};
  } catch {
    notice = {};
  }
  const title = typeof notice.title === 'string' ? notice.title : '';
  const options = {
    body: typeof notice.body === 'string' ? notice.body : '',
    icon: '/app/icon-192.png',
    badge: '/app/icon-192.png',
    data: { requestId: notice.requestId, username: notice.username, expiresAt: notice.expiresAt },
    requireInteraction: true,
  };
  if (typeof notice.requestId === 'string' && notice.requestId) {
    options.tag = notice.requestId;
    options.renotify = true;
  }
  event.waitUntil(
    Promise.all([
      self.registration.showNotification(title, options),
      // an open app polls at once
      self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
        for (const client of windows) client.postMessage({ type: 'push', requestId: notice.requestId });
      }),
    ]),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
      const open = windows.find((client) => new URL(client.url).pathname === PAGE);
      if (open) return open.focus();
      return self.clients.openWindow(PAGE);
    }),
  );
});
