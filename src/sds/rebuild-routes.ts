/**
 * Rebuild routes of the SDS control listener (see rebuild-proto.ts), mounted
 * on the control server by node.ts: the primary side (start a copy, list
 * copies) and the joining-member side (reset, chunk images, release).
 */
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { PflexError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { DataServer } from './data-server.js';
import { chunkBytesMax } from './limits.js';
import type { PgTable } from './pg-table.js';
import { pgLockKey, type RebuildRunner } from './rebuild.js';
import type { ChunkStore } from './store/chunk-store.js';

export interface RebuildRoutesOptions {
  selfId: () => number | undefined;
  store: ChunkStore;
  pgs: PgTable;
  server: DataServer;
  runner: RebuildRunner;
  log: Logger;
}

const U32 = Type.Integer({ minimum: 0, maximum: 0xffffffff });
const obj = <T extends Parameters<typeof Type.Object>[0]>(props: T) => Type.Object(props, { additionalProperties: false });
const StartBody = obj({
  jobId: Type.Integer({ minimum: 1 }), poolId: Type.Integer({ minimum: 1 }), pg: U32, epoch: U32,
  target: obj({ sdsId: Type.Integer({ minimum: 1 }), address: Type.String({ minLength: 1, maxLength: 255 }), controlPort: Type.Integer({ minimum: 1, maximum: 65535 }) }),
  bandwidthBytesPerS: Type.Integer({ minimum: 1 }),
});
const PgParams = obj({ pg: U32 });
const ImageParams = obj({ pg: U32, tree: U32, index: U32, layer: Type.Integer({ minimum: 0, maximum: 0xffff }) });

export function rebuildRoutes(o: RebuildRoutesOptions) {
  return async (base: FastifyInstance): Promise<void> => {
    const app = base.withTypeProvider<TypeBoxTypeProvider>();
    app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: chunkBytesMax }, (_req, body, done) => done(null, body));

    /** Our PG entry, refreshed until it is at least at epoch. */
    const entryAt = async (pg: number, epoch = 0) => {
      if ((o.pgs.get(pg)?.epoch ?? -1) < epoch || epoch === 0) await o.pgs.refresh().catch(() => undefined);
      return o.pgs.get(pg);
    };
    const joiningHere = (pg: number): boolean => {
      const self = o.selfId();
      return self !== undefined && (o.pgs.get(pg)?.joining?.includes(self) ?? false);
    };

    app.post('/rebuilds', { schema: { body: StartBody } }, async (req) => o.runner.start(req.body));
    app.get('/rebuilds', async () => o.runner.list());

    app.post('/pgs/:pg/join-reset', { schema: { params: PgParams, body: obj({ epoch: U32 }) } }, async (req) => {
      const { pg } = req.params;
      await entryAt(pg, req.body.epoch);
      await o.server.locks.acquire(pgLockKey(pg), true);
      try {
        if (!joiningHere(pg)) throw new PflexError('PFLEX_ERR_CONFLICT', `this SDS is not joining PG ${pg}`);
        // Whatever we hold of the PG is from an older membership: the copy brings it all.
        await o.store.dropPg(pg);
      } finally {
        o.server.locks.release(pgLockKey(pg), true);
      }
      o.log.info({ pg, epoch: req.body.epoch }, 'joining a PG: old data dropped, copy starts');
      return { ok: true };
    });

    app.put('/pgs/:pg/images/:tree/:index/:layer', { schema: { params: ImageParams } }, async (req) => {
      const { pg, tree, index, layer } = req.params;
      if (!joiningHere(pg)) throw new PflexError('PFLEX_ERR_CONFLICT', `this SDS is not joining PG ${pg}`);
      const data = req.body;
      if (!Buffer.isBuffer(data)) throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'a chunk image is application/octet-stream');
      const key = { treeId: tree, chunkIndex: index, layerId: layer };
      const before = await o.store.stat(pg, key);
      // Not synced one by one: the primary asks for one flush (join-flush) before the member joins.
      if (data.length > 0) await o.store.write(pg, key, 0, data, false);
      // The image is the whole chunk: anything beyond it here reads as zeros on the primary too.
      if (before && before.sizeBytes > data.length) await o.store.zero(pg, key, data.length, before.sizeBytes - data.length, false);
      return { sizeBytes: data.length };
    });

    app.post('/pgs/:pg/join-flush', { schema: { params: PgParams } }, async (req) => {
      if (!joiningHere(req.params.pg)) throw new PflexError('PFLEX_ERR_CONFLICT', `this SDS is not joining PG ${req.params.pg}`);
      await o.store.flush();
      return { ok: true };
    });

    app.post('/pgs/:pg/release', { schema: { params: PgParams } }, async (req) => {
      const { pg } = req.params;
      const dropped = await dropIfNotMember(o, pg, true);
      if (!dropped) throw new PflexError('PFLEX_ERR_CONFLICT', `this SDS is still a member of PG ${pg}`);
      return { ok: true };
    });
  };
}

/**
 * Drops the PG's data when our (refreshed) map says we are neither a member
 * nor joining. Checked under the PG lock, so a concurrent join-reset or a
 * read routed here is never cut short.
 */
export async function dropIfNotMember(o: Pick<RebuildRoutesOptions, 'selfId' | 'store' | 'pgs' | 'server' | 'log'>, pg: number, refresh: boolean): Promise<boolean> {
  if (refresh) await o.pgs.refresh().catch(() => undefined);
  const self = o.selfId();
  if (self === undefined) return false;
  await o.server.locks.acquire(pgLockKey(pg), true);
  try {
    const e = o.pgs.get(pg);
    if (!e || e.members.includes(self) || (e.joining?.includes(self) ?? false)) return false;
    await o.store.dropPg(pg);
  } finally {
    o.server.locks.release(pgLockKey(pg), true);
  }
  o.log.info({ pg }, 'dropped the data of a PG this SDS no longer belongs to');
  return true;
}
