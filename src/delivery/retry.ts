/**
 * Delivery failures and retries (M7, N1).
 *
 * Gateways throw a DeliveryError that says whether trying again may help:
 * rate limits, server errors, timeouts and network failures may; a refused
 * request (bad number, bad credentials, rejected recipient) will not.
 * Error messages name the provider and the status only: never a credential,
 * never the message text (it may hold a code).
 */
import type { DeliveryProvider, OutgoingMessage } from './provider.js';

export interface DeliveryErrorDetails {
  /** Whether the same request may succeed later. */
  retryable: boolean;
  /** HTTP status (Twilio) or SMTP reply code, when the gateway answered. */
  status?: number;
  /** The gateway's own error code (Twilio error number, SMTP enhanced status, Node error code). */
  code?: string;
}

export class DeliveryError extends Error {
  readonly provider: string;
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly code: string | undefined;

  constructor(provider: string, message: string, details: DeliveryErrorDetails) {
    super(`${provider}: ${message}`);
    this.name = 'DeliveryError';
    this.provider = provider;
    this.retryable = details.retryable;
    this.status = details.status;
    this.code = details.code;
  }
}

export function isDeliveryError(e: unknown): e is DeliveryError {
  return e instanceof DeliveryError;
}

/** Only a DeliveryError marked retryable is worth another attempt. */
export function isRetryable(e: unknown): boolean {
  return isDeliveryError(e) && e.retryable;
}

export interface RetryOptions {
  /** Attempts in all, the first included (default 3). */
  attempts?: number;
  /** Wait before the second attempt; doubled before each further one. */
  baseDelayMs: number;
  /** How to wait; tests pass one that does not. */
  sleep?: (ms: number) => Promise<void>;
  /** Told of each failed attempt that will be retried (for logging; the error holds no secret). */
  onRetry?: (error: DeliveryError, attempt: number, delayMs: number) => void;
}

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Delay before attempt `attempt + 1` after `attempt` failures (1-based): base, 2·base, 4·base, … */
export function backoffDelay(baseDelayMs: number, attempt: number): number {
  return baseDelayMs * 2 ** (attempt - 1);
}

/**
 * Wraps a provider so retryable failures are tried again with exponential
 * backoff; a non-retryable error is rethrown at once, and the last error
 * when the attempts run out. Same name and channels as the wrapped provider.
 */
export function withRetry(provider: DeliveryProvider, options: RetryOptions): DeliveryProvider {
  const attempts = options.attempts ?? 3;
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError('attempts must be a positive integer');
  if (!(options.baseDelayMs >= 0)) throw new RangeError('baseDelayMs must be zero or more');
  const sleep = options.sleep ?? realSleep;
  return {
    name: provider.name,
    channels: provider.channels,
    async deliver(message: OutgoingMessage): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        try {
          await provider.deliver(message);
          return;
        } catch (error) {
          if (!isRetryable(error) || attempt >= attempts) throw error;
          const delay = backoffDelay(options.baseDelayMs, attempt);
          options.onRetry?.(error as DeliveryError, attempt, delay);
          await sleep(delay);
        }
      }
    },
  };
}

/** A system error code (ECONNREFUSED, …) from a fetch failure; its message is not used. */
function networkCode(error: unknown): string {
  let e: unknown = error;
  for (let depth = 0; depth < 4 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return 'EUNKNOWN';
}

/**
 * One HTTP request to a gateway, its answer read by `read` under the same
 * deadline. No redirects. A timeout or a network failure becomes a
 * retryable DeliveryError that names only its kind (never the request).
 */
export async function requestWithDeadline<T>(
  provider: string,
  url: string | URL,
  init: RequestInit,
  timeoutMs: number,
  read: (response: Response) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    return await read(await fetch(url, { ...init, signal: controller.signal, redirect: 'error' }));
  } catch (error) {
    if (error instanceof DeliveryError) throw error;
    if (controller.signal.aborted) throw new DeliveryError(provider, `no answer within ${timeoutMs} ms`, { retryable: true, code: 'ETIMEDOUT' });
    throw new DeliveryError(provider, `network error (${networkCode(error)})`, { retryable: true, code: networkCode(error) });
  } finally {
    clearTimeout(timer);
  }
}
