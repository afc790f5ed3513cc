/**
 * SMS and voice (M1–M7, N1) through the real HTTP stack, services and
 * database, with the development outbox as the delivery: mobile number
 * verification, automatic enrolment, SMS login, new codes by SMS or voice,
 * send limits, and security notices by SMS.
 */
import { formatMoment } from '../src/i18n/i18n.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MINUTE, SECOND } from '../src/clock.js';
import { outboxAudioPath } from '../src/delivery/speech.js';
import type { User } from '../src/identity/users.js';
import { DATABASES, PASSWORD, cardAnswer, createUser, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, claimOf, get, postJson, startLogin, stepUp, type ApiResponse } from './support/api.js';
import { espeakAvailable } from './support/environment.js';

const FR_MOBILE = { country: 'FR', number: '612345678' };

/** A French mobile number of its own, so that tests do not share send limits. */
let numbers = 0;
function newMobile(): { country: string; number: string } {
  numbers += 1;
  return { country: 'FR', number: `6${String(10_000_000 + numbers * 7919 + Math.floor(Math.random() * 1000)).slice(-8)}` };
}

async function del(h: Harness, url: string, headers: Record<string, string>): Promise<ApiResponse> {
  const raw = await h.app.inject({ method: 'DELETE', url, headers });
  return { status: raw.statusCode, body: raw.body ? (raw.json() as ApiResponse['body']) : {}, headers: raw.headers, raw };
}

/** The last code of a kind sent to a user (from the outbox), and on which channel. */
async function lastCode(
  h: Harness,
  userId: string,
  template: 'loginCode' | 'confirmCode' = 'loginCode',
): Promise<{ code: string; channel: string; id: string; body: string; recipient: string }> {
  const [message] = (await h.services.notifier.list({ userId })).filter((n) => n.template === template);
  expect(message, 'a code was sent').toBeDefined();
  const code = /\b(\d{6})\b/.exec(message!.body)?.[1];
  expect(code, message!.body).toBeDefined();
  return { code: code!, channel: message!.channel, id: message!.id, body: message!.body, recipient: message!.recipient };
}

/** A user with a DSC+ signed in through the API, who just stepped up with the card (X7): their bearer headers. */
async function signedIn(h: Harness, user: User, card: Parameters<typeof cardAnswer>[0]): Promise<Record<string, string>> {
  const flow = await startLogin(h.app, user.username);
  const done = await answer(h.app, flow.body.id, cardAnswer(card, flow.body.challenge.question));
  expect(done.status).toBe(200);
  const headers = bearer(done.body.session.token);
  await stepUp(h.app, headers, (challenge) => cardAnswer(card, challenge.question));
  return headers;
}

const meta = { ip: null, language: 'en' as const };

/** A user without a device whose new number was sent a confirm code (M1), and that code. */
async function confirmationSent(h: Harness): Promise<{ user: User; phone: { id: string }; code: string }> {
  const user = await createUser(h.services);
  const phone = await h.services.phones.add(user.id, newMobile(), 'test', null);
  await h.services.phones.sendConfirmCode(user.id, phone.id, meta);
  return { user, phone, code: (await lastCode(h, user.id, 'confirmCode')).code };
}

/** A user whose mobile number is verified and who is enrolled in SMS (M2), through the services. */
async function smsUser(h: Harness, number = newMobile()): Promise<User> {
  const user = await createUser(h.services);
  const phone = await h.services.phones.add(user.id, number, 'test', null);
  await h.services.phones.sendConfirmCode(user.id, phone.id, { ip: null, language: 'en' });
  const { code } = await lastCode(h, user.id, 'confirmCode');
  const { enrolledDeviceId } = await h.services.phones.confirm(user.id, phone.id, code, { ip: null, language: 'en' });
  expect(enrolledDeviceId).not.toBeNull();
  return user;
}

describe.each(DATABASES)('SMS and voice on %s', (database) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(database);
  });
  afterAll(async () => {
    await h.close();
  });

  describe('mobile number verification (M1, M6)', () => {
    it('M6: a number with its trunk prefix is refused with a clear reason, in the language of the request', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const auth = await signedIn(h, user, card);
      const en = await postJson(h.app, '/api/v1/phones', { country: 'FR', number: '0612345678' }, auth);
      expect(en.status).toBe(400);
      expect(en.body.error).toEqual({ code: 'PHONE_INVALID', message: 'Enter the number without its leading 0: the country is chosen separately.' });
      const fr = await postJson(h.app, '/api/v1/phones', { country: 'FR', number: '06 12' }, { ...auth, 'accept-language': 'fr' });
      expect(fr.body.error.code).toBe('PHONE_INVALID');
      expect(fr.body.error.message).toMatch(/uniquement des chiffres/);
      const stored = await h.services.phones.list(user.id);
      expect(stored).toEqual([]);
    });

    it('M1: VERIFY sends a confirm code by SMS to the E.164 number; the code makes it "SMS Verified"', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const auth = await signedIn(h, user, card);
      const added = await postJson(h.app, '/api/v1/phones', FR_MOBILE, auth);
      expect(added.status).toBe(201);
      expect(added.body).toMatchObject({ country: 'FR', number: '+33 •••• ••78', verified: false, codePending: false });

      const verify = await postJson(h.app, `/api/v1/phones/${added.body.id}/verification`, {}, auth);
      expect(verify.status).toBe(200);
      expect(verify.body).toMatchObject({ delivery: 'sent', phone: { codePending: true } });
      const sent = await lastCode(h, user.id, 'confirmCode');
      expect(sent).toMatchObject({ channel: 'sms', recipient: '+33612345678' });
      expect(sent.body).toContain('confirm your mobile number');

      const wrong = await postJson(h.app, `/api/v1/phones/${added.body.id}/confirmation`, { code: sent.code === '000000' ? '111111' : '000000' }, auth);
      expect(wrong.status).toBe(400);
      expect(wrong.body.error).toMatchObject({ code: 'CODE_INVALID', attemptsLeft: 4 });

      const right = await postJson(h.app, `/api/v1/phones/${added.body.id}/confirmation`, { code: sent.code }, auth);
      expect(right.status).toBe(200);
      // M2 applies only without an active device: this user has a DSC+
      expect(right.body).toMatchObject({ phone: { verified: true, codePending: false }, enrolledDevice: null });
      const again = await postJson(h.app, `/api/v1/phones/${added.body.id}/confirmation`, { code: sent.code }, auth);
      expect(again.body.error.code).toBe('PHONE_ALREADY_VERIFIED');
      const listed = await get(h.app, '/api/v1/phones', auth);
      expect(listed.body.phones).toMatchObject([{ id: added.body.id, verified: true }]);
      const events = (await h.services.audit.list({ userId: user.id })).map((e) => e.event);
      expect(events).toEqual(expect.arrayContaining(['phone.added', 'phone.confirm_code_sent', 'phone.confirm_failed', 'phone.verified']));
    });

    it('M1: a new SMS may be requested only every 2 minutes; the answer says when', async () => {
      const { user, card } = await createUserWithCard(h.services);
      const auth = await signedIn(h, user, card);
      const added = await postJson(h.app, '/api/v1/phones', newMobile(), auth);
      const first = await postJson(h.app, `/api/v1/phones/${added.body.id}/verification`, {}, auth);
      const allowedAt = new Date(h.clock.now() + 2 * MINUTE).toISOString();
      expect(first.body.phone.resendAfter).toBe(allowedAt);
      const firstCode = (await lastCode(h, user.id, 'confirmCode')).code;

      h.clock.advance(119 * SECOND);
      const early = await postJson(h.app, `/api/v1/phones/${added.body.id}/verification`, {}, auth);
      expect(early.status).toBe(429);
      // issue 16: the message writes the time for people; the machine-readable time stays in the details
      expect(early.body.error).toMatchObject({
        code: 'SMS_TOO_SOON',
        message: `A new code can be requested only after ${formatMoment('en', Date.parse(allowedAt))}.`,
      });
      expect(early.body.error.message).not.toMatch(/\d{4}-\d{2}-\d{2}T/);
      const french = await postJson(
        h.app,
        `/api/v1/phones/${added.body.id}/verification`,
        {},
        { ...auth, 'accept-language': 'fr', cookie: 'sls_tz=Europe/Paris' },
      );
      expect(french.body.error.message).toBe(`Un nouveau code ne peut être demandé qu'après ${formatMoment('fr', Date.parse(allowedAt), 'Europe/Paris')}.`);

      h.clock.advance(1 * SECOND);
      const later = await postJson(h.app, `/api/v1/phones/${added.body.id}/verification`, {}, auth);
      expect(later.status).toBe(200);
      const secondCode = (await lastCode(h, user.id, 'confirmCode')).code;
      // the new code replaces the old one
      if (firstCode !== secondCode) {
        const old = await postJson(h.app, `/api/v1/phones/${added.body.id}/confirmation`, { code: firstCode }, auth);
        expect(old.body.error.code).toBe('CODE_INVALID');
      }
      const ok = await postJson(h.app, `/api/v1/phones/${added.body.id}/confirmation`, { code: secondCode }, auth);
      expect(ok.body.phone.verified).toBe(true);
    });

    it('M1, M7: a confirm code expires after 10 minutes and takes at most 5 tries', async () => {
      const { user, phone, code } = await confirmationSent(h);
      h.clock.advance(10 * MINUTE);
      await expect(h.services.phones.confirm(user.id, phone.id, code, meta)).rejects.toMatchObject({ code: 'CODE_EXPIRED' });

      await h.services.phones.sendConfirmCode(user.id, phone.id, meta);
      const fresh = (await lastCode(h, user.id, 'confirmCode')).code;
      const wrong = fresh === '999999' ? '999998' : '999999';
      for (let left = 4; left >= 1; left--) {
        await expect(h.services.phones.confirm(user.id, phone.id, wrong, meta)).rejects.toMatchObject({ code: 'CODE_INVALID', params: { attemptsLeft: left } });
      }
      await expect(h.services.phones.confirm(user.id, phone.id, wrong, meta)).rejects.toMatchObject({ code: 'CODE_EXPIRED' });
      // even the right code is refused once the tries are used up
      await expect(h.services.phones.confirm(user.id, phone.id, fresh, meta)).rejects.toMatchObject({ code: 'CODE_EXPIRED' });
    });

    it('M1: concurrent confirmations of the right code verify the number once', async () => {
      const { user, phone, code } = await confirmationSent(h);
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => h.services.phones.confirm(user.id, phone.id, code, meta)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const sms = (await h.services.devices.listForUser(user.id)).filter((d) => d.type === 'sms');
      expect(sms).toHaveLength(1);
    });

    it('M6: a user keeps at most 3 numbers, each once; removing a number revokes its SMS device unless it is the only device', async () => {
      const user = await smsUser(h);
      const [phone] = await h.services.phones.list(user.id);
      await expect(h.services.phones.add(user.id, { country: 'FR', number: phone!.e164.slice(3) }, 'test', null)).rejects.toMatchObject({
        code: 'PHONE_EXISTS',
      });
      await h.services.phones.add(user.id, { country: 'FR', number: '612345679' }, 'test', null);
      await h.services.phones.add(user.id, { country: 'HK', number: '91234567' }, 'test', null);
      await expect(h.services.phones.add(user.id, { country: 'GB', number: '7400123456' }, 'test', null)).rejects.toMatchObject({ code: 'PHONE_LIMIT' });

      await expect(h.services.phones.remove(user.id, phone!.id, 'test', null)).rejects.toMatchObject({ code: 'PHONE_IN_USE' });
      const { card } = await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
      const auth = await signedIn(h, user, card);
      const removed = await del(h, `/api/v1/phones/${phone!.id}`, auth);
      expect(removed.status).toBe(204);
      expect((await del(h, `/api/v1/phones/${phone!.id}`, auth)).body.error.code).toBe('PHONE_NOT_FOUND');
      const sms = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'sms');
      expect(sms?.state).toBe('revoked');
    });
  });

  describe('enrolment (M2)', () => {
    it('M2: a user with a verified number and no active device is enrolled in SMS and told so (N1)', async () => {
      const user = await smsUser(h, { country: 'FR', number: '612345678' });
      const devices = await h.services.devices.listForUser(user.id);
      expect(devices).toMatchObject([{ type: 'sms', state: 'active', label: '+33 •••• ••78' }]);
      const notices = await h.services.notifier.list({ userId: user.id });
      expect(
        notices
          .filter((n) => n.template === 'deviceEnrolled')
          .map((n) => n.channel)
          .sort(),
      ).toEqual(['email', 'sms']);
      expect((await h.services.audit.list({ userId: user.id })).map((e) => e.event)).toContain('device.enrolled');
    });

    it('M2: a new applicant confirms the number on record at the first login and starts on SMS', async () => {
      const user = await createUser(h.services);
      await h.services.phones.add(user.id, { country: 'HK', number: '91234567' }, 'signup', null);
      const flow = await startLogin(h.app, user.username);
      expect(flow.status).toBe(200);
      expect(flow.body.challenge).toMatchObject({ type: 'sms', confirmsNumber: true, delivery: 'sent', to: '+852 •••• ••67', digits: 6 });
      expect(flow.body.device).toMatchObject({ type: 'sms' });
      const { code, recipient } = await lastCode(h, user.id);
      expect(recipient).toBe('+85291234567');
      const done = await answer(h.app, flow.body.id, code);
      expect(done.status).toBe(200);
      expect(done.body.state).toBe('done');
      const [phone] = await h.services.phones.list(user.id);
      expect(phone!.verified).toBe(true);
      expect(await h.services.devices.listForUser(user.id)).toMatchObject([{ type: 'sms', state: 'active' }]);
    });

    it('M2: without a number on record, a user without a device still cannot log in', async () => {
      const user = await createUser(h.services);
      const flow = await startLogin(h.app, user.username);
      expect(flow.status).toBe(403);
      expect(flow.body.error.code).toBe('NO_ACTIVE_DEVICE');
    });
  });

  describe('SMS login (M4, M5, M7)', () => {
    it('M4, M7: after the password a 6-digit code goes by SMS; it logs in once, and the code is never in the flow', async () => {
      const user = await smsUser(h);
      const flow = await startLogin(h.app, user.username);
      expect(flow.body.challenge).toMatchObject({ type: 'sms', channel: 'sms', delivery: 'sent', sends: 1, confirmsNumber: false });
      const { code, channel } = await lastCode(h, user.id);
      expect(channel).toBe('sms');
      expect(code).toMatch(/^\d{6}$/);
      expect(JSON.stringify(flow.body)).not.toContain(code);
      const row = await h.services.store.db.selectFrom('login_flows').selectAll().where('id', '=', flow.body.id).executeTakeFirstOrThrow();
      expect(JSON.stringify(row)).not.toContain(code);

      const done = await answer(h.app, flow.body.id, code);
      expect(done.status).toBe(200);
      expect(done.body.session.token).toBeTruthy();
      // single use: the same flow is done, and a new login sends a new code
      expect((await answer(h.app, flow.body.id, code)).body.error.code).toBe('FLOW_EXPIRED');
      h.clock.advance(SECOND);
      const next = await startLogin(h.app, user.username);
      const replay = await answer(h.app, next.body.id, code);
      if ((await lastCode(h, user.id)).code !== code) expect(replay.body.error.code).toBe('LOGIN_FAILED');
    });

    it('M7: the code is valid for 10 minutes', async () => {
      const user = await smsUser(h);
      const late = await startLogin(h.app, user.username);
      const lateCode = (await lastCode(h, user.id)).code;
      h.clock.advance(10 * MINUTE);
      expect((await answer(h.app, late.body.id, lateCode)).body.error.code).toBe('FLOW_EXPIRED');

      const flow = await startLogin(h.app, user.username);
      const { code } = await lastCode(h, user.id);
      h.clock.advance(9 * MINUTE + 59 * SECOND);
      expect((await answer(h.app, flow.body.id, code)).status).toBe(200);
    });

    it('L4, M4: wrong codes count; the third ends the login', async () => {
      const user = await smsUser(h);
      const flow = await startLogin(h.app, user.username);
      const { code } = await lastCode(h, user.id);
      const wrong = code === '123456' ? '654321' : '123456';
      const first = await answer(h.app, flow.body.id, wrong);
      expect(first.status).toBe(401);
      expect(first.body.error).toMatchObject({ code: 'LOGIN_FAILED', attemptsLeft: 2 });
      await answer(h.app, flow.body.id, wrong);
      const third = await answer(h.app, flow.body.id, wrong);
      expect(third.body.error.attemptsLeft).toBe(0);
      expect((await answer(h.app, flow.body.id, code)).body.error.code).toBe('FLOW_EXPIRED');
    });

    it('M5: "Request new Security Code" by voice: an automated call reads a new code; the audio exists and its transcript carries the code', async () => {
      const user = await smsUser(h);
      const flow = await startLogin(h.app, user.username, PASSWORD, 'trading', { 'accept-language': 'fr' });
      const smsCode = (await lastCode(h, user.id)).code;
      h.clock.advance(30 * SECOND);
      const voice = await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'voice' }, { 'accept-language': 'fr', ...claimOf(flow) });
      expect(voice.status).toBe(200);
      expect(voice.body.challenge).toMatchObject({ type: 'sms', channel: 'voice', delivery: 'sent', sends: 2 });
      const call = await lastCode(h, user.id);
      expect(call.channel).toBe('voice');
      expect(call.body).toContain('Votre code de sécurité est');
      expect(call.body).toContain(call.code);
      const audio = outboxAudioPath(h.database.dataDir, call.id);
      if (espeakAvailable) {
        const wav = readFileSync(audio);
        expect(wav.subarray(0, 4).toString('ascii')).toBe('RIFF');
        expect(wav.subarray(8, 12).toString('ascii')).toBe('WAVE');
        // several seconds of speech, not an empty file
        expect(wav.length).toBeGreaterThan(50_000);
      } else {
        expect(existsSync(audio)).toBe(false);
      }
      // the new code replaces the SMS one
      if (smsCode !== call.code) expect((await answer(h.app, flow.body.id, smsCode)).body.error).toMatchObject({ code: 'LOGIN_FAILED', attemptsLeft: 2 });
      const done = await answer(h.app, flow.body.id, call.code);
      expect(done.status).toBe(200);
    });

    it('M7, D5: the audio of a voice code never outlives the code: a call whose purge was cut short (its row no longer sealed) and a file of a message gone are removed at the next purge; a live code keeps its audio until it expires', async () => {
      const user = await smsUser(h);
      const flow = await startLogin(h.app, user.username);
      h.clock.advance(30 * SECOND);
      expect((await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'voice' }, claimOf(flow))).status).toBe(200);
      const live = outboxAudioPath(h.database.dataDir, (await lastCode(h, user.id)).id);
      // without espeak-ng no audio is made: a file stands in for it
      if (!espeakAvailable) writeFileSync(live, 'RIFF', { mode: 0o600 });
      // an earlier call whose purge stopped between clearing its row and removing its audio (a crash), and a file of a message gone
      const other = await smsUser(h);
      const otherFlow = await startLogin(h.app, other.username);
      h.clock.advance(30 * SECOND);
      expect((await postJson(h.app, `/api/v1/login/${otherFlow.body.id}/code`, { channel: 'voice' }, claimOf(otherFlow))).status).toBe(200);
      const cutShort = (await lastCode(h, other.id)).id;
      const cutShortAudio = outboxAudioPath(h.database.dataDir, cutShort);
      if (!espeakAvailable) writeFileSync(cutShortAudio, 'RIFF', { mode: 0o600 });
      await h.services.store.db.updateTable('notifications').set({ sealed_body: null, sealed_until: null }).where('id', '=', cutShort).execute();
      const gone = outboxAudioPath(h.database.dataDir, 'ntf_gonegonegonegonegonegonegone');
      writeFileSync(gone, 'RIFF', { mode: 0o600 });

      await h.services.notifier.purgeExpiredCodes();
      expect(existsSync(cutShortAudio)).toBe(false);
      expect(existsSync(gone)).toBe(false);
      expect(existsSync(live)).toBe(true);
      h.clock.advance(11 * MINUTE);
      await h.services.notifier.purgeExpiredCodes();
      expect(existsSync(live)).toBe(false);
    });

    it('M5: a new code never resets the count of wrong answers, and waits 30 seconds after the last', async () => {
      const user = await smsUser(h);
      const flow = await startLogin(h.app, user.username);
      const { code } = await lastCode(h, user.id);
      const wrong = code === '111111' ? '222222' : '111111';
      await answer(h.app, flow.body.id, wrong);
      await answer(h.app, flow.body.id, wrong);
      const early = await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'sms' }, claimOf(flow));
      expect(early.status).toBe(429);
      expect(early.body.error.code).toBe('SMS_TOO_SOON');
      h.clock.advance(30 * SECOND);
      const again = await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'sms' }, claimOf(flow));
      expect(again.status).toBe(200);
      expect(again.body.attemptsLeft).toBe(1);
      const last = await answer(h.app, flow.body.id, (await lastCode(h, user.id)).code === wrong ? '333333' : wrong);
      expect(last.body.error.attemptsLeft).toBe(0);
    });

    it('M5, M7: one login sends at most 5 codes; concurrent requests send one', async () => {
      const user = await smsUser(h);
      const flow = await startLogin(h.app, user.username);
      h.clock.advance(30 * SECOND);
      const burst = await Promise.all(
        Array.from({ length: 4 }, () => postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'sms' }, claimOf(flow))),
      );
      expect(burst.filter((r) => r.status === 200)).toHaveLength(1);
      expect(burst.filter((r) => r.status === 429).every((r) => r.body.error.code === 'SMS_TOO_SOON')).toBe(true);
      for (let i = 0; i < 3; i++) {
        h.clock.advance(30 * SECOND);
        expect((await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: i % 2 ? 'voice' : 'sms' }, claimOf(flow))).status).toBe(200);
      }
      h.clock.advance(30 * SECOND);
      const sixth = await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'sms' }, claimOf(flow));
      expect(sixth.status).toBe(429);
      expect(sixth.body.error).toMatchObject({ code: 'SMS_RATE_LIMITED', message: 'No more codes can be sent for this login. Start over.' });
    });

    it("M6, L8, M4: a code sent to a number the user then removed logs in nobody (the number's SMS device is revoked with it)", async () => {
      const user = await smsUser(h);
      const [phone] = await h.services.phones.list(user.id);
      await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
      const sms = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'sms')!;
      const start = await startLogin(h.app, user.username);
      const flow =
        start.body.device.id === sms.id ? start : await postJson(h.app, `/api/v1/login/${start.body.id as string}`, { device: sms.id }, claimOf(start));
      expect(flow.body.challenge).toMatchObject({ type: 'sms', delivery: 'sent' });
      const { code } = await lastCode(h, user.id);
      await h.services.phones.remove(user.id, phone!.id, `user:${user.id}`, null);
      const late = await answer(h.app, start.body.id as string, code);
      expect([late.status, late.body.error?.code]).toEqual([409, 'DEVICE_NOT_AVAILABLE']);
      expect(late.body.session).toBeUndefined();
      const sessions = await h.services.store.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute();
      expect(sessions).toEqual([]);
    });

    it('M5: a login without SMS cannot ask for a code', async () => {
      const { user } = await createUserWithCard(h.services);
      const flow = await startLogin(h.app, user.username);
      const res = await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'voice' }, claimOf(flow));
      expect(res.status).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'FLOW_STATE', message: 'This login does not use a code sent by SMS.' });
      expect((await postJson(h.app, `/api/v1/login/${flow.body.id}/code`, { channel: 'fax' }, claimOf(flow))).status).toBe(400);
    });
  });

  it('D4, M4: an SMS device suspended for a temporary passcode is reactivated with a code sent to its number', async () => {
    const user = await smsUser(h);
    const agent = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.user.id, user.username, { verificationId: verification.id });
    const sms = (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'sms')!;
    expect(sms.state).toBe('suspended');
    const flow = await startLogin(h.app, user.username);
    const auth = bearer((await answer(h.app, flow.body.id, passcode)).body.session.token);
    h.clock.advance(SECOND);
    const proof = await postJson(h.app, `/api/v1/devices/${sms.id}/activation`, {}, auth);
    expect(proof.status).toBe(200);
    expect(proof.body.challenge).toMatchObject({ type: 'sms', delivery: 'sent' });
    const done = await postJson(h.app, `/api/v1/devices/${sms.id}/activation/${proof.body.id}`, { response: (await lastCode(h, user.id)).code }, auth);
    expect(done.status).toBe(200);
    const states = (await h.services.devices.listForUser(user.id)).map((d) => `${d.type}:${d.state}`);
    expect(states).toEqual(expect.arrayContaining(['sms:active', 'temp_passcode:revoked']));
  });

  describe('send limits (M7)', () => {
    it('M7: a number receives at most 10 codes an hour: the login says so and when to try again', async () => {
      const user = await smsUser(h, { country: 'FR', number: '698765432' });
      // the confirm code already went to this number (the notices of the number verified and of the enrolment do not count)
      const codes = async (limit = 50) =>
        (await h.services.notifier.list({ userId: user.id, limit })).filter(
          (n) => n.channel !== 'email' && n.template !== 'deviceEnrolled' && n.template !== 'phoneVerified',
        );
      const sentSoFar = (await codes()).length;
      expect(sentSoFar).toBe(1);
      const start = h.clock.now();
      for (let i = sentSoFar; i < 10; i++) {
        const flow = await startLogin(h.app, user.username);
        expect(flow.body.challenge.delivery, `message ${i + 1}`).toBe('sent');
        h.clock.advance(MINUTE);
      }
      const limited = await startLogin(h.app, user.username);
      expect(limited.status).toBe(200);
      expect(limited.body.challenge.delivery).toBe('limited');
      const firstSent = (await codes(100)).at(-1)!;
      expect(Date.parse(limited.body.challenge.resendAfter)).toBe(firstSent.createdAt + 60 * MINUTE);
      expect(firstSent.createdAt).toBeLessThanOrEqual(start);
      expect((await h.services.audit.list({ userId: user.id })).map((e) => e.event)).toContain('sms.rate_limited');
      h.clock.advance(60 * MINUTE);
      const later = await startLogin(h.app, user.username);
      expect(later.body.challenge.delivery).toBe('sent');
    });

    it('M7: the limit is per number, whoever asks: two users of one number share it', async () => {
      const number = { country: 'FR', number: '687654321' };
      const a = await smsUser(h, number);
      const b = await smsUser(h, number);
      // two confirm codes, then 8 login codes to a: the number's 10 for the hour
      for (let i = 0; i < 8; i++) {
        await startLogin(h.app, a.username);
        h.clock.advance(10 * SECOND);
      }
      const limited = await startLogin(h.app, b.username);
      expect(limited.body.challenge.delivery).toBe('limited');
      h.clock.advance(61 * MINUTE);
    });
    it('M7: the hourly limit of a user holds across their numbers: 10 codes in the hour in all, the 11th refused whichever number it goes to', async () => {
      const user = await createUser(h.services);
      const [a, b] = [newMobile(), newMobile()].map((m) => `+33${m.number}`) as [string, string];
      const code = (to: string) => ({ userId: user.id, to, channel: 'sms' as const, template: 'loginCode' as const, code: '123456', language: 'en' as const });
      for (let i = 0; i < 10; i++) {
        await h.services.smsCodes.send(code(i % 2 === 0 ? a : b));
        h.clock.advance(SECOND);
      }
      for (const to of [a, b]) await expect(h.services.smsCodes.send(code(to))).rejects.toMatchObject({ code: 'SMS_RATE_LIMITED' });
      h.clock.advance(61 * MINUTE);
    });

    it('M7: the daily limit of a user holds across their numbers: 30 codes in a day in all, spread over hours and numbers of its own, the 31st refused until the first leaves the day', async () => {
      const user = await createUser(h.services);
      const numbers = Array.from({ length: 4 }, () => `+33${newMobile().number}`);
      const code = (to: string) => ({ userId: user.id, to, channel: 'sms' as const, template: 'loginCode' as const, code: '123456', language: 'en' as const });
      // 10 an hour (the hourly limit), to four numbers (none reaches its own limits): 30 in three hours
      const first = h.clock.now();
      for (let hour = 0; hour < 3; hour++) {
        for (let i = 0; i < 10; i++) {
          await h.services.smsCodes.send(code(numbers[(hour * 10 + i) % numbers.length]!));
          h.clock.advance(SECOND);
        }
        h.clock.advance(61 * MINUTE);
      }
      const refused = await h.services.smsCodes.send(code(`+33${newMobile().number}`)).catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'SMS_RATE_LIMITED', params: { retryAfter: new Date(first + 24 * 60 * MINUTE).toISOString() } });
      h.clock.advance(first + 24 * 60 * MINUTE + SECOND - h.clock.now());
      expect((await h.services.smsCodes.send(code(numbers[0]!))).status).toBe('sent');
    });

    it('M7: two codes asked at once for one user, to two of their numbers, with one left in the hour: one is sent, the other refused (the count is the user’s, under one lock)', async () => {
      const user = await createUser(h.services);
      const [a, b] = [newMobile(), newMobile()].map((m) => `+33${m.number}`) as [string, string];
      const code = (to: string) => ({ userId: user.id, to, channel: 'sms' as const, template: 'loginCode' as const, code: '123456', language: 'en' as const });
      for (let i = 0; i < 9; i++) {
        await h.services.smsCodes.send(code(i % 2 === 0 ? a : b));
        h.clock.advance(SECOND);
      }
      // the second send starts while the first, its limits counted, writes its message: it either waits for a lock the
      // first holds (SQLite: the one writer), or counts beside it (the hole); the first goes on when either is known
      const { store, notifier } = h.services;
      const held = new Set<string>();
      let second: Promise<unknown> | null = null;
      let secondStarted = false;
      let known!: () => void;
      const secondWaitsOrCounted = new Promise<void>((resolve) => {
        known = resolve;
      });
      const seen = (name: string) => {
        if (!secondStarted) held.add(name);
        else if (held.has(name) || store.dialect === 'sqlite') known();
      };
      const { serialized, lockWithin } = store;
      const enqueue = notifier.enqueue.bind(notifier);
      store.serialized = (name, fn) => {
        seen(name);
        return serialized(name, fn);
      };
      store.lockWithin = (trx, name) => {
        seen(name);
        return lockWithin(trx, name);
      };
      notifier.enqueue = async (db, spec) => {
        if (spec.userId === user.id && !secondStarted) {
          secondStarted = true;
          second = h.services.smsCodes.send(code(b));
          await Promise.race([secondWaitsOrCounted, second.catch(() => undefined)]);
        } else if (spec.userId === user.id) known();
        return enqueue(db, spec);
      };
      try {
        const outcome = (sent: Promise<unknown>) =>
          sent.then(
            () => 'sent',
            (e: { code?: string }) => e.code,
          );
        const first = await outcome(h.services.smsCodes.send(code(a)));
        expect([first, await outcome(second!)]).toEqual(['sent', 'SMS_RATE_LIMITED']);
      } finally {
        Object.assign(store, { serialized, lockWithin });
        Reflect.deleteProperty(notifier, 'enqueue');
      }
      const codes = (await h.services.notifier.list({ userId: user.id, limit: 50 })).filter((n) => n.template === 'loginCode');
      expect(codes).toHaveLength(10);
      h.clock.advance(61 * MINUTE);
    });
  });

  it('W1: a user protected by SMS may withdraw USD 200,000 a day and 600,000 in 5 business days; the account page says so', async () => {
    const user = await smsUser(h);
    const flow = await startLogin(h.app, user.username);
    const done = await answer(h.app, flow.body.id, (await lastCode(h, user.id)).code);
    const limits = await get(h.app, '/api/v1/withdrawal-limits', bearer(done.body.session.token));
    expect(limits.body).toEqual({ device: 'sms', perDayUsd: 200_000, fiveBusinessDaysUsd: 600_000 });
    const page = await h.app.inject({ method: 'GET', url: '/account', cookies: { '__Host-sls_session': done.body.session.token } });
    expect(page.body).toContain('USD 200,000 a day, USD 600,000 in 5 business days');
  });

  describe('security notices by SMS (N1)', () => {
    it('N1: the lock notice reaches the verified mobile number as well as the e-mail address', async () => {
      const user = await smsUser(h, { country: 'FR', number: '611223344' });
      for (let i = 0; i < 10; i++) await startLogin(h.app, user.username, 'wrong password');
      const notices = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'userLocked');
      expect(notices.map((n) => [n.channel, n.recipient]).sort()).toEqual([
        ['email', user.email],
        ['sms', '+33611223344'],
      ]);
      expect(notices.find((n) => n.channel === 'sms')!.body).toMatch(
        new RegExp(`^Your user ${user.username} is locked until \\d{2}/\\d{2}/\\d{4}, \\d{2}:\\d{2} [AP]M UTC after 10 failed logins\\.`),
      );
    });

    it("N1, M7: security notices by SMS do not count against the number's code limits: after 12 notices the login code still goes out", async () => {
      const user = await smsUser(h, { country: 'FR', number: '655443322' });
      const full = await h.services.users.get(user.id);
      for (let i = 0; i < 12; i++) await h.services.notifier.notify(full, 'pushDenied', { username: user.username, ip: '192.0.2.1' });
      const sms = (await h.services.notifier.list({ userId: user.id, limit: 100 })).filter((n) => n.channel === 'sms' && n.template === 'pushDenied');
      expect(sms).toHaveLength(12);
      const flow = await startLogin(h.app, user.username);
      expect(flow.body.challenge).toMatchObject({ type: 'sms', delivery: 'sent' });
      await h.services.outbox.drain();
      expect(
        (await h.services.notifier.list({ userId: user.id, limit: 100 })).filter((n) => n.template === 'pushDenied').every((n) => n.status === 'sent'),
      ).toBe(true);
    });
  });
});

describe('the development outbox page and the mobile settings page (M1, M7)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('sqlite');
  });
  afterAll(async () => {
    await h.close();
  });

  it('M7: the outbox page shows the messages, codes included, when switched on (SLS_OUTBOX_PAGE=on); never when off, the default', async () => {
    const user = await smsUser(h);
    const shown = await h.app.inject({ method: 'GET', url: '/dev/outbox' });
    expect(shown.statusCode).toBe(200);
    expect(shown.body).toContain((await lastCode(h, user.id, 'confirmCode')).code);
    const audio = await h.app.inject({ method: 'GET', url: '/dev/outbox/ntf_aaaaaaaaaaaaaaaaaaaaaaaaaa/audio' });
    expect(audio.statusCode).toBe(404);

    const off = await startHarness('sqlite', { outboxPage: 'off' });
    try {
      const hidden = await off.app.inject({ method: 'GET', url: '/dev/outbox' });
      expect(hidden.statusCode).toBe(404);
      expect(hidden.body).not.toContain('confirm your mobile number');
    } finally {
      await off.close();
    }
  });

  it('M1: the settings page needs a session; its forms need the CSRF token', async () => {
    const page = await h.app.inject({ method: 'GET', url: '/settings/mobile' });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/login');
    const forged = await h.app.inject({
      method: 'POST',
      url: '/settings/mobile',
      payload: 'country=FR&number=612345678',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(forged.statusCode).toBe(403);
  });

  it('T3/M1: a session limited to the online card pages cannot change the mobile numbers', async () => {
    const { user } = await createUserWithCard(h.services);
    const agent = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.user.id, user.username, { verificationId: verification.id });
    h.clock.advance(3 * 24 * 60 * MINUTE);
    const flow = await startLogin(h.app, user.username);
    const done = await answer(h.app, flow.body.id, passcode);
    expect(done.body.state).toBe('done');
    const res = await postJson(h.app, '/api/v1/phones', newMobile(), bearer(done.body.session.token));
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('SCOPE_ONLINE_CARD_ONLY');
  });
});
