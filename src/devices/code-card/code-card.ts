/**
 * Code cards (S1–S4): a grid of indexed 3-digit codes. At login the system
 * shows two index numbers; the user types the two codes one after the other
 * with no spaces (6 digits). The printed legacy Security Code Card (SCC) and
 * the temporary Online Security Code Card work the same way.
 *
 * L4, S4 (docs/decisions/0008-code-card-single-use.md): an accepted answer
 * uses up its pair of index numbers (in either order) and the two cells it
 * revealed, for the card's life: no later challenge asks a cell whose code
 * has been typed, so a phished or overheard answer is worth nothing. The
 * challenge is the card's *pending* pair: two unused cells chosen by a keyed
 * hash of the card and of how many cells are used, so every challenge
 * issued before the next accepted answer shows the same pair — starting
 * logins without answering cannot cycle the pairs. A card whose unused cells
 * no longer make a pair is used up.
 */
import { createHmac } from 'node:crypto';
import { constantTimeEqual } from '../../crypto/constant-time.js';
import { newToken, randomDigits } from '../../crypto/random.js';
import { SlsError } from '../../errors.js';
import type { Challenge, CheckResult, DeviceContext, DeviceKind } from '../types.js';

/** S4: at least 100 codes a card. */
export const CARD_CODES = 120;
export const CODE_DIGITS = 3;

export interface CodeCardSecret {
  /** codes[i] is the code under index number i + 1. */
  codes: string[];
  /** Key of the order in which index pairs are asked. */
  orderKey: string;
}

export function newCodeCard(size = CARD_CODES): CodeCardSecret {
  return { codes: Array.from({ length: size }, () => randomDigits(CODE_DIGITS)), orderKey: newToken() };
}

/** The replay key of a cell (index number, 1-based) whose code an accepted answer revealed. */
export function cellKey(index: number): string {
  return `cell:${index}`;
}

/** The replay key of a pair of index numbers, in either order. */
export function pairKey([a, b]: [number, number]): string {
  return `pair:${Math.min(a, b)}:${Math.max(a, b)}`;
}

/**
 * The pending pair of a card: the two unused cells that rank first under a
 * keyed hash of the card and of `round` (how many cells are used), shown in
 * an order the same hash decides. The same until an answer is accepted.
 */
export function pendingPair(secret: CodeCardSecret, unused: number[], round: number): [number, number] {
  if (unused.length < 2) throw new SlsError('CARD_USED_UP');
  const rank = (index: number): string => createHmac('sha256', secret.orderKey).update(`${round}:${index}`).digest('hex');
  const [first, second] = unused
    .map((index) => ({ index, key: rank(index) }))
    .sort((x, y) => (x.key < y.key ? -1 : 1))
    .map((x) => x.index) as [number, number];
  return createHmac('sha256', secret.orderKey).update(`${round}:order`).digest()[0]! % 2 === 0 ? [first, second] : [second, first];
}

/** The index numbers (1-based) of the card whose codes no accepted answer revealed yet. */
async function unusedCells(ctx: DeviceContext, secret: CodeCardSecret): Promise<number[]> {
  const indexes = secret.codes.map((_, i) => i + 1);
  const used = await ctx.used(indexes.map(cellKey));
  return indexes.filter((index) => !used.has(cellKey(index)));
}

export function expectedAnswer(secret: CodeCardSecret, indexes: [number, number]): string {
  return secret.codes[indexes[0] - 1]! + secret.codes[indexes[1] - 1]!;
}

function codeCardKind(
  kind: Pick<DeviceKind, 'type' | 'strength' | 'amr' | 'temporary' | 'physical' | 'capabilities' | 'withdrawalRow' | 'access' | 'selfActivation'>,
): DeviceKind {
  return {
    ...kind,
    failureHints: ['hints.noSpaces'],

    async issueChallenge(ctx: DeviceContext): Promise<Challenge> {
      const secret = ctx.secret<CodeCardSecret>();
      const unused = await unusedCells(ctx, secret);
      const indexes = pendingPair(secret, unused, secret.codes.length - unused.length);
      return { prompt: { type: 'index', indexes }, verifier: { indexes } };
    },

    async checkResponse(ctx: DeviceContext, verifier: Record<string, unknown>, response: string): Promise<CheckResult> {
      const secret = ctx.secret<CodeCardSecret>();
      const indexes = verifier.indexes as [number, number];
      if (!constantTimeEqual(expectedAnswer(secret, indexes), response)) return { ok: false };
      // the cells it reveals are used up; a card left without an unused pair is used up (S4)
      const unused = (await unusedCells(ctx, secret)).filter((index) => !indexes.includes(index));
      return { ok: true, replayKeys: [pairKey(indexes), cellKey(indexes[0]), cellKey(indexes[1])], usedUp: unused.length < 2 };
    },
  };
}

/** S1: the legacy printed Security Code Card. */
export const securityCodeCard = codeCardKind({
  type: 'scc',
  strength: 40,
  amr: ['otp'],
  temporary: false,
  // H, K7: printed on paper, it is a physical device (the online card, printed by the user, is a temporary one)
  physical: true,
  withdrawalRow: { perDayUsd: 200_000, fiveBusinessDaysUsd: 600_000 },
  capabilities: { reactivate: true },
});
/** S2: the temporary Online Security Code Card. */
export const onlineCard = codeCardKind({
  type: 'online_card',
  strength: 2,
  amr: ['otp'],
  temporary: true,
  capabilities: {},
  // S3: full access for 21 days from activation
  access(device, _app, now, policy) {
    const start = device.activatedAt ?? now;
    if (now - start >= policy.onlineCardLifeMs) return { allowed: false, reason: 'ONLINE_CARD_EXPIRED', check: 'online-card-window' };
    return { allowed: true, scope: 'full', check: 'online-card-window', until: start + policy.onlineCardLifeMs };
  },
  // S2: the user activates it once the print is confirmed; it lasts 21 days
  selfActivation: {
    notReady: (device) =>
      device.state !== 'requested' ? 'DEVICE_NOT_AVAILABLE' : typeof device.params.printConfirmedAt !== 'number' ? 'PRINT_NOT_CONFIRMED' : null,
    lifeMs: (policy) => policy.onlineCardLifeMs,
  },
});
