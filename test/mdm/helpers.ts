import { join } from 'node:path';
import { build, type BuildOptions, type MdmApp } from '../../src/mdm/app.js';
import type { MdmConfig } from '../../src/mdm/config.js';
import { openDb } from '../../src/mdm/db.js';
import { SecurityRepo } from '../../src/mdm/repos/security-repo.js';
import { hashPassword } from '../../src/mdm/services/auth.js';
import { componentProof, generateClusterKey } from '../../src/shared/component-auth.js';
import { tempDir } from '../helpers/proc.js';

interface T { teardown(fn: () => unknown): void }

export const ADMIN_PASSWORD = 'admin-secret-1';
export const MONITOR_PASSWORD = 'monitor-secret-1';

/** A fake clock tests move by hand. */
export class FakeClock {
  constructor(public nowMs = 1_700_000_000_000) {}
  readonly now = (): number => this.nowMs;
  advance(ms: number): void { this.nowMs += ms; }
}

export interface TestMdm {
  app: MdmApp;
  dir: string;
  dbPath: string;
  clusterKey: Buffer;
  clock: FakeClock;
  admin: string;
  monitor: string;
  /** Rebuilds the app on the same database file (restart). */
  restart(): Promise<MdmApp>;
}

let hashes: Promise<[string, string]> | undefined;

/** An MDM on a fresh SQLite file in a temp dir, with an admin and a monitor user and their tokens. */
export async function testMdm(t: T, o: { config?: Partial<MdmConfig>; clock?: FakeClock; place?: BuildOptions['place'] } = {}): Promise<TestMdm> {
  const dir = tempDir(t, 'pflex-mdm-');
  const dbPath = join(dir, 'mdm.db');
  const clusterKey = generateClusterKey();
  const clock = o.clock ?? new FakeClock();
  hashes ??= Promise.all([hashPassword(ADMIN_PASSWORD), hashPassword(MONITOR_PASSWORD)]);
  const [adminHash, monitorHash] = await hashes;
  const db = openDb(dbPath);
  const repo = new SecurityRepo(db);
  repo.insertUser('admin', 'admin', adminHash, clock.now());
  repo.insertUser('watcher', 'monitor', monitorHash, clock.now());
  db.close();
  const opts: BuildOptions = { db: dbPath, clusterKey, clock: clock.now, ...(o.config ? { config: o.config } : {}), ...(o.place ? { place: o.place } : {}) };
  const mdm: TestMdm = {
    app: await build(opts),
    dir, dbPath, clusterKey, clock, admin: '', monitor: '',
    async restart() {
      await mdm.app.close();
      mdm.app = await build(opts);
      return mdm.app;
    },
  };
  t.teardown(() => mdm.app.close());
  mdm.admin = await login(mdm.app, 'admin', ADMIN_PASSWORD);
  mdm.monitor = await login(mdm.app, 'watcher', MONITOR_PASSWORD);
  return mdm;
}

export async function login(app: MdmApp, username: string, password: string): Promise<string> {
  const r = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password } });
  if (r.statusCode !== 200) throw new Error(`login failed: ${r.body}`);
  return (r.json() as { token: string }).token;
}

export async function componentToken(m: TestMdm, kind: 'sds' | 'sdc', name: string): Promise<string> {
  const tsMs = m.clock.now();
  const r = await m.app.inject({ method: 'POST', url: '/auth/component', payload: { kind, name, tsMs, proof: componentProof(m.clusterKey, kind, name, tsMs) } });
  if (r.statusCode !== 200) throw new Error(`component login failed: ${r.body}`);
  return (r.json() as { token: string }).token;
}

export interface CallResult<B = any> { status: number; body: B }

/** One call with a bearer token; a JSON answer is parsed. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- test convenience: answers are checked field by field
export async function call<B = any>(app: MdmApp, token: string | undefined, method: string, url: string, payload?: unknown): Promise<CallResult<B>> {
  const r = await app.inject({
    method: method as 'GET',
    url,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  const json = String(r.headers['content-type'] ?? '').startsWith('application/json');
  // A text answer (GET /metrics) is kept as text.
  return { status: r.statusCode, body: r.body ? (json ? (r.json() as B) : (r.body as B)) : (undefined as B) };
}

/** A protection domain, a pool and (optionally) registered SDSs of the given capacities. */
export async function seedPool(m: TestMdm, o: { rf?: 2 | 3; pgCount?: number; sds?: number[]; faultSets?: boolean } = {}): Promise<{ pdId: number; poolId: number; sdsIds: number[] }> {
  const pd = await call(m.app, m.admin, 'POST', '/protection-domains', { name: 'pd1' });
  const pool = await call(m.app, m.admin, 'POST', '/storage-pools', {
    protectionDomainId: pd.body.id, name: 'pool1', replicationFactor: o.rf ?? 2, pgCount: o.pgCount ?? 16,
  });
  if (pool.status !== 201) throw new Error(`pool: ${JSON.stringify(pool.body)}`);
  const sdsIds: number[] = [];
  for (const [i, cap] of (o.sds ?? []).entries()) {
    const name = `sds${i + 1}`;
    if (o.faultSets) await call(m.app, m.admin, 'POST', '/fault-sets', { protectionDomainId: pd.body.id, name: `fs${i + 1}` });
    const tok = await componentToken(m, 'sds', name);
    const r = await call(m.app, tok, 'POST', '/sds', {
      name, protectionDomainName: 'pd1', storagePoolName: 'pool1', address: '127.0.0.1', dataPort: 9700 + i, capacityBytes: cap,
      ...(o.faultSets ? { faultSetName: `fs${i + 1}` } : {}),
    });
    if (r.status !== 201) throw new Error(`sds: ${JSON.stringify(r.body)}`);
    sdsIds.push(r.body.id);
  }
  return { pdId: pd.body.id, poolId: pool.body.id, sdsIds };
}
