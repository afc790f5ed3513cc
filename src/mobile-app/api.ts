/**
 * The mobile authenticator's calls to the server (docs/decisions/0004):
 * the wire formats and a small fetch client. The web app uses it, and so do
 * the tests' second phone in Node.
 */
import type { PublicJwk, SealedMessage } from './protocol.js';

export type ActivationPurpose = 'activate' | 'migrate' | 'recover';

export interface PhoneChoice {
  id: string;
  /** Masked (M6). */
  number: string;
  verified: boolean;
}

/** The challenge shown in an activation: the SMS sent, or the physical device's challenge. */
export type ActivationChallenge =
  | { type: 'sms'; to: string; channel: 'sms' | 'voice'; delivery: 'sent' | 'failed' | 'limited'; resendAfter: string; digits: number }
  | { type: 'ocra'; question: string; digits: number }
  | { type: 'index'; indexes: [number, number] };

export interface ActivationView {
  id: string;
  purpose: ActivationPurpose;
  username: string;
  /** How the user proves possession: an SMS token to a number on record, or the physical device's answer (X7). */
  proof: 'sms' | 'device';
  /** The numbers on record the token may go to. */
  phones: PhoneChoice[];
  challenge: ActivationChallenge | null;
  expiresAt: string;
  attemptsLeft: number;
  /** Options for navigator.credentials.create (base64url fields), for biometric confirmation. */
  webauthn: WebAuthnCreationOptions;
}

export interface WebAuthnCreationOptions {
  challenge: string;
  rp: { id: string; name: string };
  user: { id: string; name: string; displayName: string };
  pubKeyCredParams: { type: 'public-key'; alg: number }[];
  timeout: number;
  authenticatorSelection: { authenticatorAttachment: 'platform'; userVerification: 'required'; residentKey: 'discouraged' };
  attestation: 'none';
}

/** A WebAuthn registration response, base64url fields (as @simplewebauthn names them). */
export interface WebAuthnRegistration {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; attestationObject: string; transports?: string[] };
  clientExtensionResults: Record<string, unknown>;
  authenticatorAttachment?: string;
}

/** A WebAuthn assertion, base64url fields. */
export interface WebAuthnAssertion {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; authenticatorData: string; signature: string; userHandle?: string };
  clientExtensionResults: Record<string, unknown>;
  authenticatorAttachment?: string;
}

export interface CompleteActivation {
  response: string;
  pin: string;
  signingKey: PublicJwk;
  agreementKey: PublicJwk;
  label?: string;
  credential?: WebAuthnRegistration;
}

export interface Activated {
  deviceId: string;
  username: string;
  serverKey: PublicJwk;
  salt: string;
  suite: string;
  /** Authenticates the app's live connection for this user; kept on the phone. */
  appToken: string;
  /** Whether approvals are confirmed by biometric (WebAuthn) rather than the PIN. */
  biometric: boolean;
  /** The WebAuthn credential id (base64url) when biometric. */
  credentialId: string | null;
}

export interface PushRequest {
  id: string;
  deviceId: string;
  username: string;
  kind: 'login' | 'step_up';
  app: 'portal' | 'trading';
  ip: string | null;
  requestedAt: string;
  expiresAt: string;
  /** The 8-digit question whose OCRA response, with the PIN, proves the PIN (K2). */
  question: string;
}

export interface AppMessage {
  id: string;
  deviceId: string;
  kind: 'temporary_password';
  createdAt: string;
  sealed: SealedMessage;
}

export interface PollResult {
  requests: PushRequest[];
  messages: AppMessage[];
  /** Devices whose activation no longer works (migrated to another phone, revoked). */
  revoked: string[];
}

export interface DeviceToken {
  deviceId: string;
  token: string;
}

export interface PushAnswer extends DeviceToken {
  decision: 'approve' | 'deny';
  number: string;
  proof: string;
  signature: string;
  assertion?: WebAuthnAssertion;
}

/** A Web Push subscription as PushSubscription.toJSON() gives it. */
export interface WebPushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface ApiErrorBody {
  error: { code: string; message: string; hints?: string[]; attemptsLeft?: number; retryAfter?: string };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(body.error.message);
  }

  get code(): string {
    return this.body.error.code;
  }
}

export class AuthenticatorApi {
  /** @param base the server's address ('' for the page's own origin). */
  constructor(
    private readonly base: string = '',
    private readonly language?: string,
  ) {}

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.language) headers['accept-language'] = this.language;
    const response = await fetch(`${this.base}/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal ?? null,
    });
    const text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : {};
    if (!response.ok) throw new ApiError(response.status, parsed as ApiErrorBody);
    return parsed as T;
  }

  startActivation(username: string, password: string, purpose: ActivationPurpose): Promise<ActivationView> {
    return this.call('POST', '/mobile/activations', { username, password, purpose });
  }

  /** Sends the activation token to a number on record, or to a number added here. */
  sendToken(activationId: string, to: { phoneId: string }): Promise<ActivationView> {
    return this.call('POST', `/mobile/activations/${activationId}/token`, to);
  }

  completeActivation(activationId: string, input: CompleteActivation): Promise<Activated> {
    return this.call('POST', `/mobile/activations/${activationId}/complete`, input);
  }

  /** The live connection: pending requests and messages, waiting up to `wait` seconds for new ones. */
  poll(devices: DeviceToken[], wait: number, signal?: AbortSignal): Promise<PollResult> {
    return this.call('POST', '/mobile/requests', { devices, wait }, signal);
  }

  answer(requestId: string, answer: PushAnswer): Promise<{ state: 'approved' | 'denied' }> {
    return this.call('POST', `/mobile/requests/${requestId}`, answer);
  }

  acknowledge(messageId: string, device: DeviceToken): Promise<{ ok: true }> {
    return this.call('POST', `/mobile/messages/${messageId}/ack`, device);
  }

  /** Where the phone's push service wakes the closed app for this user (a Web Push subscription, K3). */
  subscribe(device: DeviceToken, subscription: WebPushSubscription): Promise<{ ok: true }> {
    return this.call('POST', '/mobile/push-subscription', { ...device, subscription });
  }
}
