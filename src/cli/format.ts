/** How the command line writes for people: times they read, tables with a header and aligned columns. */

/** A time as a person reads it in a terminal: 2026-12-06 07:38:40 UTC, in the server's time zone (SLS_TIME_ZONE). */
export function readableTime(timeZone: string): (ms: number) => string {
  const format = new Intl.DateTimeFormat('sv-SE', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    timeZoneName: 'short',
  });
  return (ms) => format.format(new Date(ms));
}

/** Rows as aligned columns (the last one as it is); `right`: columns aligned to the right (numbers). */
export function columns(rows: string[][], options: { right?: number[] } = {}): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => [...(row[i] ?? '')].length)));
  return rows.map((row) =>
    row
      .map((cell, i) => {
        if (i === row.length - 1) return cell;
        const pad = ' '.repeat(widths[i]! - [...cell].length);
        return options.right?.includes(i) ? pad + cell : cell + pad;
      })
      .join('  '),
  );
}
