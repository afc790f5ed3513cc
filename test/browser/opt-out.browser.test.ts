/**
 * Opting out of the Secure Login System for trading, and back in, in real
 * Chromium (O1, O2, V1): the account's "Secure Login System" page, its box
 * "Secure Login Settings" and the Configure (gear) icon lead through a
 * step-up to the settings, where opting out shows the security warnings
 * (KB1198) and needs "I understand …" ticked and the username typed; the
 * confirmation follows; a trading login then takes the password alone
 * while the portal asks for the card; and the user opts back in exactly as
 * KB2545 walks it: Settings → Secure Login System → Secure Login Settings →
 * Configure → "I want to always use my Secure Login Device when logging
 * in" → Continue → the confirmation → OK.
 *
 * Skipped (not failed) where Chromium is missing; the global setup refuses
 * to skip it under CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { CardFile } from '../../src/devices/devices.js';
import { chromiumAvailable } from '../support/environment.js';
import { PASSWORD, cardAnswer, createUserWithCard } from '../support/harness.js';
import { launchChromium, navigation, shownChallenge, startWebServer, stepUpOnPage, unnamedControls, type WebServer } from '../support/browser.js';

describe.skipIf(!chromiumAvailable)('opting out and back in, in real Chromium (O1, O2)', () => {
  let server: WebServer;
  let browser: Browser;

  beforeAll(async () => {
    server = await startWebServer();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ baseURL: server.baseUrl });
    return { context, page: await context.newPage() };
  }

  /** The password step of the login page, for the portal or trading. */
  async function passwordStep(page: Page, username: string, app: 'portal' | 'trading'): Promise<void> {
    await page.goto('/login');
    await page.getByLabel('User name', { exact: true }).fill(username);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.locator(`input[name=app][value=${app}]`).check();
    await navigation(page, () => page.getByRole('button', { name: 'Log In' }).click());
  }

  async function portalLogin(page: Page, username: string, card: CardFile): Promise<void> {
    await passwordStep(page, username, 'portal');
    await page.locator('#response').fill(cardAnswer(card, await shownChallenge(page)));
    await navigation(page, () => page.locator('#response-submit').click());
    expect(new URL(page.url()).pathname).toBe('/account');
  }

  /** Settings → Secure Login System → Secure Login Settings → Configure, stepping up when asked (V1). */
  async function toConfigure(page: Page, card: CardFile): Promise<void> {
    await page.goto('/account');
    await navigation(page, () => page.getByRole('link', { name: 'Secure Login System' }).click());
    expect(new URL(page.url()).pathname).toBe('/settings/secure-login');
    await expect(page.getByRole('heading', { name: /Secure Login Settings/ }).isVisible()).resolves.toBe(true);
    await navigation(page, () => page.locator('#secure-login-settings').getByRole('link', { name: 'Configure' }).click());
    if (new URL(page.url()).pathname === '/step-up') await stepUpOnPage(page, async (p) => cardAnswer(card, await shownChallenge(p)));
    expect(new URL(page.url()).pathname).toBe('/settings/secure-login/configure');
  }

  it('O1, V1: the warnings and an explicit confirmation before opting out; then trading takes the password alone and the portal the card; O2: back in through the KB2545 path', async () => {
    const { user, card } = await createUserWithCard(server.h.services);
    const { context, page } = await newPage();
    await portalLogin(page, user.username, card);

    // the first visit to the settings goes through the step-up (V1)
    await page.goto('/account');
    await navigation(page, () => page.getByRole('link', { name: 'Secure Login System' }).click());
    expect(await page.locator('#secure-login-state').getAttribute('data-state')).toBe('always');
    await navigation(page, () => page.locator('#secure-login-configure').click());
    expect(new URL(page.url()).pathname).toBe('/step-up');
    await stepUpOnPage(page, async (p) => cardAnswer(card, await shownChallenge(p)));
    expect(new URL(page.url()).pathname).toBe('/settings/secure-login/configure');
    expect(await unnamedControls(page)).toEqual([]);

    // the warnings (KB1198)
    const warnings = page.locator('#opt-out-warnings');
    expect(await warnings.isVisible()).toBe(true);
    const warningText = (await warnings.textContent()) ?? '';
    expect(warningText).toContain('expose themselves to certain risks and are therefore subject to certain restrictions');
    expect(warningText).toContain('Pink Sheet and OTCBB');
    expect(warningText).toContain('USD 50,000 a day and USD 100,000 in 5 business days');
    expect(await page.getByRole('radio', { name: 'I want to always use my Secure Login Device when logging in' }).isChecked()).toBe(true);

    // opting out without ticking "I understand …": refused, nothing changed
    await page.getByRole('radio', { name: /I do not want to use my Secure Login Device/ }).check();
    await page.getByLabel(/To confirm, type your user name/).fill(user.username);
    await navigation(page, () => page.getByRole('button', { name: 'Continue' }).click());
    expect(await page.locator('#form-error').getAttribute('data-code')).toBe('OPT_OUT_NOT_CONFIRMED');
    expect(await server.h.services.optOuts.isOptedOut(user.id)).toBe(false);
    // the choice and the typed name are kept; a wrong name is refused too
    expect(await page.getByRole('radio', { name: /I do not want to use my Secure Login Device/ }).isChecked()).toBe(true);
    await page.getByRole('checkbox', { name: /I understand the risks/ }).check();
    await page.getByLabel(/To confirm, type your user name/).fill('someoneelse');
    await navigation(page, () => page.getByRole('button', { name: 'Continue' }).click());
    expect(((await page.locator('#form-error').textContent()) ?? '').trim()).toContain(`type your user name ${user.username} exactly`);

    await page.getByRole('checkbox', { name: /I understand the risks/ }).check();
    await page.getByLabel(/To confirm, type your user name/).fill(user.username);
    await navigation(page, () => page.getByRole('button', { name: 'Continue' }).click());
    expect(new URL(page.url()).pathname).toBe('/settings/secure-login/confirmation');
    expect(await page.locator('#secure-login-confirmation').textContent()).toContain('Your settings have been updated');
    await navigation(page, () => page.getByRole('link', { name: 'OK' }).click());
    expect(new URL(page.url()).pathname).toBe('/settings/secure-login');
    expect(await page.locator('#secure-login-state').getAttribute('data-state')).toBe('opted_out');
    expect(await page.locator('#secure-login-restrictions').textContent()).toContain('Pink Sheet and OTCBB');

    // O1: trading with the password alone, in another browser; the portal still asks for the card
    const other = await newPage();
    await passwordStep(other.page, user.username, 'trading');
    expect(new URL(other.page.url()).pathname).toBe('/account');
    expect(await other.page.locator('#trading-only').isVisible()).toBe(true);
    expect(await other.page.locator('#session-app').textContent()).toContain('Trading');
    await other.context.clearCookies();
    await passwordStep(other.page, user.username, 'portal');
    expect(new URL(other.page.url()).pathname).toMatch(/^\/login\/flw_/);
    expect(await shownChallenge(other.page)).toMatch(/^\d{6}$/);

    // O2: back in, as KB2545 walks it
    await toConfigure(page, card);
    await page.getByRole('radio', { name: 'I want to always use my Secure Login Device when logging in' }).check();
    await navigation(page, () => page.getByRole('button', { name: 'Continue' }).click());
    expect(await page.locator('#secure-login-confirmation').getAttribute('data-result')).toBe('opted_in');
    expect(await page.locator('#secure-login-confirmation').textContent()).toContain('Your settings have been updated');
    await navigation(page, () => page.getByRole('link', { name: 'OK' }).click());
    expect(await page.locator('#secure-login-state').getAttribute('data-state')).toBe('always');

    // trading asks for the card again
    await other.context.clearCookies();
    await passwordStep(other.page, user.username, 'trading');
    expect(new URL(other.page.url()).pathname).toMatch(/^\/login\/flw_/);
    expect(await shownChallenge(other.page)).toMatch(/^\d{6}$/);
    await other.context.close();
    await context.close();
  });
});
