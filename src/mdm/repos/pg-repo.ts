import { Repo } from '../db.js';

/** joining: members being rebuilt (they take forwarded writes, are not read from nor waited for). */
export interface PgEntry { pg: number; members: number[]; epoch: number; joining: number[] }

type PgRow = { pg: number; members: string; epoch: number; joining: string };
const entryOf = (r: PgRow): PgEntry => ({ pg: r.pg, members: JSON.parse(r.members) as number[], epoch: r.epoch, joining: JSON.parse(r.joining) as number[] });

/** SQL of the per-pool placement-group maps. */
export class PgRepo extends Repo {
  list(poolId: number, sinceEpoch = -1): PgEntry[] {
    return this.stmt<[number, number], PgRow>(
      'SELECT pg, members, epoch, joining FROM pgs WHERE pool_id = ? AND epoch > ? ORDER BY pg').all(poolId, sinceEpoch).map(entryOf);
  }
  get(poolId: number, pg: number): PgEntry | undefined {
    const r = this.stmt<[number, number], PgRow>(
      'SELECT pg, members, epoch, joining FROM pgs WHERE pool_id = ? AND pg = ?').get(poolId, pg);
    return r && entryOf(r);
  }
  /** joining undefined: an existing row keeps its joining members (a new row has none). */
  /** Raises every PG epoch and pool map epoch (a restored MDM: its map must be newer than any the cluster saw). */
  bumpAllEpochs(by: number): void {
    this.stmt('UPDATE pgs SET epoch = epoch + ?').run(by);
    this.stmt('UPDATE storage_pools SET map_epoch = map_epoch + ?').run(by);
    this.changed();
  }
  upsert(poolId: number, pg: number, members: number[], epoch: number, joining?: number[]): void {
    this.changed();
    const j = joining === undefined ? null : JSON.stringify(joining);
    this.stmt(`INSERT INTO pgs (pool_id, pg, members, epoch, joining) VALUES (?, ?, ?, ?, COALESCE(?, '[]'))
      ON CONFLICT (pool_id, pg) DO UPDATE SET members = excluded.members, epoch = excluded.epoch, joining = COALESCE(?, pgs.joining)`)
      .run(poolId, pg, JSON.stringify(members), epoch, j, j);
  }
  /** PGs of the pool that name the SDS as a member or a joining member. */
  listInvolving(poolId: number, sdsId: number): PgEntry[] {
    return this.list(poolId).filter((e) => e.members.includes(sdsId) || e.joining.includes(sdsId));
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
    this.changed();
    this.stmt('DELETE FROM pgs WHERE pool_id = ?').run(poolId);
  }
}
