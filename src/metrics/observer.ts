/**
 * What the domain tells about itself for the operators' metrics, without
 * knowing how it is measured (prom-client stays in metrics.ts). Every method
 * is cheap and never throws; `noObserver` ignores everything (the CLI, and
 * services built without metrics).
 */
import type { AuditInput } from '../audit/audit-log.js';

/** How a second-factor answer ended: accepted, wrong (counted), expired/used, locked, or refused otherwise. */
export type AnswerOutcome = 'accepted' | 'wrong' | 'expired' | 'locked' | 'refused';

export interface SecondFactorAnswer {
  /** The flow's kind: login, step_up, activation … */
  kind: string;
  /** The login's application (portal, trading), or null for other kinds. */
  app: string | null;
  deviceType: string | null;
  outcome: AnswerOutcome;
  seconds: number;
}

/** A delivery attempt of the outbox worker, or a push request sent. */
export interface DeliveryResult {
  channel: 'email' | 'sms' | 'voice' | 'push';
  result: 'sent' | 'retry' | 'failed';
}

export interface Observer {
  /** A login flow started: the password was right and the first device's challenge was issued. */
  loginStarted(app: string, deviceType: string): void;
  /** A second-factor answer was handled (any flow kind), and how long the server took. */
  secondFactorAnswered(answer: SecondFactorAnswer): void;
  /** Audit entries appended (logins succeeded, passwords failed, locks, push requests …). */
  audited(entries: readonly AuditInput[]): void;
  delivered(delivery: DeliveryResult): void;
  /** A long poll started waiting; the function returned ends it. */
  waiting(): () => void;
}

export const noObserver: Observer = {
  loginStarted: () => undefined,
  secondFactorAnswered: () => undefined,
  audited: () => undefined,
  delivered: () => undefined,
  waiting: () => () => undefined,
};
