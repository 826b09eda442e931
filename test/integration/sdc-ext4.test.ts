/**
 * A real file system on a pflex volume: nbdfuse turns the SDC export into a
 * file, a loop device into a block device; mkfs.ext4 (with discard: TRIM
 * through the SDC), files written, e2fsck clean, detached and re-attached
 * over new NBD connections, every file read back. The bytes really live on
 * the SDSs: each chunk on exactly two of them.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { cmd, loopAttach, mountDev, nbdfuseAttach, UndoStack } from '../helpers/blockdev.js';
import { chunksOn, startCluster } from '../sdc/cluster.js';

const skip =
  missingClients('nbdfuse', 'fusermount3', 'losetup', 'mkfs.ext4', 'e2fsck', 'mount') ||
  (process.getuid?.() !== 0 ? 'needs root for loop devices and mount' : false);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

t.test('ext4 on a pflex volume via nbdfuse + loop device', { skip }, async (t) => {
  const c = await startCluster(t);
  const vol = await c.volume('fsvol', 128 * MiB);
  const dir = tempDir(t, 'pflex-sdc-ext4-');
  const mnt = join(dir, 'mnt');
  const uri = c.sdc.uri('fsvol');

  const first = new UndoStack(t);
  const dev = await loopAttach(first, await nbdfuseAttach(first, uri, join(dir, 'fuse-a')));
  await cmd('mkfs.ext4', ['-q', '-F', dev], { timeoutMs: 300_000 });
  const mounted = await mountDev(first, dev, mnt, ['-t', 'ext4']);
  const sums = new Map<string, string>();
  mkdirSync(join(mnt, 'd'));
  for (let i = 0; i < 40; i++) {
    const data = randomBytes(i === 0 ? 24 * MiB : 1 + i * 7919);
    writeFileSync(join(mnt, 'd', `f${i}`), data);
    sums.set(`d/f${i}`, sha(data));
  }
  await cmd('sync', []);
  await first.pop(mounted);
  await cmd('e2fsck', ['-fn', dev], { timeoutMs: 300_000 });
  t.pass('e2fsck -fn clean after writing');
  t.same(await first.unwind(), [], 'loop device, FUSE mount and nbdfuse released');

  const second = new UndoStack(t);
  const again = await loopAttach(second, await nbdfuseAttach(second, uri, join(dir, 'fuse-b')));
  await cmd('e2fsck', ['-fn', again], { timeoutMs: 300_000 });
  await mountDev(second, again, mnt, ['-t', 'ext4', '-o', 'ro']);
  let good = 0;
  for (const [name, want] of sums) if (sha(readFileSync(join(mnt, name))) === want) good++;
  t.equal(good, sums.size, 'every file reads back over a new connection');
  t.same(await second.unwind(), [], 'second attachment released');

  const per = c.sds.map((s) => chunksOn(s, vol.volumeTreeId));
  const all = new Set(per.flatMap((m) => [...m.keys()]));
  t.ok(all.size >= 24, `${all.size} chunks stored`);
  t.ok([...all].every((i) => per.reduce((n, m) => n + (m.get(i)?.length ?? 0), 0) === 2), 'each chunk on exactly two SDSs');
  t.ok(per.every((m) => m.size > 0), 'chunks spread over all three SDSs');
});
