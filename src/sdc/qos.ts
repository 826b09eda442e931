/**
 * QoS of one volume on this SDC: an IOPS and a bandwidth token bucket
 * (limits from the volume's mapping at the MDM, 0 = unlimited). A request
 * waits in FIFO order until both buckets hold its cost; nothing is refused.
 * Limits change live (set() at each rescan) without touching connections.
 */
import { qosBurstSeconds } from './limits.js';

interface Waiter { bytes: number; resolve: () => void }

export class QosLimiter {
  iopsLimit = 0;
  bandwidthLimitBytesPerSec = 0;
  /** Time requests spent queued, for /stats and /metrics. */
  waitedMs = 0;
  throttled = 0;
  private ops = 0;
  private bytes = 0;
  private lastMs = performance.now();
  private readonly queue: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;

  get limited(): boolean {
    return this.iopsLimit > 0 || this.bandwidthLimitBytesPerSec > 0;
  }

  set(iopsLimit: number, bandwidthLimitBytesPerSec: number): void {
    if (iopsLimit === this.iopsLimit && bandwidthLimitBytesPerSec === this.bandwidthLimitBytesPerSec) return;
    this.refill();
    this.iopsLimit = iopsLimit;
    this.bandwidthLimitBytesPerSec = bandwidthLimitBytesPerSec;
    this.ops = Math.min(this.ops, this.burstOps());
    this.bytes = Math.min(this.bytes, this.burstBytes());
    this.pump();
  }

  /** Resolves when a request of `bytes` may go; undefined (no wait at all) when unlimited and nothing is queued. */
  take(bytes: number): Promise<void> | undefined {
    if (!this.limited && this.queue.length === 0) return undefined;
    this.throttled++;
    const started = performance.now();
    return new Promise<void>((resolve) => {
      this.queue.push({ bytes, resolve: () => { this.waitedMs += performance.now() - started; resolve(); } });
      this.pump();
    });
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.queue.splice(0)) w.resolve();
  }

  private burstOps(): number {
    return Math.max(1, this.iopsLimit * qosBurstSeconds);
  }

  private burstBytes(): number {
    return Math.max(1, this.bandwidthLimitBytesPerSec * qosBurstSeconds);
  }

  private refill(): void {
    const now = performance.now();
    const s = (now - this.lastMs) / 1000;
    this.lastMs = now;
    if (this.iopsLimit > 0) this.ops = Math.min(this.burstOps(), this.ops + s * this.iopsLimit);
    if (this.bandwidthLimitBytesPerSec > 0) this.bytes = Math.min(this.burstBytes(), this.bytes + s * this.bandwidthLimitBytesPerSec);
  }

  /** Lets queued requests go while the buckets allow; a bucket may go negative (a request bigger than the burst waits for its whole cost after it). */
  private pump(): void {
    if (this.timer) return;
    this.refill();
    while (this.queue.length > 0) {
      const iopsOk = this.iopsLimit === 0 || this.ops >= 1;
      const bytesOk = this.bandwidthLimitBytesPerSec === 0 || this.bytes > 0;
      if (!iopsOk || !bytesOk) break;
      const w = this.queue.shift()!;
      if (this.iopsLimit > 0) this.ops -= 1;
      if (this.bandwidthLimitBytesPerSec > 0) this.bytes -= w.bytes;
      w.resolve();
    }
    if (this.queue.length === 0) return;
    const needOps = this.iopsLimit > 0 ? Math.max(0, 1 - this.ops) / this.iopsLimit : 0;
    const needBytes = this.bandwidthLimitBytesPerSec > 0 ? Math.max(0, 1 - this.bytes) / this.bandwidthLimitBytesPerSec : 0;
    const waitMs = Math.max(1, Math.ceil(Math.max(needOps, needBytes) * 1000));
    this.timer = setTimeout(() => { this.timer = undefined; this.pump(); }, waitMs);
  }
}
