/**
 * Challenge and response (K4, K10): when no notification arrives, the login
 * screen shows a challenge; the user types it here with the PIN and enters
 * the response shown. Everything is computed on the phone, with no network
 * (the service worker keeps the app itself available offline).
 */
import { MOBILE_CHALLENGE_DIGITS, ocraResponse, pinProblem } from './protocol.js';
import type { Enrolment } from './storage.js';
import { busy, byId, input, say, t } from './dom.js';
import { showMain } from './screens.js';

export interface OfflineContext {
  enrolments(): Enrolment[];
  finished(): void;
}

export class ChallengeResponse {
  constructor(private readonly context: OfflineContext) {
    byId('cr-form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.generate();
    });
    byId('cr-back').addEventListener('click', () => {
      this.clear();
      this.context.finished();
    });
  }

  private active(): Enrolment[] {
    return this.context.enrolments().filter((e) => !e.revoked);
  }

  /** Opens the screen; several users: which one answers. */
  open(): void {
    const users = this.active();
    const select = byId<HTMLSelectElement>('cr-user');
    const previous = select.value;
    select.replaceChildren(
      ...users.map((e) => {
        const option = document.createElement('option');
        option.value = e.username;
        option.textContent = e.username;
        option.selected = e.username === previous;
        return option;
      }),
    );
    byId('cr-user-field').hidden = users.length < 2;
    this.clear();
    showMain('offline');
    (users.length > 1 ? select : input('cr-challenge')).focus();
  }

  private clear(): void {
    input('cr-challenge').value = '';
    input('cr-pin').value = '';
    byId('cr-response').textContent = '';
    say(byId('cr-error'), '', 'alert');
  }

  private fail(message: string, id: string): void {
    byId('cr-response').textContent = '';
    say(byId('cr-error'), message, 'alert');
    input(id).setAttribute('aria-invalid', 'true');
    input(id).focus();
  }

  private async generate(): Promise<void> {
    const users = this.active();
    const username = users.length > 1 ? byId<HTMLSelectElement>('cr-user').value : users[0]?.username;
    const enrolment = users.find((e) => e.username === username);
    if (!enrolment) return;
    const challenge = input('cr-challenge').value.replace(/\s+/g, '');
    const pin = input('cr-pin').value;
    if (!new RegExp(`^\\d{1,${MOBILE_CHALLENGE_DIGITS}}$`).test(challenge)) return this.fail(t('authenticator.offline.challengeInvalid'), 'cr-challenge');
    input('cr-challenge').removeAttribute('aria-invalid');
    const problem = pinProblem(pin);
    if (problem) return this.fail(t(`authenticator.activation.pinProblem.${problem}`), 'cr-pin');
    input('cr-pin').removeAttribute('aria-invalid');
    say(byId('cr-error'), '', 'alert');
    await busy(byId('cr-form'), async () => {
      byId('cr-response').textContent = await ocraResponse(enrolment.ocraKey, challenge, pin);
    });
    // the PIN does not stay in the page next to the response
    input('cr-pin').value = '';
  }
}
