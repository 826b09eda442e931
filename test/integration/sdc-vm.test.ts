/**
 * The mission, end to end: a Linux guest (QEMU VM) runs the stock kernel
 * `nbd-client <host> <port> /dev/nbd0` against the SDC — default export, no
 * name — makes ext4, fills it, checks it, reconnects by name over four
 * connections (CAN_MULTI_CONN) and verifies every file. The host then reads
 * the volume independently and finds the guest's bytes, stored as two
 * copies spread over the three SDSs.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { buildInitramfs, ensureVmKernel, runVm, vmUnavailable } from '../helpers/vm.js';
import { chunksOn, startCluster } from '../sdc/cluster.js';

const VOLUME_MIB = 256;
const skip = missingClients('nbdcopy') || vmUnavailable();

function guestScript(port: number, name: string): string {
  return `
nbd-client 10.0.2.2 ${port} /dev/nbd0
echo PFLEX_RESULT size=$(cat /sys/block/nbd0/size)
mkfs.ext4 -q -F /dev/nbd0
mount -t ext4 /dev/nbd0 /mnt
dd if=/dev/urandom of=/mnt/big bs=1M count=24 2>/dev/null
mkdir /mnt/small
i=0; while [ $i -lt 100 ]; do head -c $((i * 97 + 1)) /dev/urandom > /mnt/small/f$i; i=$((i + 1)); done
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

t.test('kernel nbd-client in a VM against the SDC default export', { skip, timeout: 900_000 }, async (t) => {
  const kernel = ensureVmKernel();
  const c = await startCluster(t);
  const vol = await c.volume('vmvol', VOLUME_MIB * 1024 * 1024);
  const dir = tempDir(t, 'pflex-sdc-vm-');
  const { initrd } = buildInitramfs({ kernel, script: guestScript(c.sdc.port, 'vmvol'), out: join(dir, 'initrd.gz') });
  const vm = await runVm(t, { kernel, initrd, timeoutMs: 600_000 });
  t.comment(`VM boot ${vm.bootMs} ms, total ${vm.elapsedMs} ms`);
  if (!(vm.exitStatus === 0 && vm.results.done === '1')) t.comment(vm.console.slice(-6000));
  t.equal(vm.timedOut, false, 'VM finished before the timeout');
  t.equal(vm.exitStatus, 0, 'guest script succeeded');
  t.equal(vm.results.size, String(VOLUME_MIB * 2048), 'the default export is the only mapped volume (size in sectors)');
  t.equal(vm.results.fsck1, 'clean', 'e2fsck clean after writing');
  t.equal(vm.results.fsck2, 'clean', 'e2fsck clean over four connections by name');
  t.equal(vm.results.verify, 'ok', 'every file checksum matches');
  t.equal(vm.results.files, '101', 'all files checked');

  const copy = join(dir, 'volume.img');
  execFileSync('nbdcopy', [c.sdc.uri('vmvol'), copy]);
  t.equal(vm.results.devsha, createHash('sha256').update(readFileSync(copy)).digest('hex'), 'the host reads the bytes the guest wrote');
  const per = c.sds.map((s) => chunksOn(s, vol.volumeTreeId));
  const all = new Set(per.flatMap((m) => [...m.keys()]));
  t.ok([...all].every((i) => per.reduce((n, m) => n + (m.get(i)?.length ?? 0), 0) === 2), `each of ${all.size} chunks on exactly two SDSs`);
  t.ok(per.every((m) => m.size > 0), 'spread over all three SDSs');
});
