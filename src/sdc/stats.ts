/**
 * IO statistics of one exported volume: the management listener shows them
 * as JSON (/stats) and the Prometheus exposition reads them at scrape time
 * (prom-metrics.ts). Recording is a few field updates: the SDC is CPU-bound.
 */
import { LatencyHistogram } from '../shared/latency.js';

export interface IoCounters { ops: number; bytes: number; latencyMsTotal: number }

export type OpName = 'read' | 'write' | 'flush' | 'trim' | 'zero' | 'blockStatus';

interface OpStats {
  count: number;
  bytes: number;
  errors: number;
  latencyMsMax: number;
  latency: LatencyHistogram;
}

function empty(): OpStats {
  return { count: 0, bytes: 0, errors: 0, latencyMsMax: 0, latency: new LatencyHistogram() };
}

export class VolumeStats {
  readonly ops: Record<OpName, OpStats> = {
    read: empty(), write: empty(), flush: empty(), trim: empty(), zero: empty(), blockStatus: empty(),
  };
  /** Pieces sent again after a routing refusal, a stale epoch or an SDS that did not answer. */
  retries = 0;
  /** Primaries reported to the MDM as not answering. */
  primariesReported = 0;
  /** Pieces given up on a primary the map no longer lists for their PG, and sent to the new primary. */
  piecesAbandoned = 0;
  /** Token renewals forced by an SDS refusing ours. */
  tokenRefusals = 0;
  /** Reads served by an acting secondary (replica reads). */
  replicaReads = 0;
  /** Replica reads refused or not answered, and sent to the primary instead. */
  replicaFallbacks = 0;

  record(op: OpName, bytes: number, startedMs: number, failed: boolean): void {
    const s = this.ops[op];
    const ms = performance.now() - startedMs;
    s.count++;
    if (failed) s.errors++;
    else s.bytes += bytes;
    if (ms > s.latencyMsMax) s.latencyMsMax = ms;
    s.latency.observeMs(ms);
  }

  /** Cumulative read and write counters, as the heartbeat carries them to the MDM. */
  io(): { read: IoCounters; write: IoCounters } {
    const c = (s: OpStats): IoCounters => ({ ops: s.count, bytes: s.bytes, latencyMsTotal: Math.round(s.latency.sumSeconds * 1e6) / 1000 });
    return { read: c(this.ops.read), write: c(this.ops.write) };
  }

  toJSON(): Record<string, unknown> {
    const ops: Record<string, unknown> = {};
    for (const [name, s] of Object.entries(this.ops)) {
      ops[name] = {
        count: s.count, bytes: s.bytes, errors: s.errors,
        latencyMsAvg: s.count > 0 ? Number((s.latency.sumSeconds * 1000 / s.count).toFixed(3)) : 0,
        latencyMsMax: Number(s.latencyMsMax.toFixed(3)),
      };
    }
    return { ops, retries: this.retries, primariesReported: this.primariesReported, piecesAbandoned: this.piecesAbandoned, tokenRefusals: this.tokenRefusals, replicaReads: this.replicaReads, replicaFallbacks: this.replicaFallbacks };
  }
}
