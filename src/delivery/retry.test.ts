import { describe, expect, it } from 'vitest';
import type { DeliveryProvider, OutgoingMessage } from './provider.js';
import { DeliveryError, backoffDelay, isRetryable, withRetry } from './retry.js';

const message: OutgoingMessage = { id: 'ntf_1', channel: 'sms', recipient: '+33612345678', subject: null, body: 'Your code is 123456', language: 'en' };

/** A provider failing with the given errors in turn, then succeeding. */
function scripted(errors: unknown[]): DeliveryProvider & { calls: number } {
  const provider = {
    name: 'scripted',
    channels: ['sms', 'voice'] as const,
    calls: 0,
    async deliver(): Promise<void> {
      provider.calls++;
      const error = errors.shift();
      if (error !== undefined) throw error;
    },
  };
  return provider;
}

const transient = (n: number) => new DeliveryError('scripted', `HTTP 503 #${n}`, { retryable: true, status: 503 });
const permanent = new DeliveryError('scripted', 'HTTP 400', { retryable: false, status: 400 });

function recordingSleep(): { sleep: (ms: number) => Promise<void>; waits: number[] } {
  const waits: number[] = [];
  return { waits, sleep: async (ms) => void waits.push(ms) };
}

describe('M7: retrying delivery', () => {
  it('M7: recovers after 2 retryable failures, waiting base then twice base', async () => {
    const provider = scripted([transient(1), transient(2)]);
    const { sleep, waits } = recordingSleep();
    await withRetry(provider, { attempts: 3, baseDelayMs: 100, sleep }).deliver(message);
    expect(provider.calls).toBe(3);
    expect(waits).toEqual([100, 200]);
  });

  it('M7: gives up after 3 attempts and rethrows the last error', async () => {
    const provider = scripted([transient(1), transient(2), transient(3), undefined]);
    const { sleep, waits } = recordingSleep();
    await expect(withRetry(provider, { attempts: 3, baseDelayMs: 50, sleep }).deliver(message)).rejects.toMatchObject({
      message: 'scripted: HTTP 503 #3',
      retryable: true,
    });
    expect(provider.calls).toBe(3);
    expect(waits).toEqual([50, 100]);
  });

  it('M7: a non-retryable error is rethrown at once', async () => {
    const provider = scripted([permanent]);
    const { sleep, waits } = recordingSleep();
    await expect(withRetry(provider, { baseDelayMs: 100, sleep }).deliver(message)).rejects.toBe(permanent);
    expect(provider.calls).toBe(1);
    expect(waits).toEqual([]);
  });

  it('M7: a retryable failure followed by a non-retryable one stops there', async () => {
    const provider = scripted([transient(1), permanent]);
    const { sleep } = recordingSleep();
    await expect(withRetry(provider, { baseDelayMs: 1, sleep }).deliver(message)).rejects.toBe(permanent);
    expect(provider.calls).toBe(2);
  });

  it('M7: errors that are not DeliveryErrors are not retried', async () => {
    const bug = new TypeError('bug');
    const provider = scripted([bug]);
    await expect(withRetry(provider, { baseDelayMs: 1, sleep: async () => undefined }).deliver(message)).rejects.toBe(bug);
    expect(provider.calls).toBe(1);
    expect(isRetryable(bug)).toBe(false);
  });

  it('M7: attempts default to 3, onRetry hears of each retry, name and channels are kept', async () => {
    const provider = scripted([transient(1), transient(2), transient(3)]);
    const heard: [number, number][] = [];
    const wrapped = withRetry(provider, { baseDelayMs: 10, sleep: async () => undefined, onRetry: (_e, attempt, delay) => heard.push([attempt, delay]) });
    expect(wrapped.name).toBe('scripted');
    expect(wrapped.channels).toEqual(['sms', 'voice']);
    await expect(wrapped.deliver(message)).rejects.toBeInstanceOf(DeliveryError);
    expect(provider.calls).toBe(3);
    expect(heard).toEqual([
      [1, 10],
      [2, 20],
    ]);
  });

  it('M7: the real sleep waits (small base delay)', async () => {
    const provider = scripted([transient(1)]);
    const started = Date.now();
    await withRetry(provider, { baseDelayMs: 30 }).deliver(message);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
  });

  it('M7: backoff doubles and bad options are refused', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(250, n))).toEqual([250, 500, 1000, 2000]);
    expect(() => withRetry(scripted([]), { attempts: 0, baseDelayMs: 1 })).toThrow(RangeError);
    expect(() => withRetry(scripted([]), { attempts: 1.5, baseDelayMs: 1 })).toThrow(RangeError);
    expect(() => withRetry(scripted([]), { baseDelayMs: -1 })).toThrow(RangeError);
  });
});
