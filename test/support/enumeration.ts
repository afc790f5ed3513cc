/**
 * L1, X5: what a stranger could tell apart. Known users in every state a
 * username can be in, for the tests that compare what a stranger sees of
 * them with what they see of a username nobody has.
 */
import { expect } from 'vitest';
import { PASSWORD, cardAnswer, createUser, createUserWithCard, uniqueUsername, type Harness } from './harness.js';
import { answer, bearer, postJson, startLogin, stepUp, withCard } from './api.js';
import { sharingPair } from './sharing.js';
import { smsUser } from './phone.js';

/** The states of a known user (L3 locked apart: see lockedPair). */
export type KnownState = 'ordinary' | 'disabled' | 'opted out' | 'no active device' | 'SMS only' | 'shared device' | 'staff';

/** A username of every state; `unknown` is nobody's. */
export async function usernamesInEveryState(h: Harness): Promise<Record<KnownState | 'unknown', string>> {
  const ordinary = (await createUserWithCard(h.services)).user;
  const disabled = (await createUserWithCard(h.services)).user;
  await h.services.store.db.updateTable('users').set({ status: 'disabled' }).where('id', '=', disabled.id).execute();
  // O1: opted out of the second factor for trading, through the API as the user would
  const { user: optedOut, card } = await createUserWithCard(h.services);
  const start = await startLogin(h.app, optedOut.username);
  const session = bearer((await answer(h.app, start.body.id, cardAnswer(card, start.body.challenge.question))).body.session.token);
  await stepUp(h.app, session, withCard(card));
  const out = await postJson(h.app, '/api/v1/secure-login/opt-out', { acknowledgeRisks: true, confirmation: optedOut.username }, session);
  expect(out.status, JSON.stringify(out.body)).toBe(200);
  const noDevice = await createUser(h.services);
  const sms = await smsUser(h);
  // H: a requester whose login answers with the owner's card
  const pair = await sharingPair(h);
  const started = await postJson(h.app, '/api/v1/sharing', { ownerUsername: pair.owner.username, ownerPassword: PASSWORD }, pair.headers);
  await postJson(h.app, `/api/v1/sharing/${started.body.id}/answer`, { response: cardAnswer(pair.card, started.body.challenge.question) }, pair.headers);
  const shared = await postJson(h.app, `/api/v1/sharing/${started.body.id}/confirmation`, { disposition: 'keep' }, pair.headers);
  expect(shared.body.state, JSON.stringify(shared.body)).toBe('active');
  const staff = (await createUserWithCard(h.services, '1234', { role: 'client_services' })).user;
  return {
    unknown: uniqueUsername('ghost'),
    ordinary: ordinary.username,
    disabled: disabled.username,
    'opted out': optedOut.username,
    'no active device': noDevice.username,
    'SMS only': sms.username,
    'shared device': pair.requester.username,
    staff: staff.username,
  };
}

/** L3: a known user and a username nobody has, each locked by 10 wrong passwords (the lock is kept per username). */
export async function lockedPair(h: Harness): Promise<{ known: string; unknown: string }> {
  const known = (await createUserWithCard(h.services)).user.username;
  const unknown = uniqueUsername('ghost');
  for (const username of [known, unknown]) for (let i = 0; i < 10; i++) await startLogin(h.app, username, 'not the password');
  return { known, unknown };
}
