/** Shared checks of the delivery provider tests. */
import { expect } from 'vitest';
import { DeliveryError } from '../../src/delivery/retry.js';

/** The DeliveryError a delivery fails with; the test fails if it succeeds or fails otherwise. */
export async function deliveryFailure(promise: Promise<unknown>): Promise<DeliveryError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DeliveryError);
    return error as DeliveryError;
  }
  throw new Error('delivery succeeded');
}
