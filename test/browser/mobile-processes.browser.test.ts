/**
 * Push fan-out in real Chromium across two server processes sharing
 * PostgreSQL (K3, X4): the authenticator app talks to one process, the login
 * page to the other. The login started on the second reaches the phone
 * through the first (PostgreSQL NOTIFY), and the approval that arrives on
 * the first moves the login page of the second on by itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { chromiumAvailable, postgresUrl } from '../support/environment.js';
import { PASSWORD, openTestDatabase, type TestDatabase } from '../support/harness.js';
import { cliEnv, sls, startServer, type ServerProcess } from '../support/cli.js';
import { launchChromium, navigation } from '../support/browser.js';
import { tokenIn } from '../support/phone.js';

const PIN = 'pr0c';

describe.skipIf(!chromiumAvailable || !postgresUrl)('the mobile authenticator across two server processes on PostgreSQL, in Chromium', () => {
  let db: TestDatabase;
  let env: NodeJS.ProcessEnv;
  let appServer: ServerProcess;
  let loginServer: ServerProcess;
  let browser: Browser;

  beforeAll(async () => {
    db = await openTestDatabase('postgres');
    env = cliEnv(db);
    [appServer, loginServer, browser] = await Promise.all([startServer(env), startServer(env), launchChromium()]);
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all([appServer?.stop(), loginServer?.stop()]);
    await db?.drop();
  });

  it('K3, K13, X4: activated through one process; a login on the other is approved in the app and goes on by itself', async () => {
    expect((await sls(['user', 'create', '--username', 'twoprocs', '--password', PASSWORD, '--mobile', 'FR:698765431'], env)).code).toBe(0);
    const phone = await browser.newContext({ baseURL: appServer.url });
    const app = await phone.newPage();
    await app.goto('/app');
    await app.locator('html[data-ready=true]').waitFor();
    await app.locator('#add-user').click();
    await app.locator('#act-username').fill('twoprocs');
    await app.locator('#act-password').fill(PASSWORD);
    await app.locator('#act-continue').click();
    await app.locator('#act-send-token').click();
    await app.locator('#act-step-token').waitFor();
    const outbox = JSON.parse((await sls(['outbox', '--user', 'twoprocs', '--json'], env)).stdout) as { template: string; body: string }[];
    await app.locator('#act-token').fill(tokenIn(outbox));
    await app.locator('#act-token-continue').click();
    await app.locator('#act-pin').fill(PIN);
    await app.locator('#act-pin-again').fill(PIN);
    await app.locator('#act-activate').click();
    await app.locator('#act-finish').click();
    await app.locator('#connection[data-state=up]').waitFor();

    const computer = await browser.newContext({ baseURL: loginServer.url });
    const page = await computer.newPage();
    await page.goto('/login');
    await page.getByLabel(/User name/).fill('twoprocs');
    await page.getByLabel('Password').fill(PASSWORD);
    await navigation(page, () => page.locator('#login-submit').click());
    const number = ((await page.locator('#push-number').textContent()) ?? '').trim();

    await app.locator('#request').waitFor();
    await app.locator('#req-number').fill(number);
    await app.locator('#req-pin').fill(PIN);
    const proceeded = page.waitForURL('**/account', { timeout: 15_000 });
    await app.locator('#req-approve').click();
    await proceeded;
    await computer.close();
    await phone.close();
  });
});
