import yargs from 'yargs';
import { loadCommands } from './commands.js';

/** Entry point of the `pflex` CLI: every noun registers in commands.ts. */
export async function main(argv: string[]): Promise<void> {
  let cli = yargs(argv)
    .scriptName('pflex')
    .strict()
    .demandCommand(1, 'name a command (pflex --help lists them)')
    .recommendCommands()
    .help()
    .wrap(Math.min(110, process.stdout.columns ?? 100));
  for (const command of await loadCommands(argv)) cli = cli.command(command);
  await cli.parseAsync();
}
