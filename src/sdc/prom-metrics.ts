/**
 * The SDC's Prometheus metrics (GET /metrics on the management listener),
 * read at scrape time from each exported volume's VolumeStats. Every series
 * carries `sdc` = the SDC name; IO series also `volume` (docs/metrics.md).
 */
import { MetricsRegistry, type Labels } from '../shared/prom.js';
import type { SdcView } from './listeners.js';
import type { OpName, VolumeStats } from './stats.js';

type OpStats = VolumeStats['ops'][OpName];

/** Per-volume counters of VolumeStats: metric name, help, field. */
const COUNTERS: ReadonlyArray<readonly [string, string, 'retries' | 'primariesReported' | 'piecesAbandoned' | 'tokenRefusals']> = [
  ['pflex_sdc_retries_total', 'Request pieces sent again (routing refusal, stale epoch, an SDS that did not answer)', 'retries'],
  ['pflex_sdc_primaries_reported_total', 'Primaries this SDC reported to the MDM as not answering (the MDM fences them)', 'primariesReported'],
  ['pflex_sdc_pieces_abandoned_total', 'Pieces given up on a primary a newer PG map dropped, and re-sent to the new one', 'piecesAbandoned'],
  ['pflex_sdc_token_refusals_total', 'IO tokens an SDS refused (each forced a renewal)', 'tokenRefusals'],
];

export function sdcPromMetrics(view: SdcView, opts: { processMetrics?: boolean } = {}): MetricsRegistry {
  const m = new MetricsRegistry(opts);
  /** Volumes opened at least once (a volume mapped but never attached has no statistics yet). */
  const volumes = (): Array<[string, VolumeStats]> => view.exports().flatMap((e) => (e.stats ? [[e.name, e.stats] as [string, VolumeStats]] : []));
  const perOp = <V>(f: (s: OpStats) => V): Array<readonly [Labels<'sdc' | 'volume' | 'op'>, V]> =>
    volumes().flatMap(([volume, st]) => Object.entries(st.ops).map(([op, s]) => [{ sdc: view.name, volume, op }, f(s)] as const));
  m.counter('pflex_sdc_io_ops_total', 'NBD requests completed, by volume and operation (failed ones included)', ['sdc', 'volume', 'op'], () => perOp((s) => s.count));
  m.counter('pflex_sdc_io_bytes_total', 'Bytes of NBD requests completed successfully, by volume and operation', ['sdc', 'volume', 'op'], () => perOp((s) => s.bytes));
  m.counter('pflex_sdc_io_errors_total', 'NBD requests answered with an error', ['sdc', 'volume', 'op'], () => perOp((s) => s.errors));
  m.histogram('pflex_sdc_io_latency_seconds', 'Time from an NBD request reaching the volume to its answer', ['sdc', 'volume', 'op'], () => perOp((s) => s.latency));
  for (const [name, help, field] of COUNTERS) {
    m.counter(name, help, ['sdc', 'volume'], () => volumes().map(([volume, st]) => [{ sdc: view.name, volume }, st[field]]));
  }
  m.gauge('pflex_sdc_volume_size_bytes', 'Size of each volume mapped to this SDC', ['sdc', 'volume'], () => view.exports().map((e) => [{ sdc: view.name, volume: e.name }, e.sizeBytes]));
  m.gauge('pflex_sdc_registered', '1 once the SDC is registered with the MDM', ['sdc'], () => [[{ sdc: view.name }, view.sdcId === undefined ? 0 : 1]]);
  return m;
}
