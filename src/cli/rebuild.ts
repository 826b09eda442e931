/**
 * pflex rebuild status [--json] [--watch]: rebuild, rebalance and drain
 * progress from GET /rebuild. In a terminal, a progress bar per running PG
 * copy and one for the total; --json prints the raw status for scripts.
 */
import type { MdmClient } from '../shared/mdm-client.js';
import { noun, print, verb } from './common.js';
import { bytes, table } from './format.js';

interface Job { id: number; poolId: number; pg: number; kind: string; sourceSdsId: number; targetSdsId: number; state: string; chunksDone: number; chunksTotal: number; bytesDone: number; bytesTotal: number; mode?: 'full' | 'delta'; bytesSkipped?: number }
interface Status {
  active: boolean;
  pools: Array<{ id: number; name: string; pgCount: number; degradedPgs: number; rebuildingPgs: number }>;
  jobs: Job[];
  totals: { chunksDone: number; chunksTotal: number; bytesDone: number; bytesTotal: number };
  recentBytesPerS: number;
  draining: number[];
  limits: { bandwidthBytesPerS: number; concurrentPgsMax: number };
}

const barWidth = 30;

export function bar(done: number, total: number): string {
  const f = total > 0 ? Math.min(1, done / total) : 1;
  const n = Math.round(f * barWidth);
  return `[${'#'.repeat(n)}${'.'.repeat(barWidth - n)}] ${(f * 100).toFixed(0).padStart(3)}%`;
}

/** A delta copy says how much the target already had (checked, not sent). */
function deltaNote(j: Job): string {
  return j.mode === 'delta' ? ` (delta: ${bytes(j.bytesSkipped ?? 0)} already there)` : '';
}

function human(s: Status): string {
  const lines = [
    s.active ? 'rebuild: ACTIVE' : 'rebuild: idle (every PG whole)',
    table(s.pools, [
      { header: 'pool', value: (p) => p.name }, { header: 'pgs', value: (p) => p.pgCount, align: 'right' },
      { header: 'degraded', value: (p) => p.degradedPgs, align: 'right' }, { header: 'rebuilding', value: (p) => p.rebuildingPgs, align: 'right' },
    ]),
  ];
  if (s.jobs.length > 0) {
    lines.push('', `total ${bar(s.totals.bytesDone, s.totals.bytesTotal)} ${bytes(s.totals.bytesDone)} of ${bytes(s.totals.bytesTotal)}`);
    for (const j of s.jobs) {
      lines.push(`pg ${String(j.pg).padStart(5)} ${j.kind.padEnd(9)} sds ${j.sourceSdsId} -> ${j.targetSdsId} ${j.state.padEnd(7)} ${bar(j.bytesDone, j.bytesTotal)} ${j.chunksDone}/${j.chunksTotal} chunks${deltaNote(j)}`);
    }
  }
  if (s.draining.length > 0) lines.push('', `draining SDS: ${s.draining.join(', ')}`);
  lines.push('', `copied in the last minute: ${bytes(s.recentBytesPerS)}/s; limits ${bytes(s.limits.bandwidthBytesPerS)}/s per SDS, ${s.limits.concurrentPgsMax} PGs at once`);
  return lines.join('\n');
}

const getStatus = (c: MdmClient): Promise<Status> => c.request<Status>('GET', '/rebuild');

export const rebuildCommand = noun('rebuild', 'rebuild, rebalance and drain progress', [
  verb<{ watch?: boolean }>('status', 'degraded PGs and running copies (--watch refreshes until idle)', (y) =>
    y.option('watch', { type: 'boolean', describe: 'redraw every second until the cluster is whole' }),
  async (args, c) => {
    let s = await getStatus(c);
    if (!args.watch || args.json || !process.stdout.isTTY) {
      print(args, s, () => human(s));
      return;
    }
    for (;;) {
      process.stdout.write(`\x1b[2J\x1b[H${human(s)}\n`);
      if (!s.active) return;
      await new Promise((r) => setTimeout(r, 1000));
      s = await getStatus(c);
    }
  }),
]);
