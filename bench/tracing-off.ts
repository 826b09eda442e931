// What tracing costs an NBD write when it is off (no OTLP endpoint): the
// checks the data path makes for "not traced", one write's worth of them per
// iteration, in the SDC (root sampling, the frame's trace bytes, span ends),
// the primary SDS (its request span, the forward's trace bytes) and the
// secondary (its request span). Prints nanoseconds per write.
//
// bench:sdc cannot resolve a 2% difference on a shared 2-core machine (runs
// of one build differ by 15-50%, docs/benchmarks.md); this figure, divided
// by the CPU time a write costs across the processes (bench:sdc's CPU-s/GiB),
// bounds the share of tracing-off in that cost.
//
//   npm run build && node dist/bench/tracing-off.js [--seconds 2]
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { encodeFrame, decodeFrame, MsgType, requestHeader, type Frame } from '../src/dataplane/proto.js';
import { RequestSpans } from '../src/sds/request-spans.js';
import { endSpan, rootSampled, startRoot, SpanKind, tracingEnabled, traceBytes, type Span } from '../src/shared/tracing.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' } } });
const seconds = Number(values.seconds);
if (tracingEnabled()) throw new Error('tracing must be off for this benchmark');

const frame: Frame = decodeFrame(encodeFrame(requestHeader(MsgType.WRITE, {
  requestId: 1, pgId: 3, epoch: 2, volumeId: 1, treeId: 1, chunkIndex: 9, layerId: 0, offset: 0, length: 4, flags: 0,
}), Buffer.from('token'), undefined, Buffer.from('data')));
const primary = new RequestSpans(() => 1);
const secondary = new RequestSpans(() => 2);
let sink = 0;

/** The tracing work of one NBD write that is not traced, across SDC, primary and secondary. */
function oneWrite(): void {
  // SDC: VolumeBackend.modify and exec.
  const root: Span | undefined = rootSampled() ? startRoot('nbd.write', SpanKind.SERVER, {}) : undefined;
  sink += traceBytes(root).length;
  // Primary SDS: the request's span, the forward's trace bytes, the reply.
  primary.start(frame);
  const served = primary.of(frame);
  sink += traceBytes(served).length;
  // Secondary SDS: the forwarded request.
  secondary.start(frame);
  if (secondary.of(frame)) sink++;
  secondary.end(frame, 0);
  primary.end(frame, 0);
  endSpan(root);
}

function nsPerWrite(): number {
  for (let i = 0; i < 1e6; i++) oneWrite();
  let n = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds * 1e9) {
    for (let i = 0; i < 1e6; i++) oneWrite();
    n += 1e6;
    elapsed = Number(process.hrtime.bigint() - t0);
  }
  return elapsed / n;
}

const runs = [nsPerWrite(), nsPerWrite(), nsPerWrite()].sort((a, b) => a - b);
console.log(`machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`tracing off, per NBD write (SDC + primary + secondary): ${runs[1]!.toFixed(1)} ns (runs ${runs.map((r) => r.toFixed(1)).join(', ')})`);
if (sink < 0) console.log(sink); // keeps the work observable
