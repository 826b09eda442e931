// The ext4 round trip the kernel-client VM tests run in the guest, and the
// checks on its results: one copy for the plain NBD server test and for the
// SDC end-to-end test.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { VmResult } from './vm.js';

export interface Ext4RoundTrip {
  /** The NBD server's port on the host (10.0.2.2 in the guest). */
  port: number;
  /** Export name used for the second attach (the first uses the default export). */
  name: string;
  /** Small files written besides one 24 MiB file. */
  smallFiles: number;
}

/**
 * Guest script: attach the default export (no -N), mkfs (which sends TRIM),
 * write files, e2fsck, detach, re-attach by name over 4 connections (so
 * reads really come from the server, the default export is shown to be that
 * export, and the kernel spreads requests over connections), verify,
 * and print a digest of the device for the host to compare.
 */
export function ext4RoundTripScript(o: Ext4RoundTrip): string {
  return `
nbd-client 10.0.2.2 ${o.port} /dev/nbd0
echo PFLEX_RESULT size=$(cat /sys/block/nbd0/size)
mkfs.ext4 -q -F /dev/nbd0
mount -t ext4 /dev/nbd0 /mnt
dd if=/dev/urandom of=/mnt/big bs=1M count=24 2>/dev/null
mkdir /mnt/small
i=0; while [ $i -lt ${o.smallFiles} ]; do head -c $((i * 97 + 1)) /dev/urandom > /mnt/small/f$i; i=$((i + 1)); done
cd /mnt && find . -type f | sort | xargs sha256sum > /tmp/sums && cd /
sync
umount /mnt
e2fsck -fn /dev/nbd0 && echo PFLEX_RESULT fsck1=clean
nbd-client -d /dev/nbd0
sleep 1
nbd-client 10.0.2.2 ${o.port} /dev/nbd0 -N ${o.name} -connections 4
e2fsck -fn /dev/nbd0 && echo PFLEX_RESULT fsck2=clean
mount -t ext4 -o ro /dev/nbd0 /mnt
cd /mnt && sha256sum -c -s /tmp/sums && echo PFLEX_RESULT verify=ok && cd /
echo PFLEX_RESULT files=$(wc -l < /tmp/sums)
umount /mnt
echo PFLEX_RESULT devsha=$(sha256sum /dev/nbd0 | cut -d' ' -f1)
nbd-client -d /dev/nbd0
echo PFLEX_RESULT done=1
`;
}

/**
 * The guest's verdicts, then the host reads the export independently
 * (nbdcopy into dir) and compares its digest with the guest's.
 */
export function checkExt4RoundTrip(
  t: Test,
  vm: VmResult,
  o: Ext4RoundTrip & { sizeBytes: number; hostUri: string; dir: string },
): void {
  if (!(vm.exitStatus === 0 && vm.results.done === '1')) t.comment(vm.console.slice(-6000));
  t.equal(vm.timedOut, false, 'VM finished before the timeout');
  t.equal(vm.exitStatus, 0, 'guest script succeeded');
  t.equal(vm.results.size, String(o.sizeBytes / 512), 'the kernel sees the export size (512-byte sectors)');
  t.equal(vm.results.fsck1, 'clean', 'e2fsck clean after writing');
  t.equal(vm.results.fsck2, 'clean', 'e2fsck clean after re-attaching by name over four connections');
  t.equal(vm.results.verify, 'ok', 'every file checksum matches after re-attaching');
  t.equal(vm.results.files, String(o.smallFiles + 1), 'all files were checked');
  const copy = join(o.dir, 'export.img');
  execFileSync('nbdcopy', [o.hostUri, copy]);
  t.equal(vm.results.devsha, createHash('sha256').update(readFileSync(copy)).digest('hex'), 'the host reads the bytes the guest wrote');
}
