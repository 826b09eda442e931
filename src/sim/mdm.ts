/**
 * The simulated MDM: the real PgMapService (placement, fencing, epochs) on an
 * in-memory SQLite database, plus a history of every PG entry it ever
 * published, so a checker can tell which members a PG had at any epoch.
 */
import Database from 'better-sqlite3';
import { openDb, type Db } from '../mdm/db.js';
import { computePlacement } from '../mdm/placement.js';
import { PgRepo } from '../mdm/repos/pg-repo.js';
import { TopologyRepo } from '../mdm/repos/topology-repo.js';
import { MdmEvents } from '../mdm/services/events.js';
import { PgMapService, type PgMapView } from '../mdm/services/pgmap.js';
import { fenceFromAllPgs } from '../mdm/services/topology.js';
import type { PgEntry as TablePgEntry, PgMapUpdate } from '../sds/pg-table.js';

export interface MdmShape {
  sdsCount: number;
  pgCount: number;
  replicationFactor: number;
}

export interface PublishedEntry {
  members: number[];
  joining: number[];
}

export class SimMdm {
  readonly service: PgMapService;
  readonly poolId: number;
  readonly sdsIds: number[] = [];
  /** "pg@epoch" -> the acting set the MDM published for that PG at that epoch. */
  readonly history = new Map<string, PublishedEntry>();
  /** Every successful fence: which SDS left which PG. */
  readonly fences: Array<{ pg: number; sdsId: number }> = [];
  /** PGs an SDS was fenced out of because it registered after an unclean stop. */
  readonly uncleanFences: Array<{ pg: number; sdsId: number }> = [];
  /** PGs where such an SDS stayed as the last member. */
  readonly uncleanKept: Array<{ pg: number; sdsId: number }> = [];
  private readonly db: Db;
  private readonly pgs: PgRepo;

  /** The map as of the last change (the MDM's state only changes through this class). */
  private view: PgMapView | undefined;

  constructor(shape: MdmShape) {
    // Every run starts from the same database: built once per shape, then copied (migrations cost more than a run).
    const key = JSON.stringify(shape);
    let image = templates.get(key);
    if (!image) {
      const db = openDb(':memory:');
      SimMdm.populate(db, shape);
      image = db.serialize();
      db.close();
      templates.set(key, image);
    }
    this.db = new Database(image);
    this.db.pragma('foreign_keys = ON');
    const topology = new TopologyRepo(this.db);
    this.pgs = new PgRepo(this.db);
    this.service = new PgMapService(this.db, this.pgs, topology, computePlacement, new MdmEvents());
    this.poolId = topology.listPools()[0]!.id;
    this.sdsIds.push(...topology.listSds({ poolId: this.poolId }).map((s) => s.id));
    this.snapshot();
  }

  private static populate(db: Db, shape: MdmShape): void {
    const topology = new TopologyRepo(db);
    const service = new PgMapService(db, new PgRepo(db), topology, computePlacement, new MdmEvents());
    const pd = topology.insertPd('pd', 0);
    const poolId = topology.insertPool({
      protectionDomainId: pd, name: 'pool', replicationFactor: shape.replicationFactor, chunkBytes: 1 << 20, pgCount: shape.pgCount,
      defaultProvisioning: 'thin', capacityHighPct: 80, capacityCriticalPct: 90,
    }, 0);
    for (let i = 1; i <= shape.sdsCount; i++) {
      topology.insertSds({
        name: `sds${i}`, protectionDomainId: pd, storagePoolId: poolId, faultSetId: null, address: `sds${i}`, dataPort: 9700,
        controlPort: null, mgmtPort: null, capacityBytes: 1024 ** 4,
      }, 0);
    }
    service.recompute(poolId);
  }

  map(sinceEpoch?: number): PgMapView {
    this.view ??= this.service.map(this.poolId);
    const v = this.view;
    return sinceEpoch === undefined ? v : { ...v, pgs: v.pgs.filter((p) => p.epoch > sinceEpoch) };
  }

  /** The SDS's view of the map (PgTable's PgMapUpdate). */
  update(sinceEpoch: number | undefined): PgMapUpdate {
    const m = this.map(sinceEpoch);
    return {
      epoch: m.epoch,
      pgs: m.pgs.map((e) => tableEntry(e)),
      sds: m.sds.map((s) => ({ id: s.id, address: s.address, dataPort: s.dataPort })),
    };
  }

  /** The real fence; throws PflexError (STALE_EPOCH, CONFLICT) like the HTTP route would. */
  fence(pg: number, sdsId: number, epoch: number): ReturnType<PgMapService['fence']> {
    const r = this.service.fence(this.poolId, pg, sdsId, epoch);
    this.view = undefined;
    if (r.fenced) this.fences.push({ pg, sdsId });
    this.snapshot();
    return r;
  }

  /**
   * An SDS (re-)registers, as TopologyService.registerSds does for a known
   * SDS: after an unclean stop it is fenced out of its PGs by the same
   * function (the last member of a PG stays).
   */
  register(sdsId: number, cleanStop: boolean): void {
    if (cleanStop) return;
    const r = fenceFromAllPgs(this.service, this.poolId, sdsId);
    this.view = undefined;
    for (const pg of r.fenced) this.uncleanFences.push({ pg, sdsId });
    for (const pg of r.kept) this.uncleanKept.push({ pg, sdsId });
    this.snapshot();
  }

  entry(pg: number): TablePgEntry {
    const e = this.pgs.get(this.poolId, pg);
    if (!e) throw new Error(`no PG ${pg}`);
    return tableEntry(e);
  }

  close(): void {
    this.db.close();
  }

  private snapshot(): void {
    for (const e of this.pgs.list(this.poolId)) {
      const key = `${e.pg}@${e.epoch}`;
      if (!this.history.has(key)) this.history.set(key, { members: [...e.members], joining: joiningOf(e) });
    }
  }
}

/** An MDM entry as the SDS's PgTable holds it (joining members only where rebuild provides them). */
export function tableEntry(e: { pg: number; members: number[]; epoch: number }): TablePgEntry {
  const out: TablePgEntry = { pg: e.pg, members: [...e.members], epoch: e.epoch };
  const joining = joiningOf(e);
  if (joining.length > 0) (out as { joining?: number[] }).joining = joining;
  return out;
}

const templates = new Map<string, Buffer>();

/** Members being rebuilt, where the MDM's entries carry them (rebuild support). */
export function joiningOf(e: object): number[] {
  const j = (e as { joining?: unknown }).joining;
  return Array.isArray(j) ? (j as number[]) : [];
}
