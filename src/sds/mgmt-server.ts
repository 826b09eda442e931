/**
 * The SDS management listener (port 9200), read-only; nothing here changes the SDS.
 * Every route but /metrics is authenticated by the listener
 * (shared/listener-auth.ts: the cluster key or any MDM-issued token);
 * /metrics wants the Prometheus scrape token (shared/scrape-auth.ts).
 *
 *   GET /health   {status, name, sdsId, storagePoolId, registered, mapEpoch, pgs, capacity} (JSON, for people and the dashboard)
 *   GET /stats    counters and latency histograms as JSON (see metrics.ts)
 *   GET /metrics  the same and more in the Prometheus text format (prom-metrics.ts)
 */
import { buildListener } from '../shared/listener.js';
import type { Logger } from '../shared/logger.js';
import type { TlsMaterial } from '../shared/tls.js';
import { metricsHandler, requireScrapeAuth, type MetricsEndpoint } from '../shared/prom.js';
import type { SdsMetrics } from './metrics.js';
import type { StoreCapacity } from './store/chunk-store.js';

export interface MgmtView {
  name: string;
  sdsId: number | undefined;
  storagePoolId: number | undefined;
  mapEpoch: number | undefined;
  /** PGs this SDS is a member of, by role. */
  pgs: { primary: number; secondary: number };
  capacity(): Promise<StoreCapacity>;
  metrics: SdsMetrics;
  /** Problems that make the SDS not OK (e.g. not registered, checksum errors). */
  problems(): string[];
}

export function buildMgmtServer(clusterKey: Buffer, log: Logger, tls: TlsMaterial | undefined, view: () => MgmtView, metrics: MetricsEndpoint) {
  const app = buildListener({ name: 'mgmt', access: 'read', clusterKey, log, tls });
  app.get('/health', async () => {
    const v = view();
    const problems = v.problems();
    return {
      status: problems.length === 0 ? 'OK' : 'DEGRADED', problems, name: v.name, sdsId: v.sdsId ?? null,
      storagePoolId: v.storagePoolId ?? null, registered: v.sdsId !== undefined, mapEpoch: v.mapEpoch ?? null,
      pgs: v.pgs, capacity: await v.capacity(),
    };
  });
  app.get('/stats', async () => view().metrics.toJSON());
  app.get('/metrics', { config: { ownAuth: true }, onRequest: requireScrapeAuth(metrics.authorized) }, metricsHandler(metrics.registry));
  return app;
}
