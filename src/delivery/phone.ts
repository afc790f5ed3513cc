/**
 * Phone numbers (M6): entered as digits only, without the trunk prefix, with
 * the country chosen separately; stored in E.164.
 *
 * A number is accepted when it is valid under the chosen country's calling
 * code and can receive SMS (mobile, or a plan such as the North American one
 * where fixed and mobile numbers cannot be told apart). Territories sharing
 * a calling code (US/CA, GB/JE/GG/IM, …) are accepted under either choice:
 * the E.164 form is the same.
 */
import { getCountryCallingCode, isSupportedCountry, parsePhoneNumberFromString, validatePhoneNumberLength } from 'libphonenumber-js/max';
import type { CountryCode, PhoneNumber } from 'libphonenumber-js/max';
import { SlsError } from '../errors.js';

/** More digits than any national number has (E.164 allows 15 with the country code). */
const MAX_DIGITS = 17;

/** Types that can receive an SMS or a call to a mobile. */
const MOBILE_CAPABLE = new Set(['MOBILE', 'FIXED_LINE_OR_MOBILE']);

/** Why a number is refused: each reason has its text, `errors.PHONE_INVALID_<reason>`. */
export type PhoneRefusal =
  | 'unknown_country'
  | 'empty'
  | 'digits_only'
  | 'too_long'
  | 'too_short'
  | 'trunk_prefix'
  | 'country_code'
  | 'not_valid'
  | 'not_mobile'
  | 'country_not_served';

function invalid(reason: PhoneRefusal, params: Record<string, string> = {}): SlsError {
  return new SlsError('PHONE_INVALID', { field: 'phone', reason, ...params });
}

function parseValid(text: string, country?: CountryCode): PhoneNumber | undefined {
  const number = country ? parsePhoneNumberFromString(text, country) : parsePhoneNumberFromString(text);
  return number?.isValid() ? number : undefined;
}

/**
 * The E.164 form of a national number entered as digits for a country
 * (ISO 3166-1 alpha-2). Throws PHONE_INVALID { field: 'phone', reason }.
 *
 *   toE164('FR', '612345678') === '+33612345678'
 */
export function toE164(countryIso2: string, nationalDigits: string): string {
  const iso = countryIso2.toUpperCase();
  if (!/^[A-Z]{2}$/.test(iso) || !isSupportedCountry(iso)) throw invalid('unknown_country');
  if (nationalDigits.length === 0) throw invalid('empty');
  if (!/^[0-9]+$/.test(nationalDigits)) throw invalid('digits_only');
  if (nationalDigits.length > MAX_DIGITS) throw invalid('too_long');
  const callingCode = getCountryCallingCode(iso);
  const international = `+${callingCode}${nationalDigits}`;

  // The digits must be the national significant number itself: the parser
  // would quietly drop a trunk prefix (or a repeated country code), but M6
  // asks people to leave it out, so say which prefix to drop.
  const parsed = parseValid(international) ?? parseValid(nationalDigits, iso);
  if (parsed && parsed.nationalNumber !== nationalDigits) {
    if (parsed.countryCallingCode === callingCode && nationalDigits.endsWith(parsed.nationalNumber)) {
      const prefix = nationalDigits.slice(0, nationalDigits.length - parsed.nationalNumber.length);
      if (prefix === callingCode) throw invalid('country_code', { callingCode });
      throw invalid('trunk_prefix', { prefix });
    }
    throw invalid('not_valid', { country: iso });
  }
  const number = parsed?.countryCallingCode === callingCode ? parsed : undefined;
  if (!number) {
    switch (validatePhoneNumberLength(international)) {
      case 'TOO_SHORT':
        throw invalid('too_short');
      case 'TOO_LONG':
        throw invalid('too_long');
      default:
        throw invalid('not_valid', { country: iso });
    }
  }
  const type = number.getType();
  if (!type || !MOBILE_CAPABLE.has(type)) throw invalid('not_mobile');
  return number.number;
}

/**
 * Where a code went, for showing to the user: the country code and the last
 * two digits, the rest hidden in a fixed shape that does not give the length.
 *
 *   maskPhone('+33612345678') === '+33 •••• ••78'
 */
export function maskPhone(e164: string): string {
  const digits = e164.replace(/\D/g, '');
  const last = digits.slice(-2);
  const number = e164.startsWith('+') ? parsePhoneNumberFromString(e164) : undefined;
  return number ? `+${number.countryCallingCode} •••• ••${last}` : `•••• ••${last}`;
}

/** M7: a country code (ISO 3166-1 alpha-2, upper case) numbers can be entered for. */
export function isPhoneCountry(code: string): boolean {
  return /^[A-Z]{2}$/.test(code) && isSupportedCountry(code);
}

/**
 * M7: the country of a number (E.164) when the operator's list of countries
 * (SLS_SMS_COUNTRIES) leaves it out, else null (an empty list: every
 * country). The country is the number's own, not the one chosen when it was
 * entered: the countries sharing a calling code (+1: the US, Canada and the
 * Caribbean; +44: the United Kingdom, Jersey, Guernsey, the Isle of Man) are
 * told apart by the number. A number of no country (a global service) is
 * left out of every list.
 */
export function countryNotServed(e164: string, countries: readonly string[]): string | null {
  if (countries.length === 0) return null;
  const number = parsePhoneNumberFromString(e164);
  const country = number?.country;
  if (country !== undefined && countries.includes(country)) return null;
  return country ?? (number ? `+${number.countryCallingCode}` : e164.slice(0, 4));
}

/** M7: PHONE_INVALID country_not_served when the operator sends no SMS to the number's country. */
export function refuseCountryNotServed(e164: string, countries: readonly string[]): void {
  const country = countryNotServed(e164, countries);
  if (country !== null) throw invalid('country_not_served', { country });
}
