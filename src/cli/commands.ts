import type { CommandModule } from 'yargs';
import { mdmCommand } from './mdm.js';
import { nbdCommand } from './nbd.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs command modules differ in their argument types
export const COMMANDS: ReadonlyArray<CommandModule<any, any>> = [mdmCommand, nbdCommand];
