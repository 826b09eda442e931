/**
 * Counters of one SDS, served as JSON by the management listener (/stats)
 * and read by the Prometheus exposition at scrape time (prom-metrics.ts).
 * Latency is kept as a log2 histogram of microseconds per operation type, so
 * recording costs an increment and percentiles can be read off later.
 */
import { MsgType } from '../dataplane/proto.js';
import { LatencyHistogram } from '../shared/latency.js';

export interface OpStats {
  ops: number;
  bytes: number;
  latency: LatencyHistogram;
}

export interface IoCounters { ops: number; bytes: number; latencyMsTotal: number }

const OP_NAMES: Record<number, string> = {
  [MsgType.WRITE]: 'write', [MsgType.READ]: 'read', [MsgType.FLUSH]: 'flush',
  [MsgType.TRIM]: 'trim', [MsgType.ZERO]: 'zero', [MsgType.PING]: 'ping',
};

export class SdsMetrics {
  connections = 0;
  forwarded = 0;
  forwardFailures = 0;
  fences = 0;
  /** READs served as an acting secondary (replica reads). */
  replicaReads = 0;
  errorReplies = 0;
  protocolErrors = 0;
  /** Data connections refused at the TLS handshake (plain text, no or a foreign client certificate). */
  tlsRefused = 0;
  checksumMismatchRequests = 0;
  /** Stored blocks that failed their checksum on read (each also raised an alert). */
  checksumErrors = 0;
  /** Rebuild copies this SDS ran as the primary: bytes sent to joining members, and bytes a delta copy found identical. */
  rebuildBytesPushed = 0;
  rebuildBytesSkipped = 0;
  rebuildChunksPushed = 0;
  readonly ops: Record<string, OpStats> = {};

  record(type: number, bytes: number, latencyMs: number): void {
    const name = OP_NAMES[type] ?? `type${type}`;
    const op = (this.ops[name] ??= { ops: 0, bytes: 0, latency: new LatencyHistogram() });
    op.ops++;
    op.bytes += bytes;
    op.latency.observeMs(latencyMs);
  }

  /** Cumulative read and write counters, as the heartbeat carries them to the MDM. */
  io(): { read: IoCounters; write: IoCounters } {
    const c = (name: string): IoCounters => {
      const op = this.ops[name];
      return op ? { ops: op.ops, bytes: op.bytes, latencyMsTotal: Math.round(op.latency.sumSeconds * 1e6) / 1000 } : { ops: 0, bytes: 0, latencyMsTotal: 0 };
    };
    return { read: c('read'), write: c('write') };
  }

  toJSON(): Record<string, unknown> {
    const ops: Record<string, unknown> = {};
    for (const [name, op] of Object.entries(this.ops)) {
      ops[name] = { ops: op.ops, bytes: op.bytes, latencyUsLog2: op.latency.counts, latencySecondsTotal: op.latency.sumSeconds };
    }
    return {
      connections: this.connections, forwarded: this.forwarded, forwardFailures: this.forwardFailures, fences: this.fences, replicaReads: this.replicaReads,
      errorReplies: this.errorReplies, protocolErrors: this.protocolErrors, tlsRefused: this.tlsRefused,
      checksumMismatchRequests: this.checksumMismatchRequests, checksumErrors: this.checksumErrors,
      rebuild: { bytesPushed: this.rebuildBytesPushed, bytesSkipped: this.rebuildBytesSkipped, chunksPushed: this.rebuildChunksPushed },
      ops,
    };
  }
}
