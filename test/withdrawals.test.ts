/**
 * Withdrawal limits enforced (W1-W3) and the integrators' API keys (I3),
 * through the HTTP API on each database: keys and their refusals, the check
 * and the record, concurrency, business-day windows across a weekend and a
 * holiday, currencies, the device that sets the limit, W2 entitlements.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusinessCalendar } from '../src/entitlements/business-days.js';
import { toUsdCents } from '../src/entitlements/fx.js';
import { Withdrawals } from '../src/entitlements/withdrawals.js';
import type { Device, DeviceType } from '../src/devices/types.js';
import { DATABASES, createUser, createUserWithCard, startHarness, uniqueUsername, type Harness } from './support/harness.js';
import { bearer, get, postJson, type ApiResponse } from './support/api.js';
import type { User } from '../src/identity/users.js';

const HOLIDAY = '2026-01-13'; // a Tuesday

describe('W3: the business-day calendar', () => {
  it('W3: weekends and holidays count towards the next business day; 5 business days skip them', () => {
    const calendar = new BusinessCalendar([HOLIDAY], 'UTC');
    const at = (iso: string) => calendar.windows(Date.parse(iso));
    expect(at('2026-01-09T12:00:00Z')).toMatchObject({ businessDay: '2026-01-09', dayStart: Date.parse('2026-01-09T00:00:00Z') });
    // Saturday and Sunday belong to Monday: Monday's day window opens on Saturday
    expect(at('2026-01-10T12:00:00Z')).toMatchObject({ businessDay: '2026-01-12', dayStart: Date.parse('2026-01-10T00:00:00Z') });
    expect(at('2026-01-12T12:00:00Z')).toMatchObject({ businessDay: '2026-01-12', dayStart: Date.parse('2026-01-10T00:00:00Z') });
    // the holiday belongs to Wednesday
    expect(at('2026-01-13T12:00:00Z')).toMatchObject({ businessDay: '2026-01-14', dayStart: Date.parse('2026-01-13T00:00:00Z') });
    const monday = at('2026-01-19T12:00:00Z');
    expect(monday.businessDays).toEqual(['2026-01-19', '2026-01-16', '2026-01-15', '2026-01-14', '2026-01-12']);
    expect(monday.fiveBusinessDaysStart).toBe(Date.parse('2026-01-10T00:00:00Z'));
    // without the holiday, the window is a day shorter
    expect(new BusinessCalendar([], 'UTC').windows(Date.parse('2026-01-19T12:00:00Z')).fiveBusinessDaysStart).toBe(Date.parse('2026-01-13T00:00:00Z'));
  });

  it('W3: days are those of the business time zone', () => {
    const newYork = new BusinessCalendar([], 'America/New_York');
    // 03:00 UTC on Saturday is still Friday evening in New York
    const w = newYork.windows(Date.parse('2026-01-10T03:00:00Z'));
    expect(w.businessDay).toBe('2026-01-09');
    expect(w.dayStart).toBe(Date.parse('2026-01-09T05:00:00Z'));
    // across the change to summer time (8 March 2026), midnight is 04:00 UTC
    expect(newYork.windows(Date.parse('2026-03-10T15:00:00Z')).dayStart).toBe(Date.parse('2026-03-10T04:00:00Z'));
  });

  it('W1, W3: a converted amount is exact to the cent, rounded up: a part of a cent counts as a cent, never as nothing', () => {
    expect(toUsdCents(10_000, '1.08')).toBe(10_800);
    expect(toUsdCents(1, '0.005')).toBe(1);
    expect(toUsdCents(100, '0.005')).toBe(1);
    expect(toUsdCents(201, '0.005')).toBe(2);
    expect(toUsdCents(333, '0.0015')).toBe(1);
    expect(toUsdCents(1, '0.0000000001')).toBe(1);
    expect(toUsdCents(12_345_678_901, '1.2345678901')).toBe(15_241_578_753);
  });
});

describe.each(DATABASES)('withdrawal limits and entitlements on %s', (database) => {
  let h: Harness;
  let key: string;
  let auth: Record<string, string>;

  beforeAll(async () => {
    h = await startHarness(database, { businessDays: { holidays: [HOLIDAY], timeZone: 'UTC' } });
    key = (await h.services.apiKeys.create({ name: 'back office', scopes: ['withdrawals'] }, 'test')).key;
    auth = bearer(key);
  });
  afterAll(async () => h?.close());

  async function userWith(type: DeviceType | null, accountNumber?: string): Promise<User> {
    const user = await createUser(h.services, { username: uniqueUsername('w'), ...(accountNumber ? { accountNumber } : {}) });
    if (type === 'dscplus') await h.services.devices.addDscPlus({ userId: user.id, pin: '1234' }, 'test');
    else if (type !== null) await h.services.devices.insert(h.services.store.db, { userId: user.id, type, state: 'active', secret: {}, activated: true });
    return user;
  }

  const check = (body: object, headers = auth) => postJson(h.app, '/api/v1/withdrawals/check', body, headers);
  const withdraw = (body: object, headers = auth) => postJson(h.app, '/api/v1/withdrawals', body, headers);
  let refs = 0;
  const ref = () => `ref-${++refs}`;

  async function events(prefix: string): Promise<{ event: string; data: Record<string, unknown> }[]> {
    const rows = await h.services.store.db.selectFrom('audit_log').select(['event', 'data']).where('event', 'like', `${prefix}%`).orderBy('seq').execute();
    return rows.map((r) => ({ event: r.event, data: JSON.parse(r.data) as Record<string, unknown> }));
  }

  it('I3: an API key is printed once and kept as a keyed digest; it is listed, scoped and revocable; its creation and revocation are audited', async () => {
    const created = await h.services.apiKeys.create({ name: 'payments', scopes: ['accounts'] }, 'test');
    expect(created.key).toMatch(/^sls_[a-z2-7]{26}_[A-Za-z0-9_-]{43}$/);
    const row = await h.services.store.db.selectFrom('api_keys').selectAll().where('id', '=', created.apiKey.id).executeTakeFirstOrThrow();
    const secret = created.key.split('_').slice(2).join('_');
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row.secret_digest).toBe(h.services.box.digest(secret, `api-key:${created.apiKey.id}`));
    expect((await h.services.apiKeys.list()).map((k) => k.name)).toContain('payments');
    // the scope accounts does not open the withdrawals
    const account = (await userWith('dscplus')).accountNumber;
    const scoped = await check({ account, amount: 1, currency: 'USD' }, bearer(created.key));
    expect([scoped.status, scoped.body.error.code]).toEqual([403, 'API_KEY_SCOPE']);
    await h.services.apiKeys.revoke(created.apiKey.id, 'test');
    const revoked = await check({ account, amount: 1, currency: 'USD' }, bearer(created.key));
    expect([revoked.status, revoked.body.error.code]).toEqual([401, 'API_KEY_REVOKED']);
    expect((await events('apikey.')).filter((e) => e.data.keyId === created.apiKey.id).map((e) => [e.event, e.data.reason ?? null])).toEqual([
      ['apikey.created', null],
      ['apikey.refused', 'scope'],
      ['apikey.revoked', null],
      ['apikey.refused', 'revoked'],
    ]);
  });

  it('I3: without a key 401 API_KEY_REQUIRED; a malformed, unknown or wrong key 401 API_KEY_INVALID (audited); a session token is no key and a key is no session', async () => {
    const { user } = await createUserWithCard(h.services);
    const body = { account: user.accountNumber, amount: 1, currency: 'USD' };
    const none = await check(body, {});
    expect([none.status, none.body.error.code, none.headers['www-authenticate']]).toEqual([401, 'API_KEY_REQUIRED', 'Bearer']);
    const before = (await events('apikey.refused')).length;
    const [, id, secret] = /^sls_([a-z2-7]{26})_(.+)$/.exec(key)!;
    const wrongSecret = `sls_${id}_${secret!.slice(0, -1)}${secret!.endsWith('A') ? 'B' : 'A'}`;
    const unknownId = `sls_${'a'.repeat(26)}_${secret}`;
    for (const presented of ['not-a-key', wrongSecret, unknownId]) {
      const res = await check(body, bearer(presented));
      expect([res.status, res.body.error.code]).toEqual([401, 'API_KEY_INVALID']);
    }
    const refused = (await events('apikey.refused')).slice(before);
    expect(refused.map((e) => e.data.reason)).toEqual(['malformed', 'wrong_secret', 'unknown']);
    // the key opens no user's session, and a session token opens no entitlement
    expect((await get(h.app, '/api/v1/session', auth)).body.error.code).toBe('UNAUTHENTICATED');
    const session = await h.services.sessions.create({
      userId: user.id,
      app: 'portal',
      flowId: null,
      deviceId: null,
      deviceType: null,
      ip: null,
      userAgent: null,
      scope: 'full',
    });
    expect((await get(h.app, '/api/v1/session', bearer(session.token))).status).toBe(200);
    expect((await check(body, bearer(session.token))).body.error.code).toBe('API_KEY_INVALID');
  });

  it('W1/W3: the check answers the limit of the device and what is left, and records nothing', async () => {
    const sms = await userWith('sms');
    const res = await check({ account: sms.accountNumber, amount: '150000.50', currency: 'USD' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      allowed: true,
      device: 'sms',
      username: sms.username,
      amountUsd: 150_000.5,
      limit: { perDayUsd: 200_000, fiveBusinessDaysUsd: 600_000 },
      remaining: { dayUsd: 200_000, fiveBusinessDaysUsd: 600_000 },
    });
    expect(res.body.reason).toBeUndefined();
    const over = await check({ account: sms.accountNumber, amount: 200_000.01, currency: 'USD' });
    expect(over.body).toMatchObject({ allowed: false, reason: 'DAILY_LIMIT' });
    expect(await h.services.store.db.selectFrom('withdrawals').selectAll().where('account_id', '=', sms.accountId).execute()).toEqual([]);
    const dsc = await userWith('dscplus');
    expect((await check({ account: dsc.accountNumber, amount: 50_000_000, currency: 'USD' })).body).toMatchObject({
      allowed: true,
      device: 'dscplus',
      limit: { perDayUsd: null, fiveBusinessDaysUsd: null },
      remaining: { dayUsd: null, fiveBusinessDaysUsd: null },
    });
  });

  it('W3: 20 concurrent withdrawals that together exceed the daily limit: exactly the ones that fit are accepted', async () => {
    const sms = await userWith('sms'); // USD 200,000 a day
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => withdraw({ account: sms.accountNumber, amount: 15_000, currency: 'USD', reference: `c-${i}` })),
    );
    const accepted = results.filter((r) => r.status === 201);
    expect(accepted).toHaveLength(13);
    for (const r of results.filter((x) => x.status !== 201)) expect([r.status, r.body.error.code]).toEqual([409, 'WITHDRAWAL_LIMIT_EXCEEDED']);
    const rows = await h.services.store.db.selectFrom('withdrawals').select('usd_cents').where('account_id', '=', sms.accountId).execute();
    expect(rows.reduce((sum, r) => sum + Number(r.usd_cents), 0)).toBe(195_000_00);
    expect((await check({ account: sms.accountNumber, amount: 1, currency: 'USD' })).body.remaining.dayUsd).toBe(5_000);
    const audited = (await events('withdrawal.')).filter((e) => e.data.account === sms.accountNumber);
    expect(audited.filter((e) => e.event === 'withdrawal.recorded')).toHaveLength(13);
    expect(audited.filter((e) => e.event === 'withdrawal.refused').map((e) => e.data.reason)).toEqual(Array(7).fill('DAILY_LIMIT'));
  });

  it('W3: a reference is recorded once: the same again answers the first recording, another amount is refused', async () => {
    const sms = await userWith('sms');
    const first = await withdraw({ account: sms.accountNumber, amount: 1000, currency: 'USD', reference: 'pay-1' });
    expect([first.status, first.body.replayed, first.body.used.dayUsd]).toEqual([201, false, 1000]);
    const again = await withdraw({ account: sms.accountNumber, amount: '1000.00', currency: 'USD', reference: 'pay-1' });
    expect([again.status, again.body.replayed, again.body.id, again.body.used.dayUsd]).toEqual([200, true, first.body.id, 1000]);
    const other = await withdraw({ account: sms.accountNumber, amount: 2000, currency: 'USD', reference: 'pay-1' });
    expect([other.status, other.body.error.code]).toEqual([409, 'WITHDRAWAL_REFERENCE_CONFLICT']);
  });

  it('W3: the windows roll by business day across a weekend and a holiday (movable clock)', async () => {
    const sms = await userWith('sms'); // USD 200,000 a day, 600,000 in 5 business days
    const account = sms.accountNumber;
    const at = (iso: string) => h.clock.set(new Date(iso));
    const take = async (amount: number) => withdraw({ account, amount, currency: 'USD', reference: ref() });
    try {
      at('2026-01-08T10:00:00Z'); // Thursday
      expect((await take(100_000)).status).toBe(201);
      at('2026-01-09T10:00:00Z'); // Friday
      expect((await take(200_000)).status).toBe(201);
      expect((await take(1)).body.error.code).toBe('WITHDRAWAL_LIMIT_EXCEEDED');
      at('2026-01-10T10:00:00Z'); // Saturday: counts towards Monday
      const saturday = await check({ account, amount: 150_000, currency: 'USD' });
      expect(saturday.body).toMatchObject({ allowed: true, businessDay: '2026-01-12', used: { dayUsd: 0, fiveBusinessDaysUsd: 300_000 } });
      expect((await take(150_000)).status).toBe(201);
      at('2026-01-12T10:00:00Z'); // Monday: Saturday's withdrawal is in Monday's day
      expect((await check({ account, amount: 1, currency: 'USD' })).body.remaining).toEqual({ dayUsd: 50_000, fiveBusinessDaysUsd: 150_000 });
      expect((await take(50_000)).status).toBe(201);
      at('2026-01-13T10:00:00Z'); // the holiday: counts towards Wednesday
      const holiday = await check({ account, amount: 1, currency: 'USD' });
      expect(holiday.body).toMatchObject({ businessDay: '2026-01-14', used: { dayUsd: 0, fiveBusinessDaysUsd: 500_000 } });
      expect((await take(50_000)).status).toBe(201);
      at('2026-01-14T10:00:00Z'); // Wednesday: the holiday's withdrawal is in its day; 50,000 left in 5 business days
      const wednesday = await check({ account, amount: 60_000, currency: 'USD' });
      expect(wednesday.body).toMatchObject({ allowed: false, reason: 'FIVE_BUSINESS_DAYS_LIMIT', remaining: { dayUsd: 150_000, fiveBusinessDaysUsd: 50_000 } });
      const refused = await take(60_000);
      expect([refused.status, refused.body.error.code]).toEqual([409, 'WITHDRAWAL_LIMIT_EXCEEDED']);
      expect(refused.body.error.message).toContain('5 business days');
      at('2026-01-19T10:00:00Z'); // next Monday: Thursday and Friday left the 5 business days (the holiday is not one of them)
      expect((await check({ account, amount: 1, currency: 'USD' })).body).toMatchObject({
        used: { dayUsd: 0, fiveBusinessDaysUsd: 250_000 },
        windows: { fiveBusinessDaysFrom: '2026-01-10T00:00:00.000Z' },
      });
    } finally {
      h.clock.set(Date.UTC(2026, 0, 5, 9, 0, 0));
    }
  });

  it('W3: amounts in other currencies are converted at the operator’s rates; an unknown currency or a bad amount is a 400 with a clear code', async () => {
    const sms = await userWith('sms');
    const account = sms.accountNumber;
    const unknown = await check({ account, amount: 100, currency: 'CHF' });
    expect([unknown.status, unknown.body.error.code]).toEqual([400, 'CURRENCY_UNKNOWN']);
    expect(unknown.body.error.message).toContain('sls fx set CHF');
    await h.services.fx.set([{ currency: 'CHF', rate: '1.1250' }], 'test');
    expect((await h.services.fx.list()).find((r) => r.currency === 'CHF')?.usdPerUnit).toBe('1.125');
    const converted = await withdraw({ account, amount: '100000', currency: 'CHF', reference: ref() });
    expect(converted.body).toMatchObject({ amount: 100_000, currency: 'CHF', amountUsd: 112_500, used: { dayUsd: 112_500 } });
    // 100,000 CHF more would be USD 112,500: over the 87,500 left today
    expect((await check({ account, amount: 100_000, currency: 'CHF' })).body).toMatchObject({ allowed: false, reason: 'DAILY_LIMIT' });
    expect((await check({ account, amount: 1, currency: 'chf' })).body.error.code).toBe('VALIDATION_ERROR');
    for (const amount of [0, -5, '1.005', 'ten', 1e21]) {
      const bad = await check({ account, amount, currency: 'USD' });
      expect([bad.status, bad.body.error.code], String(amount)).toEqual([400, 'AMOUNT_INVALID']);
    }
    const missing = await check({ account: 'NOSUCH1', amount: 1, currency: 'USD' });
    expect([missing.status, missing.body.error.code]).toEqual([404, 'ACCOUNT_NOT_FOUND']);
    expect((await events('fx.rate_set')).some((e) => e.data.currency === 'CHF')).toBe(true);
    // X3: the largest amount at the largest rate is more US cents than a 64-bit column (or an exact number) holds
    await h.services.fx.set([{ currency: 'XAU', rate: '999999999' }], 'test');
    for (const call of [check, withdraw]) {
      const huge = await call({ account, amount: '9999999999999.99', currency: 'XAU', reference: ref() });
      expect([huge.status, huge.body.error.code, huge.body.error.message]).toEqual([400, 'AMOUNT_INVALID', expect.stringContaining('is too large')]);
    }
  });

  it('W1, W3: the recorded USD cents are the exact integer cents the check computed, not the dollars multiplied back (which drifts by a cent at large amounts)', async () => {
    const user = await userWith('dscplus');
    await h.services.fx.set([{ currency: 'XPT', rate: '7' }], 'test');
    // 5,539,478,310,458.60 at 7 USD: 3,877,634,817,321,020 cents; the dollars times 100 round to ...021
    const out = await withdraw({ account: user.accountNumber, amount: '5539478310458.60', currency: 'XPT', reference: ref() });
    expect(out.status).toBe(201);
    const row = await h.services.store.db.selectFrom('withdrawals').select('usd_cents').where('id', '=', out.body.id).executeTakeFirstOrThrow();
    expect(String(row.usd_cents)).toBe('3877634817321020');
  });

  it('W1: the strongest active permanent device of each user; an account is as protected as its least protected user, unless the username asking is named', async () => {
    const dsc = await userWith('dscplus');
    const second = await userWith('sms', dsc.accountNumber);
    const account = dsc.accountNumber;
    expect((await check({ account, amount: 1, currency: 'USD' })).body).toMatchObject({ device: 'sms', username: second.username });
    expect((await check({ account, amount: 1, currency: 'USD', username: dsc.username })).body).toMatchObject({ device: 'dscplus', username: dsc.username });
    const stranger = await userWith('dscplus');
    expect((await check({ account, amount: 1, currency: 'USD', username: stranger.username })).body.error.code).toBe('USER_NOT_FOUND');
    // a temporary passcode protects no withdrawal: the None row
    const temporary = await userWith('temp_passcode');
    expect((await check({ account: temporary.accountNumber, amount: 1, currency: 'USD' })).body).toMatchObject({
      device: 'none',
      limit: { perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 },
    });
    const mobile = await userWith('mobile');
    await h.services.devices.insert(h.services.store.db, { userId: mobile.id, type: 'scc', state: 'active', secret: {}, activated: true });
    expect((await check({ account: mobile.accountNumber, amount: 1, currency: 'USD' })).body).toMatchObject({
      device: 'mobile',
      limit: { perDayUsd: 1_000_000, fiveBusinessDaysUsd: 1_000_000 },
    });
  });

  it('W1/O1/H: the hooks for opting out (the None row) and for sharing (the shared device sets the limit) are honoured', async () => {
    const user = await userWith('sms');
    const dscDevice: Device = { ...(await h.services.devices.listForUser(user.id))[0]!, type: 'dscplus' };
    const base = {
      store: h.services.store,
      clock: h.clock,
      audit: h.services.audit,
      devices: h.services.devices,
      deviceKind: h.services.deviceKind,
      fx: h.services.fx,
      calendar: new BusinessCalendar([], 'UTC'),
      lastProof: async () => ({ device: null }),
    };
    const optedOut = new Withdrawals({ ...base, hooks: { sharedDeviceOf: async () => null, optedOut: async (id) => id === user.id } });
    expect(await optedOut.check({ account: user.accountNumber, amount: 1, currency: 'USD' })).toMatchObject({ device: 'none', limit: { perDayUsd: 50_000 } });
    const sharing = new Withdrawals({ ...base, hooks: { sharedDeviceOf: async (id) => (id === user.id ? dscDevice : null), optedOut: async () => false } });
    expect(await sharing.check({ account: user.accountNumber, amount: 1, currency: 'USD' })).toMatchObject({ device: 'dscplus', limit: { perDayUsd: null } });
    expect(await h.services.withdrawals.check({ account: user.accountNumber, amount: 1, currency: 'USD' })).toMatchObject({ device: 'sms' });
  });

  it('W2: the entitlements of enrolment, by the device that protects the account', async () => {
    const enrolled = await userWith('mobile');
    const res: ApiResponse = await get(h.app, `/api/v1/entitlements?account=${enrolled.accountNumber}`, auth);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      device: 'mobile',
      limit: { perDayUsd: 1_000_000, fiveBusinessDaysUsd: 1_000_000 },
      entitlements: {
        enrolled: true,
        changeBankingInstructions: true,
        changeEmail: true,
        achEftBeyondInitialFunding: true,
        initialFundingUsd: 20_000,
        shareDevice: true,
      },
    });
    const bare = await userWith(null);
    expect((await get(h.app, `/api/v1/entitlements?account=${bare.accountNumber}`, auth)).body).toMatchObject({
      device: 'none',
      limit: { perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 },
      entitlements: { enrolled: false, changeBankingInstructions: false, changeEmail: false, achEftBeyondInitialFunding: false, shareDevice: false },
    });
    expect((await get(h.app, `/api/v1/entitlements?account=${bare.accountNumber}`, {})).body.error.code).toBe('API_KEY_REQUIRED');
  });

  it('I2/I3: the OpenAPI description lists the entitlement routes with operationIds, the API key scheme and their statuses', async () => {
    const doc = (await get(h.app, '/api/openapi.json')).body;
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    const ops = [doc.paths['/api/v1/withdrawals/check'].post, doc.paths['/api/v1/withdrawals'].post, doc.paths['/api/v1/entitlements'].get];
    expect(ops.map((o) => o.operationId)).toEqual(['checkWithdrawal', 'recordWithdrawal', 'getEntitlements']);
    for (const op of ops) {
      expect(op.security).toEqual([{ apiKey: [] }]);
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '404']));
    }
    expect(Object.keys(ops[1].responses)).toEqual(expect.arrayContaining(['201', '409']));
  });
});
