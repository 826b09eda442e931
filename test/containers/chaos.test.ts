/**
 * Scenario (d) of issue 6: a bounded chaos run. For 2 minutes, every 3-6 s,
 * one SDS container is stopped (docker stop or kill, at random) or the
 * stopped one is started again, under a verified workload through sdc1;
 * zero acknowledged writes may be lost or corrupt.
 *
 * The checks on failed writes, stalls and readability are todo (TODO.chaos in
 * scenario.ts): the current code does not pass them yet.
 */
import t from 'tap';
import { dockerUnusable, killNode, startNodeAgain, stopNode, type Node } from './cluster.js';
import { checkNoLoss, ioResumeMsMax, TODO, operatorView, stage } from './scenario.js';

const skip = dockerUnusable();

t.test('(d) chaos: SDS containers stopped and started at random for 2 minutes', { skip }, async (t) => {
  const s = await stage(t, '(d) chaos');
  const chaosMs = 120_000;
  const end = Date.now() + chaosMs;
  let seed = 20261126;
  const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 0x100000000);
  const down = new Set<Node>();
  const log: string[] = [];
  while (Date.now() < end) {
    await s.run(3_000 + Math.floor(random() * 3_000));
    if (down.size > 0) {
      // At most one SDS down at a time: the guarantee holds while at most one
      // replica of each PG has failed.
      const back = [...down][0]!;
      await startNodeAgain(back);
      down.delete(back);
      log.push(`+${back.name}`);
    } else {
      const victim = s.c.sds[Math.floor(random() * s.c.sds.length)]!;
      if (random() < 0.5) await stopNode(victim, 1);
      else await killNode(victim);
      down.add(victim);
      s.faults++;
      log.push(`-${victim.name}`);
    }
  }
  for (const n of down) await startNodeAgain(n);
  t.comment(`(d) chaos actions: ${log.join(' ')}`);
  t.comment(`(d) operator view after the chaos: ${await operatorView(s.c)}`);
  await s.run(5_000);
  t.comment(`(d) operator view 5 s later: ${await operatorView(s.c)}`);
  const r = await s.finish();
  checkNoLoss(t, r, TODO.chaos);
  t.ok(s.faults >= 5, `faults were injected (${s.faults})`);
  t.equal(r.figures.writesFailed, 0, 'no write failed', { todo: TODO.chaos });
  t.ok(r.figures.longestStallMs < ioResumeMsMax, `no IO stall of ${ioResumeMsMax} ms or more (longest ${r.figures.longestStallMs} ms)`, { todo: TODO.chaos });
});
