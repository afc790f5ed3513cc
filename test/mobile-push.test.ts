/**
 * Waking a closed authenticator app through a push service (K3, K13): the
 * server configured with Web Push sends each new push request to the
 * subscription the app registered, encrypted (RFC 8291) and signed with
 * its VAPID key (RFC 8292), to a local push service speaking the protocol
 * (test/support/fake-push-service.ts). The login never waits for it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES, PASSWORD, startHarness, type Harness } from './support/harness.js';
import { postJson, startLogin } from './support/api.js';
import { TestPhone, harnessInbox, listen, smsUser } from './support/phone.js';
import { startFakePushService, type FakePushService } from './support/fake-push-service.js';

describe.each(DATABASES)('push requests through Web Push (%s)', (db) => {
  let h: Harness;
  let pushService: FakePushService;
  let phone: TestPhone;

  beforeAll(async () => {
    pushService = await startFakePushService();
    h = await startHarness(db, { push: { provider: 'web-push', subject: 'mailto:security@example.test', timeoutMs: 2_000 } });
    phone = new TestPhone(await listen(h), harnessInbox(h));
  });
  afterAll(async () => {
    await h.close();
    await pushService.close();
  });

  async function until<T>(read: () => T | undefined): Promise<T> {
    for (let i = 0; i < 100; i++) {
      const value = read();
      if (value !== undefined) return value;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('nothing arrived');
  }

  it('K3, K13: a new login wakes the app through its push service: encrypted, VAPID-signed, never with the number', async () => {
    const vapidKey = h.services.vapidPublicKey!;
    expect(vapidKey).toMatch(/^[A-Za-z0-9_-]{87}$/);
    // the app is given the key to subscribe with
    expect((await h.app.inject({ method: 'GET', url: '/app' })).body).toContain(`data-vapid-key="${vapidKey}"`);

    const user = await smsUser(h);
    const enrolment = await phone.activate(user.username);
    const subscription = pushService.subscribe({ applicationServerKey: vapidKey });
    // push services are reached over https only: the API refuses anything else
    const refused = await postJson(h.app, '/api/v1/mobile/push-subscription', { deviceId: enrolment.deviceId, token: enrolment.token, subscription });
    expect([refused.status, refused.body.error.code]).toEqual([400, 'VALIDATION_ERROR']);
    const wrongToken = await postJson(h.app, '/api/v1/mobile/push-subscription', {
      deviceId: enrolment.deviceId,
      token: 'nope',
      subscription: { ...subscription, endpoint: 'https://fcm.googleapis.com/fcm/send/x' },
    });
    expect(wrongToken.body.error.code).toBe('APP_TOKEN_INVALID');
    // and only to a known push service: never to an address a client chose (an internal host, say)
    for (const endpoint of ['https://10.0.0.1/push/x', 'https://127.0.0.1/push/x', 'https://fcm.googleapis.com.attacker.test/x']) {
      const internal = await postJson(h.app, '/api/v1/mobile/push-subscription', {
        deviceId: enrolment.deviceId,
        token: enrolment.token,
        subscription: { ...subscription, endpoint },
      });
      expect([internal.status, internal.body.error.code, internal.body.error.message]).toEqual([
        400,
        'VALIDATION_ERROR',
        expect.stringContaining('push service'),
      ]);
    }
    await h.services.pushRequests.subscribe({ deviceId: enrolment.deviceId, token: enrolment.token }, subscription);

    const login = await startLogin(h.app, user.username, PASSWORD, 'trading');
    expect(login.status).toBe(200);
    const push = await until(() => pushService.received[0]);
    expect(push.vapidKey).toBe(vapidKey);
    expect(push.urgency).toBe('high');
    expect(push.ttl).toBeGreaterThan(0);
    expect(push.ttl).toBeLessThanOrEqual(120);
    expect(push.payload).toMatchObject({ requestId: (await phone.request(user.username)).id, username: user.username, kind: 'login', app: 'trading' });
    expect(JSON.stringify(push.payload)).not.toContain(login.body.id);
    expect(JSON.stringify(push.payload)).not.toContain(`"${login.body.challenge.number}"`);
  });

  it('K3: a subscription on another port than 443, or with keys that cannot be used, is refused with 400', async () => {
    const user = await smsUser(h);
    const enrolment = await phone.activate(user.username);
    const { keys } = pushService.subscribe({ applicationServerKey: h.services.vapidPublicKey! });
    const tooShort = Buffer.from(keys.p256dh, 'base64url').subarray(0, 64).toString('base64url');
    const offCurve = Buffer.from(keys.p256dh, 'base64url');
    offCurve[64] = offCurve[64]! ^ 1;
    const cases = [
      [{ endpoint: 'https://fcm.googleapis.com:8443/fcm/send/x', keys }, 'push_endpoint'],
      [{ endpoint: 'http://fcm.googleapis.com/fcm/send/x', keys }, 'push_endpoint'],
      [{ endpoint: 'https://user:pw@fcm.googleapis.com/fcm/send/x', keys }, 'push_endpoint'],
      [{ endpoint: 'https://fcm.googleapis.com/fcm/send/x', keys: { ...keys, p256dh: tooShort } }, 'p256dh'],
      [{ endpoint: 'https://fcm.googleapis.com/fcm/send/x', keys: { ...keys, p256dh: offCurve.toString('base64url') } }, 'p256dh'],
      [{ endpoint: 'https://fcm.googleapis.com/fcm/send/x', keys: { ...keys, auth: Buffer.alloc(15, 7).toString('base64url') } }, 'auth'],
    ] as const;
    for (const [subscription, problem] of cases) {
      const res = await postJson(h.app, '/api/v1/mobile/push-subscription', { deviceId: enrolment.deviceId, token: enrolment.token, subscription });
      expect([res.status, res.body.error.code], subscription.endpoint).toEqual([400, 'VALIDATION_ERROR']);
      if (problem === 'push_endpoint') expect(res.body.error.message).toBe("This phone's push service address must be https, on port 443.");
      else expect(res.body.error.message).toBe(`The app sent push keys that cannot be used (${problem}).`);
    }
    const french = await postJson(
      h.app,
      '/api/v1/mobile/push-subscription',
      { deviceId: enrolment.deviceId, token: enrolment.token, subscription: cases[0][0] },
      { 'accept-language': 'fr' },
    );
    expect(french.body.error.message).toBe("L'adresse du service de notifications de ce téléphone doit être en https, sur le port 443.");
    expect(
      await h.services.store.db.selectFrom('push_subscriptions').select('device_id').where('device_id', '=', enrolment.deviceId).executeTakeFirst(),
    ).toBeUndefined();
  });

  it('K3: a push service answering 404 (no such subscription) makes the server forget it, audited; the login goes on', async () => {
    const user = await smsUser(h);
    const enrolment = await phone.activate(user.username);
    const subscription = pushService.subscribe({ applicationServerKey: h.services.vapidPublicKey! });
    const unknown = { ...subscription, endpoint: subscription.endpoint.replace(/[^/]+$/, 'nosuchsubscription') };
    await h.services.pushRequests.subscribe({ deviceId: enrolment.deviceId, token: enrolment.token }, unknown);
    const login = await startLogin(h.app, user.username);
    expect(login.body.challenge.type).toBe('push');
    const stored = async () =>
      h.services.store.db.selectFrom('push_subscriptions').select('device_id').where('device_id', '=', enrolment.deviceId).executeTakeFirst();
    for (let i = 0; i < 100 && (await stored()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await stored()).toBeUndefined();
    const entry = (await h.services.audit.list({ userId: user.id })).find((e) => e.event === 'push.failed');
    expect(entry?.data).toMatchObject({ provider: 'web-push', status: 'expired', deviceId: enrolment.deviceId });
  });

  it('K3: a subscription the push service says is gone (410) is forgotten, audited; the login goes on', async () => {
    const user = await smsUser(h);
    const enrolment = await phone.activate(user.username);
    const subscription = pushService.subscribe({ applicationServerKey: h.services.vapidPublicKey! });
    await h.services.pushRequests.subscribe({ deviceId: enrolment.deviceId, token: enrolment.token }, subscription);
    pushService.unsubscribe(subscription.endpoint);
    const login = await startLogin(h.app, user.username);
    expect(login.body.challenge.type).toBe('push');
    const stored = async () =>
      h.services.store.db.selectFrom('push_subscriptions').select('device_id').where('device_id', '=', enrolment.deviceId).executeTakeFirst();
    for (let i = 0; i < 100 && (await stored()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await stored()).toBeUndefined();
    const entry = (await h.services.audit.list({ userId: user.id })).find((e) => e.event === 'push.failed');
    expect(entry?.data).toMatchObject({ provider: 'web-push', status: 'expired' });
    // the app, once opened, still finds the request
    expect((await phone.request(user.username)).username).toBe(user.username);
  });
});
