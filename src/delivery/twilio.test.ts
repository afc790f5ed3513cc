import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeTwilio } from '../../test/support/fake-twilio.js';
import { closedPort, deliveryFailure as failure } from '../../test/support/delivery.js';
import type { FakeTwilio } from '../../test/support/fake-twilio.js';
import type { Language } from '../i18n/i18n.js';
import type { OutgoingMessage } from './provider.js';
import { type DeliveryError, withRetry } from './retry.js';
import { spaceOutDigits, twilioProvider, voiceTwiml } from './twilio.js';
import { loadConfig } from '../config.js';

const FROM = '+15005550006';
const TO = '+33612345678';

let fake: FakeTwilio;
beforeEach(async () => {
  fake = await startFakeTwilio();
});
afterEach(async () => {
  await fake.close();
});

function provider(overrides: { authToken?: string; timeoutMs?: number; baseUrl?: string } = {}) {
  return twilioProvider({
    baseUrl: overrides.baseUrl ?? fake.baseUrl,
    accountSid: fake.accountSid,
    authToken: overrides.authToken ?? fake.authToken,
    from: FROM,
    timeoutMs: overrides.timeoutMs ?? 2_000,
  });
}

function sms(body = 'Your security code is 482913. It is valid for 10 minutes.', recipient = TO): OutgoingMessage {
  return { id: 'ntf_sms', channel: 'sms', recipient, subject: null, body, language: 'en' };
}

function voice(body: string, language: Language = 'en'): OutgoingMessage {
  return { id: 'ntf_voice', channel: 'voice', recipient: TO, subject: null, body, language };
}

/** The error as anyone could see it: message, stack, and every field. */
function everythingIn(error: DeliveryError): string {
  return [error.message, error.stack ?? '', JSON.stringify(error), String(error)].join('\n');
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', parseTagValue: false, trimValues: false });

interface ParsedTwiml {
  Response: { Say: { '#text': string; '@_language': string; '@_voice': string }[]; Pause: { '@_length': string } };
}

describe('M4/M7: SMS through the Twilio Messages API', () => {
  it('M4: an SMS is POSTed form-encoded to Messages.json with To, From, Body and HTTP Basic auth', async () => {
    const body = 'Votre code de sécurité est 482913 — 10 min. & <ok>';
    await provider().deliver(sms(body));
    expect(fake.requests).toHaveLength(1);
    const request = fake.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.path).toBe(`/2010-04-01/Accounts/${fake.accountSid}/Messages.json`);
    expect(request.contentType).toMatch(/^application\/x-www-form-urlencoded/);
    expect(request.authorization).toBe(`Basic ${Buffer.from(`${fake.accountSid}:${fake.authToken}`).toString('base64')}`);
    expect(request.form).toEqual({ To: TO, From: FROM, Body: body });
    expect(fake.messages).toEqual([{ sid: expect.stringMatching(/^SM[0-9a-f]{32}$/), to: TO, from: FROM, body }]);
    expect(fake.calls).toEqual([]);
  });

  it('M7: a base URL with a trailing slash works the same', async () => {
    await provider({ baseUrl: `${fake.baseUrl}/` }).deliver(sms());
    expect(fake.requests[0]!.path).toBe(`/2010-04-01/Accounts/${fake.accountSid}/Messages.json`);
    expect(fake.messages).toHaveLength(1);
  });

  it('M7: a wrong auth token is refused (401) and not retryable', async () => {
    const error = await failure(provider({ authToken: 'wrong-token' }).deliver(sms()));
    expect(error.retryable).toBe(false);
    expect(error.status).toBe(401);
    expect(error.code).toBe('20003');
    expect(fake.messages).toEqual([]);
  });

  it.each([400, 403, 404])('M7: HTTP %i is not retryable and names the Twilio error number', async (status) => {
    fake.failNext(1, status, 21211);
    const error = await failure(provider().deliver(sms()));
    expect(error).toMatchObject({ provider: 'twilio', retryable: false, status, code: '21211' });
    expect(error.message).toBe(`twilio: Messages request refused with HTTP ${status} (Twilio error 21211)`);
  });

  it.each([429, 500, 502, 503])('M7: HTTP %i is retryable', async (status) => {
    fake.failNext(1, status);
    const error = await failure(provider().deliver(sms()));
    expect(error).toMatchObject({ retryable: true, status });
  });

  it('M7: no answer within the timeout is retryable, and the request is abandoned in time', async () => {
    fake.hangNext(1);
    const started = Date.now();
    const error = await failure(provider({ timeoutMs: 200 }).deliver(sms()));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error).toMatchObject({ retryable: true, code: 'ETIMEDOUT', status: undefined });
    expect(error.message).toBe('twilio: no answer within 200 ms');
  });

  it('M7: a refused connection is retryable', async () => {
    const error = await failure(provider({ baseUrl: `http://127.0.0.1:${await closedPort()}` }).deliver(sms()));
    expect(error).toMatchObject({ retryable: true, code: 'ECONNREFUSED' });
    expect(error.message).toBe('twilio: network error (ECONNREFUSED)');
  });

  it('M7: nothing secret in errors: not the auth token, not the message text, not what the gateway quoted back', async () => {
    const code = '739264';
    const body = `Your security code is ${code}`;
    const basic = Buffer.from(`${fake.accountSid}:${fake.authToken}`).toString('base64');
    const errors: DeliveryError[] = [];
    for (const status of [400, 401, 429, 500]) {
      fake.failNext(1, status);
      errors.push(await failure(provider().deliver(sms(body))));
      fake.failNext(1, status);
      errors.push(await failure(provider().deliver(voice(body))));
    }
    fake.hangNext(1);
    errors.push(await failure(provider({ timeoutMs: 100 }).deliver(sms(body))));
    errors.push(await failure(provider({ authToken: 'wrong-token-value' }).deliver(sms(body))));
    expect(fake.requests.some((r) => r.form.Body === body)).toBe(true); // the fake's error bodies did quote it
    for (const error of errors) {
      const seen = everythingIn(error);
      expect(seen).not.toContain(fake.authToken);
      expect(seen).not.toContain('wrong-token-value');
      expect(seen).not.toContain(basic);
      expect(seen).not.toContain(code);
      expect(seen).not.toContain('7 3 9 2 6 4');
      expect(seen).not.toContain('security code');
    }
  });

  it('M7: a recipient not in E.164 and the e-mail channel are refused without a request, not retryable', async () => {
    const notE164 = await failure(provider().deliver(sms('hello', '0612345678')));
    expect(notE164.retryable).toBe(false);
    const email = await failure(provider().deliver({ ...sms(), channel: 'email', recipient: 'a@example.com' }));
    expect(email.retryable).toBe(false);
    expect(fake.requests).toEqual([]);
  });

  it('M7: withRetry over Twilio recovers after 2 failures (503, then timeout) with one SMS sent', async () => {
    fake.failNext(1, 503);
    fake.hangNext(1);
    const waits: number[] = [];
    await withRetry(provider({ timeoutMs: 150 }), { attempts: 3, baseDelayMs: 100, sleep: async (ms) => void waits.push(ms) }).deliver(sms());
    expect(fake.requests).toHaveLength(3);
    expect(fake.messages).toHaveLength(1);
    expect(waits).toEqual([100, 200]);
  });

  it('M7: withRetry over Twilio gives up after 3 retryable failures', async () => {
    fake.failNext(3, 503);
    const error = await failure(withRetry(provider(), { attempts: 3, baseDelayMs: 1, sleep: async () => undefined }).deliver(sms()));
    expect(error).toMatchObject({ retryable: true, status: 503 });
    expect(fake.requests).toHaveLength(3);
    expect(fake.messages).toEqual([]);
  });

  it('M7: withRetry over Twilio does not retry a 400', async () => {
    fake.failNext(1, 400);
    const error = await failure(withRetry(provider(), { attempts: 3, baseDelayMs: 1, sleep: async () => undefined }).deliver(sms()));
    expect(error.retryable).toBe(false);
    expect(fake.requests).toHaveLength(1);
  });
});

describe('M5: voice calls through the Twilio Calls API read the code aloud', () => {
  it('M5: a call is POSTed to Calls.json with To, From and TwiML, with Basic auth', async () => {
    await provider().deliver(voice('Your security code is 482913.'));
    expect(fake.requests).toHaveLength(1);
    const request = fake.requests[0]!;
    expect(request.path).toBe(`/2010-04-01/Accounts/${fake.accountSid}/Calls.json`);
    expect(request.authorization).toBe(`Basic ${Buffer.from(`${fake.accountSid}:${fake.authToken}`).toString('base64')}`);
    expect(Object.keys(request.form).sort()).toEqual(['From', 'To', 'Twiml']);
    expect(request.form.To).toBe(TO);
    expect(request.form.From).toBe(FROM);
    expect(request.form.Twiml).toBe(
      '<Response><Say voice="Polly.Joanna" language="en-US">Your security code is 4 8 2 9 1 3.</Say><Pause length="1"/><Say voice="Polly.Joanna" language="en-US">Your security code is 4 8 2 9 1 3.</Say></Response>',
    );
    expect(fake.calls).toEqual([{ sid: expect.stringMatching(/^CA[0-9a-f]{32}$/), to: TO, from: FROM, twiml: request.form.Twiml, url: undefined }]);
    expect(fake.messages).toEqual([]);
  });

  it.each([
    ['en', 'Polly.Joanna', 'en-US', 'Your security code is 482913. Valid for 10 minutes.', 'Your security code is 4 8 2 9 1 3. Valid for 10 minutes.'],
    ['fr', 'Polly.Lea', 'fr-FR', 'Votre code de sécurité est 482913.', 'Votre code de sécurité est 4 8 2 9 1 3.'],
    ['zh-Hant', 'Google.cmn-TW-Standard-A', 'cmn-TW', '您的安全碼是 482913。', '您的安全碼是 4 8 2 9 1 3。'],
  ] as const)('M5, M7: language %s is said by the voice %s in %s, the code digit by digit, twice', async (language, sayVoice, sayLanguage, body, spoken) => {
    await provider().deliver(voice(body, language));
    const twiml = fake.calls[0]!.twiml!;
    expect(XMLValidator.validate(twiml)).toBe(true);
    const parsed = parser.parse(twiml) as ParsedTwiml;
    expect(parsed.Response.Say).toHaveLength(2);
    for (const say of parsed.Response.Say) {
      expect(say['@_voice']).toBe(sayVoice);
      expect(say['@_language']).toBe(sayLanguage);
      expect(say['#text']).toBe(spoken);
    }
    expect(parsed.Response.Pause['@_length']).toBe('1');
  });

  it('M5: the spoken text is XML-escaped, so a message cannot add TwiML', async () => {
    const body = `Code 123456 <Dial>+19005550000</Dial> & "quotes" 'apos' </Say><Hangup/>`;
    await provider().deliver(voice(body));
    const twiml = fake.calls[0]!.twiml!;
    expect(XMLValidator.validate(twiml)).toBe(true);
    expect(twiml).not.toContain('<Dial>');
    expect(twiml).not.toContain('<Hangup/>');
    expect(twiml).toContain('&lt;Dial&gt;');
    expect(twiml).toContain('&amp; &quot;quotes&quot; &apos;apos&apos;');
    const parsed = new XMLParser({ ignoreAttributes: false, parseTagValue: false, trimValues: false, processEntities: true }).parse(twiml) as {
      Response: Record<string, unknown>;
    };
    expect(Object.keys(parsed.Response).sort()).toEqual(['Pause', 'Say']);
  });

  it('M5: only runs of 4 or more digits are spaced out', () => {
    expect(spaceOutDigits('code 123456, valid 10 minutes, 3 tries')).toBe('code 1 2 3 4 5 6, valid 10 minutes, 3 tries');
    expect(voiceTwiml('a&b', 'fr')).toBe(
      '<Response><Say voice="Polly.Lea" language="fr-FR">a&amp;b</Say><Pause length="1"/><Say voice="Polly.Lea" language="fr-FR">a&amp;b</Say></Response>',
    );
  });

  it('M7: the voice and language of each language are configurable (SLS_TWILIO_VOICE_*, VOICE:LANGUAGE), others keep their default', async () => {
    const config = loadConfig({
      SLS_SMS_PROVIDER: 'twilio',
      SLS_TWILIO_ACCOUNT_SID: fake.accountSid,
      SLS_TWILIO_AUTH_TOKEN: fake.authToken,
      SLS_TWILIO_FROM: FROM,
      SLS_TWILIO_BASE_URL: fake.baseUrl,
      SLS_TWILIO_VOICE_FR: 'Google.fr-FR-Wavenet-C:fr-FR',
      SLS_TWILIO_VOICE_ZH_HANT: 'alice:zh-TW',
    });
    const { provider: _name, ...options } = config.delivery.sms as Extract<typeof config.delivery.sms, { provider: 'twilio' }>;
    const configured = twilioProvider(options);
    for (const language of ['fr', 'zh-Hant', 'en'] as const) await configured.deliver(voice('Code 482913', language));
    const says = fake.calls.map((call) => (parser.parse(call.twiml!) as ParsedTwiml).Response.Say[0]!);
    expect(says.map((say) => [say['@_voice'], say['@_language']])).toEqual([
      ['Google.fr-FR-Wavenet-C', 'fr-FR'],
      ['alice', 'zh-TW'],
      ['Polly.Joanna', 'en-US'],
    ]);
    expect(() => loadConfig({ SLS_TWILIO_VOICE_FR: 'Polly Lea fr' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_TWILIO_VOICE_FR' }) }),
    );
  });

  it('M7: a failed call is a DeliveryError with the same semantics', async () => {
    fake.failNext(1, 400, 21216);
    const refused = await failure(provider().deliver(voice('Code 482913')));
    expect(refused).toMatchObject({ retryable: false, status: 400, code: '21216' });
    expect(refused.message).toBe('twilio: Calls request refused with HTTP 400 (Twilio error 21216)');
    fake.failNext(1, 503);
    expect((await failure(provider().deliver(voice('Code 482913')))).retryable).toBe(true);
  });
});
