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

describe('signals on an SQLite file shared by two processes (K3, X4)', () => {
  it('K3/X4: waiters do not poll the file each; a write by another process (another connection, no signal sent here) wakes them through the change counter', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { openStore } = await import('../store/database.js');
    const { sql } = await import('kysely');
    const dir = mkdtempSync(join(tmpdir(), 'sls-signals-'));
    const here = openStore(join(dir, 'sls.db'));
    const other = openStore(join(dir, 'sls.db'));
    await sql`create table approvals (id text)`.execute(here.db);
    const signals = openSignals(here);
    let checks = 0;
    try {
      const waiting = signals.waitFor(['flow:z'], 8_000, async () => {
        checks += 1;
        const { rows } = await sql<{ id: string }>`select id from approvals`.execute(here.db);
        return rows[0]?.id ?? null;
      });
      // nothing changes: the waiter does not read the database again by itself every 2 s (one counter read per process does)
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(checks).toBe(1);
      // the other process approves and signals only its own waiters
      await sql`insert into approvals (id) values ('approved')`.execute(other.db);
      // found although nothing was published here and the waiter's own re-read (10 s) is beyond the timeout
      expect(await waiting).toBe('approved');
      expect(checks).toBe(2);
    } finally {
      await signals.close();
      await here.close();
      await other.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
