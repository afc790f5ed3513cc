/**
 * The composition root: every service of the server and the `sls` command,
 * built once from the configuration.
 */
import type { DeviceKind, DeviceKinds } from './devices/types.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import { SlsError } from './errors.js';
import { loadMasterKey } from './crypto/master-key.js';
import { dirname } from 'node:path';
import { exposedMode, writableByOthers } from './directories.js';
import { SecretBox } from './crypto/secret-box.js';
import { AuditLog, auditKeys, findingError } from './audit/audit-log.js';
import { Devices } from './devices/devices.js';
import { deviceKinds } from './devices/registry.js';
import { softPinHash } from './devices/dscplus/dscplus.js';
import { newTemporaryPasscode } from './devices/temp-passcode/temp-passcode.js';
import { LoginFlows } from './flows/login.js';
import { DeviceActivation, StepUp } from './flows/activation.js';
import { HelpDesk } from './helpdesk/helpdesk.js';
import { Notifier } from './notify/notifier.js';
import { OutboxWorker, type OutboxWorkerDeps } from './notify/outbox-worker.js';
import { deliveryProviders } from './delivery/providers.js';
import { OnlineCards } from './devices/code-card/online-cards.js';
import { DscPlusRequests } from './devices/dscplus/requests.js';
import { Scheduler } from './scheduler/scheduler.js';
import { ChainWatch } from './audit/chain-watch.js';
import { Throttle } from './throttle/throttle.js';
import { databaseCounters, redisCounters } from './throttle/counters.js';
import { Phones } from './devices/sms/phones.js';
import { SmsCodes } from './devices/sms/codes.js';
import { Users } from './identity/users.js';
import { NoticePreferences } from './identity/notice-preferences.js';
import { Entities } from './identity/entities.js';
import { SecurityRights } from './identity/security-rights.js';
import { Passwords } from './identity/passwords.js';
import { Lockout } from './policy/lockout.js';
import { Sessions } from './sessions/sessions.js';
import { checkingActingSessions } from './sessions/in-flight.js';
import { detached } from './request-context.js';
import { databaseStartFailure, describeDatabase, openStore, type Executor, type Store } from './store/database.js';
import { FirstFactor } from './flows/first-factor.js';
import { Answers } from './flows/answers.js';
import { FlowLimits } from './flows/flow-limits.js';
import { MobileEnrolment } from './devices/mobile/enrolment.js';
import { PushRequests } from './devices/mobile/push-requests.js';
import { openSignals, type Signals } from './push/signals.js';
import { noPushProvider, type PushProvider } from './push/provider.js';
import { sharedVapidKeys, webPushProvider } from './push/web-push.js';
import { migrateToLatest, migrationState } from './store/migrate.js';
import { keepFirstMeta } from './store/meta.js';
import { describeError, environmentLanguage, translator } from './i18n/i18n.js';
import { Metrics, type PoolStats } from './metrics/metrics.js';
import type { Observer } from './metrics/observer.js';
import { relyingPartyOf } from './devices/security-key/security-key.js';
import { SecurityKeys, suspicionNotice } from './devices/security-key/registrations.js';
import { ApiKeys } from './entitlements/api-keys.js';
import { BusinessCalendar } from './entitlements/business-days.js';
import { FxRates } from './entitlements/fx.js';
import { NO_SHARING_NO_OPT_OUT, Withdrawals } from './entitlements/withdrawals.js';
import { DeviceSharing } from './sharing/sharing.js';
import { OptOuts } from './identity/opt-out.js';
import { OidcClients } from './oidc/clients.js';
import { OidcKeys } from './oidc/keys.js';
import { DEFAULT_ISSUER, OpenIdConnect } from './oidc/oidc.js';
import { TOKEN_LIFETIME_S } from './oidc/claims.js';

export interface Services {
  config: Config;
  clock: Clock;
  store: Store;
  box: SecretBox;
  audit: AuditLog;
  users: Users;
  /** A1: entities and their identification data. */
  entities: Entities;
  /** A2, O3: who may change an account's security settings. */
  securityRights: SecurityRights;
  devices: Devices;
  lockout: Lockout;
  sessions: Sessions;
  login: LoginFlows;
  notifier: Notifier;
  /** N1: the language and time zone of a user's notices: chosen, or remembered from logins. */
  noticePreferences: NoticePreferences;
  /** X6: delivers the stored notices; `sls serve` starts it, `sls jobs run` drains it. */
  outbox: OutboxWorker;
  helpDesk: HelpDesk;
  activation: DeviceActivation;
  stepUp: StepUp;
  onlineCards: OnlineCards;
  dscPlusRequests: DscPlusRequests;
  scheduler: Scheduler;
  chainWatch: ChainWatch;
  throttle: Throttle;
  passwords: Passwords;
  phones: Phones;
  smsCodes: SmsCodes;
  signals: Signals;
  pushRequests: PushRequests;
  mobileEnrolment: MobileEnrolment;
  /** FIDO2 security keys and passkeys: registration, names, removal. */
  securityKeys: SecurityKeys;
  /** I3: the integrators' API keys. */
  apiKeys: ApiKeys;
  /** W3: the operator's exchange rates. */
  fx: FxRates;
  /** W1-W3: withdrawal checks and records, entitlements. */
  withdrawals: Withdrawals;
  /** H1-H5, T4: one device shared between usernames. */
  sharing: DeviceSharing;
  /** O1-O3: opting out of the second factor for trading logins, and back in. */
  optOuts: OptOuts;
  /** I1: the OpenID Provider's clients, keys, claims and back-channel logout (the provider is mounted by the HTTP app). */
  oidc: OpenIdConnect;
  /** The VAPID public key apps subscribe with (Web Push), or null. */
  vapidPublicKey: string | null;
  /** The operators' metrics (GET /metrics), this server's own registry. */
  metrics: Metrics;
  /** The registered device kinds (D2 strength, W1 row, access windows, capabilities). */
  deviceKind: DeviceKinds;
  close(): Promise<void>;
}

/** Notices not delivered yet (an index on status serves the count). */
async function outboxPending(store: Store): Promise<{ pending: number; sending: number }> {
  const rows = await store.db
    .selectFrom('notifications')
    .select((eb) => ['status', eb.fn.countAll<number>().as('count')])
    .where('status', 'in', ['pending', 'sending'])
    .groupBy('status')
    .execute();
  const count = (status: string) => Number(rows.find((row) => row.status === status)?.count ?? 0);
  return { pending: count('pending'), sending: count('sending') };
}

/** The signals, with the long polls waiting on them counted. */
function observedSignals(signals: Signals, observer: Pick<Observer, 'waiting'>): Signals {
  return {
    publish: (...topics) => signals.publish(...topics),
    waitFor: async (topics, timeoutMs, check, abort) => {
      const done = observer.waiting();
      try {
        return await signals.waitFor(topics, timeoutMs, check, abort);
      } finally {
        done();
      }
    },
    stopWaiting: () => signals.stopWaiting(),
    close: () => signals.close(),
  };
}

/** K3, X4: the configured push provider and the key apps subscribe with, the same for every process sharing the database. */
async function pushProviderOf(
  config: Config,
  clock: Clock,
  warn: (message: string) => void,
  store: Store,
  box: SecretBox,
): Promise<{ provider: PushProvider; vapidPublicKey: string | null }> {
  if (config.push.provider === 'none') return { provider: noPushProvider, vapidPublicKey: null };
  // K3, X4: one pair for every process sharing the database, whatever its data directory
  const { keys, path } = await sharedVapidKeys({ publicKey: config.push.publicKey, privateKey: config.push.privateKey, dataDir: config.dataDir }, store, box);
  if (path) warnIfExposed(path, warn);
  return {
    provider: webPushProvider({ vapid: { ...keys, subject: config.push.subject }, timeoutMs: config.push.timeoutMs, clock }),
    vapidPublicKey: keys.publicKey,
  };
}

export interface ServiceOptions {
  clock?: Clock;
  /** Told about development-only defaults in use (a generated master key …). */
  warn?: (message: string) => void;
  /** Told of each delivery attempt of the outbox worker (for the server's log). */
  logOutbox?: OutboxWorkerDeps['log'];
  /** Device kinds of the deployment's own, registered beside the built-in ones (docs/architecture.md). */
  deviceKinds?: readonly DeviceKind[];
  /** X1: start even when the audit head is not anchored (the audit commands: list, verify, anchor); otherwise AUDIT_NOT_ANCHORED. */
  allowUnanchoredAudit?: boolean;
}

/** X4, D5: a file holding secrets that other users of the machine may read is named, with the fix, at every start. */
function warnIfExposed(path: string, warn: (message: string) => void): void {
  const mode = exposedMode(path);
  if (mode !== null) warn(translator(environmentLanguage())('ops.exposedFile', { path, mode }));
}

/** X4, D5: a directory holding key files or the database that other users of the machine may write in is named, with the fix, at every start. */
function warnIfOthersWrite(directory: string, warn: (message: string) => void): void {
  const mode = writableByOthers(directory);
  if (mode !== null) warn(translator(environmentLanguage())('ops.exposedDirectory', { path: directory, mode }));
}

/** Refuses to run with a master key other than the one the database was set up with. */
async function checkMasterKey(store: Store, box: SecretBox): Promise<void> {
  const recorded = await keepFirstMeta(store.db, 'master_key_id', box.keyId);
  if (recorded !== box.keyId) {
    throw new SlsError('MASTER_KEY_MISMATCH', {}, `the database was set up with master key ${recorded}, this is ${box.keyId}`);
  }
}

export async function createServices(config: Config, options: ServiceOptions = {}): Promise<Services> {
  const clock = options.clock ?? systemClock;
  const warn = options.warn ?? ((message: string) => process.stderr.write(`${message}\n`));
  const opened = openStore(config.databaseUrl);
  try {
    // X4: a database that cannot be used says why at once, and how to fix it
    const state = await migrationState(opened).catch((error: unknown) => {
      throw databaseStartFailure(error, opened.location) ?? error;
    });
    const masterKey = loadMasterKey({
      masterKey: config.masterKey,
      dataDir: config.dataDir,
      ...(state.applied.length > 0 ? { existingDatabase: describeDatabase(opened.location) } : {}),
    });
    if (masterKey.origin === 'generated-key-file') {
      const rule = '*'.repeat(79);
      warn([rule, translator(environmentLanguage())('ops.masterKeyGenerated', { path: masterKey.path }), rule].join('\n'));
    }
    const sqliteFile = opened.dialect === 'sqlite' && opened.location !== ':memory:' ? opened.location : null;
    for (const file of [masterKey.path, sqliteFile]) if (file) warnIfExposed(file, warn);
    for (const directory of new Set([masterKey.path, sqliteFile].flatMap((file) => (file ? [dirname(file)] : [])))) {
      warnIfOthersWrite(directory, warn);
    }
    await migrateToLatest(opened);
    const box = new SecretBox(masterKey.key);
    await checkMasterKey(opened, box);
    const deviceKind = deviceKinds(options.deviceKinds);
    const metrics = new Metrics({
      outboxPending: () => outboxPending(opened),
      pool: (): PoolStats => opened.pool(),
      deviceTypes: deviceKind.all.map((kind) => kind.type),
    });
    const audit = new AuditLog(opened, clock, auditKeys(masterKey.key), metrics);
    // X1: a new database's head is signed; any other unsigned head waits for sls audit anchor (decision 0006)
    await audit.open({ allowUnanchored: options.allowUnanchoredAudit === true });
    // L8 (decision 0031): every service writes through a store whose transactions check again, under the audit lock, the
    // session the request acts with; the audit log records refusals on the store as opened
    const store = checkingActingSessions(opened, {
      clock,
      audit,
      stands: async (db, deviceId, userId) => (await devices.usableBy(deviceId, userId, db)) !== null,
      holder: (db, accountId) => securityRights.holder(accountId, db),
    });
    const users = new Users(store, clock, box, audit, config.policy.oneTimePasswordTtlMs);
    const entities = new Entities(store, clock, box, audit);
    const securityRights = new SecurityRights(store, audit);
    const relyingParty = relyingPartyOf(config);
    // I1: a session's end is told to the relying parties of the provider sessions standing on it (back-channel logout)
    let oidcRef: OpenIdConnect | null = null;
    const notifier = new Notifier(store, clock, config.defaultLanguage, deliveryProviders(config.delivery, config.dataDir), {
      timeZone: config.timeZone,
      retry: config.delivery.retry,
      smsCountries: config.policy.smsCountries,
      box,
      codeTtlMs: config.policy.smsCodeTtlMs,
    });
    // the back-channel logout is delivered on no session's authority (a timer the ending request leaves behind)
    const sessions = new Sessions(store, clock, config.policy, audit, () => detached(() => oidcRef?.nudge()), notifier);
    // a key suspended as cloned ends its sessions (L8) and is told to its user
    const devices = new Devices(store, clock, box, audit, {
      relyingParty,
      deviceKind,
      onSuspected: (device, reason) => suspicionNotice({ users, notifier })(device, reason),
      sessions,
    });
    const lockout = new Lockout(store, clock, config.policy, (username) => audit.usernameDigest(username));
    // L3, X1: a lock kept under a username's text by a version before is kept under its digest (decision 0001)
    await lockout.keyTypedUsernames();
    const outbox = new OutboxWorker({
      store,
      clock,
      notifier,
      config: config.outbox,
      log: (event) => {
        if (event.outcome !== 'lost') metrics.delivered({ channel: event.channel, result: event.outcome === 'retrying' ? 'retry' : event.outcome });
        options.logOutbox?.(event);
      },
    });
    const noticePreferences = new NoticePreferences({
      store,
      clock,
      audit,
      users,
      notifier,
      defaults: { language: config.defaultLanguage, timeZone: config.timeZone },
    });
    const answers = new Answers({ store, clock, lockout, audit, users, devices, notifier, policy: config.policy, observer: metrics });
    const flowLimits = new FlowLimits({ store, clock, audit, policy: config.policy });
    const smsCodes = new SmsCodes({ store, clock, notifier, policy: config.policy, audit });
    const phones = new Phones({ store, clock, box, audit, users, devices, notifier, smsCodes, policy: config.policy, sessions });
    const signals = observedSignals(openSignals(store), metrics);
    const push = await pushProviderOf(config, clock, warn, opened, box);
    const firstFactor = new FirstFactor({ users, answers, clock, audit });
    const optOuts = new OptOuts({ store, clock, audit, notifier, users, rights: securityRights, sessions });
    const pushRequests = new PushRequests({
      store,
      clock,
      box,
      audit,
      devices,
      deviceKind,
      users,
      signals,
      config,
      notifier,
      provider: push.provider,
      answers,
      sessions,
    });
    const login = new LoginFlows({
      store,
      clock,
      config,
      policy: config.policy,
      box,
      audit,
      users,
      devices,
      deviceKind,
      lockout,
      sessions,
      phones,
      smsCodes,
      signals,
      pushRequests,
      firstFactor,
      answers,
      flowLimits,
      noticePreferences,
      observer: metrics,
      // H: the device another username shares (the sharing is built below)
      sharedDevices: { sharedWith: (userId) => sharing.sharedWith(userId), withOwnDevices: (userId) => sharing.withOwnDevices(userId) },
      optedOut: optOuts,
    });
    const helpDesk = new HelpDesk({
      store,
      clock,
      box,
      audit,
      users,
      entities,
      devices,
      lockout,
      notifier,
      config,
      pushRequests,
      signals,
      sessions,
      phones,
      newTemporaryPasscode,
      // T4: no temporary passcode for users who share
      sharing: { sharesDevice: (userId, db) => sharing.sharesDevice(userId, db), apart: (staffUserId, entityId) => sharing.apart(staffUserId, entityId) },
    });
    const mobileEnrolment = new MobileEnrolment({
      store,
      clock,
      box,
      audit,
      users,
      devices,
      deviceKind,
      lockout,
      notifier,
      config,
      phones,
      smsCodes,
      signals,
      sessions,
      firstFactor,
      helpDesk,
      answers,
      flowLimits,
      rights: securityRights,
      // H, K7: a shared physical device proves possession as the user's own
      sharedDevices: { sharedWith: (userId) => sharing.sharedWith(userId) },
    });
    const activationDeps = {
      store,
      clock,
      box,
      audit,
      users,
      devices,
      deviceKind,
      softPinHash,
      lockout,
      notifier,
      config,
      helpDesk,
      smsCodes,
      sessions,
      pushRequests,
      answers,
      flowLimits,
      rights: securityRights,
      sharedDevices: {
        sharedWith: (userId: string) => sharing.sharedWith(userId),
        withOwnDevices: (userId: string) => sharing.withOwnDevices(userId),
        setsAside: (userId: string, db?: Executor) => sharing.setsAside(userId, db),
      },
    };
    // H1-H5: sharing one device between usernames; the owner's device proves under the owner's lock (L3)
    const sharing = new DeviceSharing({
      store,
      clock,
      config,
      box,
      audit,
      users,
      entities,
      devices,
      deviceKind,
      firstFactor,
      answers,
      flowLimits,
      smsCodes,
      notifier,
      staff: {
        decideOn: (staffUserId, targets, action) => helpDesk.staffOnSharing(staffUserId, targets, action),
        cancelFor: (staffUserId, targets, action) => helpDesk.staffOnSharing(staffUserId, targets, action),
        staff: (staffUserId, action) => helpDesk.staff(staffUserId, action),
      },
      sessions,
    });
    const activation = new DeviceActivation(activationDeps);
    const stepUp = new StepUp(activation, { ...activationDeps, firstFactor });
    const onlineCards = new OnlineCards({ store, clock, audit, users, devices });
    const dscPlusRequests = new DscPlusRequests({
      store,
      clock,
      box,
      audit,
      users,
      devices,
      notifier,
      config,
      helpDesk,
      sessions,
      // R2, C6: a request made under temporary access is marked, for client services to confirm its address
      permanentProof: (session) => stepUp.hasPermanentProof(session),
      lastProof: (session) => stepUp.lastProof(session),
      // D2, K7: and so is one made on a proof weaker than the user's strongest device
      weakerProof: async (session) => (await stepUp.proofToAddRefusal(session, 'dscplus')) !== null,
      setAside: (userId, db) => sharing.setsAside(userId, db),
    });
    // X5: the database counts when Redis fails (decision 0017)
    const counters = config.redisUrl ? redisCounters(config.redisUrl, databaseCounters(store), () => metrics.throttleFellBack()) : databaseCounters(store);
    const throttle = new Throttle(counters, clock, config.limits);
    const fx = new FxRates(store, clock, audit, config.fxRateMaxAgeMs);
    // W1: a requester's limits follow the shared device (H); an opted-out user has the None row (O1)
    const withdrawals = new Withdrawals({
      store,
      clock,
      audit,
      devices,
      deviceKind,
      fx,
      calendar: new BusinessCalendar(config.businessDays.holidays, config.businessDays.timeZone),
      hooks: {
        ...NO_SHARING_NO_OPT_OUT,
        sharedDeviceOf: (userId, db) => sharing.sharedDeviceOf(userId, db),
        optedOut: (userId, db) => optOuts.isOptedOut(userId, db),
      },
      lastProof: (session) => stepUp.lastProof(session),
    });
    const oidc = new OpenIdConnect({
      store,
      clock,
      audit,
      deviceKind,
      lastProof: (session) => stepUp.lastProof(session),
      liveSession: (sessionId, options) => sessions.liveById(sessionId, options),
      clients: new OidcClients(store, clock, box, audit),
      keys: new OidcKeys(store, clock, box, audit, (TOKEN_LIFETIME_S + 60) * 1000),
      issuer: (config.publicUrl ?? DEFAULT_ISSUER).replace(/\/+$/, ''),
      // W1: the limits told to applications are those of the session the token stands on (weaker of the user's and its proof's)
      withdrawalLimitsOf: (userId, proved) => withdrawals.limitsProvedBy(userId, proved),
    });
    oidcRef = oidc;
    // X1: the server checks its own audit chain (at start in serve, then with the scheduler)
    const chainWatch = new ChainWatch({
      store,
      audit,
      observer: metrics,
      broken: (finding) => warn(describeError(translator(environmentLanguage()), findingError(finding))),
    });
    const scheduler = new Scheduler({ dscPlusRequests, lockout, pushRequests, throttle, oidc, notifier, chainWatch, helpDesk });
    const passwords = new Passwords({ users, answers, notifier, sessions });
    const securityKeys = new SecurityKeys({
      store,
      clock,
      box,
      audit,
      users,
      devices,
      relyingParty,
      aaguids: config.securityKeyAaguids,
      rpName: translator(config.defaultLanguage)('web.productName'),
      sessions,
      notifier,
    });
    const apiKeys = new ApiKeys(store, clock, box, audit);
    return {
      config,
      clock,
      store,
      box,
      audit,
      users,
      entities,
      securityRights,
      devices,
      lockout,
      sessions,
      login,
      notifier,
      noticePreferences,
      outbox,
      helpDesk,
      activation,
      stepUp,
      onlineCards,
      dscPlusRequests,
      scheduler,
      chainWatch,
      throttle,
      passwords,
      phones,
      smsCodes,
      signals,
      pushRequests,
      mobileEnrolment,
      securityKeys,
      apiKeys,
      fx,
      withdrawals,
      sharing,
      optOuts,
      oidc,
      vapidPublicKey: push.vapidPublicKey,
      metrics,
      deviceKind,
      close: async () => {
        oidc.stop();
        await outbox.stop();
        // X1: the newest audit head this process saw, for the next start (a head moved back meanwhile is then seen)
        await audit.keepSeen().catch(() => undefined);
        await throttle.close();
        await signals.close();
        await store.close();
      },
    };
  } catch (error) {
    await opened.close();
    throw error;
  }
}
