/**
 * MDM outage: with the MDM stopped, IO keeps going on the maps and tokens
 * the clients and SDSs hold; map changes wait. When it is back (same data
 * dir and port) the cluster is whole and rebuild works again.
 */
import t from 'tap';
import { freePort } from '../helpers/proc.js';
import { Router, startSdsProc, waitForMapEpoch } from '../sds/cluster.js';
import { Model, startFastMdm, verifyReads, waitFor, whole, writeChecked } from './cluster.js';

const KiB = 1024;

t.test('IO continues while the MDM is down; rebuild resumes when it is back', async (t) => {
  const port = await freePort();
  let mdm = await startFastMdm(t, {}, port);
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16, chunkBytes: 256 * KiB });
  const sds = await Promise.all(['sds1', 'sds2', 'sds3', 'sds4'].map((n) => startSdsProc(t, mdm, n)));
  await waitForMapEpoch(mdm, pool.id, sds, 60_000);
  const vol = await mdm.admin.createVolume({ name: 'v1', storagePoolId: pool.id, sizeBytes: 64 * 256 * KiB });
  const r = new Router(mdm, pool.id, vol.id, vol.volumeTreeId);
  t.teardown(() => r.close());
  await r.refresh();
  const m = new Model(256 * KiB);
  for (let c = 0; c < 32; c++) await writeChecked(r, m, c, 0, 16 * KiB);
  const epochBefore = (await mdm.admin.getPgMap(pool.id)).epoch;

  await mdm.proc.stop('SIGTERM');
  const until = Date.now() + 6_000; // longer than the DOWN threshold: nobody may be declared DOWN for it
  let writes = 0;
  while (Date.now() < until) {
    await writeChecked(r, m, writes % 40, 4096 * (writes % 11), 8 * KiB);
    writes++;
  }
  t.ok(writes > 0, `${writes} writes acknowledged while the MDM was down`);
  t.same(await verifyReads(r, m), [], 'reads during the outage return what was acknowledged');

  mdm = await startFastMdm(t, {}, port, mdm);
  const map = await mdm.admin.getPgMap(pool.id);
  t.equal(map.epoch, epochBefore, 'no map change happened while the MDM was away');
  t.ok(map.pgs.every((p) => p.members.length === 2), 'every PG whole after the return');

  // Rebuild works again: kill an SDS, PGs heal.
  const victim = sds[1]!;
  await victim.proc.stop('SIGKILL');
  await waitFor(mdm, pool.id, (mp, st) => whole(2)(mp, st) && mp.pgs.every((p) => !p.members.includes(victim.id)), 60_000, 'heal after the MDM returned');
  await r.refresh();
  t.same(await verifyReads(r, m), [], 'data intact after the rebuild');
});
