/**
 * The SDS control listener (port 9100): commands from the MDM (and chunk
 * copies between SDSs) as JSON over HTTP, every route authenticated
 * (shared/listener-auth.ts: the cluster key, or an admin's MDM token).
 * Chunk bytes travel raw (application/octet-stream), verified against their
 * checksums when read.
 *
 *   GET    /pgs                                   PGs held here: [{pg, chunks, bytes}]
 *   GET    /pgs/:pg/chunks                        chunks of a PG: [{treeId, chunkIndex, layerId, sizeBytes}]
 *   GET    /pgs/:pg/chunks/:tree/:index/:layer    the chunk's bytes (404 when absent)
 *   POST   /pgs/:pg/copy-chunk                    {from: {address, controlPort}, treeId, chunkIndex, layerId} -> {sizeBytes}
 *   DELETE /pgs/:pg                               drop all data of the PG -> {ok}
 *   POST   /volumes/forget                        {volumeIds}: forget cached volume -> layer answers (a snapshot moved them) -> {ok}
 *   GET    /trees/:tree/layers                    bytes of a tree's chunks here, by PG and layer: [{pg, layerId, chunks, bytes}] (space accounting)
 *
 * node.ts mounts the rebuild routes (rebuild-routes.ts) and the reclaim
 * routes (reclaim-routes.ts: deleted volume trees, freed snapshot layers,
 * shrunk tails) here too.
 */
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from '../shared/logger.js';
import { PflexError } from '../shared/errors.js';
import { buildListener } from '../shared/listener.js';
import type { ChunkStore } from './store/chunk-store.js';
import { controlAuthorization } from '../shared/control-auth.js';
import { peerHttp, type PeerHttp, type TlsMaterial } from '../shared/tls.js';
import { mdmCallTimeoutMs } from './limits.js';
import type { VolumeTrees } from './volume-trees.js';

export interface ControlServerOptions {
  store: ChunkStore;
  clusterKey: Buffer;
  /** Our name as a caller of peers' control listeners ("sds:<name>"). */
  caller: string;
  log: Logger;
  /** Serve HTTPS with this certificate. */
  tls?: TlsMaterial | undefined;
  /** How peers' control listeners are called (chunk copies); default plain HTTP. */
  peer?: PeerHttp;
  /** The data server's volume -> layer cache (forgotten when the MDM moves a volume to a new layer). */
  trees?: VolumeTrees;
  /** Trees and layers reclaimed here (src/sds/dead-trees.ts): a copy must not bring their chunks back. */
  deadTrees?: { hasLayer(treeId: number, layerId: number): boolean };
}

const PgParams = Type.Object({ pg: Type.Integer({ minimum: 0, maximum: 0xffffffff }) });
const ChunkParams = Type.Object({
  pg: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
  tree: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
  index: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
  layer: Type.Integer({ minimum: 0, maximum: 0xffff }),
});
const CopyBody = Type.Object({
  from: Type.Object({ address: Type.String({ minLength: 1, maxLength: 255 }), controlPort: Type.Integer({ minimum: 1, maximum: 65535 }) }, { additionalProperties: false }),
  treeId: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
  chunkIndex: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
  layerId: Type.Integer({ minimum: 0, maximum: 0xffff }),
}, { additionalProperties: false });

export function buildControlServer(o: ControlServerOptions) {
  const app = buildListener({ name: 'control', access: 'control', clusterKey: o.clusterKey, log: o.log, bodyLimitBytes: 1024 * 1024, tls: o.tls })
    .withTypeProvider<TypeBoxTypeProvider>();
  const { store } = o;
  const peer = o.peer ?? peerHttp(undefined);

  app.get('/pgs', async () => {
    const out = [];
    for (const pg of await store.pgs()) {
      const chunks = await store.list(pg);
      out.push({ pg, chunks: chunks.length, bytes: chunks.reduce((a, c) => a + c.sizeBytes, 0) });
    }
    return out;
  });

  app.get('/pgs/:pg/chunks', { schema: { params: PgParams } }, async (req) => store.list(req.params.pg));

  app.get('/pgs/:pg/chunks/:tree/:index/:layer', { schema: { params: ChunkParams } }, async (req, reply) => {
    const { pg, tree, index, layer } = req.params;
    const key = { treeId: tree, chunkIndex: index, layerId: layer };
    const info = await store.stat(pg, key);
    if (!info) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no chunk ${tree}-${index}-${layer} in PG ${pg}`);
    const data = info.sizeBytes === 0 ? Buffer.alloc(0) : await store.read(pg, key, 0, info.sizeBytes);
    if (!data) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no chunk ${tree}-${index}-${layer} in PG ${pg}`);
    return reply.type('application/octet-stream').send(data);
  });

  app.post('/pgs/:pg/copy-chunk', { schema: { params: PgParams, body: CopyBody } }, async (req) => {
    const { pg } = req.params;
    const { from, treeId, chunkIndex, layerId } = req.body;
    // A chunk of a deleted tree or freed layer written now would never be reclaimed again.
    if (o.deadTrees?.hasLayer(treeId, layerId)) {
      throw new PflexError('PFLEX_ERR_CONFLICT', `volume tree ${treeId} layer ${layerId} was deleted here: its chunks are not copied back`);
    }
    const url = `${peer.scheme}://${from.address}:${from.controlPort}/pgs/${pg}/chunks/${treeId}/${chunkIndex}/${layerId}`;
    let res: Response;
    try {
      res = await peer.fetch(url, { headers: { authorization: controlAuthorization(o.clusterKey, o.caller) }, signal: AbortSignal.timeout(mdmCallTimeoutMs * 6) });
    } catch (err) {
      throw new PflexError('PFLEX_ERR_UNAVAILABLE', `cannot reach ${from.address}:${from.controlPort}: ${(err as Error).message}`);
    }
    if (res.status === 404) throw new PflexError('PFLEX_ERR_NOT_FOUND', `the peer has no chunk ${treeId}-${chunkIndex}-${layerId} in PG ${pg}`);
    if (!res.ok) throw new PflexError('PFLEX_ERR_UNAVAILABLE', `the peer answered HTTP ${res.status}`);
    const data = Buffer.from(await res.arrayBuffer());
    const key = { treeId, chunkIndex, layerId };
    if (data.length > 0) await store.write(pg, key, 0, data, true);
    return { sizeBytes: data.length };
  });

  app.post('/volumes/forget', {
    schema: { body: Type.Object({ volumeIds: Type.Array(Type.Integer({ minimum: 0, maximum: 0xffffffff }), { maxItems: 4096 }) }, { additionalProperties: false }) },
  }, async (req) => {
    for (const id of req.body.volumeIds) o.trees?.forget(id);
    return { ok: true };
  });

  app.get('/trees/:tree/layers', { schema: { params: Type.Object({ tree: Type.Integer({ minimum: 0, maximum: 0xffffffff }) }) } }, async (req) => {
    const out: Array<{ pg: number; layerId: number; chunks: number; bytes: number }> = [];
    for (const pg of await store.pgs()) {
      const byLayer = new Map<number, { pg: number; layerId: number; chunks: number; bytes: number }>();
      for (const c of await store.list(pg)) {
        if (c.treeId !== req.params.tree) continue;
        let e = byLayer.get(c.layerId);
        if (!e) byLayer.set(c.layerId, (e = { pg, layerId: c.layerId, chunks: 0, bytes: 0 }));
        e.chunks++;
        e.bytes += c.sizeBytes;
      }
      out.push(...byLayer.values());
    }
    return out;
  });

  app.delete('/pgs/:pg', { schema: { params: PgParams } }, async (req) => {
    await store.dropPg(req.params.pg);
    o.log.info({ pg: req.params.pg }, 'dropped the data of a PG');
    return { ok: true };
  });

  return app;
}
