import t, { type Test } from 'tap';
import { computePlacement, placementIdeals, placementTolerance, type PlacementSds } from '../../src/mdm/placement.js';
import { PflexError } from '../../src/shared/errors.js';

/** A small deterministic PRNG so that test inputs are reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 0x1_0000_0000;
  };
}

const GiB = 2 ** 30;

function cluster(n: number, opts: { faultSets?: number; unequal?: boolean; seed?: number } = {}): PlacementSds[] {
  const rand = rng(opts.seed ?? n);
  return Array.from({ length: n }, (_, i) => ({
    id: 100 + i * 7,
    capacityBytes: opts.unequal ? Math.round((1 + rand() * 3) * 256) * 4 * GiB : 1024 * GiB,
    faultSetId: opts.faultSets ? 1 + (i % opts.faultSets) : null,
  }));
}

interface Check {
  pgCount: number;
  replicationFactor: number;
  sds: PlacementSds[];
}

/** Asserts every constraint and the balance of members and primaries; returns nothing so each failure is visible. */
function checkMap(t: Test, input: Check, map: number[][]): void {
  const byId = new Map(input.sds.map((s) => [s.id, s]));
  const members = new Map<number, number>();
  const primaries = new Map<number, number>();
  let bad = 0;
  for (const [p, set] of map.entries()) {
    const distinct = new Set(set).size === set.length;
    const domains = new Set(set.map((id) => byId.get(id)?.faultSetId ?? `s${id}`));
    if (set.length !== input.replicationFactor || !distinct || domains.size !== set.length || set.some((id) => !byId.has(id))) {
      bad++;
      if (bad < 3) t.fail(`PG ${p} breaks a constraint: ${JSON.stringify(set)}`);
    }
    for (const id of set) members.set(id, (members.get(id) ?? 0) + 1);
    primaries.set(set[0]!, (primaries.get(set[0]!) ?? 0) + 1);
  }
  t.equal(map.length, input.pgCount, 'one entry per PG');
  t.equal(bad, 0, 'every PG has RF distinct SDSs in distinct fault sets');
  const ideals = placementIdeals(input);
  let worstMember = 0;
  let worstPrimary = 0;
  for (const s of input.sds) {
    const ideal = ideals.members.get(s.id)!;
    worstMember = Math.max(worstMember, Math.abs((members.get(s.id) ?? 0) - ideal) / placementTolerance(ideal));
    const pIdeal = ideals.primaries.get(s.id)!;
    worstPrimary = Math.max(worstPrimary, Math.abs((primaries.get(s.id) ?? 0) - pIdeal) / placementTolerance(pIdeal));
  }
  t.ok(worstMember <= 1, `memberships within tolerance (worst at ${worstMember.toFixed(2)} of tolerance)`);
  t.ok(worstPrimary <= 1, `primaries within tolerance (worst at ${worstPrimary.toFixed(2)} of tolerance)`);
}

/** Replica moves between two maps: memberships present in `after` but not in `before`. */
function moves(before: number[][], after: number[][]): number {
  let n = 0;
  for (const [p, set] of after.entries()) for (const id of set) if (!before[p]!.includes(id)) n++;
  return n;
}

t.test('constraints and balance, 3 to 100 SDSs, RF 2 and 3, with and without fault sets', async (t) => {
  const cases: Array<{ n: number; rf: number; pgCount: number; faultSets?: number; unequal?: boolean }> = [
    { n: 3, rf: 3, pgCount: 64 },
    { n: 3, rf: 2, pgCount: 128 },
    { n: 4, rf: 2, pgCount: 64, unequal: true },
    { n: 5, rf: 3, pgCount: 256 },
    { n: 7, rf: 2, pgCount: 512, unequal: true },
    { n: 10, rf: 3, pgCount: 1024, unequal: true },
    { n: 16, rf: 2, pgCount: 1024, faultSets: 4 },
    { n: 24, rf: 3, pgCount: 2048, faultSets: 3 },
    { n: 30, rf: 3, pgCount: 1024, faultSets: 5, unequal: true },
    { n: 50, rf: 2, pgCount: 4096, unequal: true },
    { n: 100, rf: 3, pgCount: 4096 },
    { n: 100, rf: 3, pgCount: 4096, unequal: true },
    { n: 100, rf: 2, pgCount: 4096, faultSets: 10, unequal: true },
  ];
  for (const c of cases) {
    const input = { pgCount: c.pgCount, replicationFactor: c.rf, sds: cluster(c.n, c) };
    await t.test(`${c.n} SDSs rf=${c.rf} pgs=${c.pgCount} faultSets=${c.faultSets ?? 0}${c.unequal ? ' unequal' : ''}`, async (t) => {
      checkMap(t, input, computePlacement(input));
    });
  }
});

t.test('a fault set holding more than 1/RF of the capacity is capped at one replica per PG', async (t) => {
  const sds: PlacementSds[] = [
    { id: 1, capacityBytes: 6000 * GiB, faultSetId: 1 },
    { id: 2, capacityBytes: 6000 * GiB, faultSetId: 1 },
    { id: 3, capacityBytes: 1000 * GiB, faultSetId: 2 },
    { id: 4, capacityBytes: 1000 * GiB, faultSetId: 3 },
  ];
  const input = { pgCount: 256, replicationFactor: 2, sds };
  const map = computePlacement(input);
  checkMap(t, input, map);
  const inFs1 = map.filter((set) => set.includes(1) || set.includes(2)).length;
  t.equal(inFs1, 256, 'every PG has exactly one replica in the big fault set');
  const ideals = placementIdeals(input);
  t.equal(ideals.members.get(3), 128, 'the rest is shared by capacity among the other fault sets');
});

t.test('SDSs without capacity get no PGs', async (t) => {
  const sds = [...cluster(4), { id: 9999, capacityBytes: 0, faultSetId: null }];
  const map = computePlacement({ pgCount: 128, replicationFactor: 2, sds });
  t.notOk(map.some((set) => set.includes(9999)), 'zero-capacity SDS holds nothing');
});

t.test('deterministic and independent of input order', async (t) => {
  const sds = cluster(20, { faultSets: 4, unequal: true });
  const input = { pgCount: 1024, replicationFactor: 3, sds };
  const a = computePlacement(input);
  const b = computePlacement({ ...input, sds: sds.map((s) => ({ ...s })) });
  t.same(a, b, 'same input, same map');
  const rand = rng(42);
  const shuffled = [...sds].sort(() => rand() - 0.5);
  t.not(shuffled.map((s) => s.id).join(), sds.map((s) => s.id).join(), 'the shuffle changed the order');
  t.same(computePlacement({ ...input, sds: shuffled }), a, 'shuffled input, same map');
});

t.test('PGs are spread: an SDS shares PGs with many different peers', async (t) => {
  const sds = cluster(30);
  const map = computePlacement({ pgCount: 1024, replicationFactor: 3, sds });
  const peers = new Set<number>();
  for (const set of map) if (set.includes(sds[0]!.id)) for (const id of set) peers.add(id);
  t.ok(peers.size - 1 >= 20, `SDS ${sds[0]!.id} shares PGs with ${peers.size - 1} of 29 peers (rebuild reads from many)`);
});

t.test('minimal movement when an SDS joins or leaves', async (t) => {
  const configs = [
    { n: 10, rf: 3, pgCount: 1024 },
    { n: 12, rf: 2, pgCount: 512, unequal: true },
    { n: 12, rf: 3, pgCount: 1024, faultSets: 4 },
    { n: 40, rf: 3, pgCount: 4096, faultSets: 5, unequal: true },
    { n: 3, rf: 2, pgCount: 256 },
  ];
  for (const c of configs) {
    await t.test(`${c.n} SDSs rf=${c.rf} pgs=${c.pgCount} faultSets=${c.faultSets ?? 0}`, async (t) => {
      const sds = cluster(c.n, c);
      const base = { pgCount: c.pgCount, replicationFactor: c.rf };
      const before = computePlacement({ ...base, sds });

      const joiner: PlacementSds = { id: 5, capacityBytes: sds[1]!.capacityBytes, faultSetId: sds[1]!.faultSetId };
      const grown = [...sds, joiner];
      const afterJoin = computePlacement({ ...base, sds: grown, previous: before });
      checkMap(t, { ...base, sds: grown }, afterJoin);
      const ideal = placementIdeals({ ...base, sds: grown }).members.get(joiner.id)!;
      const moved = moves(before, afterJoin);
      t.ok(moved <= 1.5 * ideal, `join moved ${moved} replicas, ideal share of the newcomer ${ideal.toFixed(1)}`);
      t.ok(moved >= Math.floor(ideal) - placementTolerance(ideal), 'the newcomer received its share');

      const leaver = sds[2]!;
      const shrunk = sds.filter((s) => s !== leaver);
      if (c.faultSets && shrunk.filter((s) => s.faultSetId === leaver.faultSetId).length === 0) return;
      const afterLeave = computePlacement({ ...base, sds: shrunk, previous: before });
      checkMap(t, { ...base, sds: shrunk }, afterLeave);
      const held = before.filter((set) => set.includes(leaver.id)).length;
      const movedOut = moves(before, afterLeave);
      t.ok(movedOut >= held, 'every replica of the leaver was replaced');
      t.ok(movedOut <= 1.5 * held, `leave moved ${movedOut} replicas for the ${held} the leaver held`);
      t.notOk(afterLeave.some((set) => set.includes(leaver.id)), 'the leaver holds nothing');
    });
  }
});

t.test('an unchanged cluster keeps its map exactly', async (t) => {
  const sds = cluster(9, { faultSets: 3, unequal: true });
  const input = { pgCount: 512, replicationFactor: 3, sds };
  const before = computePlacement(input);
  t.same(computePlacement({ ...input, previous: before }), before);
});

t.test('primaries of a removed SDS move to surviving members, others keep their primary', async (t) => {
  const sds = cluster(8);
  const base = { pgCount: 256, replicationFactor: 2 };
  const before = computePlacement({ ...base, sds });
  const after = computePlacement({ ...base, sds: sds.slice(1), previous: before });
  let kept = 0;
  let untouched = 0;
  for (const [p, set] of before.entries()) {
    if (set.includes(sds[0]!.id)) continue;
    untouched++;
    if (after[p]![0] === set[0]) kept++;
  }
  t.ok(kept >= untouched * 0.8, `${kept} of ${untouched} unaffected PGs kept their primary`);
});

t.test('conflicts: too few SDSs or fault sets for the replication factor', async (t) => {
  t.throws(() => computePlacement({ pgCount: 64, replicationFactor: 3, sds: cluster(2) }), {
    code: 'PFLEX_ERR_CONFLICT',
    message: /replication factor 3 needs at least 3 SDSs/,
  });
  t.throws(() => computePlacement({ pgCount: 64, replicationFactor: 3, sds: cluster(9, { faultSets: 2 }) }), {
    code: 'PFLEX_ERR_CONFLICT',
    message: /at least 3 fault sets/,
  });
  t.throws(() => computePlacement({ pgCount: 64, replicationFactor: 2, sds: [] }), PflexError);
  t.throws(() => computePlacement({ pgCount: 0, replicationFactor: 2, sds: cluster(3) }), /pgCount/);
});

t.test('random sequences of joins, leaves and capacity changes keep constraints, balance and small moves', async (t) => {
  const rand = rng(12345);
  let steps = 0;
  let violations = 0;
  let unbalanced = 0;
  let excessMoves = 0;
  for (let trial = 0; trial < 60; trial++) {
    const rf = rand() < 0.5 ? 2 : 3;
    const faultSets = rand() < 0.5 ? 0 : rf + Math.floor(rand() * 4);
    const pgCount = [64, 128, 256, 512][Math.floor(rand() * 4)]!;
    let nextId = 1;
    const make = (): PlacementSds => ({
      id: nextId++,
      capacityBytes: Math.floor(1 + rand() * 4) * 1024 * GiB,
      faultSetId: faultSets ? 1 + Math.floor(rand() * faultSets) : null,
    });
    let sds = Array.from({ length: rf + 2 + Math.floor(rand() * 10) }, make);
    let map: number[][];
    try {
      map = computePlacement({ pgCount, replicationFactor: rf, sds });
    } catch {
      continue; // too few fault sets drawn
    }
    for (let step = 0; step < 15; step++) {
      const before = map;
      const kept = sds;
      const r = rand();
      if (r < 0.4) sds = [...sds, make()];
      else if (r < 0.8) sds = sds.filter((_, i) => i !== Math.floor(rand() * kept.length));
      else sds = sds.map((s, i) => (i === Math.floor(rand() * kept.length) ? { ...s, capacityBytes: s.capacityBytes * 2 } : s));
      try {
        map = computePlacement({ pgCount, replicationFactor: rf, sds, previous: before });
      } catch (err) {
        t.equal((err as PflexError).code, 'PFLEX_ERR_CONFLICT', 'only conflicts are thrown');
        sds = kept;
        map = before;
        continue;
      }
      steps++;
      const byId = new Map(sds.map((s) => [s.id, s]));
      const count = new Map<number, number>();
      const primaries = new Map<number, number>();
      for (const set of map) {
        primaries.set(set[0]!, (primaries.get(set[0]!) ?? 0) + 1);
        if (set.length !== rf || new Set(set.map((id) => byId.get(id)?.faultSetId ?? `s${id}`)).size !== rf) violations++;
        for (const id of set) count.set(id, (count.get(id) ?? 0) + 1);
      }
      const ideals = placementIdeals({ pgCount, replicationFactor: rf, sds });
      for (const s of sds) {
        const ideal = ideals.members.get(s.id)!;
        if (Math.abs((count.get(s.id) ?? 0) - ideal) > placementTolerance(ideal)) unbalanced++;
        const pIdeal = ideals.primaries.get(s.id)!;
        if (Math.abs((primaries.get(s.id) ?? 0) - pIdeal) > placementTolerance(pIdeal)) unbalanced++;
      }
      // Lower bound of moves: every replica an SDS gains had to be copied to it.
      const old = new Map<number, number>();
      for (const set of before) for (const id of set) old.set(id, (old.get(id) ?? 0) + 1);
      let bound = 0;
      for (const s of sds) bound += Math.max(0, (count.get(s.id) ?? 0) - (old.get(s.id) ?? 0));
      if (moves(before, map) > 1.5 * bound + 2) excessMoves++;
    }
  }
  t.ok(steps > 300, `${steps} changes exercised`);
  t.equal(violations, 0, 'no PG breaks a constraint');
  t.equal(unbalanced, 0, 'every SDS within tolerance (members and primaries) after every change');
  t.equal(excessMoves, 0, 'moves stay within 1.5x of the lower bound (+2)');
});
