/**
 * An SDS a peer reported silent (fenced out of a PG) stays ACTIVE at the MDM
 * until downAfterMs without a beat; rebuild must not pick it as the PG's
 * joining member meanwhile (the copy would start with calls to a silent SDS
 * under the primary's PG lock, and the PG's client IO would wait behind
 * them). Its next heartbeat makes it a candidate again. MDM services on a
 * real SQLite file with a fake SDS control, no processes.
 */
import { join } from 'node:path';
import t from 'tap';
import { resolveConfig } from '../../src/mdm/config.js';
import { openDb } from '../../src/mdm/db.js';
import { computePlacement } from '../../src/mdm/placement.js';
import { createServices } from '../../src/mdm/services/index.js';
import type { SdsControl } from '../../src/mdm/services/rebuild-control.js';
import type { SdsRebuildStatus, StartRebuild } from '../../src/dataplane/rebuild-proto.js';
import { generateClusterKey } from '../../src/shared/component-auth.js';
import { tempDir } from '../helpers/proc.js';
import { FakeClock } from '../mdm/helpers.js';

class RecordingControl implements SdsControl {
  started: StartRebuild[] = [];
  async startRebuild(_p: unknown, cmd: StartRebuild): Promise<void> { this.started.push(cmd); }
  async listRebuilds(): Promise<SdsRebuildStatus[]> { return []; }
  async releasePg(): Promise<void> {}
}

t.test('a member fenced as silent is not a rebuild target until it beats again', async (t) => {
  const db = openDb(join(tempDir(t), 'mdm.db'));
  t.teardown(() => db.close());
  const clock = new FakeClock();
  const control = new RecordingControl();
  const s = createServices({
    db, clusterKey: generateClusterKey(), config: resolveConfig({ rebuildRetryDelayMs: 1000 }), clock: clock.now,
    place: computePlacement, sign: (claims) => JSON.stringify(claims), sdsControl: control,
  });
  const pd = s.topology.createPd('pd');
  // Two SDSs at RF 2: a PG that lost one can only be rebuilt onto the one it lost.
  const pool = s.topology.createPool({ protectionDomainId: pd.id, name: 'p', replicationFactor: 2, pgCount: 4 });
  const [a, b] = ['a', 'b'].map((name, i) => s.topology.registerSds({
    name, protectionDomainName: 'pd', storagePoolName: 'p', address: '127.0.0.1', dataPort: 1, controlPort: 1000 + i, capacityBytes: 1 << 30,
  }).sds.id) as [number, number];
  s.volumes.create({ name: 'v', storagePoolId: pool.id, sizeBytes: 1 << 20 });
  clock.advance(100);
  s.health.sdsHeartbeat(a, { usedBytes: 0 });
  s.health.sdsHeartbeat(b, { usedBytes: 0 });

  const entry = s.pgmaps.map(pool.id).pgs.find((p) => p.members[0] === b)!;
  clock.advance(100);
  t.equal(s.pgmaps.fence(pool.id, entry.pg, b, entry.epoch).fenced, true, 'the SDC reported b silent: fenced');
  clock.advance(1500);
  s.health.sdsHeartbeat(a, { usedBytes: 0 });
  s.health.tick();
  t.equal(s.topology.getSds(b)?.state, 'ACTIVE', 'b is still ACTIVE at the MDM (not DOWN yet)');
  await s.rebuild.tick();
  await s.rebuild.tick();
  let now = s.pgmaps.map(pool.id).pgs.find((p) => p.pg === entry.pg)!;
  t.same(now.members, [a], 'the PG stays degraded on a');
  t.same(now.joining ?? [], [], 'b is not planned as its joining member while silent');
  t.equal(control.started.length, 0, 'no copy was started towards b');

  clock.advance(500);
  s.health.sdsHeartbeat(b, { usedBytes: 0 });
  clock.advance(1500); // past the re-plan delay
  await s.rebuild.tick();
  now = s.pgmaps.map(pool.id).pgs.find((p) => p.pg === entry.pg)!;
  t.same(now.joining, [b], 'after a heartbeat b is planned back as the joining member');
});
