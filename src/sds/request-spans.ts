/**
 * Server spans of the data requests being served (docs/observability.md): a
 * frame carrying a sampled traceparent gets one, ended with its reply
 * (DataConnection); the primary's forwards are its children (Replication).
 * Frames without a trace cost a length check, and lookups a size check.
 */
import { Flag, MsgType, Status, statusName, type Frame, type StatusValue } from '../dataplane/proto.js';
import { endSpan, SpanKind, startFromTraceBytes, type Span } from '../shared/tracing.js';

/** Span names by message type. */
export const OP_NAMES: Record<number, string | undefined> = {
  [MsgType.WRITE]: 'write', [MsgType.ZERO]: 'zero', [MsgType.TRIM]: 'trim', [MsgType.READ]: 'read', [MsgType.FLUSH]: 'flush', [MsgType.PING]: 'ping',
};

export class RequestSpans {
  private readonly spans = new Map<Frame, Span>();

  constructor(private readonly selfId: () => number | undefined) {}

  /** Starts the span of a request whose frame carries a trace. */
  start(f: Frame): void {
    if (f.trace.length === 0) return;
    const span = startFromTraceBytes(f.trace, `sds.${OP_NAMES[f.type] ?? 'request'}`, SpanKind.SERVER, {
      'pflex.sds_id': this.selfId() ?? -1, 'pflex.pg': f.pgId, 'pflex.epoch': f.epoch, 'pflex.volume_id': f.volumeId,
      'pflex.chunk': f.chunkIndex, 'pflex.offset': f.offset, 'pflex.length': f.length, 'pflex.forwarded': (f.flags & Flag.FORWARDED) !== 0,
    });
    if (span) this.spans.set(f, span);
  }

  /** The span of a traced request being served; undefined for the others. */
  of(f: Frame): Span | undefined {
    return this.spans.size === 0 ? undefined : this.spans.get(f);
  }

  /** Ends the span of a request answered with status. */
  end(f: Frame, status: StatusValue): void {
    if (this.spans.size === 0) return;
    const span = this.spans.get(f);
    if (!span) return;
    this.spans.delete(f);
    endSpan(span, status === Status.OK || status === Status.NO_CHUNK ? undefined : statusName(status), { 'pflex.status': statusName(status) });
  }
}
