/**
 * The pflex test image, built locally with no pull: a root file system made of
 * this machine's node binary and its shared libraries, busybox (a shell for
 * debugging with `docker exec`), minimal /etc files and the built project
 * (package.json, bin/, dist/src/, production node_modules), imported with
 * `docker import`. The tag is a content hash of those inputs, so every test
 * file reuses one image until the code changes; a lock file makes concurrent
 * builders wait for one another instead of building twice.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync,
  rmSync, statSync, symlinkSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { ROOT } from '../helpers/proc.js';

export const IMAGE_REPO = 'pflex-test';
/** Where the project lives inside the image. */
export const IMAGE_APP_DIR = '/opt/pflex';
export const IMAGE_NODE = '/usr/bin/node';
/** A builder holding the lock longer than this is presumed dead. */
const lockStaleMs = 10 * 60_000;
const lockWaitMs = 10 * 60_000;
/** Images of earlier builds are removed after this long. */
const imageKeepMs = 60 * 60_000;
const BUSYBOX_APPLETS = ['sh', 'ls', 'cat', 'ps', 'sleep', 'df', 'du', 'kill', 'ip', 'netstat', 'wget', 'find', 'grep', 'rm', 'mkdir', 'env', 'top'];

export interface ImageInfo {
  tag: string;
  /** True when this call built it (false: reused). */
  built: boolean;
  buildMs: number;
}

function docker(args: string[], input?: Buffer): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024, ...(input ? { input } : {}) });
}

function imageExists(tag: string): boolean {
  return spawnSync('docker', ['image', 'inspect', tag], { stdio: 'ignore' }).status === 0;
}

function nodeBinary(): string {
  return realpathSync(process.execPath);
}

/** Shared libraries of an ELF binary, as ldd reports them (absolute paths). */
function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const libs = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.add(m[1]!);
  }
  return [...libs];
}

/** Directories of the production dependencies (npm's own view, nested ones included). */
function productionPackages(): string[] {
  const r = spawnSync('npm', ['ls', '--omit=dev', '--parseable', '--all'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(join(ROOT, 'node_modules') + '/'));
}

function busybox(): string | undefined {
  return ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
}

function hashTree(h: ReturnType<typeof createHash>, dir: string): void {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) hashTree(h, p);
    else if (st.isFile()) h.update(relative(ROOT, p)).update('\0').update(readFileSync(p)).update('\0');
  }
}

/** Content hash of everything that goes into the image. */
export function imageInputsHash(): string {
  const h = createHash('sha256');
  h.update('pflex-test-image v1\0');
  for (const f of ['package.json', 'package-lock.json', 'bin/pflex.js']) h.update(f).update(readFileSync(join(ROOT, f)));
  hashTree(h, join(ROOT, 'dist/src'));
  const node = nodeBinary();
  const st = statSync(node);
  h.update(`${node}:${st.size}:${st.mtimeMs}:${busybox() ?? 'no-busybox'}`);
  return h.digest('hex').slice(0, 16);
}

function copyInto(rootfs: string, src: string, dest = src): void {
  const to = join(rootfs, dest);
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(realpathSync(src), to);
}

function populateRootfs(rootfs: string): void {
  const node = nodeBinary();
  copyInto(rootfs, node, IMAGE_NODE);
  for (const lib of sharedLibraries(node)) copyInto(rootfs, lib);
  const bb = busybox();
  if (bb) {
    copyInto(rootfs, bb, '/bin/busybox');
    for (const applet of BUSYBOX_APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  }
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(rootfs, 'etc/nsswitch.conf'), 'hosts: files dns\n');
  for (const d of ['tmp', 'root', 'data', 'proc', 'sys', 'dev']) mkdirSync(join(rootfs, d), { recursive: true });

  const app = join(rootfs, IMAGE_APP_DIR);
  mkdirSync(app, { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(app, 'package.json'));
  cpSync(join(ROOT, 'bin'), join(app, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'dist/src'), join(app, 'dist/src'), { recursive: true });
  for (const pkg of productionPackages()) {
    // Nested dependencies are listed (and copied) on their own; sources of
    // native builds are not needed at run time.
    cpSync(pkg, join(app, relative(ROOT, pkg)), {
      recursive: true,
      dereference: true,
      filter: (src) => {
        const rel = relative(pkg, src);
        if (/(^|\/)node_modules(\/|$)/.test(rel)) return false;
        return !pkg.endsWith('/better-sqlite3') || !/^(deps|src|build\/(deps|Release\/(obj|obj\.target|\.deps)))(\/|$)/.test(rel);
      },
    });
    // Native addons may need libraries node itself does not link (librt for @node-rs/crc32).
    for (const addon of nativeAddons(pkg)) for (const lib of sharedLibraries(addon)) copyInto(rootfs, lib);
  }
}

/** The .node files of one package (its own, not those of nested node_modules). */
function nativeAddons(pkg: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules') continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.node')) found.push(p);
    }
  };
  walk(pkg);
  return found;
}

function takeLock(path: string): () => void {
  const deadline = Date.now() + lockWaitMs;
  for (;;) {
    try {
      closeSync(openSync(path, 'wx'));
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(path).mtimeMs > lockStaleMs) unlinkSync(path);
      } catch { /* removed meanwhile */ }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
}

/**
 * Returns the tag of an image holding the current build, building it if no
 * image with the current content hash exists, after checking that the CLI
 * starts in it. Synchronous on purpose: it runs before any container starts.
 */
let imageOfThisProcess: ImageInfo | undefined;

export function ensureImage(): ImageInfo {
  // One image per test process, even if dist/ changes meanwhile (other
  // builds): scenarios of one file run the same code.
  if (imageOfThisProcess && imageExists(imageOfThisProcess.tag)) return { ...imageOfThisProcess, built: false, buildMs: 0 };
  imageOfThisProcess = ensureCheckedImage();
  return imageOfThisProcess;
}

function ensureCheckedImage(): ImageInfo {
  // dist/ may be rewritten by a concurrent `tsc` while it is copied: an image
  // whose CLI does not start is removed and built again.
  for (let attempt = 1; ; attempt++) {
    const info = ensureImageOnce();
    if (spawnSync('docker', ['run', '--rm', '--network', 'none', info.tag, '--help'], { stdio: 'ignore', timeout: 60_000 }).status === 0) return info;
    spawnSync('docker', ['image', 'rm', '-f', info.tag], { stdio: 'ignore' });
    if (attempt === 3) throw new Error(`the test image ${info.tag} does not run \`pflex --help\` (is dist/ built?)`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2_000);
  }
}

function ensureImageOnce(): ImageInfo {
  const t0 = Date.now();
  const tag = `${IMAGE_REPO}:${imageInputsHash()}`;
  if (imageExists(tag)) return { tag, built: false, buildMs: Date.now() - t0 };
  const release = takeLock(join(tmpdir(), `${IMAGE_REPO}-${tag.split(':')[1]}.lock`));
  try {
    if (imageExists(tag)) return { tag, built: false, buildMs: Date.now() - t0 };
    const dir = mkdtempSync(join(tmpdir(), 'pflex-image-'));
    try {
      const rootfs = join(dir, 'rootfs');
      populateRootfs(rootfs);
      const tar = execFileSync('tar', ['-C', rootfs, '--numeric-owner', '--owner=0', '--group=0', '-cf', '-', '.'], { maxBuffer: 1024 * 1024 * 1024 });
      docker([
        'import',
        '--change', 'ENV PATH=/bin:/usr/bin',
        '--change', `WORKDIR ${IMAGE_APP_DIR}`,
        '--change', `ENTRYPOINT ["${IMAGE_NODE}", "${IMAGE_APP_DIR}/bin/pflex.js"]`,
        '--change', 'LABEL pflex.test-image=1',
        '-', tag,
      ], tar);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    pruneOldImages(tag);
    return { tag, built: true, buildMs: Date.now() - t0 };
  } finally {
    release();
  }
}

/** Removes test images of earlier builds older than an hour (one in use by a container stays: rm refuses). */
function pruneOldImages(keep: string): void {
  const r = spawnSync('docker', ['images', IMAGE_REPO, '--format', '{{.Repository}}:{{.Tag}}\t{{.CreatedAt}}'], { encoding: 'utf8' });
  for (const line of r.stdout.split('\n')) {
    const [tag, created] = line.split('\t');
    if (!tag || !created || tag === keep) continue;
    const at = Date.parse(created.replace(/ [A-Z]+$/, '').replace(' ', 'T').replace(' ', ''));
    if (Number.isFinite(at) && Date.now() - at > imageKeepMs) spawnSync('docker', ['image', 'rm', tag], { stdio: 'ignore' });
  }
}
