/**
 * The mobile authenticator's calls to the server (docs/decisions/0004):
 * the wire formats (./wire.ts, re-exported here) and a small fetch client. The web app uses it, and so do
 * the tests' second phone in Node.
 */
import type {
  Activated,
  ActivationClaim,
  ActivationPurpose,
  ActivationView,
  AnswerResult,
  ApiErrorBody,
  CompleteActivation,
  DeviceToken,
  Ok,
  PollRequest,
  PollResult,
  ProveActivation,
  PushAnswer,
  SendToken,
  StartActivation,
  StartedActivation,
  SubscribeRequest,
  WebPushSubscription,
} from './wire.js';

export type * from './wire.js';

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

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal, claimToken?: string): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (claimToken !== undefined) headers['x-claim-token'] = claimToken;
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

  /** The activation and its claim token (L8): the later steps name both, and answer the activation with the same claim token. */
  startActivation(username: string, password: string, purpose: ActivationPurpose): Promise<StartedActivation> {
    return this.call('POST', '/mobile/activations', { username, password, purpose } satisfies StartActivation);
  }

  /** Sends the activation token to a number on record. */
  async sendToken(activation: ActivationClaim, to: SendToken): Promise<StartedActivation> {
    const view = await this.call<ActivationView>('POST', `/mobile/activations/${activation.id}/token`, to, undefined, activation.claimToken);
    return { ...view, claimToken: activation.claimToken };
  }

  /** The activation token (or the device's response), checked before the PIN is chosen. */
  async proveActivation(activation: ActivationClaim, input: ProveActivation): Promise<StartedActivation> {
    const view = await this.call<ActivationView>('POST', `/mobile/activations/${activation.id}/proof`, input, undefined, activation.claimToken);
    return { ...view, claimToken: activation.claimToken };
  }

  completeActivation(activation: ActivationClaim, input: CompleteActivation): Promise<Activated> {
    return this.call('POST', `/mobile/activations/${activation.id}/complete`, input, undefined, activation.claimToken);
  }

  /** The live connection: pending requests and messages, waiting up to `wait` seconds for new ones. */
  poll(devices: DeviceToken[], wait: number, signal?: AbortSignal): Promise<PollResult> {
    return this.call('POST', '/mobile/requests', { devices, wait } satisfies PollRequest, signal);
  }

  answer(requestId: string, answer: PushAnswer): Promise<AnswerResult> {
    return this.call('POST', `/mobile/requests/${requestId}`, answer);
  }

  acknowledge(messageId: string, device: DeviceToken): Promise<Ok> {
    return this.call('POST', `/mobile/messages/${messageId}/ack`, device);
  }

  /** Where the phone's push service wakes the closed app for this user (a Web Push subscription, K3). */
  subscribe(device: DeviceToken, subscription: WebPushSubscription): Promise<Ok> {
    return this.call('POST', '/mobile/push-subscription', { ...device, subscription } satisfies SubscribeRequest);
  }
}
