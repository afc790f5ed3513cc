/**
 * Attacks on the paths that end in money or in weaker protection: sharing a
 * device (H1-H5), opting out of the second factor for trading (O1-O3), the
 * withdrawal limits and the entitlement API (W1-W3), and equity (A6, C1), by
 * someone who holds less than they should. Each test names the rule it
 * proves, and failed before its fix (or guards a path no other test walks).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { bearer, loginSession, postJson, send, startLogin, withCard, type Json } from './support/api.js';
import { sharingPair } from './support/sharing.js';

const NEW_PASSWORD = 'another horse battery staple';

describe.each(DATABASES)('attacks on sharing, opting out and withdrawals (%s)', (db) => {
  let h: Harness;
  let compliance: { user: User; card: CardFile };

  beforeAll(async () => {
    h = await startHarness(db);
    compliance = await createUserWithCard(h.services, '1234', { role: 'compliance' });
  });
  afterAll(async () => h?.close());

  /** A portal session opened with the card, stepped up (V1) unless told. */
  const cardSession = (user: User, card: CardFile, step = true) => loginSession(h.app, user.username, withCard(card), { stepUp: step });

  /** A staff session, stepped up to act (V1, X7). */
  const staffToken = (staff: { user: User; card: CardFile }) => cardSession(staff.user, staff.card);

  const pair = (where: 'same-account' | 'other-account' = 'same-account') => sharingPair(h, where);

  /** The procedure up to the review: the owner's password, then the owner's card answers. */
  async function proveOwner(p: Awaited<ReturnType<typeof pair>>): Promise<string> {
    const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: p.owner.username, ownerPassword: PASSWORD }, p.headers);
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const proven = await postJson(
      h.app,
      `/api/v1/sharing/${started.body.id}/answer`,
      { response: cardAnswer(p.card, started.body.challenge.question) },
      p.headers,
    );
    expect(proven.body.state, JSON.stringify(proven.body)).toBe('review');
    return started.body.id as string;
  }

  /** The owner changes their password (say, on learning it leaked): their other sessions end (L8). */
  async function ownerChangesPassword(p: Awaited<ReturnType<typeof pair>>): Promise<void> {
    const headers = await cardSession(p.owner, p.card);
    const changed = await postJson(h.app, '/api/v1/password', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, headers);
    expect(changed.status, JSON.stringify(changed.body)).toBeLessThan(300);
  }

  describe('sharing (H)', () => {
    it("H2, L8: the owner's password changed after the owner's proof: the review is no longer confirmed (the request is ended), nothing is shared", async () => {
      const p = await pair();
      const id = await proveOwner(p);
      await ownerChangesPassword(p);
      const confirmed = await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers);
      expect(confirmed.status, JSON.stringify(confirmed.body)).toBeGreaterThanOrEqual(400);
      expect(await h.services.sharing.sharedWith(p.requester.id)).toBeNull();
      expect((await h.services.devices.get(p.sccId)).state).toBe('active');
      const row = await h.services.store.db.selectFrom('device_sharings').select('state').where('id', '=', id).executeTakeFirstOrThrow();
      expect(row.state).toBe('cancelled');
      const events = (await h.services.audit.list({ userId: p.requester.id, limit: 50 })).filter((e) => e.event === 'sharing.cancelled');
      expect(events.map((e) => (e.data as Json).reason)).toEqual(['password_changed']);
    });

    it("N1, H2, H3, L8: a request the owner's password change cancelled is told to both users, each in their language (the owner may not know of it: someone else had the password)", async () => {
      const p = await pair('other-account');
      const id = await proveOwner(p);
      expect((await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers)).body.state).toBe('pending');
      await h.services.noticePreferences.choose(p.requester.id, { language: 'fr', timeZone: null }, 'test');
      await h.services.noticePreferences.choose(p.owner.id, { language: 'zh-Hant', timeZone: null }, 'test');
      await ownerChangesPassword(p);
      const told = async (user: User) =>
        (await h.services.notifier.list({ userId: user.id }))
          .filter((n) => n.template === 'sharingRequestCancelled')
          .map((n) => [n.channel, n.language, n.body]);
      const [toRequester, toOwner] = [await told(p.requester), await told(p.owner)];
      expect(toRequester.length, 'the requester is told').toBeGreaterThan(0);
      expect(toOwner.length, 'the owner is told').toBeGreaterThan(0);
      for (const [, language, body] of toRequester) expect([language, body]).toEqual(['fr', expect.stringContaining(p.owner.username)]);
      for (const [, language, body] of toOwner) expect([language, body]).toEqual(['zh-Hant', expect.stringContaining(p.requester.username)]);
      // once each: ending the sessions again (staff) finds nothing more to cancel, nor to tell
      await h.services.store.serialized('audit_log', (trx) => h.services.sessions.endWhere(trx, { userId: p.owner.id }, 'ended_by_staff', 'test'));
      expect((await told(p.owner)).length).toBe(toOwner.length);
    });

    it("N1, H2, L8: a request still at the owner's device or its review, cancelled by a help-desk reset of the requester's password, is told to both users too", async () => {
      const p = await pair();
      await proveOwner(p);
      await h.services.store.serialized('audit_log', (trx) => h.services.sessions.endWhere(trx, { userId: p.requester.id }, 'password_reset', 'test'));
      for (const user of [p.requester, p.owner]) {
        const told = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'sharingRequestCancelled');
        expect(told.length, user.username).toBeGreaterThan(0);
        expect(told[0]!.body).toContain(p.requester.username);
      }
    });

    it("H3, L8: the owner's password changed while the request waits for compliance: compliance can no longer approve it", async () => {
      const p = await pair('other-account');
      const id = await proveOwner(p);
      const confirmed = await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers);
      expect(confirmed.body.state, JSON.stringify(confirmed.body)).toBe('pending');
      await ownerChangesPassword(p);
      const approved = await postJson(h.app, `/api/v1/helpdesk/sharing/${id}/decision`, { decision: 'approve' }, await staffToken(compliance));
      expect([approved.status, approved.body.error?.code]).toEqual([409, 'SHARING_STATE']);
      expect(await h.services.sharing.sharedWith(p.requester.id)).toBeNull();
      expect((await h.services.devices.get(p.sccId)).state).toBe('active');
    });

    it("H5, C6, D3: a DSC+ on its way (shipped, never activated) set aside while sharing goes back on its way when the sharing ends, not active: the requester's card is not activated without its proof or C6's three weeks", async () => {
      const p = await pair();
      const { device: card } = await h.services.devices.addDscPlus({ userId: p.requester.id, pin: '1234' }, 'test');
      await h.services.store.db.updateTable('devices').set({ state: 'shipped', activated_at: null }).where('id', '=', card.id).execute();
      const id = await proveOwner(p);
      const confirmed = await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers);
      expect(confirmed.body.state, JSON.stringify(confirmed.body)).toBe('active');
      expect((await h.services.devices.get(card.id)).state).toBe('suspended');
      const cancelled = await send(h.app, 'DELETE', `/api/v1/sharing/${id}`, await cardSession(p.requester, p.card));
      expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
      expect((await h.services.devices.get(p.sccId)).state).toBe('active');
      expect((await h.services.devices.get(card.id)).state).toBe('shipped');
      const start = await startLogin(h.app, p.requester.username);
      expect(start.body.devices.map((d: Json) => d.type)).toEqual(['scc']);
    });

    it('H, W1, R2: the shared card reported lost by its owner protects nobody: the requester falls to the None row, not to the lost card nor to their own card set aside (held)', async () => {
      const p = await pair();
      const id = await proveOwner(p);
      expect((await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers)).body.state).toBe('active');
      expect((await h.services.withdrawals.protectionOf(p.requester.accountId, p.requester.username)).limits.device).toBe('dscplus');
      const cardId = (await h.services.sharing.sharedWith(p.requester.id))!.id;
      const lost = await postJson(h.app, `/api/v1/devices/${cardId}/lost`, { reason: 'stolen' }, await cardSession(p.owner, p.card));
      expect(lost.status, JSON.stringify(lost.body)).toBe(200);
      const after = await h.services.withdrawals.protectionOf(p.requester.accountId, p.requester.username);
      expect(after.limits).toMatchObject({ device: null, perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 });
      expect((await h.services.devices.get(p.sccId)).state).toBe('suspended');
    });

    it('O1, H, W1: a requester who shares a DSC+ and opts out is limited to the None row, and the account with them (held)', async () => {
      const p = await pair();
      const id = await proveOwner(p);
      expect((await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, p.headers)).body.state).toBe('active');
      await h.services.optOuts.optOut(p.requester.id, { acknowledged: true, confirmation: p.requester.username }, { actor: `user:${p.requester.id}` });
      expect((await h.services.withdrawals.protectionOf(p.requester.accountId, p.requester.username)).limits).toMatchObject({
        device: null,
        perDayUsd: 50_000,
      });
      // the owner, on the same account, keeps the card's row when named; unnamed, the account is as weak as the requester
      expect((await h.services.withdrawals.protectionOf(p.owner.accountId, p.owner.username)).limits.device).toBe('dscplus');
      expect((await h.services.withdrawals.protectionOf(p.owner.accountId, undefined)).limits).toMatchObject({ device: null, perDayUsd: 50_000 });
    });
  });

  /**
   * Runs `change` the first time a withdrawal's evaluation reads `userId`'s
   * opt-out (after that read, before the rest of the evaluation): to its
   * commit when nothing holds it back, or until it waits for a lock the
   * withdrawal holds (PostgreSQL; on SQLite the withdrawal's transaction
   * holds the only writer, so the change runs after it). Not a timing: the
   * wait ends on the change's commit or on PostgreSQL reporting it blocked.
   */
  function changeWhenOptOutRead(userId: string, change: () => Promise<unknown>): { fired: () => boolean; settled: () => Promise<unknown> } {
    const optOuts = h.services.optOuts as unknown as { isOptedOut: (id: string, db?: unknown) => Promise<boolean> };
    const original = optOuts.isOptedOut;
    let pending: Promise<unknown> | null = null;
    optOuts.isOptedOut = async function (this: unknown, id: string, exec?: unknown) {
      const result = await original.call(this, id, exec);
      if (pending === null && id === userId) {
        optOuts.isOptedOut = original;
        pending = change();
        pending.catch(() => undefined);
        if (db === 'postgres') await Promise.race([pending, blockedOnALock()]);
      }
      return result;
    };
    return { fired: () => pending !== null, settled: () => pending ?? Promise.resolve() };
  }

  /** PostgreSQL: resolves once a transaction of this database waits for an advisory lock. */
  async function blockedOnALock(): Promise<void> {
    for (;;) {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and wait_event = 'advisory'`.execute(h.services.store.db);
      if (rows[0]!.n > 0) return;
      await sleep(5);
    }
  }

  describe('withdrawals (W)', () => {
    it('W1, O1, O2: a withdrawal is evaluated in one state of the account: one user opting out and then another opting in while it is evaluated never lift the None row', async () => {
      const p = await pair();
      const key = (await h.services.apiKeys.create({ name: 'race back office', scopes: ['withdrawals'] }, 'test')).key;
      const consent = (user: User) => ({ acknowledged: true, confirmation: user.username });
      // the owner (DSC+) opted out: the account is as weak as the None row
      await h.services.optOuts.optOut(p.owner.id, consent(p.owner), { actor: `user:${p.owner.id}` });
      expect((await h.services.withdrawals.protectionOf(p.owner.accountId, undefined)).limits).toMatchObject({ device: null, perDayUsd: 50_000 });
      // the requester (read first) opts out, then the owner opts back in: before, between and after, the None row applies
      const race = changeWhenOptOutRead(p.requester.id, async () => {
        await h.services.optOuts.optOut(p.requester.id, consent(p.requester), { actor: `user:${p.requester.id}` });
        await h.services.optOuts.optIn(p.owner.id, { actor: `user:${p.owner.id}` });
      });
      const withdrawal = await postJson(
        h.app,
        '/api/v1/withdrawals',
        { account: p.owner.accountNumber, amount: 100_000, currency: 'USD', reference: 'race-1' },
        bearer(key),
      );
      await race.settled();
      expect(race.fired()).toBe(true);
      expect([withdrawal.status, withdrawal.body.error?.code], JSON.stringify(withdrawal.body)).toEqual([409, 'WITHDRAWAL_LIMIT_EXCEEDED']);
      const rows = await h.services.store.db.selectFrom('withdrawals').select('id').where('reference', '=', 'race-1').execute();
      expect(rows).toEqual([]);
      expect((await h.services.withdrawals.protectionOf(p.owner.accountId, undefined)).limits).toMatchObject({ device: null, perDayUsd: 50_000 });
    });

    it('W1, W3: withdrawals in another currency worth less than half a cent each count, not as zero: ten at once at the last cent of the day, exactly one passes', async () => {
      const key = (await h.services.apiKeys.create({ name: 'sub-cent back office', scopes: ['withdrawals'] }, 'test')).key;
      await h.services.fx.set([{ currency: 'XTS', rate: '0.004' }], 'test');
      const weak = await createUserWithCard(h.services, '1234');
      await h.services.store.db.updateTable('devices').set({ state: 'revoked' }).where('user_id', '=', weak.user.id).execute();
      const withdraw = (amount: number | string, currency: string, reference: string) =>
        postJson(h.app, '/api/v1/withdrawals', { account: weak.user.accountNumber, amount, currency, reference }, bearer(key));
      // the None row: USD 50,000 a day; all but one cent of it withdrawn
      expect((await withdraw('49999.99', 'USD', 'sub-0')).status).toBe(201);
      // 0.01 XTS is 0.04 US cents: each counts a whole cent, so only one of ten fits, even all at once
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => withdraw('0.01', 'XTS', `sub-${i + 1}`)));
      expect(results.map((r) => r.status).sort()).toEqual([201, ...Array(9).fill(409)]);
      for (const r of results.filter((x) => x.status !== 201)) expect(r.body.error.code).toBe('WITHDRAWAL_LIMIT_EXCEEDED');
      const rows = await h.services.store.db.selectFrom('withdrawals').select('usd_cents').where('reference', 'like', 'sub-%').execute();
      expect(rows.reduce((sum, r) => sum + Number(r.usd_cents), 0)).toBe(5_000_000);
      const standing = await h.services.withdrawals.check({ account: weak.user.accountNumber, amount: '0.01', currency: 'XTS' });
      expect([standing.allowed, standing.amountUsd, standing.remaining.dayUsd]).toEqual([false, 0.01, 0]);
    });

    it('W3, W1: a rate older than SLS_FX_RATE_MAX_AGE_HOURS (96 by default) converts nothing: 400 CURRENCY_UNKNOWN (reason stale), nothing recorded, until the operator sets the rate again; sls fx list names it stale', async () => {
      const key = (await h.services.apiKeys.create({ name: 'stale-rate back office', scopes: ['withdrawals'] }, 'test')).key;
      const weak = await createUserWithCard(h.services, '1234');
      await h.services.store.db.updateTable('devices').set({ state: 'revoked' }).where('user_id', '=', weak.user.id).execute();
      const withdraw = (amount: number, reference: string) =>
        postJson(h.app, '/api/v1/withdrawals', { account: weak.user.accountNumber, amount, currency: 'XAG', reference }, bearer(key));
      const start = h.clock.now();
      // the rate of a currency that has since doubled, never set again: 90,000 of it count as USD 45,000, within the None row's 50,000
      await h.services.fx.set([{ currency: 'XAG', rate: '0.5' }], 'test');
      try {
        h.clock.set(start + 96 * 3_600_000 - 1_000);
        const fresh = await postJson(h.app, '/api/v1/withdrawals/check', { account: weak.user.accountNumber, amount: 90_000, currency: 'XAG' }, bearer(key));
        expect([fresh.status, fresh.body.allowed, fresh.body.amountUsd], JSON.stringify(fresh.body)).toEqual([200, true, 45_000]);
        expect((await h.services.fx.list()).find((r) => r.currency === 'XAG')?.stale).toBe(false);
        h.clock.set(start + 96 * 3_600_000 + 1_000);
        // the operator sees it in `sls fx list` (stale: true) before a withdrawal is refused
        expect((await h.services.fx.list()).find((r) => r.currency === 'XAG')?.stale).toBe(true);
        for (const call of ['/api/v1/withdrawals/check', '/api/v1/withdrawals']) {
          const stale = await postJson(h.app, call, { account: weak.user.accountNumber, amount: 90_000, currency: 'XAG', reference: 'stale-1' }, bearer(key));
          expect([stale.status, stale.body.error?.code], JSON.stringify(stale.body)).toEqual([400, 'CURRENCY_UNKNOWN']);
          expect(stale.body.error.message).toContain('sls fx set XAG');
        }
        expect(await h.services.store.db.selectFrom('withdrawals').select('id').where('reference', 'like', 'stale-%').execute()).toEqual([]);
        // the operator sets today's rate: converted at once, and the limit holds
        await h.services.fx.set([{ currency: 'XAG', rate: '1' }], 'test');
        const refused = await withdraw(90_000, 'stale-2');
        expect([refused.status, refused.body.error?.code], JSON.stringify(refused.body)).toEqual([409, 'WITHDRAWAL_LIMIT_EXCEEDED']);
        expect((await withdraw(45_000, 'stale-3')).status).toBe(201);
        // a retry of that recording once the rate is stale again is told it was recorded, at its rate (never "nothing was recorded")
        h.clock.set(start + 2 * 96 * 3_600_000 + 2_000);
        const retried = await withdraw(45_000, 'stale-3');
        expect([retried.status, retried.body.replayed, retried.body.amountUsd], JSON.stringify(retried.body)).toEqual([200, true, 45_000]);
      } finally {
        h.clock.set(start);
      }
    });

    it('W3, X3: exponents, signs, NaN, Infinity, hexadecimal, grouped, other scripts’ digits, sub-cent, overlong and 2^53-sized amounts are refused 400 by the check and the record, nothing recorded (held)', async () => {
      const key = (await h.services.apiKeys.create({ name: 'odd amounts back office', scopes: ['withdrawals'] }, 'test')).key;
      const weak = await createUserWithCard(h.services, '1234');
      await h.services.store.db.updateTable('devices').set({ state: 'revoked' }).where('user_id', '=', weak.user.id).execute();
      const odd: (number | string)[] = [
        '1e3',
        '1E3',
        1e-7,
        5e-324,
        1.7976931348623157e308,
        2 ** 53,
        0.001,
        '-0',
        '0.00',
        '-1',
        '+5',
        'NaN',
        'Infinity',
        '-Infinity',
        '0x10',
        '1_000',
        '1,000',
        '1 000',
        '٣٠',
        '１００',
        '.5',
        '5.',
        '',
        ' ',
        '50000.001',
        '00000000000000001',
        '99999999999999.99',
      ];
      for (const [i, amount] of odd.entries()) {
        for (const call of ['/api/v1/withdrawals/check', '/api/v1/withdrawals']) {
          const res = await postJson(h.app, call, { account: weak.user.accountNumber, amount, currency: 'USD', reference: `odd-${i}` }, bearer(key));
          expect([res.status, res.body.error?.code], `${call} ${JSON.stringify(amount)}: ${JSON.stringify(res.body)}`).toEqual([400, 'AMOUNT_INVALID']);
        }
      }
      expect(await h.services.store.db.selectFrom('withdrawals').select('id').where('reference', 'like', 'odd-%').execute()).toEqual([]);
    });

    it('W3, W1: a reference replayed with the same amount in another currency, or naming a username of another account, records nothing (409, 404) (held)', async () => {
      const key = (await h.services.apiKeys.create({ name: 'attack back office', scopes: ['withdrawals'] }, 'test')).key;
      await h.services.fx.set([{ currency: 'EUR', rate: '1.08' }], 'test');
      const weak = await createUserWithCard(h.services, '1234');
      await h.services.store.db.updateTable('devices').set({ state: 'revoked' }).where('user_id', '=', weak.user.id).execute();
      const strong = await createUserWithCard(h.services, '1234');
      const first = await postJson(
        h.app,
        '/api/v1/withdrawals',
        { account: weak.user.accountNumber, amount: 40_000, currency: 'USD', reference: 'atk-1' },
        bearer(key),
      );
      expect([first.status, first.body.device], JSON.stringify(first.body)).toEqual([201, 'none']);
      const euros = await postJson(
        h.app,
        '/api/v1/withdrawals',
        { account: weak.user.accountNumber, amount: 40_000, currency: 'EUR', reference: 'atk-1' },
        bearer(key),
      );
      expect([euros.status, euros.body.error?.code]).toEqual([409, 'WITHDRAWAL_REFERENCE_CONFLICT']);
      // a stranger's DSC+ does not lift the None row of the account
      const lifted = await postJson(
        h.app,
        '/api/v1/withdrawals',
        { account: weak.user.accountNumber, amount: 40_000, currency: 'USD', reference: 'atk-2', username: strong.user.username },
        bearer(key),
      );
      expect([lifted.status, lifted.body.error?.code]).toEqual([404, 'USER_NOT_FOUND']);
      const rows = await h.services.store.db.selectFrom('withdrawals').select('usd_cents').where('reference', 'like', 'atk-%').execute();
      expect(rows.map((r) => Number(r.usd_cents))).toEqual([4_000_000]);
    });
  });
});
