import t from 'tap';
import { call, seedPool, testMdm } from './helpers.js';

t.test('login, create topology and a volume, read them back', async (t) => {
  const m = await testMdm(t);
  const { poolId, sdsIds } = await seedPool(m, { sds: [1 << 30, 1 << 30, 1 << 30] });
  t.equal(sdsIds.length, 3);
  const v = await call(m.app, m.admin, 'POST', '/volumes', { name: 'vol1', storagePoolId: poolId, sizeBytes: 1 << 20 });
  t.equal(v.status, 201, JSON.stringify(v.body));
  t.equal(v.body.provisioning, 'thin');
  t.ok(v.body.volumeTreeId > 0);
  const list = await call(m.app, m.monitor, 'GET', '/volumes');
  t.same(list.body.map((x: { name: string }) => x.name), ['vol1']);
  const map = await call(m.app, m.monitor, 'GET', `/storage-pools/${poolId}/pg-map`);
  t.equal(map.status, 200);
  t.equal(map.body.ready, true);
  t.equal(map.body.pgs.length, 16);
  for (const pg of map.body.pgs) t.equal(new Set(pg.members).size, 2);
});
