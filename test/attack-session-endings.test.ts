/**
 * L8: what withdraws a credential ends the sessions it opened, whoever
 * withdraws it — here the help desk — each tried with a session taken before
 * (the attacker's copy of it), on every database: the session is gone at
 * once, through the API and the pages, and its ending audited with its cause.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CardFile } from '../src/devices/devices.js';
import type { User } from '../src/identity/users.js';
import { SESSION_COOKIE } from '../src/http/session-cookie.js';
import {
  DATABASES,
  PASSWORD,
  REQUESTER_SCC_CODES,
  cardAnswer,
  createSharingRequester,
  createUserWithCard,
  startHarness,
  type Harness,
} from './support/harness.js';
import { answer, bearer, get, indexAnswerOf, loginSession, postJson, send, startLogin, stepUp, withCard, type Json } from './support/api.js';
import { Agent } from './support/html.js';
import { stepUpStaff } from './support/staff.js';

const indexAnswer = indexAnswerOf(REQUESTER_SCC_CODES);

describe.each(DATABASES)('L8: sessions end with what the help desk withdraws (%s)', (database) => {
  let h: Harness;
  let agent: Record<string, string>;

  beforeAll(async () => {
    h = await startHarness(database);
    const staff = await createUserWithCard(h.services, '1234', { role: 'client_services' });
    agent = await loginSession(h.app, staff.user.username, withCard(staff.card));
    await stepUpStaff(h.app, agent, staff.card);
  });
  afterAll(async () => h.close());

  const cardOf = async (user: User) => (await h.services.devices.listForUser(user.id)).find((d) => d.type === 'dscplus' && d.state === 'active')!.id;

  /** The session taken before: its Bearer headers, and a browser holding it as its cookie. */
  async function taken(user: User, card: CardFile) {
    const headers = await loginSession(h.app, user.username, withCard(card));
    const browser = new Agent(h.app);
    browser.jar.set(SESSION_COOKIE, headers.authorization!.slice('Bearer '.length));
    expect((await browser.get('/account')).status).toBe(200);
    return { headers, browser };
  }

  async function expectEnded(user: User, session: Awaited<ReturnType<typeof taken>>, cause: string): Promise<void> {
    expect((await get(h.app, '/api/v1/session', session.headers)).status).toBe(401);
    expect((await session.browser.get('/account')).location).toBe('/login');
    const ended = (await h.services.audit.list({ userId: user.id, limit: 100 })).filter((e) => e.event === 'session.ended').map((e) => e.data as Json);
    expect(ended.map((e) => e.reason)).toContain(cause);
  }

  async function verification(username: string): Promise<string> {
    const verified = await postJson(h.app, `/api/v1/helpdesk/users/${username}/verifications`, { method: 'id_document' }, agent);
    expect(verified.status, JSON.stringify(verified.body)).toBe(200);
    return verified.body.id as string;
  }

  it('L8, C5: a card client services report lost ends the sessions it opened', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const session = await taken(user, card);
    const lost = await postJson(h.app, `/api/v1/helpdesk/devices/${await cardOf(user)}/lost`, { reason: 'stolen' }, agent);
    expect(lost.status, JSON.stringify(lost.body)).toBe(200);
    await expectEnded(user, session, 'device_lost');
  });

  it('L8, T1, R2: a temporary passcode issued for a card the caller says is lost ends the sessions the card opened', async () => {
    const { user, card } = await createUserWithCard(h.services);
    const session = await taken(user, card);
    const issued = await postJson(
      h.app,
      `/api/v1/helpdesk/users/${user.username}/temporary-passcode`,
      { verificationId: await verification(user.username), deviceStatus: 'lost' },
      agent,
    );
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    await expectEnded(user, session, 'device_lost');
  });

  it("L8, H5: a device sharing cancelled by client services ends the requester's sessions opened with the owner's card", async () => {
    const owner = await createUserWithCard(h.services);
    const { requester } = await createSharingRequester(h.services, owner.user);
    const start = await startLogin(h.app, requester.username);
    const scc = bearer((await answer(h.app, start.body.id, indexAnswer(start.body.challenge))).body.session.token);
    await stepUp(h.app, scc, indexAnswer);
    const shared = await postJson(h.app, '/api/v1/sharing', { ownerUsername: owner.user.username, ownerPassword: PASSWORD }, scc);
    expect(shared.status, JSON.stringify(shared.body)).toBe(201);
    const id = shared.body.id as string;
    await postJson(h.app, `/api/v1/sharing/${id}/answer`, { response: cardAnswer(owner.card, shared.body.challenge.question) }, scc);
    expect((await postJson(h.app, `/api/v1/sharing/${id}/confirmation`, { disposition: 'keep' }, scc)).body.state).toBe('active');
    const session = await taken(requester, owner.card);

    const cancelled = await send(h.app, 'DELETE', `/api/v1/helpdesk/sharing/${id}`, agent);
    expect(cancelled.body.state, JSON.stringify(cancelled.body)).toBe('cancelled');
    await expectEnded(requester, session, 'sharing_ended');
  });
});
