/**
 * A snapshot whose cut cannot quiesce every SDC that maps the volume fails
 * as a whole and changes nothing (docs/snapshots.md; MDM SnapshotService.cut):
 * real MDM, three SDSs and two SDCs mapping one volume. sdc1 is SIGSTOPped
 * (alive to the MDM, which marks an SDC DOWN only after 30 s here, but deaf
 * to its quiesce call). The snapshot is refused with UNAVAILABLE after the
 * control call's timeout; no snapshot exists and the volume keeps its
 * layer; sdc2, which was quiesced, was resumed (the MDM's hold here is 10
 * minutes, so a write through sdc2 would hang without the resume); once
 * sdc1 runs again the same snapshot succeeds and reads the data at its cut.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { run } from '../helpers/up.js';
import { startMdm, startSdsProc, waitForMapEpoch } from '../sds/cluster.js';
import { startSdcProc } from './cluster.js';

const skip = missingClients('qemu-io', 'nbdcopy');
const MiB = 1024 * 1024;
const SIZE = 4 * MiB;

t.test('a snapshot that cannot quiesce a live SDC fails whole and leaves no trace', { skip }, async (t) => {
  const mdm = await startMdm(t, { config: { snapshotQuiesceHoldMs: 600_000, downAfterMs: 30_000 } });
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16 });
  const [sds, sdc1, sdc2] = await Promise.all([
    Promise.all(['sds1', 'sds2', 'sds3'].map((n) => startSdsProc(t, mdm, n))),
    startSdcProc(t, mdm, 'sdc1'),
    startSdcProc(t, mdm, 'sdc2'),
  ]);
  await waitForMapEpoch(mdm, pool.id, sds, 30_000);
  const vol = await mdm.admin.createVolume({ name: 'vol', storagePoolId: pool.id, sizeBytes: SIZE });
  await mdm.admin.mapVolume(vol.id, sdc1.id, { allowMultiMap: true });
  await mdm.admin.mapVolume(vol.id, sdc2.id, { allowMultiMap: true });
  const dir = tempDir(t, 'pflex-snapq-');
  const write = async (byte: number, what: string): Promise<void> => {
    const r = await run('qemu-io', ['-f', 'raw', sdc2.uri('vol'), '-c', `write -P ${byte} 0 ${MiB}`, '-c', 'flush']);
    t.equal(r.code, 0, `${what}${r.code ? `: ${r.out}` : ''}`);
  };
  await write(0x11, 'first write through sdc2');
  const layer = (await mdm.admin.getVolume(vol.id)).layerId;

  const pid = sdc1.proc.child.pid!;
  process.kill(pid, 'SIGSTOP');
  let stopped = true;
  t.teardown(() => { if (stopped) process.kill(pid, 'SIGCONT'); });
  await t.rejects(mdm.admin.createSnapshot(vol.id, 'vol.s1'), { code: 'PFLEX_ERR_UNAVAILABLE', message: /could not be quiesced/ },
    'refused: sdc1 does not answer its quiesce');
  t.same(await mdm.admin.listVolumes({ name: 'vol.s1' }), [], 'no snapshot was created');
  t.equal((await mdm.admin.getVolume(vol.id)).layerId, layer, 'the volume keeps its layer');
  await write(0x22, 'sdc2 writes again at once: it was resumed after the failed cut');

  process.kill(pid, 'SIGCONT');
  stopped = false;
  const snap = await mdm.admin.createSnapshot(vol.id, 'vol.s1');
  t.ok(snap.layerId !== undefined && snap.kind === 'snapshot', 'with sdc1 running, the same snapshot succeeds');
  t.not((await mdm.admin.getVolume(vol.id)).layerId, layer, 'the volume moved to a new layer');
  await write(0x33, 'a write after the snapshot');
  await mdm.admin.mapVolume(snap.id, sdc2.id, { accessMode: 'readOnly' });
  const file = join(dir, 'snap.img');
  const r = await run('nbdcopy', [sdc2.uri('vol.s1'), file]);
  t.equal(r.code, 0, `nbdcopy of the snapshot${r.code ? `: ${r.out}` : ''}`);
  const img = readFileSync(file);
  t.equal(img.length, SIZE, 'snapshot size');
  t.ok(img.subarray(0, MiB).every((b) => b === 0x22), 'the snapshot holds the write made before it (0x22), not the one after (0x33)');
  t.ok(img.subarray(MiB).every((b) => b === 0), 'and zeros where nothing was written');
});
