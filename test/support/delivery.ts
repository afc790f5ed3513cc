/** Shared checks of the delivery provider tests (SMTP, the SMS gateway, Web Push). */
import { createServer, type AddressInfo } from 'node:net';
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

/** A port on 127.0.0.1 where nothing listens (it was free a moment ago): free to listen on, and connections to it are refused. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A port where connections are refused (a delivery that cannot connect). */
export const closedPort = freePort;
