/**
 * The printable code card (S2, S4): a PDF (pdfkit) and a PNG image
 * (@napi-rs/canvas, with the DejaVu Sans Mono font shipped in
 * dejavu-fonts-ttf), both laid out as a grid of index numbers and codes.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { lazyPackage } from '../../lazy-package.js';

const pdfkit = lazyPackage<typeof import('pdfkit')>('pdfkit');
const canvasPackage = lazyPackage<typeof import('@napi-rs/canvas')>('@napi-rs/canvas');

export interface PrintableCard {
  /** Lines above the grid: title, user, card number, validity … already translated. */
  heading: string[];
  /** A line under the grid: how to use the card. */
  footer: string;
  codes: string[];
}

export const GRID_COLUMNS = 10;

/**
 * A font with Chinese characters, for Traditional Chinese headings: Debian's
 * fonts-noto-cjk when installed. Without one the card is printed with
 * English headings (the codes are digits either way).
 */
export const CJK_FONT: string | null =
  ['/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc', '/usr/share/fonts/opentype/noto/NotoSansCJKtc-Regular.otf'].find((path) => existsSync(path)) ??
  null;

// biome-ignore lint/suspicious/noControlCharactersInRegex: the range names every Latin-1 character, control characters included
const NOT_LATIN1 = /[^\u0000-\u00ff\u2018-\u201d]/;

function rows(card: PrintableCard): number {
  return Math.ceil(card.codes.length / GRID_COLUMNS);
}

export function cardPdf(card: PrintableCard): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const PDFDocument = pdfkit();
    const doc = new PDFDocument({ size: 'A4', margin: 48, info: { Title: card.heading[0] ?? 'Security code card', Producer: 'Secure Login System' } });
    const chunks: Buffer[] = [];
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
    const [title, ...rest] = card.heading;
    const wide = CJK_FONT !== null && [...card.heading, card.footer].some((line) => NOT_LATIN1.test(line));
    const regular = (): PDFKit.PDFDocument => (wide ? doc.font(CJK_FONT!, 'NotoSansCJKtc-Regular') : doc.font('Helvetica'));
    (wide ? regular() : doc.font('Helvetica-Bold')).fontSize(18).text(title ?? '', { align: 'left' });
    doc.moveDown(0.3);
    regular().fontSize(10);
    for (const line of rest) doc.text(line);
    doc.moveDown(1);
    const cellWidth = (doc.page.width - 96) / GRID_COLUMNS;
    const cellHeight = 34;
    const top = doc.y;
    card.codes.forEach((code, i) => {
      const x = 48 + (i % GRID_COLUMNS) * cellWidth;
      const y = top + Math.floor(i / GRID_COLUMNS) * cellHeight;
      doc.rect(x, y, cellWidth, cellHeight).lineWidth(0.5).stroke('#8a93a0');
      doc
        .fillColor('#5a6270')
        .font('Helvetica')
        .fontSize(7)
        .text(String(i + 1), x + 3, y + 3, { width: cellWidth - 6 });
      doc
        .fillColor('#000000')
        .font('Courier-Bold')
        .fontSize(14)
        .text(code, x, y + 13, { width: cellWidth, align: 'center' });
    });
    doc.y = top + rows(card) * cellHeight + 16;
    doc.x = 48;
    regular()
      .fontSize(9)
      .fillColor('#000000')
      .text(card.footer, { width: doc.page.width - 96 });
    doc.end();
  });
}

const FONT_FAMILY = 'SLS Card Mono';
const CJK_FAMILY = 'SLS Card CJK';
const FONTS = `"${FONT_FAMILY}", "${CJK_FAMILY}"`;
let fontRegistered = false;

function registerFont(): void {
  if (fontRegistered) return;
  const require = createRequire(import.meta.url);
  const { GlobalFonts } = canvasPackage();
  GlobalFonts.registerFromPath(require.resolve('dejavu-fonts-ttf/ttf/DejaVuSansMono.ttf'), FONT_FAMILY);
  GlobalFonts.registerFromPath(require.resolve('dejavu-fonts-ttf/ttf/DejaVuSansMono-Bold.ttf'), FONT_FAMILY);
  if (CJK_FONT) GlobalFonts.registerFromPath(CJK_FONT, CJK_FAMILY);
  fontRegistered = true;
}

/**
 * A text in lines no wider than `width` as `measure` measures them: broken
 * at spaces, and inside a word only where it is wider than a line (Chinese
 * has no spaces).
 */
export function wrapText(text: string, width: number, measure: (text: string) => number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/(?<=\s)/)) {
    if (measure(line + word.trimEnd()) <= width) {
      line += word;
      continue;
    }
    if (line.trim() !== '') lines.push(line.trimEnd());
    line = '';
    for (const char of word) {
      if (line !== '' && measure(line + char) > width) {
        lines.push(line);
        line = '';
      }
      line += char;
    }
  }
  if (line.trim() !== '') lines.push(line.trimEnd());
  return lines;
}

const FOOTER_LINE_HEIGHT = 18;

export function cardPng(card: PrintableCard): Buffer {
  registerFont();
  const { createCanvas } = canvasPackage();
  const cell = { width: 92, height: 54 };
  const margin = 32;
  const headingHeight = 30 + card.heading.length * 22;
  const width = margin * 2 + GRID_COLUMNS * cell.width;
  // the footer in lines of the card's width: measured before the canvas is made, on a canvas of one pixel
  const footerFont = `13px ${FONTS}`;
  const probe = createCanvas(1, 1).getContext('2d');
  probe.font = footerFont;
  const footer = wrapText(card.footer, width - margin * 2, (text) => probe.measureText(text).width);
  const height = margin * 2 + headingHeight + rows(card) * cell.height + 26 + footer.length * FOOTER_LINE_HEIGHT;
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = '#000000';
  card.heading.forEach((line, i) => {
    ctx.font = i === 0 ? `bold 24px ${FONTS}` : `15px ${FONTS}`;
    ctx.fillText(line, margin, margin + 24 + i * 24);
  });
  const top = margin + headingHeight;
  ctx.strokeStyle = '#8a93a0';
  ctx.lineWidth = 1;
  card.codes.forEach((code, i) => {
    const x = margin + (i % GRID_COLUMNS) * cell.width;
    const y = top + Math.floor(i / GRID_COLUMNS) * cell.height;
    ctx.strokeRect(x, y, cell.width, cell.height);
    ctx.fillStyle = '#5a6270';
    ctx.font = `12px "${FONT_FAMILY}"`;
    ctx.fillText(String(i + 1), x + 5, y + 15);
    ctx.fillStyle = '#000000';
    ctx.font = `bold 24px "${FONT_FAMILY}"`;
    ctx.fillText(code, x + (cell.width - ctx.measureText(code).width) / 2, y + 42);
  });
  ctx.font = footerFont;
  footer.forEach((line, i) => {
    ctx.fillText(line, margin, top + rows(card) * cell.height + 26 + i * FOOTER_LINE_HEIGHT);
  });
  return canvas.toBuffer('image/png');
}
