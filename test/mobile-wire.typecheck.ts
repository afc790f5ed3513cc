/**
 * Issue 12 item 5: a drift between the server's schemas and the app's wire
 * types fails the build. Type-checked by `npm run typecheck`
 * (tsconfig.check.json), never run: each `@ts-expect-error` below is itself
 * an error if the check under it stops rejecting the drift it shows.
 */
import { z } from 'zod';
import type { Check, Fits, KeysWithin, Same } from '../src/http/api/mobile-wire.js';
import { type ActivationSchema, type AnswerBody, PushRequestSchema, type StartedActivationSchema } from '../src/http/api/mobile.js';
import type * as Wire from '../src/mobile-app/wire.js';

type PushRequestOut = z.output<typeof PushRequestSchema>;
// drifts of the server's schema, made with zod as a route would
const WithField = PushRequestSchema.extend({ approvedAt: z.string() });
const WithoutField = PushRequestSchema.omit({ question: true });
const Retyped = PushRequestSchema.extend({ kind: z.enum(['login', 'step_up', 'transfer']) });

export type WireDrifts = [
  // the real pair agrees
  Check<Same<PushRequestOut, Wire.PushRequest>>,
  // the server sends a field the app does not know
  // @ts-expect-error
  Check<Same<z.output<typeof WithField>, Wire.PushRequest>>,
  // the server stops sending a field the app reads
  // @ts-expect-error
  Check<Same<z.output<typeof WithoutField>, Wire.PushRequest>>,
  // the server widens a field's values
  // @ts-expect-error
  Check<Same<z.output<typeof Retyped>, Wire.PushRequest>>,
  // ... which also breaks the one-way check (server output to the app's type)
  // @ts-expect-error
  Check<Fits<z.output<typeof Retyped>, Wire.PushRequest>>,
  // the app expects a field more, required or optional
  // @ts-expect-error
  Check<Same<PushRequestOut, Wire.PushRequest & { approvedAt: string }>>,
  // @ts-expect-error
  Check<Same<PushRequestOut, Wire.PushRequest & { approvedAt?: string }>>,
  // the app narrows a field's values
  // @ts-expect-error
  Check<Same<PushRequestOut, Omit<Wire.PushRequest, 'kind'> & { kind: 'login' }>>,
  // a request: the app sends a field the server's schema would drop
  Check<KeysWithin<Wire.PushAnswer, z.input<typeof AnswerBody>>>,
  // @ts-expect-error
  Check<KeysWithin<Wire.PushAnswer & { remember?: boolean }, z.input<typeof AnswerBody>>>,
  // ... or leaves out one it requires
  // @ts-expect-error
  Check<Fits<Omit<Wire.PushAnswer, 'signature'>, z.input<typeof AnswerBody>>>,
  // L8: the start of an activation answers its claim token, which the app keeps for the later steps
  Check<Same<Omit<z.output<typeof StartedActivationSchema>, 'challenge' | 'webauthn'>, Omit<Wire.StartedActivation, 'challenge' | 'webauthn'>>>,
  // ... a server that stops sending it is a drift
  // @ts-expect-error
  Check<Same<Omit<z.output<typeof ActivationSchema>, 'challenge' | 'webauthn'>, Omit<Wire.StartedActivation, 'challenge' | 'webauthn'>>>,
];
