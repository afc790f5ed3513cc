/**
 * W3: amounts in other currencies are converted to USD with the rates the
 * operator supplies (`sls fx set EUR 1.08`, `sls fx import FILE`), kept in the
 * database so that every server process converts alike. A rate is USD per
 * unit of the currency, a decimal kept as written; conversions are exact
 * (integer arithmetic on hundredths), rounded up to the cent: a part of a
 * cent counts as a cent, never as nothing. A rate older than the operator
 * allows (SLS_FX_RATE_MAX_AGE_HOURS, decision 0040) converts nothing: a
 * currency that has gained on the dollar since would otherwise count for
 * less than it is worth and pass a limit it does not fit.
 */
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { SlsError } from '../errors.js';
import type { Executor, Store } from '../store/database.js';

export const BASE_CURRENCY = 'USD';

export interface FxRate {
  currency: string;
  /** USD per unit of the currency, as written by the operator. */
  usdPerUnit: string;
  updatedAt: number;
  updatedBy: string;
  /** W3 (decision 0040): older than the operator allows: it converts nothing until it is set again. */
  stale: boolean;
}

/** ISO 4217 codes are three capital letters. */
export function assertCurrency(currency: string): void {
  if (!/^[A-Z]{3}$/.test(currency)) throw new SlsError('CURRENCY_UNKNOWN', { currency, reason: 'format' });
}

/** A rate as the operator writes it: a positive decimal, at most 10 decimals. */
export function parseRate(text: string): string {
  const trimmed = text.trim();
  if (!/^\d{1,9}(\.\d{1,10})?$/.test(trimmed) || !/[1-9]/.test(trimmed)) throw new SlsError('FX_RATE_INVALID', { rate: text });
  // one spelling per value: no leading zeros, no trailing decimal zeros
  const [whole, fraction = ''] = trimmed.split('.') as [string, string?];
  const f = fraction.replace(/0+$/, '');
  return `${whole.replace(/^0+(?=\d)/, '')}${f ? `.${f}` : ''}`;
}

/**
 * Hundredths of a currency converted to US cents at a rate, rounded up to
 * the next whole cent (W1, W3): any part of a cent counts as a cent, so no
 * withdrawal counts as nothing and many small ones never add up to more
 * than the limit counted.
 */
export function toUsdCents(amountMinor: number, usdPerUnit: string): number {
  const [whole, fraction = ''] = usdPerUnit.split('.') as [string, string?];
  const numerator = BigInt(`${whole}${fraction}`);
  const scale = 10n ** BigInt(fraction.length);
  return Number((BigInt(amountMinor) * numerator + scale - 1n) / scale);
}

/** Lines of `CUR RATE` (or `CUR,RATE`, `CUR=RATE`); `#` starts a comment. */
export function parseRatesFile(text: string): { currency: string; rate: string }[] {
  const rates: { currency: string; rate: string }[] = [];
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const match = /^([A-Za-z]{3})\s*[\s,;=]\s*(\S+)$/.exec(line);
    if (!match) throw new SlsError('VALIDATION_ERROR', { reason: 'fx_line', line: n + 1 });
    rates.push({ currency: match[1]!.toUpperCase(), rate: match[2]! });
  }
  return rates;
}

export class FxRates {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly audit: AuditLog,
    /** W3 (decision 0040): how old a rate may be to convert (ms); null: any age. */
    private readonly maxAgeMs: number | null = null,
  ) {}

  /** Sets (or replaces) rates, all or none; audited. */
  async set(rates: { currency: string; rate: string }[], actor: string): Promise<FxRate[]> {
    const clean = rates.map(({ currency, rate }) => {
      const code = currency.trim().toUpperCase();
      assertCurrency(code);
      if (code === BASE_CURRENCY) throw new SlsError('FX_RATE_INVALID', { rate, reason: 'base' });
      return { currency: code, usdPerUnit: parseRate(rate) };
    });
    const now = this.clock.now();
    await this.store.serialized('audit_log', async (trx) => {
      for (const { currency, usdPerUnit } of clean) {
        await trx
          .insertInto('fx_rates')
          .values({ currency, usd_per_unit: usdPerUnit, updated_at: now, updated_by: actor })
          .onConflict((oc) => oc.column('currency').doUpdateSet({ usd_per_unit: usdPerUnit, updated_at: now, updated_by: actor }))
          .execute();
      }
      await this.audit.append(
        trx,
        clean.map(({ currency, usdPerUnit }) => ({ event: 'fx.rate_set' as const, actor, data: { currency, usdPerUnit } })),
      );
    });
    return (await this.list()).filter((r) => clean.some((c) => c.currency === r.currency));
  }

  async list(): Promise<FxRate[]> {
    const rows = await this.store.db.selectFrom('fx_rates').selectAll().orderBy('currency').execute();
    return rows.map((row) => ({
      currency: row.currency,
      usdPerUnit: row.usd_per_unit,
      updatedAt: row.updated_at,
      updatedBy: row.updated_by,
      stale: this.isStale(Number(row.updated_at)),
    }));
  }

  /** W3 (decision 0040): a rate set at `updatedAt` is older than the operator allows. */
  private isStale(updatedAt: number): boolean {
    return this.maxAgeMs !== null && this.clock.now() - updatedAt > this.maxAgeMs;
  }

  /** The rate of a currency (USD: 1), or CURRENCY_UNKNOWN: none, or (reason `stale`) one older than the operator allows. */
  async rate(currency: string, db: Executor = this.store.db): Promise<string> {
    assertCurrency(currency);
    if (currency === BASE_CURRENCY) return '1';
    const row = await db.selectFrom('fx_rates').select(['usd_per_unit', 'updated_at']).where('currency', '=', currency).executeTakeFirst();
    if (!row) throw new SlsError('CURRENCY_UNKNOWN', { currency });
    // W3 (decision 0040): a rate nobody renewed may be far from the currency's worth: it converts nothing
    if (this.isStale(Number(row.updated_at))) {
      throw new SlsError('CURRENCY_UNKNOWN', {
        currency,
        reason: 'stale',
        setAt: new Date(Number(row.updated_at)).toISOString(),
        maxAgeHours: String((this.maxAgeMs ?? 0) / 3_600_000),
      });
    }
    return row.usd_per_unit;
  }
}
