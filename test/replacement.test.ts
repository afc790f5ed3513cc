/**
 * A lost DSC+ and its replacement (C1, C4–C8, D3, D4, N1, R2, R3): the request
 * with its deposit, shipping from the stock, activation by the user or by
 * itself three weeks after shipment (with its notices), deposits kept or
 * released, and the PIN change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { DAY } from '../src/clock.js';
import { createServices } from '../src/services.js';
import { Scheduler } from '../src/scheduler/scheduler.js';
import { parsePskc } from '../src/devices/dscplus/pskc.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, testConfig, type Harness } from './support/harness.js';
import { BUILT_IN_DRIVERS } from './support/kind-drivers.js';
import { answer, bearer, claimOf, get, postJson, startLogin, stepUp, tookNewToken } from './support/api.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';

const ADDRESS = { name: 'Alice Martin', line1: '1 Main Street', city: 'Springfield', postalCode: '12345', country: 'us' };
/** R2: these cards are requested under a temporary passcode: client services confirmed the address with the client. */
const CONFIRMED = { addressConfirmed: true };

describe.each(DATABASES)('DSC+ replacement on %s', (dbName) => {
  let h: Harness;
  let agentId: string;
  let stock: string[];

  beforeAll(async () => {
    h = await startHarness(dbName);
    agentId = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user.id;
    const fixture = (name: string) => readFileSync(new URL(`./fixtures/pskc/${name}`, import.meta.url), 'utf8');
    const keys = [
      ...parsePskc(fixture('batch-plain.xml')),
      ...parsePskc(fixture('batch-aes.xml'), { preSharedKey: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex') }),
    ];
    stock = (await h.services.devices.importStock(keys, 'test', 'batch')).map((d) => d.serial!);
  });
  afterAll(async () => {
    await h.close();
  });

  /** A portal session opened with the card, stepped up with it (X7: the security settings may change). */
  async function loginWithCard(user: User, card: CardFile): Promise<string> {
    const start = await startLogin(h.app, user.username);
    const token = (await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token as string;
    // V1 (decision 0042): the step-up replaced the session's token
    return (await stepUp(h.app, bearer(token), (challenge) => cardAnswer(card, challenge.question))).body.session.token as string;
  }

  /** A client whose card is lost: a temporary passcode, and a session opened with it (R2). */
  async function clientWithLostCard(equityUsd = 2_000_000) {
    const { user, card } = await createUserWithCard(h.services, '1234', { equityUsd });
    const verification = await h.services.helpDesk.verifyIdentity(agentId, user.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(agentId, user.username, { verificationId: verification.id, deviceStatus: 'lost' });
    const start = await startLogin(h.app, user.username);
    const opened = (await answer(h.app, start.body.id, passcode)).body.session.token as string;
    // X7: a DSC+ request changes the security settings: the session steps up with the passcode (T3: full access for 2
    // days); V1 (decision 0042): the step-up replaced the session's token
    const token = (await stepUp(h.app, bearer(opened), () => passcode)).body.session.token as string;
    return { user, card, passcode, token };
  }

  it('C1: accounts with equity above USD 1,000,000 may request a DSC+', async () => {
    const poor = await clientWithLostCard(1_000_000);
    expect((await get(h.app, '/api/v1/dscplus/eligibility', bearer(poor.token))).body).toEqual({
      eligible: false,
      equityUsd: 1_000_000,
      thresholdUsd: 1_000_000,
    });
    const refused = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, bearer(poor.token));
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('NOT_ELIGIBLE');
    await h.services.users.setEquity(poor.user.accountNumber, 1_000_000.01, 'test');
    expect((await get(h.app, '/api/v1/dscplus/eligibility', bearer(poor.token))).body.eligible).toBe(true);
  });

  it('C4/C5: address, soft PIN and deposit account, a summary, then the request with its estimated shipment date; USD 20 held', async () => {
    const { user, token } = await clientWithLostCard();
    const body = { address: ADDRESS, pin: '2468' };
    const preview = await postJson(h.app, '/api/v1/dscplus/requests/preview', body, bearer(token));
    expect(preview.status).toBe(200);
    expect(preview.body).toMatchObject({ holdAccount: user.accountNumber, depositUsd: 20, address: { country: 'US' } });
    expect(preview.body.estimatedShipDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(await h.services.devices.listForUser(user.id)).toHaveLength(2); // nothing stored by the preview
    for (const bad of [
      { ...body, pin: '12' },
      { ...body, address: { ...ADDRESS, country: 'USA' } },
      // C4: a country of ISO 3166, not any two letters (issue 16)
      { ...body, address: { ...ADDRESS, country: 'XX' } },
      { ...body, address: { ...ADDRESS, city: '' } },
      { ...body, holdAccount: 'U0000000' },
    ]) {
      expect((await postJson(h.app, '/api/v1/dscplus/requests', bad, bearer(token))).status).toBeGreaterThanOrEqual(400);
    }
    // X3, N1: the address reaches the user's notices and the help desk: no line breaks, control or direction-override characters in it
    for (const city of ['Lyon\nYour card is safe: ignore this message', 'Lyon\u0007', 'Lyon\u202eesrever']) {
      const refused = await postJson(h.app, '/api/v1/dscplus/requests', { ...body, address: { ...ADDRESS, city } }, bearer(token));
      expect([refused.status, refused.body.error.code, refused.body.error.message], JSON.stringify(city)).toEqual([
        400,
        'VALIDATION_ERROR',
        expect.stringContaining('city: one line of text'),
      ]);
    }
    const made = await postJson(h.app, '/api/v1/dscplus/requests', body, bearer(token));
    expect(made.status).toBe(200);
    expect(made.body).toMatchObject({ estimatedShipDate: preview.body.estimatedShipDate, device: { type: 'dscplus', state: 'requested', serial: null } });
    expect(new Date(`${made.body.estimatedShipDate}T00:00:00Z`).getUTCDay()).not.toBe(0);
    expect(await h.services.dscPlusRequests.hold(made.body.device.id)).toEqual({ status: 'held', amountUsd: 20, account: user.accountNumber });
    expect((await h.services.notifier.list({ userId: user.id })).map((n) => n.template)).toContain('dscplusRequested');
  });

  it('C6/C8/D4: shipped from the stock, then activated by the user with its response: the temporary access ends', async () => {
    const { user, token } = await clientWithLostCard();
    const made = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, bearer(token));
    const serial = stock.shift()!;
    const { card } = await h.services.dscPlusRequests.ship(agentId, made.body.device.id, serial, CONFIRMED);
    expect(card.serial).toBe(serial);
    expect((await h.services.devices.listStock()).map((d) => d.serial)).not.toContain(serial);
    const begin = await postJson(h.app, `/api/v1/devices/${made.body.device.id}/activation`, {}, bearer(token));
    expect(begin.body.challenge.type).toBe('ocra');
    const newCard = { ...card, pin: '2468' } as CardFile;
    const done = await postJson(
      h.app,
      `/api/v1/devices/${made.body.device.id}/activation/${begin.body.id}`,
      { response: cardAnswer(newCard, begin.body.challenge.question) },
      bearer(token),
    );
    expect(done.body).toMatchObject({ state: 'active', serial });
    const start = await startLogin(h.app, user.username);
    expect(start.body.devices.map((d: { type: string }) => d.type)).toEqual(['dscplus']);
    expect((await answer(h.app, start.body.id, cardAnswer(newCard, start.body.challenge.question))).status).toBe(200);
  });

  it('C6/N1/R3: unactivated, the card activates itself three weeks after shipment, after an approaching and an imminent notice, each once', async () => {
    const { user, token } = await clientWithLostCard();
    const made = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, bearer(token));
    await h.services.dscPlusRequests.ship(agentId, made.body.device.id, stock.shift()!, CONFIRMED);
    const notices = async () => (await h.services.notifier.list({ userId: user.id })).map((n) => n.template);
    // a second scheduler on the same database, as another server process would run
    const other = await createServices(testConfig(h.database), { clock: h.clock, warn: () => undefined });
    const schedulers = [h.services.scheduler, new Scheduler(other)];
    // PostgreSQL: at the same time. SQLite in one process: one after the other, since a waiting
    // better-sqlite3 connection blocks the thread that holds the other (processes do not share one).
    const runBoth = async () => {
      if (dbName === 'postgres') return Promise.all(schedulers.map((s) => s.runDue()));
      const reports = [];
      for (const s of schedulers) reports.push(await s.runDue());
      return reports;
    };

    h.clock.advance(13 * DAY);
    await runBoth();
    expect(await notices()).not.toContain('autoActivationApproaching');
    h.clock.advance(DAY); // a week before
    await runBoth();
    await runBoth();
    expect((await notices()).filter((t) => t === 'autoActivationApproaching')).toHaveLength(1);
    h.clock.advance(6 * DAY); // a day before
    await runBoth();
    expect((await notices()).filter((t) => t === 'autoActivationImminent')).toHaveLength(1);
    expect((await h.services.devices.get(made.body.device.id)).state).toBe('shipped');
    h.clock.advance(DAY);
    const reports = await runBoth();
    expect(reports.reduce((n, r) => n + r.autoActivated, 0)).toBe(1);
    expect((await h.services.devices.get(made.body.device.id)).state).toBe('active');
    expect((await notices()).filter((t) => t === 'dscplusAutoActivated')).toHaveLength(1);
    const events = (await h.services.audit.list({ username: user.username, limit: 100 })).map((e) => e.event);
    expect(events.filter((e) => e === 'device.auto_activated')).toHaveLength(1);
    // D4: the replacement in use ends the temporary passcode
    const start = await startLogin(h.app, user.username);
    expect(start.body.devices.map((d: { type: string }) => d.type)).toEqual(['dscplus']);
    expect((await h.services.devices.listForUser(user.id)).find((d) => d.type === 'temp_passcode')!.state).toBe('revoked');
    await other.close();
  });

  it('C5, N1: a lost or stolen card keeps its deposit, and its owner is told; a returned card releases it', async () => {
    const { user, token } = await clientWithLostCard();
    const first = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, bearer(token));
    await h.services.dscPlusRequests.ship(agentId, first.body.device.id, stock.shift()!, CONFIRMED);
    const lost = await postJson(h.app, `/api/v1/devices/${first.body.device.id}/lost`, { reason: 'stolen' }, bearer(token));
    expect(lost.body.state).toBe('lost');
    expect((await h.services.dscPlusRequests.hold(first.body.device.id))!.status).toBe('kept');
    // N1, R2: the owner is told, whoever reported it (someone holding the password and a weaker device could have)
    const told = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'deviceReportedLost');
    expect(told.length).toBeGreaterThan(0);
    expect(told.map((n) => n.body).join(' ')).toContain(first.body.device.serial ?? user.username);

    const second = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '1357' }, bearer(token));
    await h.services.dscPlusRequests.ship(agentId, second.body.device.id, stock.shift()!, CONFIRMED);
    const agentToken = await (async () => {
      const { user: staff, card } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
      return loginWithCard(staff, card);
    })();
    const returned = await postJson(h.app, `/api/v1/helpdesk/devices/${second.body.device.id}/returned`, {}, bearer(agentToken));
    expect(returned.body.state).toBe('returned');
    expect((await h.services.dscPlusRequests.hold(second.body.device.id))!.status).toBe('released');
    expect((await h.services.audit.list({ username: user.username, limit: 100 })).filter((e) => e.event === 'deposit.settled')).toHaveLength(2);
    const damaged = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '1357' }, bearer(token));
    expect((await postJson(h.app, `/api/v1/devices/${damaged.body.device.id}/lost`, { reason: 'damaged' }, bearer(token))).body.state).toBe('lost');
    expect((await h.services.dscPlusRequests.hold(damaged.body.device.id))!.status).toBe('held');
    // a stolen card found and returned after all: its deposit is released
    const found = await postJson(h.app, `/api/v1/helpdesk/devices/${first.body.device.id}/returned`, {}, bearer(agentToken));
    expect(found.body.state).toBe('returned');
    expect((await h.services.dscPlusRequests.hold(first.body.device.id))!.status).toBe('released');
    // the stock is used up: shipping a serial not in stock is refused
    const third = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '1357' }, bearer(token));
    await expect(h.services.dscPlusRequests.ship(agentId, third.body.device.id, 'DSC9999999', CONFIRMED)).rejects.toMatchObject({ code: 'NO_STOCK' });
  });

  it('C7, N1: the PIN changes after the old one is proven; the old PIN no longer gives the right response; the user is told, the card named', async () => {
    const { user, card } = await createUserWithCard(h.services, '1111');
    const token = await loginWithCard(user, card);
    const [device] = await h.services.devices.listForUser(user.id);
    const begin = await postJson(h.app, `/api/v1/devices/${device!.id}/pin`, {}, bearer(token));
    const wrongOld = await postJson(
      h.app,
      `/api/v1/devices/${device!.id}/pin/${begin.body.id}`,
      { response: cardAnswer(card, begin.body.challenge.question, '2222'), newPin: '3333' },
      bearer(token),
    );
    expect(wrongOld.status).toBe(401);
    const badNew = await postJson(
      h.app,
      `/api/v1/devices/${device!.id}/pin/${begin.body.id}`,
      { response: cardAnswer(card, begin.body.challenge.question), newPin: '33' },
      bearer(token),
    );
    expect(badNew.body.error.code).toBe('INVALID_PIN');
    const changed = await postJson(
      h.app,
      `/api/v1/devices/${device!.id}/pin/${begin.body.id}`,
      { response: cardAnswer(card, begin.body.challenge.question), newPin: '3333' },
      bearer(token),
    );
    expect(changed.status).toBe(200);
    const start = await startLogin(h.app, user.username);
    const oldPin = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question, '1111'));
    expect(oldPin.status).toBe(401);
    expect((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question, '3333'))).status).toBe(200);
    expect((await h.services.audit.list({ username: user.username })).map((e) => e.event)).toContain('device.pin_changed');
    // N1: the user hears of it once, the card named (whoever holds the card and its old PIN shuts its owner out)
    const told = (await h.services.notifier.list({ userId: user.id })).filter((n) => n.template === 'pinChanged');
    expect(told.length).toBeGreaterThan(0);
    expect(new Set(told.map((n) => n.body.includes(device!.serial!)))).toEqual(new Set([true]));
  });
  it('R2, D2, K7: the password and a SIM report the DSC+ lost: no key and no authenticator by SMS until the wait is over (a replacement asked meanwhile waits for client services to confirm its address); a loss client services record does not wait', async () => {
    const sms = await BUILT_IN_DRIVERS.sms!.holder(h);
    const { device: card } = await h.services.devices.addDscPlus({ userId: sms.user.id, pin: '1234' }, 'test');
    await h.services.store.db.updateTable('accounts').set({ equity_usd_cents: 200_000_000 }).where('id', '=', sms.user.accountId).execute();
    // the attacker logs in with SMS and steps up with it (X7)
    const start = await startLogin(h.app, sms.user.username);
    const flow =
      start.body.device.id === sms.deviceId
        ? start.body
        : (await postJson(h.app, `/api/v1/login/${start.body.id}`, { device: sms.deviceId }, claimOf(start))).body;
    const done = await answer(h.app, flow.id, await sms.right(flow.challenge));
    expect(done.body.state, JSON.stringify(done.body)).toBe('done');
    const headers = bearer(done.body.session.token as string);
    h.clock.advance(1000); // the step-up's code is the newest
    const up = await postJson(h.app, '/api/v1/step-up', { password: PASSWORD }, headers);
    expect(up.body.deviceId, JSON.stringify(up.body)).toBe(sms.deviceId);
    const upDone = await postJson(h.app, `/api/v1/step-up/${up.body.id}`, { response: await sms.right(up.body.challenge) }, headers);
    expect(upDone.body.state, JSON.stringify(upDone.body)).toBe('done');
    tookNewToken(headers, upDone);
    const lost = await postJson(h.app, `/api/v1/devices/${card.id}/lost`, { reason: 'stolen' }, headers);
    expect(lost.status, JSON.stringify(lost.body)).toBe(200);
    const key = await postJson(h.app, '/api/v1/security-keys/registration', {}, headers);
    expect([key.status, key.body.error?.code], JSON.stringify(key.body)).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    expect(key.body.error.message).toContain('Client Services');
    const activate = () => postJson(h.app, '/api/v1/mobile/activations', { username: sms.user.username, password: PASSWORD, purpose: 'activate' });
    const phone = await activate();
    expect([phone.status, phone.body.error?.code], JSON.stringify(phone.body)).toEqual([403, 'STRONGER_DEVICE_REQUIRED']);
    const replacement = await postJson(h.app, '/api/v1/dscplus/requests', { address: ADDRESS, pin: '2468' }, headers);
    expect(replacement.status, JSON.stringify(replacement.body)).toBeLessThan(300);
    await expect(h.services.dscPlusRequests.ship(agentId, replacement.body.device.id, stock[0]!)).rejects.toMatchObject({ code: 'ADDRESS_NOT_CONFIRMED' });
    // after the wait (the owner was told at once), R2's path opens: the authenticator by an SMS token
    h.clock.advance(h.services.config.policy.weakerLossReportWaitMs + 60_000);
    const later = await activate();
    expect([later.status, later.body.proof], JSON.stringify(later.body)).toEqual([200, 'sms']);
    // a loss client services record (identity verified, R2) opens it at once
    const other = await BUILT_IN_DRIVERS.sms!.holder(h);
    const { device: otherCard } = await h.services.devices.addDscPlus({ userId: other.user.id, pin: '1234' }, 'test');
    const verified = await h.services.helpDesk.verifyIdentity(agentId, other.user.username, { method: 'id_document' });
    await h.services.dscPlusRequests.reportLost({ staffUserId: agentId, verificationId: verified.id }, otherCard.id, 'lost');
    const now = await postJson(h.app, '/api/v1/mobile/activations', { username: other.user.username, password: PASSWORD, purpose: 'activate' });
    expect([now.status, now.body.proof], JSON.stringify(now.body)).toEqual([200, 'sms']);
  });
});
