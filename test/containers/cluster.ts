/**
 * A pflex cluster in containers, one component per "host": mdm, sds1..sdsN
 * and sdc1 on a user-defined docker network created for the test (testcontainers
 * GenericContainer + Network). Components find each other by network alias;
 * the host reaches only the MDM's API and sdc1's NBD and mgmt ports, published
 * on loopback. Faults are injected from the host: docker stop/kill/start, and
 * network partitions with iptables inside a container's network namespace
 * (nsenter -n), so the image needs no iptables. Teardown removes containers
 * and network even when the test fails.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { GenericContainer, Network, Wait, type StartedNetwork, type StartedTestContainer } from 'testcontainers';
import { MdmClient, type PgMap, type Volume } from '../../src/shared/mdm-client.js';
import { CHUNK_FILE_SUFFIX } from '../../src/sds/store/chunk-file-layout.js';
import { atProcessExit } from '../helpers/exit-hook.js';
import { freePort, PFLEX_BIN, tempDir } from '../helpers/proc.js';
import { ensureImage } from './image.js';
import { listenerJson } from '../helpers/listener.js';

// No reaper container (it would need an image pull); teardown is ours.
process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE = 'localhost';

const run = promisify(execFile);
const ADMIN_PASSWORD = 'containers-test-password';
const MDM_PORT = 8001;
const SDS_PORT = 9700;
const SDC_NBD_PORT = 8005;
const SDC_MGMT_PORT = 8004;
const startupTimeoutMs = 60_000;

/** Why the container tests cannot run here, or undefined when docker works. */
export function dockerUnusable(): string | undefined {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 20_000 });
  } catch {
    return 'no docker engine answers (`docker info` fails): run scripts/ensure-dockerd.sh as root';
  }
  for (const cmd of ['nsenter', 'iptables', 'ldd', 'tar']) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
    } catch {
      return `${cmd} is missing (scripts/install-test-deps.sh installs it)`;
    }
  }
  return undefined;
}

export async function docker(...args: string[]): Promise<string> {
  return (await run('docker', args, { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
}

export interface Node {
  /** Network alias and component name: mdm, sds1, sdc1... */
  name: string;
  container: StartedTestContainer;
  id: string;
}

export interface ContainerCluster {
  image: string;
  imageBuilt: boolean;
  imageBuildMs: number;
  network: StartedNetwork;
  mdm: Node;
  sds: Node[];
  sdc: Node;
  admin: MdmClient;
  poolId: number;
  /** Host port of sdc1's NBD listener (on 127.0.0.1). */
  nbdPort: number;
  sdcMgmtPort: number;
  startMs: number;
  /** Where the start-up time went (image, mdm, sds+sdc, PG map ready), for the figures. */
  startPhases: string;
  volume(name: string, sizeBytes: number): Promise<Volume>;
}

export interface ContainerClusterOptions {
  sdsCount?: number;
  pgCount?: number;
  /** Extra flags of `pflex mdm start` (e.g. heartbeat thresholds). */
  mdmArgs?: string[];
}

const PFLEX = '/usr/bin/node /opt/pflex/bin/pflex.js';

async function startNode(t: Test, image: string, network: StartedNetwork, name: string, cmd: string, waitFor: string, opts: {
  ports?: Array<number | { container: number; host: number }>; files?: Array<{ source: string; target: string }>; dirs?: Array<{ source: string; target: string }>;
} = {}): Promise<Node> {
  let c = new GenericContainer(image)
    .withEntrypoint(['/bin/sh'])
    .withCommand(['-c', cmd])
    .withNetwork(network)
    .withNetworkAliases(name)
    .withHostname(name)
    .withLabels({ 'pflex.test': 'containers', 'pflex.node': name, [OWNER_LABEL]: String(process.pid) })
    .withEnvironment({ PFLEX_LOG_LEVEL: 'info' })
    .withWaitStrategy(Wait.forLogMessage(waitFor))
    .withStartupTimeout(startupTimeoutMs);
  if (opts.ports) c = c.withExposedPorts(...opts.ports);
  if (opts.files) c = c.withCopyFilesToContainer(opts.files);
  if (opts.dirs) c = c.withCopyDirectoriesToContainer(opts.dirs);
  const container = await c.start();
  const node = { name, container, id: container.getId() };
  leftovers.containers.add(node.id);
  t.teardown(() => removeNode(node));
  return node;
}

async function removeNode(n: Node): Promise<void> {
  try {
    await n.container.stop({ remove: true, timeout: 0 });
  } catch {
    await docker('rm', '-f', '-v', n.id).catch(() => undefined);
  }
  leftovers.containers.delete(n.id);
}

// ---- cleanup even when teardown does not run ------------------------------------

/** Label naming the test process that created a container (for the sweep of dead runs). */
const OWNER_LABEL = 'pflex.owner-pid';
/** Every network this suite creates is named so (the pid of its test process follows). */
export const NETWORK_PREFIX = 'pflex-test-';

/** What this process created and has not removed yet: removed synchronously at exit, also when tap's timeout ends the file with SIGTERM. */
const leftovers = { containers: new Set<string>(), networks: new Set<string>() };
atProcessExit(() => {
  for (const id of leftovers.containers) spawnSync('docker', ['rm', '-f', '-v', id], { stdio: 'ignore', timeout: 30_000 });
  for (const id of leftovers.networks) spawnSync('docker', ['network', 'rm', id], { stdio: 'ignore', timeout: 30_000 });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the containers and networks of earlier runs whose test process is
 * gone (killed before its teardown and exit hook ran); those of live test
 * processes (another file running in parallel) are left alone.
 */
async function sweepDeadRuns(): Promise<void> {
  const rows = (await docker('ps', '-a', '--filter', 'label=pflex.test=containers', '--format', `{{.ID}} {{.Label "${OWNER_LABEL}"}}`)).split('\n');
  const dead = rows.map((r) => r.split(' ')).filter(([id, pid]) => id && pid && !alive(Number(pid))).map(([id]) => id!);
  if (dead.length > 0) await docker('rm', '-f', '-v', ...dead).catch(() => undefined);
  const nets = (await docker('network', 'ls', '--filter', `name=${NETWORK_PREFIX}`, '--format', '{{.Name}}')).split('\n');
  for (const name of nets) {
    const pid = Number(new RegExp(`^${NETWORK_PREFIX}(\\d+)-`).exec(name)?.[1]);
    if (pid && !alive(pid)) await docker('network', 'rm', name).catch(() => undefined);
  }
}

/**
 * Starts mdm (initialised on the host, its data dir copied in), creates pd1 /
 * pool1 through the API, then sds1..N and sdc1, and waits until the PG map is
 * ready. Every container and the network go away at teardown.
 */
export async function startContainerCluster(t: Test, o: ContainerClusterOptions = {}): Promise<ContainerCluster> {
  const t0 = Date.now();
  const img = ensureImage();
  const phases: string[] = [`image ${Date.now() - t0} ms`];
  let mark = Date.now();
  const phase = (name: string): void => { phases.push(`${name} ${Date.now() - mark} ms`); mark = Date.now(); };
  await sweepDeadRuns();
  const network = await new Network({ nextUuid: () => `${NETWORK_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}` }).start();
  leftovers.networks.add(network.getId());
  t.teardown(async () => {
    // Teardowns run last in, first out: the containers (started later) are gone by now.
    const removed = await network.stop().then(() => true, () => docker('network', 'rm', network.getId()).then(() => true, () => false));
    if (removed) leftovers.networks.delete(network.getId());
  });

  const dir = tempDir(t, 'pflex-containers-');
  const mdmDir = join(dir, 'mdm');
  mkdirSync(dir, { recursive: true });
  execFileSync(process.execPath, [PFLEX_BIN, 'mdm', 'init', '--data-dir', mdmDir, '--admin-password', ADMIN_PASSWORD], { stdio: 'pipe' });
  const key = { source: join(mdmDir, 'cluster.key'), target: '/data/cluster.key' };

  const mdm = await startNode(t, img.tag, network, 'mdm',
    `exec ${PFLEX} mdm start --data-dir /data/mdm --host 0.0.0.0 --port ${MDM_PORT} ${(o.mdmArgs ?? []).join(' ')}`,
    'mdm listening', {
      // A fixed host port: docker start (scenario c) keeps it, a random one would change.
      ports: [{ container: MDM_PORT, host: await freePort() }],
      dirs: [{ source: mdmDir, target: '/data/mdm' }],
    });
  const admin = new MdmClient({ url: `http://127.0.0.1:${mdm.container.getMappedPort(MDM_PORT)}` });
  await admin.login('admin', ADMIN_PASSWORD);
  phase('mdm');
  const pd = await admin.createPd('pd1');
  const pool = await admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: o.pgCount ?? 32 });

  const names = Array.from({ length: o.sdsCount ?? 4 }, (_, i) => `sds${i + 1}`);
  const [sds, sdc] = await Promise.all([
    Promise.all(names.map((name) => startNode(t, img.tag, network, name,
      `exec ${PFLEX} sds-server start --data-dir /data/sds --mdm http://mdm:${MDM_PORT} --cluster-key-file /data/cluster.key ` +
      `--name ${name} --address ${name} --pd pd1 --pool pool1 --port ${SDS_PORT} --capacity 4G`,
      'sds registered', { files: [key] }))),
    startNode(t, img.tag, network, 'sdc1',
      `exec ${PFLEX} sdc-server --mdm http://mdm:${MDM_PORT} --cluster-key-file /data/cluster.key --name sdc1 --address sdc1 ` +
      `--port ${SDC_NBD_PORT} --mgmt-port ${SDC_MGMT_PORT}`,
      'sdc registered', { ports: [SDC_NBD_PORT, SDC_MGMT_PORT], files: [key] }),
  ]);
  phase('sds+sdc');
  await waitFor(async () => (await admin.getPgMap(pool.id)).ready, 30_000, 'the PG map to become ready');
  phase('pg map');
  const sdcRecord = (await admin.listSdcs({ name: 'sdc1' }))[0];
  if (!sdcRecord) throw new Error('sdc1 is not registered with the MDM');

  const sdcMgmtPort = sdc.container.getMappedPort(SDC_MGMT_PORT);
  return {
    image: img.tag, imageBuilt: img.built, imageBuildMs: img.buildMs, network, mdm, sds, sdc, admin, poolId: pool.id,
    nbdPort: sdc.container.getMappedPort(SDC_NBD_PORT),
    sdcMgmtPort,
    startMs: Date.now() - t0,
    startPhases: phases.join(', '),
    async volume(name, sizeBytes) {
      const v = await admin.createVolume({ name, storagePoolId: pool.id, sizeBytes });
      const mapped = await admin.mapVolume(v.id, sdcRecord.id);
      // The SDC learns its mappings with its heartbeat: wait until it serves the export.
      await waitFor(async () => sdcServes(admin, sdcMgmtPort, name), 30_000, `sdc1 to serve ${name}`);
      return mapped;
    },
  };
}

async function sdcServes(admin: MdmClient, mgmtPort: number, volume: string): Promise<boolean> {
  try {
    const m = await listenerJson<{ volumes?: Record<string, unknown> }>({ token: admin.bearerToken ?? '' }, mgmtPort, '/stats');
    return m.volumes !== undefined && volume in m.volumes;
  } catch {
    return false;
  }
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- faults --------------------------------------------------------------

/** SIGTERM, then SIGKILL after graceS seconds (docker stop). */
export async function stopNode(n: Node, graceS = 2): Promise<void> {
  await docker('stop', '-t', String(graceS), n.id);
}

/** SIGKILL at once (docker kill). */
export async function killNode(n: Node): Promise<void> {
  await docker('kill', n.id);
}

/** Starts a stopped container again (same file system, same network alias). */
export async function startNodeAgain(n: Node): Promise<void> {
  await docker('start', n.id);
}

export async function isRunning(n: Node): Promise<boolean> {
  return (await docker('inspect', '-f', '{{.State.Running}}', n.id)) === 'true';
}

async function netns(n: Node, args: string[]): Promise<void> {
  const pid = await docker('inspect', '-f', '{{.State.Pid}}', n.id);
  await run('nsenter', ['-t', pid, '-n', 'iptables', ...args], { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
}

const PARTITION_RULES = [['INPUT', '!', '-i', 'lo', '-j', 'DROP'], ['OUTPUT', '!', '-o', 'lo', '-j', 'DROP']];

/** Cuts the container off the network: every packet in or out (but loopback) dropped in its namespace. */
export async function partition(n: Node): Promise<void> {
  for (const r of PARTITION_RULES) await netns(n, ['-I', ...r]);
}

export async function heal(n: Node): Promise<void> {
  for (const r of PARTITION_RULES) await netns(n, ['-D', ...r]);
}

// ---- observations ----------------------------------------------------------

/** The PG map as the MDM sees it. */
export function pgMap(c: ContainerCluster): Promise<PgMap> {
  return c.admin.getPgMap(c.poolId);
}

/** PGs with fewer members than the replication factor (degraded). */
export function degradedPgs(map: PgMap): number {
  return map.pgs.filter((p) => p.members.length < map.replicationFactor).length;
}

/** chunk index -> SDS names holding a copy (read from the chunk files in each running SDS container). */
export async function chunkCopies(c: ContainerCluster, treeId: number, only: Node[] = c.sds): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const n of only) {
    if (!(await isRunning(n))) continue;
    const list = await docker('exec', n.id, 'find', '/data/sds/chunks', '-name', `${treeId}-*${CHUNK_FILE_SUFFIX}`).catch(() => '');
    for (const path of list.split('\n')) {
      if (!path.endsWith(CHUNK_FILE_SUFFIX)) continue;
      const m = /\/(\d+)-(\d+)-(\d+)$/.exec(path.slice(0, -CHUNK_FILE_SUFFIX.length));
      if (!m) continue;
      const idx = Number(m[2]);
      out.set(idx, [...new Set([...(out.get(idx) ?? []), n.name])]);
    }
  }
  return out;
}

/** The last lines of a container's log (for a failing test's comment). */
export async function tail(n: Node, lines = 30): Promise<string> {
  return docker('logs', '--tail', String(lines), n.id).catch((e: Error) => e.message);
}
