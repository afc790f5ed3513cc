/**
 * E-mail through an SMTP relay with nodemailer (N1, M7, X6): plain text, the
 * notice's subject and body, marked `Auto-Submitted: auto-generated`
 * (RFC 3834, so that vacation responders stay quiet) and with a Message-ID
 * made of the notice's id.
 *
 * TLS (`tls`), safe by default:
 * - `required`: TLS before anything else is said. Implicit TLS when `secure`
 *   (port 465); otherwise STARTTLS must be offered and succeed, or nothing is
 *   sent: no AUTH, no MAIL FROM. The relay's certificate is verified (against
 *   `ca` when given, else the system's roots); TLS 1.2 at least.
 * - `starttls`: opportunistic: STARTTLS when the relay offers it (then the
 *   certificate is verified as above), plain text when it does not.
 * - `none`: plain text, STARTTLS not even tried.
 * The configuration (src/config.ts) refuses a password with anything but
 * `required`, unless the relay is on this machine.
 *
 * Errors are DeliveryErrors: a refused connection, a dropped connection, a
 * timeout or a 4xx (transient) reply may be retried; a 5xx reply (unknown
 * recipient, refused sender, failed login) will not. Their messages hold the
 * reply code, the enhanced status and the SMTP stage only: never the
 * password, the message, or the server's reply text.
 */
import { lazyPackage } from '../lazy-package.js';
import type { DeliveryProvider, OutgoingMessage } from './provider.js';
import type { SmtpTlsMode } from '../config.js';
import { DeliveryError } from './retry.js';

export interface SmtpOptions {
  host: string;
  port: number;
  /** TLS from the start (port 465), with `tls: 'required'`. */
  secure: boolean;
  /** Whether TLS is required (default), opportunistic, or not used. */
  tls?: SmtpTlsMode;
  /** PEM certificates to trust for the relay (a private CA) instead of the system's. */
  ca?: string;
  user?: string;
  pass?: string;
  /** The sender, e.g. 'Secure Login <no-reply@example.com>'. */
  from: string;
  /** For connecting, the greeting, and each wait on the server. */
  timeoutMs: number;
}

const PROVIDER = 'smtp';

/** Network failures worth another attempt (nodemailer's and Node's codes). */
const RETRYABLE_CODES = new Set([
  'ECONNECTION',
  'ETIMEDOUT',
  'ESOCKET',
  'EDNS',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** One plain address, so a recipient can never add others or headers. */
const ADDRESS = /^[^\s@,;:<>"()[\]\\]+@[^\s@,;:<>"()[\]\\]+$/;

/** Node's certificate verification failures: the relay is not who it should be, which retrying will not change. */
const CERTIFICATE_CODES =
  /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET_ISSUER_CERT(_LOCALLY)?|VERIFY_LEAF_SIGNATURE)|CERT_[A-Z_]+|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)$/;

interface SmtpFailure {
  code?: unknown;
  originalCode?: unknown;
  responseCode?: unknown;
  response?: unknown;
  command?: unknown;
}

/** The DeliveryError for a nodemailer failure, keeping only codes. */
export function smtpDeliveryError(error: unknown): DeliveryError {
  const e = (error && typeof error === 'object' ? error : {}) as SmtpFailure;
  const code = typeof e.code === 'string' && /^[A-Z0-9_]{2,40}$/.test(e.code) ? e.code : undefined;
  const reply = typeof e.responseCode === 'number' && e.responseCode >= 200 && e.responseCode < 600 ? e.responseCode : undefined;
  const stage = typeof e.command === 'string' ? /^(CONN|EHLO|HELO|STARTTLS|AUTH|MAIL FROM|RCPT TO|DATA)/i.exec(e.command)?.[1]?.toUpperCase() : undefined;
  if (reply !== undefined) {
    const enhanced = typeof e.response === 'string' ? /\b[245]\.\d{1,3}\.\d{1,3}\b/.exec(e.response)?.[0] : undefined;
    return new DeliveryError(PROVIDER, `refused with ${reply}${enhanced ? ` ${enhanced}` : ''}${stage ? ` at ${stage}` : ''}`, {
      retryable: reply >= 400 && reply < 500,
      status: reply,
      ...((enhanced ?? code) ? { code: enhanced ?? code } : {}),
    });
  }
  if (typeof e.originalCode === 'string' && CERTIFICATE_CODES.test(e.originalCode)) {
    return new DeliveryError(PROVIDER, `the relay's certificate is not trusted (${e.originalCode})`, { retryable: false, code: 'ETLS' });
  }
  const retryable = code !== undefined && RETRYABLE_CODES.has(code);
  return new DeliveryError(PROVIDER, `${retryable ? 'connection failed' : 'failed'} (${code ?? 'EUNKNOWN'})${stage ? ` at ${stage}` : ''}`, {
    retryable,
    ...(code ? { code } : {}),
  });
}

const nodemailer = lazyPackage<typeof import('nodemailer')>('nodemailer');

/** An e-mail provider sending through one SMTP relay. */
export function smtpProvider(options: SmtpOptions): DeliveryProvider {
  const mode = options.tls ?? 'required';
  if (options.secure && mode !== 'required') throw new TypeError('secure (implicit TLS) goes with tls: required');
  const domain = /@([^\s@<>]+)>?\s*$/.exec(options.from)?.[1] ?? 'sls.invalid';
  const transport = nodemailer().createTransport({
    host: options.host,
    port: options.port,
    secure: options.secure,
    requireTLS: mode === 'required' && !options.secure,
    ignoreTLS: mode === 'none',
    tls: { rejectUnauthorized: true, minVersion: 'TLSv1.2', ...(options.ca ? { ca: options.ca } : {}) },
    ...(options.user !== undefined ? { auth: { user: options.user, pass: options.pass ?? '' } } : {}),
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
    debug: false,
  });
  return {
    name: PROVIDER,
    channels: ['email'],
    async deliver(message: OutgoingMessage): Promise<void> {
      if (message.channel !== 'email') throw new DeliveryError(PROVIDER, `cannot deliver ${message.channel}`, { retryable: false });
      if (!ADDRESS.test(message.recipient)) throw new DeliveryError(PROVIDER, 'recipient is not a single e-mail address', { retryable: false });
      try {
        await transport.sendMail({
          from: options.from,
          to: message.recipient,
          subject: message.subject ?? '',
          text: message.body,
          messageId: `<${message.id}@${domain}>`,
          headers: { 'Content-Language': message.language, 'Auto-Submitted': 'auto-generated' },
        });
      } catch (error) {
        throw smtpDeliveryError(error);
      }
    },
  };
}
