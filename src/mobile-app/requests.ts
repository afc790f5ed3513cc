/**
 * What the live connection brings: push requests to approve or deny (K3,
 * K13) and temporary passwords sealed to the phone (K14).
 *
 * A request shows where the login comes from (user, application, IP,
 * time) and asks for the 2-digit number of the login screen; approving
 * signs the request's id, that number and the proof of the PIN (or, with
 * biometric confirmation, a WebAuthn assertion over the same message).
 * "This wasn't me" signs a denial. Requests that expire disappear: the
 * server's list is the truth (only its clock counts); while the
 * connection is down, the app drops a request once its lifetime has passed
 * since it arrived.
 */
import { ApiError, type AppMessage, type AuthenticatorApi, type PushRequest, type WebAuthnAssertion } from './api.js';
import { answerChallenge, answerMessage, ocraResponse, openMessage, pinProblem, signAnswer } from './protocol.js';
import type { Enrolment } from './storage.js';
import { getAssertion } from './webauthn.js';
import { busy, byId, errorText, formatTime, hasCode, input, say, t } from './dom.js';
import { closeOverlay, openOverlay } from './screens.js';

/** Answers after which the request is gone (too late, answered, locked). */
const GONE = ['FLOW_EXPIRED', 'FLOW_NOT_FOUND', 'FLOW_STATE', 'LOCKED'];

export interface RequestContext {
  api: AuthenticatorApi;
  enrolments(): Enrolment[];
  /** Polls again at once (an answer changes what is pending). */
  kick(): void;
  /** A notice on the app's status line (the request shown has expired). */
  notice(text: string): void;
}

export class PushRequests {
  /** The server's pending requests for this phone's users, from the last poll. */
  private waiting: PushRequest[] = [];
  /** When each request was first seen here (local clock), for the offline expiry. */
  private readonly firstSeen = new Map<string, number>();
  /** Requests answered here (a poll under way may still list them), or put aside with "Back": not shown again. */
  private readonly answered = new Set<string>();
  private shown: PushRequest | null = null;
  /** The request shown has its outcome: the form is gone, "Back" closes. */
  private finished = false;
  /** An answer to the request shown is on its way: it is not expired under it. */
  private answering = false;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly context: RequestContext) {
    byId('req-form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.answer('approve');
    });
    byId('req-deny').addEventListener('click', () => void this.answer('deny'));
    byId('req-done').addEventListener('click', () => this.close());
    byId('req-back').addEventListener('click', () => this.putAside());
  }

  /** "Back": the request shown is left unanswered (it expires on the server); it is not shown again. */
  private putAside(): void {
    if (!this.shown || this.answering) return;
    this.answered.add(this.shown.id);
    this.close();
  }

  private enrolmentOf(request: PushRequest): Enrolment | undefined {
    return this.context.enrolments().find((e) => e.deviceId === request.deviceId && !e.revoked);
  }

  /** The request's end on this phone's clock: its lifetime, counted from when it arrived here. */
  private localExpiry(request: PushRequest): number {
    const lifetime = Date.parse(request.expiresAt) - Date.parse(request.requestedAt);
    return (this.firstSeen.get(request.id) ?? Date.now()) + (Number.isFinite(lifetime) ? lifetime : 120_000);
  }

  private live(request: PushRequest): boolean {
    return !this.answered.has(request.id) && this.enrolmentOf(request) !== undefined && Date.now() < this.localExpiry(request);
  }

  /** Whether a request waits here: one on the screen without its outcome, or one still to show. */
  pending(): boolean {
    return (this.shown !== null && !this.finished) || this.waiting.some((r) => this.live(r));
  }

  /** A poll's requests; returns whether any is new. */
  update(requests: PushRequest[]): boolean {
    let fresh = false;
    const now = Date.now();
    for (const request of requests) {
      if (!this.firstSeen.has(request.id)) {
        this.firstSeen.set(request.id, now);
        fresh = true;
      }
    }
    const ids = new Set(requests.map((r) => r.id));
    for (const id of this.firstSeen.keys()) if (!ids.has(id) && id !== this.shown?.id) this.firstSeen.delete(id);
    this.waiting = requests;
    if (this.shown && !this.finished && !this.answering && !ids.has(this.shown.id)) this.expire();
    this.showNext();
    return fresh;
  }

  /** Shows the next live request when none is being answered. */
  private showNext(): void {
    if (this.shown && !this.finished) return;
    const next = this.waiting.find((r) => r.id !== this.shown?.id && this.live(r));
    if (next) this.display(next);
  }

  private display(request: PushRequest): void {
    const enrolment = this.enrolmentOf(request);
    if (!enrolment) return;
    this.shown = request;
    this.finished = false;
    byId('req-heading').textContent = t(`authenticator.request.heading.${request.kind}`);
    byId('req-username').textContent = request.username;
    byId('req-app').textContent = t(`apps.${request.app}`);
    byId('req-ip').textContent = request.ip ?? t('authenticator.request.unknownIp');
    const time = byId('req-time');
    time.textContent = formatTime(request.requestedAt);
    time.setAttribute('datetime', request.requestedAt);
    input('req-number').value = '';
    input('req-pin').value = '';
    byId('req-pin-field').hidden = enrolment.biometric;
    byId('req-biometric-help').hidden = !enrolment.biometric;
    byId('req-form').hidden = false;
    byId('req-done').hidden = true;
    say(byId('req-outcome'), '', 'status');
    openOverlay('request');
    this.watchExpiry();
  }

  /** While the connection is down the server cannot say the request is gone: the phone's clock does. */
  private watchExpiry(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (!this.shown || this.finished) {
        if (this.timer) clearInterval(this.timer);
        this.timer = null;
        return;
      }
      if (!this.answering && Date.now() >= this.localExpiry(this.shown)) this.expire();
    }, 1_000);
  }

  /** The request shown is gone before it was answered: it disappears, and the status line says so. */
  private expire(): void {
    this.shown = null;
    this.finished = false;
    closeOverlay('request');
    this.context.notice(t('authenticator.request.expired'));
    this.showNext();
  }

  /** Its outcome stays on the screen, with "Back". */
  private finish(message: string, kind: 'status' | 'alert'): void {
    if (this.shown) this.answered.add(this.shown.id);
    this.finished = true;
    // the PIN does not stay in the page once used
    input('req-pin').value = '';
    byId('req-form').hidden = true;
    say(byId('req-outcome'), message, kind);
    const back = byId('req-done');
    back.hidden = false;
    back.focus();
    this.context.kick();
  }

  private close(): void {
    this.shown = null;
    this.finished = false;
    closeOverlay('request');
    this.showNext();
  }

  private async answer(decision: 'approve' | 'deny'): Promise<void> {
    const request = this.shown;
    if (!request || this.finished) return;
    const enrolment = this.enrolmentOf(request);
    if (!enrolment) return;
    const outcome = byId('req-outcome');
    const number = input('req-number').value.trim();
    const pin = input('req-pin').value;
    if (decision === 'approve') {
      if (!/^\d{2}$/.test(number)) {
        say(outcome, t('authenticator.request.numberRequired'));
        input('req-number').focus();
        return;
      }
      const problem = enrolment.biometric ? null : pinProblem(pin);
      if (problem) {
        say(outcome, t(`authenticator.activation.pinProblem.${problem}`));
        input('req-pin').focus();
        return;
      }
    }
    say(outcome, '', 'status');
    this.answering = true;
    await busy(byId('req-form'), async () => {
      try {
        const proof = decision === 'approve' && !enrolment.biometric ? await ocraResponse(enrolment.ocraKey, request.question, pin) : '';
        const message = decision === 'approve' ? answerMessage(request.id, number, 'approve', proof) : answerMessage(request.id, '', 'deny', '');
        let assertion: WebAuthnAssertion | undefined;
        if (decision === 'approve' && enrolment.biometric && enrolment.credentialId) {
          try {
            assertion = await getAssertion(enrolment.credentialId, await answerChallenge(message), enrolment.rpId);
          } catch {
            say(outcome, t('authenticator.request.biometricFailed'));
            return;
          }
        }
        const signature = await signAnswer(enrolment.signingKey, message);
        const result = await this.context.api.answer(request.id, {
          deviceId: enrolment.deviceId,
          token: enrolment.appToken,
          decision,
          number: decision === 'approve' ? number : '',
          proof,
          signature,
          ...(assertion ? { assertion } : {}),
        });
        this.finish(t(result.state === 'approved' ? 'authenticator.request.approved' : 'authenticator.request.denied'), 'status');
      } catch (error) {
        const left = error instanceof ApiError ? error.body?.error?.attemptsLeft : undefined;
        if (hasCode(error, ...GONE) || left === 0) {
          this.finish(errorText(error), 'alert');
          return;
        }
        say(outcome, errorText(error));
        if (hasCode(error, 'LOGIN_FAILED')) {
          input('req-pin').value = '';
          input('req-number').select();
        }
      }
    }).finally(() => {
      this.answering = false;
    });
    if (!this.finished && this.shown === request) input('req-number').focus();
  }
}

/** A temporary password opened on this phone, waiting to be shown or on screen. */
interface OpenedMessage {
  id: string;
  username: string;
  password: string;
  device: { deviceId: string; token: string };
}

/**
 * K14: temporary passwords sealed to this phone. Each is opened with the
 * user's agreement key and shown until the user closes it; only then is it
 * acknowledged, so that the server stops sending it, and forgotten. Until
 * then it stays on the server: an app closed before the user saw it gets it
 * again.
 */
export class Messages {
  private readonly seen = new Set<string>();
  /** Closed by the user, but the server has not taken the acknowledgement yet: the next poll tries again. */
  private readonly unacknowledged = new Map<string, OpenedMessage>();
  private readonly queue: OpenedMessage[] = [];
  private current: OpenedMessage | null = null;

  constructor(private readonly context: Pick<RequestContext, 'api' | 'enrolments'>) {
    byId('msg-close').addEventListener('click', () => this.close());
  }

  /** A poll's messages; returns whether any is new. */
  async receive(messages: AppMessage[]): Promise<boolean> {
    let fresh = false;
    for (const message of messages) {
      const closed = this.unacknowledged.get(message.id);
      if (closed) await this.acknowledge(closed);
      const enrolment = this.context.enrolments().find((e) => e.deviceId === message.deviceId && !e.revoked);
      if (!enrolment || this.seen.has(message.id) || message.kind !== 'temporary_password') continue;
      let password: string;
      try {
        password = await openMessage(enrolment.agreementKey, message.sealed);
      } catch {
        continue; // not sealed to this key: nothing to show
      }
      this.seen.add(message.id);
      this.queue.push({ id: message.id, username: enrolment.username, password, device: { deviceId: enrolment.deviceId, token: enrolment.appToken } });
      fresh = true;
      this.showNext();
    }
    return fresh;
  }

  private showNext(): void {
    if (this.current) return;
    const next = this.queue.shift();
    if (!next) return;
    this.current = next;
    byId('msg-username').textContent = next.username;
    byId('msg-password').textContent = next.password;
    openOverlay('message');
  }

  /** The user has seen it: the server may forget it (or, if it does not answer now, at the next poll). */
  private async acknowledge(shown: OpenedMessage): Promise<void> {
    try {
      await this.context.api.acknowledge(shown.id, shown.device);
      this.unacknowledged.delete(shown.id);
    } catch (error) {
      // 404: the server no longer holds it (acknowledged already, or expired): nothing to try again
      if (error instanceof ApiError && error.status === 404) this.unacknowledged.delete(shown.id);
      else this.unacknowledged.set(shown.id, shown);
    }
  }

  private close(): void {
    const shown = this.current;
    byId('msg-username').textContent = '';
    byId('msg-password').textContent = '';
    this.current = null;
    closeOverlay('message');
    if (shown) void this.acknowledge(shown);
    this.showNext();
  }
}
