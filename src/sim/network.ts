/**
 * The simulated network: request/reply calls between named nodes, with the
 * properties of the TCP connections pflex uses — per direction FIFO with a
 * random delay, a reset connection fails the calls in flight on it, a
 * crashed or stopped peer refuses, and a partition silently swallows
 * messages (only the caller's timeout notices). Replies to or from a past
 * incarnation of a node (it crashed meanwhile) are dropped: the code of a
 * dead incarnation never runs again.
 */
import type { Prng } from './prng.js';
import type { Scheduler } from './scheduler.js';

export class NetError extends Error {
  constructor(readonly kind: 'timeout' | 'reset' | 'refused', message: string) {
    super(message);
  }
}

interface Pending {
  from: string;
  to: string;
  reject: (err: Error) => void;
  settled: boolean;
}

export interface NetworkOptions {
  delayMsMin: number;
  delayMsMax: number;
}

export class Network {
  private readonly up = new Map<string, boolean>();
  private readonly incarnations = new Map<string, number>();
  private readonly partitions = new Set<string>();
  private readonly channelFreeAt = new Map<string, number>();
  private readonly inflight = new Set<Pending>();
  messages = 0;

  constructor(private readonly sched: Scheduler, private readonly rng: Prng, private readonly o: NetworkOptions) {}

  addNode(name: string): void {
    this.up.set(name, true);
    this.incarnations.set(name, 1);
  }

  isUp(name: string): boolean {
    return this.up.get(name) === true;
  }

  incarnation(name: string): number {
    return this.incarnations.get(name) ?? 0;
  }

  /** The node stops: calls in flight to it fail (connection reset), its own never settle. */
  crash(name: string): void {
    this.up.set(name, false);
    this.incarnations.set(name, this.incarnation(name) + 1);
    for (const p of [...this.inflight]) {
      if (p.to === name) this.fail(p, new NetError('reset', `${name} went down`));
      else if (p.from === name) { p.settled = true; this.inflight.delete(p); }
    }
  }

  restart(name: string): void {
    this.up.set(name, true);
  }

  partition(a: string, b: string): void {
    this.partitions.add(pairKey(a, b));
  }

  heal(a: string, b: string): void {
    this.partitions.delete(pairKey(a, b));
  }

  healAll(): void {
    this.partitions.clear();
  }

  partitioned(a: string, b: string): boolean {
    return this.partitions.has(pairKey(a, b));
  }

  /** Resets the connections between a and b: calls in flight on them fail at once. */
  reset(a: string, b: string): void {
    for (const p of [...this.inflight]) {
      if ((p.from === a && p.to === b) || (p.from === b && p.to === a)) this.fail(p, new NetError('reset', `connection ${a}-${b} reset`));
    }
  }

  /**
   * Sends a request from `from` to `to`; `handle` runs at the destination
   * when it arrives and its answer travels back. Rejects with a NetError on
   * timeout, reset or refusal, or with the handler's own error.
   */
  call<T>(from: string, to: string, label: string, timeoutMs: number, handle: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { from, to, reject, settled: false };
      this.inflight.add(p);
      const fromInc = this.incarnation(from);
      const timer = this.sched.at(timeoutMs, `timeout ${from}>${to} ${label}`, () => this.fail(p, new NetError('timeout', `${label} ${from}>${to} timed out`)));
      const settle = (fn: () => void): void => {
        if (p.settled || this.incarnation(from) !== fromInc) return;
        p.settled = true;
        timer.cancelled = true;
        this.inflight.delete(p);
        fn();
      };
      this.messages++;
      this.deliver(from, to, `${label} ${from}>${to}`, () => {
        if (p.settled) return;
        if (!this.isUp(to)) {
          this.deliver(to, from, `refused ${to}>${from}`, () => settle(() => reject(new NetError('refused', `${to} is down`))), true);
          return;
        }
        const toInc = this.incarnation(to);
        handle().then(
          (v) => { if (this.incarnation(to) === toInc) this.deliver(to, from, `reply ${label} ${to}>${from}`, () => settle(() => resolve(v))); },
          (err: unknown) => { if (this.incarnation(to) === toInc) this.deliver(to, from, `error ${label} ${to}>${from}`, () => settle(() => reject(err as Error))); },
        );
      });
    });
  }

  /** One message: dropped on a partition (at send or arrival), FIFO per direction. */
  private deliver(from: string, to: string, label: string, fn: () => void, refusal = false): void {
    if (this.partitioned(from, to)) return;
    const key = `${from}>${to}`;
    const at = Math.max(this.channelFreeAt.get(key) ?? 0, this.sched.nowMs + this.rng.range(this.o.delayMsMin, this.o.delayMsMax));
    this.channelFreeAt.set(key, at);
    this.sched.at(at - this.sched.nowMs, label, () => {
      if (this.partitioned(from, to)) return;
      if (!refusal && !this.isUp(from)) return;
      fn();
    });
  }

  private fail(p: Pending, err: Error): void {
    if (p.settled) return;
    p.settled = true;
    this.inflight.delete(p);
    p.reject(err);
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
