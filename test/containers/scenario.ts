/**
 * Pieces shared by the multi-host scenarios: a cluster with one volume and a
 * verified workload on sdc1's NBD port, fault bookkeeping, and the figures
 * every scenario prints.
 */
import type { Test } from 'tap';
import { VerifiedWorkload, type VerifyFigures, type WorkloadFigures } from './checker.js';
import { startContainerCluster, type ContainerCluster, type ContainerClusterOptions } from './cluster.js';
import type { Volume } from '../../src/shared/mdm-client.js';

const MiB = 1024 * 1024;
/** 64 MiB of 4 KiB blocks: 64 chunks of 1 MiB spread over the PGs. */
export const WORKLOAD_BLOCKS = 16384;
/** The issue's bound on how long IO may stop after a fault. */
export const ioResumeMsMax = 10_000;

export interface Stage {
  c: ContainerCluster;
  vol: Volume;
  w: VerifiedWorkload;
  faults: number;
  /** Runs the workload for ms milliseconds. */
  run(ms: number): Promise<void>;
  /** Stops the workload, verifies the whole region and prints the figures. */
  finish(): Promise<{ figures: WorkloadFigures; verify: VerifyFigures }>;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function stage(t: Test, name: string, opts: ContainerClusterOptions = {}): Promise<Stage> {
  const c = await startContainerCluster(t, opts);
  t.comment(`${name}: image ${c.image} (${c.imageBuilt ? `built in ${c.imageBuildMs} ms` : 'reused'}), cluster of ${c.sds.length + 2} containers up in ${c.startMs} ms`);
  const vol = await c.volume('vol1', 128 * MiB);
  const w = new VerifiedWorkload({ host: '127.0.0.1', port: c.nbdPort, exportName: 'vol1', blocks: WORKLOAD_BLOCKS, queueDepth: 8, seed: name.length * 7919 });
  t.teardown(() => w.close());
  await w.start();
  const s: Stage = {
    c, vol, w, faults: 0,
    run: (ms) => sleep(ms),
    async finish() {
      const figures = await w.stop();
      const verify = await w.verifyAll();
      t.comment(`${name}: faults injected ${s.faults}; writes acknowledged ${figures.writesAcked} (${figures.blocksWrittenAcked} blocks), ` +
        `failed ${figures.writesFailed}; reads verified during the run ${figures.readsVerified}, failed ${figures.readsFailed}; ` +
        `blocks verified at the end ${verify.blocksChecked} (${verify.blocksWithData} holding data); ` +
        `longest IO stall ${figures.longestStallMs} ms (at +${figures.longestStallAtMs} ms); workload ${figures.durationMs} ms`);
      for (const p of [...figures.problems, ...verify.problems].slice(0, 20)) t.comment(`${name}: problem: ${p}`);
      return { figures, verify };
    },
  };
  return s;
}

/** The checks every scenario makes on its workload. */
export function checkNoLoss(t: Test, r: { figures: WorkloadFigures; verify: VerifyFigures }): void {
  t.same(r.figures.problems, [], 'reads during the run saw every acknowledged write (nothing lost, stale or corrupt)');
  t.same(r.verify.problems, [], 'a full read-back finds every acknowledged write (nothing lost, stale or corrupt)');
  t.ok(r.verify.blocksWithData > 0, 'the workload wrote data');
}

/** What an operator sees from the MDM (health, SDS states, degraded PGs, open alerts), as one line. */
export async function operatorView(c: ContainerCluster): Promise<string> {
  try {
    const [health, sds, map, alerts] = await Promise.all([
      c.admin.health(), c.admin.listSds(), c.admin.getPgMap(c.poolId), c.admin.listAlerts({ state: 'open' }),
    ]);
    const degraded = map.pgs.filter((p) => p.members.length < map.replicationFactor).length;
    return `health ${health.status}; SDS ${sds.map((s) => `${s.name}=${s.state}`).join(' ')}; map epoch ${map.epoch}, ` +
      `degraded PGs ${degraded}/${map.pgCount}; open alerts: ${alerts.map((a) => `[${a.severity}] ${a.message}`).join('; ') || 'none'}`;
  } catch (err) {
    return `MDM unreachable: ${(err as Error).message}`;
  }
}
