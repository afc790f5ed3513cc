/**
 * A software FIDO2 authenticator for the API tests: an ES256 key of
 * node:crypto, registration responses with attestation "none" and
 * assertions (authenticatorData, clientDataJSON, signature) as a browser
 * gives them in WebAuthn's JSON. Its counter can be set to play a clone.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { expect } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { postJson } from './api.js';

type Cbor = number | string | Buffer | CborMap | { [key: string]: Cbor };
interface CborMap extends Map<number | string, Cbor> {}

function head(major: number, length: number): Buffer {
  if (length < 24) return Buffer.from([(major << 5) | length]);
  if (length < 256) return Buffer.from([(major << 5) | 24, length]);
  const b = Buffer.alloc(3);
  b[0] = (major << 5) | 25;
  b.writeUInt16BE(length, 1);
  return b;
}

/** The few CBOR shapes WebAuthn needs: small integers, text, bytes, maps. */
function cbor(value: Cbor): Buffer {
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'string') return Buffer.concat([head(3, Buffer.byteLength(value)), Buffer.from(value)]);
  if (Buffer.isBuffer(value)) return Buffer.concat([head(2, value.length), value]);
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
  return Buffer.concat([head(5, entries.length), ...entries.flatMap(([k, v]) => [cbor(k), cbor(v)])]);
}

const b64u = (b: Buffer): string => b.toString('base64url');
const sha256 = (data: Buffer | string): Buffer => createHash('sha256').update(data).digest();

export interface Where {
  origin: string;
  rpId: string;
}

export class SoftwareAuthenticator {
  readonly credentialId = randomBytes(32);
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  /** The signature counter: each assertion adds one first. */
  counter = 0;

  constructor(
    readonly aaguid = '5c5a2a9e-6b3e-4e1f-9a61-0d1f2e3c4b5a',
    readonly userVerified = true,
  ) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
  }

  get id(): string {
    return b64u(this.credentialId);
  }

  private flags(attested: boolean): number {
    return 0x01 | (this.userVerified ? 0x04 : 0) | (attested ? 0x40 : 0);
  }

  private coseKey(): Buffer {
    const jwk = this.publicKey.export({ format: 'jwk' });
    return cbor(
      new Map<number, Cbor>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x!, 'base64url')],
        [-3, Buffer.from(jwk.y!, 'base64url')],
      ]),
    );
  }

  private counterBytes(): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(this.counter);
    return b;
  }

  /** RegistrationResponseJSON for options of navigator.credentials.create. */
  register(options: { challenge: string }, where: Where): Record<string, unknown> {
    const clientDataJSON = Buffer.from(JSON.stringify({ type: 'webauthn.create', challenge: options.challenge, origin: where.origin, crossOrigin: false }));
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(this.credentialId.length);
    const authData = Buffer.concat([
      sha256(where.rpId),
      Buffer.from([this.flags(true)]),
      this.counterBytes(),
      Buffer.from(this.aaguid.replace(/-/g, ''), 'hex'),
      idLength,
      this.credentialId,
      this.coseKey(),
    ]);
    const attestationObject = cbor({ fmt: 'none', attStmt: new Map(), authData });
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      clientExtensionResults: {},
      response: { clientDataJSON: b64u(clientDataJSON), attestationObject: b64u(attestationObject), transports: ['usb'] },
    };
  }

  /** AuthenticationResponseJSON for options of navigator.credentials.get, as a string (the login's answer). */
  assert(options: { challenge: string }, where: Where, counter = this.counter + 1): string {
    this.counter = counter;
    const clientDataJSON = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge: options.challenge, origin: where.origin, crossOrigin: false }));
    const authData = Buffer.concat([sha256(where.rpId), Buffer.from([this.flags(false)]), this.counterBytes()]);
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), this.privateKey);
    return JSON.stringify({
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      clientExtensionResults: {},
      response: { clientDataJSON: b64u(clientDataJSON), authenticatorData: b64u(authData), signature: b64u(signature) },
    });
  }
}

/** X7: a key registered from the security settings of a stepped-up session (`session`'s headers); its device id. */
export async function registerSecurityKey(
  app: FastifyInstance,
  session: Record<string, string>,
  key: SoftwareAuthenticator,
  where: Where,
  name = 'Blue key',
): Promise<string> {
  const started = await postJson(app, '/api/v1/security-keys/registration', {}, session);
  const made = await postJson(
    app,
    '/api/v1/security-keys',
    { name, state: started.body.state, credential: key.register(started.body.options as { challenge: string }, where) },
    session,
  );
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  return made.body.id as string;
}
