/**
 * An SDS killed during snapshot IO (issue #14; docs/snapshots.md, "Failures"),
 * on real processes: an MDM with fast DOWN/rebuild timings, four SDSs (RF 2,
 * 256 KiB chunks), an SDC, and a libnbd writer (test/sdc/py/snap_writer.py)
 * writing 4 KiB patterns that name each write, one at a time, over a
 * prefilled volume. Mid-stream a snapshot is taken; the writer goes on
 * (first writes into the new layer copy chunks up); an SDS is SIGKILLed
 * during that IO; the PGs heal onto the others while IO goes on. Then a
 * second SDS is SIGKILLed while a second snapshot is being created. At the
 * end: the volume holds every acknowledged write; each snapshot that was
 * created reads exactly the image after some prefix of the writes, between
 * the writes acknowledged before its call started and those issued before
 * it returned (crash consistent: one writer, one request in flight); a
 * clone of the first reads the same; every chunk of every layer has two
 * byte-identical copies on the survivors.
 */
import t, { type Test } from 'tap';
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import readline from 'node:readline';
import type { Volume } from '../../src/shared/mdm-client.js';
import { missingClients } from '../helpers/nbd.js';
import { ROOT, tempDir } from '../helpers/proc.js';
import { startSdsProc, waitForMapEpoch, type SdsProc } from '../sds/cluster.js';
import { startFastMdm, waitFor, whole } from '../rebuild/cluster.js';
import { chunkFiles, startSdcProc } from './cluster.js';

// python3-libnbd lives in Debian's python; the default python3 may be another build.
const PYTHON = '/usr/bin/python3';
const skip = missingClients('nbdcopy', 'qemu-io') || missingClients(PYTHON);
const KiB = 1024;
const CHUNK = 256 * KiB;
const SIZE = 64 * CHUNK;
const BLOCKS = 256;
const BLOCK = 4 * KiB;
const FILL = 0x5a;

/** Mirrors snap_writer.py: where write i goes and what it writes. */
const blockOf = (i: number): number => (i * 97) % BLOCKS;
const offsetOf = (b: number): number => (b % 64) * CHUNK + Math.floor(b / 64) * 64 * KiB;
function pattern(i: number, b: number): Buffer {
  const head = Buffer.from(`write ${String(i).padStart(8, '0')} block ${String(b).padStart(4, '0')} `);
  return Buffer.concat(Array(Math.ceil(BLOCK / head.length)).fill(head) as Buffer[]).subarray(0, BLOCK);
}
/** The first write to each block (blockOf is a permutation of 0..BLOCKS-1). */
const firstWrite = new Map(Array.from({ length: BLOCKS }, (_, i) => [blockOf(i), i]));

interface Line { i?: number; t0?: number; t1?: number; error?: string; ready?: boolean; stopped?: number }

function writer(t: Test, uri: string) {
  const child = spawn(PYTHON, [join(ROOT, 'test/sdc/py/snap_writer.py'), uri, String(BLOCKS), String(CHUNK)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const acks: Array<{ t0: number; t1: number }> = [];
  let failure: string | undefined;
  let stopped: number | undefined;
  let stderr = '';
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    let v: Line;
    try { v = JSON.parse(l) as Line; } catch { failure = `unparsed: ${l}`; return; }
    if (v.error) failure = v.error;
    else if (v.stopped !== undefined) stopped = v.stopped;
    else if (v.i !== undefined) {
      if (v.i !== acks.length) failure = `write ${v.i} acknowledged out of order`;
      acks.push({ t0: v.t0!, t1: v.t1! });
    }
  });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const until = async (pred: () => boolean, what: string, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (failure) throw new Error(`writer: ${failure} ${stderr}`);
      if (pred()) return;
      if (child.exitCode !== null) throw new Error(`writer exited before ${what}: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${acks.length} writes acknowledged)`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    acks,
    /** Resolves once n more writes were acknowledged. */
    more: (n: number, what: string) => { const want = acks.length + n; return until(() => acks.length >= want, what); },
    async stop(): Promise<number> {
      child.stdin!.write('stop\n');
      await until(() => stopped !== undefined, 'the writer to stop');
      child.stdin!.end('quit\n');
      return stopped!;
    },
  };
}

/**
 * The prefixes of the write sequence an image can be: [lo, hi] such that
 * for every k in it, the image is the prefill with writes 0..k-1 applied;
 * null when it is no such image (a block from no write, torn or a mix).
 */
function prefixes(img: Buffer): { lo: number; hi: number } | null {
  const want = Buffer.alloc(SIZE, FILL);
  let lo = 0;
  let hi = Infinity;
  for (let b = 0; b < BLOCKS; b++) {
    const at = offsetOf(b);
    const m = /^write (\d{8}) block (\d{4}) /.exec(img.subarray(at, at + 32).toString('latin1'));
    if (m && Number(m[2]) === b) {
      const i = Number(m[1]);
      pattern(i, b).copy(want, at);
      // Write i is the last one to block b in the prefix: k > i, and the next write to b (i + BLOCKS) is not in it.
      lo = Math.max(lo, i + 1);
      hi = Math.min(hi, i + BLOCKS);
    } else {
      hi = Math.min(hi, firstWrite.get(b)!);
    }
  }
  return img.equals(want) && lo <= hi ? { lo, hi } : null;
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

t.test('an SDS killed during snapshot IO and during a snapshot create', { skip }, async (t) => {
  const mdm = await startFastMdm(t);
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16, chunkBytes: CHUNK });
  const [sds, sdc] = await Promise.all([Promise.all(['sds1', 'sds2', 'sds3', 'sds4'].map((n) => startSdsProc(t, mdm, n))), startSdcProc(t, mdm, 'sdc1')]);
  await waitForMapEpoch(mdm, pool.id, sds, 60_000);
  const admin = mdm.admin;
  const vol = await admin.createVolume({ name: 'vol1', storagePoolId: pool.id, sizeBytes: SIZE });
  await admin.mapVolume(vol.id, sdc.id);
  const fill = await run('qemu-io', ['-f', 'raw', sdc.uri('vol1'), '-c', `write -P ${FILL} 0 ${SIZE}`, '-c', 'flush']);
  t.equal(fill.code, 0, `volume prefilled ${fill.code ? fill.out : ''}`);

  const w = writer(t, sdc.uri('vol1'));
  await w.more(BLOCKS, 'the writer to cover every block');
  // A snapshot mid-stream: the bounds of its cut in the write sequence.
  const cut = async (name: string): Promise<{ snap: Volume | Error; started: number; returned: number }> => {
    const started = Date.now();
    const snap = await admin.createSnapshot(vol.id, name).catch((e: unknown) => e as Error);
    return { snap, started, returned: Date.now() };
  };
  const first = await cut('vol1.s1');
  t.notOk(first.snap instanceof Error, `snapshot s1 created mid-stream ${first.snap instanceof Error ? first.snap.message : ''}`);
  await w.more(100, 'writes into the new layer (copy-on-write)');

  // SIGKILL during that IO: an SDS holding copies of the volume's PGs.
  const victim = sds[3]!;
  const killedAt = w.acks.length;
  await victim.proc.stop('SIGKILL');
  await w.more(100, 'writes after the SIGKILL (degraded)');
  const live = sds.slice(0, 3);
  await waitFor(mdm, pool.id, (mp, st) => whole(2)(mp, st) && mp.pgs.every((p) => !p.members.includes(victim.id)), 90_000, 'the PGs to heal without the first victim');
  t.ok(w.acks.length > killedAt + 100, `${w.acks.length - killedAt} writes acknowledged since the first SIGKILL`);

  // SIGKILL during a snapshot create: it fails cleanly or is consistent; the volume keeps serving.
  const second = sds[2]!;
  const pending = cut('vol1.s2');
  await new Promise((r) => setTimeout(r, 2));
  second.proc.child.kill('SIGKILL');
  const s2 = await pending;
  if (s2.snap instanceof Error) {
    t.match(s2.snap.message, /\S/, `snapshot s2 failed with an error: ${s2.snap.message}`);
    t.notOk((await admin.listSnapshots({ volumeId: vol.id })).some((s) => s.name === 'vol1.s2'), 'and left no snapshot behind');
  } else {
    t.pass('snapshot s2 created while an SDS was killed');
  }
  await w.more(100, 'writes after the second SIGKILL');
  const survivors = live.slice(0, 2);
  await waitFor(mdm, pool.id, (mp, st) => whole(2)(mp, st) && mp.pgs.every((p) => p.members.every((id) => survivors.some((s) => s.id === id))), 90_000, 'the PGs to heal onto the two survivors');
  const total = await w.stop();
  t.equal(total, w.acks.length, `${total} writes, every one acknowledged`);

  const dir = tempDir(t, 'pflex-snapfail-');
  const image = async (name: string): Promise<Buffer> => {
    const file = join(dir, `${name}.img`);
    const r = await run('nbdcopy', [sdc.uri(name), file]);
    t.equal(r.code, 0, `nbdcopy ${name} ${r.code ? r.out : ''}`);
    return readFileSync(file);
  };
  const checkCut = async (name: string, c: { started: number; returned: number }): Promise<void> => {
    // Acknowledged before the call started: in it. Issued after it returned: not in it.
    const ackedBefore = w.acks.filter((a) => a.t1 < c.started).length;
    const issuedBefore = w.acks.filter((a) => a.t0 <= c.returned).length;
    const p = prefixes(await image(name));
    t.ok(p && p.lo <= issuedBefore && p.hi >= ackedBefore,
      `${name} is the image after a prefix of the writes (${p ? `${p.lo}..${p.hi}` : 'none'}) within the cut (${ackedBefore}..${issuedBefore})`);
  };
  const end = prefixes(await image('vol1'));
  t.ok(end && end.lo <= total && end.hi >= total, `the volume holds every acknowledged write (prefix ${end ? `${end.lo}..${end.hi}` : 'none'}, ${total} written)`);
  await admin.mapVolume((first.snap as Volume).id, sdc.id);
  await checkCut('vol1.s1', first);
  const clone = await admin.cloneSnapshot((first.snap as Volume).id, 'vol1.c1');
  await admin.mapVolume(clone.id, sdc.id);
  await checkCut('vol1.c1', first);
  if (!(s2.snap instanceof Error)) {
    await admin.mapVolume(s2.snap.id, sdc.id);
    await checkCut('vol1.s2', s2);
  }

  // Both copies agree: every chunk of every layer on both survivors, byte-identical.
  await waitForMapEpoch(mdm, pool.id, survivors, 30_000);
  const copies = (s: SdsProc) => chunkFiles(s, vol.volumeTreeId);
  const [a, b] = survivors.map(copies) as [Map<string, Buffer>, Map<string, Buffer>];
  const differ = [...new Set([...a.keys(), ...b.keys()])].filter((k) => !a.get(k) || !b.get(k) || !a.get(k)!.equals(b.get(k)!));
  t.ok(a.size >= 64, `${a.size} chunk files on ${survivors[0]!.name}`);
  t.same(differ, [], 'the two copies of every chunk of every layer are byte-identical');
});
