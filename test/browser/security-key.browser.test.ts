/**
 * FIDO2 security keys and passkeys in real Chromium, with its virtual
 * authenticator over CDP (CTAP2, USB): the settings page leads to a step-up
 * (X7), the key is registered there (navigator.credentials.create), then a
 * login switches to it and the browser answers navigator.credentials.get
 * (L2); the next step-up is verified with the key through the same prompt
 * (V1). With resident keys and without, with user verification and without
 * (docs/decisions/0014-security-keys.md).
 *
 * Skipped (not failed) where Chromium is missing; the global setup refuses
 * to skip it under CI.
 */
import { freePort } from '../support/delivery.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable } from '../support/environment.js';
import { PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from '../support/harness.js';
import { launchChromium, navigation, shownChallenge, stepUpOnPage } from '../support/browser.js';
import { verifiedNumber } from '../support/phone.js';

describe.skipIf(!chromiumAvailable)('D6: security keys in real Chromium (virtual authenticator)', () => {
  let h: Harness;
  let browser: Browser;
  let baseUrl: string;

  beforeAll(async () => {
    const port = await freePort();
    baseUrl = `http://localhost:${port}`;
    h = await startHarness('sqlite', { publicUrl: baseUrl });
    await h.app.listen({ port, host: '127.0.0.1' });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  async function passwordStep(page: Page, username: string): Promise<void> {
    await page.goto('/login');
    await page.getByLabel('User name', { exact: true }).fill(username);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await navigation(page, () => page.getByRole('button', { name: 'Log In' }).click());
  }

  /** Signed in with the card, stepped up (X7) and on the settings page, with a virtual key of these capabilities. */
  async function onSettingsPage(options: { residentKey: boolean; userVerification: boolean }) {
    const context = await browser.newContext({ baseURL: baseUrl });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'usb',
        hasResidentKey: options.residentKey,
        hasUserVerification: options.userVerification,
        isUserVerified: options.userVerification,
        automaticPresenceSimulation: true,
      },
    });
    const { user, card } = await createUserWithCard(h.services);
    await passwordStep(page, user.username);
    await page.locator('#response').fill(cardAnswer(card, await shownChallenge(page)));
    await navigation(page, () => page.locator('#response-submit').click());
    await navigation(page, () => page.locator('#security-keys-link').click());
    expect(new URL(page.url()).pathname).toBe('/step-up');
    await stepUpOnPage(page, async (p) => cardAnswer(card, await shownChallenge(p)));
    expect(new URL(page.url()).pathname).toBe('/settings/security-keys');
    return { context, page, cdp, authenticatorId, user, card };
  }

  it('a key that can keep resident credentials but cannot verify the user: Chromium will not store the passkey without a PIN; the page says so, nothing is registered', async () => {
    const { context, page, user } = await onSettingsPage({ residentKey: true, userVerification: false });
    await page.locator('#security-key-name').fill('Blue key');
    await page.locator('#security-key-submit').click();
    const status = page.locator('#security-key-status[role=alert]');
    await status.waitFor();
    expect(await status.getAttribute('data-error')).toBe('NotAllowedError');
    expect((await status.textContent())?.trim()).toBe('The key was not registered (cancelled or timed out). Try again.');
    expect(new URL(page.url()).pathname).toBe('/settings/security-keys');
    expect(await h.services.securityKeys.list(user.id)).toEqual([]);
    await context.close();
  });

  it.each([
    { residentKey: true, userVerification: true },
    { residentKey: false, userVerification: true },
    { residentKey: false, userVerification: false },
  ])(
    'X7/L2/V1: registered on the settings page after a step-up, then a login and a step-up with the key (resident key $residentKey, user verification $userVerification)',
    async ({ residentKey, userVerification }) => {
      const { context, page, cdp, authenticatorId, user } = await onSettingsPage({ residentKey, userVerification });
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(message.text());
      });
      await expect(page.locator('#no-keys').count()).resolves.toBe(1);

      // the browser creates the credential on the virtual key
      await page.locator('#security-key-name').fill('Blue key');
      await navigation(page, () => page.locator('#security-key-submit').click()).catch(async (e) => {
        throw new Error(`${String(e)} status: ${await page.locator('#security-key-status').getAttribute('data-error')} ${problems.join(';')}`);
      });
      expect(await page.locator('#notice-added').count()).toBe(1);
      expect(((await page.locator('#keys .key-name').allTextContents()) ?? []).map((t) => t.trim())).toEqual(['Blue key']);
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      expect(credentials).toHaveLength(1);
      expect(credentials[0]!.isResidentCredential).toBe(residentKey);
      const [key] = await h.services.securityKeys.list(user.id);
      expect(key!.params).toMatchObject({ credentialId: Buffer.from(credentials[0]!.credentialId, 'base64').toString('base64url'), transports: ['usb'] });

      // log out; a new login offers the card (used last), the user switches to the key
      await page.goto('/account');
      await navigation(page, () => page.locator('#logout').click());
      await passwordStep(page, user.username);
      await page.locator('#device').selectOption(key!.id);
      await navigation(page, () => page.locator('#device-submit').click());
      expect(await page.locator('#webauthn-intro').count(), `${page.url()} ${await page.locator('main').innerText()}`).toBe(1);
      await navigation(page, () => page.locator('#webauthn-start').click());
      expect(new URL(page.url()).pathname).toBe('/account');
      const succeeded = (await h.services.audit.list({ userId: user.id })).find(
        (e) => e.event === 'login.succeeded' && (e.data as { deviceId?: string }).deviceId === key!.id,
      );
      expect(succeeded).toBeDefined();

      // V1: the step-up now offers the key, through the same prompt
      await navigation(page, () => page.locator('#security-keys-link').click());
      expect(new URL(page.url()).pathname).toBe('/step-up');
      await page.locator('#password').fill(PASSWORD);
      await navigation(page, () => page.locator('#step-up-submit').click());
      await navigation(page, () => page.locator('#webauthn-start').click());
      expect(new URL(page.url()).pathname).toBe('/settings/security-keys');
      expect((await h.services.audit.list({ userId: user.id })).filter((e) => e.event === 'stepup.verified')).toHaveLength(2);

      // the key's counter moved on with each accepted assertion, or stays 0 for a key without one
      const { credentials: after } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      expect(after[0]!.signCount).toBeGreaterThanOrEqual(2);
      expect(problems).toEqual([]);
      await context.close();
    },
  );
  it('K7, X7, D6: the authenticator app is activated with the key (navigator.credentials.get in the app), never with an SMS token to the verified number', async () => {
    const { context, page, user } = await onSettingsPage({ residentKey: false, userVerification: true });
    await page.locator('#security-key-name').fill('Blue key');
    await navigation(page, () => page.locator('#security-key-submit').click());
    const [key] = await h.services.securityKeys.list(user.id);
    // the card is stolen; a number is verified on record: the key alone protects
    const agent = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user;
    const dsc = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus')!;
    await h.services.dscPlusRequests.reportLost({ staffUserId: agent.id }, dsc.id, 'stolen');
    await verifiedNumber(h, user.id);

    // the app, in the same page (the virtual key is the page's): Add user → password → the key, touched → PIN
    const app = page;
    await app.goto('/app');
    await app.locator('html[data-ready=true]').waitFor();
    await app.locator('#add-user').click();
    await app.locator('#act-username').fill(user.username);
    await app.locator('#act-password').fill(PASSWORD);
    await app.locator('#act-continue').click();
    await app.locator('#act-step-token').waitFor();
    expect(await app.locator('#act-step-phone').isVisible()).toBe(false);
    expect(await app.locator('#act-token').isVisible()).toBe(false);
    await app.locator('#act-token-continue').click();
    await app.locator('#act-step-pin').waitFor();
    await app.locator('#act-pin').fill('k3y42');
    await app.locator('#act-pin-again').fill('k3y42');
    await app.locator('#act-activate').click();
    await app.locator('#act-done').waitFor();
    const devices = (await h.services.devices.listForUser(user.id)).map((d) => `${d.type}:${d.state}`).sort();
    expect(devices).toEqual(['dscplus:lost', 'mobile:active', 'security_key:active']);
    const proven = (await h.services.audit.list({ userId: user.id })).find((e) => e.event === 'mobile.token_proven');
    expect(proven?.data).toMatchObject({ proof: 'device' });
    expect(key?.state).toBe('active');
    await context.close();
  });
});
