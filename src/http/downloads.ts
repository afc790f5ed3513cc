import type { FastifyReply } from 'fastify';

/** The printable online card as a file to save (S2): never cached. */
export function sendCardFile(reply: FastifyReply, format: 'pdf' | 'png', body: Buffer): FastifyReply {
  return reply
    .header('cache-control', 'no-store')
    .header('content-disposition', `attachment; filename="online-security-card.${format}"`)
    .type(format === 'pdf' ? 'application/pdf' : 'image/png')
    .send(body);
}

/** Times on printed cards, the same in every language: 2026-01-05 09:00 UTC. */
export function printedTime(ms: number): string {
  return `${new Date(ms).toISOString().replace('T', ' ').slice(0, 16)} UTC`;
}
