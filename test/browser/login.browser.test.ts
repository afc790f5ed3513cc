/**
 * The web login in real Chromium (L2, L3, L5, L8, C2, C3, X2): a person types
 * the user name and password, reads the challenge off the page, computes the
 * card's response, gets one wrong, then logs in; a lockout; the language
 * switcher; the whole login with the keyboard only.
 *
 * Skipped (not failed) where Chromium is missing; the global setup refuses
 * to skip it under CI.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { chromiumAvailable } from '../support/environment.js';
import { PASSWORD, cardAnswer, createUserWithCard, wrongAnswer } from '../support/harness.js';
import {
  documentLanguage,
  facts,
  focused,
  focusedId,
  namedControls,
  navigation,
  scriptVisibleCookies,
  shownChallenge,
  unnamedControls,
  useServerAndBrowser,
} from '../support/browser.js';

describe.skipIf(!chromiumAvailable)('the web login in real Chromium', () => {
  const suite = useServerAndBrowser();
  let context: BrowserContext;
  let page: Page;
  /** Console errors and unexpected failed requests of the page (not the favicon Chromium asks for by itself). */
  let problems: string[];

  async function freshPage(options: { locale?: string; timezoneId?: string } = {}): Promise<Page> {
    context = await suite.browser.newContext({ baseURL: suite.server.baseUrl, ...options });
    page = await context.newPage();
    problems = [];
    page.on('console', (message) => {
      // failed loads are judged by their status below; anything else (a CSP violation, a script error) is a problem
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`);
    });
    page.on('response', (response) => {
      if (response.url().endsWith('/favicon.ico')) return;
      const status = response.status();
      const expectedError = [400, 401, 403, 410, 423].includes(status) && response.request().method() === 'POST';
      if (status >= 400 && !expectedError) problems.push(`${status} ${response.request().method()} ${response.url()}`);
    });
    return page;
  }

  afterEach(async () => {
    await context?.close();
  });

  /** The username/password step through the form; ends on the challenge page. */
  async function passwordStep(username: string, labels = { username: 'User name', password: 'Password', submit: 'Log In' }, app?: string): Promise<void> {
    await page.getByLabel(labels.username, { exact: true }).fill(username);
    await page.getByLabel(labels.password, { exact: true }).fill(PASSWORD);
    if (app) await page.getByLabel(app, { exact: true }).check();
    await navigation(page, () => page.getByRole('button', { name: labels.submit }).click());
    expect(new URL(page.url()).pathname).toMatch(/^\/login\/flw_[a-z2-7]{26}$/);
  }

  describe('in a fresh browser context each', () => {
    beforeEach(async () => {
      await freshPage();
    });

    it('L2/L5/L8/C2/C3: the whole login: password, the 6-digit challenge, a wrong response ("Login failed", the hint, role=alert, focus back on the response), the right one, signed in, logged out', async () => {
      const { user, card } = await createUserWithCard(suite.server.h.services);
      await page.goto('/login');
      expect(await page.title()).toBe('Log in · Secure Login System');
      await passwordStep(user.username, undefined, 'Trading platform');
      const flowPath = new URL(page.url()).pathname;

      // C2: the challenge is on the page, the focus in the response field; the card (its emulator) answers
      expect(await facts(page)).toMatchObject({ lang: 'en', h1: ['Security code'], alert: null, focused: 'response' });
      const question = await shownChallenge(page);
      expect(question).toMatch(/^\d{6}$/);
      const right = cardAnswer(card, question);
      expect(right).toMatch(/^\d{8}$/);

      // L2/L5: a wrong response: "Login failed" and the hint in the alert box, the focus back in the
      // (empty) response field, the form described by the error, the same challenge still shown
      const response = page.getByLabel('Response', { exact: true });
      await response.fill(wrongAnswer(right));
      await navigation(page, () => page.getByRole('button', { name: 'Log In' }).click());
      expect(await facts(page)).toEqual({
        path: flowPath,
        lang: 'en',
        h1: ['Security code'],
        alert: {
          code: 'LOGIN_FAILED',
          id: 'form-error',
          text: 'Login failed Please check: Security card and device codes contain no spaces between the characters.',
        },
        status: null,
        focused: 'response',
      });
      expect(await page.getByRole('alert').isVisible()).toBe(true);
      expect(await page.locator(`form[action="${flowPath}"]`).getAttribute('aria-describedby')).toBe('form-error');
      expect(await response.inputValue()).toBe('');
      expect(await shownChallenge(page)).toBe(question);
      expect(await page.locator('#attempts').innerText()).toContain('2 attempts left.');

      // the right response
      await response.fill(right);
      await navigation(page, () => page.getByRole('button', { name: 'Log In' }).click());
      expect(await facts(page)).toMatchObject({ path: '/account', h1: ['Signed in'], alert: null, status: `You are signed in as ${user.username}.` });
      expect(await page.locator('#session-app').innerText()).toBe('Trading platform');

      // L8: Chromium keeps the Secure, HttpOnly, SameSite=Lax session cookie on http://localhost; scripts cannot read it
      const session = (await context.cookies()).find((c) => c.name === '__Host-sls_session');
      expect(session).toMatchObject({ domain: 'localhost', path: '/', httpOnly: true, secure: true, sameSite: 'Lax' });
      expect(await scriptVisibleCookies(page)).not.toContain('sls_session');
      expect(await suite.server.h.services.sessions.authenticate(session!.value)).toMatchObject({ userId: user.id, app: 'trading' });

      // back to the used flow: signed in already
      await page.goto(flowPath);
      expect(new URL(page.url()).pathname).toBe('/account');

      // log out: the cookie is gone and the session is dead on the server
      await navigation(page, () => page.getByRole('button', { name: 'Log out' }).click());
      expect(await facts(page)).toMatchObject({ path: '/login?loggedOut=1', h1: ['Log in'], status: 'You have logged out.' });
      expect((await context.cookies()).find((c) => c.name === '__Host-sls_session')).toBeUndefined();
      expect(await suite.server.h.services.sessions.authenticate(session!.value)).toBeNull();
      await page.goto('/account');
      expect(new URL(page.url()).pathname).toBe('/login');

      expect(problems).toEqual([]);
    });

    it('L3: ten wrong passwords through the page, then the right password: the LOCKED message', async () => {
      const { user } = await createUserWithCard(suite.server.h.services);
      await page.goto('/login');
      await page.getByLabel('User name', { exact: true }).fill(user.username);
      const password = page.getByLabel('Password', { exact: true });
      for (let i = 0; i < 10; i++) {
        // the page keeps the user name after a failure; only the password is typed again
        await password.fill(`wrong password ${i}`);
        await navigation(page, () => password.press('Enter'));
        expect((await facts(page)).alert, `attempt ${i + 1}`).toEqual({
          code: 'INVALID_CREDENTIALS',
          id: 'form-error',
          text: 'Invalid user name password combination',
        });
      }
      expect(await page.getByLabel('User name', { exact: true }).inputValue()).toBe(user.username);
      await password.fill(PASSWORD);
      await navigation(page, () => page.getByRole('button', { name: 'Log In' }).click());
      const locked = await facts(page);
      expect(locked).toMatchObject({ path: '/login', h1: ['Log in'], alert: { code: 'LOCKED' } });
      expect(locked.alert!.text).toContain('This user is locked after too many failed login attempts.');
      expect(locked.alert!.text).toContain('24 hours after the last failed attempt');
      expect(await page.locator('#challenge-code').count()).toBe(0);
      expect((await context.cookies()).find((c) => c.name === '__Host-sls_session')).toBeUndefined();
      expect(problems).toEqual([]);
    });

    it('X2: the language switcher: Français and 繁體中文 change the page and its labels, and the choice sticks across a login and a logout', async () => {
      const { user, card } = await createUserWithCard(suite.server.h.services);
      await page.goto('/login');
      expect(await documentLanguage(page)).toBe('en');
      const switcher = page.getByRole('navigation', { name: 'Language' });
      expect(await switcher.getByRole('link').allInnerTexts()).toEqual(['English', 'Français', '繁體中文']);

      await navigation(page, () => switcher.getByRole('link', { name: 'Français' }).click());
      expect(await facts(page)).toMatchObject({ path: '/login?lang=fr', lang: 'fr', h1: ['Connexion'] });
      expect(await namedControls(page)).toEqual([
        "textbox Nom d'utilisateur",
        'textbox Mot de passe',
        'radio Portail Client',
        'radio Plateforme de trading',
        'button Connexion',
      ]);
      const langue = page.getByRole('navigation', { name: 'Langue' });
      expect(await langue.getByRole('link', { name: 'Français' }).getAttribute('aria-current')).toBe('true');

      await navigation(page, () => langue.getByRole('link', { name: '繁體中文' }).click());
      expect(await facts(page)).toMatchObject({ lang: 'zh-Hant', h1: ['登錄'] });
      expect(await namedControls(page)).toEqual(['textbox 用戶名', 'textbox 密碼', 'radio 客戶端口', 'radio 交易平臺', 'button 登錄']);

      // back to French, and a whole login: every page stays French without ?lang= in the URLs
      await navigation(page, () => page.getByRole('navigation', { name: '語言' }).getByRole('link', { name: 'Français' }).click());
      await page.goto('/login');
      expect(await documentLanguage(page)).toBe('fr');
      await passwordStep(user.username, { username: "Nom d'utilisateur", password: 'Mot de passe', submit: 'Connexion' });
      expect(await facts(page)).toMatchObject({ lang: 'fr', h1: ['Code de sécurité'] });
      await page.getByLabel('Réponse', { exact: true }).fill(cardAnswer(card, await shownChallenge(page)));
      await navigation(page, () => page.getByRole('button', { name: 'Connexion' }).click());
      expect(await facts(page)).toMatchObject({ path: '/account', lang: 'fr', h1: ['Connecté'], status: `Vous êtes connecté en tant que ${user.username}.` });

      // switch on the signed-in page: it stays signed in, now in Chinese, and so does the logout
      await navigation(page, () => langue.getByRole('link', { name: '繁體中文' }).click());
      expect(await facts(page)).toMatchObject({ path: '/account?lang=zh-Hant', lang: 'zh-Hant', h1: ['已登錄'] });
      await navigation(page, () => page.getByRole('button', { name: '登出' }).click());
      expect(await facts(page)).toMatchObject({ path: '/login?loggedOut=1', lang: 'zh-Hant', status: '您已登出。' });
      await passwordStep(user.username, { username: '用戶名', password: '密碼', submit: '登錄' });
      expect(await facts(page)).toMatchObject({ lang: 'zh-Hant', h1: ['安全碼'] });
      expect(await page.getByLabel('響應碼', { exact: true }).count()).toBe(1);
      expect((await context.cookies()).find((c) => c.name === 'sls_lang')?.value).toBe('zh-Hant');
      expect(problems).toEqual([]);
    });

    it('L2/X2: accessibility: the whole login with the keyboard only, every form control has an accessible label, exactly one h1 on every page', async () => {
      const { user, card } = await createUserWithCard(suite.server.h.services);
      await page.goto('/login');
      // labels (accessible names computed by Chromium) and headings of the login page
      expect(await unnamedControls(page)).toEqual([]);
      expect(await namedControls(page)).toEqual(['textbox User name', 'textbox Password', 'radio Client Portal', 'radio Trading platform', 'button Log In']);
      for (const label of ['User name', 'Password', 'Client Portal', 'Trading platform'])
        expect(await page.getByLabel(label, { exact: true }).count(), label).toBe(1);
      expect(await page.getByRole('navigation', { name: 'Language' }).count()).toBe(1);

      // keyboard only: the user name field has the focus on arrival
      expect(await facts(page)).toMatchObject({ h1: ['Log in'], focused: 'username' });
      await page.keyboard.type(user.username);
      await page.keyboard.press('Tab');
      expect(await focusedId(page)).toBe('password');
      await page.keyboard.type(PASSWORD);
      await page.keyboard.press('Tab');
      expect(await focused(page, 'value')).toBe('portal');
      await page.keyboard.press('ArrowRight'); // the radio group: choose the trading platform
      expect(await page.getByLabel('Trading platform', { exact: true }).isChecked()).toBe(true);
      await page.keyboard.press('Tab');
      expect(await focusedId(page)).toBe('login-submit');
      await navigation(page, () => page.keyboard.press('Enter'));

      // the challenge page: labelled, one h1, the focus already in the response field
      expect(await facts(page)).toMatchObject({ path: expect.stringMatching(/^\/login\/flw_/), h1: ['Security code'], focused: 'response' });
      expect(await unnamedControls(page)).toEqual([]);
      expect(await namedControls(page)).toEqual(['textbox Response', 'button Log In']);
      const right = cardAnswer(card, await shownChallenge(page));
      await page.keyboard.type(wrongAnswer(right));
      await navigation(page, () => page.keyboard.press('Enter'));
      expect(await facts(page)).toMatchObject({ h1: ['Security code'], alert: { code: 'LOGIN_FAILED' }, focused: 'response' });
      await page.keyboard.type(right);
      await navigation(page, () => page.keyboard.press('Enter'));
      expect(await facts(page)).toMatchObject({ path: '/account', h1: ['Signed in'] });
      expect(await page.locator('#session-app').innerText()).toBe('Trading platform');
      expect(await unnamedControls(page)).toEqual([]);

      // keyboard order of the signed-in page (no autofocus here): the skip link first, it leads into
      // the main content, whose links and buttons follow in reading order down to logout; Enter logs out
      await page.keyboard.press('Tab');
      expect(await focused(page, 'href')).toBe('#main');
      await page.keyboard.press('Enter');
      expect(await focusedId(page)).toBe('main');
      const stops: string[] = [];
      for (let i = 0; i < 12 && (await focusedId(page)) !== 'logout'; i++) {
        await page.keyboard.press('Tab');
        stops.push(await focusedId(page));
      }
      expect(stops.at(-1)).toBe('logout');
      // L8: a trading session is told where the settings are; it has no portal links
      expect(stops).not.toContain('password-link');
      expect(await page.locator('#trading-only').isVisible()).toBe(true);
      await navigation(page, () => page.keyboard.press('Enter'));
      expect(await facts(page)).toMatchObject({ path: '/login?loggedOut=1', h1: ['Log in'], focused: 'username' });
      expect(problems).toEqual([]);
    });
  });

  it("X2: with no choice made, the browser's own language decides (zh-TW → Traditional Chinese, fr-CA → French)", async () => {
    for (const [locale, lang, title] of [
      ['zh-TW', 'zh-Hant', '登錄'],
      ['fr-CA', 'fr', 'Connexion'],
    ] as const) {
      await freshPage({ locale }); // Chromium's language: navigator.language and Accept-Language
      await page.goto('/login');
      expect(await facts(page), locale).toMatchObject({ lang, h1: [title] });
      expect(
        (await context.cookies()).find((c) => c.name === 'sls_lang'),
        locale,
      ).toBeUndefined();
      await context.close();
    }
  });

  it("N1: a login in a French browser in Hong Kong remembers French and the browser's time zone for the user's notices (public/time-zone.js)", async () => {
    const { user, card } = await createUserWithCard(suite.server.h.services);
    await freshPage({ locale: 'fr-FR', timezoneId: 'Asia/Hong_Kong' });
    await page.goto('/login');
    expect((await context.cookies()).find((c) => c.name === 'sls_tz')?.value).toBe(encodeURIComponent('Asia/Hong_Kong'));
    await passwordStep(user.username, { username: "Nom d'utilisateur", password: 'Mot de passe', submit: 'Connexion' });
    // nothing is remembered before the second factor
    expect(await suite.server.h.services.noticePreferences.get(user.id)).toMatchObject({ language: null, timeZone: null });
    await page.locator('#response').fill(cardAnswer(card, await shownChallenge(page)));
    await navigation(page, () => page.locator('#response').press('Enter'));
    expect(new URL(page.url()).pathname).toBe('/account');
    expect(await suite.server.h.services.noticePreferences.get(user.id)).toMatchObject({
      language: 'fr',
      timeZone: 'Asia/Hong_Kong',
      chosenAt: null,
    });
    expect(problems).toEqual([]);
  });
});
