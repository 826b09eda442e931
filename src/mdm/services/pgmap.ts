import { PflexError, isPflexError } from '../../shared/errors.js';
import { tx, type Db } from '../db.js';
import type { PlacementInput } from '../placement.js';
import type { PgEntry, PgRepo } from '../repos/pg-repo.js';
import type { StoragePool, TopologyRepo } from '../repos/topology-repo.js';
import type { MdmEvents, PgMapEvent } from './events.js';

export type PlaceFn = (input: PlacementInput) => number[][];

export interface PgMapView {
  storagePoolId: number;
  epoch: number;
  pgCount: number;
  replicationFactor: number;
  chunkBytes: number;
  /** True when every PG has members (the pool has had enough SDSs at least once). */
  ready: boolean;
  /** The PGs changed after `sinceEpoch` (all when not asked for changes). */
  pgs: PgEntry[];
  /** Where to reach every SDS named in the map. */
  sds: Array<{ id: number; name: string; address: string; dataPort: number; state: string }>;
}

/**
 * The per-pool PG maps: recomputed with computePlacement when SDSs join or
 * leave a pool, and edited by fencing. Every change bumps the pool's map
 * epoch and stamps the changed PGs with it.
 */
export class PgMapService {
  /** Per pool: the last map view read outside a transaction (see map()). */
  private readonly views = new Map<number, { generation: number; epoch: number; all: PgEntry[]; ready: boolean; sds: PgMapView['sds'] }>();

  constructor(
    private readonly db: Db,
    private readonly pgs: PgRepo,
    private readonly topology: TopologyRepo,
    private readonly place: PlaceFn,
    private readonly events: MdmEvents,
  ) {}

  /**
   * Recomputes the map of a pool inside the caller's transaction; the
   * caller emits the returned event after commit. Leaves the map unchanged
   * when placement cannot be met (fewer SDSs or fault sets than the
   * replication factor) or nothing moved.
   */
  recompute(poolId: number): PgMapEvent | undefined {
    const pool = this.mustPool(poolId);
    const members = this.topology.listSds({ poolId }).map((s) => ({ id: s.id, capacityBytes: s.capacityBytes, faultSetId: s.faultSetId }));
    const current = this.pgs.list(poolId);
    const previous = current.length === pool.pgCount ? current.map((p) => p.members) : undefined;
    // Once volumes may hold data, members change only through rebuild (services/rebuild.ts): a new member must copy first.
    if (previous && this.topology.countPoolChildren(poolId).volumes > 0) return undefined;
    let next: number[][];
    try {
      next = this.place({ pgCount: pool.pgCount, replicationFactor: pool.replicationFactor, sds: members, ...(previous ? { previous } : {}) });
    } catch (err) {
      if (isPflexError(err) && err.code === 'PFLEX_ERR_CONFLICT') return undefined;
      throw err;
    }
    const epoch = pool.mapEpoch + 1;
    let changed = 0;
    next.forEach((m, pg) => {
      const old = current[pg];
      if (old && old.pg === pg && sameList(old.members, m)) return;
      this.pgs.upsert(poolId, pg, m, epoch);
      changed++;
    });
    if (changed === 0) return undefined;
    this.topology.setPoolEpoch(poolId, epoch);
    return { poolId, epoch, reason: 'recompute' };
  }

  /**
   * SDCs and SDSs poll this (mostly "anything since epoch N?"): the PGs and
   * SDS endpoints of a pool are read once per change, not per request. The
   * cached view is keyed by the database generation, which every write
   * behind it bumps (see Repo.generation); views read inside a transaction
   * are not cached (it may roll back). Callers must not mutate the result.
   */
  map(poolId: number, sinceEpoch?: number): PgMapView {
    const pool = this.mustPool(poolId);
    const generation = this.pgs.generation();
    let cached = this.views.get(poolId);
    if (!cached || cached.generation !== generation || cached.epoch !== pool.mapEpoch || this.db.inTransaction) {
      const all = this.pgs.list(poolId);
      cached = {
        generation, epoch: pool.mapEpoch, all,
        ready: all.length === pool.pgCount && all.every((p) => p.members.length > 0),
        sds: this.topology.listSds({ poolId }).map((s) => ({ id: s.id, name: s.name, address: s.address, dataPort: s.dataPort, state: s.state })),
      };
      if (!this.db.inTransaction) this.views.set(poolId, cached);
    }
    const pgs = sinceEpoch === undefined ? cached.all : cached.all.filter((p) => p.epoch > sinceEpoch);
    return {
      storagePoolId: pool.id, epoch: pool.mapEpoch, pgCount: pool.pgCount, replicationFactor: pool.replicationFactor,
      chunkBytes: pool.chunkBytes, ready: cached.ready, pgs, sds: cached.sds,
    };
  }

  /**
   * Removes a failed member from one PG's acting set (the primary reports a
   * silent secondary, or the SDC a silent primary). The caller names the
   * epoch it routed with; if the PG moved on meanwhile it must refresh. The
   * last member is never dropped: it holds the only copy.
   */
  fence(poolId: number, pg: number, sdsId: number, epoch: number): { map: PgMapView; entry: PgEntry; fenced: boolean } {
    const result = tx(this.db, () => {
      const pool = this.mustPool(poolId);
      if (pg >= pool.pgCount) throw new PflexError('PFLEX_ERR_NOT_FOUND', `pool ${poolId} has no PG ${pg} (pgCount ${pool.pgCount})`);
      const entry = this.pgs.get(poolId, pg);
      if (!entry) throw new PflexError('PFLEX_ERR_CONFLICT', `pool ${poolId} has no PG map yet`);
      if (entry.joining.includes(sdsId)) {
        // A joining member holds no acknowledged data yet: it simply stops joining (rebuild retries).
        const next = pool.mapEpoch + 1;
        const joining = entry.joining.filter((m) => m !== sdsId);
        this.pgs.upsert(poolId, pg, entry.members, next, joining);
        this.topology.setPoolEpoch(poolId, next);
        return { entry: { ...entry, joining, epoch: next }, fenced: true, epoch: next, member: false };
      }
      if (!entry.members.includes(sdsId)) return { entry, fenced: false, epoch: pool.mapEpoch, member: false };
      if (epoch !== entry.epoch) {
        throw new PflexError('PFLEX_ERR_STALE_EPOCH', `PG ${pg} is at epoch ${entry.epoch}, request routed with ${epoch}`,
          { pg, epoch: entry.epoch, members: entry.members });
      }
      if (entry.members.length === 1) {
        throw new PflexError('PFLEX_ERR_CONFLICT', `SDS ${sdsId} is the last member of PG ${pg}; it cannot be fenced`);
      }
      const next = pool.mapEpoch + 1;
      // Dropping the member keeps the order: when the primary goes, the next member becomes primary.
      const members = entry.members.filter((m) => m !== sdsId);
      this.pgs.upsert(poolId, pg, members, next);
      this.topology.setPoolEpoch(poolId, next);
      return { entry: { pg, members, epoch: next, joining: entry.joining }, fenced: true, epoch: next, member: true };
    });
    if (result.fenced) {
      this.events.emit('pgMap', { poolId, epoch: result.epoch, reason: 'fence', ...(result.member ? { fencedSdsId: sdsId } : {}) });
    }
    return { map: this.map(poolId), entry: result.entry, fenced: result.fenced };
  }

  /** PGs of the pool that list the SDS as a member. */
  holding(poolId: number, sdsId: number): number {
    return this.pgs.countHolding(poolId, sdsId);
  }

  /** Every PG of the pool has members (fencing never empties a PG, so counting rows is enough). */
  ready(pool: StoragePool): boolean {
    return this.pgs.count(pool.id) === pool.pgCount;
  }

  degraded(pool: StoragePool): number {
    return this.pgs.countDegraded(pool.id, pool.replicationFactor);
  }

  private mustPool(poolId: number): StoragePool {
    const pool = this.topology.getPool(poolId);
    if (!pool) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no storage pool ${poolId}`);
    return pool;
  }
}

function sameList(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
