/**
 * The SDC in front of a real cluster (MDM + 3 SDS + SDC processes) with real
 * NBD clients: export listing and refusal, read-only mappings, the default
 * export, unaligned IO across chunk boundaries, zeros for unwritten chunks,
 * holes in BLOCK_STATUS, nbdcopy round trips, chunk placement on the SDSs,
 * and the management listener's statistics.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlAuthorization } from '../../src/shared/control-auth.js';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { chunksOn, startCluster } from './cluster.js';
import { listenerJson } from '../helpers/listener.js';

const skip = missingClients('nbdinfo', 'qemu-io', 'nbdcopy');
const MiB = 1024 * 1024;

interface Run { code: number; out: string }

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * MiB }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

function qemuIo(uri: string, ...cmds: string[]): Promise<Run> {
  return run('qemu-io', ['-f', 'raw', uri, ...cmds.flatMap((c) => ['-c', c])]);
}

function ok(t: Test, r: Run, what: string): void {
  t.equal(r.code, 0, what);
  t.notMatch(r.out, /verification failed|Pattern verification failed/, `${what}: patterns verified`);
  if (r.code !== 0) t.comment(r.out);
}

t.test('SDC exports over a real cluster', { skip }, async (t) => {
  const c = await startCluster(t, { sdcArgs: ['--default-volume', 'vol1'] });
  const vol1 = await c.volume('vol1', 64 * MiB);
  await c.volume('vol2', 16 * MiB, 'readOnly');
  const dir = tempDir(t, 'pflex-sdc-exports-');

  await t.test('OPT_LIST lists the mapped volumes; an unmapped name is refused', async (t) => {
    const list = await run('nbdinfo', ['--list', '--json', c.sdc.uri()]);
    t.equal(list.code, 0, 'nbdinfo --list succeeds');
    const names = (JSON.parse(list.out.slice(list.out.indexOf('{'))) as { exports: Array<{ 'export-name': string }> }).exports.map((e) => e['export-name']).sort();
    t.same(names, ['vol1', 'vol2']);
    const missing = await run('nbdinfo', ['--size', c.sdc.uri('nope')]);
    t.not(missing.code, 0, 'an unmapped export name is refused');
  });

  await t.test('sizes, flags, read-only mapping and the default export', async (t) => {
    const info = async (uri: string) => {
      const r = await run('nbdinfo', ['--json', uri]);
      t.equal(r.code, 0, `nbdinfo ${uri}`);
      return (JSON.parse(r.out) as { exports: Array<Record<string, unknown>> }).exports[0]!;
    };
    const v1 = await info(c.sdc.uri('vol1'));
    t.equal(v1['export-size'], 64 * MiB);
    t.equal(v1['is_read_only'], false);
    t.equal(v1['can_multi_conn'], true, 'CAN_MULTI_CONN advertised');
    t.equal(v1['can_flush'], true);
    t.equal(v1['can_fua'], true);
    t.equal(v1['can_trim'], true);
    t.equal(v1['can_zero'], true);
    const v2 = await info(c.sdc.uri('vol2'));
    t.equal(v2['export-size'], 16 * MiB);
    t.equal(v2['is_read_only'], true, 'a readOnly mapping is exported READ_ONLY');
    const def = await info(c.sdc.uri(''));
    t.equal(def['export-size'], 64 * MiB, 'the empty name serves the default volume');
    const w = await qemuIo(c.sdc.uri('vol2'), 'write -P 0x11 0 4k');
    t.not(w.code, 0, 'a write to the read-only export fails');
  });

  await t.test('unaligned IO across chunk boundaries, zeros where nothing was written', async (t) => {
    ok(t, await qemuIo(c.sdc.uri('vol1'),
      'write -P 0xab 1048000 5000',
      'write -P 0xcd 3145727 2',
      'write -P 0x5c 5M 3M',
      'flush',
    ), 'pattern writes');
    ok(t, await qemuIo(c.sdc.uri('vol1'),
      'read -P 0xab 1048000 5000',
      'read -P 0 1047000 1000',
      'read -P 0 1053000 1000',
      'read -P 0xcd 3145727 2',
      'read -P 0x5c 5M 3M',
      'read -P 0 20M 4M',
    ), 'pattern reads (and zeros around them)');
    ok(t, await qemuIo(c.sdc.uri('vol1'), 'write -z 5M 1M', 'discard 6M 1M', 'read -P 0 5M 2M', 'read -P 0x5c 7M 1M'), 'write-zeroes and trim read back as zeros');
    ok(t, await qemuIo(c.sdc.uri('vol1'), 'write -f -P 0x77 30M 64k', 'read -P 0x77 30M 64k'), 'FUA write');
  });

  await t.test('BLOCK_STATUS reports unwritten chunks as holes', async (t) => {
    const r = await run('nbdinfo', ['--map', '--json', c.sdc.uri('vol1')]);
    t.equal(r.code, 0, 'nbdinfo --map');
    const extents = JSON.parse(r.out) as Array<{ offset: number; length: number; type: number }>;
    const at = (off: number) => extents.find((e) => e.offset <= off && off < e.offset + e.length)!;
    t.equal(at(40 * MiB).type & 1, 1, 'an unwritten chunk is a hole');
    t.equal(at(7 * MiB + 4096 * 30).type & 1, 0, 'a written chunk is data');
    t.equal(at(5 * MiB + 4096 * 30).type & 1, 1, 'a chunk zeroed whole (write -z 5M 1M) was freed: a hole');
    t.equal(at(6 * MiB + 4096 * 30).type & 1, 1, 'a chunk trimmed whole (discard 6M 1M) was freed: a hole');
    t.equal(extents.reduce((n, e) => n + e.length, 0), 64 * MiB, 'extents cover the whole volume');
  });

  await t.test('nbdcopy round trip of random data', async (t) => {
    const src = join(dir, 'src.img');
    const back = join(dir, 'back.img');
    const data = randomBytes(24 * MiB);
    writeFileSync(src, data);
    const up = await run('nbdcopy', [src, c.sdc.uri('vol1')]);
    t.equal(up.code, 0, `nbdcopy file -> SDC ${up.out}`);
    const down = await run('nbdcopy', ['--connections=4', c.sdc.uri('vol1'), back]);
    t.equal(down.code, 0, `nbdcopy SDC -> file ${down.out}`);
    const got = readFileSync(back);
    t.equal(got.length, 64 * MiB);
    t.ok(got.subarray(0, data.length).equals(data), 'the first 24 MiB read back byte for byte');
  });

  await t.test('every written chunk is on exactly two SDSs, spread over all three', async (t) => {
    const per = c.sds.map((s) => chunksOn(s, vol1.volumeTreeId));
    const all = new Set(per.flatMap((m) => [...m.keys()]));
    t.ok(all.size >= 24, `${all.size} chunks written`);
    let wrong = 0;
    for (const idx of all) {
      const copies = per.reduce((n, m) => n + (m.get(idx)?.length ?? 0), 0);
      if (copies !== 2) wrong++;
    }
    t.equal(wrong, 0, 'no chunk with other than two copies');
    for (let i = 0; i < per.length; i++) t.ok(per[i]!.size > 0, `sds${i + 1} holds chunks (${per[i]!.size})`);
  });

  await t.test('TRIM of whole chunks frees them on every SDS; they read as zeros and are holes', async (t) => {
    // Default 1 MiB chunks: 8M..12M is four whole chunks, written by the nbdcopy above.
    const before = c.sds.map((s) => chunksOn(s, vol1.volumeTreeId));
    for (let idx = 8; idx < 12; idx++) t.ok(before.some((m) => m.has(idx)), `chunk ${idx} is stored before the trim`);
    ok(t, await qemuIo(c.sdc.uri('vol1'), 'discard 8M 4M', 'read -P 0 8M 4M', 'flush'), 'discard of four whole chunks, then zeros');
    const after = c.sds.map((s) => chunksOn(s, vol1.volumeTreeId));
    for (let idx = 8; idx < 12; idx++) t.notOk(after.some((m) => m.has(idx)), `chunk ${idx} is gone from every SDS`);
    t.ok(after.some((m) => m.has(7)) && after.some((m) => m.has(12)), 'the neighbouring chunks stay');
    const r = await run('nbdinfo', ['--map', '--json', c.sdc.uri('vol1')]);
    const extents = JSON.parse(r.out) as Array<{ offset: number; length: number; type: number }>;
    const at = (off: number) => extents.find((e) => e.offset <= off && off < e.offset + e.length)!;
    t.equal(at(9 * MiB).type & 1, 1, 'a trimmed chunk is a hole again');
    t.equal(at(7 * MiB).type & 1, 0, 'its neighbour is data');
  });

  await t.test('management listener: health and per-volume IO statistics', async (t) => {
    const health = await listenerJson<{ status: string; registered: boolean; volumes: Array<{ name: string }> }>(c.mdm, c.sdc.mgmtPort, '/health');
    t.equal(health.status, 'OK');
    t.equal(health.registered, true);
    t.same(health.volumes.map((v) => v.name).sort(), ['vol1', 'vol2']);
    const metrics = await listenerJson<{ volumes: Record<string, { ops: Record<string, { count: number; bytes: number }> } | null> }>(c.mdm, c.sdc.mgmtPort, '/stats');
    t.ok(metrics.volumes.vol1!.ops.write!.count > 0, 'writes counted');
    t.ok(metrics.volumes.vol1!.ops.read!.bytes >= 24 * MiB, 'read bytes counted');
    const control = await fetch(`http://127.0.0.1:${c.sdc.controlPort}/exports`);
    t.equal(control.status, 401, 'the control listener wants the cluster key');
    const auth = () => ({ authorization: controlAuthorization(c.mdm.clusterKey, 'test') });
    const exports = (await (await fetch(`http://127.0.0.1:${c.sdc.controlPort}/exports`, { headers: auth() })).json()) as Array<{ name: string; default: boolean; readOnly: boolean }>;
    t.same(exports.map((e) => [e.name, e.default, e.readOnly]).sort(), [['vol1', true, false], ['vol2', false, true]], 'GET /exports with the cluster key');
    const rescan = await fetch(`http://127.0.0.1:${c.sdc.controlPort}/rescan`, { method: 'POST', headers: auth() });
    t.equal(rescan.status, 200, 'POST /rescan');
  });

  await t.test('a volume mapped a moment ago is exported at once (no wait for the next heartbeat)', async (t) => {
    for (let i = 0; i < 8; i++) {
      await c.volume(`late${i}`, MiB);
      const r = await run('nbdinfo', ['--size', c.sdc.uri(`late${i}`)]);
      t.equal(r.out.trim(), String(MiB), `late${i} attached right after its mapping: ${r.out.trim()}`);
    }
  });
});
