import type { Argv, CommandModule } from 'yargs';
import { createLogger } from '../shared/logger.js';
import { parseSize } from '../shared/units.js';
import { PflexError } from '../shared/errors.js';
import type { BlockBackend } from '../nbd/backend.js';
import { FileBackend } from '../nbd/file-backend.js';
import { MemoryBackend } from '../nbd/memory-backend.js';
import { NbdServer } from '../nbd/server.js';

interface ServeArgs {
  memory?: string;
  file?: string;
  size?: string;
  port: number;
  host: string;
  name: string;
  description?: string;
  'read-only': boolean;
  'handshake-timeout-ms'?: number;
}

async function openBackend(args: ServeArgs): Promise<BlockBackend> {
  if (args.file !== undefined) {
    return FileBackend.open({
      path: args.file,
      ...(args.size !== undefined ? { size: parseSize(args.size) } : {}),
      readOnly: args['read-only'],
    });
  }
  return new MemoryBackend(parseSize(args.memory ?? '1G'));
}

/** `pflex nbd serve`: one backend as one NBD export (also the default export). */
async function serve(args: ServeArgs): Promise<void> {
  const log = createLogger('nbd');
  const backend = await openBackend(args);
  const exp = {
    name: args.name,
    description: args.description ?? (args.file !== undefined ? `file ${args.file}` : 'memory'),
    readOnly: args['read-only'],
    backend,
  };
  const server = new NbdServer({
    lookup: (name) => (name === exp.name ? exp : undefined),
    list: () => [exp],
    defaultExport: exp.name,
    logger: log,
    ...(args['handshake-timeout-ms'] !== undefined ? { limits: { handshakeTimeoutMs: args['handshake-timeout-ms'] } } : {}),
  });
  const address = await server.listen(args.port, args.host);
  log.info(
    { port: address.port, host: address.address, export: exp.name, size: backend.size, backend: args.file !== undefined ? 'file' : 'memory', readOnly: args['read-only'] },
    'nbd server listening',
  );

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'nbd server shutting down');
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  await backend.close();
  log.info('nbd server stopped');
}

export const nbdCommand: CommandModule = {
  command: 'nbd <command>',
  describe: 'NBD server tools',
  builder: (yargs: Argv) =>
    yargs
      .command<ServeArgs>({
        command: 'serve',
        describe: 'serve a memory or file backend over NBD (fixed newstyle)',
        builder: (y) =>
          y
            .option('memory', { type: 'string', describe: 'serve a sparse RAM disk of this size (e.g. 1G)' })
            .option('file', { type: 'string', describe: 'serve this file (created sparse with --size if missing)' })
            .option('size', { type: 'string', describe: 'with --file: export size (grows the file sparsely)' })
            .option('port', { type: 'number', default: 10809, describe: 'TCP port (0 picks a free one)' })
            .option('host', { type: 'string', default: '0.0.0.0', describe: 'address to listen on' })
            .option('name', { type: 'string', default: 'disk', describe: 'export name (also the default export)' })
            .option('description', { type: 'string', describe: 'export description shown to clients' })
            .option('read-only', { type: 'boolean', default: false, describe: 'refuse writes (EPERM)' })
            .option('handshake-timeout-ms', { type: 'number', describe: 'close connections that do not finish the handshake in time' })
            .conflicts('memory', 'file')
            .check((a) => {
              if (a.size !== undefined && a.file === undefined) throw new PflexError('PFLEX_ERR_BAD_REQUEST', '--size goes with --file (use --memory SIZE)');
              return true;
            }) as unknown as Argv<ServeArgs>,
        handler: serve,
      })
      .demandCommand(1, 'name an nbd command (serve)'),
  handler: () => {},
};
