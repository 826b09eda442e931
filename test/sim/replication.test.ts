/**
 * Deterministic simulation of replication and PG changes (src/sim/): many
 * seeds of crashes, partitions, connection resets and fences against the real
 * DataServer/PgTable/PgMapService/PoolMap, each checked for durability,
 * convergence and fencing. PFLEX_SIM_SEEDS=<n> sets how many seeds run,
 * PFLEX_SIM_SEED=<n> replays one seed exactly (PFLEX_SIM_POWER_LOSS=1 with it
 * replays a power-loss run).
 */
import t from 'tap';
import { runSeed, type SimOptions, type SimResult } from '../../src/sim/run.js';
import { checkFencing } from '../../src/sim/checker.js';
import { SimMdm } from '../../src/sim/mdm.js';

const TEST = 'dist/test/sim/replication.test.js';
const one = process.env.PFLEX_SIM_SEED;
const seedCount = Number(process.env.PFLEX_SIM_SEEDS ?? 500);
const powerLoss = process.env.PFLEX_SIM_POWER_LOSS === '1';
/** Other run options as JSON, e.g. '{"faults":12,"writes":50}' (see SimOptions in src/sim/run.ts). */
const extra = JSON.parse(process.env.PFLEX_SIM_OPTIONS ?? '{}') as Partial<SimOptions>;

function replayEnv(): string {
  return `${powerLoss ? 'PFLEX_SIM_POWER_LOSS=1 ' : ''}${process.env.PFLEX_SIM_OPTIONS ? `PFLEX_SIM_OPTIONS='${process.env.PFLEX_SIM_OPTIONS}' ` : ''}`;
}

function describe(r: SimResult, env = ''): string {
  return [
    `seed ${r.seed} broke ${r.violations.length} invariant check(s); replay: ${env}PFLEX_SIM_SEED=${r.seed} npx tap ${TEST}`,
    ...r.violations.slice(0, 10).map((v) => `  [${v.invariant}] ${v.message}`),
    `  faults ${JSON.stringify(r.faults)}; fences ${r.fences.join(' ')}; last events (map polls left out):`,
    ...r.tail.filter((l) => !/^\d+ (poll|map|reply map) /.test(l)).slice(-40).map((l) => `    ${l}`),
  ].join('\n');
}

t.test('invariants hold over many seeds of crashes, partitions, resets and fences', async (t) => {
  const seeds = one !== undefined ? [Number(one)] : Array.from({ length: seedCount }, (_, i) => i + 1);
  const started = performance.now();
  let events = 0;
  let acked = 0;
  let staleMemberWrites = 0;
  let cascades = 0;
  let laggingFenced = 0;
  const faults: Record<string, number> = {};
  const failed: number[] = [];
  let firstFailure = '';
  for (const seed of seeds) {
    const r = await runSeed(seed, { ...extra, powerLoss });
    events += r.events;
    acked += r.acked;
    staleMemberWrites += r.staleMemberWrites;
    cascades += r.cascades;
    laggingFenced += r.laggingFenced;
    for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
    if (r.violations.length > 0) {
      failed.push(seed);
      if (failed.length === 1) firstFailure = describe(r, replayEnv());
      if (failed.length <= 3) t.comment(describe(r, replayEnv()));
    }
  }
  const ms = performance.now() - started;
  t.comment(`${seeds.length} seeds, ${events} events in ${(ms / 1000).toFixed(1)} s (${Math.round(events / (ms / 1000))} events/s), `
    + `${acked} acknowledged writes, faults ${JSON.stringify(faults)}, ${staleMemberWrites} writes applied by already fenced members at their old epoch, `
    + `${cascades} PGs that lost a second member to a fence, ${laggingFenced} of them secondaries fenced for answering EPOCH_AHEAD`);
  t.same(failed, [], failed.length === 0 ? 'no seed breaks an invariant' : `seeds ${failed.slice(0, 20).join(', ')} break invariants; first:\n${firstFailure}`);
  t.ok(events > seeds.length * 50, 'the runs did real work');
});

t.test('a seed replays exactly: same event trace twice, another seed differs', async (t) => {
  const a = await runSeed(4242);
  const b = await runSeed(4242);
  const c = await runSeed(4243);
  t.equal(a.traceHash, b.traceHash, 'same trace hash');
  t.equal(a.events, b.events, 'same number of events');
  t.same(a.tail, b.tail, 'same last events');
  t.same(a.faults, b.faults, 'same faults');
  t.not(a.traceHash, c.traceHash, 'another seed takes another path');
});

t.test('the checker catches a primary that acknowledges writes its secondaries never got', async (t) => {
  let caught = 0;
  const kinds = new Set<string>();
  for (let seed = 1; seed <= 20; seed++) {
    const r = await runSeed(seed, { lyingForwards: true });
    if (r.violations.length > 0) caught++;
    for (const v of r.violations) kinds.add(v.invariant);
  }
  t.ok(caught >= 15, `the mutant is caught in ${caught} of 20 seeds`);
  t.ok(kinds.has('durability') && kinds.has('convergence'), `both durability and convergence fire (${[...kinds].join(', ')})`);
});

t.test('the checker catches an SDS that applies writes outside the acting set', async (t) => {
  const mdm = new SimMdm({ sdsCount: 4, pgCount: 6, replicationFactor: 2 });
  t.teardown(() => mdm.close());
  const e = mdm.entry(0);
  const outsider = mdm.sdsIds.find((id) => !e.members.includes(id))!;
  const member = checkFencing(mdm, [{ node: e.members[1]!, pg: 0, epoch: e.epoch, atMs: 1 }]);
  t.same(member, [], 'a member at a published epoch is fine');
  const outside = checkFencing(mdm, [{ node: outsider, pg: 0, epoch: e.epoch, atMs: 1 }]);
  t.same(outside.map((v) => v.invariant), ['fencing'], 'an SDS outside the acting set is caught');
  const unknown = checkFencing(mdm, [{ node: e.members[0]!, pg: 0, epoch: e.epoch + 7, atMs: 1 }]);
  t.same(unknown.map((v) => v.invariant), ['fencing'], 'an epoch the MDM never published is caught');
  mdm.fence(0, e.members[1]!, e.epoch);
  const fenced = checkFencing(mdm, [{ node: e.members[1]!, pg: 0, epoch: mdm.entry(0).epoch, atMs: 2 }]);
  t.same(fenced.map((v) => v.invariant), ['fencing'], 'a fenced member writing at the new epoch is caught');
});

// Known gaps the simulation found: the runs execute and report, their checks are marked todo until fixed.

// Power loss (un-flushed writes vanish) followed by a restart: nothing tells the MDM that the SDS lost
// data, so it stays in its acting sets (even as primary) without writes it had acknowledged.
const POWER_LOSS_TODO = 'seed 1 (PFLEX_SIM_POWER_LOSS=1 PFLEX_SIM_SEED=1): a restarted SDS keeps serving its PGs without the un-flushed writes it lost; see docs/simulation.md';

t.test('power loss and restart of one SDS per PG loses no acknowledged write', async (t) => {
  const r = await runSeed(1, { powerLoss: true });
  t.ok(r.acked > 0, 'the run acknowledged writes');
  t.same(r.violations.map((v) => v.message), [], { todo: POWER_LOSS_TODO });
});

// A secondary whose map is behind (its MDM fetch failed or is still in flight) answers a forwarded write
// EPOCH_AHEAD; the primary counts that as a failed secondary and fences a healthy replica.
const LAGGING_TODO = 'seed 30 with {faults: 12, writes: 50}: a secondary answers EPOCH_AHEAD while its map fetch is lost to an MDM partition, and the primary fences it; see docs/simulation.md';

t.test('a secondary whose map lags is not fenced for it', async (t) => {
  const r = await runSeed(30, { faults: 12, writes: 50 });
  t.same(r.violations, [], 'the invariants hold');
  t.equal(r.laggingFenced, 0, { todo: LAGGING_TODO });
});
