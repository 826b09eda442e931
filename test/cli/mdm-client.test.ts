import t from 'tap';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readClusterKey } from '../../src/shared/component-auth.js';
import { MdmClient, componentAuth, errorFromResponse, type ComponentAuth, type Sds } from '../../src/shared/mdm-client.js';
import { verifyIoToken } from '../../src/shared/iotoken.js';
import { deriveKey } from '../../src/shared/keys.js';
import { freePort } from '../helpers/proc.js';
import { ADMIN_PASSWORD, startMdm } from './helpers.js';

t.test('error answers become PflexErrors with the server code', async (t) => {
  const e = errorFromResponse(409, { error: { code: 'PFLEX_ERR_STALE_EPOCH', message: 'old', details: { epoch: 7 } } });
  t.match(e, { code: 'PFLEX_ERR_STALE_EPOCH', message: 'old', details: { status: 409, epoch: 7 } });
  t.match(errorFromResponse(404, 'not json'), { code: 'PFLEX_ERR_NOT_FOUND', message: /HTTP 404/ }, 'falls back to the status');
  t.match(errorFromResponse(418, { error: { code: 'NOT_OURS', message: 'x' } }), { code: 'PFLEX_ERR_BAD_REQUEST' }, 'unknown codes are not trusted: the status decides (another 4xx is a bad request)');
  t.match(errorFromResponse(502, 'bad gateway'), { code: 'PFLEX_ERR_UNAVAILABLE' }, 'a gateway error means unavailable');
});

t.test('an unreachable MDM is PFLEX_ERR_UNAVAILABLE', async (t) => {
  const c = new MdmClient({ url: `http://127.0.0.1:${await freePort()}` });
  await t.rejects(c.listPds(), { code: 'PFLEX_ERR_UNAVAILABLE', message: /cannot reach the MDM/ });
});

t.test('against a running MDM', async (t) => {
  const mdm = await startMdm(t);
  const key = readClusterKey(join(mdm.dataDir, 'cluster.key'));
  const admin = new MdmClient({ url: mdm.url });
  await t.rejects(admin.listPds(), { code: 'PFLEX_ERR_UNAUTHENTICATED' }, 'no token yet');
  await admin.login('admin', ADMIN_PASSWORD);
  const pd = await admin.createPd('pd1');
  const pool = await admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 32 });

  await t.test('a component logs in with the cluster key, and again when its token is refused', async (t) => {
    let logins = 0;
    const base = componentAuth('sdc', 'sdc-guid-1', key);
    const counted: ComponentAuth = (c) => {
      logins++;
      return base(c);
    };
    const sdc = new MdmClient({ url: mdm.url, componentAuth: counted });
    const me = await sdc.registerSdc({ guid: 'sdc-guid-1' });
    t.equal(logins, 1, 'logged in on first use');
    await Promise.all(Array.from({ length: 8 }, () => sdc.sdcHeartbeat(me.id)));
    t.equal(logins, 1, 'token reused');
    sdc.setToken('garbage');
    const beats = await Promise.all(Array.from({ length: 4 }, () => sdc.sdcHeartbeat(me.id)));
    t.match(beats[0], { state: 'ACTIVE' });
    t.ok(logins >= 2 && logins <= 5, `re-logged in after the 401 (${logins} logins)`);

    const impostor = new MdmClient({ url: mdm.url, componentAuth: componentAuth('sdc', 'sdc-guid-1', randomBytes(32)) });
    await t.rejects(impostor.sdcHeartbeat(me.id), { code: 'PFLEX_ERR_UNAUTHENTICATED', message: /bad component proof/ });
    const other = new MdmClient({ url: mdm.url, componentAuth: componentAuth('sdc', 'sdc-guid-2', key) });
    await t.rejects(other.sdcHeartbeat(me.id), { code: 'PFLEX_ERR_FORBIDDEN' }, 'a component acts only as itself');
  });

  await t.test('SDS registration, heartbeat, PG map (whole and since an epoch), fencing', async (t) => {
    const sdsClients = ['sds-a', 'sds-b', 'sds-c'].map((name) => ({ name, client: new MdmClient({ url: mdm.url, componentAuth: componentAuth('sds', name, key) }) }));
    const registered: Sds[] = [];
    for (const [i, { name, client }] of sdsClients.entries()) {
      const sds = await client.registerSds({
        name, protectionDomainName: 'pd1', storagePoolName: 'pool1', address: '127.0.0.1', dataPort: 9700 + i, capacityBytes: 64 * 2 ** 30,
      });
      t.match(await client.sdsHeartbeat(sds.id, { usedBytes: 0 }), { state: 'ACTIVE' });
      registered.push(sds);
    }
    const again = await sdsClients[0]!.client.registerSds({
      name: 'sds-a', protectionDomainName: 'pd1', storagePoolName: 'pool1', address: '127.0.0.1', dataPort: 9700, capacityBytes: 64 * 2 ** 30,
    });
    t.equal(again.id, registered[0]!.id, 'registration is idempotent');

    const sdsA = sdsClients[0]!.client;
    const map = await sdsA.getPgMap(pool.id);
    t.equal(map.ready, true);
    t.equal(map.pgs.length, 32);
    t.equal(map.sds.length, 3);
    const pg = map.pgs.find((p) => p.members[1] === registered[1]!.id) ?? map.pgs[0]!;
    const victim = pg.members[1]!;
    const fenced = await sdsA.fencePgMember(pool.id, pg.pg, victim, pg.epoch);
    t.equal(fenced.fenced, true);
    t.notOk(fenced.pg.members.includes(victim), 'member dropped');
    t.ok(fenced.map.epoch > map.epoch, 'epoch bumped');
    const delta = await sdsA.getPgMap(pool.id, map.epoch);
    t.same(delta.pgs.map((p) => p.pg), [pg.pg], 'only the changed PG since the old epoch');
  });

  await t.test('IO tokens for a mapped volume verify with the derived key', async (t) => {
    const sdc = new MdmClient({ url: mdm.url, componentAuth: componentAuth('sdc', 'sdc-guid-3', key) });
    const me = await sdc.registerSdc({ guid: 'sdc-guid-3', name: 'three' });
    const vol = await admin.createVolume({ name: 'v1', storagePoolId: pool.id, sizeBytes: 2 ** 30 });
    await t.rejects(sdc.issueIoToken(me.id, vol.id), { code: 'PFLEX_ERR_FORBIDDEN' }, 'not mapped yet');
    await admin.mapVolume(vol.id, me.id, { accessMode: 'readOnly' });
    const grant = await sdc.issueIoToken(me.id, vol.id);
    const cap = verifyIoToken(deriveKey(key, 'io-token'), grant.bytes, { volumeId: vol.id, write: false, nowMs: Date.now() });
    t.match(cap, { sdcId: me.id, volumeId: vol.id, rights: 'ro' });
    t.throws(() => verifyIoToken(deriveKey(key, 'io-token'), grant.bytes, { volumeId: vol.id, write: true, nowMs: Date.now() }), { code: 'PFLEX_ERR_TOKEN_SCOPE' });
  });
});
