/**
 * The server-rendered web pages (L1-L8, A3, C2, C3, X2, X3) without a
 * browser: the pages are driven through the real HTTP stack (Fastify inject)
 * by a small user agent that keeps cookies and submits the pages' own forms,
 * and the HTML that comes back is checked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MINUTE } from '../src/clock.js';
import { DATABASES, PASSWORD, cardAnswer, createUser, createUserWithCard, startHarness, uniqueUsername, wrongAnswer, type Harness } from './support/harness.js';
import { lockedPair, usernamesInEveryState } from './support/enumeration.js';
import { cookieNames } from '../src/http/session-cookie.js';
import {
  Agent,
  alertBox,
  byId,
  cookieHeader,
  csrfOf,
  elements,
  expectEveryControlLabelled,
  form,
  h1s,
  htmlLang,
  labelOf,
  languageLinks,
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

/** Username and password through the login form; returns the challenge page. */
async function toChallenge(agent: Agent, username: string, password = PASSWORD, app: 'portal' | 'trading' = 'portal', query = '') {
  const login = await agent.get(`/login${query}`);
  expect(login.status).toBe(200);
  const started = await agent.submit(login, '/login', { username, password, app });
  expect(started.status, started.html).toBe(303);
  const flowPath = started.location!;
  expect(flowPath).toMatch(/^\/login\/flw_[a-z2-7]{26}$/);
  const challenge = await agent.get(flowPath);
  expect(challenge.status).toBe(200);
  const question = textById(challenge.html, 'challenge-code')!;
  expect(question).toMatch(/^\d{6}$/);
  return { flowPath, challenge, question };
}

/** A whole login through the forms; returns the signed-in page. */
async function signIn(agent: Agent, query = '') {
  const { user, card } = await createUserWithCard(h.services);
  const { flowPath, challenge, question } = await toChallenge(agent, user.username, PASSWORD, 'portal', query);
  const done = await agent.submit(challenge, flowPath, { response: cardAnswer(card, question) });
  expect(done.status).toBe(303);
  expect(done.location).toBe('/account');
  const account = await agent.get('/account');
  expect(account.status).toBe(200);
  return { user, card, account, challenge };
}

// ---------------------------------------------------------------------------

const TEXTS = {
  en: {
    title: 'Log in',
    username: 'User name',
    password: 'Password',
    portal: 'Client Portal',
    trading: 'Trading platform',
    challenge: 'Security code',
    response: 'Response',
    signedIn: 'Signed in',
    logout: 'Log out',
    nav: 'Language',
  },
  fr: {
    title: 'Connexion',
    username: "Nom d'utilisateur",
    password: 'Mot de passe',
    portal: 'Portail Client',
    trading: 'Plateforme de trading',
    challenge: 'Code de sécurité',
    response: 'Réponse',
    signedIn: 'Connecté',
    logout: 'Déconnexion',
    nav: 'Langue',
  },
  'zh-Hant': {
    title: '登錄',
    username: '用戶名',
    password: '密碼',
    portal: '客戶端口',
    trading: '交易平臺',
    challenge: '安全碼',
    response: '響應碼',
    signedIn: '已登錄',
    logout: '登出',
    nav: '語言',
  },
} as const;
type Lang = keyof typeof TEXTS;
const LANGS = Object.keys(TEXTS) as Lang[];

function expectLoginPageIn(page: Page, lang: Lang): void {
  const t = TEXTS[lang];
  expect(page.status).toBe(200);
  expect(htmlLang(page.html)).toBe(lang);
  expect(h1s(page.html)).toEqual([t.title]);
  expect(expectEveryControlLabelled(page.html)).toEqual([t.username, t.password, t.portal, t.trading]);
  const links = languageLinks(page.html);
  expect(links.map((l) => l.href)).toEqual(['/login?lang=en', '/login?lang=fr', '/login?lang=zh-Hant']);
  expect(links.map((l) => l.label)).toEqual(['English', 'Français', '繁體中文']);
  expect(links.map((l) => l.hreflang)).toEqual(['en', 'fr', 'zh-Hant']);
  expect(links.map((l) => l.lang)).toEqual(['en', 'fr', 'zh-Hant']);
  expect(links.filter((l) => l.current).map((l) => l.hreflang)).toEqual([lang]);
  expect(elements(page.html, 'nav')[0]?.attrs['aria-label']).toBe(t.nav);
}

describe('languages (X2)', () => {
  it.each(LANGS)(
    'X2: ?lang=%s renders the login page in that language, with <html lang>, a label for every input, the switcher, and the sls_lang cookie',
    async (lang) => {
      const agent = new Agent(h.app);
      const page = await agent.get(`/login?lang=${lang}`);
      expectLoginPageIn(page, lang);
      const cookie = cookieHeader(page, 'sls_lang')!;
      expect(cookie).toMatch(new RegExp(`^sls_lang=${lang};`));
      expect(cookie).toMatch(/Path=\//);
      expect(cookie).toMatch(/SameSite=Lax/);
      expect(cookie).toMatch(/Max-Age=31536000/);
      expect(agent.jar.get('sls_lang')).toBe(lang);
    },
  );

  it.each(LANGS)('X2: the sls_lang cookie alone (%s) keeps the language of the pages', async (lang) => {
    const agent = new Agent(h.app, { 'accept-language': 'en-US,en;q=0.9' });
    agent.jar.set('sls_lang', lang);
    const page = await agent.get('/login');
    expectLoginPageIn(page, lang);
    expect(cookieHeader(page, 'sls_lang')).toBeUndefined();
  });

  it.each([
    ['fr-CA,fr;q=0.9,en;q=0.5', 'fr'],
    ['zh-TW,zh;q=0.9', 'zh-Hant'],
    ['zh-Hant-HK', 'zh-Hant'],
    ['de-DE,en;q=0.3', 'en'],
    ['de-DE', 'en'],
  ] as const)('X2: Accept-Language %s gives the login page in %s', async (header, lang) => {
    const page = await new Agent(h.app, { 'accept-language': header }).get('/login');
    expectLoginPageIn(page, lang);
    expect(cookieHeader(page, 'sls_lang')).toBeUndefined();
  });

  it('X2: ?lang= wins over the cookie, which wins over Accept-Language; an unknown ?lang= is ignored and sets no cookie', async () => {
    const agent = new Agent(h.app, { 'accept-language': 'fr' });
    expectLoginPageIn(await agent.get('/login'), 'fr');
    expectLoginPageIn(await agent.get('/login?lang=zh-Hant'), 'zh-Hant');
    expect(agent.jar.get('sls_lang')).toBe('zh-Hant');
    expectLoginPageIn(await agent.get('/login'), 'zh-Hant');
    const unknown = await agent.get('/login?lang=de');
    expectLoginPageIn(unknown, 'zh-Hant');
    expect(cookieHeader(unknown, 'sls_lang')).toBeUndefined();
    expectLoginPageIn(await agent.get('/login?lang=en'), 'en');
    expect(agent.jar.get('sls_lang')).toBe('en');
  });

  it.each(['fr', 'zh-Hant'] as const)('X2: a whole login in %s: the challenge, error and signed-in pages are translated and labelled', async (lang) => {
    const t = TEXTS[lang];
    const agent = new Agent(h.app);
    const { user, card } = await createUserWithCard(h.services);
    const { flowPath, challenge, question } = await toChallenge(agent, user.username, PASSWORD, 'trading', `?lang=${lang}`);
    expect(htmlLang(challenge.html)).toBe(lang);
    expect(h1s(challenge.html)).toEqual([t.challenge]);
    expect(expectEveryControlLabelled(challenge.html)).toEqual([t.response]);
    expect(languageLinks(challenge.html).map((l) => l.href)).toEqual(['en', 'fr', 'zh-Hant'].map((l) => `${flowPath}?lang=${l}`));
    const failed = await agent.submit(challenge, flowPath, { response: wrongAnswer(cardAnswer(card, question)) });
    expect(failed.status).toBe(401);
    expect(htmlLang(failed.html)).toBe(lang);
    const error = alertBox(failed.html)!;
    expect(error.code).toBe('LOGIN_FAILED');
    expect(error.text).toContain(lang === 'fr' ? 'Échec de la connexion' : '登錄失敗');
    expect(error.text).toContain(lang === 'fr' ? 'aucun espace' : '沒有空格');
    const done = await agent.submit(failed, flowPath, { response: cardAnswer(card, question) });
    expect(done.location).toBe('/account');
    const account = await agent.get('/account');
    expect(htmlLang(account.html)).toBe(lang);
    expect(h1s(account.html)).toEqual([t.signedIn]);
    expect(textById(account.html, 'welcome')).toContain(user.username);
    expect(textById(account.html, 'session-app')).toBe(t.trading);
    expect(text(byId(account.html, 'logout')!.inner)).toBe(t.logout);
    // no English left on the translated pages
    for (const page of [challenge, failed, account]) {
      expect(text(page.html)).not.toMatch(/\b(Log In|Log in|Security code|Response|Signed in|Log out|Login failed|attempts? left)\b/);
    }
  });

  // The French intro once read "… de la connexion de bob au Plateforme de trading" ("Plateforme" is feminine).
  it('X2: the French challenge page introduces a trading login grammatically (never "au Plateforme")', async () => {
    const agent = new Agent(h.app);
    const { user } = await createUserWithCard(h.services);
    const portal = await toChallenge(agent, user.username, PASSWORD, 'portal', '?lang=fr');
    expect(text(portal.challenge.html)).toContain(`de la connexion de l'utilisateur ${user.username} (Portail Client)`);
    const trading = await toChallenge(agent, user.username, PASSWORD, 'trading', '?lang=fr');
    expect(text(trading.challenge.html)).toContain('Plateforme de trading');
    expect(text(trading.challenge.html)).not.toContain('au Plateforme');
  });

  // The device heading's colon once sat in the template: French needs " :" and Chinese "：".
  it('X2: the punctuation of the device heading on the challenge page is translated, not hard-coded in the template', async () => {
    const { user } = await createUserWithCard(h.services);
    const fr = await toChallenge(new Agent(h.app), user.username, PASSWORD, 'portal', '?lang=fr');
    const frHeading = textById(fr.challenge.html, 'device-heading')!;
    expect(frHeading).toContain('Appareil de sécurité');
    expect(frHeading).not.toMatch(/\S:/);
    const zh = await toChallenge(new Agent(h.app), user.username, PASSWORD, 'portal', '?lang=zh-Hant');
    const zhHeading = textById(zh.challenge.html, 'device-heading')!;
    expect(zhHeading).toContain('安全設備');
    expect(zhHeading).not.toContain(':');
  });

  // Pages rendered as the answer to a POST once took their language links from the POST's path;
  // /logout and /login/{id}/device have no GET route.
  it('X2: the language links of every page lead to a page, also on pages shown after a POST (/logout, /login/{id}/device)', async () => {
    const agent = new Agent(h.app);
    const { user } = await createUserWithCard(h.services);
    await h.services.devices.addDscPlus({ userId: user.id, pin: '2222' }, 'test');
    const { flowPath, challenge } = await toChallenge(agent, user.username);
    const switchFailed = await agent.submit(challenge, `${flowPath}/device`, { device: 'dev_doesnotexist' });
    expect(switchFailed.status).toBe(404);
    expect(alertBox(switchFailed.html)?.code).toBe('DEVICE_NOT_FOUND');
    const logoutRefused = await agent.post('/logout', {});
    expect(alertBox(logoutRefused.html)?.code).toBe('CSRF_FAILED');
    const problems: string[] = [];
    for (const page of [challenge, switchFailed, logoutRefused]) {
      const links = languageLinks(page.html);
      expect(links).toHaveLength(3);
      for (const link of links) {
        const target = await agent.get(link.href);
        if (![200, 303].includes(target.status) || !String(target.headers['content-type']).startsWith('text/html')) {
          problems.push(`${link.href} -> ${target.status} ${String(target.headers['content-type'])}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('CSRF protection of every form (X3)', () => {
  it('X3: POST /login without _csrf gets the 403 error page with data-code="CSRF_FAILED" on the .alert box; nothing is checked', async () => {
    const user = await createUser(h.services);
    const agent = new Agent(h.app);
    await agent.get('/login'); // the sls_csrf cookie is there, the token is not sent
    expect(agent.jar.has('__Host-sls_csrf')).toBe(true);
    const refused = await agent.post('/login', { username: user.username, password: 'wrong password' });
    expect(refused.status).toBe(403);
    expect(refused.headers['content-type']).toMatch(/^text\/html/);
    expect(h1s(refused.html)).toEqual(['Error']);
    expect(alertBox(refused.html)).toEqual({
      code: 'CSRF_FAILED',
      role: 'alert',
      text: 'The form has expired or did not come from this site. Reload the page and try again.',
    });
    const events = await h.services.audit.list({ username: user.username, limit: 10 });
    expect(events.filter((e) => e.event.startsWith('login.'))).toEqual([]);
  });

  it('X3: the CSRF error page is translated too', async () => {
    const agent = new Agent(h.app);
    await agent.get('/login?lang=fr');
    const refused = await agent.post('/login', { username: 'someone', password: PASSWORD });
    expect(refused.status).toBe(403);
    expect(htmlLang(refused.html)).toBe('fr');
    expect(alertBox(refused.html)).toMatchObject({ code: 'CSRF_FAILED', text: expect.stringContaining('Rechargez la page') });
  });

  it('L1/X3: with the token of the hidden _csrf input and the sls_csrf cookie set on the GET, the login form works', async () => {
    const user = await createUser(h.services);
    const agent = new Agent(h.app);
    const page = await agent.get('/login');
    const cookie = cookieHeader(page, '__Host-sls_csrf')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const token = csrfOf(form(page.html, '/login'));
    const res = await agent.post('/login', { _csrf: token, username: user.username, password: 'wrong password' });
    expect(res.status).toBe(401);
    expect(alertBox(res.html)?.code).toBe('INVALID_CREDENTIALS');
  });

  it("X3: the token alone (no sls_csrf cookie), or with another visitor's cookie, or a made-up token, is refused", async () => {
    const user = await createUser(h.services);
    const alice = new Agent(h.app);
    const token = csrfOf(form((await alice.get('/login')).html, '/login'));
    const mallory = new Agent(h.app);
    await mallory.get('/login');
    const fields = { username: user.username, password: 'wrong password' };
    const noCookie = await h.app.inject({
      method: 'POST',
      url: '/login',
      payload: new URLSearchParams({ _csrf: token, ...fields }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(noCookie.statusCode).toBe(403);
    expect(noCookie.body).toContain('data-code="CSRF_FAILED"');
    expect((await mallory.post('/login', { _csrf: token, ...fields })).status).toBe(403);
    expect((await alice.post('/login', { _csrf: 'made-up-token', ...fields })).status).toBe(403);
    expect((await alice.post('/login', { _csrf: token, ...fields })).status).toBe(401);
  });

  it('X3: every POST form carries a _csrf field, and every POST route (/login, /login/{id}, /login/{id}/device, /logout) refuses a request without it', async () => {
    const { user, card } = await createUserWithCard(h.services);
    await h.services.devices.addDscPlus({ userId: user.id, pin: '2222' }, 'test');
    const agent = new Agent(h.app);
    const login = await agent.get('/login');
    const { flowPath, challenge, question } = await toChallenge(agent, user.username);
    for (const page of [login, challenge]) {
      for (const f of elements(page.html, 'form')) {
        expect(f.attrs.method, f.open).toBe('post');
        expect(csrfOf(f)).not.toBe('');
      }
    }
    expect(elements(challenge.html, 'form').map((f) => f.attrs.action)).toEqual([flowPath, `${flowPath}/device`]);

    const devices = await h.services.devices.listForUser(user.id);
    const refusals = [
      await agent.post('/login', { username: user.username, password: PASSWORD }),
      await agent.post(flowPath, { response: cardAnswer(card, question) }),
      await agent.post(`${flowPath}/device`, { device: devices[1]!.id }),
    ];
    for (const res of refusals) {
      expect(res.status).toBe(403);
      expect(alertBox(res.html)?.code).toBe('CSRF_FAILED');
    }
    // the flow was not touched by the refused requests: the right answer still logs in
    const done = await agent.submit(challenge, flowPath, { response: cardAnswer(card, question) });
    expect(done.location).toBe('/account');
    const account = await agent.get('/account');
    const logoutForm = form(account.html, '/logout');
    expect(logoutForm.attrs.method).toBe('post');
    const refusedLogout = await agent.post('/logout', {});
    expect(refusedLogout.status).toBe(403);
    expect(alertBox(refusedLogout.html)?.code).toBe('CSRF_FAILED');
    expect((await agent.get('/account')).status).toBe(200); // still signed in
    expect((await agent.submit(account, '/logout', {})).location).toBe('/login?loggedOut=1');
  });
});

describe('a whole login through the forms (L2, L7, L8, C2, C3)', () => {
  it('L2/L7/L8/C2/C3: POST /login → 303 /login/{flowId} → challenge → response → 303 /account with the session cookie → signed in → logout ends the session', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    const login = await agent.get('/login');
    const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
    expect(started.status).toBe(303);
    expect(started.location).toMatch(/^\/login\/flw_[a-z2-7]{26}$/);
    expect(cookieHeader(started, '__Host-sls_session')).toBeUndefined();
    const flowPath = started.location!;

    const challenge = await agent.get(flowPath);
    expect(challenge.status).toBe(200);
    expect(h1s(challenge.html)).toEqual(['Security code']);
    expect(text(challenge.html)).toContain(`Second step of the login of ${user.username} (Client Portal).`);
    const question = textById(challenge.html, 'challenge-code')!;
    expect(question).toMatch(/^\d{6}$/); // C2: the 6-digit challenge
    const flowId = flowPath.split('/').at(-1)!;
    expect((await h.services.login.owned(flowId, agent.jar.get(cookieNames(h.services.config).claim)!.split('.')[0], { ip: null })).challenge).toEqual({
      type: 'ocra',
      question,
      digits: 8,
    });
    expect(text(challenge.html)).toContain('3 attempts left.');
    const expires = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'medium', timeZone: 'UTC' }).format(h.clock.now() + 5 * MINUTE);
    expect(text(challenge.html)).toContain(`This challenge expires at ${expires} UTC. If it expires, start over.`);
    expect(textById(challenge.html, 'response-help')).toBe('8 digits, no spaces.');
    expect(byId(challenge.html, 'response')?.attrs).toMatchObject({ name: 'response', autocomplete: 'one-time-code', inputmode: 'numeric' });

    const response = cardAnswer(card, question);
    expect(response).toMatch(/^\d{8}$/); // C3: the card's 8-digit response
    const done = await agent.submit(challenge, flowPath, { response });
    expect(done.status).toBe(303);
    expect(done.location).toBe('/account');
    const sessionCookie = cookieHeader(done, '__Host-sls_session')!;
    expect(sessionCookie).toBeDefined();
    expect(sessionCookie).toMatch(/HttpOnly/);
    expect(sessionCookie).toMatch(/SameSite=Lax/);
    expect(sessionCookie).toMatch(/Secure/);
    expect(sessionCookie).toMatch(/Path=\//);
    const token = agent.jar.get('__Host-sls_session')!;
    expect(await h.services.sessions.authenticate(token)).toMatchObject({ userId: user.id, app: 'portal' });

    // the used flow now leads to the signed-in page
    expect((await agent.get(flowPath)).location).toBe('/account');
    expect((await agent.get('/')).location).toBe('/account');

    const account = await agent.get('/account');
    expect(account.status).toBe(200);
    expect(h1s(account.html)).toEqual(['Signed in']);
    expect(textById(account.html, 'welcome')).toBe(`You are signed in as ${user.username}.`);
    expect(textById(account.html, 'session-app')).toBe('Client Portal');
    expect(text(account.html)).toContain('Digital Security Card+ (DSC+)');

    const loggedOut = await agent.submit(account, '/logout', {});
    expect(loggedOut.status).toBe(303);
    expect(loggedOut.location).toBe('/login?loggedOut=1');
    expect(cookieHeader(loggedOut, '__Host-sls_session')).toMatch(/^__Host-sls_session=;/);
    expect(agent.jar.has('__Host-sls_session')).toBe(false);
    expect(await h.services.sessions.authenticate(token)).toBeNull();
    const notice = await agent.get('/login?loggedOut=1');
    expect(text(notice.html)).toContain('You have logged out.');

    // the old cookie is dead server-side, not just forgotten by this browser
    const replay = new Agent(h.app);
    replay.jar.set('__Host-sls_session', token);
    const after = await replay.get('/account');
    expect(after.status).toBe(303);
    expect(after.location).toBe('/login');
    expect((await replay.get('/')).location).toBe('/login');
    const ended = await h.services.audit.list({ username: user.username, limit: 50 });
    expect(ended.map((e) => e.event)).toContain('session.ended');
  });

  it('L8: each login gets a new session id; a portal session idle for 30 minutes sends the browser back to the login page', async () => {
    const first = new Agent(h.app);
    await signIn(first);
    const agent = new Agent(h.app);
    await signIn(agent);
    const token = agent.jar.get('__Host-sls_session')!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(first.jar.get('__Host-sls_session')).not.toBe(token);
    h.clock.advance(29 * MINUTE);
    expect((await agent.get('/account')).status).toBe(200);
    h.clock.advance(30 * MINUTE + 1);
    const idle = await agent.get('/account');
    expect(idle.status).toBe(303);
    expect(idle.location).toBe('/login');
  });
});

describe('what the pages say when something is wrong (L1, L3, L4, L5, L6, A3)', () => {
  it('L1: a wrong password shows "Invalid user name password combination" (401), keeps the user name, never the password', async () => {
    const { user } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    const page = await agent.submit(await agent.get('/login'), '/login', { username: user.username, password: 'not the password', app: 'trading' });
    expect(page.status).toBe(401);
    expect(alertBox(page.html)).toEqual({ code: 'INVALID_CREDENTIALS', role: 'alert', text: 'Invalid user name password combination' });
    expect(form(page.html, '/login').attrs['aria-describedby']).toBe('form-error');
    expect(byId(page.html, 'username')?.attrs.value).toBe(user.username);
    expect(byId(page.html, 'password')?.attrs.value).toBeUndefined();
    expect(page.html).not.toContain('not the password');
    expect(elements(page.html, 'input').find((i) => i.attrs.value === 'trading')?.attrs.checked).toBe('');
  });

  it('L1: an unknown user gets the same page as a wrong password (no user enumeration)', async () => {
    const { user } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    const login = await agent.get('/login');
    const ghost = uniqueUsername('ghost');
    const known = await agent.submit(login, '/login', { username: user.username, password: 'not the password' });
    const unknown = await agent.submit(login, '/login', { username: ghost, password: 'not the password' });
    expect(unknown.status).toBe(known.status);
    const normalise = (page: Page, name: string) => page.html.replace(/name="_csrf" value="[^"]*"/, '').replace(name, 'NAME');
    expect(normalise(unknown, ghost)).toBe(normalise(known, user.username));
  });

  it('A3: a user name with anything but letters and digits shows "BAD CHARACTER" (400) and is not echoed back', async () => {
    const agent = new Agent(h.app);
    const login = await agent.get('/login');
    for (const username of ['bob!', 'al ice', '<script>alert(1)</script>', 'x"onfocus="alert(1)']) {
      const page = await agent.submit(login, '/login', { username, password: PASSWORD });
      expect(page.status, username).toBe(400);
      expect(alertBox(page.html), username).toMatchObject({ code: 'BAD_CHARACTER', text: 'BAD CHARACTER', role: 'alert' });
      expect(byId(page.html, 'username')?.attrs.value, username).toBe('');
      expect(page.html).not.toContain('<script>');
      expect(page.html).not.toContain('onfocus="alert');
    }
  });

  it('X3: an empty user name or password is a clear 400 on the login page, not a crash', async () => {
    const agent = new Agent(h.app);
    const page = await agent.submit(await agent.get('/login'), '/login', { username: '', password: '' });
    expect(page.status).toBe(400);
    expect(alertBox(page.html)).toMatchObject({ code: 'VALIDATION_ERROR', text: expect.stringContaining('Enter your user name and password.') });
  });

  it('L2: a user without an active device is told on the page to contact client services', async () => {
    const user = await createUser(h.services);
    const agent = new Agent(h.app);
    const page = await agent.submit(await agent.get('/login'), '/login', { username: user.username, password: PASSWORD });
    expect(page.status).toBe(403);
    expect(alertBox(page.html)).toMatchObject({ code: 'NO_ACTIVE_DEVICE', text: expect.stringContaining('contact Client Services') });
  });

  it('L2/L5: a wrong response shows "Login failed" with the hint that codes contain no spaces, and the challenge can be answered again', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    const { flowPath, challenge, question } = await toChallenge(agent, user.username);
    const right = cardAnswer(card, question);
    const failed = await agent.submit(challenge, flowPath, { response: `${right.slice(0, 4)} ${right.slice(4)}` });
    expect(failed.status).toBe(401);
    const error = alertBox(failed.html)!;
    expect(error).toMatchObject({ code: 'LOGIN_FAILED', role: 'alert' });
    expect(error.text).toBe('Login failed Please check: Security card and device codes contain no spaces between the characters.');
    expect(form(failed.html, flowPath).attrs['aria-describedby']).toBe('form-error');
    expect(textById(failed.html, 'challenge-code')).toBe(question); // the same challenge
    expect(text(failed.html)).toContain('2 attempts left.');
    expect(byId(failed.html, 'response')?.attrs.value).toBeUndefined();
    expect(byId(failed.html, 'response')?.attrs).toHaveProperty('autofocus');
    const done = await agent.submit(failed, flowPath, { response: right });
    expect(done.location).toBe('/account');
  });

  it('L4: after 3 wrong responses the login is used up and the page asks to start over', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    const { flowPath, challenge, question } = await toChallenge(agent, user.username);
    const right = cardAnswer(card, question);
    let page = challenge;
    for (const left of ['2 attempts left.', '1 attempt left.']) {
      page = await agent.submit(page, flowPath, { response: wrongAnswer(right) });
      expect(alertBox(page.html)?.code).toBe('LOGIN_FAILED');
      expect(text(page.html)).toContain(left);
    }
    const last = await agent.submit(page, flowPath, { response: wrongAnswer(right) });
    expect(last.status).toBe(401);
    expect(alertBox(last.html)?.code).toBe('LOGIN_FAILED');
    // issue 16: the page says the challenge is used up and that a new login starts
    expect(alertBox(last.html)?.text).toContain('the third wrong response, so this challenge is used up. Log in again');
    expect(h1s(last.html)).toEqual(['Log in']); // back to the start
    expect(byId(last.html, 'username')?.attrs.value).toBe(user.username);
    const late = await agent.post(flowPath, { _csrf: csrfOf(form(last.html, '/login')), response: right });
    expect(late.status).toBe(410);
    expect(alertBox(late.html)?.code).toBe('FLOW_EXPIRED');
    expect(agent.jar.has('__Host-sls_session')).toBe(false);
  });

  it('L4: after 5 minutes the challenge has expired: the page shows FLOW_EXPIRED ("start over") and the login form', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    const { flowPath, challenge, question } = await toChallenge(agent, user.username, PASSWORD, 'trading');
    h.clock.advance(5 * MINUTE - 1);
    expect((await agent.get(flowPath)).status).toBe(200); // still open just before
    h.clock.advance(1);
    const expiredGet = await agent.get(flowPath);
    expect(expiredGet.status).toBe(410);
    expect(alertBox(expiredGet.html)).toEqual({ code: 'FLOW_EXPIRED', role: 'alert', text: 'The passcode has expired. Please start over.' });
    expect(h1s(expiredGet.html)).toEqual(['Log in']);
    expect(form(expiredGet.html, '/login')).toBeDefined();
    expect(byId(expiredGet.html, 'username')?.attrs.value).toBe(user.username);
    expect(elements(expiredGet.html, 'input').find((i) => i.attrs.value === 'trading')?.attrs.checked).toBe('');
    expect(byId(expiredGet.html, 'challenge-code')).toBeUndefined();

    const expiredPost = await agent.submit(challenge, flowPath, { response: cardAnswer(card, question) });
    expect(expiredPost.status).toBe(410);
    expect(alertBox(expiredPost.html)?.code).toBe('FLOW_EXPIRED');
    expect(text(expiredPost.html)).toContain('The passcode has expired. Please start over.');
    expect(agent.jar.has('__Host-sls_session')).toBe(false);

    const unknown = await agent.get('/login/flw_aaaaaaaaaaaaaaaaaaaaaaaaaa');
    expect(unknown.status).toBe(404);
    expect(alertBox(unknown.html)?.code).toBe('FLOW_NOT_FOUND');
  });

  it('L3: after 10 failed logins the page says LOCKED, even for the right password', async () => {
    const { user } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    let page = await agent.get('/login');
    for (let i = 0; i < 10; i++) {
      page = await agent.submit(page, '/login', { username: user.username, password: `wrong ${i}` });
      expect(page.status).toBe(401);
      expect(alertBox(page.html)?.code).toBe('INVALID_CREDENTIALS');
    }
    const locked = await agent.submit(page, '/login', { username: user.username, password: PASSWORD });
    expect(locked.status).toBe(423);
    expect(alertBox(locked.html)).toEqual({
      code: 'LOCKED',
      role: 'alert',
      text: 'This user is locked after too many failed login attempts. The lock ends 24 hours after the last failed attempt; Client Services can lift it after verifying your identity by telephone.',
    });
    expect(locked.location).toBeUndefined();
  });

  it('L3: wrong responses count too: a user locked while a challenge is open cannot answer it', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const agent = new Agent(h.app);
    let page = await agent.get('/login');
    for (let i = 0; i < 9; i++) page = await agent.submit(page, '/login', { username: user.username, password: `wrong ${i}` });
    const { flowPath, challenge, question } = await toChallenge(agent, user.username);
    // a successful first factor does not reset the count (only a complete login does)
    const failed = await agent.submit(challenge, flowPath, { response: wrongAnswer(cardAnswer(card, question)) });
    expect(alertBox(failed.html)?.code).toBe('LOGIN_FAILED');
    const locked = await agent.submit(failed, flowPath, { response: cardAnswer(card, question) });
    expect(locked.status).toBe(423);
    expect(alertBox(locked.html)?.code).toBe('LOCKED');
    expect(agent.jar.has('__Host-sls_session')).toBe(false);
  });

  it("L6: a user with two cards gets the device switch form; the other card's challenge answers; that card is offered first next time", async () => {
    const { user, card } = await createUserWithCard(h.services);
    const { card: second } = await h.services.devices.addDscPlus({ userId: user.id, pin: '2222' }, 'test');
    const [firstDevice, secondDevice] = await h.services.devices.listForUser(user.id).then((all) => {
      const a = all.find((d) => d.serial === card.serial)!;
      const b = all.find((d) => d.serial === second.serial)!;
      return [a, b];
    });
    const agent = new Agent(h.app);
    const { flowPath, challenge, question } = await toChallenge(agent, user.username);
    const switchForm = form(challenge.html, `${flowPath}/device`);
    expect(switchForm.attrs.method).toBe('post');
    expect(textById(challenge.html, 'switch-heading')).toBe('Use another security device');
    expect(labelOf(challenge.html, byId(challenge.html, 'device')!)).toBe('Security device');
    expectEveryControlLabelled(challenge.html);
    const options = elements(switchForm.inner, 'option');
    expect(options.map((o) => o.attrs.value).sort()).toEqual([firstDevice!.id, secondDevice!.id].sort());
    // the first card is offered first; the switch preselects the other one (issue 16)
    expect(textById(challenge.html, 'device-heading')).toContain(card.serial);
    const selected = options.find((o) => 'selected' in o.attrs)!;
    expect(selected.attrs.value).toBe(secondDevice!.id);
    expect(text(selected.inner)).toContain(second.serial);

    const switched = await agent.submit(challenge, `${flowPath}/device`, { device: secondDevice!.id });
    expect(switched.status).toBe(303);
    expect(switched.location).toBe(flowPath);
    const other = await agent.get(flowPath);
    const otherOptions = elements(form(other.html, `${flowPath}/device`).inner, 'option');
    expect(otherOptions.find((o) => 'selected' in o.attrs)?.attrs.value).toBe(firstDevice!.id);
    expect(textById(other.html, 'device-heading')).toContain(second.serial);
    const otherQuestion = textById(other.html, 'challenge-code')!;
    expect(otherQuestion).toMatch(/^\d{6}$/);
    // the first card's answer to the old challenge is no longer accepted
    const stale = await agent.submit(other, flowPath, { response: cardAnswer(card, question) });
    expect(alertBox(stale.html)?.code).toBe('LOGIN_FAILED');
    const done = await agent.submit(stale, flowPath, { response: cardAnswer(second, otherQuestion) });
    expect(done.location).toBe('/account');

    const next = await toChallenge(new Agent(h.app), user.username);
    // the last-used card is offered first; the switch preselects the other
    expect(textById(next.challenge.html, 'device-heading')).toContain(second.serial);
    const nextSelected = elements(form(next.challenge.html, `${next.flowPath}/device`).inner, 'option').find((o) => 'selected' in o.attrs);
    expect(nextSelected?.attrs.value).toBe(firstDevice!.id);
  });

  it('L6: a user with one card gets no device switch form', async () => {
    const { user } = await createUserWithCard(h.services);
    const { challenge } = await toChallenge(new Agent(h.app), user.username);
    expect(elements(challenge.html, 'form')).toHaveLength(1);
    expect(byId(challenge.html, 'device')).toBeUndefined();
  });
});

describe('headers and structure of every page (L8)', () => {
  it('L8: every page (login, error, challenge, signed-in, logged out) is sent with cache-control: no-store and a strict Content-Security-Policy', async () => {
    const agent = new Agent(h.app);
    const { user, card } = await createUserWithCard(h.services);
    const pages: [string, Page][] = [];
    const login = await agent.get('/login');
    pages.push(['login', login]);
    pages.push(['csrf error', await agent.post('/login', { username: user.username, password: PASSWORD })]);
    pages.push(['wrong password', await agent.submit(login, '/login', { username: user.username, password: 'nope nope' })]);
    const { flowPath, challenge, question } = await toChallenge(agent, user.username);
    pages.push(['challenge', challenge]);
    const failed = await agent.submit(challenge, flowPath, { response: wrongAnswer(cardAnswer(card, question)) });
    pages.push(['wrong response', failed]);
    await agent.submit(failed, flowPath, { response: cardAnswer(card, question) });
    const account = await agent.get('/account');
    pages.push(['account', account]);
    await agent.submit(account, '/logout', {});
    pages.push(['logged out', await agent.get('/login?loggedOut=1')]);

    for (const [name, page] of pages) {
      expect(page.headers['content-type'], name).toBe('text/html; charset=utf-8');
      expect(page.headers['cache-control'], name).toBe('no-store');
      const csp = String(page.headers['content-security-policy'] ?? '');
      expect(csp, name).toContain("default-src 'self'");
      expect(csp, name).toContain("script-src 'self'");
      expect(csp, name).toContain("form-action 'self'");
      expect(csp, name).toContain("frame-ancestors 'none'");
      expect(csp, name).not.toContain('unsafe-inline');
      expect(csp, name).not.toContain('unsafe-eval');
      expect(page.headers['x-content-type-options'], name).toBe('nosniff');
      expect(page.headers['referrer-policy'], name).toBe('no-referrer');
      // nothing the CSP would block: no inline script or style (a script of our own, by its src, is allowed)
      expect(page.html, name).not.toMatch(/<script(?![^>]*\ssrc="\/static\/)|\sstyle=|<style|\son[a-z]+=/i);
      // one h1, a skip link to main
      expect(h1s(page.html), name).toHaveLength(1);
      expect(page.html, name).toContain('<a class="skip" href="#main">');
      expect(byId(page.html, 'main')?.tag, name).toBe('main');
    }
  });

  it('L8: the stylesheet is served (the CSP allows it: same origin)', async () => {
    const css = await h.app.inject({ method: 'GET', url: '/static/sls.css' });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
  });

  it('[ours] issue 16: /favicon.ico is an icon (not a 404), and the pages name it', async () => {
    const icon = await h.app.inject({ method: 'GET', url: '/favicon.ico' });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['content-type']).toMatch(/^image\/(x-icon|vnd\.microsoft\.icon)/);
    expect([...icon.rawPayload.subarray(0, 4)]).toEqual([0, 0, 1, 0]);
    expect((await h.app.inject({ method: 'GET', url: '/login' })).body).toContain('<link rel="icon" href="/favicon.ico"');
  });
});

describe('pages for people, not JSON, outside the API (X3)', () => {
  it('X3: an unknown page gets an HTML 404 page; an unknown API address gets JSON', async () => {
    const page = await h.app.inject({ method: 'GET', url: '/no/such/page?lang=fr' });
    expect(page.statusCode).toBe(404);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toContain('data-code="NOT_FOUND"');
    expect(page.body).toContain('rien à cette adresse.');
    const api = await h.app.inject({ method: 'GET', url: '/api/v1/nothing' });
    expect(api.statusCode).toBe(404);
    expect(api.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });
});

describe.each(DATABASES)('the login pages tell no user from another (L1, L3) on %s', (database) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(database);
  });
  afterAll(async () => h?.close());

  /** What a browser sees of a page: status, headers (cookies without their values), the page with its CSRF token and the name typed set aside. */
  function seen(page: Page, username: string) {
    const { 'x-request-id': _id, date: _date, 'set-cookie': _cookies, 'content-length': _length, ...headers } = page.headers;
    return {
      status: page.status,
      headers,
      cookies: page.setCookies.map((c) => c.replace(/=[^;]*/, '=…')),
      html: page.html.replace(/name="_csrf" value="[^"]*"/g, '').replaceAll(username, 'NAME'),
    };
  }

  async function submitted(username: string, password: string, app: 'portal' | 'trading') {
    const agent = new Agent(h.app);
    return seen(await agent.submit(await agent.get(app === 'trading' ? '/login?app=trading' : '/login'), '/login', { username, password, app }), username);
  }

  it("L1: the portal's and the trading platform's login forms answer a wrong password of a known user in every state as an unknown user's: status, headers, cookies, page", async () => {
    const usernames = await usernamesInEveryState(h);
    for (const app of ['portal', 'trading'] as const) {
      const unknown = await submitted(usernames.unknown, 'one guess for all', app);
      expect(unknown.status, app).toBe(401);
      for (const [state, username] of Object.entries(usernames))
        expect(await submitted(username, 'one guess for all', app), `${app}: ${state}`).toEqual(unknown);
      expect(await submitted(usernames.disabled, PASSWORD, app), `${app}: disabled, right password`).toEqual(await submitted(usernames.unknown, PASSWORD, app));
    }
  });

  it('L3: a locked known user and a locked unknown username get the same login page, with a wrong or the right password', async () => {
    const { known, unknown } = await lockedPair(h);
    for (const app of ['portal', 'trading'] as const) {
      for (const password of ['one guess for all', PASSWORD]) {
        const ghost = await submitted(unknown, password, app);
        expect(ghost.status).toBe(423);
        expect(await submitted(known, password, app), `${app}: ${password}`).toEqual(ghost);
      }
    }
  });
});
