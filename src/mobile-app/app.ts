/**
 * The mobile authenticator (IB Key, K1–K14) as an installable web app: the
 * page /app loads this module. It keeps the users activated on this phone
 * (storage.ts), the live connection that brings push requests and
 * temporary passwords (connection.ts, requests.ts), the activation wizard
 * (activation.ts) and the offline challenge/response (offline.ts), and it
 * registers the service worker that keeps the app available offline and
 * shows push notifications (public/app-sw.js).
 *
 * Every text comes from the page (dom.ts), in its language (X2).
 */
import { AuthenticatorApi } from './api.js';
import { fromBase64Url } from './protocol.js';
import { deleteEnrolment, listEnrolments, markRevoked, type Enrolment } from './storage.js';
import { LiveConnection, type ConnectionState } from './connection.js';
import { Messages, PushRequests } from './requests.js';
import { ActivationWizard } from './activation.js';
import { ChallengeResponse } from './offline.js';
import { byId, language, loadTexts, say, t } from './dom.js';
import { showMain } from './screens.js';

let enrolments: Enrolment[] = [];

function active(): Enrolment[] {
  return enrolments.filter((e) => !e.revoked);
}

function notice(message: string, kind: 'status' | 'alert' = 'status'): void {
  say(byId('app-notice'), message, kind);
}

function showConnection(state: ConnectionState): void {
  const line = byId('connection');
  line.dataset.state = state;
  line.textContent = t(`authenticator.connection.${state}`);
}

/** Home: the users of this app and their state (K6); revoked ones say so and can be removed. */
function renderHome(): void {
  const list = byId('users');
  list.replaceChildren(
    ...enrolments.map((enrolment) => {
      const item = document.createElement('li');
      item.className = 'user';
      item.dataset.username = enrolment.username;
      item.dataset.state = enrolment.revoked ? 'revoked' : 'active';
      const name = document.createElement('span');
      name.className = 'username';
      name.textContent = enrolment.username;
      const state = document.createElement('span');
      state.className = 'state';
      state.textContent = t(
        enrolment.revoked ? 'authenticator.home.state.revoked' : enrolment.biometric ? 'authenticator.home.state.biometric' : 'authenticator.home.state.active',
      );
      item.append(name, state);
      if (enrolment.revoked) {
        const remove = document.createElement('button');
        remove.type = 'button';
        remove.className = 'secondary remove';
        remove.textContent = t('authenticator.home.remove');
        remove.setAttribute('aria-label', t('authenticator.home.removeLabel', { username: enrolment.username }));
        remove.addEventListener('click', () => void removeUser(enrolment.username));
        item.append(remove);
      }
      return item;
    }),
  );
  byId('no-users').hidden = enrolments.length > 0;
  byId('add-user').textContent = t(enrolments.length > 0 ? 'authenticator.home.addUser' : 'authenticator.home.activateFirst');
  byId('authenticate').hidden = active().length === 0;
}

async function removeUser(username: string): Promise<void> {
  try {
    await deleteEnrolment(username);
  } catch {
    notice(t('authenticator.errors.storage'), 'alert');
  }
  await refresh();
  byId('add-user').focus();
}

let connection: LiveConnection;

/** Reloads the activations: the home screen shows them, the live connection polls for them. */
async function refresh(): Promise<void> {
  try {
    enrolments = await listEnrolments();
  } catch {
    notice(t('authenticator.errors.storage'), 'alert');
  }
  renderHome();
  connection.setDevices(active().map((e) => ({ deviceId: e.deviceId, token: e.appToken })));
}

/**
 * Web Push (K3): when the page names the server's VAPID key, the app
 * subscribes with the phone's push service and tells the server where to
 * wake it, for every user active here. The app works without.
 */
async function subscribeToPush(api: AuthenticatorApi, registration: ServiceWorkerRegistration, ask: boolean): Promise<void> {
  const key = byId('authenticator').dataset.vapidKey ?? '';
  if (!key || !('PushManager' in window) || !('Notification' in window)) return;
  try {
    if (Notification.permission === 'default' && ask) await Notification.requestPermission();
    if (Notification.permission !== 'granted') return;
    const subscription =
      (await registration.pushManager.getSubscription()) ??
      (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: fromBase64Url(key) }));
    const json = subscription.toJSON();
    if (!json.endpoint || !json.keys?.p256dh || !json.keys.auth) return;
    const where = { endpoint: json.endpoint, keys: { p256dh: json.keys.p256dh, auth: json.keys.auth } };
    await Promise.allSettled(active().map((e) => api.subscribe({ deviceId: e.deviceId, token: e.appToken }, where)));
  } catch {
    // no push: the live connection still brings requests while the app is open
  }
}

async function registerServiceWorker(): Promise<ServiceWorkerRegistration | null> {
  if (!('serviceWorker' in navigator)) return null;
  try {
    // scope /app (not /app/): the page itself is /app
    const registration = await navigator.serviceWorker.register('/app/sw.js', { scope: '/app', type: 'classic' });
    navigator.serviceWorker.addEventListener('message', (event: MessageEvent<unknown>) => {
      if ((event.data as { type?: string } | null)?.type === 'push') connection.kick();
    });
    return registration;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  loadTexts();
  if (!('indexedDB' in window) || !globalThis.crypto?.subtle) {
    notice(t('authenticator.errors.unsupported'), 'alert');
    return;
  }
  const api = new AuthenticatorApi('', language());
  connection = new LiveConnection(api, {
    state: showConnection,
    result: async (result) => {
      let fresh = false;
      if (await markRevoked(result.revoked).catch(() => false)) {
        fresh = true;
        await refresh();
      }
      fresh = requests.update(result.requests) || fresh;
      fresh = (await messages.receive(result.messages)) || fresh;
      return fresh;
    },
    pending: () => requests.pending(),
  });
  const requests = new PushRequests({ api, enrolments: () => enrolments, kick: () => connection.kick(), notice });
  const messages = new Messages({ api, enrolments: () => enrolments });
  const home = (): void => {
    showMain('home');
  };
  const wizard = new ActivationWizard({ api, activated: refresh, finished: home });
  const offline = new ChallengeResponse({ enrolments: () => enrolments, finished: home });

  const serviceWorker = registerServiceWorker();
  void serviceWorker.then((registration) => registration && subscribeToPush(api, registration, false));

  const open = (purpose: 'activate' | 'migrate' | 'recover') => () => {
    notice('');
    wizard.start(purpose);
  };
  byId('add-user').addEventListener('click', open('activate'));
  byId('migrate').addEventListener('click', open('migrate'));
  byId('recover').addEventListener('click', open('recover'));
  byId('authenticate').addEventListener('click', () => {
    notice('');
    offline.open();
  });
  // after an activation (a click: the browser may ask for notifications then)
  byId('act-finish').addEventListener('click', () => {
    void serviceWorker.then((registration) => registration && subscribeToPush(api, registration, true));
  });
  window.addEventListener('online', () => connection.kick());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') connection.kick();
  });

  await refresh();
  document.documentElement.dataset.ready = 'true';
}

void main();
