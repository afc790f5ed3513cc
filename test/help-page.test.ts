/** R4: access assistance pages lead each case to its path, in three languages. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './support/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness('sqlite');
});
afterAll(async () => {
  await h.close();
});

describe('access assistance (R4)', () => {
  it('R4: the login page leads to the help page', async () => {
    const login = await h.app.inject({ method: 'GET', url: '/login' });
    expect(login.body).toContain('href="/help"');
  });

  it('R4: cases I (no access), II (portal only) and III (device in hand) each lead to their path', async () => {
    const page = await h.app.inject({ method: 'GET', url: '/help' });
    expect(page.statusCode).toBe(200);
    for (const id of [
      'no-access',
      'partial-access',
      'full-access',
      'case-forgot',
      'case-withoutDevice',
      'case-lostDevice',
      'case-passcodeExpired',
      'case-cardExpired',
      'case-locked',
      'case-awaiting',
    ]) {
      expect(page.body, id).toContain(`id="${id}"`);
    }
    expect(page.body).toContain('href="/online-card"');
    expect(page.body).toContain('href="/account"');
    expect(page.body).toContain('temporary passcode');
    expect(page.body).toContain('Invalid user name password combination');
  });

  it.each([
    ['fr', 'Aide à la connexion'],
    ['zh-Hant', '登入協助'],
  ])('R4/X2: the help page in %s', async (lang, title) => {
    const page = await h.app.inject({ method: 'GET', url: `/help?lang=${lang}` });
    expect(page.body).toContain(`<h1>${title}</h1>`);
    expect(page.body).toContain(`<html lang="${lang}">`);
  });
});
