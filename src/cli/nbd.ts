import type { CommandModule } from 'yargs';

// Placeholder until `pflex nbd serve` lands (issue 2).
export const nbdCommand: CommandModule = {
  command: 'nbd',
  describe: 'NBD server tools',
  handler: () => {
    throw new Error('not built yet');
  },
};
