/**
 * Background work, run every minute by each server process: DSC+
 * auto-activation and its notices (C6, N1), forgetting old login
 * failures (L3), deleting temporary passwords the mobile authenticator
 * never fetched (K14), the throttle's counters of windows gone (X5), and
 * the OpenID Provider's back-channel logouts and expired artefacts (I1), the
 * development outbox's codes expired (M7, D5), and the check of the audit
 * chain's new entries (X1). Every job is idempotent and claims its work with a
 * conditional update or a unique notice key, so when several processes
 * share one database no job runs twice. Tests call `runDue()` after moving
 * the clock.
 */
import type { DscPlusRequests } from '../devices/dscplus/requests.js';
import type { PushRequests } from '../devices/mobile/push-requests.js';
import type { Lockout } from '../policy/lockout.js';
import type { Throttle } from '../throttle/throttle.js';
import type { OpenIdConnect } from '../oidc/oidc.js';
import type { ChainWatch } from '../audit/chain-watch.js';
import type { Notifier } from '../notify/notifier.js';
import type { HelpDesk } from '../helpdesk/helpdesk.js';

export interface SchedulerReport {
  autoActivated: number;
  notices: number;
}

/** What the jobs need; the composition root passes them. */
export interface SchedulerDeps {
  dscPlusRequests: DscPlusRequests;
  lockout: Lockout;
  pushRequests: PushRequests;
  throttle: Throttle;
  oidc: Pick<OpenIdConnect, 'prune' | 'deliverBackChannel'>;
  /** X1: the server's own check of the audit chain, from where it left off. */
  chainWatch: Pick<ChainWatch, 'run'>;
  notifier: Pick<Notifier, 'purgeExpiredCodes'>;
  /** T5, A5: the console's secrets never shown, once expired. */
  helpDesk: Pick<HelpDesk, 'pruneHandovers'>;
}

export class Scheduler {
  constructor(private readonly services: SchedulerDeps) {}

  async runDue(): Promise<SchedulerReport> {
    const notices = await this.services.dscPlusRequests.sendAutoActivationNotices();
    const activated = await this.services.dscPlusRequests.autoActivateDue();
    await this.services.lockout.prune();
    await this.services.pushRequests.purgeExpiredMessages();
    await this.services.throttle.prune();
    await this.services.helpDesk.pruneHandovers();
    // I1: back-channel logout of the provider sessions whose session ended; expired codes, tokens, sessions and keys
    await this.services.oidc.deliverBackChannel();
    await this.services.oidc.prune();
    // M7, D5: the development outbox's codes expired: their sealed texts and spoken audio are removed
    await this.services.notifier.purgeExpiredCodes();
    // X1: the entries appended since the last check (last: a long first walk delays no other job)
    await this.services.chainWatch.run();
    return { autoActivated: activated.length, notices };
  }
}
