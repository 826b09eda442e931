import type { CommandModule } from 'yargs';
import { createInterface } from 'node:readline';
import { PflexError } from '../shared/errors.js';
import { MdmClient } from '../shared/mdm-client.js';
import { reportError, withCommon, type CommonArgs } from './common.js';
import { keyValues, time } from './format.js';
import { clientFor, credentialsPath, readCredentials, removeCredentials, resolveMdmUrl, writeCredentials } from './session.js';
import { resolve } from 'node:path';
import { readPem } from '../shared/tls.js';

interface LoginArgs extends CommonArgs {
  user: string;
  password?: string;
  passwordStdin?: boolean;
}

/** The password from --password, $PFLEX_PASSWORD, or the first line of stdin. */
async function readPassword(args: LoginArgs): Promise<string> {
  if (args.password !== undefined) return args.password;
  if (process.env.PFLEX_PASSWORD && !args.passwordStdin) return process.env.PFLEX_PASSWORD;
  if (process.stdin.isTTY && !args.passwordStdin) process.stderr.write('password: ');
  const rl = createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    rl.close();
    return line;
  }
  throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'no password given (use --password, $PFLEX_PASSWORD or --password-stdin)');
}

export const loginCommand: CommandModule<CommonArgs, LoginArgs> = {
  command: 'login',
  describe: 'log in to the MDM and keep the token in the config directory (0600)',
  builder: (y) =>
    withCommon(y)
      .option('user', { alias: 'u', type: 'string', demandOption: true, describe: 'user name' })
      .option('password', { alias: 'p', type: 'string', describe: 'password (else $PFLEX_PASSWORD or stdin)' })
      .option('password-stdin', { type: 'boolean', describe: 'read the password from stdin' }) as never,
  handler: async (args) => {
    try {
      const mdmUrl = resolveMdmUrl(args.mdm);
      const caPath = args.ca || process.env.PFLEX_CA || undefined;
      const client = new MdmClient({ url: mdmUrl, ...(caPath ? { ca: readPem(caPath) } : {}) });
      const issued = await client.login(args.user, await readPassword(args));
      const path = writeCredentials({
        mdmUrl, user: args.user, role: issued.role, token: issued.token, expiresAtMs: issued.expiresAtMs, ...(caPath ? { ca: resolve(caPath) } : {}),
      });
      if (args.json) process.stdout.write(`${JSON.stringify({ mdmUrl, user: args.user, role: issued.role, expiresAtMs: issued.expiresAtMs, credentials: path })}\n`);
      else process.stdout.write(`logged in to ${mdmUrl} as ${args.user} (${issued.role}) until ${time(issued.expiresAtMs)}\n`);
    } catch (err) {
      reportError(err);
    }
  },
};

export const logoutCommand: CommandModule<CommonArgs, CommonArgs> = {
  command: 'logout',
  describe: 'forget the saved token',
  builder: (y) => withCommon(y),
  handler: (args) => {
    removeCredentials();
    if (!args.json) process.stdout.write('logged out\n');
  },
};

export const whoamiCommand: CommandModule<CommonArgs, CommonArgs> = {
  command: 'whoami',
  describe: 'show who the saved token belongs to',
  builder: (y) => withCommon(y),
  handler: async (args) => {
    try {
      const creds = readCredentials();
      const client = clientFor(args.mdm, process.env, args.ca);
      const me = await client.whoami();
      if (args.json) process.stdout.write(`${JSON.stringify(me)}\n`);
      else process.stdout.write(`${keyValues([['user', me.sub], ['role', me.role], ['mdm', client.url], ['credentials', credentialsPath()], ['expires', time(creds?.expiresAtMs)]])}\n`);
    } catch (err) {
      reportError(err);
    }
  },
};
