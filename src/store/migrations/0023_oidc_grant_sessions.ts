import type { Kysely } from 'kysely';

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // I1, L8: under which of our sessions each grant of a provider session was given, and the sid its client was told:
  // when that session ends while the provider session goes on (a new login in the same browser replaced it), only
  // those grants are revoked and only their clients told, with that sid
  await db.schema
    .createTable('oidc_grant_sessions')
    .addColumn('grant_id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('sid', 'text', (c) => c.notNull())
    .addColumn('oidc_session_uid', 'text', (c) => c.notNull())
    .addColumn('sls_session_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('oidc_grant_sessions_session').on('oidc_grant_sessions').columns(['sls_session_id', 'oidc_session_uid']).execute();
  // L8: the session of ours was replaced by a new login in the same browser (that login's session): the provider session goes on
  await db.schema.alterTable('oidc_session_links').addColumn('replaced_by', 'text').execute();

  // the grants given before: under the session their provider session stood on (its newest link), with their sid
  const providerSessions = await db
    .selectFrom('oidc_artifacts')
    .select(['uid', 'payload'])
    .where('model', '=', 'Session')
    .where('uid', 'is not', null)
    .execute();
  for (const { uid, payload } of providerSessions as { uid: string; payload: string }[]) {
    const newest = (await db
      .selectFrom('oidc_session_links')
      .select(['sls_session_id', 'created_at'])
      .where('oidc_session_uid', '=', uid)
      .orderBy('created_at', 'desc')
      .executeTakeFirst()) as { sls_session_id: string; created_at: number | string } | undefined;
    if (!newest) continue;
    let authorizations: Record<string, { grantId?: unknown; sid?: unknown }> = {};
    try {
      authorizations = (JSON.parse(payload) as { authorizations?: typeof authorizations }).authorizations ?? {};
    } catch {
      continue;
    }
    for (const [clientId, { grantId, sid }] of Object.entries(authorizations)) {
      if (typeof grantId !== 'string' || typeof sid !== 'string') continue;
      await db
        .insertInto('oidc_grant_sessions')
        .values({
          grant_id: grantId,
          client_id: clientId,
          sid,
          oidc_session_uid: uid,
          sls_session_id: newest.sls_session_id,
          created_at: Number(newest.created_at),
        })
        .onConflict((oc: any) => oc.column('grant_id').doNothing())
        .execute();
    }
  }
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
