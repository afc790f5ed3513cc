/**
 * X4: a server or command that cannot start says why in one line, with the
 * fix, and exits non-zero; it never creates files where it was not asked
 * to, and what it creates only its owner can read.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { sqliteDatabase, TEST_MASTER_KEY, type TestDatabase } from './support/harness.js';
import { cliEnv, sls, startServer } from './support/cli.js';
import { postgresUrl } from './support/environment.js';

// each case runs several `sls` processes (about a second each, more on a loaded machine)
vi.setConfig({ testTimeout: 90_000 });

const CREATE = ['user', 'create', '--username', 'alice', '--password', 'correct horse battery'];

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'sls-start-'));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** The environment of a command with no database or key of the tests: only what each case sets. */
function bareEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const {
    SLS_DATABASE_URL: _url,
    SLS_MASTER_KEY: _key,
    SLS_DATA_DIR: _dir,
    ...env
  } = cliEnv({ name: 'sqlite', url: '', dataDir: '', drop: async () => undefined });
  return { ...env, ...extra };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('X4: the server says why it cannot start', () => {
  let db: TestDatabase;
  let blocker: Server;
  let port: number;
  beforeAll(async () => {
    db = await sqliteDatabase();
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    port = (blocker.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => blocker.close(resolve));
    await db.drop();
  });

  it('X4: a port in use names the port and SLS_PORT, and exits 1', async () => {
    const res = await sls(['serve', '--port', String(port)], cliEnv(db, { SLS_HOST: '127.0.0.1' }));
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      `sls: Port ${port} on 127.0.0.1 is already in use. Stop the program using it, or choose another port with SLS_PORT (or sls serve --port).\n`,
    );
  });

  it('X4: a malformed database URL is refused, and no file of that name is created', async () => {
    const cwd = mkdtempSync(join(scratch, 'cwd-'));
    for (const url of ['localhost:5432/test', 'mysql://db.example/sls', 'postgres:/nohost', 'postgresql://']) {
      const res = await sls(CREATE, bareEnv({ SLS_DATABASE_URL: url, SLS_MASTER_KEY: TEST_MASTER_KEY, SLS_DATA_DIR: join(cwd, 'data') }), undefined, cwd);
      expect(res.code, url).toBe(1);
      expect(res.stderr, url).toBe('sls: Invalid setting SLS_DATABASE_URL: use a file path, sqlite:PATH or postgres://USER@HOST:PORT/DATABASE.\n');
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("X3, X4: a database URL refused is explained in the person's language, not in English (sls serve --db '', a malformed URL)", async () => {
    const cwd = mkdtempSync(join(scratch, 'cwd-'));
    const told = {
      fr_FR: [
        'sls: Paramètre non valide SLS_DATABASE_URL : chemin vide.\n',
        'sls: Paramètre non valide SLS_DATABASE_URL : indiquez un chemin de fichier, sqlite:CHEMIN ou postgres://UTILISATEUR@HÔTE:PORT/BASE.\n',
      ],
      zh_TW: [
        'sls: 無效的設定 SLS_DATABASE_URL：路徑為空。\n',
        'sls: 無效的設定 SLS_DATABASE_URL：請使用檔案路徑、sqlite:PATH 或 postgres://USER@HOST:PORT/DATABASE 格式。\n',
      ],
    };
    for (const [locale, [empty, malformed]] of Object.entries(told)) {
      const env = bareEnv({ LANG: `${locale}.UTF-8`, LC_ALL: '', LC_MESSAGES: '', SLS_MASTER_KEY: TEST_MASTER_KEY, SLS_DATA_DIR: join(cwd, 'data') });
      const none = await sls(['serve', '--db', ''], env, undefined, cwd);
      expect([none.code, none.stderr], locale).toEqual([1, empty]);
      const bad = await sls(CREATE, { ...env, SLS_DATABASE_URL: 'mysql://db.example/sls' }, undefined, cwd);
      expect([bad.code, bad.stderr], locale).toEqual([1, malformed]);
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("X2, X3, X4: a setting refused is explained in the person's language, its reason from the translation files: a refine of the schema, a value named, a setting another needs, zod's own reason", async () => {
    const cwd = mkdtempSync(join(scratch, 'cwd-'));
    const smtp = {
      SLS_EMAIL_PROVIDER: 'smtp',
      SLS_SMTP_HOST: 'mail.example.net',
      SLS_SMTP_FROM: 'sls@example.net',
      SLS_SMTP_TLS: 'starttls',
      SLS_SMTP_PASS: 'x',
    };
    const cases: [Record<string, string>, string, string][] = [
      [
        { SLS_TRUST_PROXY: '*' },
        'Paramètre non valide SLS_TRUST_PROXY : ne faites jamais confiance à tous les clients : nommez les proxys (10.0.0.0/8,127.0.0.1) ou leur nombre de sauts (1).',
        '無效的設定 SLS_TRUST_PROXY：切勿信任所有用戶端，請列出代理伺服器（10.0.0.0/8,127.0.0.1）或代理層數（1）。',
      ],
      [
        { SLS_METRICS_ALLOW: '10.0.0.0/8,prometheus.local' },
        "Paramètre non valide SLS_METRICS_ALLOW : prometheus.local n'est ni une adresse IP ni une plage CIDR.",
        '無效的設定 SLS_METRICS_ALLOW：prometheus.local 不是 IP 位址或 CIDR 範圍。',
      ],
      [
        { SLS_SMS_PROVIDER: 'twilio', SLS_TWILIO_ACCOUNT_SID: 'AC1' },
        'Paramètre non valide SLS_TWILIO_AUTH_TOKEN : SLS_SMS_PROVIDER=twilio a besoin de SLS_TWILIO_AUTH_TOKEN.',
        '無效的設定 SLS_TWILIO_AUTH_TOKEN：SLS_SMS_PROVIDER=twilio 須設定 SLS_TWILIO_AUTH_TOKEN。',
      ],
      [
        smtp,
        'Paramètre non valide SLS_SMTP_TLS : SLS_SMTP_TLS=starttls enverrait SLS_SMTP_PASS en clair à mail.example.net : utilisez SLS_SMTP_TLS=required.',
        '無效的設定 SLS_SMTP_TLS：SLS_SMTP_TLS=starttls 會以明文將 SLS_SMTP_PASS 傳送至 mail.example.net，請使用 SLS_SMTP_TLS=required。',
      ],
      [
        { SLS_HOLIDAYS: '2026-12-25,2026-02-30' },
        "Paramètre non valide SLS_HOLIDAYS : 2026-02-30 n'est pas une date ISO (AAAA-MM-JJ).",
        '無效的設定 SLS_HOLIDAYS：2026-02-30 不是 ISO 日期（YYYY-MM-DD）。',
      ],
      [{ SLS_PORT: 'eighty' }, 'Paramètre non valide SLS_PORT : doit être un nombre.', '無效的設定 SLS_PORT：須為數字。'],
      [
        { SLS_SUPPORT_PHONE: 'call us' },
        'Paramètre non valide SLS_SUPPORT_PHONE : un numéro de téléphone comme +1 877 442 2757.',
        '無效的設定 SLS_SUPPORT_PHONE：須為電話號碼，例如 +1 877 442 2757。',
      ],
    ];
    for (const [settings, french, chinese] of cases) {
      for (const [locale, told] of [
        ['fr_FR', french],
        ['zh_TW', chinese],
      ] as const) {
        const env = bareEnv({
          LANG: `${locale}.UTF-8`,
          LC_ALL: '',
          LC_MESSAGES: '',
          SLS_MASTER_KEY: TEST_MASTER_KEY,
          SLS_DATA_DIR: join(cwd, 'data'),
          ...settings,
        });
        const run = await sls(CREATE, env, undefined, cwd);
        expect([locale, run.code, run.stderr]).toEqual([locale, 1, `sls: ${told}\n`]);
      }
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('X4: a database file in a directory that does not exist is refused, not created with its parents', async () => {
    const cwd = mkdtempSync(join(scratch, 'cwd-'));
    // "postgres//host/db" (a colon forgotten) is a relative file path two directories deep
    const res = await sls(
      CREATE,
      bareEnv({ SLS_DATABASE_URL: 'postgres//localhost/test', SLS_MASTER_KEY: TEST_MASTER_KEY, SLS_DATA_DIR: join(cwd, 'data') }),
      undefined,
      cwd,
    );
    expect(res.code).toBe(1);
    const directory = join(cwd, 'postgres', 'localhost');
    expect(res.stderr).toBe(
      `sls: The directory ${directory} does not exist. Create it (mkdir -p ${directory}) or set SLS_DATABASE_URL (or SLS_DATA_DIR) to an existing directory.\n`,
    );
    const missing = join(scratch, 'nowhere', 'deeper', 'data');
    const dataDir = await sls(CREATE, bareEnv({ SLS_DATA_DIR: missing }), undefined, cwd);
    expect(dataDir.code).toBe(1);
    expect(dataDir.stderr).toContain(`The directory ${missing} does not exist.`);
    expect(readdirSync(cwd)).toEqual([]);
    expect(existsSync(join(scratch, 'nowhere'))).toBe(false);
  });

  it('X4, D5: the data directory, the SQLite files and the generated key are readable by their owner only', async () => {
    const dataDir = join(mkdtempSync(join(scratch, 'modes-')), 'data');
    const res = await sls(CREATE, bareEnv({ SLS_DATA_DIR: dataDir }));
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('generated a new master key');
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    for (const file of readdirSync(dataDir)) {
      expect(statSync(join(dataDir, file)).mode & 0o077, file).toBe(0);
    }
    expect(readdirSync(dataDir)).toEqual(expect.arrayContaining(['sls.db', 'master.key']));
    // X2: the warning in the person's language
    const french = await sls(CREATE, bareEnv({ SLS_DATA_DIR: join(dirname(dataDir), 'fr'), LC_ALL: 'fr_FR.UTF-8' }));
    expect(french.stderr).toContain('une nouvelle clé maîtresse a été générée');
  });

  it('I1, D6, X4: a server reached from other machines without SLS_PUBLIC_URL says at start that a Host header would decide its addresses; on localhost, or with the URL set, it says nothing of it', async () => {
    const started = async (extra: Record<string, string>) => {
      const server = await startServer(bareEnv({ SLS_DATABASE_URL: db.url, SLS_MASTER_KEY: TEST_MASTER_KEY, ...extra }));
      await server.stop();
      return server.started;
    };
    expect(await started({ SLS_HOST: '0.0.0.0' })).toContain('WARNING: no SLS_PUBLIC_URL set while listening on 0.0.0.0');
    expect(await started({ SLS_HOST: '0.0.0.0', SLS_PUBLIC_URL: 'https://login.example' })).not.toContain('SLS_PUBLIC_URL');
    expect(await started({ SLS_HOST: '127.0.0.1' })).not.toContain('SLS_PUBLIC_URL');
  });

  it('X4, D5: a first start without a key beside a database that holds data refuses before writing a stray master.key', async () => {
    const dataDir = mkdtempSync(join(scratch, 'key-'));
    const url = `sqlite:${join(dataDir, 'sls.db')}`;
    expect((await sls(CREATE, bareEnv({ SLS_DATA_DIR: dataDir, SLS_DATABASE_URL: url, SLS_MASTER_KEY: TEST_MASTER_KEY }))).code).toBe(0);
    const res = await sls(['user', 'show', 'alice'], bareEnv({ SLS_DATA_DIR: dataDir, SLS_DATABASE_URL: url }));
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      `sls: The database ${join(dataDir, 'sls.db')} already holds data, but no master key was given: SLS_MASTER_KEY is not set and ${join(dataDir, 'master.key')} does not exist. ` +
        'Set SLS_MASTER_KEY to the key this database was set up with, or restore the key file; a new key could not read its secrets.\n',
    );
    expect(existsSync(join(dataDir, 'master.key'))).toBe(false);
    // with its key, the same command works
    expect((await sls(['user', 'show', 'alice'], bareEnv({ SLS_DATA_DIR: dataDir, SLS_DATABASE_URL: url, SLS_MASTER_KEY: TEST_MASTER_KEY }))).code).toBe(0);
  });

  it('X4, X3, D5, K3: master.key and vapid.json in the data directory are read to 4 KiB at most: a bigger file or a pipe (a FIFO no one writes to) stops the start at once, naming the file and the setting, and nothing waits or fills the memory', async () => {
    const fifoKey = mkdtempSync(join(scratch, 'keyfiles-'));
    const cases: [string, string, Record<string, string>, RegExp][] = [];
    // master.key: 65 MiB (a sparse file), then a FIFO
    const hugeKey = mkdtempSync(join(scratch, 'hugekey-'));
    writeFileSync(join(hugeKey, 'master.key'), '');
    truncateSync(join(hugeKey, 'master.key'), 65 * 1024 * 1024);
    cases.push([
      hugeKey,
      'master.key',
      {},
      /^sls: The key file .*master\.key is bigger than a key file may be \(4 KiB at most\): put back the file sls wrote, or give the key in SLS_MASTER_KEY\.\n$/,
    ]);
    execFileSync('mkfifo', [join(fifoKey, 'master.key')]);
    cases.push([fifoKey, 'master.key', {}, /^sls: The key file .*master\.key cannot be read as a key file .*SLS_MASTER_KEY\.\n$/]);
    // vapid.json, for the Web Push provider (the master key given)
    const hugeVapid = mkdtempSync(join(scratch, 'hugevapid-'));
    writeFileSync(join(hugeVapid, 'vapid.json'), '');
    truncateSync(join(hugeVapid, 'vapid.json'), 65 * 1024 * 1024);
    const push = { SLS_MASTER_KEY: TEST_MASTER_KEY, SLS_PUSH_PROVIDER: 'web-push' };
    cases.push([hugeVapid, 'vapid.json', push, /^sls: The key file .*vapid\.json is bigger than a key file may be \(4 KiB at most\).*SLS_VAPID_PUBLIC_KEY/]);
    const fifoVapid = mkdtempSync(join(scratch, 'fifovapid-'));
    execFileSync('mkfifo', [join(fifoVapid, 'vapid.json')]);
    cases.push([fifoVapid, 'vapid.json', push, /^sls: The key file .*vapid\.json cannot be read as a key file/]);
    const runs = await Promise.all(cases.map(([dataDir, , extra]) => sls(CREATE, bareEnv({ SLS_DATA_DIR: dataDir, ...extra }))));
    runs.forEach((run, i) => {
      expect([cases[i]![1], run.code]).toEqual([cases[i]![1], 1]);
      expect(run.stderr).toMatch(cases[i]![3]);
    });
  });

  it('X4: a file that is not a SQLite database is named, with the reason', async () => {
    const dataDir = mkdtempSync(join(scratch, 'notdb-'));
    const path = join(dataDir, 'sls.db');
    await import('node:fs').then((fs) => fs.writeFileSync(path, 'this is not a database, just some text that fills the header page of a file'.repeat(20)));
    const res = await sls(CREATE, bareEnv({ SLS_DATA_DIR: dataDir, SLS_MASTER_KEY: TEST_MASTER_KEY }));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`^sls: The SQLite database ${path} cannot be used: file is not a database\\. `));
  });

  it('X4: a database migrated by a newer version is refused, naming the migration', async () => {
    const dataDir = mkdtempSync(join(scratch, 'newer-'));
    const env = bareEnv({ SLS_DATA_DIR: dataDir, SLS_MASTER_KEY: TEST_MASTER_KEY });
    expect((await sls(CREATE, env)).code).toBe(0);
    const BetterSqlite3 = (await import('better-sqlite3')).default;
    const raw = new BetterSqlite3(join(dataDir, 'sls.db'));
    raw.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run('9999_from_the_future', new Date().toISOString());
    raw.close();
    const res = await sls(['user', 'show', 'alice'], env);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('it has 9999_from_the_future, unknown to this one');
  });

  it('X4: an unexpected failure still says what happened, and SLS_DEBUG=1 adds where', async () => {
    // a directory where the database file should be: not a SQLite error, not one of ours
    const dataDir = mkdtempSync(join(scratch, 'dir-'));
    const path = join(dataDir, 'sls.db');
    await import('node:fs').then((fs) => fs.mkdirSync(path));
    const res = await sls(CREATE, bareEnv({ SLS_DATA_DIR: dataDir, SLS_MASTER_KEY: TEST_MASTER_KEY }));
    expect(res.code).toBe(1);
    expect(res.stderr).not.toContain('Something went wrong');
    expect(res.stderr.split('\n')[0]).toMatch(/^sls: .*sls\.db/);
    const debug = await sls(CREATE, bareEnv({ SLS_DATA_DIR: dataDir, SLS_MASTER_KEY: TEST_MASTER_KEY, SLS_DEBUG: '1' }));
    expect(debug.stderr.split('\n').length).toBeGreaterThan(2);
  });
});

describe.skipIf(!postgresUrl)('X4: PostgreSQL that cannot be used is named, without its password', () => {
  const base = new URL(postgresUrl ?? 'postgres://postgres@127.0.0.1:5432/test');

  function urlWith(changes: { database?: string; user?: string; port?: number }): string {
    const url = new URL(base.toString());
    if (changes.database) url.pathname = `/${changes.database}`;
    if (changes.user) url.username = changes.user;
    if (changes.port) url.port = String(changes.port);
    url.password = 'Sup3rSecret';
    return url.toString();
  }
  const server = `${base.hostname}:${base.port || '5432'}`;

  it('X4: a database that does not exist: its name, the server and the createdb command', async () => {
    const name = `sls_missing_${process.pid}`;
    const res = await sls(
      ['serve', '--port', '0'],
      bareEnv({ SLS_DATABASE_URL: urlWith({ database: name }), SLS_MASTER_KEY: TEST_MASTER_KEY, SLS_DATA_DIR: scratch }),
    );
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      `sls: The PostgreSQL database "${name}" does not exist on ${server}. Create it with: createdb -h ${base.hostname} -p ${base.port || '5432'} -U ${decodeURIComponent(base.username) || 'postgres'} ${name}\n`,
    );
    expect(res.stderr).not.toContain('Sup3rSecret');
  });

  it('X4: a server that does not answer: where, and SLS_DATABASE_URL', async () => {
    const port = await freePort();
    const res = await sls(['serve', '--port', '0'], bareEnv({ SLS_DATABASE_URL: urlWith({ port }), SLS_MASTER_KEY: TEST_MASTER_KEY, SLS_DATA_DIR: scratch }));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      new RegExp(
        `^sls: Cannot connect to PostgreSQL at ${base.hostname}:${port} \\(.*ECONNREFUSED.*\\)\\. Start it, or point SLS_DATABASE_URL at a running server\\.\\n$`,
      ),
    );
    expect(res.stderr).not.toContain('Sup3rSecret');
  });

  it('X4: a server that refuses the user: which user, and to check SLS_DATABASE_URL', async () => {
    const res = await sls(CREATE, bareEnv({ SLS_DATABASE_URL: urlWith({ user: 'nobody_here' }), SLS_MASTER_KEY: TEST_MASTER_KEY, SLS_DATA_DIR: scratch }));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      new RegExp(
        `^sls: PostgreSQL at ${server} refused the connection of user "nobody_here" \\(.*\\)\\. Check the user and password in SLS_DATABASE_URL\\.\\n$`,
      ),
    );
    expect(res.stderr).not.toContain('Sup3rSecret');
  });
});
