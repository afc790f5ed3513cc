import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // I1: what the OpenID Provider keeps (codes, tokens, its sessions, grants, interactions), shared by every process
  await db.schema
    .createTable('oidc_artifacts')
    .addColumn('model', 'text', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('grant_id', 'text')
    .addColumn('uid', 'text')
    .addColumn('user_code', 'text')
    .addColumn('expires_at', 'bigint')
    .addColumn('consumed_at', 'bigint')
    .addPrimaryKeyConstraint('oidc_artifacts_pk', ['model', 'id'])
    .execute();
  await db.schema.createIndex('oidc_artifacts_grant').on('oidc_artifacts').column('grant_id').execute();
  await db.schema.createIndex('oidc_artifacts_uid').on('oidc_artifacts').columns(['model', 'uid']).execute();
  await db.schema.createIndex('oidc_artifacts_expiry').on('oidc_artifacts').column('expires_at').execute();
  // I1: the signing keys, sealed with the master key; a retired key stays published until its tokens expire
  await db.schema
    .createTable('oidc_keys')
    .addColumn('kid', 'text', (c) => c.primaryKey())
    .addColumn('sealed_jwk', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('retired_at', 'bigint')
    .execute();
  // I1: the relying parties (a portal or a trading platform); the secret only as its digest
  await db.schema
    .createTable('oidc_clients')
    .addColumn('client_id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('app', 'text', (c) => c.notNull())
    .addColumn('secret_digest', 'text')
    .addColumn('redirect_uris', 'text', (c) => c.notNull())
    .addColumn('post_logout_redirect_uris', 'text', (c) => c.notNull())
    .addColumn('backchannel_logout_uri', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .execute();
  // I1, L8: which of our sessions a provider session stands on; when ours ends, its clients are told (back-channel logout)
  await db.schema
    .createTable('oidc_session_links')
    .addColumn('oidc_session_uid', 'text', (c) => c.notNull())
    .addColumn('sls_session_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('logged_out_at', 'bigint')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('oidc_session_links_pk', ['oidc_session_uid', 'sls_session_id'])
    .execute();
  await db.schema.createIndex('oidc_session_links_session').on('oidc_session_links').column('sls_session_id').execute();
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
