import t from 'tap';
import { build } from '../../src/mdm/app.js';
import { initDataDir } from '../../src/mdm/server.js';
import { call, componentToken, login, seedPool, testMdm, ADMIN_PASSWORD } from './helpers.js';

const GiB = 1024 ** 3;

t.test('every piece of state survives a restart on the same database file', async (t) => {
  const m = await testMdm(t);
  const { poolId, sdsIds } = await seedPool(m, { rf: 2, pgCount: 16, sds: [GiB, GiB, GiB] });
  const sdcTok = await componentToken(m, 'sdc', 'guid-r');
  const sdc = (await call(m.app, sdcTok, 'POST', '/sdcs', { guid: 'guid-r', name: 'host-r' })).body;
  const thick = (await call(m.app, m.admin, 'POST', '/volumes', { name: 'thick', storagePoolId: poolId, sizeBytes: GiB / 2, provisioning: 'thick' })).body;
  const thin = (await call(m.app, m.admin, 'POST', '/volumes', { name: 'thin', storagePoolId: poolId, sizeBytes: 4 * GiB })).body;
  await call(m.app, m.admin, 'POST', `/volumes/${thick.id}/mappings`, { sdcId: sdc.id, accessMode: 'readOnly' });
  const gone = (await call(m.app, m.admin, 'POST', '/volumes', { name: 'gone', storagePoolId: poolId, sizeBytes: GiB })).body;
  await call(m.app, m.admin, 'DELETE', `/volumes/${gone.id}`);
  const map0 = (await call(m.app, m.admin, 'GET', `/storage-pools/${poolId}/pg-map`)).body;
  const pg0 = map0.pgs[0];
  const sdsTok = await componentToken(m, 'sds', 'sds1');
  await call(m.app, sdsTok, 'POST', `/storage-pools/${poolId}/pgs/0/fence`, { sdsId: pg0.members[1], epoch: pg0.epoch });
  await call(m.app, m.admin, 'POST', '/alerts', { severity: 'WARNING', category: 'ops', source: 'test', message: 'kept' });
  await call(m.app, m.admin, 'POST', '/users', { name: 'viewer', password: 'viewer-password', role: 'monitor' });
  m.clock.advance(7000);
  m.app.mdm.services.health.tick();

  const before = {
    tree: (await call(m.app, m.admin, 'GET', '/discovery/topology')).body,
    volumes: (await call(m.app, m.admin, 'GET', '/volumes')).body,
    map: (await call(m.app, m.admin, 'GET', `/storage-pools/${poolId}/pg-map`)).body,
    deletions: (await call(m.app, m.admin, 'GET', '/volume-deletions')).body,
    alerts: (await call(m.app, m.admin, 'GET', '/alerts')).body,
    users: (await call(m.app, m.admin, 'GET', '/users')).body,
    audit: (await call(m.app, m.admin, 'GET', '/audit?limit=1000')).body,
  };
  t.equal(before.map.epoch, 3, 'two joins and a fence');
  t.equal(before.alerts.length, 5, 'a manual alert and four STALE components (3 SDS, 1 SDC)');

  const app = await m.restart();
  const token = await login(app, 'admin', ADMIN_PASSWORD);
  const after = {
    tree: (await call(app, token, 'GET', '/discovery/topology')).body,
    volumes: (await call(app, token, 'GET', '/volumes')).body,
    map: (await call(app, token, 'GET', `/storage-pools/${poolId}/pg-map`)).body,
    deletions: (await call(app, token, 'GET', '/volume-deletions')).body,
    alerts: (await call(app, token, 'GET', '/alerts')).body,
    users: (await call(app, token, 'GET', '/users')).body,
    audit: (await call(app, token, 'GET', '/audit?limit=1000')).body,
  };
  t.same(after.tree, before.tree, 'topology, states and mappings');
  t.same(after.volumes, before.volumes, 'volumes');
  t.same(after.map, before.map, 'PG map and epochs');
  t.same(after.deletions, before.deletions, 'pending deletions');
  t.same(after.alerts, before.alerts, 'alerts');
  t.same(after.users, before.users, 'users');
  t.same(after.audit.slice(-before.audit.length), before.audit, 'audit log');
  t.same(after.volumes.map((v: { name: string }) => v.name), ['thick', 'thin']);
  t.equal(after.volumes[0].mappings[0].accessMode, 'readOnly');
  t.equal(after.volumes[1].id, thin.id);
  t.same(after.tree.protectionDomains[0].storagePools[0].sds.map((s: { id: number }) => s.id), sdsIds);
  // the old tokens still work: the JWT key comes from the cluster key
  t.equal((await call(app, m.monitor, 'GET', '/health')).status, 200);
  // after a restart, components get a fresh grace period instead of being declared DOWN at once
  t.same(app.mdm.services.health.tick(), []);
});

t.test('a second MDM on the same database is refused, and init --force does not pull it from under a running one', async (t) => {
  const m = await testMdm(t);
  await call(m.app, m.admin, 'POST', '/protection-domains', { name: 'kept' });
  await t.rejects(build({ db: m.dbPath, clusterKey: m.clusterKey }), { code: 'PFLEX_ERR_CONFLICT', message: /in use by another MDM/ });
  await t.rejects(initDataDir({ dataDir: m.dir, adminPassword: 'whatever-password', force: true }), { code: 'PFLEX_ERR_CONFLICT' });
  t.same((await call(m.app, m.admin, 'GET', '/protection-domains')).body.map((p: { name: string }) => p.name), ['kept'], 'the running MDM still has its data');
});
