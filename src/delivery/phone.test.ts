import { describe, expect, it } from 'vitest';
import { SlsError } from '../errors.js';
import { maskPhone, toE164 } from './phone.js';

/** The PHONE_INVALID reason toE164 gives, or fails the test. */
function refusal(country: string, digits: string): string {
  try {
    toE164(country, digits);
  } catch (error) {
    expect(error).toBeInstanceOf(SlsError);
    const e = error as SlsError;
    expect(e.code).toBe('PHONE_INVALID');
    expect(e.status).toBe(400);
    expect(e.params.field).toBe('phone');
    expect(typeof e.params.reason).toBe('string');
    return e.params.reason as string;
  }
  throw new Error(`toE164(${country}, ${digits}) was accepted`);
}

function refusalParams(country: string, digits: string): Record<string, unknown> {
  try {
    toE164(country, digits);
  } catch (error) {
    return (error as SlsError).params;
  }
  throw new Error(`toE164(${country}, ${digits}) was accepted`);
}

describe('M6: phone numbers are entered as digits without the trunk prefix, the country chosen separately, and stored in E.164', () => {
  it.each([
    ['FR', '612345678', '+33612345678'],
    ['US', '2015550123', '+12015550123'],
    ['HK', '91234567', '+85291234567'],
    ['GB', '7400123456', '+447400123456'],
    ['DE', '15123456789', '+4915123456789'],
    ['TW', '912345678', '+886912345678'],
    ['CN', '13812345678', '+8613812345678'],
    ['IT', '3123456789', '+393123456789'],
    ['RU', '9123456789', '+79123456789'],
  ])('M6: (%s, %s) -> %s', (country, digits, e164) => {
    expect(toE164(country, digits)).toBe(e164);
  });

  it('M6: the country code may be given in lower case', () => {
    expect(toE164('fr', '612345678')).toBe('+33612345678');
  });

  it('M6: another territory of the same calling code gives the same E.164 (a Canadian number under US)', () => {
    expect(toE164('US', '4165551234')).toBe('+14165551234');
  });

  it.each([
    ['FR', '0612345678', '0'],
    ['GB', '07400123456', '0'],
    ['DE', '015123456789', '0'],
    ['TW', '0912345678', '0'],
    ['RU', '89123456789', '8'],
  ])('M6: a leading trunk prefix is refused and explained: (%s, %s)', (country, digits, prefix) => {
    expect(refusal(country, digits)).toBe('trunk_prefix');
    expect(refusalParams(country, digits).prefix).toBe(prefix);
  });

  it('M6: where the country has no trunk prefix a leading 0 is part of the number (Italian fixed line: refused only as not mobile)', () => {
    expect(refusal('IT', '0612345678')).toBe('not_mobile');
  });

  it('M6: the country code typed again is refused', () => {
    expect(refusal('FR', '33612345678')).toBe('country_code');
    expect(refusalParams('HK', '85291234567')).toMatchObject({ reason: 'country_code', callingCode: '852' });
  });

  it.each([['+33612345678'], ['6 12 34 56 78'], ['6-12-34-56-78'], ['(201)5550123'], ['61234567a'], ['６１２３４５６７８'], [' 612345678'], ['']])(
    'M6: anything but ASCII digits is refused: %j',
    (digits) => {
      expect(refusal('FR', digits)).toMatch(/^(digits_only|empty)$/);
    },
  );

  it('M6: too short, too long and impossible numbers are refused', () => {
    expect(refusal('FR', '61234')).toBe('too_short');
    expect(refusal('FR', '6123456789012')).toBe('too_long');
    expect(refusal('FR', '1'.repeat(40))).toBe('too_long');
    expect(refusal('FR', '712345678')).toBe('not_valid');
  });

  it.each([
    ['FR', '140000000', 'fixed line'],
    ['FR', '800123456', 'toll free'],
    ['HK', '21234567', 'fixed line'],
    ['GB', '2079460000', 'fixed line'],
  ])('M6: numbers that cannot take an SMS are refused: (%s, %s) %s', (country, digits) => {
    expect(refusal(country, digits)).toBe('not_mobile');
  });

  it.each([['XX'], ['ZZ'], ['FRA'], ['F'], [''], ['1A'], ['UK']])('M6: an unknown country is refused: %j', (country) => {
    expect(refusal(country, '612345678')).toBe('unknown_country');
  });

  it('M6: maskPhone shows the calling code and the last two digits only, in a shape that hides the length', () => {
    expect(maskPhone('+33612345678')).toBe('+33 •••• ••78');
    expect(maskPhone('+85291234567')).toBe('+852 •••• ••67');
    expect(maskPhone('+12015550123')).toBe('+1 •••• ••23');
    expect(maskPhone('+447400123456')).not.toContain('7400');
    expect(maskPhone('not a number 12')).toBe('•••• ••12');
  });
});
