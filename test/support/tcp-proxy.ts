/**
 * A TCP relay in front of the real PostgreSQL server, for outage tests (X4):
 * `down()` ends every connection through it and refuses new ones, as a
 * database restart or failover does; `up()` lets connections through again.
 * The database itself is untouched, so other suites running at the same
 * time keep their connections.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** The proxy's address as host:port. */
  host: string;
  port: number;
  /** Ends every open connection and refuses new ones until `up()`. */
  down(): void;
  up(): void;
  /** Ends every open connection once; new ones are accepted (pg_terminate_backend). */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let refusing = false;
  const endAll = (): void => {
    for (const socket of open) socket.destroy();
    open.clear();
  };
  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    open.add(client);
    open.add(upstream);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    host: '127.0.0.1',
    port,
    down: () => {
      refusing = true;
      endAll();
    },
    up: () => {
      refusing = false;
    },
    cut: endAll,
    close: () =>
      new Promise<void>((resolve) => {
        endAll();
        server.close(() => resolve());
      }),
  };
}

/** The database URL with its host and port replaced by the proxy's. */
export function throughProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = proxy.host;
  u.port = String(proxy.port);
  return u.toString();
}
