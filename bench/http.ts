/**
 * The load generator's HTTP client: keep-alive connections to the one
 * origin on 127.0.0.1. By default node:http with a keep-alive Agent (undici
 * is not installed); BENCH_CLIENT=fetch uses node's built-in fetch instead.
 * The client shares the 2 cores with the server, and fetch costs about
 * twice the CPU per request (0.30 against 0.07-0.15 ms measured here): with
 * it, GET /api/v1/health measures the client rather than the server
 * (docs/benchmarks.md).
 */
import http from 'node:http';

export interface Reply {
  status: number;
  body: string;
}

export type ClientName = 'fetch' | 'http';

export const CLIENT: ClientName = process.env.BENCH_CLIENT === 'fetch' ? 'fetch' : 'http';

const HEADERS = { 'accept-language': 'en' };
const JSON_HEADERS = { ...HEADERS, 'content-type': 'application/json' };

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function viaHttp(url: string, method: 'GET' | 'POST', body?: string, extra: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method, agent, headers: { ...(body === undefined ? HEADERS : { ...JSON_HEADERS, 'content-length': Buffer.byteLength(body) }), ...extra } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function postJson(url: string, value: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const body = JSON.stringify(value);
  if (CLIENT === 'http') return viaHttp(url, 'POST', body, headers);
  const res = await fetch(url, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body });
  return { status: res.status, body: await res.text() };
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  if (CLIENT === 'http') return viaHttp(url, 'GET', undefined, headers);
  const res = await fetch(url, { headers: { ...HEADERS, ...headers } });
  return { status: res.status, body: await res.text() };
}

/** Closes idle keep-alive connections so the process can exit. */
export function closeClient(): void {
  agent.destroy();
}

/** The body as JSON, or undefined when it is not JSON. */
export function parse<T>(reply: Reply): T | undefined {
  try {
    return JSON.parse(reply.body) as T;
  } catch {
    return undefined;
  }
}

export function describe(reply: Reply): string {
  return `HTTP ${reply.status} ${reply.body.slice(0, 200)}`;
}
