/**
 * Losing an SDS under load: a fio verify write workload runs through the SDC
 * while one of the three SDSs is killed with SIGKILL. The SDC reports the
 * dead primary, the MDM promotes the secondaries, the SDC retries; the
 * workload must finish with zero verify errors, and a full read-back of
 * what it wrote must match. Every chunk then lives on the two survivors.
 */
import t from 'tap';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { chunksOn, startCluster } from '../sdc/cluster.js';
import { fio } from '../sdc/fio.js';
import { listenerJson } from '../helpers/listener.js';

const skip = missingClients('fio');
const MiB = 1024 * 1024;

async function writesSoFar(clusterKey: Buffer, mgmtPort: number): Promise<number> {
  const m = await listenerJson<{ volumes: Record<string, { ops: { write: { count: number } } } | null> }>({ clusterKey }, mgmtPort, '/stats');
  return m.volumes.vol1?.ops.write.count ?? 0;
}

t.test('SIGKILL of an SDS during a fio verify write workload', { skip }, async (t) => {
  const c = await startCluster(t);
  const vol = await c.volume('vol1', 256 * MiB);
  const dir = tempDir(t, 'pflex-sds-kill-');
  const uri = c.sdc.uri('vol1');
  const job = ['--name=kill', '--rw=randwrite', '--bs=16k', '--iodepth=16', '--size=96M', '--verify=crc32c', '--verify_fatal=1', '--randseed=4242'];

  const running = fio(dir, uri, job, 600_000);
  // Kill once the workload is well under way (but long before it ends).
  const deadline = Date.now() + 120_000;
  while ((await writesSoFar(c.mdm.clusterKey, c.sdc.mgmtPort)) < 800 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const victim = c.sds[1]!;
  const before = await writesSoFar(c.mdm.clusterKey, c.sdc.mgmtPort);
  victim.proc.child.kill('SIGKILL');
  t.comment(`killed ${victim.name} after ${before} writes`);

  const r = await running;
  t.equal(r.code, 0, `fio exits 0 ${r.stderr}`);
  t.equal(r.jobs[0]?.error, 0, 'no job error (no verify error)');
  t.equal(r.jobs[0]?.write.io_bytes, 96 * MiB, 'every write completed');
  t.ok((await writesSoFar(c.mdm.clusterKey, c.sdc.mgmtPort)) > before, 'writes continued after the kill');

  const again = await fio(dir, uri, [...job, '--verify_only=1'], 600_000);
  t.equal(again.code, 0, `a full read-back verifies ${again.stderr}`);
  t.equal(again.jobs[0]?.error, 0, 'no verify error on read-back');
  t.ok((again.jobs[0]?.read.io_bytes ?? 0) >= 96 * MiB, 'the whole workload was read back');

  const health = await listenerJson<{ volumes: Record<string, { primariesReported: number; ops: { write: { errors: number } } }> }>(c.mdm, c.sdc.mgmtPort, '/stats');
  t.equal(health.volumes.vol1!.ops.write.errors, 0, 'the SDC failed no write');
  t.ok(health.volumes.vol1!.primariesReported > 0, 'the SDC reported the dead primary to the MDM');
  const survivors = c.sds.filter((s) => s !== victim).map((s) => chunksOn(s, vol.volumeTreeId));
  t.ok(survivors.every((m) => m.size > 0), 'both survivors hold chunks');
});
