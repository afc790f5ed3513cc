/**
 * The session cookie and how a request proves its session: a Bearer token
 * (integrators) or the cookie (browsers). The cookie is HttpOnly, Secure
 * (unless switched off for plain-HTTP development), SameSite=Lax.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isTimeZone, type Config } from '../config.js';
import { constantTimeEqual } from '../crypto/constant-time.js';
import { SlsError } from '../errors.js';
import type { RequestMeta } from '../flows/login.js';
import type { Language } from '../i18n/i18n.js';
import type { IssuedSession } from '../sessions/sessions.js';
import { KNOWN_CLIENT_MS } from '../flows/known-clients.js';

/**
 * The names of the cookies that carry a credential, in one place. When the
 * cookies are Secure (`SLS_COOKIE_SECURE`, the default) their names carry the
 * prefix browsers enforce: `__Host-` (Secure, Path=/, no Domain) for the
 * session and the CSRF secret, `__Secure-` for the login's claim (its Path is
 * the login's own pages). A page of a sibling subdomain, or any plain-HTTP
 * answer a network attacker forges, cannot set a cookie under such a name
 * (cookie tossing: a session or CSRF secret of the attacker's planted in the
 * victim's browser); the plain names, which anyone on the site could set, are
 * then never read. Over plain HTTP (development) browsers refuse the
 * prefixes: the plain names.
 */
export interface CookieNames {
  session: string;
  csrf: string;
  claim: string;
  /**
   * I1: the OpenID Provider's own (oidc-provider's `cookies.names`): its
   * session (Path=/, `__Host-`), an authorization's interaction and its
   * resume (their Paths are the interaction's and the resume's own pages,
   * `__Secure-`). Planted in a victim's browser, an attacker's interaction
   * would be finished, or a device code of the attacker's approved, by the
   * victim's login.
   */
  oidcSession: string;
  oidcInteraction: string;
  oidcResume: string;
  /** I1: the interaction our login goes back to (Path=/). */
  oidcReturn: string;
  /**
   * I1, RFC 8628 §5.4 (decision 0037): the browser an interaction began in (Path=/, `__Host-`, which no sibling
   * subdomain can set): an interaction is finished only there, whatever `__Secure-` cookies were planted elsewhere.
   */
  oidcBrowser: string;
  /** L4, decision 0024: the browser the user completed a login in (flows/known-clients.ts). */
  known: string;
  /** T5, A5: a new temporary passcode or one-time password on its way to its console page (Path = that page: `__Secure-`). */
  helpdeskPasscode: string;
  helpdeskPassword: string;
}

const SECURE_NAMES: CookieNames = {
  session: '__Host-sls_session',
  csrf: '__Host-sls_csrf',
  claim: '__Secure-sls_claim',
  oidcSession: '__Host-sls_oidc_session',
  oidcInteraction: '__Secure-sls_oidc_interaction',
  oidcResume: '__Secure-sls_oidc_resume',
  oidcReturn: '__Host-sls_oidc_return',
  oidcBrowser: '__Host-sls_oidc_browser',
  known: '__Host-sls_known',
  helpdeskPasscode: '__Secure-sls_hd_passcode',
  helpdeskPassword: '__Secure-sls_hd_password',
};
const PLAIN_NAMES: CookieNames = {
  session: 'sls_session',
  csrf: 'sls_csrf',
  claim: 'sls_claim',
  oidcSession: 'sls_oidc_session',
  oidcInteraction: 'sls_oidc_interaction',
  oidcResume: 'sls_oidc_resume',
  oidcReturn: 'sls_oidc_return',
  oidcBrowser: 'sls_oidc_browser',
  known: 'sls_known',
  helpdeskPasscode: 'sls_hd_passcode',
  helpdeskPassword: 'sls_hd_password',
};

export function cookieNames(config: Pick<Config, 'cookieSecure'>): CookieNames {
  return config.cookieSecure ? SECURE_NAMES : PLAIN_NAMES;
}

/** The session cookie's name under Secure cookies (the default): `cookieNames(config).session` is the one to read. */
export const SESSION_COOKIE = SECURE_NAMES.session;

/** The session cookie of a request, under the name the configuration gives it. */
export function sessionCookieOf(request: FastifyRequest, config: Pick<Config, 'cookieSecure'>): string | undefined {
  return request.cookies?.[cookieNames(config).session];
}

/** The session cookie of a session opened, or of one whose token a step-up replaced (decision 0042: same attributes). */
export function setSessionCookie(reply: FastifyReply, config: Config, session: Pick<IssuedSession, 'token' | 'expiresAt' | 'knownClient'>, now: number): void {
  reply.setCookie(cookieNames(config).session, session.token, {
    path: '/',
    httpOnly: true,
    secure: config.cookieSecure,
    sameSite: 'lax',
    maxAge: Math.max(1, Math.floor((session.expiresAt - now) / 1000)),
  });
  // L4, decision 0024: the browser's later logins count in the recognised clients' allowance, from any address
  if (session.knownClient) {
    reply.setCookie(cookieNames(config).known, session.knownClient, {
      path: '/',
      httpOnly: true,
      secure: config.cookieSecure,
      sameSite: 'lax',
      maxAge: Math.floor(KNOWN_CLIENT_MS / 1000),
    });
  }
}

/**
 * K3: the claim token of a login started in this browser, sent back only to
 * that login's own pages; with it the page takes the session the phone approved.
 */
function claimCookieOptions(config: Config, flowId: string) {
  return { path: `/login/${flowId}`, httpOnly: true, secure: config.cookieSecure, sameSite: 'strict' as const };
}

/** Longer than any login lasts, device switches included; the flow itself decides what is still valid. */
const CLAIM_COOKIE_MAX_AGE_S = 30 * 60;

/**
 * L8, K3 (decision 0037): the claim cookie is `__Secure-` (its Path is the login's own pages), which a sibling
 * subdomain may set for the parent domain: a login someone else started (the API's claim token) planted in a user's
 * browser would be taken there, a session of their account (login CSRF). So the cookie carries, after the token, a
 * digest of it with the browser's CSRF secret (`__Host-`, which no other site can set or read): the claim holds only
 * in the browser that started the login.
 */
export function boundClaim(csrfSecret: string, claimToken: string): string {
  return `${claimToken}.${createHash('sha256').update(`sls-claim\0${csrfSecret}\0${claimToken}`).digest('base64url')}`;
}

export function setClaimCookie(request: FastifyRequest, reply: FastifyReply, config: Config, flow: { id: string; claimToken: string }): void {
  const value = boundClaim(request.cookies[cookieNames(config).csrf] ?? '', flow.claimToken);
  reply.setCookie(cookieNames(config).claim, value, { ...claimCookieOptions(config, flow.id), maxAge: CLAIM_COOKIE_MAX_AGE_S });
}

/** The claim token of the login this browser started (its claim cookie, bound to this browser's CSRF secret), if any. */
export function claimOf(request: FastifyRequest, config: Pick<Config, 'cookieSecure'>): string | undefined {
  const value = request.cookies[cookieNames(config).claim];
  const secret = request.cookies[cookieNames(config).csrf];
  const dot = value?.lastIndexOf('.') ?? -1;
  if (!value || !secret || dot < 1) return undefined;
  const token = value.slice(0, dot);
  return constantTimeEqual(value, boundClaim(secret, token)) ? token : undefined;
}

export function clearClaimCookie(reply: FastifyReply, config: Config, flowId: string): void {
  reply.clearCookie(cookieNames(config).claim, claimCookieOptions(config, flowId));
}

export function clearSessionCookie(reply: FastifyReply, config: Config): void {
  reply.clearCookie(cookieNames(config).session, { path: '/', httpOnly: true, secure: config.cookieSecure, sameSite: 'lax' });
}

export interface PresentedToken {
  token: string;
  via: 'bearer' | 'cookie';
}

export function presentedToken(request: FastifyRequest, config: Pick<Config, 'cookieSecure'>): PresentedToken | null {
  const header = request.headers.authorization;
  if (header) {
    const match = /^Bearer ([A-Za-z0-9_-]{1,128})$/.exec(header);
    return match ? { token: match[1]!, via: 'bearer' } : null;
  }
  const cookie = sessionCookieOf(request, config);
  return cookie ? { token: cookie, via: 'cookie' } : null;
}

/**
 * A cookie-authenticated request that changes state must come from our own
 * pages: a request another site sent is refused (CSRF). Our own origin is the
 * one the request was sent to (its Host), or the public URL the operator
 * configured (`SLS_PUBLIC_URL`), which a reverse proxy that rewrites Host
 * still serves. Bearer requests carry no ambient credentials and need no such
 * check.
 */
export function assertSameOrigin(request: FastifyRequest, publicUrl?: string): void {
  if (!fromOwnOrigin(request, publicUrl)) throw new SlsError('CSRF_FAILED');
}

/**
 * Whether a request passes the cookie path's CSRF check (`assertSameOrigin`):
 * what the browser says of where it comes from is ours. Its Origin when it
 * sends one ("null", an opaque origin, is not ours); else its Sec-Fetch-Site
 * (only same-origin, or none: typed by the user); else its Referer (our pages
 * send none: Referrer-Policy no-referrer). A request with none of them is no
 * browser's, and carries no cookie it did not choose to send.
 */
export function fromOwnOrigin(request: FastifyRequest, publicUrl?: string): boolean {
  const { origin, referer, host } = request.headers;
  if (origin) return isOwnOrigin(origin, host, publicUrl, request.protocol);
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  return !referer || isOwnOrigin(referer, host, publicUrl, request.protocol);
}

/**
 * Whether an origin (or a Referer's URL: its origin) is ours: the public URL
 * (`SLS_PUBLIC_URL`), or the request's Host under our scheme: the public
 * URL's when configured, else the request's (`request.protocol`, which a
 * trusted proxy's X-Forwarded-Proto sets). L8, X3: the scheme counts, so that
 * `http://` + our host (a page a network attacker writes into the plain-text
 * site) is not our https site.
 */
export function isOwnOrigin(origin: string, host: string | undefined, publicUrl: string | undefined, protocol: string): boolean {
  try {
    const from = new URL(origin);
    const scheme = publicUrl !== undefined ? new URL(publicUrl).protocol : `${protocol}:`;
    // compared as URLs so that default ports (":80", ":443") do not matter
    if (from.protocol === scheme && from.host === new URL(`${scheme}//${host ?? ''}`).host) return true;
    return publicUrl !== undefined && from.origin === new URL(publicUrl).origin;
  } catch {
    return false;
  }
}

/** N1: the browser's IANA time zone, written by the pages' script (public/time-zone.js); a preference, not a secret. */
export const TIME_ZONE_COOKIE = 'sls_tz';

/** The browser's time zone as the pages' script wrote it, if it is one (issue 16: messages write times in it). */
export function browserTimeZone(request: FastifyRequest): string | null {
  const zone = request.cookies?.[TIME_ZONE_COOKIE];
  return zone && zone.length <= 64 && isTimeZone(zone) ? zone : null;
}

/**
 * Who asks, from where, in which language (codes sent by SMS or voice are
 * written in it), and what the person expressed of their language and time
 * zone (N1: remembered for the notices at a complete login).
 */
export function requestMeta(request: FastifyRequest): RequestMeta & { language: Language } {
  const userAgent = request.headers['user-agent'];
  return {
    ip: request.ip ?? null,
    userAgent: userAgent ? userAgent.slice(0, 256) : null,
    language: request.language,
    expressed: { language: request.expressedLanguage, timeZone: browserTimeZone(request) },
  };
}

/**
 * What a login needs of its request: `requestMeta`, and the session token of
 * the browser's cookie, which the session the login opens replaces and ends
 * (L8). Never the Bearer token: an integrator may hold several sessions.
 */
export function loginMeta(request: FastifyRequest, config: Pick<Config, 'cookieSecure'>): RequestMeta & { language: Language } {
  const cookie = sessionCookieOf(request, config);
  const known = request.cookies?.[cookieNames(config).known];
  return { ...requestMeta(request), ...(cookie ? { replaces: cookie } : {}), ...(known ? { knownClient: known } : {}) };
}
