/**
 * What every MDM-facing command shares: --mdm and --json, one error edge
 * (message on stderr, exit code from the error table), and output as a
 * human table or JSON.
 */
import type { Argv, CommandModule } from 'yargs';
import { ERRORS, isPflexError } from '../shared/errors.js';
import type { MdmClient } from '../shared/mdm-client.js';
import { json } from './format.js';
import { clientFor } from './session.js';

export interface CommonArgs {
  mdm?: string;
  ca?: string;
  json?: boolean;
}

export function withCommon<T>(y: Argv<T>): Argv<T & CommonArgs> {
  return y
    .option('mdm', { type: 'string', describe: 'MDM URL (default: $PFLEX_MDM_URL, the URL of the last login, http://127.0.0.1:8001)' })
    .option('ca', { type: 'string', describe: 'PEM CA the MDM certificate is checked against, for an https:// MDM (default: $PFLEX_CA, the CA of the last login)' })
    .option('json', { type: 'boolean', default: false, describe: 'print JSON for scripts instead of tables' });
}

/** Prints an error the way every command does and sets the exit code from the error table. */
export function reportError(err: unknown): void {
  if (isPflexError(err)) {
    const hint = err.code === 'PFLEX_ERR_UNAUTHENTICATED' ? '\n(log in first: pflex login --user NAME)' : '';
    process.stderr.write(`pflex: ${err.message} [${err.code}]${hint}\n`);
    process.exitCode = ERRORS[err.code].cliExit;
    return;
  }
  process.stderr.write(`pflex: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = ERRORS.PFLEX_ERR_INTERNAL.cliExit;
}

/** Wraps a command body: builds the client, catches and reports errors. */
export function action<A extends CommonArgs>(fn: (args: A, client: MdmClient) => Promise<void>): (args: A) => Promise<void> {
  return async (args: A) => {
    try {
      await fn(args, clientFor(args.mdm, process.env, args.ca));
    } catch (err) {
      reportError(err);
    }
  };
}

/** JSON with --json, else the human rendering. */
export function print(args: CommonArgs, value: unknown, human: () => string): void {
  process.stdout.write(`${args.json ? json(value) : human()}\n`);
}

/**
 * One verb of a noun (`pflex volume create ...`). The builder declares the
 * arguments; `run` receives them typed as A (yargs' inference is not carried
 * through nested commands, so A is the contract with the builder).
 */
export function verb<A>(
  command: string | string[],
  describe: string,
  builder: (y: Argv<CommonArgs>) => Argv<CommonArgs>,
  run: (args: A & CommonArgs, client: MdmClient) => Promise<void>,
): CommandModule<CommonArgs, CommonArgs> {
  const act = action<A & CommonArgs>(run);
  return {
    command,
    describe,
    builder: (y) => builder(withCommon(y)),
    handler: (args) => act(args as unknown as A & CommonArgs),
  };
}

/** A noun grouping its verbs (`pflex volume <verb>`). */
export function noun(command: string, describe: string, verbs: ReadonlyArray<CommandModule<CommonArgs, CommonArgs>>): CommandModule<object, object> {
  return {
    command,
    describe,
    builder: (y) => {
      let out = y as Argv<CommonArgs>;
      for (const v of verbs) out = out.command(v);
      return out.demandCommand(1, `name a ${command} command (pflex ${command} --help lists them)`) as Argv<object>;
    },
    handler: () => undefined,
  };
}
