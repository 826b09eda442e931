/**
 * otel/: the collector config and the compose file parse, and their ports and
 * names agree with each other and with pflex's defaults. The images
 * themselves cannot run on this machine (no registry for them): this is what
 * can be checked without them.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ROOT } from '../helpers/proc.js';
import { otlpHttpPortDefault } from '../../src/shared/tracing.js';

interface Collector {
  receivers: { otlp: { protocols: { http: { endpoint: string }; grpc?: { endpoint: string } } } };
  processors: Record<string, unknown>;
  exporters: Record<string, { endpoint?: string; tls?: { insecure?: boolean } }>;
  extensions?: Record<string, { endpoint?: string }>;
  service: { extensions?: string[]; pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
}
interface Compose {
  services: Record<string, { image: string; ports?: string[]; volumes?: string[]; command?: string[]; depends_on?: string[] }>;
}

const collector = parse(readFileSync(join(ROOT, 'otel/collector.yaml'), 'utf8')) as Collector;
const compose = parse(readFileSync(join(ROOT, 'otel/compose.yaml'), 'utf8')) as Compose;
const portOf = (endpoint: string): number => Number(endpoint.split(':').pop());
const published = (ports: string[] | undefined): number[] => (ports ?? []).map((p) => Number(p.split(':')[0]));

t.test('the collector receives OTLP/HTTP where pflex sends it and exports traces to Jaeger', async (t) => {
  t.equal(portOf(collector.receivers.otlp.protocols.http.endpoint), otlpHttpPortDefault, 'OTLP/HTTP receiver on the port pflex documents');
  const traces = collector.service.pipelines.traces;
  t.ok(traces, 'a traces pipeline');
  t.same(traces?.receivers, ['otlp']);
  for (const p of traces?.processors ?? []) t.ok(collector.processors[p] !== undefined, `processor ${p} is defined`);
  for (const e of traces?.exporters ?? []) t.ok(collector.exporters[e] !== undefined, `exporter ${e} is defined`);
  for (const e of collector.service.extensions ?? []) t.ok(collector.extensions?.[e] !== undefined, `extension ${e} is defined`);
  const jaeger = (traces?.exporters ?? []).map((e) => collector.exporters[e]!).find((e) => e.endpoint?.startsWith('jaeger:'));
  t.ok(jaeger, 'one exporter sends to the jaeger service');
  t.equal(portOf(jaeger!.endpoint!), 4317, 'on Jaeger\'s OTLP/gRPC port');
});

t.test('compose runs the collector with that config in front of Jaeger v2', async (t) => {
  const { jaeger, 'otel-collector': col } = compose.services;
  t.ok(jaeger && col, 'services jaeger and otel-collector');
  t.match(jaeger!.image, /^jaegertracing\/jaeger:2\.\d+\.\d+$/, 'Jaeger v2, pinned by tag');
  t.match(col!.image, /^otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/, 'collector pinned by tag (contrib: health_check)');
  t.ok(published(jaeger!.ports).includes(16686), 'the Jaeger UI is published');
  t.ok(published(col!.ports).includes(otlpHttpPortDefault), 'OTLP/HTTP is published on the collector');
  const configPath = /--config=(.+)$/.exec(col!.command?.[0] ?? '')?.[1];
  t.ok(col!.volumes?.some((v) => v.startsWith('./collector.yaml:') && v.split(':')[1] === configPath), 'the collector reads otel/collector.yaml');
  t.same(col!.depends_on, ['jaeger']);
});
