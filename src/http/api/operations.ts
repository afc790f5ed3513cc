/**
 * Liveness and readiness (X6): `/health` answers while the process runs;
 * `/ready` only while it can serve: its database reachable, its schema
 * current, and not stopping. A load balancer sends traffic by `/ready` and
 * restarts by `/health`.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SlsError } from '../../errors.js';
import type { Store } from '../../store/database.js';
import { migrationState } from '../../store/migrate.js';
import { ErrorSchema } from '../errors.js';

export interface OperationsDeps {
  store: Store;
  /** True once the server has begun to stop (SIGTERM). */
  stopping(): boolean;
}

export function operationsApi(deps: OperationsDeps): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();

    app.get(
      '/health',
      {
        schema: {
          operationId: 'getHealth',
          security: [],
          tags: ['operations'],
          summary: 'Liveness: the process runs',
          response: { 200: z.object({ status: z.literal('ok') }) },
        },
      },
      async () => ({ status: 'ok' as const }),
    );

    app.get(
      '/ready',
      {
        schema: {
          operationId: 'getReadiness',
          security: [],
          tags: ['operations'],
          summary: 'Readiness: the database answers, its schema is current, the server is not stopping',
          description:
            'Errors: 503 DATABASE_UNAVAILABLE (with Retry-After), 503 MIGRATIONS_PENDING (another process is migrating), ' +
            '503 SHUTTING_DOWN (the server received SIGTERM and finishes what is under way).',
          response: { 200: z.object({ status: z.literal('ready'), database: z.enum(['sqlite', 'postgres']) }), 503: ErrorSchema },
        },
      },
      async () => {
        if (deps.stopping()) throw new SlsError('SHUTTING_DOWN');
        const state = await migrationState(deps.store);
        if (state.pending.length > 0) throw new SlsError('MIGRATIONS_PENDING', { count: state.pending.length, retryAfterSeconds: 5 });
        return { status: 'ready' as const, database: deps.store.dialect };
      },
    );
  };
}
