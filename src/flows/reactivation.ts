/**
 * Reactivating a permanent device (D4): back with a card that was
 * temporarily unavailable, the user proves it with a response in the
 * portal; it is active again, and the temporary passcode (and online card)
 * stop working at once. The proof is a flow like a login's: one challenge,
 * 5 minutes, 3 answers, single use.
 */
import type { Services } from '../services.js';
import { SlsError } from '../errors.js';
import { newId } from '../crypto/random.js';
import { deviceKind } from '../devices/registry.js';
import type { Device, Prompt } from '../devices/types.js';
import type { Session } from '../sessions/sessions.js';
import type { HelpDesk } from '../helpdesk/helpdesk.js';

export interface ReactivationView {
  id: string;
  deviceId: string;
  challenge: Prompt;
  expiresAt: string;
  attemptsLeft: number;
}

export type ReactivationDeps = Pick<Services, 'store' | 'clock' | 'box' | 'audit' | 'users' | 'devices' | 'lockout' | 'notifier' | 'config'> & {
  helpDesk: HelpDesk;
};

export class DeviceReactivation {
  constructor(private readonly deps: ReactivationDeps) {}

  private sealContext(flowId: string): string {
    return `reactivation:${flowId}`;
  }

  private async ownDevice(session: Session, deviceId: string): Promise<Device> {
    const device = await this.deps.devices.get(deviceId).catch(() => null);
    if (!device || device.userId !== session.userId) throw new SlsError('DEVICE_NOT_FOUND', { id: deviceId });
    return device;
  }

  async start(session: Session, deviceId: string): Promise<ReactivationView> {
    const { store, clock, box, devices, users, config } = this.deps;
    const device = await this.ownDevice(session, deviceId);
    if (device.state !== 'suspended') throw new SlsError('DEVICE_NOT_AVAILABLE', {}, `device is ${device.state}`);
    const user = await users.get(session.userId);
    const challenge = await deviceKind(device.type).issueChallenge(await devices.context(device));
    const now = clock.now();
    const id = newId('flw');
    await store.db
      .insertInto('login_flows')
      .values({
        id,
        kind: 'reactivation',
        app: session.app,
        username: user.username,
        user_id: user.id,
        state: 'second_factor',
        device_id: device.id,
        prompt: JSON.stringify(challenge.prompt),
        verifier: box.sealJson(challenge.verifier, this.sealContext(id)),
        attempts: 0,
        device_switches: 0,
        expires_at: now + config.policy.challengeTtlMs,
        created_at: now,
        updated_at: now,
        ip: null,
        user_agent: null,
        session_id: session.id,
      })
      .execute();
    return {
      id,
      deviceId: device.id,
      challenge: challenge.prompt,
      expiresAt: new Date(now + config.policy.challengeTtlMs).toISOString(),
      attemptsLeft: config.policy.challengeMaxAttempts,
    };
  }

  async complete(session: Session, flowId: string, response: string): Promise<Device> {
    const { store, clock, box, devices, users, lockout, audit, config, helpDesk, notifier } = this.deps;
    const row = await store.db
      .selectFrom('login_flows')
      .selectAll()
      .where('id', '=', flowId)
      .where('kind', '=', 'reactivation')
      .where('user_id', '=', session.userId)
      .executeTakeFirst();
    if (!row) throw new SlsError('FLOW_NOT_FOUND');
    const now = clock.now();
    if (row.state !== 'second_factor' || row.expires_at <= now) throw new SlsError('FLOW_EXPIRED');
    const user = await users.get(session.userId);
    const attempt = await lockout.begin(user.username);
    const reserved = await store.db
      .updateTable('login_flows')
      .set((eb) => ({ attempts: eb('attempts', '+', 1), updated_at: now }))
      .where('id', '=', flowId)
      .where('state', '=', 'second_factor')
      .where('expires_at', '>', now)
      .where('attempts', '<', config.policy.challengeMaxAttempts)
      .returning('attempts')
      .executeTakeFirst();
    if (!reserved) {
      await lockout.release(attempt);
      throw new SlsError('FLOW_EXPIRED');
    }
    const device = await devices.get(row.device_id!);
    const kind = deviceKind(device.type);
    const check = await kind.checkResponse(await devices.context(device), box.openJson(row.verifier!, this.sealContext(flowId)), response);
    if (check.ok) {
      const done = await store.serialized('audit_log', async (trx) => {
        if (!(await devices.consume(trx, device.id, check.replayKey ?? `flow:${flowId}`))) return false;
        const claimed = await trx
          .updateTable('login_flows')
          .set({ state: 'done', updated_at: now })
          .where('id', '=', flowId)
          .where('state', '=', 'second_factor')
          .executeTakeFirst();
        if (Number(claimed.numUpdatedRows) !== 1) return false;
        await trx.updateTable('devices').set({ state: 'active', state_changed_at: now }).where('id', '=', device.id).where('state', '=', 'suspended').execute();
        await lockout.release(attempt, trx);
        await audit.append(trx, [
          { event: 'device.reactivated', actor: `user:${user.id}`, userId: user.id, username: user.username, data: { deviceId: device.id, type: device.type } },
        ]);
        await helpDesk.revokeTemporaryDevices(user, `user:${user.id}`, 'permanent device reactivated', trx);
        return true;
      });
      if (done) {
        await notifier.notify(user, 'deviceReactivated', { username: user.username });
        return devices.get(device.id);
      }
      await lockout.release(attempt);
      throw new SlsError('FLOW_EXPIRED');
    }
    // a wrong response counts towards the lock like a login's (L3)
    const failure = await lockout.fail(attempt);
    const attemptsLeft = config.policy.challengeMaxAttempts - reserved.attempts;
    if (attemptsLeft <= 0) {
      await store.db.updateTable('login_flows').set({ state: 'failed', updated_at: clock.now() }).where('id', '=', flowId).where('state', '=', 'second_factor').execute();
    }
    const meta = { actor: `user:${user.id}`, userId: user.id, username: user.username };
    await audit.record(
      { event: 'device.reactivation_failed', ...meta, data: { flowId, deviceId: device.id, attemptsLeft, failures: failure.failures } },
      ...(failure.locked ? [{ event: 'login.locked' as const, ...meta, data: { until: failure.lockedUntil } }] : []),
    );
    if (failure.locked) {
      await notifier.notify(user, 'userLocked', { username: user.username, until: new Date(failure.lockedUntil!).toISOString() });
    }
    throw new SlsError('LOGIN_FAILED', { attemptsLeft, hints: kind.failureHints });
  }
}
