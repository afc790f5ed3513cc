/**
 * Mobile push services (K3): how a push request reaches a phone whose app
 * is closed. The app's live connection (src/push/signals.ts) serves an
 * open app; a push provider wakes a closed one through the phone's push
 * service (Web Push, FCM, APNs), which cannot be reached from here.
 *
 * The payload never carries the number to type (K13) nor anything secret:
 * only which request waits, so that the app opens and fetches it.
 */

/** Where a phone's push service accepts messages for the app, as the app registered it. */
export interface PushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** What a push says: a request waits for this user; the app fetches the rest itself. */
export interface PushNotice {
  requestId: string;
  username: string;
  kind: 'login' | 'step_up';
  app: 'portal' | 'trading';
  /** ISO time after which the request is gone (K13: 2 minutes). */
  expiresAt: string;
  /** Title and body to show, already in the user's language. */
  title: string;
  body: string;
}

export type PushOutcome =
  | { status: 'sent' }
  /** The subscription is gone (the service answered 404 or 410): forget it. */
  | { status: 'expired' }
  | { status: 'failed'; error: string };

export interface PushProvider {
  readonly name: string;
  send(subscription: PushSubscription, notice: PushNotice): Promise<PushOutcome>;
}

/** No push service configured: open apps still get requests over their live connection. */
export const noPushProvider: PushProvider = {
  name: 'none',
  async send() {
    return { status: 'failed', error: 'no push provider configured' };
  },
};
