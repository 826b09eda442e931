/**
 * Rebuild routes of the SDS control listener (see src/dataplane/rebuild-proto.ts), mounted
 * on the control server by node.ts: the primary side (start a copy, list
 * copies) and the joining-member side (reset or keep, digests, chunk images,
 * release), and what a former member does with the data of a PG it left
 * (dropIfNotMember: dropped, or kept a while, never served, for a delta copy).
 */
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { PflexError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { DataServer } from './data-server.js';
import { chunkBytesMax } from '../dataplane/limits.js';
import type { PgEntry, PgTable } from './pg-table.js';
import type { ChunkDigest } from '../dataplane/rebuild-proto.js';
import { chunkSha256, pgLockKey, type RebuildRunner } from './rebuild.js';
import { rebuildDeltaChunksMax, rebuildKeyListBytesMax, rebuildStaleKeepMs } from './rebuild-limits.js';
import { chunkName, type ChunkKey, type ChunkStore } from './store/chunk-store.js';

export interface RebuildRoutesOptions {
  selfId: () => number | undefined;
  store: ChunkStore;
  pgs: PgTable;
  server: DataServer;
  runner: RebuildRunner;
  /** Trees of deleted volumes: an image of one arriving after the reclaim is dropped, not stored. */
  deadTrees?: { hasLayer(treeId: number, layerId: number): boolean };
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
/** The copy's epoch (sent by current primaries; an older primary omits it). */
const EpochQuery = obj({ epoch: Type.Optional(U32) });
const KeepBody = obj({ epoch: U32, keys: Type.Array(U32, { maxItems: 3 * rebuildDeltaChunksMax }) });

export function rebuildRoutes(o: RebuildRoutesOptions) {
  return async (base: FastifyInstance): Promise<void> => {
    const app = base.withTypeProvider<TypeBoxTypeProvider>();
    app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: chunkBytesMax }, (_req, body, done) => done(null, body));

    /** Our PG entry, refreshed until it is at least at epoch. */
    const entryAt = async (pg: number, epoch = 0) => {
      if ((o.pgs.get(pg)?.epoch ?? -1) < epoch || epoch === 0) await o.pgs.refresh().catch(() => undefined);
      return o.pgs.get(pg);
    };
    /**
     * We are joining the PG, at the copy's epoch when the primary sends it: any
     * change of the PG entry dooms a copy, and the late calls of a doomed one
     * (its primary not told yet) must not touch what a newer copy verified.
     */
    const checkJoining = async (pg: number, epoch: number | undefined): Promise<void> => {
      if (epoch !== undefined && (o.pgs.get(pg)?.epoch ?? -1) < epoch) await o.pgs.refresh().catch(() => undefined);
      const self = o.selfId();
      const e = o.pgs.get(pg);
      if (self === undefined || !e || !(e.joining?.includes(self) ?? false)) throw new PflexError('PFLEX_ERR_CONFLICT', `this SDS is not joining PG ${pg}`);
      if (epoch !== undefined && e.epoch !== epoch) throw new PflexError('PFLEX_ERR_CONFLICT', `PG ${pg} is at epoch ${e.epoch}; this copy started at ${epoch}`);
    };

    app.post('/rebuilds', { schema: { body: StartBody } }, async (req) => o.runner.start(req.body));
    app.get('/rebuilds', async () => o.runner.list());

    app.post('/pgs/:pg/join-reset', { schema: { params: PgParams, body: obj({ epoch: U32 }) } }, async (req) => {
      const { pg } = req.params;
      await entryAt(pg, req.body.epoch);
      await o.server.locks.acquire(pgLockKey(pg), true);
      try {
        await checkJoining(pg, req.body.epoch);
        // Whatever we hold of the PG is from an older membership: the copy brings it all.
        await o.store.dropPg(pg);
      } finally {
        o.server.locks.release(pgLockKey(pg), true);
      }
      o.log.info({ pg, epoch: req.body.epoch }, 'joining a PG: old data dropped, copy starts');
      return { ok: true };
    });

    // Delta copy: old chunks the primary no longer has go (deleted or trimmed
    // while we were away; one created later arrives by forwarding); the rest
    // stay, untrusted, until the primary has compared each one's digest.
    app.post('/pgs/:pg/join-keep', { bodyLimit: rebuildKeyListBytesMax, schema: { params: PgParams, body: KeepBody } }, async (req) => {
      const { pg } = req.params;
      const { keys } = req.body;
      if (keys.length % 3 !== 0) throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'keys is a flat list of [tree, index, layer] triples');
      if (keys.some((k, i) => i % 3 === 2 && k > 0xffff)) throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'a layer id is at most 65535');
      const listed = new Set<string>();
      for (let i = 0; i < keys.length; i += 3) listed.add(chunkName({ treeId: keys[i]!, chunkIndex: keys[i + 1]!, layerId: keys[i + 2]! }));
      await entryAt(pg, req.body.epoch);
      const kept: number[] = [];
      let removed = 0;
      await o.server.locks.acquire(pgLockKey(pg), true);
      try {
        await checkJoining(pg, req.body.epoch);
        for (const c of await o.store.list(pg)) {
          if (listed.has(chunkName(c))) kept.push(c.treeId, c.chunkIndex, c.layerId);
          else if (await removeChunk(o.store, pg, c)) removed++;
        }
      } finally {
        o.server.locks.release(pgLockKey(pg), true);
      }
      o.log.info({ pg, epoch: req.body.epoch, kept: kept.length / 3, removed }, 'joining a PG: delta copy starts (old chunks kept until verified)');
      return { keys: kept, removed };
    });

    app.get('/pgs/:pg/digests/:tree/:index/:layer', { schema: { params: ImageParams, querystring: EpochQuery } }, async (req): Promise<ChunkDigest> => {
      const { pg, tree, index, layer } = req.params;
      await checkJoining(pg, req.query.epoch);
      const key = { treeId: tree, chunkIndex: index, layerId: layer };
      const info = await o.store.stat(pg, key);
      if (!info) return { sizeBytes: null, sha256: null };
      let data: Buffer | null;
      try {
        data = info.sizeBytes === 0 ? Buffer.alloc(0) : await o.store.read(pg, key, 0, info.sizeBytes);
      } catch (err) {
        // Unreadable (a block fails its checksum): remove it, the primary sends the image.
        o.log.warn({ pg, chunk: chunkName(key), err: (err as Error).message }, 'old copy of a chunk unreadable: removed before the copy');
        await removeChunk(o.store, pg, key);
        return { sizeBytes: null, sha256: null };
      }
      if (!data) return { sizeBytes: null, sha256: null };
      return { sizeBytes: data.length, sha256: chunkSha256(data) };
    });

    app.delete('/pgs/:pg/images/:tree/:index/:layer', { schema: { params: ImageParams, querystring: EpochQuery } }, async (req) => {
      const { pg, tree, index, layer } = req.params;
      await checkJoining(pg, req.query.epoch);
      return { removed: await removeChunk(o.store, pg, { treeId: tree, chunkIndex: index, layerId: layer }) };
    });

    app.put('/pgs/:pg/images/:tree/:index/:layer', { schema: { params: ImageParams, querystring: EpochQuery } }, async (req) => {
      const { pg, tree, index, layer } = req.params;
      await checkJoining(pg, req.query.epoch);
      const data = req.body;
      if (!Buffer.isBuffer(data)) throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'a chunk image is application/octet-stream');
      const key = { treeId: tree, chunkIndex: index, layerId: layer };
      if (o.deadTrees?.hasLayer(tree, layer)) return { sizeBytes: data.length };
      // The image is the whole chunk and replaces any copy here (an old one may be larger). The
      // primary holds the chunk's lock, so no forwarded write to it is in flight meanwhile.
      await removeChunk(o.store, pg, key);
      // Not synced one by one: the primary asks for one flush (join-flush) before the member joins.
      if (data.length > 0) await o.store.write(pg, key, 0, data, false);
      return { sizeBytes: data.length };
    });

    app.post('/pgs/:pg/join-flush', { schema: { params: PgParams, querystring: EpochQuery } }, async (req) => {
      await checkJoining(req.params.pg, req.query.epoch);
      await o.store.flush();
      return { ok: true };
    });

    app.post('/pgs/:pg/release', { schema: { params: PgParams } }, async (req) => {
      const { pg } = req.params;
      // The MDM moved the PG away (rebalance, drain): its copies are whole elsewhere, nothing to keep.
      const dropped = await dropIfNotMember(o, pg, true, true);
      if (!dropped) throw new PflexError('PFLEX_ERR_CONFLICT', `this SDS is still a member of PG ${pg}`);
      return { ok: true };
    });
  };
}

type DropOptions = Pick<RebuildRoutesOptions, 'selfId' | 'store' | 'pgs' | 'server' | 'log'>;

/**
 * What to do with the data of a PG our (refreshed) map says we are neither a
 * member nor joining of: drop it, or keep it a while for a delta copy (see
 * keepStale; never with `now`). Checked under the PG lock, so a concurrent
 * join-reset or a read routed here is never cut short. Kept data is never
 * served (the data server serves members only, docs/rebuild.md); a timer
 * checks again when the keep time is over. Resolves true when dropped.
 */
export async function dropIfNotMember(o: DropOptions, pg: number, refresh: boolean, now = false): Promise<boolean> {
  if (refresh) await o.pgs.refresh().catch(() => undefined);
  const self = o.selfId();
  if (self === undefined) return false;
  let kept: number | undefined;
  await o.server.locks.acquire(pgLockKey(pg), true);
  try {
    const e = o.pgs.get(pg);
    if (!e || e.members.includes(self) || (e.joining?.includes(self) ?? false)) {
      if (e) forgetStale(o.store, pg);
      return false;
    }
    const since = staleOf(o.store).get(pg)?.sinceMs ?? Date.now();
    if (!now && keepStale(e, o.pgs.all(), since, Date.now())) {
      kept = since;
    } else {
      forgetStale(o.store, pg);
      await o.store.dropPg(pg);
    }
  } finally {
    o.server.locks.release(pgLockKey(pg), true);
  }
  if (kept !== undefined) {
    rememberStale(o, pg, kept);
    return false;
  }
  o.log.info({ pg }, 'dropped the data of a PG this SDS no longer belongs to');
  return true;
}

/**
 * Whether a former member keeps its (stale, never served) data of PG e: only
 * while the PG is degraded — fewer members than the fullest PG of the map, and
 * at least 2 (RF is 2 or 3) — with nobody else joining it, so it may well be
 * planned back here; and at most rebuildStaleKeepMs after we left it. A PG
 * whole without us, or being copied elsewhere, will not need it.
 */
export function keepStale(e: PgEntry, all: PgEntry[], sinceMs: number, nowMs: number): boolean {
  if (nowMs - sinceMs >= rebuildStaleKeepMs) return false;
  if ((e.joining ?? []).length > 0) return false;
  const fullest = all.reduce((m, p) => Math.max(m, p.members.length), 0);
  return e.members.length < Math.max(2, fullest);
}

interface StaleRecord { sinceMs: number; timer: NodeJS.Timeout }
/** PGs whose data a store keeps after we left them (per store: one process may run several SDSs in tests). */
const staleByStore = new WeakMap<ChunkStore, Map<number, StaleRecord>>();

function staleOf(store: ChunkStore): Map<number, StaleRecord> {
  let m = staleByStore.get(store);
  if (!m) staleByStore.set(store, (m = new Map()));
  return m;
}

function rememberStale(o: DropOptions, pg: number, sinceMs: number): void {
  const m = staleOf(o.store);
  if (m.has(pg)) return;
  const timer = setTimeout(() => {
    // The record stays until dropIfNotMember settles it: dropped now, or forgotten if we are a member again.
    dropIfNotMember(o, pg, true).catch((err: unknown) => o.log.warn({ pg, err: (err as Error).message }, 'could not drop the kept data of a PG'));
  }, Math.max(0, sinceMs + rebuildStaleKeepMs - Date.now()) + 10);
  timer.unref();
  m.set(pg, { sinceMs, timer });
  o.log.info({ pg, keepMs: rebuildStaleKeepMs }, 'keeping the data of a degraded PG this SDS left (never served; verified chunk by chunk if the PG comes back)');
}

function forgetStale(store: ChunkStore, pg: number): void {
  const m = staleOf(store);
  const r = m.get(pg);
  if (!r) return;
  clearTimeout(r.timer);
  m.delete(pg);
}

/** Removes one chunk (a zero covering all of it frees it: the store contract). True when there was one. */
export async function removeChunk(store: ChunkStore, pg: number, key: ChunkKey): Promise<boolean> {
  const info = await store.stat(pg, key);
  if (!info) return false;
  await store.zero(pg, key, 0, info.sizeBytes, false);
  if (await store.stat(pg, key)) throw new PflexError('PFLEX_ERR_IO', `chunk ${chunkName(key)} of PG ${pg} could not be removed`);
  return true;
}
