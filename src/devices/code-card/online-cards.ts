/**
 * The Online Security Code Card (S2, S3): shown in the portal to a user
 * logged in with a temporary passcode, who prints or saves it, confirms it
 * printed correctly, and activates it with the codes under two index numbers
 * (see flows/activation.ts); it then gives full access for 21 days.
 * Legacy Security Code Cards (S1) are imported with their codes.
 */
import type { Clock } from '../../clock.js';
import type { AuditLog } from '../../audit/audit-log.js';
import type { Users } from '../../identity/users.js';
import type { Store, Tx } from '../../store/database.js';
import type { Devices } from '../devices.js';
import { SlsError } from '../../errors.js';
import { newId, newToken } from '../../crypto/random.js';
import { translator, type Language } from '../../i18n/i18n.js';
import type { Session } from '../../sessions/sessions.js';
import type { Device } from '../types.js';
import { CARD_CODES, CODE_DIGITS, newCodeCard, type CodeCardSecret } from './code-card.js';
import { CJK_FONT, cardPdf, cardPng, type PrintableCard } from './print.js';

export interface OnlineCardDeps {
  store: Store;
  clock: Clock;
  audit: AuditLog;
  users: Users;
  devices: Devices;
}

export class OnlineCards {
  constructor(private readonly deps: OnlineCardDeps) {}

  /** S2: only a user logged in with a temporary passcode gets an online card. */
  private assertTemporaryAccess(session: Session): void {
    if (session.deviceType !== 'temp_passcode') throw new SlsError('ONLINE_CARD_NOT_AVAILABLE');
  }

  private async pending(userId: string, db?: Tx): Promise<Device | undefined> {
    return (await this.deps.devices.listForUser(userId, db)).find((d) => d.type === 'online_card' && d.state === 'requested');
  }

  /**
   * The card waiting to be printed and activated, if it was made; null
   * otherwise. Reading never makes one: a page or file fetched by a GET
   * (which another site's link can send with the cookie) changes nothing.
   */
  async current(session: Session): Promise<Device | null> {
    this.assertTemporaryAccess(session);
    return (await this.pending(session.userId)) ?? null;
  }

  /** The card waiting to be printed and activated; 409 ONLINE_CARD_NOT_MADE when the user has not asked for one (`make`). */
  async existing(session: Session): Promise<Device> {
    const card = await this.current(session);
    if (!card) throw new SlsError('ONLINE_CARD_NOT_MADE');
    return card;
  }

  /** S2: the user asks for the card (a POST): made on the first call, the same one until it is activated. */
  async make(session: Session): Promise<Device> {
    const existing = await this.current(session);
    if (existing) return existing;
    const { store, audit, users, devices } = this.deps;
    const user = await users.get(session.userId);
    const id = newId('dev');
    const serial = `OSC${id.slice(-8).toUpperCase()}`;
    const cardId = await store.serialized('audit_log', async (trx) => {
      // two requests at once get one card: the one the first of them created
      const created = await this.pending(user.id, trx);
      if (created) return created.id;
      await devices.insert(trx, { id, userId: user.id, type: 'online_card', state: 'requested', serial, label: serial, secret: newCodeCard() });
      await audit.append(trx, [
        { event: 'online_card.created', actor: `user:${user.id}`, userId: user.id, username: user.username, data: { deviceId: id, serial } },
      ]);
      return id;
    });
    return devices.get(cardId);
  }

  /** S2: the user confirms the card printed correctly, in all its parts. */
  async confirmPrinted(session: Session): Promise<Device> {
    const card = await this.existing(session);
    const { store, clock, audit, devices } = this.deps;
    const params = { ...card.params, printConfirmedAt: clock.now() };
    // L8 (decision 0031): under the audit lock, where the request's session is read again: one ended meanwhile confirms nothing
    await store.serialized('audit_log', async (trx) => {
      await trx
        .updateTable('devices')
        .set({ params: JSON.stringify(params) })
        .where('id', '=', card.id)
        .execute();
      await audit.append(trx, [{ event: 'online_card.print_confirmed', actor: `user:${session.userId}`, userId: session.userId, data: { deviceId: card.id } }]);
    });
    return devices.get(card.id);
  }

  /** The card's texts in the reader's language, or English where no font can print it (see CJK_FONT). */
  async printable(session: Session, language: Language, time: (ms: number) => string): Promise<PrintableCard> {
    const t = translator(language === 'zh-Hant' && CJK_FONT === null ? 'en' : language);
    const card = await this.existing(session);
    const user = await this.deps.users.get(session.userId);
    const secret = (await this.deps.devices.context(card)).secret<CodeCardSecret>();
    return {
      heading: [
        t('cards.print.title'),
        t('cards.print.user', { username: user.username }),
        t('cards.print.serial', { serial: card.serial ?? '' }),
        t('cards.print.printedAt', { time: time(this.deps.clock.now()) }),
      ],
      footer: t('cards.print.footer'),
      codes: secret.codes,
    };
  }

  async pdf(session: Session, language: Language, time: (ms: number) => string): Promise<Buffer> {
    return cardPdf(await this.printable(session, language, time));
  }

  async png(session: Session, language: Language, time: (ms: number) => string): Promise<Buffer> {
    return cardPng(await this.printable(session, language, time));
  }

  /** S1: a legacy Security Code Card, imported with its codes (index 1 first). */
  async importSecurityCodeCard(userId: string, serial: string, codes: string[], actor: string): Promise<Device> {
    if (codes.length < 100 || codes.some((c) => !new RegExp(`^\\d{${CODE_DIGITS}}$`).test(c))) {
      throw new SlsError('VALIDATION_ERROR', { reason: `a card has at least 100 codes of ${CODE_DIGITS} digits (${CARD_CODES} for new cards)` });
    }
    if (!/^[A-Za-z0-9-]{1,32}$/.test(serial)) throw new SlsError('VALIDATION_ERROR', { field: '--serial', reason: 'scc_serial' });
    // S1, S4: a card whose codes repeat is a static password (100 times "000": one answer seen opens every login); codes
    // drawn at random repeat a few times (about 5 of 100), never half of them
    const distinct = new Set(codes).size;
    if (distinct * 2 < codes.length) throw new SlsError('VALIDATION_ERROR', { reason: 'scc_repeated', distinct, count: codes.length });
    const { store, audit, devices } = this.deps;
    const id = newId('dev');
    const secret: CodeCardSecret = { codes, orderKey: newToken() };
    await store.serialized('audit_log', async (trx) => {
      const taken = await trx.selectFrom('devices').select('id').where('type', '=', 'scc').where('serial', '=', serial).executeTakeFirst();
      if (taken) throw new SlsError('SERIAL_TAKEN', { serial });
      await devices.insert(trx, {
        id,
        userId,
        type: 'scc',
        state: 'active',
        serial,
        label: `SCC ${serial}`,
        secret,
        params: { imported: true },
        activated: true,
      });
      await audit.append(trx, [{ event: 'device.imported', actor, userId, data: { deviceId: id, type: 'scc', serial, count: 1 } }]);
    });
    return devices.get(id);
  }
}
