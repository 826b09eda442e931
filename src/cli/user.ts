import type { MdmClient, User } from '../shared/mdm-client.js';
import { PflexError } from '../shared/errors.js';
import { noun, print, verb } from './common.js';
import { keyValues, table, time } from './format.js';

const show = (u: User) => keyValues([['id', u.id], ['name', u.name], ['role', u.role], ['created', time(u.createdAtMs)]]);

async function userId(c: MdmClient, ref: string): Promise<number> {
  if (/^[1-9]\d*$/.test(ref)) return Number(ref);
  const found = (await c.listUsers()).find((u) => u.name === ref);
  if (!found) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no user named "${ref}"`);
  return found.id;
}

function password(args: { password?: string }): string {
  const p = args.password ?? process.env.PFLEX_NEW_PASSWORD;
  if (!p) throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'give the password with --password or $PFLEX_NEW_PASSWORD');
  return p;
}

export const userCommand = noun('user', 'users of the MDM API and dashboard (admin only)', [
  verb<{ name: string; role: 'admin' | 'monitor'; password?: string }>('create <name>', 'create a user', (y) =>
    y.positional('name', { type: 'string', demandOption: true })
      .option('role', { type: 'string', choices: ['admin', 'monitor'], default: 'monitor', describe: 'admin changes things, monitor only reads' })
      .option('password', { type: 'string', describe: 'else $PFLEX_NEW_PASSWORD' }), async (args, c) => {
    const u = await c.createUser(args.name, password(args), args.role);
    print(args, u, () => show(u));
  }),
  verb('list', 'list users', (y) => y, async (args, c) => {
    const users = await c.listUsers();
    print(args, users, () => table(users, [
      { header: 'id', value: (u) => u.id, align: 'right' },
      { header: 'name', value: (u) => u.name },
      { header: 'role', value: (u) => u.role },
      { header: 'created', value: (u) => time(u.createdAtMs) },
    ]));
  }),
  verb<{ user: string; password?: string }>('passwd <user>', 'set a user\'s password', (y) =>
    y.positional('user', { type: 'string', demandOption: true }).option('password', { type: 'string', describe: 'else $PFLEX_NEW_PASSWORD' }),
  async (args, c) => {
    const u = await c.setUserPassword(await userId(c, args.user), password(args));
    print(args, u, () => `password of ${u.name} changed`);
  }),
  verb<{ user: string }>('unlock <user>', 'lift the lockout of a user after failed logins', (y) => y.positional('user', { type: 'string', demandOption: true }), async (args, c) => {
    const r = await c.unlockUser(await userId(c, args.user));
    print(args, r, () => (r.wasLocked ? `unlocked user ${r.name}` : `user ${r.name} was not locked`));
  }),
  verb<{ user: string }>('delete <user>', 'delete a user (not the last admin)', (y) => y.positional('user', { type: 'string', demandOption: true }), async (args, c) => {
    const ok = await c.deleteUser(await userId(c, args.user));
    print(args, ok, () => `deleted user ${args.user}`);
  }),
]);
