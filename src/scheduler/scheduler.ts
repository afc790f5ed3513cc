/**
 * Background work, run every minute by each server process: DSC+
 * auto-activation and its notices (C6, N1), forgetting old login
 * failures (L3), deleting temporary passwords the mobile authenticator
 * never fetched (K14), and the throttle's counters of windows gone (X5). Every job is idempotent and claims its work with a
 * conditional update or a unique notice key, so when several processes
 * share one database no job runs twice. Tests call `runDue()` after moving
 * the clock.
 */
import type { DscPlusRequests } from '../devices/dscplus/requests.js';
import type { PushRequests } from '../devices/mobile/push-requests.js';
import type { Lockout } from '../policy/lockout.js';
import type { Throttle } from '../throttle/throttle.js';

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
}

export class Scheduler {
  constructor(private readonly services: SchedulerDeps) {}

  async runDue(): Promise<SchedulerReport> {
    const notices = await this.services.dscPlusRequests.sendAutoActivationNotices();
    const activated = await this.services.dscPlusRequests.autoActivateDue();
    await this.services.lockout.prune();
    await this.services.pushRequests.purgeExpiredMessages();
    await this.services.throttle.prune();
    return { autoActivated: activated.length, notices };
  }
}
