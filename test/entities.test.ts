/**
 * Entities and accounts (A1, A6): an individual or organisation with
 * identification data — validated, sealed at rest, shown masked — holding
 * several usernames in one account or across accounts; the comparison of
 * identities a device sharing relies on (H1a); client services seeing and
 * correcting identification data in the console, with the document seen
 * (audited, staff on staff, X7); account equity set by staff in the console
 * and by an admin through the admin API; the `sls` commands.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import type { Role } from '../src/store/schema.js';
import { DATABASES, PASSWORD, cardAnswer, createUserWithCard, startHarness, uniqueUsername, type Harness } from './support/harness.js';
import { answer, bearer, startLogin, type ApiResponse, type Json } from './support/api.js';
import { Agent, alertBox, csrfOf, form, forms, textById, type Page } from './support/html.js';
import { stepUpStaff } from './support/staff.js';
import { cliEnv, sls, slsInProcess } from './support/cli.js';

const PASSPORT = { dateOfBirth: '1980-04-12', citizenship: 'fr', residenceCountry: 'HK', documentType: 'passport', documentNumber: '12 AB 34567' };
const US_PERSON = { dateOfBirth: '1975-01-31', citizenship: 'US', residenceCountry: 'US', ssn: '123-45-6789' };

async function put(h: Harness, url: string, payload: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  const raw = await h.app.inject({ method: 'PUT', url, payload: payload as object, headers: { 'content-type': 'application/json', ...headers } });
  const body = raw.body ? (raw.json() as Json) : {};
  return { status: raw.statusCode, body, headers: raw.headers, raw };
}

describe.each(DATABASES)('entities and accounts (A1, A6) on %s', (db) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(db);
  });
  afterAll(async () => h.close());

  const newEntity = (identification: Record<string, string>, kind = 'individual', name = 'Alice Martin') =>
    h.services.entities.create({ kind, name, identification }, 'test');

  async function userOf(entityId: string, accountNumber?: string): Promise<User> {
    return h.services.users.create({ username: uniqueUsername(), password: PASSWORD, entityId, ...(accountNumber ? { accountNumber } : {}) }, 'test');
  }

  async function refusal(promise: Promise<unknown>): Promise<{ code: string; params: Record<string, unknown> }> {
    const error = (await promise.then(
      () => null,
      (e: unknown) => e,
    )) as { code: string; params: Record<string, unknown> } | null;
    expect(error, 'expected a refusal').not.toBeNull();
    return { code: error!.code, params: error!.params };
  }

  describe('A1: identification data', () => {
    it('A1: an individual with a passport: stored sealed (no value readable in the row), canonical, and shown masked (the year of birth, the last 4 characters)', async () => {
      const entity = await newEntity(PASSPORT);
      expect(entity.identification).toEqual({
        dateOfBirth: '1980-04-12',
        citizenship: 'FR',
        residenceCountry: 'HK',
        documentType: 'passport',
        documentNumber: '12AB34567',
      });
      const row = await h.services.store.db.selectFrom('entities').selectAll().where('id', '=', entity.id).executeTakeFirstOrThrow();
      // as the plain JSON would hold them, quoted: sealed text (base64url) never has a quote, but may hold "HK" by chance
      for (const value of ['12AB34567', '1980-04-12', 'passport', 'HK']) expect(row.identification_enc).not.toContain(`"${value}"`);
      expect(row.identification_enc).not.toContain('12AB34567');
      expect(row.identification_digest).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const view = await h.services.entities.view(entity.id);
      expect(view.masked).toBe(true);
      expect(view.identification).toEqual({
        dateOfBirth: '1980-**-**',
        citizenship: 'FR',
        residenceCountry: 'HK',
        documentType: 'passport',
        documentNumber: '****4567',
        ssn: null,
      });
      // the seal is bound to the entity: moved to another row, it does not open
      const other = await newEntity(US_PERSON);
      await h.services.store.db.updateTable('entities').set({ identification_enc: row.identification_enc }).where('id', '=', other.id).execute();
      await expect(h.services.entities.get(other.id)).rejects.toThrow();
    });

    it('A1: a US citizen or resident gives the SSN (masked ***-**-6789); others may not; dates, countries and documents are checked, each with its code and message', async () => {
      const us = await newEntity(US_PERSON);
      expect((await h.services.entities.view(us.id)).identification).toMatchObject({ ssn: '***-**-6789', documentNumber: null });
      // a resident of the US who is not a citizen also gives the SSN
      expect((await newEntity({ ...US_PERSON, citizenship: 'CA', ssn: '123 45 6789' })).identification.ssn).toBe('123-45-6789');
      const cases: [Record<string, string>, string, string][] = [
        [{ ...PASSPORT, ssn: '123-45-6789' }, 'ssn', 'ssn_not_us'],
        [{ ...US_PERSON, ssn: '' }, 'ssn', 'ssn_required'],
        [{ ...US_PERSON, ssn: '666-12-3456' }, 'ssn', 'ssn'],
        [{ ...US_PERSON, ssn: '123-00-6789' }, 'ssn', 'ssn'],
        [{ ...US_PERSON, ssn: '12345678' }, 'ssn', 'ssn'],
        [{ ...PASSPORT, citizenship: 'XX' }, 'citizenship', 'country'],
        [{ ...PASSPORT, residenceCountry: 'UK' }, 'residenceCountry', 'country'],
        [{ ...PASSPORT, dateOfBirth: '1990-02-30' }, 'dateOfBirth', 'date'],
        [{ ...PASSPORT, dateOfBirth: '12/04/1980' }, 'dateOfBirth', 'date'],
        [{ ...PASSPORT, dateOfBirth: '2999-01-01' }, 'dateOfBirth', 'date_future'],
        [{ ...PASSPORT, dateOfBirth: '' }, 'dateOfBirth', 'required'],
        [{ ...PASSPORT, documentType: 'library_card' }, 'documentType', 'document_type_individual'],
        [{ ...PASSPORT, documentNumber: '' }, 'documentNumber', 'document'],
        [{ ...PASSPORT, documentNumber: 'AB!' }, 'documentNumber', 'document_number'],
        [{ ...PASSPORT, documentType: '', documentNumber: '' }, 'documentType', 'document_required'],
      ];
      for (const [identification, field, reason] of cases) {
        const refused = await refusal(newEntity(identification));
        expect([identification, refused.code, refused.params]).toEqual([identification, 'IDENTIFICATION_INVALID', { field, reason }]);
      }
      expect((await refusal(h.services.entities.create({ kind: 'trust', name: 'X', identification: PASSPORT }, 'test'))).params.reason).toBe('kind');
    });

    it('A1: an organisation gives its country of registration and a registration document, never an SSN', async () => {
      const org = await newEntity(
        { residenceCountry: 'GB', documentType: 'company_registration', documentNumber: '01234567' },
        'organisation',
        'Martin & Co Ltd',
      );
      expect(org.kind).toBe('organization');
      expect((await h.services.entities.view(org.id)).identification).toMatchObject({ documentNumber: '****4567', dateOfBirth: null });
      expect((await refusal(newEntity({ residenceCountry: 'US', ssn: '123-45-6789' }, 'organization'))).params).toEqual({
        field: 'ssn',
        reason: 'ssn_individual',
      });
      expect((await refusal(newEntity({ residenceCountry: 'GB', documentType: 'passport', documentNumber: '1234' }, 'organization'))).params.reason).toBe(
        'document_type_organization',
      );
    });
  });

  describe('A1: usernames within one account and across accounts', () => {
    it('A1/A2: an entity holds usernames in one account and in several; the first user of an account is its primary user; a username joins an existing account', async () => {
      const entity = await newEntity(PASSPORT);
      const first = await userOf(entity.id);
      const account = await h.services.users.account(first.accountId);
      expect([account.entityId, account.primaryUserId, first.canChangeSecurity]).toEqual([entity.id, first.id, true]);
      const second = await userOf(entity.id, first.accountNumber);
      expect([second.accountId, second.entityId, second.canChangeSecurity]).toEqual([first.accountId, entity.id, false]);
      const other = await h.services.users.createAccount({ entityId: entity.id, equityUsd: 1500 }, 'test');
      expect(other.primaryUserId).toBeNull();
      const third = await userOf(entity.id, other.accountNumber);
      expect((await h.services.users.account(other.id)).primaryUserId).toBe(third.id);
      const holdings = await h.services.entities.holdings(entity.id);
      expect(holdings).toEqual(
        expect.arrayContaining([
          { accountNumber: first.accountNumber, usernames: [first.username, second.username].sort() },
          { accountNumber: other.accountNumber, usernames: [third.username] },
        ]),
      );
      // an account of another entity is not joined under this one, nor an unknown entity used
      const stranger = await newEntity(US_PERSON);
      expect((await refusal(userOf(stranger.id, first.accountNumber))).code).toBe('ACCOUNT_ENTITY_MISMATCH');
      expect((await refusal(userOf('ent_nosuchentity'))).code).toBe('ENTITY_NOT_FOUND');
      expect((await refusal(h.services.users.createAccount({ entityId: entity.id, accountNumber: first.accountNumber }, 'test'))).code).toBe('ACCOUNT_TAKEN');
      const audit = await h.services.audit.list({ type: 'account.created', limit: 50 });
      expect(audit.find((e) => e.data.account === other.accountNumber)?.data).toMatchObject({ entityId: entity.id, equityUsd: 1500 });
    });

    it('H1a/A1: sameIdentity: the same entity, or entities with identical identification data however typed; different data, or none at all, is not the same', async () => {
      const entity = await newEntity(PASSPORT);
      const [a, b] = [await userOf(entity.id), await userOf(entity.id)];
      expect(await h.services.entities.sameIdentity(a.id, b.id)).toBe(true);
      const twin = await newEntity({ ...PASSPORT, citizenship: 'FR', residenceCountry: 'hk', documentNumber: '12ab-34567' }, 'individual', 'A. Martin');
      const c = await userOf(twin.id);
      expect(await h.services.entities.sameIdentity(a.id, c.id)).toBe(true);
      const sibling = await newEntity({ ...PASSPORT, dateOfBirth: '1982-07-01', documentNumber: '99XY00001' });
      const d = await userOf(sibling.id);
      expect(await h.services.entities.sameIdentity(a.id, d.id)).toBe(false);
      // two users created without identification data (sls user create alone) are two people
      const [e, f] = [
        await h.services.users.create({ username: uniqueUsername(), password: PASSWORD }, 'test'),
        await h.services.users.create({ username: uniqueUsername(), password: PASSWORD }, 'test'),
      ];
      expect(await h.services.entities.sameIdentity(e.id, f.id)).toBe(false);
      expect(await h.services.entities.sameIdentity(e.id, e.id)).toBe(true);
      expect((await refusal(h.services.entities.sameIdentity(a.id, 'usr_nosuchuser'))).code).toBe('USER_NOT_FOUND');
    });
  });

  describe('A1, A6: the help desk console', () => {
    async function signedIn(role: Role): Promise<{ agent: Agent; user: User; card: CardFile; token: string }> {
      const { user, card } = await createUserWithCard(h.services, '1234', { role });
      const agent = new Agent(h.app);
      const login = await agent.get('/login');
      const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
      const challenge = await agent.get(started.location!);
      const done = await agent.submit(challenge, started.location!, { response: cardAnswer(card, textById(challenge.html, 'challenge-code')!) });
      expect(done.location).toBe(role === 'client' ? '/account' : '/helpdesk'); // issue 16: staff land on the console
      const start = await startLogin(h.app, user.username);
      const api = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
      // V1, X7: staff act after a step-up, in the console and in the API (decision 0042: with the token it gave)
      await stepUpStaff(h.app, agent, card);
      const token = await stepUpStaff(h.app, api.body.session.token as string, card);
      return { agent, user, card, token };
    }

    const userPath = (u: User) => `/helpdesk/users/${u.username}`;

    it('A1/X1: staff see identification data masked; in full on request (audited); a correction needs the document seen and its reference, and is audited with the fields, never their values', async () => {
      const staff = await signedIn('client_services');
      const entity = await newEntity(PASSPORT);
      const caller = await userOf(entity.id);
      const page = await staff.agent.get(userPath(caller));
      expect(page.status).toBe(200);
      expect(textById(page.html, 'identification-documentNumber')).toBe('****4567');
      expect(textById(page.html, 'identification-dateOfBirth')).toBe('1980-**-**');
      expect(page.html).not.toContain('12AB34567');
      expect(textById(page.html, 'equity-current')).toBe(`Equity of account ${caller.accountNumber}: USD 0.00`);

      const revealed = await staff.agent.submit(page, `${userPath(caller)}/identification/reveal`);
      expect(revealed.status).toBe(200);
      expect(textById(revealed.html, 'identification-documentNumber')).toBe('12AB34567');
      expect(textById(revealed.html, 'identification-masked')).toBe('Shown in full: this view is recorded in the audit log.');
      const viewed = (await h.services.audit.list({ userId: caller.id, type: 'entity.identification_viewed', limit: 5 }))[0];
      expect(viewed?.actor).toBe(`staff:${staff.user.id}`);

      // no document seen: refused, nothing changed
      const unfounded = await staff.agent.submit(page, `${userPath(caller)}/identification`, {
        documentNumber: '77CD12345',
        basisDocument: '',
        basisReference: '',
      });
      expect([unfounded.status, alertBox(unfounded.html)?.code]).toEqual([400, 'IDENTIFICATION_INVALID']);
      expect(alertBox(unfounded.html)?.text).toContain('Choose the document the correction is based on.');
      const noReference = await staff.agent.submit(page, `${userPath(caller)}/identification`, { documentNumber: '77CD12345', basisDocument: 'passport' });
      expect(alertBox(noReference.html)?.text).toContain('Enter the reference of the document');
      const invalid = await staff.agent.submit(page, `${userPath(caller)}/identification`, {
        residenceCountry: 'ZZ',
        basisDocument: 'proof_of_address',
        basisReference: 'utility bill 2026-11',
      });
      expect([invalid.status, alertBox(invalid.html)?.code]).toEqual([400, 'IDENTIFICATION_INVALID']);
      expect((await h.services.entities.get(entity.id)).identification.documentNumber).toBe('12AB34567');

      const corrected = await staff.agent.submit(page, `${userPath(caller)}/identification`, {
        documentNumber: '77cd 12345',
        residenceCountry: 'SG',
        basisDocument: 'passport',
        basisReference: 'passport 77CD12345 seen on video call',
      });
      expect(corrected.status, corrected.html).toBe(303);
      expect(corrected.location).toBe(`${userPath(caller)}?done=identificationCorrected`);
      const after = await staff.agent.get(corrected.location!);
      expect(textById(after.html, 'notice')).toBe(`The identification data of ${caller.username}'s entity is corrected.`);
      expect(textById(after.html, 'identification-documentNumber')).toBe('****2345');
      expect((await h.services.entities.get(entity.id)).identification).toMatchObject({ documentNumber: '77CD12345', residenceCountry: 'SG' });
      const entry = (await h.services.audit.list({ type: 'entity.identification_corrected', limit: 50 })).find((e) => e.data.entityId === entity.id);
      expect(entry?.actor).toBe(`staff:${staff.user.id}`);
      expect(entry?.data).toMatchObject({
        fields: ['residenceCountry', 'documentNumber'],
        basis: { document: 'passport', reference: 'passport 77CD12345 seen on video call' },
      });
      expect(JSON.stringify(entry?.data)).not.toContain('SG');

      // H1a: the corrected data now matches an entity with the same document (the seed's remedy for "Different identification information")
      const twin = await newEntity({ ...PASSPORT, residenceCountry: 'SG', documentNumber: '77CD12345' });
      expect(await h.services.entities.sameIdentity(caller.id, (await userOf(twin.id)).id)).toBe(true);
    });

    it('X7: staff never reveal or correct their own entity or, unless admin, another staff member’s (their pages do not open: forged forms are refused); compliance sees it masked and acts on nothing', async () => {
      const agentStaff = await signedIn('client_services');
      const colleague = await signedIn('client_services');
      const compliance = await signedIn('compliance');
      const basis = { basisDocument: 'passport', basisReference: 'ref 1' };
      const own = await agentStaff.agent.get(userPath(agentStaff.user));
      expect([own.status, alertBox(own.html)?.code, forms(own.html).some((f) => f.attrs.action?.startsWith(userPath(agentStaff.user)))]).toEqual([
        403,
        'STAFF_TARGET_FORBIDDEN',
        false,
      ]);
      const forge = async (path: string, fields: Record<string, string> = {}) =>
        agentStaff.agent.post(path, { _csrf: csrfOf(form((await agentStaff.agent.get('/account')).html, '/logout')), ...fields });
      const self = await forge(`${userPath(agentStaff.user)}/identification`, { ...basis, residenceCountry: 'FR' });
      expect([self.status, alertBox(self.html)?.code]).toEqual([403, 'STAFF_TARGET_FORBIDDEN']);
      const ownEquity = await forge(`${userPath(agentStaff.user)}/equity`, { equityUsd: '5000000' });
      expect([ownEquity.status, alertBox(ownEquity.html)?.code]).toEqual([403, 'STAFF_TARGET_FORBIDDEN']);
      expect((await agentStaff.agent.get(userPath(colleague.user))).status).toBe(403);
      const reveal = await forge(`${userPath(colleague.user)}/identification/reveal`);
      expect([reveal.status, alertBox(reveal.html)?.code]).toEqual([403, 'STAFF_TARGET_FORBIDDEN']);
      // a second username of a staff member's entity does not open it either
      const shared = await userOf(colleague.user.entityId);
      expect((await agentStaff.agent.get(userPath(shared))).status).toBe(403);
      const viaShared = await forge(`${userPath(shared)}/identification`, { ...basis, residenceCountry: 'FR' });
      expect(alertBox(viaShared.html)?.code).toBe('STAFF_TARGET_FORBIDDEN');

      const caller = await userOf((await newEntity(PASSPORT)).id);
      const seen = await compliance.agent.get(userPath(caller));
      expect(textById(seen.html, 'identification-documentNumber')).toBe('****4567');
      expect(seen.html).not.toContain(`${userPath(caller)}/identification`);
      const token = csrfOf(form((await compliance.agent.get('/account')).html, '/logout'));
      const refused = await compliance.agent.post(`${userPath(caller)}/equity`, { _csrf: token, equityUsd: '10' });
      expect(alertBox(refused.html)?.code).toBe('FORBIDDEN_ROLE');
      const refusals = await h.services.audit.list({ type: 'helpdesk.refused', limit: 50 });
      expect(refusals.map((e) => e.data.action)).toEqual(expect.arrayContaining(['correct_identification', 'set_equity', 'view_identification']));
    });

    it('A6/C1: staff set the equity in the console (audited); the account may then request a DSC+; a malformed amount is refused', async () => {
      const staff = await signedIn('client_services');
      const caller = await userOf((await newEntity(PASSPORT)).id);
      const page = await staff.agent.get(userPath(caller));
      const bad = await staff.agent.submit(page, `${userPath(caller)}/equity`, { equityUsd: '-5' });
      expect([bad.status, alertBox(bad.html)?.text]).toEqual([400, 'Enter the equity in USD, such as 1500000 or 1500000.50.']);
      expect((await h.services.dscPlusRequests.eligibility(caller.id)).eligible).toBe(false);
      const set = await staff.agent.submit(page, `${userPath(caller)}/equity`, { equityUsd: '1,500,000.50' });
      expect(set.location).toBe(`${userPath(caller)}?done=equitySet`);
      const after: Page = await staff.agent.get(set.location!);
      expect(textById(after.html, 'equity-current')).toBe(`Equity of account ${caller.accountNumber}: USD 1,500,000.50`);
      expect(await h.services.dscPlusRequests.eligibility(caller.id)).toMatchObject({ eligible: true, equityUsd: 1500000.5 });
      const entry = (await h.services.audit.list({ type: 'account.equity_changed', limit: 50 })).find((e) => e.data.account === caller.accountNumber);
      expect([entry?.actor, entry?.data.equityUsd]).toEqual([`staff:${staff.user.id}`, 1500000.5]);
    });

    it('A6 (decision 0034): an admin sets an account’s equity through the admin API with the Bearer token of their session (client services too, as in the console); compliance, clients and strangers are refused; bad input is a 4xx', async () => {
      const admin = await signedIn('admin');
      const agentStaff = await signedIn('compliance');
      const caller = await userOf((await newEntity(PASSPORT)).id);
      const url = `/api/v1/admin/accounts/${caller.accountNumber}/equity`;
      const done = await put(h, url, { equityUsd: 2500000 }, bearer(admin.token));
      expect([done.status, done.body]).toEqual([200, { account: caller.accountNumber, equityUsd: 2500000, dscPlusEligible: true }]);
      expect((await h.services.users.account(caller.accountId)).equityUsd).toBe(2500000);
      const entry = (await h.services.audit.list({ type: 'account.equity_changed', limit: 50 })).find((e) => e.data.account === caller.accountNumber);
      expect(entry?.actor).toBe(`staff:${admin.user.id}`);

      expect((await put(h, url, { equityUsd: 1 })).status).toBe(401);
      const staffRefused = await put(h, url, { equityUsd: 1 }, bearer(agentStaff.token));
      expect([staffRefused.status, staffRefused.body.error.code]).toEqual([403, 'FORBIDDEN_ROLE']);
      const clientRefused = await put(h, url, { equityUsd: 1 }, bearer(admin.token.replace(/./, (c) => (c === 'a' ? 'b' : 'a'))));
      expect(clientRefused.status).toBe(401);
      for (const [payload, status, code] of [
        [{ equityUsd: -1 }, 400, 'VALIDATION_ERROR'],
        [{ equityUsd: 1.001 }, 400, 'VALIDATION_ERROR'],
        [{ equityUsd: '100' }, 400, 'VALIDATION_ERROR'],
        [{}, 400, 'VALIDATION_ERROR'],
      ] as const) {
        const refused = await put(h, url, payload, bearer(admin.token));
        expect([payload, refused.status, refused.body.error.code]).toEqual([payload, status, code]);
      }
      const unknown = await put(h, '/api/v1/admin/accounts/U0000000/equity', { equityUsd: 5 }, bearer(admin.token));
      expect([unknown.status, unknown.body.error.code]).toEqual([404, 'ACCOUNT_NOT_FOUND']);
      const malformed = await put(h, '/api/v1/admin/accounts/not-a-number/equity', { equityUsd: 5 }, bearer(admin.token));
      expect([malformed.status, malformed.body.error.code]).toEqual([400, 'VALIDATION_ERROR']);
      expect((await h.services.users.account(caller.accountId)).equityUsd).toBe(2500000);
    });

    it('A6: an integrator sets the equity with an API key of the accounts scope (audited as the key); a key of another scope, or revoked, is refused', async () => {
      const caller = await userOf((await newEntity(PASSPORT)).id);
      const url = `/api/v1/admin/accounts/${caller.accountNumber}/equity`;
      const accounts = await h.services.apiKeys.create({ name: 'back office accounts', scopes: ['accounts'] }, 'test');
      const done = await put(h, url, { equityUsd: 1200000 }, bearer(accounts.key));
      expect([done.status, done.body]).toEqual([200, { account: caller.accountNumber, equityUsd: 1200000, dscPlusEligible: true }]);
      const entry = (await h.services.audit.list({ type: 'account.equity_changed', limit: 50 })).find((e) => e.data.account === caller.accountNumber);
      expect(entry?.actor).toBe(`apikey:${accounts.apiKey.id}`);
      const withdrawalsOnly = await h.services.apiKeys.create({ name: 'payments only', scopes: ['withdrawals'] }, 'test');
      const wrongScope = await put(h, url, { equityUsd: 1 }, bearer(withdrawalsOnly.key));
      expect([wrongScope.status, wrongScope.body.error.code]).toEqual([403, 'API_KEY_SCOPE']);
      await h.services.apiKeys.revoke(accounts.apiKey.id, 'test');
      const revoked = await put(h, url, { equityUsd: 1 }, bearer(accounts.key));
      expect([revoked.status, revoked.body.error.code]).toEqual([401, 'API_KEY_REVOKED']);
      expect((await h.services.users.account(caller.accountId)).equityUsd).toBe(1200000);
    });
  });

  it('A1/A6: sls entity create (prints the id; identification masked), entity show, account create --entity, user create --entity; bad input exits non-zero with the reason', async () => {
    const env = cliEnv(h.database);
    // the entity by a real `sls` process; the other commands in this process (slsInProcess), a process costing a start of Node each
    const created = await sls(
      [
        'entity',
        'create',
        '--kind',
        'individual',
        '--name',
        'Bob Lee',
        '--dob',
        '1969-12-01',
        '--citizenship',
        'US',
        '--residence',
        'US',
        '--ssn',
        '234-56-7890',
      ],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    const entityId = created.stdout.trim();
    expect(entityId).toMatch(/^ent_[a-z2-7]+$/);
    expect(created.stderr).toContain('***-**-7890');
    expect(created.stderr).not.toContain('234-56-7890');

    const account = await slsInProcess(['account', 'create', '--entity', entityId, '--equity', '1200000'], env);
    expect(account.code, account.stderr).toBe(0);
    const accountNumber = account.stdout.trim();
    const username = uniqueUsername('bob');
    const user = await slsInProcess(['user', 'create', '--username', username, '--password', PASSWORD, '--account', accountNumber, '--entity', entityId], env);
    expect(user.code, user.stderr).toBe(0);
    const second = uniqueUsername('bob');
    expect((await slsInProcess(['user', 'create', '--username', second, '--password', PASSWORD, '--entity', entityId], env)).code).toBe(0);
    const created2 = await h.services.users.getByUsername(second);
    expect(created2.entityId).toBe(entityId);
    expect(created2.accountNumber).not.toBe(accountNumber);

    const shown = await slsInProcess(['entity', 'show', entityId], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('ssn                ***-**-7890');
    expect(shown.stdout).toContain('dateOfBirth        1969-**-**');
    expect(shown.stdout).toContain(`account            ${accountNumber}  ${username}`);
    expect(shown.stdout).not.toContain('234-56-7890');
    const json = JSON.parse((await slsInProcess(['entity', 'show', entityId, '--json'], env)).stdout) as Json;
    expect(json.accounts).toEqual(
      expect.arrayContaining([
        { accountNumber, usernames: [username] },
        { accountNumber: created2.accountNumber, usernames: [second] },
      ]),
    );
    expect((await h.services.users.getByUsername(username)).canChangeSecurity).toBe(true);

    const bad = await slsInProcess(
      ['entity', 'create', '--kind', 'individual', '--name', 'X', '--dob', '1969-13-01', '--citizenship', 'FR', '--residence', 'FR'],
      env,
    );
    expect([bad.code, bad.stderr]).toEqual([1, 'sls: The date of birth must be a real date from 1900 on, written YYYY-MM-DD.\n']);
    const unknown = await slsInProcess(['entity', 'show', 'ent_nosuchentity'], env);
    expect([unknown.code, unknown.stderr]).toEqual([1, 'sls: No entity ent_nosuchentity.\n']);
  }, 120_000);
});
