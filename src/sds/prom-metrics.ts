/**
 * The SDS's Prometheus metrics (GET /metrics on the management listener),
 * read at scrape time from SdsMetrics and the node's state. Every series
 * carries `sds` = the SDS name (docs/metrics.md lists them all).
 */
import { MetricsRegistry } from '../shared/prom.js';
import type { MgmtView } from './mgmt-server.js';
import type { SdsMetrics } from './metrics.js';

/** Scalar counters of SdsMetrics: metric name, help, field. */
const COUNTERS: ReadonlyArray<readonly [string, string, keyof SdsMetrics]> = [
  ['pflex_sds_forwards_total', 'Writes, trims, zeroes and flushes this SDS forwarded to other members as primary', 'forwarded'],
  ['pflex_sds_forward_failures_total', 'Forwards to a member that failed (the member was then fenced or the request refused)', 'forwardFailures'],
  ['pflex_sds_fences_total', 'Members this SDS had the MDM fence out of a PG', 'fences'],
  ['pflex_sds_checksum_errors_total', 'Stored blocks that failed their checksum on read', 'checksumErrors'],
  ['pflex_sds_checksum_mismatch_requests_total', 'Requests whose payload did not match the checksum the sender put in the frame', 'checksumMismatchRequests'],
  ['pflex_sds_error_replies_total', 'Data requests answered with a status other than OK', 'errorReplies'],
  ['pflex_sds_protocol_errors_total', 'Malformed frames (the connection was closed)', 'protocolErrors'],
  ['pflex_sds_tls_refused_total', 'Data connections refused at the TLS handshake (plain text, no or a foreign client certificate)', 'tlsRefused'],
  ['pflex_sds_rebuild_bytes_pushed_total', 'Bytes this SDS sent to joining members in rebuild, rebalance and drain copies', 'rebuildBytesPushed'],
  ['pflex_sds_rebuild_bytes_skipped_total', 'Bytes a delta copy found identical on the joining member and did not send', 'rebuildBytesSkipped'],
  ['pflex_sds_rebuild_chunks_pushed_total', 'Chunks this SDS sent to joining members', 'rebuildChunksPushed'],
];

export function sdsPromMetrics(view: () => MgmtView, opts: { processMetrics?: boolean } = {}): MetricsRegistry {
  const m = new MetricsRegistry(opts);
  const sds = (): string => view().name;
  const perOp = <V>(f: (op: SdsMetrics['ops'][string]) => V) => Object.entries(view().metrics.ops).map(([op, s]) => [{ sds: sds(), op }, f(s)] as const);
  m.counter('pflex_sds_ops_total', 'Data requests served, by operation (forwarded copies included)', ['sds', 'op'], () => perOp((s) => s.ops));
  m.counter('pflex_sds_bytes_total', 'Bytes of data requests served, by operation', ['sds', 'op'], () => perOp((s) => s.bytes));
  m.histogram('pflex_sds_op_latency_seconds', 'Time an SDS takes to serve a data request (including replication for a primary)', ['sds', 'op'], () => perOp((s) => s.latency));
  for (const [name, help, field] of COUNTERS) {
    m.counter(name, help, ['sds'], () => [[{ sds: sds() }, view().metrics[field] as number]]);
  }
  m.gauge('pflex_sds_connections', 'Open data connections (SDCs and peer SDSs)', ['sds'], () => [[{ sds: sds() }, view().metrics.connections]]);
  m.gauge('pflex_sds_pgs', 'PGs this SDS is a member of, by role', ['sds', 'role'], () => {
    const v = view();
    return [[{ sds: v.name, role: 'primary' }, v.pgs.primary], [{ sds: v.name, role: 'secondary' }, v.pgs.secondary]];
  });
  m.gauge('pflex_sds_map_epoch', 'Epoch of the PG map this SDS knows (0: none yet)', ['sds'], () => [[{ sds: sds() }, view().mapEpoch ?? 0]]);
  m.gauge('pflex_sds_registered', '1 once the SDS is registered with the MDM', ['sds'], () => [[{ sds: sds() }, view().sdsId === undefined ? 0 : 1]]);
  const cap = () => view().capacity(); // a statfs: cheap enough to do per gauge
  m.gauge('pflex_sds_chunks_stored', 'Chunks in the store', ['sds'], async () => [[{ sds: sds() }, (await cap()).chunks]]);
  m.gauge('pflex_sds_stored_bytes', 'Logical bytes of the chunks in the store', ['sds'], async () => [[{ sds: sds() }, (await cap()).usedBytes]]);
  m.gauge('pflex_sds_capacity_bytes', 'Capacity this SDS offers to its pool', ['sds'], async () => [[{ sds: sds() }, (await cap()).totalBytes]]);
  m.gauge('pflex_sds_free_bytes', 'Bytes that can still be written', ['sds'], async () => [[{ sds: sds() }, (await cap()).freeBytes]]);
  return m;
}
