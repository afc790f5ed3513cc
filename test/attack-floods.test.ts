/**
 * N1, L3, X5: an attacker who hammers one victim. Guesses in bursts, on
 * one process or several, lock the victim once and tell them once: the
 * notices (e-mail, SMS) do not become a flood that the attacker pays for
 * with nothing but requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES, createUserWithCard, startHarness, type Harness } from './support/harness.js';

describe.each(DATABASES)('an attacker hammering one victim, on %s (N1, L3)', (db) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(db);
  });
  afterAll(async () => h.close());

  it('N1, L3: 40 wrong passwords in bursts of 10 at once: one lock, one userLocked notice per channel, none for the guesses after it', async () => {
    const { user } = await createUserWithCard(h.services);
    const guess = () => h.app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: user.username, password: 'a wrong guess', app: 'portal' } });
    const lockNotices = async () => (await h.services.notifier.list({ userId: user.id, limit: 500 })).filter((n) => n.template === 'userLocked');
    const statuses: number[] = [];
    for (let burst = 0; burst < 4; burst++) {
      for (const res of await Promise.all(Array.from({ length: 10 }, guess))) statuses.push(res.statusCode);
      if (burst === 0) {
        // the burst that locked may defer some guesses (429) while the others are in flight; a second one finishes the lock
        for (const res of await Promise.all(Array.from({ length: 10 }, guess))) statuses.push(res.statusCode);
      }
    }
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.every((s) => [401, 423, 429].includes(s))).toBe(true);
    expect((await h.services.lockout.status(user.username)).locked).toBe(true);
    const notices = await lockNotices();
    expect(notices.length).toBeGreaterThan(0);
    expect(new Set(notices.map((n) => n.channel)).size).toBe(notices.length);
  });
});
