/**
 * The legacy Platinum and Gold tokens (D1): one-time-password tokens that
 * show a code at the press of a button. Event-based ones follow HOTP (RFC
 * 4226), time-based ones TOTP (RFC 6238). They are no longer issued: they
 * come only from imported keys (PSKC, `…pskc:hotp` and `…pskc:totp`) and are
 * assigned to the users who hold them (docs/legacy-devices.md).
 *
 * Drift and single use (L4):
 * - HOTP: the code of the expected counter or of one of the next
 *   `lookAhead` counters (default 10) is accepted, and the counter moves
 *   past it (the new secret, written with the acceptance). Further out, up
 *   to `resyncWindow` counters (default 100), two consecutive codes typed
 *   together resynchronise the token (RFC 4226 §7.4). Each accepted
 *   counter is a replay key, and no counter at or below one already
 *   accepted is accepted again, even if a concurrent acceptance wrote an
 *   older counter.
 * - TOTP: the code of the current time step or of `timeWindow` steps either
 *   side (default 1) is accepted; the drift found is kept (RFC 6238 §6) so
 *   the window follows the token's clock. Each accepted step is a replay
 *   key, and no step at or before one already accepted is accepted again,
 *   even when two are answered at once (the secret is written with every
 *   acceptance, so of two codes checked together only one is taken).
 */
import { constantTimeEqual } from '../../crypto/constant-time.js';
import { generateHotp, totpCounter, type HashAlgorithm } from '../../crypto/hotp.js';
import { SlsError } from '../../errors.js';
import type { CheckResult, DeviceContext, DeviceKind, ImportedKey, ImportSettings, StockKind } from '../types.js';

export const DEFAULT_LOOK_AHEAD = 10;
export const DEFAULT_RESYNC_WINDOW = 100;
export const DEFAULT_TIME_WINDOW = 1;
export const DEFAULT_PERIOD = 30;
const MAX_WINDOW = 1000;

/** What an HOTP token seals: its key (hex) and the next counter it is expected to show. */
export interface HotpSecret {
  key: string;
  counter: number;
}

/** What a TOTP token seals: its key (hex) and its clock's drift, in time steps. */
export interface TotpSecret {
  key: string;
  drift: number;
}

/** The clear parameters of a token (devices.params). */
interface TokenParams {
  digits: number;
  hash: HashAlgorithm;
  lookAhead?: number;
  resyncWindow?: number;
  period?: number;
  t0?: number;
  timeWindow?: number;
}

function paramsOf(ctx: DeviceContext): TokenParams {
  return ctx.device.params as unknown as TokenParams;
}

/** The replay key of an accepted HOTP counter or TOTP time step. */
export function counterKey(counter: number): string {
  return `c:${counter}`;
}

function range(from: number, to: number): number[] {
  return from > to ? [] : Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** The first counter (or step) above every one of `candidates` already accepted. */
async function firstUnused(ctx: DeviceContext, candidates: number[]): Promise<number> {
  const used = await ctx.used(candidates.map(counterKey));
  return Math.max(-Infinity, ...candidates.filter((c) => used.has(counterKey(c))).map((c) => c + 1));
}

function invalidKey(key: ImportedKey, reason: string, detail: string): SlsError {
  return new SlsError('INVALID_PSKC', { reason, serial: key.serial }, `invalid PSKC: ${reason}: key ${key.keyId} of ${key.serial}: ${detail}`);
}

/** The HMAC of an imported token key: from its `<Suite>` (HMAC-SHA1, HMAC-SHA256, HMAC-SHA512), SHA-1 by default. */
function hashOf(key: ImportedKey): HashAlgorithm {
  if (key.suite === undefined) return 'sha1';
  const match = /^(?:HMAC-?)?SHA-?(1|256|512)$/i.exec(key.suite.trim());
  if (!match) throw invalidKey(key, 'unsupported algorithm', `token hash ${key.suite}`);
  return `sha${match[1]}` as HashAlgorithm;
}

function digitsOf(key: ImportedKey): number {
  const digits = key.responseLength ?? 6;
  if (digits < 6 || digits > 10) throw invalidKey(key, 'invalid value', 'a token code has 6 to 10 digits');
  return digits;
}

function windowOf(key: ImportedKey, value: number | undefined, fallback: number): number {
  const window = value ?? fallback;
  if (!Number.isInteger(window) || window < 0 || window > MAX_WINDOW) throw invalidKey(key, 'invalid value', `a drift window is 0 to ${MAX_WINDOW}`);
  return window;
}

function labelOf(key: ImportedKey): string {
  return key.model ? `${key.model} ${key.serial}` : key.serial;
}

const hotpStock: StockKind = {
  fromKey(key: ImportedKey, settings: ImportSettings) {
    if (key.family !== 'hotp') return null;
    const secret: HotpSecret = { key: key.secret.toString('hex'), counter: key.counter ?? 0 };
    const params: TokenParams = {
      digits: digitsOf(key),
      hash: hashOf(key),
      lookAhead: windowOf(key, settings.lookAhead, DEFAULT_LOOK_AHEAD),
      resyncWindow: DEFAULT_RESYNC_WINDOW,
    };
    return { secret, params: { ...params, ...(key.model ? { model: key.model } : {}) }, label: labelOf(key) };
  },
  assignAsIs: true,
  tokenFile: (device, secret) => {
    const s = secret as HotpSecret;
    return { algorithm: 'hotp', key: s.key, counter: s.counter, digits: device.params.digits, hash: device.params.hash };
  },
};

const totpStock: StockKind = {
  fromKey(key: ImportedKey, settings: ImportSettings) {
    if (key.family !== 'totp') return null;
    const period = key.timeInterval ?? DEFAULT_PERIOD;
    if (period < 1 || period > 3600) throw invalidKey(key, 'invalid value', 'a time step is 1 to 3600 seconds');
    const secret: TotpSecret = { key: key.secret.toString('hex'), drift: key.timeDrift ?? 0 };
    const params: TokenParams = {
      digits: digitsOf(key),
      hash: hashOf(key),
      period,
      t0: key.time ?? 0,
      timeWindow: windowOf(key, settings.timeWindow, DEFAULT_TIME_WINDOW),
    };
    return { secret, params: { ...params, ...(key.model ? { model: key.model } : {}) }, label: labelOf(key) };
  },
  assignAsIs: true,
  tokenFile: (device, secret) => ({
    algorithm: 'totp',
    key: (secret as TotpSecret).key,
    period: device.params.period,
    t0: device.params.t0,
    digits: device.params.digits,
    hash: device.params.hash,
  }),
};

/** What both tokens share: their rank, their row, their prompt. */
const token = {
  // D2: DSC+ = Platinum = Gold
  strength: 100,
  amr: ['hwk', 'otp'],
  temporary: false,
  // H, K7: a token the user holds
  physical: true,
  // W1: Platinum / Gold: unlimited
  withdrawalRow: { perDayUsd: null, fiveBusinessDaysUsd: null },
  capabilities: { reactivate: true },
  promptSteps: ['legacy.token.steps.press', 'legacy.token.steps.type'],
  failureHints: ['hints.noSpaces', 'legacy.token.hints.newCode'],
} satisfies Partial<DeviceKind>;

/** Platinum / Gold, event-based (HOTP, RFC 4226). */
export const hotpToken: DeviceKind = {
  type: 'token_hotp',
  ...token,
  stock: hotpStock,

  async issueChallenge(ctx) {
    return { prompt: { type: 'otp', digits: paramsOf(ctx).digits }, verifier: {} };
  },

  async checkResponse(ctx, _verifier, response): Promise<CheckResult> {
    const { digits, hash, lookAhead = DEFAULT_LOOK_AHEAD, resyncWindow = DEFAULT_RESYNC_WINDOW } = paramsOf(ctx);
    const secret = ctx.secret<HotpSecret>();
    const key = Buffer.from(secret.key, 'hex');
    const code = (counter: number) => generateHotp(key, counter, { digits, algorithm: hash });
    const resync = response.length === 2 * digits;
    if (response.length !== digits && !resync) return { ok: false };
    const last = secret.counter + (resync ? resyncWindow : lookAhead);
    const from = Math.max(secret.counter, await firstUnused(ctx, range(secret.counter, last + 1)));
    let found: number | null = null;
    for (const counter of range(from, last)) {
      const match = resync
        ? constantTimeEqual(code(counter), response.slice(0, digits)) && constantTimeEqual(code(counter + 1), response.slice(digits))
        : constantTimeEqual(code(counter), response);
      if (match && found === null) found = counter;
    }
    if (found === null) return { ok: false };
    const accepted = resync ? [found, found + 1] : [found];
    const next: HotpSecret = { ...secret, counter: accepted.at(-1)! + 1 };
    return { ok: true, replayKeys: accepted.map(counterKey), secret: next };
  },
};

/** Platinum / Gold, time-based (TOTP, RFC 6238). */
export const totpToken: DeviceKind = {
  type: 'token_totp',
  ...token,
  stock: totpStock,

  async issueChallenge(ctx) {
    return { prompt: { type: 'otp', digits: paramsOf(ctx).digits }, verifier: {} };
  },

  async checkResponse(ctx, _verifier, response): Promise<CheckResult> {
    const { digits, hash, period = DEFAULT_PERIOD, t0 = 0, timeWindow = DEFAULT_TIME_WINDOW } = paramsOf(ctx);
    if (response.length !== digits) return { ok: false };
    const secret = ctx.secret<TotpSecret>();
    const key = Buffer.from(secret.key, 'hex');
    const now = Number(totpCounter(ctx.now, { period, epoch: t0 }));
    const expected = now + secret.drift;
    const steps = range(expected - timeWindow, expected + timeWindow);
    const from = await firstUnused(ctx, steps);
    let found: number | null = null;
    for (const step of steps.filter((s) => s >= from && s >= 0)) {
      if (constantTimeEqual(generateHotp(key, step, { digits, algorithm: hash }), response) && found === null) found = step;
    }
    if (found === null) return { ok: false };
    // the secret is written with every acceptance, even when the drift stays: two codes checked at once are then
    // not both taken (the second finds the secret changed), so no step before one accepted is accepted after it
    const next: TotpSecret = { ...secret, drift: found - now };
    return { ok: true, replayKeys: [counterKey(found)], secret: next };
  },
};
