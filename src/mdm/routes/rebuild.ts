import { Type } from '@fastify/type-provider-typebox';
import type { MdmApp } from '../app.js';
import { MDM_LIMITS } from '../config.js';
import { ERROR_ANSWERS, Id, IdParams, PgEntry } from '../../shared/mdm-api.js';
import type { Services } from '../services/index.js';

const obj = <T extends Parameters<typeof Type.Object>[0]>(props: T) => Type.Object(props, { additionalProperties: false });
const Count = Type.Integer({ minimum: 0 });
const Mode = Type.Union([Type.Literal('full'), Type.Literal('delta')]);
const Progress = obj({ chunksDone: Count, chunksTotal: Count, bytesDone: Count, bytesTotal: Count });
/** What a primary reports with its join; mode and bytesSkipped are absent from SDSs older than delta rebuild. */
const JoinProgress = obj({
  chunksDone: Count, chunksTotal: Count, bytesDone: Count, bytesTotal: Count, mode: Type.Optional(Mode), bytesSkipped: Type.Optional(Count),
});
const Job = Type.Object({
  id: Id, poolId: Id, pg: Count, kind: Type.Union([Type.Literal('rebuild'), Type.Literal('rebalance'), Type.Literal('drain')]),
  sourceSdsId: Type.Integer(), targetSdsId: Type.Integer(), replacesSdsId: Type.Union([Type.Integer(), Type.Null()]), epoch: Count,
  state: Type.String(), chunksDone: Count, chunksTotal: Count, bytesDone: Count, bytesTotal: Count, mode: Mode, bytesSkipped: Count,
  error: Type.Union([Type.String(), Type.Null()]), createdAtMs: Count,
  startedAtMs: Type.Union([Count, Type.Null()]), finishedAtMs: Type.Union([Count, Type.Null()]),
});
const Status = Type.Object({
  active: Type.Boolean(),
  pools: Type.Array(Type.Object({
    id: Id, name: Type.String(), pgCount: Count, replicationFactor: Count, degradedPgs: Count, rebuildingPgs: Count,
  })),
  jobs: Type.Array(Job),
  totals: Progress,
  recentBytesPerS: Count,
  draining: Type.Array(Type.Integer()),
  limits: Type.Object({ bandwidthBytesPerS: Count, concurrentPgsMax: Count }),
});

export function rebuildRoutes(app: MdmApp, s: Services): void {
  app.get('/rebuild', {
    config: { access: 'read' },
    schema: { tags: ['rebuild'], summary: 'Rebuild, rebalance and drain progress: degraded PGs, running copies, totals', response: { 200: Status, ...ERROR_ANSWERS } },
  }, async () => s.rebuild.status());
  app.get('/rebuild/jobs', {
    config: { access: 'read' },
    schema: {
      tags: ['rebuild'], summary: 'Recent PG copies, newest first',
      querystring: obj({ limit: Type.Integer({ minimum: 1, maximum: MDM_LIMITS.listLimitMax, default: 100 }) }),
      response: { 200: Type.Array(Job), ...ERROR_ANSWERS },
    },
  }, async (req) => s.rebuild.history(req.query.limit));
  app.post('/storage-pools/:id/pgs/:pg/join', {
    config: { access: 'component' },
    schema: {
      tags: ['rebuild'], summary: 'The primary reports a joining member fully copied: it joins the acting set (new epoch)',
      params: obj({ id: Id, pg: Type.Integer({ minimum: 0, maximum: MDM_LIMITS.pgCountMax }) }),
      body: obj({ sdsId: Id, epoch: Count, progress: Type.Optional(JoinProgress) }),
      response: { 200: Type.Object({ pg: PgEntry }), ...ERROR_ANSWERS },
    },
  }, async (req) => ({ pg: s.rebuild.join(req.params.id, req.params.pg, req.body.sdsId, req.body.epoch, req.body.progress) }));
  app.post('/sds/:id/drain', {
    config: { access: 'admin' },
    schema: {
      tags: ['rebuild'], summary: 'Move every PG off the SDS (throttled like rebuild), then remove it',
      params: IdParams, response: { 200: obj({ sdsId: Id, draining: Type.Boolean(), pgs: Count }), ...ERROR_ANSWERS },
    },
  }, async (req) => s.rebuild.drain(req.params.id));
}
