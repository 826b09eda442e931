// The real kernel NBD client (nbd-client + nbd.ko) in a throwaway QEMU VM:
// ext4 made, filled, checked and re-read through our server.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { startServerUnderTest } from '../helpers/blockdev.js';
import { buildInitramfs, ensureVmKernel, runVm, vmUnavailable } from '../helpers/vm.js';

const EXPORT_MIB = 256;

const skip = missingClients('nbdcopy') || vmUnavailable();

/**
 * Guest script: attach the default export (no -N), mkfs (which sends TRIM),
 * write files, e2fsck, detach, re-attach by name over 4 connections (so
 * reads really come from the server, the default export is shown to be that
 * export, and the kernel spreads requests over connections), verify,
 * and print a digest of the device for the host to compare.
 */
function guestScript(port: number, name: string): string {
  return `
nbd-client 10.0.2.2 ${port} /dev/nbd0
echo PFLEX_RESULT size=$(cat /sys/block/nbd0/size)
mkfs.ext4 -q -F /dev/nbd0
mount -t ext4 /dev/nbd0 /mnt
dd if=/dev/urandom of=/mnt/big bs=1M count=24 2>/dev/null
mkdir /mnt/small
i=0; while [ $i -lt 200 ]; do head -c $((i * 97 + 1)) /dev/urandom > /mnt/small/f$i; i=$((i + 1)); done
cd /mnt && find . -type f | sort | xargs sha256sum > /tmp/sums && cd /
sync
umount /mnt
e2fsck -fn /dev/nbd0 && echo PFLEX_RESULT fsck1=clean
nbd-client -d /dev/nbd0
sleep 1
nbd-client 10.0.2.2 ${port} /dev/nbd0 -N ${name} -connections 4
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

t.test('kernel nbd-client in a QEMU VM: ext4 round trip', { skip, timeout: 600000 }, async (t) => {
  const kernelStarted = Date.now();
  const kernel = ensureVmKernel();
  t.comment(`kernel ${kernel.release} ready in ${Date.now() - kernelStarted} ms`);
  const dir = tempDir(t);
  const target = await startServerUnderTest(t, { memory: `${EXPORT_MIB}M` });
  const { initrd, modules } = buildInitramfs({ kernel, script: guestScript(target.port, target.name), out: join(dir, 'initrd.gz') });
  t.comment(`modules: ${modules.join(' ')}`);
  const vm = await runVm(t, { kernel, initrd, timeoutMs: 300000 });
  t.comment(`${target.kind}: VM boot ${vm.bootMs} ms, total ${vm.elapsedMs} ms`);
  const ok = vm.exitStatus === 0 && vm.results.done === '1';
  if (!ok) t.comment(vm.console.slice(-6000));
  t.equal(vm.timedOut, false, 'VM finished before the timeout');
  t.equal(vm.exitStatus, 0, 'guest script succeeded');
  t.equal(vm.results.size, String(EXPORT_MIB * 2048), 'kernel sees the export size in 512-byte sectors');
  t.equal(vm.results.fsck1, 'clean', 'e2fsck clean after writing');
  t.equal(vm.results.fsck2, 'clean', 'e2fsck clean after reconnecting to the export by name');
  t.equal(vm.results.verify, 'ok', 'every file checksum matches after reconnecting');
  t.equal(vm.results.files, '201', 'all files were checked');

  // The host reads the export independently: the bytes the guest saw are on the server.
  const copy = join(dir, 'export.img');
  execFileSync('nbdcopy', [target.uri, copy]);
  const hostSha = createHash('sha256').update(readFileSync(copy)).digest('hex');
  t.equal(vm.results.devsha, hostSha, 'device digest in the guest equals the export read by the host');
});
