/**
 * SMS and voice through a real gateway protocol (M4, M5, M7): with
 * SLS_SMS_PROVIDER=twilio the codes reach a local server speaking Twilio's
 * API. A refusing or silent gateway is retried, then reported in the login
 * flow; the user can ask again or choose voice. Codes are never stored in
 * clear once they leave through a gateway.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { MINUTE, SECOND } from '../src/clock.js';
import { createServices } from '../src/services.js';
import { outboxAudioPath } from '../src/delivery/speech.js';
import { createUser, startHarness, testConfig, type Harness } from './support/harness.js';
import { answer, claimOf, postJson, startLogin } from './support/api.js';
import { startFakeTwilio, type FakeTwilio } from './support/fake-twilio.js';

let twilio: FakeTwilio;
let h: Harness;

beforeAll(async () => {
  twilio = await startFakeTwilio();
  h = await startHarness('sqlite', {
    delivery: {
      email: { provider: 'outbox' },
      sms: { provider: 'twilio', baseUrl: twilio.baseUrl, accountSid: twilio.accountSid, authToken: twilio.authToken, from: '+15005550006', timeoutMs: 300 },
      retry: { attempts: 2, baseDelayMs: 1 },
    },
  });
});
afterAll(async () => {
  await h.close();
  await twilio.close();
});

let numbers = 0;
/** A user enrolled in SMS on a number of its own; the confirm code is read from the gateway. */
async function smsUser(): Promise<{ userId: string; username: string; e164: string }> {
  numbers += 1;
  const user = await createUser(h.services);
  const phone = await h.services.phones.add(user.id, { country: 'US', number: `20155501${String(numbers).padStart(2, '0')}` }, 'test', null);
  await h.services.phones.sendConfirmCode(user.id, phone.id, { ip: null, language: 'en' });
  const code = codeIn(twilio.messages.at(-1)!.body);
  await h.services.phones.confirm(user.id, phone.id, code, { ip: null, language: 'en' });
  return { userId: user.id, username: user.username, e164: phone.e164 };
}

function codeIn(text: string): string {
  const code = /(\d{6})/.exec(text.replace(/ (?=\d)/g, ''))?.[1];
  expect(code, text).toBeDefined();
  return code!;
}

describe('codes through an SMS/voice gateway (M7)', () => {
  it('M4, M7: the login code reaches the gateway as an SMS to the E.164 number; the stored copy hides the code', async () => {
    const user = await smsUser();
    const flow = await startLogin(h.app, user.username);
    expect(flow.body.challenge).toMatchObject({ type: 'sms', delivery: 'sent' });
    const sms = twilio.messages.at(-1)!;
    expect(sms).toMatchObject({ to: user.e164, from: '+15005550006' });
    const code = codeIn(sms.body);
    const stored = (await h.services.notifier.list({ userId: user.userId })).find((n) => n.template === 'loginCode')!;
    expect(stored).toMatchObject({ provider: 'twilio', status: 'sent', channel: 'sms' });
    expect(stored.body).not.toContain(code);
    expect(stored.body).toContain('••••••');
    expect((await answer(h.app, flow.body.id, code)).status).toBe(200);
  });

  it('M5: voice goes to the gateway as a call whose TwiML reads the code digit by digit', async () => {
    const user = await smsUser();
    const flow = await startLogin(h.app, user.username);
    h.clock.advance(30 * SECOND);
    const res = await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'voice' }, claimOf(flow));
    expect(res.body.challenge).toMatchObject({ channel: 'voice', delivery: 'sent' });
    const call = twilio.calls.at(-1)!;
    expect(call.to).toBe(user.e164);
    const code = codeIn(call.twiml!);
    expect(call.twiml).toContain(code.split('').join(' '));
    expect((await answer(h.app, flow.body.id, code)).status).toBe(200);
  });

  it('M7: a refusing gateway is retried, then the login says the code could not be sent; voice works once the gateway is back', async () => {
    const user = await smsUser();
    const before = twilio.requests.length;
    twilio.failNext(2, 503, 20503);
    const flow = await startLogin(h.app, user.username);
    expect(flow.status).toBe(200);
    expect(flow.body.challenge).toMatchObject({ type: 'sms', delivery: 'failed' });
    expect(twilio.requests.length - before).toBe(2);
    const failed = (await h.services.notifier.list({ userId: user.userId })).find((n) => n.template === 'loginCode')!;
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/503/);
    // nothing secret in the recorded error, though the gateway quoted the request
    expect(failed.error).not.toContain(twilio.authToken);
    expect(failed.error).not.toContain('security code');

    h.clock.advance(30 * SECOND);
    const voice = await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'voice' }, claimOf(flow));
    expect(voice.body.challenge).toMatchObject({ channel: 'voice', delivery: 'sent', sends: 2 });
    expect((await answer(h.app, flow.body.id, codeIn(twilio.calls.at(-1)!.twiml!))).status).toBe(200);
  });

  it('M7: a gateway that does not answer times out; the login reports it and the user can ask again', async () => {
    const user = await smsUser();
    twilio.hangNext(2);
    const flow = await startLogin(h.app, user.username);
    expect(flow.body.challenge.delivery).toBe('failed');
    const failed = (await h.services.notifier.list({ userId: user.userId })).find((n) => n.template === 'loginCode')!;
    expect(failed.error).toMatch(/no answer within 300 ms/);
    h.clock.advance(30 * SECOND);
    const again = await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'sms' }, claimOf(flow));
    expect(again.body.challenge.delivery).toBe('sent');
    expect((await answer(h.app, flow.body.id, codeIn(twilio.messages.at(-1)!.body))).status).toBe(200);
  });

  it('M7, D5: a voice code the development outbox spoke before the switch to a gateway: once it expires, its sealed text and its audio file are gone all the same', async () => {
    // the same database and data directory, served a day before with the development outbox for every channel
    const before = await createServices(testConfig(h.database), { clock: h.clock, warn: () => undefined });
    const user = await createUser(before);
    const pending = await before.notifier.enqueue(before.store.db, {
      userId: user.id,
      channel: 'voice',
      recipient: '+12015550199',
      template: 'loginCode',
      params: { code: '394817' },
      language: 'en',
      secret: ['code'],
    });
    await before.notifier.deliver(pending!);
    await before.close();
    const audio = outboxAudioPath(h.database.dataDir, pending!.row.id);
    // without espeak-ng the outbox speaks nothing: the file it would have written stands in
    if (!existsSync(audio)) writeFileSync(audio, 'RIFF 394817', { mode: 0o600 });

    // now voice goes through the gateway; the code expires and the jobs run
    expect(h.services.notifier.isOutbox('voice')).toBe(false);
    h.clock.advance(11 * MINUTE);
    await h.services.scheduler.runDue();
    const row = await h.services.store.db.selectFrom('notifications').selectAll().where('id', '=', pending!.row.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ provider: 'outbox', sealed_body: null, sealed_until: null });
    expect(existsSync(audio)).toBe(false);
  });

  it('M7: the gateway is chosen by configuration, and a missing setting is named', () => {
    expect(loadConfig({}).delivery.sms).toEqual({ provider: 'outbox' });
    expect(() => loadConfig({ SLS_SMS_PROVIDER: 'twilio', SLS_TWILIO_ACCOUNT_SID: 'AC1' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_TWILIO_AUTH_TOKEN' }) }),
    );
    expect(
      loadConfig({ SLS_SMS_PROVIDER: 'twilio', SLS_TWILIO_ACCOUNT_SID: 'AC1', SLS_TWILIO_AUTH_TOKEN: 't', SLS_TWILIO_FROM: '+15005550006' }).delivery.sms,
    ).toMatchObject({ provider: 'twilio', baseUrl: 'https://api.twilio.com', timeoutMs: 10_000 });
  });
});
