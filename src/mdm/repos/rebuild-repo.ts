import { Repo } from '../db.js';

export type RebuildKind = 'rebuild' | 'rebalance' | 'drain';
export type RebuildMode = 'full' | 'delta';
export type RebuildState = 'pending' | 'running' | 'done' | 'failed' | 'cancelled';
export const ACTIVE_REBUILD_STATES: readonly RebuildState[] = ['pending', 'running'];

/** One PG copy: source (the PG's primary) pushes every chunk to target (a joining member). */
export interface RebuildJob {
  id: number;
  poolId: number;
  pg: number;
  kind: RebuildKind;
  sourceSdsId: number;
  targetSdsId: number;
  /** The member that leaves the PG when the target joins (rebalance, drain). */
  replacesSdsId: number | null;
  /** PG epoch at which the target became a joining member. */
  epoch: number;
  state: RebuildState;
  chunksDone: number;
  chunksTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** 'delta': the target kept old chunks and only those that differed were sent. */
  mode: RebuildMode;
  /** Bytes of chunks the target already had byte for byte (counted in bytesDone, never sent). */
  bytesSkipped: number;
  error: string | null;
  createdAtMs: number;
  startedAtMs: number | null;
  finishedAtMs: number | null;
}

interface Row {
  id: number; pool_id: number; pg: number; kind: RebuildKind; source_sds_id: number; target_sds_id: number; replaces_sds_id: number | null;
  epoch: number; state: RebuildState; chunks_done: number; chunks_total: number; bytes_done: number; bytes_total: number; error: string | null;
  mode: RebuildMode; bytes_skipped: number; created_at_ms: number; started_at_ms: number | null; finished_at_ms: number | null;
}

const jobOf = (r: Row): RebuildJob => ({
  id: r.id, poolId: r.pool_id, pg: r.pg, kind: r.kind, sourceSdsId: r.source_sds_id, targetSdsId: r.target_sds_id, replacesSdsId: r.replaces_sds_id,
  epoch: r.epoch, state: r.state, chunksDone: r.chunks_done, chunksTotal: r.chunks_total, bytesDone: r.bytes_done, bytesTotal: r.bytes_total,
  mode: r.mode, bytesSkipped: r.bytes_skipped, error: r.error, createdAtMs: r.created_at_ms, startedAtMs: r.started_at_ms, finishedAtMs: r.finished_at_ms,
});

/** SQL of rebuild jobs and of SDS draining. */
export class RebuildRepo extends Repo {
  insert(j: { poolId: number; pg: number; kind: RebuildKind; sourceSdsId: number; targetSdsId: number; replacesSdsId: number | null; epoch: number }, nowMs: number): number {
    return Number(this.stmt(`INSERT INTO rebuild_jobs (pool_id, pg, kind, source_sds_id, target_sds_id, replaces_sds_id, epoch, state, created_at_ms)
      VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)`).run(j.poolId, j.pg, j.kind, j.sourceSdsId, j.targetSdsId, j.replacesSdsId, j.epoch, nowMs).lastInsertRowid);
  }
  get(id: number): RebuildJob | undefined {
    const r = this.stmt<[number], Row>('SELECT * FROM rebuild_jobs WHERE id = ?').get(id);
    return r && jobOf(r);
  }
  active(): RebuildJob[] {
    return this.stmt<[], Row>("SELECT * FROM rebuild_jobs WHERE state IN ('pending', 'running') ORDER BY id").all().map(jobOf);
  }
  activeFor(poolId: number, pg: number): RebuildJob | undefined {
    const r = this.stmt<[number, number], Row>("SELECT * FROM rebuild_jobs WHERE pool_id = ? AND pg = ? AND state IN ('pending', 'running')").get(poolId, pg);
    return r && jobOf(r);
  }
  recent(limit: number): RebuildJob[] {
    return this.stmt<[number], Row>('SELECT * FROM rebuild_jobs ORDER BY id DESC LIMIT ?').all(limit).map(jobOf);
  }
  /** Finished jobs since a time (for totals and rates). */
  finishedSince(sinceMs: number): RebuildJob[] {
    return this.stmt<[number], Row>("SELECT * FROM rebuild_jobs WHERE state = 'done' AND finished_at_ms >= ?").all(sinceMs).map(jobOf);
  }
  lastFailure(poolId: number, pg: number): number {
    return this.stmt<[number, number], { t: number | null }>(
      "SELECT MAX(finished_at_ms) AS t FROM rebuild_jobs WHERE pool_id = ? AND pg = ? AND state IN ('failed', 'cancelled')").get(poolId, pg)?.t ?? 0;
  }
  setRunning(id: number, nowMs: number): void {
    this.stmt("UPDATE rebuild_jobs SET state = 'running', started_at_ms = COALESCE(started_at_ms, ?) WHERE id = ?").run(nowMs, id);
  }
  progress(id: number, p: { chunksDone: number; chunksTotal: number; bytesDone: number; bytesTotal: number; mode?: RebuildMode; bytesSkipped?: number }): void {
    this.stmt('UPDATE rebuild_jobs SET chunks_done = ?, chunks_total = ?, bytes_done = ?, bytes_total = ?, mode = COALESCE(?, mode), bytes_skipped = COALESCE(?, bytes_skipped) WHERE id = ?')
      .run(p.chunksDone, p.chunksTotal, p.bytesDone, p.bytesTotal, p.mode ?? null, p.bytesSkipped ?? null, id);
  }
  finish(id: number, state: 'done' | 'failed' | 'cancelled', error: string | null, nowMs: number): void {
    this.stmt('UPDATE rebuild_jobs SET state = ?, error = ?, finished_at_ms = ? WHERE id = ?').run(state, error, nowMs, id);
  }
  /** Job history is bounded: rows beyond the newest keep are deleted (active ones never). */
  prune(keep: number): void {
    this.stmt("DELETE FROM rebuild_jobs WHERE state NOT IN ('pending', 'running') AND id <= (SELECT MAX(id) FROM rebuild_jobs) - ?").run(keep);
  }

  draining(sdsId: number): boolean {
    return (this.stmt<[number], { d: number }>('SELECT draining AS d FROM sds WHERE id = ?').get(sdsId)?.d ?? 0) === 1;
  }
  drainingIds(): number[] {
    return this.stmt<[], { id: number }>('SELECT id FROM sds WHERE draining = 1 ORDER BY id').all().map((r) => r.id);
  }
  setDraining(sdsId: number, on: boolean): void {
    this.stmt('UPDATE sds SET draining = ? WHERE id = ?').run(on ? 1 : 0, sdsId);
  }
}
