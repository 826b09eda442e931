/**
 * Reclaim with real processes (MDM, three SDS, SDC) and a real NBD client:
 *
 *   - shrink: data written past the new end is removed from the SDSs (the
 *     cut chunk zeroed from the new end), so after an expand it reads zeros;
 *   - delete: the bytes on disk of the SDS storage roots return to their
 *     baseline, although one SDS was stopped when the volume was deleted and
 *     the MDM restarted while the deletion was pending.
 */
import t from 'tap';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { VolumeDeletion } from '../../src/shared/mdm-client.js';
import { missingClients } from '../helpers/nbd.js';
import { io, until } from './helpers.js';
import { startMdm } from '../helpers/mdm.js';
import { chunksOn, startCluster } from '../sdc/cluster.js';
import { startSdsProc, type SdsProc } from '../sds/cluster.js';

const skip = missingClients('qemu-io');
const MiB = 1024 * 1024;
const MDM_CONFIG = { reclaimTickMs: 200 };



/** Allocated bytes (st_blocks) of every file under an SDS's storage root. */
function bytesOnDisk(s: SdsProc): number {
  let total = 0;
  const walk = (dir: string): void => {
    // An SDS may remove a PG directory while we walk (a PG it dropped): vanished entries count nothing.
    let names: string[] = [];
    try { names = readdirSync(dir); } catch { return; }
    for (const name of names) {
      const st = statSync(join(dir, name), { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(join(dir, name));
      else total += st.blocks * 512;
    }
  };
  const root = join(s.dir, 'chunks');
  if (existsSync(root)) walk(root);
  return total;
}


t.test('reclaim of shrunk and deleted volumes on real SDSs', { skip }, async (t) => {
  const c = await startCluster(t, { mdmConfig: MDM_CONFIG, pgCount: 16 });
  const baseline = c.sds.map(bytesOnDisk);
  let firstVolumeId = 0;

  await t.test('shrink removes the data past the new end: an expand reads zeros there', async (t) => {
    const v = await c.volume('shrinkme', 8 * MiB);
    firstVolumeId = v.id;
    await io(t, c.sdc.uri('shrinkme'), 'write 8 MiB', 'write -P 0x5a 0 8M');
    t.ok(c.sds.some((s) => chunksOn(s, v.volumeTreeId).has(7)), 'the last chunk is on the SDSs');
    await c.mdm.admin.unmapVolume(v.id, c.sdc.id);
    await t.rejects(c.mdm.admin.resizeVolume(v.id, 2 * MiB + 512 * 1024), { code: 'PFLEX_ERR_CONFLICT' }, 'shrinking needs force');
    await c.mdm.admin.resizeVolume(v.id, 2 * MiB + 512 * 1024, true);
    const trim = await until('the trim is done', async () => {
      const [tr] = await c.mdm.admin.listVolumeTrims({ volumeId: v.id });
      return tr?.state === 'done' ? tr : undefined;
    });
    t.match(trim, { fromBytes: 2 * MiB + 512 * 1024, sdsConfirmed: 3, sdsTotal: 3, lastError: null });
    t.equal(trim.chunksFreed, 2 * 6, 'five whole chunks and the cut one, in two copies');
    for (const s of c.sds) t.same([...chunksOn(s, v.volumeTreeId).keys()].filter((i) => i > 2), [], `${s.name} keeps no chunk past the new end`);
    await c.mdm.admin.resizeVolume(v.id, 8 * MiB);
    await c.mdm.admin.mapVolume(v.id, c.sdc.id);
    await io(t, c.sdc.uri('shrinkme'), 'old data before the cut, zeros after it',
      'read -P 0x5a 0 2560k', 'read -P 0 2560k 5632k');
    await c.mdm.admin.unmapVolume(v.id, c.sdc.id);
    await c.mdm.admin.deleteVolume(v.id);
  });

  await t.test('delete: bytes on disk return to the baseline, across a stopped SDS and an MDM restart', async (t) => {
    const v = await c.volume('deleteme', 16 * MiB);
    t.ok(v.id > firstVolumeId, 'a new volume never gets the id of a deleted one (SDSs cache volume -> tree)');
    await io(t, c.sdc.uri('deleteme'), 'write 16 MiB', 'write -P 0xc3 0 16M');
    const written = c.sds.map(bytesOnDisk).reduce((a, b) => a + b, 0) - baseline.reduce((a, b) => a + b, 0);
    t.ok(written >= 2 * 16 * MiB, `two copies of 16 MiB are on disk (${written} bytes more than the baseline)`);

    // sds3 stops; the volume is deleted meanwhile: sds1 and sds2 confirm, sds3 cannot.
    const [sds1, sds2, sds3] = c.sds as [SdsProc, SdsProc, SdsProc];
    await sds3.proc.stop();
    await c.mdm.admin.deleteVolume(v.id, true);
    const partial = await until('sds1 and sds2 reclaimed', async () => {
      const d = (await c.mdm.admin.listVolumeDeletions()).find((x) => x.volumeId === v.id);
      return d && d.sdsConfirmed >= 2 ? d : undefined;
    });
    t.match(partial, { state: 'pending', sdsConfirmed: 2, sdsTotal: 3 }, 'pending while sds3 is away');

    // The MDM restarts on its port with the deletion pending.
    await c.mdm.proc.stop();
    const mdm = await startMdm(t, { reuse: c.mdm, port: Number(new URL(c.mdm.url).port) });
    t.match((await mdm.admin.listVolumeDeletions({ state: 'pending' })).find((x) => x.volumeId === v.id), { sdsConfirmed: 2 }, 'progress survived the restart');

    // sds3 returns on its old storage root; the deletion completes.
    const back = await startSdsProc(t, mdm, 'sds3', 'pool1', 'pd1', sds3.dir);
    const done = await until('the deletion is done', async () => {
      const d = (await mdm.admin.listVolumeDeletions()).find((x): x is VolumeDeletion => x.volumeId === v.id);
      return d?.state === 'done' ? d : undefined;
    });
    t.match(done, { sdsConfirmed: 3, sdsTotal: 3, lastError: null });
    // sds3 may have been evicted while away and dropped its PGs itself before its reclaim call: at least one copy counted.
    t.ok(done.bytesFreed >= 16 * MiB, `the SDSs freed ${done.bytesFreed} bytes`);
    // Metadata allowance: dead-trees.json is outside the chunks root; empty PG directories are not counted.
    const allowance = 64 * 1024;
    for (const [i, s] of [sds1, sds2, back].entries()) {
      const now = bytesOnDisk(s);
      t.ok(now <= baseline[i]! + allowance, `${s.name}: ${now} bytes on disk, baseline ${baseline[i]}`);
      t.same([...chunksOn(s, v.volumeTreeId).keys()], [], `${s.name} holds no chunk of the deleted tree`);
    }
  });
});
