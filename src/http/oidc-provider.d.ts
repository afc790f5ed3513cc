/**
 * The few parts of oidc-provider (which ships no types) that http/oidc.ts
 * uses; everything else is the library's configuration, passed as is.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface KoaContext {
    cookies: {
      get(name: string, options?: { signed?: boolean }): string | undefined;
      set(
        name: string,
        value: string,
        options: { path: string; httpOnly: boolean; secure: boolean; sameSite: 'lax'; signed: boolean; overwrite: boolean; maxAge: number },
      ): void;
    };
    status: number;
    /** Koa's response: its headers as set so far. */
    response: { get(header: string): string };
    redirect(url: string): void;
    oidc?: {
      route?: string;
      params?: Record<string, unknown>;
      client?: { clientId: string; sls_app?: string; [key: string]: unknown };
      session?: ProviderSession;
      /** The interaction's result on its resume; `slsSessionId`: the session of ours whose login finished it (http/oidc.ts). */
      result?: { consent?: { grantId?: string }; slsSessionId?: string };
      acr?: string;
      provider: Provider;
      [key: string]: unknown;
    };
    [key: string]: unknown;
  }

  /** The provider's session (a Session model): whose it is, the grant given to each client. */
  export interface ProviderSession {
    uid: string;
    accountId?: string;
    acr?: string;
    grantIdFor(clientId: string): string | undefined;
    grantIdFor(clientId: string, grantId: string): undefined;
    /** The sid the client is told for this session (in its ID token and logout token); with a value: sets it. */
    sidFor(clientId: string, value?: string): string | undefined;
    /** The client's entry in the session (its sid), made when missing. */
    ensureClientContainer(clientId: string): void;
    /** Stores the session for `ttl` seconds (the provider's own save happens after its response). */
    save(ttl: number): Promise<string>;
    /** Changed since loaded: the provider saves it (and sets its cookie) at the end of the request. */
    touched?: boolean;
  }

  export interface InteractionDetails {
    uid: string;
    iat: number;
    exp: number;
    params: Record<string, string | undefined>;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    session?: { accountId?: string; uid?: string };
    returnTo: string;
    /** RFC 8628: the device code this interaction approves (a device authorization grant). */
    deviceCode?: string;
  }

  export interface GrantInstance {
    jti?: string;
    addOIDCScope(scope: string): void;
    save(): Promise<string>;
  }

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    /** The request the provider is answering (an AsyncLocalStorage of the library's), if any. */
    static readonly ctx: KoaContext | undefined;
    proxy: boolean;
    /** Koa's request prototype of this app (its `secure` getter decides whether its cookies may be Secure). */
    request: object;
    issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    use(middleware: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    Interaction: {
      find(id: string): Promise<{ params: Record<string, unknown> } | undefined>;
    };
    Grant: {
      new (properties: { clientId: string; accountId: string }): GrantInstance;
      find(id: string): Promise<GrantInstance | undefined>;
    };
  }

  export class Check {
    constructor(reason: string, description: string, check: (ctx: KoaContext) => boolean | Promise<boolean>);
    /** `error`: what the client is answered when the check asks for a prompt under prompt=none (else interaction_required). */
    constructor(reason: string, description: string, error: string, check: (ctx: KoaContext) => boolean | Promise<boolean>);
    static REQUEST_PROMPT: true;
    static NO_NEED_TO_PROMPT: false;
  }

  export interface Prompt {
    name: string;
    checks: Check[] & { add(check: Check, index?: number): void };
  }

  export interface Policy extends Array<Prompt> {
    get(name: string): Prompt | undefined;
    remove(name: string): void;
  }

  export const interactionPolicy: { base(): Policy; Check: typeof Check };
  export const errors: Record<string, new (description?: string) => Error>;
  export default Provider;
}
