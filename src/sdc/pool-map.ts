/**
 * The SDC's cached PG map of one storage pool: chunk -> PG -> primary SDS.
 * Refreshed periodically and at once when an SDS says our epoch is stale;
 * a primary that does not answer is reported to the MDM (fence), whose
 * answer carries the new map. Requests waiting on a primary can watch their
 * route: a newer map that takes the PG away from that SDS altogether (fenced
 * by someone else, evicted as DOWN) tells them to give up and go to the new
 * primary instead of waiting for a timeout (see VolumeBackend.send).
 */
import { isPflexError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { MdmClient, PgMap } from '../shared/mdm-client.js';
import { traceFields, type Span } from '../shared/tracing.js';

export interface Endpoint {
  id: number;
  address: string;
  dataPort: number;
}

export interface Route {
  pg: number;
  epoch: number;
  primary: Endpoint;
}

interface Watcher {
  primaryId: number;
  onMoved: () => void;
}

export class PoolMap {
  private map: PgMap | undefined;
  private byPg: Array<{ members: number[]; epoch: number } | undefined> = [];
  private endpoints = new Map<number, Endpoint>();
  private refreshing: Promise<void> | null = null;
  private readonly fencing = new Map<string, Promise<void>>();
  /** Requests waiting on a primary, by PG. */
  private readonly watchers = new Map<number, Set<Watcher>>();

  constructor(
    readonly poolId: number,
    private readonly mdm: MdmClient,
    private readonly log: Logger,
  ) {}

  get epoch(): number | undefined {
    return this.map?.epoch;
  }

  get pgCount(): number {
    return this.map?.pgCount ?? 0;
  }

  /** Every SDS the map names. */
  sdsList(): Endpoint[] {
    return [...this.endpoints.values()];
  }

  /** SDSs that are a member of at least one PG. */
  memberIds(): Set<number> {
    const ids = new Set<number>();
    for (const e of this.byPg) if (e) for (const m of e.members) ids.add(m);
    return ids;
  }

  /** Where a PG is served now, or undefined while the map is not known or ready. */
  route(pg: number): Route | undefined {
    const e = this.byPg[pg];
    if (!e || e.members.length === 0) return undefined;
    const primary = this.endpoints.get(e.members[0]!);
    if (!primary) return undefined;
    return { pg, epoch: e.epoch, primary };
  }

  /** The acting members of a PG (primary first) that have a known endpoint. */
  members(pg: number): Endpoint[] {
    const e = this.byPg[pg];
    if (!e) return [];
    const out: Endpoint[] = [];
    for (const id of e.members) {
      const ep = this.endpoints.get(id);
      if (ep) out.push(ep);
    }
    return out;
  }

  /** Fetches the whole map; concurrent callers share one fetch (traced under the first caller's request, if any). */
  refresh(parent?: Span): Promise<void> {
    this.refreshing ??= this.mdm.getPgMap(this.poolId, undefined, parent).then(
      (m) => { this.refreshing = null; this.apply(m); },
      (err: unknown) => { this.refreshing = null; throw err; },
    );
    return this.refreshing;
  }

  apply(m: PgMap): void {
    if (this.map && m.epoch < this.map.epoch) return;
    const before = this.map?.epoch;
    this.map = m;
    const byPg: typeof this.byPg = new Array(m.pgCount);
    for (const e of m.pgs) byPg[e.pg] = { members: e.members, epoch: e.epoch };
    this.byPg = byPg;
    this.endpoints = new Map(m.sds.map((s) => [s.id, { id: s.id, address: s.address, dataPort: s.dataPort }]));
    if (before !== m.epoch) this.log.info({ poolId: this.poolId, epoch: m.epoch, previous: before ?? null, ready: m.ready }, 'PG map updated');
    if (this.watchers.size > 0) this.releaseMoved();
  }

  /**
   * Calls onMoved (once) as soon as the map no longer lists route's primary
   * in the PG at all: another primary leads it and the old one is fenced or
   * evicted. A primary that only changed places (still a member), or an
   * epoch change that kept the primary, is not a move: a live old primary
   * answers STALE_EPOCH by itself. Returns the function that stops watching.
   */
  watchPrimary(route: Route, onMoved: () => void): () => void {
    if (this.leftPg(route.pg, route.primary.id)) {
      onMoved();
      return noop;
    }
    let set = this.watchers.get(route.pg);
    if (!set) this.watchers.set(route.pg, (set = new Set()));
    const w: Watcher = { primaryId: route.primary.id, onMoved };
    set.add(w);
    return () => {
      set.delete(w);
      if (set.size === 0 && this.watchers.get(route.pg) === set) this.watchers.delete(route.pg);
    };
  }

  /** True when the PG has members (so another primary) and sdsId is not one of them. */
  private leftPg(pg: number, sdsId: number): boolean {
    const e = this.byPg[pg];
    return e !== undefined && e.members.length > 0 && !e.members.includes(sdsId);
  }

  private releaseMoved(): void {
    const moved: Watcher[] = [];
    for (const [pg, set] of this.watchers) {
      for (const w of set) {
        if (!this.leftPg(pg, w.primaryId)) continue;
        set.delete(w);
        moved.push(w);
      }
      if (set.size === 0) this.watchers.delete(pg);
    }
    for (const w of moved) w.onMoved();
  }

  /**
   * Reports a primary that did not answer; resolves once the map no longer
   * routes the PG to it at that epoch (or the MDM refused: the caller retries).
   * Concurrent reports of one member at one epoch cost one MDM call.
   */
  reportFailed(route: Route, reason?: string, parent?: Span): Promise<void> {
    const key = `${route.pg}/${route.primary.id}/${route.epoch}`;
    let p = this.fencing.get(key);
    if (!p) {
      p = this.fence(route, reason, parent).finally(() => this.fencing.delete(key));
      this.fencing.set(key, p);
    }
    return p;
  }

  private async fence(route: Route, reason: string | undefined, parent: Span | undefined): Promise<void> {
    try {
      const a = await this.mdm.fencePgMember(this.poolId, route.pg, route.primary.id, route.epoch, parent);
      this.log.warn({ pg: route.pg, sdsId: route.primary.id, epoch: route.epoch, fenced: a.fenced, members: a.pg.members, reason, ...traceFields(parent) }, 'reported a primary that did not answer');
      this.apply(a.map);
    } catch (err) {
      const code = isPflexError(err) ? err.code : undefined;
      if (code !== 'PFLEX_ERR_STALE_EPOCH') this.log.warn({ pg: route.pg, sdsId: route.primary.id, err: (err as Error).message, ...traceFields(parent) }, 'could not report a failed primary');
      await this.refresh(parent).catch(() => undefined);
    }
  }
}

function noop(): void {
  // nothing to stop watching
}
