/**
 * Backups of the MDM: what it takes to bring the control plane back on a new
 * data dir. A backup is a directory
 *
 *   <backupDir>/pflex-mdm-<UTC time>/
 *     mdm.db         an online copy (SQLite backup API: consistent while the MDM serves)
 *     cluster.key    the cluster key (0600): without it IO tokens, component logins and
 *                    user tokens no longer verify, and no SDS or SDC could talk to the MDM
 *     manifest.json  {format, createdAtMs, schemaVersion, files: {name: {bytes, sha256}}}
 *
 * so a backup is as secret as the cluster key (directories 0700, files 0600).
 * restoreBackup() verifies a backup and installs it in a fresh data dir.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { encodeClusterKey, readClusterKey } from '../shared/component-auth.js';
import { PflexError } from '../shared/errors.js';
import { CLUSTER_KEY_FILE, MDM_DB_FILE } from './config.js';
import { openDb, schemaVersion, tx, type Db } from './db.js';
import { MIGRATIONS } from './migrations.js';
import { PgRepo } from './repos/pg-repo.js';
import { SecurityRepo } from './repos/security-repo.js';

const FORMAT = 'pflex-mdm-backup/1';
const MANIFEST = 'manifest.json';
const PREFIX = 'pflex-mdm-';
/**
 * A restored map is the newest the cluster has: every PG epoch is raised by
 * this much, so SDSs and SDCs that saw later epochs of the old MDM accept it.
 */
export const RESTORE_EPOCH_BUMP = 1000;

export interface BackupInfo {
  name: string;
  path: string;
  createdAtMs: number;
  schemaVersion: number;
  bytes: number;
}

interface Manifest {
  format: string;
  createdAtMs: number;
  schemaVersion: number;
  files: Record<string, { bytes: number; sha256: string }>;
}

/** Writes a backup of a live database (the MDM's own connection) into backupDir. */
export async function createBackup(db: Db, clusterKey: Buffer, backupDir: string, nowMs = Date.now()): Promise<BackupInfo> {
  mkdirSync(backupDir, { recursive: true, mode: 0o700 });
  const name = `${PREFIX}${new Date(nowMs).toISOString().replace(/[:.]/g, '-')}`;
  const final = join(backupDir, name);
  if (existsSync(final)) throw new PflexError('PFLEX_ERR_CONFLICT', `backup ${final} already exists`);
  // Built under a temporary name and renamed: a half-written backup never looks like one.
  const tmp = join(backupDir, `.${name}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  try {
    await db.backup(join(tmp, MDM_DB_FILE));
    chmodSync(join(tmp, MDM_DB_FILE), 0o600);
    writeFileSync(join(tmp, CLUSTER_KEY_FILE), encodeClusterKey(clusterKey), { mode: 0o600 });
    const version = schemaVersion(db);
    const manifest: Manifest = { format: FORMAT, createdAtMs: nowMs, schemaVersion: version, files: {} };
    for (const f of [MDM_DB_FILE, CLUSTER_KEY_FILE]) manifest.files[f] = fileSum(join(tmp, f));
    writeFileSync(join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, final);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return describe(final);
}

/** Backup of a stopped MDM's data dir (refused while an MDM holds it). */
export async function createOfflineBackup(dataDir: string, backupDir: string): Promise<BackupInfo> {
  const dbPath = join(dataDir, MDM_DB_FILE);
  if (!existsSync(dbPath)) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no cluster in ${dataDir}`);
  const clusterKey = readClusterKey(join(dataDir, CLUSTER_KEY_FILE));
  // The exclusive open fails at once while a running MDM holds the database (use the API then).
  const db = openDb(dbPath, { exclusive: true });
  try {
    return await createBackup(db, clusterKey, backupDir);
  } finally {
    db.close();
  }
}

/** Backups in backupDir, newest first. */
export function listBackups(backupDir: string): BackupInfo[] {
  if (!existsSync(backupDir)) return [];
  const out: BackupInfo[] = [];
  for (const name of readdirSync(backupDir)) {
    if (!name.startsWith(PREFIX) || !existsSync(join(backupDir, name, MANIFEST))) continue;
    try {
      out.push(describe(join(backupDir, name)));
    } catch { /* a foreign or damaged directory is not listed */ }
  }
  return out.sort((a, b) => b.createdAtMs - a.createdAtMs || b.name.localeCompare(a.name));
}

/** Keeps the newest `keep` backups; returns the names removed. */
export function pruneBackups(backupDir: string, keep: number): string[] {
  const old = listBackups(backupDir).slice(Math.max(keep, 1));
  for (const b of old) rmSync(b.path, { recursive: true, force: true });
  return old.map((b) => b.name);
}

export interface RestoreResult { dataDir: string; backup: BackupInfo; epochBump: number }

/**
 * Installs a backup in dataDir (which must not hold a cluster, unless
 * force): checksums and SQLite integrity are verified first, the schema is
 * migrated to this pflex, and PG epochs are raised (RESTORE_EPOCH_BUMP).
 */
export function restoreBackup(from: string, dataDir: string, force = false): RestoreResult {
  const manifest = readManifest(from);
  for (const [f, want] of Object.entries(manifest.files)) {
    const got = fileSum(join(from, f));
    if (got.sha256 !== want.sha256) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `${join(from, f)} does not match its checksum in the manifest: the backup is damaged`);
  }
  if (manifest.schemaVersion > MIGRATIONS.length) {
    throw new PflexError('PFLEX_ERR_CONFLICT', `the backup has schema version ${manifest.schemaVersion}, newer than this pflex (${MIGRATIONS.length})`);
  }
  const clusterKey = readClusterKey(join(from, CLUSTER_KEY_FILE));
  const dbPath = join(dataDir, MDM_DB_FILE);
  const keyPath = join(dataDir, CLUSTER_KEY_FILE);
  if ((existsSync(dbPath) || existsSync(keyPath)) && !force) {
    throw new PflexError('PFLEX_ERR_CONFLICT', `${dataDir} already holds a cluster; restore into a fresh data dir, or use --force to replace it`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const staging = join(dataDir, `.restore-${process.pid}.db`);
  rmSync(staging, { force: true });
  writeFileSync(staging, readFileSync(join(from, MDM_DB_FILE)), { mode: 0o600 });
  try {
    const check = new Database(staging);
    try {
      const r = check.pragma('integrity_check', { simple: true });
      if (r !== 'ok') throw new PflexError('PFLEX_ERR_BAD_REQUEST', `the backup's mdm.db fails its integrity check: ${String(r)}`);
    } finally {
      check.close();
    }
    const db = openDb(staging);
    try {
      tx(db, () => {
        new PgRepo(db).bumpAllEpochs(RESTORE_EPOCH_BUMP);
        new SecurityRepo(db).setMeta('restored_from', JSON.stringify({ backup: basename(from), createdAtMs: manifest.createdAtMs, restoredAtMs: Date.now() }));
      });
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    // Never pull the files from under a running MDM (throws CONFLICT while it holds the lock).
    if (existsSync(dbPath)) openDb(dbPath, { exclusive: true }).close();
    for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) rmSync(f, { force: true });
    renameSync(staging, dbPath);
    writeFileSync(keyPath, encodeClusterKey(clusterKey), { mode: 0o600 });
    chmodSync(keyPath, 0o600);
  } finally {
    for (const f of [staging, `${staging}-wal`, `${staging}-shm`]) rmSync(f, { force: true });
  }
  return { dataDir, backup: describe(from), epochBump: RESTORE_EPOCH_BUMP };
}

function readManifest(dir: string): Manifest {
  let m: Partial<Manifest>;
  try {
    m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Partial<Manifest>;
  } catch (err) {
    throw new PflexError('PFLEX_ERR_NOT_FOUND', `${dir} is not a pflex MDM backup: ${(err as Error).message}`);
  }
  if (m.format !== FORMAT || typeof m.createdAtMs !== 'number' || typeof m.schemaVersion !== 'number' || !m.files
    || !m.files[MDM_DB_FILE] || !m.files[CLUSTER_KEY_FILE]) {
    throw new PflexError('PFLEX_ERR_BAD_REQUEST', `${join(dir, MANIFEST)} is not a ${FORMAT} manifest`);
  }
  return m as Manifest;
}

function describe(dir: string): BackupInfo {
  const m = readManifest(dir);
  return {
    name: basename(dir), path: dir, createdAtMs: m.createdAtMs, schemaVersion: m.schemaVersion,
    bytes: Object.keys(m.files).reduce((a, f) => a + statSync(join(dir, f)).size, 0),
  };
}

function fileSum(path: string): { bytes: number; sha256: string } {
  const data = readFileSync(path);
  return { bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}
