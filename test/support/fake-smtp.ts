/**
 * A local SMTP server (smtp-server) recording what it is sent, for the
 * e-mail provider's tests (N1, M7, X6). Plain text without STARTTLS unless
 * given a certificate (`tls`). Authentication is optional unless a user is
 * given; every AUTH attempt is counted, whether over TLS or not. It can
 * refuse the next messages with a reply code (at RCPT TO or after DATA),
 * drop the next connections, or hold new connections without a greeting
 * until released (a relay that never answers).
 *
 * Messages are parsed simply: one text part, headers unfolded and their
 * encoded words decoded, the body decoded from quoted-printable or base64.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerError, SMTPServerSession } from 'smtp-server';

export interface RecordedMail {
  /** Envelope sender and recipients. */
  mailFrom: string;
  rcptTo: string[];
  /** The user who logged in, if any. */
  user: string | undefined;
  /** Whether the session was under TLS (STARTTLS) when the message came. */
  secure: boolean;
  /** Header names in lower case; values unfolded and decoded. */
  headers: Record<string, string>;
  subject: string;
  /** The decoded text body, line ends as \n (whatever the transfer encoding carried). */
  text: string;
  raw: string;
}

export type RejectStage = 'rcpt' | 'data';
export type DropStage = 'connect' | 'data';

export interface FakeSmtp {
  host: string;
  port: number;
  messages: RecordedMail[];
  /** Connections accepted so far (dropped ones included). */
  connections: number;
  /** AUTH attempts, and whether each came over TLS. */
  authAttempts: { secure: boolean }[];
  /** Connections waiting, unanswered, while held. */
  held: number;
  /** New connections get no greeting until release(). */
  hold(): void;
  /** Resolves once `count` connections wait, held. */
  whenHeld(count?: number): Promise<void>;
  /** Greets the held connections, and answers new ones normally again. */
  release(): void;
  /** Resolves when `count` messages have arrived in all. */
  whenMessages(count: number): Promise<void>;
  /** The next `count` messages are refused with `code` (e.g. 550) at RCPT TO or after DATA. */
  rejectNext(count: number, code?: number, text?: string, stage?: RejectStage): void;
  /** The next `count` connections are closed without a reply, on connecting or during DATA. */
  dropNext(count: number, stage?: DropStage): void;
  close(): Promise<void>;
}

export interface FakeSmtpOptions {
  /** When set, AUTH is required and must match. */
  user?: string;
  pass?: string;
  /** A certificate and key (PEM): STARTTLS is offered. */
  tls?: { key: string; cert: string };
}

function decodeQuotedPrintable(text: string): Buffer {
  const soft = text.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < soft.length; i++) {
    const c = soft[i]!;
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(soft.slice(i + 1, i + 3))) {
      bytes.push(parseInt(soft.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

/** RFC 2047 encoded words (=?UTF-8?B?…?= and =?UTF-8?Q?…?=), adjacent ones joined. */
function decodeEncodedWords(value: string): string {
  return value
    .replace(/(\?=)\s+(=\?)/g, '$1$2')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_m, _charset: string, encoding: string, text: string) =>
      encoding.toUpperCase() === 'B' ? Buffer.from(text, 'base64').toString('utf8') : decodeQuotedPrintable(text.replace(/_/g, ' ')).toString('utf8'),
    );
}

export function parseMail(raw: string): { headers: Record<string, string>; text: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = split >= 0 ? raw.slice(0, split) : raw;
  const body = split >= 0 ? raw.slice(split + 4) : '';
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = decodeEncodedWords(line.slice(colon + 1).trim());
  }
  const encoding = (headers['content-transfer-encoding'] ?? '7bit').toLowerCase();
  let text: string;
  if (encoding === 'quoted-printable') text = decodeQuotedPrintable(body).toString('utf8');
  else if (encoding === 'base64') text = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  else text = body;
  return { headers, text: text.replace(/\r\n/g, '\n').replace(/\n$/, '') };
}

function smtpError(code: number, text: string): SMTPServerError {
  const error: SMTPServerError = new Error(text);
  error.responseCode = code;
  return error;
}

export async function startFakeSmtp(options: FakeSmtpOptions = {}): Promise<FakeSmtp> {
  const messages: RecordedMail[] = [];
  const rejections: { code: number; text: string; stage: RejectStage }[] = [];
  const drops: DropStage[] = [];
  const state = { connections: 0, holding: false };
  const authAttempts: { secure: boolean }[] = [];
  const held: (() => void)[] = [];
  const waiters: { ready: () => boolean; resolve: () => void }[] = [];
  const check = (): void => {
    for (const w of [...waiters]) {
      if (w.ready()) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const until = (ready: () => boolean): Promise<void> =>
    new Promise((resolve) => {
      waiters.push({ ready, resolve });
      check();
    });

  const server: SMTPServer = new SMTPServer({
    logger: false,
    disabledCommands: [...(options.tls ? [] : ['STARTTLS']), ...(options.user === undefined ? ['AUTH'] : [])],
    ...(options.tls ? { key: options.tls.key, cert: options.tls.cert } : {}),
    authOptional: options.user === undefined,
    allowInsecureAuth: true,
    size: 1024 * 1024,
    onConnect(session, callback) {
      state.connections++;
      if (drops[0] === 'connect') {
        drops.shift();
        return dropConnection(session);
      }
      if (state.holding) {
        held.push(() => callback());
        check();
        return;
      }
      callback();
    },
    onAuth(auth, session, callback) {
      authAttempts.push({ secure: session.secure });
      if (auth.username === options.user && auth.password === options.pass) return callback(null, { user: auth.username });
      callback(smtpError(535, '5.7.8 Authentication credentials invalid'));
    },
    onRcptTo(_address, _session, callback) {
      if (rejections[0]?.stage === 'rcpt') {
        const r = rejections.shift()!;
        return callback(smtpError(r.code, r.text));
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (drops[0] === 'data') {
          drops.shift();
          return dropConnection(session);
        }
        if (rejections[0]?.stage === 'data') {
          const r = rejections.shift()!;
          return callback(smtpError(r.code, r.text));
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        const { headers, text } = parseMail(raw);
        const user = session.user;
        messages.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          user: typeof user === 'string' ? user : undefined,
          secure: session.secure,
          headers,
          subject: headers.subject ?? '',
          text,
          raw,
        });
        callback();
        check();
      });
    },
  });
  server.on('error', () => undefined); // a dropped client is not a failure of the fake

  function dropConnection(session: SMTPServerSession): void {
    for (const connection of server.connections) {
      if (connection.session === session || connection.id === session.id) connection._socket.destroy();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;

  return {
    host: '127.0.0.1',
    port,
    messages,
    get connections() {
      return state.connections;
    },
    authAttempts,
    get held() {
      return held.length;
    },
    hold() {
      state.holding = true;
    },
    whenHeld(count = 1) {
      return until(() => held.length >= count);
    },
    release() {
      state.holding = false;
      for (const greet of held.splice(0)) {
        try {
          greet();
        } catch {
          // the client is gone (a killed process): nothing to greet
        }
      }
    },
    whenMessages(count) {
      return until(() => messages.length >= count);
    },
    rejectNext(count, code = 550, text = '5.1.1 Mailbox unavailable', stage = 'rcpt') {
      for (let i = 0; i < count; i++) rejections.push({ code, text, stage });
    },
    dropNext(count, stage = 'connect') {
      for (let i = 0; i < count; i++) drops.push(stage);
    },
    close() {
      for (const connection of server.connections) connection._socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A self-signed certificate for 127.0.0.1 and localhost (openssl), for a relay with STARTTLS. */
export function testCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sls-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
