/**
 * The client journey when the card is at home, in real Chromium (R1, T3, S1–S3,
 * D4): log in with the temporary passcode, print and save the online security
 * card, activate it with two index numbers, log in with it, and reactivate
 * the DSC+ when it is back.
 */
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import type { Page } from 'playwright-core';
import { DAY } from '../../src/clock.js';
import { chromiumAvailable } from '../support/environment.js';
import { PASSWORD, cardAnswer, createUserWithCard } from '../support/harness.js';
import { facts, navigation, shownChallenge, useServerAndBrowser } from '../support/browser.js';

describe.skipIf(!chromiumAvailable)('the card left at home, in real Chromium', () => {
  const suite = useServerAndBrowser();

  async function logIn(page: Page, username: string, app: 'portal' | 'trading'): Promise<void> {
    await page.goto('/login');
    await page.getByLabel(/User name/).fill(username);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.locator(`input[name=app][value=${app}]`).check();
    await navigation(page, () => page.locator('#login-submit').click());
  }

  async function answerWith(page: Page, value: string): Promise<void> {
    await page.locator('#response').fill(value);
    await navigation(page, () => page.locator('#response').press('Enter'));
  }

  /** S1: the codes under the two index numbers shown, one after the other. */
  async function answerIndexes(page: Page, codes: string[]): Promise<void> {
    const [a, b] = ((await page.locator('#index-numbers').textContent()) ?? '').split('·').map((s) => Number(s.trim()));
    await answerWith(page, codes[a! - 1]! + codes[b! - 1]!);
  }

  it('R1/T3/S2/S3/S1/D4: temporary passcode → online card printed, saved, activated → login with it → the DSC+ reactivated', async () => {
    const { h } = suite.server;
    const { user, card } = await createUserWithCard(h.services);
    const agent = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'callback_on_record' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.user.id, user.username, { verificationId: verification.id });

    const context = await suite.browser.newContext({ baseURL: suite.server.baseUrl, acceptDownloads: true });
    const page = await context.newPage();

    // T1/T3: the passcode in place of the card's code
    await logIn(page, user.username, 'portal');
    expect(await page.locator('label[for=response]').textContent()).toBe('Temporary passcode');
    await answerWith(page, passcode);
    expect((await facts(page)).path).toBe('/account');
    await navigation(page, () => page.locator('#online-card-link').click());
    // S2: the card is made by the user's click (a POST), never by a GET
    await navigation(page, () => page.locator('#make-card').click());

    // S2: the card, printed as a PDF and saved as a PNG
    const codes = await page.locator('#code-card .code').allTextContents();
    expect(codes).toHaveLength(120);
    const [pdf] = await Promise.all([page.waitForEvent('download'), page.locator('#print-pdf').click()]);
    expect((await readFile((await pdf.path())!)).subarray(0, 5).toString()).toBe('%PDF-');
    const [png] = await Promise.all([page.waitForEvent('download'), page.locator('#save-png').click()]);
    expect((await readFile((await png.path())!)).subarray(1, 4).toString()).toBe('PNG');

    // S2: confirm it printed, then the two index numbers
    await navigation(page, () => page.locator('#confirm-printed').click());
    await answerIndexes(page, codes);
    expect(await page.locator('#card-active').textContent()).toContain(new Date(h.clock.now() + 21 * DAY).getUTCFullYear().toString());

    // S1/S3: three days later the passcode no longer opens trading; the card does
    h.clock.advance(3 * DAY);
    await logIn(page, user.username, 'trading');
    await answerIndexes(page, codes);
    expect((await facts(page)).path).toBe('/account');

    // D4: back with the card, the client reactivates it
    await logIn(page, user.username, 'portal');
    await answerIndexes(page, codes);
    const [dsc] = await h.services.devices.listForUser(user.id);
    await navigation(page, () => page.locator(`#reactivate-${dsc!.id}`).click());
    // a GET starts no proof: the challenge comes with the page's button (a POST)
    await navigation(page, () => page.locator('#activate-start').click());
    await answerWith(page, cardAnswer(card, await shownChallenge(page)));
    expect((await facts(page)).path).toBe('/account?reactivated=1');
    expect(await page.locator('#notice-reactivated').isVisible()).toBe(true);
    const states = (await h.services.devices.listForUser(user.id)).map((x) => `${x.type}:${x.state}`);
    expect(states).toEqual(expect.arrayContaining(['dscplus:active', 'temp_passcode:revoked', 'online_card:revoked']));
    await context.close();
  });
});
