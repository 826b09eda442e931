/**
 * Counters of one SDS, served as JSON by the management listener. Latency is
 * kept as a log2 histogram of microseconds per operation type, so recording
 * costs an increment and percentiles can be read off later.
 */
import { MsgType } from '../dataplane/proto.js';

const BUCKETS = 32;

export interface OpStats {
  ops: number;
  bytes: number;
  /** Count per bucket b: latency in [2^(b-1), 2^b) microseconds (bucket 0: below 1 µs). */
  latencyUsLog2: number[];
}

function newOp(): OpStats {
  return { ops: 0, bytes: 0, latencyUsLog2: new Array<number>(BUCKETS).fill(0) };
}

const OP_NAMES: Record<number, string> = {
  [MsgType.WRITE]: 'write', [MsgType.READ]: 'read', [MsgType.FLUSH]: 'flush',
  [MsgType.TRIM]: 'trim', [MsgType.ZERO]: 'zero', [MsgType.PING]: 'ping',
};

export class SdsMetrics {
  connections = 0;
  forwarded = 0;
  forwardFailures = 0;
  fences = 0;
  errorReplies = 0;
  protocolErrors = 0;
  checksumMismatchRequests = 0;
  /** Stored blocks that failed their checksum on read (each also raised an alert). */
  checksumErrors = 0;
  readonly ops: Record<string, OpStats> = {};

  record(type: number, bytes: number, latencyMs: number): void {
    const name = OP_NAMES[type] ?? `type${type}`;
    const op = (this.ops[name] ??= newOp());
    op.ops++;
    op.bytes += bytes;
    const us = latencyMs * 1000;
    const b = us < 1 ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log2(us)));
    op.latencyUsLog2[b]!++;
  }

  toJSON(): Record<string, unknown> {
    return {
      connections: this.connections, forwarded: this.forwarded, forwardFailures: this.forwardFailures, fences: this.fences,
      errorReplies: this.errorReplies, protocolErrors: this.protocolErrors,
      checksumMismatchRequests: this.checksumMismatchRequests, checksumErrors: this.checksumErrors, ops: this.ops,
    };
  }
}
