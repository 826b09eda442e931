/**
 * The deployment as its users run it: `vagrant validate` of the Vagrantfile
 * for libvirt, then `vagrant up --provider=docker` of the five hosts (systemd
 * containers from vagrant/build-docker-base.sh, provisioned by
 * ansible/site.yml), IO from this host through sdc1 (nbdcopy write and
 * read-back of a volume the playbook created and mapped), the units checked
 * where they run (active, user pflex, `systemd-analyze verify`), and a second
 * `ansible-playbook` run that must report changed=0 on every host.
 *
 * The only network addressed is the one Vagrant creates for this run (a
 * /24 of 10.231.0.0/16 that no route or docker network holds); sshd is on
 * loopback ports. `vagrant destroy -f` and the network removal run at
 * teardown, and again synchronously at exit for a run killed before it.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { haveCommand, ROOT, tempDir } from '../helpers/proc.js';

const run = promisify(execFile);
const ADMIN_PASSWORD = 'deploy-test-password';
const VOLUME_BYTES = 16 * 1024 * 1024;
const SDC_NBD_PORT = 8005;
const HOSTS = ['mdm1', 'sds1', 'sds2', 'sds3', 'sdc1'] as const;
/** Vagrant and Ansible are slow to start on a loaded machine: generous, never a figure. */
const upTimeoutMs = 20 * 60_000;

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (debootstrap of the base image, docker)';
  for (const cmd of ['vagrant', 'ansible-playbook', 'debootstrap', 'docker', 'nbdcopy']) {
    if (!haveCommand(cmd)) return `${cmd} is missing (scripts/install-test-deps.sh installs it)`;
  }
  if (spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 20_000 }).status !== 0) return 'no docker engine answers (scripts/ensure-dockerd.sh)';
  return undefined;
}

const skip = whyNot();
// The file outlives the suite's per-file timeout (package.json tap.timeout, 15 min) on a loaded machine
// (vagrant and ansible are slow to start); the root's setTimeout tells the runner (over IPC) to wait for it.
t.setTimeout(45 * 60_000);

/** A 10.231.X.0/24 that neither a route of this host nor a docker network overlaps. */
function freeSubnet(): string {
  const routes = execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
  // Other test files remove their networks at any moment: one gone between ls and inspect
  // makes inspect exit 1 but still print the others, which is all this needs.
  const nets = spawnSync('docker', ['network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Subnet}} {{end}}',
    ...execFileSync('docker', ['network', 'ls', '-q'], { encoding: 'utf8' }).split('\n').filter(Boolean)], { encoding: 'utf8' }).stdout;
  for (let i = 0; i < 50; i++) {
    const third = 1 + Math.floor(Math.random() * 254);
    const prefix = `10.231.${third}`;
    if (!routes.includes(`${prefix}.`) && !nets.includes(`${prefix}.`) && !/(^|\s)10\.0\.0\.0\/8/.test(routes + nets)) return prefix;
  }
  throw new Error('no free 10.231.X.0/24 subnet');
}

interface Recap { host: string; ok: number; changed: number; failed: number; unreachable: number }

/** The PLAY RECAP lines of an ansible-playbook run. */
function recap(out: string): Recap[] {
  const rows: Recap[] = [];
  const re = /^\s*(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm;
  for (let m = re.exec(out); m; m = re.exec(out)) {
    rows.push({ host: m[1]!, ok: Number(m[2]), changed: Number(m[3]), unreachable: Number(m[4]), failed: Number(m[5]) });
  }
  return rows;
}

/**
 * Vagrant's docker provider lists every container (and network) of the
 * engine, then inspects them one by one in other commands (read_used_ports
 * before it creates a machine; PrepareNetworks). The other test files share
 * this engine and remove their containers and networks at any moment; an
 * inspect that meets one gone fails `vagrant up` ("Error: No such object").
 * So Vagrant runs with a `docker` first on its PATH that narrows just those
 * listings to what this run owns: containers of its base image, Vagrant's
 * networks (and docker's three built-in ones, never removed: Vagrant runs
 * `docker network inspect` on the list, which must not be empty). Everything
 * else goes to the real docker unchanged.
 */
function dockerSeenByVagrant(dir: string, image: string): string {
  const real = execFileSync('sh', ['-c', 'command -v docker'], { encoding: 'utf8' }).trim();
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'docker'), `#!/bin/sh
case "$*" in
  "ps -a -q --no-trunc"|"ps -q --no-trunc") exec ${real} "$@" --filter ancestor=${image} ;;
  "network ls --format={{.Name}}") exec ${real} "$@" --filter 'name=^vagrant_network_|^(bridge|host|none)$' ;;
esac
exec ${real} "$@"
`, { mode: 0o755 });
  return bin;
}

t.test('vagrant validate: the Vagrantfile with the libvirt provider', { skip }, async (t) => {
  const dot = tempDir(t, 'pflex-vagrant-validate-');
  const r = await run('vagrant', ['validate'], {
    cwd: ROOT, env: { ...process.env, VAGRANT_DEFAULT_PROVIDER: 'libvirt', VAGRANT_DOTFILE_PATH: dot }, timeout: 5 * 60_000,
  });
  t.match(r.stdout, /Vagrantfile validated successfully/, r.stdout + r.stderr);
});

t.test('vagrant up --provider=docker, IO through sdc1, second ansible run changes nothing', { skip, timeout: 40 * 60_000 }, async (t) => {
  const t0 = Date.now();
  const dir = tempDir(t, 'pflex-vagrant-');
  const base = execFileSync(join(ROOT, 'vagrant/build-docker-base.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 30 * 60_000 }).trim();
  const imageMs = Date.now() - t0;
  const net = freeSubnet();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${dockerSeenByVagrant(dir, base)}:${process.env.PATH ?? ''}`,
    VAGRANT_DOTFILE_PATH: join(dir, 'dot'),
    VAGRANT_DEFAULT_PROVIDER: 'docker',
    PFLEX_VAGRANT_NET: net,
    PFLEX_VAGRANT_SSH_PORT: String(20_000 + Math.floor(Math.random() * 9_000)),
    PFLEX_VAGRANT_DOCKER_IMAGE: base,
    PFLEX_VAGRANT_VOLUME_SIZE: `${VOLUME_BYTES / 1024 / 1024}M`,
    PFLEX_ADMIN_PASSWORD: ADMIN_PASSWORD,
    PFLEX_RELEASE_ARCHIVE: join(dir, 'pflex.tar.gz'),
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
  };
  const vagrant = (args: string[], timeout = upTimeoutMs) => run('vagrant', [...args, '--no-color'], { cwd: ROOT, env, timeout, maxBuffer: 64 * 1024 * 1024 });
  const containerId = (host: string): string | undefined => {
    const f = join(dir, 'dot/machines', host, 'docker/id');
    return existsSync(f) ? readFileSync(f, 'utf8').trim() : undefined;
  };
  const network = `vagrant_network_${net}.0/24`;
  const destroy = (): void => {
    spawnSync('vagrant', ['destroy', '-f'], { cwd: ROOT, env, stdio: 'ignore', timeout: 10 * 60_000 });
    // What vagrant could not remove (a half-created machine, the network).
    for (const h of HOSTS) {
      const id = containerId(h);
      if (id) spawnSync('docker', ['rm', '-f', '-v', id], { stdio: 'ignore' });
    }
    spawnSync('docker', ['network', 'rm', network], { stdio: 'ignore' });
  };
  let destroyed = false;
  const onExit = (): void => { if (!destroyed) destroy(); };
  process.once('exit', onExit);
  // The safety net when a step fails; a passing run destroys at its end and checks it.
  t.teardown(() => {
    if (!destroyed) destroy();
    destroyed = true;
    process.removeListener('exit', onExit);
  });

  const up = await vagrant(['up', '--provider=docker', '--no-parallel']).catch((err: { stdout?: string; stderr?: string; message: string }) => {
    t.fail(`vagrant up failed: ${err.message}\n${(err.stdout ?? '').slice(-6000)}\n${err.stderr ?? ''}`);
    throw err;
  });
  const upMs = Date.now() - t0 - imageMs;
  const first = recap(up.stdout);
  t.same(first.map((r) => r.host).sort(), [...HOSTS].sort(), 'the playbook ran on the five hosts');
  t.ok(first.every((r) => r.failed === 0 && r.unreachable === 0), `first run: nothing failed or unreachable (${JSON.stringify(first)})`);

  // stdout whatever the exit status (systemctl is-active exits 3 for "inactive"): the assertions judge it.
  const exec = async (host: string, cmd: string): Promise<string> => (await run('docker', ['exec', containerId(host)!, 'sh', '-c', cmd])
    .catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }))).stdout.trim();
  const units: Array<[string, string]> = [['mdm1', 'pflex-mdm'], ['sds1', 'pflex-sds'], ['sds2', 'pflex-sds'], ['sds3', 'pflex-sds'], ['sdc1', 'pflex-sdc']];
  for (const [host, unit] of units) {
    t.equal(await exec(host, 'ps -o comm= -p 1'), 'systemd', `${host}: systemd is PID 1`);
    t.equal(await exec(host, `systemctl is-active ${unit}`), 'active', `${host}: ${unit} is active`);
    t.equal(await exec(host, `ps -o user= -p $(systemctl show -p MainPID --value ${unit})`), 'pflex', `${host}: ${unit} runs as pflex`);
    const verify = await run('docker', ['exec', containerId(host)!, 'systemd-analyze', 'verify', `/etc/systemd/system/${unit}.service`]).then(
      (r) => r.stdout + r.stderr, (err: { stdout?: string; stderr?: string }) => `FAILED ${err.stdout ?? ''}${err.stderr ?? ''}`);
    t.notMatch(verify, /FAILED|pflex-\w+\.service:/, `${host}: systemd-analyze verify ${unit}.service is clean`);
    t.equal(await exec(host, `systemctl show -p NoNewPrivileges --value ${unit}`), 'yes', `${host}: ${unit} hardening applies`);
  }
  const mgmtOffered = (await exec('mdm1', "/usr/local/bin/pflex --help | grep -qE '^ +pflex mgmt ' && echo yes || echo no")) === 'yes';
  if (mgmtOffered) t.equal(await exec('mdm1', 'systemctl is-active pflex-mgmt'), 'active', 'mdm1: pflex-mgmt is active');
  else t.comment('this release has no `pflex mgmt start`: the mgmt role skipped it (as designed)');

  const key = await exec('mdm1', 'cat /var/lib/pflex/mdm/cluster.key');
  for (const host of ['sds1', 'sdc1']) {
    t.equal(await exec(host, 'cat /etc/pflex/cluster.key'), key, `${host}: holds the MDM's cluster key`);
    t.equal(await exec(host, 'stat -c %a:%U:%G /etc/pflex/cluster.key'), '640:root:pflex', `${host}: the key is not world-readable`);
  }
  t.notMatch(up.stdout, new RegExp(key), 'the cluster key never appears in the Ansible output');
  t.notMatch(up.stdout, new RegExp(ADMIN_PASSWORD), 'the admin password never appears in the Ansible output');

  // IO from this host through sdc1's NBD port on the private network.
  const uri = `nbd://${net}.31:${SDC_NBD_PORT}`;
  const src = join(dir, 'src.img');
  const back = join(dir, 'back.img');
  const data = randomBytes(VOLUME_BYTES);
  writeFileSync(src, data);
  const io0 = Date.now();
  await run('nbdcopy', ['--flush', src, uri], { timeout: 120_000 });
  await run('nbdcopy', [uri, back], { timeout: 120_000 });
  const ioMs = Date.now() - io0;
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  t.equal(sha(readFileSync(back)), sha(data), `${VOLUME_BYTES} bytes written through sdc1 read back identical`);

  // A second ansible-playbook run, with the inventory Vagrant generated and the same variables.
  const inventory = join(dir, 'dot/provisioners/ansible/inventory/vagrant_ansible_inventory');
  const extra = join(dir, 'extra.json');
  writeFileSync(extra, JSON.stringify({
    pflex_admin_password: ADMIN_PASSWORD, pflex_release_archive: env.PFLEX_RELEASE_ARCHIVE,
    pflex_volumes: [{ name: 'vol1', size: env.PFLEX_VAGRANT_VOLUME_SIZE, sdc: 'sdc1' }],
  }), { mode: 0o600 });
  const again0 = Date.now();
  const second = await run('ansible-playbook', ['-i', inventory, '-e', `@${extra}`, join(ROOT, 'ansible/site.yml')], {
    cwd: ROOT, env: { ...env, ANSIBLE_CONFIG: join(ROOT, 'ansible/ansible.cfg'), ANSIBLE_HOST_KEY_CHECKING: 'False' }, timeout: upTimeoutMs, maxBuffer: 64 * 1024 * 1024,
  }).catch((err: { stdout?: string; message: string }) => {
    t.fail(`second ansible-playbook failed: ${err.message}\n${(err.stdout ?? '').slice(-6000)}`);
    throw err;
  });
  const againMs = Date.now() - again0;
  const rows = recap(second.stdout);
  t.same(rows.map((r) => r.host).sort(), [...HOSTS].sort(), 'the second run covered the five hosts');
  for (const r of rows) t.equal(r.changed, 0, `second run: ${r.host} changed=0 (ok=${r.ok}, failed=${r.failed})`);
  if (rows.some((r) => r.changed > 0)) t.comment(second.stdout.split('\n').filter((l) => /^changed:/.test(l)).join('\n'));

  await run('nbdcopy', [uri, back], { timeout: 120_000 });
  t.equal(sha(readFileSync(back)), sha(data), 'the data is intact after the second run');
  const ids = HOSTS.map((h) => containerId(h)!);
  destroy();
  destroyed = true;
  t.notOk(spawnSync('docker', ['network', 'inspect', network], { stdio: 'ignore' }).status === 0, 'vagrant destroy -f: the private network is gone');
  t.equal(ids.filter((id) => spawnSync('docker', ['container', 'inspect', id], { stdio: 'ignore' }).status === 0).length, 0, 'no container is left');
  t.comment(`figures: base image ${(imageMs / 1000).toFixed(1)} s (${imageMs > 60_000 ? 'built' : 'cached'}), ` +
    `vagrant up + provisioning ${(upMs / 1000).toFixed(1)} s, IO ${(ioMs / 1000).toFixed(1)} s, second ansible run ${(againMs / 1000).toFixed(1)} s`);
});
