/**
 * The SDC's HTTP listeners.
 *
 * Every route of both but /metrics (the Prometheus scrape token,
 * shared/scrape-auth.ts) is authenticated (shared/listener-auth.ts): the
 * cluster key (PflexComponent proof, as the SDS control listener) or an
 * MDM-issued bearer token (any role for management, admin for control).
 *
 * Management (8004), read-only, for the dashboard and people:
 *   GET /health    {status, problems, name, sdcId, registered, exports, volumes: [{name, id, readOnly, sizeBytes, mapEpoch}]}
 *   GET /stats     {volumes: {<name>: VolumeStats JSON}, tracing: TracingStats (src/shared/tracing.ts)}
 *   GET /metrics   the Prometheus text format (prom-metrics.ts); needs the scrape token
 *
 * Control (8003), for the MDM and operators' tools:
 *   GET  /exports  the exports this SDC serves now
 *   POST /rescan   re-reads the volumes mapped to this SDC from the MDM
 *   POST /quiesce  {volumeIds, holdMs}: writes of those volumes wait, answered once those in flight are done (snapshot cut)
 *   POST /resume   {volumes: [{id, layerId}]}: writes go on, in the volumes' new layers
 */
import { buildListener } from '../shared/listener.js';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from '../shared/logger.js';
import { metricsHandler, requireScrapeAuth, type MetricsEndpoint } from '../shared/prom.js';
import { tracingStats } from '../shared/tracing.js';
import type { QosLimiter } from './qos.js';
import type { VolumeStats } from './stats.js';
import type { TlsMaterial } from '../shared/tls.js';

export interface ExportView {
  name: string;
  volumeId: number;
  sizeBytes: number;
  readOnly: boolean;
  isDefault: boolean;
  mapEpoch: number | null;
  stats: VolumeStats | undefined;
  qos: QosLimiter | undefined;
}

export interface SdcView {
  name: string;
  sdcId: number | undefined;
  exports(): ExportView[];
  problems(): string[];
  rescan(): Promise<void>;
  quiesce(volumeIds: number[], holdMs: number): Promise<void>;
  resume(volumes: Array<{ id: number; layerId: number }>): void;
}

const U32 = Type.Integer({ minimum: 0, maximum: 0xffffffff });
const QuiesceBody = Type.Object({ volumeIds: Type.Array(U32, { maxItems: 4096 }), holdMs: Type.Integer({ minimum: 1, maximum: 600_000 }) }, { additionalProperties: false });
const ResumeBody = Type.Object({
  volumes: Type.Array(Type.Object({ id: U32, layerId: Type.Integer({ minimum: 0, maximum: 0xffff }) }, { additionalProperties: false }), { maxItems: 4096 }),
}, { additionalProperties: false });

export function buildMgmtServer(log: Logger, clusterKey: Buffer, tls: TlsMaterial | undefined, view: SdcView, metrics: MetricsEndpoint) {
  const app = buildListener({ name: 'mgmt', access: 'read', clusterKey, log, tls });
  app.get('/health', async () => {
    const problems = view.problems();
    return {
      status: problems.length === 0 ? 'OK' : 'DEGRADED', problems, name: view.name, sdcId: view.sdcId ?? null,
      registered: view.sdcId !== undefined,
      volumes: view.exports().map((e) => ({ name: e.name, id: e.volumeId, sizeBytes: e.sizeBytes, readOnly: e.readOnly, default: e.isDefault, mapEpoch: e.mapEpoch,
        qos: { iopsLimit: e.qos?.iopsLimit ?? 0, bandwidthLimitBytesPerSec: e.qos?.bandwidthLimitBytesPerSec ?? 0, requestsQueued: e.qos?.throttled ?? 0, waitedMs: Math.round(e.qos?.waitedMs ?? 0) } })),
    };
  });
  app.get('/stats', async () => {
    const volumes: Record<string, unknown> = {};
    for (const e of view.exports()) volumes[e.name] = e.stats ? e.stats.toJSON() : null;
    return { volumes, tracing: tracingStats() };
  });
  app.get('/metrics', { config: { ownAuth: true }, onRequest: requireScrapeAuth(metrics.authorized) }, metricsHandler(metrics.registry));
  return app;
}

export function buildControlServer(log: Logger, clusterKey: Buffer, tls: TlsMaterial | undefined, view: SdcView) {
  const app = buildListener({ name: 'control', access: 'control', clusterKey, log, tls }).withTypeProvider<TypeBoxTypeProvider>();
  app.get('/exports', async () => view.exports().map((e) => ({ name: e.name, volumeId: e.volumeId, sizeBytes: e.sizeBytes, readOnly: e.readOnly, default: e.isDefault })));
  app.post('/rescan', async () => {
    await view.rescan();
    return { ok: true, exports: view.exports().map((e) => e.name) };
  });
  app.post('/quiesce', { schema: { body: QuiesceBody } }, async (req) => {
    await view.quiesce(req.body.volumeIds, req.body.holdMs);
    return { ok: true };
  });
  app.post('/resume', { schema: { body: ResumeBody } }, async (req) => {
    view.resume(req.body.volumes);
    return { ok: true };
  });
  return app;
}
