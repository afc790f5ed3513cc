/**
 * Phase 5 of `npm run bench`: approval-to-login latency of the mobile
 * authenticator (K3) over loopback. A phone (the app's own protocol code,
 * in this process) holds its live connection; a login starts; the login
 * page holds its own; the phone approves. Measured from the moment the
 * approval is sent until the waiting page hears "approved", and until it
 * has taken its session. Two ways to take it, alternating, 200 samples each:
 * the page's long poll (`GET /login/{id}?wait`) then its claim (three
 * requests in the path), and the waiting claim (`POST /login/{id}/session
 * ?wait`, two). One login at a time; the baseline is a bare
 * GET /api/v1/health one at a time, in the same run.
 */
import { performance } from 'node:perf_hooks';
import type { Services } from '../src/services.js';
import {
  activationMessage,
  answerMessage,
  deriveOcraKey,
  generatePhoneKeys,
  ocraResponse,
  publicKeys,
  signAnswer,
  type AppKey,
} from '../src/mobile-app/protocol.js';
import { latencyStats, round, type LatencyStats } from './lib.js';
import { describe, get, parse, postJson } from './http.js';

export const WARMUP = 5;
/** Nearest-rank p99 of n samples is the ⌈0.99 n⌉-th smallest: of 60 it would be the largest, one pause of the machine; of 200, the third largest. */
export const SAMPLES = 200;
const PIN = 'b3nch1';
/** Where the app would run; only the WebAuthn options use it, and none is registered here. */
const ORIGIN = { origin: 'http://127.0.0.1', rpId: '127.0.0.1' };

export interface BenchPhone {
  username: string;
  deviceId: string;
  token: string;
  signingKey: AppKey;
  ocraKey: AppKey;
}

/** Untimed setup, before the server starts: a user whose phone is activated by the SMS token from the outbox (K1). */
export async function activatePhone(services: Services, username: string, password: string, number = '612340000'): Promise<BenchPhone> {
  const meta = { ip: null, userAgent: null, language: 'en' as const };
  const user = await services.users.create({ username, password, equityUsd: 0 }, 'bench');
  // X7: the number is put on record out of band, as at account opening
  // one number per phone: the SMS limits of a number (X5) would stop the activations of phase 8's phones
  await services.phones.add(user.id, { country: 'FR', number }, 'bench', null);
  const view = await services.mobileEnrolment.start({ username, password, purpose: 'activate', ...meta }, ORIGIN);
  await services.mobileEnrolment.sendToken(view.id, view.claimToken, { phoneId: view.phones[0]!.id }, meta, ORIGIN);
  const [sms] = (await services.notifier.list({ userId: user.id })).filter((n) => n.template === 'activationToken');
  const token = /\b(\d{6})\b/.exec(sms!.body)![1]!;
  const keys = await generatePhoneKeys();
  const publicJwks = await publicKeys(keys);
  await services.mobileEnrolment.prove(view.id, view.claimToken, { response: token, ...publicJwks }, meta, ORIGIN);
  const signature = await signAnswer(keys.signing.privateKey, activationMessage(view.id));
  const activated = await services.mobileEnrolment.complete(view.id, view.claimToken, { pin: PIN, ...publicJwks, signature }, meta, ORIGIN);
  return {
    username,
    deviceId: activated.deviceId,
    token: activated.appToken,
    signingKey: keys.signing.privateKey,
    ocraKey: await deriveOcraKey(keys.agreement.privateKey, activated.serverKey, activated.salt),
  };
}

export interface ApprovalPhase {
  /** From sending the approval to the waiting login page hearing "approved". */
  toPageNotified: LatencyStats;
  /** … and to the page holding its session (POST /login/{id}/session done). */
  toSession: LatencyStats;
  /** From sending the approval to the waiting claim (POST /login/{id}/session?wait) answering with the session. */
  toSessionWaitingClaim: LatencyStats;
  health: LatencyStats;
  ratioP50: number;
  /** p50 of the waiting claim's path ÷ p50 health. */
  waitingClaimRatioP50: number;
}

type Fail = (phase: string, what: string) => void;

export async function approvalPhase(
  base: string,
  phone: BenchPhone,
  password: string,
  fail: Fail,
  sizes: { warmup: number; samples: number } = { warmup: WARMUP, samples: SAMPLES },
): Promise<ApprovalPhase> {
  const { warmup, samples } = sizes;
  const notified: number[] = [];
  const sessions: number[] = [];
  const claimed: number[] = [];
  const devices = [{ deviceId: phone.deviceId, token: phone.token }];
  // alternating: even rounds the long poll then the claim, odd rounds the waiting claim
  for (let i = 0; i < 2 * (warmup + samples); i++) {
    const waitingClaim = i % 2 === 1;
    const timed = i >= 2 * warmup;
    // the app's live connection is open before the login starts
    const polling = postJson(`${base}/api/v1/mobile/requests`, { devices, wait: 25 });
    const start = await postJson(`${base}/api/v1/login`, { username: phone.username, password, app: 'trading' });
    const flow = parse<{ id: string; claimToken: string; challenge: { type: string; number: string } }>(start);
    if (start.status !== 200 || flow?.challenge?.type !== 'push') {
      fail('approval', `POST /api/v1/login: ${describe(start)}`);
      await polling;
      continue;
    }
    const request = parse<{ requests: { id: string; question: string }[] }>(await polling)?.requests[0];
    if (!request) {
      fail('approval', 'the phone did not get the push request');
      continue;
    }
    const pageWaits = waitingClaim
      ? postJson(`${base}/api/v1/login/${flow.id}/session?wait=25`, { claimToken: flow.claimToken })
      : get(`${base}/api/v1/login/${flow.id}?wait=25`, { 'x-claim-token': flow.claimToken });
    // the phone's own work (PIN proof, signature) happens before the clock starts
    const proof = await ocraResponse(phone.ocraKey, request.question, PIN);
    const message = answerMessage(request.id, flow.challenge.number, 'approve', proof);
    const body = { ...devices[0], decision: 'approve', number: flow.challenge.number, proof, signature: await signAnswer(phone.signingKey, message) };
    const t0 = performance.now();
    const answered = await postJson(`${base}/api/v1/mobile/requests/${request.id}`, body);
    if (answered.status !== 200) fail('approval', `POST /api/v1/mobile/requests/{id}: ${describe(answered)}`);
    const page = await pageWaits;
    const t1 = performance.now();
    if (waitingClaim) {
      if (page.status !== 200) fail('approval', `POST /api/v1/login/{id}/session?wait: ${describe(page)}`);
      if (timed) claimed.push(t1 - t0);
      continue;
    }
    if (parse<{ state: string }>(page)?.state !== 'approved') fail('approval', `GET /api/v1/login/{id}?wait: ${describe(page)}`);
    const taken = await postJson(`${base}/api/v1/login/${flow.id}/session`, { claimToken: flow.claimToken });
    const t2 = performance.now();
    if (taken.status !== 200) fail('approval', `POST /api/v1/login/{id}/session: ${describe(taken)}`);
    if (timed) {
      notified.push(t1 - t0);
      sessions.push(t2 - t0);
    }
  }
  const health: number[] = [];
  for (let i = 0; i < warmup + samples; i++) {
    const t0 = performance.now();
    const reply = await get(`${base}/api/v1/health`);
    if (reply.status !== 200) fail('approval', `GET /api/v1/health: ${describe(reply)}`);
    if (i >= warmup) health.push(performance.now() - t0);
  }
  const toSession = latencyStats(sessions);
  const toSessionWaitingClaim = latencyStats(claimed);
  const baseline = latencyStats(health);
  return {
    toPageNotified: latencyStats(notified),
    toSession,
    toSessionWaitingClaim,
    health: baseline,
    ratioP50: round(toSession.p50Ms / baseline.p50Ms, 2),
    waitingClaimRatioP50: round(toSessionWaitingClaim.p50Ms / baseline.p50Ms, 2),
  };
}
