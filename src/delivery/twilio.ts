/**
 * SMS and voice through Twilio's REST API (M4, M5, M7), the interface most
 * gateways copy:
 *
 *   POST {baseUrl}/2010-04-01/Accounts/{AccountSid}/Messages.json   To, From, Body
 *   POST {baseUrl}/2010-04-01/Accounts/{AccountSid}/Calls.json      To, From, Twiml
 *
 * form-encoded, HTTP Basic auth AccountSid:AuthToken, 201 with a JSON
 * resource ({ sid, status, … }). A voice message is read by <Say> in the
 * message's language, with the code's digits spaced out so they are read one
 * by one, and said twice.
 *
 * Errors are DeliveryErrors carrying the HTTP status and Twilio's error
 * number only: the token, the message text (which holds the code) and the
 * gateway's own error text (which may quote them) are left out.
 */
import type { VoiceChoice } from '../config.js';
import type { Language } from '../i18n/i18n.js';
import type { DeliveryProvider, OutgoingMessage } from './provider.js';
import { DeliveryError, requestWithDeadline } from './retry.js';

export interface TwilioOptions {
  /** https://api.twilio.com, or a compatible gateway; no trailing path. */
  baseUrl: string;
  accountSid: string;
  authToken: string;
  /** The sending number (E.164) or alphanumeric sender ID. */
  from: string;
  /** For the whole request, response included. */
  timeoutMs: number;
  /** The voice and language <Say> uses for each of our languages, instead of DEFAULT_VOICES. */
  voices?: Partial<Record<Language, VoiceChoice>>;
}

const PROVIDER = 'twilio';

/**
 * The <Say voice language> pair for each of our languages (M5): a voice that
 * speaks the language, named with it, so the gateway never falls back to an
 * English voice reading French or Chinese. Configurable
 * (SLS_TWILIO_VOICE_EN, _FR, _ZH_HANT as VOICE:LANGUAGE).
 */
export const DEFAULT_VOICES: Record<Language, VoiceChoice> = {
  en: { voice: 'Polly.Joanna', language: 'en-US' },
  fr: { voice: 'Polly.Lea', language: 'fr-FR' },
  // Traditional Chinese as spoken in Taiwan (Mandarin)
  'zh-Hant': { voice: 'Google.cmn-TW-Standard-A', language: 'cmn-TW' },
};

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Runs of four or more digits (codes) become "1 2 3 4 5 6" so a voice reads them digit by digit. */
export function spaceOutDigits(text: string): string {
  return text.replace(/\d{4,}/g, (run) => run.split('').join(' '));
}

/** The TwiML of a voice message: said, a pause, said again. */
export function voiceTwiml(body: string, language: Language, voices: Partial<Record<Language, VoiceChoice>> = {}): string {
  const { voice, language: spoken } = voices[language] ?? DEFAULT_VOICES[language];
  const say = `<Say voice="${escapeXml(voice)}" language="${escapeXml(spoken)}">${escapeXml(spaceOutDigits(body))}</Say>`;
  return `<Response>${say}<Pause length="1"/>${say}</Response>`;
}

const E164 = /^\+[1-9][0-9]{6,14}$/;

/** A Twilio-compatible SMS and voice provider. */
export function twilioProvider(options: TwilioOptions): DeliveryProvider {
  const base = options.baseUrl.replace(/\/+$/, '');
  if (!/^https?:\/\//.test(base)) throw new TypeError('twilio baseUrl must be an http(s) URL');
  const accountUrl = `${base}/2010-04-01/Accounts/${encodeURIComponent(options.accountSid)}`;
  const authorization = `Basic ${Buffer.from(`${options.accountSid}:${options.authToken}`).toString('base64')}`;

  async function post(resource: 'Messages' | 'Calls', form: Record<string, string>): Promise<void> {
    const init = {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(form).toString(),
    };
    await requestWithDeadline(PROVIDER, `${accountUrl}/${resource}.json`, init, options.timeoutMs, async (response) => {
      const text = await response.text();
      if (response.ok) return;
      const twilioCode = errorNumber(text);
      const retryable = response.status === 429 || response.status === 408 || response.status >= 500;
      throw new DeliveryError(PROVIDER, `${resource} request refused with HTTP ${response.status}${twilioCode ? ` (Twilio error ${twilioCode})` : ''}`, {
        retryable,
        status: response.status,
        ...(twilioCode ? { code: twilioCode } : {}),
      });
    });
  }

  return {
    name: PROVIDER,
    channels: ['sms', 'voice'],
    async deliver(message: OutgoingMessage): Promise<void> {
      if (!E164.test(message.recipient)) throw new DeliveryError(PROVIDER, 'recipient is not an E.164 number', { retryable: false });
      switch (message.channel) {
        case 'sms':
          return post('Messages', { To: message.recipient, From: options.from, Body: message.body });
        case 'voice':
          return post('Calls', { To: message.recipient, From: options.from, Twiml: voiceTwiml(message.body, message.language, options.voices) });
        default:
          throw new DeliveryError(PROVIDER, `cannot deliver ${message.channel}`, { retryable: false });
      }
    },
  };
}

/** Twilio's numeric error code from an error body ({ code, message, more_info, status }), if any. */
function errorNumber(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { code?: unknown };
    return typeof body.code === 'number' && Number.isInteger(body.code) ? String(body.code) : undefined;
  } catch {
    return undefined;
  }
}
