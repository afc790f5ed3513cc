/**
 * Code cards (S1–S4): a grid of indexed 3-digit codes. At login the system
 * shows two index numbers; the user types the two codes one after the other
 * with no spaces (6 digits). The printed legacy Security Code Card (SCC) and
 * the temporary Online Security Code Card work the same way.
 *
 * S4: the pairs of index numbers are asked in an order that is a fresh
 * random permutation of all pairs for every round, so that no pair comes
 * again before every pair has been asked once. The card's counter says
 * where in which round the next challenge is; it advances atomically.
 */
import { createHmac } from 'node:crypto';
import { constantTimeEqual } from '../../crypto/constant-time.js';
import { randomDigits } from '../../crypto/random.js';
import { newToken } from '../../crypto/random.js';
import type { Challenge, CheckResult, DeviceContext, DeviceKind, DeviceType } from '../types.js';

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

/** Every pair of index numbers (1-based), in a fixed order. */
function allPairs(size: number): [number, number][] {
  const pairs: [number, number][] = [];
  for (let a = 1; a <= size; a++) for (let b = a + 1; b <= size; b++) pairs.push([a, b]);
  return pairs;
}

const orders = new Map<string, [number, number][]>();

/** The order of the pairs in one round: all pairs, shuffled by a keyed hash. */
function roundOrder(secret: CodeCardSecret, round: number): [number, number][] {
  const cacheKey = `${secret.orderKey}:${round}`;
  let order = orders.get(cacheKey);
  if (!order) {
    const rank = (pair: [number, number]): string =>
      createHmac('sha256', secret.orderKey).update(`${round}:${pair[0]}:${pair[1]}`).digest('hex');
    order = allPairs(secret.codes.length)
      .map((pair) => ({ pair, key: rank(pair) }))
      .sort((x, y) => (x.key < y.key ? -1 : 1))
      .map((x) => x.pair);
    if (orders.size > 200) orders.clear();
    orders.set(cacheKey, order);
  }
  return order;
}

/** The pair asked at a position of the card's sequence. */
export function pairAt(secret: CodeCardSecret, position: number): [number, number] {
  const pairs = (secret.codes.length * (secret.codes.length - 1)) / 2;
  const order = roundOrder(secret, Math.floor(position / pairs));
  const [a, b] = order[position % pairs]!;
  // show the two index numbers in a random-looking but fixed order
  return position % 2 === 0 ? [a, b] : [b, a];
}

export function expectedAnswer(secret: CodeCardSecret, indexes: [number, number]): string {
  return secret.codes[indexes[0] - 1]! + secret.codes[indexes[1] - 1]!;
}

function codeCardKind(type: DeviceType): DeviceKind {
  return {
    type,
    failureHints: ['hints.noSpaces'],

    async issueChallenge(ctx: DeviceContext): Promise<Challenge> {
      const position = await ctx.nextCounter();
      const indexes = pairAt(ctx.secret<CodeCardSecret>(), position);
      return { prompt: { type: 'index', indexes }, verifier: { indexes, position } };
    },

    async checkResponse(ctx: DeviceContext, verifier: Record<string, unknown>, response: string): Promise<CheckResult> {
      const indexes = verifier.indexes as [number, number];
      const ok = constantTimeEqual(expectedAnswer(ctx.secret<CodeCardSecret>(), indexes), response);
      return ok ? { ok, replayKey: `position:${String(verifier.position)}` } : { ok };
    },
  };
}

/** S1: the legacy printed Security Code Card. */
export const securityCodeCard = codeCardKind('scc');
/** S2: the temporary Online Security Code Card. */
export const onlineCard = codeCardKind('online_card');
