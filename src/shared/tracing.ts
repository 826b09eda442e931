/**
 * OpenTelemetry tracing of pflex (docs/observability.md): an NBD request is a
 * root span in the SDC; the MDM calls and SDS operations it causes are its
 * children across processes (W3C traceparent in HTTP headers and, as 26
 * bytes, in data frames). Exported with OTLP/HTTP (JSON) by the OpenTelemetry
 * Node SDK, loaded only when tracing is on.
 *
 * The data path is CPU-bound, so context is passed explicitly (a span
 * argument), never through an async context manager: AsyncLocalStorage would
 * put a hook on every promise of the process. When tracing is off, or a root
 * is not sampled, nothing is allocated per request: rootSampled() is one
 * comparison and every helper takes `undefined` for "not traced". Only
 * sampled traces are continued; processes other than the SDC start no roots
 * of their own (heartbeats and map polls are not traced).
 *
 * A dead or slow collector never holds up IO: spans go to a bounded queue
 * (spans beyond it are dropped and counted) exported in the background.
 */
import { SpanKind, SpanStatusCode, TraceFlags, trace, ROOT_CONTEXT, type Span, type Tracer } from '@opentelemetry/api';
import type { tracing as sdkTracing } from '@opentelemetry/sdk-node';
import { PflexError } from './errors.js';
import type { Logger } from './logger.js';

export type { Span };
export { SpanKind };

// ---- limits and defaults ----------------------------------------------------

/** Fraction of NBD requests traced when tracing is on and nothing says otherwise. */
export const sampleRatioDefault = 0.01;
/** OTLP/HTTP port of a collector (otel/collector.yaml listens there). */
export const otlpHttpPortDefault = 4318;
/** Finished spans waiting for export; beyond this they are dropped (OTEL_BSP_MAX_QUEUE_SIZE). */
export const spanQueueMax = 2048;
/** Spans per export request (OTEL_BSP_MAX_EXPORT_BATCH_SIZE). */
export const exportBatchSpansMax = 512;
/** A partial batch is exported after this long (OTEL_BSP_SCHEDULE_DELAY). */
export const exportDelayMs = 1000;
/** One export request, retries included (OTEL_BSP_EXPORT_TIMEOUT); the next batch waits for it at most this long. */
export const exportTimeoutMs = 10_000;
/** On shutdown, pending spans get this long to leave; a dead collector never delays exit more. */
export const shutdownFlushMs = 2000;

// ---- configuration ------------------------------------------------------------

export interface TracingOptions {
  /** service.name, e.g. pflex-sdc. */
  service: string;
  /** service.instance.id: the component's name (sdc1, sds2...). */
  instance?: string;
  /** OTLP/HTTP base URL (flag); default from OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT. Tracing is off without one. */
  endpoint?: string;
  /** Fraction of roots sampled (flag); default from OTEL_TRACES_SAMPLER(_ARG), else sampleRatioDefault. */
  sampleRatio?: number;
  log?: Logger;
}

/** What initTracing settled on; off when no endpoint is configured. */
export interface TracingConfig {
  enabled: boolean;
  /** URL spans are POSTed to (…/v1/traces). */
  url?: string;
  sampleRatio: number;
  queueMax: number;
  batchMax: number;
  delayMs: number;
  exportTimeoutMs: number;
}

type Env = Record<string, string | undefined>;

function envNumber(env: Env, name: string, fallback: number): number {
  const v = env[name];
  if (v === undefined || v.trim() === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `${name} must be a non-negative number, got "${v}"`);
  return n;
}

/** Ratio of roots sampled from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG; null: tracing off. */
function samplerRatio(env: Env): number | null {
  const sampler = (env.OTEL_TRACES_SAMPLER ?? 'parentbased_traceidratio').trim().toLowerCase();
  switch (sampler) {
    case 'always_off': return null;
    case 'parentbased_always_off': return 0;
    case 'always_on': case 'parentbased_always_on': return 1;
    case 'traceidratio': case 'parentbased_traceidratio': return envNumber(env, 'OTEL_TRACES_SAMPLER_ARG', sampleRatioDefault);
    default: throw new PflexError('PFLEX_ERR_BAD_REQUEST', `OTEL_TRACES_SAMPLER "${sampler}" is not supported (always_on, always_off, traceidratio and their parentbased_ forms)`);
  }
}

/** Flags win over the standard OTEL_* variables, which win over the defaults. */
export function resolveTracing(o: Pick<TracingOptions, 'endpoint' | 'sampleRatio'>, env: Env = process.env): TracingConfig {
  const bool = (v: string | undefined): boolean => (v ?? '').trim().toLowerCase() === 'true';
  const ratio = samplerRatio(env);
  const sampleRatio = o.sampleRatio ?? ratio ?? 0;
  if (!(sampleRatio >= 0 && sampleRatio <= 1)) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `the trace sample ratio must be between 0 and 1, got ${sampleRatio}`);
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const base = (o.endpoint ?? env.OTEL_EXPORTER_OTLP_ENDPOINT)?.trim();
  const url = o.endpoint ? tracesUrl(o.endpoint) : traces || (base ? tracesUrl(base) : undefined);
  const off = url === undefined || bool(env.OTEL_SDK_DISABLED) || env.OTEL_TRACES_EXPORTER?.trim() === 'none' || (ratio === null && o.sampleRatio === undefined);
  const queueMax = Math.max(1, envNumber(env, 'OTEL_BSP_MAX_QUEUE_SIZE', spanQueueMax));
  return {
    enabled: !off,
    ...(off ? {} : { url }),
    sampleRatio,
    queueMax,
    batchMax: Math.max(1, Math.min(queueMax, envNumber(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', exportBatchSpansMax))),
    delayMs: envNumber(env, 'OTEL_BSP_SCHEDULE_DELAY', exportDelayMs),
    exportTimeoutMs: envNumber(env, 'OTEL_BSP_EXPORT_TIMEOUT', exportTimeoutMs),
  };
}

function tracesUrl(base: string): string {
  try {
    new URL(base);
  } catch {
    throw new PflexError('PFLEX_ERR_BAD_REQUEST', `OTLP endpoint "${base}" is not a URL`);
  }
  return `${base.replace(/\/+$/, '')}/v1/traces`;
}

// ---- the process's tracer -------------------------------------------------------

/** Export counters (the SDC shows them on GET /metrics). */
export interface TracingStats {
  enabled: boolean;
  sampleRatio: number;
  /** Spans handed to the exporter and accepted by the collector. */
  spansExported: number;
  /** Spans whose export failed (collector down, refused, timed out). */
  spansFailed: number;
  /** Spans dropped because the export queue was full. */
  spansDropped: number;
  /** Spans waiting in the queue now. */
  spansQueued: number;
}

interface State {
  tracer: Tracer;
  ratio: number;
  stats: TracingStats;
  shutdown: () => Promise<void>;
}

let state: State | undefined;
/** Mirrors of state for the per-request check. */
let sampledRatio = 0;
let on = false;

/**
 * Sets tracing up for this process (once, before the component starts
 * serving). Off, and nothing loaded, without an endpoint; a bad setting
 * throws PFLEX_ERR_BAD_REQUEST. Loading the SDK costs about a second of CPU
 * (once): it is done before the component listens, so that a listening
 * component is never stalled by it.
 */
export async function initTracing(o: TracingOptions): Promise<TracingConfig> {
  const cfg = resolveTracing(o);
  if (!cfg.enabled || state) return cfg;
  await load(o, cfg);
  return cfg;
}

async function load(o: TracingOptions, cfg: TracingConfig): Promise<void> {
  const [{ NodeSDK, tracing, resources }, { OTLPTraceExporter }] = await Promise.all([
    import('@opentelemetry/sdk-node'), import('@opentelemetry/exporter-trace-otlp-http'),
  ]);
  const stats: TracingStats = { enabled: true, sampleRatio: cfg.sampleRatio, spansExported: 0, spansFailed: 0, spansDropped: 0, spansQueued: 0 };
  const exporter = new CountingExporter(new OTLPTraceExporter({ url: cfg.url!, timeoutMillis: cfg.exportTimeoutMs }), stats, o.log);
  const batch = new tracing.BatchSpanProcessor(exporter, {
    maxQueueSize: cfg.queueMax, maxExportBatchSize: cfg.batchMax, scheduledDelayMillis: cfg.delayMs, exportTimeoutMillis: cfg.exportTimeoutMs,
  });
  const sdk = new NodeSDK({
    serviceName: o.service,
    resource: resources.resourceFromAttributes(o.instance ? { 'service.instance.id': o.instance } : {}),
    resourceDetectors: [resources.envDetector, resources.processDetector, resources.hostDetector],
    spanProcessors: [new BoundedQueue(batch, cfg.queueMax, stats)],
    // Roots are sampled by rootSampled() before they are started; children follow their parent.
    sampler: new tracing.ParentBasedSampler({ root: new tracing.AlwaysOnSampler() }),
    contextManager: new ExplicitContextManager(),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  state = {
    tracer: trace.getTracer('pflex'),
    ratio: cfg.sampleRatio,
    stats,
    shutdown: () => sdk.shutdown(),
  };
  sampledRatio = cfg.sampleRatio;
  on = true;
  o.log?.info({ url: cfg.url, sampleRatio: cfg.sampleRatio, service: o.service }, 'tracing on');
}

/** Exports what is pending (for at most shutdownFlushMs) and turns tracing off. */
export async function shutdownTracing(): Promise<void> {
  const s = state;
  if (!s) return;
  state = undefined;
  on = false;
  sampledRatio = 0;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    s.shutdown().catch(() => undefined),
    new Promise<void>((resolve) => { timer = setTimeout(resolve, shutdownFlushMs); timer.unref(); }),
  ]);
  clearTimeout(timer);
}

/** Spans are being recorded. */
export function tracingEnabled(): boolean {
  return on;
}

export function tracingStats(): TracingStats {
  return state ? { ...state.stats } : { enabled: false, sampleRatio: 0, spansExported: 0, spansFailed: 0, spansDropped: 0, spansQueued: 0 };
}

/** Whether a new root (an NBD request) is traced: false at once when tracing is off. */
export function rootSampled(): boolean {
  return on && (sampledRatio >= 1 || (sampledRatio > 0 && Math.random() < sampledRatio));
}

export type Attributes = Record<string, string | number | boolean>;

/** A root span; call only when rootSampled() said yes. */
export function startRoot(name: string, kind: SpanKind, attributes: Attributes): Span | undefined {
  return state?.tracer.startSpan(name, { kind, attributes, root: true });
}

/** A child of parent in this process; undefined when the parent is (not traced). */
export function startChild(parent: Span | undefined, name: string, kind: SpanKind, attributes?: Attributes): Span | undefined {
  if (parent === undefined || !state) return undefined;
  return state.tracer.startSpan(name, { kind, ...(attributes ? { attributes } : {}) }, trace.setSpan(ROOT_CONTEXT, parent));
}

/** Ends a span, marking it failed when err is given. */
export function endSpan(span: Span | undefined, err?: unknown, attributes?: Attributes): void {
  if (span === undefined) return;
  if (attributes) span.setAttributes(attributes);
  if (err !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    if (err instanceof PflexError) span.setAttribute('pflex.error', err.code);
  }
  span.end();
}

// ---- W3C trace context: HTTP header and data-frame bytes ----------------------------

/** Bytes of the binary traceparent a data frame carries: version, trace id, span id, flags. */
export const TRACE_BYTES = 26;
const EMPTY = Buffer.alloc(0);
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The traceparent of a span in data-frame form (see src/shared/dataproto.ts); empty when not traced. */
export function traceBytes(span: Span | undefined): Buffer {
  if (span === undefined) return EMPTY;
  const c = span.spanContext();
  const b = Buffer.allocUnsafe(TRACE_BYTES);
  b[0] = 0;
  b.write(c.traceId, 1, 16, 'hex');
  b.write(c.spanId, 17, 8, 'hex');
  b[25] = c.traceFlags & 0xff;
  return b;
}

/** A span continuing the sampled trace of a data frame; undefined when the frame carries none (or tracing is off). */
export function startFromTraceBytes(bytes: Buffer, name: string, kind: SpanKind, attributes?: Attributes): Span | undefined {
  if (!on || bytes.length !== TRACE_BYTES || bytes[0] !== 0 || (bytes[25]! & TraceFlags.SAMPLED) === 0) return undefined;
  return startRemoteChild(bytes.toString('hex', 1, 17), bytes.toString('hex', 17, 25), bytes[25]!, name, kind, attributes);
}

/** The traceparent HTTP header of a span. */
export function traceparentHeader(span: Span): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-${(c.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** A span continuing the sampled trace of an HTTP request's traceparent header; undefined otherwise. */
export function startFromTraceparent(header: string | string[] | undefined, name: string, kind: SpanKind, attributes?: Attributes): Span | undefined {
  if (!on || typeof header !== 'string') return undefined;
  const m = TRACEPARENT.exec(header.trim().toLowerCase());
  if (!m) return undefined;
  const flags = parseInt(m[3]!, 16);
  if ((flags & TraceFlags.SAMPLED) === 0) return undefined;
  return startRemoteChild(m[1]!, m[2]!, flags, name, kind, attributes);
}

function startRemoteChild(traceId: string, spanId: string, traceFlags: number, name: string, kind: SpanKind, attributes?: Attributes): Span | undefined {
  if (!state || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags, isRemote: true });
  return state.tracer.startSpan(name, { kind, ...(attributes ? { attributes } : {}) }, parent);
}

/** pino fields of a traced operation (docs/observability.md), or none. */
export function traceFields(span: Span | undefined): { trace_id?: string; span_id?: string } {
  if (span === undefined) return {};
  const c = span.spanContext();
  return { trace_id: c.traceId, span_id: c.spanId };
}

/** A child logger whose lines carry the span's trace_id and span_id; the logger itself when not traced. */
export function tracedLog(log: Logger, span: Span | undefined): Logger {
  return span === undefined ? log : log.child(traceFields(span));
}

// ---- SDK plumbing ----------------------------------------------------------------

type ReadableSpan = Parameters<sdkTracing.SpanExporter['export']>[0][number];
type ExportResult = Parameters<Parameters<sdkTracing.SpanExporter['export']>[1]>[0];

/**
 * In front of the batch processor: a span is queued only while fewer than
 * queueMax wait (the exporter takes them off, see CountingExporter), so the
 * count of dropped spans is exact and shown in the stats.
 */
class BoundedQueue implements sdkTracing.SpanProcessor {
  constructor(private readonly inner: sdkTracing.SpanProcessor, private readonly max: number, private readonly stats: TracingStats) {}

  onStart(): void {
    // nothing to do when a span starts
  }

  onEnd(span: ReadableSpan): void {
    if (this.stats.spansQueued >= this.max) {
      this.stats.spansDropped++;
      return;
    }
    this.stats.spansQueued++;
    this.inner.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

/** Counts what the exporter was given and what came of it; logs when the collector stops or starts accepting. */
class CountingExporter implements sdkTracing.SpanExporter {
  private failing = false;

  constructor(private readonly inner: sdkTracing.SpanExporter, private readonly stats: TracingStats, private readonly log: Logger | undefined) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.stats.spansQueued = Math.max(0, this.stats.spansQueued - spans.length);
    this.inner.export(spans, (result) => {
      if (result.code === 0) {
        this.stats.spansExported += spans.length;
        if (this.failing) this.log?.info({ spans: spans.length }, 'span export works again');
        this.failing = false;
      } else {
        this.stats.spansFailed += spans.length;
        if (!this.failing) this.log?.warn({ spans: spans.length, err: result.error?.message }, 'span export failed (spans are dropped; IO is not affected)');
        this.failing = true;
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * pflex passes span context explicitly, so the SDK needs no async context:
 * this manager keeps the active context only for the synchronous duration of
 * with() (the SDK's own use), which costs nothing on other code's promises.
 */
class ExplicitContextManager {
  private current = ROOT_CONTEXT;

  active(): typeof ROOT_CONTEXT {
    return this.current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: typeof ROOT_CONTEXT, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    const before = this.current;
    this.current = ctx;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = before;
    }
  }

  bind<T>(_ctx: typeof ROOT_CONTEXT, target: T): T {
    return target;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.current = ROOT_CONTEXT;
    return this;
  }
}
