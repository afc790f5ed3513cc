/**
 * Devices of every type: storage, secrets sealed at rest (D5), lifecycle
 * states (D3) with every change audited, and the single-use register of
 * accepted answers (L4).
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Clock } from '../clock.js';
import { SlsError } from '../errors.js';
import { newId } from '../crypto/random.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { AuditEvent, AuditLog } from '../audit/audit-log.js';
import type { Executor, Store, Tx } from '../store/database.js';
import { prepared, type Prepared } from '../store/prepared.js';
import type { DeviceState, DevicesTable, Schema } from '../store/schema.js';
import type { ExpressionBuilder, Selectable, SelectQueryBuilder, Updateable } from 'kysely';
import { allowedMove, DEVICE_TRANSITIONS, TEMPORARY_TRANSITIONS } from './transitions.js';
import { DSCPLUS_SUITE, dscPlusSecret, type DscPlusSecret } from './dscplus/dscplus.js';
import type { DeviceKind, DeviceKinds, ImportedKey, ImportSettings, StockItem } from './types.js';
import type { Device, DeviceContext, DeviceType, RelyingParty, Suspicion } from './types.js';
import type { Sessions } from '../sessions/sessions.js';
import { REASONS } from './dscplus/pskc.js';

/** D5: the shortest device key imported, in bytes (128 bits, RFC 4226 §4). */
export const MIN_SECRET_BYTES = 16;

type DeviceRow = Selectable<DevicesTable>;

/** What the `sls dsc` card emulator reads: everything printed on and stored in the card. */
export interface CardFile {
  format: 'sls-dscplus-card/1';
  serial: string;
  suite: string;
  /** The card seed, hex. */
  seed: string;
  pin: string;
}

/**
 * What the `sls token` emulator reads (D1): the keys of one legacy token or
 * card issued from the stock, each with its algorithm and parameters.
 */
export interface TokenFile {
  format: 'sls-token/1';
  /** The physical device's serial. */
  serial: string;
  keys: ({ deviceId: string; type: DeviceType; serial: string; keyId: string | null } & Record<string, unknown>)[];
}

const NEVER = 8_640_000_000_000_000;

function deviceFromRow(row: DeviceRow): Device {
  return {
    id: row.id,
    userId: row.user_id,
    type: row.type as DeviceType,
    state: row.state,
    serial: row.serial,
    label: row.label,
    params: JSON.parse(row.params) as Record<string, unknown>,
    createdAt: row.created_at,
    activatedAt: row.activated_at,
    lastUsedAt: row.last_used_at,
    expiresAt: row.expires_at,
  };
}

/** What `Devices.transition` needs to know of a device: the state it was read in. */
export type DeviceInState = Pick<Device, 'id' | 'type' | 'state' | 'userId' | 'activatedAt'>;

/** A move of a device's state: who, why, the audit event, and the other columns written with it. */
export interface StateChange {
  actor: string;
  reason?: string | null;
  /** The audit event when the move has its own name (device.activated, device.shipped …); default device.state_changed. */
  event?: AuditEvent;
  /** More of the audit entry's data (a serial, a date …). */
  data?: Record<string, unknown>;
  username?: string | null;
  ip?: string | null;
  /** Columns written with the state (a serial, the sealed secret, an expiry …). */
  set?: Partial<Pick<Updateable<DevicesTable>, 'serial' | 'label' | 'secret_enc' | 'params' | 'expires_at' | 'user_id'>>;
}

/** A device row to insert: its secret is sealed to it (D5). */
export interface NewDevice {
  id?: string;
  userId: string | null;
  type: DeviceType;
  state: DeviceState;
  serial?: string | null;
  label?: string | null;
  secret: unknown;
  params?: Record<string, unknown>;
  /** Whether it is in use from now (activated_at). */
  activated?: boolean;
  expiresAt?: number | null;
  /** D6: a security key's WebAuthn credential id (unique across users: a second insert of it fails). */
  credentialId?: string;
}

export interface AddDscPlusInput {
  userId: string;
  pin: string;
  /** Take this card from the imported stock; a new card is made when absent. */
  serial?: string;
}

export interface DevicesOptions {
  /** The registered kinds: their strength orders a user's devices (D2). */
  deviceKind: DeviceKinds;
  /** Where the pages are, for WebAuthn devices (default http://localhost). */
  relyingParty?: RelyingParty;
  /** Tells a device's user that it was suspended as compromised (after the change is stored). */
  onSuspected?: (device: Device, reason: Suspicion) => Promise<void>;
  /** L8: ends, in the suspension's transaction, the sessions a device suspended as compromised opened. */
  sessions?: Pick<Sessions, 'endOpenedWith'>;
}

/** The ids of other users' devices that come with a user's (`listForUserWith`): one query, the same for every user. */
export type OthersOf = (db: Executor, userId: string) => SelectQueryBuilder<Schema, keyof Schema, { device_id: string }>;
const devicesWith = new WeakMap<OthersOf, Prepared<{ userId: string }, DeviceRow>>();

// the statements of every login, built once (issue 15)
const deviceById = prepared<{ id: string }>()((db, p) => db.selectFrom('devices').selectAll().where('id', '=', p.id));
/** L8, H: the device is still active, and still the user's own or shared with them (an active sharing). */
const usableBy = (eb: ExpressionBuilder<Schema, 'devices'>, p: { id: string; userId: string }) =>
  eb.and([
    eb('devices.id', '=', p.id),
    eb('devices.state', '=', 'active'),
    eb.or([
      eb('devices.user_id', '=', p.userId),
      eb.exists(
        eb
          .selectFrom('device_sharings')
          .select('device_sharings.id')
          .where('device_sharings.device_id', '=', p.id)
          .where('device_sharings.requester_id', '=', p.userId)
          .where('device_sharings.state', '=', 'active'),
      ),
    ]),
  ]);
/** The device used by a login, if it is still active and the user's own or still shared with them (H). */
const markDeviceUsed = prepared<{ id: string; userId: string; at: number }>()((db, p) =>
  db
    .updateTable('devices')
    .set({ last_used_at: p.at })
    .where((eb) => usableBy(eb, p)),
);
/** The device, if it is still active and the user's own or still shared with them (H). */
const usableDevice = prepared<{ id: string; userId: string }>()((db, p) =>
  db
    .selectFrom('devices')
    .selectAll()
    .where((eb) => usableBy(eb, p)),
);
const consumeOne = prepared<{ deviceId: string; digest: string; expiresAt: number }>()((db, p) =>
  db
    .insertInto('used_codes')
    .values({ device_id: p.deviceId, digest: p.digest, expires_at: p.expiresAt })
    .onConflict((oc) => oc.columns(['device_id', 'digest']).doNothing())
    .returning('digest'),
);
const usedOne = prepared<{ deviceId: string; digest: string }>()((db, p) =>
  db.selectFrom('used_codes').select('digest').where('device_id', '=', p.deviceId).where('digest', '=', p.digest),
);

/**
 * The context of a check that runs inside the answer's transaction (a kind
 * that says `pureCheck`, docs/decisions/0019): what the kind said it does
 * not use throws, rather than wait for the connection the transaction holds.
 */
function pureContext(ctx: DeviceContext): DeviceContext {
  const refuse = (): never => {
    throw new Error(`device kind ${ctx.device.type} says pureCheck, but its check used the database`);
  };
  return { ...ctx, used: refuse, wasUsed: refuse, suspect: refuse };
}

export class Devices {
  /** The sealed secret read along with each device, so that a challenge needs no second read. */
  private readonly sealedSecrets = new WeakMap<Device, string | null>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly box: SecretBox,
    private readonly audit: AuditLog,
    private readonly options: DevicesOptions,
  ) {}

  private toDevice(row: DeviceRow): Device {
    const device = deviceFromRow(row);
    this.sealedSecrets.set(device, row.secret_enc);
    return device;
  }

  private sealContext(deviceId: string): string {
    return `device:${deviceId}`;
  }

  /** A device's secret as it is in `db` now (the transaction that is about to change it, say). */
  async readSecret<T>(db: Executor, deviceId: string): Promise<T> {
    const row = await db.selectFrom('devices').select('secret_enc').where('id', '=', deviceId).executeTakeFirstOrThrow();
    if (!row.secret_enc) throw new SlsError('DEVICE_NOT_AVAILABLE', {}, `device ${deviceId} has no secret`);
    return this.box.openJson<T>(row.secret_enc, this.sealContext(deviceId));
  }

  /**
   * L4: replaces the secret a check of `device` read (through `context`) and
   * computed the new one from (a security key's signature counter, a
   * token's counter), only if it is still the one stored: of two answers
   * checked against the same secret at the same moment, one writes and the
   * other is told no (false). Without it the later write would put back an
   * older counter, and a cloned key answering alongside the original would
   * both get in and leave no trace.
   */
  async replaceCheckedSecret(db: Executor, device: Device, secret: unknown): Promise<boolean> {
    const read = this.sealedSecrets.get(device);
    if (read === undefined) throw new Error(`replaceCheckedSecret: the secret of device ${device.id} was not read by a check`);
    const replaced = await db
      .updateTable('devices')
      .set({ secret_enc: this.box.sealJson(secret, this.sealContext(device.id)) })
      .where('id', '=', device.id)
      .where('secret_enc', read === null ? 'is' : '=', read)
      .executeTakeFirst();
    return Number(replaced.numUpdatedRows) === 1;
  }

  /** Replaces a device's secret, sealed to it (D5). */
  async writeSecret(db: Executor, deviceId: string, secret: unknown): Promise<void> {
    await db
      .updateTable('devices')
      .set({ secret_enc: this.box.sealJson(secret, this.sealContext(deviceId)) })
      .where('id', '=', deviceId)
      .execute();
  }

  async get(id: string, db: Executor = this.store.db): Promise<Device> {
    const row = await deviceById.first(db, { id });
    if (!row) throw new SlsError('DEVICE_NOT_FOUND', { id });
    return this.toDevice(row);
  }

  /** A user's devices; `db`: a transaction of the caller's that must see its own writes and hold its locks. */
  async listForUser(userId: string, db: Executor = this.store.db): Promise<Device[]> {
    const rows = await db.selectFrom('devices').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
    return rows.map((row) => this.toDevice(row));
  }

  /** Inserts a device in a transaction of the caller's; returns its id. */
  async insert(db: Executor, input: NewDevice): Promise<string> {
    const now = this.clock.now();
    const id = input.id ?? newId('dev');
    await db
      .insertInto('devices')
      .values({
        id,
        user_id: input.userId,
        type: input.type,
        state: input.state,
        serial: input.serial ?? null,
        label: input.label ?? null,
        secret_enc: this.box.sealJson(input.secret, this.sealContext(id)),
        params: JSON.stringify(input.params ?? {}),
        created_at: now,
        state_changed_at: now,
        activated_at: input.activated ? now : null,
        last_used_at: null,
        expires_at: input.expiresAt ?? null,
        credential_id: input.credentialId ?? null,
      })
      .execute();
    return id;
  }

  /** Every device of a type in a state, in one read (the stock, the cards shipped …). */
  async listInState(type: DeviceType, state: DeviceState): Promise<Device[]> {
    const rows = await this.store.db.selectFrom('devices').selectAll().where('type', '=', type).where('state', '=', state).orderBy('serial').execute();
    return rows.map((row) => this.toDevice(row));
  }

  /** C8: imported cards not yet issued to anyone. */
  listStock(): Promise<Device[]> {
    return this.listInState('dscplus', 'stock');
  }

  /** The registered kind of a device type (its strength, whether it is temporary …). */
  kind(type: string): DeviceKind {
    return this.options.deviceKind(type);
  }

  /** The registered types whose kind has a property (temporary, receives messages …). */
  typesWhere(has: (kind: DeviceKind) => boolean | undefined): DeviceType[] {
    return this.options.deviceKind.all.filter((kind) => has(kind) === true).map((kind) => kind.type);
  }

  /**
   * The user's active devices, the one to offer first at the front (L6): the
   * last used one, then the strongest.
   */
  async activeForUser(userId: string, lastDeviceId: string | null): Promise<Device[]> {
    return this.offerOrder(await this.listForUser(userId), lastDeviceId);
  }

  /** Of these devices the active ones, the one to offer first at the front (L6): the last used one, then the strongest. */
  offerOrder(devices: readonly Device[], lastDeviceId: string | null): Device[] {
    return devices
      .filter((d) => d.state === 'active')
      .sort((a, b) => {
        if (a.id === lastDeviceId) return -1;
        if (b.id === lastDeviceId) return 1;
        return this.options.deviceKind(b.type).strength - this.options.deviceKind(a.type).strength || (b.lastUsedAt ?? 0) - (a.lastUsedAt ?? 0);
      });
  }

  /**
   * A user's devices and, in the same read, the devices whose ids `others`
   * selects (H: the device another username shares with the user), each
   * list in the order of creation.
   */
  async listForUserWith(userId: string, others: OthersOf, db: Executor = this.store.db): Promise<{ own: Device[]; others: Device[] }> {
    let query = devicesWith.get(others);
    if (!query) {
      // two halves rather than `user_id = ? or id in (…)`, which PostgreSQL answers by scanning every device
      query = prepared<{ userId: string }>()((db, p) =>
        db
          .selectFrom('devices')
          .selectAll()
          .where('user_id', '=', p.userId)
          .unionAll(db.selectFrom('devices').selectAll().where('id', 'in', others(db, p.userId)).where('user_id', '<>', p.userId))
          .orderBy('created_at'),
      );
      devicesWith.set(others, query);
    }
    const { rows } = await query.execute(db, { userId });
    const own: Device[] = [];
    const more: Device[] = [];
    for (const row of rows) (row.user_id === userId ? own : more).push(this.toDevice(row));
    return { own, others: more };
  }

  /** What a device type needs to challenge and check: its secret, opened only on demand. */
  /**
   * The context of the kind's check of an answer, read now (before the
   * answer's transaction); for a kind that says `pureCheck`, one that refuses
   * any use of the database, since its check may run inside that
   * transaction (docs/decisions/0019).
   */
  async checkContext(device: Device, kind: Pick<DeviceKind, 'pureCheck'>): Promise<DeviceContext> {
    const read = await this.context(device);
    return kind.pureCheck ? pureContext(read) : read;
  }

  async context(device: Device): Promise<DeviceContext> {
    let sealed = this.sealedSecrets.get(device);
    if (sealed === undefined) {
      const row = await this.store.db.selectFrom('devices').select('secret_enc').where('id', '=', device.id).executeTakeFirstOrThrow();
      sealed = row.secret_enc;
      // what a new secret computed by the check replaces (replaceCheckedSecret)
      this.sealedSecrets.set(device, sealed);
    }
    return {
      device,
      secret: <T>() => {
        if (!sealed) throw new SlsError('DEVICE_NOT_AVAILABLE', {}, `device ${device.id} has no secret`);
        return this.box.openJson<T>(sealed, this.sealContext(device.id));
      },
      wasUsed: (replayKey) => this.wasUsed(device.id, replayKey),
      used: (replayKeys) => this.usedAmong(device.id, replayKeys),
      digest: (value) => this.box.digest(value, `device:${device.id}`),
      relyingParty: this.options.relyingParty ?? { origin: 'http://localhost', rpId: 'localhost' },
      now: this.clock.now(),
      suspect: (reason, data) => this.suspect(device.id, reason, data),
    };
  }

  /**
   * A device found compromised by its own check (a cloned security key): it
   * is suspended if active, `device.<reason>` is audited with the state
   * change, the sessions it opened end (L8), and its user is told.
   */
  async suspect(deviceId: string, reason: Suspicion, data: Record<string, unknown>): Promise<void> {
    const suspended = await this.store.serialized('audit_log', async (trx) => {
      const device = await this.get(deviceId, trx);
      await this.audit.append(trx, [{ event: `device.${reason}`, actor: 'system', userId: device.userId, data: { deviceId, type: device.type, ...data } }]);
      const changed = device.state === 'active' && (await this.transition(trx, device, 'suspended', { actor: 'system', reason }));
      // L8: whichever copy opened them, the sessions of a key found cloned end with its suspension
      if (changed) await this.options.sessions?.endOpenedWith(trx, [deviceId], 'device_suspected', 'system');
      return changed ? device : null;
    });
    if (suspended) await this.options.onSuspected?.(suspended, reason);
  }

  private usedDigest(deviceId: string, replayKey: string): string {
    return this.box.digest(`${deviceId}\0${replayKey}`, 'used-code');
  }

  async wasUsed(deviceId: string, replayKey: string): Promise<boolean> {
    return (await this.usedAmong(deviceId, [replayKey])).has(replayKey);
  }

  /** Which of the replay keys were recorded for the device. */
  async usedAmong(deviceId: string, replayKeys: string[]): Promise<Set<string>> {
    if (replayKeys.length === 0) return new Set();
    const keyOf = new Map(replayKeys.map((key) => [this.usedDigest(deviceId, key), key]));
    if (keyOf.size === 1) {
      const [digest, key] = [...keyOf][0]!;
      return new Set((await usedOne.first(this.store.db, { deviceId, digest })) ? [key] : []);
    }
    const rows = await this.store.db
      .selectFrom('used_codes')
      .select('digest')
      .where('device_id', '=', deviceId)
      .where('digest', 'in', [...keyOf.keys()])
      .execute();
    return new Set(rows.map((row) => keyOf.get(row.digest)!));
  }

  /**
   * Records an accepted answer's replay keys (L4). Returns false when one of
   * them was already recorded: of several concurrent submissions of the same
   * answer, exactly one wins. The caller's transaction is then to be rolled
   * back, for the other keys were recorded.
   */
  async consume(db: Executor, deviceId: string, replayKeys: string[], expiresAt: number = NEVER): Promise<boolean> {
    // in one order: two answers recording some of the same keys never wait for each other crosswise (a deadlock)
    const keys = [...new Set(replayKeys)].sort();
    if (keys.length === 1) return (await consumeOne.first(db, { deviceId, digest: this.usedDigest(deviceId, keys[0]!), expiresAt })) !== undefined;
    const inserted = await db
      .insertInto('used_codes')
      .values(keys.map((key) => ({ device_id: deviceId, digest: this.usedDigest(deviceId, key), expires_at: expiresAt })))
      .onConflict((oc) => oc.columns(['device_id', 'digest']).doNothing())
      .returning('digest')
      .execute();
    return inserted.length === keys.length;
  }

  /** S4: a card whose last answer was just accepted stops working (D3: revoked), audited, in the caller's transaction. */
  async markUsedUp(trx: Tx, deviceId: string, actor: string): Promise<void> {
    const device = await this.get(deviceId, trx);
    await this.transition(trx, device, 'revoked', { actor, event: 'device.used_up' });
  }

  /**
   * L8: the device of a proof, used now — a login's, a step-up's, a PIN
   * change's: in the transaction that takes the proof, under the audit lock
   * (docs/decisions/0016), so that a device revoked, reported lost or no
   * longer shared (H) while the proof was in flight is seen as the
   * revocation left it. 409 DEVICE_NOT_AVAILABLE, and nothing marked, when
   * it is no longer active, or no longer the user's to use (the caller's
   * transaction is undone: nothing verified, nothing changed).
   */
  async markUsed(db: Executor, deviceId: string, userId: string): Promise<void> {
    if ((await markDeviceUsed.changed(db, { id: deviceId, userId, at: this.clock.now() })) !== 1) throw new SlsError('DEVICE_NOT_AVAILABLE');
  }

  /**
   * X7, T3, L8: the device, if a proof given with it still stands: it is
   * still active and still the user's own or shared with them (H); null
   * once it was revoked, reported lost, suspended or its sharing ended.
   */
  async usableBy(deviceId: string, userId: string, db: Executor = this.store.db): Promise<Device | null> {
    const row = await usableDevice.first(db, { id: deviceId, userId });
    return row ? this.toDevice(row) : null;
  }

  /**
   * M2, H: the types of the active devices that protect the user: their
   * own, and the one another username shares with them while the sharing
   * is in force.
   */
  async activeTypesProtecting(userId: string, db: Executor = this.store.db): Promise<string[]> {
    // two halves rather than `user_id = ? or id in (…)`, which PostgreSQL answers by scanning every device
    const own = db.selectFrom('devices').select('type').where('user_id', '=', userId).where('state', '=', 'active');
    const shared = db
      .selectFrom('device_sharings')
      .innerJoin('devices', 'devices.id', 'device_sharings.device_id')
      .select('devices.type')
      .where('device_sharings.requester_id', '=', userId)
      .where('device_sharings.state', '=', 'active')
      .where('devices.state', '=', 'active');
    const rows = await own.unionAll(shared).execute();
    return rows.map((row) => row.type);
  }

  private async newSerial(): Promise<string> {
    for (;;) {
      const serial = `DSC${String(randomInt(0, 10_000_000)).padStart(7, '0')}`;
      const taken = await this.store.db.selectFrom('devices').select('id').where('type', '=', 'dscplus').where('serial', '=', serial).executeTakeFirst();
      if (!taken) return serial;
    }
  }

  /**
   * Gives a user an active DSC+ (C2, C3) and returns the card file for the
   * emulator. With `serial`, the card comes from the imported stock (C8).
   */
  async addDscPlus(input: AddDscPlusInput, actor: string): Promise<{ device: Device; card: CardFile }> {
    let seed: Buffer;
    let suite = DSCPLUS_SUITE;
    let deviceId: string;
    let serial: string;
    const fromStock = input.serial !== undefined;
    // the PIN is checked before anything is written
    dscPlusSecret(Buffer.alloc(0), input.pin);
    if (fromStock) {
      const row = await this.store.db.selectFrom('devices').selectAll().where('type', '=', 'dscplus').where('serial', '=', input.serial!).executeTakeFirst();
      if (!row) throw new SlsError('DEVICE_NOT_FOUND', { serial: input.serial! });
      if (row.state !== 'stock' || row.user_id !== null) throw new SlsError('SERIAL_TAKEN', { serial: input.serial! });
      const stock = this.box.openJson<{ seed: string }>(row.secret_enc!, this.sealContext(row.id));
      seed = Buffer.from(stock.seed, 'hex');
      suite = (JSON.parse(row.params) as { suite?: string }).suite ?? DSCPLUS_SUITE;
      deviceId = row.id;
      serial = row.serial!;
    } else {
      seed = randomBytes(32);
      deviceId = newId('dev');
      serial = await this.newSerial();
    }
    const secret: DscPlusSecret = dscPlusSecret(seed, input.pin);

    await this.store.serialized('audit_log', async (trx) => {
      if (fromStock) {
        const stock = { id: deviceId, type: 'dscplus', state: 'stock', userId: input.userId, activatedAt: null } as const;
        const assigned = await this.transition(trx, stock, 'active', {
          actor,
          event: 'device.added',
          data: { serial, fromStock },
          set: { user_id: input.userId, secret_enc: this.box.sealJson(secret, this.sealContext(deviceId)) },
        });
        if (!assigned) throw new SlsError('SERIAL_TAKEN', { serial });
      } else {
        await this.insert(trx, {
          id: deviceId,
          userId: input.userId,
          type: 'dscplus',
          state: 'active',
          serial,
          label: `DSC+ ${serial}`,
          secret,
          params: { suite },
          activated: true,
        });
        await this.audit.append(trx, [{ event: 'device.added', actor, userId: input.userId, data: { deviceId, type: 'dscplus', serial, fromStock } }]);
      }
    });
    return {
      device: await this.get(deviceId),
      card: { format: 'sls-dscplus-card/1', serial, suite, seed: seed.toString('hex'), pin: input.pin },
    };
  }

  /** The one registered kind an imported key makes, and what it makes (D1: by the key's algorithm). */
  private stockItem(key: ImportedKey, settings: ImportSettings): { kind: DeviceKind; item: StockItem } {
    // D1, D5 (RFC 4226 §4, RFC 6287 §7.2): a key shorter than 128 bits would be found from one code seen, then every code known
    if (key.secret.length < MIN_SECRET_BYTES) {
      throw new SlsError(
        'INVALID_PSKC',
        { reason: REASONS.weakSecret, serial: key.serial },
        `key ${key.keyId} of ${key.serial}: a secret of ${key.secret.length} bytes (at least ${MIN_SECRET_BYTES})`,
      );
    }
    const made = this.options.deviceKind.all.flatMap((kind) => {
      const item = kind.stock?.fromKey(key, settings) ?? null;
      return item === null ? [] : [{ kind, item }];
    });
    if (made.length !== 1) {
      throw new SlsError(
        'INVALID_PSKC',
        { reason: 'unsupported algorithm', serial: key.serial },
        `key ${key.keyId} of ${key.serial} (${key.algorithm}${key.suite ? ` ${key.suite}` : ''}) is ${made.length === 0 ? 'no' : 'more than one'} device kind's`,
      );
    }
    return made[0]!;
  }

  /**
   * C8, D1: a batch of imported keys enters the stock, all or nothing, each
   * as the device its algorithm names (an OCRA suite with a PIN: DSC+;
   * without: the legacy DSC; HOTP, TOTP: Platinum / Gold tokens). Keys that
   * share a serial are one physical device: each key's row is
   * `<serial>/<key id>`, and they are assigned together.
   */
  async importStock(keys: ImportedKey[], actor: string, batch: string, settings: ImportSettings = {}): Promise<Device[]> {
    const perSerial = new Map<string, number>();
    for (const key of keys) perSerial.set(key.serial, (perSerial.get(key.serial) ?? 0) + 1);
    const rows = keys.map((key) => {
      const { kind, item } = this.stockItem(key, settings);
      const shared = perSerial.get(key.serial)! > 1;
      return { key, kind, item, serial: shared ? `${key.serial}/${key.keyId}` : key.serial, shared };
    });
    const ids: string[] = [];
    await this.store.serialized('audit_log', async (trx) => {
      const taken = await this.serialsTaken(
        trx,
        keys.map((key) => key.serial),
        rows.map((r) => r.serial),
      );
      if (taken.length > 0) throw new SlsError('SERIAL_TAKEN', { serial: taken.join(', ') });
      for (const { key, kind, item, serial, shared } of rows) {
        ids.push(
          await this.insert(trx, {
            userId: null,
            type: kind.type,
            state: 'stock',
            serial,
            label: shared ? `${item.label}/${key.keyId}` : item.label,
            secret: item.secret,
            params: { ...item.params, batch, manufacturer: key.manufacturer ?? null, token: key.serial, keyId: key.keyId },
          }),
        );
      }
      const types = Object.fromEntries([...new Set(rows.map((r) => r.kind.type))].map((type) => [type, rows.filter((r) => r.kind.type === type).length]));
      await this.audit.append(trx, [{ event: 'device.imported', actor, data: { batch, count: keys.length, serials: rows.map((r) => r.serial), types } }]);
    });
    return Promise.all(ids.map((id) => this.get(id)));
  }

  /**
   * C8, D1: the devices already there that a batch names. A serial is one
   * physical device whatever its kind, and `assignStock` issues every key of
   * it: a batch (written by whoever handed the operator the file) that reuses
   * it, as another kind or as a key beside its keys (`S/<key id>`), would
   * slip a key its author knows into the device a user is later given. So a
   * device of any kind whose serial is a physical serial of the batch, one of
   * the batch's rows, or a key of one of its physical serials, is taken.
   */
  private async serialsTaken(trx: Executor, physical: string[], rowSerials: string[]): Promise<string[]> {
    const devices = new Set(physical);
    const names = [...new Set([...physical, ...rowSerials])];
    const taken = new Set<string>();
    for (let i = 0; i < names.length; i += 500) {
      const rows = await trx
        .selectFrom('devices')
        .select('serial')
        .where('serial', 'in', names.slice(i, i + 500))
        .execute();
      for (const row of rows) taken.add(row.serial!);
    }
    // the keys of a device that has several: `<serial>/<key id>` (a serial may itself hold a slash)
    const keyed = await trx.selectFrom('devices').select('serial').where('serial', 'like', '%/%').execute();
    for (const { serial } of keyed) {
      for (let at = serial!.indexOf('/'); at !== -1; at = serial!.indexOf('/', at + 1)) {
        if (devices.has(serial!.slice(0, at))) taken.add(serial!);
      }
    }
    return [...taken].sort();
  }

  /** C8, D1: every imported device not yet issued, of every kind. */
  async listAllStock(): Promise<Device[]> {
    const rows = await this.store.db.selectFrom('devices').selectAll().where('state', '=', 'stock').orderBy('serial').execute();
    return rows.map((row) => this.toDevice(row));
  }

  /**
   * D1: staff issue an imported legacy device to the user who holds it: every
   * stock key of the physical serial (`S`, or `S/<key id>` for one of its
   * keys) becomes the user's active device, audited. Returns the devices and
   * the file the `sls token` emulator reads. A kind with its own issuing
   * path (the DSC+ and its PIN) is refused here.
   */
  async assignStock(serial: string, userId: string, actor: string): Promise<{ devices: Device[]; file: TokenFile }> {
    const stock = (await this.listAllStock()).filter((d) => d.userId === null && (d.serial === serial || d.params.token === serial));
    if (stock.length === 0) throw new SlsError('DEVICE_NOT_FOUND', { serial });
    const own = stock.find((d) => this.kind(d.type).stock?.assignAsIs !== true);
    if (own) throw new SlsError('STOCK_NOT_ASSIGNABLE', { serial: own.serial!, type: own.type });
    await this.store.serialized('audit_log', async (trx) => {
      for (const device of stock) {
        const assigned = await this.transition(trx, { ...device, userId }, 'active', {
          actor,
          event: 'device.added',
          data: { serial: device.serial, fromStock: true },
          set: { user_id: userId },
        });
        if (!assigned) throw new SlsError('SERIAL_TAKEN', { serial: device.serial! });
      }
    });
    const devices = await Promise.all(stock.map((d) => this.get(d.id)));
    const keys = await Promise.all(
      devices.map(async (device) => ({
        deviceId: device.id,
        type: device.type,
        serial: device.serial!,
        keyId: typeof device.params.keyId === 'string' ? device.params.keyId : null,
        ...(this.kind(device.type).stock?.tokenFile?.(device, await this.readSecret(this.store.db, device.id)) ?? {}),
      })),
    );
    const physical = typeof devices[0]!.params.token === 'string' ? devices[0]!.params.token : serial;
    return { devices, file: { format: 'sls-token/1', serial: physical, keys } };
  }

  async setState(deviceId: string, state: DeviceState, actor: string, reason?: string): Promise<Device> {
    await this.store.serialized('audit_log', async (trx) => {
      const device = await this.get(deviceId, trx);
      if (!(await this.transition(trx, device, state, { actor, reason: reason ?? null }))) throw new SlsError('DEVICE_STATE', { state: device.state });
    });
    return this.get(deviceId);
  }

  /**
   * D3: the one writer of a device's state. Moves `device` from the state it
   * was read in to `to` if its kind allows it (src/devices/transitions.ts),
   * with the other columns of `change.set`, in the caller's transaction; the
   * move is audited (`device.state_changed`, or the change's own event). A
   * device changed meanwhile by someone else is left alone: false. A move the
   * kind does not allow is a bug of the caller: DEVICE_STATE.
   */
  async transition(trx: Tx, device: DeviceInState, to: DeviceState, change: StateChange): Promise<boolean> {
    const kind = this.kind(device.type);
    const table = kind.transitions ?? (kind.temporary ? TEMPORARY_TRANSITIONS : DEVICE_TRANSITIONS);
    if (!allowedMove(table, device.state, to))
      throw new SlsError('DEVICE_STATE', { state: device.state }, `a ${device.type} cannot move from ${device.state} to ${to}`);
    const now = this.clock.now();
    const updated = await trx
      .updateTable('devices')
      .set({ ...change.set, state: to, state_changed_at: now, ...(to === 'active' && device.activatedAt === null ? { activated_at: now } : {}) })
      .where('id', '=', device.id)
      .where('state', '=', device.state)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) return false;
    await this.audit.append(trx, [
      {
        event: change.event ?? 'device.state_changed',
        actor: change.actor,
        userId: device.userId,
        ...(change.username !== undefined ? { username: change.username } : {}),
        ...(change.ip !== undefined ? { ip: change.ip } : {}),
        data: {
          deviceId: device.id,
          type: device.type,
          from: device.state,
          to,
          ...(change.reason !== undefined ? { reason: change.reason } : {}),
          ...change.data,
        },
      },
    ]);
    return true;
  }
}
