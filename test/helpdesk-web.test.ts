/**
 * The help desk console (T1–T5, L3, A5, X1–X3) through the real HTTP stack
 * (Fastify inject): staff log in through the ordinary login pages with their
 * own card, then search a caller, record the identity verification, issue
 * and revoke a temporary passcode and lift a lock with the console's own
 * forms; the HTML that comes back is checked.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { DAY, MINUTE } from '../src/clock.js';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import type { Role } from '../src/store/schema.js';
import { PASSWORD, cardAnswer, createUserWithCard, startHarness, type Harness } from './support/harness.js';
import { answer, bearer, get, startLogin } from './support/api.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness('sqlite');
});
afterAll(async () => {
  await h.close();
});

// ---------------------------------------------------------------------------
// HTML helpers: our own well-formed templates, read with small regular expressions.

function decode(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&amp;/g, '&');
}

function text(fragment: string): string {
  return decode(fragment.replace(/<[^>]*>/g, ' '))
    .replace(/\s+/g, ' ')
    .trim();
}

function attributes(source: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const m of source.matchAll(/([A-Za-z_:][-\w:.]*)(?:\s*=\s*"([^"]*)")?/g)) result[m[1]!.toLowerCase()] = decode(m[2] ?? '');
  return result;
}

interface Element {
  tag: string;
  attrs: Record<string, string>;
  open: string;
  inner: string;
}

function elements(html: string, tag: string): Element[] {
  const found: Element[] = [];
  for (const m of html.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'gi'))) {
    const start = m.index + m[0].length;
    const end = html.toLowerCase().indexOf(`</${tag.toLowerCase()}>`, start);
    found.push({ tag: tag.toLowerCase(), attrs: attributes(m[1]!), open: m[0], inner: end < 0 ? '' : html.slice(start, end) });
  }
  return found;
}

function byId(html: string, id: string): Element | undefined {
  for (const m of html.matchAll(new RegExp(`<(\\w+)\\b[^>]*\\sid="${id}"[^>]*>`, 'g'))) {
    return elements(html.slice(m.index), m[1]!)[0];
  }
  return undefined;
}

function textById(html: string, id: string): string | undefined {
  const el = byId(html, id);
  return el ? text(el.inner) : undefined;
}

function h1s(html: string): string[] {
  return elements(html, 'h1').map((e) => text(e.inner));
}

function htmlLang(html: string): string | undefined {
  return elements(html, 'html')[0]?.attrs.lang;
}

function alertBox(html: string): { code: string | undefined; role: string | undefined; text: string } | null {
  const box = elements(html, 'div').find((d) => (d.attrs.class ?? '').split(/\s+/).includes('alert'));
  return box ? { code: box.attrs['data-code'], role: box.attrs.role, text: text(box.inner) } : null;
}

/** Every control a person fills in has a label (a <label for>, or one around it); every button has a text. Returns the labels. */
function labels(html: string): string[] {
  const all = elements(html, 'label');
  // in document order
  const controls = [...html.matchAll(/<(input|select|textarea)\b[^>]*>/gi)]
    .map((m) => elements(html.slice(m.index), m[1]!)[0]!)
    .filter((c) => !['hidden', 'submit', 'button'].includes(c.attrs.type ?? ''));
  const found = controls.map((control) => {
    const explicit = control.attrs.id ? all.find((l) => l.attrs.for === control.attrs.id) : undefined;
    const label = explicit ?? all.find((l) => l.inner.includes(control.open));
    expect(label, `label of ${control.open}`).toBeDefined();
    return text(label!.inner);
  });
  for (const button of elements(html, 'button')) expect(text(button.inner), button.open).not.toBe('');
  return found;
}

function forms(html: string): Element[] {
  return elements(html, 'form');
}

function form(html: string, action: string): Element {
  const found = forms(html).find((f) => f.attrs.action === action);
  if (!found) throw new Error(`no form with action ${action}`);
  return found;
}

function hasForm(html: string, action: string): boolean {
  return forms(html).some((f) => f.attrs.action === action);
}

function csrfOf(formElement: Element): string {
  const input = elements(formElement.inner, 'input').find((i) => i.attrs.name === '_csrf');
  if (!input?.attrs.value) throw new Error('the form has no _csrf field');
  return input.attrs.value;
}

function hiddenValue(formElement: Element, name: string): string | undefined {
  return elements(formElement.inner, 'input').find((i) => i.attrs.name === name && i.attrs.type === 'hidden')?.attrs.value;
}

/** The rows of a table (by id) as cell texts. */
function rows(html: string, id: string): string[][] {
  const table = byId(html, id);
  if (!table) return [];
  const body = elements(table.inner, 'tbody')[0]?.inner ?? '';
  return elements(body, 'tr').map((tr) => elements(tr.inner, 'td').map((td) => text(td.inner)));
}

// ---------------------------------------------------------------------------
// A user agent over inject: keeps cookies, follows nothing by itself.

interface Page {
  status: number;
  html: string;
  location: string | undefined;
  headers: LightMyRequestResponse['headers'];
  setCookies: string[];
}

interface RawCookie {
  name: string;
  value: string;
  maxAge?: number;
  expires?: Date;
}

class Agent {
  readonly jar = new Map<string, string>();

  constructor(private readonly app: FastifyInstance) {}

  private keep(raw: LightMyRequestResponse): Page {
    for (const c of raw.cookies as RawCookie[]) {
      const gone = c.value === '' || c.maxAge === 0 || (c.expires !== undefined && c.expires.getTime() <= Date.now());
      if (gone) this.jar.delete(c.name);
      else this.jar.set(c.name, c.value);
    }
    const setCookie = raw.headers['set-cookie'];
    return {
      status: raw.statusCode,
      html: raw.body,
      location: raw.headers.location === undefined ? undefined : String(raw.headers.location),
      headers: raw.headers,
      setCookies: setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [String(setCookie)],
    };
  }

  async get(url: string): Promise<Page> {
    return this.keep(await this.app.inject({ method: 'GET', url, cookies: Object.fromEntries(this.jar) }));
  }

  async post(url: string, fields: Record<string, string>): Promise<Page> {
    const raw = await this.app.inject({
      method: 'POST',
      url,
      payload: new URLSearchParams(fields).toString(),
      cookies: Object.fromEntries(this.jar),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    return this.keep(raw);
  }

  /** Submits a form of the page with its CSRF token and hidden fields, as a browser would. */
  submit(page: Page, action: string, fields: Record<string, string> = {}): Promise<Page> {
    const f = form(page.html, action);
    const hidden = Object.fromEntries(
      elements(f.inner, 'input')
        .filter((i) => i.attrs.type === 'hidden' && i.attrs.name)
        .map((i) => [i.attrs.name!, i.attrs.value ?? '']),
    );
    return this.post(action, { ...hidden, _csrf: csrfOf(f), ...fields });
  }
}

// ---------------------------------------------------------------------------

interface Person {
  agent: Agent;
  user: User;
  card: CardFile;
}

/** The whole login through the login pages with the card; ends signed in. */
async function logIn(agent: Agent, user: User, card: CardFile, query = ''): Promise<void> {
  const login = await agent.get(`/login${query}`);
  const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
  expect(started.status, started.html).toBe(303);
  const challenge = await agent.get(started.location!);
  const question = textById(challenge.html, 'challenge-code')!;
  const done = await agent.submit(challenge, started.location!, { response: cardAnswer(card, question) });
  expect(done.location).toBe('/account');
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

describe('who may use the console (T1, A5)', () => {
  it('T1: without a session every console page and form sends the browser to /login', async () => {
    const agent = new Agent(h.app);
    const { user } = await createUserWithCard(h.services);
    for (const path of ['/helpdesk', '/helpdesk?q=abc', userPath(user), `${userPath(user)}/verifications/ver_x`, `${userPath(user)}/passcode`]) {
      const page = await agent.get(path);
      expect(page.status, path).toBe(303);
      expect(page.location, path).toBe('/login');
    }
    const login = await agent.get('/login');
    const token = csrfOf(form(login.html, '/login'));
    const post = await agent.post(`${userPath(user)}/verifications`, { _csrf: token, method: 'id_document' });
    expect(post.status).toBe(303);
    expect(post.location).toBe('/login');
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
    const issuer = await createUserWithCard(h.services, '1234', { role: 'client_services' });
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
    agent.jar.set('sls_session', token);
    const page = await agent.get('/helpdesk');
    expect(page.status).toBe(403);
    expect(alertBox(page.html)?.code).toBe('FORBIDDEN_ROLE');
  });

  it('T1: compliance may search and look at a user, has no action forms, and a forged action is refused on the page (403 FORBIDDEN_ROLE)', async () => {
    const compliance = await signedIn('compliance');
    const { user: caller } = await createUserWithCard(h.services);
    const account = await compliance.agent.get('/account');
    expect(byId(account.html, 'helpdesk-link')?.attrs.href).toBe('/helpdesk');
    expect(textById(account.html, 'helpdesk-link')).toBe('Help desk console');

    const search = await compliance.agent.get(`/helpdesk?q=${caller.username}`);
    expect(search.status).toBe(200);
    expect(textById(search.html, 'signed-in-as')).toBe(`Signed in as ${compliance.user.username} (Compliance). Your role may look up users but not act for them.`);
    expect(rows(search.html, 'results').map((r) => r[0])).toEqual([caller.username]);

    const page = await compliance.agent.get(userPath(caller));
    expect(page.status).toBe(200);
    expect(textById(page.html, 'view-only')).toBe('Your role may look up users but not act for them.');
    expect(forms(page.html)).toEqual([]);
    expect(rows(page.html, 'devices')).toEqual([['Digital Security Card+ (DSC+)', expect.stringMatching(/^DSC\d{7}$/), 'active', '']]);

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
    expect(labels(console.html)).toEqual(['User name or account number']);
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
    const post = await staff.agent.post('/helpdesk/users/nosuchuser/verifications', { _csrf: csrfOf(form((await staff.agent.get('/account')).html, '/logout')), method: 'id_document' });
    expect(post.status).toBe(404);
    expect(alertBox(post.html)?.code).toBe('USER_NOT_FOUND');
  });
});

describe("the user page (L3, X1)", () => {
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
    expect(rows(page.html, 'devices')).toEqual([['Digital Security Card+ (DSC+)', card.serial, 'active', '']]);
    const audit = rows(page.html, 'audit');
    expect(audit.map((r) => r[1])).toEqual(expect.arrayContaining(['Wrong password', 'Device added', 'User created']));
    expect(audit.find((r) => r[1] === 'Device added')).toEqual([expect.stringMatching(/ UTC$/), 'Device added', 'test', expect.stringContaining(`serial=${card.serial}`)]);
    expect(textById(page.html, 'verification-needed')).toBe('The actions below need a recorded identity verification: verify the caller first.');
    // before a verification, only the verification form
    expect(forms(page.html).map((f) => f.attrs.action)).toEqual([`${userPath(caller)}/verifications`]);
    expect(labels(page.html)).toEqual(["How the caller's identity was verified", 'Notes: what was checked']);
    const options = elements(byId(page.html, 'method')!.inner, 'option').map((o) => [o.attrs.value, text(o.inner)]);
    expect(options).toEqual([
      ['', 'Choose how'],
      ['security_questions', 'Security questions'],
      ['id_document', 'Identification document'],
      ['callback_on_record', 'Call back on the number on record'],
      ['video_call', 'Video call'],
    ]);
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
    expect(labels(verified.html)).toEqual(["How the caller's identity was verified", 'Notes: what was checked', 'temporarily unavailable', 'lost']);
    expect(elements(issueForm.inner, 'legend').map((l) => text(l.inner))).toEqual(["The caller's security device is"]);
    expect(hasForm(verified.html, `${userPath(caller)}/unlock`)).toBe(false); // not locked

    const issued = await staff.agent.submit(verified, `${userPath(caller)}/temporary-passcode`, { deviceStatus: 'suspended' });
    expect(issued.status).toBe(303);
    expect(issued.location).toBe(`${userPath(caller)}/passcode`);
    expect(issued.html).not.toMatch(/[A-Z2-9]{8}/);
    const handover = issued.setCookies.find((c) => c.startsWith('sls_hd_passcode='))!;
    expect(handover).toMatch(new RegExp(`Path=${userPath(caller)}/passcode`));
    expect(handover).toMatch(/HttpOnly/);
    expect(handover).toMatch(/SameSite=Strict/);
    const sealed = staff.agent.jar.get('sls_hd_passcode')!;

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
    expect(staff.agent.jar.has('sls_hd_passcode')).toBe(false); // the page cleared it

    // T5: shown once: a reload shows it no more, nor does the sealed cookie in another staff member's browser
    const reload = await staff.agent.get(issued.location!);
    expect(reload.status).toBe(200);
    expect(byId(reload.html, 'passcode')).toBeUndefined();
    expect(reload.html).not.toContain(passcode);
    expect(textById(reload.html, 'passcode-gone')).toContain('cannot be shown again');
    const other = await signedIn();
    other.agent.jar.set('sls_hd_passcode', sealed);
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
    expect(audit.find((e) => e.event === 'helpdesk.identity_verified')).toMatchObject({ actor: `staff:${staff.user.id}`, data: { verificationId: id, method: 'id_document' } });
    expect(audit.find((e) => e.event === 'helpdesk.temp_passcode_issued')).toMatchObject({ actor: `staff:${staff.user.id}`, data: { verificationId: id } });
    expect(audit.find((e) => e.event === 'device.state_changed')).toMatchObject({ actor: `staff:${staff.user.id}`, data: { to: 'suspended' } });
    const auditRows = rows(after.html, 'audit');
    expect(auditRows.find((r) => r[1] === 'Temporary passcode issued')?.[2]).toBe(`staff:${staff.user.id}`);
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

    const again = await staff.agent.post(`${userPath(caller)}/temporary-passcode/revoke`, { _csrf: csrfOf(form(notice.html, `${userPath(caller)}/verifications`)) });
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
    expect((await auditOf(caller)).find((e) => e.event === 'helpdesk.unlocked')).toMatchObject({ actor: `staff:${staff.user.id}`, data: { verificationId: id } });
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
    expect(textById(stale.html, 'verification-expired')).toMatch(new RegExp(`^The identity verification ${id} expired at .+ UTC\\. Verify the caller's identity again\\.$`));
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

describe('CSRF protection of the console forms (X3)', () => {
  it('X3: every console POST refuses a request without the token, or with a made-up one (403 CSRF_FAILED, nothing done); the login pages\' token is good for the console (one sls_csrf cookie)', async () => {
    const staff = await signedIn();
    const { user: caller } = await createUserWithCard(h.services);
    const { id } = await verify(staff.agent, caller);
    const actions: [string, Record<string, string>][] = [
      [`${userPath(caller)}/verifications`, { method: 'id_document' }],
      [`${userPath(caller)}/temporary-passcode`, { verificationId: id }],
      [`${userPath(caller)}/temporary-passcode/revoke`, {}],
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
      search: 'Nom d\'utilisateur ou numéro de compte',
      user: 'Utilisateur',
      labels: ["Comment l'identité de l'appelant a été vérifiée", 'Notes : ce qui a été vérifié', 'temporairement indisponible', 'perdu'],
      method: 'Pièce d\'identité',
      verified: 'Identité vérifiée (Pièce d\'identité) : vérification',
      role: 'Client',
      passcode: 'Code d\'accès temporaire de',
      readIt: 'Lisez maintenant ce code à l\'appelant',
      expired: "L'identité de l'appelant doit être vérifiée à nouveau",
    },
    'zh-Hant': {
      console: '客戶服務部控制台',
      search: '用戶名或帳戶號碼',
      user: '用戶',
      labels: ['來電者身份的核實方式', '備註：核實了哪些資料', '暫時無法使用', '已遺失'],
      method: '身份證明文件',
      verified: '身份已核實（身份證明文件）：核實編號',
      role: '客戶',
      passcode: '的臨時密碼',
      readIt: '請立即向來電者逐個字元讀出此密碼',
      expired: '執行此操作前須再次核實來電者的身份',
    },
  } as const;
  const ENGLISH = /\b(Help desk|Search|User name|Record the verification|Issue a temporary passcode|Temporary passcode|Security devices|Latest audit|Not locked|Identity verified|Read this passcode|Back to)\b/;

  it.each(['fr', 'zh-Hant'] as const)('X2: the console in %s: search, user page, verification, passcode page and errors translated, every control labelled, no English left', async (lang) => {
    const t = TEXTS[lang];
    const staff = await signedIn('client_services', `?lang=${lang}`);
    const { user: caller } = await createUserWithCard(h.services);
    const account = await staff.agent.get('/account');
    expect(htmlLang(account.html)).toBe(lang);
    expect(textById(account.html, 'helpdesk-link')).toBe(t.console);

    const search = await staff.agent.get(`/helpdesk?q=${caller.username}`);
    expect(htmlLang(search.html)).toBe(lang);
    expect(h1s(search.html)).toEqual([t.console]);
    expect(labels(search.html)).toEqual([t.search]);
    expect(rows(search.html, 'results')[0]?.[2]).toBe(t.role);

    const { page: verified, id } = await verify(staff.agent, caller, 'id_document');
    expect(htmlLang(verified.html)).toBe(lang);
    expect(h1s(verified.html)[0]).toContain(caller.username);
    expect(h1s(verified.html)[0]).toContain(t.user);
    expect(labels(verified.html)).toEqual(t.labels);
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

    const refused = await staff.agent.post(`${userPath(caller)}/temporary-passcode`, { _csrf: csrfOf(form(verified.html, `${userPath(caller)}/verifications`)), verificationId: 'ver_nope' });
    expect(htmlLang(refused.html)).toBe(lang);
    expect(alertBox(refused.html)?.code).toBe('VERIFICATION_NOT_FOUND');

    h.clock.advance(31 * MINUTE);
    await logIn(staff.agent, staff.user, staff.card);
    const stale = await staff.agent.post(`${userPath(caller)}/temporary-passcode`, { _csrf: csrfOf(form((await staff.agent.get('/account')).html, '/logout')), verificationId: id });
    expect(stale.status).toBe(403);
    expect(alertBox(stale.html)?.text).toContain(t.expired);

    for (const page of [search, verified, shown, refused, stale]) {
      // the audit details and actors are data, not text: leave the audit table out
      const visible = text(page.html.replace(/<table class="devices" id="audit">[\s\S]*?<\/table>/, ''));
      expect(visible).not.toMatch(ENGLISH);
    }
  });

  it('X2: the console templates hold no text for people: everything comes from the translation files', () => {
    const views = new URL('../views/helpdesk/', import.meta.url);
    const files = readdirSync(views).filter((f) => f.endsWith('.eta'));
    expect(files.sort()).toEqual(['passcode.eta', 'search.eta', 'user.eta']);
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
    pages.push(['unknown user', await staff.agent.get('/helpdesk/users/nosuchuser')]);
    for (const [name, page] of pages) {
      expect(page.headers['content-type'], name).toBe('text/html; charset=utf-8');
      expect(page.headers['cache-control'], name).toBe('no-store');
      const csp = String(page.headers['content-security-policy'] ?? '');
      expect(csp, name).toContain("default-src 'self'");
      expect(csp, name).toContain("form-action 'self'");
      expect(csp, name).not.toContain('unsafe-inline');
      expect(page.html, name).not.toMatch(/<script|\sstyle=|<style|\son[a-z]+=/i);
      expect(h1s(page.html), name).toHaveLength(1);
      expect(page.html, name).toContain('<a class="skip" href="#main">');
      expect(page.html, name).toContain('href="/static/sls.css"');
      labels(page.html);
    }
  });
});
