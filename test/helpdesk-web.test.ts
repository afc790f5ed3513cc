/**
 * The help desk console (T1–T5, L3, A5, X1–X3) through the real HTTP stack
 * (Fastify inject): staff log in through the ordinary login pages with their
 * own card, then search a caller, record the identity verification, issue
 * and revoke a temporary passcode, reset a forgotten password and lift a
 * lock with the console's own forms; the HTML that comes back is checked.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DAY, MINUTE } from '../src/clock.js';
import type { CardFile } from '../src/devices/devices.js';
import { parsePskc, type PskcKey } from '../src/devices/dscplus/pskc.js';
import type { Device } from '../src/devices/types.js';
import type { Session } from '../src/sessions/sessions.js';
import type { User } from '../src/identity/users.js';
import type { Role } from '../src/store/schema.js';
import { PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, claimOf, get, postJson, startLogin } from './support/api.js';
import { stepUpStaff } from './support/staff.js';
import {
  Agent,
  alertBox,
  byId,
  csrfOf,
  elements,
  expectEveryControlLabelled,
  form,
  forms,
  h1s,
  hasForm,
  hiddenValue,
  htmlLang,
  rows,
  text,
  textById,
  type Page,
} from './support/html.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness('sqlite');
});
afterAll(async () => {
  await h.close();
});

// ---------------------------------------------------------------------------

interface Person {
  agent: Agent;
  user: User;
  card: CardFile;
}

/** The whole login through the login pages with the card, then a step-up with it (V1, X7); ends signed in, ready to act. */
async function logIn(agent: Agent, user: User, card: CardFile, query = ''): Promise<void> {
  const login = await agent.get(`/login${query}`);
  const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
  expect(started.status, started.html).toBe(303);
  const challenge = await agent.get(started.location!);
  const question = textById(challenge.html, 'challenge-code')!;
  const done = await agent.submit(challenge, started.location!, { response: cardAnswer(card, question) });
  // issue 16: staff land on the help desk console, clients on their account page
  expect(done.location).toBe(user.role === 'client' ? '/account' : '/helpdesk');
  // V1, X7: staff act after a step-up with their own device
  await stepUpStaff(h.app, agent, card);
}

/** A new person of that role, signed in through the pages. */
async function signedIn(role: Role = 'client_services', query = ''): Promise<Person> {
  const { user, card } = await createUserWithCard(h.services, '1234', { role });
  const agent = new Agent(h.app);
  await logIn(agent, user, card, query);
  return { agent, user, card };
}

const userPath = (u: User): string => `/helpdesk/users/${u.username}`;

/** Records a verification through the form; returns the verification page. */
async function verify(agent: Agent, caller: User, method = 'security_questions', notes = 'date of birth, last deposit'): Promise<{ page: Page; id: string }> {
  const userPage = await agent.get(userPath(caller));
  expect(userPage.status).toBe(200);
  const done = await agent.submit(userPage, `${userPath(caller)}/verifications`, { method, notes });
  expect(done.status, done.html).toBe(303);
  const match = new RegExp(`^${userPath(caller)}/verifications/(ver_[a-z2-7]+)$`).exec(done.location ?? '');
  expect(match, done.location).not.toBeNull();
  const page = await agent.get(done.location!);
  expect(page.status).toBe(200);
  return { page, id: match![1]! };
}

/** Issues a passcode through the forms; returns the passcode read off the result page. */
async function issue(agent: Agent, caller: User, deviceStatus: 'suspended' | 'lost' = 'suspended'): Promise<{ passcode: string; page: Page }> {
  const { page: verified } = await verify(agent, caller);
  const issued = await agent.submit(verified, `${userPath(caller)}/temporary-passcode`, { deviceStatus });
  expect(issued.status, issued.html).toBe(303);
  expect(issued.location).toBe(`${userPath(caller)}/passcode`);
  const page = await agent.get(issued.location!);
  const passcode = textById(page.html, 'passcode')!;
  expect(passcode).toMatch(/^[A-Z2-9]{8}$/);
  return { passcode, page };
}

async function auditOf(user: User) {
  return h.services.audit.list({ username: user.username, limit: 100 });
}

// ---------------------------------------------------------------------------

/** A1, A6: the identification and equity forms that end every user page for staff who may act (labels, by language). */
const IDENTIFICATION_LABELS = {
  en: [
    'Name',
    'Date of birth',
    'Citizenship',
    'Country of legal residence',
    'Identification document type',
    'Identification document number',
    'Social Security Number',
    'Document seen',
    'Reference of the document (number, ticket)',
    'New equity (USD)',
  ],
  fr: [
    'Nom',
    'Date de naissance',
    'Nationalité',
    'Pays de résidence légale',
    "Type de pièce d'identité",
    "Numéro de la pièce d'identité",
    'Numéro de sécurité sociale (SSN)',
    'Document vu',
    'Référence du document (numéro, dossier)',
    'Nouvelle valeur (USD)',
  ],
  'zh-Hant': [
    '名稱',
    '出生日期',
    '國籍',
    '合法居住國家',
    '身份證明文件類型',
    '身份證明文件號碼',
    '社會安全號碼（SSN）',
    '已查看的文件',
    '文件參考（號碼、個案編號）',
    '新資產淨值（美元）',
  ],
} as const;
const identificationForms = (base: string): string[] => [`${base}/identification/reveal`, `${base}/identification`, `${base}/equity`];

describe('who may use the console (T1, A5)', () => {
  it('T1: without a session every console page and form sends the browser to /login', async () => {
    const agent = new Agent(h.app);
    const { user } = await createUserWithCard(h.services);
    for (const path of [
      '/helpdesk',
      '/helpdesk?q=abc',
      userPath(user),
      `${userPath(user)}/verifications/ver_x`,
      `${userPath(user)}/passcode`,
      `${userPath(user)}/password`,
    ]) {
      const page = await agent.get(path);
      expect(page.status, path).toBe(303);
      expect(page.location, path).toBe('/login');
    }
    const login = await agent.get('/login');
    const token = csrfOf(form(login.html, '/login'));
    const post = await agent.post(`${userPath(user)}/verifications`, { _csrf: token, method: 'id_document' });
    expect(post.status).toBe(303);
    expect(post.location).toBe('/login');
    const reset = await agent.post(`${userPath(user)}/password-reset`, { _csrf: token, verificationId: 'ver_x' });
    expect(reset.status).toBe(303);
    expect(reset.location).toBe('/login');
    expect((await auditOf(user)).map((e) => e.event)).not.toContain('helpdesk.identity_verified');
  });

  it('T1: a client has no console link and is refused the console with the FORBIDDEN_ROLE error page (403)', async () => {
    const client = await signedIn('client');
    const account = await client.agent.get('/account');
    expect(byId(account.html, 'helpdesk-link')).toBeUndefined();
    for (const path of ['/helpdesk', '/helpdesk?q=a', userPath(client.user)]) {
      const page = await client.agent.get(path);
      expect(page.status, path).toBe(403);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(alertBox(page.html), path).toEqual({ code: 'FORBIDDEN_ROLE', role: 'alert', text: 'Your role does not allow this.' });
    }
    const post = await client.agent.post(`${userPath(client.user)}/verifications`, { _csrf: csrfOf(form(account.html, '/logout')), method: 'id_document' });
    expect(post.status).toBe(403);
    expect(alertBox(post.html)?.code).toBe('FORBIDDEN_ROLE');
    expect((await auditOf(client.user)).map((e) => e.event)).not.toContain('helpdesk.identity_verified');
  });

  it('T1/T3: a session of limited scope is refused (403), even for a client services agent (temporary passcode after 2 days)', async () => {
    // X7: a passcode for a staff account is issued by an admin
    const issuer = await createUserWithCard(h.services, '1234', { role: 'admin' });
    const { user: staff } = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const verification = await h.services.helpDesk.verifyIdentity(issuer.user.id, staff.username, { method: 'id_document' });
    const { passcode } = await h.services.helpDesk.issueTemporaryPasscode(issuer.user.id, staff.username, { verificationId: verification.id });
    h.clock.advance(2 * DAY + MINUTE);
    const start = await startLogin(h.app, staff.username, PASSWORD, 'portal');
    expect(start.body.challenge).toEqual({ type: 'passcode' });
    const done = await answer(h.app, start.body.id, passcode);
    expect(done.status).toBe(200);
    const token = done.body.session.token as string;
    expect((await get(h.app, '/api/v1/session', bearer(token))).body.scope).not.toBe('full');
    const agent = new Agent(h.app);
    agent.jar.set('__Host-sls_session', token);
    const page = await agent.get('/helpdesk');
    expect(page.status).toBe(403);
    expect(alertBox(page.html)?.code).toBe('SCOPE_ONLINE_CARD_ONLY');
  });

  it('T1: compliance may search and look at a user, has no action forms, and a forged action is refused on the page (403 FORBIDDEN_ROLE)', async () => {
    const compliance = await signedIn('compliance');
    const { user: caller } = await createUserWithCard(h.services);
    const account = await compliance.agent.get('/account');
    expect(byId(account.html, 'helpdesk-link')?.attrs.href).toBe('/helpdesk');
    expect(textById(account.html, 'helpdesk-link')).toBe('Help desk console');

    const search = await compliance.agent.get(`/helpdesk?q=${caller.username}`);
    expect(search.status).toBe(200);
    expect(textById(search.html, 'signed-in-as')).toBe(
      `Signed in as ${compliance.user.username} (Compliance). Your role may look up users but not act for them.`,
    );
    expect(rows(search.html, 'results').map((r) => r[0])).toEqual([caller.username]);

    const page = await compliance.agent.get(userPath(caller));
    expect(page.status).toBe(200);
    expect(textById(page.html, 'view-only')).toBe('Your role may look up users but not act for them.');
    expect(forms(page.html)).toEqual([]);
    expect(rows(page.html, 'devices')).toEqual([['Digital Security Card+ (DSC+)', expect.stringMatching(/^DSC\d{7}$/), 'active', '', '']]);

    const forged = await compliance.agent.post(`${userPath(caller)}/verifications`, { _csrf: csrfOf(form(account.html, '/logout')), method: 'id_document' });
    expect(forged.status).toBe(403);
    expect(alertBox(forged.html)).toMatchObject({ code: 'FORBIDDEN_ROLE', role: 'alert' });
    expect(h1s(forged.html)).toEqual([`User ${caller.username}`]);
    expect((await auditOf(caller)).map((e) => e.event)).not.toContain('helpdesk.identity_verified');
  });
});

describe('search (T1)', () => {
  it('T1: staff find users by user name prefix or account number; each result links to the user page; no match says so', async () => {
    const staff = await signedIn();
    const account = await staff.agent.get('/account');
    const console = await staff.agent.get(byId(account.html, 'helpdesk-link')!.attrs.href!);
    expect(console.status).toBe(200);
    expect(h1s(console.html)).toEqual(['Help desk console']);
    expect(expectEveryControlLabelled(console.html)).toEqual(['User name or account number']);
    expect(form(console.html, '/helpdesk').attrs.method).toBe('get');
    expect(byId(console.html, 'results')).toBeUndefined();

    const { user: caller } = await createUserWithCard(h.services);
    const byName = await staff.agent.get(`/helpdesk?q=${caller.username.slice(0, -2)}`);
    expect(byName.status).toBe(200);
    expect(byId(byName.html, 'q')?.attrs.value).toBe(caller.username.slice(0, -2));
    expect(rows(byName.html, 'results')).toContainEqual([caller.username, caller.accountNumber, 'Client', 'active']);
    const link = elements(byId(byName.html, 'results')!.inner, 'a').find((a) => text(a.inner) === caller.username)!;
    expect(link.attrs.href).toBe(userPath(caller));

    const byAccount = await staff.agent.get(`/helpdesk?q=${caller.accountNumber}`);
    expect(rows(byAccount.html, 'results')).toEqual([[caller.username, caller.accountNumber, 'Client', 'active']]);

    const none = await staff.agent.get('/helpdesk?q=nosuchuserxyz');
    expect(byId(none.html, 'results')).toBeUndefined();
    expect(textById(none.html, 'no-results')).toBe('No user matches “nosuchuserxyz”.');
  });

  it('X3: an unknown user, or a malformed user name, shows USER_NOT_FOUND on the search page (404), for a page and for a form, never a 500', async () => {
    const staff = await signedIn();
    const unknown = await staff.agent.get('/helpdesk/users/nosuchuser');
    expect(unknown.status).toBe(404);
    expect(alertBox(unknown.html)).toEqual({ code: 'USER_NOT_FOUND', role: 'alert', text: 'No such user.' });
    expect(h1s(unknown.html)).toEqual(['Help desk console']);
    const bad = await staff.agent.get(`/helpdesk/users/${encodeURIComponent('<b>x</b>')}`);
    expect(bad.status).toBe(404);
    expect(alertBox(bad.html)?.code).toBe('USER_NOT_FOUND');
    expect(bad.html).not.toContain('<b>x</b>');
    const post = await staff.agent.post('/helpdesk/users/nosuchuser/verifications', {
      _csrf: csrfOf(form((await staff.agent.get('/account')).html, '/logout')),
      method: 'id_document',
    });
    expect(post.status).toBe(404);
    expect(alertBox(post.html)?.code).toBe('USER_NOT_FOUND');
  });
});

describe('the user page (L3, X1)', () => {
  it('L3/X1: account, role, status, lock state, devices, and the latest audit entries (time, event, actor, details)', async () => {
    const staff = await signedIn();
    const { user: caller, card } = await createUserWithCard(h.services);
    expect((await startLogin(h.app, caller.username, 'not the password')).status).toBe(401);
    const page = await staff.agent.get(userPath(caller));
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(h1s(page.html)).toEqual([`User ${caller.username}`]);
    expect(textById(page.html, 'user-account')).toBe(caller.accountNumber);
    expect(textById(page.html, 'user-role')).toBe('Client');
    expect(textById(page.html, 'user-status')).toBe('active');
    expect(textById(page.html, 'lock-state')).toBe('Not locked');
    expect(textById(page.html, 'failures')).toBe('1');
    expect(rows(page.html, 'devices')).toEqual([['Digital Security Card+ (DSC+)', card.serial, 'active', '', '']]); // no deposit: not a requested card
    const audit = rows(page.html, 'audit');
    expect(audit.map((r) => r[1])).toEqual(expect.arrayContaining(['Wrong password', 'Device added', 'User created']));
    expect(audit.find((r) => r[1] === 'Device added')).toEqual([
      expect.stringMatching(/ UTC$/),
      'Device added',
      'test',
      expect.stringContaining(`serial=${card.serial}`),
    ]);
    expect(textById(page.html, 'verification-needed')).toBe('The actions below need a recorded identity verification: verify the caller first.');
    // before a verification, only the verification form, the forms that protect (end the sessions, lock: L8), and the card's own forms (C5), which need none
    const [device] = await h.services.devices.listForUser(caller.id);
    expect(forms(page.html).map((f) => f.attrs.action)).toEqual([
      `${userPath(caller)}/verifications`,
      `${userPath(caller)}/sessions/end`,
      `${userPath(caller)}/lock`,
      `${userPath(caller)}/devices/${device!.id}/lost`,
      `${userPath(caller)}/devices/${device!.id}/returned`,
      ...identificationForms(userPath(caller)),
    ]);
    expect(expectEveryControlLabelled(page.html)).toEqual([
      "How the caller's identity was verified",
      'Notes: what was checked',
      'Why lock the user (kept in the audit log)',
      'What happened to the card',
      ...IDENTIFICATION_LABELS.en,
    ]);
    const options = elements(byId(page.html, 'method')!.inner, 'option').map((o) => [o.attrs.value, text(o.inner)]);
    expect(options).toEqual([
      ['', 'Choose how'],
      ['security_questions', 'Security questions'],
      ['id_document', 'Identification document'],
      ['callback_on_record', 'Call back on the number on record'],
      ['video_call', 'Video call'],
    ]);
  });

  it('X7: the user page checks that the staff member may see the user once per request (one viewUser), and the whole page still shows', async () => {
    const staff = await signedIn();
    const { user: caller } = await createUserWithCard(h.services);
    const viewUser = vi.spyOn(h.services.helpDesk, 'viewUser');
    try {
      const page = await staff.agent.get(userPath(caller));
      expect(page.status).toBe(200);
      expect(byId(page.html, 'identification')).toBeDefined();
      expect(viewUser).toHaveBeenCalledTimes(1);
    } finally {
      viewUser.mockRestore();
    }
  });
});

describe('identity verification and the temporary passcode (T1-T5, A5)', () => {
  it('T1/T2/T5/A5: verify → the page shows the verification id and expiry and carries it in the forms → issue → the passcode is shown once (no-store); a reload does not show it; the client logs in with it', async () => {
    const staff = await signedIn();
    const { user: caller } = await createUserWithCard(h.services);
    const { page: verified, id } = await verify(staff.agent, caller, 'id_document', 'passport checked on video');

    const expiry = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'medium', timeZone: 'UTC' }).format(h.clock.now() + 30 * MINUTE);
    expect(textById(verified.html, 'verification')).toBe(
      `Identity verified (Identification document): verification ${id}, valid until ${expiry} UTC. The actions below use it.`,
    );
    const issueForm = form(verified.html, `${userPath(caller)}/temporary-passcode`);
    expect(issueForm.attrs.method).toBe('post');
    expect(hiddenValue(issueForm, 'verificationId')).toBe(id);
    expect(expectEveryControlLabelled(verified.html)).toEqual([
      "How the caller's identity was verified",
      'Notes: what was checked',
      'temporarily unavailable',
      'lost',
      'Why lock the user (kept in the audit log)',
      'Country',
      'Number',
      'What happened to the card',
      ...IDENTIFICATION_LABELS.en,
    ]);
    expect(elements(issueForm.inner, 'legend').map((l) => text(l.inner))).toEqual(["The caller's security device is"]);
    expect(hasForm(verified.html, `${userPath(caller)}/unlock`)).toBe(false); // not locked

    const issued = await staff.agent.submit(verified, `${userPath(caller)}/temporary-passcode`, { deviceStatus: 'suspended' });
    expect(issued.status).toBe(303);
    expect(issued.location).toBe(`${userPath(caller)}/passcode`);
    expect(issued.html).not.toMatch(/[A-Z2-9]{8}/);
    const handover = issued.setCookies.find((c) => c.startsWith('__Secure-sls_hd_passcode='))!;
    expect(handover).toMatch(new RegExp(`Path=${userPath(caller)}/passcode`));
    expect(handover).toMatch(/HttpOnly/);
    expect(handover).toMatch(/SameSite=Strict/);
    const sealed = staff.agent.jar.get('__Secure-sls_hd_passcode')!;

    const shown = await staff.agent.get(issued.location!);
    expect(shown.status).toBe(200);
    expect(shown.headers['cache-control']).toBe('no-store');
    expect(h1s(shown.html)).toEqual([`Temporary passcode for ${caller.username}`]);
    const passcode = textById(shown.html, 'passcode')!;
    expect(passcode).toMatch(/^[A-Z2-9]{8}$/); // T2
    expect(textById(shown.html, 'read-it')).toBe('Read this passcode to the caller now, character by character. It is shown only once.');
    expect(byId(shown.html, 'passcode')?.tag).toBe('output');
    expect(textById(shown.html, 'full-access-until')).toMatch(/ UTC$/);
    expect(byId(shown.html, 'back-to-user')?.attrs.href).toBe(`${userPath(caller)}/verifications/${id}`);
    expect(staff.agent.jar.has('__Secure-sls_hd_passcode')).toBe(false); // the page cleared it

    // T5: shown once: a reload shows it no more, nor does the sealed cookie in another staff member's browser
    const reload = await staff.agent.get(issued.location!);
    expect(reload.status).toBe(200);
    expect(byId(reload.html, 'passcode')).toBeUndefined();
    expect(reload.html).not.toContain(passcode);
    expect(textById(reload.html, 'passcode-gone')).toContain('cannot be shown again');
    const other = await signedIn();
    other.agent.jar.set('__Secure-sls_hd_passcode', sealed);
    const stolen = await other.agent.get(issued.location!);
    expect(stolen.html).not.toContain(passcode);
    expect(byId(stolen.html, 'passcode-gone')).toBeDefined();

    // T1: the client logs in with it in place of the card's response
    const start = await startLogin(h.app, caller.username, PASSWORD, 'portal');
    expect(start.status).toBe(200);
    expect(start.body.challenge).toEqual({ type: 'passcode' });
    const done = await answer(h.app, start.body.id, passcode);
    expect(done.status).toBe(200);

    // the card is suspended meanwhile; the user page shows the passcode and the revoke form
    const after = await staff.agent.get(`${userPath(caller)}/verifications/${id}`);
    expect(rows(after.html, 'devices').map((r) => [r[0], r[2]])).toEqual([
      ['Digital Security Card+ (DSC+)', 'suspended'],
      ['Temporary passcode', 'active'],
    ]);
    expect(textById(after.html, 'temporary-active')).toMatch(/^An active temporary passcode works until .+ UTC\.$/);
    expect(hasForm(after.html, `${userPath(caller)}/temporary-passcode/revoke`)).toBe(true);
    expect(after.html).not.toContain(passcode);

    // X1: audited with the staff member's id; the passcode itself is nowhere in the log
    const audit = await auditOf(caller);
    expect(JSON.stringify(audit)).not.toContain(passcode);
    expect(audit.find((e) => e.event === 'helpdesk.identity_verified')).toMatchObject({
      actor: `staff:${staff.user.id}`,
      data: { verificationId: id, method: 'id_document' },
    });
    expect(audit.find((e) => e.event === 'helpdesk.temp_passcode_issued')).toMatchObject({ actor: `staff:${staff.user.id}`, data: { verificationId: id } });
    expect(audit.find((e) => e.event === 'device.state_changed')).toMatchObject({ actor: `staff:${staff.user.id}`, data: { to: 'suspended' } });
    const auditRows = rows(after.html, 'audit');
    // issue 16: who acted, by username, not by id
    expect(auditRows.find((r) => r[1] === 'Temporary passcode issued')?.[2]).toBe(`${staff.user.username} (staff)`);
  });

  it('T1/T5/D3: a lost card is marked lost; revoking from the page ends the passcode at once; revoking again says there was none', async () => {
    const staff = await signedIn();
    const { user: caller } = await createUserWithCard(h.services);
    const { passcode } = await issue(staff.agent, caller, 'lost');
    const userPage = await staff.agent.get(userPath(caller));
    expect(rows(userPage.html, 'devices').map((r) => r[2])).toEqual(['lost', 'active']);
    // revoking needs no verification: the form is there without one
    expect(byId(userPage.html, 'verification-needed')).toBeDefined();
    const revoked = await staff.agent.submit(userPage, `${userPath(caller)}/temporary-passcode/revoke`);
    expect(revoked.status).toBe(303);
    expect(revoked.location).toBe(`${userPath(caller)}?done=revoked`);
    const notice = await staff.agent.get(revoked.location!);
    expect(textById(notice.html, 'notice')).toBe(`The temporary passcode of ${caller.username} is revoked.`);
    expect(hasForm(notice.html, `${userPath(caller)}/temporary-passcode/revoke`)).toBe(false);
    expect(rows(notice.html, 'devices').map((r) => r[2])).toEqual(['lost', 'revoked']);
    const login = await startLogin(h.app, caller.username);
    expect(login.status).toBe(403);
    expect(login.body.error.code).toBe('NO_ACTIVE_DEVICE');
    expect(passcode).toMatch(/^[A-Z2-9]{8}$/);

    const again = await staff.agent.post(`${userPath(caller)}/temporary-passcode/revoke`, {
      _csrf: csrfOf(form(notice.html, `${userPath(caller)}/verifications`)),
    });
    expect(again.location).toBe(`${userPath(caller)}?done=nothingRevoked`);
    expect(textById((await staff.agent.get(again.location!)).html, 'notice')).toBe(`${caller.username} had no active temporary passcode.`);
    const revokedEntry = (await auditOf(caller)).find((e) => e.event === 'device.state_changed' && e.data.to === 'revoked');
    expect(revokedEntry).toMatchObject({ actor: `staff:${staff.user.id}`, data: { reason: 'revoked by client services' } });
  });

  it('T5: issuing a new passcode revokes the earlier one', async () => {
    const staff = await signedIn();
    const { user: caller } = await createUserWithCard(h.services);
    const first = await issue(staff.agent, caller);
    const second = await issue(staff.agent, caller);
    expect(second.passcode).not.toBe(first.passcode);
    const old = await startLogin(h.app, caller.username);
    expect((await answer(h.app, old.body.id, first.passcode)).status).toBe(401);
    const fresh = await startLogin(h.app, caller.username);
    expect((await answer(h.app, fresh.body.id, second.passcode)).status).toBe(200);
  });

  it('L3/A5/N1: after 10 failed logins the page shows the lock; after the verification, Unlock lifts it and the client logs in again', async () => {
    const staff = await signedIn();
    const { user: caller, card } = await createUserWithCard(h.services);
    for (let i = 0; i < 10; i++) await startLogin(h.app, caller.username, `wrong ${i}`);
    expect((await startLogin(h.app, caller.username)).status).toBe(423);

    const locked = await staff.agent.get(userPath(caller));
    expect(textById(locked.html, 'lock-state')).toMatch(/^Locked until .+ UTC$/);
    expect(textById(locked.html, 'failures')).toBe('10');
    expect(textById(locked.html, 'unlock-heading')).toBe('Lock');
    expect(hasForm(locked.html, `${userPath(caller)}/unlock`)).toBe(false); // not before a verification

    const { page: verified, id } = await verify(staff.agent, caller);
    const unlockForm = form(verified.html, `${userPath(caller)}/unlock`);
    expect(hiddenValue(unlockForm, 'verificationId')).toBe(id);
    const unlocked = await staff.agent.submit(verified, `${userPath(caller)}/unlock`);
    expect(unlocked.status).toBe(303);
    expect(unlocked.location).toBe(`${userPath(caller)}/verifications/${id}?done=unlocked`);
    const after = await staff.agent.get(unlocked.location!);
    expect(textById(after.html, 'notice')).toBe(`${caller.username} is unlocked.`);
    expect(textById(after.html, 'lock-state')).toBe('Not locked');
    expect(hasForm(after.html, `${userPath(caller)}/unlock`)).toBe(false);

    const start = await startLogin(h.app, caller.username);
    expect(start.status).toBe(200);
    expect((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).status).toBe(200);
    expect((await auditOf(caller)).find((e) => e.event === 'helpdesk.unlocked')).toMatchObject({
      actor: `staff:${staff.user.id}`,
      data: { verificationId: id },
    });
    const notices = await h.services.notifier.list({ userId: caller.id });
    expect(notices.map((n) => n.template).sort()).toEqual(['userLocked', 'userUnlocked']);
  });

  it('T1/X3: an expired verification (31 minutes) is refused on the page with IDENTITY_NOT_VERIFIED (403); unknown verifications with VERIFICATION_NOT_FOUND (404); a bad method with VALIDATION_ERROR (400)', async () => {
    const staff = await signedIn();
    const { user: caller } = await createUserWithCard(h.services);
    const { user: other } = await createUserWithCard(h.services);
    const { id } = await verify(staff.agent, caller);
    const verificationPath = `${userPath(caller)}/verifications/${id}`;

    h.clock.advance(31 * MINUTE);
    // the staff portal session idled out meanwhile (L8): log in again
    expect((await staff.agent.get(verificationPath)).location).toBe('/login');
    await logIn(staff.agent, staff.user, staff.card);
    const stale = await staff.agent.get(verificationPath);
    expect(stale.status).toBe(200);
    expect(textById(stale.html, 'verification-expired')).toMatch(
      new RegExp(`^The identity verification ${id} expired at .+ UTC\\. Verify the caller's identity again\\.$`),
    );
    expect(hasForm(stale.html, `${userPath(caller)}/temporary-passcode`)).toBe(false);

    const token = csrfOf(form(stale.html, `${userPath(caller)}/verifications`));
    const refused = await staff.agent.post(`${userPath(caller)}/temporary-passcode`, { _csrf: token, verificationId: id, deviceStatus: 'suspended' });
    expect(refused.status).toBe(403);
    expect(alertBox(refused.html)).toEqual({
      code: 'IDENTITY_NOT_VERIFIED',
      role: 'alert',
      text: "The caller's identity must be verified again before this action (the last verification has expired).",
    });
    expect(h1s(refused.html)).toEqual([`User ${caller.username}`]);
    expect(byId(refused.html, 'verification-expired')).toBeDefined();
    const unlockRefused = await staff.agent.post(`${userPath(caller)}/unlock`, { _csrf: token, verificationId: id });
    expect(unlockRefused.status).toBe(403);
    expect(alertBox(unlockRefused.html)?.code).toBe('IDENTITY_NOT_VERIFIED');

    const none = await staff.agent.post(`${userPath(caller)}/temporary-passcode`, { _csrf: token, verificationId: 'ver_nope' });
    expect(none.status).toBe(404);
    expect(alertBox(none.html)?.code).toBe('VERIFICATION_NOT_FOUND');
    const missing = await staff.agent.post(`${userPath(caller)}/temporary-passcode`, { _csrf: token });
    expect(missing.status).toBe(404);
    expect(alertBox(missing.html)?.code).toBe('VERIFICATION_NOT_FOUND');
    const ofOther = await verify(staff.agent, other);
    const wrongUser = await staff.agent.get(`${userPath(caller)}/verifications/${ofOther.id}`);
    expect(wrongUser.status).toBe(404);
    expect(alertBox(wrongUser.html)?.code).toBe('VERIFICATION_NOT_FOUND');
    expect(hasForm(wrongUser.html, `${userPath(caller)}/temporary-passcode`)).toBe(false);
    const badStatus = await staff.agent.post(`${userPath(other)}/temporary-passcode`, { _csrf: token, verificationId: ofOther.id, deviceStatus: 'stolen' });
    expect(badStatus.status).toBe(400);
    expect(alertBox(badStatus.html)?.code).toBe('VALIDATION_ERROR');

    const badMethod = await staff.agent.submit(stale, `${userPath(caller)}/verifications`, { method: 'guessing' });
    expect(badMethod.status).toBe(400);
    expect(alertBox(badMethod.html)?.code).toBe('VALIDATION_ERROR');
    expect(form(badMethod.html, `${userPath(caller)}/verifications`).attrs['aria-describedby']).toBe('form-error');
    const long = await staff.agent.submit(stale, `${userPath(caller)}/verifications`, { method: 'id_document', notes: 'x'.repeat(501) });
    expect(long.status).toBe(400);

    const events = (await auditOf(caller)).map((e) => e.event);
    expect(events).not.toContain('helpdesk.temp_passcode_issued');
    expect(events.filter((e) => e === 'helpdesk.identity_verified')).toHaveLength(1);
  });
});

describe('a forgotten password (A5)', () => {
  /** What randomUpperAlnum draws from: upper-case letters and digits without I, O, 0, 1. */
  const ONE_TIME_PASSWORD = /^[A-HJ-NP-Z2-9]{12}$/;
  const resetPath = (u: User): string => `${userPath(u)}/password-reset`;
  const passwordPage = (u: User): string => `${userPath(u)}/password`;

  /** The client's whole login through the API with a password and their card; returns the session token. */
  async function clientLogin(user: User, card: CardFile, password: string): Promise<string> {
    const start = await startLogin(h.app, user.username, password, 'portal');
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const done = await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question));
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    return done.body.session.token as string;
  }

  it('A5: after the verification, Reset the password → the one-time password is shown once (no-store, large monospace output); a reload does not show it; the client logs in with it and their card and must choose a new password', async () => {
    const staff = await signedIn();
    const { user: caller, card } = await createUserWithCard(h.services);

    // before a verification: the explanation, but no form
    const before = await staff.agent.get(userPath(caller));
    expect(textById(before.html, 'password-heading')).toBe('Forgotten password');
    expect(textById(before.html, 'password-explain')).toBe(
      'The user gets a one-time password, shown to you once to read to the caller, and must choose a new password at the next login. The current password stops working at once; the security device stays the same.',
    );
    expect(hasForm(before.html, resetPath(caller))).toBe(false);

    const { page: verified, id } = await verify(staff.agent, caller, 'callback_on_record');
    const resetForm = form(verified.html, resetPath(caller));
    expect(resetForm.attrs.method).toBe('post');
    expect(hiddenValue(resetForm, 'verificationId')).toBe(id);
    expect(textById(resetForm.inner, 'reset-submit')).toBe('Reset the password');
    expect(byId(resetForm.inner, 'reset-submit')?.attrs['aria-describedby']).toBe('password-explain');

    const reset = await staff.agent.submit(verified, resetPath(caller));
    expect(reset.status, reset.html).toBe(303);
    expect(reset.location).toBe(passwordPage(caller));
    expect(reset.html).not.toMatch(/[A-Z2-9]{12}/);
    const handover = reset.setCookies.find((c) => c.startsWith('__Secure-sls_hd_password='))!;
    expect(handover).toMatch(new RegExp(`Path=${passwordPage(caller)}(;|$)`));
    expect(handover).toMatch(/HttpOnly/);
    expect(handover).toMatch(/SameSite=Strict/);
    expect(handover).toMatch(/Max-Age=120/);
    const sealed = staff.agent.jar.get('__Secure-sls_hd_password')!;

    const shown = await staff.agent.get(reset.location!);
    expect(shown.status).toBe(200);
    expect(shown.headers['cache-control']).toBe('no-store');
    expect(h1s(shown.html)).toEqual([`One-time password for ${caller.username}`]);
    const output = byId(shown.html, 'password')!;
    expect(output.tag).toBe('output');
    expect(elements(shown.html, 'p').find((p) => p.inner.includes('id="password"'))?.attrs.class).toBe('challenge'); // large monospace
    const password = text(output.inner);
    expect(password).toMatch(ONE_TIME_PASSWORD);
    expect(textById(shown.html, 'password-label')).toBe('One-time password');
    expect(textById(shown.html, 'read-it')).toBe('Read this password to the caller now, character by character. It is shown only once.');
    expect(textById(shown.html, 'password-hint')).toBe(
      'It is case sensitive: upper-case letters and digits, no spaces. The caller logs in with it and their security device as usual, then must choose a new password.',
    );
    expect(byId(shown.html, 'full-access-until')).toBeUndefined(); // a passcode's periods; the one-time password has none
    expect(byId(shown.html, 'back-to-user')?.attrs.href).toBe(`${userPath(caller)}/verifications/${id}`);
    expect(textById(shown.html, 'back-to-user')).toBe('Back to the user');
    expect(staff.agent.jar.has('__Secure-sls_hd_password')).toBe(false); // the page cleared it

    // shown once: a reload shows it no more, nor does the sealed cookie in another staff member's browser
    const reload = await staff.agent.get(reset.location!);
    expect(reload.status).toBe(200);
    expect(reload.headers['cache-control']).toBe('no-store');
    expect(byId(reload.html, 'password')).toBeUndefined();
    expect(reload.html).not.toContain(password);
    expect(textById(reload.html, 'password-gone')).toBe(
      'This password has been shown once and cannot be shown again. If the caller did not note it, reset the password again: the earlier one then stops working.',
    );
    const other = await signedIn();
    other.agent.jar.set('__Secure-sls_hd_password', sealed);
    const stolen = await other.agent.get(reset.location!);
    expect(stolen.html).not.toContain(password);
    expect(byId(stolen.html, 'password-gone')).toBeDefined();

    // the old password no longer works; the one-time password and the card do, and the user must choose a new password
    expect((await startLogin(h.app, caller.username, PASSWORD)).status).toBe(401);
    const token = await clientLogin(caller, card, password);
    const session = await get(h.app, '/api/v1/session', bearer(token));
    expect(session.status).toBe(200);
    expect(session.body.passwordChangeRequired).toBe(true);

    // X1: audited with the staff member's id; the password is nowhere in the log or on the user page; the user is told
    const audit = await auditOf(caller);
    expect(JSON.stringify(audit)).not.toContain(password);
    expect(audit.find((e) => e.event === 'user.password_changed' && e.data.oneTime === true)).toMatchObject({ actor: `staff:${staff.user.id}` });
    const after = await staff.agent.get(`${userPath(caller)}/verifications/${id}`);
    expect(after.html).not.toContain(password);
    expect(rows(after.html, 'audit').find((r) => r[1] === 'Password changed' && r[2] === `${staff.user.username} (staff)`)?.[3]).toBe('oneTime=true');
    expect((await h.services.notifier.list({ userId: caller.id })).map((n) => n.template)).toContain('passwordReset');
    expect((await h.services.devices.listForUser(caller.id)).map((d) => d.state)).toEqual(['active']); // the card is untouched
  });

  it("A5/T5: the passcode and the password each have their own sealed cookie: a passcode's cookie does not open on the password page", async () => {
    const staff = await signedIn();
    const { user: caller } = await createUserWithCard(h.services);
    const { page: verified } = await verify(staff.agent, caller);
    const issued = await staff.agent.submit(verified, `${userPath(caller)}/temporary-passcode`, { deviceStatus: 'suspended' });
    expect(issued.status).toBe(303);
    staff.agent.jar.set('__Secure-sls_hd_password', staff.agent.jar.get('__Secure-sls_hd_passcode')!);
    const swapped = await staff.agent.get(passwordPage(caller));
    expect(swapped.status).toBe(200);
    expect(byId(swapped.html, 'password')).toBeUndefined();
    expect(byId(swapped.html, 'password-gone')).toBeDefined();
    expect(swapped.html).not.toMatch(/<output/);
    // the passcode itself still reaches its own page, once
    const shown = await staff.agent.get(issued.location!);
    expect(textById(shown.html, 'passcode')).toMatch(/^[A-Z2-9]{8}$/);
  });

  it('A5/T1, X7: compliance sees no reset form (nor a colleague’s verification: 404 VERIFICATION_NOT_FOUND), and a forged reset is refused on the user page (403 FORBIDDEN_ROLE): the password is unchanged and nothing is shown', async () => {
    const compliance = await signedIn('compliance');
    const desk = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    const { user: caller, card } = await createUserWithCard(h.services);
    const verification = await h.services.helpDesk.verifyIdentity(desk.user.id, caller.username, { method: 'id_document' });

    const page = await compliance.agent.get(`${userPath(caller)}/verifications/${verification.id}`);
    expect([page.status, alertBox(page.html)?.code]).toEqual([404, 'VERIFICATION_NOT_FOUND']);
    expect(forms(page.html)).toEqual([]);
    expect(byId(page.html, 'password-heading')).toBeUndefined();

    const token = csrfOf(form((await compliance.agent.get('/account')).html, '/logout'));
    const forged = await compliance.agent.post(resetPath(caller), { _csrf: token, verificationId: verification.id });
    expect(forged.status).toBe(403);
    expect(forged.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(alertBox(forged.html)).toEqual({ code: 'FORBIDDEN_ROLE', role: 'alert', text: 'Your role does not allow this.' });
    expect(h1s(forged.html)).toEqual([`User ${caller.username}`]);
    expect(forms(forged.html)).toEqual([]);
    expect(forged.location).toBeUndefined();
    expect(compliance.agent.jar.has('__Secure-sls_hd_password')).toBe(false);

    expect(await clientLogin(caller, card, PASSWORD)).toEqual(expect.any(String));
    expect((await auditOf(caller)).filter((e) => e.event === 'user.password_changed' && e.data.oneTime === true)).toEqual([]);
  });

  it('A5/X3: without a verification the reset is refused on the user page with VERIFICATION_NOT_FOUND (404); an expired one with IDENTITY_NOT_VERIFIED (403); nothing is reset or shown', async () => {
    const staff = await signedIn();
    const { user: caller, card } = await createUserWithCard(h.services);
    const { user: other } = await createUserWithCard(h.services);
    const userPage = await staff.agent.get(userPath(caller));
    const token = csrfOf(form(userPage.html, `${userPath(caller)}/verifications`));

    for (const fields of [{}, { verificationId: '' }, { verificationId: 'ver_nope' }, { verificationId: '<b>x</b>' }] as Record<string, string>[]) {
      const refused = await staff.agent.post(resetPath(caller), { _csrf: token, ...fields });
      expect(refused.status, JSON.stringify(fields)).toBe(404);
      expect(refused.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(alertBox(refused.html)).toEqual({
        code: 'VERIFICATION_NOT_FOUND',
        role: 'alert',
        text: 'No such identity verification of yours for this user: record your own.',
      });
      expect(h1s(refused.html)).toEqual([`User ${caller.username}`]);
      expect(refused.html).not.toContain('<b>x</b>');
      expect(hasForm(refused.html, resetPath(caller))).toBe(false);
      expect(refused.setCookies.find((c) => c.startsWith('__Secure-sls_hd_password='))).toBeUndefined();
    }
    // another user's verification is not this user's
    const ofOther = await verify(staff.agent, other);
    const wrongUser = await staff.agent.post(resetPath(caller), { _csrf: token, verificationId: ofOther.id });
    expect(wrongUser.status).toBe(404);
    expect(alertBox(wrongUser.html)?.code).toBe('VERIFICATION_NOT_FOUND');
    // the page of the password has nothing to show
    const nothing = await staff.agent.get(passwordPage(caller));
    expect(nothing.status).toBe(200);
    expect(byId(nothing.html, 'password-gone')).toBeDefined();

    const { id } = await verify(staff.agent, caller);
    h.clock.advance(31 * MINUTE);
    await logIn(staff.agent, staff.user, staff.card);
    const stale = await staff.agent.get(`${userPath(caller)}/verifications/${id}`);
    expect(byId(stale.html, 'verification-expired')).toBeDefined();
    expect(hasForm(stale.html, resetPath(caller))).toBe(false);
    const expired = await staff.agent.post(resetPath(caller), { _csrf: csrfOf(form(stale.html, `${userPath(caller)}/verifications`)), verificationId: id });
    expect(expired.status).toBe(403);
    expect(alertBox(expired.html)).toEqual({
      code: 'IDENTITY_NOT_VERIFIED',
      role: 'alert',
      text: "The caller's identity must be verified again before this action (the last verification has expired).",
    });
    expect(h1s(expired.html)).toEqual([`User ${caller.username}`]);
    expect(byId(expired.html, 'verification-expired')).toBeDefined();

    expect(await clientLogin(caller, card, PASSWORD)).toEqual(expect.any(String));
    expect((await auditOf(caller)).filter((e) => e.event === 'user.password_changed' && e.data.oneTime === true)).toEqual([]);
    expect((await h.services.notifier.list({ userId: caller.id })).map((n) => n.template)).not.toContain('passwordReset');
  });

  it('A5/X3: the reset form refuses a POST without the CSRF token, or with a made-up one (403 CSRF_FAILED): the password is unchanged and nothing is shown', async () => {
    const staff = await signedIn();
    const { user: caller, card } = await createUserWithCard(h.services);
    const { page: verified, id } = await verify(staff.agent, caller);
    expect(csrfOf(form(verified.html, resetPath(caller)))).not.toBe('');
    const tokens: Record<string, string>[] = [{}, { _csrf: 'made-up-token' }, { _csrf: '' }];
    for (const extra of tokens) {
      const res = await staff.agent.post(resetPath(caller), { verificationId: id, ...extra });
      expect(res.status, JSON.stringify(extra)).toBe(403);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(alertBox(res.html)?.code).toBe('CSRF_FAILED');
      expect(res.setCookies.find((c) => c.startsWith('__Secure-sls_hd_password='))).toBeUndefined();
    }
    expect(await clientLogin(caller, card, PASSWORD)).toEqual(expect.any(String));
    expect((await auditOf(caller)).filter((e) => e.event === 'user.password_changed' && e.data.oneTime === true)).toEqual([]);
  });

  const TEXTS = {
    fr: {
      heading: 'Mot de passe oublié',
      explain: "L'utilisateur reçoit un mot de passe à usage unique",
      submit: 'Réinitialiser le mot de passe',
      title: 'Mot de passe à usage unique de',
      readIt: "Lisez maintenant ce mot de passe à l'appelant",
      hint: 'puis doit choisir un nouveau mot de passe',
      gone: "ne peut plus l'être",
      back: "Retour à l'utilisateur",
      notFound: "Aucune vérification d'identité de ce type faite par vous pour cet utilisateur : enregistrez la vôtre.",
    },
    'zh-Hant': {
      heading: '忘記密碼',
      explain: '用戶將獲得一次性密碼',
      submit: '重設密碼',
      title: '的一次性密碼',
      readIt: '請立即向來電者逐個字元讀出此一次性密碼',
      hint: '然後須設定新密碼',
      gone: '無法再次顯示',
      back: '返回用戶資料',
      notFound: '您沒有為此用戶記錄此身份核實：請記錄您自己的核實。',
    },
  } as const;
  const ENGLISH = /\b(Forgotten password|Reset the password|One-time password|Read this password|case sensitive|shown once|Back to|No such)\b/;

  it.each(['fr', 'zh-Hant'] as const)(
    'A5/X2: the password reset in %s: form, one-time password page, reload and errors translated, no English left',
    async (lang) => {
      const t = TEXTS[lang];
      const staff = await signedIn('client_services', `?lang=${lang}`);
      const { user: caller } = await createUserWithCard(h.services);
      const { page: verified } = await verify(staff.agent, caller);
      expect(htmlLang(verified.html)).toBe(lang);
      expect(textById(verified.html, 'password-heading')).toBe(t.heading);
      expect(textById(verified.html, 'password-explain')).toContain(t.explain);
      expect(textById(verified.html, 'reset-submit')).toBe(t.submit);

      const reset = await staff.agent.submit(verified, resetPath(caller));
      const shown = await staff.agent.get(reset.location!);
      expect(htmlLang(shown.html)).toBe(lang);
      expect(h1s(shown.html)[0]).toContain(t.title);
      expect(h1s(shown.html)[0]).toContain(caller.username);
      expect(textById(shown.html, 'password')).toMatch(ONE_TIME_PASSWORD);
      expect(textById(shown.html, 'read-it')).toContain(t.readIt);
      expect(textById(shown.html, 'password-hint')).toContain(t.hint);
      expect(textById(shown.html, 'back-to-user')).toBe(t.back);
      // the language links stay on the password page, which has nothing more to show
      const links = elements(elements(shown.html, 'nav')[0]!.inner, 'a').map((a) => a.attrs.href);
      expect(links).toEqual(['en', 'fr', 'zh-Hant'].map((l) => `${passwordPage(caller)}?lang=${l}`));

      const reload = await staff.agent.get(reset.location!);
      expect(htmlLang(reload.html)).toBe(lang);
      expect(textById(reload.html, 'password-gone')).toContain(t.gone);

      const refused = await staff.agent.post(resetPath(caller), {
        _csrf: csrfOf(form(verified.html, `${userPath(caller)}/verifications`)),
        verificationId: 'ver_nope',
      });
      expect(refused.status).toBe(404);
      expect(htmlLang(refused.html)).toBe(lang);
      expect(alertBox(refused.html)).toEqual({ code: 'VERIFICATION_NOT_FOUND', role: 'alert', text: t.notFound });

      for (const page of [verified, shown, reload, refused]) {
        const visible = text(page.html.replace(/<table class="devices" id="audit">[\s\S]*?<\/table>/, ''));
        expect(visible).not.toMatch(ENGLISH);
      }
    },
  );
});

describe('DSC+ cards: shipping from the stock, loss and return (C5, C6, C8, D3)', () => {
  /** The batch every test here ships from (C8): DSC0000001 to DSC0000003. */
  let batch: PskcKey[];
  beforeAll(async () => {
    batch = parsePskc(readFileSync(new URL('./fixtures/pskc/batch-plain.xml', import.meta.url), 'utf8'));
    await h.services.devices.importStock(batch, 'test', 'batch-plain.xml');
  });

  const ADDRESS = { name: 'Ada Lovelace', line1: '12 Market Street', city: 'Springfield', postalCode: '62701', country: 'US' };
  const devicePath = (u: User, deviceId: string, action: 'ship' | 'lost' | 'returned'): string => `${userPath(u)}/devices/${deviceId}/${action}`;
  const usd20 = (account: string, how: 'held on' | 'kept from' | 'released on'): string => `USD 20.00 ${how} account ${account}`;

  /** The DSC+ serials of the stock, in order. */
  async function stock(): Promise<string[]> {
    return (await h.services.devices.listStock()).filter((d) => d.type === 'dscplus').map((d) => d.serial!);
  }

  /**
   * A client with a card whose equity allows a DSC+ (C1) requests another
   * one (C4): the new device is `requested` and USD 20 is held.
   */
  async function withRequest(): Promise<{ caller: User; card: CardFile; active: Device; requested: Device }> {
    const { user: caller, card } = await createUserWithCard(h.services, '1234', { equityUsd: 2_000_000 });
    const active = (await h.services.devices.listForUser(caller.id)).find((d) => d.serial === card.serial)!;
    // a session opened with the card (R2: not under temporary access)
    const session = { userId: caller.id, scope: 'full', deviceId: active.id, createdAt: h.clock.now(), verifiedAt: null } as Session;
    const { device: requested } = await h.services.dscPlusRequests.request(session, { address: ADDRESS, pin: '2468' });
    return { caller, card, active, requested };
  }

  /** The card file of a shipped card: the seed of the batch and the user's own PIN. */
  function shippedCard(serial: string, pin = '2468'): CardFile {
    const key = batch.find((k) => k.serial === serial)!;
    return { format: 'sls-dscplus-card/1', serial, suite: key.suite!, seed: key.secret.toString('hex'), pin };
  }

  const TEXTS = {
    fr: {
      labels: [
        "Comment l'identité de l'appelant a été vérifiée",
        'Notes : ce qui a été vérifié',
        "Motif du blocage (conservé dans le journal d'audit)",
        'Ce qui est arrivé à la carte',
        'Carte du stock',
      ],
      deposit: (account: string) => `20,00 USD bloqués sur le compte ${account}`,
      heading: 'Expédition, perte et retour des DSC+',
      requested: 'Digital Security Card+ (DSC+) demandée le',
      reasons: ['Choisissez', 'perdue', 'volée', 'endommagée'],
      buttons: ['Déclarer perdue', 'Déclarer retournée', 'Expédier la carte'],
      state: "L'appareil ne le permet pas dans son état (demandé).",
      lost: (serial: string, username: string) => `La DSC+ ${serial} de l'utilisateur ${username} est déclarée perdue et ne fonctionne plus.`,
      reason: 'Indiquez ce qui est arrivé à la carte : perdue, volée ou endommagée.',
    },
    'zh-Hant': {
      labels: ['來電者身份的核實方式', '備註：核實了哪些資料', '鎖定用戶的原因（記錄於審計日誌）', '安全卡的情況', '庫存中的安全卡'],
      deposit: (account: string) => `已凍結賬戶 ${account} 的 USD 20.00`,
      heading: 'DSC+ 寄送、遺失及退回',
      requested: '數位安全卡+',
      reasons: ['請選擇', '遺失', '被盜', '損壞'],
      buttons: ['標記為遺失', '標記為已退回', '寄出安全卡'],
      state: '設備在目前狀態（已申請）下無法執行此操作。',
      lost: (serial: string, username: string) => `${username} 的 DSC+ ${serial} 已標記為遺失，並已停用。`,
      reason: '請選擇安全卡的情況：遺失、被盜或損壞。',
    },
  } as const;
  const ENGLISH = /\b(Deposit|held|Ship|ship|Mark lost|Mark returned|What happened|Choose|requested on|stolen|damaged|no longer works|cannot do that)\b/;

  it.each(['fr', 'zh-Hant'] as const)('X2/C5: the card forms, deposits, notices and errors in %s, every control labelled, no English left', async (lang) => {
    const t = TEXTS[lang];
    const staff = await signedIn('client_services', `?lang=${lang}`);
    const { caller, card, active, requested } = await withRequest();
    const page = await staff.agent.get(userPath(caller));
    expect(htmlLang(page.html)).toBe(lang);
    expect(expectEveryControlLabelled(page.html)).toEqual([...t.labels, ...IDENTIFICATION_LABELS[lang]]);
    expect(rows(page.html, 'devices')[1]?.[4]).toBe(t.deposit(caller.accountNumber));
    expect(textById(page.html, 'cards-heading')).toBe(t.heading);
    expect(textById(page.html, `card-${requested.id}-heading`)).toContain(t.requested);
    expect(elements(byId(page.html, `reason-${active.id}`)!.inner, 'option').map((o) => text(o.inner))).toEqual(t.reasons);
    expect(
      elements(page.html, 'button')
        .map((b) => text(b.inner))
        .slice(-6, -3), // the identification and equity forms come last (A1, A6)
    ).toEqual(t.buttons);

    const token = csrfOf(form(page.html, `${userPath(caller)}/verifications`));
    const wrongState = await staff.agent.post(devicePath(caller, requested.id, 'returned'), { _csrf: token });
    expect(wrongState.status).toBe(409);
    expect(alertBox(wrongState.html)).toEqual({ code: 'DEVICE_STATE', role: 'alert', text: t.state });
    const badReason = await staff.agent.post(devicePath(caller, active.id, 'lost'), { _csrf: token, reason: 'misplaced' });
    expect(badReason.status).toBe(400);
    expect(alertBox(badReason.html)?.text).toBe(t.reason);

    const lost = await staff.agent.submit(page, devicePath(caller, active.id, 'lost'), { reason: 'lost' });
    const after = await staff.agent.get(lost.location!);
    expect(textById(after.html, 'notice')).toBe(t.lost(card.serial, caller.username)); // no deposit: not a requested card

    for (const shown of [page, wrongState, badReason, after]) {
      const visible = text(shown.html.replace(/<table class="devices" id="audit">[\s\S]*?<\/table>/, ''));
      expect(visible).not.toMatch(ENGLISH);
    }
  });

  it('C6/C8/D3/X1: a requested DSC+ is shipped from the stock through the console: the serials of the stock to choose from, then "shipped, activates itself on …", the card shipped with its serial, audited with the staff id; three weeks later it activates itself and answers with the seed of the batch and the user\'s PIN', async () => {
    const staff = await signedIn();
    const { caller, card, active, requested } = await withRequest();
    const page = await staff.agent.get(userPath(caller));
    expect(page.status).toBe(200);
    expect(rows(page.html, 'devices')).toEqual([
      ['Digital Security Card+ (DSC+)', card.serial, 'active', '', ''],
      ['Digital Security Card+ (DSC+)', '', 'requested', '', usd20(caller.accountNumber, 'held on')],
    ]);
    const requestedAt = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'medium', timeZone: 'UTC' }).format(requested.createdAt);
    expect(textById(page.html, `card-${requested.id}-heading`)).toBe(`Digital Security Card+ (DSC+) requested on ${requestedAt} UTC`);
    expect(textById(page.html, `ship-to-${requested.id}`)).toBe('Ada Lovelace, 12 Market Street, 62701 Springfield, US');
    // C8: the DSC+ cards of the stock, nothing else; a requested card can be shipped, not reported lost or returned
    expect(await stock()).toEqual(['DSC0000001', 'DSC0000002', 'DSC0000003']);
    const shipAction = devicePath(caller, requested.id, 'ship');
    expect(elements(byId(page.html, `serial-${requested.id}`)!.inner, 'option').map((o) => [o.attrs.value, text(o.inner)])).toEqual([
      ['', 'Choose a serial number'],
      ['DSC0000001', 'DSC0000001'],
      ['DSC0000002', 'DSC0000002'],
      ['DSC0000003', 'DSC0000003'],
    ]);
    expect(byId(page.html, `serial-${requested.id}`)?.attrs.required).toBe('');
    expect(forms(page.html).map((f) => f.attrs.action)).toEqual([
      `${userPath(caller)}/verifications`,
      `${userPath(caller)}/sessions/end`,
      `${userPath(caller)}/lock`,
      devicePath(caller, active.id, 'lost'),
      devicePath(caller, active.id, 'returned'),
      shipAction,
      ...identificationForms(userPath(caller)),
    ]);
    expect(expectEveryControlLabelled(page.html)).toEqual([
      "How the caller's identity was verified",
      'Notes: what was checked',
      'Why lock the user (kept in the audit log)',
      'What happened to the card',
      'Card from the stock',
      ...IDENTIFICATION_LABELS.en,
    ]);

    const shipped = await staff.agent.submit(page, shipAction, { serial: 'DSC0000001' });
    expect(shipped.status, shipped.html).toBe(303);
    expect(shipped.location).toBe(`${userPath(caller)}?done=shipped&device=${requested.id}`);
    const after = await staff.agent.get(shipped.location!);
    const autoActivateAt = h.clock.now() + 21 * DAY;
    const on = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'medium', timeZone: 'UTC' }).format(autoActivateAt);
    expect(textById(after.html, 'notice')).toBe(`DSC+ DSC0000001 is shipped to ${caller.username}. It activates itself on ${on} UTC unless activated before.`);
    expect(rows(after.html, 'devices')[1]).toEqual(['Digital Security Card+ (DSC+)', 'DSC0000001', 'shipped', '', usd20(caller.accountNumber, 'held on')]);
    expect(textById(after.html, `card-${requested.id}-heading`)).toBe('Digital Security Card+ (DSC+) DSC0000001: shipped');
    expect(hasForm(after.html, shipAction)).toBe(false);
    expect(hasForm(after.html, devicePath(caller, requested.id, 'lost'))).toBe(true);
    expect(hasForm(after.html, devicePath(caller, requested.id, 'returned'))).toBe(true);
    expect(await stock()).toEqual(['DSC0000002', 'DSC0000003']);
    // a reload shows the page again, not a second shipment
    expect(textById((await staff.agent.get(shipped.location!)).html, 'notice')).toBe(textById(after.html, 'notice'));

    // X1: audited with the staff member's id, shown on the page; the user is told (N1)
    const entry = (await auditOf(caller)).find((e) => e.event === 'device.shipped');
    expect(entry).toMatchObject({ actor: `staff:${staff.user.id}`, data: { deviceId: requested.id, serial: 'DSC0000001', autoActivateAt } });
    expect(rows(after.html, 'audit').find((r) => r[1] === 'Device shipped')?.[2]).toBe(`${staff.user.username} (staff)`);
    // issue 16: a time in the details is written for people, not in milliseconds
    expect(rows(after.html, 'audit').find((r) => r[1] === 'Device shipped')?.[3]).not.toMatch(/autoActivateAt=\d{10,}/);
    expect((await h.services.notifier.list({ userId: caller.id })).map((n) => n.template)).toContain('dscplusShipped');

    // C6: not activated by the user, it activates itself three weeks after shipment
    h.clock.advance(21 * DAY);
    expect((await h.services.dscPlusRequests.autoActivateDue()).map((d) => d.id)).toContain(requested.id);
    await logIn(staff.agent, staff.user, staff.card); // the staff session idled out meanwhile
    expect(rows((await staff.agent.get(userPath(caller))).html, 'devices')[1]?.slice(0, 3)).toEqual(['Digital Security Card+ (DSC+)', 'DSC0000001', 'active']);
    // C8: the card holds the seed of the batch; the user's PIN goes into the response (C3)
    const start = await startLogin(h.app, caller.username);
    const switched = await postJson(h.app, `/api/v1/login/${start.body.id}`, { device: requested.id }, claimOf(start));
    expect(switched.body).toMatchObject({ device: { id: requested.id }, challenge: { type: 'ocra' } });
    const question = switched.body.challenge.question as string;
    expect((await answer(h.app, start.body.id, cardAnswer(shippedCard('DSC0000001', '1234'), question))).status).toBe(401);
    const again = await startLogin(h.app, caller.username);
    const second = await postJson(h.app, `/api/v1/login/${again.body.id}`, { device: requested.id }, claimOf(again));
    expect((await answer(h.app, again.body.id, cardAnswer(shippedCard('DSC0000001'), second.body.challenge.question as string))).status).toBe(200);
  });

  it('C5/D3/X1: a card reported stolen through the console stops working and its USD 20 deposit is kept; a card marked returned stops working and its deposit is released; the page shows each deposit and the forms the new state allows', async () => {
    const staff = await signedIn();
    const a = await withRequest();
    const b = await withRequest();
    const [first, second] = await stock();
    await h.services.dscPlusRequests.ship(staff.user.id, a.requested.id, first!);
    await h.services.devices.setState(a.requested.id, 'active', 'test'); // as if the user had activated it
    await h.services.dscPlusRequests.ship(staff.user.id, b.requested.id, second!);

    // stolen, from the verification page: back to it
    const { page: verified, id } = await verify(staff.agent, a.caller);
    const lostAction = devicePath(a.caller, a.requested.id, 'lost');
    expect(hiddenValue(form(verified.html, lostAction), 'verificationId')).toBe(id);
    expect(elements(byId(verified.html, `reason-${a.requested.id}`)!.inner, 'option').map((o) => [o.attrs.value, text(o.inner)])).toEqual([
      ['', 'Choose'],
      ['lost', 'lost'],
      ['stolen', 'stolen'],
      ['damaged', 'damaged'],
    ]);
    const lost = await staff.agent.submit(verified, lostAction, { reason: 'stolen' });
    expect(lost.status, lost.html).toBe(303);
    expect(lost.location).toBe(`${userPath(a.caller)}/verifications/${id}?done=lost&device=${a.requested.id}`);
    const afterLost = await staff.agent.get(lost.location!);
    expect(textById(afterLost.html, 'notice')).toBe(
      `DSC+ ${first} of ${a.caller.username} is marked lost and no longer works. Deposit: ${usd20(a.caller.accountNumber, 'kept from')}.`,
    );
    expect(rows(afterLost.html, 'devices')[1]).toEqual(['Digital Security Card+ (DSC+)', first, 'lost', '', usd20(a.caller.accountNumber, 'kept from')]);
    expect(hasForm(afterLost.html, lostAction)).toBe(false);
    expect(hasForm(afterLost.html, devicePath(a.caller, a.requested.id, 'returned'))).toBe(true); // a lost card may still come back
    expect(await h.services.dscPlusRequests.hold(a.requested.id)).toEqual({ status: 'kept', amountUsd: 20, account: a.caller.accountNumber });
    expect((await h.services.devices.activeForUser(a.caller.id, null)).map((d) => d.id)).toEqual([a.active.id]);
    const auditA = await auditOf(a.caller);
    expect(auditA.find((e) => e.event === 'device.state_changed' && e.data.deviceId === a.requested.id && e.data.to === 'lost')).toMatchObject({
      actor: `staff:${staff.user.id}`,
      data: { from: 'active', reason: 'stolen' },
    });
    expect(auditA.find((e) => e.event === 'deposit.settled')).toMatchObject({
      actor: `staff:${staff.user.id}`,
      data: { deviceId: a.requested.id, status: 'kept', amountUsd: 20 },
    });

    // returned: the deposit is released; nothing more to do with that card
    const page = await staff.agent.get(userPath(b.caller));
    expect(rows(page.html, 'devices')[1]).toEqual(['Digital Security Card+ (DSC+)', second, 'shipped', '', usd20(b.caller.accountNumber, 'held on')]);
    const returnedAction = devicePath(b.caller, b.requested.id, 'returned');
    const returned = await staff.agent.submit(page, returnedAction);
    expect(returned.status, returned.html).toBe(303);
    expect(returned.location).toBe(`${userPath(b.caller)}?done=returned&device=${b.requested.id}`);
    const afterReturn = await staff.agent.get(returned.location!);
    expect(textById(afterReturn.html, 'notice')).toBe(
      `DSC+ ${second} of ${b.caller.username} is marked returned and no longer works. Deposit: ${usd20(b.caller.accountNumber, 'released on')}.`,
    );
    expect(rows(afterReturn.html, 'devices')[1]).toEqual([
      'Digital Security Card+ (DSC+)',
      second,
      'returned',
      '',
      usd20(b.caller.accountNumber, 'released on'),
    ]);
    expect(byId(afterReturn.html, `card-${b.requested.id}`)).toBeUndefined();
    expect(await h.services.dscPlusRequests.hold(b.requested.id)).toEqual({ status: 'released', amountUsd: 20, account: b.caller.accountNumber });
    expect((await auditOf(b.caller)).find((e) => e.event === 'deposit.settled')).toMatchObject({
      actor: `staff:${staff.user.id}`,
      data: { deviceId: b.requested.id, status: 'released', amountUsd: 20 },
    });
    expect(rows(afterReturn.html, 'audit').find((r) => r[1] === 'Deposit released or kept')?.[3]).toContain('status=released');
  });

  it('X3: bad card actions are refused on the user page with a translated error and nothing changes: no serial or a bad reason (400 VALIDATION_ERROR), a serial not in the stock (409 NO_STOCK), a state that does not allow it (409 DEVICE_STATE), a device of another user or none (404 DEVICE_NOT_FOUND), an unknown user (404 USER_NOT_FOUND)', async () => {
    const staff = await signedIn();
    const { caller, active, requested } = await withRequest();
    const { user: other, card: otherCard } = await createUserWithCard(h.services);
    const otherDevice = (await h.services.devices.listForUser(other.id)).find((d) => d.serial === otherCard.serial)!;
    const page = await staff.agent.get(userPath(caller));
    const token = csrfOf(form(page.html, `${userPath(caller)}/verifications`));
    const before = await stock();

    const cases: [string, Record<string, string>, number, string, string][] = [
      [devicePath(caller, requested.id, 'ship'), {}, 400, 'VALIDATION_ERROR', 'Choose the serial number of a card in the stock.'],
      [devicePath(caller, requested.id, 'ship'), { serial: 'x'.repeat(33) }, 400, 'VALIDATION_ERROR', 'Choose the serial number of a card in the stock.'],
      [devicePath(caller, requested.id, 'ship'), { serial: 'DSC9999999' }, 409, 'NO_STOCK', 'No card with serial DSC9999999 in the stock.'],
      [devicePath(caller, active.id, 'ship'), { serial: 'DSC9999999' }, 409, 'DEVICE_STATE', 'The device cannot do that in its state (active).'],
      [devicePath(caller, active.id, 'lost'), { reason: 'misplaced' }, 400, 'VALIDATION_ERROR', 'Choose what happened to the card: lost, stolen or damaged.'],
      [devicePath(caller, active.id, 'lost'), {}, 400, 'VALIDATION_ERROR', 'Choose what happened to the card: lost, stolen or damaged.'],
      [devicePath(caller, requested.id, 'returned'), {}, 409, 'DEVICE_STATE', 'The device cannot do that in its state (requested).'],
      [devicePath(caller, otherDevice.id, 'lost'), { reason: 'lost' }, 404, 'DEVICE_NOT_FOUND', 'No such device.'],
      [devicePath(caller, otherDevice.id, 'returned'), {}, 404, 'DEVICE_NOT_FOUND', 'No such device.'],
      [devicePath(caller, 'dev_nosuchdevice', 'returned'), {}, 404, 'DEVICE_NOT_FOUND', 'No such device.'],
    ];
    for (const [path, fields, status, code, message] of cases) {
      const res = await staff.agent.post(path, { _csrf: token, ...fields });
      expect(res.status, `${path} ${JSON.stringify(fields)}`).toBe(status);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(alertBox(res.html), path).toEqual({ code, role: 'alert', text: message });
      expect(h1s(res.html)).toEqual([`User ${caller.username}`]);
    }
    // the error box describes the form that failed, when the page shows it
    const failed = await staff.agent.post(devicePath(caller, active.id, 'lost'), { _csrf: token, reason: 'misplaced' });
    expect(form(failed.html, devicePath(caller, active.id, 'lost')).attrs['aria-describedby']).toBe('form-error');
    expect(form(failed.html, devicePath(caller, active.id, 'returned')).attrs['aria-describedby']).toBeUndefined();
    const unknown = await staff.agent.post(`/helpdesk/users/nosuchuser/devices/${requested.id}/returned`, { _csrf: token });
    expect(unknown.status).toBe(404);
    expect(alertBox(unknown.html)?.code).toBe('USER_NOT_FOUND');

    expect((await h.services.devices.get(requested.id)).state).toBe('requested');
    expect((await h.services.devices.get(active.id)).state).toBe('active');
    expect((await h.services.devices.get(otherDevice.id)).state).toBe('active');
    expect(await h.services.dscPlusRequests.hold(requested.id)).toMatchObject({ status: 'held' });
    expect(await stock()).toEqual(before);
    expect((await auditOf(caller)).map((e) => e.event)).not.toContain('device.shipped');
  });

  it('T1/C5: compliance sees the cards and their deposits but no ship, lost or returned form; a forged one is refused on the page (403 FORBIDDEN_ROLE) and changes nothing', async () => {
    const compliance = await signedIn('compliance');
    const { caller, card, active, requested } = await withRequest();
    const page = await compliance.agent.get(userPath(caller));
    expect(page.status).toBe(200);
    expect(rows(page.html, 'devices')).toEqual([
      ['Digital Security Card+ (DSC+)', card.serial, 'active', '', ''],
      ['Digital Security Card+ (DSC+)', '', 'requested', '', usd20(caller.accountNumber, 'held on')],
    ]);
    expect(forms(page.html)).toEqual([]);
    expect(byId(page.html, 'card-actions')).toBeUndefined();

    const token = csrfOf(form((await compliance.agent.get('/account')).html, '/logout'));
    const before = await stock();
    const forged: [string, Record<string, string>][] = [
      [devicePath(caller, requested.id, 'ship'), { serial: before[0] ?? 'DSC0000001' }],
      [devicePath(caller, active.id, 'lost'), { reason: 'stolen' }],
      [devicePath(caller, active.id, 'returned'), {}],
      [devicePath(caller, 'dev_nosuchdevice', 'returned'), {}],
    ];
    for (const [path, fields] of forged) {
      const res = await compliance.agent.post(path, { _csrf: token, ...fields });
      expect(res.status, path).toBe(403);
      expect(alertBox(res.html), path).toMatchObject({ code: 'FORBIDDEN_ROLE', role: 'alert' });
      expect(h1s(res.html)).toEqual([`User ${caller.username}`]);
      expect(forms(res.html)).toEqual([]);
    }
    expect((await h.services.devices.get(requested.id)).state).toBe('requested');
    expect((await h.services.devices.get(active.id)).state).toBe('active');
    expect(await h.services.dscPlusRequests.hold(requested.id)).toMatchObject({ status: 'held' });
    expect(await stock()).toEqual(before);
    const events = (await auditOf(caller)).map((e) => e.event);
    expect(events).not.toContain('device.shipped');
    expect(events).not.toContain('deposit.settled');
    expect(events).not.toContain('device.state_changed');
  });

  it('X3: the card forms refuse a POST without the CSRF token, or with a made-up one (403 CSRF_FAILED), and nothing is done', async () => {
    const staff = await signedIn();
    const { caller, active, requested } = await withRequest();
    const page = await staff.agent.get(userPath(caller));
    for (const f of forms(page.html)) expect(csrfOf(f), f.attrs.action).not.toBe('');
    const before = await stock();
    const actions: [string, Record<string, string>][] = [
      [devicePath(caller, requested.id, 'ship'), { serial: before[0] ?? 'DSC0000001' }],
      [devicePath(caller, active.id, 'lost'), { reason: 'stolen' }],
      [devicePath(caller, active.id, 'returned'), {}],
    ];
    for (const [path, fields] of actions) {
      const tokens: Record<string, string>[] = [{}, { _csrf: 'made-up-token' }];
      for (const extra of tokens) {
        const res = await staff.agent.post(path, { ...fields, ...extra });
        expect(res.status, path).toBe(403);
        expect(alertBox(res.html)?.code, path).toBe('CSRF_FAILED');
      }
    }
    expect((await h.services.devices.get(requested.id)).state).toBe('requested');
    expect((await h.services.devices.get(active.id)).state).toBe('active');
    expect(await h.services.dscPlusRequests.hold(requested.id)).toMatchObject({ status: 'held' });
    expect(await stock()).toEqual(before);
  });

  it('C8: when the stock has no DSC+ left, the page says so in place of the ship form', async () => {
    const staff = await signedIn();
    // use up what the other tests left of the stock
    for (const serial of await stock()) {
      const { requested } = await withRequest();
      await h.services.dscPlusRequests.ship(staff.user.id, requested.id, serial);
    }
    const { caller, requested } = await withRequest();
    const page = await staff.agent.get(userPath(caller));
    expect(hasForm(page.html, devicePath(caller, requested.id, 'ship'))).toBe(false);
    expect(textById(page.html, `no-stock-${requested.id}`)).toBe('There is no DSC+ in the stock: import a batch of cards before shipping.');
  });
});

describe('CSRF protection of the console forms (X3)', () => {
  it("X3: every console POST refuses a request without the token, or with a made-up one (403 CSRF_FAILED, nothing done); the login pages' token is good for the console (one sls_csrf cookie)", async () => {
    const staff = await signedIn();
    const { user: caller } = await createUserWithCard(h.services);
    const { id } = await verify(staff.agent, caller);
    const actions: [string, Record<string, string>][] = [
      [`${userPath(caller)}/verifications`, { method: 'id_document' }],
      [`${userPath(caller)}/temporary-passcode`, { verificationId: id }],
      [`${userPath(caller)}/temporary-passcode/revoke`, {}],
      [`${userPath(caller)}/password-reset`, { verificationId: id }],
      [`${userPath(caller)}/unlock`, { verificationId: id }],
    ];
    const tokens: Record<string, string>[] = [{}, { _csrf: 'made-up-token' }];
    for (const [path, fields] of actions) {
      for (const extra of tokens) {
        const res = await staff.agent.post(path, { ...fields, ...extra });
        expect(res.status, path).toBe(403);
        expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
        expect(alertBox(res.html)?.code, path).toBe('CSRF_FAILED');
      }
    }
    const events = (await auditOf(caller)).map((e) => e.event);
    expect(events.filter((e) => e === 'helpdesk.identity_verified')).toHaveLength(1);
    expect(events).not.toContain('helpdesk.temp_passcode_issued');

    // every console form posts with a _csrf token
    const page = await staff.agent.get(`${userPath(caller)}/verifications/${id}`);
    for (const f of forms(page.html)) {
      expect(f.attrs.method, f.open).toBe('post');
      expect(csrfOf(f)).not.toBe('');
    }
    // the token of the signed-in page (the login pages' plugin) works for the console
    const account = await staff.agent.get('/account');
    const ok = await staff.agent.post(`${userPath(caller)}/verifications`, { _csrf: csrfOf(form(account.html, '/logout')), method: 'video_call' });
    expect(ok.status).toBe(303);
  });
});

describe('languages (X2)', () => {
  const TEXTS = {
    fr: {
      console: 'Console du Service clientèle',
      search: "Nom d'utilisateur ou numéro de compte",
      user: 'Utilisateur',
      labels: [
        "Comment l'identité de l'appelant a été vérifiée",
        'Notes : ce qui a été vérifié',
        'temporairement indisponible',
        'perdu',
        "Motif du blocage (conservé dans le journal d'audit)",
        'Pays',
        'Numéro',
        'Ce qui est arrivé à la carte',
      ],
      method: "Pièce d'identité",
      verified: "Identité vérifiée (Pièce d'identité) : vérification",
      role: 'Client',
      passcode: "Code d'accès temporaire de",
      readIt: "Lisez maintenant ce code à l'appelant",
      expired: "L'identité de l'appelant doit être vérifiée à nouveau",
    },
    'zh-Hant': {
      console: '客戶服務部控制台',
      search: '用戶名或賬戶號碼',
      user: '用戶',
      labels: [
        '來電者身份的核實方式',
        '備註：核實了哪些資料',
        '暫時無法使用',
        '已遺失',
        '鎖定用戶的原因（記錄於審計日誌）',
        '國家/地區',
        '號碼',
        '安全卡的情況',
      ],
      method: '身份證明文件',
      verified: '身份已核實（身份證明文件）：核實編號',
      role: '客戶',
      passcode: '的臨時密碼',
      readIt: '請立即向來電者逐個字元讀出此密碼',
      expired: '執行此操作前須再次核實來電者的身份',
    },
  } as const;
  const ENGLISH =
    /\b(Help desk|Search|User name|Record the verification|Issue a temporary passcode|Temporary passcode|Security devices|Latest audit|Not locked|Identity verified|Read this passcode|Back to)\b/;

  it.each(['fr', 'zh-Hant'] as const)(
    'X2: the console in %s: search, user page, verification, passcode page and errors translated, every control labelled, no English left',
    async (lang) => {
      const t = TEXTS[lang];
      const staff = await signedIn('client_services', `?lang=${lang}`);
      const { user: caller } = await createUserWithCard(h.services);
      const account = await staff.agent.get('/account');
      expect(htmlLang(account.html)).toBe(lang);
      expect(textById(account.html, 'helpdesk-link')).toBe(t.console);

      const search = await staff.agent.get(`/helpdesk?q=${caller.username}`);
      expect(htmlLang(search.html)).toBe(lang);
      expect(h1s(search.html)).toEqual([t.console]);
      expect(expectEveryControlLabelled(search.html)).toEqual([t.search]);
      expect(rows(search.html, 'results')[0]?.[2]).toBe(t.role);

      const { page: verified, id } = await verify(staff.agent, caller, 'id_document');
      expect(htmlLang(verified.html)).toBe(lang);
      expect(h1s(verified.html)[0]).toContain(caller.username);
      expect(h1s(verified.html)[0]).toContain(t.user);
      expect(expectEveryControlLabelled(verified.html)).toEqual([...t.labels, ...IDENTIFICATION_LABELS[lang]]);
      expect(textById(verified.html, 'verification')).toContain(`${t.verified} ${id}`);
      expect(elements(byId(verified.html, 'method')!.inner, 'option').map((o) => text(o.inner))).toContain(t.method);
      // the language links keep the verification in effect
      const links = elements(elements(verified.html, 'nav')[0]!.inner, 'a').map((a) => a.attrs.href);
      expect(links).toEqual(['en', 'fr', 'zh-Hant'].map((l) => `${userPath(caller)}/verifications/${id}?lang=${l}`));

      const issued = await staff.agent.submit(verified, `${userPath(caller)}/temporary-passcode`, { deviceStatus: 'suspended' });
      const shown = await staff.agent.get(issued.location!);
      expect(htmlLang(shown.html)).toBe(lang);
      expect(h1s(shown.html)[0]).toContain(t.passcode);
      expect(textById(shown.html, 'read-it')).toContain(t.readIt);

      const refused = await staff.agent.post(`${userPath(caller)}/temporary-passcode`, {
        _csrf: csrfOf(form(verified.html, `${userPath(caller)}/verifications`)),
        verificationId: 'ver_nope',
      });
      expect(htmlLang(refused.html)).toBe(lang);
      expect(alertBox(refused.html)?.code).toBe('VERIFICATION_NOT_FOUND');

      h.clock.advance(31 * MINUTE);
      await logIn(staff.agent, staff.user, staff.card);
      const stale = await staff.agent.post(`${userPath(caller)}/temporary-passcode`, {
        _csrf: csrfOf(form((await staff.agent.get('/account')).html, '/logout')),
        verificationId: id,
      });
      expect(stale.status).toBe(403);
      expect(alertBox(stale.html)?.text).toContain(t.expired);

      for (const page of [search, verified, shown, refused, stale]) {
        // the audit details and actors are data, not text: leave the audit table out
        const visible = text(page.html.replace(/<table class="devices" id="audit">[\s\S]*?<\/table>/, ''));
        expect(visible).not.toMatch(ENGLISH);
      }
    },
  );

  it('X2: the console templates hold no text for people: everything comes from the translation files', () => {
    const views = new URL('../views/helpdesk/', import.meta.url);
    const files = readdirSync(views).filter((f) => f.endsWith('.eta'));
    expect(files.sort()).toEqual(['identification.eta', 'oidc-clients.eta', 'search.eta', 'secret.eta', 'sharing.eta', 'step-up-due.eta', 'user.eta']);
    for (const file of files) {
      const source = readFileSync(new URL(file, views), 'utf8')
        .replace(/<%[\s\S]*?%>/g, '')
        .replace(/<[^>]*>/g, ' ');
      expect(source.replace(/[\s()—:·]+/g, ''), file).toBe('');
    }
  });
});

describe('headers and structure of the console pages (L8)', () => {
  it('L8: every console page is sent no-store with the strict CSP, one h1, the skip link, and no inline script or style', async () => {
    const staff = await signedIn();
    const { user: caller } = await createUserWithCard(h.services);
    for (let i = 0; i < 10; i++) await startLogin(h.app, caller.username, `wrong ${i}`);
    const pages: [string, Page][] = [];
    pages.push(['search', await staff.agent.get('/helpdesk')]);
    pages.push(['results', await staff.agent.get(`/helpdesk?q=${caller.username}`)]);
    pages.push(['user', await staff.agent.get(userPath(caller))]);
    const { page: verified } = await verify(staff.agent, caller);
    pages.push(['verified', verified]);
    const issued = await staff.agent.submit(verified, `${userPath(caller)}/temporary-passcode`, { deviceStatus: 'lost' });
    pages.push(['passcode', await staff.agent.get(issued.location!)]);
    pages.push(['passcode again', await staff.agent.get(issued.location!)]);
    const reset = await staff.agent.submit(verified, `${userPath(caller)}/password-reset`);
    pages.push(['password', await staff.agent.get(reset.location!)]);
    pages.push(['password again', await staff.agent.get(reset.location!)]);
    pages.push(['unknown user', await staff.agent.get('/helpdesk/users/nosuchuser')]);
    for (const [name, page] of pages) {
      expect(page.headers['content-type'], name).toBe('text/html; charset=utf-8');
      expect(page.headers['cache-control'], name).toBe('no-store');
      const csp = String(page.headers['content-security-policy'] ?? '');
      expect(csp, name).toContain("default-src 'self'");
      expect(csp, name).toContain("form-action 'self'");
      expect(csp, name).not.toContain('unsafe-inline');
      // nothing the CSP would block: no inline script or style (a script of our own, by its src, is allowed)
      expect(page.html, name).not.toMatch(/<script(?![^>]*\ssrc="\/static\/)|\sstyle=|<style|\son[a-z]+=/i);
      expect(h1s(page.html), name).toHaveLength(1);
      expect(page.html, name).toContain('<a class="skip" href="#main">');
      expect(page.html, name).toContain('href="/static/sls.css"');
      expectEveryControlLabelled(page.html);
    }
  });
});
