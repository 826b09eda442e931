/**
 * MDM backup and restore. A real cluster (MDM, three SDS, SDC processes):
 * data written through NBD, an online backup through the API, the MDM
 * killed, `pflex restore` into a fresh data dir, the MDM started there on
 * the old port: the SDSs and the SDC carry on with it and the data reads
 * back identical, a snapshot's too (the restored MDM knows the layers). In
 * process: retention and the scheduled backups.
 */
import t from 'tap';
import { existsSync, readFileSync, statSync, writeFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { build } from '../../src/mdm/app.js';
import { MIGRATIONS } from '../../src/mdm/migrations.js';
import { generateClusterKey } from '../../src/shared/component-auth.js';
import { MdmClient } from '../../src/shared/mdm-client.js';
import { missingClients } from '../helpers/nbd.js';
import { io, run, until } from './helpers.js';
import { PFLEX_BIN, spawnPflex, tempDir } from '../helpers/proc.js';
import { ADMIN_PASSWORD } from '../helpers/mdm.js';
import { startCluster } from '../sdc/cluster.js';
import { waitForMapEpoch } from '../sds/cluster.js';
import { call, login, testMdm } from '../mdm/helpers.js';

const skip = missingClients('qemu-io');
const MiB = 1024 * 1024;



const pflex = (...args: string[]) => run(process.execPath, [PFLEX_BIN, ...args]);

t.test('backup, kill the MDM, restore into a fresh data dir: the cluster serves the same data', { skip }, async (t) => {
  const c = await startCluster(t, { mdmConfig: {}, pgCount: 16 });
  const keep = await c.volume('keep', 8 * MiB);
  await io(t, c.sdc.uri('keep'), 'write 8 MiB', 'write -P 0x6b 0 3M', 'write -P 0x2e 3M 5M');
  const snap = await c.mdm.admin.mapVolume((await c.mdm.admin.createSnapshot(keep.id, 'keep.s1')).id, c.sdc.id);
  await io(t, c.sdc.uri('keep'), 'overwrite 1 MiB after the snapshot', 'write -P 0x77 3M 1M');
  const layout = await c.mdm.admin.getVolume(keep.id);

  const refused = await pflex('backup', 'create', '--data-dir', c.mdm.dataDir, '--out', tempDir(t, 'pflex-offline-'));
  t.equal(refused.code, 5, 'an offline backup of a running MDM\'s data dir is refused');

  const b = await c.mdm.admin.createBackup();
  t.match(b, { schemaVersion: MIGRATIONS.length });
  t.ok(b.path.startsWith(join(c.mdm.dataDir, 'backups')), 'written into DATA_DIR/backups on the MDM host');
  t.equal(readFileSync(join(b.path, 'cluster.key'), 'utf8'), readFileSync(c.mdm.keyFile, 'utf8'), 'the backup carries the cluster key');
  t.equal(statSync(join(b.path, 'cluster.key')).mode & 0o777, 0o600, 'readable by its owner only');
  t.same((await c.mdm.admin.listBackups()).map((x) => x.name), [b.name]);
  const before = await c.mdm.admin.getPgMap(c.poolId);

  // The MDM dies with its data dir; the backup is all that is left.
  const port = new URL(c.mdm.url).port;
  await c.mdm.proc.stop('SIGKILL');
  const damaged = join(tempDir(t, 'pflex-damaged-'), 'b');
  cpSync(b.path, damaged, { recursive: true });
  const db = readFileSync(join(damaged, 'mdm.db'));
  db[db.length - 100] ^= 0xff;
  writeFileSync(join(damaged, 'mdm.db'), db);
  t.equal((await pflex('restore', damaged, '--data-dir', join(tempDir(t, 'pflex-r1-'), 'mdm'))).code, 2, 'a damaged backup is refused');

  const fresh = join(tempDir(t, 'pflex-restored-'), 'mdm');
  const restored = await pflex('restore', b.path, '--data-dir', fresh);
  t.equal(restored.code, 0, 'pflex restore');
  if (restored.code !== 0) t.comment(restored.out);
  t.equal((await pflex('restore', b.path, '--data-dir', fresh)).code, 5, 'never over an existing cluster without --force');

  const proc = spawnPflex(t, ['mdm', 'start', '--data-dir', fresh, '--port', port]);
  await proc.waitForLog((l) => l.msg === 'mdm listening', 120_000);
  const admin = new MdmClient({ url: c.mdm.url });
  await admin.login('admin', ADMIN_PASSWORD);
  const mdm = { ...c.mdm, proc, admin, dataDir: fresh };
  t.same((await admin.listVolumes()).map((v) => v.name).sort(), ['keep', 'keep.s1'], 'the volumes and the snapshot are back');
  t.match(await admin.getVolume(keep.id), { layerId: layout.layerId, layerChain: layout.layerChain }, 'the volume is on the same layer chain');
  t.match(await admin.getVolume(snap.id), { kind: 'snapshot', layerId: snap.layerId, layerChain: snap.layerChain }, 'the snapshot on its layer');
  const map = await waitForMapEpoch(mdm, c.poolId, c.sds, 120_000);
  t.ok(map.epoch > before.epoch, `every SDS follows the restored map (epoch ${before.epoch} -> ${map.epoch})`);
  const sdc = await until('the SDC beats to the restored MDM', async () => {
    const s = (await admin.listSdcs()).find((x) => x.id === c.sdc.id);
    return s && s.state === 'ACTIVE' && s.lastHeartbeatMs > Date.now() - 5000 ? s : undefined;
  });
  t.ok(sdc, 'the SDC is ACTIVE');
  await io(t, c.sdc.uri('keep'), 'the data reads back identical', 'read -P 0x6b 0 3M', 'read -P 0x77 3M 1M', 'read -P 0x2e 4M 4M');
  const old = await run('qemu-io', ['-r', '-f', 'raw', c.sdc.uri('keep.s1'), '-c', 'read -P 0x6b 0 3M', '-c', 'read -P 0x2e 3M 5M']);
  t.equal(old.code, 0, 'the snapshot reads the data at its cut');
  t.notMatch(old.out, /verification failed|error/i, `snapshot patterns verified${old.code ? `: ${old.out}` : ''}`);
  await io(t, c.sdc.uri('keep'), 'and takes new writes', 'write -P 0x11 1M 1M', 'read -P 0x11 1M 1M', 'read -P 0x6b 0 1M');
});

t.test('retention keeps the newest backupKeep; scheduled backups run every backupIntervalMs', async (t) => {
  const m = await testMdm(t);
  await m.app.close();
  const dir = tempDir(t, 'pflex-backups-');
  const app = await build({ db: m.dbPath, clusterKey: generateClusterKey(), config: { backupKeep: 2, backupIntervalMs: 300 }, backupDir: dir, healthTimer: true });
  t.teardown(() => app.close());
  const token = await login(app, 'admin', 'admin-secret-1');
  const made: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await call(app, token, 'POST', '/backups');
    t.equal(r.status, 201);
    made.push(r.body.name);
    await new Promise((r) => setTimeout(r, 5));
  }
  const listed = await until('the scheduled backup ran', async () => {
    const l = (await call(app, token, 'GET', '/backups')).body as Array<{ name: string }>;
    return l.some((b) => !made.includes(b.name)) ? l : undefined;
  });
  t.equal(listed.length, 2, 'two backups kept');
  t.notOk(existsSync(join(dir, made[0]!)), 'the oldest was removed');
  const mon = await login(app, 'watcher', 'monitor-secret-1');
  t.equal((await call(app, mon, 'POST', '/backups')).status, 403, 'admins only');
});

