/**
 * A user's security keys and passkeys: registration (after a step-up, X7:
 * the callers check the session's need), names, removal, and the notice of
 * a key suspended as cloned. Each key is a device of type `security_key`:
 * the credential's public key, counter and attestation sealed (D5), its id,
 * transports, model (AAGUID) and attestation format in the device's params.
 */
import { lazyPackage } from '../../lazy-package.js';
import type { RegistrationResponseJSON, verifyRegistrationResponse } from '@simplewebauthn/server';
import type { AuditLog } from '../../audit/audit-log.js';
import type { Clock } from '../../clock.js';
import type { SecretBox } from '../../crypto/secret-box.js';
import { SlsError } from '../../errors.js';
import { type Executor, isUniqueViolation, type Store, type Tx } from '../../store/database.js';
import type { Users } from '../../identity/users.js';
import type { Notifier } from '../../notify/notifier.js';
import type { Sessions } from '../../sessions/sessions.js';
import type { Devices } from '../devices.js';
import type { Device, RelyingParty, Suspicion } from '../types.js';
import { SECURITY_KEY_TIMEOUT_MS, type SecurityKeyParams, type SecurityKeySecret } from './security-key.js';

const simpleWebAuthn = lazyPackage<typeof import('@simplewebauthn/server')>('@simplewebauthn/server');

/** What the registration needs of the rest of the system. */
export interface SecurityKeysDeps {
  store: Store;
  clock: Clock;
  box: SecretBox;
  audit: AuditLog;
  devices: Devices;
  users: Pick<Users, 'get'>;
  relyingParty: RelyingParty;
  /** Allowed authenticator models (AAGUIDs, lower case); empty: any. */
  aaguids: string[];
  rpName: string;
  /** L8: a key removed ends the sessions it opened. */
  sessions: Pick<Sessions, 'endOpenedWith'>;
  /** N1: the user hears of a key registered or removed. */
  notifier: Pick<Notifier, 'notify'>;
}

/** Who registers: the user of a session that passed the X7 guard. */
export interface KeyOwner {
  id: string;
  userId: string;
}

export interface SecurityKeyView {
  id: string;
  name: string;
  state: string;
  aaguid: string;
  fmt: string;
  transports: string[];
  /** A passkey that can be synced between devices (multiDevice), or a key bound to one authenticator. */
  synced: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

/** A registration in progress: the options for navigator.credentials.create and the sealed state to send back. */
export interface RegistrationStart {
  options: Record<string, unknown>;
  state: string;
}

interface RegistrationState {
  challenge: string;
  userId: string;
  sessionId: string;
  expiresAt: number;
}

export const MAX_SECURITY_KEYS = 10;
const NAME_MAX = 64;
const STATE_CONTEXT = 'security-key-registration';

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function securityKeyView(device: Device): SecurityKeyView {
  const params = device.params as unknown as SecurityKeyParams;
  return {
    id: device.id,
    name: device.label ?? '',
    state: device.state,
    aaguid: params.aaguid,
    fmt: params.fmt,
    transports: params.transports,
    synced: params.credentialDeviceType === 'multiDevice',
    createdAt: new Date(device.createdAt).toISOString(),
    lastUsedAt: iso(device.lastUsedAt),
  };
}

/** Unicode's explicit bidirectional formatting: embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069). */
export const BIDI_CONTROL = /[\u202a-\u202e\u2066-\u2069]/;

/**
 * A key's name: 1 to 64 printable characters, spaces trimmed; no bidirectional control (decision 0041): the name is
 * put in the notices a key added or removed sends its owner (N1), where an override or an isolate the key's adder
 * typed would show the rest of the warning reordered ("… added to alice. Not you? Call Client Services.").
 */
export function keyName(name: string): string {
  const trimmed = name.trim();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a name with control characters is refused
  if (trimmed.length === 0 || trimmed.length > NAME_MAX || /[\u0000-\u001f\u007f]/.test(trimmed))
    throw new SlsError('SECURITY_KEY_NAME_INVALID', { max: NAME_MAX });
  if (BIDI_CONTROL.test(trimmed)) throw new SlsError('SECURITY_KEY_NAME_INVALID', { max: NAME_MAX, reason: 'bidi' });
  return trimmed;
}

export class SecurityKeys {
  constructor(private readonly deps: SecurityKeysDeps) {}

  /** The user's keys (removed ones are not listed). */
  async list(userId: string, db?: Executor): Promise<Device[]> {
    return (await this.deps.devices.listForUser(userId, db)).filter((d) => d.type === 'security_key' && d.state !== 'revoked');
  }

  private async own(userId: string, keyId: string): Promise<Device> {
    const device = await this.deps.devices.get(keyId).catch(() => null);
    if (!device || device.userId !== userId || device.type !== 'security_key' || device.state === 'revoked')
      throw new SlsError('DEVICE_NOT_FOUND', { id: keyId });
    return device;
  }

  /** Options for navigator.credentials.create, the user's keys excluded, and the state to send back with the answer. */
  async start(session: KeyOwner): Promise<RegistrationStart> {
    const { relyingParty, box, clock, users, aaguids, rpName } = this.deps;
    const user = await users.get(session.userId);
    const keys = await this.list(user.id);
    if (keys.length >= MAX_SECURITY_KEYS) throw new SlsError('SECURITY_KEY_LIMIT', { max: MAX_SECURITY_KEYS });
    const options = await simpleWebAuthn().generateRegistrationOptions({
      rpName,
      rpID: relyingParty.rpId,
      userName: user.username,
      userID: new TextEncoder().encode(user.id),
      timeout: SECURITY_KEY_TIMEOUT_MS,
      // an allow-list of models needs the model the authenticator attests
      attestationType: aaguids.length > 0 ? 'direct' : 'none',
      excludeCredentials: keys.map((k) => ({
        id: (k.params as unknown as SecurityKeyParams).credentialId,
        transports: (k.params as unknown as SecurityKeyParams).transports,
      })),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
    });
    const state: RegistrationState = {
      challenge: options.challenge,
      userId: user.id,
      sessionId: session.id,
      expiresAt: clock.now() + SECURITY_KEY_TIMEOUT_MS + 60_000,
    };
    return { options: options as unknown as Record<string, unknown>, state: box.sealJson(state, STATE_CONTEXT) };
  }

  /** Verifies the browser's answer to `start` and keeps the key under `name`. */
  async finish(session: KeyOwner, input: { name: string; state: string; credential: unknown }): Promise<Device> {
    const { relyingParty, box, clock, devices, audit, store, aaguids, users, notifier } = this.deps;
    const name = keyName(input.name);
    let state: RegistrationState;
    try {
      state = box.openJson<RegistrationState>(input.state, STATE_CONTEXT);
    } catch {
      throw new SlsError('SECURITY_KEY_REGISTRATION_EXPIRED');
    }
    // a registration belongs to the session that started it
    if (state.userId !== session.userId || state.sessionId !== session.id || state.expiresAt <= clock.now())
      throw new SlsError('SECURITY_KEY_REGISTRATION_EXPIRED');
    let info: NonNullable<Awaited<ReturnType<typeof verifyRegistrationResponse>>['registrationInfo']>;
    try {
      const result = await simpleWebAuthn().verifyRegistrationResponse({
        response: input.credential as RegistrationResponseJSON,
        expectedChallenge: state.challenge,
        expectedOrigin: relyingParty.origin,
        expectedRPID: relyingParty.rpId,
        requireUserVerification: false,
      });
      if (!result.verified) throw new Error('not verified');
      info = result.registrationInfo;
    } catch {
      throw new SlsError('SECURITY_KEY_NOT_VERIFIED');
    }
    const aaguid = info.aaguid.toLowerCase();
    if (aaguids.length > 0 && !aaguids.includes(aaguid)) {
      await audit.record({
        event: 'device.proof_failed',
        actor: `user:${session.userId}`,
        userId: session.userId,
        data: { purpose: 'security_key_registration', type: 'security_key', aaguid, reason: 'model_not_allowed' },
      });
      throw new SlsError('SECURITY_KEY_MODEL_NOT_ALLOWED', { aaguid });
    }
    const params: SecurityKeyParams = {
      credentialId: info.credential.id,
      transports: info.credential.transports ?? [],
      aaguid,
      fmt: info.fmt,
      credentialDeviceType: info.credentialDeviceType,
      backedUp: info.credentialBackedUp,
    };
    const secret: SecurityKeySecret = {
      publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
      counter: info.credential.counter,
      attestationObject: Buffer.from(info.attestationObject).toString('base64url'),
    };
    // the same answer sent twice at once registers one key: the checks and the insert hold the audit log's lock together
    // (D6, X7: a credential id is registered once, across users; the unique index on it holds whatever the order, and
    // a clash that reaches it past the check is refused as the check refuses it)
    const id = await store
      .serialized('audit_log', async (trx) => {
        const keys = await this.list(session.userId, trx);
        const taken = await trx.selectFrom('devices').select('id').where('credential_id', '=', info.credential.id).executeTakeFirst();
        if (taken || keys.some((k) => (k.params as unknown as SecurityKeyParams).credentialId === info.credential.id)) return null;
        if (keys.length >= MAX_SECURITY_KEYS) throw new SlsError('SECURITY_KEY_LIMIT', { max: MAX_SECURITY_KEYS });
        const deviceId = await devices.insert(trx, {
          userId: session.userId,
          type: 'security_key',
          state: 'active',
          label: name,
          secret,
          params: params as unknown as Record<string, unknown>,
          activated: true,
          credentialId: info.credential.id,
        });
        await audit.append(trx, [
          {
            event: 'device.added',
            actor: `user:${session.userId}`,
            userId: session.userId,
            data: { deviceId, type: 'security_key', aaguid, fmt: info.fmt, synced: params.credentialDeviceType === 'multiDevice' },
          },
        ]);
        // N1, X7: the user hears of the new second factor (a session stepped up by someone else binds a key of theirs), in its transaction
        const user = await users.get(session.userId, trx);
        await notifier.notify(user, 'securityKeyAdded', { username: user.username, name }, { db: trx });
        return deviceId;
      })
      .catch((error: unknown) => {
        if (isUniqueViolation(error, 'devices_credential_id', 'devices.credential_id')) return null;
        throw error;
      });
    if (id === null) {
      // the user's own key or another user's: the same answer, so that nothing tells whose it is
      await audit.record({
        event: 'device.proof_failed',
        actor: `user:${session.userId}`,
        userId: session.userId,
        data: { purpose: 'security_key_registration', type: 'security_key', aaguid, reason: 'already_registered' },
      });
      throw new SlsError('SECURITY_KEY_ALREADY_REGISTERED');
    }
    return devices.get(id);
  }

  async rename(session: KeyOwner, keyId: string, name: string): Promise<Device> {
    const { store, audit, devices } = this.deps;
    const device = await this.own(session.userId, keyId);
    const label = keyName(name);
    await store.serialized('audit_log', async (trx) => {
      await trx.updateTable('devices').set({ label }).where('id', '=', device.id).execute();
      await audit.append(trx, [
        { event: 'device.renamed', actor: `user:${session.userId}`, userId: session.userId, data: { deviceId: device.id, type: 'security_key' } },
      ]);
    });
    return devices.get(device.id);
  }

  /**
   * The key stops working for good (D3: revoked); its row stays for the
   * audit trail. The sessions it opened end with it (L8), but the remover's.
   * M6, L6: refused (KEY_IN_USE) while the key is the user's only way to
   * log in — no other active permanent device and no verified number (M2
   * would enrol it in SMS) — as a number is (PHONE_IN_USE); read under the
   * audit lock, so that of two removals at once the second sees the first.
   */
  async remove(session: KeyOwner, keyId: string): Promise<void> {
    const device = await this.own(session.userId, keyId);
    const actor = `user:${session.userId}`;
    await this.deps.store.serialized('audit_log', async (trx) => {
      const current = await this.deps.devices.get(device.id, trx);
      if (current.state === 'active' && !(await this.otherWayIn(session.userId, current.id, trx))) throw new SlsError('KEY_IN_USE');
      if (!(await this.deps.devices.transition(trx, current, 'revoked', { actor, reason: 'removed by the user' })))
        throw new SlsError('DEVICE_STATE', { state: current.state });
      await this.deps.sessions.endOpenedWith(trx, [device.id], 'device_revoked', actor, session.id);
      // N1: the user hears of a key withdrawn, as of a number removed
      const user = await this.deps.users.get(session.userId, trx);
      await this.deps.notifier.notify(user, 'securityKeyRemoved', { username: user.username, name: device.label ?? '' }, { db: trx });
    });
  }

  /** Whether the user could still log in without this key: another active permanent device, or a verified number (M2). */
  private async otherWayIn(userId: string, keyId: string, trx: Tx): Promise<boolean> {
    const { devices } = this.deps;
    const others = (await devices.listForUser(userId, trx)).filter((d) => d.id !== keyId && d.state === 'active' && !devices.kind(d.type).temporary);
    if (others.length > 0) return true;
    const verified = await trx.selectFrom('phones').select('id').where('user_id', '=', userId).where('verified_at', 'is not', null).executeTakeFirst();
    return verified !== undefined;
  }
}

/** The notice of a key suspended as cloned (sent through the outbox, like the lock's, N1). */
export function suspicionNotice(deps: {
  users: Pick<Users, 'get'>;
  notifier: Pick<Notifier, 'notifySoon'>;
}): (device: Device, reason: Suspicion) => Promise<void> {
  return async (device) => {
    if (!device.userId) return;
    const user = await deps.users.get(device.userId);
    await deps.notifier.notifySoon(user, 'securityKeySuspended', { username: user.username, name: device.label ?? '' });
  };
}
