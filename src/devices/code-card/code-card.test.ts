import { describe, expect, it } from 'vitest';
import { CARD_CODES, expectedAnswer, newCodeCard, pairAt } from './code-card.js';
import { cardPdf, cardPng } from './print.js';

describe('S4: code cards', () => {
  it('S4: a new card has at least 100 codes of 3 digits from the CSPRNG', () => {
    const card = newCodeCard();
    expect(card.codes).toHaveLength(CARD_CODES);
    expect(CARD_CODES).toBeGreaterThanOrEqual(100);
    for (const code of card.codes) expect(code).toMatch(/^\d{3}$/);
    expect(new Set(card.codes).size).toBeGreaterThan(50);
    expect(newCodeCard().codes).not.toEqual(card.codes);
  });

  it('S4: every pair of index numbers is asked once before any is asked again', () => {
    const card = newCodeCard();
    const pairs = (CARD_CODES * (CARD_CODES - 1)) / 2;
    const key = (p: [number, number]) => `${Math.min(...p)}-${Math.max(...p)}`;
    const firstRound = new Set<string>();
    for (let position = 0; position < pairs; position++) {
      const pair = pairAt(card, position);
      expect(pair[0]).not.toBe(pair[1]);
      expect(Math.min(...pair)).toBeGreaterThanOrEqual(1);
      expect(Math.max(...pair)).toBeLessThanOrEqual(CARD_CODES);
      firstRound.add(key(pair));
    }
    expect(firstRound.size).toBe(pairs);
    // the next round asks them all again, in another order
    const next = Array.from({ length: 50 }, (_, i) => key(pairAt(card, pairs + i)));
    const first = Array.from({ length: 50 }, (_, i) => key(pairAt(card, i)));
    expect(new Set(next).size).toBe(50);
    expect(next).not.toEqual(first);
  });

  it('S1: the answer is the two codes one after the other, no spaces', () => {
    const card = newCodeCard();
    expect(expectedAnswer(card, [3, 17])).toBe(card.codes[2]! + card.codes[16]!);
    expect(expectedAnswer(card, [3, 17])).toMatch(/^\d{6}$/);
  });

  it('S4: the card prints as a PDF and saves as a PNG image', async () => {
    const card = { heading: ['Online Security Code Card', 'User: alice'], footer: 'Type both codes, no spaces.', codes: newCodeCard().codes };
    const pdf = await cardPdf(card);
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    expect(pdf.subarray(-6).toString()).toContain('%%EOF');
    const png = cardPng(card);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    // IHDR: the image is as wide as ten columns of codes
    expect(png.readUInt32BE(16)).toBeGreaterThan(900);
    expect(png.readUInt32BE(20)).toBeGreaterThan(700);
  });
});
