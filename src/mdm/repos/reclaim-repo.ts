import { Repo } from '../db.js';
import { reclaimProgress, reclaimSelect, type ReclaimProgress, type ReclaimRow } from './volume-repo.js';

export type ReclaimKind = 'deletion' | 'trim' | 'layer';

/** A shrink's removal of a volume's data past its new end. */
export interface VolumeTrim extends ReclaimProgress {
  id: number; volumeId: number; volumeTreeId: number; storagePoolId: number;
  /** Data from this byte on is removed (the new size). */
  fromBytes: number;
  chunkBytes: number;
  state: 'pending' | 'done'; createdAtMs: number; doneAtMs: number | null;
}

/** A freed snapshot layer (no volume row or child layer needs it) whose chunks are removed from the SDSs. */
export interface LayerDeletion extends ReclaimProgress {
  id: number; volumeTreeId: number; layerId: number; storagePoolId: number;
  state: 'pending' | 'done'; createdAtMs: number; doneAtMs: number | null;
}

interface LayerDeletionRow extends ReclaimRow {
  id: number; pool_id: number; tree_id: number; layer_id: number; created_at_ms: number; done_at_ms: number | null;
}

interface TrimRow extends ReclaimRow {
  id: number; volume_id: number; volume_tree_id: number; pool_id: number; from_bytes: number; chunk_bytes: number;
  created_at_ms: number; done_at_ms: number | null;
}

const trim = (r: TrimRow): VolumeTrim => ({
  id: r.id, volumeId: r.volume_id, volumeTreeId: r.volume_tree_id, storagePoolId: r.pool_id, fromBytes: r.from_bytes, chunkBytes: r.chunk_bytes,
  state: r.state, createdAtMs: r.created_at_ms, doneAtMs: r.done_at_ms, ...reclaimProgress(r),
});
const layerDeletion = (r: LayerDeletionRow): LayerDeletion => ({
  id: r.id, volumeTreeId: r.tree_id, layerId: r.layer_id, storagePoolId: r.pool_id, state: r.state, createdAtMs: r.created_at_ms,
  doneAtMs: r.done_at_ms, ...reclaimProgress(r),
});
const TRIMS = reclaimSelect('volume_trims', 'trim');
const LAYERS = reclaimSelect('layer_deletions', 'layer');
const TABLE: Record<ReclaimKind, string> = { deletion: 'volume_deletions', trim: 'volume_trims', layer: 'layer_deletions' };

/** All SQL of reclaim: shrink trims, per-SDS confirmations and the progress of tree deletions, layer deletions and trims. */
export class ReclaimRepo extends Repo {
  insertTrim(t: { volumeId: number; volumeTreeId: number; storagePoolId: number; fromBytes: number; chunkBytes: number }, nowMs: number): number {
    return Number(this.stmt(`INSERT INTO volume_trims (volume_id, volume_tree_id, pool_id, from_bytes, chunk_bytes, state, created_at_ms)
      VALUES (?, ?, ?, ?, ?, 'pending', ?)`).run(t.volumeId, t.volumeTreeId, t.storagePoolId, t.fromBytes, t.chunkBytes, nowMs).lastInsertRowid);
  }
  listTrims(filter: { state?: 'pending' | 'done'; volumeId?: number }): VolumeTrim[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.state !== undefined) { where.push('t.state = ?'); args.push(filter.state); }
    if (filter.volumeId !== undefined) { where.push('t.volume_id = ?'); args.push(filter.volumeId); }
    return this.stmt<unknown[], TrimRow>(`${TRIMS}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY t.id`).all(...args).map(trim);
  }

  listLayerDeletions(filter: { state?: 'pending' | 'done'; volumeTreeId?: number }): LayerDeletion[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.state !== undefined) { where.push('t.state = ?'); args.push(filter.state); }
    if (filter.volumeTreeId !== undefined) { where.push('t.tree_id = ?'); args.push(filter.volumeTreeId); }
    return this.stmt<unknown[], LayerDeletionRow>(`${LAYERS}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY t.id`).all(...args).map(layerDeletion);
  }

  /**
   * Pending deletions whose tree nothing uses any more (their chunks may go):
   * no volume row (volumes, snapshots and clones are all rows) and no layer of
   * the tree left (a layer is there as long as a row or a child layer needs it).
   */
  reclaimableDeletions(): Array<{ id: number; treeId: number; poolId: number }> {
    return this.stmt<[], { id: number; tree: number; pool: number }>(`SELECT d.id, d.volume_tree_id AS tree, d.pool_id AS pool FROM volume_deletions d
      WHERE d.state = 'pending' AND NOT EXISTS (SELECT 1 FROM volumes v WHERE v.volume_tree_id = d.volume_tree_id)
      AND NOT EXISTS (SELECT 1 FROM layers l WHERE l.tree_id = d.volume_tree_id) ORDER BY d.id`)
      .all().map((r) => ({ id: r.id, treeId: r.tree, poolId: r.pool }));
  }
  /** A pending trim of the tree (any volume of it), if any: the tree's data past fromBytes is still being removed. */
  pendingTrimOfTree(treeId: number): VolumeTrim | undefined {
    const r = this.stmt<[number], TrimRow>(`${TRIMS} WHERE t.state = 'pending' AND t.volume_tree_id = ? ORDER BY t.id LIMIT 1`).get(treeId);
    return r && trim(r);
  }

  confirmedSds(kind: ReclaimKind, id: number): Set<number> {
    return new Set(this.stmt<[string], { sds_id: number }>('SELECT sds_id FROM reclaim_confirmations WHERE task = ?').all(`${kind}:${id}`).map((r) => r.sds_id));
  }
  /** An SDS did its part (idempotent); the task's totals grow by what it freed. */
  confirm(kind: ReclaimKind, id: number, sdsId: number, freed: { chunks: number; bytes: number }, nowMs: number): void {
    const added = this.stmt('INSERT OR IGNORE INTO reclaim_confirmations (task, sds_id, chunks, bytes, at_ms) VALUES (?, ?, ?, ?, ?)')
      .run(`${kind}:${id}`, sdsId, freed.chunks, freed.bytes, nowMs).changes;
    if (added > 0) {
      this.stmt(`UPDATE ${TABLE[kind]} SET chunks_freed = chunks_freed + ?, bytes_freed = bytes_freed + ?, last_error = NULL WHERE id = ?`)
        .run(freed.chunks, freed.bytes, id);
    }
  }
  setError(kind: ReclaimKind, id: number, error: string): void {
    this.stmt(`UPDATE ${TABLE[kind]} SET last_error = ? WHERE id = ?`).run(error.slice(0, 512), id);
  }
  markDone(kind: ReclaimKind, id: number, nowMs: number): void {
    this.stmt(`UPDATE ${TABLE[kind]} SET state = 'done', done_at_ms = ?, last_error = NULL WHERE id = ? AND state = 'pending'`).run(nowMs, id);
  }
}
