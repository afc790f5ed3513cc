/**
 * Attacks with an integrator's API key (I3, A6, X7), on every database: a
 * key is a machine of the back office. It sets the equity of clients'
 * accounts (A6), but never touches a staff member's account — a staff
 * username, or a client username of a staff member's entity (decision 0010,
 * "staff on staff by entity"): only an admin, in the console or with `sls`,
 * acts on staff. Each refusal is a stable code and is audited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
