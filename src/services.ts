/**
 * The composition root: every service of the server and the `sls` command,
 * built once from the configuration.
 */
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import { SlsError } from './errors.js';
import { loadMasterKey } from './crypto/master-key.js';
import { SecretBox } from './crypto/secret-box.js';
import { AuditLog } from './audit/audit-log.js';
import { Devices } from './devices/devices.js';
import { LoginFlows } from './flows/login.js';
import { DeviceActivation } from './flows/activation.js';
import { HelpDesk } from './helpdesk/helpdesk.js';
import { Notifier } from './notify/notifier.js';
import { deliveryProviders } from './delivery/providers.js';
import { OnlineCards } from './devices/code-card/online-cards.js';
import { DscPlusRequests } from './devices/dscplus/requests.js';
import { Scheduler } from './scheduler/scheduler.js';
import { Phones } from './devices/sms/phones.js';
import { SmsCodes } from './devices/sms/codes.js';
import { Users } from './identity/users.js';
import { Passwords } from './identity/passwords.js';
import { Lockout } from './policy/lockout.js';
import { Sessions } from './sessions/sessions.js';
import { openStore, type Store } from './store/database.js';
import { migrateToLatest } from './store/migrate.js';

export interface Services {
  config: Config;
  clock: Clock;
  store: Store;
  box: SecretBox;
  audit: AuditLog;
  users: Users;
  devices: Devices;
  lockout: Lockout;
  sessions: Sessions;
  login: LoginFlows;
  notifier: Notifier;
  helpDesk: HelpDesk;
  activation: DeviceActivation;
  onlineCards: OnlineCards;
  dscPlusRequests: DscPlusRequests;
  scheduler: Scheduler;
  passwords: Passwords;
  phones: Phones;
  smsCodes: SmsCodes;
  close(): Promise<void>;
}

export interface ServiceOptions {
  clock?: Clock;
  /** Told about development-only defaults in use (a generated master key …). */
  warn?: (message: string) => void;
}

/** Refuses to run with a master key other than the one the database was set up with. */
async function checkMasterKey(store: Store, box: SecretBox): Promise<void> {
  await store.db
    .insertInto('meta')
    .values({ key: 'master_key_id', value: box.keyId })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  const row = await store.db.selectFrom('meta').select('value').where('key', '=', 'master_key_id').executeTakeFirstOrThrow();
  if (row.value !== box.keyId) {
    throw new SlsError('MASTER_KEY_MISMATCH', {}, `the database was set up with master key ${row.value}, this is ${box.keyId}`);
  }
}

export async function createServices(config: Config, options: ServiceOptions = {}): Promise<Services> {
  const clock = options.clock ?? systemClock;
  const warn = options.warn ?? ((message: string) => process.stderr.write(`${message}\n`));
  const masterKey = loadMasterKey({ masterKey: config.masterKey, dataDir: config.dataDir });
  if (masterKey.origin === 'generated-key-file') {
    warn(
      [
        '*******************************************************************************',
        `WARNING: no SLS_MASTER_KEY set; generated a new master key in ${masterKey.path}.`,
        'Device secrets are encrypted with it: back it up, and for production set',
        'SLS_MASTER_KEY (32 bytes, hex or base64) from a secret store instead.',
        '*******************************************************************************',
      ].join('\n'),
    );
  }
  const store = openStore(config.databaseUrl);
  try {
    await migrateToLatest(store);
    const box = new SecretBox(masterKey.key);
    await checkMasterKey(store, box);
    const audit = new AuditLog(store, clock);
    const users = new Users(store, clock, box, audit);
    const devices = new Devices(store, clock, box, audit);
    const lockout = new Lockout(store, clock, config.policy);
    const sessions = new Sessions(store, clock, config.policy, audit);
    const notifier = new Notifier(store, clock, config.defaultLanguage, deliveryProviders(config.delivery, config.dataDir));
    const smsCodes = new SmsCodes({ store, clock, notifier, policy: config.policy });
    const phones = new Phones({ store, clock, box, audit, users, devices, notifier, smsCodes, policy: config.policy });
    const login = new LoginFlows({ store, clock, config, policy: config.policy, box, audit, users, devices, lockout, sessions, notifier, phones, smsCodes });
    const helpDesk = new HelpDesk({ store, clock, box, audit, users, devices, lockout, notifier, config });
    const activation = new DeviceActivation({ store, clock, box, audit, users, devices, lockout, notifier, config, helpDesk, smsCodes });
    const onlineCards = new OnlineCards({ store, clock, audit, users, devices });
    const dscPlusRequests = new DscPlusRequests({ store, clock, box, audit, users, devices, notifier, config, helpDesk });
    const scheduler = new Scheduler({ dscPlusRequests, lockout });
    const passwords = new Passwords({ users, lockout, audit, notifier });
    return {
      config,
      clock,
      store,
      box,
      audit,
      users,
      devices,
      lockout,
      sessions,
      login,
      notifier,
      helpDesk,
      activation,
      onlineCards,
      dscPlusRequests,
      scheduler,
      passwords,
      phones,
      smsCodes,
      close: () => store.close(),
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}
