import type { Kysely } from 'kysely';
import ipaddr from 'ipaddr.js';

const RECOGNISED_MS = 90 * 24 * 60 * 60 * 1000;

/** The client of an address as the throttle's `clientOf` told it when this was written: IPv4 (also mapped), or an IPv6 /64. */
function clientOf(address: string): string {
  const bare = address.split('%')[0]!;
  if (!ipaddr.IPv6.isValid(bare)) return address;
  const ip = ipaddr.IPv6.parse(bare);
  if (ip.isIPv4MappedAddress()) return ip.toIPv4Address().toString();
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${ip.toString()}/64`).toString()}/64`;
}

// Migrations are frozen: they take an untyped database, not the evolving Schema type.
export async function up(db: Kysely<any>): Promise<void> {
  // L4, decision 0018: the client a flow was started from (an IPv4 address, an IPv6 /64), and whether the user had
  // completed a login from it before: a recognised client's flows have an allowance of their own, which a password
  // holder elsewhere cannot spend
  await db.schema.alterTable('login_flows').addColumn('client', 'text').execute();
  await db.schema
    .alterTable('login_flows')
    .addColumn('recognised', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // M7, decision 0018: a code sent for a flow of a recognised client counts in that allowance of the send limits
  await db.schema
    .alterTable('notifications')
    .addColumn('recognised', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('login_flows_user_client').on('login_flows').columns(['user_id', 'client']).execute();
  await recogniseRecentClients(db, Date.now());
}

/**
 * The clients of the logins completed within the window that recognises
 * them, so that nobody's usual client is forgotten by the upgrade: an IPv4
 * address is its own client, in one statement; IPv6 ones one by one.
 */
export async function recogniseRecentClients(db: Kysely<any>, now: number): Promise<void> {
  await db
    .updateTable('login_flows')
    .set((eb) => ({ client: eb.ref('ip') }))
    .where('state', '=', 'done')
    .where('kind', 'in', ['login', 'step_up'])
    .where('device_id', 'is not', null)
    .where('ip', 'not like', '%:%')
    .where('created_at', '>', now - RECOGNISED_MS)
    .execute();
  const done = await db
    .selectFrom('login_flows')
    .select(['id', 'ip'])
    .where('state', '=', 'done')
    .where('kind', 'in', ['login', 'step_up'])
    .where('device_id', 'is not', null)
    .where('ip', 'like', '%:%')
    .where('created_at', '>', now - RECOGNISED_MS)
    .execute();
  for (const row of done as { id: string; ip: string }[]) {
    await db
      .updateTable('login_flows')
      .set({ client: clientOf(row.ip) })
      .where('id', '=', row.id)
      .execute();
  }
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only; restore a backup to go back');
}
