/**
 * A lost card replaced, in real Chromium (R2, C4–C7): with the temporary
 * passcode the client requests a DSC+ through the portal (address, soft PIN,
 * deposit account, summary, back, confirmation), client services ship it,
 * the client activates it, changes its PIN, and reports it lost.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { chromiumAvailable } from '../support/environment.js';
import { PASSWORD, cardAnswer, createUserWithCard } from '../support/harness.js';
import { facts, navigation, shownChallenge, stepUpOnPage, useServerAndBrowser } from '../support/browser.js';
import { parsePskc } from '../../src/devices/dscplus/pskc.js';
import type { CardFile } from '../../src/devices/devices.js';

describe.skipIf(!chromiumAvailable)('a lost card replaced, in real Chromium', () => {
  const suite = useServerAndBrowser();

  async function logIn(page: Page, username: string, answerWith: (page: Page) => Promise<string>): Promise<void> {
    await page.goto('/login');
    await page.locator('#username').fill(username);
    await page.locator('#password').fill(PASSWORD);
    await navigation(page, () => page.locator('#login-submit').click());
    await page.locator('#response').fill(await answerWith(page));
    await navigation(page, () => page.locator('#response').press('Enter'));
  }

  it('R2/C4/C5/C6/C7: request, summary, back, confirm; shipped; activated; PIN changed; reported lost', async () => {
    const { h } = suite.server;
    const { user } = await createUserWithCard(h.services, '1234', { equityUsd: 3_000_000 });
    const agent = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const keys = parsePskc(readFileSync(new URL('../fixtures/pskc/batch-plain.xml', import.meta.url), 'utf8'));
    await h.services.devices.importStock(keys, 'test', 'batch');
    const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.user.id, user.username, {
      verificationId: verification.id,
      deviceStatus: 'lost',
    });

    const context = await suite.browser.newContext({ baseURL: suite.server.baseUrl });
    const page = await context.newPage();
    await logIn(page, user.username, async () => passcode);
    expect((await facts(page)).path).toBe('/account');

    // C4: the request form (after a step-up with the passcode, X7), its summary, back to change, then submit
    await navigation(page, () => page.locator('#dscplus-request-link').click());
    await stepUpOnPage(page, async () => passcode);
    expect((await facts(page)).path).toBe('/dscplus/request');
    await page.getByLabel('Name').fill('Alice Martin');
    await page.getByLabel('Address', { exact: true }).fill('1 Main Street');
    await page.getByLabel('City').fill('Lyon');
    await page.getByLabel('Postal code').fill('69001');
    await page.getByLabel('Country').selectOption('FR');
    await page.getByLabel('Soft PIN for the new card').fill('2468');
    await navigation(page, () => page.locator('#request-review').click());
    const summary = (await page.locator('#request-summary').innerText()).replace(/\s+/g, ' ');
    expect(summary).toContain('Alice Martin');
    expect(summary).toContain(user.accountNumber);
    expect(summary).toContain('USD 20');
    await navigation(page, () => page.locator('#request-back').click());
    expect(await page.getByLabel('City').inputValue()).toBe('Lyon');
    await page.getByLabel('City').fill('Paris');
    await page.getByLabel('Soft PIN for the new card').fill('2468');
    await navigation(page, () => page.locator('#request-review').click());
    expect(await page.locator('#request-summary').innerText()).toContain('Paris');
    await navigation(page, () => page.locator('#request-submit').click());
    expect(await page.locator('#request-done').innerText()).toMatch(/\d{4}-\d{2}-\d{2}/);

    // C6/C8: client services ship it (R2: requested under the passcode, they confirmed the address with the client); the client activates it with its response
    const requested = (await h.services.devices.listForUser(user.id)).find((d) => d.state === 'requested')!;
    const { card } = await h.services.dscPlusRequests.ship(agent.user.id, requested.id, 'DSC0000001', { addressConfirmed: true });
    const newCard = { ...card, pin: '2468' } as CardFile;
    await page.goto('/account');
    await navigation(page, () => page.locator(`#reactivate-${requested.id}`).click());
    // a GET starts no proof: the challenge comes with the page's button (a POST)
    await navigation(page, () => page.locator('#activate-start').click());
    await page.locator('#response').fill(cardAnswer(newCard, await shownChallenge(page)));
    await navigation(page, () => page.locator('#response').press('Enter'));
    expect((await facts(page)).path).toBe('/account?reactivated=1');

    // C7: the PIN changed through the page: the old PIN proves it, the new one works next time
    await logIn(page, user.username, async (p) => cardAnswer(newCard, await shownChallenge(p)));
    await navigation(page, () => page.locator(`#pin-${requested.id}`).click());
    await stepUpOnPage(page, async (p) => cardAnswer(newCard, await shownChallenge(p)));
    await navigation(page, () => page.locator('#pin-start').click());
    await page.locator('#response').fill(cardAnswer(newCard, await shownChallenge(page)));
    await page.locator('#new-pin').fill('1357');
    await navigation(page, () => page.locator('#pin-submit').click());
    expect((await facts(page)).path).toBe('/account?pinChanged=1');
    await logIn(page, user.username, async (p) => cardAnswer({ ...newCard, pin: '1357' }, await shownChallenge(p)));
    expect((await facts(page)).path).toBe('/account');

    // C5: reported stolen: it stops working, the deposit is kept
    await navigation(page, () => page.locator(`#lost-${requested.id}`).click());
    await stepUpOnPage(page, async (p) => cardAnswer({ ...newCard, pin: '1357' }, await shownChallenge(p)));
    await page.getByLabel('Stolen').check();
    await navigation(page, () => page.locator('#lost-submit').click());
    // L8: the session stood on this very card (its login and its step-up): it ends with it, and the login page says why
    expect((await facts(page)).path).toBe('/login?ended=device');
    expect(await page.locator('body').innerText()).toContain('The device this session was opened with is no longer in use');
    expect((await h.services.devices.get(requested.id)).state).toBe('lost');
    expect((await h.services.dscPlusRequests.hold(requested.id))!.status).toBe('kept');
    await context.close();
  });
});
