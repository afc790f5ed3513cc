/**
 * Sharing one device between usernames in real Chromium (H2, H3, H5, V1):
 * the requesting user, logged in with their own card, goes from the
 * security settings to "Share Device", steps up, enters the owner's
 * credentials, operates the owner's DSC+, reviews and confirms; the request
 * (across accounts) waits for compliance, whose officer approves it in the
 * console; the requester's next login is answered by the owner's card.
 *
 * Skipped (not failed) where Chromium is missing; the global setup refuses
 * to skip it under CI.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chromiumAvailable } from '../support/environment.js';
import { PASSWORD, cardAnswer, createUserWithCard } from '../support/harness.js';
import { stepUpStaff } from '../support/staff.js';
import type { CardFile } from '../../src/devices/devices.js';
import { facts, navigation, shownChallenge, stepUpOnPage, trackedPages, unnamedControls, useServerAndBrowser } from '../support/browser.js';

describe.skipIf(!chromiumAvailable)('device sharing in real Chromium', () => {
  const suite = useServerAndBrowser();
  /** Console errors and failed requests of the pages. */
  const { freshPage, problems } = trackedPages(suite);

  /** User name, password, then the card's response, through the login page. */
  async function logIn(
    page: Page,
    username: string,
    card: CardFile,
    landing: { path: string; h1: string } = { path: '/account', h1: 'Signed in' },
  ): Promise<void> {
    await page.goto('/login');
    await page.getByLabel('User name', { exact: true }).fill(username);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await navigation(page, () => page.getByRole('button', { name: 'Log In' }).click());
    await page.getByLabel('Response', { exact: true }).fill(cardAnswer(card, await shownChallenge(page)));
    await navigation(page, () => page.getByRole('button', { name: 'Log In' }).click());
    expect(await facts(page)).toMatchObject({ path: landing.path, h1: [landing.h1] });
  }

  it("H2/H3/H5/V1: Share Device → step-up → the owner's credentials → the owner's DSC+ answers → review → pending; compliance approves in the console; the requester's login is answered by the owner's card", async () => {
    const { services } = suite.server.h;
    const owner = await createUserWithCard(services, '1234');
    const requester = await services.users.create(
      { username: `req${owner.user.username}`, password: PASSWORD, email: `req${owner.user.username}@example.test`, entityId: owner.user.entityId },
      'test',
    );
    const { card: ownCard } = await services.devices.addDscPlus({ userId: requester.id, pin: '1234' }, 'test');
    const officer = await createUserWithCard(services, '1234', { role: 'compliance' });

    // the requesting user (not the owner): security settings → Share Device
    const page = await freshPage();
    await logIn(page, requester.username, ownCard);
    await navigation(page, () => page.getByRole('link', { name: 'Share Device' }).click());
    expect(await facts(page)).toMatchObject({ path: '/sharing', h1: ['Share Device'], alert: null });
    expect(await page.locator('#sharing-none').innerText()).toBe('You do not share a Secure Login Device.');
    // H, K6, D6: only a physical device is shared; the authenticator adds users in the app
    expect(await page.locator('#sharing-physical-only').innerText()).toContain('Authenticate → Add user');
    await navigation(page, () => page.locator('#share-device').click());
    // V1: a step-up first, with the requester's own card; back to the form
    await stepUpOnPage(page, async (p) => cardAnswer(ownCard, await shownChallenge(p)));
    expect(await facts(page)).toMatchObject({ path: '/sharing/new', h1: ['Share Device'], focused: 'ownerUsername' });
    expect(await unnamedControls(page)).toEqual([]);
    await page.getByLabel('Username of the device owner', { exact: true }).fill(owner.user.username);
    await page.getByLabel('Password of the device owner', { exact: true }).fill(PASSWORD);
    await navigation(page, () => page.getByRole('button', { name: 'Continue' }).click());

    // the owner's DSC+ answers the challenge shown
    expect(new URL(page.url()).pathname).toMatch(/^\/sharing\/shr_[a-z2-7]{26}$/);
    expect(await page.locator('#sharing-challenge-heading').innerText()).toContain(`Operate the device of ${owner.user.username}`);
    await page.getByLabel('Response', { exact: true }).fill(cardAnswer(owner.card, await shownChallenge(page)));
    await navigation(page, () => page.locator('#sharing-answer').click());

    // review, keep the own card, continue
    expect(await page.locator('#review-owner').innerText()).toBe(owner.user.username);
    expect(await page.locator('#review-requester').innerText()).toBe(requester.username);
    expect(await page.getByLabel('Keep them in a safe place (I may cancel the device sharing and reactivate them later)').isChecked()).toBe(true);
    expect(await unnamedControls(page)).toEqual([]);
    await navigation(page, () => page.locator('#sharing-confirm').click());

    // H3: across accounts, pending until compliance approves
    expect(await page.locator('#sharing-state').innerText()).toBe('Pending approval');
    expect(await page.locator('#sharing-state-help').innerText()).toContain('The approval of our Compliance department is needed');
    expect((await services.devices.listForUser(requester.id))[0]!.state).toBe('active');

    // the compliance officer, in a browser of their own: the console's list, approve
    const desk = await freshPage();
    // issue 16: staff land on the help desk console
    await logIn(desk, officer.user.username, officer.card, { path: '/helpdesk', h1: 'Help desk console' });
    // V1, X7: staff act after a step-up with their own card
    await stepUpStaff(suite.server.h.app, desk.context(), officer.card);
    await navigation(desk, () => desk.getByRole('link', { name: 'Device sharing requests' }).click());
    expect(await facts(desk)).toMatchObject({ path: '/helpdesk/sharing', h1: ['Device sharing requests waiting for approval'], alert: null });
    const row = desk.locator('#sharing-pending tbody tr');
    expect(await row.count()).toBe(1);
    expect(await row.innerText()).toContain(requester.username);
    await row.getByLabel('Note (optional)').fill('same passport on record');
    await navigation(desk, () => row.getByRole('button', { name: 'Approve' }).click());
    expect(await facts(desk)).toMatchObject({ alert: null, status: `The device sharing of ${requester.username} was approved.` });
    expect(await desk.locator('#sharing-none').innerText()).toBe('No request waits for approval.');

    // the requester's status page says it is shared; their own card is kept (suspended)
    await page.reload();
    expect(await page.locator('#sharing-state').innerText()).toBe('Shared');
    expect(await page.locator('#sharing-kept').innerText()).toContain('Digital Security Card+');

    // H5: a new login of the requester is answered by the owner's card
    const later = await freshPage();
    await logIn(later, requester.username, owner.card);
    const audit = await services.audit.list({ userId: requester.id, limit: 50 });
    expect(audit.find((e) => e.event === 'sharing.approved')?.actor).toBe(`staff:${officer.user.id}`);
    expect(problems).toEqual([]);
  });
});
