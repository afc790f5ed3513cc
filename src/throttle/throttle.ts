/**
 * X5: automation is throttled per client address and globally, shared by
 * every server process (ASVS 2.2.1). Each kind of request that a script
 * would repeat has a limit per address and a limit for the whole service,
 * per minute: login starts, second-factor answers, codes sent by SMS or
 * voice, activations and recoveries of the authenticator, the help desk,
 * the admin API. Over a limit: 429 TOO_MANY_REQUESTS with Retry-After.
 *
 * The limits are keyed by address (an IPv6 client by its /64, and its /48
 * again under a limit NETWORK_FACTOR times wider) and kind, never by username, so that a limit never tells whether a username exists;
 * the lock (L3) stays apart. A request refused at its address's limit is not
 * counted in its network's nor the global one, nor one refused at its
 * network's in the global one, so that one client cannot spend everyone's
 * budget.
 */
import ipaddr from 'ipaddr.js';
import type { Clock } from '../clock.js';
import { SlsError } from '../errors.js';
import type { Counters } from './counters.js';

export const THROTTLED = ['login', 'answer', 'send', 'activation', 'helpdesk', 'admin', 'integration'] as const;
export type Throttled = (typeof THROTTLED)[number];

/** Hits allowed per window, from one address and from everyone; 0 is no limit. */
export interface Limit {
  perAddress: number;
  global: number;
}

export type Limits = Record<Throttled, Limit>;

export const WINDOW_MS = 60_000;

/** The defaults: generous for people, tight for scripts. */
export const DEFAULT_LIMITS: Limits = {
  login: { perAddress: 20, global: 3_000 },
  answer: { perAddress: 60, global: 6_000 },
  send: { perAddress: 10, global: 1_000 },
  activation: { perAddress: 10, global: 600 },
  helpdesk: { perAddress: 120, global: 3_000 },
  admin: { perAddress: 60, global: 600 },
  /** W3, I3: the back office's entitlement API (withdrawal checks and records): busy, but bounded, so that guessed keys cannot flood the audit log. */
  integration: { perAddress: 600, global: 6_000 },
};

/** `PER_ADDRESS/GLOBAL` per minute, e.g. `20/3000`; `off` for no limit. */
export function parseLimit(value: string): Limit | null {
  if (value === 'off') return { perAddress: 0, global: 0 };
  const match = /^(\d{1,7})\/(\d{1,9})$/.exec(value);
  return match ? { perAddress: Number(match[1]), global: Number(match[2]) } : null;
}

/**
 * An address as the request tells it, parsed: also with the port some
 * proxies write in X-Forwarded-For (`192.0.2.1:1234`, `[2001:db8::1]:1234`),
 * which would otherwise make each connection a client of its own, and
 * without an IPv6 zone (`%eth0`). Null when it is no address.
 */
function parseAddress(address: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(address);
  const withPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(address);
  const bare = (bracketed?.[1] ?? withPort?.[1] ?? address).split('%')[0]!;
  if (ipaddr.IPv6.isValid(bare)) {
    const ip = ipaddr.IPv6.parse(bare);
    return ip.isIPv4MappedAddress() ? ip.toIPv4Address() : ip;
  }
  return ipaddr.IPv4.isValid(bare) ? ipaddr.IPv4.parse(bare) : null;
}

/**
 * Who a client is, for its limit: an IPv4 address (also when written
 * IPv4-mapped, as a dual-stack listener gives it), or an IPv6 address's /64
 * network: one subscriber is given a whole /64 and may send from any of its
 * 2^64 addresses, so a limit per IPv6 address would limit nobody. A port
 * written with the address is no part of it.
 */
export function clientOf(address: string): string {
  return whoSends(address).client;
}

/**
 * How many times a client's limit the network around it may send (an IPv6
 * /48): one /64 still meets its own limit first, and a /48's 65,536 /64s
 * together meet this one.
 */
export const NETWORK_FACTOR = 10;

/**
 * The wider network of an IPv6 client, for a second limit: its /48, what a
 * site or a small hosting customer is commonly given (65,536 /64s, each a
 * client of its own for `clientOf`). None for IPv4 (however written), whose
 * addresses are each a client.
 */
export function networkOf(address: string): string | null {
  return whoSends(address).network;
}

/** An address's client (`clientOf`) and network (`networkOf`), parsed once. */
function whoSends(address: string): { client: string; network: string | null } {
  const ip = parseAddress(address);
  if (!ip) return { client: address, network: null };
  if (ip.kind() === 'ipv4') return { client: ip.toString(), network: null };
  const prefix = (bits: number) => `${ipaddr.IPv6.networkAddressFromCIDR(`${ip.toString()}/${bits}`).toString()}/${bits}`;
  return { client: prefix(64), network: prefix(48) };
}

export class Throttle {
  constructor(
    private readonly counters: Counters,
    private readonly clock: Clock,
    private readonly limits: Limits,
  ) {}

  /** Counts a request of a kind from an address; TOO_MANY_REQUESTS with the seconds to wait when a limit is passed. */
  async check(kind: Throttled, address: string | null): Promise<void> {
    const limit = this.limits[kind];
    const now = this.clock.now();
    const windowStart = now - (now % WINDOW_MS);
    const retryAfterSeconds = Math.max(1, Math.ceil((windowStart + WINDOW_MS - now) / 1000));
    if (limit.perAddress > 0 && address) {
      const { client, network } = whoSends(address);
      const hits = await this.counters.hit(`${kind}:ip:${client}`, windowStart, WINDOW_MS);
      if (hits > limit.perAddress) throw new SlsError('TOO_MANY_REQUESTS', { reason: 'address', retryAfterSeconds });
      if (network) {
        const networkHits = await this.counters.hit(`${kind}:net:${network}`, windowStart, WINDOW_MS);
        if (networkHits > limit.perAddress * NETWORK_FACTOR) throw new SlsError('TOO_MANY_REQUESTS', { reason: 'address', retryAfterSeconds });
      }
    }
    if (limit.global > 0) {
      const hits = await this.counters.hit(`${kind}:all`, windowStart, WINDOW_MS);
      if (hits > limit.global) throw new SlsError('TOO_MANY_REQUESTS', { reason: 'global', retryAfterSeconds });
    }
  }

  /** Forgets the counters of windows long gone (the scheduler's job). */
  prune(): Promise<void> {
    return this.counters.prune(this.clock.now() - 2 * WINDOW_MS);
  }

  close(): Promise<void> {
    return this.counters.close();
  }
}
