/**
 * Prometheus exposition for every component, over prom-client. Nothing here
 * runs on the IO path: components keep their own plain counters and
 * LatencyHistograms (a field increment per request), and the metrics
 * declared here read them at scrape time through collect callbacks.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ERRORS } from './errors.js';
import type { LatencyHistogram } from './latency.js';

export type Labels<T extends string> = Record<T, string | number>;
/** One series: its labels and its value. */
export type Sample<T extends string> = readonly [Labels<T>, number];

/**
 * The log2 buckets exported as Prometheus buckets: le = 2^b µs for b in
 * 6..24, i.e. 64 µs to 16.8 s (finer buckets would multiply series, not insight).
 */
const EXPORTED_LOG2 = Array.from({ length: 19 }, (_, i) => i + 6);
const EXPORTED_LE_SECONDS = EXPORTED_LOG2.map((b) => 2 ** b / 1e6);

export class MetricsRegistry {
  readonly registry = new Registry();

  /** processMetrics: prom-client's process_* and nodejs_* metrics (CPU, memory, event loop lag); once per process. */
  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** A counter whose values are read (cumulative, since the component started) at each scrape. */
  counter<T extends string>(name: string, help: string, labelNames: readonly T[], read: () => Iterable<Sample<T>>): void {
    new Counter<T>({
      name, help, labelNames, registers: [this.registry],
      collect(this: Counter<T>) {
        this.reset();
        for (const [labels, value] of read()) this.inc(labels, value);
      },
    });
  }

  /** A gauge whose values are read at each scrape (read may be async). */
  gauge<T extends string>(name: string, help: string, labelNames: readonly T[], read: () => Iterable<Sample<T>> | Promise<Iterable<Sample<T>>>): void {
    new Gauge<T>({
      name, help, labelNames, registers: [this.registry],
      async collect(this: Gauge<T>) {
        const samples = await read();
        this.reset();
        for (const [labels, value] of samples) this.set(labels, value);
      },
    });
  }

  /** A latency histogram (seconds) over LatencyHistograms read at each scrape. */
  histogram<T extends string>(name: string, help: string, labelNames: readonly T[], read: () => Iterable<readonly [Labels<T>, LatencyHistogram]>): void {
    new ReadHistogram<T>(name, help, labelNames, this.registry, read);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * f's value, computed once for all the metrics of one scrape that read it
 * (they are collected in the same turn of the event loop), then forgotten.
 */
export function oncePerScrape<T>(f: () => T): () => T {
  let cached: { value: T } | undefined;
  return () => {
    if (!cached) {
      cached = { value: f() };
      setImmediate(() => { cached = undefined; });
    }
    return cached.value;
  };
}

/**
 * prom-client's Histogram, with its values taken from LatencyHistograms
 * instead of observe(). prom-client renders a histogram from
 * getForPromString() (and get() derives from it), so that is the method
 * replaced; test/metrics/metrics.test.ts checks the rendered buckets.
 */
class ReadHistogram<T extends string> extends Histogram<T> {
  constructor(
    private readonly metricName: string, private readonly helpText: string, labelNames: readonly T[], registry: Registry,
    private readonly read: () => Iterable<readonly [Labels<T>, LatencyHistogram]>,
  ) {
    super({ name: metricName, help: helpText, labelNames, buckets: EXPORTED_LE_SECONDS, registers: [registry] });
  }

  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] }> {
    const values: HistogramValue[] = [];
    const bucket = `${this.metricName}_bucket`;
    const sample = (metricName: string, labels: Record<string, string | number>, value: number): void => {
      values.push({ metricName, labels, sharedLabels: {}, value });
    };
    for (const [labels, h] of this.read()) {
      let cumulative = 0;
      let b = 0;
      for (let i = 0; i < EXPORTED_LOG2.length; i++) {
        // Bucket b holds [2^(b-1), 2^b) µs: everything up to bucket b is below le = 2^b µs.
        while (b <= EXPORTED_LOG2[i]!) cumulative += h.counts[b++]!;
        sample(bucket, { ...labels, le: EXPORTED_LE_SECONDS[i]! }, cumulative);
      }
      sample(bucket, { ...labels, le: '+Inf' }, h.count);
      sample(`${this.metricName}_sum`, labels, h.sumSeconds);
      sample(`${this.metricName}_count`, labels, h.count);
    }
    return { name: this.metricName, help: this.helpText, type: 'histogram', aggregator: 'sum', values };
  }
}

interface HistogramValue {
  metricName: string;
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
}

/** What a component's `/metrics` route serves, and whom to. */
export interface MetricsEndpoint {
  registry: MetricsRegistry;
  /** Whether an Authorization header may scrape (the scrape token: src/shared/scrape-auth.ts). */
  authorized: (header: string | undefined) => boolean;
}

/**
 * The onRequest hook of a `/metrics` route: without the right bearer token
 * the scrape gets 401 (and nothing of the metrics).
 */
export function requireScrapeAuth(authorized: (header: string | undefined) => boolean) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (authorized(req.headers.authorization)) return;
    await reply.code(401).header('www-authenticate', 'Bearer realm="pflex metrics"').send({
      error: { code: 'PFLEX_ERR_UNAUTHENTICATED', message: `${ERRORS.PFLEX_ERR_UNAUTHENTICATED.message}: Authorization: Bearer <scrape token> (pflex metrics token)` },
    });
  };
}

/** The handler of a `/metrics` route: the Prometheus text format. */
export function metricsHandler(metrics: MetricsRegistry) {
  return async (_req: FastifyRequest, reply: FastifyReply): Promise<string> => {
    const text = await metrics.render();
    void reply.type(metrics.contentType);
    return text;
  };
}
