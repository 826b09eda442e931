import type { CommandModule } from 'yargs';
import { alertCommand } from './alert.js';
import { auditCommand } from './audit.js';
import { faultSetCommand } from './faultset.js';
import { healthCommand } from './health.js';
import { loginCommand, logoutCommand, whoamiCommand } from './login.js';
import { mdmCommand } from './mdm.js';
import { nbdCommand } from './nbd.js';
import { pdCommand } from './pd.js';
import { rebuildCommand } from './rebuild.js';
import { poolCommand } from './pool.js';
import { sdcCommand } from './sdc.js';
import { sdsCommand } from './sds.js';
import { userCommand } from './user.js';
import { sdsServerCommand } from './sds-server.js';
import { sdcServerCommand } from './sdc-server.js';
import { upCommand } from './up.js';
import { volumeCommand } from './volume.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs command modules differ in their argument types
export const COMMANDS: ReadonlyArray<CommandModule<any, any>> = [
  mdmCommand,
  nbdCommand,
  loginCommand,
  logoutCommand,
  whoamiCommand,
  pdCommand,
  poolCommand,
  faultSetCommand,
  sdsCommand,
  sdsServerCommand,
  sdcCommand,
  sdcServerCommand,
  upCommand,
  volumeCommand,
  alertCommand,
  auditCommand,
  healthCommand,
  rebuildCommand,
  userCommand,
];
