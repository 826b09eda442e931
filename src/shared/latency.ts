/**
 * A latency histogram cheap enough for the IO hot path: bucket b counts
 * latencies in [2^(b-1), 2^b) microseconds (bucket 0: below 1 µs), found
 * with one Math.clz32, no search and no allocation. Exported to Prometheus
 * as cumulative buckets with le = 2^b µs (src/shared/prom.ts); the SDS
 * management JSON shows the raw counts (`latencyUsLog2`).
 */
export const latencyBuckets = 32;

export class LatencyHistogram {
  /** Count per log2 bucket (see above); the last bucket also takes everything longer. */
  readonly counts: number[] = new Array<number>(latencyBuckets).fill(0);
  count = 0;
  sumSeconds = 0;

  observeMs(ms: number): void {
    const us = ms * 1000;
    // clz32 works on 32-bit integers: 2^31 µs (36 min) and beyond go to the last bucket.
    const b = us < 1 ? 0 : us >= 2 ** 31 ? latencyBuckets - 1 : 32 - Math.clz32(us);
    this.counts[b]!++;
    this.count++;
    this.sumSeconds += ms / 1000;
  }
}
