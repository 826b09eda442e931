/**
 * Three SDS processes and a real MDM on loopback: replication to
 * byte-identical replicas, SIGKILL of an SDS in the middle of a write stream
 * without losing an acknowledged write, stale epoch and bad token refusals,
 * a corrupt chunk file read as an IO error, and the control and mgmt
 * listeners.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { DataClient } from '../../src/dataplane/client.js';
import { Flag, Status, statusName } from '../../src/dataplane/proto.js';
import { controlAuthorization } from '../../src/shared/control-auth.js';
import { ZERO_BLOCK_CRC } from '../../src/sds/store/block-crc.js';
import { CHUNK_FILE_SUFFIX, chunkFileData, chunkFileWords, dataPosition } from '../../src/sds/store/chunk-file-layout.js';
import { Rng } from './rng.js';
import { Router, startMdm, startSdsProc, waitForMapEpoch, type SdsProc } from './cluster.js';
import { listenerJson } from '../helpers/listener.js';

const CHUNK = 1024 * 1024;

function pgFiles(s: SdsProc, pg: number): Map<string, Buffer> {
  const dir = join(s.dir, 'chunks', `pg-${pg}`);
  const out = new Map<string, Buffer>();
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) out.set(name, readFileSync(join(dir, name)));
  return out;
}

/**
 * Two replicas' chunk files hold the same thing. A checksum word of 0
 * ("never written") and the CRC of a zero block mean the same for a zero
 * block; a rebuild that stored a whole chunk image writes the latter where
 * the source kept the former, so the checksum table at the head of a .chk
 * file is compared with it normalised, and the data after it exactly.
 */
function sameContent(name: string, a: Buffer, b: Buffer | undefined): boolean {
  if (!b || a.length !== b.length) return false;
  if (!name.endsWith(CHUNK_FILE_SUFFIX)) return a.equals(b);
  const table = (buf: Buffer): Buffer => {
    const out = chunkFileWords(buf);
    for (let i = 0; i + 4 <= out.length; i += 4) if (out.readUInt32LE(i) === ZERO_BLOCK_CRC) out.writeUInt32LE(0, i);
    return out;
  };
  return table(a).equals(table(b)) && chunkFileData(a).equals(chunkFileData(b));
}

t.test('SDS processes with a real MDM', async (t) => {
  const seed = Number(process.env.PFLEX_SEED ?? Date.now() % 1e9);
  t.comment(`seed ${seed}`);
  const rng = new Rng(seed);
  const started = Date.now();
  const mdm = await startMdm(t);
  t.comment(`mdm up in ${Date.now() - started} ms`);
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16 });
  const sds: SdsProc[] = await Promise.all(['sds1', 'sds2', 'sds3'].map((name) => startSdsProc(t, mdm, name)));
  t.comment(`sds up in ${Date.now() - started} ms`);
  await waitForMapEpoch(mdm, pool.id, sds);
  t.comment(`cluster up in ${Date.now() - started} ms`);
  const volume = await mdm.admin.createVolume({ name: 'vol1', storagePoolId: pool.id, sizeBytes: 64 * CHUNK });
  const io = new Router(mdm, pool.id, volume.id, volume.volumeTreeId);
  t.teardown(() => io.close());
  await io.refresh();
  const byId = (id: number) => sds.find((s) => s.id === id)!;

  await t.test('after random writes the replicas are byte-identical on disk', async (t) => {
    const pending = [];
    for (let i = 0; i < 300; i++) {
      const len = 1 + rng.int(rng.int(3) === 0 ? 300_000 : 9000);
      const off = rng.int(CHUNK - len);
      pending.push(io.write(rng.int(24), off, rng.bytes(len), rng.int(8) === 0 ? Flag.FUA : 0).then((r) => r.status));
      if (pending.length >= 16) t.same(new Set(await Promise.all(pending.splice(0))), new Set([Status.OK]));
    }
    t.same(new Set(await Promise.all(pending)), new Set([Status.OK]));
    let compared = 0;
    for (const e of io.map.pgs) {
      const [a, b] = e.members.map((id) => pgFiles(byId(id), e.pg));
      if (a!.size === 0) continue;
      compared++;
      t.same([...a!.keys()], [...b!.keys()], `pg ${e.pg}: same chunk files`);
      t.same([...a!].filter(([n, buf]) => !buf.equals(b!.get(n)!)).map(([n]) => n), [], `pg ${e.pg}: identical bytes`);
    }
    t.ok(compared >= 4, `compared ${compared} PGs`);
  });

  await t.test('stale epoch, wrong primary and bad token are refused with their own status', async (t) => {
    const chunkIndex = 3;
    const pg = io.pgOf(chunkIndex);
    const entry = io.map.pgs.find((p) => p.pg === pg)!;
    const primary = byId(entry.members[0]!);
    const secondary = byId(entry.members[1]!);
    const c = new DataClient({ host: '127.0.0.1', port: primary.port });
    t.teardown(() => c.close());
    const addr = { pgId: pg, epoch: entry.epoch, volumeId: volume.id, treeId: volume.volumeTreeId, chunkIndex, layerId: 0 };
    const d = Buffer.alloc(4096, 1);
    const stale = await c.write({ ...addr, epoch: entry.epoch - 1 }, 0, d, io.token);
    t.equal(statusName(stale.status), 'STALE_EPOCH');
    t.equal(stale.epoch, entry.epoch, 'the reply names the current epoch');
    const bad = Buffer.from(io.token);
    bad[20]! ^= 1;
    t.equal(statusName((await c.write(addr, 0, d, bad)).status), 'BAD_TOKEN');
    const c2 = new DataClient({ host: '127.0.0.1', port: secondary.port });
    t.teardown(() => c2.close());
    t.equal(statusName((await c2.write(addr, 0, d, io.token)).status), 'NOT_PRIMARY');
    t.equal(statusName((await c.write({ ...addr, volumeId: volume.id + 1000 }, 0, d, io.token)).status), 'TOKEN_SCOPE');
  });

  await t.test('control and mgmt listeners', async (t) => {
    const s = sds[0]!;
    const unauth = await fetch(`http://127.0.0.1:${s.controlPort}/pgs`);
    t.equal(unauth.status, 401, 'control needs the cluster key');
    const pgs = (await (await fetch(`http://127.0.0.1:${s.controlPort}/pgs`, { headers: { authorization: controlAuthorization(mdm.clusterKey, 'mdm') } })).json()) as Array<{ pg: number; chunks: number }>;
    t.ok(pgs.length > 0 && pgs.every((p) => p.chunks > 0), 'lists the PGs it holds');
    const health = await listenerJson<{ status: string; registered: boolean; capacity: { usedBytes: number } }>(mdm, s.mgmtPort, '/health');
    t.equal(health.status, 'OK');
    t.ok(health.registered);
    t.ok(health.capacity.usedBytes > 0);
    const metrics = await listenerJson<{ ops: Record<string, { ops: number }> }>(mdm, s.mgmtPort, '/stats');
    t.ok((metrics.ops.write?.ops ?? 0) > 0, 'counts writes');
    // Heartbeats carry the capacity to the MDM.
    const deadline = Date.now() + 10_000;
    let used = 0;
    while (Date.now() < deadline && used === 0) {
      used = (await mdm.admin.getSds(s.id)).usedBytes;
      if (used === 0) await new Promise((r) => setTimeout(r, 200));
    }
    t.ok(used > 0, 'the MDM knows the used capacity');
  });

  await t.test('control: copy a chunk from a peer, then drop the PG', async (t) => {
    const chunkIndex = 5;
    const data = rng.bytes(3 * 4096 + 100);
    t.equal((await io.write(chunkIndex, 4096, data)).status, Status.OK);
    const pg = io.pgOf(chunkIndex);
    const entry = io.map.pgs.find((p) => p.pg === pg)!;
    const source = byId(entry.members[0]!);
    const target = sds.find((s) => !entry.members.includes(s.id))!;
    const auth = { authorization: controlAuthorization(mdm.clusterKey, 'mdm'), 'content-type': 'application/json' };
    const res = await fetch(`http://127.0.0.1:${target.controlPort}/pgs/${pg}/copy-chunk`, {
      method: 'POST', headers: auth,
      body: JSON.stringify({ from: { address: '127.0.0.1', controlPort: source.controlPort }, treeId: volume.volumeTreeId, chunkIndex, layerId: 0 }),
    });
    t.equal(res.status, 200, await res.clone().text());
    const src = pgFiles(source, pg);
    const dst = pgFiles(target, pg);
    const name = `${volume.volumeTreeId}-${chunkIndex}-0${CHUNK_FILE_SUFFIX}`;
    const copied = src.get(name);
    t.ok(copied && sameContent(name, copied, dst.get(name)), 'the copy holds the same data and checksums');
    const missing = await fetch(`http://127.0.0.1:${target.controlPort}/pgs/${pg}/copy-chunk`, {
      method: 'POST', headers: auth,
      body: JSON.stringify({ from: { address: '127.0.0.1', controlPort: source.controlPort }, treeId: volume.volumeTreeId, chunkIndex: 9999, layerId: 0 }),
    });
    t.equal(missing.status, 404, 'a chunk the peer does not have');
    const bad = await fetch(`http://127.0.0.1:${target.controlPort}/pgs/${pg}/copy-chunk`, { method: 'POST', headers: auth, body: '{"from": 1}' });
    t.equal(bad.status, 400, 'a malformed command');
    // A layer the target reclaimed (the MDM freed it) is not brought back by a copy.
    const deadLayer = 7;
    const reclaim = await fetch(`http://127.0.0.1:${target.controlPort}/trees/${volume.volumeTreeId}/layers/${deadLayer}`, { method: 'DELETE', headers: { authorization: auth.authorization } });
    t.equal(reclaim.status, 200, `layer ${deadLayer} reclaimed on the target: ${await reclaim.clone().text()}`);
    const revived = await fetch(`http://127.0.0.1:${target.controlPort}/pgs/${pg}/copy-chunk`, {
      method: 'POST', headers: auth,
      body: JSON.stringify({ from: { address: '127.0.0.1', controlPort: source.controlPort }, treeId: volume.volumeTreeId, chunkIndex, layerId: deadLayer }),
    });
    t.equal(revived.status, 409, 'a copy of a chunk in a reclaimed layer is refused');
    t.match(await revived.text(), /was deleted here/, 'and says why');
    t.notOk(pgFiles(target, pg).has(`${volume.volumeTreeId}-${chunkIndex}-${deadLayer}${CHUNK_FILE_SUFFIX}`), 'no chunk file of that layer appeared');
    const drop = await fetch(`http://127.0.0.1:${target.controlPort}/pgs/${pg}`, { method: 'DELETE', headers: { authorization: auth.authorization } });
    t.equal(drop.status, 200);
    t.equal(pgFiles(target, pg).size, 0, 'the PG is gone from the target');
  });

  await t.test('an SDS killed with SIGKILL mid-stream: writes keep being acknowledged, none is lost', async (t) => {
    const victim = sds[1]!;
    const acked: Array<{ chunk: number; off: number; data: Buffer }> = [];
    let next = 0;
    // Non-overlapping 8 KiB writes so every acknowledged one can be checked exactly.
    const writer = async (): Promise<void> => {
      while (next < 400) {
        const n = next++;
        if (n === 120) victim.proc.child.kill('SIGKILL');
        const w = { chunk: 32 + (n % 24), off: Math.floor(n / 24) * 8192, data: rng.bytes(8192) };
        const r = await io.write(w.chunk, w.off, w.data);
        if (r.status === Status.OK) acked.push(w);
        else t.fail(`write ${n} answered ${statusName(r.status)}`);
      }
    };
    await Promise.all([writer(), writer(), writer(), writer(), writer(), writer()]);
    t.equal(acked.length, 400, 'every write was acknowledged');
    await io.refresh();
    const written = new Set(acked.map((w) => io.pgOf(w.chunk)));
    const holding = io.map.pgs.filter((p) => written.has(p.pg) && p.members.includes(victim.id));
    t.same(holding.map((p) => p.pg), [], 'the killed SDS was fenced from every PG that was written');
    let lost = 0;
    for (const w of acked) {
      const r = await io.read(w.chunk, w.off, w.data.length);
      if (r.status !== Status.OK || !r.payload.equals(w.data)) lost++;
    }
    t.equal(lost, 0, 'every acknowledged write reads back');
    // Survivors that still share a PG hold identical replicas.
    const survivors = sds.filter((s) => s !== victim);
    for (const e of io.map.pgs.filter((p) => p.members.length === 2 && !p.members.includes(victim.id))) {
      const [a, b] = e.members.map((id) => pgFiles(survivors.find((s) => s.id === id)!, e.pg));
      const differ = [...a!].filter(([n, buf]) => !sameContent(n, buf, b!.get(n))).map(([n, buf]) => {
        const other = b!.get(n);
        const at = other ? buf.findIndex((x, i) => x !== other[i]) : -1;
        return `${n} (${buf.length} vs ${other?.length ?? 'missing'} bytes, first difference at ${at})`;
      });
      if (differ.length > 0) t.fail(`pg ${e.pg} replicas differ: ${differ.join(', ')}`);
    }
    t.comment(`primaries fenced by the client: ${io.fencedPrimaries}`);
  });

  await t.test('a flipped byte in a chunk file fails the read with IO_ERROR', async (t) => {
    const chunkIndex = 60;
    t.equal((await io.write(chunkIndex, 0, Buffer.alloc(3 * 4096, 0x42))).status, Status.OK);
    const pg = io.pgOf(chunkIndex);
    const primary = byId(io.map.pgs.find((p) => p.pg === pg)!.members[0]!);
    const file = join(primary.dir, 'chunks', `pg-${pg}`, `${volume.volumeTreeId}-${chunkIndex}-0${CHUNK_FILE_SUFFIX}`);
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from([0x43]), 0, 1, dataPosition(4096 + 7));
    closeSync(fd);
    const r = await io.read(chunkIndex, 4096, 4096);
    t.equal(statusName(r.status), 'IO_ERROR');
    t.not(r.payload.equals(Buffer.alloc(4096, 0x42)), true);
    t.equal(statusName((await io.read(chunkIndex, 0, 4096)).status), 'OK', 'undamaged blocks still read');
    const health = await listenerJson<{ status: string; problems: string[] }>(mdm, primary.mgmtPort, '/health');
    t.equal(health.status, 'DEGRADED', 'the SDS reports the checksum error');
  });
});
