/**
 * Phase 9's plot: complete logins/s and their latency (p50, p99) against the
 * number of virtual users, one line per database, as a standalone SVG (no
 * dependency; browsers and GitHub show it, docs/benchmarks.md links it).
 */

export interface SweepPoint {
  concurrency: number;
  ratePerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface SweepSeries {
  name: string;
  points: SweepPoint[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
const W = 960;
const H = 420;
const PANEL = { top: 76, bottom: 60, left: 70, right: 20 };

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 2.5, 5, 10].find((u) => u * power >= raw)!;
  return unit * power;
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(0) : n >= 1 ? n.toFixed(1) : n.toPrecision(1);
}

/** The SVG text of the two panels. */
export function sweepSvg(series: SweepSeries[], subtitle: string): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return '';
  const levels = [...new Set(all.map((p) => p.concurrency))].sort((a, b) => a - b);
  const minC = levels[0]!;
  const maxC = levels.at(-1)!;
  const panelW = (W - 2 * (PANEL.left + PANEL.right)) / 1;
  const width = panelW / 2 - 10;
  const height = H - PANEL.top - PANEL.bottom;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">Complete logins (password + DSC+ response) against concurrency</text>`,
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${escapeXml(subtitle)}</text>`,
  );
  const xOf = (x0: number, c: number): number =>
    maxC === minC ? x0 + width / 2 : x0 + ((Math.log2(c) - Math.log2(minC)) / (Math.log2(maxC) - Math.log2(minC))) * width;

  const panel = (
    x0: number,
    title: string,
    yLabel: string,
    y: (v: number) => number,
    ticks: number[],
    lines: { s: number; dash: boolean; pts: [number, number][] }[],
  ) => {
    out.push(`<rect x="${x0}" y="${PANEL.top}" width="${width}" height="${height}" fill="none" stroke="#999"/>`);
    out.push(`<text x="${x0 + width / 2}" y="${PANEL.top - 8}" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`);
    for (const t of ticks) {
      const yy = y(t);
      out.push(`<line x1="${x0}" x2="${x0 + width}" y1="${yy}" y2="${yy}" stroke="#eee"/>`);
      out.push(`<text x="${x0 - 6}" y="${yy + 4}" text-anchor="end">${fmt(t)}</text>`);
    }
    for (const c of levels) {
      const xx = xOf(x0, c);
      out.push(`<line x1="${xx}" x2="${xx}" y1="${PANEL.top}" y2="${PANEL.top + height}" stroke="#eee"/>`);
      out.push(`<text x="${xx}" y="${PANEL.top + height + 16}" text-anchor="middle">${c}</text>`);
    }
    out.push(`<text x="${x0 + width / 2}" y="${PANEL.top + height + 34}" text-anchor="middle">virtual users (closed loop)</text>`);
    out.push(`<text transform="translate(${x0 - 48} ${PANEL.top + height / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`);
    for (const line of lines) {
      const color = COLORS[line.s % COLORS.length];
      const d = line.pts.map(([c, v], i) => `${i === 0 ? 'M' : 'L'}${xOf(x0, c).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${line.dash ? ' stroke-dasharray="6 4"' : ''}/>`);
      for (const [c, v] of line.pts) out.push(`<circle cx="${xOf(x0, c).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${color}"/>`);
    }
  };

  // left: logins/s, linear from 0
  const maxRate = Math.max(...all.map((p) => p.ratePerSecond));
  const step = niceStep(maxRate, 5);
  const top = Math.ceil(maxRate / step) * step;
  const rateY = (v: number): number => PANEL.top + height - (v / top) * height;
  const rateTicks = Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
  const leftX = PANEL.left;
  panel(
    leftX,
    'logins/s',
    'complete logins per second',
    rateY,
    rateTicks,
    series.map((s, i) => ({ s: i, dash: false, pts: s.points.map((p) => [p.concurrency, p.ratePerSecond] as [number, number]) })),
  );

  // right: latency, logarithmic
  const lats = all.flatMap((p) => [p.p50Ms, p.p99Ms]).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...lats)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...lats)));
  const latY = (v: number): number => PANEL.top + height - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * height;
  const latTicks: number[] = [];
  for (let d = lo; d <= hi; d *= 10) latTicks.push(...[1, 2, 5].map((m) => m * d).filter((v) => v <= hi));
  const rightX = leftX + width + PANEL.right + PANEL.left;
  panel(
    rightX,
    'latency of a complete login (solid p50, dashed p99)',
    'ms (log scale)',
    latY,
    latTicks,
    series.flatMap((s, i) => [
      { s: i, dash: false, pts: s.points.map((p) => [p.concurrency, p.p50Ms] as [number, number]) },
      { s: i, dash: true, pts: s.points.map((p) => [p.concurrency, p.p99Ms] as [number, number]) },
    ]),
  );

  // legend
  series.forEach((s, i) => {
    const x = PANEL.left + i * 260;
    const y = H - 12;
    out.push(`<line x1="${x}" x2="${x + 24}" y1="${y - 4}" y2="${y - 4}" stroke="${COLORS[i % COLORS.length]}" stroke-width="3"/>`);
    out.push(`<text x="${x + 30}" y="${y}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
