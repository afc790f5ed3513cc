/**
 * Client services at the command line (T1–T5, L3, A5, N1, X1, X3): `sls
 * staff create`, `sls helpdesk verify | issue-passcode | revoke-passcode |
 * unlock` and `sls outbox` against a real database. The staff are created
 * by real `sls` processes side by side, and the refusals of a role that may
 * not act are real processes too (their exit code); the other commands run
 * in this process (`slsInProcess`: `main(argv)` of bin/sls.js, its output
 * and exit code captured), a real process costing a start of Node and of
 * the server each. Logins are checked in this process, on the same database.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createServices, type Services } from '../src/services.js';
import type { CardFile } from '../src/devices/devices.js';
import { cardAnswer, sqliteDatabase, testConfig, type TestDatabase } from './support/harness.js';
import { cliEnv, sls, slsInProcess } from './support/cli.js';
import { readFileSync } from 'node:fs';

// some cases run several `sls` processes (about a second each, more on a loaded machine)
vi.setConfig({ testTimeout: 90_000 });

const PASSWORD = 'correct horse battery';
const meta = { ip: null, userAgent: null };

let db: TestDatabase;
let env: NodeJS.ProcessEnv;
/** The same database, opened in this process to log in and to read the audit log. */
let services: Services;

beforeAll(async () => {
  db = await sqliteDatabase();
  env = cliEnv(db);
  // the users of every test: the staff, and a caller with a card and an e-mail address for the notices
  // (the staff by real processes side by side: each is a process of its own, and SQLite waits for its turn to write)
  const staff = [
    ['agent', 'client_services'],
    ['auditor', 'compliance'],
    ['boss', 'admin'],
  ] as const;
  const createStaff = ([username, role]: (typeof staff)[number]) =>
    sls(['staff', 'create', '--username', username, '--password', PASSWORD, '--role', role], env);
  const created = await Promise.all(staff.map(createStaff));
  staff.forEach(([username, role], i) =>
    expect(created[i], username).toMatchObject({ code: 0, stdout: `Created staff user ${username} (${role}).\n`, stderr: '' }),
  );
  await Promise.all(
    ['carol', 'dave', 'erin'].map(async (username) => {
      expect((await slsInProcess(['user', 'create', '--username', username, '--password', PASSWORD, '--email', `${username}@example.test`], env)).code).toBe(0);
      expect(
        (await slsInProcess(['device', 'add-dscplus', '--user', username, '--pin', '1234', '--out', join(db.dataDir, `${username}.json`)], env)).code,
      ).toBe(0);
    }),
  );
  services = await createServices(testConfig(db), { warn: () => undefined });
}, 120_000);
afterAll(async () => {
  await services?.close();
  await db.drop();
});

function card(username: string): CardFile {
  return JSON.parse(readFileSync(join(db.dataDir, `${username}.json`), 'utf8')) as CardFile;
}

async function verify(user: string, staff = 'agent'): Promise<string> {
  const res = await slsInProcess(['helpdesk', 'verify', '--staff', staff, '--user', user, '--method', 'security_questions', '--notes', 'date of birth'], env);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  expect(res.stdout).toMatch(/^ver_[a-z2-7]{26}\n$/);
  return res.stdout.trim();
}

async function userShow(user: string): Promise<{ id: string; locked: boolean; devices: { type: string; state: string }[] }> {
  const res = await slsInProcess(['user', 'show', user, '--json'], env);
  expect(res.code).toBe(0);
  return JSON.parse(res.stdout);
}

/** A login of the user with this second-factor answer (a function of the challenge). */
async function logIn(username: string, respond: (prompt: { type: string; question?: string }) => string): Promise<void> {
  const flow = await services.login.start({ username, password: PASSWORD, app: 'portal', ...meta });
  await services.login.answer(flow.id, flow.claimToken, respond(flow.challenge as { type: string; question?: string }), meta);
}

describe('sls staff create', () => {
  it('T1/A5: staff users get the role they are created with; an unknown role exits 1 with a one-line message and creates nobody', async () => {
    const staff = await services.users.getByUsername('agent');
    expect(staff.role).toBe('client_services');
    expect((await services.users.getByUsername('auditor')).role).toBe('compliance');
    expect((await services.users.getByUsername('boss')).role).toBe('admin');
    const bad = await slsInProcess(['staff', 'create', '--username', 'eve', '--password', PASSWORD, '--role', 'superuser'], env);
    expect(bad).toMatchObject({ code: 1, stdout: '', stderr: 'sls: “--role” must be client_services, compliance or admin.\n' });
    const client = await slsInProcess(['staff', 'create', '--username', 'eve', '--password', PASSWORD, '--role', 'client'], env);
    expect(client.code).toBe(1);
    expect(client.stderr.split('\n')).toEqual([expect.stringContaining('“--role” must be'), '']);
    expect((await slsInProcess(['user', 'show', 'eve'], env)).stderr).toBe('sls: No such user.\n');
  });
});

describe('sls helpdesk', () => {
  it('T1/T2/T5/X1: verify prints the verification id; issue-passcode prints only the passcode, which logs the caller in; both are audited with staff:<id>', async () => {
    const id = await verify('carol');
    const issued = await slsInProcess(['helpdesk', 'issue-passcode', '--staff', 'agent', '--user', 'carol', '--verification', id], env);
    expect(issued.code).toBe(0);
    expect(issued.stdout).toMatch(/^[A-Z2-9]{8}\n$/);
    const passcode = issued.stdout.trim();
    // issue 16: times people read (SLS_TIME_ZONE), not ISO
    expect(issued.stderr).toMatch(
      /^Full access until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; online card pages until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\. Read it to the caller now: it is not shown again\.\n$/,
    );

    const shown = await userShow('carol');
    expect(shown.devices.map((d) => [d.type, d.state])).toEqual([
      ['dscplus', 'suspended'],
      ['temp_passcode', 'active'],
    ]);
    await logIn('carol', (prompt) => {
      expect(prompt).toEqual({ type: 'passcode' });
      return passcode;
    });

    const staff = await services.users.getByUsername('agent');
    const audit = await slsInProcess(['audit', 'list', '--user', 'carol', '--json'], env);
    const entries = JSON.parse(audit.stdout) as { event: string; actor: string; data: Record<string, unknown> }[];
    expect(entries.find((e) => e.event === 'helpdesk.identity_verified')).toMatchObject({
      actor: `staff:${staff.id}`,
      data: { verificationId: id, method: 'security_questions' },
    });
    expect(entries.find((e) => e.event === 'helpdesk.temp_passcode_issued')).toMatchObject({ actor: `staff:${staff.id}`, data: { verificationId: id } });
    expect(audit.stdout).not.toContain(passcode);
  });

  it('T5, T1, X7: a new passcode replaces the earlier one (each staff member on a verification of their own: a colleague’s is refused); revoke-passcode ends it at once; a second revoke finds none', async () => {
    const ofAgent = await verify('carol');
    expect(await slsInProcess(['helpdesk', 'issue-passcode', '--staff', 'boss', '--user', 'carol', '--verification', ofAgent], env)).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'sls: No such identity verification of yours for this user: record your own.\n',
    });
    const id = await verify('carol', 'boss');
    const passcode = (await slsInProcess(['helpdesk', 'issue-passcode', '--staff', 'boss', '--user', 'carol', '--verification', id], env)).stdout.trim();
    expect(passcode).toMatch(/^[A-Z2-9]{8}$/);
    expect((await userShow('carol')).devices.map((d) => d.state)).toEqual(['suspended', 'revoked', 'active']);
    expect(await slsInProcess(['helpdesk', 'revoke-passcode', '--staff', 'agent', '--user', 'carol'], env)).toMatchObject({
      code: 0,
      stdout: 'Revoked 1 temporary passcode.\n',
    });
    expect(await slsInProcess(['helpdesk', 'revoke-passcode', '--staff', 'agent', '--user', 'carol'], env)).toMatchObject({
      code: 0,
      stdout: 'Revoked 0 temporary passcodes.\n',
    });
    await expect(services.login.start({ username: 'carol', password: PASSWORD, app: 'portal', ...meta })).rejects.toMatchObject({ code: 'NO_ACTIVE_DEVICE' });
  });

  it('T1/D3: issue-passcode --lost marks the permanent device lost', async () => {
    const issued = await slsInProcess(
      ['helpdesk', 'issue-passcode', '--staff', 'agent', '--user', 'erin', '--verification', await verify('erin'), '--lost'],
      env,
    );
    expect(issued.stdout).toMatch(/^[A-Z2-9]{8}\n$/);
    expect((await userShow('erin')).devices.map((d) => [d.type, d.state])).toEqual([
      ['dscplus', 'lost'],
      ['temp_passcode', 'active'],
    ]);
  });

  it('L3/A5: unlock lifts the lock of a verified caller after 10 failed logins; the card logs in again', async () => {
    for (let i = 0; i < 10; i++) {
      await expect(services.login.start({ username: 'dave', password: `wrong ${i}`, app: 'portal', ...meta })).rejects.toMatchObject({
        code: 'INVALID_CREDENTIALS',
      });
    }
    expect((await userShow('dave')).locked).toBe(true);
    const unlocked = await slsInProcess(['helpdesk', 'unlock', '--staff', 'agent', '--user', 'dave', '--verification', await verify('dave')], env);
    expect(unlocked).toMatchObject({ code: 0, stdout: 'Unlocked dave.\n', stderr: '' });
    expect((await userShow('dave')).locked).toBe(false);
    const daveCard = card('dave');
    await logIn('dave', (prompt) => cardAnswer(daveCard, prompt.question!));
    const staff = await services.users.getByUsername('agent');
    const entries = JSON.parse((await slsInProcess(['audit', 'list', '--user', 'dave', '--json'], env)).stdout) as { event: string; actor: string }[];
    expect(entries.find((e) => e.event === 'helpdesk.unlocked')).toMatchObject({ actor: `staff:${staff.id}` });
  });

  it('T1/X3: compliance may not act: verify, issue-passcode, revoke-passcode and unlock exit 1 with the FORBIDDEN_ROLE message, and change nothing', async () => {
    const id = await verify('dave');
    const before = await userShow('dave');
    const attempts = [
      ['verify', '--staff', 'auditor', '--method', 'id_document'],
      ['issue-passcode', '--staff', 'auditor', '--verification', id],
      ['revoke-passcode', '--staff', 'auditor'],
      ['unlock', '--staff', 'auditor', '--verification', id],
      // nor may a client act as staff
      ['verify', '--staff', 'carol', '--method', 'id_document'],
    ];
    const results = await Promise.all(attempts.map((args) => sls(['helpdesk', ...args, '--user', 'dave'], env)));
    results.forEach((res, i) => expect(res, attempts[i]!.join(' ')).toMatchObject({ code: 1, stdout: '', stderr: 'sls: Your role does not allow this.\n' }));
    expect(await userShow('dave')).toEqual(before);
  });

  it('T1/X3: a bad method, an unknown verification, an unknown staff member or caller: exit 1 with one line', async () => {
    const cases: [string[], string][] = [
      [
        ['verify', '--staff', 'agent', '--user', 'dave', '--method', 'guessing'],
        'sls: “method” must be one of security_questions, id_document, callback_on_record, video_call.\n',
      ],
      [
        ['issue-passcode', '--staff', 'agent', '--user', 'dave', '--verification', 'ver_nope'],
        'sls: No such identity verification of yours for this user: record your own.\n',
      ],
      [
        ['unlock', '--staff', 'agent', '--user', 'dave', '--verification', 'ver_nope'],
        'sls: No such identity verification of yours for this user: record your own.\n',
      ],
      [['verify', '--staff', 'nobody', '--user', 'dave', '--method', 'id_document'], 'sls: No such user.\n'],
      [['verify', '--staff', 'agent', '--user', 'nobody', '--method', 'id_document'], 'sls: No such user.\n'],
    ];
    const results = await Promise.all(cases.map(([args]) => slsInProcess(['helpdesk', ...args], env)));
    results.forEach((res, i) => expect(res, cases[i]![0].join(' ')).toMatchObject({ code: 1, stdout: '', stderr: cases[i]![1] }));
    // a verification of another caller does not do
    const ofCarol = await verify('carol');
    expect(await slsInProcess(['helpdesk', 'issue-passcode', '--staff', 'agent', '--user', 'dave', '--verification', ofCarol], env)).toMatchObject({
      code: 1,
      stderr: 'sls: No such identity verification of yours for this user: record your own.\n',
    });
  });
});

describe('sls helpdesk reset-password', () => {
  it('A5: a verified caller gets a one-time password, printed once; the old password no longer works', async () => {
    const reset = await slsInProcess(['helpdesk', 'reset-password', '--staff', 'agent', '--user', 'erin', '--verification', await verify('erin')], env);
    expect(reset).toMatchObject({ code: 0, stderr: '' });
    expect(reset.stdout).toMatch(/^[A-Z2-9]{12}\n$/);
    const erin = await services.users.getByUsername('erin');
    expect(erin.passwordMustChange).toBe(true);
    const denied = await slsInProcess(['helpdesk', 'reset-password', '--staff', 'auditor', '--user', 'erin', '--verification', await verify('erin')], env);
    expect(denied.code).toBe(1);
  });
});

describe('sls outbox', () => {
  it('N1, X6: outbox --user --json shows the notices to the caller, without the passcode; `jobs run` has delivered them', async () => {
    const pending = JSON.parse((await slsInProcess(['outbox', '--user', 'carol', '--json'], env)).stdout) as { status: string }[];
    expect(pending.map((n) => n.status)).toEqual(['pending', 'pending', 'pending']);
    expect((await slsInProcess(['jobs', 'run'], env)).stdout).toMatch(/Outbox: \d+ notice\(s\) delivered, 0 to try again later, 0 failed\./);
    const carol = await slsInProcess(['outbox', '--user', 'carol', '--json'], env);
    expect(carol.code).toBe(0);
    const notices = JSON.parse(carol.stdout) as { template: string; channel: string; recipient: string; status: string; body: string }[];
    expect(notices.map((n) => n.template).sort()).toEqual(['tempPasscodeIssued', 'tempPasscodeIssued', 'tempPasscodeRevoked']);
    for (const n of notices) expect(n).toMatchObject({ channel: 'email', recipient: 'carol@example.test', status: 'sent' });
    expect(notices.find((n) => n.template === 'tempPasscodeIssued')!.body).toContain('Client Services issued a temporary passcode for your user carol.');
    expect(carol.stdout).not.toMatch(/"[A-Z2-9]{8}"/);

    const dave = JSON.parse((await slsInProcess(['outbox', '--user', 'dave', '--json'], env)).stdout) as { template: string }[];
    expect(dave.map((n) => n.template).sort()).toEqual(['userLocked', 'userUnlocked']);

    const text = await slsInProcess(['outbox', '--user', 'dave'], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('dave@example.test');
    expect(text.stdout).toContain('Your user was unlocked');
    expect((await slsInProcess(['outbox', '--user', 'nobody'], env)).stderr).toBe('sls: No such user.\n');
  });
});
