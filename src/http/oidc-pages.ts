/**
 * I1: the OpenID Provider's own pages, in the browser's language, on our
 * style sheet: the sign-out confirmation and the error page (http/oidc.ts),
 * and the device authorization grant's (RFC 8628) — where the user types the
 * code a trading platform shows, sees which application on which device
 * asks, and approves it (then our usual login) or refuses it.
 */
import type { KoaContext } from 'oidc-provider';
import { acceptedLanguage, translator, type Language } from '../i18n/i18n.js';

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function page(language: Language, title: string, body: string): string {
  return `<!doctype html><html lang="${language}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title><link rel="stylesheet" href="/static/sls.css"></head><body><main>${body}</main></body></html>`;
}

/** What the provider's page callbacks receive (a Koa context). */
export interface PageContext {
  body: string;
  /** The client's address (the provider runs in proxy mode on the forwarded headers we set from what Fastify trusted). */
  ip?: string;
  get(header: string): string;
  oidc?: KoaContext['oidc'] & { urlFor?(name: string): string; session?: { state?: { secret?: string } } };
}

/** The page's language: the browser's, else the server's default. */
export function languageOf(ctx: { get(header: string): string }, fallback: Language): Language {
  return acceptedLanguage(ctx.get('accept-language')) ?? fallback;
}

/** Why the code typed was not taken (the provider's error names). */
const DEVICE_ERRORS: Record<string, string> = {
  NoCodeError: 'oidc.device.errors.noCode',
  NotFoundError: 'oidc.device.errors.notFound',
  ExpiredError: 'oidc.device.errors.expired',
  AlreadyUsedError: 'oidc.device.errors.used',
  AbortedError: 'oidc.device.errors.aborted',
};

/** The device grant's form fields, as the provider reads them. */
function hidden(name: string, value: string): string {
  return `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;
}

export interface DeviceInfo {
  ip?: string;
  ua?: string;
}

/**
 * The pages of the device authorization grant (oidc-provider's
 * `features.deviceFlow` sources). `onRefused` is told when the user refuses a
 * device (a code someone else gave them, RFC 8628 §5.4), for the audit log.
 */
export function deviceFlowPages(options: {
  defaultLanguage: Language;
  appName(app: string, language: Language): string;
  onRefused(ctx: PageContext): Promise<void>;
}) {
  const action = (ctx: PageContext) => ctx.oidc?.urlFor?.('code_verification') ?? '/oidc/device';
  const secret = (ctx: PageContext) => ctx.oidc?.session?.state?.secret ?? '';

  return {
    /** Where the user types the code (again, with the reason, when it was not taken). */
    userCodeInputSource: async (ctx: PageContext, _form: string, _out: unknown, error?: { name?: string }) => {
      const language = languageOf(ctx, options.defaultLanguage);
      const t = translator(language);
      // audited before the page answers
      if (error?.name === 'AbortedError') await options.onRefused(ctx);
      const message = error ? `<p class="error" role="alert">${escapeHtml(t(DEVICE_ERRORS[error.name ?? ''] ?? 'oidc.device.errors.other'))}</p>` : '';
      ctx.body = page(
        language,
        t('oidc.device.title'),
        `<h1>${escapeHtml(t('oidc.device.title'))}</h1>${message}<p>${escapeHtml(t('oidc.device.enter'))}</p>` +
          `<form method="post" action="${escapeHtml(action(ctx))}">${hidden('xsrf', secret(ctx))}` +
          `<label for="user_code">${escapeHtml(t('oidc.device.code'))}</label> ` +
          `<input id="user_code" name="user_code" type="text" autocomplete="off" autocapitalize="characters" spellcheck="false" autofocus required> ` +
          `<button type="submit">${escapeHtml(t('oidc.device.continue'))}</button></form>`,
      );
    },

    /** Which application, on which device, asks; the user approves (then logs in) or refuses. */
    userCodeConfirmSource: async (
      ctx: PageContext,
      _form: string,
      client: { clientName?: string; clientId: string; sls_app?: string },
      deviceInfo: DeviceInfo | undefined,
      userCode: string,
    ) => {
      const language = languageOf(ctx, options.defaultLanguage);
      const t = translator(language);
      const from = deviceInfo?.ip ? `<p>${escapeHtml(t('oidc.device.requestedFrom', { ip: deviceInfo.ip, ua: deviceInfo.ua || '?' }))}</p>` : '';
      const fields = hidden('xsrf', secret(ctx)) + hidden('user_code', userCode);
      ctx.body = page(
        language,
        t('oidc.device.confirmTitle'),
        `<h1>${escapeHtml(t('oidc.device.confirmTitle'))}</h1>` +
          `<p>${escapeHtml(t('oidc.device.confirmQuestion', { client: client.clientName ?? client.clientId, app: options.appName(client.sls_app ?? 'trading', language) }))}</p>` +
          `<p>${escapeHtml(t('oidc.device.confirmCode'))} <strong class="user-code">${escapeHtml(userCode)}</strong></p>${from}` +
          `<p class="warning" role="note">${escapeHtml(t('oidc.device.warning'))}</p>` +
          `<form method="post" action="${escapeHtml(action(ctx))}">${fields}${hidden('confirm', 'yes')}<button type="submit">${escapeHtml(t('oidc.device.confirm'))}</button></form>` +
          `<form method="post" action="${escapeHtml(action(ctx))}">${fields}${hidden('abort', 'yes')}<button type="submit" class="secondary">${escapeHtml(t('oidc.device.cancel'))}</button></form>`,
      );
    },

    /** After the login: the device has its tokens at its next poll. */
    successSource: async (ctx: PageContext) => {
      const language = languageOf(ctx, options.defaultLanguage);
      const t = translator(language);
      const client = ctx.oidc?.client as { clientName?: string; clientId: string } | undefined;
      ctx.body = page(
        language,
        t('oidc.device.successTitle'),
        `<h1>${escapeHtml(t('oidc.device.successTitle'))}</h1><p>${escapeHtml(t('oidc.device.success', { client: client?.clientName ?? client?.clientId ?? '' }))}</p>`,
      );
    },
  };
}
