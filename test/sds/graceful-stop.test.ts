/**
 * An SDS stopped gracefully (SIGTERM) in the middle of a write stream sees
 * its own connections go; it must not take that for a failure of its peers.
 * Found by the container scenario (a): the stopping primary's forwards
 * failed with "data client closed", it fenced its healthy secondary and
 * left itself, about to be gone, as the PG's only member, and the PG's IO
 * stopped for good. Three SDS processes and a real MDM on loopback.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Status, statusName } from '../../src/dataplane/proto.js';
import { Router, startMdm, startSdsProc, waitForMapEpoch, type SdsProc } from './cluster.js';

const CHUNK = 1024 * 1024;
const CHUNKS = 24;

t.test('a gracefully stopped SDS never fences a healthy peer', async (t) => {
  const mdm = await startMdm(t);
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16 });
  const sds: SdsProc[] = await Promise.all(['sds1', 'sds2', 'sds3'].map((name) => startSdsProc(t, mdm, name)));
  await waitForMapEpoch(mdm, pool.id, sds);
  const volume = await mdm.admin.createVolume({ name: 'vol1', storagePoolId: pool.id, sizeBytes: CHUNKS * CHUNK });
  const io = new Router(mdm, pool.id, volume.id, volume.volumeTreeId);
  t.teardown(() => io.close());
  await io.refresh();

  const before = await mdm.admin.getPgMap(pool.id);
  const counts = new Map<number, number>();
  for (const p of before.pgs) counts.set(p.members[0]!, (counts.get(p.members[0]!) ?? 0) + 1);
  const victim = sds.reduce((a, b) => ((counts.get(b.id) ?? 0) > (counts.get(a.id) ?? 0) ? b : a));

  const acked = new Map<string, Buffer>();
  const refusals = new Map<string, number>();
  let n = 0;
  let stopAt = 300;
  let stopped: Promise<unknown> | undefined;
  const writer = async (): Promise<void> => {
    while (n < 900) {
      const i = n++;
      if (i === stopAt) stopped = victim.proc.stop('SIGTERM');
      const chunk = i % CHUNKS;
      const off = (Math.floor(i / CHUNKS) % 8) * 131072;
      const data = randomBytes(131072);
      for (let attempt = 0; ; attempt++) {
        const r = await io.write(chunk, off, data);
        if (r.status === Status.OK) { acked.set(`${chunk}/${off}`, data); break; }
        const name = statusName(r.status);
        refusals.set(name, (refusals.get(name) ?? 0) + 1);
        if (attempt > 50) throw new Error(`write ${i} refused ${attempt} times (${name})`);
        await new Promise((r) => setTimeout(r, 50));
        await io.refresh();
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, writer));
  stopAt = -1;
  t.equal(await stopped, 0, `${victim.name} stopped cleanly (exit 0)`);
  t.comment(`refused then retried: ${[...refusals].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; primaries fenced by the client: ${io.fencedPrimaries}`);

  const after = await mdm.admin.getPgMap(pool.id);
  const onlyVictim = after.pgs.filter((p) => p.members.length > 0 && p.members.every((m) => m === victim.id)).map((p) => p.pg);
  t.same(onlyVictim, [], `no PG is left with the stopped ${victim.name} as its only member`);
  const lostHealthy = after.pgs.filter((p) => {
    const was = before.pgs.find((b) => b.pg === p.pg)!;
    return was.members.some((m) => m !== victim.id && !p.members.includes(m) && !(p.joining ?? []).includes(m));
  }).map((p) => p.pg);
  t.same(lostHealthy, [], 'no healthy SDS was fenced out of a PG');

  await io.refresh();
  let wrong = 0;
  for (const [key, data] of acked) {
    const [chunk, off] = key.split('/').map(Number) as [number, number];
    const r = await io.read(chunk, off, data.length);
    if (r.status !== Status.OK || !r.payload.equals(data)) wrong++;
  }
  t.equal(wrong, 0, `every acknowledged write reads back (${acked.size} regions)`);
});
