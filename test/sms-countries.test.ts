/**
 * M7, M6: the operator's SMS countries (SLS_SMS_COUNTRIES). SMS cost money
 * and premium-rate or far-away numbers are the tool of SMS pumping: with a
 * list of countries set, a number of another country is never put on record
 * (the settings, the help desk, `sls user create --mobile`), and a number put
 * on record before the list was set is never sent a code or a notice. The
 * country is the number's own (a Jamaican +1 876 number chosen as "US" is
 * Jamaican). Each refusal is audited (sms.country_refused). Unset, every
 * country is served (the default).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type PolicyConfig } from '../src/config.js';
import { DATABASES, createUser, startHarness, type Harness, uniqueUsername, PASSWORD } from './support/harness.js';
import { postJson, startLogin } from './support/api.js';
import { Agent, byId, textById } from './support/html.js';
import { newMobile, smsUser } from './support/phone.js';
import { cliEnv, slsInProcess } from './support/cli.js';

const meta = { ip: null, language: 'en' as const };

describe.each(DATABASES)('SMS countries (M7) on %s', (database) => {
  let h: Harness;
  let policy: PolicyConfig & { smsCountries: string[] };

  beforeAll(async () => {
    policy = { ...loadConfig({ SLS_MASTER_KEY: '00'.repeat(32) }).policy, smsCountries: [] };
    h = await startHarness(database, { policy });
  });
  afterAll(async () => h?.close());

  /** The operator's list, as the services read it (the same array the notifier holds). */
  function serve(...countries: string[]): void {
    policy.smsCountries.splice(0, policy.smsCountries.length, ...countries);
  }

  async function refusals(userId: string): Promise<Record<string, unknown>[]> {
    return (await h.services.audit.list({ userId })).filter((e) => e.event === 'sms.country_refused').map((e) => e.data);
  }

  it('M7, M6: with SLS_SMS_COUNTRIES=GB,HK a number of another country is refused where it is added (phones.add, which the settings and the help desk use; sls user create --mobile) with PHONE_INVALID country_not_served, audited, nothing stored; a Jamaican number chosen as US is Jamaican; GB and HK numbers are accepted', async () => {
    serve('GB', 'HK');
    try {
      const user = await createUser(h.services);
      for (const [input, country] of [
        [newMobile(), 'FR'],
        [{ country: 'US', number: '8762101234' }, 'JM'],
        [{ country: 'US', number: '2015550123' }, 'US'],
      ] as const) {
        await expect(h.services.phones.add(user.id, input, `user:${user.id}`, '203.0.113.9')).rejects.toMatchObject({
          code: 'PHONE_INVALID',
          status: 400,
          params: { reason: 'country_not_served', country },
        });
      }
      expect(await h.services.phones.list(user.id)).toEqual([]);
      // newest first
      expect(await refusals(user.id)).toEqual([
        expect.objectContaining({ country: 'US', purpose: 'add' }),
        expect.objectContaining({ country: 'JM', purpose: 'add' }),
        expect.objectContaining({ country: 'FR', purpose: 'add' }),
      ]);
      expect(JSON.stringify(await refusals(user.id))).not.toContain('8762101234');
      await h.services.phones.add(user.id, { country: 'GB', number: '7400123456' }, 'test', null);
      await h.services.phones.add(user.id, { country: 'HK', number: '51234567' }, 'test', null);
      expect((await h.services.phones.list(user.id)).map((p) => p.e164).sort()).toEqual(['+447400123456', '+85251234567']);

      // sls user create --mobile: refused before the user is created
      const env = cliEnv(h.database, { SLS_SMS_COUNTRIES: 'GB,HK' });
      const username = uniqueUsername('cc');
      const cli = await slsInProcess(['user', 'create', '--username', username, '--password', PASSWORD, '--mobile', 'FR:612345678'], env);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toBe('sls: Text messages are not sent to numbers of FR by this service: use a number of another country, or another device.\n');
      await expect(h.services.users.getByUsername(username)).rejects.toMatchObject({ code: 'USER_NOT_FOUND' });
    } finally {
      serve();
    }
  });

  it('M7: a number put on record before the list was set gets no code and no notice: the login code is not sent (delivery failed), the confirm code refused, the lock notice goes by e-mail only; each refusal audited', async () => {
    const user = await smsUser(h);
    const unverified = await h.services.phones.add(user.id, newMobile(), 'test', null);
    const before = (await h.services.notifier.list({ userId: user.id, limit: 100 })).length;
    serve('GB');
    try {
      const flow = await startLogin(h.app, user.username);
      expect(flow.status).toBe(200);
      expect(flow.body.challenge).toMatchObject({ type: 'sms', delivery: 'failed' });
      await expect(h.services.phones.sendConfirmCode(user.id, unverified.id, meta)).rejects.toMatchObject({
        code: 'PHONE_INVALID',
        params: { reason: 'country_not_served', country: 'FR' },
      });
      const notices = await h.services.notifier.notify({ id: user.id, email: 'owner@example.test' }, 'userLocked', { until: new Date(0).toISOString() });
      expect(notices.map((n) => n.channel)).toEqual(['email']);
      // nothing but the e-mail notice was stored
      expect((await h.services.notifier.list({ userId: user.id, limit: 100 })).length).toBe(before + 1);
      expect((await refusals(user.id)).map((d) => [d.country, d.purpose])).toEqual([
        ['FR', 'confirmCode'],
        ['FR', 'loginCode'],
      ]);
    } finally {
      serve();
    }
  });

  it("M7, M4, X2, L1: a login whose only number is of a country no longer served says why after the password: the API's challenge has reason country_not_served, the login page says so (en, fr, zh-Hant) and does not suggest a voice call; the username alone (a wrong password) shows nothing of it", async () => {
    const user = await smsUser(h);
    serve('GB');
    try {
      const flow = await startLogin(h.app, user.username);
      expect(flow.status).toBe(200);
      expect(flow.body.challenge).toMatchObject({ type: 'sms', delivery: 'failed', reason: 'country_not_served' });
      // a new code asked for, once it may be: the same reason (and no SMS sent)
      h.clock.advance(h.services.config.policy.smsLoginResendMs + 1000);
      const again = await postJson(
        h.app,
        `/api/v1/login/${flow.body.id as string}/code`,
        { channel: 'voice' },
        { 'x-claim-token': flow.body.claimToken as string },
      );
      expect(again.body.challenge ?? again.body, JSON.stringify(again.body)).toMatchObject({ delivery: 'failed', reason: 'country_not_served' });
      // the username with a wrong password: the same answer as for anyone (L1), no word of numbers or countries
      const wrong = await startLogin(h.app, user.username, 'not the password at all');
      expect(wrong.status).toBe(401);
      expect(JSON.stringify(wrong.body)).not.toMatch(/country|served|sms/i);

      for (const [language, says] of [
        ['en', /Text messages and calls are not sent to numbers of this country \(\+33 [^)]+\) by this service/],
        ['fr', /Ce service n'envoie ni SMS ni appel aux numéros de ce pays \(\+33 [^)]+\)/],
        ['zh-Hant', /本服務不會向此國家或地區的號碼（\+33 [^）]+）發送短信或致電/],
      ] as const) {
        const agent = new Agent(h.app, { 'accept-language': language });
        const login = await agent.get('/login');
        const started = await agent.submit(login, '/login', { username: user.username, password: PASSWORD, app: 'portal' });
        const page = await agent.get(started.location!);
        expect(byId(page.html, 'code-delivery')?.attrs['data-delivery'], language).toBe('not_served');
        expect(textById(page.html, 'code-delivery'), language).toMatch(says);
        // a voice call goes nowhere either: not the choice suggested
        expect(byId(page.html, 'channel-voice')?.attrs.checked, language).toBeUndefined();
      }
    } finally {
      serve();
    }
  });

  it('M7: SLS_SMS_COUNTRIES is a list of ISO 3166 countries: one that is no country stops the start with INVALID_CONFIG not_a_country; unset, every country is served', () => {
    expect(loadConfig({ SLS_MASTER_KEY: '00'.repeat(32), SLS_SMS_COUNTRIES: ' gb, HK ,GB' }).policy.smsCountries).toEqual(['GB', 'HK']);
    expect(loadConfig({ SLS_MASTER_KEY: '00'.repeat(32) }).policy.smsCountries).toEqual([]);
    for (const bad of ['UK', 'GBR', '44', 'XX'])
      expect(() => loadConfig({ SLS_MASTER_KEY: '00'.repeat(32), SLS_SMS_COUNTRIES: `GB,${bad}` })).toThrow(
        expect.objectContaining({
          code: 'INVALID_CONFIG',
          params: expect.objectContaining({ setting: 'SLS_SMS_COUNTRIES', reason: 'not a country', value: bad }),
        }),
      );
  });
});
