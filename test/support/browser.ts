/**
 * Real Chromium for the browser tests, through playwright-core and the
 * system's Chromium (CHROMIUM_PATH; never a downloaded browser). The server
 * is the real app of a test harness, listening on a free port of 127.0.0.1
 * and browsed as http://localhost:<port> (Chromium treats localhost as a
 * secure context, so it keeps the pages' Secure cookies).
 */
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM_PATH } from './environment.js';
import { PASSWORD, startHarness, type Harness } from './harness.js';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout: 20_000 });
}

export interface WebServer {
  h: Harness;
  baseUrl: string;
  close(): Promise<void>;
}

/** A harness whose app listens on a free local port. */
export async function startWebServer(): Promise<WebServer> {
  const h = await startHarness('sqlite');
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = h.app.server.address() as AddressInfo;
  return { h, baseUrl: `http://localhost:${port}`, close: () => h.close() };
}

/**
 * Runs an action that makes the page load a new document (a form submission,
 * a link, a key press) and waits until that document has loaded. The listener
 * is in place before the action, so a fast answer cannot be missed.
 */
export async function navigation(page: Page, action: () => Promise<unknown>): Promise<void> {
  const loaded = page.waitForEvent('load', { timeout: 10_000 });
  await action();
  await loaded;
}

/*
 * Code run in the page is given as strings: the project compiles without the
 * DOM library, and the page's CSP does not apply to Playwright's evaluation.
 */

/** The id of the element that has the keyboard focus ('' for none). */
export function focusedId(page: Page): Promise<string> {
  return page.evaluate<string>("document.activeElement ? document.activeElement.id : ''");
}

/** An attribute (or, for 'value', the current value) of the element that has the keyboard focus. */
export function focused(page: Page, what: 'value' | 'href' | 'name' | 'type'): Promise<string | null> {
  return page.evaluate<string | null>(
    `(() => { const e = document.activeElement; if (!e) return null; return ${JSON.stringify(what)} === 'value' ? e.value : e.getAttribute(${JSON.stringify(what)}); })()`,
  );
}

/** What scripts of the page can read of the cookies. */
export function scriptVisibleCookies(page: Page): Promise<string> {
  return page.evaluate<string>('document.cookie');
}

/** The 6-digit challenge shown on the page (C2). */
export async function shownChallenge(page: Page): Promise<string> {
  return ((await page.locator('#challenge-code').textContent()) ?? '').trim();
}

/**
 * V1, X7: on the step-up page a settings page led to: the password, then the
 * device's response (`respond` reads the page's challenge); the browser comes
 * back to the settings page.
 */
export async function stepUpOnPage(page: Page, respond: (page: Page) => Promise<string>, password = PASSWORD): Promise<void> {
  if (new URL(page.url()).pathname !== '/step-up') throw new Error(`not on the step-up page: ${page.url()}`);
  await page.locator('#password').fill(password);
  await navigation(page, () => page.locator('#step-up-submit').click());
  await page.locator('#response').fill(await respond(page));
  await navigation(page, () => page.locator('#response-submit').click());
}

/** The <html lang> of the page. */
export async function documentLanguage(page: Page): Promise<string | null> {
  return page.locator('html').getAttribute('lang');
}

const CONTROL_ROLES = ['textbox', 'radio', 'combobox', 'listbox', 'checkbox', 'button', 'spinbutton', 'searchbox'];

/**
 * Form controls of the page's main content that have no accessible name, as
 * Chromium's accessibility tree computes it (via the ARIA snapshot).
 */
export async function unnamedControls(page: Page): Promise<string[]> {
  const snapshot = await page.locator('main').ariaSnapshot();
  return snapshot
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => {
      const m = /^- (\w+)(.*)$/.exec(line);
      if (!m || !CONTROL_ROLES.includes(m[1]!)) return false;
      return !/^\s+"[^"]+"/.test(m[2]!);
    });
}

/** Names of the form controls in the page's main content, by role, from the accessibility tree. */
export async function namedControls(page: Page): Promise<string[]> {
  const snapshot = await page.locator('main').ariaSnapshot();
  const found: string[] = [];
  for (const line of snapshot.split('\n')) {
    const m = /^\s*- (\w+) "([^"]+)"/.exec(line);
    if (m && CONTROL_ROLES.includes(m[1]!)) found.push(`${m[1]} ${m[2]}`);
  }
  return found;
}

/** What a person sees and where the keyboard is, read in one round trip to the page. */
export interface PageFacts {
  path: string;
  lang: string | null;
  h1: string[];
  /** The error box (role=alert), if any. */
  alert: { code: string | null; id: string; text: string } | null;
  /** The polite status message (role=status), if any. */
  status: string | null;
  /** The id of the focused element ('' for none). */
  focused: string;
}

export function facts(page: Page): Promise<PageFacts> {
  // after two frames: the browser has applied autofocus (it does so while rendering, which may come after 'load')
  return page.evaluate<PageFacts>(`(async () => {
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    const squash = (s) => (s || '').replace(/\\s+/g, ' ').trim();
    const alert = document.querySelector('[role=alert]');
    const status = document.querySelector('[role=status]');
    return {
      path: location.pathname + location.search,
      lang: document.documentElement.getAttribute('lang'),
      h1: [...document.querySelectorAll('h1')].map((e) => squash(e.textContent)),
      alert: alert ? { code: alert.getAttribute('data-code'), id: alert.id, text: squash(alert.innerText) } : null,
      status: status ? squash(status.innerText) : null,
      focused: document.activeElement ? document.activeElement.id : '',
    };
  })()`);
}

export interface BrowserSuite {
  /** Set once beforeAll has run. */
  server: WebServer;
  browser: Browser;
}

/**
 * Starts the server and Chromium for a suite, both at once (Chromium takes a
 * while to start), and closes whichever started after it, even if the other
 * failed. Call inside a describe block.
 */
export function useServerAndBrowser(): BrowserSuite {
  const suite = {} as BrowserSuite;
  beforeAll(async () => {
    const [started, launched] = await Promise.allSettled([startWebServer(), launchChromium()]);
    if (started.status === 'fulfilled') suite.server = started.value;
    if (launched.status === 'fulfilled') suite.browser = launched.value;
    if (started.status === 'rejected') throw started.reason;
    if (launched.status === 'rejected') throw launched.reason;
  });
  afterAll(async () => {
    await suite.browser?.close();
    await suite.server?.close();
  });
  return suite;
}

/**
 * Pages of a suite, each in a browser context of its own (closed after each
 * test), with the console errors and failed requests of every page collected
 * in `problems` (a test ends by expecting none).
 */
export function trackedPages(suite: BrowserSuite): { freshPage(): Promise<Page>; problems: string[] } {
  const contexts: BrowserContext[] = [];
  const problems: string[] = [];
  afterEach(async () => {
    for (const context of contexts.splice(0)) await context.close();
  });
  async function freshPage(): Promise<Page> {
    const context = await suite.browser.newContext({ baseURL: suite.server.baseUrl });
    contexts.push(context);
    const page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`);
    });
    page.on('response', (response) => {
      if (response.url().endsWith('/favicon.ico')) return;
      if (response.status() >= 400) problems.push(`${response.status()} ${response.request().method()} ${response.url()}`);
    });
    return page;
  }
  return { freshPage, problems };
}
