import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { encodeClusterKey, generateClusterKey, readClusterKey } from '../shared/component-auth.js';
import { PflexError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { build, type MdmApp } from './app.js';
import { CLUSTER_KEY_FILE, MDM_DB_FILE, type MdmConfig } from './config.js';
import { openDb, tx } from './db.js';
import { SecurityRepo } from './repos/security-repo.js';
import { hashPassword } from './services/auth.js';
import { loadTls, type TlsFiles } from '../shared/tls.js';

export interface InitOptions { dataDir: string; adminPassword: string; adminName?: string; force?: boolean }
export interface InitResult { dbPath: string; clusterKeyPath: string; adminName: string }

/**
 * Creates a new cluster in dataDir: mdm.db, the cluster key (0600) and the
 * first admin. Refuses to touch an existing cluster unless forced (which
 * destroys it).
 */
export async function initDataDir(o: InitOptions): Promise<InitResult> {
  const dbPath = join(o.dataDir, MDM_DB_FILE);
  const clusterKeyPath = join(o.dataDir, CLUSTER_KEY_FILE);
  const adminName = o.adminName ?? 'admin';
  if (existsSync(dbPath) || existsSync(clusterKeyPath)) {
    if (!o.force) throw new PflexError('PFLEX_ERR_CONFLICT', `${o.dataDir} already holds a cluster; use --force to overwrite it`);
    // Never pull the files from under a running MDM (throws CONFLICT while it holds the lock).
    if (existsSync(dbPath)) openDb(dbPath, { exclusive: true }).close();
    for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`, clusterKeyPath]) rmSync(f, { force: true });
  }
  if (o.adminPassword.length < 8) throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'the admin password needs at least 8 characters');
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(clusterKeyPath, encodeClusterKey(generateClusterKey()), { mode: 0o600, flag: 'wx' });
  chmodSync(clusterKeyPath, 0o600);
  const hash = await hashPassword(o.adminPassword);
  const db = openDb(dbPath);
  try {
    const repo = new SecurityRepo(db);
    tx(db, () => {
      repo.insertUser(adminName, 'admin', hash, Date.now());
      repo.setMeta('cluster_created_at_ms', String(Date.now()));
    });
  } finally {
    db.close();
  }
  return { dbPath, clusterKeyPath, adminName };
}

export interface StartOptions {
  dataDir: string;
  host: string;
  port: number;
  clusterKeyPath?: string;
  config?: Partial<MdmConfig>;
  /** PEM files: serve HTTPS when cert and key are given; ca: the cluster CA the SDS certificates are checked against. */
  tls?: TlsFiles;
  /** Where backups go (POST /backups, scheduled ones); default <dataDir>/backups. */
  backupDir?: string;
}

/** Opens the cluster in dataDir and listens; health is evaluated on a timer. */
export async function startServer(o: StartOptions): Promise<{ app: MdmApp; port: number }> {
  const dbPath = join(o.dataDir, MDM_DB_FILE);
  if (!existsSync(dbPath)) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no cluster in ${o.dataDir}: run pflex mdm init first`);
  const clusterKey = readClusterKey(o.clusterKeyPath ?? join(o.dataDir, CLUSTER_KEY_FILE));
  const https = loadTls(o.tls ?? {});
  const logger = createLogger('mdm');
  const app = await build({ db: dbPath, clusterKey, ...(o.config ? { config: o.config } : {}), loggerInstance: logger, healthTimer: true, processMetrics: true, backupDir: o.backupDir ?? join(o.dataDir, 'backups'), ...(https ? { https } : {}) });
  app.mdm.services.events.on('transition', (t) => logger.info({ transition: t }, `${t.kind} ${t.name} ${t.from} -> ${t.to}`));
  await app.listen({ host: o.host, port: o.port });
  const port = (app.server.address() as AddressInfo).port;
  logger.info({ port, host: o.host, dataDir: o.dataDir, tls: https !== undefined }, 'mdm listening');
  return { app, port };
}
