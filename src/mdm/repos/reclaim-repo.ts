import { Repo } from '../db.js';
import { reclaimProgress, reclaimSelect, type ReclaimProgress, type ReclaimRow } from './volume-repo.js';

export type ReclaimKind = 'deletion' | 'trim';

/** A shrink's removal of a volume's data past its new end. */
export interface VolumeTrim extends ReclaimProgress {
  id: number; volumeId: number; volumeTreeId: number; storagePoolId: number;
  /** Data from this byte on is removed (the new size). */
  fromBytes: number;
  chunkBytes: number;
  state: 'pending' | 'done'; createdAtMs: number; doneAtMs: number | null;
}

interface TrimRow extends ReclaimRow {
  id: number; volume_id: number; volume_tree_id: number; pool_id: number; from_bytes: number; chunk_bytes: number;
  created_at_ms: number; done_at_ms: number | null;
}

const trim = (r: TrimRow): VolumeTrim => ({
  id: r.id, volumeId: r.volume_id, volumeTreeId: r.volume_tree_id, storagePoolId: r.pool_id, fromBytes: r.from_bytes, chunkBytes: r.chunk_bytes,
  state: r.state, createdAtMs: r.created_at_ms, doneAtMs: r.done_at_ms, ...reclaimProgress(r),
});
const TRIMS = reclaimSelect('volume_trims', 'trim');
const TABLE: Record<ReclaimKind, string> = { deletion: 'volume_deletions', trim: 'volume_trims' };

/** All SQL of reclaim: shrink trims, per-SDS confirmations and the progress of deletions and trims. */
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

  /** Pending deletions whose tree no volume uses any more (their chunks may go). */
  reclaimableDeletions(): Array<{ id: number; treeId: number; poolId: number }> {
    return this.stmt<[], { id: number; tree: number; pool: number }>(`SELECT d.id, d.volume_tree_id AS tree, d.pool_id AS pool FROM volume_deletions d
      WHERE d.state = 'pending' AND NOT EXISTS (SELECT 1 FROM volumes v WHERE v.volume_tree_id = d.volume_tree_id) ORDER BY d.id`)
      .all().map((r) => ({ id: r.id, treeId: r.tree, poolId: r.pool }));
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
