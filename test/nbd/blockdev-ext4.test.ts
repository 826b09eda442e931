// A real block device on the host: nbdfuse turns the export into a file,
// a loop device turns the file into /dev/loopN, and ext4 lives on it.
// The file system is written, checked with e2fsck, detached all the way
// down to the NBD connection, re-attached, and read back. The ext4 check
// also runs against nbdkit as a control.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { cmd, loopAttach, mountDev, nbdfuseAttach, startServerUnderTest, UndoStack, type ServerKind } from '../helpers/blockdev.js';

const skip =
  missingClients('nbdfuse', 'fusermount3', 'losetup', 'mkfs.ext4', 'e2fsck', 'mount', 'nbdcopy') ||
  (process.getuid?.() !== 0 ? 'needs root for loop devices and mount' : false);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** nbdfuse + loop device + mount of the export; everything undone at pop/teardown. */
async function attach(undo: UndoStack, uri: string, dir: string, tag: string) {
  const file = await nbdfuseAttach(undo, uri, join(dir, `fuse-${tag}`));
  const dev = await loopAttach(undo, file);
  return { file, dev };
}

for (const kind of ['pflex', 'nbdkit'] as ServerKind[]) t.test(`ext4 on nbdfuse + loop device (${kind})`, { skip }, async (t) => {
  const dir = tempDir(t);
  const target = await startServerUnderTest(t, { memory: '128M', kind });
  const mnt = join(dir, 'mnt');

  // First attachment: make the file system and fill it.
  const first = new UndoStack(t);
  const { dev } = await attach(first, target.uri, dir, 'a');
  await cmd('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', dev]);
  const mounted = await mountDev(first, dev, mnt, ['-t', 'ext4']);
  const sums = new Map<string, string>();
  mkdirSync(join(mnt, 'd'));
  for (let i = 0; i < 64; i++) {
    const data = randomBytes(i === 0 ? 20 * 1024 * 1024 : 1 + i * 3001);
    const name = join('d', `f${i}`);
    writeFileSync(join(mnt, name), data);
    sums.set(name, sha(data));
  }
  await cmd('sync', []);
  await first.pop(mounted);
  t.pass('umount after writing');
  const fsck = await cmd('e2fsck', ['-fn', dev]);
  t.match(fsck, /64\/\d+ files|\d+\/\d+ files/, 'e2fsck -fn ran to completion');
  t.pass('e2fsck -fn clean (exit 0)');
  const errors = await first.unwind();
  t.same(errors, [], 'loop device, FUSE mount and nbdfuse released cleanly');

  // Second attachment over a fresh NBD connection: the data is on the server.
  const second = new UndoStack(t);
  const again = await attach(second, target.uri, dir, 'b');
  await cmd('e2fsck', ['-fn', again.dev]);
  t.pass('e2fsck -fn clean over a new connection');
  await mountDev(second, again.dev, mnt, ['-t', 'ext4', '-o', 'ro']);
  let good = 0;
  for (const [name, want] of sums) if (sha(readFileSync(join(mnt, name))) === want) good++;
  t.equal(good, sums.size, 'every file checksum matches after remounting');
  t.same(await second.unwind(), [], 'second attachment released cleanly');

  // The same bytes via another client: the loop device saw the server's data.
  const viaNbdcopy = join(dir, 'export.img');
  await cmd('nbdcopy', [target.uri, viaNbdcopy]);
  const image = readFileSync(viaNbdcopy);
  t.equal(image.length, 128 * 1024 * 1024, 'export size');
  t.equal(image.readUInt16LE(1024 + 0x38), 0xef53, 'ext4 superblock magic on the export');
});

t.test('mkfs with discard (TRIM through FUSE and loop)', { skip }, async (t) => {
  const dir = tempDir(t);
  const target = await startServerUnderTest(t, { memory: '64M' });
  const undo = new UndoStack(t);
  const { dev } = await attach(undo, target.uri, dir, 'a');
  await cmd('mkfs.ext4', ['-q', '-F', dev]);
  await cmd('e2fsck', ['-fn', dev]);
  t.pass('mkfs.ext4 with its default discard, then e2fsck -fn clean');
  t.same(await undo.unwind(), [], 'released cleanly');
});
