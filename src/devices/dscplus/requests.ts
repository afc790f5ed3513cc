/**
 * Requesting a DSC+ (C1, C4–C6): a replacement when lost, stolen or
 * inoperable, or a second device. Accounts with equity above USD 1,000,000
 * may request one; the user gives a shipping address, a 4-digit soft PIN and
 * the account on which a USD 20 deposit is held, sees a summary, and gets a
 * confirmation with the estimated shipment date. Client services ship it
 * with a card from the imported stock; if the user has not activated it
 * three weeks after shipment it activates itself, and the user is told
 * when that is approaching and when it is imminent. The deposit is released
 * when a card comes back, kept when it is lost or stolen (C5).
 */
import { isCountryCode } from '../../identity/countries.js';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { AuditLog } from '../../audit/audit-log.js';
import type { SecretBox } from '../../crypto/secret-box.js';
import type { User, Users } from '../../identity/users.js';
import { countryOf, dayOf, type Notifier } from '../../notify/notifier.js';
import type { TemporaryDevices } from '../../flows/ports.js';
import { SlsError } from '../../errors.js';
import { newId } from '../../crypto/random.js';
import type { Session, Sessions } from '../../sessions/sessions.js';
import type { Executor, Store, Tx } from '../../store/database.js';
import { lossUnconfirmed, type Device } from '../types.js';
import { assertFullScope } from '../../policy/access.js';
import { DSCPLUS_SUITE, assertSoftPin, softPinHash, type DscPlusSecret } from './dscplus.js';
import type { CardFile, Devices } from '../devices.js';

export interface ShippingAddress {
  name: string;
  line1: string;
  line2?: string;
  city: string;
  postalCode: string;
  /** ISO 3166-1 alpha-2. */
  country: string;
}

export interface DscPlusRequestInput {
  address: ShippingAddress;
  pin: string;
  /** The account whose USD 20 is held; the user's own by default. */
  holdAccount?: string;
}

export interface RequestSummary {
  address: ShippingAddress;
  holdAccount: string;
  depositUsd: number;
  estimatedShipDate: string;
  estimatedDeliveryDate: string;
}

export interface RequestedDevice extends RequestSummary {
  device: Device;
}

/** What a DSC+ row keeps about its request and shipment (devices.params). */
interface RequestParams {
  suite?: string;
  request?: RequestSummary & {
    requestedAt: number;
    holdAccountId: string;
    /**
     * R2, C6: requested from a session whose last proof was not a permanent
     * device (a temporary passcode or online card): client services confirm
     * the address with the client before shipping.
     */
    temporaryAccess?: boolean;
  };
  shippedAt?: number;
  autoActivateAt?: number;
}

const DAY = 24 * 60 * 60 * 1000;

/** The next business day (Monday to Friday) after a time, as a date. */
function nextBusinessDay(from: number): number {
  let day = from + DAY;
  while ([0, 6].includes(new Date(day).getUTCDay())) day += DAY;
  return day;
}

const isoDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** What the DSC+ requests ask of the help desk (src/helpdesk/helpdesk.ts). */
export interface DscPlusHelpDesk extends TemporaryDevices {
  /** C5, C6: staff acting on a card's owner, checked and audited there; returns the staff member. */
  actOnOwner(staffUserId: string, ownerId: string | null, action: 'ship' | 'device_lost' | 'device_returned' | 'loss_confirmed'): Promise<User>;
  /** T1, X7: a valid verification of the user by this staff member (refusals audited there). */
  assertVerified(staffUserId: string, user: User, verificationId: string, action: 'device_lost' | 'device_returned' | 'loss_confirmed'): Promise<void>;
}

/** What the DSC+ requests need; the composition root passes them. */
export interface DscPlusRequestDeps {
  store: Store;
  clock: Clock;
  config: Config;
  box: SecretBox;
  audit: AuditLog;
  users: Users;
  devices: Devices;
  notifier: Notifier;
  sessions: Sessions;
  helpDesk: DscPlusHelpDesk;
  /** T3, R2: whether the session's last proof was a permanent device (StepUp.hasPermanentProof). */
  permanentProof: (session: Session) => Promise<boolean>;
  /**
   * D2, K7: whether the session's last proof is weaker than a DSC+ and than
   * the user's strongest device (StepUp.proofToAddRefusal): the card it
   * requests would be a stronger device bound by a weaker proof.
   */
  weakerProof: (session: Session) => Promise<boolean>;
  /** R2, D2: the device the session last proved, if it still stands (StepUp.lastProof). */
  lastProof: (session: Session) => Promise<{ device: Device | null }>;
  /** H5: whether a sharing in force sets the user's own devices aside (DeviceSharing.setsAside). */
  setAside: (userId: string, db: Executor) => Promise<boolean>;
}

/** R2, C6: the shipping address of a request made under temporary access, which client services confirm with the client before shipping. */
export function unconfirmedAddress(device: Device): ShippingAddress | null {
  const request = (device.params as RequestParams).request;
  return device.state === 'requested' && request?.temporaryAccess === true ? request.address : null;
}

/** How client services ship a requested card. */
export interface ShipOptions {
  /**
   * R2, C6: the staff member confirmed the shipping address with the client
   * (by a call to a number on record): required for a request made under
   * temporary access, audited with the shipment.
   */
  addressConfirmed?: boolean;
}

export class DscPlusRequests {
  constructor(private readonly deps: DscPlusRequestDeps) {}

  /** C1: equity above the threshold. */
  async eligibility(userId: string): Promise<{ eligible: boolean; equityUsd: number; thresholdUsd: number }> {
    const user = await this.deps.users.get(userId);
    const account = await this.deps.users.account(user.accountId);
    const thresholdUsd = this.deps.config.policy.dscPlusMinEquityUsd;
    return { eligible: account.equityUsd > thresholdUsd, equityUsd: account.equityUsd, thresholdUsd };
  }

  private validateAddress(address: ShippingAddress): ShippingAddress {
    const clean = (value: string | undefined, field: string, max: number, required = true): string => {
      const text = (value ?? '').trim();
      if ((required && text.length === 0) || text.length > max) throw new SlsError('VALIDATION_ERROR', { field, reason: `${field}: 1-${max} characters` });
      // X3, N1: the address is written into notices and shown to staff: one line of visible text (no control or format characters, such as a direction override)
      if (/[\p{Cc}\p{Cf}]/u.test(text)) throw new SlsError('VALIDATION_ERROR', { field, reason: `${field}: one line of text, without control characters` });
      return text;
    };
    const country = clean(address.country, 'country', 2).toUpperCase();
    if (!isCountryCode(country)) throw new SlsError('VALIDATION_ERROR', { field: 'country', reason: 'country: a two-letter ISO code' });
    const line2 = clean(address.line2, 'line2', 100, false);
    return {
      name: clean(address.name, 'name', 100),
      line1: clean(address.line1, 'line1', 100),
      ...(line2 ? { line2 } : {}),
      city: clean(address.city, 'city', 60),
      postalCode: clean(address.postalCode, 'postalCode', 20),
      country,
    };
  }

  /** C4: the summary shown before the user submits: nothing is stored. */
  async preview(session: Session, input: DscPlusRequestInput): Promise<RequestSummary & { holdAccountId: string }> {
    const { users, clock, config } = this.deps;
    assertFullScope(session);
    if (!(await this.eligibility(session.userId)).eligible) {
      throw new SlsError('NOT_ELIGIBLE', { threshold: config.policy.dscPlusMinEquityUsd });
    }
    assertSoftPin(input.pin);
    const address = this.validateAddress(input.address);
    const user = await users.get(session.userId);
    let holdAccountId = user.accountId;
    let holdAccount = user.accountNumber;
    if (input.holdAccount !== undefined && input.holdAccount !== user.accountNumber) {
      // another account of the same person (A1)
      const row = await this.deps.store.db
        .selectFrom('accounts')
        .select(['id', 'account_number', 'entity_id'])
        .where('account_number', '=', input.holdAccount)
        .executeTakeFirst();
      if (!row || row.entity_id !== user.entityId) throw new SlsError('ACCOUNT_NOT_FOUND', { account: input.holdAccount });
      holdAccountId = row.id;
      holdAccount = row.account_number;
    }
    const ship = nextBusinessDay(clock.now());
    // C6: about 2 days in the US, up to 2 weeks elsewhere
    const delivery = ship + (address.country === 'US' ? 2 : 14) * DAY;
    return {
      address,
      holdAccount,
      holdAccountId,
      depositUsd: config.policy.dscPlusDepositUsd,
      estimatedShipDate: isoDate(ship),
      estimatedDeliveryDate: isoDate(delivery),
    };
  }

  /** C4: the request itself: a DSC+ in state `requested` and the deposit held. */
  async request(session: Session, input: DscPlusRequestInput): Promise<RequestedDevice> {
    const { store, clock, audit, users, devices, notifier } = this.deps;
    const summary = await this.preview(session, input);
    const user = await users.get(session.userId);
    const now = clock.now();
    const id = newId('dev');
    // R2, C6: a request under temporary access is allowed, and marked: whoever deceived the help desk would get a card to their address
    // R2 (decision 0023): so is one made while a device reported lost from a weaker proof is within its wait (the password
    // and a SIM reported the card lost, and now ask for a new one): client services confirm the address before shipping
    const pendingLoss = (await devices.listForUser(user.id)).some((d) => lossUnconfirmed(d, now));
    // D2, K7: so is one made on a proof weaker than the user's strongest device (the password and a SIM while a DSC+
    // protects the user): shipped to any address, it would activate (C6) and replace the owner's card
    const temporaryAccess = pendingLoss || !(await this.deps.permanentProof(session)) || (await this.deps.weakerProof(session));
    const pinOnly: Pick<DscPlusSecret, 'pinHash'> = { pinHash: softPinHash(input.pin) };
    const { holdAccountId, ...shown } = summary;
    const params: RequestParams = { suite: DSCPLUS_SUITE, request: { ...shown, holdAccountId, requestedAt: now, temporaryAccess } };
    await store.serialized('audit_log', async (trx) => {
      await devices.insert(trx, { id, userId: user.id, type: 'dscplus', state: 'requested', secret: pinOnly, params: params as Record<string, unknown> });
      await trx
        .insertInto('deposit_holds')
        .values({
          id: newId('hld'),
          account_id: holdAccountId,
          device_id: id,
          amount_cents: Math.round(summary.depositUsd * 100),
          currency: 'USD',
          status: 'held',
          reason: null,
          created_at: now,
          resolved_at: null,
        })
        .execute();
      await audit.append(trx, [
        {
          event: 'device.requested',
          actor: `user:${user.id}`,
          userId: user.id,
          username: user.username,
          data: {
            deviceId: id,
            type: 'dscplus',
            holdAccount: summary.holdAccount,
            country: summary.address.country,
            estimatedShipDate: summary.estimatedShipDate,
            temporaryAccess,
          },
        },
      ]);
    });
    // N1, R2: where the card goes, so that the real owner spots a stranger's address
    await notifier.notify(user, 'dscplusRequested', {
      username: user.username,
      date: summary.estimatedShipDate,
      city: summary.address.city,
      country: countryOf(summary.address.country),
    });
    return { ...shown, device: await devices.get(id) };
  }

  /**
   * Client services ship a requested card with one from the imported stock
   * (C8): the card's seed and the user's soft PIN make its secret. Returns
   * the card file (without the PIN, which only the user knows) for the
   * emulator. R2, C6: a card requested under temporary access ships only
   * once the staff member states that they confirmed the address with the
   * client (409 ADDRESS_NOT_CONFIRMED otherwise, audited).
   */
  async ship(staffUserId: string, deviceId: string, serial: string, options: ShipOptions = {}): Promise<{ device: Device; card: Omit<CardFile, 'pin'> }> {
    const { store, clock, box, users, devices, notifier, config, helpDesk, audit } = this.deps;
    const device = await devices.get(deviceId);
    const staff = await helpDesk.actOnOwner(staffUserId, device.userId, 'ship');
    if (device.type !== 'dscplus' || device.state !== 'requested') throw new SlsError('DEVICE_STATE', { state: device.state });
    const user = await users.get(device.userId!);
    const toConfirm = unconfirmedAddress(device);
    if (toConfirm && options.addressConfirmed !== true) {
      await audit.record({
        event: 'device.ship_refused',
        actor: `staff:${staff.id}`,
        userId: user.id,
        username: user.username,
        data: { deviceId, reason: 'address_not_confirmed', country: toConfirm.country },
      });
      throw new SlsError('ADDRESS_NOT_CONFIRMED', { city: toConfirm.city, country: toConfirm.country });
    }
    const confirmed = toConfirm ? { temporaryAccess: true, addressConfirmed: true } : {};
    const now = clock.now();
    const autoActivateAt = now + config.policy.autoActivationMs;
    let seed = '';
    let suite = DSCPLUS_SUITE;
    await store.serialized('audit_log', async (trx) => {
      const stock = await trx
        .selectFrom('devices')
        .selectAll()
        .where('type', '=', 'dscplus')
        .where('serial', '=', serial)
        .where('state', '=', 'stock')
        .executeTakeFirst();
      if (!stock) throw new SlsError('NO_STOCK', { serial });
      seed = box.openJson<{ seed: string }>(stock.secret_enc!, `device:${stock.id}`).seed;
      suite = (JSON.parse(stock.params) as { suite?: string }).suite ?? DSCPLUS_SUITE;
      const requested = await trx.selectFrom('devices').select(['secret_enc', 'params']).where('id', '=', deviceId).executeTakeFirstOrThrow();
      const { pinHash } = box.openJson<Pick<DscPlusSecret, 'pinHash'>>(requested.secret_enc!, `device:${deviceId}`);
      const params: RequestParams = { ...(JSON.parse(requested.params) as RequestParams), suite, shippedAt: now, autoActivateAt };
      await trx.deleteFrom('devices').where('id', '=', stock.id).execute();
      const shipped = await devices.transition(trx, { id: deviceId, type: 'dscplus', state: 'requested', userId: user.id, activatedAt: null }, 'shipped', {
        actor: `staff:${staff.id}`,
        username: user.username,
        event: 'device.shipped',
        data: { serial, autoActivateAt, ...confirmed },
        set: {
          serial,
          label: `DSC+ ${serial}`,
          secret_enc: box.sealJson({ seed, pinHash } satisfies DscPlusSecret, `device:${deviceId}`),
          params: JSON.stringify(params),
        },
      });
      if (!shipped) throw new SlsError('DEVICE_STATE', { state: 'shipped' });
    });
    await notifier.notify(user, 'dscplusShipped', { username: user.username, serial, date: dayOf(autoActivateAt) });
    return { device: await devices.get(deviceId), card: { format: 'sls-dscplus-card/1', serial, suite, seed } };
  }

  /**
   * C5: a card reported lost, stolen or damaged stops working, and so do
   * the sessions it opened (L8) — but the reporting session, which stepped
   * up with another device (X7). The deposit of a lost or stolen card is
   * kept; a damaged (defective) card's stays held until it is returned.
   */
  async reportLost(
    actor: { session?: Session; staffUserId?: string; verificationId?: string },
    deviceId: string,
    reason: 'lost' | 'stolen' | 'damaged',
  ): Promise<Device> {
    const device = await this.deps.devices.get(deviceId);
    if (actor.staffUserId) {
      await this.deps.helpDesk.actOnOwner(actor.staffUserId, device.userId, 'device_lost');
      // T1: a report for a caller whose identity staff verified does not wait (decision 0023); a verification that does not hold is refused
      if (actor.verificationId !== undefined && device.userId) {
        await this.deps.helpDesk.assertVerified(actor.staffUserId, await this.deps.users.get(device.userId), actor.verificationId, 'device_lost');
      }
    } else if (!actor.session || device.userId !== actor.session.userId) throw new SlsError('DEVICE_NOT_FOUND', { id: deviceId });
    else assertFullScope(actor.session);
    if (!['active', 'suspended', 'shipped', 'requested'].includes(device.state) || device.type !== 'dscplus') {
      throw new SlsError('DEVICE_STATE', { state: device.state });
    }
    const by = actor.staffUserId ? `staff:${actor.staffUserId}` : `user:${device.userId}`;
    // R2, D2, K7 (decision 0023): reported from a session that proved a weaker device (the password and a SIM may be
    // someone else's): the card still counts as held, for a while, when a new device is bound; client services' report does not wait
    const proved = actor.session ? (await this.deps.lastProof(actor.session)).device : null;
    const kind = (type: string) => this.deps.devices.kind(type).strength;
    // R2, T1 (decision 0028): staff who report it without a verification of the caller (the password and a SIM on the
    // telephone, "I lost my card") vouch for nothing either: the same wait
    const unverified = actor.staffUserId !== undefined && actor.verificationId === undefined && device.userId !== null;
    const weaker = unverified || (actor.session !== undefined && (proved === null || kind(proved.type) < kind(device.type)));
    const set = weaker ? await this.waitOf(device, { provedWith: proved?.type ?? null, byStaff: unverified }) : undefined;
    const lost = await this.settle(
      deviceId,
      'lost',
      reason === 'damaged' ? null : 'kept',
      reason,
      by,
      async (trx) => {
        // L8, H: the sessions the card opened end, also those of a user it is shared with
        await this.deps.sessions.endOpenedWith(trx, [deviceId], 'device_lost', by, actor.session?.id);
      },
      set,
    );
    // N1, R2: the owner hears of it: a report by someone holding only the password and a weaker device is the first step
    // to a device of their own (a key, the authenticator); the owner can still call client services
    if (device.userId) {
      const user = await this.deps.users.get(device.userId);
      await this.deps.notifier.notifySoon(user, 'deviceReportedLost', { username: user.username, serial: device.serial ?? '' });
    }
    return lost;
  }

  /**
   * R2, T1, X7 (decision 0028): an admin ends the wait after a loss reported
   * with a weaker proof (decision 0023) when the real client calls: with a
   * verification of their own of the owner, the card stops counting as held
   * at once, so the owner binds a new device with what they hold. Anyone but
   * an admin is refused 403 LOSS_CONFIRM_ADMIN_ONLY (audited
   * `helpdesk.refused`, reason `admin_only`), as a staff lock is lifted
   * (decision 0020): an agent's telephone check is what the fraudster who
   * reported the loss passes. A device not waiting: 409 LOSS_NOT_WAITING.
   * Audited `device.loss_confirmed`; the owner is told (N1).
   */
  async confirmLoss(staffUserId: string, deviceId: string, verificationId: string): Promise<Device> {
    const { store, clock, audit, devices, users, helpDesk } = this.deps;
    const device = await devices.get(deviceId);
    const staff = await helpDesk.actOnOwner(staffUserId, device.userId, 'loss_confirmed');
    if (!device.userId) throw new SlsError('LOSS_NOT_WAITING');
    const owner = await users.get(device.userId);
    if (staff.role !== 'admin') {
      await audit.record({
        event: 'helpdesk.refused',
        actor: `staff:${staff.id}`,
        userId: owner.id,
        username: owner.username,
        data: { action: 'loss_confirmed', reason: 'admin_only', deviceId },
      });
      throw new SlsError('LOSS_CONFIRM_ADMIN_ONLY');
    }
    await helpDesk.assertVerified(staff.id, owner, verificationId, 'loss_confirmed');
    const confirmed = await store.serialized('audit_log', async (trx) => {
      // read again under the audit lock: two confirmations at once end the wait once
      const row = await trx.selectFrom('devices').select(['state', 'params']).where('id', '=', deviceId).executeTakeFirstOrThrow();
      const params = JSON.parse(row.params) as Record<string, unknown>;
      if (!lossUnconfirmed({ ...device, state: row.state as Device['state'], params }, clock.now())) return false;
      const { weakerLossReport, ...rest } = params;
      const lossConfirmed = { by: staff.id, at: clock.now(), verificationId };
      await trx
        .updateTable('devices')
        .set({ params: JSON.stringify({ ...rest, lossConfirmed }) })
        .where('id', '=', deviceId)
        .execute();
      await audit.append(trx, [
        {
          event: 'device.loss_confirmed',
          actor: `staff:${staff.id}`,
          userId: owner.id,
          username: owner.username,
          data: { deviceId, verificationId, weakerLossReport },
        },
      ]);
      return true;
    });
    if (!confirmed) throw new SlsError('LOSS_NOT_WAITING');
    await this.deps.notifier.notify(owner, 'deviceLossConfirmed', { username: owner.username, serial: device.serial ?? '' });
    return devices.get(deviceId);
  }

  /**
   * C5: a card back at the help desk (returned, defective, or found after
   * all): its deposit is released. R2, T1, X7 (decisions 0028, 0036): an
   * active card marked returned without `verificationId` (the staff
   * member's verification of the owner) waits as a loss staff report
   * without one: "I sent my card back" on the telephone is what whoever has
   * the password and the SIM says. A card already waiting after a weaker
   * loss report keeps its wait (`lossUnconfirmed` counts a returned card):
   * only an admin ends it (`confirmLoss`), never an agent's return.
   */
  async markReturned(staffUserId: string, deviceId: string, verificationId?: string): Promise<Device> {
    const device = await this.deps.devices.get(deviceId);
    await this.deps.helpDesk.actOnOwner(staffUserId, device.userId, 'device_returned');
    if (device.type !== 'dscplus' || ['returned', 'stock', 'requested'].includes(device.state)) throw new SlsError('DEVICE_STATE', { state: device.state });
    if (verificationId !== undefined && device.userId) {
      await this.deps.helpDesk.assertVerified(staffUserId, await this.deps.users.get(device.userId), verificationId, 'device_returned');
    }
    // a card in use: one suspended or on its way no longer counts as held (K7), so its return takes nothing away
    const unverified = verificationId === undefined && device.userId !== null && device.state === 'active';
    const set = unverified ? await this.waitOf(device, { provedWith: null, byStaff: true }) : undefined;
    // L8: a card back at the help desk no longer stands behind the sessions it opened
    return this.settle(
      deviceId,
      'returned',
      'released',
      'returned',
      `staff:${staffUserId}`,
      async (trx) => {
        await this.deps.sessions.endOpenedWith(trx, [deviceId], 'device_returned', `staff:${staffUserId}`);
      },
      set,
    );
  }

  /**
   * R2 (decisions 0023, 0028): the wait a loss report with a weaker proof (or
   * staff's report or return without a verification, `byStaff`) starts, as the
   * device's new params: for a while it still counts as held when a new device
   * is bound (`lossUnconfirmed`). X7, D2 (decision 0035): a staff member's card
   * is what their help-desk seat acts on: its wait ends only when an admin ends
   * it, or the staff password and a SIM would act, and bind a key or the
   * authenticator, 3 days later.
   */
  private async waitOf(device: Device, report: { provedWith: string | null; byStaff: boolean }): Promise<{ params: string }> {
    const owner = device.userId ? await this.deps.users.get(device.userId) : null;
    const weakerLossReport = {
      until: this.deps.clock.now() + this.deps.config.policy.weakerLossReportWaitMs,
      provedWith: report.provedWith,
      ...(report.byStaff ? { byStaff: true } : {}),
      ...(owner !== null && owner.role !== 'client' ? { untilConfirmed: true } : {}),
    };
    return { params: JSON.stringify({ ...device.params, weakerLossReport }) };
  }

  /** The device's new state and, unless `hold` is null, its deposit's. */
  private async settle(
    deviceId: string,
    state: 'lost' | 'returned',
    hold: 'kept' | 'released' | null,
    reason: string,
    actor: string,
    alongside?: (trx: Tx) => Promise<void>,
    set?: { params: string },
  ): Promise<Device> {
    const { store, clock, audit, devices } = this.deps;
    const device = await devices.get(deviceId);
    const now = clock.now();
    await store.serialized('audit_log', async (trx) => {
      const data = set ? { weakerProof: true } : undefined;
      if (!(await devices.transition(trx, device, state, { actor, reason, ...(set ? { set, data } : {}) }))) {
        throw new SlsError('DEVICE_STATE', { state: device.state });
      }
      const held = hold
        ? await trx
            .updateTable('deposit_holds')
            .set({ status: hold, reason, resolved_at: now })
            .where('device_id', '=', deviceId)
            // a released deposit stays released; a kept one is released when the card comes back after all
            .where('status', 'in', hold === 'released' ? ['held', 'kept'] : ['held'])
            .returning(['amount_cents'])
            .executeTakeFirst()
        : undefined;
      if (held) {
        await audit.append(trx, [
          { event: 'deposit.settled', actor, userId: device.userId, data: { deviceId, status: hold, amountUsd: held.amount_cents / 100 } },
        ]);
      }
      await alongside?.(trx);
    });
    return devices.get(deviceId);
  }

  /** The deposit of a device, if one was held. */
  async hold(deviceId: string): Promise<{ status: string; amountUsd: number; account: string } | null> {
    const row = await this.deps.store.db
      .selectFrom('deposit_holds')
      .innerJoin('accounts', 'accounts.id', 'deposit_holds.account_id')
      .select(['deposit_holds.status', 'deposit_holds.amount_cents', 'accounts.account_number'])
      .where('deposit_holds.device_id', '=', deviceId)
      .executeTakeFirst();
    return row ? { status: row.status, amountUsd: row.amount_cents / 100, account: row.account_number } : null;
  }

  private async shippedCards(): Promise<(Device & { params: RequestParams })[]> {
    return (await this.deps.devices.listInState('dscplus', 'shipped')) as (Device & { params: RequestParams })[];
  }

  /**
   * C6: cards shipped three weeks ago and not activated activate themselves;
   * being permanent devices, they end the temporary access (D4). Safe with
   * several processes: the state change is conditional, so each card is
   * activated once. H5: the card of a user whose own devices a sharing in
   * force sets aside waits, shipped, until the sharing ends (as the user's
   * own activation of it does).
   */
  async autoActivateDue(): Promise<Device[]> {
    const { store, clock, users, devices, notifier, helpDesk } = this.deps;
    const now = clock.now();
    const activated: Device[] = [];
    for (const card of await this.shippedCards()) {
      if ((card.params.autoActivateAt ?? Infinity) > now) continue;
      const user = await users.get(card.userId!);
      const done = await store.serialized('audit_log', async (trx: Tx) => {
        if (await this.deps.setAside(user.id, trx)) return false;
        const activated = await devices.transition(trx, card, 'active', {
          actor: 'system',
          username: user.username,
          event: 'device.auto_activated',
          data: { serial: card.serial },
        });
        if (!activated) return false;
        await helpDesk.revokeTemporaryDevices(user, 'system', 'replacement device activated', trx);
        return true;
      });
      if (!done) continue;
      await notifier.notify(user, 'dscplusAutoActivated', { username: user.username, serial: card.serial ?? '' }, `auto-activated:${card.id}`);
      activated.push(await devices.get(card.id));
    }
    return activated;
  }

  /** N1/C6: notices before auto-activation: approaching (a week before) and imminent (a day before); each once. */
  async sendAutoActivationNotices(): Promise<number> {
    const { clock, users, notifier, config } = this.deps;
    const now = clock.now();
    let sent = 0;
    for (const card of await this.shippedCards()) {
      const at = card.params.autoActivateAt;
      if (at === undefined || at <= now) continue;
      const user = await users.get(card.userId!);
      const params = { username: user.username, serial: card.serial ?? '', date: dayOf(at) };
      if (at - now <= config.policy.autoActivationImminentMs) {
        sent += (await notifier.notify(user, 'autoActivationImminent', params, `auto-activation-imminent:${card.id}`)).length;
      } else if (at - now <= config.policy.autoActivationApproachingMs) {
        sent += (await notifier.notify(user, 'autoActivationApproaching', params, `auto-activation-approaching:${card.id}`)).length;
      }
    }
    return sent;
  }
}
