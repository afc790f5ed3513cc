/**
 * I1: the relying parties of the OpenID Provider — a broker's Client Portal,
 * its trading platforms, back office or tools — registered by the operator
 * (`sls client create`) or an admin in the console. A client is a `portal`
 * or a `trading` application: its logins are of that app (L8, T3). A
 * confidential client's secret is printed once and kept only as a keyed
 * digest (HMAC under the master key); a public client (a browser or native
 * app) has none and must use PKCE. A client registered for the device
 * authorization grant (RFC 8628: a trading platform without a browser) shows
 * the user a code to approve on a phone or computer; it needs no redirect URI.
 */
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { newId, newToken } from '../crypto/random.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { SlsError } from '../errors.js';
import type { Executor, Store } from '../store/database.js';
import type { OidcClientsTable } from '../store/schema.js';
import type { Selectable } from 'kysely';

export type ClientApp = 'portal' | 'trading';

export interface OidcClient {
  clientId: string;
  name: string;
  app: ClientApp;
  public: boolean;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  backchannelLogoutUri: string | null;
  /** May use the device authorization grant (RFC 8628). */
  deviceGrant: boolean;
  createdAt: number;
  createdBy: string;
}

export interface NewClient {
  name: string;
  app: string;
  redirectUris: string[];
  postLogoutRedirectUris?: string[];
  public?: boolean;
  backchannelLogoutUri?: string | null;
  deviceGrant?: boolean;
}

const NAME_FORMAT = /^[\p{L}\p{N} ._:/()-]{1,64}$/u;
const CLIENT_ID_FORMAT = /^cli_[a-z2-7]{26}$/;

/** An absolute http(s) URL without a fragment; plain http only for loopback or localhost (RFC 8252, development). */
function checkUrl(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new SlsError('VALIDATION_ERROR', { field, reason: 'absolute_url' });
  }
  const local = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.hash !== '' || !(url.protocol === 'https:' || (url.protocol === 'http:' && local))) {
    throw new SlsError('VALIDATION_ERROR', { field, reason: 'https_url' });
  }
  return url.href;
}

function toClient(row: Selectable<OidcClientsTable>): OidcClient {
  return {
    clientId: row.client_id,
    name: row.name,
    app: row.app,
    public: row.secret_digest === null,
    redirectUris: JSON.parse(row.redirect_uris) as string[],
    postLogoutRedirectUris: JSON.parse(row.post_logout_redirect_uris) as string[],
    backchannelLogoutUri: row.backchannel_logout_uri,
    deviceGrant: row.device_grant === 1,
    createdAt: row.created_at,
    createdBy: row.created_by,
  };
}

export class OidcClients {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly box: SecretBox,
    private readonly audit: AuditLog,
  ) {}

  /** D5: what the clients table keeps of a client's secret: a keyed digest. */
  secretDigest(clientId: string, secret: string): string {
    return this.box.digest(secret, `oidc-client:${clientId}`);
  }

  /**
   * D5: the value the provider holds as the client's secret, derived from the stored digest under the master key and
   * kept nowhere: the provider compares what a request presents with it as it is (in the body, or under a scheme
   * spelled otherwise), so the digest a copy of the database holds must not be it.
   */
  providerSecret(secretDigest: string): string {
    return this.box.digest(secretDigest, 'oidc-client-check');
  }

  /** What a presented secret becomes before the provider sees it (`client_secret_basic`): equal to `providerSecret` for the right one. */
  presentedSecret(clientId: string, secret: string): string {
    return this.providerSecret(this.secretDigest(clientId, secret));
  }

  /** A new client; the only time its secret (none for a public client) is known. */
  async create(input: NewClient, actor: string): Promise<{ client: OidcClient; secret: string | null }> {
    const name = input.name.trim();
    if (!NAME_FORMAT.test(name)) throw new SlsError('VALIDATION_ERROR', { field: 'name', reason: 'name_format', symbols: '. _ : / ( ) -' });
    if (input.app !== 'portal' && input.app !== 'trading') throw new SlsError('VALIDATION_ERROR', { field: 'app', reason: 'client_app' });
    const deviceGrant = input.deviceGrant === true;
    if (input.redirectUris.length === 0 && !deviceGrant) {
      throw new SlsError('VALIDATION_ERROR', { field: 'redirect-uri', reason: 'client_redirect_required' });
    }
    const redirectUris = [...new Set(input.redirectUris.map((u) => checkUrl(u, 'redirect-uri')))];
    const postLogout = [...new Set((input.postLogoutRedirectUris ?? []).map((u) => checkUrl(u, 'post-logout-redirect-uri')))];
    const backchannel = input.backchannelLogoutUri ? checkUrl(input.backchannelLogoutUri, 'backchannel-logout-uri') : null;
    const clientId = newId('cli');
    const secret = input.public ? null : newToken();
    const now = this.clock.now();
    await this.store.serialized('audit_log', async (trx) => {
      await trx
        .insertInto('oidc_clients')
        .values({
          client_id: clientId,
          name,
          app: input.app as ClientApp,
          secret_digest: secret === null ? null : this.secretDigest(clientId, secret),
          redirect_uris: JSON.stringify(redirectUris),
          post_logout_redirect_uris: JSON.stringify(postLogout),
          backchannel_logout_uri: backchannel,
          device_grant: deviceGrant ? 1 : 0,
          created_at: now,
          created_by: actor,
        })
        .execute();
      await this.audit.append(trx, [{ event: 'oidc.client_created', actor, data: { clientId, name, app: input.app, public: secret === null, deviceGrant } }]);
    });
    return { client: await this.get(clientId), secret };
  }

  async list(): Promise<OidcClient[]> {
    const rows = await this.store.db.selectFrom('oidc_clients').selectAll().orderBy('created_at').orderBy('client_id').execute();
    return rows.map(toClient);
  }

  async find(clientId: string, db: Executor = this.store.db): Promise<(OidcClient & { secretDigest: string | null }) | null> {
    if (!CLIENT_ID_FORMAT.test(clientId)) return null;
    const row = await db.selectFrom('oidc_clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
    return row ? { ...toClient(row), secretDigest: row.secret_digest } : null;
  }

  async get(clientId: string): Promise<OidcClient> {
    const found = await this.find(clientId);
    if (!found) throw new SlsError('OIDC_CLIENT_NOT_FOUND', { clientId: clientId.slice(0, 64) });
    const { secretDigest: _digest, ...client } = found;
    return client;
  }

  /** Deletes a client: its tokens no longer work (the provider finds no client for them). */
  async delete(clientId: string, actor: string): Promise<void> {
    const client = await this.get(clientId);
    await this.store.serialized('audit_log', async (trx) => {
      await trx.deleteFrom('oidc_clients').where('client_id', '=', clientId).execute();
      await this.audit.append(trx, [{ event: 'oidc.client_deleted', actor, data: { clientId, name: client.name } }]);
    });
  }
}
