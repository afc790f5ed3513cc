/**
 * Notices through a real gateway (N1, M7): with SLS_EMAIL_PROVIDER=smtp the
 * notices reach an SMTP server (a local one speaking the protocol); a
 * refusing server leaves the notice recorded as failed, and nothing else breaks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { loadConfig } from '../src/config.js';
import { createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { startFakeSmtp, type FakeSmtp } from './support/fake-smtp.js';

let smtp: FakeSmtp;
let h: Harness;

beforeAll(async () => {
  smtp = await startFakeSmtp();
  h = await startHarness('sqlite', {
    delivery: { email: { provider: 'smtp', host: smtp.host, port: smtp.port, secure: false, from: 'sls@example.test', timeoutMs: 5000 }, sms: { provider: 'outbox' }, retry: { attempts: 2, baseDelayMs: 1 } },
  });
});
afterAll(async () => {
  await h.close();
  await smtp.close();
});

describe('e-mail notices over SMTP (N1, M7)', () => {
  it('N1: a temporary passcode notice reaches the SMTP server, subject and body from the translation files', async () => {
    const { user } = await createUserWithCard(h.services);
    const agent = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(agent.user.id, user.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agent.user.id, user.username, { verificationId: verification.id });
    const mail = smtp.messages.find((m) => m.rcptTo.includes(user.email!));
    expect(mail).toMatchObject({ mailFrom: 'sls@example.test', subject: 'A temporary passcode was issued' });
    expect(mail!.text).toContain(`your user ${user.username}`);
    expect(mail!.text).not.toContain(passcode);
    const [notice] = await h.services.notifier.list({ userId: user.id });
    expect(notice).toMatchObject({ provider: 'smtp', status: 'sent', channel: 'email' });
  });

  it('M7: a refused message is recorded as failed with the reply code only; the action itself succeeds', async () => {
    const { user } = await createUserWithCard(h.services);
    smtp.rejectNext(1, 550);
    await h.services.users.setPassword(user.id, 'a brand new phrase', { actor: 'test', oneTime: false });
    const sent = await h.services.notifier.notify(user, 'passwordChanged', { username: user.username });
    expect(sent).toMatchObject([{ status: 'failed' }]);
    const [row] = await h.services.store.db.selectFrom('notifications').select(['status', 'error']).where('user_id', '=', user.id).execute();
    expect(row).toMatchObject({ status: 'failed' });
    expect(row!.error).toMatch(/550/);
  });

  it('M7: SMTP needs a host and a sender; a bad setting stops the start with its name', () => {
    expect(() => loadConfig({ SLS_EMAIL_PROVIDER: 'smtp' })).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_SMTP_HOST' }) }));
    expect(loadConfig({ SLS_EMAIL_PROVIDER: 'smtp', SLS_SMTP_HOST: 'mail.example', SLS_SMTP_FROM: 'a@b.c' }).delivery.email).toMatchObject({ provider: 'smtp', port: 587 });
    expect(loadConfig({}).delivery.email).toEqual({ provider: 'outbox' });
  });
});

describe('notices a phone waits for (N1, K7, K13)', () => {
  it('N1: a notice is stored at once and delivered in the background: a gateway that never answers does not hold up the answer', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const slow = await startHarness('sqlite', {
      delivery: { email: { provider: 'smtp', host: '127.0.0.1', port, secure: false, from: 'sls@example.test', timeoutMs: 60_000 }, sms: { provider: 'outbox' }, retry: { attempts: 1, baseDelayMs: 1 } },
    });
    try {
      const { user } = await createUserWithCard(slow.services);
      await slow.services.notifier.notifySoon(user, 'pushDenied', { username: user.username, ip: '192.0.2.1' });
      const [notice] = await slow.services.notifier.list({ userId: user.id });
      expect(notice).toMatchObject({ template: 'pushDenied', channel: 'email', status: 'pending' });
    } finally {
      await slow.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
