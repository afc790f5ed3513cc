import { describe, expect, it } from 'vitest';
import { CARD_CODES, expectedAnswer, newCodeCard, pendingPair } from './code-card.js';
import { cardPdf, cardPng, wrapText } from './print.js';
import { translator } from '../../i18n/i18n.js';

describe('S4: code cards', () => {
  it('S4: a new card has at least 100 codes of 3 digits from the CSPRNG', () => {
    const card = newCodeCard();
    expect(card.codes).toHaveLength(CARD_CODES);
    expect(CARD_CODES).toBeGreaterThanOrEqual(100);
    for (const code of card.codes) expect(code).toMatch(/^\d{3}$/);
    expect(new Set(card.codes).size).toBeGreaterThan(50);
    expect(newCodeCard().codes).not.toEqual(card.codes);
  });

  it('L4/S4: the pending pair is two unused cells, the same until a cell is used, another after', () => {
    const card = newCodeCard();
    const all = card.codes.map((_, i) => i + 1);
    const first = pendingPair(card, all, 0);
    expect(first[0]).not.toBe(first[1]);
    expect(pendingPair(card, all, 0)).toEqual(first);
    // the two cells are used up: the next pair never asks them
    const unused = all.filter((i) => !first.includes(i));
    const second = pendingPair(card, unused, 2);
    expect(second.some((i) => first.includes(i))).toBe(false);
    // another card asks another pair
    expect(pendingPair(newCodeCard(), all, 0)).not.toEqual(first);
  });

  it('L4/S4: a card without two unused cells is used up', () => {
    const card = newCodeCard();
    expect(() => pendingPair(card, [7], CARD_CODES - 1)).toThrowError(expect.objectContaining({ code: 'CARD_USED_UP' }));
    expect(pendingPair(card, [7, 9], CARD_CODES - 2).sort()).toEqual([7, 9]);
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

  it("S2: the PNG card writes its whole footer in lines of the card's width, in every language (issue 16: it was cut off)", () => {
    const measure = (text: string) => [...text].length * 8;
    for (const footer of [translator('en')('cards.print.footer'), translator('fr')('cards.print.footer'), translator('zh-Hant')('cards.print.footer')]) {
      const lines = wrapText(footer, 400, measure);
      expect(lines.length).toBeGreaterThan(1);
      for (const line of lines) expect(measure(line)).toBeLessThanOrEqual(400);
      expect(lines.join('').replace(/\s/g, '')).toBe(footer.replace(/\s/g, ''));
    }
    // the image grows with the footer's lines
    const codes = newCodeCard().codes;
    const short = cardPng({ heading: ['Card'], footer: 'Short.', codes });
    const long = cardPng({ heading: ['Card'], footer: translator('en')('cards.print.footer').repeat(3), codes });
    expect(long.readUInt32BE(20)).toBeGreaterThan(short.readUInt32BE(20));
  });
});
