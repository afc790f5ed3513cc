/**
 * The translation files, one folder per area of the product (core, help
 * desk, cards …), each with en, fr and zh-Hant; merged here per language.
 * An area adds its folder and three imports below.
 */
import coreEn from './locales/core/en.json' with { type: 'json' };
import coreFr from './locales/core/fr.json' with { type: 'json' };
import coreZhHant from './locales/core/zh-Hant.json' with { type: 'json' };
import helpdeskEn from './locales/helpdesk/en.json' with { type: 'json' };
import helpdeskFr from './locales/helpdesk/fr.json' with { type: 'json' };
import helpdeskZhHant from './locales/helpdesk/zh-Hant.json' with { type: 'json' };
import cardsEn from './locales/cards/en.json' with { type: 'json' };
import cardsFr from './locales/cards/fr.json' with { type: 'json' };
import cardsZhHant from './locales/cards/zh-Hant.json' with { type: 'json' };
import smsEn from './locales/sms/en.json' with { type: 'json' };
import smsFr from './locales/sms/fr.json' with { type: 'json' };
import smsZhHant from './locales/sms/zh-Hant.json' with { type: 'json' };
import mobileEn from './locales/mobile/en.json' with { type: 'json' };
import mobileFr from './locales/mobile/fr.json' with { type: 'json' };
import mobileZhHant from './locales/mobile/zh-Hant.json' with { type: 'json' };
import authenticatorEn from './locales/authenticator/en.json' with { type: 'json' };
import authenticatorFr from './locales/authenticator/fr.json' with { type: 'json' };
import authenticatorZhHant from './locales/authenticator/zh-Hant.json' with { type: 'json' };
import securityEn from './locales/security/en.json' with { type: 'json' };
import securityFr from './locales/security/fr.json' with { type: 'json' };
import securityZhHant from './locales/security/zh-Hant.json' with { type: 'json' };
import auditEn from './locales/audit/en.json' with { type: 'json' };
import auditFr from './locales/audit/fr.json' with { type: 'json' };
import auditZhHant from './locales/audit/zh-Hant.json' with { type: 'json' };
import operationsEn from './locales/operations/en.json' with { type: 'json' };
import operationsFr from './locales/operations/fr.json' with { type: 'json' };
import operationsZhHant from './locales/operations/zh-Hant.json' with { type: 'json' };
import securityKeyEn from './locales/security-key/en.json' with { type: 'json' };
import securityKeyFr from './locales/security-key/fr.json' with { type: 'json' };
import securityKeyZhHant from './locales/security-key/zh-Hant.json' with { type: 'json' };
import accountsEn from './locales/accounts/en.json' with { type: 'json' };
import accountsFr from './locales/accounts/fr.json' with { type: 'json' };
import accountsZhHant from './locales/accounts/zh-Hant.json' with { type: 'json' };
import legacyDevicesEn from './locales/legacy-devices/en.json' with { type: 'json' };
import legacyDevicesFr from './locales/legacy-devices/fr.json' with { type: 'json' };
import legacyDevicesZhHant from './locales/legacy-devices/zh-Hant.json' with { type: 'json' };
import entitlementsEn from './locales/entitlements/en.json' with { type: 'json' };
import entitlementsFr from './locales/entitlements/fr.json' with { type: 'json' };
import entitlementsZhHant from './locales/entitlements/zh-Hant.json' with { type: 'json' };
import sharingEn from './locales/sharing/en.json' with { type: 'json' };
import sharingFr from './locales/sharing/fr.json' with { type: 'json' };
import sharingZhHant from './locales/sharing/zh-Hant.json' with { type: 'json' };
import helpEn from './locales/help/en.json' with { type: 'json' };
import helpFr from './locales/help/fr.json' with { type: 'json' };
import helpZhHant from './locales/help/zh-Hant.json' with { type: 'json' };
import optOutEn from './locales/opt-out/en.json' with { type: 'json' };
import optOutFr from './locales/opt-out/fr.json' with { type: 'json' };
import optOutZhHant from './locales/opt-out/zh-Hant.json' with { type: 'json' };
import oidcEn from './locales/oidc/en.json' with { type: 'json' };
import oidcFr from './locales/oidc/fr.json' with { type: 'json' };
import oidcZhHant from './locales/oidc/zh-Hant.json' with { type: 'json' };

export type Messages = { [key: string]: string | Messages };

export const AREAS: Record<string, Record<'en' | 'fr' | 'zh-Hant', Messages>> = {
  core: { en: coreEn, fr: coreFr, 'zh-Hant': coreZhHant },
  helpdesk: { en: helpdeskEn, fr: helpdeskFr, 'zh-Hant': helpdeskZhHant },
  cards: { en: cardsEn, fr: cardsFr, 'zh-Hant': cardsZhHant },
  sms: { en: smsEn, fr: smsFr, 'zh-Hant': smsZhHant },
  /** The mobile authenticator on the server's side: logins by push, errors, notices (K). */
  mobile: { en: mobileEn, fr: mobileFr, 'zh-Hant': mobileZhHant },
  /** The authenticator app's own screens (/app). */
  authenticator: { en: authenticatorEn, fr: authenticatorFr, 'zh-Hant': authenticatorZhHant },
  /** No path without the second factor: step-up, one-time passwords, staff on staff, flow limits (X7, L4, L8, A5). */
  security: { en: securityEn, fr: securityFr, 'zh-Hant': securityZhHant },
  /** The keyed audit log: what verify finds, checkpoints, queries (X1). */
  audit: { en: auditEn, fr: auditFr, 'zh-Hant': auditZhHant },
  /** Running the server: start failures, database outages, stopping (X4, X6). */
  operations: { en: operationsEn, fr: operationsFr, 'zh-Hant': operationsZhHant },
  /** FIDO2 security keys and passkeys: the login prompt, the settings page, errors, the clone notice. */
  'security-key': { en: securityKeyEn, fr: securityKeyFr, 'zh-Hant': securityKeyZhHant },
  /** Entities, accounts and the primary user's rights: identification data, equity, the notice naming the primary user (A1, A2, A6). */
  accounts: { en: accountsEn, fr: accountsFr, 'zh-Hant': accountsZhHant },
  /** The legacy devices (D1): the DSC without PIN and the Platinum / Gold tokens, their prompts, their assignment. */
  'legacy-devices': { en: legacyDevicesEn, fr: legacyDevicesFr, 'zh-Hant': legacyDevicesZhHant },
  /** Withdrawal limits and entitlements for integrators: API keys, exchange rates, withdrawals (W1-W3, I3). */
  entitlements: { en: entitlementsEn, fr: entitlementsFr, 'zh-Hant': entitlementsZhHant },
  /** Sharing one device between usernames: the procedure's pages, its errors and notices, the compliance console (H1-H5, T4). */
  sharing: { en: sharingEn, fr: sharingFr, 'zh-Hant': sharingZhHant },
  /** Access assistance and SMS troubleshooting (R4), Client Services' contacts; the language and time zone of notices (N1). */
  help: { en: helpEn, fr: helpFr, 'zh-Hant': helpZhHant },
  /** Opting out of the second factor for trading and back in: the settings pages, warnings, notices, errors (O1-O3). */
  'opt-out': { en: optOutEn, fr: optOutFr, 'zh-Hant': optOutZhHant },
  /** The OpenID Provider: its error and logout pages, clients (console and sls client), errors, audit events (I1). */
  oidc: { en: oidcEn, fr: oidcFr, 'zh-Hant': oidcZhHant },
};

function merge(target: Messages, source: Messages, path: string): Messages {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (typeof value === 'object' && typeof existing === 'object') merge(existing, value, `${path}${key}.`);
    else if (existing !== undefined) throw new Error(`translation key ${path}${key} is defined twice`);
    else target[key] = typeof value === 'object' ? merge({}, value, `${path}${key}.`) : value;
  }
  return target;
}

export function messagesOf(language: 'en' | 'fr' | 'zh-Hant'): Messages {
  return Object.values(AREAS).reduce<Messages>((all, area) => merge(all, area[language], ''), {});
}
