/**
 * MDM control-plane benchmark: one `pflex mdm start` process on loopback,
 * SDS-like and SDC-like components that each log in with the cluster key
 * and register, then 64 keep-alive connections hammering heartbeats, then
 * IO-token requests for mapped volumes, each phase for a bounded time.
 *
 *   npm run build && npm run bench:mdm [-- --seconds 10 --sds 1000 --sdc 10000 --concurrency 64]
 *
 * Prints requests/s and p50/p99 latency per phase. The load generator runs
 * in this process and shares the machine's cores with the MDM.
 * `--profile DIR` writes a V8 CPU profile of the MDM there
 * (read it with `node dist/bench/profile-top.js FILE`).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { componentProof, readClusterKey } from '../src/shared/component-auth.js';
import { ADMIN_PASSWORD, runPflex } from '../test/cli/helpers.js';
import { PFLEX_BIN, freePort } from '../test/helpers/proc.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const SECONDS = arg('seconds', Number(process.env.BENCH_SECONDS ?? 10));
const SDS_COUNT = arg('sds', 1000);
const SDC_COUNT = arg('sdc', 10_000);
const CONCURRENCY = arg('concurrency', 64);
const POOLS = Math.max(1, Math.ceil(SDS_COUNT / 100)); // 100 SDSs per pool
const MAPPED_SDCS = Math.min(SDC_COUNT, 1000);
const profileAt = process.argv.indexOf('--profile');
const PROFILE_DIR = profileAt > 0 ? process.argv[profileAt + 1] : undefined;

/** Collects teardown functions like a tap Test does, so the test helpers work here. */
class Scope {
  private readonly fns: Array<() => unknown> = [];
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async close(): Promise<void> {
    for (const fn of this.fns.reverse()) await fn();
  }
}

/** `pflex mdm init` + `pflex mdm start --port 0` in a temp dir (optionally under --cpu-prof). */
async function startMdm(scope: Scope): Promise<{ url: string; dataDir: string; pid: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'pflex-bench-mdm-'));
  scope.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'mdm');
  const init = await runPflex(['mdm', 'init', '--data-dir', dataDir, '--admin-password', ADMIN_PASSWORD]);
  if (init.code !== 0) throw new Error(`pflex mdm init failed: ${init.stderr}`);
  const nodeFlags = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  const port = await freePort();
  // Request logging at info costs the MDM two log lines per request; the bench measures the API (see docs/benchmarks.md).
  // Components beat only when the load generator picks them; long thresholds keep them from flapping to STALE/DOWN
  // (with alerts) mid-run, so the figures are request throughput, not the failure detector.
  const thresholds = ['--stale-after-missed-beats', '1800', '--down-after-ms', '3600000'];
  const child = spawn(process.execPath, [...nodeFlags, PFLEX_BIN, 'mdm', 'start', '--data-dir', dataDir, '--port', String(port), ...thresholds], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, PFLEX_LOG_LEVEL: process.env.PFLEX_LOG_LEVEL ?? 'warn' },
  });
  scope.teardown(async () => {
    if (child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`mdm exited (${child.exitCode}) before listening`);
    const live = await fetch(`${url}/health/live`).then((r) => r.ok, () => false);
    if (live) break;
    if (i > 300) throw new Error('mdm did not come up in 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, dataDir, pid: child.pid! };
}

/** A lean JSON-over-HTTP client on keep-alive sockets (fetch costs more CPU per call, and the cores are shared). */
class Http {
  private readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  constructor(url: string, sockets: number) {
    const u = new URL(url);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  }

  call<T>(method: string, path: string, body: unknown, token?: string): Promise<{ status: number; body: T }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.host,
          port: this.port,
          method,
          path,
          agent: this.agent,
          headers: {
            ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => {
            const text = Buffer.concat(parts).toString('utf8');
            resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : undefined) as T });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  async ok<T>(method: string, path: string, body: unknown, token?: string): Promise<T> {
    const r = await this.call<T>(method, path, body, token);
    if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Runs fn(i) for i in 0..n-1 with at most `width` in flight. */
async function forEach(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, n) }, async () => {
    while (next < n) await fn(next++);
  }));
}

/**
 * CPU seconds the process has used (user + system, from /proc; null where
 * there is no /proc). Per-request CPU does not depend on what else the
 * machine runs, unlike requests per second.
 */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return null;
  }
}

interface Component {
  id: number;
  token: string;
}

interface PhaseResult {
  name: string;
  mdmCpuSeconds: number | null;
  ops: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
}

async function phase(name: string, pid: number, width: number, op: (worker: number, n: number) => Promise<boolean>): Promise<PhaseResult> {
  const cpu0 = cpuSeconds(pid);
  const lat: number[] = [];
  let errors = 0;
  let n = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await Promise.all(Array.from({ length: width }, async (_, w) => {
    while (performance.now() < end) {
      const t0 = performance.now();
      const ok = await op(w, n++).catch(() => false);
      lat.push(performance.now() - t0);
      if (!ok) errors++;
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  const cpu1 = cpuSeconds(pid);
  const mdmCpuSeconds = cpu0 === null || cpu1 === null ? null : cpu1 - cpu0;
  const sorted = Float64Array.from(lat).sort();
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
  return { name, mdmCpuSeconds, ops: lat.length, errors, seconds, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}

function report(r: PhaseResult): void {
  const cpu = r.mdmCpuSeconds === null || r.ops === 0
    ? ''
    : `  MDM CPU ${((r.mdmCpuSeconds * 1e6) / r.ops).toFixed(0)} us/req (= ${(r.ops / r.mdmCpuSeconds).toFixed(0)} req/s per busy core)`;
  console.log(
    `${r.name.padEnd(16)} ${(r.ops / r.seconds).toFixed(0).padStart(7)} req/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  ` +
      `(${r.ops} requests in ${r.seconds.toFixed(1)} s, ${r.errors} errors)${cpu}`,
  );
}

async function main(): Promise<void> {
  const scope = new Scope();
  try {
    const mdm = await startMdm(scope);
    const key = readClusterKey(join(mdm.dataDir, 'cluster.key'));
    const client = new Http(mdm.url, CONCURRENCY);
    scope.teardown(() => client.close());
    const admin = (await client.ok<{ token: string }>('POST', '/auth/login', { username: 'admin', password: ADMIN_PASSWORD })).token;

    const setupStart = performance.now();
    const pd = await client.ok<{ id: number }>('POST', '/protection-domains', { name: 'bench' }, admin);
    for (let p = 0; p < POOLS; p++) {
      await client.ok('POST', '/storage-pools', { protectionDomainId: pd.id, name: `pool${p}`, replicationFactor: 2, pgCount: 256 }, admin);
    }
    const login = async (kind: 'sds' | 'sdc', name: string): Promise<string> => {
      const tsMs = Date.now();
      const r = await client.ok<{ token: string }>('POST', '/auth/component', { kind, name, tsMs, proof: componentProof(key, kind, name, tsMs) });
      return r.token;
    };
    const sds: Component[] = new Array(SDS_COUNT);
    // Registrations within one pool serialize on its PG map anyway; spread them over pools.
    await forEach(SDS_COUNT, 8, async (i) => {
      const name = `sds${i}`;
      const token = await login('sds', name);
      const r = await client.ok<{ id: number }>('POST', '/sds', {
        name, protectionDomainName: 'bench', storagePoolName: `pool${i % POOLS}`, address: '127.0.0.1',
        dataPort: 10_000 + (i % 50_000), capacityBytes: 2 ** 40,
      }, token);
      sds[i] = { id: r.id, token };
    });
    const sdc: Component[] = new Array(SDC_COUNT);
    await forEach(SDC_COUNT, 16, async (i) => {
      const guid = `sdc-${i}`;
      const token = await login('sdc', guid);
      const r = await client.ok<{ id: number }>('POST', '/sdcs', { guid }, token);
      sdc[i] = { id: r.id, token };
    });
    const volumes: number[] = [];
    await forEach(MAPPED_SDCS, 8, async (i) => {
      const v = await client.ok<{ id: number }>('POST', '/volumes', { name: `vol${i}`, storagePoolId: 1 + (i % POOLS), sizeBytes: 2 ** 30 }, admin);
      await client.ok('POST', `/volumes/${v.id}/mappings`, { sdcId: sdc[i]!.id }, admin);
      volumes[i] = v.id;
    });
    console.log(
      `setup: ${SDS_COUNT} SDSs in ${POOLS} pools, ${SDC_COUNT} SDCs, ${MAPPED_SDCS} mapped volumes, each component logged in: ` +
        `${((performance.now() - setupStart) / 1000).toFixed(1)} s`,
    );
    console.log(`phases: ${SECONDS} s each, ${CONCURRENCY} concurrent requests on keep-alive connections`);

    // Heartbeats: components beat in proportion to their numbers (SDCs outnumber SDSs 10:1).
    const total = SDS_COUNT + SDC_COUNT;
    const hb = await phase('heartbeat', mdm.pid, CONCURRENCY, async (_w, n) => {
      const i = (n * 7919) % total;
      const r = i < SDS_COUNT
        ? await client.call('POST', `/sds/${sds[i]!.id}/heartbeat`, { usedBytes: 0 }, sds[i]!.token)
        : await client.call('POST', `/sdcs/${sdc[i - SDS_COUNT]!.id}/heartbeat`, {}, sdc[i - SDS_COUNT]!.token);
      return r.status === 200;
    });
    report(hb);
    const tok = await phase('io-token', mdm.pid, CONCURRENCY, async (_w, n) => {
      const i = (n * 7919) % MAPPED_SDCS;
      const r = await client.call('POST', `/sdcs/${sdc[i]!.id}/tokens`, { volumeId: volumes[i] }, sdc[i]!.token);
      return r.status === 200;
    });
    report(tok);
    const map = await phase('pg-map (delta)', mdm.pid, CONCURRENCY, async (_w, n) => {
      const r = await client.call('GET', `/storage-pools/${1 + (n % POOLS)}/pg-map?sinceEpoch=1000000`, undefined, sds[n % SDS_COUNT]!.token);
      return r.status === 200;
    });
    report(map);
    const target = 5000;
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`heartbeat target >= ${target}/s: ${hb.ops / hb.seconds >= target ? 'met' : 'NOT met'} on this run (load average ${load})`);
    // On a shared machine requests/s depend on the other load; the MDM's CPU per beat does not.
    if (hb.mdmCpuSeconds !== null && hb.mdmCpuSeconds > 0) {
      const perCore = hb.ops / hb.mdmCpuSeconds;
      console.log(`heartbeat capacity of one MDM core: ${perCore.toFixed(0)}/s: ${perCore >= target ? 'meets' : 'does NOT meet'} the target`);
    }
  } finally {
    await scope.close();
  }
}

await main();
