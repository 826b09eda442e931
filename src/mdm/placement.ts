/**
 * Placement: the PG map of one storage pool, as a pure function.
 *
 * For every PG an ordered replica set [primary, secondaries...] of distinct
 * SDSs in distinct fault sets (an SDS without a fault set counts as a fault
 * set of its own). Balance: each SDS holds a number of PG memberships
 * proportional to its capacity, and the primary role (reads go to primaries)
 * proportional to its capacity too. Deterministic: the result depends only on
 * the input values, not on the order of `sds`.
 *
 * Balance tolerance: an SDS's membership count stays within
 * max(1, 10% of its ideal) of its ideal (the capacity-proportional share),
 * because a count is an integer and an ideal of e.g. 2.4 can only be met as
 * 2 or 3. Ideals are capped where constraints force it: a fault set can hold
 * at most one replica of each PG, so a fault set with more than 1/RF of the
 * capacity gets pgCount memberships and the rest is shared out by capacity
 * among the others (water filling). SDSs with zero capacity get no PGs.
 *
 * Movement: given `previous` (the current map), surviving members stay where
 * they are; members that left are replaced, and SDSs above their new share
 * hand PGs one by one to SDSs below it, so the number of moved replicas is
 * close to the theoretical minimum. `previous` is read for PG indexes below
 * pgCount; a change of pgCount re-maps every chunk anyway.
 */
import { PflexError, assert } from '../shared/errors.js';
import { hash32x2 } from '../shared/pg.js';

export interface PlacementSds {
  id: number;
  capacityBytes: number;
  faultSetId: number | null;
}

export interface PlacementInput {
  pgCount: number;
  replicationFactor: number;
  sds: PlacementSds[];
  previous?: number[][];
}

/** Relative balance tolerance of PG memberships per SDS. */
export const placementBalanceRatio = 0.1;
/** Absolute floor of the tolerance (integer counts cannot meet fractional ideals). */
export const placementBalanceSlackMin = 1;

/** How far an SDS's PG count may be from its ideal. */
export function placementTolerance(ideal: number): number {
  return Math.max(placementBalanceSlackMin, placementBalanceRatio * ideal);
}

export interface PlacementIdeals {
  /** SDS id -> ideal number of PG memberships (fractional). */
  members: Map<number, number>;
  /** SDS id -> ideal number of PGs it is primary of (fractional). */
  primaries: Map<number, number>;
}

// Salts keep the tie-break hashes of different decisions independent.
const SALT_DOMAIN = 0x5bd1e995;
const SALT_SDS = 0x27d4eb2d;
const SALT_PRIMARY = 0x165667b1;

interface Model {
  sds: PlacementSds[]; // eligible SDSs, sorted by id
  domainOf: Int32Array; // sds index -> domain index
  domainKey: Int32Array; // domain index -> hash key
  domainMembers: number[][]; // domain index -> sds indexes
  memberIdeal: Float64Array;
  primaryIdeal: Float64Array;
  target: Int32Array;
  domainTarget: Int32Array;
  primaryTarget: Int32Array;
}

function checkInput(input: PlacementInput): void {
  assert(Number.isInteger(input.pgCount) && input.pgCount >= 1, 'pgCount must be a positive integer');
  assert(Number.isInteger(input.replicationFactor) && input.replicationFactor >= 1, 'replicationFactor must be a positive integer');
  const ids = new Set<number>();
  for (const s of input.sds) {
    assert(Number.isInteger(s.id), `SDS id ${s.id} is not an integer`);
    assert(!ids.has(s.id), `SDS id ${s.id} appears twice`);
    assert(Number.isFinite(s.capacityBytes) && s.capacityBytes >= 0, `SDS ${s.id} has a bad capacity`);
    ids.add(s.id);
  }
}

/** Floors plus one extra unit to the largest fractional parts; each value capped at `cap`. */
function largestRemainder(ideals: ArrayLike<number>, total: number, cap: number): Int32Array {
  const n = ideals.length;
  const out = new Int32Array(n);
  let assigned = 0;
  for (let i = 0; i < n; i++) {
    out[i] = Math.min(cap, Math.floor(ideals[i]! + 1e-9));
    assigned += out[i]!;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => {
    const fa = ideals[a]! - Math.floor(ideals[a]! + 1e-9);
    const fb = ideals[b]! - Math.floor(ideals[b]! + 1e-9);
    return fb - fa || a - b;
  });
  for (let k = 0; assigned < total; k = (k + 1) % n) {
    const i = order[k]!;
    if (out[i]! < cap) {
      out[i]! += 1;
      assigned++;
    }
  }
  return out;
}

function buildModel(input: PlacementInput): Model {
  const { pgCount, replicationFactor: rf } = input;
  const sds = input.sds.filter((s) => s.capacityBytes > 0).sort((a, b) => a.id - b.id);
  const hasFaultSets = sds.some((s) => s.faultSetId !== null);
  const domainIndex = new Map<string, number>();
  const domainOf = new Int32Array(sds.length);
  const domainMembers: number[][] = [];
  const keys: number[] = [];
  sds.forEach((s, i) => {
    const key = s.faultSetId === null ? `s${s.id}` : `f${s.faultSetId}`;
    let d = domainIndex.get(key);
    if (d === undefined) {
      d = domainMembers.length;
      domainIndex.set(key, d);
      domainMembers.push([]);
      keys.push(s.faultSetId === null ? s.id * 2 + 1 : s.faultSetId * 2);
    }
    domainOf[i] = d;
    domainMembers[d]!.push(i);
  });
  if (domainMembers.length < rf) {
    const what = hasFaultSets ? 'fault sets (an SDS without a fault set counts as its own)' : 'SDSs with capacity';
    throw new PflexError(
      'PFLEX_ERR_CONFLICT',
      `replication factor ${rf} needs at least ${rf} ${what}, the pool has ${domainMembers.length}`,
    );
  }
  const slots = pgCount * rf;
  const domainCap = domainMembers.map((m) => m.reduce((acc, i) => acc + sds[i]!.capacityBytes, 0));
  const totalCap = domainCap.reduce((a, b) => a + b, 0);

  // Water filling: a fault set holds at most one replica per PG.
  const domainIdeal = new Float64Array(domainMembers.length);
  const capped = new Uint8Array(domainMembers.length);
  for (;;) {
    let freeSlots = slots;
    let freeCap = 0;
    for (let d = 0; d < domainIdeal.length; d++) {
      if (capped[d]) freeSlots -= pgCount;
      else freeCap += domainCap[d]!;
    }
    let newlyCapped = false;
    for (let d = 0; d < domainIdeal.length; d++) {
      if (capped[d]) continue;
      domainIdeal[d] = (freeSlots * domainCap[d]!) / freeCap;
      if (domainIdeal[d]! > pgCount) {
        capped[d] = 1;
        newlyCapped = true;
      }
    }
    if (!newlyCapped) break;
  }
  for (let d = 0; d < domainIdeal.length; d++) if (capped[d]) domainIdeal[d] = pgCount;

  const memberIdeal = new Float64Array(sds.length);
  const primaryIdeal = new Float64Array(sds.length);
  sds.forEach((s, i) => {
    const d = domainOf[i]!;
    memberIdeal[i] = (domainIdeal[d]! * s.capacityBytes) / domainCap[d]!;
    primaryIdeal[i] = (pgCount * s.capacityBytes) / totalCap;
  });
  const domainTarget = largestRemainder(domainIdeal, slots, pgCount);
  const target = new Int32Array(sds.length);
  domainMembers.forEach((members, d) => {
    const scale = domainTarget[d]! / domainIdeal[d]!;
    const part = largestRemainder(
      members.map((i) => memberIdeal[i]! * scale),
      domainTarget[d]!,
      pgCount,
    );
    members.forEach((i, k) => (target[i] = part[k]!));
  });
  const primaryTarget = largestRemainder(primaryIdeal, pgCount, pgCount);
  return {
    sds,
    domainOf,
    domainKey: Int32Array.from(keys),
    domainMembers,
    memberIdeal,
    primaryIdeal,
    target,
    domainTarget,
    primaryTarget,
  };
}

/** The capacity-proportional shares computePlacement aims at (for checks and dashboards). */
export function placementIdeals(input: Omit<PlacementInput, 'previous'>): PlacementIdeals {
  checkInput(input);
  const m = buildModel(input);
  const members = new Map<number, number>();
  const primaries = new Map<number, number>();
  for (const s of input.sds) {
    members.set(s.id, 0);
    primaries.set(s.id, 0);
  }
  m.sds.forEach((s, i) => {
    members.set(s.id, m.memberIdeal[i]!);
    primaries.set(s.id, m.primaryIdeal[i]!);
  });
  return { members, primaries };
}

/** Mutable membership state with per-SDS and per-fault-set counts. */
class Layout {
  readonly members: number[][];
  readonly count: Int32Array;
  readonly domainCount: Int32Array;

  constructor(
    readonly m: Model,
    readonly pgCount: number,
    readonly rf: number,
  ) {
    this.members = Array.from({ length: pgCount }, () => []);
    this.count = new Int32Array(m.sds.length);
    this.domainCount = new Int32Array(m.domainMembers.length);
  }

  hasDomain(p: number, d: number, except = -1): boolean {
    for (const s of this.members[p]!) if (s !== except && this.m.domainOf[s] === d) return true;
    return false;
  }

  add(p: number, s: number): void {
    this.members[p]!.push(s);
    this.count[s]! += 1;
    this.domainCount[this.m.domainOf[s]!]! += 1;
  }

  remove(p: number, s: number): void {
    const list = this.members[p]!;
    const at = list.indexOf(s);
    assert(at >= 0, 'removing a member that is not there');
    list.splice(at, 1);
    this.count[s]! -= 1;
    this.domainCount[this.m.domainOf[s]!]! -= 1;
  }

  deficit(s: number): number {
    return this.m.target[s]! - this.count[s]!;
  }

  domainDeficit(d: number): number {
    return this.m.domainTarget[d]! - this.domainCount[d]!;
  }

  /** The SDS of fault set d most below its target (ties broken by a per-PG hash). */
  bestSdsIn(d: number, p: number): number {
    let best = -1;
    let bestDef = 0;
    let bestHash = 0;
    for (const s of this.m.domainMembers[d]!) {
      const def = this.deficit(s);
      if (def <= 0) continue;
      const h = hash32x2(p ^ SALT_SDS, this.m.sds[s]!.id);
      if (best < 0 || def > bestDef || (def === bestDef && h > bestHash)) {
        best = s;
        bestDef = def;
        bestHash = h;
      }
    }
    return best;
  }

  /** Fault set most below its target that PG p does not use yet, or -1. */
  bestDomainFor(p: number): number {
    let best = -1;
    let bestDef = 0;
    let bestHash = 0;
    for (let d = 0; d < this.m.domainMembers.length; d++) {
      const def = this.domainDeficit(d);
      if (def <= 0 || this.hasDomain(p, d)) continue;
      const h = hash32x2(p ^ SALT_DOMAIN, this.m.domainKey[d]!);
      if (best < 0 || def > bestDef || (def === bestDef && h > bestHash)) {
        best = d;
        bestDef = def;
        bestHash = h;
      }
    }
    return best;
  }

  /**
   * Fills PG p up to rf members, most-needed fault set first. On a fresh map
   * filled PG by PG this is Ryser's construction and cannot get stuck; with a
   * previous map it can, and then `repairHole` trades with another PG.
   */
  fill(p: number): boolean {
    while (this.members[p]!.length < this.rf) {
      const d = this.bestDomainFor(p);
      if (d >= 0) this.add(p, this.bestSdsIn(d, p));
      else if (!this.repairHole(p)) return false;
    }
    return true;
  }

  /** Every needy fault set is already in p: move a member x of some PG q into p, and give q a needy SDS. */
  private repairHole(p: number): boolean {
    for (let d = 0; d < this.m.domainMembers.length; d++) {
      if (this.domainDeficit(d) <= 0) continue;
      for (let k = 1; k < this.pgCount; k++) {
        const q = (p + k) % this.pgCount;
        if (this.members[q]!.length < this.rf || this.hasDomain(q, d)) continue;
        const x = this.members[q]!.find((s) => !this.hasDomain(p, this.m.domainOf[s]!));
        if (x === undefined) continue;
        this.remove(q, x);
        this.add(p, x);
        this.add(q, this.bestSdsIn(d, q));
        return true;
      }
    }
    return false;
  }

  /** SDS a is above its target: hand PGs to SDSs below theirs, one replica move each. */
  shed(a: number): void {
    const aId = this.m.sds[a]!.id;
    const da = this.m.domainOf[a]!;
    const pgs: number[] = [];
    for (let p = 0; p < this.pgCount; p++) if (this.members[p]!.includes(a)) pgs.push(p);
    pgs.sort((x, y) => hash32x2(x, aId) - hash32x2(y, aId) || x - y);
    while (this.deficit(a) < 0) {
      const takers: number[] = [];
      for (let b = 0; b < this.m.sds.length; b++) if (this.deficit(b) > 0) takers.push(b);
      if (takers.length === 0) return;
      // Same fault set first: such a move never touches the fault-set constraint.
      takers.sort((x, y) => {
        const sx = this.m.domainOf[x] === da ? 1 : 0;
        const sy = this.m.domainOf[y] === da ? 1 : 0;
        return sy - sx || this.deficit(y) - this.deficit(x) || x - y;
      });
      let moved = false;
      for (const b of takers) {
        const db = this.m.domainOf[b]!;
        const at = pgs.findIndex((p) => !this.members[p]!.includes(b) && (db === da || !this.hasDomain(p, db, a)));
        if (at < 0) continue;
        const p = pgs[at]!;
        pgs.splice(at, 1);
        this.remove(p, a);
        this.add(p, b);
        moved = true;
        break;
      }
      if (!moved && !this.shedVia(a, pgs, takers)) return; // left over target
    }
  }

  /**
   * Every PG of `a` already holds each taker's fault set: a three-way move
   * instead. a leaves p, a member x of another PG q takes its place in p,
   * and a taker b takes x's place in q (two replica moves).
   */
  private shedVia(a: number, pgs: number[], takers: number[]): boolean {
    const dom = this.m.domainOf;
    for (const b of takers) {
      for (let at = 0; at < pgs.length; at++) {
        const p = pgs[at]!;
        for (let q = 0; q < this.pgCount; q++) {
          const mq = this.members[q]!;
          if (q === p || mq.includes(b)) continue;
          for (const x of mq) {
            if (x === a || this.members[p]!.includes(x)) continue;
            if (dom[x] !== dom[a] && this.hasDomain(p, dom[x]!, a)) continue;
            if (dom[b] !== dom[x] && this.hasDomain(q, dom[b]!, x)) continue;
            pgs.splice(at, 1);
            this.remove(p, a);
            this.add(p, x);
            this.remove(q, x);
            this.add(q, b);
            return true;
          }
        }
      }
    }
    return false;
  }

  valid(): boolean {
    for (let p = 0; p < this.pgCount; p++) {
      const list = this.members[p]!;
      if (list.length !== this.rf) return false;
      const seen = new Set<number>();
      for (const s of list) seen.add(this.m.domainOf[s]!);
      if (seen.size !== this.rf) return false;
    }
    return true;
  }
}

function freshLayout(m: Model, pgCount: number, rf: number): Layout {
  const layout = new Layout(m, pgCount, rf);
  for (let p = 0; p < pgCount; p++) {
    const ok = layout.fill(p);
    assert(ok, 'fresh placement got stuck');
  }
  return layout;
}

function incrementalLayout(m: Model, pgCount: number, rf: number, previous: number[][]): Layout | null {
  const layout = new Layout(m, pgCount, rf);
  const indexOf = new Map<number, number>();
  m.sds.forEach((s, i) => indexOf.set(s.id, i));
  for (let p = 0; p < pgCount; p++) {
    for (const id of previous[p] ?? []) {
      const s = indexOf.get(id);
      if (s === undefined || layout.members[p]!.length >= rf || layout.members[p]!.includes(s)) continue;
      if (layout.hasDomain(p, m.domainOf[s]!)) continue;
      layout.add(p, s);
    }
  }
  for (let p = 0; p < pgCount; p++) if (!layout.fill(p)) return null;
  for (let a = 0; a < m.sds.length; a++) if (layout.deficit(a) < 0) layout.shed(a);
  return layout.valid() ? layout : null;
}

/**
 * Chooses a primary per PG so that primary counts follow capacity: keep the
 * previous primary where it is still a member, give the rest to the member
 * most below its primary target, then move primaries along augmenting paths
 * (u primary of p, v member of p, ...) from SDSs above target to SDSs below.
 */
function choosePrimaries(layout: Layout, prevPrimary: Int32Array): Int32Array {
  const { m, pgCount, members } = layout;
  const n = m.sds.length;
  const prim = new Int32Array(pgCount).fill(-1);
  const pcount = new Int32Array(n);
  for (let p = 0; p < pgCount; p++) {
    if (prevPrimary[p]! >= 0 && members[p]!.includes(prevPrimary[p]!)) {
      prim[p] = prevPrimary[p]!;
      pcount[prim[p]!]! += 1;
    }
  }
  for (let p = 0; p < pgCount; p++) {
    if (prim[p]! >= 0) continue;
    let best = -1;
    let bestNeed = 0;
    let bestHash = 0;
    for (const s of members[p]!) {
      const need = m.primaryTarget[s]! - pcount[s]!;
      const h = hash32x2(p ^ SALT_PRIMARY, m.sds[s]!.id);
      if (best < 0 || need > bestNeed || (need === bestNeed && h > bestHash)) {
        best = s;
        bestNeed = need;
        bestHash = h;
      }
    }
    prim[p] = best;
    pcount[best]! += 1;
  }
  const stuck = new Uint8Array(n);
  const parentPg = new Int32Array(n);
  for (;;) {
    let source = -1;
    for (let s = 0; s < n; s++) {
      if (!stuck[s] && pcount[s]! > m.primaryTarget[s]!) {
        source = s;
        break;
      }
    }
    if (source < 0) break;
    const primOf: number[][] = Array.from({ length: n }, () => []);
    for (let p = 0; p < pgCount; p++) primOf[prim[p]!]!.push(p);
    parentPg.fill(-1);
    const visited = new Uint8Array(n);
    visited[source] = 1;
    const queue = [source];
    let found = -1;
    for (let qi = 0; qi < queue.length && found < 0; qi++) {
      const u = queue[qi]!;
      for (const p of primOf[u]!) {
        for (const v of members[p]!) {
          if (visited[v]) continue;
          visited[v] = 1;
          parentPg[v] = p;
          if (pcount[v]! < m.primaryTarget[v]!) {
            found = v;
            break;
          }
          queue.push(v);
        }
        if (found >= 0) break;
      }
    }
    if (found < 0) {
      stuck[source] = 1;
      continue;
    }
    pcount[found]! += 1;
    pcount[source]! -= 1;
    for (let v = found; v !== source; ) {
      const p = parentPg[v]!;
      const u = prim[p]!;
      prim[p] = v;
      v = u;
    }
  }
  return prim;
}

/**
 * The PG map of a pool: for PG 0..pgCount-1 the member SDS ids, primary
 * first. Throws PFLEX_ERR_CONFLICT when the replication factor cannot be met.
 */
export function computePlacement(input: PlacementInput): number[][] {
  checkInput(input);
  const { pgCount, replicationFactor: rf } = input;
  const m = buildModel(input);
  let layout: Layout | null = null;
  const prevPrimary = new Int32Array(pgCount).fill(-1);
  if (input.previous && input.previous.length > 0) {
    layout = incrementalLayout(m, pgCount, rf, input.previous);
    const indexOf = new Map<number, number>();
    m.sds.forEach((s, i) => indexOf.set(s.id, i));
    for (let p = 0; p < pgCount; p++) {
      const id = input.previous[p]?.[0];
      if (id !== undefined) prevPrimary[p] = indexOf.get(id) ?? -1;
    }
  }
  layout ??= freshLayout(m, pgCount, rf);
  const prim = choosePrimaries(layout, prevPrimary);
  return layout.members.map((list, p) => {
    const primary = prim[p]!;
    return [m.sds[primary]!.id, ...list.filter((s) => s !== primary).map((s) => m.sds[s]!.id)];
  });
}
