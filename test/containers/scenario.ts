/**
 * Pieces shared by the multi-host scenarios: a cluster with one volume and a
 * verified workload on sdc1's NBD port, fault bookkeeping, and the figures
 * every scenario prints.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { VerifiedWorkload, type VerifyFigures, type WorkloadFigures } from './checker.js';
import { startContainerCluster, type ContainerCluster, type ContainerClusterOptions } from './cluster.js';
import type { Volume } from '../../src/shared/mdm-client.js';
import { pgOfChunk } from '../../src/shared/pg.js';
import { BLOCK_BYTES } from './checker.js';
import { docker, type Node } from './cluster.js';

const run = promisify(execFile);
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
  t.comment(`${name}: image ${c.image} (${c.imageBuilt ? `built in ${c.imageBuildMs} ms` : 'reused'}), cluster of ${c.sds.length + 2} containers up in ${c.startMs} ms (${c.startPhases})`);
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
        `longest IO stall ${figures.longestStallMs} ms (at +${figures.longestStallAtMs} ms), longest single request ${figures.longestRequestMs} ms; ` +
        `workload ${figures.durationMs} ms`);
      const found = [...figures.problems, ...verify.problems, ...verify.unreadable];
      for (const p of found.slice(0, 20)) t.comment(`${name}: problem: ${p}`);
      if (found.length > 0 || figures.writesFailed > 0) await printTroubles(t, name, c);
      await saveLogs(t, name, c);
      return { figures, verify };
    },
  };
  return s;
}

/** The checks every scenario makes on its workload. */
export function checkNoLoss(t: Test, r: { figures: WorkloadFigures; verify: VerifyFigures }): void {
  t.same(r.figures.problems, [], 'reads during the run saw every acknowledged write (nothing lost, stale or corrupt)');
  t.same(r.verify.problems, [], 'a full read-back finds no lost, stale or corrupt block');
  t.same(r.verify.unreadable, [], 'every block is readable at the end');
  t.ok(r.verify.blocksWithData > 0, 'the workload wrote data');
}

/** Warnings and errors (pino level >= 40) each container logged, for a failing scenario. */
async function printTroubles(t: Test, name: string, c: ContainerCluster): Promise<void> {
  t.comment(`${name}: operator view: ${await operatorView(c)}`);
  for (const n of [c.mdm, ...c.sds, c.sdc]) {
    const lines = (await docker('logs', n.id).catch(() => '')).split('\n').filter((l) => /"level":(4|5|6)\d/.test(l));
    for (const l of lines.slice(-8)) t.comment(`${name}: ${n.name}: ${l.slice(0, 400)}`);
  }
}

/**
 * With PFLEX_CONTAINERS_LOG_DIR set, every container's whole log is written
 * there (<dir>/<scenario>-<time>/<node>.log) before teardown removes it: for
 * investigating a finding after the run.
 */
async function saveLogs(t: Test, name: string, c: ContainerCluster): Promise<void> {
  const root = process.env.PFLEX_CONTAINERS_LOG_DIR;
  if (!root) return;
  const dir = join(root, `${name.replace(/[^a-z0-9]+/gi, '-')}-${new Date().toISOString().replace(/[:.]/g, '')}`);
  mkdirSync(dir, { recursive: true });
  for (const n of [c.mdm, ...c.sds, c.sdc]) {
    const out = await run('docker', ['logs', n.id], { maxBuffer: 256 * 1024 * 1024 }).catch((e: Error & { stdout?: string }) => ({ stdout: e.stdout ?? '', stderr: e.message }));
    writeFileSync(join(dir, `${n.name}.log`), out.stdout + out.stderr);
  }
  t.comment(`${name}: container logs saved in ${dir}`);
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

/**
 * Times the healing after a fault: polls the MDM's PG map every 500 ms and
 * notes when, after some PG was seen degraded, none is any more. Stopped at
 * teardown at the latest.
 */
export function healClock(t: Test, c: ContainerCluster, faultAtMs: number): { wholeAfterMs(): number | undefined; degradedMax(): number; stop(): void } {
  let degradedMax = 0;
  let wholeAtMs: number | undefined;
  let stopped = false;
  const poll = async (): Promise<void> => {
    while (!stopped && wholeAtMs === undefined) {
      const map = await c.admin.getPgMap(c.poolId).catch(() => undefined);
      if (map) {
        const degraded = map.pgs.filter((p) => p.members.length < map.replicationFactor).length;
        degradedMax = Math.max(degradedMax, degraded);
        if (degradedMax > 0 && degraded === 0) wholeAtMs = Date.now();
      }
      await sleep(500);
    }
  };
  void poll();
  const stop = (): void => { stopped = true; };
  t.teardown(stop);
  return { wholeAfterMs: () => (wholeAtMs === undefined ? undefined : wholeAtMs - faultAtMs), degradedMax: () => degradedMax, stop };
}

/**
 * The SDS that is primary for the most chunks of the workload's region: the
 * worst victim, since the SDC must detect its loss itself (a lost secondary
 * is detected by the primary).
 */
export async function busiestPrimary(s: Stage): Promise<Node> {
  const map = await s.c.admin.getPgMap(s.c.poolId);
  const chunks = Math.ceil((WORKLOAD_BLOCKS * BLOCK_BYTES) / map.chunkBytes);
  const count = new Map<number, number>();
  for (let i = 0; i < chunks; i++) {
    const pg = map.pgs.find((p) => p.pg === pgOfChunk(s.vol.volumeTreeId, i, map.pgCount));
    const primary = pg?.members[0];
    if (primary !== undefined) count.set(primary, (count.get(primary) ?? 0) + 1);
  }
  const [id] = [...count.entries()].sort((a, b) => b[1] - a[1])[0] ?? [];
  const name = map.sds.find((x) => x.id === id)?.name;
  const node = s.c.sds.find((n) => n.name === name);
  if (!node) throw new Error('no primary found for the workload region');
  return node;
}
