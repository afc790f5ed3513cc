/**
 * Nothing is lost when a process stops (X6, N1): real `sls serve` processes
 * on one database and a local SMTP relay. A server killed with SIGKILL while
 * its worker holds a notice (the relay has not even greeted it), and a
 * notice stored while no server runs: a restarted server delivers both,
 * each once, the first once its lease has lapsed. `sls jobs run` delivers
 * what is due and `sls outbox` shows how it went.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServices, type Services } from '../src/services.js';
import { DATABASES, PASSWORD, createUser, openTestDatabase, testConfig, type TestDatabase } from './support/harness.js';
import { cliEnv, sls, startServer, type ServerProcess } from './support/cli.js';
import { startFakeSmtp, type FakeSmtp } from './support/fake-smtp.js';

async function wrongPassword(url: string, username: string): Promise<number> {
  const res = await fetch(`${url}/api/v1/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: `not ${PASSWORD}`, app: 'portal' }),
  });
  await res.arrayBuffer();
  return res.status;
}

function killed(server: ServerProcess): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return resolve();
    server.child.once('exit', () => resolve());
    server.child.kill('SIGKILL');
  });
}

describe.each(DATABASES)('notices across server processes (%s)', (dbName) => {
  let db: TestDatabase;
  let smtp: FakeSmtp;
  let env: NodeJS.ProcessEnv;
  let services: Services;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    db = await openTestDatabase(dbName);
    smtp = await startFakeSmtp();
    env = cliEnv(db, {
      SLS_EMAIL_PROVIDER: 'smtp',
      SLS_SMTP_HOST: smtp.host,
      SLS_SMTP_PORT: String(smtp.port),
      SLS_SMTP_FROM: 'sls@example.test',
      SLS_SMTP_TIMEOUT_MS: '60000',
      SLS_OUTBOX_LEASE_MS: '1500',
      SLS_OUTBOX_POLL_MS: '100',
    });
    // this process stores notices but runs no worker
    services = await createServices(testConfig(db), { warn: () => undefined });
  });
  afterAll(async () => {
    smtp.release();
    for (const server of servers) await killed(server);
    await services.close();
    await smtp.close();
    await db.drop();
  });

  async function notices(userId: string) {
    return services.store.db.selectFrom('notifications').selectAll().where('user_id', '=', userId).execute();
  }

  it('X6, N1: a notice held by a server killed with SIGKILL, and one stored while no server ran, are each delivered once after a restart', async () => {
    const locked = await createUser(services);
    const other = await createUser(services);
    smtp.hold();
    const first = await startServer(env);
    servers.push(first);
    for (let i = 0; i < 10; i++) expect(await wrongPassword(first.url, locked.username)).toBe(401);

    // the first server's worker took the lock notice and waits for the relay's greeting
    await smtp.whenHeld(1);
    const [lockNotice] = await notices(locked.id);
    expect(lockNotice).toMatchObject({ template: 'userLocked', status: 'sending', attempts: 1 });
    await killed(first);

    // stored while no server runs
    const [pending] = await services.notifier.notify(other, 'passwordReset', { username: other.username });
    expect(pending).toMatchObject({ status: 'pending' });

    smtp.release();
    const second = await startServer(env);
    servers.push(second);
    await smtp.whenMessages(2);
    await second.stop();

    const ids = smtp.messages.map((m) => m.headers['message-id']);
    expect(ids.filter((id) => id === `<${lockNotice!.id}@example.test>`)).toHaveLength(1);
    expect(ids.filter((id) => id === `<${pending!.id}@example.test>`)).toHaveLength(1);
    expect(await notices(locked.id)).toMatchObject([{ id: lockNotice!.id, status: 'sent', attempts: 2 }]);
    expect(await notices(other.id)).toMatchObject([{ id: pending!.id, status: 'sent', attempts: 1 }]);
  });

  it('X6: with no server running, `sls jobs run` delivers the notices due and `sls outbox` shows the attempts and the last error', async () => {
    const user = await createUser(services);
    smtp.rejectNext(1, 451, '4.3.0 Try again later');
    await services.notifier.notify(user, 'passwordChanged', { username: user.username });
    const run = await sls(['jobs', 'run'], env);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toContain('Outbox: 0 notice(s) delivered, 1 to try again later, 0 failed.');
    const listed = await sls(['outbox', '--user', user.username, '--status', 'pending', '--json'], env);
    expect(JSON.parse(listed.stdout)).toMatchObject([
      { template: 'passwordChanged', status: 'pending', attempts: 1, error: 'smtp: refused with 451 4.3.0 at RCPT TO' },
    ]);
    const text = await sls(['outbox', '--user', user.username], env);
    expect(text.stdout).toContain('attempts: 1; next attempt: ');
    expect(text.stdout).toContain('last error: smtp: refused with 451 4.3.0 at RCPT TO');
  });
});
