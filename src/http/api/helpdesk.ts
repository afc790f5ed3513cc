/**
 * The help desk API for client services (T1–T5, L3, A5): staff call it with
 * the Bearer token of their own two-factor session; their role decides what
 * they may do.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import { VERIFICATION_METHODS } from '../../helpdesk/helpdesk.js';
import { unconfirmedAddress } from '../../devices/dscplus/requests.js';
import { ErrorSchema } from '../errors.js';
import { AddressSchema, STAFF_STEP_UP } from './schemas.js';
import type { SessionGuard } from '../session-guard.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const UserParams = z.object({ username: z.string().min(1).max(64) });
const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema };

const UserSummary = z.object({ id: z.string(), username: z.string(), account: z.string(), role: z.string(), status: z.string() });

export function helpdeskApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  /**
   * The staff member behind the request's session (full scope only): to
   * read; to act (`staff_action`), with a fresh step-up as well (V1, X7:
   * 403 STEP_UP_REQUIRED otherwise).
   */
  async function staffOf(request: FastifyRequest, need: 'staff' | 'staff_action' = 'staff_action'): Promise<string> {
    // X1, X7 (decision 0034): the role before the step-up, and before anything the request names is looked up: a client (or
    // compliance, to act) hears FORBIDDEN_ROLE, not STEP_UP_REQUIRED, and learns nothing of a device's id
    const role = (userId: string) => services.helpDesk.staff(userId, need === 'staff' ? 'view' : 'act');
    const { session } = await guard.require(request, need, role);
    await role(session.userId);
    return session.userId;
  }

  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const security: Record<string, string[]>[] = [{ bearer: [] }];

    app.get(
      '/helpdesk/users',
      {
        schema: {
          operationId: 'searchUsers',
          tags: ['help desk'],
          summary: 'Find users by username prefix or account number',
          description: 'Only users you may act on (X7): never a colleague (but for an admin), an admin, yourself, or a username of their entities.',
          security,
          querystring: z.object({ q: z.string().min(1).max(64) }),
          response: { 200: z.object({ users: z.array(UserSummary) }), ...errors },
        },
      },
      async (request) => {
        const users = await services.helpDesk.search(await staffOf(request, 'staff'), request.query.q);
        return { users: users.map((u) => ({ id: u.id, username: u.username, account: u.accountNumber, role: u.role, status: u.status })) };
      },
    );

    app.get(
      '/helpdesk/users/:username',
      {
        schema: {
          operationId: 'getUserForHelpdesk',
          tags: ['help desk'],
          summary: "A user's account, devices, lock state and latest audit entries",
          description:
            'Only a user you may act on (X7): a colleague (but for an admin), an admin, yourself or a username of their entities answers 403 STAFF_TARGET_FORBIDDEN, audited.',
          security,
          params: UserParams,
          response: {
            200: z.object({
              user: UserSummary,
              locked: z.boolean(),
              lockedUntil: z.string().nullable().describe('The end of a lock after failed attempts; null while unlocked or locked by client services'),
              lockedByStaff: z.boolean().describe('Locked by client services until they lift it'),
              devices: z.array(
                z.object({
                  id: z.string(),
                  type: z.string(),
                  serial: z.string().nullable(),
                  state: z.string(),
                  expiresAt: z.string().nullable(),
                  addressToConfirm: AddressSchema.nullable().describe(
                    'R2: a DSC+ requested under temporary access: the address to confirm with the client before shipping it; otherwise null',
                  ),
                }),
              ),
              audit: z.array(
                z.object({ seq: z.number(), at: z.string(), event: z.string(), actor: z.string().nullable(), data: z.record(z.string(), z.unknown()) }),
              ),
            }),
            ...errors,
          },
        },
      },
      async (request) => {
        // X7: only a user this staff member may act on (never a colleague but for an admin, an admin, or themselves)
        const user = await services.helpDesk.viewUser(await staffOf(request, 'staff'), request.params.username);
        const lock = await services.lockout.status(user.username);
        const devices = await services.devices.listForUser(user.id);
        const audit = await services.audit.list({ username: user.username, limit: 50 });
        return {
          user: { id: user.id, username: user.username, account: user.accountNumber, role: user.role, status: user.status },
          locked: lock.locked,
          lockedUntil: iso(lock.lockedUntil),
          lockedByStaff: lock.byStaff,
          devices: devices.map((d) => ({
            id: d.id,
            type: d.type,
            serial: d.serial,
            state: d.state,
            expiresAt: iso(d.expiresAt),
            addressToConfirm: unconfirmedAddress(d),
          })),
          audit: audit.map((e) => ({ seq: e.seq, at: iso(e.at)!, event: e.event, actor: e.actor, data: e.data })),
        };
      },
    );

    app.post(
      '/helpdesk/users/:username/verifications',
      {
        schema: {
          operationId: 'recordCallerVerification',
          tags: ['help desk'],
          summary:
            "Record how the caller's identity was verified (T1, A5); valid for 30 minutes, for you alone (another staff member's use of its id: 404 VERIFICATION_NOT_FOUND)",
          description: STAFF_STEP_UP,
          security,
          params: UserParams,
          body: z.object({ method: z.enum(VERIFICATION_METHODS), notes: z.string().max(500).optional() }),
          response: { 200: z.object({ id: z.string(), method: z.string(), expiresAt: z.string() }), ...errors },
        },
      },
      async (request) => {
        const v = await services.helpDesk.verifyIdentity(await staffOf(request), request.params.username, request.body);
        return { id: v.id, method: v.method, expiresAt: iso(v.expiresAt)! };
      },
    );

    app.post(
      '/helpdesk/users/:username/temporary-passcode',
      {
        schema: {
          operationId: 'issueTemporaryPasscode',
          tags: ['help desk'],
          summary: 'Issue a temporary passcode (T1–T5): shown once; replaces any earlier one',
          description:
            "Full access to portal and trading for 2 days, then the portal's online security card pages until day 12. " +
            'The user\'s permanent devices become "suspended" (or "lost").' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: UserParams,
          body: z.object({ verificationId: z.string().max(64), deviceStatus: z.enum(['suspended', 'lost']).optional() }),
          response: {
            200: z.object({ passcode: z.string(), deviceId: z.string(), fullAccessUntil: z.string(), expiresAt: z.string() }),
            ...errors,
            // T4: none for a user who shares a device (TEMP_PASSCODE_SHARING)
            409: ErrorSchema,
          },
        },
      },
      async (request, reply) => {
        const issued = await services.helpDesk.issueTemporaryPasscode(await staffOf(request), request.params.username, request.body);
        reply.header('cache-control', 'no-store');
        return { passcode: issued.passcode, deviceId: issued.device.id, fullAccessUntil: iso(issued.fullAccessUntil)!, expiresAt: iso(issued.expiresAt)! };
      },
    );

    app.delete(
      '/helpdesk/users/:username/temporary-passcode',
      {
        schema: {
          operationId: 'revokeTemporaryPasscode',
          tags: ['help desk'],
          summary: "Revoke the user's temporary passcode",
          description: STAFF_STEP_UP,
          security,
          params: UserParams,
          response: { 200: z.object({ revoked: z.number().int() }), ...errors },
        },
      },
      async (request) => ({ revoked: await services.helpDesk.revokeTemporaryPasscode(await staffOf(request), request.params.username) }),
    );

    const DeviceParams = z.object({ deviceId: z.string().max(64) });
    const ShippedDevice = z.object({ id: z.string(), serial: z.string().nullable(), state: z.string() });

    app.post(
      '/helpdesk/devices/:deviceId/ship',
      {
        schema: {
          operationId: 'shipDevice',
          tags: ['help desk'],
          summary: 'Ship a requested DSC+ with a card of the imported stock (C6, C8); it activates itself three weeks later',
          description:
            'A card requested under temporary access (a temporary passcode or online security card; `addressToConfirm` on the user) ships only with ' +
            '`addressConfirmed: true`, once you confirmed its address with the client on a number on record (R2): 409 ADDRESS_NOT_CONFIRMED otherwise, audited.' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: DeviceParams,
          body: z.object({
            serial: z.string().min(1).max(32),
            addressConfirmed: z
              .boolean()
              .optional()
              .describe('You confirmed the shipping address with the client (required for a request made under temporary access)'),
          }),
          response: { 200: ShippedDevice, ...errors, 409: ErrorSchema },
        },
      },
      async (request) => {
        const { serial, addressConfirmed } = request.body;
        const { device } = await services.dscPlusRequests.ship(await staffOf(request), request.params.deviceId, serial, { addressConfirmed });
        return { id: device.id, serial: device.serial, state: device.state };
      },
    );

    app.post(
      '/helpdesk/devices/:deviceId/returned',
      {
        schema: {
          operationId: 'markDeviceReturned',
          tags: ['help desk'],
          summary: 'A DSC+ came back: returned, and its USD 20 deposit released (C5)',
          description:
            'With `verificationId`, your verification of the owner (T1): the owner may bind a new device at once. Without one, a card in use ' +
            'is marked as a loss reported with a weaker proof: for 3 days it still counts as held when a new device is bound; a card already ' +
            'waiting after such a report keeps its wait, which only an admin ends (loss-confirmed) (R2, decisions 0028, 0036). ' +
            'A verification that does not hold: 403 IDENTITY_NOT_VERIFIED, 404 VERIFICATION_NOT_FOUND.' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: DeviceParams,
          body: z.object({
            verificationId: z.string().max(64).optional().describe("Your verification of the owner's identity (T1): the return then does not wait"),
          }),
          response: { 200: ShippedDevice, ...errors, 409: ErrorSchema },
        },
      },
      async (request) => {
        const device = await services.dscPlusRequests.markReturned(await staffOf(request), request.params.deviceId, request.body.verificationId);
        return { id: device.id, serial: device.serial, state: device.state };
      },
    );

    app.post(
      '/helpdesk/devices/:deviceId/lost',
      {
        schema: {
          operationId: 'markDeviceLost',
          tags: ['help desk'],
          summary: 'Mark a DSC+ lost or stolen (the deposit is kept) or damaged (C5)',
          description:
            'With `verificationId`, your verification of the owner (T1): the owner may bind a new device at once. Without one, the report is ' +
            'marked as one made with a weaker proof: for 3 days the card still counts as held when a new device is bound (R2, decisions 0023, 0028). ' +
            'A verification that does not hold: 403 IDENTITY_NOT_VERIFIED, 404 VERIFICATION_NOT_FOUND.' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: DeviceParams,
          body: z.object({
            reason: z.enum(['lost', 'stolen', 'damaged']),
            verificationId: z.string().max(64).optional().describe("Your verification of the owner's identity (T1): the report then does not wait"),
          }),
          response: { 200: ShippedDevice, ...errors, 409: ErrorSchema },
        },
      },
      async (request) => {
        const { reason, verificationId } = request.body;
        const actor = { staffUserId: await staffOf(request), ...(verificationId !== undefined ? { verificationId } : {}) };
        const device = await services.dscPlusRequests.reportLost(actor, request.params.deviceId, reason);
        return { id: device.id, serial: device.serial, state: device.state };
      },
    );

    app.post(
      '/helpdesk/devices/:deviceId/loss-confirmed',
      {
        schema: {
          operationId: 'confirmDeviceLoss',
          tags: ['help desk'],
          summary: 'End the wait after a loss reported with a weaker proof, when the real client calls (R2, decision 0028): an admin only',
          description:
            'With your verification of the owner (T1), the lost card stops counting as held at once: the owner may bind a new device with what they hold. The owner is told (N1). ' +
            'Anyone but an admin: 403 LOSS_CONFIRM_ADMIN_ONLY, audited (helpdesk.refused). A device not waiting: 409 LOSS_NOT_WAITING.' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: DeviceParams,
          body: z.object({ verificationId: z.string().max(64) }),
          response: { 200: ShippedDevice, ...errors, 409: ErrorSchema },
        },
      },
      async (request) => {
        const device = await services.dscPlusRequests.confirmLoss(await staffOf(request), request.params.deviceId, request.body.verificationId);
        return { id: device.id, serial: device.serial, state: device.state };
      },
    );

    app.post(
      '/helpdesk/users/:username/password-reset',
      {
        schema: {
          operationId: 'resetPassword',
          tags: ['help desk'],
          summary: 'A one-time password for a verified caller who forgot theirs (A5): the user must change it at the next login',
          description:
            'Shown once to staff (`deliveredTo: "staff"`), or, when the user has an active mobile authenticator, delivered sealed to the app ' +
            'and not shown (`deliveredTo: "app"`, `temporaryPassword: null`, K14).' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: UserParams,
          body: z.object({ verificationId: z.string().max(64) }),
          response: { 200: z.object({ temporaryPassword: z.string().nullable(), deliveredTo: z.enum(['staff', 'app']) }), ...errors },
        },
      },
      async (request, reply) => {
        reply.header('cache-control', 'no-store');
        return services.helpDesk.resetPassword(await staffOf(request), request.params.username, request.body);
      },
    );

    app.post(
      '/helpdesk/users/:username/unlock',
      {
        schema: {
          operationId: 'unlockUser',
          tags: ['help desk'],
          summary: 'Lift a lock after verifying the caller (L3)',
          description:
            'A lock after failed logins: client services or an admin. A lock staff placed (lockedByStaff: a reported compromise, fraud): an admin only; ' +
            'anyone else is refused 403 STAFF_LOCK_ADMIN_ONLY, audited (decision 0020).' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: UserParams,
          body: z.object({ verificationId: z.string().max(64) }),
          response: { 200: z.object({ locked: z.boolean() }), ...errors },
        },
      },
      async (request) => {
        await services.helpDesk.unlock(await staffOf(request), request.params.username, request.body);
        return { locked: (await services.lockout.status(request.params.username)).locked };
      },
    );

    app.post(
      '/helpdesk/users/:username/lock',
      {
        schema: {
          operationId: 'lockUser',
          tags: ['help desk'],
          summary: 'Lock a user until an admin lifts it, and end every session (L3, L8)',
          description:
            'For a reported compromise or fraud. The user hears of it; logins are refused with 423 LOCKED until an admin unlocks the user (decision 0020). 403 STAFF_TARGET_FORBIDDEN for a staff account without the admin role, an admin, or yourself (X7).' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: UserParams,
          body: z.object({ reason: z.string().min(1).max(500) }),
          response: { 200: z.object({ locked: z.literal(true), sessionsEnded: z.number().int() }), ...errors },
        },
      },
      async (request) => ({
        locked: true as const,
        sessionsEnded: await services.helpDesk.lockUser(await staffOf(request), request.params.username, request.body),
      }),
    );

    app.delete(
      '/helpdesk/users/:username/sessions',
      {
        schema: {
          operationId: 'endUserSessions',
          tags: ['help desk'],
          summary: 'End every session of a user (L8): a stolen laptop, a shared computer',
          description:
            'Each ending is audited (session.ended, reason ended_by_staff); the user is told (N1). 403 STAFF_TARGET_FORBIDDEN as for every action on a staff account (X7).' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: UserParams,
          response: { 200: z.object({ sessionsEnded: z.number().int() }), ...errors },
        },
      },
      async (request) => ({ sessionsEnded: await services.helpDesk.endSessions(await staffOf(request), request.params.username) }),
    );

    app.post(
      '/helpdesk/users/:username/phones',
      {
        schema: {
          operationId: 'addUserPhone',
          tags: ['help desk'],
          summary: 'Put a mobile number on record for a verified caller (X7, M6)',
          description:
            'The way for a user without any device to enrol: the first login (or the activation of the mobile authenticator) sends a code to it, which verifies it. ' +
            'Errors: 400 PHONE_INVALID, 409 PHONE_EXISTS, 409 PHONE_LIMIT, 403 IDENTITY_NOT_VERIFIED.' +
            ` ${STAFF_STEP_UP}`,
          security,
          params: UserParams,
          body: z.object({ verificationId: z.string().max(64), country: z.string().max(8), number: z.string().max(32) }),
          response: { 201: z.object({ id: z.string(), number: z.string().describe('masked'), verified: z.boolean() }), ...errors, 409: ErrorSchema },
        },
      },
      async (request, reply) => {
        const phone = await services.helpDesk.addPhone(await staffOf(request), request.params.username, request.body);
        return reply.status(201).send({ id: phone.id, number: phone.masked, verified: phone.verified });
      },
    );
  };
}
