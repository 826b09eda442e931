/**
 * Snapshots over a real cluster (MDM + 3 SDS + SDC processes) with real NBD
 * clients (docs/snapshots.md): write a pattern, snapshot, overwrite part of
 * it (sub-chunk writes: copy-on-write on every replica), map the snapshot
 * read-only and read it with nbdcopy; clone and write the clone; revert;
 * a consistency-group snapshot of two volumes; BLOCK_STATUS through layers;
 * delete with refcounts and the reclaim of a freed layer; a policy with a
 * fast cadence and its retention; replicas byte-identical at the end.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Volume } from '../../src/shared/mdm-client.js';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { chunkFiles, startCluster, type Cluster } from './cluster.js';

const skip = missingClients('nbdinfo', 'qemu-io', 'nbdcopy');
const MiB = 1024 * 1024;
const SIZE = 16 * MiB;

interface Run { code: number; out: string }

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * MiB }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

/** Reads a whole export with nbdcopy into a file and returns its bytes. */
async function readAll(t: Test, c: Cluster, dir: string, name: string): Promise<Buffer> {
  const file = join(dir, `${name}-${Date.now()}.img`);
  const r = await run('nbdcopy', ['--connections=2', c.sdc.uri(name), file]);
  t.equal(r.code, 0, `nbdcopy ${name} -> file${r.code ? `: ${r.out}` : ''}`);
  return readFileSync(file);
}

async function writeAll(t: Test, c: Cluster, dir: string, name: string, data: Buffer): Promise<void> {
  const file = join(dir, `${name}-up-${Date.now()}.img`);
  writeFileSync(file, data);
  const r = await run('nbdcopy', [file, c.sdc.uri(name)]);
  t.equal(r.code, 0, `nbdcopy file -> ${name}${r.code ? `: ${r.out}` : ''}`);
}

/** qemu-io sub-chunk writes of one byte value; mirrors them into `model`. */
async function poke(t: Test, c: Cluster, name: string, model: Buffer, writes: Array<[offset: number, length: number, byte: number]>): Promise<void> {
  const r = await run('qemu-io', ['-f', 'raw', c.sdc.uri(name), ...writes.flatMap(([o, l, b]) => ['-c', `write -P ${b} ${o} ${l}`]), '-c', 'flush']);
  t.equal(r.code, 0, `qemu-io writes to ${name}${r.code ? `: ${r.out}` : ''}`);
  for (const [o, l, b] of writes) model.fill(b, o, o + l);
}

function same(t: Test, got: Buffer, want: Buffer, what: string): void {
  t.equal(got.length, want.length, `${what}: size`);
  const diff = got.findIndex((b, i) => b !== want[i]);
  t.equal(diff, -1, `${what}: byte for byte${diff >= 0 ? ` (first difference at ${diff})` : ''}`);
}

function layersOnDisk(c: Cluster, treeId: number): Set<number> {
  const out = new Set<number>();
  for (const s of c.sds) for (const k of chunkFiles(s, treeId).keys()) out.add(Number(k.split('-').pop()));
  return out;
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

t.test('snapshots, clones, revert and consistency groups over a real cluster', { skip }, async (t) => {
  const c = await startCluster(t, { pgCount: 16 });
  const admin = c.mdm.admin;
  const dir = tempDir(t, 'pflex-snapshots-');
  const vol = await c.volume('vol1', 2 * SIZE);
  const map = async (v: Volume) => admin.mapVolume(v.id, c.sdc.id);

  // Data in the first half only: the second half stays a hole in every layer.
  const original = Buffer.alloc(2 * SIZE);
  randomBytes(SIZE).copy(original);
  await writeAll(t, c, dir, 'vol1', original.subarray(0, SIZE));
  const snap = await admin.createSnapshot(vol.id, 'vol1.s1');
  t.equal(snap.kind, 'snapshot');
  t.equal(snap.layerId, vol.layerId, 'the snapshot freezes the layer the volume wrote');
  const moved = await admin.getVolume(vol.id);
  t.ok(moved.layerId > snap.layerId, 'the volume writes a new layer');
  t.same(moved.layerChain, [moved.layerId, snap.layerId], 'on top of the frozen one');

  // Sub-chunk overwrites (copy-on-write), a whole chunk, a write across a chunk boundary, a trim over snapshot data.
  const current = Buffer.from(original);
  await poke(t, c, 'vol1', current, [[4096, 8192, 0xa1], [3 * MiB + 100, 5000, 0xb2], [5 * MiB, MiB, 0xc3], [7 * MiB - 2048, 4096, 0xd4]]);
  const z = await run('qemu-io', ['-f', 'raw', c.sdc.uri('vol1'), '-c', `discard ${9 * MiB} ${MiB}`, '-c', `write -z ${10 * MiB + 4096} 4096`, '-c', 'flush']);
  t.equal(z.code, 0, `trim and write-zeroes over snapshot data${z.code ? `: ${z.out}` : ''}`);
  current.fill(0, 9 * MiB, 10 * MiB);
  current.fill(0, 10 * MiB + 4096, 10 * MiB + 8192);

  await t.test('the snapshot maps read-only and reads the original; the volume reads the new data', async (t) => {
    const mapped = await map(snap);
    t.equal(mapped.mappings[0]!.accessMode, 'readOnly', 'a snapshot maps read-only by default');
    const info = await run('nbdinfo', ['--json', c.sdc.uri('vol1.s1')]);
    t.equal((JSON.parse(info.out) as { exports: Array<Record<string, unknown>> }).exports[0]!['is_read_only'], true, 'exported with NBD_FLAG_READ_ONLY');
    same(t, await readAll(t, c, dir, 'vol1.s1'), original, 'snapshot');
    same(t, await readAll(t, c, dir, 'vol1'), current, 'volume');
    const w = await run('qemu-io', ['-f', 'raw', c.sdc.uri('vol1.s1'), '-c', 'write -P 0x11 0 4k']);
    t.not(w.code, 0, 'a write to the snapshot export fails');
    await t.rejects(admin.setMappingAccess(snap.id, c.sdc.id, 'readWrite'), 'a snapshot never maps read-write');
  });

  await t.test('BLOCK_STATUS: data where any layer of the chain has the chunk', async (t) => {
    const r = await run('nbdinfo', ['--map', '--json', c.sdc.uri('vol1')]);
    t.equal(r.code, 0, 'nbdinfo --map');
    const extents = JSON.parse(r.out) as Array<{ offset: number; length: number; type: number }>;
    const at = (off: number) => extents.find((e) => e.offset <= off && off < e.offset + e.length)!;
    t.equal(at(MiB + 10).type & 1, 0, 'a chunk only the snapshot layer has is data');
    t.equal(at(SIZE + MiB).type & 1, 1, 'a chunk no layer has is a hole');
  });

  await t.test('a clone is writable; snapshot and volume are unchanged by its writes', async (t) => {
    const clone = await map(await admin.cloneSnapshot(snap.id, 'clone1'));
    t.equal(clone.volumeTreeId, vol.volumeTreeId, 'same tree');
    const cloneModel = Buffer.from(original);
    same(t, await readAll(t, c, dir, 'clone1'), cloneModel, 'clone before writes');
    await poke(t, c, 'clone1', cloneModel, [[0, 512, 0xe5], [2 * MiB + 777, 70_000, 0xf6]]);
    same(t, await readAll(t, c, dir, 'clone1'), cloneModel, 'clone after writes');
    same(t, await readAll(t, c, dir, 'vol1.s1'), original, 'snapshot after clone writes');
    same(t, await readAll(t, c, dir, 'vol1'), current, 'volume after clone writes');
  });

  await t.test('revert of a mapped volume: its content becomes the snapshot\'s', async (t) => {
    const before = (await admin.getVolume(vol.id)).layerId;
    const reverted = await admin.revertVolume(vol.id, snap.id);
    t.ok(reverted.layerId > before, 'a new layer');
    t.same(reverted.layerChain, [reverted.layerId, snap.layerId], 'on top of the snapshot\'s');
    same(t, await readAll(t, c, dir, 'vol1'), original, 'volume after revert');
    const again = Buffer.from(original);
    await poke(t, c, 'vol1', again, [[MiB + 3, 10, 0x42]]);
    same(t, await readAll(t, c, dir, 'vol1'), again, 'writes after the revert');
    await until('the reverted-away layer reclaimed', async () => !layersOnDisk(c, vol.volumeTreeId).has(before));
    t.pass('the layer the volume left was dropped on the SDSs');
    current.set(again);
  });

  await t.test('consistency-group snapshot of two volumes', async (t) => {
    const vol2 = await c.volume('vol2', SIZE);
    const two = randomBytes(4 * MiB);
    await writeAll(t, c, dir, 'vol2', two);
    const r = await admin.snapshotGroup([{ volumeId: vol.id, name: 'vol1.cg' }, { volumeId: vol2.id, name: 'vol2.cg' }]);
    t.equal(r.snapshots.length, 2);
    t.ok(r.group, 'a group id');
    t.equal(r.snapshots[0]!.snapshotGroup, r.snapshots[1]!.snapshotGroup, 'both carry it');
    await poke(t, c, 'vol2', Buffer.alloc(SIZE), [[0, 4096, 0x99]]);
    for (const s of r.snapshots) await map(s);
    same(t, await readAll(t, c, dir, 'vol1.cg'), current, 'vol1 at the cut');
    const want2 = Buffer.alloc(SIZE);
    two.copy(want2);
    same(t, await readAll(t, c, dir, 'vol2.cg'), want2, 'vol2 at the cut');
  });

  await t.test('delete with refcounts: a snapshot under a clone keeps its layer', async (t) => {
    await admin.unmapVolume(snap.id, c.sdc.id);
    const d = await admin.deleteVolume(snap.id);
    t.same('freedLayers' in d ? d.freedLayers : null, [], 'the clone and the volume still need the snapshot\'s layer');
    same(t, await readAll(t, c, dir, 'clone1'), Buffer.from(original).fill(0xe5, 0, 512).fill(0xf6, 2 * MiB + 777, 2 * MiB + 777 + 70_000), 'clone intact');
    t.ok(layersOnDisk(c, vol.volumeTreeId).has(snap.layerId), 'its chunks stay');
  });

  await t.test('replicas of every layer are byte-identical', async (t) => {
    const copies = new Map<string, Buffer[]>();
    for (const s of c.sds) for (const [k, b] of chunkFiles(s, vol.volumeTreeId)) copies.set(k, [...(copies.get(k) ?? []), b]);
    let wrong = 0;
    for (const [k, bs] of copies) if (bs.length !== 2 || !bs[0]!.equals(bs[1]!)) { wrong++; t.comment(`chunk ${k}: ${bs.length} copies`); }
    t.ok(copies.size > 0, `${copies.size} chunks`);
    t.equal(wrong, 0, 'two identical copies of each');
  });

  await t.test('a snapshot policy with a fast cadence keeps its retention', async (t) => {
    const pvol = await c.volume('pvol', 4 * MiB);
    const p = await admin.createSnapshotPolicy({ name: 'fast', volumeId: pvol.id, intervalMs: 1000, retain: 2 });
    const ofPolicy = async () => (await admin.listSnapshots({ volumeId: pvol.id })).filter((s) => s.policyId === p.id);
    const runs = new Set<number>();
    await until('four policy runs', async () => {
      const now = (await admin.listSnapshotPolicies()).find((x) => x.id === p.id)!;
      if (now.lastError) t.fail(`policy run failed: ${now.lastError}`);
      if (now.lastRunMs !== null) runs.add(now.lastRunMs);
      return runs.size >= 4;
    }, 60_000);
    const kept = await ofPolicy();
    t.equal(kept.length, 2, 'only the newest two snapshots of the policy are kept');
    t.ok(kept.every((s) => s.name.startsWith('fast-')), 'named after the policy');
    await admin.deleteSnapshotPolicy(p.id);
    t.equal((await ofPolicy()).length, 2, 'deleting the policy keeps its snapshots');
  });
});
