/**
 * The mobile authenticator in real Chromium, with two pages: the login page
 * (one browser context, the computer) and the authenticator app at /app
 * (another context, the phone, with its own IndexedDB and keys). Activation
 * by SMS token, push approval with number matching (the login page goes on
 * by itself), denial, expiry, offline challenge/response, two users in one
 * app, migration to a new phone (the old one then fails), and biometric
 * confirmation through Chromium's virtual WebAuthn authenticator (K12).
 * Activation tokens are read from the development outbox.
 */
import { describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { MINUTE, HOUR, SECOND } from '../../src/clock.js';
import type { User } from '../../src/identity/users.js';
import { chromiumAvailable } from '../support/environment.js';
import { PASSWORD, createUser, type Harness } from '../support/harness.js';
import { facts, navigation, useServerAndBrowser } from '../support/browser.js';
import { harnessInbox, smsUser } from '../support/phone.js';

const PIN = 'k3y42';

describe.skipIf(!chromiumAvailable)('the mobile authenticator in real Chromium: login page and app', () => {
  const suite = useServerAndBrowser();

  async function newContext(): Promise<BrowserContext> {
    return suite.browser.newContext({ baseURL: suite.server.baseUrl });
  }

  /** The app on a phone: a context of its own (its own storage and keys). */
  async function openApp(context?: BrowserContext): Promise<Page> {
    const page = await (context ?? (await newContext())).newPage();
    await page.goto('/app');
    await page.locator('html[data-ready=true]').waitFor();
    return page;
  }

  /** K1: Add user → username and password → the number on record → the SMS token → PIN → done. */
  async function activate(app: Page, user: User, options: { purpose?: 'add-user' | 'migrate'; biometric?: boolean } = {}): Promise<void> {
    const token = await untilTheToken(app, user, options.purpose);
    await app.locator('#act-token').fill(token);
    await app.locator('#act-token-continue').click();
    await app.locator('#act-step-pin').waitFor();
    await app.locator('#act-pin').fill(PIN);
    await app.locator('#act-pin-again').fill(PIN);
    if (options.biometric) await app.locator('#act-biometric').check();
    await app.locator('#act-activate').click();
    await app.locator('#act-done').waitFor();
    await app.locator('#act-finish').click();
    await app.locator(`#users li.user[data-username="${user.username}"]`).waitFor();
  }

  /** K1: the activation's first steps, up to the token screen; the token the SMS brought. */
  async function untilTheToken(app: Page, user: User, purpose: 'add-user' | 'migrate' = 'add-user'): Promise<string> {
    const inbox = harnessInbox(suite.server.h);
    await app.locator(`#${purpose}`).click();
    await app.locator('#act-username').fill(user.username);
    await app.locator('#act-password').fill(PASSWORD);
    await app.locator('#act-continue').click();
    await app.locator('#act-step-phone').waitFor();
    inbox.tick();
    await app.locator('#act-send-token').click();
    await app.locator('#act-step-token').waitFor();
    return inbox.activationToken(user.username);
  }

  /** A user activated in a new app, and a login started for them on another browser (the computer). */
  async function activatedThenLogin(h: Harness) {
    const user = await smsUser(h);
    const app = await openApp();
    await activate(app, user);
    const computer = await newContext();
    return { user, app, computer, ...(await startLogin(computer, user)) };
  }

  /** Username and password on the login page; the 2-digit number it shows (K13). */
  async function startLogin(context: BrowserContext, user: User, app: 'portal' | 'trading' = 'portal'): Promise<{ page: Page; number: string }> {
    const page = await context.newPage();
    await page.goto('/login');
    await page.getByLabel(/User name/).fill(user.username);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.locator(`input[name=app][value=${app}]`).check();
    await navigation(page, () => page.locator('#login-submit').click());
    const number = ((await page.locator('#push-number').textContent()) ?? '').trim();
    expect(number).toMatch(/^[1-9]\d$/);
    return { page, number };
  }

  /** The request as the app shows it; types the number and the PIN. */
  async function answerRequest(app: Page, username: string, number: string, confirm: 'pin' | 'biometric' = 'pin'): Promise<void> {
    await app.locator('#request').waitFor();
    expect((await app.locator('#req-username').textContent())?.trim()).toBe(username);
    await app.locator('#req-number').fill(number);
    if (confirm === 'pin') await app.locator('#req-pin').fill(PIN);
    await app.locator('#req-approve').click();
  }

  it('K1, K3, K13, M3: activated in the app; the login page shows a number, the app shows where the login comes from; typed and confirmed with the PIN, the login goes on by itself', async () => {
    const { h } = suite.server;
    const user = await smsUser(h);
    const app = await openApp();
    expect((await facts(app)).h1).toHaveLength(1);
    await activate(app, user);
    expect((await h.services.devices.listForUser(user.id)).map((d) => `${d.type}:${d.state}`).sort()).toEqual(['mobile:active', 'sms:revoked']);

    const computer = await newContext();
    const { page, number } = await startLogin(computer, user, 'trading');
    await app.locator('#request').waitFor();
    expect(await app.locator('#req-app').textContent()).toMatch(/trading/i);
    expect(await app.locator('#req-ip').textContent()).toMatch(/127\.0\.0\.1|::1/);
    // issue 16: the time of the login says its time zone
    expect(await app.locator('#req-time').textContent()).toMatch(/UTC|GMT|[A-Z]{3,4}\b/);
    // the number is never shown on the phone: it must be read off the login screen
    // (the username and the time have digits of their own: they are left out of the search)
    let shown = (await app.locator('#request').textContent()) ?? '';
    for (const own of ['#req-username', '#req-time']) shown = shown.replace((await app.locator(own).textContent()) ?? '', '');
    expect(shown).not.toMatch(new RegExp(`(^|\\D)${number}(\\D|$)`));
    const proceeded = page.waitForURL('**/account', { timeout: 15_000 });
    await answerRequest(app, user.username, number);
    await proceeded;
    expect((await facts(page)).h1.length).toBe(1);
    await expect.poll(() => app.locator('#req-outcome').textContent()).toBeTruthy();
    await computer.close();
    await app.context().close();
  });

  it('K1, L3 (issue 16 item 3): the app checks the activation token before the PIN: a wrong token is told as such (not "Login failed"), counted, and the PIN screen comes only after the right one', async () => {
    const { h } = suite.server;
    const user = await smsUser(h);
    const app = await openApp();
    const token = await untilTheToken(app, user);
    await app.locator('#act-token').fill(token === '000000' ? '111111' : '000000');
    await app.locator('#act-token-continue').click();
    await expect.poll(async () => (await facts(app)).alert?.text ?? '').toContain('The activation token is not right');
    const refused = await facts(app);
    expect(refused.alert!.text).not.toContain('Login failed');
    expect(refused.alert!.text).toContain('2');
    // still at the token: no PIN was asked
    expect(await app.locator('#act-step-token').isVisible()).toBe(true);
    expect(await app.locator('#act-step-pin').isVisible()).toBe(false);
    expect(refused.focused).toBe('act-token');
    // counted like a wrong answer (L3), and audited
    expect((await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'mobile.activation_failed')).toHaveLength(1);
    await app.locator('#act-token').fill(token);
    await app.locator('#act-token-continue').click();
    await app.locator('#act-step-pin').waitFor();
    expect(await app.locator('#act-notice').textContent()).toContain('The activation token is right');
    await app.locator('#act-pin').fill(PIN);
    await app.locator('#act-pin-again').fill(PIN);
    await app.locator('#act-activate').click();
    await app.locator('#act-done').waitFor();
    expect((await h.services.devices.listForUser(user.id)).map((d) => `${d.type}:${d.state}`).sort()).toEqual(['mobile:active', 'sms:revoked']);
    await app.context().close();
  });

  it('K13: a wrong number is refused in the app; "This wasn\'t me" denies the login and the login page says so', async () => {
    const { h } = suite.server;
    const { user, app, computer, page, number } = await activatedThenLogin(h);
    await app.locator('#request').waitFor();
    await app.locator('#req-number').fill(number === '10' ? '11' : '10');
    await app.locator('#req-pin').fill(PIN);
    await app.locator('#req-approve').click();
    await app.locator('#req-outcome[role=alert]').waitFor();
    expect(page.url()).toContain('/login/');
    await app.locator('#req-deny').click();
    await expect.poll(async () => (await facts(page)).alert?.text ?? '', { timeout: 15_000 }).toContain('denied from your phone');
    expect((await h.services.audit.list({ userId: user.id })).some((e) => e.event === 'login.push_denied')).toBe(true);
    await computer.close();
    await app.context().close();
  });

  it('K13: an unanswered request expires after 2 minutes: the app drops it, the login page starts over', async () => {
    const { h } = suite.server;
    const { app, computer, page } = await activatedThenLogin(h);
    await app.locator('#request').waitFor();
    h.clock.advance(2 * MINUTE);
    await app.locator('#request').waitFor({ state: 'hidden', timeout: 15_000 });
    await expect.poll(async () => (await facts(page)).alert?.code ?? '', { timeout: 15_000 }).toBe('FLOW_EXPIRED');
    await computer.close();
    await app.context().close();
  });

  it('K4, K10: "Click here if you do not receive the notification": the challenge typed into the app with the PIN, offline; the response typed into the login page', async () => {
    const { h } = suite.server;
    const { app, computer, page } = await activatedThenLogin(h);
    await navigation(page, () => page.locator('#push-offline').click());
    const challenge = ((await page.locator('#challenge-code').textContent()) ?? '').trim();
    expect(challenge).toMatch(/^\d{8}$/);
    // the push request is withdrawn from the app; then the phone loses the network:
    // the response is computed on the phone alone
    await app.locator('#request').waitFor({ state: 'hidden', timeout: 15_000 });
    await app.context().setOffline(true);
    await app.locator('#authenticate').click();
    await app.locator('#cr-challenge').fill(challenge);
    await app.locator('#cr-pin').fill(PIN);
    await app.locator('#cr-generate').click();
    const response = ((await app.locator('#cr-response').textContent()) ?? '').trim();
    expect(response).toMatch(/^\d{8}$/);
    await page.locator('#response').fill(response);
    await navigation(page, () => page.locator('#response-submit').click());
    expect(new URL(page.url()).pathname).toBe('/account');
    await computer.close();
    await app.context().close();
  });

  it('K6: two users in one app; the request says which user it is for; offline, the app asks which user', async () => {
    const { h } = suite.server;
    const [first, second] = [await smsUser(h), await smsUser(h)];
    const app = await openApp();
    await activate(app, first);
    await activate(app, second);
    expect(await app.locator('#users li.user').count()).toBe(2);
    const computer = await newContext();
    const { page, number } = await startLogin(computer, second);
    const proceeded = page.waitForURL('**/account', { timeout: 15_000 });
    await answerRequest(app, second.username, number);
    await proceeded;
    await app.locator('#req-done').click();
    await app.locator('#authenticate').click();
    expect(await app.locator('#cr-user-field').isVisible()).toBe(true);
    expect(await app.locator('#cr-user option').allTextContents()).toEqual(expect.arrayContaining([first.username, second.username]));
    await computer.close();
    await app.context().close();
  });

  it('K14: a one-time password from client services appears in the app; the server keeps it until the user has closed it', async () => {
    const { h } = suite.server;
    const user = await smsUser(h);
    const app = await openApp();
    await activate(app, user);
    const staff = await createUser(h.services, { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(staff.id, user.username, { method: 'callback_on_record' });
    expect(await h.services.helpDesk.resetPassword(staff.id, user.username, { verificationId: verification.id })).toEqual({
      temporaryPassword: null,
      deliveredTo: 'app',
    });
    const waiting = () => h.services.store.db.selectFrom('app_messages').select('id').execute();
    await app.locator('#message').waitFor({ timeout: 30_000 });
    expect(((await app.locator('#msg-password').textContent()) ?? '').trim()).toMatch(/^[A-Z0-9]{12}$/);
    // shown but not yet closed: the app is closed and opened again; the password comes again
    await app.reload();
    await app.locator('#message').waitFor({ timeout: 30_000 });
    const password = ((await app.locator('#msg-password').textContent()) ?? '').trim();
    expect(await waiting()).toHaveLength(1);
    await app.locator('#msg-close').click();
    await expect.poll(async () => (await waiting()).length, { timeout: 15_000 }).toBe(0);
    expect(await app.locator('#msg-password').textContent()).toBe('');
    // the password shown is the one that now logs in (A5)
    const login = await h.services.login.start({ username: user.username, password, app: 'portal', ip: null, userAgent: null });
    expect(login.challenge?.type).toBe('push');
    await app.context().close();
  });

  it("K7, K5: migration on the new phone; the old phone's activation stops working at once", async () => {
    const { h } = suite.server;
    const user = await smsUser(h);
    const oldPhone = await openApp();
    await activate(oldPhone, user);
    const newPhone = await openApp();
    await activate(newPhone, user, { purpose: 'migrate' });
    await oldPhone.locator(`#users li.user[data-username="${user.username}"][data-state="revoked"]`).waitFor({ timeout: 30_000 });

    const computer = await newContext();
    const { page, number } = await startLogin(computer, user);
    const proceeded = page.waitForURL('**/account', { timeout: 15_000 });
    await answerRequest(newPhone, user.username, number);
    await proceeded;
    // the old phone never sees the request
    expect(await oldPhone.locator('#request').isVisible()).toBe(false);
    await computer.close();
    await oldPhone.context().close();
    await newPhone.context().close();
  });

  it('K3, K12, D6: biometric confirmation (a platform authenticator with user verification) grants a 30-hour trading session; its signature counter is kept', async () => {
    const { h } = suite.server;
    const user = await smsUser(h);
    const phone = await newContext();
    const app = await phone.newPage();
    // Chromium's virtual authenticator plays the fingerprint reader
    const cdp = await phone.newCDPSession(app);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await app.goto('/app');
    await app.locator('html[data-ready=true]').waitFor();
    await activate(app, user, { biometric: true });
    const device = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'mobile')!;
    expect(device.params.biometric).toBe(true);

    const computer = await newContext();
    const { page, number } = await startLogin(computer, user, 'trading');
    const proceeded = page.waitForURL('**/account', { timeout: 15_000 });
    await answerRequest(app, user.username, number, 'biometric');
    await proceeded;
    const cookie = (await computer.cookies()).find((c) => c.name === '__Host-sls_session')!;
    const session = await h.services.sessions.authenticate(cookie.value);
    expect(session).toMatchObject({ app: 'trading', confirmedBy: 'biometric' });
    expect(session!.expiresAt - h.clock.now()).toBe(30 * HOUR);
    // D6, L4: the approval's signature counter is kept with its acceptance (a cloned phone's older counter is then refused)
    const [credential] = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
    const stored = await h.services.devices.readSecret<{ credential: { counter: number } }>(h.services.store.db, device.id);
    expect(credential!.signCount).toBeGreaterThan(0);
    expect(stored.credential.counter).toBe(credential!.signCount);
    await computer.close();
    await phone.close();
  });

  it('K13: a login abandoned and retried within 2 minutes: the app shows the new login and its number; "Not now" goes back; the old page starts over', async () => {
    const { h } = suite.server;
    const { user, app, computer, page: abandoned } = await activatedThenLogin(h);
    await app.locator('#request').waitFor();
    // the request screen has a way back
    await app.locator('#req-back').click();
    await app.locator('#request').waitFor({ state: 'hidden' });
    h.clock.advance(20 * SECOND);
    const { page: retried, number } = await startLogin(computer, user);
    await app.locator('#request').waitFor();
    const proceeded = retried.waitForURL('**/account', { timeout: 15_000 });
    await answerRequest(app, user.username, number);
    await proceeded;
    // the abandoned page hears that its request was superseded, and starts over
    await expect.poll(async () => (await facts(abandoned)).alert?.code ?? '', { timeout: 15_000 }).toBe('FLOW_EXPIRED');
    expect((await h.services.lockout.status(user.username)).failures).toBe(0);
    await computer.close();
    await app.context().close();
  });

  it('X7, V1, K11: a settings page leads to the step-up; the approval on the phone goes on by itself, back to the page', async () => {
    const { h } = suite.server;
    const { user, app, computer, page, number } = await activatedThenLogin(h);
    const signedIn = page.waitForURL('**/account', { timeout: 15_000 });
    await answerRequest(app, user.username, number);
    await signedIn;
    await navigation(page, () => page.locator('#mobile-link').click());
    expect((await facts(page)).path).toBe('/step-up?next=%2Fsettings%2Fmobile');
    await page.locator('#password').fill(PASSWORD);
    await navigation(page, () => page.locator('#step-up-submit').click());
    const stepUpNumber = ((await page.locator('#push-number').textContent()) ?? '').trim();
    await app.locator('#request').waitFor();
    expect(await app.locator('#req-heading').textContent()).toMatch(/Client Portal task/);
    const back = page.waitForURL('**/settings/mobile', { timeout: 15_000 });
    await answerRequest(app, user.username, stepUpNumber);
    await back;
    expect((await facts(page)).h1).toEqual(['Mobile number']);
    await computer.close();
    await app.context().close();
  });
});
