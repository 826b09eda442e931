/**
 * fio (nbd engine) with data verification through the SDC: random 4 KiB
 * writes at QD32 verified after writing, mixed sizes across chunk
 * boundaries verified while writing, and several connections at once (the
 * export is CAN_MULTI_CONN), each verified.
 */
import t from 'tap';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { startCluster } from './cluster.js';
import { fio } from './fio.js';

const skip = missingClients('fio');
const MiB = 1024 * 1024;

t.test('fio verify through the SDC', { skip }, async (t) => {
  const c = await startCluster(t);
  await c.volume('vol1', 256 * MiB);
  const dir = tempDir(t, 'pflex-sdc-fio-');
  const uri = c.sdc.uri('vol1');

  await t.test('random 4 KiB writes at QD32, verified', async (t) => {
    const r = await fio(dir, uri, ['--name=rw4k', '--rw=randwrite', '--bs=4k', '--iodepth=32', '--size=16M', '--verify=crc32c', '--verify_fatal=1']);
    t.equal(r.code, 0, `fio exits 0 ${r.stderr}`);
    t.equal(r.jobs[0]?.error, 0, 'no job error');
    t.equal(r.jobs[0]?.write.io_bytes, 16 * MiB, 'all bytes written');
    t.ok((r.jobs[0]?.read.io_bytes ?? 0) >= 16 * MiB, 'all bytes read back and verified');
  });

  await t.test('mixed block sizes across chunk boundaries, verified while writing', async (t) => {
    const r = await fio(dir, uri, [
      '--name=mixed', '--rw=randwrite', '--bsrange=512-300k', '--bs_unaligned', '--iodepth=16', '--offset=32M', '--size=24M',
      '--verify=crc32c', '--verify_backlog=32', '--verify_fatal=1',
    ]);
    t.equal(r.code, 0, `fio exits 0 ${r.stderr}`);
    t.equal(r.jobs[0]?.error, 0, 'no job error');
  });

  await t.test('four connections at once (multi-conn), each verified', async (t) => {
    const r = await fio(dir, uri, [
      '--name=multi', '--rw=randwrite', '--bs=16k', '--iodepth=8', '--numjobs=4', '--offset=64M', '--size=8M', '--offset_increment=8M',
      '--verify=crc32c', '--verify_fatal=1', '--group_reporting=0',
    ]);
    t.equal(r.code, 0, `fio exits 0 ${r.stderr}`);
    t.equal(r.jobs.length, 4, 'four jobs');
    t.ok(r.jobs.every((j) => j.error === 0), 'no job error');
  });
});
