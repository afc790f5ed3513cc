import { describe, expect, it } from 'vitest';
import type { Device, DeviceType } from '../src/devices/types.js';
import type { DeviceState } from '../src/store/schema.js';
import { deviceKinds } from '../src/devices/registry.js';
import { withdrawalLimits as limitsWith } from '../src/policy/withdrawal-limits.js';

const kinds = deviceKinds();
const withdrawalLimits = (devices: Device[]) => limitsWith(devices, kinds);

function device(type: DeviceType, state: DeviceState = 'active'): Device {
  return {
    id: `dev_${type}`,
    userId: 'usr_1',
    type,
    state,
    serial: null,
    label: null,
    params: {},
    createdAt: 0,
    activatedAt: 0,
    lastUsedAt: null,
    expiresAt: null,
  };
}

describe('W1: withdrawal limits by the device that protects the user', () => {
  it('W1: none (no active permanent device): USD 50,000 a day, 100,000 in 5 business days', () => {
    expect(withdrawalLimits([])).toEqual({ device: null, perDayUsd: 50_000, fiveBusinessDaysUsd: 100_000 });
    expect(withdrawalLimits([device('dscplus', 'suspended'), device('temp_passcode'), device('online_card')])).toEqual({
      device: null,
      perDayUsd: 50_000,
      fiveBusinessDaysUsd: 100_000,
    });
  });

  it('W1: SMS: USD 200,000 a day, 600,000 in 5 business days', () => {
    expect(withdrawalLimits([device('sms')])).toEqual({ device: 'sms', perDayUsd: 200_000, fiveBusinessDaysUsd: 600_000 });
  });

  it('W1: Security Code Card: USD 200,000 a day, 600,000 in 5 business days', () => {
    expect(withdrawalLimits([device('scc')])).toEqual({ device: 'scc', perDayUsd: 200_000, fiveBusinessDaysUsd: 600_000 });
  });

  it('W1, D2: mobile authenticator: USD 1,000,000 a day and in 5 business days; it ranks above SCC and SMS', () => {
    expect(withdrawalLimits([device('mobile')])).toEqual({ device: 'mobile', perDayUsd: 1_000_000, fiveBusinessDaysUsd: 1_000_000 });
    expect(withdrawalLimits([device('sms'), device('scc'), device('mobile')])).toMatchObject({ device: 'mobile' });
    expect(withdrawalLimits([device('mobile'), device('dscplus')])).toMatchObject({ device: 'dscplus' });
  });

  it('W1, D2: DSC+ is unlimited, and the strongest active device sets the limits', () => {
    expect(withdrawalLimits([device('sms'), device('dscplus'), device('scc')])).toEqual({ device: 'dscplus', perDayUsd: null, fiveBusinessDaysUsd: null });
    expect(withdrawalLimits([device('sms'), device('dscplus', 'lost')])).toMatchObject({ device: 'sms', perDayUsd: 200_000 });
  });
});
