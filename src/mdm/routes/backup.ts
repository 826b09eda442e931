import { Type } from '@fastify/type-provider-typebox';
import type { MdmApp } from '../app.js';
import { BackupInfo, ERROR_ANSWERS } from '../../shared/mdm-api.js';
import type { Services } from '../services/index.js';

export function backupRoutes(app: MdmApp, s: Services): void {
  app.post('/backups', {
    config: { access: 'admin' },
    schema: {
      tags: ['backup'], summary: 'Write an online backup (mdm.db and the cluster key) into the backup directory on the MDM host',
      response: { 201: BackupInfo, ...ERROR_ANSWERS },
    },
  }, async (_req, reply) => reply.status(201).send(await s.backup.create()));
  app.get('/backups', {
    config: { access: 'admin' },
    schema: { tags: ['backup'], summary: 'Backups in the backup directory, newest first', response: { 200: Type.Array(BackupInfo), ...ERROR_ANSWERS } },
  }, async () => s.backup.list());
}
