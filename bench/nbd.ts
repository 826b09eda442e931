// NBD server throughput: fio's nbd ioengine (libnbd) against `pflex nbd
// serve --memory` and the reference `nbdkit memory`, same workloads, same
// run, printing MB/s, IOPS, the server's CPU use and the ratio ours/nbdkit.
//
//   npx tsc -p . && node dist/bench/nbd.js [--runtime 10] [--size 1G] [--repeat 1] [--only pflex|nbdkit] [--match 'seq write'] [--profile DIR] [--json]
//
// --profile DIR runs our server under `node --cpu-prof` and leaves the
// .cpuprofile in DIR (open it in Chrome DevTools or speedscope).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import readline from 'node:readline';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { NbdTarget } from '../test/helpers/nbd.js';
import { freePort, PFLEX_BIN } from '../test/helpers/proc.js';

interface Workload {
  name: string;
  rw: 'write' | 'read' | 'randwrite' | 'randread';
  bs: string;
  iodepth: number;
}

/** 1 MiB sequential at QD8 and 4 KiB random at QD32; writes first so reads hit written data. */
export const WORKLOADS: Workload[] = [
  { name: 'seq write 1M QD8', rw: 'write', bs: '1M', iodepth: 8 },
  { name: 'seq read 1M QD8', rw: 'read', bs: '1M', iodepth: 8 },
  { name: 'rand write 4K QD32', rw: 'randwrite', bs: '4k', iodepth: 32 },
  { name: 'rand read 4K QD32', rw: 'randread', bs: '4k', iodepth: 32 },
];

interface Figure {
  mbps: number;
  iops: number;
  /** server CPU use during the run, in cores (1.0 = one core busy) */
  cpu: number;
}

interface FioJob {
  error: number;
  read: { bw_bytes: number; iops: number };
  write: { bw_bytes: number; iops: number };
}

async function measure(server: Server, w: Workload, runtimeS: number, size: string, dir: string): Promise<Figure> {
  const cpu0 = cpuSeconds(server.pid);
  const t0 = process.hrtime.bigint();
  const fig = await runFio(server.uri, w, runtimeS, size, dir);
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  return { ...fig, cpu: (cpuSeconds(server.pid) - cpu0) / wallS };
}

function runFio(uri: string, w: Workload, runtimeS: number, size: string, dir: string): Promise<Omit<Figure, 'cpu'>> {
  const out = join(dir, `fio-${Date.now()}.json`);
  const args = [
    `--name=${w.rw}`, '--ioengine=nbd', `--uri=${uri}`, `--rw=${w.rw}`, `--bs=${w.bs}`, `--iodepth=${w.iodepth}`,
    `--size=${size}`, '--time_based', `--runtime=${runtimeS}`, '--ramp_time=1', '--randrepeat=0',
    '--output-format=json', `--output=${out}`,
  ];
  return new Promise((res, rej) => {
    execFile('fio', args, { cwd: dir, encoding: 'utf8', timeout: (runtimeS + 60) * 1000 }, (err, _o, stderr) => {
      if (err) return rej(new Error(`fio ${w.name} failed: ${stderr}`));
      const text = readFileSync(out, 'utf8');
      const job = (JSON.parse(text.slice(text.indexOf('{'))) as { jobs: FioJob[] }).jobs[0]!;
      if (job.error) return rej(new Error(`fio ${w.name}: error ${job.error}`));
      const side = w.rw.includes('write') ? job.write : job.read;
      res({ mbps: side.bw_bytes / 1e6, iops: side.iops });
    });
  });
}

/** Fills the measured region once so the read workloads read real data on both servers. */
function prefill(uri: string, size: string, dir: string): Promise<void> {
  return new Promise((res, rej) => {
    execFile('fio', ['--name=prefill', '--ioengine=nbd', `--uri=${uri}`, '--rw=write', '--bs=1M', '--iodepth=8', `--size=${size}`, '--output-format=json', `--output=${join(dir, 'prefill.json')}`],
      { cwd: dir, encoding: 'utf8' }, (err, _o, stderr) => (err ? rej(new Error(`prefill failed: ${stderr}`)) : res()));
  });
}

interface Server extends NbdTarget {
  pid: number;
  stop(): Promise<void>;
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" closing the command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

/** USER_HZ: 100 on every Linux build we run on. */
const CLOCK_TICKS_PER_S = 100;

function stopChild(child: ChildProcess, exited: Promise<unknown>): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    // SIGTERM: our server exits normally, which is when --cpu-prof writes its profile.
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
    await exited;
    clearTimeout(killer);
  };
}

/** `nbdkit memory SIZE` with the same options as test/helpers/nbd.ts, spawned here to know its pid. */
async function startNbdkitServer(size: string): Promise<Server> {
  const port = await freePort();
  const child = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), '-e', 'disk', 'memory', size], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = once(child, 'exit');
  const uri = `nbd://127.0.0.1:${port}/disk`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error('nbdkit exited');
    if (await new Promise<boolean>((r) => execFile('nbdinfo', ['--size', uri], (err) => r(!err)))) break;
    if (i > 100) throw new Error('nbdkit did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { host: '127.0.0.1', port, name: 'disk', uri, pid: child.pid!, stop: stopChild(child, exited) };
}

/** `pflex nbd serve --memory`, optionally under node --cpu-prof (not allowed in NODE_OPTIONS, hence our own spawn). */
async function startOurs(memory: string, profileDir?: string): Promise<Server> {
  const nodeFlags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(profileDir)}`] : [];
  const child = spawn(process.execPath, [...nodeFlags, PFLEX_BIN, 'nbd', 'serve', '--port', '0', '--host', '127.0.0.1', '--name', 'disk', '--memory', memory], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PFLEX_LOG_LEVEL: 'info' },
  });
  const exited = once(child, 'exit');
  const port = await new Promise<number>((res, rej) => {
    const rl = readline.createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      try {
        const l = JSON.parse(line) as { msg?: string; port?: number };
        if (l.msg === 'nbd server listening') res(Number(l.port));
      } catch {
        // not a log line
      }
    });
    void exited.then(() => rej(new Error('pflex nbd serve exited before listening')));
  });
  return { host: '127.0.0.1', port, name: 'disk', uri: `nbd://127.0.0.1:${port}/disk`, pid: child.pid!, stop: stopChild(child, exited) };
}

function fioVersion(): string {
  try {
    return execFileSync('fio', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'fio (version unknown)';
  }
}

function machine(): string {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  return `${cpus().length} CPUs (${model}), node ${process.version}`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runtime: { type: 'string', default: '10' },
      size: { type: 'string', default: '1G' },
      repeat: { type: 'string', default: '1' },
      profile: { type: 'string' },
      json: { type: 'boolean', default: false },
      only: { type: 'string' },
      match: { type: 'string' },
    },
  });
  const workloads = WORKLOADS.filter((w) => !values.match || w.name.includes(values.match));
  const runtimeS = Number(values.runtime);
  const repeat = Number(values.repeat);
  const size = values.size!;
  const kinds = (['pflex', 'nbdkit'] as const).filter((k) => !values.only || values.only === k);
  const dir = mkdtempSync(join(tmpdir(), 'pflex-bench-'));
  const samples = workloads.map(() => ({ pflex: [] as Figure[], nbdkit: [] as Figure[] }));
  const cleanups: Array<() => unknown> = [];
  try {
    // Both servers stay up and every workload runs on one, then the other,
    // back to back: load from other processes on the machine then hits
    // both sides of a ratio alike.
    const targets: Partial<Record<'pflex' | 'nbdkit', Server>> = {};
    for (const kind of kinds) {
      const server = kind === 'pflex' ? await startOurs(size, values.profile) : await startNbdkitServer(size);
      cleanups.push(() => server.stop());
      targets[kind] = server;
      await prefill(server.uri, size, dir);
    }
    for (let r = 0; r < repeat; r++) {
      for (const [i, w] of workloads.entries()) {
        for (const kind of kinds) {
          const fig = await measure(targets[kind]!, w, runtimeS, size, dir);
          samples[i]![kind].push(fig);
          if (!values.json) console.error(`${kind.padEnd(6)} ${w.name.padEnd(20)} ${fig.mbps.toFixed(1).padStart(8)} MB/s ${fig.iops.toFixed(0).padStart(8)} IOPS  server CPU ${fig.cpu.toFixed(2)}`);
        }
      }
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    rmSync(dir, { recursive: true, force: true });
  }

  const pick = (xs: Figure[]): Figure | undefined =>
    xs.length ? { mbps: median(xs.map((x) => x.mbps)), iops: median(xs.map((x) => x.iops)), cpu: median(xs.map((x) => x.cpu)) } : undefined;
  const results = workloads.map((w, i) => {
    const pflex = pick(samples[i]!.pflex);
    const nbdkit = pick(samples[i]!.nbdkit);
    const both = pflex && nbdkit;
    return {
      workload: w.name, pflex, nbdkit,
      ratio: both ? pflex.iops / nbdkit.iops : undefined,
      // IOs per server CPU-second: what the code costs, whatever CPU share each server got.
      cpuRatio: both && pflex.cpu > 0 && nbdkit.cpu > 0 ? pflex.iops / pflex.cpu / (nbdkit.iops / nbdkit.cpu) : undefined,
    };
  });
  if (values.json) {
    console.log(JSON.stringify({ machine: machine(), runtimeS, repeat, size, results }, null, 2));
    return;
  }
  console.log(`\nmachine: ${machine()}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log(`${fioVersion()} nbd engine, ${runtimeS} s per workload, median of ${repeat}, ${size} region, memory backends; CPU = server cores busy\n`);
  console.log('| workload | pflex MB/s | pflex IOPS | pflex CPU | nbdkit MB/s | nbdkit IOPS | nbdkit CPU | ours/nbdkit | per CPU-s |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const f = (x: Figure | undefined, k: keyof Figure, d: number) => (x ? x[k].toFixed(d) : '-');
  for (const r of results) {
    const pct = (x: number | undefined) => (x !== undefined ? `${(100 * x).toFixed(0)}%` : '-');
    console.log(
      `| ${r.workload} | ${f(r.pflex, 'mbps', 1)} | ${f(r.pflex, 'iops', 0)} | ${f(r.pflex, 'cpu', 2)} | ${f(r.nbdkit, 'mbps', 1)} | ${f(r.nbdkit, 'iops', 0)} | ${f(r.nbdkit, 'cpu', 2)} | ${pct(r.ratio)} | ${pct(r.cpuRatio)} |`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
