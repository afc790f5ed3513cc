/**
 * W3: the business-day calendar of the withdrawal windows. Saturdays,
 * Sundays and the operator's holidays (SLS_HOLIDAYS, SLS_HOLIDAYS_FILE) are
 * not business days; dates are those of the business time zone
 * (SLS_BUSINESS_TIME_ZONE, default SLS_TIME_ZONE).
 *
 * A moment counts towards its own date when that is a business day, and
 * otherwise towards the next business day: a withdrawal asked for on a
 * Saturday is settled, and counted, on Monday. So a business day's period
 * runs from the end of the business day before it to its own end, and
 * - "per day" is the current business day's period;
 * - "5 business days" is the periods of the current business day and the 4
 *   business days before it.
 * Each window is a time range that ends now; its start is the midnight after
 * the business day just before the window.
 */
import { SlsError } from '../errors.js';

/** An ISO date (YYYY-MM-DD) that exists in the calendar. */
export function isIsoDate(text: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!match) return false;
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return date.toISOString().slice(0, 10) === text;
}

/** The holidays of a list or a file: ISO dates separated by commas, spaces or lines; `#` starts a comment. */
export function parseHolidays(text: string, setting: string): string[] {
  const dates = text
    .split(/\r?\n/)
    .map((line) => line.replace(/#.*$/, ''))
    .flatMap((line) => line.split(/[\s,]+/))
    .filter((entry) => entry !== '');
  const bad = dates.find((date) => !isIsoDate(date));
  // X2: told as errors.INVALID_CONFIG_not_an_ISO_date: {{value}} is not an ISO date (YYYY-MM-DD)
  if (bad !== undefined) throw new SlsError('INVALID_CONFIG', { setting, reason: 'not an ISO date', value: bad });
  return [...new Set(dates)].sort();
}

function addDays(date: string, days: number): string {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

/** How many days back or forward the calendar looks for a business day before it gives up (a year of holidays is a mistake). */
const SEARCH_DAYS = 366;

export interface Windows {
  /** The business day the moment counts towards (YYYY-MM-DD). */
  businessDay: string;
  /** The 5 business days of the 5-day window, newest first. */
  businessDays: string[];
  /** Start of the per-day window (Unix ms); it ends now. */
  dayStart: number;
  /** Start of the 5-business-day window (Unix ms); it ends now. */
  fiveBusinessDaysStart: number;
}

export class BusinessCalendar {
  private readonly holidays: ReadonlySet<string>;
  private readonly parts: Intl.DateTimeFormat;

  constructor(
    holidays: readonly string[],
    readonly timeZone: string,
  ) {
    this.holidays = new Set(holidays);
    this.parts = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
  }

  isBusinessDay(date: string): boolean {
    const weekday = new Date(`${date}T00:00:00Z`).getUTCDay();
    return weekday !== 0 && weekday !== 6 && !this.holidays.has(date);
  }

  /** The date of a moment in the business time zone. */
  localDate(ms: number): string {
    const p = this.wallClock(ms);
    return `${p.year}-${p.month}-${p.day}`;
  }

  /** The moment a date begins in the business time zone. */
  startOf(date: string): number {
    const [y, m, d] = date.split('-').map(Number) as [number, number, number];
    const wall = Date.UTC(y, m - 1, d);
    let at = wall - this.offset(wall);
    // across a change of offset, the offset of the moment found is the right one
    at = wall - this.offset(at);
    return at;
  }

  /** The per-day and 5-business-day windows that end at `now`. */
  windows(now: number): Windows {
    const businessDay = this.step(this.localDate(now), 0, 1);
    const businessDays = [businessDay];
    while (businessDays.length < 6) businessDays.push(this.step(businessDays.at(-1)!, -1, -1));
    const before = (n: number) => this.startOf(addDays(businessDays[n]!, 1));
    return { businessDay, businessDays: businessDays.slice(0, 5), dayStart: before(1), fiveBusinessDaysStart: before(5) };
  }

  /** The first business day from `date` + `first` days, going `by` days at a time. */
  private step(date: string, first: number, by: 1 | -1): string {
    let day = addDays(date, first);
    for (let i = 0; i < SEARCH_DAYS; i++, day = addDays(day, by)) if (this.isBusinessDay(day)) return day;
    throw new SlsError('INVALID_CONFIG', { setting: 'SLS_HOLIDAYS', reason: 'no business day', date });
  }

  private wallClock(ms: number): Record<'year' | 'month' | 'day' | 'hour' | 'minute' | 'second', string> {
    const out: Record<string, string> = {};
    for (const part of this.parts.formatToParts(new Date(ms))) out[part.type] = part.value;
    return out as Record<'year' | 'month' | 'day' | 'hour' | 'minute' | 'second', string>;
  }

  /** How far the business time zone's wall clock is ahead of UTC at a moment (ms). */
  private offset(ms: number): number {
    const p = this.wallClock(ms);
    const wall = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour), Number(p.minute), Number(p.second));
    return wall - Math.floor(ms / 1000) * 1000;
  }
}
