/**
 * N1: the language and time zone a user's notices are written in.
 *
 * The rule (docs/operations.md, "Notices in the user's language"):
 * 1. A choice wins: the setting "Language and time zone for notices" of the
 *    account page, `sls user set-language`, or the API. It stays until the
 *    next choice; "as my logins" (both null) takes it back.
 * 2. Otherwise the language of the user's most recent complete login is
 *    remembered: the language the person chose on the pages (the switcher,
 *    kept in the sls_lang cookie), else their browser's or app's
 *    Accept-Language when it names one of ours; and the browser's time
 *    zone when the pages could read it (the sls_tz cookie). Only a login
 *    that passed the second factor counts: someone who merely knows a
 *    username cannot change the language of its notices.
 * 3. Otherwise the server's default (SLS_DEFAULT_LANGUAGE, SLS_TIME_ZONE).
 *
 * A choice is not a security setting of X7 (no step-up): it is audited, and
 * a change of language is told to the user in the language they had, so a
 * stolen session cannot quietly turn the notices into a language the user
 * does not read.
 */
import type { Clock } from '../clock.js';
import type { AuditLog } from '../audit/audit-log.js';
import { isTimeZone } from '../config.js';
import { isLanguage, translator, type Language } from '../i18n/i18n.js';
import type { Notifier } from '../notify/notifier.js';
import type { Store, Tx } from '../store/database.js';
import { assertNoticePreferences, type Users } from './users.js';

export interface NoticePreferencesView {
  /** The language chosen or remembered; null: the server's default. */
  language: Language | null;
  /** The IANA time zone chosen or remembered; null: the server's. */
  timeZone: string | null;
  /** Whether they were chosen (then logins leave them alone), and when. */
  chosenAt: number | null;
  /** What notices use now: the above, or the server's defaults. */
  effective: { language: Language; timeZone: string };
}

/** What a complete login tells of the person's language and time zone, when it says anything. */
export interface ExpressedPreferences {
  language?: Language | null;
  timeZone?: string | null;
}

export interface NoticePreferencesDeps {
  store: Store;
  clock: Clock;
  audit: AuditLog;
  users: Users;
  notifier: Pick<Notifier, 'notify'>;
  defaults: { language: Language; timeZone: string };
}

export class NoticePreferences {
  constructor(private readonly deps: NoticePreferencesDeps) {}

  async get(userId: string): Promise<NoticePreferencesView> {
    const row = await this.deps.store.db
      .selectFrom('users')
      .select(['language', 'time_zone', 'notice_preferences_chosen_at'])
      .where('id', '=', userId)
      .executeTakeFirst();
    const language = isLanguage(row?.language) ? row.language : null;
    const timeZone = row?.time_zone && isTimeZone(row.time_zone) ? row.time_zone : null;
    return {
      language,
      timeZone,
      chosenAt: row?.notice_preferences_chosen_at ?? null,
      effective: { language: language ?? this.deps.defaults.language, timeZone: timeZone ?? this.deps.defaults.timeZone },
    };
  }

  /**
   * A choice (rule 1), by the user or for them (`actor`). A new language is
   * told first, in the language the notices had until now.
   */
  async choose(userId: string, preferences: { language: string | null; timeZone: string | null }, actor: string): Promise<NoticePreferencesView> {
    assertNoticePreferences(preferences);
    const { users, notifier, defaults } = this.deps;
    const before = await this.get(userId);
    const user = await users.get(userId);
    const next = (preferences.language as Language | null) ?? defaults.language;
    if (next !== before.effective.language) {
      const t = translator(before.effective.language);
      await notifier.notify(user, 'noticeLanguageChanged', { username: user.username, language: t(`language.${next}`) });
    }
    await users.setNoticePreferences(userId, preferences, actor);
    return this.get(userId);
  }

  /**
   * Rule 2: a complete login remembers the language and time zone it
   * expressed, in the login's transaction, unless the user chose them.
   * Returns whether anything changed (audited then).
   */
  async remember(trx: Tx, userId: string, expressed: ExpressedPreferences): Promise<boolean> {
    const language = isLanguage(expressed.language) ? expressed.language : null;
    const timeZone = expressed.timeZone && isTimeZone(expressed.timeZone) ? expressed.timeZone : null;
    if (language === null && timeZone === null) return false;
    const row = await trx
      .selectFrom('users')
      .select(['username', 'language', 'time_zone', 'notice_preferences_chosen_at'])
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!row || row.notice_preferences_chosen_at !== null) return false;
    const set = { language: language ?? row.language, time_zone: timeZone ?? row.time_zone };
    if (set.language === row.language && set.time_zone === row.time_zone) return false;
    const changed = await trx.updateTable('users').set(set).where('id', '=', userId).where('notice_preferences_chosen_at', 'is', null).executeTakeFirst();
    if (Number(changed.numUpdatedRows) !== 1) return false;
    await this.deps.audit.append(trx, [
      {
        event: 'user.notice_preferences_changed',
        actor: 'login',
        userId,
        username: row.username,
        data: { language: set.language, timeZone: set.time_zone, source: 'login' },
      },
    ]);
    return true;
  }
}
