// The real kernel NBD client (nbd-client + nbd.ko) in a throwaway QEMU VM:
// ext4 made, filled, checked and re-read through our server.
import t from 'tap';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { startServerUnderTest } from '../helpers/blockdev.js';
import { buildInitramfs, ensureVmKernel, runVm, vmUnavailable } from '../helpers/vm.js';
import { checkExt4RoundTrip, ext4RoundTripScript } from '../helpers/vm-ext4.js';

const EXPORT_MIB = 256;

const skip = missingClients('nbdcopy') || vmUnavailable();

t.test('kernel nbd-client in a QEMU VM: ext4 round trip', { skip, timeout: 600000 }, async (t) => {
  const kernelStarted = Date.now();
  const kernel = ensureVmKernel();
  t.comment(`kernel ${kernel.release} ready in ${Date.now() - kernelStarted} ms`);
  const dir = tempDir(t);
  const target = await startServerUnderTest(t, { memory: `${EXPORT_MIB}M` });
  const trip = { port: target.port, name: target.name, smallFiles: 200 };
  const { initrd, modules } = buildInitramfs({ kernel, script: ext4RoundTripScript(trip), out: join(dir, 'initrd.gz') });
  t.comment(`modules: ${modules.join(' ')}`);
  const vm = await runVm(t, { kernel, initrd, timeoutMs: 300000 });
  t.comment(`${target.kind}: VM boot ${vm.bootMs} ms, total ${vm.elapsedMs} ms`);
  checkExt4RoundTrip(t, vm, { ...trip, sizeBytes: EXPORT_MIB * 1024 * 1024, hostUri: target.uri, dir });
});
