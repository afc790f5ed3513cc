/**
 * R4: access assistance pages lead each case to its path, in three languages,
 * with the Client Services contacts the operator configured and the seed's
 * "I am not receiving SMS" troubleshooting.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { supportCenters } from '../src/support.js';
import { PASSWORD, createUser, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { Agent, byId, elements, text } from './support/html.js';

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
    ['zh-Hant', '登錄協助'],
  ])('R4/X2: the help page in %s', async (lang, title) => {
    const page = await h.app.inject({ method: 'GET', url: `/help?lang=${lang}` });
    expect(page.body).toContain(`<h1>${title}</h1>`);
    expect(page.body).toContain(`<html lang="${lang}">`);
  });
});

describe('Client Services contacts and SMS troubleshooting (R4)', () => {
  it('R4: the help page shows the Client Services telephone, e-mail and hours the operator configured (SLS_SUPPORT_PHONE / EMAIL / HOURS), with a tel: link, and says help starts by telephone', async () => {
    const support = await startHarness('sqlite', {
      support: supportCenters({ phone: '+1 877 442 2757', email: 'help@broker.example', hours: 'Monday to Friday, 8:00-20:00 (ET)' }),
    });
    try {
      const page = await support.app.inject({ method: 'GET', url: '/help' });
      const contact = byId(page.body, 'contact')!;
      expect(contact).toBeDefined();
      expect(byId(page.body, 'contact-none')).toBeUndefined();
      const phone = elements(contact.inner, 'a').find((a) => a.attrs.class === 'support-phone')!;
      expect(phone.attrs.href).toBe('tel:+18774422757');
      expect(text(phone.inner)).toBe('+1 877 442 2757');
      expect(elements(contact.inner, 'a').find((a) => a.attrs.class === 'support-email')?.attrs.href).toBe('mailto:help@broker.example');
      expect(text(contact.inner)).toContain('Monday to Friday, 8:00-20:00 (ET)');
      expect(text(contact.inner)).toContain('all requests for login assistance must be initiated via telephone');
      // every case that says "call Client Services" leads to the contacts
      for (const id of ['case-forgot', 'case-withoutDevice', 'case-lostDevice', 'case-passcodeExpired', 'case-cardExpired', 'case-locked']) {
        const after = page.body.slice(page.body.indexOf(`id="${id}"`));
        expect(after.slice(0, after.indexOf('</p>')), id).toContain('href="#contact"');
      }
    } finally {
      await support.close();
    }
  });

  it('R4/X2: regional centers from SLS_SUPPORT_FILE, their names and hours in the reader language; a bad file is a clear configuration error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sls-support-'));
    const file = join(dir, 'support.json');
    writeFileSync(
      file,
      JSON.stringify({
        centers: [
          {
            name: { en: 'Europe', fr: 'Europe', 'zh-Hant': '歐洲' },
            phone: '+33 1 23 45 67 89',
            hours: { en: 'Weekdays 8:00-18:00 CET', fr: 'En semaine 8h-18h (HNEC)' },
          },
          { name: { en: 'Hong Kong', 'zh-Hant': '香港' }, phone: '+852 2156 7907', email: 'hk@broker.example' },
        ],
      }),
    );
    const config = loadConfig({ SLS_SUPPORT_FILE: file, SLS_SUPPORT_PHONE: '+1 877 442 2757' });
    expect(config.support.map((c) => c.phone)).toEqual(['+1 877 442 2757', '+33 1 23 45 67 89', '+852 2156 7907']);
    const support = await startHarness('sqlite', { support: config.support });
    try {
      const zh = await support.app.inject({ method: 'GET', url: '/help?lang=zh-Hant' });
      expect(text(byId(zh.body, 'center-1')!.inner)).toContain('歐洲');
      expect(text(byId(zh.body, 'center-2')!.inner)).toContain('香港');
      // hours not given in Chinese: the English
      expect(text(byId(zh.body, 'center-1')!.inner)).toContain('Weekdays 8:00-18:00 CET');
      const fr = await support.app.inject({ method: 'GET', url: '/help?lang=fr' });
      expect(text(byId(fr.body, 'center-1')!.inner)).toContain('En semaine 8h-18h (HNEC)');
      // a center without a name of its own in French: the English one
      expect(text(byId(fr.body, 'center-2')!.inner)).toContain('Hong Kong');
    } finally {
      await support.close();
    }
    writeFileSync(file, JSON.stringify({ centers: [{ name: 'Nowhere' }] }));
    expect(() => loadConfig({ SLS_SUPPORT_FILE: file })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_SUPPORT_FILE' }) }),
    );
    writeFileSync(file, '{ not json');
    expect(() => loadConfig({ SLS_SUPPORT_FILE: file })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: { setting: 'SLS_SUPPORT_FILE', reason: 'not JSON' } }),
    );
    expect(() => loadConfig({ SLS_SUPPORT_FILE: join(dir, 'missing.json') })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
    expect(() => loadConfig({ SLS_SUPPORT_PHONE: 'call us' })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_SUPPORT_PHONE' }) }),
    );
    expect(() => loadConfig({ SLS_SUPPORT_EMAIL: 'not-an-address' })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('R4: without contacts configured the page tells the reader to call the number their broker gave', async () => {
    const page = await h.app.inject({ method: 'GET', url: '/help' });
    expect(byId(page.body, 'contact-none')).toBeDefined();
    expect(page.body).not.toContain('tel:');
  });

  it.each([
    ['en', 'I am not receiving text messages (SMS)', 'Restart your phone', 'Use Voice', 'phone carrier'],
    ['fr', 'Je ne reçois pas les SMS', 'Redémarrez le téléphone', "Utilisez l'appel vocal", 'opérateur'],
    ['zh-Hant', '我收不到短信（SMS）', '重新啟動手機', '使用語音', '電訊商'],
  ])(
    'R4/X2: "I am not receiving SMS" (%s): the mobile authenticator, restarting the phone, Voice, carrier filtering',
    async (lang, title, restart, voice, carrier) => {
      const page = await h.app.inject({ method: 'GET', url: `/help?lang=${lang}` });
      const sms = byId(page.body, 'sms')!;
      expect(text(sms.inner)).toContain(title);
      expect(text(byId(page.body, 'sms-restart')!.inner)).toContain(restart);
      expect(text(byId(page.body, 'sms-voice')!.inner)).toContain(voice);
      expect(text(byId(page.body, 'sms-carrier')!.inner)).toContain(carrier);
      expect(byId(page.body, 'sms-authenticator')!.inner).toContain('href="/app"');
    },
  );

  it('R4: the challenge page of a login by SMS code leads to "I am not receiving SMS"; a DSC+ challenge does not', async () => {
    const sms = await createUser(h.services);
    await h.services.phones.add(sms.id, { country: 'FR', number: '611223344' }, 'test', null);
    await h.services.store.db.updateTable('phones').set({ verified_at: h.clock.now() }).where('user_id', '=', sms.id).execute();
    const agent = new Agent(h.app);
    const started = await agent.submit(await agent.get('/login'), '/login', { username: sms.username, password: PASSWORD });
    const challenge = await agent.get(started.location!);
    expect(byId(challenge.html, 'sms-help-link')?.attrs.href).toBe('/help#sms');
    const { user } = await createUserWithCard(h.services);
    const other = new Agent(h.app);
    const card = await other.submit(await other.get('/login'), '/login', { username: user.username, password: PASSWORD });
    expect(byId((await other.get(card.location!)).html, 'sms-help-link')).toBeUndefined();
  });
});
