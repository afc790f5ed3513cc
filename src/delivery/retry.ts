/**
 * Delivery failures and retries (M7, N1).
 *
 * Gateways throw a DeliveryError that says whether trying again may help:
 * rate limits, server errors, timeouts and network failures may; a refused
 * request (bad number, bad credentials, rejected recipient) will not.
 * Error messages name the provider and the status only: never a credential,
 * never the message text (it may hold a code).
 */
import type { DeliveryProvider, OutgoingMessage } from '../notify/notifier.js';

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
