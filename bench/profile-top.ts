// Prints the functions with the most self time in a V8 .cpuprofile
// (as written by `node --cpu-prof`, e.g. via `node dist/bench/nbd.js --profile DIR`).
//
//   node dist/bench/profile-top.js FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export function selfTimes(p: Profile): Array<{ fn: string; ms: number; pct: number }> {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + (deltas[i] ?? 0));
  const agg = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    const where = cf.url ? `${relative(process.cwd(), cf.url.replace(/^file:\/\//, ''))}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
    agg.set(key, (agg.get(key) ?? 0) + us);
    total += us;
  }
  return [...agg.entries()]
    .map(([fn, us]) => ({ fn, ms: us / 1000, pct: (100 * us) / total }))
    .sort((a, b) => b.ms - a.ms);
}

const [file, n] = process.argv.slice(2);
if (!file) {
  console.error('usage: node dist/bench/profile-top.js FILE.cpuprofile [N]');
  process.exitCode = 2;
} else {
  const rows = selfTimes(JSON.parse(readFileSync(file, 'utf8')) as Profile).slice(0, Number(n ?? 25));
  for (const r of rows) console.log(`${r.pct.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.fn}`);
}
