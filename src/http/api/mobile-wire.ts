/**
 * The wire contract of the mobile authenticator (issue 12 item 5): the zod
 * schemas of /api/v1/mobile/* (./mobile.ts, which also make the OpenAPI
 * description) checked at compile time against the types the app is built
 * with (src/mobile-app/wire.ts). Types only: nothing here runs. A field
 * added, removed, renamed or retyped on one side without the other fails
 * `npm run typecheck` (tsconfig.check.json); test/mobile-wire.typecheck.ts
 * shows drifts being rejected.
 *
 * Where both sides are precise, the check is both ways (`Same`). Where the
 * server's schema is looser than the app's type, it is one way, in the
 * direction the data flows: a response the server's schema lets through
 * must be what the app expects (`Fits<server, app>`); a request the app
 * sends must pass the server's schema (`Fits<app, server>`).
 */
import type { z } from 'zod';
import type * as Wire from '../../mobile-app/wire.js';
import type { ActivationView as ServerActivationView } from '../../devices/mobile/enrolment.js';
import type { ErrorSchema } from '../errors.js';
import type {
  ActivatedSchema,
  ActivationSchema,
  StartedActivationSchema,
  AnswerBody,
  AnswerResultSchema,
  CompleteActivationBody,
  DeviceTokenSchema,
  OkSchema,
  PollBody,
  PollResultSchema,
  PublicJwkSchema,
  PushRequestSchema,
  SealedSchema,
  ProveActivationBody,
  SendTokenBody,
  StartActivationBody,
  SubscribeBody,
} from './mobile.js';

/** `A` is assignable to `B` (not distributed over unions). */
export type Fits<A, B> = [A] extends [B] ? true : false;

/**
 * `A` and `B` are assignable to each other and name the same properties, at
 * every level of objects and arrays (so an optional field on one side only
 * is caught too).
 */
export type Same<A, B> = [Fits<A, B>, Fits<B, A>, KeysWithin<A, B>, KeysWithin<B, A>] extends [true, true, true, true] ? true : false;

/**
 * Every property `A` names, at every level, `B` names too: nothing of `A`
 * would be dropped by a schema of the shape `B` (zod strips unknown keys).
 * `unknown` in `B` takes anything.
 */
export type KeysWithin<A, B> = unknown extends B ? true : false extends KeysWithinDefined<NonNullable<A>, NonNullable<B>> ? false : true;

type KeysWithinDefined<A, B> = A extends readonly (infer EA)[]
  ? B extends readonly (infer EB)[]
    ? KeysWithin<EA, EB>
    : false
  : A extends object
    ? B extends object
      ? [keyof A] extends [keyof B]
        ? { [K in keyof A]-?: KeysWithin<A[K], B[K & keyof B]> }[keyof A]
        : false
      : false
    : true;

/** Compiles only when `T` is `true`. */
export type Check<T extends true> = T;

type Out<S extends z.ZodType> = z.output<S>;
type In<S extends z.ZodType> = z.input<S>;

/** Every entry must be `true`; the type is exported so that no entry counts as unused. */
export type MobileWireContract = [
  // shared shapes
  Check<Same<Out<typeof PublicJwkSchema>, Wire.PublicJwk>>,
  Check<Same<Out<typeof DeviceTokenSchema>, Wire.DeviceToken>>,
  Check<Same<Out<typeof SealedSchema>, Wire.SealedMessage>>,
  Check<Same<Out<typeof PushRequestSchema>, Wire.PushRequest>>,
  Check<Same<Out<typeof ErrorSchema>, Wire.ApiErrorBody>>,
  // POST /mobile/activations and /mobile/activations/{id}/token
  Check<Same<In<typeof StartActivationBody>, Wire.StartActivation>>,
  Check<Same<In<typeof SendTokenBody>, Wire.SendToken>>,
  // POST /mobile/activations/{id}/proof
  Check<Same<In<typeof ProveActivationBody>, Wire.ProveActivation>>,
  // The schema describes `challenge` and `webauthn` loosely (any challenge
  // with a type; the WebAuthn options as @simplewebauthn types them), so:
  // the rest both ways; the app's challenge and WebAuthn options pass the
  // schema (nothing the app reads is dropped by the serialisation); and the
  // challenge the server builds is one the app expects.
  Check<Same<Omit<Out<typeof ActivationSchema>, 'challenge' | 'webauthn'>, Omit<Wire.ActivationView, 'challenge' | 'webauthn'>>>,
  Check<Fits<Wire.ActivationView, In<typeof ActivationSchema>>>,
  // POST /mobile/activations answers the activation with its claim token (L8)
  Check<Same<Omit<Out<typeof StartedActivationSchema>, 'challenge' | 'webauthn'>, Omit<Wire.StartedActivation, 'challenge' | 'webauthn'>>>,
  Check<Fits<Wire.StartedActivation, In<typeof StartedActivationSchema>>>,
  Check<Fits<ServerActivationView['challenge'], Wire.ActivationView['challenge']>>,
  Check<KeysWithin<Wire.WebAuthnCreationOptions, Out<typeof ActivationSchema>['webauthn']>>,
  // POST /mobile/activations/{id}/complete: the credential is any JSON object
  // to the schema (the WebAuthn library checks it), so the body is one way.
  Check<Same<Omit<Wire.CompleteActivation, 'credential'>, Omit<In<typeof CompleteActivationBody>, 'credential'>>>,
  Check<Fits<Wire.CompleteActivation, In<typeof CompleteActivationBody>>>,
  Check<KeysWithin<Wire.CompleteActivation, In<typeof CompleteActivationBody>>>,
  Check<Same<Out<typeof ActivatedSchema>, Wire.Activated>>,
  // POST /mobile/requests: `wait` has a default on the server, the app always sends it
  Check<Fits<Wire.PollRequest, In<typeof PollBody>>>,
  Check<Same<Out<typeof PollBody>, Wire.PollRequest>>,
  Check<Same<Out<typeof PollResultSchema>, Wire.PollResult>>,
  // POST /mobile/requests/{id}: the assertion is any JSON object to the schema
  Check<Same<Omit<Wire.PushAnswer, 'assertion'>, Omit<In<typeof AnswerBody>, 'assertion'>>>,
  Check<Fits<Wire.PushAnswer, In<typeof AnswerBody>>>,
  Check<KeysWithin<Wire.PushAnswer, In<typeof AnswerBody>>>,
  Check<Same<Out<typeof AnswerResultSchema>, Wire.AnswerResult>>,
  // POST /mobile/messages/{id}/ack and /mobile/push-subscription
  Check<Same<Out<ReturnType<typeof OkSchema>>, Wire.Ok>>,
  Check<Same<In<typeof SubscribeBody>, Wire.SubscribeRequest>>,
];
