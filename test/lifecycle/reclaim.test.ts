/**
 * Reclaim with real processes (MDM, three SDS, SDC) and a real NBD client:
 *
 *   - shrink: data written past the new end is removed from the SDSs (the
 *     cut chunk zeroed from the new end), so after an expand it reads zeros;
 *   - snapshots: deleting a volume that has a snapshot removes only the
 *     volume's own layer (the snapshot still reads its bytes over NBD, with
 *     nbdcopy), a shrink is refused while the snapshot exists, and deleting
 *     the snapshot (the tree's last row) brings the bytes on disk back to the
 *     baseline;
 *   - delete: the bytes on disk of the SDS storage roots return to their
 *     baseline, although one SDS was stopped when the volume was deleted and
 *     the MDM restarted while the deletion was pending.
 */
import t from 'tap';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { VolumeDeletion } from '../../src/shared/mdm-client.js';
import { CHUNK_FILE_SUFFIX } from '../../src/sds/store/chunk-file-layout.js';
import { missingClients } from '../helpers/nbd.js';
import { io, run, until } from './helpers.js';
import { tempDir } from '../helpers/proc.js';
import { startMdm } from '../helpers/mdm.js';
import { chunksOn, startCluster } from '../sdc/cluster.js';
import { startSdsProc, type SdsProc } from '../sds/cluster.js';

const skip = missingClients('qemu-io', 'nbdcopy', 'nbdinfo');
const MiB = 1024 * 1024;
const MDM_CONFIG = { reclaimTickMs: 200 };


/** The layers of a tree that have chunk files on an SDS. */
function layersOn(s: SdsProc, treeId: number): Set<number> {
  const out = new Set<number>();
  const root = join(s.dir, 'chunks');
  if (!existsSync(root)) return out;
  for (const pgDir of readdirSync(root)) {
    let names: string[] = [];
    try { names = readdirSync(join(root, pgDir)); } catch { continue; }
    for (const name of names) {
      if (!name.endsWith(CHUNK_FILE_SUFFIX)) continue;
      const m = /^(\d+)-(\d+)-(\d+)$/.exec(name.slice(0, -CHUNK_FILE_SUFFIX.length));
      if (m && Number(m[1]) === treeId) out.add(Number(m[3]));
    }
  }
  return out;
}

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

  await t.test('snapshots: a deleted volume\'s snapshot keeps its data; the tree goes with its last row', async (t) => {
    const dir = tempDir(t, 'pflex-reclaim-snap-');
    const v = await c.volume('snapvol', 4 * MiB);
    await io(t, c.sdc.uri('snapvol'), 'write 4 MiB', 'write -P 0x71 0 4M');
    const snap = await c.mdm.admin.createSnapshot(v.id, 'snapvol.s1');
    await io(t, c.sdc.uri('snapvol'), 'overwrite 1 MiB after the snapshot (copy-on-write)', 'write -P 0x72 0 1M');
    const head = (await c.mdm.admin.getVolume(v.id)).layerId;
    t.ok(c.sds.some((s) => layersOn(s, v.volumeTreeId).has(head)), 'the volume\'s own layer has chunks');

    await c.mdm.admin.unmapVolume(v.id, c.sdc.id);
    await t.rejects(c.mdm.admin.resizeVolume(v.id, MiB, true), { code: 'PFLEX_ERR_CONFLICT' }, 'no shrink while a snapshot shares the tree');

    const r = await c.mdm.admin.deleteVolume(v.id);
    t.same('freedLayers' in r ? r.freedLayers : null, [head], 'only the volume\'s own layer is freed, not the tree');
    const freed = await until('the freed layer is reclaimed', async () => {
      const [l] = await c.mdm.admin.listLayerDeletions({ volumeTreeId: v.volumeTreeId });
      return l?.state === 'done' ? l : undefined;
    });
    t.match(freed, { layerId: head, sdsConfirmed: 3, sdsTotal: 3, lastError: null });
    t.equal(freed.chunksFreed, 2, 'the one overwritten chunk, in two copies');
    for (const s of c.sds) t.notOk(layersOn(s, v.volumeTreeId).has(head), `${s.name} keeps no chunk of the freed layer`);
    t.equal((await c.mdm.admin.listVolumeDeletions()).filter((d) => d.volumeTreeId === v.volumeTreeId).length, 0, 'no tree deletion while the snapshot lives');

    // The snapshot still reads its bytes over NBD.
    await c.mdm.admin.mapVolume(snap.id, c.sdc.id);
    const info = await run('nbdinfo', ['--size', c.sdc.uri('snapvol.s1')]);
    t.equal(info.out.trim(), String(4 * MiB), 'nbdinfo: the snapshot export has its size');
    const file = join(dir, 'snap.img');
    const copy = await run('nbdcopy', [c.sdc.uri('snapvol.s1'), file]);
    t.equal(copy.code, 0, `nbdcopy snapshot -> file${copy.code ? `: ${copy.out}` : ''}`);
    const got = readFileSync(file);
    t.equal(got.length, 4 * MiB);
    t.equal(got.findIndex((b) => b !== 0x71), -1, 'the snapshot reads the bytes of the deleted volume at the cut');

    // The last row of the tree goes: the whole tree is reclaimed.
    await c.mdm.admin.unmapVolume(snap.id, c.sdc.id);
    const d = await c.mdm.admin.deleteVolume(snap.id);
    t.ok('volumeTreeId' in d && d.volumeTreeId === v.volumeTreeId, 'deleting the last row deletes the tree');
    await until('the tree deletion is done', async () => {
      const x = (await c.mdm.admin.listVolumeDeletions()).find((y) => y.volumeTreeId === v.volumeTreeId);
      return x?.state === 'done' ? x : undefined;
    });
    for (const s of c.sds) t.same([...layersOn(s, v.volumeTreeId)], [], `${s.name} holds no chunk of the tree`);
    const allowance = 64 * 1024;
    for (const [i, s] of c.sds.entries()) {
      const now = bytesOnDisk(s);
      t.ok(now <= baseline[i]! + allowance, `${s.name}: ${now} bytes on disk, baseline ${baseline[i]}`);
    }
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
