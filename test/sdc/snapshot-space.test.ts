/**
 * Space accounting and BLOCK_STATUS through layers, over a real cluster
 * (MDM + 3 SDS + SDC processes) with real NBD clients (qemu-io, nbdinfo):
 * per volume the bytes of its own layer, per snapshot the bytes deleting it
 * would free (docs/snapshots.md "Space accounting"), checked against the
 * chunk files on the SDSs' disks; nbdinfo --map on a clone whose data is all
 * in its parent layer shows data, not holes.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Volume } from '../../src/shared/mdm-client.js';
import { CHUNK_FILE_SUFFIX, logicalSize } from '../../src/sds/store/chunk-file-layout.js';
import { missingClients } from '../helpers/nbd.js';
import { gone, startCluster, type Cluster } from './cluster.js';

const skip = missingClients('nbdinfo', 'qemu-io');
const MiB = 1024 * 1024;
const SIZE = 16 * MiB;

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

async function qemuIo(t: Test, c: Cluster, name: string, cmds: string[]): Promise<void> {
  const r = await run('qemu-io', ['-f', 'raw', c.sdc.uri(name), ...cmds.flatMap((x) => ['-c', x]), '-c', 'flush']);
  t.equal(r.code, 0, `qemu-io ${cmds.join('; ')} on ${name}${r.code ? `: ${r.out}` : ''}`);
}

/** One copy's bytes of a layer on disk: per PG and chunk, the largest chunk (data, not checksum table) among the SDSs (replicas are identical). */
function layerBytesOnDisk(c: Cluster, treeId: number, layerId: number): number {
  const per = new Map<string, number>();
  for (const s of c.sds) {
    const root = join(s.dir, 'chunks');
    if (!existsSync(root)) continue;
    for (const pgDir of readdirSync(root)) {
      const dir = join(root, pgDir);
      const names = gone(() => (statSync(dir).isDirectory() ? readdirSync(dir) : []));
      for (const name of names ?? []) {
        if (!name.endsWith(CHUNK_FILE_SUFFIX)) continue;
        const m = /^(\d+)-(\d+)-(\d+)$/.exec(name.slice(0, -CHUNK_FILE_SUFFIX.length));
        if (!m || Number(m[1]) !== treeId || Number(m[3]) !== layerId) continue;
        const size = gone(() => statSync(join(dir, name)).size);
        if (size === undefined) continue;
        const key = `${pgDir}/${m[2]}`;
        per.set(key, Math.max(per.get(key) ?? 0, logicalSize(size)));
      }
    }
  }
  return [...per.values()].reduce((a, b) => a + b, 0);
}

t.test('space of layers and BLOCK_STATUS through them', { skip }, async (t) => {
  const c = await startCluster(t, { pgCount: 16, chunkBytes: MiB });
  const admin = c.mdm.admin;
  const vol = await c.volume('vol1', SIZE);
  const space = async (v: Volume) => (await admin.getVolume(v.id, { space: true })).space!;

  await qemuIo(t, c, 'vol1', ['write -P 0x11 0 4M']);
  t.same(await space(vol), { layerBytes: 4 * MiB, reclaimableBytes: 4 * MiB, partial: false }, 'a lone volume: its layer, all freed on delete');

  const s1 = await admin.createSnapshot(vol.id, 'vol1.s1');
  const v1 = await admin.getVolume(vol.id);
  t.same(await space(s1), { layerBytes: 4 * MiB, reclaimableBytes: 0, partial: false }, 'the snapshot holds the 4 MiB; the volume\'s layer on top still needs them');
  t.same(await space(vol), { layerBytes: 0, reclaimableBytes: 0, partial: false }, 'the volume has written nothing since');

  // A whole chunk (no copy) and 4 KiB in another (copy-on-write of the chunk).
  await qemuIo(t, c, 'vol1', ['write -P 0x22 1M 1M', 'write -P 0x33 2M 4k']);
  t.same(await space(vol), { layerBytes: 2 * MiB, reclaimableBytes: 2 * MiB, partial: false }, 'the volume\'s layer: one written and one copied chunk');
  t.equal(layerBytesOnDisk(c, vol.volumeTreeId, v1.layerId), 2 * MiB, 'as on the SDSs\' disks');
  t.equal(layerBytesOnDisk(c, vol.volumeTreeId, s1.layerId), 4 * MiB, 'the snapshot layer on disk');

  await t.test('BLOCK_STATUS of a clone whose data is all in the parent layer', async (t) => {
    const clone = await admin.cloneSnapshot(s1.id, 'clone1');
    await admin.mapVolume(clone.id, c.sdc.id);
    t.same(await space(clone), { layerBytes: 0, reclaimableBytes: 0, partial: false }, 'the clone\'s own layer is empty');
    const r = await run('nbdinfo', ['--map', '--json', c.sdc.uri('clone1')]);
    t.equal(r.code, 0, `nbdinfo --map${r.code ? `: ${r.out}` : ''}`);
    const extents = JSON.parse(r.out) as Array<{ offset: number; length: number; type: number }>;
    const at = (off: number) => extents.find((e) => e.offset <= off && off < e.offset + e.length)!;
    for (const off of [0, MiB + 5, 3 * MiB + 7]) t.equal(at(off).type & 1, 0, `offset ${off}: data (the parent layer has it)`);
    t.equal(at(4 * MiB).type & 1, 1, 'beyond the written 4 MiB: a hole');
    t.equal(at(SIZE - 1).type & 1, 1, 'the last chunk: a hole');
    await qemuIo(t, c, 'clone1', ['write -P 0x44 8M 1M']);
    t.same(await space(clone), { layerBytes: MiB, reclaimableBytes: MiB, partial: false }, 'after a write the clone\'s layer holds it, and deleting the clone frees it');
  });

  await t.test('after a revert, the snapshot of the abandoned layer frees it', async (t) => {
    const s2 = await admin.createSnapshot(vol.id, 'vol1.s2');
    t.equal(s2.layerId, v1.layerId, 'the second snapshot freezes the volume\'s layer');
    await admin.revertVolume(vol.id, s1.id);
    t.same(await space(s2), { layerBytes: 2 * MiB, reclaimableBytes: 2 * MiB, partial: false }, 'nothing else needs its layer now');
    const list = await admin.listSnapshots({ volumeId: vol.id, space: true });
    t.same(list.map((s) => [s.name, s.space?.reclaimableBytes]).sort(), [['vol1.s1', 0], ['vol1.s2', 2 * MiB]], 'the snapshot listing carries the same figures');
    t.notOk((await admin.listSnapshots({ volumeId: vol.id }))[0]!.space, 'no space unless asked');
    const gone = await admin.deleteVolume(s2.id);
    t.match(gone, { freedLayers: [s2.layerId] }, 'deleting it freed that layer');
  });

  await t.test('an SDS that does not answer makes the figures partial', async (t) => {
    const before = await space(vol);
    t.equal(before.partial, false, 'every SDS answered');
    const victim = c.sds[0]!.proc.child;
    victim.kill('SIGKILL');
    await new Promise((r) => victim.once('exit', r));
    const after = await space(vol);
    t.equal(after.partial, true, 'one SDS could not be asked: partial');
    t.equal(after.layerBytes, before.layerBytes, 'with two copies, the survivors still account for every chunk');
  });
});
