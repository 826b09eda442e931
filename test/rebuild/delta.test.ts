/**
 * Delta rebuild on real processes: four SDSs, RF 2, fault sets {sds1} and
 * {sds2, sds3, sds4}, so every PG has a copy on sds1 and nowhere else can
 * take it. sds1 is SIGKILLed; while it is away a few chunks are overwritten,
 * two created, one trimmed; it is evicted (DOWN), restarted on its old
 * storage root and planned back into every PG. It keeps its old chunks (never
 * served), the primaries compare SHA-256 digests chunk by chunk and push only
 * what changed. Then every PG is whole, every chunk byte-identical on its two
 * holders and equal to what was acknowledged, the trimmed chunk is gone.
 */
import t from 'tap';
import { Status, statusName } from '../../src/dataplane/proto.js';
import { waitForMapEpoch } from '../sds/cluster.js';
import { Model, chunkFile, placement, sdsRebuilds, startFastMdm, startSdsIn as startSds, startSplitCluster, verifyReads, volumeRouter, waitFor, whole, writeChecked } from './cluster.js';

const KiB = 1024;
const CHUNK = 256 * KiB;

t.test('a returning SDS catches up by delta: only changed chunks are sent', async (t) => {
  const mdm = await startFastMdm(t);
  const { poolId, victim, others, map: first } = await startSplitCluster(t, mdm, CHUNK);
  let map = first;
  t.ok(map.pgs.every((p) => p.members.includes(victim.id)), 'sds1 (alone in its fault set) holds a copy of every PG');
  const { vol, r } = await volumeRouter(t, mdm, poolId, 64 * CHUNK);
  const m = new Model(CHUNK);
  const N = 48;
  for (let c = 0; c < N; c++) await writeChecked(r, m, c, c % 3 === 0 ? 0 : 4096 * (c % 7), c % 3 === 0 ? CHUNK : 12 * KiB);

  await victim.proc.stop('SIGKILL');
  // While it is away: 4 chunks overwritten, 2 created, 1 trimmed whole.
  const overwritten = [1, 9, 22, 40];
  for (const c of overwritten) await writeChecked(r, m, c, 8 * KiB, 16 * KiB);
  for (const c of [N, N + 1]) await writeChecked(r, m, c, 0, 20 * KiB);
  const trimmed = 30;
  const trim = await r.send(trimmed, (cl, a) => cl.trim(a, 0, CHUNK, r.token));
  t.equal(trim.status, Status.OK, 'whole-chunk trim acknowledged');
  m.chunks.delete(trimmed);
  await waitFor(mdm, poolId, (mp) => mp.pgs.every((p) => !p.members.includes(victim.id)), 60_000, 'eviction of sds1');

  const returnedAt = Date.now();
  const back = await startSds(t, mdm, 'sds1', 'fsA', victim.dir);
  t.equal(back.id, victim.id, 'sds1 registered again under its id');
  // Its old copies of the overwritten chunks are on its disk, but it serves none of them (not the primary of any PG).
  const now = await mdm.admin.getPgMap(poolId);
  const direct = r.clients.get('127.0.0.1', back.port);
  for (const c of overwritten) {
    const pg = r.pgOf(c);
    const reply = await direct.read({ pgId: pg, epoch: now.pgs.find((p) => p.pg === pg)!.epoch, volumeId: vol.id, treeId: vol.volumeTreeId, chunkIndex: c, layerId: 0 }, 0, CHUNK, r.token);
    t.not(reply.status, Status.OK, `a read of chunk ${c} sent straight to the returned sds1 is refused (${statusName(reply.status)})`);
  }
  t.ok(chunkFile(back, r.pgOf(overwritten[0]!), vol.volumeTreeId, overwritten[0]!), 'sds1 still holds a copy of that chunk on disk (kept for the delta)');
  // Writes race the delta copies (on three chunks: a racing write reaches sds1 only once its PG has it joining).
  const racedChunks = [2, 17, 33];
  let racing = true;
  let raced = 0;
  const writer = (async () => {
    for (let i = 0; racing; i++) {
      await writeChecked(r, m, racedChunks[i % racedChunks.length]!, 4096 * (i % 11), 8 * KiB);
      raced++;
    }
  })();
  map = await waitFor(mdm, poolId, (mp, st) => whole(2)(mp, st) && mp.pgs.every((p) => p.members.includes(victim.id)), 120_000, 'every PG back on sds1');
  const healedMs = Date.now() - returnedAt;
  racing = false;
  await writer;
  t.ok(raced > 0, `${raced} writes raced the copies`);

  const all = [back, ...others];
  await waitForMapEpoch(mdm, poolId, all, 30_000);
  await r.refresh();
  t.same(await verifyReads(r, m), [], 'every chunk reads back as acknowledged');
  const wrong = [...placement(all, map, r, m, vol.volumeTreeId)].filter(([, e]) => e.good.length !== 2 || e.bad.length > 0 || !e.good.includes(victim.id));
  t.same(wrong, [], 'every chunk byte-identical on its two holders (one of them sds1), equal to what was acknowledged');
  t.same(all.filter((s) => chunkFile(s, r.pgOf(trimmed), vol.volumeTreeId, trimmed)), [], 'the trimmed chunk is on no SDS (sds1\'s old copy removed)');

  const jobs = (await Promise.all(others.map((s) => sdsRebuilds(mdm, s)))).flat().filter((j) => j.targetSdsId === victim.id);
  const done = jobs.filter((j) => j.state === 'done');
  t.equal(done.length, 16, 'one finished copy per PG');
  t.ok(done.every((j) => j.mode === 'delta'), 'every copy was a delta');
  const sum = (k: 'chunksSkipped' | 'chunksPushed' | 'chunksRemoved' | 'bytesSkipped' | 'bytesPushed', js = done): number => js.reduce((a, j) => a + j[k], 0);
  const changed = overwritten.length + 2 + racedChunks.length;
  const unchanged = N - overwritten.length - 1 - racedChunks.length;
  t.equal(sum('chunksSkipped') + sum('chunksPushed'), N + 2 - 1, 'every chunk the primaries hold was checked');
  t.ok(sum('chunksSkipped') >= unchanged, `${sum('chunksSkipped')} chunks skipped (${unchanged} were unchanged)`);
  t.ok(sum('chunksPushed') <= changed, `${sum('chunksPushed')} chunks pushed by the finished copies (${changed} changed or raced)`);
  t.ok(sum('chunksPushed', jobs) >= overwritten.length + 2, 'every chunk changed while sds1 was away was pushed (by this or an earlier attempt)');
  t.ok(sum('chunksRemoved', jobs) >= 1, 'the trimmed chunk\'s old copy was removed');
  const rows = (await mdm.admin.request<Array<{ targetSdsId: number; state: string; mode: string; bytesSkipped: number }>>('GET', '/rebuild/jobs?limit=200'))
    .filter((j) => j.targetSdsId === victim.id && j.state === 'done');
  t.ok(rows.length === done.length && rows.every((j) => j.mode === 'delta'), 'the MDM\'s job history records each copy as a delta');
  t.equal(rows.reduce((a, j) => a + j.bytesSkipped, 0), sum('bytesSkipped'), 'and the bytes it did not have to send');
  t.comment(`healed in ${(healedMs / 1000).toFixed(1)} s after the return; ${done.length} delta copies: ${sum('chunksSkipped')} chunks skipped ` +
    `(${(sum('bytesSkipped') / 1048576).toFixed(2)} MiB not sent), ${sum('chunksPushed')} pushed (${(sum('bytesPushed') / 1048576).toFixed(2)} MiB), ` +
    `${sum('chunksRemoved')} removed; ${jobs.length - done.length} failed attempts`);
});
