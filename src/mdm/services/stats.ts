/**
 * Live IO figures from the heartbeats: SDSs report cumulative counters of
 * the operations they served, SDCs the counters of each mapped volume. The
 * MDM keeps only recent figures, in memory (heartbeats are hot: nothing
 * here touches SQLite), as time buckets per volume and per SDS.
 *
 * A beat's counters minus the same source's previous counters is the IO of
 * the interval between the two beats; that delta is spread over the
 * buckets the interval overlaps, in proportion to the overlap, so a bucket
 * holds exact sums however beats fall against bucket edges and however many
 * SDCs serve a volume. Rates are bucket sums divided by the bucket length;
 * the average latency is the latency sum over the operation count.
 */
import { MDM_LIMITS } from '../config.js';
import type { TopologyRepo } from '../repos/topology-repo.js';
import type { VolumeRepo } from '../repos/volume-repo.js';
import type { Clock } from './events.js';

/** Cumulative since the component started: operations, payload bytes, sum of latencies. */
export interface IoCounters { ops: number; bytes: number; latencyMsTotal: number }
export interface IoBeat { read: IoCounters; write: IoCounters }
export interface VolumeIoBeat extends IoBeat { volumeId: number }

export interface StatsPoint {
  atMs: number;
  readIops: number;
  writeIops: number;
  readBytesPerS: number;
  writeBytesPerS: number;
  readLatencyMsAvg: number;
  writeLatencyMsAvg: number;
}
export interface EntityStats { id: number; name: string; current: StatsPoint | null; points: StatsPoint[] }
export interface StatsAnswer { nowMs: number; bucketMs: number; volumes: EntityStats[]; sds: EntityStats[] }

/** Sums of one bucket: [readOps, readBytes, readLatMs, writeOps, writeBytes, writeLatMs]. */
type Sums = Float64Array;
const FIELDS = 6;

interface Source { atMs: number; c: Float64Array }

class Series {
  /** Bucket start (ms) -> sums; insertion order is time order except for late beats (sorted on read). */
  readonly buckets = new Map<number, Sums>();

  add(startMs: number, fraction: number, delta: Float64Array): void {
    let b = this.buckets.get(startMs);
    if (!b) this.buckets.set(startMs, (b = new Float64Array(FIELDS)));
    for (let i = 0; i < FIELDS; i++) b[i]! += delta[i]! * fraction;
  }

  prune(beforeMs: number): void {
    for (const k of this.buckets.keys()) if (k < beforeMs) this.buckets.delete(k);
  }
}

function flat(io: IoBeat): Float64Array {
  return Float64Array.of(io.read.ops, io.read.bytes, io.read.latencyMsTotal, io.write.ops, io.write.bytes, io.write.latencyMsTotal);
}

export class StatsService {
  private readonly sources = new Map<string, Source>();
  private readonly series = new Map<string, Series>();
  private readonly bucketMs = MDM_LIMITS.statsBucketMs;

  constructor(private readonly topo: TopologyRepo, private readonly volumes: VolumeRepo, private readonly clock: Clock) {}

  recordSds(sdsId: number, io: IoBeat | undefined): void {
    if (io) this.record(`sds:${sdsId}`, `sds:${sdsId}`, flat(io));
  }

  recordSdc(sdcId: number, volumes: readonly VolumeIoBeat[] | undefined): void {
    for (const v of volumes ?? []) this.record(`sdc:${sdcId}:${v.volumeId}`, `volume:${v.volumeId}`, flat(v));
  }

  /** Points of complete buckets after sinceMs (default: all kept), per volume and per SDS known to the MDM. */
  query(sinceMs = 0): StatsAnswer {
    const nowMs = this.clock();
    this.prune(nowMs);
    // A bucket is complete once every source has beaten past its end (a beat may come one interval late).
    const completeBeforeMs = nowMs - MDM_LIMITS.statsSettleMs;
    const entity = (key: string, id: number, name: string): EntityStats => {
      const s = this.series.get(key);
      const points: StatsPoint[] = [];
      if (s) {
        for (const [startMs, sums] of [...s.buckets].sort((a, b) => a[0] - b[0])) {
          if (startMs + this.bucketMs > completeBeforeMs) break;
          if (startMs > sinceMs) points.push(this.point(startMs, sums));
        }
      }
      const last = s ? [...s.buckets.keys()].filter((k) => k + this.bucketMs <= completeBeforeMs).sort((a, b) => b - a)[0] : undefined;
      return { id, name, current: last === undefined ? null : this.point(last, s!.buckets.get(last)!), points };
    };
    return {
      nowMs, bucketMs: this.bucketMs,
      volumes: this.volumes.list().map((v) => entity(`volume:${v.id}`, v.id, v.name)),
      sds: this.topo.listSds().map((s) => entity(`sds:${s.id}`, s.id, s.name)),
    };
  }

  private point(atMs: number, s: Sums): StatsPoint {
    const perS = 1000 / this.bucketMs;
    const round = (x: number): number => Math.round(x * 100) / 100;
    return {
      atMs,
      readIops: round(s[0]! * perS), readBytesPerS: Math.round(s[1]! * perS), readLatencyMsAvg: s[0]! > 0 ? round(s[2]! / s[0]!) : 0,
      writeIops: round(s[3]! * perS), writeBytesPerS: Math.round(s[4]! * perS), writeLatencyMsAvg: s[3]! > 0 ? round(s[5]! / s[3]!) : 0,
    };
  }

  private record(sourceKey: string, seriesKey: string, c: Float64Array): void {
    const atMs = this.clock();
    const prev = this.sources.get(sourceKey);
    if (!prev && this.sources.size >= MDM_LIMITS.statsSourcesMax) return;
    this.sources.set(sourceKey, { atMs, c });
    if (!prev || atMs <= prev.atMs || atMs - prev.atMs > MDM_LIMITS.statsBeatGapMsMax) return;
    const delta = new Float64Array(FIELDS);
    for (let i = 0; i < FIELDS; i++) {
      delta[i] = c[i]! - prev.c[i]!;
      // Counters went back: the component restarted; this beat is the new baseline.
      if (delta[i]! < 0) return;
    }
    let series = this.series.get(seriesKey);
    if (!series) this.series.set(seriesKey, (series = new Series()));
    const span = atMs - prev.atMs;
    for (let start = prev.atMs - (prev.atMs % this.bucketMs); start < atMs; start += this.bucketMs) {
      const overlap = Math.min(atMs, start + this.bucketMs) - Math.max(prev.atMs, start);
      if (overlap > 0) series.add(start, overlap / span, delta);
    }
    // Bounded even when nobody asks (query() prunes by age).
    for (const k of series.buckets.keys()) {
      if (series.buckets.size <= MDM_LIMITS.statsBucketsMax) break;
      series.buckets.delete(k);
    }
  }

  private prune(nowMs: number): void {
    const keepFromMs = nowMs - MDM_LIMITS.statsRetentionMs;
    for (const [k, s] of this.series) {
      s.prune(keepFromMs);
      if (s.buckets.size === 0) this.series.delete(k);
    }
    for (const [k, src] of this.sources) if (src.atMs < keepFromMs) this.sources.delete(k);
  }
}
