import t from 'tap';
import { deriveKey } from '../../src/shared/keys.js';
import { verifyIoToken } from '../../src/shared/iotoken.js';
import { call, componentToken, seedPool, testMdm, type TestMdm } from './helpers.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

async function sdc(m: TestMdm, guid: string): Promise<{ id: number; token: string }> {
  const token = await componentToken(m, 'sdc', guid);
  const r = await call(m.app, token, 'POST', '/sdcs', { guid });
  return { id: r.body.id, token };
}

t.test('thick volumes reserve capacity and are refused cleanly when the pool cannot hold them', async (t) => {
  const m = await testMdm(t);
  // 3 x 1 GiB raw, RF 2 -> 1.5 GiB usable
  const { poolId } = await seedPool(m, { sds: [GiB, GiB, GiB] });
  const thick = await call(m.app, m.admin, 'POST', '/volumes', { name: 'thick1', storagePoolId: poolId, sizeBytes: GiB, provisioning: 'thick' });
  t.equal(thick.status, 201);
  t.equal(thick.body.reservedBytes, GiB);
  const tooBig = await call(m.app, m.admin, 'POST', '/volumes', { name: 'thick2', storagePoolId: poolId, sizeBytes: GiB, provisioning: 'thick' });
  t.equal(tooBig.status, 409);
  t.equal(tooBig.body.error.code, 'PFLEX_ERR_CAPACITY');
  t.equal((await call(m.app, m.admin, 'GET', '/volumes?name=thick2')).body.length, 0, 'nothing was created');
  const thin = await call(m.app, m.admin, 'POST', '/volumes', { name: 'thin1', storagePoolId: poolId, sizeBytes: 10 * GiB });
  t.equal(thin.status, 201, 'thin volumes reserve nothing and may over-provision');
  t.equal(thin.body.reservedBytes, 0);
  const pool = (await call(m.app, m.admin, 'GET', `/storage-pools/${poolId}`)).body;
  t.same(pool.capacity, {
    totalBytes: 3 * GiB, usableBytes: 1.5 * GiB, reservedBytes: GiB, usedBytes: 0, provisionedBytes: 11 * GiB,
    overProvisioningRatio: 11 / 1.5, utilizationPct: 0,
  });
  const grow = await call(m.app, m.admin, 'POST', `/volumes/${thick.body.id}/resize`, { sizeBytes: 2 * GiB });
  t.equal(grow.status, 409, 'expanding a thick volume checks the reservation');
  const grow2 = await call(m.app, m.admin, 'POST', `/volumes/${thick.body.id}/resize`, { sizeBytes: GiB + 256 * MiB });
  t.equal(grow2.status, 200);
  t.equal(grow2.body.reservedBytes, GiB + 256 * MiB);
});

t.test('create, rename, expand, shrink (forced, unmapped), delete with tracked data removal', async (t) => {
  const m = await testMdm(t);
  const { poolId } = await seedPool(m, { sds: [GiB, GiB] });
  const v = await call(m.app, m.admin, 'POST', '/volumes', { name: 'v1', storagePoolId: poolId, sizeBytes: 8 * MiB });
  t.match(v.body, { name: 'v1', sizeBytes: 8 * MiB, provisioning: 'thin', layout: { chunkBytes: MiB, pgCount: 16, replicationFactor: 2 } });
  t.equal((await call(m.app, m.admin, 'POST', '/volumes', { name: 'v1', storagePoolId: poolId, sizeBytes: MiB })).status, 409, 'duplicate name');
  t.equal((await call(m.app, m.admin, 'POST', '/volumes', { name: 'v2', storagePoolId: 42, sizeBytes: MiB })).status, 409, 'unknown pool');
  t.equal((await call(m.app, m.admin, 'POST', '/volumes', { name: 'v2', storagePoolId: poolId, sizeBytes: 1000 })).status, 400, 'unaligned size');
  t.equal((await call(m.app, m.admin, 'POST', '/volumes', { name: 'v2', storagePoolId: poolId, sizeBytes: 0 })).status, 400);
  const v2 = await call(m.app, m.admin, 'POST', '/volumes', { name: 'v2', storagePoolId: poolId, sizeBytes: MiB });
  t.not(v2.body.volumeTreeId, v.body.volumeTreeId, 'each volume has its own tree');
  t.equal((await call(m.app, m.admin, 'PATCH', `/volumes/${v.body.id}`, { name: 'v2' })).status, 409);
  t.equal((await call(m.app, m.admin, 'PATCH', `/volumes/${v.body.id}`, { name: 'data' })).body.name, 'data');
  t.equal((await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/resize`, { sizeBytes: 16 * MiB })).body.sizeBytes, 16 * MiB);
  const shrink = await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/resize`, { sizeBytes: 4 * MiB });
  t.equal(shrink.status, 409, 'shrink needs force');
  const host = await sdc(m, 'g1');
  await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/mappings`, { sdcId: host.id });
  t.equal((await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/resize`, { sizeBytes: 4 * MiB, force: true })).status, 409, 'mapped volumes do not shrink');
  t.equal((await call(m.app, m.admin, 'DELETE', `/volumes/${v.body.id}`)).status, 409, 'mapped volumes are not deleted without force');
  t.equal((await call(m.app, m.admin, 'DELETE', `/volumes/${v.body.id}/mappings/${host.id}`)).status, 200);
  t.equal((await call(m.app, m.admin, 'DELETE', `/volumes/${v.body.id}/mappings/${host.id}`)).status, 404, 'not mapped any more');
  t.equal((await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/resize`, { sizeBytes: 4 * MiB, force: true })).body.sizeBytes, 4 * MiB);
  await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/mappings`, { sdcId: host.id });
  const del = await call(m.app, m.admin, 'DELETE', `/volumes/${v.body.id}?force=true`);
  t.equal(del.status, 200);
  t.match(del.body, { volumeId: v.body.id, volumeName: 'data', volumeTreeId: v.body.volumeTreeId, state: 'pending', doneAtMs: null });
  t.equal((await call(m.app, m.admin, 'GET', `/volumes/${v.body.id}`)).status, 404);
  t.same((await call(m.app, m.admin, 'GET', `/sdcs/${host.id}`)).body.mappings, []);
  // These SDSs have no control listener: the chunks cannot be reclaimed, the deletion stays pending (test/lifecycle covers reclaim).
  await m.app.mdm.services.reclaim.tick();
  const pending = await call(m.app, host.token, 'GET', '/volume-deletions?state=pending');
  t.match(pending.body, [{ id: del.body.id, sdsConfirmed: 0, sdsTotal: 2, chunksFreed: 0 }]);
  t.equal((await call(m.app, host.token, 'POST', `/volume-deletions/${del.body.id}/done`)).status, 404, 'no component marks a deletion done: only the SDSs\' confirmations do');
});

t.test('mapping: access modes, multi-map only with the allow flag, unknown SDC', async (t) => {
  const m = await testMdm(t);
  const { poolId } = await seedPool(m, { sds: [GiB, GiB] });
  const v = await call(m.app, m.admin, 'POST', '/volumes', { name: 'shared', storagePoolId: poolId, sizeBytes: MiB });
  const a = await sdc(m, 'ga');
  const b = await sdc(m, 'gb');
  t.equal((await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/mappings`, { sdcId: 77 })).status, 409, 'unknown SDC');
  const mapped = await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/mappings`, { sdcId: a.id, accessMode: 'readOnly' });
  t.equal(mapped.status, 201);
  t.same(mapped.body.mappings.map((x: { sdcId: number; accessMode: string }) => [x.sdcId, x.accessMode]), [[a.id, 'readOnly']]);
  t.equal((await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/mappings`, { sdcId: a.id })).status, 409, 'already mapped');
  const refused = await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/mappings`, { sdcId: b.id });
  t.equal(refused.status, 409, 'a second SDC needs allowMultiMap');
  t.match(refused.body.error.message, /allowMultiMap/);
  const multi = await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/mappings`, { sdcId: b.id, allowMultiMap: true });
  t.equal(multi.status, 201);
  t.equal(multi.body.mappings.length, 2);
  t.equal((await call(m.app, m.admin, 'PATCH', `/volumes/${v.body.id}/mappings/${a.id}`, { accessMode: 'readWrite' })).body.mappings[0].accessMode, 'readWrite');
  t.equal((await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/mappings`, { sdcId: b.id, accessMode: 'rw' })).status, 400);
});

t.test('IO tokens: only for mapped volumes, with the mapping\'s rights and the configured expiry', async (t) => {
  const m = await testMdm(t, { config: { ioTokenTtlMs: 60_000 } });
  const { poolId } = await seedPool(m, { sds: [GiB, GiB] });
  const v = await call(m.app, m.admin, 'POST', '/volumes', { name: 'v', storagePoolId: poolId, sizeBytes: MiB });
  const host = await sdc(m, 'host-guid');
  const refused = await call(m.app, host.token, 'POST', `/sdcs/${host.id}/tokens`, { volumeId: v.body.id });
  t.equal(refused.status, 403, 'no token for an unmapped volume');
  await call(m.app, m.admin, 'POST', `/volumes/${v.body.id}/mappings`, { sdcId: host.id, accessMode: 'readOnly' });
  const ro = await call(m.app, host.token, 'POST', `/sdcs/${host.id}/tokens`, { volumeId: v.body.id });
  t.equal(ro.status, 200);
  t.match(ro.body, { sdcId: host.id, volumeId: v.body.id, rights: 'ro', expiresAtMs: m.clock.now() + 60_000 });
  const key = deriveKey(m.clusterKey, 'io-token');
  const raw = Buffer.from(ro.body.token, 'base64url');
  const cap = verifyIoToken(key, raw, { volumeId: v.body.id, write: false, nowMs: m.clock.now() });
  t.equal(cap.rights, 'ro');
  t.throws(() => verifyIoToken(key, raw, { volumeId: v.body.id, write: true, nowMs: m.clock.now() }), 'ro token refuses writes');
  t.throws(() => verifyIoToken(key, raw, { volumeId: v.body.id, write: false, nowMs: m.clock.now() + 61_000 }), 'expired');
  await call(m.app, m.admin, 'PATCH', `/volumes/${v.body.id}/mappings/${host.id}`, { accessMode: 'readWrite' });
  const rw = await call(m.app, host.token, 'POST', `/sdcs/${host.id}/tokens`, { volumeId: v.body.id });
  t.equal(rw.body.rights, 'rw');
  t.ok(verifyIoToken(key, Buffer.from(rw.body.token, 'base64url'), { volumeId: v.body.id, write: true, nowMs: m.clock.now() }));
  await call(m.app, m.admin, 'DELETE', `/volumes/${v.body.id}/mappings/${host.id}`);
  t.equal((await call(m.app, host.token, 'POST', `/sdcs/${host.id}/tokens`, { volumeId: v.body.id })).status, 403, 'unmapping stops renewal');
  t.equal((await call(m.app, host.token, 'POST', `/sdcs/999/tokens`, { volumeId: v.body.id })).status, 404);
});

t.test('reclaim with snapshots: the tree stays while a snapshot or clone uses it; no shrink under snapshots; ids never reused', async (t) => {
  const m = await testMdm(t);
  const { poolId } = await seedPool(m, { sds: [GiB, GiB] });
  const v = (await call(m.app, m.admin, 'POST', '/volumes', { name: 'base', storagePoolId: poolId, sizeBytes: 8 * MiB })).body;
  const s = await call(m.app, m.admin, 'POST', '/snapshots', { volumeId: v.id, name: 'base.s1' });
  t.equal(s.status, 201);
  const clone = (await call(m.app, m.admin, 'POST', `/snapshots/${s.body.id}/clone`, { name: 'base.c1' })).body;
  const shrink = await call(m.app, m.admin, 'POST', `/volumes/${v.id}/resize`, { sizeBytes: 4 * MiB, force: true });
  t.equal(shrink.status, 409, 'no shrink while snapshots or clones share the tree');
  t.match(shrink.body.error.message, /2 snapshots or clones/);

  const head = (await call(m.app, m.admin, 'GET', `/volumes/${v.id}`)).body.layerId;
  const del = await call(m.app, m.admin, 'DELETE', `/volumes/${v.id}`);
  t.same(del.body, { volumeId: v.id, volumeName: 'base', freedLayers: [head] }, 'only the volume\'s own layer is freed');
  t.same((await call(m.app, m.admin, 'GET', '/volume-deletions')).body, [], 'no tree deletion while a snapshot and a clone use it');
  const layers = (await call(m.app, m.admin, 'GET', `/layer-deletions?volumeTreeId=${v.volumeTreeId}`)).body;
  t.match(layers, [{ volumeTreeId: v.volumeTreeId, layerId: head, state: 'pending', sdsConfirmed: 0, sdsTotal: 2 }], 'the freed layer waits for the SDSs');
  // These SDSs have no control listener: nothing is confirmed, nothing is marked done.
  await m.app.mdm.services.reclaim.tick();
  t.match((await call(m.app, m.admin, 'GET', '/layer-deletions?state=pending')).body, [{ layerId: head }]);

  t.same((await call(m.app, m.admin, 'DELETE', `/volumes/${s.body.id}`)).body.freedLayers, [], 'the clone still needs the snapshot\'s layer');
  const last = await call(m.app, m.admin, 'DELETE', `/volumes/${clone.id}`);
  t.match(last.body, { volumeTreeId: v.volumeTreeId, state: 'pending' }, 'the last row of the tree deletes the tree');
  const again = (await call(m.app, m.admin, 'POST', '/volumes', { name: 'next', storagePoolId: poolId, sizeBytes: MiB })).body;
  t.ok(again.id > clone.id, `a new volume (${again.id}) never gets the id of a deleted volume, snapshot or clone (${v.id}, ${s.body.id}, ${clone.id})`);

  // A pending trim of a tree blocks growing any volume of it (a clone of a later snapshot too).
  const w = (await call(m.app, m.admin, 'POST', '/volumes', { name: 'w', storagePoolId: poolId, sizeBytes: 8 * MiB })).body;
  t.equal((await call(m.app, m.admin, 'POST', `/volumes/${w.id}/resize`, { sizeBytes: 4 * MiB, force: true })).status, 200);
  const ws = (await call(m.app, m.admin, 'POST', '/snapshots', { volumeId: w.id, name: 'w.s1' })).body;
  const wc = (await call(m.app, m.admin, 'POST', `/snapshots/${ws.id}/clone`, { name: 'w.c1' })).body;
  const grow = await call(m.app, m.admin, 'POST', `/volumes/${wc.id}/resize`, { sizeBytes: 8 * MiB });
  t.equal(grow.status, 409, 'the clone does not grow over the tail still being trimmed');
});
