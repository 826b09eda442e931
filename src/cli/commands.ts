import type { CommandModule } from 'yargs';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs command modules differ in their argument types
export type AnyCommand = CommandModule<any, any>;

interface CommandEntry {
  /** The first word of the command line that selects this module. */
  readonly noun: string;
  readonly load: () => Promise<AnyCommand>;
}

/**
 * Every `pflex` noun, loaded on demand: a server command (`pflex nbd serve`,
 * `pflex sds-server start`) then carries only its own modules — not fastify,
 * SQLite and the rest — which keeps its heap small and its start fast, and an
 * admin command starts in a fraction of the time.
 */
export const COMMANDS: ReadonlyArray<CommandEntry> = [
  { noun: 'mdm', load: async () => (await import('./mdm.js')).mdmCommand },
  { noun: 'mgmt', load: async () => (await import('./mgmt.js')).mgmtCommand },
  { noun: 'nbd', load: async () => (await import('./nbd.js')).nbdCommand },
  { noun: 'login', load: async () => (await import('./login.js')).loginCommand },
  { noun: 'logout', load: async () => (await import('./login.js')).logoutCommand },
  { noun: 'whoami', load: async () => (await import('./login.js')).whoamiCommand },
  { noun: 'pd', load: async () => (await import('./pd.js')).pdCommand },
  { noun: 'pool', load: async () => (await import('./pool.js')).poolCommand },
  { noun: 'faultset', load: async () => (await import('./faultset.js')).faultSetCommand },
  { noun: 'sds', load: async () => (await import('./sds.js')).sdsCommand },
  { noun: 'sds-server', load: async () => (await import('./sds-server.js')).sdsServerCommand },
  { noun: 'sdc', load: async () => (await import('./sdc.js')).sdcCommand },
  { noun: 'sdc-server', load: async () => (await import('./sdc-server.js')).sdcServerCommand },
  { noun: 'certs', load: async () => (await import('./certs.js')).certsCommand },
  { noun: 'up', load: async () => (await import('./up.js')).upCommand },
  { noun: 'volume', load: async () => (await import('./volume.js')).volumeCommand },
  { noun: 'snapshot', load: async () => (await import('./snapshot.js')).snapshotCommand },
  { noun: 'cg', load: async () => (await import('./snapshot.js')).cgCommand },
  { noun: 'alert', load: async () => (await import('./alert.js')).alertCommand },
  { noun: 'audit', load: async () => (await import('./audit.js')).auditCommand },
  { noun: 'health', load: async () => (await import('./health.js')).healthCommand },
  { noun: 'rebuild', load: async () => (await import('./rebuild.js')).rebuildCommand },
  { noun: 'user', load: async () => (await import('./user.js')).userCommand },
  { noun: 'metrics', load: async () => (await import('./metrics.js')).metricsCommand },
  { noun: 'backup', load: async () => (await import('./backup.js')).backupCommand },
  { noun: 'restore', load: async () => (await import('./backup.js')).restoreCommand },
];

/** The modules a command line needs: its noun's, or all of them (help, typos, options first). */
export async function loadCommands(argv: readonly string[]): Promise<AnyCommand[]> {
  const first = argv[0];
  const chosen = COMMANDS.filter((c) => c.noun === first);
  return Promise.all((chosen.length > 0 ? chosen : COMMANDS).map((c) => c.load()));
}
