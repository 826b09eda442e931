// SDC throughput through the whole cluster: fio's nbd ioengine against the
// SDC export of a two-copy volume (MDM + 3 SDS + SDC processes on this
// machine) and, in the same run, against `nbdkit memory`, printing MB/s,
// IOPS, QD1 latency percentiles, the ratio SDC/nbdkit, and the cost in
// CPU-seconds per GiB across every process of the target (SDC, SDS, MDM)
// and for the SDC alone.
// The two "flush" workloads are the durable mode: fio sends an NBD FLUSH after
// every write, so each write is on the SDS disks before the next is issued.
//
//   npx tsc -p . && node dist/bench/sdc.js [--runtime 10] [--size 512M] [--match 'seq write'] [--profile DIR] [--json] [--trace-ratio R]
//
// --trace-ratio R turns tracing on in every process (MDM, SDS, SDC) with
// that sample ratio, exporting to an OTLP/HTTP receiver started here
// (docs/observability.md); the spans received are counted and printed.
//
// --profile DIR runs the SDC under `node --cpu-prof` and leaves its
// .cpuprofile in DIR (summarise with node dist/bench/profile-top.js FILE).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import type { Test } from 'tap';
import { parseSize } from '../src/shared/units.js';
import { startOtlpReceiver } from '../test/helpers/otlp-receiver.js';
import { freePort, PFLEX_BIN } from '../test/helpers/proc.js';
import { startMdm, startSdsProc, waitForMapEpoch } from '../test/sds/cluster.js';

interface Workload {
  name: string;
  rw: 'write' | 'read' | 'randwrite' | 'randread';
  bs: string;
  iodepth: number;
  latency?: boolean;
  /** fio --fsync=N: an NBD FLUSH after every N writes (the durable mode: each write on disk before the next). */
  fsync?: number;
}

const WORKLOADS: Workload[] = [
  { name: 'seq write 1M QD8', rw: 'write', bs: '1M', iodepth: 8 },
  { name: 'seq read 1M QD8', rw: 'read', bs: '1M', iodepth: 8 },
  { name: 'rand write 4K QD32', rw: 'randwrite', bs: '4k', iodepth: 32 },
  { name: 'rand read 4K QD32', rw: 'randread', bs: '4k', iodepth: 32 },
  { name: 'write 4K QD1', rw: 'randwrite', bs: '4k', iodepth: 1, latency: true },
  { name: 'write 4K QD1 flush', rw: 'randwrite', bs: '4k', iodepth: 1, latency: true, fsync: 1 },
  { name: 'write 1M QD8 flush', rw: 'write', bs: '1M', iodepth: 8, fsync: 1 },
];

interface Figure {
  mbps: number; iops: number; p50Ms: number; p99Ms: number;
  /** Cores busy across the target's processes (SDC, SDS, MDM; or nbdkit) over the run. */
  cpu: number;
  /** CPU-seconds of those processes per GiB moved: a cost figure that a busy machine distorts less than MB/s. */
  cpuSPerGiB: number;
  /** The same for the first process alone (the SDC; nbdkit for the comparison). */
  frontCpuSPerGiB: number;
}

interface FioSide { bw_bytes: number; iops: number; clat_ns?: { percentile?: Record<string, number> } }
interface FioJob { error: number; read: FioSide; write: FioSide }

const CLOCK_TICKS_PER_S = 100;
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_S;
}

function runFio(uri: string, w: Workload, runtimeS: number, size: string, dir: string): Promise<Omit<Figure, 'cpu' | 'cpuSPerGiB' | 'frontCpuSPerGiB'>> {
  const out = join(dir, `fio-${Date.now()}.json`);
  const args = [
    `--name=${w.rw}`, '--ioengine=nbd', `--uri=${uri}`, `--rw=${w.rw}`, `--bs=${w.bs}`, `--iodepth=${w.iodepth}`,
    `--size=${size}`, '--time_based', `--runtime=${runtimeS}`, '--ramp_time=1', '--randrepeat=0',
    '--percentile_list=50:99', '--output-format=json', `--output=${out}`,
    ...(w.fsync ? [`--fsync=${w.fsync}`] : []),
  ];
  return new Promise((res, rej) => {
    execFile('fio', args, { cwd: dir, encoding: 'utf8', timeout: (runtimeS + 120) * 1000 }, (err, _o, stderr) => {
      if (err) return rej(new Error(`fio ${w.name} failed: ${stderr}`));
      const text = readFileSync(out, 'utf8');
      const job = (JSON.parse(text.slice(text.indexOf('{'))) as { jobs: FioJob[] }).jobs[0]!;
      if (job.error) return rej(new Error(`fio ${w.name}: error ${job.error}`));
      const side = w.rw.includes('write') ? job.write : job.read;
      const pct = side.clat_ns?.percentile ?? {};
      const at = (p: string) => (Object.entries(pct).find(([k]) => Number(k) === Number(p))?.[1] ?? 0) / 1e6;
      res({ mbps: side.bw_bytes / 1e6, iops: side.iops, p50Ms: at('50'), p99Ms: at('99') });
    });
  });
}

function prefill(uri: string, size: string, dir: string): Promise<void> {
  return new Promise((res, rej) => {
    execFile('fio', ['--name=prefill', '--ioengine=nbd', `--uri=${uri}`, '--rw=write', '--bs=1M', '--iodepth=8', `--size=${size}`, '--output-format=json', `--output=${join(dir, 'prefill.json')}`],
      { cwd: dir, encoding: 'utf8' }, (err, _o, stderr) => (err ? rej(new Error(`prefill failed: ${stderr}`)) : res()));
  });
}

interface Target { uri: string; pids: number[] }

async function startNbdkit(size: string, cleanups: Array<() => unknown>): Promise<Target> {
  const port = await freePort();
  const child = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), '-e', 'disk', 'memory', size], { stdio: ['ignore', 'ignore', 'inherit'] });
  cleanups.push(() => stop(child));
  const uri = `nbd://127.0.0.1:${port}/disk`;
  for (let i = 0; ; i++) {
    if (await new Promise<boolean>((r) => execFile('nbdinfo', ['--size', uri], (err) => r(!err)))) break;
    if (i > 100) throw new Error('nbdkit did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { uri, pids: [child.pid!] };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = once(child, 'exit');
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await done;
  clearTimeout(killer);
}

/** MDM + 3 SDS (test helpers) + an SDC spawned here (so it can run under --cpu-prof). */
async function startCluster(sizeBytes: number, cleanups: Array<() => unknown>, profileDir?: string): Promise<Target> {
  // The test helpers want a tap Test only for teardown and temp dirs.
  const teardowns: Array<() => unknown> = [];
  const fakeTest = { teardown: (fn: () => unknown) => teardowns.push(fn) } as unknown as Test;
  cleanups.push(async () => { for (const fn of teardowns.reverse()) await fn(); });
  const mdm = await startMdm(fakeTest);
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2 });
  const sds = await Promise.all(['sds1', 'sds2', 'sds3'].map((n) => startSdsProc(fakeTest, mdm, n)));
  await waitForMapEpoch(mdm, pool.id, sds, 60_000);
  const nodeFlags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(profileDir)}`] : [];
  const child = spawn(process.execPath, [...nodeFlags, PFLEX_BIN, 'sdc-server', '--mdm', mdm.url, '--cluster-key-file', mdm.keyFile, '--name', 'sdc1',
    '--host', '127.0.0.1', '--port', '0', '--control-port', '0', '--mgmt-port', '0'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PFLEX_LOG_LEVEL: 'info' } });
  cleanups.push(() => stop(child));
  const lines: Array<Record<string, unknown>> = [];
  readline.createInterface({ input: child.stdout! }).on('line', (line) => { try { lines.push(JSON.parse(line) as Record<string, unknown>); } catch { /* not a log line */ } });
  const waitFor = async (msg: string): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 600; i++) {
      const found = lines.find((l) => l.msg === msg);
      if (found) return found;
      if (child.exitCode !== null) throw new Error('the SDC exited');
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the SDC did not log "${msg}"`);
  };
  const port = (await waitFor('sdc listening')).port as number;
  const sdcId = (await waitFor('sdc registered')).sdcId as number;
  const v = await mdm.admin.createVolume({ name: 'bench', storagePoolId: pool.id, sizeBytes });
  await mdm.admin.mapVolume(v.id, sdcId);
  return { uri: `nbd://127.0.0.1:${port}/bench`, pids: [child.pid!, ...sds.map((s) => s.proc.child.pid!), mdm.proc.child.pid!] };
}

function machine(): string {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  return `${cpus().length} CPUs (${model}), node ${process.version}`;
}

const TARGETS: Record<string, { mbps?: number; iops?: number; p50Ms?: number }> = {
  'seq write 1M QD8': { mbps: 1000 },
  'seq read 1M QD8': { mbps: 1500 },
  'rand write 4K QD32': { iops: 20_000 },
  'rand read 4K QD32': { iops: 40_000 },
  'write 4K QD1': { p50Ms: 0.3 },
};

const GiB = 1024 ** 3;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runtime: { type: 'string', default: '10' },
      size: { type: 'string', default: '512M' },
      profile: { type: 'string' },
      json: { type: 'boolean', default: false },
      match: { type: 'string' },
      'trace-ratio': { type: 'string' },
    },
  });
  const workloads = WORKLOADS.filter((w) => !values.match || w.name.includes(values.match));
  const runtimeS = Number(values.runtime);
  const size = values.size!;
  const dir = mkdtempSync(join(tmpdir(), 'pflex-bench-sdc-'));
  const cleanups: Array<() => unknown> = [];
  const results: Array<{ workload: string; sdc: Figure; nbdkit: Figure }> = [];
  let traced: Awaited<ReturnType<typeof startOtlpReceiver>> | undefined;
  try {
    if (values['trace-ratio'] !== undefined) {
      traced = await startOtlpReceiver({ teardown: (fn) => cleanups.push(fn) });
      // Every process the benchmark starts inherits these.
      Object.assign(process.env, { OTEL_EXPORTER_OTLP_ENDPOINT: traced.url, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: values['trace-ratio'] });
    }
    const sdc = await startCluster(parseSize(size), cleanups, values.profile);
    const nbdkit = await startNbdkit(size, cleanups);
    await prefill(sdc.uri, size, dir);
    await prefill(nbdkit.uri, size, dir);
    for (const w of workloads) {
      const fig: Record<string, Figure> = {};
      for (const [kind, target] of [['sdc', sdc], ['nbdkit', nbdkit]] as const) {
        const cpu0 = target.pids.map(cpuSeconds);
        const t0 = process.hrtime.bigint();
        const f = await runFio(target.uri, w, runtimeS, size, dir);
        const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
        const used = target.pids.map((p, i) => cpuSeconds(p) - cpu0[i]!);
        const cpu = used.reduce((a, b) => a + b, 0) / wallS;
        // fio's bandwidth covers runtime without the ramp; the CPU covers the whole fio run: the ratio of rates is the cost.
        const perGiB = (cores: number): number => (f.mbps > 0 ? cores / (f.mbps * 1e6 / GiB) : 0);
        fig[kind] = { ...f, cpu, cpuSPerGiB: perGiB(cpu), frontCpuSPerGiB: perGiB(used[0]! / wallS) };
      }
      results.push({ workload: w.name, sdc: fig.sdc!, nbdkit: fig.nbdkit! });
      if (!values.json) {
        const s = fig.sdc!;
        const k = fig.nbdkit!;
        const target = TARGETS[w.name] ?? {};
        const want = target.mbps ? `target >= ${target.mbps} MB/s` : target.iops ? `target >= ${target.iops} IOPS` : target.p50Ms ? `target p50 <= ${target.p50Ms} ms` : '';
        const lat = w.latency ? `  p50 ${s.p50Ms.toFixed(3)} ms p99 ${s.p99Ms.toFixed(3)} ms (nbdkit p50 ${k.p50Ms.toFixed(3)} p99 ${k.p99Ms.toFixed(3)})` : '';
        console.log(`${w.name.padEnd(20)} sdc ${s.mbps.toFixed(0).padStart(6)} MB/s ${s.iops.toFixed(0).padStart(7)} IOPS (cpu ${s.cpu.toFixed(2)} cores, ${s.cpuSPerGiB.toFixed(1)} cpu-s/GiB sdc+sds+mdm, ${s.frontCpuSPerGiB.toFixed(1)} sdc)  nbdkit ${k.mbps.toFixed(0).padStart(6)} MB/s ${k.iops.toFixed(0).padStart(7)} IOPS  ratio ${(s.iops / k.iops).toFixed(2)}${lat}  ${want}`);
      }
    }
    const tracing = traced ? { ratio: Number(values['trace-ratio']), spansReceived: traced.spans.length, roots: traced.spans.filter((s) => s.parentSpanId === '').length } : undefined;
    if (values.json) console.log(JSON.stringify({ machine: machine(), runtimeS, size, tracing, results }, null, 2));
    else console.log(`machine: ${machine()}; runtime ${runtimeS} s per workload, ${size} volume, two copies over 3 SDS on one file system; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    if (tracing && !values.json) console.log(`tracing: ratio ${tracing.ratio}, ${tracing.spansReceived} spans received (${tracing.roots} traces)`);
  } finally {
    for (const c of cleanups.reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
