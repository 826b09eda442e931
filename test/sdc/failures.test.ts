/**
 * The SDC's life with the control plane: IO tokens renewed across many
 * lifetimes without an error reaching the client; an unmapped volume stops
 * being exported; a volume with no reachable replica fails IO with an error
 * after the configured timeout instead of hanging.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { missingClients } from '../helpers/nbd.js';
import { startCluster } from './cluster.js';
import { listenerJson } from '../helpers/listener.js';

const skip = missingClients('nbdinfo', 'qemu-io');
const MiB = 1024 * 1024;

interface Run { code: number; out: string }

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Short IO token lifetime: the MDM reads it from the environment spawnPflex passes on.
process.env.PFLEX_MDM_IO_TOKEN_TTL_MS = '2000';

t.test('tokens, unmapping and unreachable replicas', { skip }, async (t) => {
  const c = await startCluster(t, { sdcArgs: ['--io-timeout-ms', '3000'] });
  const vol = await c.volume('vol1', 32 * MiB);
  await c.volume('vol2', 8 * MiB);
  const uri = c.sdc.uri('vol1');

  await t.test('IO keeps working across several token lifetimes', async (t) => {
    for (let round = 0; round < 4; round++) {
      const w = await run('qemu-io', ['-f', 'raw', uri, '-c', `write -P ${0x30 + round} ${round}M 1M`, '-c', `read -P ${0x30 + round} ${round}M 1M`]);
      t.equal(w.code, 0, `round ${round}: write and read back ${w.code === 0 ? '' : w.out}`);
      await sleep(1500);
    }
    const r = await run('qemu-io', ['-f', 'raw', uri, '-c', 'read -P 0x30 0 1M', '-c', 'read -P 0x33 3M 1M']);
    t.equal(r.code, 0, 'every round reads back at the end');
    const m = await listenerJson<{ volumes: Record<string, { ops: { write: { errors: number } } }> }>(c.mdm, c.sdc.mgmtPort, '/stats');
    t.equal(m.volumes.vol1!.ops.write.errors, 0, 'no write failed');
  });

  await t.test('an unmapped volume stops being exported', async (t) => {
    t.equal((await run('nbdinfo', ['--size', c.sdc.uri('vol2')])).code, 0, 'vol2 is exported while mapped');
    const v2 = (await c.mdm.admin.listVolumes({ name: 'vol2' }))[0]!;
    await c.mdm.admin.unmapVolume(v2.id, c.sdc.id);
    let refused = false;
    for (let i = 0; i < 60 && !refused; i++) {
      refused = (await run('nbdinfo', ['--size', c.sdc.uri('vol2')])).code !== 0;
      if (!refused) await sleep(250);
    }
    t.ok(refused, 'vol2 is refused once the SDC learns it was unmapped');
    const list = await run('nbdinfo', ['--list', c.sdc.uri()]);
    t.notMatch(list.out, /vol2/, 'and no longer listed');
    t.equal((await run('nbdinfo', ['--size', c.sdc.uri('')])).out.trim(), String(vol.sizeBytes), 'the only mapped volume is now the default export');
  });

  await t.test('with every SDS gone, IO fails after the timeout instead of hanging', async (t) => {
    for (const s of c.sds) s.proc.child.kill('SIGKILL');
    const r = await run('qemu-io', ['-f', 'raw', uri, '-c', 'read 0 4k']);
    t.not(r.code, 0, 'the read fails');
    t.match(r.out, /Input\/output error|failed/i, 'with an I/O error');
    // qemu asks BLOCK_STATUS before it reads: either may be the request that failed.
    const h = await listenerJson<{ volumes: Record<string, { ops: Record<string, { errors: number }> }> }>(c.mdm, c.sdc.mgmtPort, '/stats');
    const ops = h.volumes.vol1!.ops;
    t.ok(ops.read!.errors + ops.blockStatus!.errors > 0, 'the SDC counted the failed request');
  });
});
