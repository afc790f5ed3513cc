/**
 * Signals on PostgreSQL (K3): a waiter is never held by the listening
 * connection. Here the "database" accepts connections and never answers,
 * the worst case of a network fault: waiters still read the database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Store } from '../store/database.js';
import { openSignals } from './signals.js';

describe('signals over a PostgreSQL server that never answers (K3)', () => {
  let silent: Server;
  const sockets: Socket[] = [];
  let url: string;

  beforeAll(async () => {
    silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    url = `postgres://postgres@127.0.0.1:${(silent.address() as AddressInfo).port}/test`;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it('K3: a waiter reads the database again and gets its answer although the listening connection never opens', async () => {
    const signals = openSignals({ dialect: 'postgres', location: url } as Store);
    let checks = 0;
    const found = await signals.waitFor(['flow:x'], 20_000, async () => (++checks >= 2 ? 'approved' : null));
    expect(found).toBe('approved');
    expect(checks).toBe(2);
    await signals.close();
  });

  it('K3: a waiter whose client went away is let go at once', async () => {
    const signals = openSignals({ dialect: 'postgres', location: url } as Store);
    const abort = new AbortController();
    const waiting = signals.waitFor(['flow:y'], 20_000, async () => null, abort.signal);
    abort.abort();
    expect(await waiting).toBeNull();
    await signals.close();
  });
});
