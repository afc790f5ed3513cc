/**
 * What crosses the wire between the mobile authenticator and the server
 * (issue 12 item 5): the request and response bodies of /api/v1/mobile/*.
 * Types only, no runtime import: the app is compiled for the browser with
 * plain tsc, and the server checks its zod schemas against these types at
 * compile time (src/http/api/mobile-wire.ts), so a change on either side
 * without the other fails `npm run typecheck`.
 */
import type { PublicJwk, SealedMessage } from './protocol.js';

export type { PublicJwk, SealedMessage };

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
  | { type: 'index'; indexes: [number, number] }
  /** K7: a Platinum or Gold token: the code it shows, nothing to type into it. */
  | { type: 'otp'; digits: number }
  /** K7, D6: a security key: the options of navigator.credentials.get (base64url fields); its assertion, as JSON, is the response. */
  | { type: 'webauthn'; options: Record<string, unknown> };

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
  /** The activation token (or the device's response) was accepted: the PIN comes next. */
  proven: boolean;
  /** Options for navigator.credentials.create (base64url fields), for biometric confirmation. */
  webauthn: WebAuthnCreationOptions;
}

/** POST /mobile/activations: the activation, and its claim token (L8) that the token, proof and completion send in X-Claim-Token. */
export interface StartedActivation extends ActivationView {
  claimToken: string;
}

/** What the steps after the start name: the activation and its claim token (L8). */
export type ActivationClaim = Pick<StartedActivation, 'id' | 'claimToken'>;

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
export type WebAuthnRegistration = {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; attestationObject: string; transports?: string[] };
  clientExtensionResults: Record<string, unknown>;
  authenticatorAttachment?: string;
};

/** A WebAuthn assertion, base64url fields. */
export type WebAuthnAssertion = {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; authenticatorData: string; signature: string; userHandle?: string };
  clientExtensionResults: Record<string, unknown>;
  authenticatorAttachment?: string;
};

/** POST /mobile/activations/{id}/proof: the token or the device's response, and the keys that will finish. */
export interface ProveActivation {
  response: string;
  signingKey: PublicJwk;
  agreementKey: PublicJwk;
}

export interface CompleteActivation {
  pin: string;
  signingKey: PublicJwk;
  agreementKey: PublicJwk;
  /** The signing key's signature over activationMessage(id) (protocol.ts). */
  signature: string;
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
  error: { code: string; message: string; hints?: string[]; attemptsLeft?: number; stepUp?: string; details?: Record<string, string>; requestId?: string };
}

/** POST /mobile/activations */
export interface StartActivation {
  username: string;
  password: string;
  purpose: ActivationPurpose;
}

/** POST /mobile/activations/{id}/token */
export interface SendToken {
  phoneId: string;
}

/** POST /mobile/requests */
export interface PollRequest {
  devices: DeviceToken[];
  /** Seconds to wait for something new (at most 25). */
  wait: number;
}

/** POST /mobile/requests/{id} */
export interface AnswerResult {
  state: 'approved' | 'denied';
}

/** POST /mobile/push-subscription */
export interface SubscribeRequest extends DeviceToken {
  subscription: WebPushSubscription;
}

/** The answer of acknowledging a message and of subscribing. */
export interface Ok {
  ok: true;
}
