/**
 * I1: the OpenID Provider (oidc-provider, a Koa app) mounted in our Fastify
 * server under /oidc, its issuer SLS_PUBLIC_URL (discovery also at the
 * issuer's own /.well-known/openid-configuration). Its requests are handed
 * to the provider untouched (our body parsers, CSP and JSON error handler
 * stay away from them); a confidential client's secret is replaced by its
 * keyed digest on the way in, so only digests are stored.
 *
 * The interaction is our login: /oidc/interaction/:uid sends the browser to
 * the login page (the client's app), the step-up (V1) when the request asks
 * for a fresh or stronger proof (prompt=login, max_age, acr_values), and
 * finishes with what the session proved (acr, amr, auth_time).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Check as CheckType, InteractionDetails, KoaContext, Provider as ProviderType } from 'oidc-provider';
import type { Config } from '../config.js';
import type { Services } from '../services.js';
import { SlsError } from '../errors.js';
import { translator } from '../i18n/i18n.js';
import { ACR_VALUES, TOKEN_LIFETIME_S, acrOf, acrRank, requiredAcrRank } from '../oidc/claims.js';
import { adapterClass, DEVICE_POLL_INTERVAL_S, type ClientMetadata } from '../oidc/adapter.js';
import type { Session } from '../sessions/sessions.js';
import { cookieNames, requestMeta, sessionCookieOf } from './session-cookie.js';
import type { PageRenderer } from './web/render.js';
import type { SessionGuard } from './session-guard.js';
import { deviceFlowPages, escapeHtml, languageOf as pageLanguage, page, type PageContext } from './oidc-pages.js';

const UID_FORMAT = /^[A-Za-z0-9_-]{1,64}$/;
export const OIDC_PREFIX = '/oidc';
/** How often a process looks for signing keys rotated by another (multi-process). */
const KEY_CHECK_MS = 1_000;

const SCOPES = ['openid', 'offline_access', 'profile', 'email', 'sls.entitlements'];
/** RFC 8628: the grant type a device polls the token endpoint with. */
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** RFC 8628: how long a device's code may wait for the user (and the user's code be typed). */
const DEVICE_CODE_TTL_S = 600;
/** How long an authorization (or a device approval) may wait for our login. */
const INTERACTION_TTL_S = 3600;
/** Where the provider sends a browser to our login (decision 0037: the browser is recorded with the interaction). */
const INTERACTION_LOCATION = /\/oidc\/interaction\/([A-Za-z0-9_-]{1,64})$/;
/** A browser's cookie as we make it (24 random bytes). */
const BROWSER_FORMAT = /^[A-Za-z0-9_-]{32}$/;

/**
 * The interaction to go back to after a login, once (the cookie is cleared): the browser's interaction waiting for our
 * login, under `cookieNames(config).oidcReturn` (`__Host-` when cookies are Secure: no sibling subdomain plants one).
 */
export function oidcReturn(request: FastifyRequest, reply: FastifyReply, config: Pick<Config, 'cookieSecure'>): string | null {
  const name = cookieNames(config).oidcReturn;
  const uid = request.cookies[name];
  if (!uid) return null;
  reply.clearCookie(name, { path: '/', httpOnly: true, secure: config.cookieSecure, sameSite: 'lax' });
  return UID_FORMAT.test(uid) ? `${OIDC_PREFIX}/interaction/${uid}` : null;
}

/** Builds the provider, and builds it again when the signing keys changed (a rotation here or by another process). */
export class ProviderHost {
  private built: { provider: ProviderType; fingerprint: string } | null = null;
  private checkedAt = 0;
  private building: Promise<ProviderType> | null = null;

  constructor(
    private readonly services: Services,
    private readonly log?: { error(details: object, message: string): void },
  ) {}

  async current(): Promise<ProviderType> {
    const now = Date.now();
    if (this.built && now - this.checkedAt < KEY_CHECK_MS) return this.built.provider;
    if (this.building) return this.building;
    this.building = (async () => {
      try {
        const fingerprint = await this.services.oidc.keys.fingerprint();
        this.checkedAt = Date.now();
        if (this.built && this.built.fingerprint === fingerprint) return this.built.provider;
        const keys = await this.services.oidc.keys.published();
        const provider = await this.build(keys);
        this.built = { provider, fingerprint: keys.map((k) => k.kid).join(',') };
        return provider;
      } finally {
        this.building = null;
      }
    })();
    return this.building;
  }

  private async clientMetadata(clientId: string): Promise<ClientMetadata | undefined> {
    const client = await this.services.oidc.clients.find(clientId);
    if (!client) return undefined;
    return {
      client_id: client.clientId,
      client_name: client.name,
      ...(client.secretDigest === null
        ? { token_endpoint_auth_method: 'none' }
        : { client_secret: this.services.oidc.clients.providerSecret(client.secretDigest), token_endpoint_auth_method: 'client_secret_basic' }),
      redirect_uris: client.redirectUris,
      post_logout_redirect_uris: client.postLogoutRedirectUris,
      grant_types: [...(client.redirectUris.length > 0 ? ['authorization_code'] : []), ...(client.deviceGrant ? [DEVICE_CODE_GRANT] : []), 'refresh_token'],
      response_types: client.redirectUris.length > 0 ? ['code'] : [],
      ...(client.backchannelLogoutUri ? { backchannel_logout_uri: client.backchannelLogoutUri, backchannel_logout_session_required: true } : {}),
      sls_app: client.app,
    };
  }

  private async build(keys: object[]): Promise<ProviderType> {
    const services = this.services;
    const { config, sessions, clock, store } = services;
    const { default: Provider, interactionPolicy, errors } = await import('oidc-provider');
    const names = cookieNames(config);
    const { Check } = interactionPolicy;
    /** The provider's own pages (logout, errors) in the browser's language. */
    const languageOf = (ctx: { get(header: string): string }) => pageLanguage(ctx, config.defaultLanguage);

    /** L8: the longest a session of the client's application may last, in seconds. */
    const appMaxSeconds = (client: { sls_app?: string } | undefined): number =>
      Math.ceil((client?.sls_app === 'trading' ? config.policy.tradingMaxMs : config.policy.portalMaxMs) / 1000);

    /**
     * L8: the access of a portal client's access token is at most half a portal session's idle time, so that a
     * client refreshing when it expires (the application in use, which keeps our session alive) comes in time
     */
    const accessTokenSeconds = (client: { sls_app?: string } | undefined): number =>
      client?.sls_app === 'portal' ? Math.min(TOKEN_LIFETIME_S, Math.floor(config.policy.portalIdleMs / 2000)) : TOKEN_LIFETIME_S;

    /** L8: a token works only while its user is active and the session of ours under it lives (idle time included). */
    const tokenLives = async (token: { accountId?: string; sessionUid?: string; grantId?: string }, renew: boolean): Promise<boolean> => {
      const user = token.accountId ? await services.users.get(token.accountId).catch(() => null) : null;
      if (user?.status !== 'active') return false;
      return token.sessionUid === undefined || services.oidc.standsOnLiveSession(token.sessionUid, { renew, grantId: token.grantId });
    };

    /** The provider session's lifetime, in seconds: the longest session of ours. */
    const sessionSeconds = Math.ceil(Math.max(config.policy.portalMaxMs, config.policy.tradingMaxMs) / 1000);

    const slsSessionOf = async (ctx: KoaContext): Promise<Session | null> => {
      const token = ctx.cookies.get(cookieNames(config).session, { signed: false });
      return token ? sessions.authenticate(token) : null;
    };

    const policy = interactionPolicy.base();
    // first-party clients: no consent screen (the grant is made in loadExistingGrant)
    policy.remove('consent');
    const login = policy.get('login')!;
    // OIDC Core §3.1.2.6: each check of ours asks for a login (the user authenticates again), so under prompt=none the
    // client is answered login_required, as for the library's own checks of the login prompt (a check added to a
    // prompt after it was built would answer interaction_required)
    const LOGIN_REQUIRED = 'login_required';
    // the provider's session stands on ours: logged out, expired, another user here, or another session of the same
    // user (opened since with another device, or limited: T3, A5) → the interaction, which checks what this one proved
    login.checks.add(
      new Check('sls_session', 'the Secure Login session ended', LOGIN_REQUIRED, async (ctx) => {
        const session = await slsSessionOf(ctx);
        const providerSession = ctx.oidc?.session;
        const app = ctx.oidc?.client?.sls_app;
        if (session === null || providerSession?.uid === undefined || session.userId !== providerSession.accountId || session.app !== app) {
          return Check.REQUEST_PROMPT;
        }
        // the resume of an interaction this session just finished (linked once the resume is done), or a later request on it
        if (ctx.oidc?.result?.slsSessionId === session.id) return Check.NO_NEED_TO_PROMPT;
        return (await services.oidc.standsOn(providerSession.uid, session.id)) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
      }) as CheckType,
    );
    // RFC 8628 §5.4: a device's code is approved with a login of its own, even in a browser signed in already
    login.checks.add(
      new Check('device_login', 'a device is approved with a fresh login', LOGIN_REQUIRED, (ctx) =>
        ctx.oidc?.route === 'code_verification' ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT,
      ) as CheckType,
    );
    // acr_values: a lower level than the lowest accepted → verify again (V1). The level is the lower of what the provider
    // was told at the last interaction and what our session proved last: a step-up since with a weaker device lowers it
    // (its tokens would say the weaker level; the request is not answered as if it were met)
    login.checks.add(
      new Check('acr_values', 'a stronger authentication is requested', LOGIN_REQUIRED, async (ctx) => {
        const required = requiredAcrRank(ctx.oidc?.params?.acr_values as string | undefined);
        if (required === null) return Check.NO_NEED_TO_PROMPT;
        const session = await slsSessionOf(ctx);
        const proved = session === null ? -1 : acrRank((await services.oidc.proof(session)).acr);
        return Math.min(acrRank(ctx.oidc?.acr ?? ''), proved) < required ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
      }) as CheckType,
    );

    const provider = new Provider(services.oidc.issuer, {
      adapter: adapterClass(
        store,
        clock,
        services.box,
        (clientId) => this.clientMetadata(clientId),
        () => new errors.InvalidGrant!('grant request is invalid'),
        // RFC 8628 §3.5: the device code is looked up at the token endpoint only by the device's poll
        {
          polling: () => Provider.ctx?.oidc?.route === 'token',
          slowDown: () => new errors.SlowDown!(),
          // the provider's own order: a code of another client is not found for this one (client mismatch)
          expired: (clientId) => (clientId === Provider.ctx?.oidc?.client?.clientId ? new errors.ExpiredToken!('device code is expired') : null),
        },
        // RFC 8628: a user code another browser confirmed a moment ago: the device page says it was used, as the provider's own check does
        () => Object.assign(new errors.InvalidRequest!('code has already been used'), { name: 'AlreadyUsedError' }),
      ),
      clients: [],
      jwks: { keys },
      // I1: its cookies under names of ours, prefixed when cookies are Secure (SLS_COOKIE_SECURE), as our own are: its
      // session's Path is /, the interaction's and the resume's their own pages (session-cookie.ts)
      cookies: {
        keys: [services.box.digest('oidc-provider', 'cookie-keys')],
        names: { session: names.oidcSession, interaction: names.oidcInteraction, resume: names.oidcResume },
        long: { httpOnly: true, sameSite: 'lax', secure: config.cookieSecure },
        short: { httpOnly: true, sameSite: 'lax', secure: config.cookieSecure },
      },
      findAccount: async (
        ctx: KoaContext | undefined,
        sub: string,
        token?: { sessionUid?: string; grantId?: string; acr?: string; amr?: string[]; authTime?: number },
      ) => {
        const user = await services.users.get(sub).catch(() => null);
        if (user?.status !== 'active') return undefined;
        // the session of ours under the token (its grant's, else the provider session's), worked out once
        const standing = token?.sessionUid === undefined ? null : await services.oidc.tokenStanding(sub, token.sessionUid, token.grantId);
        // a token (a code, a refresh, the user info) works only while our session under it lives; at the token
        // endpoint, the application in use keeps that session from idling out
        const renew = ctx?.oidc?.route === 'token';
        const app = ctx?.oidc?.client?.sls_app;
        if (token?.sessionUid !== undefined && !(await services.oidc.standingLives(standing, { renew, app }))) return undefined;
        // I1, D2: a code or refresh token says no more of the login than the session it stands on now proved (a device's
        // grant carried over to a weaker login): the ID token issued with it, and the rotated refresh token, say that
        const lowered = token && standing ? services.oidc.claimsNoMore(token, standing) : null;
        if (token && lowered) Object.assign(token, lowered);
        return {
          accountId: sub,
          claims: async (_use: string, scope: string) => ({
            sub,
            ...(scope.split(' ').includes('profile') ? { preferred_username: user.username } : {}),
            ...(scope.split(' ').includes('email') && user.email ? { email: user.email } : {}),
            ...(scope.split(' ').includes('sls.entitlements') ? await services.oidc.entitlements(sub, standing) : {}),
          }),
        };
      },
      claims: {
        acr: null,
        amr: null,
        auth_time: null,
        sid: null,
        iss: null,
        // how the user logged in, in every ID token (not only when a request names them)
        openid: ['sub', 'acr', 'amr', 'auth_time'],
        profile: ['preferred_username'],
        email: ['email'],
        'sls.entitlements': ['sls_session_scope', 'sls_app', 'sls_withdrawal_limits'],
      },
      scopes: SCOPES,
      acrValues: [...ACR_VALUES],
      responseTypes: ['code'],
      clientAuthMethods: ['client_secret_basic', 'none'],
      extraClientMetadata: { properties: ['sls_app'] },
      pkce: { required: () => true },
      ttl: {
        AccessToken: (ctx: KoaContext | undefined, _token: unknown, client?: { sls_app?: string }) => accessTokenSeconds(client ?? ctx?.oidc?.client),
        IdToken: TOKEN_LIFETIME_S,
        AuthorizationCode: 60,
        DeviceCode: DEVICE_CODE_TTL_S,
        Interaction: INTERACTION_TTL_S,
        Session: sessionSeconds,
        // L8: an application's access lasts as long as a session of its app may (portal or trading) …
        Grant: (ctx: KoaContext | undefined, _grant: unknown, client?: { sls_app?: string }) => appMaxSeconds(client ?? ctx?.oidc?.client),
        // … counted from the first refresh token of the chain: rotations do not stretch it
        RefreshToken: (ctx: KoaContext | undefined, token: { iiat?: number }, client?: { sls_app?: string }) => {
          const now = Math.floor(Date.now() / 1000);
          return Math.max(1, appMaxSeconds(client ?? ctx?.oidc?.client) - (now - (token.iiat ?? now)));
        },
      },
      issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
      rotateRefreshToken: () => true,
      loadExistingGrant: async (ctx: KoaContext) => {
        const oidc = ctx.oidc!;
        const clientId = oidc.client!.clientId;
        // L8: a login of ours finished the interaction: what was given under an earlier session of ours that ended, ends
        const slsSessionId = oidc.result?.slsSessionId as string | undefined;
        const providerSession = oidc.session!;
        /** The session of ours the grant is given under (L8: when it ends, the grant is revoked and the client told). */
        let under: string | undefined;
        if (slsSessionId !== undefined) {
          const authorizations = (providerSession as unknown as { authorizations?: Record<string, { grantId?: string }> }).authorizations ?? {};
          const grants = Object.entries(authorizations).flatMap(([client, { grantId }]) => (grantId ? [{ grantId, clientId: client }] : []));
          await services.oidc.loginFinished(providerSession.uid, slsSessionId, grants, providerSession.accountId!);
          // which of our sessions the provider's session stands on: the one whose login finished the interaction (never one
          // merely present at an authorization request, which the interaction has not checked). Made here, before the
          // provider saves the code or approves the device code: a client polling another process (RFC 8628) finds it at once
          const session = await slsSessionOf(ctx);
          if (session && session.userId === providerSession.accountId && session.id === slsSessionId) {
            await services.oidc.link(providerSession.uid, session);
            under = session.id;
          }
        } else {
          // no interaction: given under the browser's session of ours when the provider session stands on it (the
          // sls_session check lets such a request through); otherwise the interaction comes next, and gives
          const session = await slsSessionOf(ctx);
          if (session && session.userId === providerSession.accountId && (await services.oidc.standsOn(providerSession.uid, session.id))) under = session.id;
        }
        const grantId = oidc.result?.consent?.grantId ?? providerSession.grantIdFor(clientId);
        const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
        const grant = existing ?? new oidc.provider.Grant({ clientId, accountId: providerSession.accountId! });
        // L8: a new grant, a new sid: the client's earlier one (if any) names a grant that ended, whose session's
        // back-channel logout is sent with it and must not log out the login that goes on
        if (under !== undefined && (!existing || !providerSession.sidFor(clientId))) providerSession.sidFor(clientId, randomBytes(16).toString('base64url'));
        const requested = String(oidc.params?.scope ?? 'openid')
          .split(' ')
          .filter((scope) => SCOPES.includes(scope));
        grant.addOIDCScope(requested.join(' '));
        await grant.save();
        if (under !== undefined && grant.jti !== undefined) {
          await services.oidc.grantGiven({
            grantId: grant.jti,
            clientId,
            sid: providerSession.sidFor(clientId)!,
            oidcSessionUid: providerSession.uid,
            slsSessionId: under,
            device: oidc.route === 'device_resume',
          });
        }
        if (oidc.route === 'device_resume' && slsSessionId !== undefined) {
          // X4 (RFC 8628): a device code without offline_access ends with the provider session (expiresWithSession): a poll
          // finds the approved code only with that session and its grant for the client. The provider saves the session
          // after its response, once the code is approved; a device polling in between (this process or another) got
          // invalid_grant ("device code not found").
          // Saved here, before the approval; the provider saves it again at the end (touched: its cookie, its last changes)
          providerSession.ensureClientContainer(clientId);
          providerSession.grantIdFor(clientId, grant.jti!);
          await providerSession.save(sessionSeconds);
          providerSession.touched = true;
        }
        return grant;
      },
      interactions: { policy, url: (_ctx: unknown, interaction: { uid: string }) => `${OIDC_PREFIX}/interaction/${interaction.uid}` },
      features: {
        devInteractions: { enabled: false },
        // a client revokes and introspects only its own tokens: another client's token says nothing to it (inactive)
        revocation: { enabled: true, allowedPolicy: ownTokenOnly },
        // … and a token is active only while its user is and the session of ours under it lives (L8: idle, day 2 of T3)
        introspection: {
          enabled: true,
          allowedPolicy: async (
            ctx: unknown,
            client: { clientId: string },
            token: { clientId?: string; accountId?: string; sessionUid?: string; grantId?: string },
          ) => (await ownTokenOnly(ctx, client, token)) && (await tokenLives(token, false)),
        },
        userinfo: { enabled: true },
        backchannelLogout: { enabled: true },
        // RFC 8628: a trading platform without a browser shows a code; the user approves it on a phone or computer with the usual login
        deviceFlow: {
          enabled: true,
          ...deviceFlowPages({
            defaultLanguage: config.defaultLanguage,
            appName: (app, language) => translator(language)(`apps.${app}`),
            onRefused: (ctx: PageContext) => {
              const code = ctx.oidc?.entities as { DeviceCode?: { clientId?: string; deviceInfo?: { ip?: string } } } | undefined;
              return services.audit
                .record({
                  event: 'oidc.device_refused',
                  actor: null,
                  ip: ctx.ip ?? null,
                  data: { clientId: code?.DeviceCode?.clientId ?? null, deviceIp: code?.DeviceCode?.deviceInfo?.ip ?? null },
                })
                .catch((error: unknown) => this.log?.error({ err: error }, 'audit of a refused device failed'));
            },
          }),
        },
        rpInitiatedLogout: {
          enabled: true,
          logoutSource: async (
            ctx: {
              body: string;
              get(header: string): string;
              set(header: string, value: string): void;
              response: { get(header: string): string };
              oidc?: { params?: Record<string, unknown> };
            },
            form: string,
          ) => {
            // the confirmation's form ends, by a redirect, at the client's post_logout_redirect_uri (checked against its registration)
            const csp = ctx.response.get('content-security-policy');
            const source = formActionSource(ctx.oidc?.params?.post_logout_redirect_uri);
            if (csp && source) ctx.set('content-security-policy', csp.replace("form-action 'self'", `form-action 'self' ${source}`));
            const language = languageOf(ctx);
            const t = translator(language);
            ctx.body = page(
              language,
              t('oidc.logout.title'),
              `<h1>${escapeHtml(t('oidc.logout.title'))}</h1><p>${escapeHtml(t('oidc.logout.question'))}</p>${form}<button form="op.logoutForm" type="submit" name="logout" value="yes">${escapeHtml(t('oidc.logout.yes'))}</button> <button form="op.logoutForm" type="submit">${escapeHtml(t('oidc.logout.no'))}</button>`,
            );
          },
          postLogoutSuccessSource: async (ctx: { body: string; get(header: string): string }) => {
            const language = languageOf(ctx);
            const t = translator(language);
            ctx.body = page(
              language,
              t('oidc.logout.done'),
              `<h1>${escapeHtml(t('oidc.logout.done'))}</h1><p><a href="/login">${escapeHtml(t('oidc.logout.again'))}</a></p>`,
            );
          },
        },
      },
      renderError: async (ctx: { type: string; body: string; get(header: string): string }, out: { error?: string; error_description?: string }) => {
        const language = languageOf(ctx);
        const t = translator(language);
        ctx.type = 'html';
        ctx.body = page(
          language,
          t('oidc.error.title'),
          `<h1>${escapeHtml(t('oidc.error.title'))}</h1><p>${escapeHtml(t('oidc.error.body'))}</p><p><code>${escapeHtml(out.error ?? 'server_error')}</code> ${escapeHtml(out.error_description ?? '')}</p>`,
        );
      },
    });
    // the forwarded headers it reads are ours: the public URL's, else what Fastify trusted (SLS_TRUST_PROXY), see forwardedAsTrusted
    provider.proxy = true;
    // I1: its cookies are Secure when ours are, whatever protocol it is told (a request it takes as plain HTTP would refuse
    // to set them: development on http://localhost, where browsers take Secure cookies): the prefixed names need it.
    // Koa reads `secure` only for its cookies; the addresses it builds follow the protocol, which stays as forwarded
    if (config.cookieSecure) Object.defineProperty(provider.request, 'secure', { get: () => true });
    // a grant revoked: a code or refresh token used twice (taken as stolen), a client's revocation, a logout
    provider.on('grant.revoked', (...args: unknown[]) => {
      const [ctx, grantId] = args as [KoaContext, string];
      const entities = (ctx.oidc?.entities ?? {}) as Record<string, { accountId?: string } | undefined>;
      const userId = entities.RefreshToken?.accountId ?? entities.AuthorizationCode?.accountId ?? entities.AccessToken?.accountId ?? null;
      const clientId = ctx.oidc?.client?.clientId ?? null;
      services.audit
        .record({
          event: 'oidc.grant_revoked',
          actor: clientId ? `client:${clientId}` : 'system',
          userId,
          data: { grantId, clientId, route: ctx.oidc?.route ?? null },
        })
        .catch((error: unknown) => this.log?.error({ err: error }, 'audit of a revoked grant failed'));
    });
    // RFC 8628: a device asked for a code (the approval is an oidc.login with its grant)
    provider.on('device_authorization.success', (...args: unknown[]) => {
      const [ctx] = args as [KoaContext & { ip?: string }];
      services.audit
        .record({ event: 'oidc.device_requested', actor: null, ip: ctx.ip ?? null, data: { clientId: ctx.oidc?.client?.clientId ?? null } })
        .catch((error: unknown) => this.log?.error({ err: error }, 'audit of a device request failed'));
    });
    provider.on('server_error', (...args: unknown[]) => this.log?.error({ err: args[1] }, 'OpenID Provider error'));
    // RFC 8628: a code typed without the form's browser session (no cookie, or an expired one): the
    // provider renders its error on a session it then cannot save (a TypeError, a 500); a new form instead
    provider.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        const oidc = ctx.oidc as (KoaContext['oidc'] & { session?: { exp?: unknown } }) | undefined;
        const route = oidc?.route;
        if ((route !== 'code_verification' && route !== 'device_resume') || typeof oidc?.session?.exp === 'number') throw error;
        ctx.status = 303;
        ctx.redirect(`${OIDC_PREFIX}/device`);
      }
    });
    // I1, RFC 8628 §5.4 (decision 0037): the browser the provider sends to an interaction is the one that may finish it —
    // named by a __Host- cookie of its own (kept across its interactions), recorded with the interaction. Its __Secure-
    // cookies, which a sibling subdomain can set, would otherwise let an attacker's authorization or device approval be
    // finished by another person's login in another browser
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.status < 300 || ctx.status >= 400) return;
      const uid = INTERACTION_LOCATION.exec(ctx.response.get('location') ?? '')?.[1];
      if (!uid) return;
      const present = ctx.cookies.get(names.oidcBrowser, { signed: false });
      const browser = present && BROWSER_FORMAT.test(present) ? present : randomBytes(24).toString('base64url');
      ctx.cookies.set(names.oidcBrowser, browser, {
        path: '/',
        httpOnly: true,
        secure: config.cookieSecure,
        sameSite: 'lax',
        signed: false,
        overwrite: true,
        maxAge: INTERACTION_TTL_S * 1000,
      });
      await services.oidc.interactionBegan(uid, browser, clock.now() + INTERACTION_TTL_S * 1000);
    });
    provider.use(async (ctx, next) => {
      await next();
      const oidc = ctx.oidc;
      // RFC 8628 §3.2: the device is told how long to wait between its polls (the library says nothing: 5 s by default,
      // which the token endpoint holds it to, adapter.ts)
      if (oidc?.route === 'device_authorization' && ctx.status === 200 && typeof ctx.body === 'object' && ctx.body !== null) {
        (ctx.body as Record<string, unknown>).interval = DEVICE_POLL_INTERVAL_S;
        return;
      }
      // RP-initiated logout ends our session too (its other clients are told by the provider, L8) — when ours is of the
      // user logged out: the provider also logs out the earlier user of a browser where another one just logged in, whose
      // session is not ended with it (it would send them back to the login page)
      if (oidc?.route === 'end_session_confirm') {
        const params = oidc.params as Record<string, unknown> | undefined;
        const token = ctx.cookies.get(cookieNames(config).session, { signed: false });
        if (!token || !params?.logout) return;
        const loggedOut = oidc.session?.accountId;
        const ours = loggedOut === undefined ? null : await sessions.authenticate(token);
        if (ours && ours.userId !== loggedOut) return;
        await sessions.end(token, null);
        return;
      }
    });
    return provider;
  }
}

/** Introspection and revocation: a client's own tokens only (not only for public clients, as the library's default). */
async function ownTokenOnly(_ctx: unknown, client: { clientId: string }, token: { clientId?: string }): Promise<boolean> {
  return token.clientId === client.clientId;
}

/**
 * X5, I1: the provider (Koa, proxy mode) reads the protocol, host and client
 * address from X-Forwarded-*; they are replaced by ours, so a client cannot
 * choose them: the protocol and host of the public URL when one is
 * configured (SLS_PUBLIC_URL: the addresses the provider builds — discovery,
 * the device's verification URI — never follow a forged Host), else what
 * Fastify decided under SLS_TRUST_PROXY; the client address always that.
 */
function forwardedAsTrusted(request: FastifyRequest, publicUrl: string | undefined): void {
  const { headers } = request.raw;
  const own = publicUrl ? new URL(publicUrl) : null;
  headers['x-forwarded-proto'] = own ? own.protocol.slice(0, -1) : request.protocol;
  headers['x-forwarded-host'] = own ? own.host : request.host;
  headers['x-forwarded-for'] = request.ip;
}

/** A client's (registered) URI as a CSP source: no query; a path with a separator of the header is left out (the origin alone). */
function formActionSource(uri: unknown): string | null {
  if (typeof uri !== 'string' || !URL.canParse(uri)) return null;
  const target = new URL(uri);
  if (target.protocol !== 'https:' && target.protocol !== 'http:') return null;
  return /[;,\s']/.test(target.pathname) ? target.origin : `${target.origin}${target.pathname}`;
}

/** The subject of an ID token (its signature checked by the provider when the request came), or null. */
function subjectOf(idToken: string | undefined): string | null {
  const payload = idToken?.split('.')[1];
  if (!payload) return null;
  try {
    const { sub } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}

/** The interaction a page of our login (the return cookie) or of the step-up (its `next`) works for. */
function interactionOfPage(request: FastifyRequest, config: Pick<Config, 'cookieSecure'>): string | null {
  const next = (request.query as Record<string, unknown> | undefined)?.next;
  const fromNext = typeof next === 'string' ? /^\/oidc\/interaction\/([A-Za-z0-9_-]{1,64})$/.exec(next)?.[1] : undefined;
  if (fromNext) return fromNext;
  const uid = request.cookies[cookieNames(config).oidcReturn];
  return uid && UID_FORMAT.test(uid) ? uid : null;
}

/**
 * I1: a form of our login or step-up pages made for an authorization request
 * ends, through redirects (the interaction, then the authorization
 * endpoint), at the client's redirect URI on another origin. Browsers apply
 * the page's CSP form-action to every redirect of a form submission, so such
 * a page allows that one URI besides 'self' (the request's redirect_uri,
 * which the provider checked against the client's registration).
 */
export function oidcFormActionHook(host: ProviderHost, config: Pick<Config, 'cookieSecure'>) {
  return async (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    const csp = reply.getHeader('content-security-policy');
    if (typeof csp !== 'string' || !csp.includes("form-action 'self'")) return payload;
    if (!String(reply.getHeader('content-type') ?? '').startsWith('text/html')) return payload;
    const uid = interactionOfPage(request, config);
    if (!uid) return payload;
    const interaction = await (await host.current()).Interaction.find(uid);
    const source = formActionSource(interaction?.params.redirect_uri);
    if (!source) return payload;
    reply.header('content-security-policy', csp.replace("form-action 'self'", `form-action 'self' ${source}`));
    return payload;
  };
}

/** The provider's own routes and our interaction. */
export function oidcRoutes(services: Services, pages: PageRenderer, host: ProviderHost, guard: SessionGuard): FastifyPluginAsync {
  const { config, sessions, clock } = services;

  return async (app) => {
    // the provider reads its own bodies: leave the stream unread
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_request, _payload, done) => done(null));

    /** Hands a request to the provider, seen as mounted at /oidc. */
    async function forward(request: FastifyRequest, reply: FastifyReply, path: string): Promise<void> {
      const provider = await host.current();
      const raw = request.raw as IncomingMessage & { originalUrl?: string };
      const query = raw.url?.includes('?') ? raw.url.slice(raw.url.indexOf('?')) : '';
      hashClientSecret(raw);
      forwardedAsTrusted(request, config.publicUrl);
      raw.originalUrl = `${OIDC_PREFIX}${path}${query}`;
      raw.url = `${path}${query}`;
      reply.hijack();
      provider.callback()(raw, reply.raw);
    }

    /**
     * client_secret_basic (the scheme's name in any case, as the provider reads it): the presented secret becomes what
     * the provider holds (`providerSecret`, stored nowhere). A secret sent otherwise (in the body) is compared as it is,
     * and matches nothing a copy of the database holds (D5).
     */
    function hashClientSecret(raw: IncomingMessage): void {
      const header = raw.headers.authorization;
      const match = header ? /^basic ([A-Za-z0-9+/=]+)$/i.exec(header) : null;
      if (!match) return;
      const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return;
      let clientId: string;
      let secret: string;
      try {
        clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
        secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
      } catch {
        return;
      }
      const digest = services.oidc.clients.presentedSecret(clientId, secret);
      raw.headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(digest)}`).toString('base64')}`;
    }

    app.get('/.well-known/openid-configuration', { schema: { hide: true } }, (request, reply) => forward(request, reply, '/.well-known/openid-configuration'));
    app.all(`${OIDC_PREFIX}/*`, { schema: { hide: true } }, (request, reply) => forward(request, reply, request.url.slice(OIDC_PREFIX.length).split('?')[0]!));
    // RFC 8628 §5.1: the user codes typed are counted by the throttle (X5), as answers are; and the codes asked
    // for as login starts (a public client's id is no secret: anyone could ask for codes, each audited)
    app.post(`${OIDC_PREFIX}/device`, { schema: { hide: true } }, (request, reply) => forward(request, reply, '/device'));
    app.post(`${OIDC_PREFIX}/device/auth`, { schema: { hide: true } }, (request, reply) => forward(request, reply, '/device/auth'));

    /** Our login page for the client's app; its landing comes back to the interaction. */
    function loginAgain(reply: FastifyReply, uid: string, clientApp: string): FastifyReply {
      reply.setCookie(cookieNames(config).oidcReturn, uid, { path: '/', httpOnly: true, secure: config.cookieSecure, sameSite: 'lax', maxAge: 3600 });
      return reply.redirect(`/login?app=${clientApp}`, 303);
    }

    /** Refuses the authorization request with a standard error, back at the client. */
    async function refuse(request: FastifyRequest, reply: FastifyReply, error: string, description: string): Promise<void> {
      const provider = await host.current();
      forwardedAsTrusted(request, config.publicUrl);
      reply.hijack();
      await provider.interactionFinished(request.raw, reply.raw, { error, error_description: description }, { mergeWithLastSubmission: false });
    }

    app.get<{ Params: { uid: string } }>(`${OIDC_PREFIX}/interaction/:uid`, { schema: { hide: true } }, async (request, reply) => {
      const provider = await host.current();
      forwardedAsTrusted(request, config.publicUrl);
      let details: InteractionDetails;
      try {
        details = await provider.interactionDetails(request.raw, reply.raw);
      } catch {
        return pages.renderError(request, reply, new SlsError('OIDC_INTERACTION_EXPIRED'));
      }
      if (details.uid !== request.params.uid) return pages.renderError(request, reply, new SlsError('OIDC_INTERACTION_EXPIRED'));
      // decision 0037: only in the browser the provider sent to it (its __Secure- cookies planted in another finish nothing)
      if (!(await services.oidc.interactionOfBrowser(details.uid, request.cookies[cookieNames(config).oidcBrowser]))) {
        return pages.renderError(request, reply, new SlsError('OIDC_INTERACTION_EXPIRED'));
      }
      const client = await services.oidc.clients.find(details.params.client_id ?? '');
      if (!client) return refuse(request, reply, 'invalid_client', 'the client is no longer registered');
      const back = `${OIDC_PREFIX}/interaction/${details.uid}`;
      // RFC 8628 §5.4: approving a device is always a login of its own, made after the approval began (its
      // first look here, to the millisecond: iat is in seconds) — a code someone else sent cannot ride on a session already open
      const deviceGrant = details.deviceCode !== undefined;
      const deviceSince = deviceGrant ? await services.oidc.deviceApprovalStarted(details.uid, details.exp * 1000) : 0;
      const token = sessionCookieOf(request, config);
      const session = token ? await sessions.authenticate(token) : null;

      // no session of ours for this client's app: our login, then back here
      if (!session || session.app !== client.app) return loginAgain(reply, details.uid, client.app);
      // what the session may do, decided where every request's is (audited when refused): a one-time password
      // is replaced first (A5; the user then opens the application again), a temporary passcode older than 2 days
      // opens only the online security card (T3), never an application
      const refused = await guard.refusal(request, session, 'application');
      if (refused?.code === 'PASSWORD_CHANGE_REQUIRED') return reply.redirect('/password', 303);
      if (refused) return pages.renderError(request, reply, refused);

      // OIDC Core §3.1.2.1: a request naming its user (id_token_hint: an ID token of ours, which the provider checked)
      // is answered for that user only, never with a code for another one signed in in this browser
      const hinted = subjectOf(details.params.id_token_hint);
      if (hinted !== null && hinted !== session.userId) {
        await services.audit.record({
          event: 'oidc.login',
          actor: `user:${session.userId}`,
          userId: session.userId,
          ip: requestMeta(request).ip,
          data: { clientId: client.clientId, sessionId: session.id, outcome: 'another_user_hinted' },
        });
        return refuse(request, reply, 'login_required', 'the user signed in is not the one the request names');
      }

      const proof = await services.oidc.proof(session);
      const now = clock.now();
      const startedAt = details.iat * 1000;
      const maxAge = details.params.max_age === undefined ? undefined : Number(details.params.max_age);
      const promptLogin = details.prompt.reasons.includes('login_prompt');
      const freshSince = Math.max(promptLogin ? startedAt : 0, deviceSince, maxAge !== undefined && Number.isFinite(maxAge) ? now - maxAge * 1000 : 0);
      const required = requiredAcrRank(details.params.acr_values);
      const fresh = proof.authTime >= freshSince;
      const strongEnough = required === null || acrRank(proof.acr) >= required;

      if (!strongEnough) {
        // can any of the user's devices meet it? Proved in this very interaction and still not: refused
        const devices = (await services.devices.listForUser(session.userId)).filter((d) => d.state === 'active');
        const best = Math.max(-1, ...devices.map((d) => acrRank(acrOf(services.deviceKind(d.type)))));
        if (best < required! || proof.authTime >= startedAt) {
          await services.audit.record({
            event: 'oidc.login',
            actor: `user:${session.userId}`,
            userId: session.userId,
            ip: requestMeta(request).ip,
            data: { clientId: client.clientId, sessionId: session.id, outcome: 'acr_unmet', requested: details.params.acr_values ?? '' },
          });
          return refuse(request, reply, 'unmet_authentication_requirements', 'the requested authentication level cannot be met');
        }
        // a login, where the user may choose the stronger device (the step-up offers the last used)
        return loginAgain(reply, details.uid, client.app);
      }
      if (!fresh) {
        // V1: verify again with the device — the portal's step-up; a trading or temporary session logs in again
        if (session.app === 'portal' && session.scope === 'full') return reply.redirect(`/step-up?next=${encodeURIComponent(back)}`, 303);
        return loginAgain(reply, details.uid, client.app);
      }

      await services.audit.record({
        event: 'oidc.login',
        actor: `user:${session.userId}`,
        userId: session.userId,
        ip: requestMeta(request).ip,
        data: {
          clientId: client.clientId,
          sessionId: session.id,
          outcome: 'authenticated',
          acr: proof.acr,
          amr: proof.amr.join(' '),
          grant: deviceGrant ? 'device_code' : 'authorization_code',
        },
      });
      reply.hijack();
      await provider.interactionFinished(
        request.raw,
        reply.raw,
        {
          login: { accountId: session.userId, ts: Math.floor(proof.authTime / 1000), acr: proof.acr, amr: proof.amr, remember: true },
          slsSessionId: session.id,
        },
        { mergeWithLastSubmission: false },
      );
    });
  };
}
