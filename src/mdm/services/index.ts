import { SpaceService } from './space.js';
import type { MdmConfig } from '../config.js';
import type { Db } from '../db.js';
import { AlertRepo } from '../repos/alert-repo.js';
import { PgRepo } from '../repos/pg-repo.js';
import { RebuildRepo } from '../repos/rebuild-repo.js';
import { ReclaimRepo } from '../repos/reclaim-repo.js';
import { SecurityRepo } from '../repos/security-repo.js';
import { TopologyRepo } from '../repos/topology-repo.js';
import { VolumeRepo } from '../repos/volume-repo.js';
import { PolicyRepo } from '../repos/policy-repo.js';
import { installAlertRules } from './alert-rules.js';
import { AlertService } from './alerts.js';
import { AuditService } from './audit.js';
import { AuthService, type SignFn } from './auth.js';
import { BackupService } from './backup.js';
import { MdmEvents, type Clock } from './events.js';
import { HealthService } from './health.js';
import { MetricsService } from './metrics.js';
import { PgMapService, type PlaceFn } from './pgmap.js';
import { ReclaimService } from './reclaim.js';
import { RebuildService } from './rebuild.js';
import { StatsService } from './stats.js';
import { HttpSdsControl, type SdsControl, type SdsReclaim } from './rebuild-control.js';
import { TokenService } from './tokens.js';
import { TopologyService } from './topology.js';
import { VolumeService } from './volumes.js';
import type { PeerHttp } from '../../shared/tls.js';
import { SnapshotService } from './snapshots.js';
import { HttpLayerControl, type LayerControl } from './layer-control.js';

export interface Services {
  events: MdmEvents;
  auth: AuthService;
  audit: AuditService;
  topology: TopologyService;
  volumes: VolumeService;
  pgmaps: PgMapService;
  health: HealthService;
  alerts: AlertService;
  tokens: TokenService;
  rebuild: RebuildService;
  metrics: MetricsService;
  stats: StatsService;
  snapshots: SnapshotService;
  space: SpaceService;
  reclaim: ReclaimService;
  backup: BackupService;
}

export interface ServiceDeps {
  db: Db;
  clusterKey: Buffer;
  config: MdmConfig;
  clock: Clock;
  place: PlaceFn;
  sign: SignFn;
  /** How the MDM reaches SDS control listeners (rebuild); default HTTP. */
  sdsControl?: SdsControl;
  /** How the default SdsControl reaches the SDSs (HTTPS with the cluster CA when TLS is on). */
  peer?: PeerHttp;
  /** Export prom-client's process metrics (once per process: the server). */
  processMetrics?: boolean;
  /** How the MDM quiesces SDCs and tells SDSs about layer changes (snapshots); default HTTP. */
  layerControl?: LayerControl;
  /** How the MDM reaches SDS control listeners (reclaim); default HTTP. */
  sdsReclaim?: SdsReclaim;
  /** Directory of the MDM's backups; none: backups are off. */
  backupDir?: string | undefined;
}

/** Wires repositories into services (the only place that knows them all). */
export function createServices(d: ServiceDeps): Services {
  const events = new MdmEvents();
  const topoRepo = new TopologyRepo(d.db);
  const volRepo = new VolumeRepo(d.db);
  const secRepo = new SecurityRepo(d.db);
  const pgRepo = new PgRepo(d.db);
  const pgmaps = new PgMapService(d.db, pgRepo, topoRepo, d.place, events);
  const topology = new TopologyService(d.db, topoRepo, volRepo, pgmaps, d.config, d.clock, events);
  const alerts = new AlertService(d.db, new AlertRepo(d.db), d.clock);
  const reclaimRepo = new ReclaimRepo(d.db);
  const http = new HttpSdsControl(d.clusterKey, d.peer);
  const volumes = new VolumeService(d.db, volRepo, reclaimRepo, topoRepo, topology, d.clock, events);
  const rebuild = new RebuildService(d.db, pgRepo, new RebuildRepo(d.db), topoRepo, topology, alerts, d.place, d.config, d.clock, events,
    d.sdsControl ?? http);
  const stats = new StatsService(topoRepo, volRepo, d.clock);
  const layerControl = d.layerControl ?? new HttpLayerControl(d.clusterKey, d.peer);
  const services: Services = {
    events,
    auth: new AuthService(d.db, secRepo, d.clusterKey, d.config, d.clock, d.sign),
    audit: new AuditService(secRepo),
    topology,
    volumes,
    pgmaps,
    health: new HealthService(d.db, topoRepo, topology, alerts, d.config, d.clock, events, stats),
    alerts,
    tokens: new TokenService(d.clusterKey, topoRepo, volRepo, d.config, d.clock),
    rebuild,
    metrics: new MetricsService({ topology, volumes, rebuild, alerts, pgs: pgRepo, clock: d.clock, processMetrics: d.processMetrics ?? false }),
    stats,
    snapshots: new SnapshotService(d.db, volRepo, new PolicyRepo(d.db), topoRepo, volumes, layerControl, d.config, d.clock, events),
    space: new SpaceService(volRepo, topoRepo, layerControl),
    reclaim: new ReclaimService(d.db, reclaimRepo, topoRepo, d.sdsReclaim ?? http, d.config, d.clock, events),
    backup: new BackupService(d.db, d.clusterKey, d.backupDir, d.config, d.clock),
  };
  installAlertRules(events, alerts, topology);
  return services;
}
