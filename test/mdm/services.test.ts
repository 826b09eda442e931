import t from 'tap';
import { join } from 'node:path';
import { openDb, schemaVersion } from '../../src/mdm/db.js';
import { MIGRATIONS } from '../../src/mdm/migrations.js';
import { resolveConfig } from '../../src/mdm/config.js';
import { computePlacement } from '../../src/mdm/placement.js';
import { createServices } from '../../src/mdm/services/index.js';
import { generateClusterKey } from '../../src/shared/component-auth.js';
import { PflexError } from '../../src/shared/errors.js';
import { tempDir } from '../helpers/proc.js';
import { FakeClock } from './helpers.js';

const GiB = 1024 ** 3;

function services(t: { teardown(fn: () => unknown): void }, path?: string) {
  const dbPath = path ?? join(tempDir(t), 'mdm.db');
  const db = openDb(dbPath);
  t.teardown(() => db.close());
  const clock = new FakeClock();
  const s = createServices({
    db, clusterKey: generateClusterKey(), config: resolveConfig(), clock: clock.now, place: computePlacement,
    sign: (claims) => JSON.stringify(claims),
  });
  return { s, db, clock, dbPath };
}

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof PflexError ? err.code : `not a PflexError: ${String(err)}`;
  }
  return undefined;
};

t.test('the database file: WAL, foreign keys, all migrations applied', async (t) => {
  const { db } = services(t);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('foreign_keys', { simple: true }), 1);
  t.equal(schemaVersion(db), MIGRATIONS.length);
  t.throws(() => db.prepare("INSERT INTO storage_pools (pd_id, name, replication_factor, chunk_bytes, pg_count, default_provisioning, capacity_high_pct, capacity_critical_pct, created_at_ms) VALUES (99, 'x', 2, 1, 1, 'thin', 1, 1, 0)").run(),
    /FOREIGN KEY/, 'foreign keys are enforced');
});

t.test('services: a failed mutation leaves nothing behind (one transaction per mutation)', async (t) => {
  const { s, db } = services(t);
  const pd = s.topology.createPd('pd');
  const pool = s.topology.createPool({ protectionDomainId: pd.id, name: 'p', replicationFactor: 2, pgCount: 8 });
  for (const name of ['a', 'b']) {
    s.topology.registerSds({ name, protectionDomainName: 'pd', storagePoolName: 'p', address: '127.0.0.1', dataPort: 1, capacityBytes: GiB });
  }
  const trees = (): number => (db.prepare('SELECT COUNT(*) AS n FROM volume_trees').get() as { n: number }).n;
  const before = trees();
  t.equal(code(() => s.volumes.create({ name: 'big', storagePoolId: pool.id, sizeBytes: 2 * GiB, provisioning: 'thick' })), 'PFLEX_ERR_CAPACITY');
  t.equal(trees(), before, 'the volume tree row of the refused volume was rolled back');
  t.equal(s.volumes.list().length, 0);
  const v = s.volumes.create({ name: 'ok', storagePoolId: pool.id, sizeBytes: GiB / 2, provisioning: 'thick' });
  t.equal(s.topology.getPool(pool.id).capacity.reservedBytes, GiB / 2);
  t.equal(code(() => s.volumes.map(v.id, 42, 'readWrite', false)), 'PFLEX_ERR_CONFLICT');
  t.equal(code(() => s.volumes.get(42)), 'PFLEX_ERR_NOT_FOUND');
  t.equal(code(() => s.topology.createPd('pd')), 'PFLEX_ERR_CONFLICT');
  t.equal(code(() => s.topology.deletePd(pd.id)), 'PFLEX_ERR_CONFLICT');
  t.equal(s.pgmaps.map(pool.id).epoch, 1);
  t.equal(code(() => s.topology.removeSds(s.topology.listSds()[0]!.id)), 'PFLEX_ERR_CONFLICT');
});

t.test('services: the map keeps its epoch stamps and the PG members are real SDSs', async (t) => {
  const { s } = services(t);
  const pd = s.topology.createPd('pd');
  const pool = s.topology.createPool({ protectionDomainId: pd.id, name: 'p', replicationFactor: 3, pgCount: 64 });
  const events: Array<[number, string]> = [];
  s.events.on('pgMap', (e) => events.push([e.epoch, e.reason]));
  const ids: number[] = [];
  for (const name of ['a', 'b', 'c', 'd']) {
    ids.push(s.topology.registerSds({ name, protectionDomainName: 'pd', storagePoolName: 'p', address: '127.0.0.1', dataPort: 1, capacityBytes: GiB }).sds.id);
  }
  const map = s.pgmaps.map(pool.id);
  t.equal(map.pgs.length, 64);
  t.equal(map.epoch, 2, 'c made the map possible (epoch 1), d rebalanced it (epoch 2)');
  t.same(events, [[1, 'recompute'], [2, 'recompute']], 'one pgMap event per committed change');
  t.equal(code(() => s.topology.registerSds({ name: 'a', protectionDomainName: 'pd', storagePoolName: 'nope', address: 'x', dataPort: 1, capacityBytes: 1 })), 'PFLEX_ERR_CONFLICT');
  s.pgmaps.fence(pool.id, 0, map.pgs[0]!.members[0]!, map.pgs[0]!.epoch);
  t.same(events.at(-1), [3, 'fence']);
  for (const pg of map.pgs) {
    t.equal(new Set(pg.members).size, 3);
    t.ok(pg.members.every((m) => ids.includes(m)));
  }
  const counts = ids.map((id) => map.pgs.filter((p) => p.members.includes(id)).length);
  t.ok(Math.max(...counts) - Math.min(...counts) <= 4, `balanced: ${counts.join(',')}`);
  // re-registration with the same capacity is no change
  s.topology.registerSds({ name: 'a', protectionDomainName: 'pd', storagePoolName: 'p', address: '127.0.0.9', dataPort: 2, capacityBytes: GiB });
  t.equal(s.pgmaps.map(pool.id).epoch, 3, 'same capacity: no recomputation');
  t.equal(events.length, 3);
});
