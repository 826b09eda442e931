import t from 'tap';
import { call, componentToken, seedPool, testMdm } from './helpers.js';

const GiB = 1024 ** 3;

t.test('fence: drop a member with a new epoch, promote the next, refuse stale epochs and the last member', async (t) => {
  const m = await testMdm(t);
  const { poolId } = await seedPool(m, { rf: 3, pgCount: 8, sds: [GiB, GiB, GiB] });
  const sds1 = await componentToken(m, 'sds', 'sds1');
  const map = (await call(m.app, sds1, 'GET', `/storage-pools/${poolId}/pg-map`)).body;
  t.equal(map.ready, true);
  t.equal(map.epoch, 1);
  const pg0 = map.pgs[0];
  t.equal(pg0.members.length, 3);
  const [primary, second, third] = pg0.members as [number, number, number];

  const f1 = await call(m.app, sds1, 'POST', `/storage-pools/${poolId}/pgs/0/fence`, { sdsId: primary, epoch: pg0.epoch });
  t.equal(f1.status, 200, JSON.stringify(f1.body));
  t.equal(f1.body.fenced, true);
  t.same(f1.body.pg.members, [second, third], 'the next member is the new primary');
  t.equal(f1.body.pg.epoch, 2);
  t.equal(f1.body.map.epoch, 2);
  t.same(f1.body.map.pgs.find((p: { pg: number }) => p.pg === 0).members, [second, third]);

  const again = await call(m.app, sds1, 'POST', `/storage-pools/${poolId}/pgs/0/fence`, { sdsId: primary, epoch: pg0.epoch });
  t.equal(again.status, 200, 'fencing an already removed member is idempotent');
  t.equal(again.body.fenced, false);

  const stale = await call(m.app, sds1, 'POST', `/storage-pools/${poolId}/pgs/0/fence`, { sdsId: third, epoch: pg0.epoch });
  t.equal(stale.status, 409);
  t.equal(stale.body.error.code, 'PFLEX_ERR_STALE_EPOCH');
  t.equal(stale.body.error.details.epoch, 2);

  const f2 = await call(m.app, sds1, 'POST', `/storage-pools/${poolId}/pgs/0/fence`, { sdsId: third, epoch: 2 });
  t.same(f2.body.pg.members, [second]);
  const last = await call(m.app, sds1, 'POST', `/storage-pools/${poolId}/pgs/0/fence`, { sdsId: second, epoch: 3 });
  t.equal(last.status, 409, 'the last member is never dropped');
  t.equal(last.body.error.code, 'PFLEX_ERR_CONFLICT');

  const changes = (await call(m.app, sds1, 'GET', `/storage-pools/${poolId}/pg-map?sinceEpoch=1`)).body;
  t.same(changes.pgs.map((p: { pg: number }) => p.pg), [0], 'changes since epoch 1: only PG 0');
  t.equal(changes.epoch, 3);
  t.equal((await call(m.app, sds1, 'GET', `/storage-pools/${poolId}/pg-map?sinceEpoch=3`)).body.pgs.length, 0);
  const pool = (await call(m.app, m.monitor, 'GET', `/storage-pools/${poolId}`)).body;
  t.equal(pool.degradedPgs, 1);
  const health = (await call(m.app, m.monitor, 'GET', '/health')).body;
  t.equal(health.status, 'DEGRADED');

  t.equal((await call(m.app, sds1, 'POST', `/storage-pools/${poolId}/pgs/8/fence`, { sdsId: second, epoch: 1 })).status, 404, 'PG out of range');
  t.equal((await call(m.app, sds1, 'POST', `/storage-pools/99/pgs/0/fence`, { sdsId: second, epoch: 1 })).status, 404);
  t.equal((await call(m.app, m.monitor, 'POST', `/storage-pools/${poolId}/pgs/1/fence`, { sdsId: second, epoch: 1 })).status, 403);
});

t.test('fault sets are honoured and a pool without enough of them has no map', async (t) => {
  const m = await testMdm(t);
  const { poolId, sdsIds } = await seedPool(m, { rf: 2, pgCount: 16, sds: [GiB, GiB, GiB], faultSets: true });
  const map = (await call(m.app, m.admin, 'GET', `/storage-pools/${poolId}/pg-map`)).body;
  t.equal(map.ready, true);
  const fsOf = new Map<number, number>();
  for (const s of (await call(m.app, m.admin, 'GET', `/sds?storagePoolId=${poolId}`)).body) fsOf.set(s.id, s.faultSetId);
  t.equal(fsOf.size, sdsIds.length);
  for (const pg of map.pgs) t.equal(new Set(pg.members.map((id: number) => fsOf.get(id))).size, pg.members.length, `PG ${pg.pg} spans fault sets`);
});

t.test('a failing placement leaves the map as it was', async (t) => {
  const m = await testMdm(t);
  const { poolId } = await seedPool(m, { rf: 3, pgCount: 4, sds: [GiB, GiB] });
  const pool = (await call(m.app, m.admin, 'GET', `/storage-pools/${poolId}`)).body;
  t.equal(pool.pgMapReady, false);
  t.equal(pool.mapEpoch, 0);
  t.same((await call(m.app, m.admin, 'GET', `/storage-pools/${poolId}/pg-map`)).body.pgs, []);
  const fence = await call(m.app, m.admin, 'POST', `/storage-pools/${poolId}/pgs/0/fence`, { sdsId: 1, epoch: 0 });
  t.equal(fence.status, 409, 'no map to fence in yet');
});
