/**
 * Sharing one device between usernames (H1–H5, T4): the requesting user's
 * procedure (H2) after a step-up (V1), the status, the cancellation by
 * either user, and the compliance staff's decision (H3) with the help desk's
 * staff-on-staff rules (decision 0010).
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import { ErrorSchema, FLOW_ERRORS } from '../errors.js';
import { requestMeta } from '../session-cookie.js';
import type { SessionGuard } from '../session-guard.js';
import { answerText, ChallengeSchema, STAFF_STEP_UP } from './schemas.js';

const DeviceSchema = z.object({ id: z.string(), type: z.string(), label: z.string().nullable(), state: z.string() });

export const SharingSchema = z
  .object({
    id: z.string(),
    state: z
      .enum(['challenge', 'review', 'pending', 'active', 'rejected', 'cancelled', 'expired'])
      .describe("challenge: the owner's device is to answer; review: to confirm; pending: waiting for compliance (H3); active: in force"),
    requester: z.string().describe('The username that uses the shared device'),
    owner: z.string().describe('The username whose device is shared'),
    device: DeviceSchema.describe('The shared device'),
    challenge: ChallengeSchema.nullable().describe("While `challenge`: what the owner's device answers (a challenge code, index numbers, a code sent by SMS)"),
    attemptsLeft: z.number().int().nullable(),
    challengeExpiresAt: z.string().nullable(),
    disposition: z.enum(['keep', 'return']).nullable().describe("H5: the requester's own devices are kept (suspended) or returned (DSC+)"),
    approval: z.enum(['automatic', 'compliance']).nullable(),
    keptDevices: z.array(DeviceSchema).describe("H5: the requester's devices suspended while sharing, reactivated when it is cancelled"),
    createdAt: z.string(),
    decidedAt: z.string().nullable(),
    note: z.string().nullable().describe("Compliance's note with its decision"),
    endedAt: z.string().nullable(),
    endedBy: z.string().nullable(),
  })
  .describe('DeviceSharing');
const Params = z.object({ id: z.string().max(64) });

export function sharingApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];
    const { sharing } = services;

    /** Sharing is a security setting: a fresh step-up (V1, X7), the primary user's right (A2). */
    async function changer(request: FastifyRequest) {
      const { session } = await guard.require(request, 'security');
      return { session, meta: requestMeta(request) };
    }

    /**
     * Staff to read; to decide or cancel (`staff_action`), with a fresh step-up as well (V1, X7). X1, X7, H3 (decision
     * 0034): a role that may not decide or cancel is refused before the step-up (403 FORBIDDEN_ROLE, audited).
     */
    async function staffOf(
      request: FastifyRequest,
      need: 'staff' | 'staff_action' = 'staff_action',
      action?: 'sharing_decision' | 'sharing_cancel',
    ): Promise<string> {
      const role = action ? (userId: string) => services.helpDesk.staffOnSharing(userId, [], action) : undefined;
      const { session } = await guard.require(request, need, role);
      return session.userId;
    }

    app.get(
      '/sharing',
      {
        schema: {
          operationId: 'listSharings',
          tags: ['sharing'],
          summary: 'Your device sharing requests and sharings, as requester or owner (H2: the status)',
          security,
          response: { 200: z.object({ sharings: z.array(SharingSchema) }), 401: ErrorSchema, 403: ErrorSchema },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'portal');
        return { sharings: await sharing.list(session.userId) };
      },
    );

    app.post(
      '/sharing',
      {
        schema: {
          operationId: 'requestSharing',
          tags: ['sharing'],
          summary: "Share Device (H2): the owner's username and password; the owner's device then answers a challenge",
          description:
            "As the requesting user (not the owner), after a step-up. The password counts towards the owner's lock (L3): 401 INVALID_CREDENTIALS, 423 LOCKED. " +
            'Prerequisites in order (H1, H4): 409 SHARING_DIFFERENT_IDENTIFICATION ("Different identification information"), ' +
            '409 SHARING_TEMPORARY_DEVICE (a temporary passcode or online card, T4), ' +
            "409 SHARING_NO_PHYSICAL_DEVICE (the owner's active devices are only a mobile authenticator, an SMS number or a security key: only a physical device is shared, K6, D6), " +
            '409 SHARING_LESS_SECURE_DEVICE ("Less secure device", D2); ' +
            'also 400 SHARING_SELF, 409 SHARING_EXISTS, 409 SHARING_OWNER_SHARES, 403 NO_ACTIVE_DEVICE (the owner has no active device), 403 NOT_PRIMARY_USER, ' +
            "403 PASSWORD_CHANGE_REQUIRED (reason one_time_password: the owner's password is a one-time password from client services, A5), " +
            "403 STRONGER_DEVICE_REQUIRED (reason sharing: a step-up with a device weaker than the requester's strongest, D2: SMS while a DSC+ protects the requester; the same at the confirmation).",
          security,
          body: z.object({ ownerUsername: z.string().min(1).max(64), ownerPassword: z.string().min(1).max(1024) }),
          response: { 201: SharingSchema, ...FLOW_ERRORS },
        },
      },
      async (request, reply) => {
        const { session, meta } = await changer(request);
        // H1c, H5, X7: the requester's own devices step aside for the shared one: the proof of their strongest (SMS, a password and a SIM, never)
        await guard.requireProofToAdd(request, session, null, 'sharing');
        return reply.status(201).send(await sharing.start(session, request.body, meta));
      },
    );

    app.get(
      '/sharing/:id',
      {
        schema: {
          operationId: 'getSharing',
          tags: ['sharing'],
          summary: 'One sharing request (its challenge, review or status)',
          security,
          params: Params,
          response: { 200: SharingSchema, ...FLOW_ERRORS },
        },
      },
      async (request) => {
        const { session } = await guard.require(request, 'portal');
        return sharing.get(session.userId, request.params.id);
      },
    );

    app.post(
      '/sharing/:id/answer',
      {
        schema: {
          operationId: 'answerSharingChallenge',
          tags: ['sharing'],
          summary: "The owner's device's response to the challenge (H2); then review",
          description:
            "A wrong answer counts towards the owner's lock (L3): 401 LOGIN_FAILED with attemptsLeft; 410 FLOW_EXPIRED after 3 answers or 5 minutes (start again).",
          security,
          params: Params,
          body: z.object({ response: answerText(1) }),
          response: { 200: SharingSchema, ...FLOW_ERRORS },
        },
      },
      async (request) => {
        const { session, meta } = await changer(request);
        return sharing.answer(session, request.params.id, request.body.response, meta);
      },
    );

    app.post(
      '/sharing/:id/confirmation',
      {
        schema: {
          operationId: 'confirmSharing',
          tags: ['sharing'],
          summary: 'Confirm after the review (H2): approved at once (active) or waiting for compliance (pending, H3)',
          description:
            'The prerequisites are checked again. `disposition` (H5): keep your own devices (suspended, reactivated when the sharing is cancelled) ' +
            'or return them (a DSC+ sent back; its deposit is released when it arrives).',
          security,
          params: Params,
          body: z.object({ disposition: z.enum(['keep', 'return']).default('keep') }),
          response: { 200: SharingSchema, ...FLOW_ERRORS },
        },
      },
      async (request) => {
        const { session, meta } = await changer(request);
        await guard.requireProofToAdd(request, session, null, 'sharing');
        return sharing.confirm(session, request.params.id, request.body.disposition, meta);
      },
    );

    app.delete(
      '/sharing/:id',
      {
        schema: {
          operationId: 'cancelSharing',
          tags: ['sharing'],
          summary: "Cancel a sharing (either user, after a step-up): the requester's kept devices are active again",
          description:
            "The requester's sessions opened with the owner's device end (L8); the requester's own that cancels too when it stepped up with the owner's device.",
          security,
          params: Params,
          response: { 200: SharingSchema, ...FLOW_ERRORS },
        },
      },
      async (request) => {
        const { session, meta } = await changer(request);
        return sharing.cancel({ session }, request.params.id, meta);
      },
    );

    // ---------------------------------------------------------------- staff

    app.get(
      '/helpdesk/sharing',
      {
        schema: {
          operationId: 'listPendingSharings',
          tags: ['help desk'],
          summary: 'Device sharing requests waiting for compliance (H3)',
          security: [{ bearer: [] }],
          response: { 200: z.object({ sharings: z.array(SharingSchema) }), ...FLOW_ERRORS },
        },
      },
      async (request) => ({ sharings: await sharing.pending(await staffOf(request, 'staff')) }),
    );

    app.post(
      '/helpdesk/sharing/:id/decision',
      {
        schema: {
          operationId: 'decideSharing',
          tags: ['help desk'],
          summary: 'Compliance approves or rejects a pending device sharing (H3); both users are told (N1)',
          description:
            'Compliance staff or an admin (403 FORBIDDEN_ROLE otherwise); never on their own account, staff accounts only by an admin (403 STAFF_TARGET_FORBIDDEN). ' +
            'An approval checks the prerequisites again (409 with their codes). ' +
            STAFF_STEP_UP,
          security: [{ bearer: [] }],
          params: Params,
          body: z.object({ decision: z.enum(['approve', 'reject']), note: z.string().max(500).optional() }),
          response: { 200: SharingSchema, ...FLOW_ERRORS },
        },
      },
      async (request) =>
        sharing.decide(await staffOf(request, 'staff_action', 'sharing_decision'), request.params.id, request.body.decision, request.body.note),
    );

    app.delete(
      '/helpdesk/sharing/:id',
      {
        schema: {
          operationId: 'cancelSharingAsStaff',
          tags: ['help desk'],
          summary: "Staff cancel a device sharing: the requester's kept devices are active again",
          description: STAFF_STEP_UP,
          security: [{ bearer: [] }],
          params: Params,
          response: { 200: SharingSchema, ...FLOW_ERRORS },
        },
      },
      async (request) => sharing.cancel({ staffUserId: await staffOf(request, 'staff_action', 'sharing_cancel') }, request.params.id, requestMeta(request)),
    );
  };
}
