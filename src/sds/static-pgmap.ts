/**
 * A PG map held in memory that behaves like the MDM's (fencing bumps the map
 * epoch and stamps the PG with it, a stale fence is refused). Used by
 * simulation tests and bench/sds.ts to run SDSs without an MDM.
 */
import { PflexError } from '../shared/errors.js';
import type { FenceResult, PgEntry, PgMapSource, PgMapUpdate, SdsEndpoint } from './pg-table.js';

export class StaticPgMap implements PgMapSource {
  epoch = 1;
  readonly pgs = new Map<number, PgEntry>();
  readonly sds = new Map<number, SdsEndpoint>();
  fenceCalls = 0;

  constructor(pgs: Array<{ pg: number; members: number[] }> = [], sds: SdsEndpoint[] = []) {
    for (const p of pgs) this.pgs.set(p.pg, { pg: p.pg, members: [...p.members], epoch: this.epoch });
    for (const s of sds) this.sds.set(s.id, s);
  }

  /** Replaces a PG's members at a new epoch (as the MDM does on recompute). */
  setMembers(pg: number, members: number[]): PgEntry {
    this.epoch++;
    const e = { pg, members: [...members], epoch: this.epoch };
    this.pgs.set(pg, e);
    return e;
  }

  async fetch(sinceEpoch: number | undefined): Promise<PgMapUpdate> {
    const pgs = [...this.pgs.values()].filter((p) => sinceEpoch === undefined || p.epoch > sinceEpoch);
    return { epoch: this.epoch, pgs: pgs.map((p) => ({ ...p, members: [...p.members] })), sds: [...this.sds.values()] };
  }

  async fence(pg: number, sdsId: number, epoch: number): Promise<FenceResult> {
    this.fenceCalls++;
    const e = this.pgs.get(pg);
    if (!e) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no PG ${pg}`);
    if (!e.members.includes(sdsId)) return { entry: { ...e }, fenced: false };
    if (e.epoch !== epoch) throw new PflexError('PFLEX_ERR_STALE_EPOCH', `PG ${pg} is at epoch ${e.epoch}`);
    if (e.members.length === 1) throw new PflexError('PFLEX_ERR_CONFLICT', 'the last member cannot be fenced');
    return { entry: this.setMembers(pg, e.members.filter((m) => m !== sdsId)), fenced: true };
  }
}
