/**
 * Rebuild and a returning SDS seen through the SDC (the NBD export, with
 * qemu-io): data written before a SIGKILL and while the SDS is away reads
 * back after the PGs healed, and again after the SDS came back on its old
 * storage root and PGs moved back to it — never its stale copy.
 */
import { execFile } from 'node:child_process';
import t from 'tap';
import { missingClients } from '../helpers/nbd.js';
import { spawnPflex } from '../helpers/proc.js';
import { startSdcProc } from '../sdc/cluster.js';
import { startSdsProc, waitForMapEpoch } from '../sds/cluster.js';
import { startFastMdm, waitFor, whole } from './cluster.js';

const skip = missingClients('qemu-io');
const MiB = 1024 * 1024;

function qemuIo(uri: string, ...cmds: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('qemu-io', ['-f', 'raw', uri, ...cmds.flatMap((c) => ['-c', c])], { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

t.test('through the SDC: heal after SIGKILL, then the SDS returns; reads never see stale data', { skip }, async (t) => {
  const mdm = await startFastMdm(t);
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16, chunkBytes: 256 * 1024 });
  const [sds, sdc] = await Promise.all([Promise.all(['sds1', 'sds2', 'sds3'].map((n) => startSdsProc(t, mdm, n))), startSdcProc(t, mdm, 'sdc1')]);
  await waitForMapEpoch(mdm, pool.id, sds, 60_000);
  const v = await mdm.admin.createVolume({ name: 'vol1', storagePoolId: pool.id, sizeBytes: 16 * MiB });
  await mdm.admin.mapVolume(v.id, sdc.id);
  const uri = sdc.uri('vol1');
  let w = await qemuIo(uri, 'write -P 0x41 0 8M');
  t.equal(w.code, 0, `first pattern written ${w.code === 0 ? '' : w.out}`);

  const victim = sds[0]!;
  await victim.proc.stop('SIGKILL');
  w = await qemuIo(uri, 'write -P 0x42 0 4M');
  t.equal(w.code, 0, `second pattern written while sds1 is away ${w.code === 0 ? '' : w.out}`);
  await waitFor(mdm, pool.id, (mp, st) => whole(2)(mp, st) && mp.pgs.every((p) => !p.members.includes(victim.id)), 60_000, 'heal without sds1');
  let r = await qemuIo(uri, 'read -P 0x42 0 4M', 'read -P 0x41 4M 4M');
  t.equal(r.code, 0, `reads after the heal ${r.code === 0 ? '' : r.out}`);

  const back = spawnPflex(t, [
    'sds-server', 'start', '--data-dir', victim.dir, '--mdm', mdm.url, '--cluster-key-file', mdm.keyFile, '--name', victim.name,
    '--pd', 'pd1', '--pool', 'pool1', '--host', '127.0.0.1', '--port', '0', '--control-port', '0', '--mgmt-port', '0',
  ]);
  await back.waitForLog((l) => l.msg === 'sds registered', 60_000);
  r = await qemuIo(uri, 'read -P 0x42 0 4M', 'read -P 0x41 4M 4M');
  t.equal(r.code, 0, `reads right after sds1 returned ${r.code === 0 ? '' : r.out}`);
  await waitFor(mdm, pool.id, (mp, st) => whole(2)(mp, st) && mp.pgs.filter((p) => p.members.includes(victim.id)).length >= 6, 90_000, 'PGs back on sds1');
  r = await qemuIo(uri, 'read -P 0x42 0 4M', 'read -P 0x41 4M 4M');
  t.equal(r.code, 0, `reads after PGs moved back to sds1 ${r.code === 0 ? '' : r.out}`);
});
