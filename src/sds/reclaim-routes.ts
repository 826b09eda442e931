/**
 * Reclaim routes of the SDS control listener, called by the MDM's reclaim
 * service (src/mdm/services/reclaim.ts):
 *
 *   DELETE /trees/:tree                               the tree is dead (durably) and every chunk of it is removed -> {chunks, bytes}
 *   DELETE /trees/:tree/layers/:layer                 the layer is dead (durably: a freed snapshot layer) and its chunks
 *                                                     are removed -> {chunks, bytes}
 *   POST   /trees/:tree/trim {fromBytes, chunkBytes}  chunks wholly past fromBytes are removed, the one it cuts is
 *                                                     zeroed from there on (a shrunk volume) -> {chunks, bytes}
 *
 * Both are idempotent: the MDM repeats them until every SDS of the pool has
 * answered. Each chunk is handled under its rebuild lock, so a copy of it in
 * flight finishes before or starts after (and a dead tree's image is refused).
 */
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../shared/logger.js';
import type { DataServer } from './data-server.js';
import type { DeadTrees } from './dead-trees.js';
import { chunkBytesMax } from '../dataplane/limits.js';
import { chunkLockKey } from './rebuild.js';
import { removeChunk } from './rebuild-routes.js';
import type { ChunkStore, TreeChunk } from './store/chunk-store.js';

export interface ReclaimRoutesOptions {
  store: ChunkStore;
  server: DataServer;
  deadTrees: DeadTrees;
  log: Logger;
}

/** What a reclaim call freed (logical chunk bytes). */
export interface ReclaimResult { chunks: number; bytes: number }

const U32 = Type.Integer({ minimum: 0, maximum: 0xffffffff });
const TreeParams = Type.Object({ tree: U32 }, { additionalProperties: false });
const LayerParams = Type.Object({ tree: U32, layer: Type.Integer({ minimum: 0, maximum: 0xffff }) }, { additionalProperties: false });
const TrimBody = Type.Object({
  fromBytes: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  chunkBytes: Type.Integer({ minimum: 4096, maximum: chunkBytesMax }),
}, { additionalProperties: false });

export function reclaimRoutes(o: ReclaimRoutesOptions) {
  return async (app: FastifyInstance): Promise<void> => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.delete('/trees/:tree', { schema: { params: TreeParams } }, async (req): Promise<ReclaimResult> => {
      const { tree } = req.params;
      // Dead first: from here on no write, forward or rebuild image of the tree lands here.
      await o.deadTrees.add(tree);
      const freed = await forEachChunk(o, await o.store.treeChunks(tree), async (c) => (await removeChunk(o.store, c.pgId, c.info)) ? c.info.sizeBytes : null);
      await o.store.flush();
      o.log.info({ tree, ...freed }, 'reclaimed the chunks of a deleted volume tree');
      return freed;
    });

    r.delete('/trees/:tree/layers/:layer', { schema: { params: LayerParams } }, async (req): Promise<ReclaimResult> => {
      const { tree, layer } = req.params;
      // Dead first: from here on no rebuild image of the layer lands here (no volume writes it any more).
      await o.deadTrees.addLayer(tree, layer);
      const chunks = (await o.store.treeChunks(tree)).filter((c) => c.info.layerId === layer);
      const freed = await forEachChunk(o, chunks, async (c) => (await removeChunk(o.store, c.pgId, c.info)) ? c.info.sizeBytes : null);
      await o.store.flush();
      o.log.info({ tree, layer, ...freed }, 'reclaimed the chunks of a freed layer');
      return freed;
    });

    r.post('/trees/:tree/trim', { schema: { params: TreeParams, body: TrimBody } }, async (req): Promise<ReclaimResult> => {
      const { tree } = req.params;
      const { fromBytes, chunkBytes } = req.body;
      const cut = Math.floor(fromBytes / chunkBytes);
      const within = fromBytes - cut * chunkBytes;
      const past = (await o.store.treeChunks(tree)).filter((c) => c.info.chunkIndex > cut || (c.info.chunkIndex === cut && c.info.sizeBytes > within));
      const freed = await forEachChunk(o, past, async (c) => {
        const now = await o.store.stat(c.pgId, c.info);
        if (!now) return null;
        if (c.info.chunkIndex > cut || within === 0) return (await removeChunk(o.store, c.pgId, c.info)) ? now.sizeBytes : null;
        if (now.sizeBytes <= within) return null;
        await o.store.zero(c.pgId, c.info, within, now.sizeBytes - within, false);
        return now.sizeBytes - within;
      });
      await o.store.flush();
      o.log.info({ tree, fromBytes, ...freed }, 'trimmed a shrunk volume tree');
      return freed;
    });
  };
}

/** Runs fn on each chunk under its rebuild lock; fn answers the bytes it freed (null: nothing to do). */
async function forEachChunk(o: ReclaimRoutesOptions, chunks: TreeChunk[], fn: (c: TreeChunk) => Promise<number | null>): Promise<ReclaimResult> {
  let n = 0;
  let bytes = 0;
  for (const c of chunks) {
    const key = chunkLockKey(c.pgId, c.info);
    await o.server.locks.acquire(key, true);
    try {
      const freed = await fn(c);
      if (freed !== null) {
        n++;
        bytes += freed;
      }
    } finally {
      o.server.locks.release(key, true);
    }
  }
  return { chunks: n, bytes };
}
