/**
 * The MDM's Prometheus metrics (GET /metrics): the cluster as the MDM sees
 * it, computed at scrape time from the database and the services: component
 * states and heartbeat ages, PG states per pool, rebuild progress, volumes,
 * capacity, open alerts. docs/metrics.md lists every series.
 */
import { MetricsRegistry, oncePerScrape, type Sample } from '../../shared/prom.js';
import type { PgRepo } from '../repos/pg-repo.js';
import { SEVERITIES } from '../repos/alert-repo.js';
import type { ComponentState } from '../repos/topology-repo.js';
import type { AlertService } from './alerts.js';
import type { Clock } from './events.js';
import type { RebuildService } from './rebuild.js';
import type { PoolView, TopologyService } from './topology.js';
import type { VolumeService } from './volumes.js';

const STATES: readonly ComponentState[] = ['ACTIVE', 'STALE', 'DOWN'];
type PoolLabels = 'protection_domain' | 'pool';

export interface MetricsDeps {
  topology: TopologyService;
  volumes: VolumeService;
  rebuild: RebuildService;
  alerts: AlertService;
  pgs: PgRepo;
  clock: Clock;
  /** prom-client's process metrics too (the server; not for apps built by tests). */
  processMetrics?: boolean;
}

export class MetricsService {
  private readonly m: MetricsRegistry;

  constructor(private readonly d: MetricsDeps) {
    this.m = new MetricsRegistry({ processMetrics: d.processMetrics ?? false });
    this.components();
    this.pools();
    this.rebuild();
    const m = this.m;
    m.gauge('pflex_mdm_alerts_open', 'Open alerts by severity', ['severity'], () => {
      const open = d.alerts.openCounts();
      return SEVERITIES.map((severity) => [{ severity }, open[severity]] as const);
    });
  }

  render(): Promise<string> {
    return this.m.render();
  }

  get contentType(): string {
    return this.m.contentType;
  }

  private components(): void {
    const { topology, clock } = this.d;
    const all = oncePerScrape(() => [
      ...topology.listSds().map((s) => ({ kind: 'sds', ...s })),
      ...topology.listSdcs().map((s) => ({ kind: 'sdc', ...s })),
    ]);
    this.m.gauge('pflex_mdm_components', 'Registered SDSs and SDCs by state', ['kind', 'state'], () => {
      const list = all();
      return ['sds', 'sdc'].flatMap((kind) => STATES.map((state) => [{ kind, state }, list.filter((c) => c.kind === kind && c.state === state).length] as const));
    });
    this.m.gauge('pflex_mdm_component_state', 'State of each SDS and SDC: 1 for its current state, 0 for the others', ['kind', 'name', 'state'], () =>
      all().flatMap((c) => STATES.map((state) => [{ kind: c.kind, name: c.name, state }, c.state === state ? 1 : 0] as const)));
    this.m.gauge('pflex_mdm_heartbeat_age_seconds', 'Seconds since the last heartbeat of each SDS and SDC', ['kind', 'name'], () => {
      const now = clock();
      return all().map((c) => [{ kind: c.kind, name: c.name }, Math.max(0, (now - c.lastHeartbeatMs) / 1000)] as const);
    });
  }

  private pools(): void {
    const { topology, volumes, pgs } = this.d;
    const pools = oncePerScrape((): Array<{ labels: Record<PoolLabels, string>; p: PoolView }> => {
      const pds = new Map(topology.listPds().map((pd) => [pd.id, pd.name]));
      return topology.listPools().map((p) => ({ labels: { protection_domain: pds.get(p.protectionDomainId) ?? String(p.protectionDomainId), pool: p.name }, p }));
    });
    const perPool = (f: (p: PoolView) => number) => (): Array<Sample<PoolLabels>> => pools().map(({ labels, p }) => [labels, f(p)]);
    const poolLabels: PoolLabels[] = ['protection_domain', 'pool'];
    this.m.gauge('pflex_mdm_pgs', 'PGs per pool by state: active (every copy), rebuilding (a member joining), degraded (fewer copies than the replication factor, nothing joining)',
      [...poolLabels, 'state'], () => pools().flatMap(({ labels, p }) => {
        const n = { active: 0, degraded: 0, rebuilding: 0 };
        for (const e of pgs.list(p.id)) {
          if (e.joining.length > 0) n.rebuilding++;
          else if (e.members.length < p.replicationFactor) n.degraded++;
          else n.active++;
        }
        return Object.entries(n).map(([state, v]) => [{ ...labels, state }, v] as const);
      }));
    this.m.gauge('pflex_mdm_pgs_degraded', 'PGs with fewer copies than the replication factor (being rebuilt or not)', poolLabels, perPool((p) => p.degradedPgs));
    this.m.gauge('pflex_mdm_pg_map_epoch', 'Epoch of the pool\'s PG map', poolLabels, perPool((p) => p.mapEpoch));
    this.m.gauge('pflex_mdm_pool_sds', 'SDSs in the pool', poolLabels, perPool((p) => p.sdsCount));
    this.m.gauge('pflex_mdm_volumes', 'Volumes in the pool', poolLabels, perPool((p) => p.volumeCount));
    this.m.gauge('pflex_mdm_pool_total_bytes', 'Raw capacity of the pool\'s SDSs (all copies)', poolLabels, perPool((p) => p.capacity.totalBytes));
    this.m.gauge('pflex_mdm_pool_usable_bytes', 'Net capacity: total / replication factor', poolLabels, perPool((p) => p.capacity.usableBytes));
    this.m.gauge('pflex_mdm_pool_used_bytes', 'Raw bytes stored (all copies), from the SDS heartbeats', poolLabels, perPool((p) => p.capacity.usedBytes));
    this.m.gauge('pflex_mdm_pool_reserved_bytes', 'Net bytes reserved by thick volumes', poolLabels, perPool((p) => p.capacity.reservedBytes));
    this.m.gauge('pflex_mdm_pool_provisioned_bytes', 'Net size of all volumes', poolLabels, perPool((p) => p.capacity.provisionedBytes));
    this.m.gauge('pflex_mdm_pool_utilization_ratio', 'Used / total raw capacity (0..1)', poolLabels, perPool((p) => p.capacity.utilizationPct / 100));
    this.m.gauge('pflex_mdm_volume_size_bytes', 'Size of each volume', ['volume', ...poolLabels], () => {
      const byId = new Map(pools().map(({ labels, p }) => [p.id, labels]));
      return volumes.list().map((v) => [{ volume: v.name, ...(byId.get(v.storagePoolId) ?? { protection_domain: '', pool: String(v.storagePoolId) }) }, v.sizeBytes] as const);
    });
  }

  private rebuild(): void {
    const status = oncePerScrape(() => this.d.rebuild.status());
    this.m.gauge('pflex_mdm_rebuild_bytes_done', 'Bytes copied so far by the running rebuild, rebalance and drain copies', [], () => [[{}, status().totals.bytesDone]]);
    this.m.gauge('pflex_mdm_rebuild_bytes_total', 'Bytes the running copies have to go through', [], () => [[{}, status().totals.bytesTotal]]);
    this.m.gauge('pflex_mdm_rebuild_jobs', 'Running copies (one per PG and joining member)', [], () => [[{}, status().jobs.length]]);
    this.m.gauge('pflex_mdm_rebuild_recent_bytes_per_second', 'Bytes per second copied by the copies finished in the last minute', [], () => [[{}, status().recentBytesPerS]]);
    this.m.gauge('pflex_mdm_rebuild_draining_sds', 'SDSs being drained before removal', [], () => [[{}, status().draining.length]]);
  }
}
