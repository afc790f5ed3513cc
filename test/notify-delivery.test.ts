/**
 * Notices through the outbox (N1, X6, M7) on a real database and a local
 * SMTP server speaking the protocol (test/support/fake-smtp.ts): a notice
 * is only stored by the action that causes it, and the outbox worker
 * delivers it, with retries and backoff, exactly once across workers; a
 * relay that never answers holds up nothing; times are written in the
 * user's language and time zone. The same suite runs on SQLite and, when
 * configured, PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../src/config.js';
import { createServices, type Services } from '../src/services.js';
import { HOUR, SECOND } from '../src/clock.js';
import { DATABASES, createUser, createUserWithCard, startHarness, testConfig, type Harness } from './support/harness.js';
import { startLogin } from './support/api.js';
import { startFakeSmtp, type FakeSmtp } from './support/fake-smtp.js';

const RETRY_BASE = 30 * SECOND;

function smtpConfig(smtp: FakeSmtp, overrides: Partial<Config['outbox']> = {}): Partial<Config> {
  const base = loadConfig({});
  return {
    delivery: {
      email: { provider: 'smtp', host: smtp.host, port: smtp.port, secure: false, tls: 'none', from: 'sls@example.test', timeoutMs: 5000 },
      sms: { provider: 'outbox' },
      retry: { attempts: 1, baseDelayMs: 1 },
    },
    outbox: { ...base.outbox, retryBaseMs: RETRY_BASE, retryMaxMs: HOUR, maxAttempts: 4, ...overrides },
  };
}

/** The notices' rows of a user, oldest first. */
async function rows(h: Harness, userId: string) {
  return h.services.store.db.selectFrom('notifications').selectAll().where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute();
}

describe.each(DATABASES)('the outbox worker (%s)', (db) => {
  let smtp: FakeSmtp;
  let h: Harness;

  beforeAll(async () => {
    smtp = await startFakeSmtp();
    h = await startHarness(db, smtpConfig(smtp));
  });
  afterAll(async () => {
    await h.close();
    await smtp.close();
  });

  it('N1, X6: a notice is only stored by the action that causes it, then the worker delivers it once', async () => {
    const { user } = await createUserWithCard(h.services);
    const before = smtp.messages.length;
    const stored = await h.services.notifier.notify(user, 'passwordChanged', { username: user.username });
    expect(stored).toMatchObject([{ channel: 'email', status: 'pending', attempts: 0, nextAttemptAt: h.clock.now() }]);
    expect(smtp.messages.length).toBe(before);

    expect(await h.services.outbox.drain()).toEqual({ sent: 1, retrying: 0, failed: 0 });
    const mail = smtp.messages.filter((m) => m.rcptTo.includes(user.email!));
    expect(mail).toHaveLength(1);
    expect(mail[0]).toMatchObject({ subject: 'Your password was changed' });
    expect(mail[0]!.headers['auto-submitted']).toBe('auto-generated');
    expect(mail[0]!.headers['message-id']).toBe(`<${stored[0]!.id}@example.test>`);
    expect(await h.services.notifier.get(stored[0]!.id)).toMatchObject({
      status: 'sent',
      attempts: 1,
      nextAttemptAt: null,
      sentAt: h.clock.now(),
      provider: 'smtp',
    });
    // nothing is due any more: a second run sends nothing
    expect(await h.services.outbox.drain()).toEqual({ sent: 0, retrying: 0, failed: 0 });
    expect(smtp.messages.filter((m) => m.rcptTo.includes(user.email!))).toHaveLength(1);
  });

  it('X6: a relay that fails twice (451) then takes the notice: retried with doubling waits, delivered once', async () => {
    const { user } = await createUserWithCard(h.services);
    smtp.rejectNext(2, 451, '4.3.0 Try again later');
    const [notice] = await h.services.notifier.notify(user, 'tempPasscodeRevoked', { username: user.username });
    const t0 = h.clock.now();

    expect(await h.services.outbox.drain()).toEqual({ sent: 0, retrying: 1, failed: 0 });
    expect(await h.services.notifier.get(notice!.id)).toMatchObject({
      status: 'pending',
      attempts: 1,
      nextAttemptAt: t0 + RETRY_BASE,
      error: 'smtp: refused with 451 4.3.0 at RCPT TO',
    });
    // not before its time
    h.clock.advance(RETRY_BASE - 1);
    expect(await h.services.outbox.drain()).toEqual({ sent: 0, retrying: 0, failed: 0 });
    h.clock.advance(1);
    expect(await h.services.outbox.drain()).toEqual({ sent: 0, retrying: 1, failed: 0 });
    expect(await h.services.notifier.get(notice!.id)).toMatchObject({ status: 'pending', attempts: 2, nextAttemptAt: h.clock.now() + 2 * RETRY_BASE });
    h.clock.advance(2 * RETRY_BASE);
    expect(await h.services.outbox.drain()).toEqual({ sent: 1, retrying: 0, failed: 0 });
    expect(await h.services.notifier.get(notice!.id)).toMatchObject({ status: 'sent', attempts: 3, error: null, nextAttemptAt: null });
    expect(smtp.messages.filter((m) => m.rcptTo.includes(user.email!))).toHaveLength(1);
  });

  it('X6: a refusal that will not pass (550) fails at once; a relay that keeps failing is given up after the last attempt', async () => {
    const refused = await createUser(h.services);
    smtp.rejectNext(1, 550);
    const [first] = await h.services.notifier.notify(refused, 'passwordChanged', { username: refused.username });
    expect(await h.services.outbox.drain()).toEqual({ sent: 0, retrying: 0, failed: 1 });
    expect(await h.services.notifier.get(first!.id)).toMatchObject({ status: 'failed', attempts: 1, nextAttemptAt: null, error: expect.stringMatching(/550/) });

    const unlucky = await createUser(h.services);
    smtp.rejectNext(4, 421, '4.4.2 Busy');
    const [second] = await h.services.notifier.notify(unlucky, 'passwordChanged', { username: unlucky.username });
    for (let attempt = 1; attempt <= 4; attempt++) {
      await h.services.outbox.drain();
      h.clock.advance(HOUR);
    }
    expect(await h.services.notifier.get(second!.id)).toMatchObject({
      status: 'failed',
      attempts: 4,
      nextAttemptAt: null,
      error: expect.stringMatching(/421/),
    });
    expect(smtp.messages.filter((m) => m.rcptTo.includes(unlucky.email!) || m.rcptTo.includes(refused.email!))).toEqual([]);
  });

  it('X6: two workers (two services on one database) deliver each notice exactly once', async () => {
    const other: Services = await createServices(testConfig(h.database, { ...smtpConfig(smtp, { concurrency: 3 }) }), {
      clock: h.clock,
      warn: () => undefined,
    });
    try {
      const users = await Promise.all(Array.from({ length: 8 }, () => createUser(h.services)));
      const notices = (await Promise.all(users.map((u) => h.services.notifier.notify(u, 'passwordReset', { username: u.username })))).flat();
      expect(notices).toHaveLength(8);
      const reports = await Promise.all([h.services.outbox.drain(), other.outbox.drain(), h.services.outbox.drain(), other.outbox.drain()]);
      expect(reports.reduce((n, r) => n + r.sent, 0)).toBe(8);
      const ids = notices.map((n) => `<${n.id}@example.test>`);
      const delivered = smtp.messages.map((m) => m.headers['message-id']).filter((id) => ids.includes(id!));
      expect(delivered.sort()).toEqual([...ids].sort());
      for (const n of notices) expect(await h.services.notifier.get(n.id)).toMatchObject({ status: 'sent', attempts: 1 });
    } finally {
      await other.close();
    }
  });

  it('N1: a French user locked after 10 wrong passwords is told the time in French and in their time zone, never as a raw ISO time', async () => {
    const { user } = await createUserWithCard(h.services);
    await h.services.users.setNoticePreferences(user.id, { language: 'fr', timeZone: 'Europe/Paris' }, 'test');
    await h.services.phones.add(user.id, { country: 'FR', number: '611223355' }, 'test', null);
    await h.services.store.db.updateTable('phones').set({ verified_at: h.clock.now() }).where('user_id', '=', user.id).execute();
    // the lock lasts 24 hours after the last failure; Paris is UTC+1 in winter
    h.clock.set(Date.UTC(2027, 0, 5, 9, 0));
    for (let i = 0; i < 10; i++) await startLogin(h.app, user.username, 'wrong password');
    const [email, sms] = (await rows(h, user.id)).filter((r) => r.template === 'userLocked').sort((a, b) => a.channel.localeCompare(b.channel));
    expect(email).toMatchObject({ channel: 'email', language: 'fr', subject: 'Votre utilisateur est bloqué' });
    expect(email!.body).toContain(`votre utilisateur ${user.username} est bloqué jusqu'au 6 janvier 2027 à 10:00 UTC+1.`);
    expect(sms).toMatchObject({ channel: 'sms', language: 'fr' });
    expect(sms!.body).toContain(`bloqué jusqu'au 06/01/2027 10:00 UTC+1.`);
    for (const row of [email!, sms!]) expect(`${row.subject ?? ''} ${row.body}`).not.toMatch(/\d{4}-\d{2}-\d{2}(T|\b)/);
    await h.services.outbox.drain();
    const mail = smtp.messages.find((m) => m.rcptTo.includes(user.email!))!;
    expect(mail.headers['content-language']).toBe('fr');
    expect(mail.text).toContain('6 janvier 2027 à 10:00 UTC+1');
  });

  it('N1: without preferences a notice is in the server language, with times in SLS_TIME_ZONE', async () => {
    const zoned = await startHarness(db, { ...smtpConfig(smtp), timeZone: 'Asia/Taipei', defaultLanguage: 'zh-Hant' });
    try {
      const { user } = await createUserWithCard(zoned.services);
      for (let i = 0; i < 10; i++) await startLogin(zoned.app, user.username, 'wrong password');
      const [row] = (await rows(zoned, user.id)).filter((r) => r.template === 'userLocked');
      expect(row).toMatchObject({ language: 'zh-Hant', subject: '您的用戶已被鎖定' });
      expect(row!.body).toContain('2026年1月6日 下午05:00 [GMT+8]');
    } finally {
      await zoned.close();
    }
  });
});

describe('a relay that never answers (L1, N1, X6)', () => {
  let smtp: FakeSmtp;
  let h: Harness;

  beforeAll(async () => {
    smtp = await startFakeSmtp();
    h = await startHarness('sqlite', smtpConfig(smtp));
    h.services.outbox.start();
  });
  afterAll(async () => {
    smtp.release();
    await h.close();
    await smtp.close();
  });

  it("L1, N1, X6: the 10th wrong password of an existing user is answered like an unknown user's while the relay still holds the lock notice's connection", async () => {
    const { user } = await createUserWithCard(h.services);
    const stranger = 'nobody0unknown';
    smtp.hold();
    for (let i = 0; i < 9; i++) {
      expect((await startLogin(h.app, user.username, 'wrong password')).status).toBe(401);
      expect((await startLogin(h.app, stranger, 'wrong password')).status).toBe(401);
    }
    const existing = await startLogin(h.app, user.username, 'wrong password');
    const unknown = await startLogin(h.app, stranger, 'wrong password');
    expect([existing.status, existing.body]).toEqual([unknown.status, unknown.body]);
    expect(existing.body.error.code).toBe('INVALID_CREDENTIALS');

    // the answer is here; the worker's connection to the relay is still waiting for a greeting
    await smtp.whenHeld(1);
    expect(smtp.held).toBe(1);
    expect(smtp.messages.filter((m) => m.rcptTo.includes(user.email!))).toEqual([]);
    const [notice] = (await rows(h, user.id)).filter((r) => r.template === 'userLocked');
    expect(notice).toMatchObject({ status: 'sending', attempts: 1 });

    smtp.release();
    await smtp.whenMessages(1);
    await h.services.outbox.stop();
    expect(smtp.messages.filter((m) => m.rcptTo.includes(user.email!)).map((m) => m.subject)).toEqual(['Your user is locked']);
    expect(await h.services.notifier.get(notice!.id)).toMatchObject({ status: 'sent', attempts: 1 });
  });
});

describe('SMTP settings (X6)', () => {
  it('X6: TLS is required by default for a relay elsewhere, none for this machine; a password is never configured to go in clear', () => {
    const base = { SLS_EMAIL_PROVIDER: 'smtp', SLS_SMTP_FROM: 'sls@example.test' };
    expect(loadConfig({ ...base, SLS_SMTP_HOST: 'mail.example.net' }).delivery.email).toMatchObject({ tls: 'required', secure: false, port: 587 });
    expect(loadConfig({ ...base, SLS_SMTP_HOST: 'mail.example.net', SLS_SMTP_PORT: '465' }).delivery.email).toMatchObject({ tls: 'required', secure: true });
    expect(loadConfig({ ...base, SLS_SMTP_HOST: '127.0.0.1' }).delivery.email).toMatchObject({ tls: 'none' });
    expect(loadConfig({ ...base, SLS_SMTP_HOST: 'localhost', SLS_SMTP_USER: 'u', SLS_SMTP_PASS: 'p' }).delivery.email).toMatchObject({ tls: 'none' });
    expect(loadConfig({ ...base, SLS_SMTP_HOST: 'mail.example.net', SLS_SMTP_TLS: 'starttls' }).delivery.email).toMatchObject({ tls: 'starttls' });
    expect(loadConfig({ ...base, SLS_SMTP_HOST: 'mail.example.net', SLS_SMTP_TLS: 'none' }).delivery.email).toMatchObject({ tls: 'none' });
    for (const tls of ['starttls', 'none']) {
      expect(() => loadConfig({ ...base, SLS_SMTP_HOST: 'mail.example.net', SLS_SMTP_TLS: tls, SLS_SMTP_USER: 'u', SLS_SMTP_PASS: 'p' })).toThrowError(
        expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_SMTP_TLS' }) }),
      );
    }
    expect(() => loadConfig({ ...base, SLS_SMTP_HOST: 'mail.example.net', SLS_SMTP_TLS: 'maybe' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    );
    expect(() => loadConfig({ SLS_EMAIL_PROVIDER: 'smtp' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_SMTP_HOST' }) }),
    );
    expect(() => loadConfig({ SLS_TIME_ZONE: 'Mars/Olympus' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_TIME_ZONE' }) }),
    );
    expect(loadConfig({}).delivery.email).toEqual({ provider: 'outbox' });
  });
});
