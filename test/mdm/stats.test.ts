/**
 * GET /stats: the cumulative IO counters of SDS and SDC heartbeats become
 * per-volume and per-SDS rates (fake clock, so the figures are exact).
 */
import t from 'tap';
import { call, componentToken, seedPool, testMdm } from './helpers.js';

const GiB = 1024 ** 3;
const io = (rOps: number, rBytes: number, rLat: number, wOps: number, wBytes: number, wLat: number) => ({
  read: { ops: rOps, bytes: rBytes, latencyMsTotal: rLat }, write: { ops: wOps, bytes: wBytes, latencyMsTotal: wLat },
});

t.test('SDS and SDC counters become rates per SDS and per volume', async (t) => {
  const m = await testMdm(t);
  const { poolId, sdsIds } = await seedPool(m, { sds: [GiB, GiB] });
  const sdsTok = await componentToken(m, 'sds', 'sds1');
  const vol = (await call(m.app, m.admin, 'POST', '/volumes', { name: 'v1', storagePoolId: poolId, sizeBytes: 64 * 1024 * 1024 })).body;
  const sdcTok = await componentToken(m, 'sdc', 'g1');
  const sdc = (await call(m.app, sdcTok, 'POST', '/sdcs', { guid: 'g1', name: 'sdc1' })).body;
  const sdcTok2 = await componentToken(m, 'sdc', 'g2');
  const sdc2 = (await call(m.app, sdcTok2, 'POST', '/sdcs', { guid: 'g2', name: 'sdc2' })).body;

  // Align the clock on a bucket edge so that each 2 s interval fills exactly one bucket.
  m.clock.advance(2000 - (m.clock.now() % 2000));
  const t0 = m.clock.now();
  const sdsBeat = (c: ReturnType<typeof io>) => call(m.app, sdsTok, 'POST', `/sds/${sdsIds[0]}/heartbeat`, { usedBytes: 0, io: c });
  const sdcBeat = (tok: string, id: number, c: ReturnType<typeof io>) => call(m.app, tok, 'POST', `/sdcs/${id}/heartbeat`, { volumes: [{ volumeId: vol.id, ...c }] });

  t.equal((await sdsBeat(io(0, 0, 0, 0, 0, 0))).status, 200, 'first beat: the baseline');
  t.equal((await sdcBeat(sdcTok, sdc.id, io(5, 500, 5, 0, 0, 0))).status, 200);
  t.equal((await sdcBeat(sdcTok2, sdc2.id, io(0, 0, 0, 0, 0, 0))).status, 200);
  m.clock.advance(2000);
  // 2 s: SDS 200 writes of 4 KiB, 2 ms each; volume: 100 reads on sdc1 (1 ms) and 300 on sdc2 (3 ms).
  await sdsBeat(io(0, 0, 0, 200, 200 * 4096, 400));
  await sdcBeat(sdcTok, sdc.id, io(105, 500 + 100 * 4096, 105, 0, 0, 0));
  await sdcBeat(sdcTok2, sdc2.id, io(300, 300 * 4096, 900, 0, 0, 0));

  let s = await call(m.app, m.monitor, 'GET', '/stats');
  t.equal(s.status, 200);
  t.same(s.body.volumes[0].points, [], 'a bucket is not reported before it has settled');
  m.clock.advance(3000);
  s = await call(m.app, m.monitor, 'GET', '/stats');
  t.equal(s.body.bucketMs, 2000);
  const sds1 = s.body.sds.find((x: { id: number }) => x.id === sdsIds[0]);
  t.same(sds1.points, [{ atMs: t0, readIops: 0, writeIops: 100, readBytesPerS: 0, writeBytesPerS: 100 * 4096, readLatencyMsAvg: 0, writeLatencyMsAvg: 2 }]);
  t.same(sds1.current, sds1.points[0], 'current is the newest complete bucket');
  const v = s.body.volumes.find((x: { id: number }) => x.id === vol.id);
  t.equal(v.name, 'v1');
  t.same(v.points, [{ atMs: t0, readIops: 200, writeIops: 0, readBytesPerS: 200 * 4096, writeBytesPerS: 0, readLatencyMsAvg: 2.5, writeLatencyMsAvg: 0 }],
    'both SDCs summed; latency weighted by operations');
  t.same(s.body.sds.find((x: { id: number }) => x.id === sdsIds[1]), { id: sdsIds[1], name: 'sds2', current: null, points: [] }, 'an SDS without counters');

  // Beats 3 s apart spread over the buckets they overlap; an SDS restart (counters back down) starts a new baseline.
  await sdsBeat(io(0, 0, 0, 600, 600 * 4096, 1200)); // t0+5 s: 400 writes over [2 s, 5 s]
  m.clock.advance(2000);
  await sdsBeat(io(0, 0, 0, 800, 800 * 4096, 1600)); // t0+7 s: 200 over [5 s, 7 s]
  m.clock.advance(2000);
  await sdsBeat(io(0, 0, 0, 10, 10, 10)); // t0+9 s: restarted
  m.clock.advance(2000);
  await sdsBeat(io(0, 0, 0, 210, 210 * 4096, 420)); // t0+11 s: 200 over [9 s, 11 s]
  m.clock.advance(3500);
  s = await call(m.app, m.monitor, 'GET', '/stats');
  const pts = s.body.sds.find((x: { id: number }) => x.id === sdsIds[0]).points as Array<{ atMs: number; writeIops: number }>;
  t.same(pts.map((p) => p.atMs - t0), [0, 2000, 4000, 6000, 8000, 10000]);
  t.same(pts.map((p) => p.writeIops), [100, 133.33, 116.67, 50, 50, 50], 'each delta spread in proportion to the overlap; none across the restart');
  const since = (await call(m.app, m.monitor, 'GET', `/stats?sinceMs=${t0 + 6000}`)).body.sds.find((x: { id: number }) => x.id === sdsIds[0]).points;
  t.same(since.map((p: { atMs: number }) => p.atMs - t0), [8000, 10000], 'sinceMs leaves out older points');

  const bad = await call(m.app, sdsTok, 'POST', `/sds/${sdsIds[0]}/heartbeat`, { usedBytes: 0, io: { read: { ops: -1, bytes: 0, latencyMsTotal: 0 } } });
  t.equal(bad.status, 400, 'malformed counters are refused');
  t.equal((await call(m.app, undefined, 'GET', '/stats')).status, 401, 'stats need a token');
});
