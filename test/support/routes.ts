/**
 * The app's own route table (test/bad-input, test/fuzz-api, the step-up
 * sweep): every route it serves, so that a test walks them all and a new
 * one is never forgotten.
 */
import type { FastifyInstance } from 'fastify';

/** The app's routes as Fastify prints them: method and pattern. */
export function routesOf(app: FastifyInstance): { method: string; url: string }[] {
  const segments: string[] = [];
  const found: { method: string; url: string }[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:[│ ]{4})*)(?:[├└]── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    segments.length = depth;
    segments[depth] = m[2]!;
    const url = segments.join('');
    for (const method of (m[3] ?? '').split(', ').filter(Boolean)) found.push({ method, url });
  }
  return found;
}
