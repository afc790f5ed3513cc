/**
 * One typed configuration (GUIDE lesson 9), read from SLS_* environment
 * variables and command-line flags, with documented defaults.
 * docs/operations.md lists every setting.
 */
import { resolve } from 'node:path';
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseLimit, type Limit, type Limits } from './throttle/throttle.js';
import { SlsError } from './errors.js';
import { readSettingFile } from './bounded-file.js';
import { hasTranslation } from './i18n/i18n.js';
import { issueReason } from './i18n/schema-issues.js';
import { parseHolidays } from './entitlements/business-days.js';
import { isPhoneCountry } from './delivery/phone.js';
import { SupportEmail, SupportPhone, supportCenters, type SupportCenter } from './support.js';

/** X5: a throttle setting, `PER_ADDRESS/GLOBAL` hits a minute, or `off`. */
const LimitSetting = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx): Limit => {
      const limit = parseLimit(value.trim());
      if (!limit) {
        // X2: told as errors.INVALID_CONFIG_limit: PER_ADDRESS/GLOBAL hits a minute (20/3000), or off
        ctx.addIssue({ code: 'custom', message: 'limit' });
        return z.NEVER;
      }
      return limit;
    });

/** Whether a proxy to trust is named as an IPv4 or IPv6 address, or a CIDR range of them. */
function isAddressOrCidr(entry: string): boolean {
  const [address, bits, ...rest] = entry.split('/');
  if (rest.length > 0 || !address) return false;
  const version = isIP(address);
  if (version === 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (version === 4 ? 32 : 128);
}

/** A comma list of IP addresses and CIDR ranges (SLS_TRUST_PROXY, SLS_METRICS_ALLOW); an issue names the first entry that is neither. */
function addressList(text: string, ctx: z.RefinementCtx): string[] {
  const list = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  const bad = list.find((entry) => !isAddressOrCidr(entry));
  if (bad) {
    // X2: told as errors.INVALID_CONFIG_not_an_address: {{value}} is not an IP address or a CIDR range
    ctx.addIssue({ code: 'custom', message: 'not an address', params: { value: bad } });
    return z.NEVER;
  }
  return list;
}

/**
 * M7: a comma list of ISO 3166 country codes (SLS_SMS_COUNTRIES): the countries whose numbers may be put on
 * record and sent codes; empty, every country. An issue names the first entry that is no country.
 */
function countryList(text: string, ctx: z.RefinementCtx): string[] {
  const list = text
    .split(',')
    .map((entry) => entry.trim().toUpperCase())
    .filter((entry) => entry !== '');
  const bad = list.find((entry) => !isPhoneCountry(entry));
  if (bad !== undefined) {
    // X2: told as errors.INVALID_CONFIG_not_a_country: {{value}} is not a country code
    ctx.addIssue({ code: 'custom', message: 'not a country', params: { value: bad } });
    return z.NEVER;
  }
  return [...new Set(list)];
}

/** Defaults given in minutes by the settings. */
const DEFAULT_POLICY_MINUTES = { stepUp: 5 };

const booleanFromEnv = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes');

/** The push services of the major browsers (Chrome, Firefox, Edge, Safari). */
export const DEFAULT_PUSH_SERVICES = ['fcm.googleapis.com', 'push.services.mozilla.com', 'notify.windows.com', 'push.apple.com'];

/** Whether the runtime knows an IANA time zone (Intl, full ICU). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** A text-to-speech voice and its language, as `VOICE:LANGUAGE` (e.g. `Polly.Lea:fr-FR`). */
const VoicePair = z
  .string()
  // X2: told as errors.INVALID_CONFIG_voice: VOICE:LANGUAGE, e.g. Polly.Lea:fr-FR
  .regex(/^[A-Za-z0-9._-]{1,80}:[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, 'voice')
  .transform((pair) => {
    const [voice, language] = pair.split(':') as [string, string];
    return { voice, language };
  });

/** The host names that are this machine: a relay there is reached without leaving it. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

const EnvSchema = z.object({
  SLS_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  SLS_HOST: z.string().min(1).default('localhost'),
  SLS_DATA_DIR: z.string().min(1).default('./data'),
  SLS_DATABASE_URL: z.string().min(1).optional(),
  SLS_MASTER_KEY: z.string().min(1).optional(),
  SLS_PUBLIC_URL: z.string().url().optional(),
  SLS_COOKIE_SECURE: booleanFromEnv.default(true),
  SLS_TRUST_PROXY: z
    .string()
    .default('')
    .transform((value, ctx): TrustProxy => {
      const text = value.trim();
      if (text === '' || text === 'false' || text === '0') return false;
      if (/^\d{1,2}$/.test(text)) return Number(text);
      if (text === 'true' || text === '*') {
        // X2: told as errors.INVALID_CONFIG_trusts_every_client: name the proxies or their number of hops
        ctx.addIssue({ code: 'custom', message: 'trusts every client' });
        return z.NEVER;
      }
      return addressList(text, ctx);
    }),
  /** X6: how long a stop (SIGTERM) waits for requests and deliveries under way before it closes their connections. */
  SLS_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  // GET /metrics: a bearer token of at least 32 characters (no spaces), and/or the addresses allowed to read it
  SLS_METRICS_TOKEN: z
    .string()
    // X2: told as errors.INVALID_CONFIG_metrics_token: at least 32 printable characters without spaces
    .regex(/^[\x21-\x7e]{32,256}$/, 'metrics token')
    .optional(),
  SLS_METRICS_ALLOW: z
    .string()
    .default('')
    .transform((value, ctx) => addressList(value, ctx)),
  SLS_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SLS_DEFAULT_LANGUAGE: z.enum(['en', 'fr', 'zh-Hant']).default('en'),
  SLS_EMAIL_PROVIDER: z.enum(['outbox', 'smtp']).default('outbox'),
  SLS_SMTP_HOST: z.string().min(1).optional(),
  SLS_SMTP_PORT: z.coerce.number().int().min(1).max(65535).default(587),
  SLS_SMTP_SECURE: booleanFromEnv.default(false),
  SLS_SMTP_USER: z.string().min(1).optional(),
  SLS_SMTP_PASS: z.string().min(1).optional(),
  SLS_SMTP_FROM: z.string().min(3).optional(),
  SLS_SMTP_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  SLS_SMS_PROVIDER: z.enum(['outbox', 'twilio']).default('outbox'),
  SLS_SMS_COUNTRIES: z
    .string()
    .default('')
    .transform((value, ctx) => countryList(value, ctx)),
  SLS_TWILIO_BASE_URL: z.string().url().default('https://api.twilio.com'),
  SLS_TWILIO_ACCOUNT_SID: z.string().min(1).optional(),
  SLS_TWILIO_AUTH_TOKEN: z.string().min(1).optional(),
  SLS_TWILIO_FROM: z.string().min(1).optional(),
  SLS_TWILIO_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  SLS_OUTBOX_PAGE: z.enum(['on', 'off']).default('off'),
  SLS_PUSH_PROVIDER: z.enum(['none', 'web-push']).default('none'),
  SLS_VAPID_PUBLIC_KEY: z.string().min(1).optional(),
  SLS_VAPID_PRIVATE_KEY: z.string().min(1).optional(),
  SLS_VAPID_SUBJECT: z.string().min(1).default('mailto:security@example.com'),
  SLS_PUSH_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
  SLS_PUSH_SERVICES: z
    .string()
    .default(DEFAULT_PUSH_SERVICES.join(','))
    .transform((list) =>
      list
        .split(',')
        .map((host) => host.trim().toLowerCase())
        .filter((host) => host !== ''),
    ),
  SLS_SECURITY_KEY_AAGUIDS: z
    .string()
    .default('')
    .transform((list) =>
      list
        .split(',')
        .map((id) => id.trim().toLowerCase())
        .filter((id) => id !== ''),
    )
    .refine(
      (ids) => ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)),
      // X2: told as errors.INVALID_CONFIG_AAGUID_list: a comma-separated list of AAGUIDs
      'AAGUID list',
    ),
  SLS_DELIVERY_RETRY_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(3),
  SLS_DELIVERY_RETRY_BASE_MS: z.coerce.number().int().min(0).max(60_000).default(500),
  SLS_REDIS_URL: z
    .string()
    // X2: told as errors.INVALID_CONFIG_redis_URL
    .regex(/^rediss?:\/\//, 'redis URL')
    .optional(),
  SLS_LIMIT_LOGIN: LimitSetting('20/3000'),
  SLS_LIMIT_ANSWER: LimitSetting('60/6000'),
  SLS_LIMIT_SEND: LimitSetting('10/1000'),
  SLS_LIMIT_ACTIVATION: LimitSetting('10/600'),
  SLS_LIMIT_HELPDESK: LimitSetting('120/3000'),
  SLS_LIMIT_ADMIN: LimitSetting('60/600'),
  SLS_LIMIT_INTEGRATION: LimitSetting('600/6000'),
  SLS_STEP_UP_MINUTES: z.coerce.number().int().min(1).max(60).default(DEFAULT_POLICY_MINUTES.stepUp),
  SLS_OPEN_FLOWS_PER_USER: z.coerce.number().int().min(1).max(1000).default(10),
  SLS_FLOW_STARTS_PER_HOUR: z.coerce.number().int().min(1).max(100_000).default(60),
  SLS_UNRECOGNISED_PUSHES_PER_HOUR: z.coerce.number().int().min(0).max(100_000).default(5),
  SLS_PUSH_QUIET_AFTER_DENY_HOURS: z.coerce.number().int().min(0).max(720).default(24),
  // X2: told as errors.INVALID_CONFIG_time_zone: an IANA time zone such as UTC or Europe/Paris
  SLS_TIME_ZONE: z.string().min(1).default('UTC').refine(isTimeZone, 'time zone'),
  /** W3: holidays of the withdrawal windows, ISO dates (docs/entitlements.md); and/or a file of them. */
  SLS_HOLIDAYS: z.string().default(''),
  SLS_HOLIDAYS_FILE: z.string().min(1).optional(),
  SLS_BUSINESS_TIME_ZONE: z.string().min(1).refine(isTimeZone, 'business time zone').optional(),
  /** W3 (decision 0040): a rate set longer ago than this converts nothing (CURRENCY_UNKNOWN, reason stale); 0: no limit. */
  SLS_FX_RATE_MAX_AGE_HOURS: z.coerce.number().int().min(0).max(8760).default(96),
  /** H3: which device sharing requests wait for the approval of compliance staff (docs/sharing.md). */
  SLS_SHARING_APPROVAL: z.enum(['never', 'cross-account', 'organisation', 'always']).default('cross-account'),
  SLS_SMTP_TLS: z.enum(['required', 'starttls', 'none']).optional(),
  SLS_SMTP_CA_FILE: z.string().min(1).optional(),
  SLS_TWILIO_VOICE_EN: VoicePair.optional(),
  SLS_TWILIO_VOICE_FR: VoicePair.optional(),
  SLS_TWILIO_VOICE_ZH_HANT: VoicePair.optional(),
  SLS_OUTBOX_POLL_MS: z.coerce.number().int().min(50).max(60_000).default(1_000),
  SLS_OUTBOX_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(8),
  SLS_OUTBOX_LEASE_MS: z.coerce.number().int().min(1_000).max(3_600_000).default(60_000),
  SLS_OUTBOX_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(10),
  SLS_OUTBOX_RETRY_BASE_MS: z.coerce.number().int().min(0).max(3_600_000).default(10_000),
  SLS_OUTBOX_RETRY_MAX_MS: z.coerce.number().int().min(0).max(86_400_000).default(3_600_000),
  /** R4: the Client Services contacts shown by the help pages (src/support.ts). */
  SLS_SUPPORT_PHONE: SupportPhone.optional(),
  SLS_SUPPORT_EMAIL: SupportEmail.optional(),
  SLS_SUPPORT_HOURS: z.string().trim().min(1).max(200).optional(),
  SLS_SUPPORT_FILE: z.string().min(1).optional(),
});

/** No proxy trusted, the proxies' addresses or CIDR ranges, or the number of proxy hops. */
export type TrustProxy = false | string[] | number;

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string;
  /** Base64 or hex encoded 32-byte key; when absent a key file in dataDir is used. */
  masterKey: string | undefined;
  publicUrl: string | undefined;
  cookieSecure: boolean;
  /**
   * Whose X-Forwarded-For to believe (the client's address in the audit log
   * and on the phone's push request, K13): no one, the proxies named
   * (addresses, CIDR ranges), or the number of proxy hops in front.
   */
  trustProxy: TrustProxy;
  /** X5: Redis for the throttle's counters; without it, the database keeps them. */
  redisUrl: string | undefined;
  /** X5: the throttle's limits, per kind of request. */
  limits: Limits;
  /** X6: how long a stop waits for the work under way (SLS_SHUTDOWN_TIMEOUT_MS). */
  shutdownTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  defaultLanguage: 'en' | 'fr' | 'zh-Hant';
  policy: PolicyConfig;
  delivery: DeliveryConfig;
  /**
   * The development outbox page (/dev/outbox), which shows the messages the
   * outbox holds, codes included: `on` only when set so explicitly, and only
   * while messages stay in the development outbox (no real gateway).
   */
  outboxPage: 'on' | 'off';
  /**
   * K3: how push requests wake a closed authenticator app: none (open apps
   * still get them over their live connection), or Web Push with VAPID keys
   * (configured, or kept in <dataDir>/vapid.json).
   */
  push: { provider: 'none' } | { provider: 'web-push'; publicKey?: string; privateKey?: string; subject: string; timeoutMs: number };
  /**
   * The push services a phone may subscribe with (host names; their
   * subdomains too): the server sends requests only to them, never to an
   * address a client chose.
   */
  pushServices: string[];
  /** N1: the time zone of times in notices, unless the user has one. */
  timeZone: string;
  /** The authenticator models (AAGUIDs) a security key may be; empty: any (docs/decisions/0014-security-keys.md). */
  securityKeyAaguids: string[];
  /** X6: the outbox worker that delivers notices (docs/operations.md). */
  outbox: OutboxConfig;
  /**
   * GET /metrics: served only when a token or addresses are set; then every
   * protection set must pass (the bearer token, the client address).
   */
  metrics: { token: string | null; allow: string[] };
  /** W3: the business days of the withdrawal windows: holidays (ISO dates) besides weekends, in this time zone. */
  businessDays: { holidays: string[]; timeZone: string };
  /** W3 (decision 0040): how old an exchange rate may be to convert a withdrawal (ms); null: any age. */
  fxRateMaxAgeMs: number | null;
  /** H3: the sharing requests compliance staff approve first: none, across accounts, of an organisation, all. */
  sharingApproval: 'never' | 'cross-account' | 'organisation' | 'always';
  /** R4: the Client Services centers the help pages show (none: the pages say to call the number the broker gave). */
  support: SupportCenter[];
}

/** X6: how the outbox worker delivers notices: how often it looks, how many at once, the lease and the retries. */
export interface OutboxConfig {
  pollMs: number;
  concurrency: number;
  /** A claimed notice is held this long, renewed while its delivery runs; a dead process's claim lapses after it. */
  leaseMs: number;
  /** Attempts in all before a notice is recorded as failed. */
  maxAttempts: number;
  /** Wait before the second attempt, doubled before each further one, at most retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
}

/** How e-mail reaches the relay (docs/operations.md): `required` TLS, opportunistic `starttls`, or `none`. */
export type SmtpTlsMode = 'required' | 'starttls' | 'none';

/** A text-to-speech voice and its language for <Say>. */
export interface VoiceChoice {
  voice: string;
  language: string;
}

/** How notices leave: the development outbox, or real gateways (docs/operations.md). */
export interface DeliveryConfig {
  email:
    | { provider: 'outbox' }
    | {
        provider: 'smtp';
        host: string;
        port: number;
        secure: boolean;
        tls: SmtpTlsMode;
        ca?: string;
        user?: string;
        pass?: string;
        from: string;
        timeoutMs: number;
      };
  sms:
    | { provider: 'outbox' }
    | {
        provider: 'twilio';
        baseUrl: string;
        accountSid: string;
        authToken: string;
        from: string;
        timeoutMs: number;
        voices?: Partial<Record<'en' | 'fr' | 'zh-Hant', VoiceChoice>>;
      };
  retry: { attempts: number; baseDelayMs: number };
}

/** Numbers of the login rules; the defaults are the spec's. */
export interface PolicyConfig {
  /** L3: consecutive failures that lock a user. */
  lockoutThreshold: number;
  /** L3: the window in which they must fall, and the lock's length after the last one. */
  lockoutWindowMs: number;
  /** L4: how long a challenge may be answered. */
  challengeTtlMs: number;
  /** L4: wrong answers a challenge admits. */
  challengeMaxAttempts: number;
  /** L8: portal sessions. */
  portalIdleMs: number;
  portalMaxMs: number;
  /** L8/K12: trading sessions (a PIN confirmation on the mobile authenticator grants up to this). */
  tradingMaxMs: number;
  /** K12: trading sessions confirmed by biometric, renewed while the user authenticates within it. */
  tradingBiometricMs: number;
  /** K13: how long a push request waits for the phone's answer. */
  pushTtlMs: number;
  /** K3: how long an approved login waits for its page to take the session. */
  approvedClaimMs: number;
  /**
   * K13 (push fatigue): push requests a user's logins from clients they have not logged in from lately
   * (decision 0018) may send in an hour (each login and each device change in one counts); beyond, the
   * login shows the app's challenge (K4) and the phone is left alone.
   */
  unrecognisedPushesPerHour: number;
  /** K13: after "this wasn't me", how long logins from such clients send the phone no push request (the app's challenge instead). */
  pushQuietAfterDenyMs: number;
  /** K1, K7: how long an activation of the mobile authenticator may take. */
  mobileActivationTtlMs: number;
  /** K1 (issue 16 item 3): how long a proven activation token waits for the PIN. */
  mobileActivationProvenTtlMs: number;
  /** K8: wrong recovery PINs, never reset by a login, before recovery is blocked (then: Migrate). */
  mobileRecoveryMaxFailures: number;
  /** K14: how long a temporary password waits on the phone to be read. */
  appMessageTtlMs: number;
  /** T3: a temporary passcode gives full access this long after it is issued … */
  temporaryPasscodeFullMs: number;
  /** … and then portal access to the online card pages until this age. */
  temporaryPasscodeLifeMs: number;
  /** S3: an online security card gives full access this long after activation. */
  onlineCardLifeMs: number;
  /** C1: a DSC+ may be requested by accounts with equity above this (USD). */
  dscPlusMinEquityUsd: number;
  /** C4/C5: the deposit held while the card is out (USD). */
  dscPlusDepositUsd: number;
  /** C6: a shipped card activates itself this long after shipment … */
  autoActivationMs: number;
  /** … and the user hears of it this long before (approaching), and this long before (imminent). */
  autoActivationApproachingMs: number;
  autoActivationImminentMs: number;
  /**
   * R2, D2, K7 (decision 0023): a device the user reports lost from a session that proved a weaker device still
   * counts, this long, as the strongest the user holds when a new device is bound: the password and a SIM never
   * report a DSC+ lost and bring in a phone or a key at once; client services (R2) are not held back.
   */
  weakerLossReportWaitMs: number;
  /** T1/A5: how long a recorded identity verification allows help-desk actions. */
  identityVerificationTtlMs: number;
  /** M7: how long a code sent by SMS or voice may be entered. */
  smsCodeTtlMs: number;
  /** M1: a new confirm code for a mobile number only after this long. */
  smsConfirmResendMs: number;
  /** M1: wrong confirm codes before a new one must be sent. */
  smsConfirmMaxAttempts: number;
  /** M5: a new login code to the same number only after this long. */
  smsLoginResendMs: number;
  /** M5: codes one login may send (the first and the new ones). */
  smsSendsPerFlow: number;
  /** Codes and notices one number may receive in an hour, and in a day (flooding, cost). */
  smsPerNumberPerHour: number;
  smsPerNumberPerDay: number;
  /** Codes one user may cause to be sent in an hour, and in a day (SMS pumping: one account, many numbers of its own). */
  smsPerUserPerHour: number;
  smsPerUserPerDay: number;
  /**
   * M7: the countries (ISO 3166) whose mobile numbers may be put on record and sent codes and notices (SMS pumping:
   * premium-rate or far-away numbers cost money); empty: every country.
   */
  smsCountries: readonly string[];
  /** L4: flows (logins, step-ups, device proofs, activations) one user may have open at once … */
  openFlowsPerUser: number;
  /** … and start in an hour. */
  flowStartsPerHour: number;
  /** X7, V1: how recent a step-up must be for a change of the security settings. */
  stepUpFreshMs: number;
  /** A5: how long a one-time password from client services works (for one login). */
  oneTimePasswordTtlMs: number;
}

export const DEFAULT_POLICY: PolicyConfig = {
  lockoutThreshold: 10,
  lockoutWindowMs: 24 * 60 * 60 * 1000,
  challengeTtlMs: 5 * 60 * 1000,
  challengeMaxAttempts: 3,
  portalIdleMs: 30 * 60 * 1000,
  portalMaxMs: 12 * 60 * 60 * 1000,
  tradingMaxMs: 12 * 60 * 60 * 1000,
  tradingBiometricMs: 30 * 60 * 60 * 1000,
  pushTtlMs: 2 * 60 * 1000,
  approvedClaimMs: 2 * 60 * 1000,
  unrecognisedPushesPerHour: 5,
  pushQuietAfterDenyMs: 24 * 60 * 60 * 1000,
  mobileActivationTtlMs: 15 * 60 * 1000,
  mobileActivationProvenTtlMs: 10 * 60 * 1000,
  mobileRecoveryMaxFailures: 5,
  appMessageTtlMs: 24 * 60 * 60 * 1000,
  temporaryPasscodeFullMs: 2 * 24 * 60 * 60 * 1000,
  temporaryPasscodeLifeMs: 12 * 24 * 60 * 60 * 1000,
  onlineCardLifeMs: 21 * 24 * 60 * 60 * 1000,
  identityVerificationTtlMs: 30 * 60 * 1000,
  dscPlusMinEquityUsd: 1_000_000,
  dscPlusDepositUsd: 20,
  autoActivationMs: 21 * 24 * 60 * 60 * 1000,
  autoActivationApproachingMs: 7 * 24 * 60 * 60 * 1000,
  autoActivationImminentMs: 24 * 60 * 60 * 1000,
  weakerLossReportWaitMs: 3 * 24 * 60 * 60 * 1000,
  smsCodeTtlMs: 10 * 60 * 1000,
  smsConfirmResendMs: 2 * 60 * 1000,
  smsConfirmMaxAttempts: 5,
  smsLoginResendMs: 30 * 1000,
  smsSendsPerFlow: 5,
  smsPerNumberPerHour: 10,
  smsPerNumberPerDay: 30,
  smsPerUserPerHour: 10,
  smsPerUserPerDay: 30,
  smsCountries: [],
  openFlowsPerUser: 10,
  flowStartsPerHour: 60,
  stepUpFreshMs: DEFAULT_POLICY_MINUTES.stepUp * 60 * 1000,
  oneTimePasswordTtlMs: 24 * 60 * 60 * 1000,
};

export interface ConfigOverrides {
  port?: number;
  databaseUrl?: string;
  dataDir?: string;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: ConfigOverrides = {}): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const setting = String(issue.path[0]);
    // X2, X3: a reason of our own words is told as errors.INVALID_CONFIG_<reason> (its values with it); zod's own from validation.*
    if (hasTranslation(`errors.INVALID_CONFIG_${issue.message.replace(/\W+/g, '_')}`, 'en')) {
      const values = issue.code === 'custom' ? (issue.params as Record<string, string> | undefined) : undefined;
      throw new SlsError('INVALID_CONFIG', { ...values, setting, reason: issue.message });
    }
    throw new SlsError('INVALID_CONFIG', { setting, reason: issueReason(issue) });
  }
  const e = parsed.data;
  const dataDir = resolve(overrides.dataDir ?? e.SLS_DATA_DIR);
  return {
    port: overrides.port ?? e.SLS_PORT,
    host: e.SLS_HOST,
    dataDir,
    databaseUrl: overrides.databaseUrl ?? e.SLS_DATABASE_URL ?? `sqlite:${resolve(dataDir, 'sls.db')}`,
    masterKey: e.SLS_MASTER_KEY,
    publicUrl: e.SLS_PUBLIC_URL,
    cookieSecure: e.SLS_COOKIE_SECURE,
    trustProxy: e.SLS_TRUST_PROXY,
    redisUrl: e.SLS_REDIS_URL,
    limits: {
      login: e.SLS_LIMIT_LOGIN,
      answer: e.SLS_LIMIT_ANSWER,
      send: e.SLS_LIMIT_SEND,
      activation: e.SLS_LIMIT_ACTIVATION,
      helpdesk: e.SLS_LIMIT_HELPDESK,
      admin: e.SLS_LIMIT_ADMIN,
      integration: e.SLS_LIMIT_INTEGRATION,
    },
    shutdownTimeoutMs: e.SLS_SHUTDOWN_TIMEOUT_MS,
    logLevel: e.SLS_LOG_LEVEL,
    defaultLanguage: e.SLS_DEFAULT_LANGUAGE,
    policy: {
      ...DEFAULT_POLICY,
      stepUpFreshMs: e.SLS_STEP_UP_MINUTES * 60 * 1000,
      openFlowsPerUser: e.SLS_OPEN_FLOWS_PER_USER,
      flowStartsPerHour: e.SLS_FLOW_STARTS_PER_HOUR,
      unrecognisedPushesPerHour: e.SLS_UNRECOGNISED_PUSHES_PER_HOUR,
      pushQuietAfterDenyMs: e.SLS_PUSH_QUIET_AFTER_DENY_HOURS * 60 * 60 * 1000,
      smsCountries: e.SLS_SMS_COUNTRIES,
    },
    delivery: deliveryConfig(e),
    outboxPage: e.SLS_OUTBOX_PAGE,
    push:
      e.SLS_PUSH_PROVIDER === 'none'
        ? { provider: 'none' }
        : {
            provider: 'web-push',
            ...(e.SLS_VAPID_PUBLIC_KEY ? { publicKey: e.SLS_VAPID_PUBLIC_KEY } : {}),
            ...(e.SLS_VAPID_PRIVATE_KEY ? { privateKey: e.SLS_VAPID_PRIVATE_KEY } : {}),
            subject: e.SLS_VAPID_SUBJECT,
            timeoutMs: e.SLS_PUSH_TIMEOUT_MS,
          },
    pushServices: e.SLS_PUSH_SERVICES,
    timeZone: e.SLS_TIME_ZONE,
    securityKeyAaguids: e.SLS_SECURITY_KEY_AAGUIDS,
    outbox: {
      pollMs: e.SLS_OUTBOX_POLL_MS,
      concurrency: e.SLS_OUTBOX_CONCURRENCY,
      leaseMs: e.SLS_OUTBOX_LEASE_MS,
      maxAttempts: e.SLS_OUTBOX_MAX_ATTEMPTS,
      retryBaseMs: e.SLS_OUTBOX_RETRY_BASE_MS,
      retryMaxMs: e.SLS_OUTBOX_RETRY_MAX_MS,
    },
    metrics: { token: e.SLS_METRICS_TOKEN ?? null, allow: e.SLS_METRICS_ALLOW },
    businessDays: { holidays: holidaysOf(e), timeZone: e.SLS_BUSINESS_TIME_ZONE ?? e.SLS_TIME_ZONE },
    fxRateMaxAgeMs: e.SLS_FX_RATE_MAX_AGE_HOURS === 0 ? null : e.SLS_FX_RATE_MAX_AGE_HOURS * 3_600_000,
    sharingApproval: e.SLS_SHARING_APPROVAL,
    support: supportCenters({ phone: e.SLS_SUPPORT_PHONE, email: e.SLS_SUPPORT_EMAIL, hours: e.SLS_SUPPORT_HOURS, file: e.SLS_SUPPORT_FILE }),
  };
}

/** W3: the holidays of SLS_HOLIDAYS and of the file SLS_HOLIDAYS_FILE, together. */
function holidaysOf(e: Env): string[] {
  const listed = parseHolidays(e.SLS_HOLIDAYS, 'SLS_HOLIDAYS');
  if (!e.SLS_HOLIDAYS_FILE) return listed;
  const text = readSettingFile(e.SLS_HOLIDAYS_FILE, 'SLS_HOLIDAYS_FILE');
  return [...new Set([...listed, ...parseHolidays(text, 'SLS_HOLIDAYS_FILE')])].sort();
}

type Env = z.infer<typeof EnvSchema>;

function deliveryConfig(e: Env): DeliveryConfig {
  return {
    email: emailConfig(e),
    sms: smsConfig(e),
    retry: { attempts: e.SLS_DELIVERY_RETRY_ATTEMPTS, baseDelayMs: e.SLS_DELIVERY_RETRY_BASE_MS },
  };
}

function smsConfig(e: Env): DeliveryConfig['sms'] {
  if (e.SLS_SMS_PROVIDER === 'outbox') return { provider: 'outbox' };
  const missing = (['SLS_TWILIO_ACCOUNT_SID', 'SLS_TWILIO_AUTH_TOKEN', 'SLS_TWILIO_FROM'] as const).find((name) => !e[name]);
  if (missing) throw new SlsError('INVALID_CONFIG', { setting: missing, reason: 'twilio needs' });
  return {
    provider: 'twilio',
    baseUrl: e.SLS_TWILIO_BASE_URL,
    accountSid: e.SLS_TWILIO_ACCOUNT_SID!,
    authToken: e.SLS_TWILIO_AUTH_TOKEN!,
    from: e.SLS_TWILIO_FROM!,
    timeoutMs: e.SLS_TWILIO_TIMEOUT_MS,
    voices: {
      ...(e.SLS_TWILIO_VOICE_EN ? { en: e.SLS_TWILIO_VOICE_EN } : {}),
      ...(e.SLS_TWILIO_VOICE_FR ? { fr: e.SLS_TWILIO_VOICE_FR } : {}),
      ...(e.SLS_TWILIO_VOICE_ZH_HANT ? { 'zh-Hant': e.SLS_TWILIO_VOICE_ZH_HANT } : {}),
    },
  };
}

function emailConfig(e: Env): DeliveryConfig['email'] {
  if (e.SLS_EMAIL_PROVIDER === 'outbox') return { provider: 'outbox' };
  if (!e.SLS_SMTP_HOST || !e.SLS_SMTP_FROM) {
    throw new SlsError('INVALID_CONFIG', { setting: 'SLS_SMTP_HOST', reason: 'smtp needs host and from' });
  }
  const loopback = isLoopbackHost(e.SLS_SMTP_HOST);
  // X6: TLS is required unless the relay is this machine, or the operator says otherwise
  const tls: SmtpTlsMode = e.SLS_SMTP_TLS ?? (loopback && !e.SLS_SMTP_SECURE ? 'none' : 'required');
  if (e.SLS_SMTP_SECURE && tls !== 'required') {
    throw new SlsError('INVALID_CONFIG', { setting: 'SLS_SMTP_TLS', reason: 'secure needs TLS required' });
  }
  // the relay password is never sent where TLS is not certain, unless the relay is this machine
  if (tls !== 'required' && !loopback && e.SLS_SMTP_PASS) {
    throw new SlsError('INVALID_CONFIG', {
      setting: 'SLS_SMTP_TLS',
      reason: 'password in clear',
      tls,
      host: e.SLS_SMTP_HOST,
    });
  }
  let ca: string | undefined;
  if (e.SLS_SMTP_CA_FILE) ca = readSettingFile(e.SLS_SMTP_CA_FILE, 'SLS_SMTP_CA_FILE');
  return {
    provider: 'smtp',
    host: e.SLS_SMTP_HOST,
    port: e.SLS_SMTP_PORT,
    // implicit TLS: asked for, or the port of SMTP over TLS (RFC 8314)
    secure: tls === 'required' && (e.SLS_SMTP_SECURE || e.SLS_SMTP_PORT === 465),
    tls,
    ...(ca ? { ca } : {}),
    ...(e.SLS_SMTP_USER ? { user: e.SLS_SMTP_USER } : {}),
    ...(e.SLS_SMTP_PASS ? { pass: e.SLS_SMTP_PASS } : {}),
    from: e.SLS_SMTP_FROM,
    timeoutMs: e.SLS_SMTP_TIMEOUT_MS,
  };
}

/**
 * M7, X5: whether the development outbox page (/dev/outbox, codes included)
 * is served: only with SLS_OUTBOX_PAGE=on, and only while every message
 * stays in the development outbox (no real gateway).
 */
export function outboxPageServed(config: Pick<Config, 'outboxPage' | 'delivery'>): boolean {
  return config.outboxPage === 'on' && config.delivery.email.provider === 'outbox' && config.delivery.sms.provider === 'outbox';
}
