/**
 * The mission, end to end: a Linux guest (QEMU VM) runs the stock kernel
 * `nbd-client <host> <port> /dev/nbd0` against the SDC — default export, no
 * name — makes ext4, fills it, checks it, reconnects by name over four
 * connections (CAN_MULTI_CONN) and verifies every file. The host then reads
 * the volume independently and finds the guest's bytes, stored as two
 * copies spread over the three SDSs.
 */
import t from 'tap';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { buildInitramfs, ensureVmKernel, runVm, vmUnavailable } from '../helpers/vm.js';
import { checkExt4RoundTrip, ext4RoundTripScript } from '../helpers/vm-ext4.js';
import { chunksOn, startCluster } from '../sdc/cluster.js';

const VOLUME_MIB = 256;
const skip = missingClients('nbdcopy') || vmUnavailable();

t.test('kernel nbd-client in a VM against the SDC default export', { skip, timeout: 900_000 }, async (t) => {
  const kernel = ensureVmKernel();
  const c = await startCluster(t);
  const vol = await c.volume('vmvol', VOLUME_MIB * 1024 * 1024);
  const dir = tempDir(t, 'pflex-sdc-vm-');
  const trip = { port: c.sdc.port, name: 'vmvol', smallFiles: 100 };
  const { initrd } = buildInitramfs({ kernel, script: ext4RoundTripScript(trip), out: join(dir, 'initrd.gz') });
  const vm = await runVm(t, { kernel, initrd, timeoutMs: 600_000 });
  t.comment(`VM boot ${vm.bootMs} ms, total ${vm.elapsedMs} ms`);
  checkExt4RoundTrip(t, vm, { ...trip, sizeBytes: VOLUME_MIB * 1024 * 1024, hostUri: c.sdc.uri('vmvol'), dir });
  const per = c.sds.map((s) => chunksOn(s, vol.volumeTreeId));
  const all = new Set(per.flatMap((m) => [...m.keys()]));
  t.ok([...all].every((i) => per.reduce((n, m) => n + (m.get(i)?.length ?? 0), 0) === 2), `each of ${all.size} chunks on exactly two SDSs`);
  t.ok(per.every((m) => m.size > 0), 'spread over all three SDSs');
});
