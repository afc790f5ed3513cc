/**
 * A local stand-in for Twilio's Messages and Calls endpoints (M7 tests):
 *
 *   POST /2010-04-01/Accounts/{AccountSid}/Messages.json   To, From, Body
 *   POST /2010-04-01/Accounts/{AccountSid}/Calls.json      To, From, Twiml (or Url)
 *
 * It checks HTTP Basic auth, parses the form body, records what it accepted
 * and answers 201 with a JSON resource, as Twilio does. It can be told to
 * fail the next requests with a status (its error body quotes the request,
 * as real gateways sometimes do, so tests can check nothing leaks) or to
 * hang without answering.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeTwilioRequest {
  method: string;
  path: string;
  /** The Authorization header as received. */
  authorization: string | undefined;
  contentType: string | undefined;
  /** The form fields. */
  form: Record<string, string>;
}

export interface RecordedSms {
  sid: string;
  to: string;
  from: string;
  body: string;
}

export interface RecordedCall {
  sid: string;
  to: string;
  from: string;
  twiml: string | undefined;
  url: string | undefined;
}

export interface FakeTwilio {
  /** e.g. http://127.0.0.1:41234, to pass as baseUrl. */
  baseUrl: string;
  accountSid: string;
  authToken: string;
  /** Every request received, answered or not, in order. */
  requests: FakeTwilioRequest[];
  messages: RecordedSms[];
  calls: RecordedCall[];
  /** The next `count` requests are answered `status` with a Twilio-style error body. */
  failNext(count: number, status: number, twilioCode?: number): void;
  /** The next `count` requests get no answer until the server closes. */
  hangNext(count: number): void;
  close(): Promise<void>;
}

export interface FakeTwilioOptions {
  accountSid?: string;
  authToken?: string;
}

function sid(prefix: string): string {
  return prefix + randomBytes(16).toString('hex');
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function twilioError(res: ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
}

export async function startFakeTwilio(options: FakeTwilioOptions = {}): Promise<FakeTwilio> {
  const accountSid = options.accountSid ?? `AC${'0'.repeat(31)}1`;
  const authToken = options.authToken ?? `tok-${randomBytes(12).toString('hex')}`;
  const expectedAuth = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`;
  const requests: FakeTwilioRequest[] = [];
  const messages: RecordedSms[] = [];
  const calls: RecordedCall[] = [];
  const failures: { status: number; code: number }[] = [];
  let hangs = 0;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const raw = await readBody(req);
    const form = Object.fromEntries(new URLSearchParams(raw));
    const request: FakeTwilioRequest = {
      method: req.method ?? '',
      path,
      authorization: req.headers.authorization,
      contentType: req.headers['content-type'],
      form,
    };
    requests.push(request);

    if (hangs > 0) {
      hangs--;
      return; // never answered; closeAllConnections() ends it
    }
    const failure = failures.shift();
    if (failure) {
      // Quote the request back, as some gateways do, so tests can see it is not passed on.
      return twilioError(
        res,
        failure.status,
        failure.code,
        `Refused message to ${form.To ?? '?'}: ${form.Body ?? form.Twiml ?? ''} (auth ${req.headers.authorization ?? ''})`,
      );
    }

    const match = /^\/2010-04-01\/Accounts\/([^/]+)\/(Messages|Calls)\.json$/.exec(path);
    if (!match) return twilioError(res, 404, 20404, 'The requested resource was not found');
    if (req.method !== 'POST') return twilioError(res, 405, 20004, 'Method not allowed');
    if (req.headers.authorization !== expectedAuth || decodeURIComponent(match[1]!) !== accountSid) {
      res.setHeader('www-authenticate', 'Basic realm="Twilio API"');
      return twilioError(res, 401, 20003, 'Authenticate');
    }
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return twilioError(res, 400, 20001, 'Expected a form-encoded body');
    }
    const { To: to, From: from } = form;
    if (!to) return twilioError(res, 400, 21604, "A 'To' phone number is required.");
    if (!from) return twilioError(res, 400, 21603, "A 'From' phone number is required.");
    if (!/^\+[1-9]\d{6,14}$/.test(to)) return twilioError(res, 400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    const now = new Date().toUTCString();

    if (match[2] === 'Messages') {
      if (!form.Body) return twilioError(res, 400, 21602, 'Message body is required.');
      const message: RecordedSms = { sid: sid('SM'), to, from, body: form.Body };
      messages.push(message);
      return sendJson(res, 201, {
        sid: message.sid,
        account_sid: accountSid,
        to,
        from,
        body: message.body,
        status: 'queued',
        num_segments: '1',
        direction: 'outbound-api',
        date_created: now,
        uri: `/2010-04-01/Accounts/${accountSid}/Messages/${message.sid}.json`,
      });
    }
    if (!form.Twiml && !form.Url) return twilioError(res, 400, 21205, 'Url or Twiml parameter is required.');
    const call: RecordedCall = { sid: sid('CA'), to, from, twiml: form.Twiml, url: form.Url };
    calls.push(call);
    return sendJson(res, 201, {
      sid: call.sid,
      account_sid: accountSid,
      to,
      from,
      status: 'queued',
      direction: 'outbound-api',
      date_created: now,
      uri: `/2010-04-01/Accounts/${accountSid}/Calls/${call.sid}.json`,
    });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) twilioError(res, 500, 20500, 'Internal Server Error');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    accountSid,
    authToken,
    requests,
    messages,
    calls,
    failNext(count, status, twilioCode = status === 429 ? 20429 : status >= 500 ? 20500 : 21211) {
      for (let i = 0; i < count; i++) failures.push({ status, code: twilioCode });
    },
    hangNext(count) {
      hangs += count;
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
