import { Repo } from '../db.js';

export interface PgEntry { pg: number; members: number[]; epoch: number }

/** SQL of the per-pool placement-group maps. */
export class PgRepo extends Repo {
  list(poolId: number, sinceEpoch = -1): PgEntry[] {
    return this.stmt<[number, number], { pg: number; members: string; epoch: number }>(
      'SELECT pg, members, epoch FROM pgs WHERE pool_id = ? AND epoch > ? ORDER BY pg').all(poolId, sinceEpoch)
      .map((r) => ({ pg: r.pg, members: JSON.parse(r.members) as number[], epoch: r.epoch }));
  }
  get(poolId: number, pg: number): PgEntry | undefined {
    const r = this.stmt<[number, number], { pg: number; members: string; epoch: number }>(
      'SELECT pg, members, epoch FROM pgs WHERE pool_id = ? AND pg = ?').get(poolId, pg);
    return r && { pg: r.pg, members: JSON.parse(r.members) as number[], epoch: r.epoch };
  }
  upsert(poolId: number, pg: number, members: number[], epoch: number): void {
    this.stmt(`INSERT INTO pgs (pool_id, pg, members, epoch) VALUES (?, ?, ?, ?)
      ON CONFLICT (pool_id, pg) DO UPDATE SET members = excluded.members, epoch = excluded.epoch`).run(poolId, pg, JSON.stringify(members), epoch);
  }
  /** Number of PGs of the pool whose member list names the SDS. */
  countHolding(poolId: number, sdsId: number): number {
    return this.stmt<[number, number], { n: number }>(
      'SELECT COUNT(*) AS n FROM pgs, json_each(pgs.members) AS m WHERE pgs.pool_id = ? AND m.value = ?').get(poolId, sdsId)?.n ?? 0;
  }
  count(poolId: number): number {
    return this.stmt<[number], { n: number }>('SELECT COUNT(*) AS n FROM pgs WHERE pool_id = ?').get(poolId)?.n ?? 0;
  }
  countDegraded(poolId: number, replicationFactor: number): number {
    return this.stmt<[number, number], { n: number }>(
      'SELECT COUNT(*) AS n FROM pgs WHERE pool_id = ? AND json_array_length(members) < ?').get(poolId, replicationFactor)?.n ?? 0;
  }
  clear(poolId: number): void {
    this.stmt('DELETE FROM pgs WHERE pool_id = ?').run(poolId);
  }
}
