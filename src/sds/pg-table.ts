/**
 * What this SDS knows of its pool's PG map: for each PG the ordered member
 * list [primary, secondaries...] and the epoch it last changed at, plus where
 * every SDS listens. Learned from a PgMapSource (the MDM, or a static map in
 * tests): polled for changes since the last known map epoch, and refreshed at
 * once when a request shows a newer epoch than we know.
 */
import { refreshShareMsMax } from './limits.js';
import type { Span } from '../shared/tracing.js';

export interface PgEntry {
  pg: number;
  members: number[];
  epoch: number;
  /** Members being rebuilt: the primary forwards writes to them but neither reads from nor waits for them. */
  joining?: number[];
}

export interface SdsEndpoint {
  id: number;
  address: string;
  dataPort: number;
}

/** A view of the map, whole or only the PGs changed after some epoch. */
export interface PgMapUpdate {
  /** Map epoch of the pool (the highest PG epoch). */
  epoch: number;
  pgs: PgEntry[];
  sds: SdsEndpoint[];
}

export interface FenceResult {
  /** The PG after the call (member removed, or as it was if it had moved on). */
  entry: PgEntry;
  fenced: boolean;
}

/** Where the map comes from and where failed members are reported. */
export interface PgMapSource {
  /** The map, or only PGs changed after sinceEpoch. */
  fetch(sinceEpoch: number | undefined): Promise<PgMapUpdate>;
  /** Removes sdsId from the PG's acting set (new epoch). Rejects with PFLEX_ERR_STALE_EPOCH when the PG moved on. */
  fence(pg: number, sdsId: number, epoch: number, parent?: Span): Promise<FenceResult>;
}


export class PgTable {
  private readonly entries = new Map<number, PgEntry>();
  private readonly endpoints = new Map<number, SdsEndpoint>();
  private mapEpoch: number | undefined;
  private refreshing: Promise<void> | null = null;
  private refreshStartedMs = 0;
  /** Start time of the latest fetch that succeeded: the map was current at least then (replica reads). */
  private confirmedAtMs: number | undefined;
  /** When this SDS learned that a PG lost an acting member (fence, eviction, move), by PG. */
  private readonly removedAtMs = new Map<number, number>();

  constructor(private readonly source: PgMapSource, private readonly now: () => number = Date.now) {}

  get epoch(): number | undefined {
    return this.mapEpoch;
  }

  get(pg: number): PgEntry | undefined {
    return this.entries.get(pg);
  }

  endpoint(sdsId: number): SdsEndpoint | undefined {
    return this.endpoints.get(sdsId);
  }

  all(): PgEntry[] {
    return [...this.entries.values()];
  }

  /** PGs that list sdsId as a member. */
  pgsOf(sdsId: number): PgEntry[] {
    return this.all().filter((e) => e.members.includes(sdsId));
  }

  /** Applies an update; entries never move back to an older epoch. */
  apply(update: PgMapUpdate): void {
    for (const s of update.sds) this.endpoints.set(s.id, s);
    for (const e of update.pgs) {
      const known = this.entries.get(e.pg);
      if (!known || known.epoch <= e.epoch) this.put(e);
    }
    if (this.mapEpoch === undefined || update.epoch > this.mapEpoch) this.mapEpoch = update.epoch;
  }

  /**
   * Fetches changes since the known epoch; concurrent callers share one
   * fetch, unless it has been in flight for refreshShareMsMax (then a new one
   * starts; updates apply in any order since entries never move back).
   */
  refresh(): Promise<void> {
    if (!this.refreshing || this.now() - this.refreshStartedMs >= refreshShareMsMax) {
      const startedMs = this.now();
      const p: Promise<void> = this.source.fetch(this.mapEpoch).then(
        (u) => {
          if (this.refreshing === p) this.refreshing = null;
          this.apply(u);
          if (this.confirmedAtMs === undefined || startedMs > this.confirmedAtMs) this.confirmedAtMs = startedMs;
        },
        (err: unknown) => { if (this.refreshing === p) this.refreshing = null; throw err; },
      );
      this.refreshing = p;
      this.refreshStartedMs = this.now();
    }
    return this.refreshing;
  }

  /** One entry learned outside a map fetch (a fence or join answer); the map epoch stays, like fence(). */
  setEntry(e: PgEntry): void {
    const known = this.entries.get(e.pg);
    if (!known || known.epoch <= e.epoch) this.put(e);
  }

  /** parent: the traced request whose failed forward caused the fence. */
  async fence(pg: number, sdsId: number, epoch: number, parent?: Span): Promise<FenceResult> {
    const result = await this.source.fence(pg, sdsId, epoch, parent);
    // Only this entry: the map epoch stays, so the next poll still fetches
    // every other PG that changed in between.
    const known = this.entries.get(pg);
    if (!known || known.epoch <= result.entry.epoch) this.put(result.entry);
    return result;
  }

  private put(e: PgEntry): void {
    const known = this.entries.get(e.pg);
    if (known && known.members.some((m) => !e.members.includes(m))) this.removedAtMs.set(e.pg, this.now());
    this.entries.set(e.pg, { pg: e.pg, members: [...e.members], epoch: e.epoch, joining: [...(e.joining ?? [])] });
  }

  /**
   * May this SDS, an acting secondary of the PG, serve a read routed at
   * epoch? Only while its map was confirmed by the MDM less than leaseMs ago:
   * a member removed from the acting set learns it within that time or stops
   * serving, and a primary holds its write acknowledgements for leaseMs after
   * it learns of a removal (removalPendingMs), so no acknowledged write can be
   * missing from a replica that still serves reads.
   */
  replicaReadable(pg: number, epoch: number, self: number, leaseMs: number): boolean {
    const e = this.entries.get(pg);
    if (!e || e.epoch !== epoch || !e.members.includes(self)) return false;
    return this.confirmedAtMs !== undefined && this.now() - this.confirmedAtMs < leaseMs;
  }

  /** How long writes of this PG must still wait before their acknowledgement (0 when no member left it within leaseMs). */
  removalPendingMs(pg: number, leaseMs: number): number {
    const at = this.removedAtMs.get(pg);
    if (at === undefined) return 0;
    const left = at + leaseMs - this.now();
    if (left <= 0) this.removedAtMs.delete(pg);
    return Math.max(0, left);
  }
}
