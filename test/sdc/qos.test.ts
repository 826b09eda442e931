/**
 * QoS per volume per SDC, with a real NBD client (libnbd) on one connection
 * kept open throughout: limits set at the MDM reach the SDC at its next
 * rescan and throttle requests already flowing (queued, not failed), a raised
 * limit lets them go faster without a remap, a snapshot cut during throttled
 * writes charges each write once, and a read-only mapped snapshot has its
 * own limit. Elapsed times are only lower-bounded from the limit: N requests
 * at L IOPS take at least (N - burst) / L seconds, N bytes at B bytes/s at
 * least (N - burst) / B; a slow machine only makes them longer. The one
 * upper bound (after the raise) is the old limit's lower bound, i.e. the raise
 * must have taken effect; the unlimited phase shows the machine is far faster.
 * Last, mapping changes reach a connection still open to the volume,
 * although the SDC's IO token for it (5 min, the default lifetime) has not
 * expired: an unmap ends its IO; after an expand it goes on, and after a
 * change to read-only its writes are refused.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { listenerJson } from '../helpers/listener.js';
import { missingClients } from '../helpers/nbd.js';
import { startCluster, type Cluster } from './cluster.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = join(fileURLToPath(new URL('.', import.meta.url)), '../../../test/sdc/py/qos_phases.py');
const skip = missingClients(PYTHON) || missingClients('nbdsh');
const N = 30;
const KiB = 1024;

interface Phase { seconds: number; requests: number }
interface Cmd { op: 'write' | 'read'; size: number; n: number; offset?: number; byte: number }
interface QosView { iopsLimit: number; bandwidthLimitBytesPerSec: number; requestsQueued: number; waitedMs: number }
interface Health { volumes: Array<{ name: string; sizeBytes: number; readOnly: boolean; qos: QosView }> }

/** One libnbd connection to an export, kept open; run() times one phase of requests on it. */
function client(t: Test, uri: string): { run: (cmd: Cmd) => Promise<Phase>; end: () => Promise<number | null> } {
  const child = spawn(PYTHON, [SCRIPT, uri], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const waiters: Array<{ resolve: (p: Phase) => void; reject: (e: Error) => void }> = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => waiters.shift()?.resolve(JSON.parse(l) as Phase));
  child.on('exit', (code) => { for (const w of waiters.splice(0)) w.reject(new Error(`qos_phases.py exited (${code}): ${stderr}`)); });
  return {
    run: (cmd) => new Promise<Phase>((resolve, reject) => {
      waiters.push({ resolve, reject });
      child.stdin.write(`${JSON.stringify(cmd)}\n`);
    }),
    end: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve(child.exitCode);
      child.once('exit', (code) => resolve(code));
      child.stdin.end();
    }),
  };
}

type VolumeHealth = Health['volumes'][number];

/** The SDC's view of an export (undefined: not exported), once `ok` holds of it; 30 s at most. */
async function sdcShows(c: Cluster, name: string, what: string, ok: (v: VolumeHealth | undefined) => boolean): Promise<VolumeHealth | undefined> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = (await listenerJson<Health>(c.mdm, c.sdc.mgmtPort, '/health')).volumes.find((x) => x.name === name);
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`the SDC did not show ${what} for ${name} in 30 s: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The QoS the SDC applies to an export, once it shows the given limits. */
async function pickedUp(c: Cluster, name: string, iops: number, bw: number): Promise<QosView> {
  const v = await sdcShows(c, name, `QoS ${iops}/${bw}`, (x) => x?.qos.iopsLimit === iops && x.qos.bandwidthLimitBytesPerSec === bw);
  return v!.qos;
}

t.test('QoS limits of a mapping throttle a live connection', { skip }, async (t) => {
  const c = await startCluster(t, { pgCount: 16 });
  const admin = c.mdm.admin;
  const vol = await c.volume('vol1', 16 * 1024 * KiB);
  const nbd = client(t, c.sdc.uri('vol1'));

  const free = await nbd.run({ op: 'write', size: 4 * KiB, n: N, byte: 0xa5 });
  t.equal(free.requests, N, `unlimited: ${N} writes in ${free.seconds.toFixed(2)} s`);

  const iops = 10;
  const mapped = await admin.setMappingQos(vol.id, c.sdc.id, { iopsLimit: iops, bandwidthLimitBytesPerSec: 0 });
  t.match(mapped.mappings.find((m) => m.sdcId === c.sdc.id), { iopsLimit: iops, bandwidthLimitBytesPerSec: 0 }, 'the mapping shows the limit');
  await pickedUp(c, 'vol1', iops, 0);
  const limited = await nbd.run({ op: 'read', size: 4 * KiB, n: N, byte: 0xa5 });
  const oldBound = (N - 2) / iops;
  t.ok(limited.seconds >= oldBound, `${N} reads at ${iops} IOPS on the same connection: ${(N / limited.seconds).toFixed(1)} IOPS (took ${limited.seconds.toFixed(2)} s ≥ ${oldBound.toFixed(1)} s)`);

  // Raised live: no remap, the same connection.
  await admin.setMappingQos(vol.id, c.sdc.id, { iopsLimit: 1000, bandwidthLimitBytesPerSec: 0 });
  await pickedUp(c, 'vol1', 1000, 0);
  const raised = await nbd.run({ op: 'read', size: 4 * KiB, n: N, byte: 0xa5 });
  t.ok(raised.seconds < oldBound, `after raising to 1000 IOPS: ${N} reads in ${raised.seconds.toFixed(2)} s (< ${oldBound.toFixed(1)} s, the old limit's minimum; unlimited took ${free.seconds.toFixed(2)} s)`);

  const bw = 512 * KiB;
  await admin.setMappingQos(vol.id, c.sdc.id, { iopsLimit: 0, bandwidthLimitBytesPerSec: bw });
  await pickedUp(c, 'vol1', 0, bw);
  const bytes = N * 64 * KiB;
  const slow = await nbd.run({ op: 'write', size: 64 * KiB, n: N, byte: 0x5a });
  t.ok(slow.seconds >= (bytes - bw) / bw, `${bytes} bytes written at ${bw} B/s: ${(bytes / slow.seconds / KiB).toFixed(0)} KiB/s (took ${slow.seconds.toFixed(2)} s ≥ ${((bytes - bw) / bw).toFixed(1)} s)`);

  await t.test('a snapshot cut during throttled writes charges each write once', async (t) => {
    const snapIops = 20;
    await admin.setMappingQos(vol.id, c.sdc.id, { iopsLimit: snapIops, bandwidthLimitBytesPerSec: 0 });
    const before = await pickedUp(c, 'vol1', snapIops, 0);
    const writes = nbd.run({ op: 'write', size: 4 * KiB, n: N, offset: 8 * 1024 * KiB, byte: 0x3c });
    const snap = await admin.createSnapshot(vol.id, 'vol1-snap');
    const done = await writes;
    t.ok(done.seconds >= (N - 2) / snapIops, `${N} writes at ${snapIops} IOPS around the snapshot took ${done.seconds.toFixed(2)} s`);
    const after = await pickedUp(c, 'vol1', snapIops, 0);
    t.equal(after.requestsQueued - before.requestsQueued, N, 'each write went through the limiter exactly once');
    t.not(snap.layerId, (await admin.getVolume(vol.id)).layerId, 'the volume writes a new layer after the cut');

    await t.test('QoS on a read-only mapped snapshot', async (t) => {
      const m = await admin.mapVolume(snap.id, c.sdc.id);
      t.equal(m.mappings[0]!.accessMode, 'readOnly');
      const ro = 10;
      await admin.setMappingQos(snap.id, c.sdc.id, { iopsLimit: ro, bandwidthLimitBytesPerSec: 0 });
      await pickedUp(c, 'vol1-snap', ro, 0);
      const snapNbd = client(t, c.sdc.uri('vol1-snap'));
      const n = 20;
      const reads = await snapNbd.run({ op: 'read', size: 4 * KiB, n, byte: 0x5a });
      t.ok(reads.seconds >= (n - 2) / ro, `${n} reads of the snapshot at ${ro} IOPS took ${reads.seconds.toFixed(2)} s (≥ ${((n - 2) / ro).toFixed(1)} s)`);
      const q = await pickedUp(c, 'vol1-snap', ro, 0);
      t.ok(q.requestsQueued >= n, `the snapshot's reads went through its limiter (${q.requestsQueued})`);
      t.equal(await snapNbd.end(), 0, 'no snapshot read failed');
    });
  });

  t.equal(await nbd.end(), 0, 'no request failed');

  await t.test('an unmap ends IO on a connection still open, before its IO token expires', async (t) => {
    const v2 = await c.volume('vol2', 8 * 1024 * KiB);
    await admin.setMappingQos(v2.id, c.sdc.id, { iopsLimit: 500, bandwidthLimitBytesPerSec: 0 });
    await pickedUp(c, 'vol2', 500, 0);
    const held = client(t, c.sdc.uri('vol2'));
    t.equal((await held.run({ op: 'write', size: 4 * KiB, n: 1, byte: 0x7e })).requests, 1, 'a connection to vol2 wrote');
    t.equal((await held.run({ op: 'read', size: 4 * KiB, n: 1, byte: 0x7e })).requests, 1, 'and reads while mapped');
    await admin.unmapVolume(v2.id, c.sdc.id);
    await sdcShows(c, 'vol2', 'the unmap', (v) => v === undefined);
    // qos_phases.py exits on the libnbd error, with it on stderr.
    await t.rejects(held.run({ op: 'read', size: 4 * KiB, n: 1, byte: 0x7e }), /exited \(1\):[^]*nbd/, 'the held connection\'s next read fails');
  });

  await t.test('an expand and a change to read-only reach a connection still open', async (t) => {
    const v3 = await c.volume('vol3', 8 * 1024 * KiB);
    const held = client(t, c.sdc.uri('vol3'));
    t.equal((await held.run({ op: 'write', size: 4 * KiB, n: 1, byte: 0x5a })).requests, 1, 'a connection to vol3 wrote');
    await admin.resizeVolume(v3.id, 16 * 1024 * KiB);
    await sdcShows(c, 'vol3', 'the new size', (v) => v?.sizeBytes === 16 * 1024 * KiB);
    const fresh = client(t, c.sdc.uri('vol3'));
    t.equal((await fresh.run({ op: 'write', size: 4 * KiB, n: 1, offset: 12 * 1024 * KiB, byte: 0x6b })).requests, 1, 'a new connection writes past the old end');
    t.equal((await held.run({ op: 'write', size: 4 * KiB, n: 1, offset: 4 * KiB, byte: 0x5a })).requests, 1, 'the held connection still writes');
    t.equal((await held.run({ op: 'read', size: 4 * KiB, n: 2, byte: 0x5a })).requests, 2, 'and reads');
    await admin.setMappingAccess(v3.id, c.sdc.id, 'readOnly');
    await sdcShows(c, 'vol3', 'read-only access', (v) => v?.readOnly === true);
    t.equal((await fresh.run({ op: 'read', size: 4 * KiB, n: 1, offset: 12 * 1024 * KiB, byte: 0x6b })).requests, 1, 'reads go on');
    // Before this SDC applied access changes in place, the held connection's
    // write went through on the read-write IO token it still had.
    await t.rejects(held.run({ op: 'write', size: 4 * KiB, n: 1, offset: 8 * KiB, byte: 0x5a }), /exited \(1\):[^]*Operation not permitted/, 'a write on the held connection is refused (EPERM)');
    await t.rejects(fresh.run({ op: 'write', size: 4 * KiB, n: 1, offset: 8 * KiB, byte: 0x5a }), /exited \(1\):[^]*Operation not permitted/, 'so is one on the connection opened read-write after the expand');
  });

  await t.test('bad QoS input is refused', async (t) => {
    await t.rejects(admin.setMappingQos(vol.id, c.sdc.id, { iopsLimit: -1, bandwidthLimitBytesPerSec: 0 }), { code: 'PFLEX_ERR_BAD_REQUEST' });
    await t.rejects(admin.setMappingQos(vol.id, 999, { iopsLimit: 1, bandwidthLimitBytesPerSec: 0 }), { code: 'PFLEX_ERR_NOT_FOUND' });
  });
});
