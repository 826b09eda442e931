/**
 * src/shared/tracing.ts in-process: configuration from flags and the
 * standard OTEL_* variables, and what happens when tracing is off (no spans,
 * no trace bytes). The cross-process behaviour is test/integration/tracing.test.ts.
 */
import t from 'tap';
import {
  resolveTracing, rootSampled, sampleRatioDefault, startFromTraceBytes, startFromTraceparent, SpanKind, traceBytes, tracingEnabled, tracingStats,
} from '../../src/shared/tracing.js';

t.test('tracing is off without an endpoint, and on with one', async (t) => {
  t.equal(resolveTracing({}, {}).enabled, false, 'no endpoint: off');
  const on = resolveTracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' });
  t.equal(on.enabled, true);
  t.equal(on.url, 'http://collector:4318/v1/traces', 'the traces path is appended to the base endpoint');
  t.equal(on.sampleRatio, sampleRatioDefault, 'a low default ratio');
  t.equal(resolveTracing({}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom' }).url, 'http://c:4318/custom', 'the per-signal endpoint is used as is');
  t.equal(resolveTracing({ endpoint: 'http://flag:1' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:2' }).url, 'http://flag:1/v1/traces', 'the flag wins');
  t.equal(resolveTracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).enabled, false, 'OTEL_SDK_DISABLED');
  t.equal(resolveTracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }).enabled, false, 'OTEL_TRACES_EXPORTER=none');
});

t.test('sampling from OTEL_TRACES_SAMPLER(_ARG) and the flag', async (t) => {
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
  t.equal(resolveTracing({}, { ...env, OTEL_TRACES_SAMPLER_ARG: '0.25' }).sampleRatio, 0.25);
  t.equal(resolveTracing({}, { ...env, OTEL_TRACES_SAMPLER: 'parentbased_always_on' }).sampleRatio, 1);
  const pbOff = resolveTracing({}, { ...env, OTEL_TRACES_SAMPLER: 'parentbased_always_off' });
  t.same([pbOff.enabled, pbOff.sampleRatio], [true, 0], 'parentbased_always_off: no roots, but parents are followed');
  t.equal(resolveTracing({}, { ...env, OTEL_TRACES_SAMPLER: 'always_off' }).enabled, false, 'always_off: off');
  t.equal(resolveTracing({ sampleRatio: 0.5 }, { ...env, OTEL_TRACES_SAMPLER_ARG: '0.1' }).sampleRatio, 0.5, 'the flag wins');
  t.throws(() => resolveTracing({ sampleRatio: 2 }, env), { code: 'PFLEX_ERR_BAD_REQUEST' }, 'a ratio above 1 is refused');
  t.throws(() => resolveTracing({}, { ...env, OTEL_TRACES_SAMPLER_ARG: 'lots' }), { code: 'PFLEX_ERR_BAD_REQUEST' });
  t.throws(() => resolveTracing({}, { ...env, OTEL_TRACES_SAMPLER: 'jaeger_remote' }), { code: 'PFLEX_ERR_BAD_REQUEST' }, 'an unsupported sampler is named');
  t.throws(() => resolveTracing({ endpoint: 'not a url' }, {}), { code: 'PFLEX_ERR_BAD_REQUEST' });
  const q = resolveTracing({}, { ...env, OTEL_BSP_MAX_QUEUE_SIZE: '10', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '50' });
  t.same([q.queueMax, q.batchMax], [10, 10], 'a batch never exceeds the queue');
});

t.test('off: nothing sampled, nothing started, nothing carried', async (t) => {
  t.equal(tracingEnabled(), false);
  t.equal(rootSampled(), false);
  t.equal(traceBytes(undefined).length, 0, 'no trace bytes in data frames');
  const sampledBytes = Buffer.from(`00${'ab'.repeat(16)}${'cd'.repeat(8)}01`, 'hex');
  t.equal(startFromTraceBytes(sampledBytes, 'x', SpanKind.SERVER), undefined, 'a traced frame starts no span here');
  t.equal(startFromTraceparent(`00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01`, 'x', SpanKind.SERVER), undefined);
  t.same(tracingStats(), { enabled: false, sampleRatio: 0, spansExported: 0, spansFailed: 0, spansDropped: 0, spansQueued: 0 });
});
