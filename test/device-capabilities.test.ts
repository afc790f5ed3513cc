/**
 * Issue 12: what a device offers on the security settings page (reactivate,
 * change the PIN, report lost) comes from its kind's capabilities in the
 * device's state, never from a test of its type in a page (D4, C3, C5, C6).
 */
import { describe, expect, it } from 'vitest';
import { deviceKinds } from '../src/devices/registry.js';
import { deviceActions, type DeviceType } from '../src/devices/types.js';

const deviceKind = deviceKinds();
import type { DeviceState } from '../src/store/schema.js';
import { allowedMove, DEVICE_TRANSITIONS, TEMPORARY_TRANSITIONS } from '../src/devices/transitions.js';
import { createUserWithCard, startHarness } from './support/harness.js';

const STATES: DeviceState[] = ['stock', 'requested', 'shipped', 'active', 'suspended', 'lost', 'returned', 'revoked'];

function offered(type: DeviceType): Record<string, string[]> {
  const kind = deviceKind(type);
  const by: Record<string, string[]> = { reactivate: [], changePin: [], reportLost: [] };
  for (const state of STATES) {
    const actions = deviceActions({ state }, kind);
    for (const [action, allowed] of Object.entries(actions)) if (allowed) by[action]!.push(state);
  }
  return by;
}

describe('device actions from capabilities (issue 12, D4, C3, C5, C6)', () => {
  it('D4/C3/C5/C6: the DSC+ is reactivated, its PIN changed and reported lost; cards, legacy tokens, SMS and the authenticator are reactivated; temporary devices and security keys offer nothing', () => {
    const table = Object.fromEntries(deviceKind.all.map((kind) => kind.type).map((type) => [type, offered(type)]));
    const reactivateOnly = { reactivate: ['shipped', 'suspended'], changePin: [], reportLost: [] };
    const nothing = { reactivate: [], changePin: [], reportLost: [] };
    expect(table).toEqual({
      dscplus: { reactivate: ['shipped', 'suspended'], changePin: ['active'], reportLost: ['shipped', 'active', 'suspended'] },
      mobile: reactivateOnly,
      scc: reactivateOnly,
      sms: reactivateOnly,
      // D1: the legacy DSC and the Platinum / Gold tokens come back by proving themselves
      dsc: reactivateOnly,
      token_hotp: reactivateOnly,
      token_totp: reactivateOnly,
      // a key suspended as cloned would prove itself: removed and registered again instead (decision 14)
      security_key: nothing,
      online_card: nothing,
      temp_passcode: nothing,
    });
  });
});

describe('the physical kinds (H, K6, D6, K7)', () => {
  it('H/K6/D6/K7: the kinds flagged physical — shared between usernames, and proving possession instead of an SMS token — are the DSC+, the Platinum / Gold tokens, the legacy DSC and the Security Code Card; never the authenticator, SMS, a security key or a temporary kind', () => {
    const physical = deviceKind.all.filter((kind) => kind.physical === true).map((kind) => kind.type);
    expect(physical.sort()).toEqual(['dsc', 'dscplus', 'scc', 'token_hotp', 'token_totp']);
    expect(deviceKind.all.filter((kind) => kind.physical === true && kind.temporary)).toEqual([]);
  });
});

describe('D3: one owner of device state, a table of moves per kind (issue 12)', () => {
  it('D3: a revoked device never comes back, a returned one neither; a temporary device is only ever revoked', () => {
    expect(allowedMove(DEVICE_TRANSITIONS, 'revoked', 'active')).toBe(false);
    expect(allowedMove(DEVICE_TRANSITIONS, 'returned', 'active')).toBe(false);
    expect(allowedMove(DEVICE_TRANSITIONS, 'suspended', 'active')).toBe(true);
    expect(allowedMove(DEVICE_TRANSITIONS, 'lost', 'active')).toBe(false);
    expect(allowedMove(TEMPORARY_TRANSITIONS, 'active', 'suspended')).toBe(false);
    expect(allowedMove(TEMPORARY_TRANSITIONS, 'active', 'revoked')).toBe(true);
  });

  it('D3: Devices.transition refuses a move the kind does not allow (DEVICE_STATE), leaves a device changed meanwhile alone, and audits each move', async () => {
    const h = await startHarness('sqlite');
    try {
      const { user } = await createUserWithCard(h.services);
      const [card] = await h.services.devices.listForUser(user.id);
      await h.services.devices.setState(card!.id, 'revoked', 'test', 'test');
      await expect(h.services.devices.setState(card!.id, 'active', 'test')).rejects.toMatchObject({ code: 'DEVICE_STATE' });
      // a stale read (the card was active when read) changes nothing
      const moved = await h.services.store.db.transaction().execute((trx) => h.services.devices.transition(trx, card!, 'suspended', { actor: 'test' }));
      expect(moved).toBe(false);
      expect((await h.services.devices.get(card!.id)).state).toBe('revoked');
      const changes = (await h.services.audit.list({ username: user.username, limit: 100 })).filter((e) => e.event === 'device.state_changed');
      expect(changes.map((e) => [e.data.from, e.data.to])).toEqual([['active', 'revoked']]);
    } finally {
      await h.close();
    }
  });
});
