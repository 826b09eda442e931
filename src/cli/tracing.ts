/**
 * The tracing flags every long-running component takes (pflex mdm start,
 * pflex sds-server start, pflex sdc-server); the standard OTEL_* variables
 * work too (docs/observability.md).
 */
import type { Argv } from 'yargs';
import type { Logger } from '../shared/logger.js';
import { initTracing, sampleRatioDefault, shutdownTracing } from '../shared/tracing.js';

export interface TracingArgs {
  'otel-endpoint'?: string;
  'trace-sample-ratio'?: number;
}

export function withTracing<T>(y: Argv<T>): Argv<T & TracingArgs> {
  return y
    .option('otel-endpoint', { type: 'string', describe: 'OTLP/HTTP collector URL, e.g. http://127.0.0.1:4318 (default $OTEL_EXPORTER_OTLP_ENDPOINT; no tracing without one)' })
    .option('trace-sample-ratio', { type: 'number', describe: `fraction of NBD requests traced, 0..1 (default $OTEL_TRACES_SAMPLER_ARG or ${sampleRatioDefault})` });
}

/** Turns tracing on when configured; a bad setting throws (the caller's error edge reports it). */
export async function startTracing(a: TracingArgs, service: string, instance: string | undefined, log: Logger): Promise<void> {
  await initTracing({
    service, log, ...(instance ? { instance } : {}),
    ...(a['otel-endpoint'] ? { endpoint: a['otel-endpoint'] } : {}),
    ...(a['trace-sample-ratio'] !== undefined ? { sampleRatio: a['trace-sample-ratio'] } : {}),
  });
}

export { shutdownTracing };
