/**
 * Push requests to the mobile authenticator (K3, K13) and its messages
 * (K14). A push request is a flow (a login, or a step-up verification of a
 * portal task, V1) whose prompt is `push`: the app gets it over its live
 * connection, or is woken by a push provider, shows where the login comes
 * from, has the user type the number shown on the login screen and confirm
 * with the PIN or biometric, and answers with a signature by a key that
 * never leaves the phone.
 *
 * The phone knows a request by an id of its own, derived from the flow's
 * (a keyed digest): the flow id, with which the login page takes its
 * session, never leaves the server for the phone or the push service.
 *
 * An answer is accepted once (the flow leaves `second_factor` in one
 * conditional update, and it is recorded in the single-use register); a late
 * one finds the request expired by the server's clock (the phone's is never
 * used). A wrong number, PIN or signature is a wrong answer: it counts
 * towards the flow's 3 and towards the lock (L3, L4).
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { AuditLog } from '../../audit/audit-log.js';
import type { SecretBox } from '../../crypto/secret-box.js';
import type { Users } from '../../identity/users.js';
import type { Notifier } from '../../notify/notifier.js';
import { SlsError } from '../../errors.js';
import { detached } from '../../request-context.js';
import { newId } from '../../crypto/random.js';
import { constantTimeEqual } from '../../crypto/constant-time.js';
import { parseOcraSuite, verifyOcra } from '../../crypto/ocra.js';
import type { Language } from '../../i18n/i18n.js';
import { translator } from '../../i18n/i18n.js';
import type { FlowRow } from '../../flows/flow-rows.js';
import { findFlow, promptOf, verifierContext } from '../../flows/flow-rows.js';
import type { Answers } from '../../flows/answers.js';
import type { Confirmation, Schema, SessionScope } from '../../store/schema.js';
import type { UpdateQueryBuilder, UpdateResult } from 'kysely';
import type { Executor, Store, Tx } from '../../store/database.js';
import { type Prepared, prepared } from '../../store/prepared.js';
import { deviceTopic, flowTopic, type Signals } from '../../push/signals.js';
import type { PushProvider, PushSubscription } from '../../push/provider.js';
import type { Device, DeviceKinds } from '../types.js';
import { ALLOWANCE } from '../../throttle/allowance.js';
import type { Devices } from '../devices.js';
import { decideAccess } from '../../policy/access.js';
import type { App, Sessions } from '../../sessions/sessions.js';
import { answerChallenge, answerMessage, MOBILE_SUITE, sealToPhone, verifyAnswer, type SealedMessage } from './keys.js';
import type { MobileSecret, PushVerifier } from './mobile.js';
import { verifyAssertion, type WebOrigin } from './webauthn.js';

export interface DeviceToken {
  deviceId: string;
  token: string;
}

export interface PushRequestView {
  id: string;
  deviceId: string;
  username: string;
  kind: 'login' | 'step_up';
  app: 'portal' | 'trading';
  ip: string | null;
  requestedAt: string;
  expiresAt: string;
  question: string;
}

export interface AppMessageView {
  id: string;
  deviceId: string;
  kind: 'temporary_password';
  createdAt: string;
  sealed: SealedMessage;
}

export interface PollResult {
  requests: PushRequestView[];
  messages: AppMessageView[];
  revoked: string[];
}

export interface PushAnswer extends DeviceToken {
  decision: 'approve' | 'deny';
  number: string;
  proof: string;
  signature: string;
  assertion?: unknown;
}

const PUSH_KINDS = ['login', 'step_up'] as const;
const suite = parseOcraSuite(MOBILE_SUITE);

export function appTokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

/** What the push requests need; the composition root passes them. */
export interface PushRequestsDeps {
  store: Store;
  clock: Clock;
  config: Config;
  box: SecretBox;
  audit: AuditLog;
  devices: Devices;
  /** The registry of device kinds. */
  deviceKind: DeviceKinds;
  users: Users;
  signals: Signals;
  notifier: Notifier;
  provider: PushProvider;
  answers: Answers;
  /** K13, L8: a step-up denied on the phone ends the session that asked for it. */
  sessions: Pick<Sessions, 'endOne'>;
}

const REQUEST_ID = /^req_[A-Za-z0-9_-]{43}$/;
const HOUR_MS = 60 * 60 * 1000;

// what every waiting app reads again and again (ten thousand phones: a thousand reads a second), built once (issue 15)
/** The device's push requests older than one just made, ended (K13): newest wins. */
const supersedeOlder = prepared<{ deviceId: string; id: string; createdAt: number; now: number }>()((db, p) =>
  db
    .updateTable('login_flows')
    .set({ state: 'failed', updated_at: p.now })
    .where('device_id', '=', p.deviceId)
    .where('id', '!=', p.id)
    .where('state', '=', 'second_factor')
    .where('kind', 'in', [...PUSH_KINDS])
    .where('prompt', 'like', '{"type":"push"%')
    .where((eb) => eb.or([eb('created_at', '<', p.createdAt), eb.and([eb('created_at', '=', p.createdAt), eb('id', '<', p.id)])]))
    .returning(['id', 'kind', 'user_id', 'username']),
);
/** K13: whether the user said "this wasn't me" to a push request since `since`. */
const deniedSince = prepared<{ userId: string; since: number }>()((db, p) =>
  db.selectFrom('login_flows').select('id').where('user_id', '=', p.userId).where('state', '=', 'denied').where('updated_at', '>', p.since).limit(1),
);
/**
 * K13: the pushes a password holder may make the phone ring with since `since`, but for those the owner approved:
 * one for each login from a client the user has not logged in from lately (decision 0018) and one for each device
 * change in one (each may send one again); one for each step-up (V1), which needs the password and a signed-in
 * session, both of which a thief may hold (decision 0030). One allowance for both.
 */
const unaskedPushes = prepared<{ userId: string; since: number }>()((db, p) =>
  db
    .selectFrom('login_flows')
    .select((eb) =>
      eb.fn
        .sum<number>(
          eb
            .case()
            .when('kind', '=', 'step_up')
            .then(eb.lit(1))
            .else(eb('device_switches', '+', 1))
            .end(),
        )
        .as('pushes'),
    )
    .where('user_id', '=', p.userId)
    .where((eb) => eb.or([eb('kind', '=', 'step_up'), eb.and([eb('kind', '=', 'login'), eb('recognised', '=', ALLOWANCE.other)])]))
    .where('state', 'not in', ['approved', 'done'])
    .where('created_at', '>', p.since),
);
const subscriptionOf = prepared<{ deviceId: string }>()((db, p) =>
  db.selectFrom('push_subscriptions').select('subscription_enc').where('device_id', '=', p.deviceId),
);
/** Which flow an answer may change: the request it answers, still waiting (see `stillWaiting`). */
type Waiting = {
  id: string;
  prompt: string;
  deviceId: string;
  now: number;
};

/**
 * An answer changes the flow only while it still waits for this very
 * request: the same device, the same prompt (not switched to another
 * device or to the offline challenge meanwhile), and that device still
 * active (not replaced by a migration in the meantime).
 */
function stillWaiting(update: UpdateQueryBuilder<Schema, 'login_flows', 'login_flows', UpdateResult>, w: Waiting) {
  return update
    .where('id', '=', w.id)
    .where('state', '=', 'second_factor')
    .where('expires_at', '>', w.now)
    .where('device_id', '=', w.deviceId)
    .where('prompt', '=', w.prompt)
    .where((eb) => eb.exists(eb.selectFrom('devices').select('devices.id').where('devices.id', '=', w.deviceId).where('devices.state', '=', 'active')));
}

const approveWaiting = prepared<Waiting & { confirmedBy: Confirmation | null; expiresAt: number }>()((db, p) =>
  stillWaiting(db.updateTable('login_flows').set({ state: 'approved', confirmed_by: p.confirmedBy, expires_at: p.expiresAt, updated_at: p.now }), p),
);
const deviceState = prepared<{ id: string }>()((db, p) => db.selectFrom('devices').select(['id', 'state']).where('id', '=', p.id));
const waitingOfDevice = prepared<{ deviceId: string; now: number }>()((db, p) =>
  db
    .selectFrom('login_flows')
    .selectAll()
    .where('device_id', '=', p.deviceId)
    .where('state', '=', 'second_factor')
    .where('kind', 'in', [...PUSH_KINDS])
    .where('expires_at', '>', p.now)
    .orderBy('created_at'),
);
const messagesOfDevice = prepared<{ deviceId: string; now: number }>()((db, p) =>
  db.selectFrom('app_messages').selectAll().where('device_id', '=', p.deviceId).where('expires_at', '>', p.now).orderBy('created_at'),
);

/** A per-device statement run for each of the devices, its rows merged oldest first (a poll holds at most 20 devices, mostly one). */
async function ofDevices<R extends { created_at: number }>(
  db: Executor,
  query: Prepared<{ deviceId: string; now: number }, R>,
  deviceIds: string[],
  now: number,
): Promise<R[]> {
  const rows = (await Promise.all(deviceIds.map((deviceId) => query.execute(db, { deviceId, now })))).flatMap((result) => result.rows);
  if (deviceIds.length > 1) rows.sort((a, b) => a.created_at - b.created_at);
  return rows;
}

export class PushRequests {
  constructor(private readonly deps: PushRequestsDeps) {}

  /** The id the phone knows a flow's push request by (never the flow id itself). */
  private requestId(flowId: string): string {
    return `req_${this.deps.box.digest(flowId, 'push-request')}`;
  }

  /** The flows of the devices that wait for their answer, oldest first. */
  private async waitingFlows(deviceIds: string[]): Promise<FlowRow[]> {
    const rows = await ofDevices(this.deps.store.db, waitingOfDevice, deviceIds, this.deps.clock.now());
    return rows.filter((row) => promptOf(row)?.type === 'push');
  }

  /**
   * A new push request: open apps hear of it over their live connection at
   * once; a closed one is woken through the push provider in the background,
   * so that a slow push service never holds up the login page. It supersedes
   * the device's older requests: the phone shows the login the user is
   * looking at, never an abandoned one with another number (K13).
   */
  async announce(row: FlowRow, language?: Language): Promise<FlowRow> {
    const withheld = await this.withheldBecause(row);
    if (withheld) return this.withhold(row, withheld);
    const superseded = await this.supersede(row);
    await this.deps.signals.publish(deviceTopic(row.device_id!), ...superseded.map(flowTopic));
    // in the background, on no session's authority (a step-up's session ended meanwhile does not lose the audit entry of what was sent)
    void detached(() => this.wake(row, language)).catch(() => undefined);
    return row;
  }

  /**
   * K13, push fatigue: someone holding only the password must not be able to
   * make the phone ring until its owner gives in. A login from a client the
   * user has not completed a login from lately (decision 0018: the password
   * holder's, whatever address they use) sends no push request once the user
   * said "this wasn't me" within `pushQuietAfterDenyMs`, nor beyond
   * `unrecognisedPushesPerHour` of them: why not, or null when it may.
   * Logins from the user's usual clients always may (the owner is never
   * silenced by a password holder elsewhere). A step-up (V1) is limited
   * alike, in the same allowance (decision 0030): a stolen session with the
   * password must not ring the phone all night either.
   */
  private async withheldBecause(row: FlowRow): Promise<'denied' | 'too_many' | null> {
    if (row.kind !== 'step_up' && (row.kind !== 'login' || row.recognised === ALLOWANCE.recognised)) return null;
    const { store, clock, config } = this.deps;
    const now = clock.now();
    if (await deniedSince.first(store.db, { userId: row.user_id, since: now - config.policy.pushQuietAfterDenyMs })) return 'denied';
    const counted = await unaskedPushes.first(store.db, { userId: row.user_id, since: now - HOUR_MS });
    return Number(counted?.pushes ?? 0) > config.policy.unrecognisedPushesPerHour ? 'too_many' : null;
  }

  /**
   * The login shows the app's challenge (K4: typed into the app, its
   * response typed into the login), as if no notification had come; the
   * phone is not disturbed. Audited. The flow as it now stands.
   */
  private async withhold(row: FlowRow, reason: 'denied' | 'too_many'): Promise<FlowRow> {
    let deviceId = row.device_id;
    try {
      deviceId = (await this.offline(row)).id;
    } catch (error) {
      // superseded meanwhile by a newer request to the phone (or ended): no challenge to show, the push withheld all the same
      if (!(error instanceof SlsError && error.code === 'FLOW_EXPIRED')) throw error;
    }
    await this.deps.audit.record({
      event: 'login.push_withheld',
      userId: row.user_id,
      username: row.username,
      ip: row.ip,
      data: { flowId: row.id, kind: row.kind, deviceId, reason },
    });
    return findFlow(this.deps.store.db, row.id, row.kind);
  }

  /** The device's push requests older than this one end (their pages start over); audited. Their flow ids. */
  private async supersede(row: FlowRow): Promise<string[]> {
    const { store, clock, audit } = this.deps;
    const older = (await supersedeOlder.execute(store.db, { deviceId: row.device_id!, id: row.id, createdAt: row.created_at, now: clock.now() })).rows;
    if (older.length > 0) {
      await audit.record(
        ...older.map((o) => ({
          event: 'login.superseded' as const,
          userId: o.user_id,
          username: o.username,
          ip: row.ip,
          data: { flowId: o.id, kind: o.kind, by: row.id, deviceId: row.device_id },
        })),
      );
    }
    return older.map((o) => o.id);
  }

  /** K3: the push provider wakes the app (never with the number, K13); audited. */
  private async wake(row: FlowRow, language?: Language): Promise<void> {
    const { store, box, provider, audit, config } = this.deps;
    const subscription = await subscriptionOf.first(store.db, { deviceId: row.device_id! });
    if (!subscription) return;
    const t = translator(language ?? config.defaultLanguage);
    const outcome = await provider.send(box.openJson<PushSubscription>(subscription.subscription_enc, `push:${row.device_id}`), {
      requestId: this.requestId(row.id),
      username: row.username,
      kind: row.kind === 'step_up' ? 'step_up' : 'login',
      app: row.app,
      expiresAt: new Date(row.expires_at).toISOString(),
      title: t('mobile.push.title'),
      body: t('mobile.push.body', { username: row.username, app: t(`apps.${row.app}`) }),
    });
    // a subscription the push service says is gone is forgotten, together with the audit entry that says so
    await store.serialized('audit_log', async (trx) => {
      if (outcome.status === 'expired') await trx.deleteFrom('push_subscriptions').where('device_id', '=', row.device_id!).execute();
      await audit.append(trx, [
        {
          event: outcome.status === 'sent' ? 'push.sent' : 'push.failed',
          userId: row.user_id,
          username: row.username,
          data: {
            flowId: row.id,
            deviceId: row.device_id,
            provider: provider.name,
            status: outcome.status,
            ...(outcome.status === 'failed' ? { error: outcome.error } : {}),
          },
        },
      ]);
    });
  }

  /** The active authenticator a token opens; APP_TOKEN_INVALID when revoked, migrated away or unknown. */
  async authenticateApp(input: DeviceToken): Promise<{ device: Device; secret: MobileSecret }> {
    const found = await this.tokenDevice(input, ['active']);
    if (!found) throw new SlsError('APP_TOKEN_INVALID');
    return found;
  }

  /** The authenticator a phone's token opens, in one of `states`; null when unknown, in another state, or not this phone's token. */
  private async tokenDevice(input: DeviceToken, states: readonly Device['state'][]): Promise<{ device: Device; secret: MobileSecret } | null> {
    const device = await this.knownDevice(input.deviceId);
    if (device?.type !== 'mobile' || !states.includes(device.state)) return null;
    const secret = (await this.deps.devices.context(device)).secret<MobileSecret>();
    return constantTimeEqual(appTokenHash(input.token), secret.appTokenHash) ? { device, secret } : null;
  }

  /**
   * The device, or null when there is no such device. Any other failure (the
   * database unreachable a moment) is thrown: it must never read as "this
   * activation no longer works", which the app would take as final.
   */
  private async knownDevice(deviceId: string): Promise<Device | null> {
    try {
      return await this.deps.devices.get(deviceId);
    } catch (error) {
      if (error instanceof SlsError && error.code === 'DEVICE_NOT_FOUND') return null;
      throw error;
    }
  }

  /** K3: where a closed app is woken (a Web Push subscription, for instance). */
  async subscribe(input: DeviceToken, subscription: PushSubscription): Promise<void> {
    const { device } = await this.authenticateApp(input);
    const { store, box, clock } = this.deps;
    const sealed = box.sealJson(subscription, `push:${device.id}`);
    await store.db
      .insertInto('push_subscriptions')
      .values({ device_id: device.id, subscription_enc: sealed, created_at: clock.now() })
      .onConflict((oc) => oc.column('device_id').doUpdateSet({ subscription_enc: sealed, created_at: clock.now() }))
      .execute();
  }

  private async pending(devices: Device[]): Promise<Omit<PollResult, 'revoked'>> {
    const { store, clock, box } = this.deps;
    if (devices.length === 0) return { requests: [], messages: [] };
    const now = clock.now();
    const ids = devices.map((d) => d.id);
    const requests: PushRequestView[] = [];
    for (const row of await this.waitingFlows(ids)) {
      const verifier = box.openJson<PushVerifier>(row.verifier!, verifierContext(row.kind, row.id));
      requests.push({
        id: this.requestId(row.id),
        deviceId: row.device_id!,
        username: row.username,
        kind: row.kind === 'step_up' ? 'step_up' : 'login',
        app: row.app,
        ip: row.ip,
        requestedAt: new Date(row.created_at).toISOString(),
        expiresAt: new Date(row.expires_at).toISOString(),
        question: verifier.question,
      });
    }
    const messages = await ofDevices(store.db, messagesOfDevice, ids, now);
    return {
      requests,
      messages: messages.map((m) => ({
        id: m.id,
        deviceId: m.device_id,
        kind: m.kind,
        createdAt: new Date(m.created_at).toISOString(),
        sealed: JSON.parse(m.sealed) as SealedMessage,
      })),
    };
  }

  /**
   * The app's live connection (K3): the requests and messages waiting for
   * its users, answered as soon as there are any, or after `waitMs`. Devices
   * whose activation will never work again (migrated to another phone, K7;
   * revoked; reported lost) are named in `revoked`; a suspended one is only
   * left out until it is reactivated.
   */
  async poll(tokens: DeviceToken[], waitMs: number, abort?: AbortSignal): Promise<PollResult> {
    const devices: Device[] = [];
    const revoked: string[] = [];
    for (const token of tokens) {
      // a suspended one is still watched: its requests come again once it is reactivated
      const found = await this.tokenDevice(token, ['active', 'suspended']);
      if (found) devices.push(found.device);
      else revoked.push(token.deviceId);
    }
    if (devices.length === 0) return { requests: [], messages: [], revoked };
    const ids = devices.map((d) => d.id);
    const found = await this.deps.signals.waitFor(
      ids.map(deviceTopic),
      waitMs,
      async (): Promise<PollResult | null> => {
        // an activation moved to another phone meanwhile is told at once (K7); a suspension only pauses it
        const states = (await Promise.all(ids.map((id) => deviceState.first(this.deps.store.db, { id })))).filter((row) => row !== undefined);
        const stateOf = (id: string) => states.find((s) => s.id === id)?.state;
        const gone = ids.filter((id) => stateOf(id) !== 'active' && stateOf(id) !== 'suspended');
        const pending = await this.pending(devices.filter((d) => stateOf(d.id) === 'active'));
        return gone.length + pending.requests.length + pending.messages.length > 0 ? { ...pending, revoked: gone } : null;
      },
      abort,
    );
    return { requests: found?.requests ?? [], messages: found?.messages ?? [], revoked: [...revoked, ...(found?.revoked ?? [])] };
  }

  /**
   * K4: "no notification": the push request is withdrawn and the device's
   * own challenge takes its place, to be typed into the app, which answers
   * offline (K10). For a login and a step-up alike; returns the device.
   */
  async offline(row: FlowRow): Promise<Device> {
    const { devices, clock, store, box, config, signals } = this.deps;
    const now = clock.now();
    if (row.state !== 'second_factor' || row.expires_at <= now) throw new SlsError('FLOW_EXPIRED');
    if (promptOf(row)?.type !== 'push') throw new SlsError('FLOW_STATE', { reason: 'not_push' });
    const device = await devices.get(row.device_id!);
    const challenge = await this.deps.deviceKind(device.type).issueChallenge(await devices.context(device));
    const updated = await store.db
      .updateTable('login_flows')
      .set({
        prompt: JSON.stringify(challenge.prompt),
        verifier: box.sealJson(challenge.verifier, verifierContext(row.kind, row.id)),
        expires_at: now + config.policy.challengeTtlMs,
        updated_at: now,
      })
      .where('id', '=', row.id)
      .where('state', '=', 'second_factor')
      .where('prompt', '=', row.prompt!)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) throw new SlsError('FLOW_EXPIRED');
    await signals.publish(flowTopic(row.id), deviceTopic(device.id));
    return device;
  }

  /**
   * The live connection of a page waiting for the phone (K3): returns when
   * the flow `read` gives no longer waits for it (approved, denied, answered,
   * expired, or its prompt changed) or after `waitMs`; at once for a flow
   * that does not wait for the phone. The flow as it last read it, when
   * it no longer waits (null: still waiting, or the wait was aborted).
   * `known`: the flow as the caller just read it (not read again).
   */
  async waitForPhone(read: () => Promise<FlowRow>, waitMs: number, abort?: AbortSignal, known?: FlowRow): Promise<FlowRow | null> {
    const first = known ?? (await read());
    if (promptOf(first)?.type !== 'push') return first;
    return this.deps.signals.waitFor(
      [flowTopic(first.id)],
      waitMs,
      async () => {
        const row = await read();
        const waiting = row.state === 'second_factor' && row.expires_at > this.deps.clock.now() && row.prompt === first.prompt;
        return waiting ? null : row;
      },
      abort,
    );
  }

  /**
   * An approval being taken (K3: the login's session; K11: the step-up's
   * verification): the flow approved and in time, the phone that approved
   * it still active and allowed into `app`. Its device and the scope.
   */
  async approval(row: FlowRow, app: App): Promise<{ device: Device; scope: SessionScope }> {
    const { clock, devices, config } = this.deps;
    const now = clock.now();
    if (row.state === 'second_factor' && row.expires_at > now) throw new SlsError('FLOW_STATE', { reason: 'not_approved' });
    if (row.state !== 'approved' || row.expires_at <= now) throw new SlsError('FLOW_EXPIRED');
    const device = await devices.get(row.device_id!);
    const access = decideAccess(device, this.deps.deviceKind(device.type), app, now, config.policy);
    if (device.state !== 'active' || !access.allowed) throw new SlsError(access.allowed ? 'DEVICE_NOT_AVAILABLE' : access.reason);
    return { device, scope: access.scope };
  }

  /** K14: the app has shown the message; it is deleted (404 NOT_FOUND if it is not this phone's, or no longer there). */
  async acknowledge(messageId: string, token: DeviceToken): Promise<void> {
    const { device } = await this.authenticateApp(token);
    const deleted = await this.deps.store.db.deleteFrom('app_messages').where('id', '=', messageId).where('device_id', '=', device.id).executeTakeFirst();
    // K14, X3: another phone's message, an unknown or already acknowledged one: the same 404, telling nothing of which
    if (Number(deleted.numDeletedRows) === 0) throw new SlsError('NOT_FOUND');
  }

  /** K14: temporary passwords the app never fetched are deleted once they expire. */
  async purgeExpiredMessages(): Promise<number> {
    const deleted = await this.deps.store.db.deleteFrom('app_messages').where('expires_at', '<=', this.deps.clock.now()).executeTakeFirst();
    return Number(deleted.numDeletedRows);
  }

  /** K14: a message sealed to the phone (only it can open it), waiting for the app. */
  async sendMessage(trx: Tx, deviceId: string, kind: 'temporary_password', plaintext: string): Promise<string> {
    const { clock, config } = this.deps;
    const secret = await this.deps.devices.readSecret<MobileSecret>(trx, deviceId);
    const id = newId('msg');
    const now = clock.now();
    await trx
      .insertInto('app_messages')
      .values({
        id,
        device_id: deviceId,
        kind,
        sealed: JSON.stringify(sealToPhone(secret.agreementKey, plaintext)),
        created_at: now,
        expires_at: now + config.policy.appMessageTtlMs,
      })
      .execute();
    return id;
  }

  /**
   * K3, K13: the phone's answer. Approve: the number typed must be the one
   * on the login screen, the PIN proof (or the biometric assertion) right,
   * the signature the phone's. Deny ("this wasn't me"): signed; the login
   * fails, audited, and the user is told; a denied step-up (V1) ends the
   * session that asked for it (L8), and logins from unknown clients leave
   * the phone alone for a while (`announce`).
   */
  async answer(requestId: string, input: PushAnswer, where: WebOrigin): Promise<{ state: 'approved' | 'denied' }> {
    const { store, clock, box, audit, config } = this.deps;
    const policy = config.policy;
    const { device, secret } = await this.authenticateApp(input);
    // late, answered or unknown: it no longer waits
    const row = REQUEST_ID.test(requestId) ? (await this.waitingFlows([device.id])).find((r) => this.requestId(r.id) === requestId) : undefined;
    if (!row) throw new SlsError('FLOW_EXPIRED');
    const flowId = row.id;
    const now = clock.now();
    const verifier = box.openJson<PushVerifier>(row.verifier!, verifierContext(row.kind, flowId));
    const meta = { userId: row.user_id, username: row.username, ip: row.ip };
    const message = answerMessage(requestId, input.number, input.decision, input.proof);
    const signed = verifyAnswer(secret.signingKey, message, input.signature);
    let approvedWith: Confirmation | null = null;
    const waiting: Waiting = { id: row.id, prompt: row.prompt!, deviceId: device.id, now };

    if (input.decision === 'deny' && signed) {
      const denied = await stillWaiting(store.db.updateTable('login_flows').set({ state: 'denied', updated_at: now }), waiting).executeTakeFirst();
      if (Number(denied.numUpdatedRows) !== 1) throw new SlsError('FLOW_EXPIRED');
      await store.serialized('audit_log', async (trx) => {
        await audit.append(trx, [{ event: 'login.push_denied', ...meta, data: { flowId, kind: row.kind, deviceId: device.id } }]);
        // L8: a step-up the owner did not ask for came from a session someone else holds (stolen): it ends
        if (row.kind === 'step_up' && row.session_id)
          await this.deps.sessions.endOne(trx, { userId: row.user_id, sessionId: row.session_id }, 'push_denied', `user:${row.user_id}`);
      });
      await this.deps.signals.publish(flowTopic(flowId), deviceTopic(device.id));
      const user = await this.deps.users.get(row.user_id);
      await this.deps.notifier.notifySoon(user, 'pushDenied', { username: user.username, ip: row.ip ?? '' });
      return { state: 'denied' };
    }

    await this.deps.answers.answerFlow({
      row,
      deviceType: device.type,
      ip: row.ip,
      failed: { event: 'login.second_factor_failed', data: { deviceId: device.id, push: true } },
      hints: ['hints.pushNumber'],
      // the phone's signature, and its PIN proof or assertion, against the secret read with the app's token: nothing else read
      checkInside: true,
      check: async () => {
        const confirmed =
          signed && input.decision === 'approve' && constantTimeEqual(input.number, verifier.number)
            ? await this.confirmation(secret, verifier, input, message, where)
            : null;
        approvedWith = confirmed?.by ?? null;
        if (!confirmed) return null;
        const replay = { deviceId: device.id, keys: [`push:${flowId}`] };
        // L4, D6: a biometric approval's signature counter is kept with the acceptance, if the secret is still the one checked
        return confirmed.secret ? { replay, secret: { checked: device, value: confirmed.secret } } : { replay };
      },
      accept: async (trx) => {
        if ((await approveWaiting.changed(trx, { ...waiting, confirmedBy: approvedWith, expiresAt: now + policy.approvedClaimMs })) !== 1) return null;
        await audit.append(trx, [{ event: 'login.push_approved', ...meta, data: { flowId, kind: row.kind, deviceId: device.id, confirmedBy: approvedWith } }]);
        return true;
      },
      // the page waiting for the phone shows the answers left, or starts over
      afterFailure: () => this.deps.signals.publish(flowTopic(flowId), deviceTopic(device.id)),
    });
    await this.deps.signals.publish(flowTopic(flowId), deviceTopic(device.id));
    return { state: 'approved' };
  }

  /**
   * How the approval was confirmed: biometric (a verified WebAuthn assertion,
   * with the secret holding its new signature counter), the PIN (its OCRA
   * proof), or not at all (null).
   */
  private async confirmation(
    secret: MobileSecret,
    verifier: PushVerifier,
    input: PushAnswer,
    message: string,
    where: WebOrigin,
  ): Promise<{ by: Confirmation; secret?: MobileSecret } | null> {
    if (input.assertion !== undefined) {
      if (!secret.credential || input.proof !== '') return null;
      const counter = await verifyAssertion(where, secret.credential, answerChallenge(message), input.assertion);
      if (counter === null) return null;
      return { by: 'biometric', secret: { ...secret, credential: { ...secret.credential, counter } } };
    }
    const pinOk =
      /^\d{8}$/.test(input.proof) &&
      verifyOcra(suite, { key: Buffer.from(secret.seed, 'hex'), question: verifier.question, pinHash: Buffer.from(secret.pinHash, 'hex') }, input.proof);
    return pinOk ? { by: 'pin' } : null;
  }
}
