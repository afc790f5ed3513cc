/**
 * SMS and voice in real Chromium (M1, M2, M4, M5, M7): a client verifies a
 * mobile number in the portal settings, a new applicant confirms the number
 * on record at the first login, and an SMS login falls back to a voice call
 * whose audio the development outbox page plays. Codes are read from the
 * outbox page, as a developer would.
 */
import { describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { MINUTE } from '../../src/clock.js';
import { chromiumAvailable, espeakAvailable } from '../support/environment.js';
import { PASSWORD, cardAnswer, createUser, createUserWithCard } from '../support/harness.js';
import { facts, navigation, shownChallenge, stepUpOnPage, useServerAndBrowser } from '../support/browser.js';

describe.skipIf(!chromiumAvailable)('SMS and voice, in real Chromium', () => {
  const suite = useServerAndBrowser();

  async function logIn(page: Page, username: string, app: 'portal' | 'trading' = 'portal'): Promise<void> {
    await page.goto('/login');
    await page.getByLabel(/User name/).fill(username);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.locator(`input[name=app][value=${app}]`).check();
    await navigation(page, () => page.locator('#login-submit').click());
  }

  /** The newest message of a kind to a number, as the development outbox page shows it. */
  async function fromOutbox(context: BrowserContext, to: string, channel: 'sms' | 'voice'): Promise<{ code: string; id: string; hasAudio: boolean }> {
    const outbox = await context.newPage();
    await outbox.setViewportSize({ width: 1000, height: 800 });
    await outbox.goto('/dev/outbox');
    const row = outbox.locator(`tr.message[data-to="${to}"][data-channel="${channel}"]`).first();
    // issue 16: at 1000 px the message column is readable, not one word wide
    expect((await row.locator('td.text').boundingBox())!.width).toBeGreaterThan(300);
    const body = (await row.locator('.body').textContent()) ?? '';
    const id = ((await row.getAttribute('id')) ?? '').replace('message-', '');
    const hasAudio = (await row.locator('audio').count()) === 1;
    await outbox.close();
    const code = /(\d{6})/.exec(body)?.[1];
    expect(code, body).toBeDefined();
    return { code: code!, id, hasAudio };
  }

  it('M1/M6: settings → mobile number → VERIFY → the confirm code → "SMS Verified" with a check mark', async () => {
    const { h } = suite.server;
    const { user, card } = await createUserWithCard(h.services);
    const context = await suite.browser.newContext({ baseURL: suite.server.baseUrl });
    const page = await context.newPage();
    await logIn(page, user.username);
    await page.locator('#response').fill(cardAnswer(card, await shownChallenge(page)));
    await navigation(page, () => page.locator('#response').press('Enter'));
    // X7, V1: the settings page leads to the step-up (password, then the card) and back
    await navigation(page, () => page.locator('#mobile-link').click());
    expect((await facts(page)).h1).toEqual(['Verify your identity']);
    await stepUpOnPage(page, async (p) => cardAnswer(card, await shownChallenge(p)));
    expect((await facts(page)).path).toBe('/settings/mobile');
    expect((await facts(page)).h1, (await page.locator('main').textContent()) ?? '').toEqual(['Mobile number']);

    // M6: the trunk prefix is refused with the reason; the country is chosen separately
    await page.locator('#country').selectOption('FR');
    await page.locator('#number').fill('0698765401');
    await navigation(page, () => page.locator('#add-submit').click());
    expect((await facts(page)).alert?.text).toContain('Enter the number without its leading 0');
    expect(await page.locator('#number').inputValue()).toBe('0698765401');
    await page.locator('#number').fill('698765401');
    await navigation(page, () => page.locator('#add-submit').click());
    expect(await page.locator('#notice-added').isVisible()).toBe(true);
    const [phone] = await h.services.phones.list(user.id);
    expect(phone!.e164).toBe('+33698765401');

    // M1: VERIFY, and the page says when a new SMS may be asked for
    await navigation(page, () => page.locator(`#verify-${phone!.id}`).click());
    expect(await page.locator('#code-sent').textContent()).toContain('+33 •••• ••01');
    expect(await page.locator(`#wait-${phone!.id}`).textContent()).toContain('at most one every 2 minutes');
    await navigation(page, () => page.locator(`#verify-${phone!.id}`).click());
    expect((await facts(page)).alert?.text).toMatch(/A new code can be requested only after/);

    const { code } = await fromOutbox(context, '+33698765401', 'sms');
    await page.locator(`#code-${phone!.id}`).fill(code);
    await navigation(page, () => page.locator(`#confirm-submit-${phone!.id}`).click());
    expect(await page.locator('#notice-verified').textContent()).toContain('SMS Verified');
    expect(await page.locator(`#verified-${phone!.id}`).textContent()).toBe('Verified');
    const mark = await page.evaluate<string>(`getComputedStyle(document.querySelector('#phone-${phone!.id} .check'), '::before').content`);
    expect(mark).toBe('"✓"');
    // M2: this user has a DSC+, so SMS is not enrolled
    expect(await page.locator('#notice-enrolled').count()).toBe(0);
    await context.close();
  });

  it('M2/M4/M5/M7: a new applicant confirms the number at the first login; later "Didn\'t receive a security code?" → Voice, heard in the outbox', async () => {
    const { h } = suite.server;
    const user = await createUser(h.services);
    await h.services.phones.add(user.id, { country: 'HK', number: '61234501' }, 'signup', null);
    const context = await suite.browser.newContext({ baseURL: suite.server.baseUrl });
    const page = await context.newPage();

    // M2: the first login confirms the number on record
    await logIn(page, user.username);
    expect(await page.locator('#confirm-number').isVisible()).toBe(true);
    expect(await page.locator('#code-delivery').textContent()).toContain('+852 •••• ••01');
    expect(await page.locator('label[for=response]').textContent()).toBe('Security Code');
    await page.locator('#response').fill((await fromOutbox(context, '+85261234501', 'sms')).code);
    await navigation(page, () => page.locator('#response').press('Enter'));
    expect((await facts(page)).path).toBe('/account');
    expect(await page.locator('table.devices').textContent()).toContain('SMS');
    await navigation(page, () => page.locator('#logout').click());

    // M4: the next login sends a code by SMS; M5: the user asks for a call instead
    h.clock.advance(MINUTE);
    await logIn(page, user.username, 'portal');
    expect(await page.locator('#confirm-number').count()).toBe(0);
    const smsCode = (await fromOutbox(context, '+85261234501', 'sms')).code;
    expect(await page.locator('#resend-toggle').textContent()).toBe("Didn't receive a security code?");
    await page.locator('#resend-toggle').click();
    await page.locator('#channel-voice').check();
    await navigation(page, () => page.locator('#resend-submit').click());
    // 30 seconds have not passed: the page says when
    expect((await facts(page)).alert?.text).toMatch(/A new code can be requested only after/);
    h.clock.advance(30_000);
    await page.locator('#resend-toggle').click();
    await page.locator('#channel-voice').check();
    await navigation(page, () => page.locator('#resend-submit').click());
    expect(await page.locator('#code-delivery').textContent()).toContain('an automated call will read your security code');

    const call = await fromOutbox(context, '+85261234501', 'voice');
    expect(call.hasAudio).toBe(espeakAvailable);
    if (espeakAvailable) {
      const audio = await page.request.get(`/dev/outbox/${call.id}/audio`);
      expect(audio.headers()['content-type']).toBe('audio/wav');
      expect((await audio.body()).subarray(0, 4).toString('ascii')).toBe('RIFF');
    }
    // the SMS code was replaced by the spoken one
    if (smsCode !== call.code) {
      await page.locator('#response').fill(smsCode);
      await navigation(page, () => page.locator('#response').press('Enter'));
      expect((await facts(page)).alert?.text).toContain('Login failed');
    }
    await page.locator('#response').fill(call.code);
    await navigation(page, () => page.locator('#response').press('Enter'));
    expect((await facts(page)).path).toBe('/account');
    await context.close();
  });

  it('M5: the trading login offers "Request new Security Code"', async () => {
    const { h } = suite.server;
    const user = await createUser(h.services);
    await h.services.phones.add(user.id, { country: 'HK', number: '61234502' }, 'signup', null);
    const context = await suite.browser.newContext({ baseURL: suite.server.baseUrl });
    const page = await context.newPage();
    await logIn(page, user.username, 'trading');
    expect(await page.locator('#resend-toggle').textContent()).toBe('Request new Security Code');
    await context.close();
  });
});
