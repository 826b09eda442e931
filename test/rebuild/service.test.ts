/**
 * The MDM side of rebuild on a real SQLite file with a fake SDS control
 * (no processes): eviction of a DOWN SDS, planning of joining members within
 * the concurrency limit, the join commit (compare-and-set on the epoch),
 * failure handling, drain and the degraded-pool alert.
 */
import { join } from 'node:path';
import t from 'tap';
import { resolveConfig } from '../../src/mdm/config.js';
import { openDb } from '../../src/mdm/db.js';
import { computePlacement } from '../../src/mdm/placement.js';
import { createServices } from '../../src/mdm/services/index.js';
import type { ControlEndpoint, SdsControl } from '../../src/mdm/services/rebuild-control.js';
import type { SdsRebuildStatus, StartRebuild } from '../../src/dataplane/rebuild-proto.js';
import { generateClusterKey } from '../../src/shared/component-auth.js';
import { tempDir } from '../helpers/proc.js';
import { FakeClock } from '../mdm/helpers.js';

const GiB = 1024 ** 3;

class FakeControl implements SdsControl {
  started: StartRebuild[] = [];
  statuses = new Map<number, SdsRebuildStatus>();
  released: number[] = [];
  async startRebuild(_p: ControlEndpoint, cmd: StartRebuild): Promise<void> {
    this.started.push(cmd);
    this.statuses.set(cmd.jobId, { jobId: cmd.jobId, pg: cmd.pg, targetSdsId: cmd.target.sdsId, state: 'running', chunksDone: 1, chunksTotal: 4, bytesDone: 10, bytesTotal: 40, mode: 'full', chunksPushed: 1, bytesPushed: 10, chunksSkipped: 0, bytesSkipped: 0, chunksRemoved: 0, error: null });
  }
  async listRebuilds(): Promise<SdsRebuildStatus[]> { return [...this.statuses.values()]; }
  async releasePg(_f: ControlEndpoint, pg: number): Promise<void> { this.released.push(pg); }
}

function setup(t: { teardown(fn: () => unknown): void }, concurrent = 2) {
  const db = openDb(join(tempDir(t), 'mdm.db'));
  t.teardown(() => db.close());
  const clock = new FakeClock();
  const control = new FakeControl();
  const s = createServices({
    db, clusterKey: generateClusterKey(), config: resolveConfig({ rebuildConcurrentPgsMax: concurrent, rebuildRetryDelayMs: 1000 }), clock: clock.now,
    place: computePlacement, sign: (claims) => JSON.stringify(claims), sdsControl: control,
  });
  const pd = s.topology.createPd('pd');
  const pool = s.topology.createPool({ protectionDomainId: pd.id, name: 'p', replicationFactor: 2, pgCount: 8 });
  const ids = ['a', 'b', 'c'].map((name, i) => s.topology.registerSds({
    name, protectionDomainName: 'pd', storagePoolName: 'p', address: '127.0.0.1', dataPort: 1, controlPort: 1000 + i, capacityBytes: GiB,
  }).sds.id);
  s.volumes.create({ name: 'v', storagePoolId: pool.id, sizeBytes: 1 << 20 });
  return { s, clock, control, pool, ids };
}

/** Completes every running copy the way a primary does: join at the epoch it was started at. */
function completeAll(s: ReturnType<typeof setup>['s'], control: FakeControl, poolId: number): number {
  let n = 0;
  for (const cmd of control.started) {
    const st = control.statuses.get(cmd.jobId)!;
    if (st.state !== 'running') continue;
    s.rebuild.join(poolId, cmd.pg, cmd.target.sdsId, cmd.epoch, { chunksDone: 4, chunksTotal: 4, bytesDone: 40, bytesTotal: 40 });
    st.state = 'done';
    n++;
  }
  return n;
}

t.test('a DOWN SDS is evicted; degraded PGs get joining members, within the limit; joins heal them', async (t) => {
  const { s, clock, control, pool, ids } = setup(t);
  const victim = ids[2]!;
  const held = s.pgmaps.map(pool.id).pgs.filter((p) => p.members.includes(victim)).length;
  t.ok(held > 0);
  // Everyone but the victim keeps beating.
  clock.advance(11_000);
  for (const id of ids.slice(0, 2)) s.health.sdsHeartbeat(id, { usedBytes: 0 });
  s.health.tick();
  let map = s.pgmaps.map(pool.id);
  t.ok(map.pgs.every((p) => !p.members.includes(victim)), 'evicted from every PG at once');
  t.equal(map.pgs.filter((p) => p.members.length === 1).length, held, 'its PGs are degraded');
  t.match(s.alerts.list({ state: 'open', limit: 100 }).map((a) => a.source), ['sds:c']);

  // Two SDSs and RF 2: placement puts every PG on both; two copies at a time.
  const rounds: number[] = [];
  for (let i = 0; i < 20 && s.rebuild.status().active; i++) {
    await s.rebuild.tick();
    const st = s.rebuild.status();
    t.ok(st.jobs.length <= 2, 'never more copies than rebuildConcurrentPgsMax');
    if (i === 0) {
      t.equal(st.pools[0]!.degradedPgs, held);
      t.match(s.alerts.list({ state: 'open', category: 'rebuild', limit: 100 })[0]?.message, /fewer than 2 copies/);
      const joining = s.pgmaps.map(pool.id).pgs.filter((p) => (p.joining ?? []).length > 0);
      t.equal(joining.length, 2, 'two PGs got a joining member');
      t.ok(joining.every((p) => p.members.length === 1 && !p.joining!.includes(victim)), 'never the DOWN SDS');
    }
    await s.rebuild.tick(); // start -> running, progress polled
    rounds.push(completeAll(s, control, pool.id));
  }
  await s.rebuild.tick();
  map = s.pgmaps.map(pool.id);
  t.ok(map.pgs.every((p) => p.members.length === 2 && (p.joining ?? []).length === 0), 'every PG whole');
  t.equal(rounds.reduce((a, b) => a + b, 0), held, 'one copy per degraded PG');
  t.same(s.alerts.list({ state: 'open', category: 'rebuild', limit: 100 }), [], 'the degraded alert resolved itself');
  t.equal(s.rebuild.status().active, false);
  t.ok(s.rebuild.history(100).every((j) => j.state === 'done' && j.kind === 'rebuild' && j.bytesDone === 40));
});

t.test('join is compare-and-set on the epoch; a failed copy removes the joining member and is retried later', async (t) => {
  const { s, clock, control, pool, ids } = setup(t, 1);
  clock.advance(11_000);
  for (const id of ids.slice(0, 2)) s.health.sdsHeartbeat(id, { usedBytes: 0 });
  s.health.tick();
  await s.rebuild.tick();
  await s.rebuild.tick();
  const cmd = control.started[0]!;
  t.throws(() => s.rebuild.join(pool.id, cmd.pg, cmd.target.sdsId, cmd.epoch - 1), { code: 'PFLEX_ERR_STALE_EPOCH' });
  t.throws(() => s.rebuild.join(pool.id, cmd.pg, ids[2]!, cmd.epoch), { code: 'PFLEX_ERR_CONFLICT' }, 'only the joining member may join');
  control.statuses.get(cmd.jobId)!.state = 'failed';
  control.statuses.get(cmd.jobId)!.error = 'boom';
  await s.rebuild.tick();
  const entry = s.pgmaps.map(pool.id).pgs.find((p) => p.pg === cmd.pg)!;
  t.same(entry.joining, [], 'the joining member was removed');
  t.match(s.rebuild.history(10).find((j) => j.id === cmd.jobId), { state: 'failed', error: 'boom' });
  await s.rebuild.tick();
  t.notOk(s.pgmaps.map(pool.id).pgs.find((p) => p.pg === cmd.pg)!.joining?.length, 'not retried before the retry delay');
  clock.advance(1500);
  await s.rebuild.tick();
  t.ok(s.pgmaps.map(pool.id).pgs.some((p) => (p.joining ?? []).length > 0), 'retried after it');
});

t.test('drain: PGs move off (replacing the drained member), then the SDS is removed; the leaver is told to drop its copy', async (t) => {
  const { s, control, pool, ids } = setup(t, 8);
  const d = s.topology.registerSds({ name: 'd', protectionDomainName: 'pd', storagePoolName: 'p', address: '127.0.0.1', dataPort: 1, controlPort: 2000, capacityBytes: GiB }).sds.id;
  // With volumes in the pool, a new SDS changes nothing at once: rebalance copies first.
  t.ok(s.pgmaps.map(pool.id).pgs.every((p) => !p.members.includes(d)));
  for (let i = 0; i < 10; i++) { await s.rebuild.tick(); await s.rebuild.tick(); completeAll(s, control, pool.id); }
  t.ok(s.pgmaps.map(pool.id).pgs.some((p) => p.members.includes(d)), 'rebalanced onto the new SDS');
  t.ok(control.released.length > 0, 'members that left were told to drop their copies');
  const victim = ids[0]!;
  t.equal(s.rebuild.drain(victim).draining, true);
  for (let i = 0; i < 10; i++) { await s.rebuild.tick(); await s.rebuild.tick(); completeAll(s, control, pool.id); }
  await s.rebuild.tick();
  t.ok(s.pgmaps.map(pool.id).pgs.every((p) => !p.members.includes(victim) && p.members.length === 2), 'the drained SDS holds nothing');
  t.notOk(s.topology.listSds().some((x) => x.id === victim), 'and is removed');
  t.ok(s.rebuild.history(100).some((j) => j.kind === 'drain' && j.replacesSdsId === victim));
});
