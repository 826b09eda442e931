/**
 * An SDS that did not stop cleanly (power loss) is fenced out of its PGs when
 * it registers again, then rebuilt; a graceful stop or a process crash
 * (SIGKILL: the page cache survives) keeps its PGs. Real MDM and SDS
 * processes on loopback; the power loss is staged by rewriting the run-state
 * file as a machine restart leaves it (running, another boot id).
 */
import t from 'tap';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { Status } from '../../src/dataplane/proto.js';
import type { PgMap } from '../../src/shared/mdm-client.js';
import { previousStop, RUN_STATE_FILE, type RunState } from '../../src/sds/clean-stop.js';
import { CHUNK_FILE_SUFFIX, chunkFileData, chunkFileWords } from '../../src/sds/store/chunk-file-layout.js';
import { freePort, spawnPflex, tempDir } from '../helpers/proc.js';
import { Router, waitForMapEpoch, type Mdm, type SdsProc } from './cluster.js';
import { startFastMdm } from '../rebuild/cluster.js';

/** Starts (or restarts) an SDS process on a given storage root and ports (fixed, as in production: peers keep their connections' address). */
async function startOn(t: Test, mdm: Mdm, name: string, dir: string, ports: number[]): Promise<SdsProc> {
  const proc = spawnPflex(t, [
    'sds-server', 'start', '--data-dir', dir, '--mdm', mdm.url, '--cluster-key-file', mdm.keyFile, '--name', name,
    '--pd', 'pd1', '--pool', 'pool1', '--host', '127.0.0.1', '--port', String(ports[0]), '--control-port', String(ports[1]), '--mgmt-port', String(ports[2]),
  ]);
  const listening = await proc.waitForLog((l) => l.msg === 'sds listening', 60_000);
  const registered = await proc.waitForLog((l) => l.msg === 'sds registered', 60_000);
  return {
    name, dir, proc, id: registered.sdsId as number,
    port: listening.port as number, controlPort: listening.controlPort as number, mgmtPort: listening.mgmtPort as number,
  };
}

/**
 * Same chunk files holding the same data in two PG directories. Only the data
 * after the checksum table is compared: the table may say "never written" (0)
 * on one side where the other holds the CRC of a zero block.
 */
function sameFiles(a: string, b: string): boolean {
  const list = (d: string): string[] => (existsSync(d) ? readdirSync(d).filter((n) => n.endsWith(CHUNK_FILE_SUFFIX)).sort() : []);
  const na = list(a);
  return JSON.stringify(na) === JSON.stringify(list(b)) && na.every((n) => {
    const [x, y] = [readFileSync(join(a, n)), readFileSync(join(b, n))];
    return x.length === y.length && chunkFileData(x).equals(chunkFileData(y));
  });
}

/** Chunk data by "pg-N/name" under a storage root (the files without their checksum tables). */
function chunkData(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const pg of readdirSync(root)) {
    for (const n of readdirSync(join(root, pg)).filter((f) => f.endsWith(CHUNK_FILE_SUFFIX))) {
      out.set(`${pg}/${n.slice(0, -CHUNK_FILE_SUFFIX.length)}`, chunkFileData(readFileSync(join(root, pg, n))));
    }
  }
  return out;
}

/**
 * Rewrites a stopped SDS's store as the build before one-file chunks left it:
 * X.dat (the data) and X.crc (the checksum words of its blocks) for each
 * X.chk. Returns the chunks' data.
 */
function toTwoFileLayout(root: string): Map<string, Buffer> {
  const data = chunkData(root);
  for (const [id, bytes] of data) {
    const file = join(root, `${id}${CHUNK_FILE_SUFFIX}`);
    const table = chunkFileWords(readFileSync(file));
    writeFileSync(join(root, `${id}.dat`), bytes);
    writeFileSync(join(root, `${id}.crc`), table);
    rmSync(file);
  }
  return data;
}

function runState(dir: string): RunState {
  return JSON.parse(readFileSync(join(dir, RUN_STATE_FILE), 'utf8')) as RunState;
}

const holding = (map: PgMap, id: number): number[] => map.pgs.filter((p) => p.members.includes(id) || (p.joining ?? []).includes(id)).map((p) => p.pg);

async function waitForMap(mdm: Mdm, poolId: number, pred: (m: PgMap) => boolean, what: string, timeoutMs = 60_000): Promise<PgMap> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await mdm.admin.getPgMap(poolId);
    if (pred(m)) return m;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(m.pgs)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('the previous-stop rule', async (t) => {
  t.same(previousStop(undefined, 'b1', false), { clean: true, reason: 'first start' });
  t.same(previousStop(undefined, 'b1', true), { clean: false, reason: 'unknown history' });
  t.same(previousStop({ state: 'stopped', bootId: 'b0', atMs: 1 }, 'b1', true), { clean: true, reason: 'graceful stop' });
  t.same(previousStop({ state: 'running', bootId: 'b1', atMs: 1 }, 'b1', true), { clean: true, reason: 'process crash' });
  t.same(previousStop({ state: 'running', bootId: 'b0', atMs: 1 }, 'b1', true), { clean: false, reason: 'machine restart' });
  t.same(previousStop({ state: 'running', atMs: 1 }, undefined, true), { clean: false, reason: 'machine restart' }, 'no boot id: cannot tell, not clean');
  t.same(previousStop({ state: 'stopped', bootId: 'b1', unclean: true, atMs: 1 }, 'b1', true), { clean: false, reason: 'unreported unclean stop' });
});

t.test('SDS processes: graceful stop and SIGKILL keep the PGs, a power loss fences the SDS out and it is rebuilt', async (top) => {
  const t = top; // processes belong to this test (a subtest's teardown would kill them)
  // Nobody turns DOWN in this test (a slow restart on a loaded machine would be evicted, which is not what is tested); rebuild ticks fast.
  const mdm = await startFastMdm(t, { downAfterMs: 600_000, staleAfterMissedBeats: 100 });
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 8 });
  const dir1 = tempDir(t, 'pflex-cleanstop-sds1-');
  const ports1 = [await freePort(), await freePort(), await freePort()];
  let sds1 = await startOn(t, mdm, 'sds1', dir1, ports1);
  const sds2 = await startOn(t, mdm, 'sds2', tempDir(t, 'pflex-cleanstop-sds2-'), [0, 0, 0]);
  await waitForMapEpoch(mdm, pool.id, [sds1, sds2]);
  const volume = await mdm.admin.createVolume({ name: 'vol1', storagePoolId: pool.id, sizeBytes: 16 << 20 });
  const io = new Router(mdm, pool.id, volume.id, volume.volumeTreeId);
  t.teardown(() => io.close());
  await io.refresh();
  const written = new Map<number, Buffer>();
  const writeAll = async (t: Test): Promise<void> => {
    for (let chunk = 0; chunk < 8; chunk++) {
      const data = randomBytes(8192);
      t.equal((await io.write(chunk, 0, data)).status, Status.OK, `write chunk ${chunk}`);
      written.set(chunk, data);
    }
  };
  const readAll = async (t: Test, what: string): Promise<void> => {
    await io.refresh();
    const bad: number[] = [];
    for (const [chunk, data] of written) {
      const r = await io.read(chunk, 0, data.length);
      if (r.status !== Status.OK || !r.payload.equals(data)) bad.push(chunk);
    }
    t.same(bad, [], `every chunk reads back ${what}`);
  };
  await writeAll(t);
  t.equal(runState(dir1).state, 'running', 'a running SDS says so in its run-state file');
  const before = await mdm.admin.getPgMap(pool.id);
  t.same(holding(before, sds1.id), [0, 1, 2, 3, 4, 5, 6, 7], 'sds1 holds every PG (2 SDSs, 2 copies)');

  await t.test('a graceful stop and start keeps the PGs', async (t) => {
    t.equal(await sds1.proc.stop('SIGTERM'), 0, 'sds1 exits 0 on SIGTERM');
    t.equal(runState(dir1).state, 'stopped', 'the stop is recorded after the final flush');
    sds1 = await startOn(top, mdm, 'sds1', dir1, ports1);
    t.notOk(sds1.proc.logs.some((l) => /did not stop cleanly/.test(String(l.msg))), 'no unclean-stop warning');
    const after = await mdm.admin.getPgMap(pool.id);
    t.same(holding(after, sds1.id), holding(before, sds1.id), 'sds1 is still in all its PGs');
    t.equal(after.epoch, before.epoch, 'the map did not change');
  });

  await t.test('an SDS upgraded in place converts a store of the two-file layout at start and keeps its PGs', async (t) => {
    t.equal(await sds1.proc.stop('SIGTERM'), 0, 'sds1 exits 0 on SIGTERM');
    const root = join(dir1, 'chunks');
    const data = toTwoFileLayout(root);
    t.ok(data.size >= 8, `the store was put back into the two-file layout (${data.size} chunks)`);
    sds1 = await startOn(top, mdm, 'sds1', dir1, ports1);
    const converted = sds1.proc.logs.filter((l) => /converted from the two-file layout/.test(String(l.msg)));
    t.equal(converted.reduce((n, l) => n + Number(l.chunks), 0), data.size, 'every chunk converted, one log line per PG');
    const after = chunkData(root);
    t.same([...after.keys()].sort(), [...data.keys()].sort(), 'the same chunks, each in one file');
    t.ok([...data].every(([name, bytes]) => after.get(name)?.equals(bytes)), 'holding the same data');
    t.same(readdirSync(root).flatMap((d) => readdirSync(join(root, d))).filter((n) => !n.endsWith(CHUNK_FILE_SUFFIX)), [], 'no file of the old layout is left');
    t.same(holding(await mdm.admin.getPgMap(pool.id), sds1.id), holding(before, sds1.id), 'sds1 is still in all its PGs');
    await readAll(t, 'after the upgrade');
  });

  await t.test('a SIGKILL (process crash, same boot) keeps the PGs: the page cache survived', async (t) => {
    await sds1.proc.stop('SIGKILL');
    t.equal(runState(dir1).state, 'running', 'a killed SDS leaves "running" behind');
    sds1 = await startOn(top, mdm, 'sds1', dir1, ports1);
    t.notOk(sds1.proc.logs.some((l) => /did not stop cleanly/.test(String(l.msg))), 'no unclean-stop warning');
    t.same(holding(await mdm.admin.getPgMap(pool.id), sds1.id), holding(before, sds1.id), 'sds1 is still in all its PGs');
    await readAll(t, 'after the SIGKILL');
  });

  await t.test('after a power loss the SDS is fenced out of every PG at registration, then rebuilt', async (t) => {
    await waitForMapEpoch(mdm, pool.id, [sds1, sds2]);
    // The power loss takes the writes below away from sds1: its chunk files go back to this copy.
    await sds1.proc.stop('SIGTERM');
    const flushedCopy = join(tempDir(t, 'pflex-cleanstop-old-'), 'chunks');
    cpSync(join(dir1, 'chunks'), flushedCopy, { recursive: true });
    sds1 = await startOn(top, mdm, 'sds1', dir1, ports1);
    await waitForMapEpoch(mdm, pool.id, [sds1, sds2]);
    await writeAll(t);
    await sds1.proc.stop('SIGKILL');
    rmSync(join(dir1, 'chunks'), { recursive: true });
    cpSync(flushedCopy, join(dir1, 'chunks'), { recursive: true });
    const stale = [0, 1, 2, 3, 4, 5, 6, 7].filter((pg) => !sameFiles(join(dir1, 'chunks', `pg-${pg}`), join(sds2.dir, 'chunks', `pg-${pg}`)));
    t.ok(stale.length > 0, `sds1 lacks acknowledged writes in PGs ${stale.join(', ')}`);
    // What a machine restart leaves: the run was "running" under another boot.
    const s = runState(dir1);
    writeFileSync(join(dir1, RUN_STATE_FILE), JSON.stringify({ ...s, bootId: 'a-boot-before-the-power-loss' }));
    const mapBefore = await mdm.admin.getPgMap(pool.id);
    const epochBefore = mapBefore.epoch;
    t.same(holding(mapBefore, sds1.id), [0, 1, 2, 3, 4, 5, 6, 7], 'sds1 was still in every PG when it lost power');
    sds1 = await startOn(top, mdm, 'sds1', dir1, ports1);
    const warned = sds1.proc.logs.find((l) => /did not stop cleanly/.test(String(l.msg)));
    t.equal(warned?.reason, 'machine restart', 'the SDS knows its previous run ended with the machine');
    const report = await mdm.proc.waitForLog((l) => l.msg === 'SDS returned from an unclean stop: fenced out of its PGs (the last member of a PG stays)', 10_000);
    t.same(report.fencedPgs, [0, 1, 2, 3, 4, 5, 6, 7], 'the MDM fenced sds1 out of every PG before answering its registration');
    t.same(report.keptPgs, [], 'no PG had sds1 as its last member');
    // Registration was answered after the fence: no map read now shows sds1 serving a PG it had
    // (rebuild may be adding it back already, as a joining member that copies the whole PG first).
    const fenced = await mdm.admin.getPgMap(pool.id);
    t.ok(fenced.epoch > epochBefore, 'new epochs');
    t.ok(fenced.pgs.every((p) => p.members[0] === sds2.id), 'sds2 is the primary of every PG');
    t.notOk(runState(dir1).unclean, 'once reported, the unclean stop is not reported again');
    await readAll(t, 'while sds1 is out');
    const whole = await waitForMap(mdm, pool.id, (m) => m.pgs.every((p) => p.members.length === 2 && (p.joining ?? []).length === 0), 'the PGs to be rebuilt onto sds1', 90_000);
    t.same(holding(whole, sds1.id), [0, 1, 2, 3, 4, 5, 6, 7], 'rebuild brought sds1 back into every PG');
    await readAll(t, 'after the rebuild');
    const differ = whole.pgs.filter((p) => !sameFiles(join(dir1, 'chunks', `pg-${p.pg}`), join(sds2.dir, 'chunks', `pg-${p.pg}`))).map((p) => p.pg);
    t.same(differ, [], 'sds1 holds byte-identical chunks again (the writes it lost were copied back)');
  });
});
