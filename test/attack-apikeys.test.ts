/**
 * Attacks with an integrator's API key (I3, A6, X7), on every database: a
 * key is a machine of the back office. It sets the equity of clients'
 * accounts (A6), but never touches a staff member's account — a staff
 * username, or a client username of a staff member's entity (decision 0010,
 * "staff on staff by entity"): only an admin, in the console or with `sls`,
 * acts on staff. A key revoked while its request is under way writes
 * nothing (I3: revoked at once, on every process). Each refusal is a stable
 * code and is audited.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { User } from '../src/identity/users.js';
import type { Role } from '../src/store/schema.js';
import { DATABASES, PASSWORD, createUser, startHarness, uniqueUsername, type Harness } from './support/harness.js';
import { bearer, send } from './support/api.js';

describe.each(DATABASES)('attacks with an API key on %s', (database) => {
  let h: Harness;
  let key: string;
  let keyId: string;

  beforeAll(async () => {
    h = await startHarness(database);
    const created = await h.services.apiKeys.create({ name: 'back office accounts', scopes: ['accounts', 'withdrawals'] }, 'test');
    key = created.key;
    keyId = created.apiKey.id;
  });
  afterAll(async () => h.close());

  const setEquity = (accountNumber: string, equityUsd: number) =>
    send(h.app, 'PUT', `/api/v1/admin/accounts/${accountNumber}/equity`, bearer(key), { equityUsd });

  /** A client username of the same entity as USER (another account of the same person, A1). */
  const secondUsernameOf = (user: User) =>
    h.services.users.create({ username: uniqueUsername('client'), password: PASSWORD, entityId: user.entityId, equityUsd: 10 }, 'test');

  it('I3: an unknown key id and a known id with a wrong secret cost the same work (one keyed digest, one constant-time comparison) and get the same answer: timing tells nobody which key ids exist', async () => {
    const [, id, secret] = /^sls_([a-z2-7]{26})_(.+)$/.exec(key)!;
    const wrong = `${secret!.slice(0, -1)}${secret!.endsWith('A') ? 'B' : 'A'}`;
    const unknownId = `${id!.slice(0, -1)}${id!.endsWith('a') ? 'b' : 'a'}`;
    const digest = vi.spyOn(h.services.box, 'digest');
    const answers = [];
    const work = [];
    try {
      for (const presented of [`sls_${id}_${wrong}`, `sls_${unknownId}_${wrong}`]) {
        digest.mockClear();
        const refused = await h.services.apiKeys
          .authenticate(presented, 'withdrawals', { ip: null, method: 'POST', path: '/api/v1/withdrawals/check' })
          .catch((e: unknown) => e);
        work.push(digest.mock.calls.filter(([, purpose]) => purpose.startsWith('api-key:')).length);
        const error = refused as { status: number; code: string; params: object };
        answers.push([error.status, error.code, error.params]);
      }
    } finally {
      digest.mockRestore();
    }
    expect(work).toEqual([1, 1]);
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[0]!.slice(0, 2)).toEqual([401, 'API_KEY_INVALID']);
  });

  describe('X7, A6: an API key never sets the equity of a staff member’s account', () => {
    it.each(['client_services', 'compliance', 'admin'] as Role[])(
      'X7, A6: a key of the accounts scope is refused 403 STAFF_TARGET_FORBIDDEN on a %s account, and on a client account of that person; audited, nothing changed',
      async (role) => {
        const staff = await createUser(h.services, { role, equityUsd: 10 });
        const ownClientAccount = await secondUsernameOf(staff);
        for (const target of [staff, ownClientAccount]) {
          const refused = await setEquity(target.accountNumber, 5_000_000);
          expect([target.username, refused.status, refused.body.error?.code]).toEqual([target.username, 403, 'STAFF_TARGET_FORBIDDEN']);
          expect(refused.body.error.message).toBe("An API key does not act on a staff member's account: an administrator does it, in the console or with sls.");
          expect((await h.services.users.account(target.accountId)).equityUsd).toBe(10);
          const audited = (await h.services.audit.list({ type: 'account.equity_refused', limit: 200 })).find((e) => e.data.account === target.accountNumber);
          expect(audited).toMatchObject({ actor: `apikey:${keyId}`, data: { account: target.accountNumber, reason: 'staff' } });
        }
        expect(
          (await h.services.audit.list({ type: 'account.equity_changed', limit: 500 })).filter(
            (e) => e.actor === `apikey:${keyId}` && e.data.account === staff.accountNumber,
          ),
        ).toEqual([]);
      },
    );

    it('X7, A6: a staff username joined to a client’s account makes it a staff account for the key', async () => {
      const client = await createUser(h.services, { equityUsd: 10 });
      const colleague = await h.services.users.create(
        { username: uniqueUsername('agent'), password: PASSWORD, accountNumber: client.accountNumber, entityId: client.entityId, role: 'client_services' },
        'test',
      );
      expect(colleague.accountId).toBe(client.accountId);
      const refused = await setEquity(client.accountNumber, 3_000_000);
      expect([refused.status, refused.body.error?.code]).toEqual([403, 'STAFF_TARGET_FORBIDDEN']);
      expect((await h.services.users.account(client.accountId)).equityUsd).toBe(10);
    });

    it('A6: a client’s account is still set by the key (audited as the key)', async () => {
      const client = await createUser(h.services, { equityUsd: 10 });
      const done = await setEquity(client.accountNumber, 1_500_000);
      expect([done.status, done.body.equityUsd]).toEqual([200, 1_500_000]);
      const entry = (await h.services.audit.list({ type: 'account.equity_changed', limit: 100 })).find((e) => e.data.account === client.accountNumber);
      expect(entry?.actor).toBe(`apikey:${keyId}`);
    });
  });

  describe('I3: a key revoked while its request is under way writes nothing (the revocation put in the gap by a hook)', () => {
    /** The next use of KEY is revoked just after its check, before the route writes: as `sls apikey revoke` on another process. */
    function revokeAfterCheck(id: string): { fired: () => boolean } {
      const keys = h.services.apiKeys;
      const original = keys.authenticate.bind(keys);
      let fired = false;
      keys.authenticate = async (...args) => {
        const checked = await original(...args);
        if (!fired && checked.id === id) {
          fired = true;
          Reflect.deleteProperty(keys, 'authenticate');
          await keys.revoke(id, 'test');
        }
        return checked;
      };
      return { fired: () => fired };
    }

    it('I3, W3: a withdrawal recorded with a key revoked after its check is refused 401 API_KEY_REVOKED and not recorded; audited', async () => {
      const client = await createUser(h.services);
      const created = await h.services.apiKeys.create({ name: 'payments', scopes: ['withdrawals'] }, 'test');
      const hook = revokeAfterCheck(created.apiKey.id);
      const res = await send(h.app, 'POST', '/api/v1/withdrawals', bearer(created.key), {
        account: client.accountNumber,
        amount: '100',
        currency: 'USD',
        reference: 'WD-REVOKED-1',
      });
      expect(hook.fired()).toBe(true);
      expect([res.status, res.body.error?.code]).toEqual([401, 'API_KEY_REVOKED']);
      const rows = await h.services.store.db.selectFrom('withdrawals').select('id').where('api_key_id', '=', created.apiKey.id).execute();
      expect(rows).toEqual([]);
      const refused = (await h.services.audit.list({ type: 'apikey.refused', limit: 100 })).find((e) => e.data.keyId === created.apiKey.id);
      expect(refused?.data).toMatchObject({ reason: 'revoked_in_flight', scope: 'withdrawals' });
    });

    it('I3, A6: an equity set with a key revoked after its check is refused 401 API_KEY_REVOKED and not changed; audited', async () => {
      const client = await createUser(h.services, { equityUsd: 10 });
      const created = await h.services.apiKeys.create({ name: 'accounts', scopes: ['accounts'] }, 'test');
      const hook = revokeAfterCheck(created.apiKey.id);
      const res = await send(h.app, 'PUT', `/api/v1/admin/accounts/${client.accountNumber}/equity`, bearer(created.key), { equityUsd: 2_000_000 });
      expect(hook.fired()).toBe(true);
      expect([res.status, res.body.error?.code]).toEqual([401, 'API_KEY_REVOKED']);
      expect((await h.services.users.account(client.accountId)).equityUsd).toBe(10);
      const refused = (await h.services.audit.list({ type: 'apikey.refused', limit: 100 })).find((e) => e.data.keyId === created.apiKey.id);
      expect(refused?.data).toMatchObject({ reason: 'revoked_in_flight', scope: 'accounts' });
    });
  });
});
