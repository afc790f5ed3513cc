import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSmtp, testCertificate } from '../../test/support/fake-smtp.js';
import { closedPort, deliveryFailure as failure } from '../../test/support/delivery.js';
import type { FakeSmtp, FakeSmtpOptions } from '../../test/support/fake-smtp.js';
import type { OutgoingMessage } from './provider.js';
import { withRetry } from './retry.js';
import { smtpDeliveryError, smtpProvider } from './smtp.js';
import type { SmtpOptions } from './smtp.js';

const FROM = 'Secure Login <no-reply@sls.example>';

let fake: FakeSmtp | undefined;
const servers: Server[] = [];
afterEach(async () => {
  await fake?.close();
  fake = undefined;
  for (const server of servers.splice(0)) await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function start(options: FakeSmtpOptions = {}): Promise<FakeSmtp> {
  fake = await startFakeSmtp(options);
  return fake;
}

function provider(server: { host: string; port: number }, overrides: Partial<SmtpOptions> = {}) {
  return smtpProvider({ host: server.host, port: server.port, secure: false, tls: 'none', from: FROM, timeoutMs: 2_000, ...overrides });
}

function email(overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  return {
    id: 'ntf_mail',
    channel: 'email',
    recipient: 'alice@example.com',
    subject: 'A temporary passcode was issued',
    body: 'A temporary passcode was issued for your account.\nIf this was not you, call the help desk.',
    language: 'en',
    ...overrides,
  };
}

async function listen(onConnection: (socket: Socket) => void): Promise<{ host: string; port: number }> {
  const server = createServer(onConnection);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
}

describe('N1: security notices by e-mail through SMTP', () => {
  it('N1: a notice is delivered with its recipient, sender, subject and plain-text body', async () => {
    const smtp = await start();
    await provider(smtp).deliver(email());
    expect(smtp.messages).toHaveLength(1);
    const mail = smtp.messages[0]!;
    expect(mail.mailFrom).toBe('no-reply@sls.example');
    expect(mail.rcptTo).toEqual(['alice@example.com']);
    expect(mail.headers.to).toBe('alice@example.com');
    expect(mail.headers.from).toBe('Secure Login <no-reply@sls.example>');
    expect(mail.subject).toBe('A temporary passcode was issued');
    expect(mail.headers['content-type']).toMatch(/^text\/plain; charset=utf-8/i);
    expect(mail.headers['content-language']).toBe('en');
    expect(mail.text).toBe('A temporary passcode was issued for your account.\nIf this was not you, call the help desk.');
    expect(mail.user).toBeUndefined();
  });

  it('X6: every message says it was sent automatically (Auto-Submitted, RFC 3834) and carries the notice id as its Message-ID', async () => {
    const smtp = await start();
    await provider(smtp).deliver(email({ id: 'ntf_abc123' }));
    expect(smtp.messages[0]!.headers['auto-submitted']).toBe('auto-generated');
    expect(smtp.messages[0]!.headers['message-id']).toBe('<ntf_abc123@sls.example>');
  });

  it.each([
    ['fr', 'Un code temporaire a été émis', 'Bonjour Éloïse,\nun code temporaire a été émis — pas vous ? Appelez-nous.'],
    ['zh-Hant', '已發出臨時密碼', '您好，\n您的賬戶已發出臨時密碼。如非本人操作，請致電客服。'],
  ] as const)('N1: %s subject and body arrive intact (UTF-8)', async (language, subject, body) => {
    const smtp = await start();
    await provider(smtp).deliver(email({ language, subject, body }));
    const mail = smtp.messages[0]!;
    expect(mail.subject).toBe(subject);
    expect(mail.text).toBe(body);
    expect(mail.headers['content-language']).toBe(language);
  });

  it('N1: a notice without a subject is sent with an empty one', async () => {
    const smtp = await start();
    await provider(smtp).deliver(email({ subject: null }));
    expect(smtp.messages[0]!.subject).toBe('');
  });

  it('N1: it logs in when a user is configured', async () => {
    const smtp = await start({ user: 'sls', pass: 's3cret-pass' });
    await provider(smtp, { user: 'sls', pass: 's3cret-pass' }).deliver(email());
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]!.user).toBe('sls');
  });

  it('N1: a refused login (535) is not retryable, and the password is not in the error', async () => {
    const smtp = await start({ user: 'sls', pass: 's3cret-pass' });
    const error = await failure(provider(smtp, { user: 'sls', pass: 'wrong-pass-value' }).deliver(email()));
    expect(error).toMatchObject({ provider: 'smtp', retryable: false, status: 535, code: '5.7.8' });
    expect(error.message).toBe('smtp: refused with 535 5.7.8 at AUTH');
    expect([error.message, error.stack, JSON.stringify(error)].join()).not.toMatch(/wrong-pass-value|s3cret/);
    expect(smtp.messages).toEqual([]);
  });

  it('N1: a rejected recipient (550) is not retryable', async () => {
    const smtp = await start();
    smtp.rejectNext(1, 550, '5.1.1 <alice@example.com>: Recipient address rejected');
    const error = await failure(provider(smtp).deliver(email()));
    expect(error).toMatchObject({ retryable: false, status: 550, code: '5.1.1' });
    expect(error.message).toBe('smtp: refused with 550 5.1.1 at RCPT TO');
    expect(error.message).not.toContain('alice@example.com');
    expect(smtp.messages).toEqual([]);
  });

  it('N1: a message refused after DATA (554) is not retryable, and its text is not in the error', async () => {
    const smtp = await start();
    smtp.rejectNext(1, 554, '5.6.0 Message content rejected', 'data');
    const error = await failure(provider(smtp).deliver(email({ body: 'Your code is 482913' })));
    expect(error).toMatchObject({ retryable: false, status: 554 });
    expect([error.message, error.stack, JSON.stringify(error)].join()).not.toContain('482913');
  });

  it('N1: a temporary refusal (451) is retryable', async () => {
    const smtp = await start();
    smtp.rejectNext(1, 451, '4.3.0 Try again later');
    const error = await failure(provider(smtp).deliver(email()));
    expect(error).toMatchObject({ retryable: true, status: 451, code: '4.3.0' });
  });

  it('N1: a refused connection is retryable', async () => {
    const error = await failure(provider({ host: '127.0.0.1', port: await closedPort() }).deliver(email()));
    expect(error.retryable).toBe(true);
    expect(error.code).toMatch(/^(ECONNECTION|ECONNREFUSED|ESOCKET)$/);
    expect(error.status).toBeUndefined();
  });

  it.each(['connect', 'data'] as const)('N1: a connection dropped on %s is retryable', async (stage) => {
    const smtp = await start();
    smtp.dropNext(1, stage);
    const error = await failure(provider(smtp).deliver(email()));
    expect(error.retryable).toBe(true);
    expect(error.status).toBeUndefined();
    expect(smtp.messages).toEqual([]);
  });

  it('N1: a server that never greets times out, retryable', async () => {
    const silent = await listen(() => undefined);
    const started = Date.now();
    const error = await failure(provider(silent, { timeoutMs: 200 }).deliver(email()));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error).toMatchObject({ retryable: true, code: 'ETIMEDOUT' });
  });

  it('N1: a recipient that is not one plain address is refused without connecting', async () => {
    const smtp = await start();
    for (const recipient of ['alice@example.com, mallory@evil.example', 'Alice <alice@example.com>', 'alice@example.com\r\nBcc: x@y.z', 'not-an-address']) {
      const error = await failure(provider(smtp).deliver(email({ recipient })));
      expect(error.retryable).toBe(false);
    }
    expect((await failure(provider(smtp).deliver(email({ channel: 'sms', recipient: '+33612345678' })))).retryable).toBe(false);
    expect(smtp.connections).toBe(0);
  });

  it('N1: withRetry over SMTP recovers after 2 dropped connections with one message delivered', async () => {
    const smtp = await start();
    smtp.dropNext(2);
    const waits: number[] = [];
    await withRetry(provider(smtp), { attempts: 3, baseDelayMs: 10, sleep: async (ms) => void waits.push(ms) }).deliver(email());
    expect(smtp.connections).toBe(3);
    expect(smtp.messages).toHaveLength(1);
    expect(waits).toEqual([10, 20]);
  });

  it('N1: withRetry over SMTP gives up on a 550 at once', async () => {
    const smtp = await start();
    smtp.rejectNext(1, 550);
    const error = await failure(withRetry(provider(smtp), { attempts: 3, baseDelayMs: 1, sleep: async () => undefined }).deliver(email()));
    expect(error.status).toBe(550);
    expect(smtp.connections).toBe(1);
  });

  it('N1: only codes are kept from a nodemailer error', () => {
    const error = smtpDeliveryError(
      Object.assign(new Error('Invalid login: 535 pass=hunter2'), {
        code: 'EAUTH',
        responseCode: 535,
        response: '535 5.7.8 pass=hunter2',
        command: 'AUTH PLAIN',
      }),
    );
    expect(error.message).toBe('smtp: refused with 535 5.7.8 at AUTH');
    expect(smtpDeliveryError(new Error('weird')).message).toBe('smtp: failed (EUNKNOWN)');
    expect(smtpDeliveryError(Object.assign(new Error('x'), { code: 'ETIMEDOUT' }))).toMatchObject({ retryable: true, code: 'ETIMEDOUT' });
    expect(smtpDeliveryError(Object.assign(new Error('x'), { code: 'ETLS' }))).toMatchObject({ retryable: false, code: 'ETLS' });
  });
});

describe('X6: SMTP transport security (SLS_SMTP_TLS)', () => {
  let certificate: { key: string; cert: string };
  const CREDENTIALS = { user: 'sls', pass: 'relay-s3cret-pass' };
  beforeAll(() => {
    certificate = testCertificate();
  });

  function tlsProvider(smtp: FakeSmtp, tls: 'required' | 'starttls' | 'none', overrides: Partial<SmtpOptions> = {}) {
    return provider(smtp, { tls, ca: certificate.cert, ...overrides });
  }

  it('X6: required refuses a relay that offers no STARTTLS: nothing is sent, the password never goes in clear', async () => {
    const smtp = await start(CREDENTIALS);
    const error = await failure(tlsProvider(smtp, 'required', CREDENTIALS).deliver(email()));
    expect(error).toMatchObject({ provider: 'smtp', retryable: false, code: 'ETLS' });
    expect(smtp.authAttempts).toEqual([]);
    expect(smtp.messages).toEqual([]);
    expect([error.message, error.stack].join()).not.toContain(CREDENTIALS.pass);
  });

  it('X6: required upgrades with STARTTLS, checks the certificate, then logs in and sends', async () => {
    const smtp = await start({ ...CREDENTIALS, tls: certificate });
    await tlsProvider(smtp, 'required', CREDENTIALS).deliver(email());
    expect(smtp.authAttempts).toEqual([{ secure: true }]);
    expect(smtp.messages).toMatchObject([{ secure: true, user: 'sls' }]);
  });

  it('X6: required refuses a relay whose certificate is not trusted', async () => {
    const smtp = await start({ tls: certificate });
    const error = await failure(provider(smtp, { tls: 'required' }).deliver(email()));
    expect(error).toMatchObject({ retryable: false, code: 'ETLS' });
    expect(error.message).toBe("smtp: the relay's certificate is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)");
    expect(smtp.messages).toEqual([]);
  });

  it('X6: starttls is opportunistic: TLS when the relay offers it, plain text when it does not', async () => {
    const offering = await start({ tls: certificate });
    await tlsProvider(offering, 'starttls').deliver(email());
    expect(offering.messages).toMatchObject([{ secure: true }]);
    await offering.close();
    const plain = await start();
    await tlsProvider(plain, 'starttls').deliver(email());
    expect(plain.messages).toMatchObject([{ secure: false }]);
  });

  it('X6: none never tries STARTTLS, even when offered', async () => {
    const smtp = await start({ tls: certificate });
    await tlsProvider(smtp, 'none').deliver(email());
    expect(smtp.messages).toMatchObject([{ secure: false }]);
  });
});
