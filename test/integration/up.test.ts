/**
 * `pflex up --demo`: one command starts MDM, three SDS and an SDC; the demo
 * volume is the SDC's default export; data written through it survives a
 * clean stop (Ctrl-C) and a second `pflex up` on the same data directory.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { interrupt, refused, run, up } from '../helpers/up.js';

const skip = missingClients('nbdinfo', 'qemu-io');

t.test('pflex up --demo', { skip }, async (t) => {
  const dataDir = join(tempDir(t, 'pflex-up-'), 'data');

  const first = await up(t, dataDir);
  t.match(first.text, /new cluster/, 'first run initialises the cluster');
  t.match(first.text, /nbd-client 127\.0\.0\.1 \d+ \/dev\/nbd0/, 'prints how to attach with nbd-client');
  t.match(first.text, /nbdfuse/, 'and with nbdfuse + losetup');
  t.match(first.text, /MGMT: +http:\/\/127\.0\.0\.1:\d+\//, 'prints the dashboard URL');
  const password = readFileSync(join(dataDir, 'admin-password'), 'utf8').trim();
  t.match(first.text, password, 'prints the admin password');
  for (const d of ['mdm/mdm.db', 'sds1', 'sds2', 'sds3', 'logs/mdm.log']) t.ok(existsSync(join(dataDir, d)), `data/${d}`);

  const size = await run('nbdinfo', ['--size', `nbd://127.0.0.1:${first.port}/`]);
  t.equal(size.out.trim(), String(64 * 1024 * 1024), 'the default export is the demo volume');
  const w = await run('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${first.port}/demo`, '-c', 'write -P 0xa7 1000000 3000000', '-c', 'flush']);
  t.equal(w.code, 0, `write through the SDC ${w.out}`);

  t.equal(await interrupt(first.proc), 0, 'Ctrl-C stops pflex up cleanly');
  t.ok(await refused(first.port), 'the NBD port is closed');
  t.ok(await refused(first.mgmtPort), 'the SDC mgmt port is closed');
  for (const name of ['sds1', 'sds2', 'sds3']) {
    t.match(readFileSync(join(dataDir, 'logs', `${name}.log`), 'utf8'), /sds stopping/, `${name} was stopped by a signal`);
  }

  const second = await up(t, dataDir);
  t.match(second.text, /existing cluster/, 'the second run reuses the data');
  const r = await run('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${second.port}/demo`, '-c', 'read -P 0xa7 1000000 3000000', '-c', 'read -P 0 0 1000000']);
  t.equal(r.code, 0, 'the data written in the first run reads back');
  t.notMatch(r.out, /verification failed/i);
  t.equal(await interrupt(second.proc), 0, 'stops cleanly again');
});
