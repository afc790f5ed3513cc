/**
 * The activation wizard (K1, K2, K6, K7, K8): activate a user, move an
 * activation from an old phone (migrate), or recover it after reinstalling
 * (recover), all on this phone.
 *
 *   1. user name and password            → startActivation
 *   2. the proof of possession: an SMS to a number on record (sendToken), or
 *      the physical device's challenge
 *   3. the activation token, or the device's response, with the public
 *      keys made for this activation → proveActivation: checked before
 *      any PIN is asked (issue 16 item 3)
 *   4. the PIN (K2) and, when the phone can, fingerprint or face
 *      → the WebAuthn credential, completeActivation signed with the same
 *        keys, the challenge/response key derived and everything kept
 *        (storage.ts)
 *
 * A wrong token stays at step 3 with the server's message ("The activation
 * token is not right"); a wrong recovery PIN stays at step 4.
 */
import type { Activated, ActivationPurpose, ActivationView, ApiError, StartedActivation, AuthenticatorApi, WebAuthnRegistration } from './api.js';
import { activationMessage, deriveOcraKey, generatePhoneKeys, pinProblem, publicKeys, signAnswer, type PhoneKeys } from './protocol.js';
import { saveEnrolment } from './storage.js';
import { biometricAvailable, createCredential, securityKeyAssertion } from './webauthn.js';
import { busy, byId, errorText, hasCode, input, say, t } from './dom.js';
import { showMain } from './screens.js';

type Step = 'login' | 'phone' | 'token' | 'pin' | 'done';

const STEPS: Record<Step, string> = {
  login: 'act-step-login',
  phone: 'act-step-phone',
  token: 'act-step-token',
  pin: 'act-step-pin',
  done: 'act-done',
};

/** Answers after which the activation must start again from the user name and password. */
const RESTART = ['FLOW_EXPIRED', 'FLOW_NOT_FOUND', 'FLOW_STATE', 'LOCKED', 'RECOVERY_BLOCKED', 'MOBILE_NOT_ACTIVE'];

export interface ActivationContext {
  api: AuthenticatorApi;
  /** The activations changed: reload them, show them, poll for them. */
  activated(): Promise<void>;
  /** Done: back to the home screen. */
  finished(): void;
}

/** A short description of this browser for the user's device list ("Chrome · Android"): names, not text. */
export function browserLabel(): string | undefined {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /OPR\//.test(ua)
      ? 'Opera'
      : /Firefox\/|FxiOS\//.test(ua)
        ? 'Firefox'
        : /Chrome\/|CriOS\//.test(ua)
          ? 'Chrome'
          : /Safari\//.test(ua)
            ? 'Safari'
            : '';
  const system = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad|iPod/.test(ua)
      ? 'iOS'
      : /Windows/.test(ua)
        ? 'Windows'
        : /Mac OS X/.test(ua)
          ? 'macOS'
          : /CrOS/.test(ua)
            ? 'ChromeOS'
            : /Linux/.test(ua)
              ? 'Linux'
              : '';
  const label = [browser, system].filter(Boolean).join(' · ');
  return label || undefined;
}

export class ActivationWizard {
  private purpose: ActivationPurpose = 'activate';
  private view: StartedActivation | null = null;
  private biometric: Promise<boolean> | null = null;
  /** The keys made for the activation under way: the ones that prove it finish it. */
  private keys: PhoneKeys | null = null;

  constructor(private readonly context: ActivationContext) {
    byId('act-step-login').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.logIn();
    });
    byId('act-step-phone').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.sendToken();
    });
    byId('act-step-token').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.prove();
    });
    byId('act-step-pin').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.activate();
    });
    byId('act-finish').addEventListener('click', () => this.context.finished());
    byId('act-cancel').addEventListener('click', () => {
      this.reset();
      this.context.finished();
    });
  }

  /** Opens the wizard for a purpose, empty. */
  start(purpose: ActivationPurpose): void {
    this.purpose = purpose;
    this.reset();
    byId('act-heading').textContent = t(`authenticator.activation.heading.${purpose}`);
    byId('act-intro').textContent = t(`authenticator.activation.intro.${purpose}`);
    this.step('login');
    showMain('activation');
    input('act-username').focus();
  }

  /** Forgets the activation under way and everything typed. */
  private reset(): void {
    this.view = null;
    this.keys = null;
    for (const id of ['act-username', 'act-password', 'act-token', 'act-pin', 'act-pin-again']) input(id).value = '';
    input('act-biometric').checked = false;
    byId('act-phone-list').replaceChildren();
    this.error('');
    this.notice('');
  }

  private error(message: string): void {
    say(byId('act-error'), message, 'alert');
  }

  private notice(message: string): void {
    say(byId('act-notice'), message, 'status');
  }

  private step(step: Step): void {
    for (const [name, id] of Object.entries(STEPS)) byId(id).hidden = name !== step;
    byId('act-cancel').hidden = step === 'done';
    byId('act-intro').hidden = step !== 'login';
  }

  private required(id: string): boolean {
    const field = input(id);
    if (field.value.trim() !== '') {
      field.removeAttribute('aria-invalid');
      return true;
    }
    field.setAttribute('aria-invalid', 'true');
    this.error(t('authenticator.activation.required'));
    field.focus();
    return false;
  }

  // step 1 -------------------------------------------------------------

  private async logIn(): Promise<void> {
    this.error('');
    this.notice('');
    if (!this.required('act-username') || !this.required('act-password')) return;
    await busy(byId('act-step-login'), async () => {
      try {
        this.view = await this.context.api.startActivation(input('act-username').value.trim(), input('act-password').value, this.purpose);
      } catch (error) {
        this.error(errorText(error));
        return;
      }
      input('act-password').value = '';
      this.proofStep(this.view);
    });
    if (this.view === null) input('act-password').focus();
  }

  /** Step 2 or 3, as the user proves it is them. */
  private proofStep(view: ActivationView): void {
    if (view.proof === 'sms') {
      if (view.challenge?.type === 'sms') this.tokenSent(view);
      else this.phoneStep(view);
    } else {
      this.tokenStep(view);
    }
  }

  // step 2: where the SMS goes -------------------------------------------

  private phoneStep(view: ActivationView): void {
    const list = byId('act-phone-list');
    list.replaceChildren(
      ...view.phones.map((phone, index) => {
        const label = document.createElement('label');
        label.className = 'choice';
        const radio = document.createElement('input');
        radio.type = 'radio';
        radio.name = 'phone';
        radio.value = phone.id;
        radio.id = `act-phone-${phone.id}`;
        radio.checked = index === 0;
        label.htmlFor = radio.id;
        label.append(radio, ' ', phone.verified ? phone.number : t('authenticator.activation.notVerified', { number: phone.number }));
        return label;
      }),
    );
    this.step('phone');
    list.querySelector<HTMLInputElement>('input')?.focus();
  }

  private async sendToken(): Promise<void> {
    const view = this.view;
    if (!view) return;
    this.error('');
    this.notice('');
    const chosen = byId('act-phone-list').querySelector<HTMLInputElement>('input[name=phone]:checked');
    if (!chosen) return;
    const to = { phoneId: chosen.value };
    await busy(byId('act-step-phone'), async () => {
      try {
        this.view = await this.context.api.sendToken(view, to);
      } catch (error) {
        this.error(errorText(error));
        if (hasCode(error, ...RESTART)) this.restart();
        return;
      }
      this.tokenSent(this.view);
    });
  }

  /** The SMS went out: step 3; it did not: step 2 again, with why. */
  private tokenSent(view: ActivationView): void {
    const challenge = view.challenge;
    if (challenge?.type === 'sms' && challenge.delivery !== 'sent') {
      this.error(t(challenge.delivery === 'limited' ? 'authenticator.activation.tokenLimited' : 'authenticator.activation.tokenFailed', { to: challenge.to }));
      this.phoneStep(view);
      return;
    }
    if (challenge?.type === 'sms') {
      this.notice(t(challenge.channel === 'voice' ? 'authenticator.activation.tokenCalled' : 'authenticator.activation.tokenSent', { to: challenge.to }));
    }
    this.tokenStep(view);
  }

  // step 3: the token, or the device's response ---------------------------

  private tokenStep(view: ActivationView): void {
    const token = input('act-token');
    byId('act-token-label').textContent = t(`authenticator.activation.token.${view.proof}`);
    token.autocomplete = view.proof === 'sms' ? 'one-time-code' : 'off';
    token.inputMode = 'numeric';
    const challenge = view.challenge;
    const device = byId('act-device');
    // K7, D6: a security key is touched, nothing is typed
    const securityKey = challenge?.type === 'webauthn';
    token.parentElement!.hidden = securityKey;
    if (securityKey) this.notice(t('authenticator.activation.securityKey'));
    device.hidden = view.proof !== 'device' || !challenge || challenge.type === 'sms' || securityKey;
    if (challenge?.type === 'ocra') byId('act-challenge').textContent = challenge.question;
    else if (challenge?.type === 'index')
      byId('act-challenge').textContent = t('authenticator.activation.indexes', { first: challenge.indexes[0], second: challenge.indexes[1] });
    else if (challenge?.type === 'otp') byId('act-challenge').textContent = t('authenticator.activation.otp');
    else byId('act-challenge').textContent = '';
    this.step('token');
    if (securityKey) byId('act-token-continue').focus();
    else token.focus();
  }

  /** The token (or the device's response) goes to the server first; the PIN screen comes only once it is right. */
  private async prove(): Promise<void> {
    const view = this.view;
    if (!view) return;
    this.error('');
    this.notice('');
    const securityKey = view.challenge?.type === 'webauthn' ? view.challenge.options : null;
    if (!securityKey && !this.required('act-token')) return;
    let typeAgain = false;
    await busy(byId('act-step-token'), async () => {
      try {
        this.keys ??= await generatePhoneKeys();
        // K7, D6: a security key answers with its assertion, as JSON
        const response = securityKey ? JSON.stringify(await securityKeyAssertion(securityKey)) : input('act-token').value.trim();
        this.view = await this.context.api.proveActivation(view, { response, ...(await publicKeys(this.keys)) });
      } catch (error) {
        if (hasCode(error, 'FLOW_STATE')) {
          // proven already (a second tap): the PIN comes next
          this.pinStep();
          return;
        }
        const usedUp = hasCode(error, 'ACTIVATION_PROOF_FAILED') && (error as ApiError).body.error.attemptsLeft === 0;
        if (usedUp || hasCode(error, ...RESTART)) this.restart();
        this.error(errorText(error));
        typeAgain = !usedUp && !hasCode(error, ...RESTART) && !securityKey;
        return;
      }
      input('act-token').value = '';
      this.notice(t(`authenticator.activation.proven.${view.proof}`));
      this.pinStep();
    });
    // once the form is enabled again: the token to type again
    if (typeAgain) input('act-token').select();
  }

  // step 4: the PIN (a new one, or the recovery PIN), fingerprint or face, and the keys

  private pinStep(): void {
    // K8: a recovery keeps the PIN: the user types the one chosen at activation
    const recovering = this.view?.purpose === 'recover';
    byId('act-pin-intro').textContent = t(recovering ? 'authenticator.activation.recoveryPinIntro' : 'authenticator.activation.pinIntro');
    byId('act-pin-label').textContent = t(recovering ? 'authenticator.activation.recoveryPin' : 'authenticator.activation.pin');
    byId('act-pin-again-field').hidden = recovering;
    this.step('pin');
    this.biometric ??= biometricAvailable();
    void this.biometric.then((available) => {
      byId('act-biometric-field').hidden = !available;
    });
    input('act-pin').focus();
  }

  private async activate(): Promise<void> {
    const view = this.view;
    if (!view) return;
    this.error('');
    const pin = input('act-pin').value;
    const recovering = view.purpose === 'recover';
    // a new PIN must be a good one (K2); the recovery PIN is checked by the server
    const problem = recovering ? (pin === '' ? 'length' : null) : pinProblem(pin);
    if (problem) {
      this.error(t(`authenticator.activation.pinProblem.${problem}`));
      input('act-pin').setAttribute('aria-invalid', 'true');
      input('act-pin').focus();
      return;
    }
    input('act-pin').removeAttribute('aria-invalid');
    if (!recovering && input('act-pin-again').value !== pin) {
      this.error(t('authenticator.activation.pinProblem.mismatch'));
      input('act-pin-again').setAttribute('aria-invalid', 'true');
      input('act-pin-again').focus();
      return;
    }
    input('act-pin-again').removeAttribute('aria-invalid');
    const withBiometric = !byId('act-biometric-field').hidden && input('act-biometric').checked;
    let pinAgain = false;
    await busy(byId('act-step-pin'), async () => {
      const keys = this.keys;
      if (!keys) {
        this.restart();
        return;
      }
      let credential: WebAuthnRegistration | undefined;
      if (withBiometric) {
        try {
          credential = await createCredential(view.webauthn);
        } catch {
          this.error(t('authenticator.activation.biometricFailed'));
          return;
        }
      }
      const label = browserLabel();
      let activated: Activated;
      try {
        activated = await this.context.api.completeActivation(view, {
          pin,
          ...(await publicKeys(keys)),
          signature: await signAnswer(keys.signing.privateKey, activationMessage(view.id)),
          ...(label ? { label } : {}),
          ...(credential ? { credential } : {}),
        });
      } catch (error) {
        const usedUp = hasCode(error, 'ACTIVATION_PROOF_FAILED') && (error as ApiError).body.error.attemptsLeft === 0;
        if (hasCode(error, 'ACTIVATION_PROOF_FAILED') && !usedUp) {
          // a wrong recovery PIN (K8): type it again
          this.error(errorText(error));
          pinAgain = true;
        } else if (usedUp || hasCode(error, 'ACTIVATION_NOT_PROVEN', ...RESTART)) {
          this.restart();
          this.error(errorText(error));
        } else {
          this.error(errorText(error));
        }
        return;
      }
      try {
        const ocraKey = await deriveOcraKey(keys.agreement.privateKey, activated.serverKey, activated.salt);
        await saveEnrolment({
          username: activated.username,
          deviceId: activated.deviceId,
          appToken: activated.appToken,
          serverKey: activated.serverKey,
          salt: activated.salt,
          suite: activated.suite,
          biometric: activated.biometric,
          credentialId: activated.credentialId ?? (credential ? credential.rawId : null),
          rpId: credential ? view.webauthn.rp.id || null : null,
          signingKey: keys.signing.privateKey,
          agreementKey: keys.agreement.privateKey,
          ocraKey,
          activatedAt: new Date().toISOString(),
          revoked: false,
        });
      } catch {
        this.error(t('authenticator.errors.storage'));
        return;
      }
      for (const id of ['act-token', 'act-pin', 'act-pin-again']) input(id).value = '';
      input('act-biometric').checked = false;
      this.view = null;
      this.keys = null;
      this.notice('');
      byId('act-done-text').textContent = t('authenticator.activation.done', { username: activated.username });
      this.step('done');
      byId('act-finish').focus();
      await this.context.activated();
    });
    // once the form is enabled again: the recovery PIN to type again
    if (pinAgain) input('act-pin').select();
  }

  /** The activation is gone (expired, locked): from the user name and password again. */
  private restart(): void {
    this.view = null;
    this.keys = null;
    this.notice('');
    input('act-password').value = '';
    this.step('login');
    input('act-password').focus();
  }
}
