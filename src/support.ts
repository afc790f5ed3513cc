/**
 * R4: the Client Services contacts the help pages show, as the operator
 * configures them (docs/operations.md, "Client Services contacts"):
 * SLS_SUPPORT_PHONE, SLS_SUPPORT_EMAIL and SLS_SUPPORT_HOURS for one
 * center, and/or SLS_SUPPORT_FILE, a JSON file of regional centers whose
 * names and hours may be given per language.
 */
import { readSettingFile } from './bounded-file.js';
import { z } from 'zod';
import { SlsError } from './errors.js';
import { fieldIssue, issueReason } from './i18n/schema-issues.js';

/** A text of the operator's, the same in every language or given per language (`en`, `fr`, `zh-Hant`). */
export type OperatorText = { all: string } | { byLanguage: Partial<Record<'en' | 'fr' | 'zh-Hant', string>> };

export interface SupportCenter {
  /** A region's name ("Europe", "Hong Kong"); null for the one center of the environment variables. */
  name: OperatorText | null;
  /** As it is dialled, with its international prefix: "+1 877 442 2757". */
  phone: string | null;
  email: string | null;
  /** Opening hours, as the operator writes them: "Monday to Friday, 8:00–20:00 (CET)". */
  hours: OperatorText | null;
}

/** Digits, spaces, and + ( ) . - as people write telephone numbers; at least 4 digits. */
export const SupportPhone = z
  .string()
  .trim()
  // X2: told as validation.custom.telephone_number (a telephone number such as +1 877 442 2757)
  .regex(/^\+?[0-9][0-9 ().-]{2,30}[0-9]$/, 'telephone number')
  .refine((phone) => phone.replace(/\D/g, '').length >= 4, 'telephone number');
/** X2: told as validation.custom.e_mail_address (an e-mail address such as help@broker.example). */
export const SupportEmail = z.string().trim().email('e-mail address').max(254);
const Text = z.string().trim().min(1).max(200);
const LocalText = z.union([Text, z.object({ en: Text.optional(), fr: Text.optional(), 'zh-Hant': Text.optional() }).strict()]);

const CenterFile = z
  .object({
    name: LocalText.optional(),
    phone: SupportPhone.optional(),
    email: SupportEmail.optional(),
    hours: LocalText.optional(),
  })
  .strict()
  // X2: told as validation.custom.phone_or_email
  .refine((c) => c.phone !== undefined || c.email !== undefined, 'phone or email');
const SupportFile = z.object({ centers: z.array(CenterFile).min(1).max(50) }).strict();

function operatorText(value: z.infer<typeof LocalText> | undefined): OperatorText | null {
  if (value === undefined) return null;
  return typeof value === 'string' ? { all: value } : { byLanguage: value };
}

/** The centers of a support file's text; INVALID_CONFIG (SLS_SUPPORT_FILE) naming what is wrong. */
export function parseSupportFile(text: string): SupportCenter[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new SlsError('INVALID_CONFIG', { setting: 'SLS_SUPPORT_FILE', reason: 'not JSON' });
  }
  const parsed = SupportFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // X2: the field's path (the file's own words) and its reason from the translation files
    const reason = issueReason(issue);
    throw new SlsError('INVALID_CONFIG', { setting: 'SLS_SUPPORT_FILE', reason: issue.path.length > 0 ? fieldIssue(issue.path.join('.'), reason) : reason });
  }
  return parsed.data.centers.map((c) => ({ name: operatorText(c.name), phone: c.phone ?? null, email: c.email ?? null, hours: operatorText(c.hours) }));
}

/** The centers of the environment: one from SLS_SUPPORT_PHONE/EMAIL/HOURS, then those of SLS_SUPPORT_FILE. */
export function supportCenters(env: { phone?: string; email?: string; hours?: string; file?: string }): SupportCenter[] {
  const centers: SupportCenter[] = [];
  if (env.phone || env.email) centers.push({ name: null, phone: env.phone ?? null, email: env.email ?? null, hours: env.hours ? { all: env.hours } : null });
  if (env.file) {
    centers.push(...parseSupportFile(readSettingFile(env.file, 'SLS_SUPPORT_FILE')));
  }
  return centers;
}

/** An operator's text in a language: its own, else the English, else any. */
export function textIn(text: OperatorText | null, language: 'en' | 'fr' | 'zh-Hant'): string | null {
  if (text === null) return null;
  if ('all' in text) return text.all;
  return text.byLanguage[language] ?? text.byLanguage.en ?? Object.values(text.byLanguage)[0] ?? null;
}

/** The tel: address of a number ("+1 877 442 2757" → "tel:+18774422757"). */
export function telHref(phone: string): string {
  return `tel:${phone.startsWith('+') ? '+' : ''}${phone.replace(/\D/g, '')}`;
}
