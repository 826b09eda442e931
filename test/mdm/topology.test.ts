import t from 'tap';
import { call, componentToken, seedPool, testMdm } from './helpers.js';

const GiB = 1024 ** 3;

t.test('protection domains, pools and fault sets: create, unique names, refuse deleting non-empty', async (t) => {
  const m = await testMdm(t);
  const pd = await call(m.app, m.admin, 'POST', '/protection-domains', { name: 'pd1' });
  t.equal(pd.status, 201);
  t.equal((await call(m.app, m.admin, 'POST', '/protection-domains', { name: 'pd1' })).status, 409, 'duplicate PD name');
  const pool = await call(m.app, m.admin, 'POST', '/storage-pools', { protectionDomainId: pd.body.id, name: 'p', replicationFactor: 3 });
  t.equal(pool.status, 201);
  t.match(pool.body, { replicationFactor: 3, chunkBytes: 1024 * 1024, pgCount: 128, defaultProvisioning: 'thin', capacityHighPct: 80, capacityCriticalPct: 90, mapEpoch: 0, pgMapReady: false });
  t.equal((await call(m.app, m.admin, 'POST', '/storage-pools', { protectionDomainId: pd.body.id, name: 'p', replicationFactor: 2 })).status, 409);
  t.equal((await call(m.app, m.admin, 'POST', '/storage-pools', { protectionDomainId: 99, name: 'q', replicationFactor: 2 })).status, 409, 'unknown PD in the body');
  t.equal((await call(m.app, m.admin, 'POST', '/storage-pools', { protectionDomainId: pd.body.id, name: 'q', replicationFactor: 4 })).status, 400);
  t.equal((await call(m.app, m.admin, 'POST', '/storage-pools', { protectionDomainId: pd.body.id, name: 'q', replicationFactor: 2, chunkBytes: 3 * 1024 * 1024 })).status, 400);
  t.equal((await call(m.app, m.admin, 'POST', '/storage-pools', { protectionDomainId: pd.body.id, name: 'q', replicationFactor: 2, capacityHighPct: 95, capacityCriticalPct: 90 })).status, 400);
  const patched = await call(m.app, m.admin, 'PATCH', `/storage-pools/${pool.body.id}`, { capacityHighPct: 70, defaultProvisioning: 'thick' });
  t.match(patched.body, { capacityHighPct: 70, defaultProvisioning: 'thick', name: 'p' });
  const fs = await call(m.app, m.admin, 'POST', '/fault-sets', { protectionDomainId: pd.body.id, name: 'rack1' });
  t.equal(fs.status, 201);
  t.equal((await call(m.app, m.admin, 'POST', '/fault-sets', { protectionDomainId: pd.body.id, name: 'rack1' })).status, 409);
  t.equal((await call(m.app, m.admin, 'DELETE', `/protection-domains/${pd.body.id}`)).status, 409, 'PD with a pool');
  const vol = await call(m.app, m.admin, 'POST', '/volumes', { name: 'v', storagePoolId: pool.body.id, sizeBytes: 4096, provisioning: 'thin' });
  t.equal(vol.status, 201);
  t.equal((await call(m.app, m.admin, 'DELETE', `/storage-pools/${pool.body.id}`)).status, 409, 'pool with a volume');
  t.equal((await call(m.app, m.admin, 'DELETE', `/volumes/${vol.body.id}`)).status, 200);
  t.equal((await call(m.app, m.admin, 'DELETE', `/storage-pools/${pool.body.id}`)).status, 200);
  t.equal((await call(m.app, m.admin, 'DELETE', `/fault-sets/${fs.body.id}`)).status, 200);
  t.equal((await call(m.app, m.admin, 'DELETE', `/protection-domains/${pd.body.id}`)).status, 200);
  t.equal((await call(m.app, m.admin, 'GET', `/protection-domains/${pd.body.id}`)).status, 404);
});

t.test('SDS registration: idempotent by name, recomputes the PG map, removal refused while holding PGs', async (t) => {
  const m = await testMdm(t);
  const { poolId, sdsIds } = await seedPool(m, { rf: 2, pgCount: 32, sds: [GiB] });
  let pool = (await call(m.app, m.admin, 'GET', `/storage-pools/${poolId}`)).body;
  t.equal(pool.pgMapReady, false, 'one SDS cannot hold 2 replicas');
  t.equal(pool.mapEpoch, 0);
  t.equal((await call(m.app, m.admin, 'DELETE', `/sds/${sdsIds[0]}`)).status, 200, 'an SDS holding no PG can go');

  const tok = await componentToken(m, 'sds', 'a');
  const body = { name: 'a', protectionDomainName: 'pd1', storagePoolName: 'pool1', address: '127.0.0.1', dataPort: 9700, capacityBytes: GiB };
  const a = await call(m.app, tok, 'POST', '/sds', body);
  t.equal(a.status, 201);
  const again = await call(m.app, tok, 'POST', '/sds', { ...body, address: '127.0.0.2', dataPort: 9800 });
  t.equal(again.status, 200, 're-registration answers 200');
  t.equal(again.body.id, a.body.id, 'and keeps the id');
  t.match(again.body, { address: '127.0.0.2', dataPort: 9800 });
  t.equal((await call(m.app, tok, 'POST', '/sds', { ...body, storagePoolName: 'nope' })).status, 409, 'unknown pool');
  t.equal((await call(m.app, tok, 'POST', '/sds', { ...body, faultSetName: 'nope' })).status, 409, 'unknown fault set');

  const tokB = await componentToken(m, 'sds', 'b');
  const b = await call(m.app, tokB, 'POST', '/sds', { ...body, name: 'b', dataPort: 9701 });
  t.equal(b.status, 201);
  pool = (await call(m.app, m.admin, 'GET', `/storage-pools/${poolId}`)).body;
  t.equal(pool.pgMapReady, true);
  t.equal(pool.mapEpoch, 1);
  t.equal(pool.capacity.totalBytes, 2 * GiB);
  t.equal(pool.capacity.usableBytes, GiB);
  const del = await call(m.app, m.admin, 'DELETE', `/sds/${b.body.id}`);
  t.equal(del.status, 409, 'an SDS holding PGs is not removed');
  t.match(del.body.error.message, /drain/);

  const tokC = await componentToken(m, 'sds', 'c');
  const c = await call(m.app, tokC, 'POST', '/sds', { ...body, name: 'c', dataPort: 9702 });
  t.equal(c.status, 201);
  const map = (await call(m.app, m.admin, 'GET', `/storage-pools/${poolId}/pg-map`)).body;
  t.equal(map.epoch, 2, 'a join bumps the map epoch');
  t.ok(map.pgs.some((p: { members: number[] }) => p.members.includes(c.body.id)), 'the newcomer got PGs');
  t.ok(map.pgs.every((p: { members: number[]; epoch: number }) => p.epoch === (p.members.includes(c.body.id) ? 2 : 1)), 'only moved PGs carry the new epoch');
  t.equal(map.sds.length, 3);
});

t.test('SDC: register by guid, rename, unregister refused while mapped unless forced; discovery tree', async (t) => {
  const m = await testMdm(t);
  const { poolId, sdsIds } = await seedPool(m, { sds: [GiB, GiB] });
  const tok = await componentToken(m, 'sdc', 'guid-abc');
  const reg = await call(m.app, tok, 'POST', '/sdcs', { guid: 'guid-abc', address: '127.0.0.1' });
  t.equal(reg.status, 201);
  t.equal(reg.body.name, 'sdc-guid-abc');
  const again = await call(m.app, tok, 'POST', '/sdcs', { guid: 'guid-abc' });
  t.equal(again.status, 200);
  t.equal(again.body.id, reg.body.id);
  const renamed = await call(m.app, m.admin, 'PATCH', `/sdcs/${reg.body.id}`, { name: 'host1' });
  t.equal(renamed.body.name, 'host1');
  const tok2 = await componentToken(m, 'sdc', 'guid-def');
  t.equal((await call(m.app, tok2, 'POST', '/sdcs', { guid: 'guid-def', name: 'host1' })).status, 409, 'SDC names are unique');
  const vol = await call(m.app, m.admin, 'POST', '/volumes', { name: 'v1', storagePoolId: poolId, sizeBytes: 1 << 20 });
  t.equal((await call(m.app, m.admin, 'POST', `/volumes/${vol.body.id}/mappings`, { sdcId: reg.body.id })).status, 201);

  const tree = (await call(m.app, m.monitor, 'GET', '/discovery/topology')).body;
  t.equal(tree.protectionDomains.length, 1);
  t.same(tree.protectionDomains[0].storagePools[0].sds.map((s: { id: number }) => s.id), sdsIds);
  t.equal(tree.sdcs[0].name, 'host1');
  t.same(tree.sdcs[0].mappings.map((x: { volumeId: number; accessMode: string }) => [x.volumeId, x.accessMode]), [[vol.body.id, 'readWrite']]);
  t.equal((await call(m.app, m.monitor, 'GET', '/sdcs?guid=guid-abc')).body.length, 1);

  t.equal((await call(m.app, m.admin, 'DELETE', `/sdcs/${reg.body.id}`)).status, 409);
  t.equal((await call(m.app, m.admin, 'DELETE', `/sdcs/${reg.body.id}?force=true`)).status, 200);
  t.same((await call(m.app, m.admin, 'GET', `/volumes/${vol.body.id}`)).body.mappings, [], 'forced unregistration unmapped');
});
