/**
 * The live connection (docs/decisions/0004): while the app is open it keeps
 * a long poll running for every user active on this phone, so that push
 * requests (K3), messages (K14) and revocations (K7) arrive at once.
 *
 * The server answers at once while requests are pending. While one waits
 * here, the app asks again every 2 seconds without waiting (so that a
 * request that expires on the server's clock, or is answered elsewhere,
 * disappears at once) rather than in a tight loop; otherwise each poll
 * waits up to 25 seconds for news. Failures are retried with a growing
 * delay; `kick()` polls again at once (a push arrived, the network is
 * back, an answer was sent).
 */
import type { AuthenticatorApi, DeviceToken, PollResult } from './api.js';

export type ConnectionState = 'idle' | 'connecting' | 'up' | 'down';

/** Seconds the server may hold a poll (the contract's `wait`). */
export const POLL_WAIT_SECONDS = 25;
/** Pause between polls that the server answered at once with nothing new, or while requests wait here. */
const PENDING_PAUSE_MS = 2_000;
/** The longest pause after failures. */
const MAX_BACKOFF_MS = 30_000;
/** A poll that the server (or a proxy) holds longer than this is given up. */
const POLL_TIMEOUT_MS = (POLL_WAIT_SECONDS + 15) * 1_000;

export interface ConnectionHandlers {
  state(state: ConnectionState): void;
  /** Handles a poll's answer; returns whether it brought anything new. */
  result(result: PollResult): Promise<boolean>;
  /** Whether requests wait here for an answer (then polls do not wait, and come every 2 seconds). */
  pending(): boolean;
}

export class LiveConnection {
  private devices: DeviceToken[] = [];
  private controller: AbortController | null = null;
  private running = false;
  private kicked = false;
  private wake: (() => void) | null = null;
  private current: ConnectionState | null = null;
  /** Failed polls in a row: the pause after each grows. */
  private failures = 0;

  constructor(
    private readonly api: AuthenticatorApi,
    private readonly handlers: ConnectionHandlers,
  ) {}

  /** The users to poll for (their devices and app tokens); starts the loop. */
  setDevices(devices: DeviceToken[]): void {
    const same =
      devices.length === this.devices.length && devices.every((d, i) => d.deviceId === this.devices[i]?.deviceId && d.token === this.devices[i]?.token);
    this.devices = devices;
    if (!same) this.kick();
    if (!this.running) void this.loop();
  }

  /** Polls again now: abandons a waiting poll or pause. */
  kick(): void {
    this.kicked = true;
    this.failures = 0;
    this.controller?.abort();
    this.wake?.();
  }

  private setState(state: ConnectionState): void {
    if (state === this.current) return;
    this.current = state;
    this.handlers.state(state);
  }

  private pause(ms: number): Promise<void> {
    if (this.kicked) {
      this.kicked = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = ms === Infinity ? undefined : setTimeout(done, ms);
      const wake = (): void => done();
      this.wake = wake;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    }).then(() => {
      this.wake = null;
      this.kicked = false;
    });
  }

  private async loop(): Promise<void> {
    this.running = true;
    for (;;) {
      const devices = this.devices;
      if (devices.length === 0) {
        this.setState('idle');
        this.failures = 0;
        await this.pause(Infinity);
        continue;
      }
      if (this.current !== 'up' && this.failures === 0) this.setState('connecting');
      this.kicked = false;
      const controller = new AbortController();
      this.controller = controller;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, POLL_TIMEOUT_MS);
      const started = Date.now();
      // the first poll of a connection answers at once: the connection is up as soon as the server answers
      const wait = this.handlers.pending() || this.current !== 'up' ? 0 : POLL_WAIT_SECONDS;
      try {
        const result = await this.api.poll(devices, wait, controller.signal);
        clearTimeout(timer);
        this.failures = 0;
        this.setState('up');
        const fresh = await this.handlers.result(result);
        if (this.handlers.pending() || (!fresh && wait > 0 && Date.now() - started < 1_000)) await this.pause(PENDING_PAUSE_MS);
      } catch {
        clearTimeout(timer);
        if (controller.signal.aborted && !timedOut) continue; // kicked: poll again at once
        this.failures += 1;
        this.setState('down');
        await this.pause(Math.min(MAX_BACKOFF_MS, 1_000 * 2 ** Math.min(this.failures, 5)));
      } finally {
        this.controller = null;
      }
    }
  }
}
