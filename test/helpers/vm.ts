// Throwaway QEMU VMs for tests that need a real Linux kernel client (the
// kernel's nbd driver). The kernel is Debian's own linux-image package,
// downloaded with apt and extracted (never installed); the root file system
// is an initramfs built from host binaries (busybox-static, nbd-client,
// e2fsprogs) plus their shared libraries. The guest's only network is QEMU
// user-mode networking, where 10.0.2.2 is the host's 127.0.0.1.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { haveCommand } from './proc.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Where the extracted kernel and modules are kept between runs. */
export const VM_CACHE_DIR = process.env.PFLEX_VM_CACHE ?? join(homedir(), '.cache', 'pflex-vm');

/** Kernel modules the standard guest loads; depends= adds the rest, but not the bus driver virtio_pci. */
export const VM_DEFAULT_MODULES = ['virtio_pci', 'virtio_net', 'nbd', 'crc32c_generic', 'ext4'];

/** Host programs the standard guest needs (besides busybox). */
export const VM_DEFAULT_BINARIES = ['/usr/sbin/nbd-client', '/usr/sbin/mke2fs', '/usr/sbin/e2fsck'];

const SBIN_PATH = `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin`;

/** Commands the VM tests need on the host; pass to missingClients(). */
export const VM_HOST_COMMANDS = ['qemu-system-x86_64', 'apt-get', 'apt-cache', 'dpkg-deb', 'cpio', 'gzip', 'busybox', 'nbd-client', 'mke2fs', 'e2fsck'];

export interface VmKernel {
  /** e.g. 6.1.0-56-amd64 */
  release: string;
  vmlinuz: string;
  /** directory holding every cached module as NAME.ko (flat) */
  moduleDir: string;
}

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: SBIN_PATH } });
}

/**
 * Runs an apt query; on a fresh machine the package lists may be missing or
 * stale, so as root it refreshes them once (apt-get update) and retries.
 */
function withAptRefresh<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (process.getuid?.() !== 0) throw err;
    sh('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update', '-q']);
    return fn();
  }
}

/** The versioned kernel package the linux-image-amd64 metapackage points to. */
function currentKernelPackage(): string {
  return withAptRefresh(() => {
    const out = sh('apt-cache', ['depends', 'linux-image-amd64']);
    const m = /Depends:\s*(linux-image-[0-9][^\s]*-amd64)\b/.exec(out);
    if (!m) throw new Error(`cannot find the kernel package behind linux-image-amd64:\n${out}`);
    return m[1]!;
  });
}

/** Reads `depends=` from a module's .modinfo strings (what modinfo -F depends prints). */
export function moduleDepends(koPath: string): string[] {
  const buf = readFileSync(koPath);
  const at = buf.indexOf('\0depends=');
  if (at < 0) return [];
  const start = at + '\0depends='.length;
  const end = buf.indexOf(0, start);
  const value = buf.subarray(start, end).toString('latin1');
  return value ? value.split(',') : [];
}

/** Modules in load order (dependencies first) for the wanted ones. */
export function moduleLoadOrder(moduleDir: string, wanted: string[]): string[] {
  const order: string[] = [];
  const visit = (name: string, path: string[]) => {
    if (order.includes(name)) return;
    if (path.includes(name)) throw new Error(`module dependency cycle: ${[...path, name].join(' -> ')}`);
    const ko = join(moduleDir, `${name}.ko`);
    if (!existsSync(ko)) throw new Error(`kernel module ${name} is not in ${moduleDir}`);
    for (const dep of moduleDepends(ko)) visit(dep, [...path, name]);
    order.push(name);
  };
  for (const w of wanted) visit(w, []);
  return order;
}

function findKernelDir(cacheDir: string): string | undefined {
  if (!existsSync(cacheDir)) return undefined;
  const ready = readdirSync(cacheDir).filter((d) => existsSync(join(cacheDir, d, 'READY'))).sort();
  return ready.length ? join(cacheDir, ready[ready.length - 1]!) : undefined;
}

function downloadDeb(pkg: string, dir: string): string {
  withAptRefresh(() => sh('apt-get', ['download', pkg], { cwd: dir }));
  const deb = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb in ${dir}`);
  return join(dir, deb);
}

/**
 * The cached Debian kernel (vmlinuz plus all its modules, flattened),
 * downloaded and extracted on first use. Uses whatever is cached without
 * asking apt; delete VM_CACHE_DIR to pick up a newer kernel.
 */
export function ensureVmKernel(cacheDir = VM_CACHE_DIR): VmKernel {
  let dir = findKernelDir(cacheDir);
  if (!dir) {
    mkdirSync(cacheDir, { recursive: true });
    const pkg = currentKernelPackage();
    const release = pkg.replace(/^linux-image-/, '');
    // Built in a private dir and renamed into place, so parallel test files
    // never see half a kernel.
    const work = mkdtempSync(join(cacheDir, '.build-'));
    try {
      const deb = downloadDeb(pkg, work);
      const x = join(work, 'x');
      sh('dpkg-deb', ['-x', deb, x]);
      const out = join(work, release);
      const mods = join(out, 'modules');
      mkdirSync(mods, { recursive: true });
      copyFileSync(join(x, 'boot', `vmlinuz-${release}`), join(out, 'vmlinuz'));
      const walk = (d: string) => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          const p = join(d, e.name);
          if (e.isDirectory()) walk(p);
          else if (e.name.endsWith('.ko')) copyFileSync(p, join(mods, e.name.replace(/-/g, '_')));
        }
      };
      walk(join(x, 'lib', 'modules', release, 'kernel'));
      writeFileSync(join(out, 'READY'), `${pkg}\n`);
      try {
        renameSync(out, join(cacheDir, release));
      } catch (err) {
        if (!existsSync(join(cacheDir, release, 'READY'))) throw err;
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    dir = join(cacheDir, release);
  }
  return { release: basename(dir), vmlinuz: join(dir, 'vmlinuz'), moduleDir: join(dir, 'modules') };
}

/** Shared libraries (and the loader) a dynamically linked binary needs, per ldd. */
export function sharedLibraries(binary: string): string[] {
  let out: string;
  try {
    out = sh('ldd', [binary]);
  } catch {
    return []; // ldd fails on static binaries ("not a dynamic executable")
  }
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

export interface InitramfsOptions {
  kernel: VmKernel;
  /** shell commands run by /init after modules, devices and network are up */
  script: string;
  /** output path of the gzip'd newc cpio */
  out: string;
  modules?: string[];
  binaries?: string[];
  /** extra files: guest path -> content */
  files?: Record<string, string | Buffer>;
}

function copyInto(root: string, hostPath: string, guestPath = hostPath, mode?: number): void {
  const dest = join(root, guestPath);
  mkdirSync(dirname(dest), { recursive: true });
  if (!existsSync(dest)) copyFileSync(hostPath, dest);
  chmodSync(dest, mode ?? statSync(hostPath).mode & 0o777);
}

function findBusybox(): string {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) if (existsSync(p)) return p;
  throw new Error('busybox not found (apt-get install busybox-static)');
}

/**
 * The guest's /init: mounts, loads modules, brings up eth0 as 10.0.2.15,
 * runs the caller's script in a subshell, prints PFLEX_VM_EXIT=<status>
 * and powers off. Output goes to the serial console (ttyS0).
 */
function initScript(modules: string[], script: string): string {
  return `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /mnt /var/run /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
echo PFLEX_VM_BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)
for m in ${modules.join(' ')}; do
  insmod /lib/modules/$m.ko || echo "PFLEX_VM_WARN insmod $m failed"
done
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 || echo PFLEX_VM_WARN network
(
set -e
${script}
)
status=$?
sync
echo PFLEX_VM_EXIT=$status uptime=$(cut -d' ' -f1 /proc/uptime)
poweroff -f
`;
}

/** Builds a gzip'd newc initramfs for one VM run. */
export function buildInitramfs(opts: InitramfsOptions): { initrd: string; modules: string[] } {
  const modules = moduleLoadOrder(opts.kernel.moduleDir, opts.modules ?? VM_DEFAULT_MODULES);
  const root = mkdtempSync(join(dirname(opts.out), '.initramfs-'));
  try {
    copyInto(root, findBusybox(), '/bin/busybox', 0o755);
    const binaries = opts.binaries ?? VM_DEFAULT_BINARIES;
    for (const bin of binaries) {
      copyInto(root, bin, bin, 0o755);
      for (const lib of sharedLibraries(bin)) copyInto(root, lib);
    }
    // mkfs.ext4 is mke2fs under another name.
    if (binaries.includes('/usr/sbin/mke2fs')) symlinkSync('mke2fs', join(root, 'usr/sbin/mkfs.ext4'));
    if (existsSync('/etc/mke2fs.conf')) copyInto(root, '/etc/mke2fs.conf');
    for (const m of modules) copyInto(root, join(opts.kernel.moduleDir, `${m}.ko`), `/lib/modules/${m}.ko`, 0o644);
    for (const [path, content] of Object.entries(opts.files ?? {})) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    writeFileSync(join(root, 'init'), initScript(modules, opts.script), { mode: 0o755 });
    execFileSync('sh', ['-c', `find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > "$OUT"`], {
      cwd: root,
      env: { ...process.env, OUT: opts.out },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return { initrd: opts.out, modules };
}

export interface VmRunOptions {
  kernel: VmKernel;
  initrd: string;
  memoryMb?: number;
  timeoutMs?: number;
  /** extra kernel command line */
  append?: string;
  /** called with each console line as it arrives */
  onLine?: (line: string) => void;
}

export interface VmResult {
  /** the whole serial console output */
  console: string;
  /** the guest script's exit status from PFLEX_VM_EXIT, or null when it never printed one */
  exitStatus: number | null;
  timedOut: boolean;
  /** wall-clock milliseconds from spawn to QEMU exit */
  elapsedMs: number;
  /** milliseconds from spawn until the guest's /init started */
  bootMs: number | null;
  /** values printed by the guest as PFLEX_RESULT key=value */
  results: Record<string, string>;
}

/**
 * Boots the VM with TCG (KVM hangs at boot on some hosts) and collects the
 * serial console until QEMU exits or the timeout kills it.
 */
export async function runVm(t: Teardown, opts: VmRunOptions): Promise<VmResult> {
  const args = [
    '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-m', String(opts.memoryMb ?? 512), '-smp', '1',
    '-kernel', opts.kernel.vmlinuz, '-initrd', opts.initrd,
    '-append', `console=ttyS0 panic=-1 loglevel=4 ${opts.append ?? ''}`.trim(),
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    '-netdev', 'user,id=n0',
    // romfile= : Debian's qemu-system-x86 may lack efi-virtio.rom, which we do not need.
    '-device', 'virtio-net-pci,netdev=n0,romfile=',
  ];
  const started = Date.now();
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let consoleText = '';
  let stderr = '';
  let pending = '';
  let bootMs: number | null = null;
  child.stdout!.on('data', (d: Buffer) => {
    const s = d.toString('latin1');
    consoleText += s;
    pending += s;
    const lines = pending.split(/\r?\n/);
    pending = lines.pop()!;
    for (const line of lines) {
      if (bootMs === null && line.includes('PFLEX_VM_BOOTED')) bootMs = Date.now() - started;
      opts.onLine?.(line);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 180000);
  const [code] = (await exited) as [number | null];
  clearTimeout(timer);
  if (code !== 0 && !timedOut && !consoleText.includes('PFLEX_VM_EXIT=')) {
    throw new Error(`qemu-system-x86_64 exited ${code}: ${stderr}\n${consoleText.slice(-4000)}`);
  }
  const exitMatch = /PFLEX_VM_EXIT=(\d+)/.exec(consoleText);
  const results: Record<string, string> = {};
  for (const m of consoleText.matchAll(/PFLEX_RESULT (\w+)=(\S*)/g)) results[m[1]!] = m[2]!;
  return {
    console: consoleText,
    exitStatus: exitMatch ? Number(exitMatch[1]) : null,
    timedOut,
    elapsedMs: Date.now() - started,
    bootMs,
    results,
  };
}

/** Skip reason when the host cannot build or boot the test VM. */
export function vmUnavailable(): string | false {
  const missing = VM_HOST_COMMANDS.filter((c) => !haveCommand(c));
  if (!existsSync('/bin/busybox') && !existsSync('/usr/bin/busybox')) missing.push('busybox');
  return missing.length ? `missing ${[...new Set(missing)].join(', ')} (run scripts/install-test-deps.sh as root)` : false;
}
