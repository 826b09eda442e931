import type { FastifyBaseLogger } from 'fastify';
import { PflexError } from '../../shared/errors.js';
import { createBackup, listBackups, pruneBackups, type BackupInfo } from '../backup.js';
import type { MdmConfig } from '../config.js';
import type { Db } from '../db.js';
import type { Clock } from './events.js';

/** Online backups of mdm.db with the cluster key (src/mdm/backup.ts): on demand and every backupIntervalMs, keeping backupKeep. */
export class BackupService {
  logger: FastifyBaseLogger | undefined;
  private running: Promise<BackupInfo> | undefined;

  constructor(
    private readonly db: Db,
    private readonly clusterKey: Buffer,
    /** Where backups go on the MDM host; none: backups are off (an embedded MDM without a data dir). */
    private readonly dir: string | undefined,
    private readonly config: MdmConfig,
    private readonly clock: Clock,
  ) {}

  /** One backup at a time: a call during another one gets that one's result. */
  create(): Promise<BackupInfo> {
    const dir = this.mustDir();
    this.running ??= (async () => {
      try {
        const b = await createBackup(this.db, this.clusterKey, dir, this.clock());
        const removed = pruneBackups(dir, this.config.backupKeep);
        this.logger?.info({ backup: b.path, bytes: b.bytes, removed }, 'mdm backup written');
        return b;
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  list(): BackupInfo[] {
    return listBackups(this.mustDir());
  }

  /** The scheduled run (server timer): a failure is logged, the next interval tries again. */
  async scheduled(): Promise<void> {
    if (!this.dir) return;
    await this.create().catch((err: unknown) => this.logger?.error({ err }, 'scheduled mdm backup failed'));
  }

  private mustDir(): string {
    if (!this.dir) throw new PflexError('PFLEX_ERR_CONFLICT', 'this MDM has no backup directory (pflex mdm start --backup-dir)');
    return this.dir;
  }
}
