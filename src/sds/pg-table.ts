/**
 * What this SDS knows of its pool's PG map: for each PG the ordered member
 * list [primary, secondaries...] and the epoch it last changed at, plus where
 * every SDS listens. Learned from a PgMapSource (the MDM, or a static map in
 * tests): polled for changes since the last known map epoch, and refreshed at
 * once when a request shows a newer epoch than we know.
 */
import { refreshShareMsMax } from './limits.js';

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
  fence(pg: number, sdsId: number, epoch: number): Promise<FenceResult>;
}


export class PgTable {
  private readonly entries = new Map<number, PgEntry>();
  private readonly endpoints = new Map<number, SdsEndpoint>();
  private mapEpoch: number | undefined;
  private refreshing: Promise<void> | null = null;
  private refreshStartedMs = 0;

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
      if (!known || known.epoch <= e.epoch) this.entries.set(e.pg, { pg: e.pg, members: [...e.members], epoch: e.epoch, joining: [...(e.joining ?? [])] });
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
      const p: Promise<void> = this.source.fetch(this.mapEpoch).then(
        (u) => { if (this.refreshing === p) this.refreshing = null; this.apply(u); },
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
    if (!known || known.epoch <= e.epoch) this.entries.set(e.pg, { pg: e.pg, members: [...e.members], epoch: e.epoch, joining: [...(e.joining ?? [])] });
  }

  async fence(pg: number, sdsId: number, epoch: number): Promise<FenceResult> {
    const result = await this.source.fence(pg, sdsId, epoch);
    // Only this entry: the map epoch stays, so the next poll still fetches
    // every other PG that changed in between.
    const known = this.entries.get(pg);
    if (!known || known.epoch <= result.entry.epoch) this.entries.set(pg, { ...result.entry, members: [...result.entry.members], joining: [...(result.entry.joining ?? [])] });
    return result;
  }
}
