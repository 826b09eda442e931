import type { CommandModule } from 'yargs';
import { createOfflineBackup, restoreBackup, type BackupInfo } from '../mdm/backup.js';
import { PflexError } from '../shared/errors.js';
import { action, noun, print, verb, withCommon, type CommonArgs } from './common.js';
import { bytes, table, time } from './format.js';

const shown = (b: BackupInfo): string => `${b.path} (${bytes(b.bytes)}, schema ${b.schemaVersion}, ${time(b.createdAtMs)})`;

export const backupCommand = noun('backup', 'backups of the MDM (mdm.db and the cluster key)', [
  verb<{ 'data-dir'?: string; out?: string }>('create', 'back up the MDM: online through the API (written on the MDM host), or --data-dir of a stopped MDM', (y) =>
    y.option('data-dir', { type: 'string', describe: 'data dir of a STOPPED MDM: back it up directly (no API call)' })
      .option('out', { type: 'string', describe: 'with --data-dir: directory to write the backup into (default DATA_DIR/backups)' }),
  async (args, c) => {
    if (args.out !== undefined && args['data-dir'] === undefined) {
      throw new PflexError('PFLEX_ERR_BAD_REQUEST', '--out goes with --data-dir; an online backup is written into the MDM\'s --backup-dir');
    }
    const dataDir = args['data-dir'];
    const b = dataDir !== undefined ? await createOfflineBackup(dataDir, args.out ?? `${dataDir}/backups`) : await c.createBackup();
    print(args, b, () => `backup written: ${shown(b)}\nit holds the cluster key: keep it as safe as the key itself`);
  }),
  verb('list', 'backups in the MDM\'s backup directory, newest first', (y) => y, async (args, c) => {
    const list = await c.listBackups();
    print(args, list, () => table(list, [
      { header: 'name', value: (b) => b.name },
      { header: 'size', value: (b) => bytes(b.bytes), align: 'right' },
      { header: 'schema', value: (b) => b.schemaVersion, align: 'right' },
      { header: 'created', value: (b) => time(b.createdAtMs) },
      { header: 'path', value: (b) => b.path },
    ]));
  }),
]);

interface RestoreArgs extends CommonArgs { backup: string; 'data-dir': string; force: boolean }

export const restoreCommand: CommandModule<object, RestoreArgs> = {
  command: 'restore <backup>',
  describe: 'install an MDM backup in a fresh data dir (then: pflex mdm start --data-dir DIR on the old address)',
  builder: (y) => withCommon(y)
    .positional('backup', { type: 'string', demandOption: true, describe: 'backup directory (pflex-mdm-...)' })
    .option('data-dir', { type: 'string', demandOption: true, describe: 'the new MDM data dir' })
    .option('force', { type: 'boolean', default: false, describe: 'replace a cluster already in data-dir (its MDM must be stopped)' }) as never,
  handler: action<RestoreArgs>(async (args) => {
    const r = restoreBackup(args.backup, args['data-dir'], args.force);
    print(args, r, () => `restored ${shown(r.backup)} into ${r.dataDir}; PG epochs raised by ${r.epochBump}\nstart it: pflex mdm start --data-dir ${r.dataDir} (on the address the SDSs and SDCs know)`);
  }),
};
