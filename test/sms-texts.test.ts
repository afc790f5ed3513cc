/**
 * The texts sent by SMS and said by voice (M7, N1, X2): English and French
 * fit the GSM 03.38 alphabet and one segment (160 characters), Traditional
 * Chinese (UCS-2 by nature) one segment of 70, rendered through the real
 * composition (translation files, times in the user's language and zone)
 * with sample values of realistic length: a 16-character username, a DSC+
 * serial, a time in a zone of its own. (A username near the 64-character
 * maximum can make a notice two segments: that is accepted.)
 */
import { describe, expect, it } from 'vitest';
import { smsEncoding } from '../src/delivery/gsm7.js';
import { compose, countryOf, type CodeTemplate, type NoticeTemplate } from '../src/notify/notifier.js';
import { hasTranslation } from '../src/i18n/i18n.js';

const NOTICES: NoticeTemplate[] = [
  'tempPasscodeIssued',
  'tempPasscodeRevoked',
  'userLocked',
  'userLockedByStaff',
  'userUnlocked',
  'deviceReactivated',
  'pinChanged',
  'onlineCardActivated',
  'deviceEnrolled',
  'dscplusRequested',
  'dscplusShipped',
  'autoActivationApproaching',
  'autoActivationImminent',
  'dscplusAutoActivated',
  'passwordReset',
  'passwordChanged',
  'mobileActivated',
  'mobileRecoveryFailed',
  'pushDenied',
  'securityKeySuspended',
  'securityKeyAdded',
  'securityKeyRemoved',
  'noticeLanguageChanged',
  'optedOut',
  'optedIn',
  'phoneVerified',
  'phoneOnRecord',
  'phoneRemoved',
];
const CODES: CodeTemplate[] = ['loginCode', 'confirmCode', 'activationToken'];

const SAMPLE = {
  username: 'alexandrasmith88',
  code: '482913',
  // an August date: French "août" would not be GSM-7 if it were spelled out
  until: new Date(Date.UTC(2026, 7, 6, 21, 45)),
  date: '2026-08-27',
  serial: 'DSC+00012345',
  number: '+33 •••• ••78',
  ip: '203.0.113.77',
  failures: 3,
  max: 5,
  name: 'Blue key',
  language: 'Français',
  // where a DSC+ ships (N1, R2)
  city: 'San Francisco',
  country: countryOf('US'),
};

const texts = (language: 'en' | 'fr' | 'zh-Hant') =>
  [
    ...NOTICES.map((template) => ({ template, channel: 'sms' as const })),
    ...CODES.flatMap((template) => [
      { template, channel: 'sms' as const },
      { template, channel: 'voice' as const },
    ]),
  ].map(({ template, channel }) => ({ template, channel, body: compose({ template, channel, language }, SAMPLE, 'Pacific/Chatham').body }));

describe('SMS and voice texts (M7, N1)', () => {
  it('M7, N1: every notice has its own short SMS text in each language (not the e-mail body)', () => {
    for (const language of ['en', 'fr', 'zh-Hant'] as const) {
      for (const template of NOTICES) expect(hasTranslation(`notifications.${template}.sms`, language), `${language} ${template}`).toBe(true);
    }
  });

  it.each(['en', 'fr'] as const)('M7: every %s SMS and voice text is GSM-7 and fits one segment of 160', (language) => {
    for (const { template, channel, body } of texts(language)) {
      const encoding = smsEncoding(body);
      expect({ template, channel, nonGsm: encoding.nonGsm }).toEqual({ template, channel, nonGsm: [] });
      expect(encoding.units, `${template}.${channel}: ${body}`).toBeLessThanOrEqual(160);
      expect(encoding.segments).toBe(1);
    }
  });

  it('M7: every Traditional Chinese SMS and voice text (UCS-2) fits one segment of 70', () => {
    for (const { template, channel, body } of texts('zh-Hant')) {
      const encoding = smsEncoding(body);
      expect(encoding.encoding).toBe('UCS-2');
      expect(encoding.units, `${template}.${channel}: ${body}`).toBeLessThanOrEqual(70);
    }
  });

  it('M7: the times in French texts stay GSM-7 (numeric dates, plain spaces), and the zone is named', () => {
    const body = compose({ template: 'userLocked', channel: 'sms', language: 'fr' }, SAMPLE, 'Europe/Paris').body;
    expect(body).toContain("jusqu'au 06/08/2026 23:45 UTC+2.");
    const mail = compose({ template: 'userLocked', channel: 'email', language: 'fr' }, SAMPLE, 'Europe/Paris').body;
    expect(mail).toContain("jusqu'au 6 août 2026 à 23:45 UTC+2.");
  });

  it('M7: the GSM-7 counter knows the alphabet: ê or ç make UCS-2, € counts twice, 161 characters make two segments', () => {
    expect(smsEncoding('Vous êtes bloqué')).toMatchObject({ encoding: 'UCS-2', nonGsm: ['ê'] });
    expect(smsEncoding('reçu')).toMatchObject({ encoding: 'UCS-2', nonGsm: ['ç'] });
    expect(smsEncoding('20 €')).toMatchObject({ encoding: 'GSM-7', units: 5 });
    expect(smsEncoding('é'.repeat(160))).toMatchObject({ encoding: 'GSM-7', segments: 1 });
    expect(smsEncoding('a'.repeat(161))).toMatchObject({ encoding: 'GSM-7', segments: 2 });
    expect(smsEncoding('鎖'.repeat(71))).toMatchObject({ encoding: 'UCS-2', segments: 2 });
  });
});
