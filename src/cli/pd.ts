import type { ProtectionDomain } from '../shared/mdm-client.js';
import { noun, print, verb } from './common.js';
import { keyValues, table, time } from './format.js';
import { pdId } from './resolve.js';

const show = (pd: ProtectionDomain) => keyValues([['id', pd.id], ['name', pd.name], ['created', time(pd.createdAtMs)]]);

export const pdCommand = noun('pd', 'protection domains', [
  verb<{ name: string }>('create <name>', 'create a protection domain', (y) => y.positional('name', { type: 'string', demandOption: true }), async (args, c) => {
    const pd = await c.createPd(args.name);
    print(args, pd, () => show(pd));
  }),
  verb('list', 'list protection domains', (y) => y, async (args, c) => {
    const pds = await c.listPds();
    print(args, pds, () => table(pds, [
      { header: 'id', value: (p) => p.id, align: 'right' },
      { header: 'name', value: (p) => p.name },
      { header: 'created', value: (p) => time(p.createdAtMs) },
    ]));
  }),
  verb<{ pd: string }>('show <pd>', 'show a protection domain (name or id)', (y) => y.positional('pd', { type: 'string', demandOption: true }), async (args, c) => {
    const pd = await c.getPd(await pdId(c, args.pd));
    print(args, pd, () => show(pd));
  }),
  verb<{ pd: string; name: string }>('rename <pd> <name>', 'rename a protection domain', (y) =>
    y.positional('pd', { type: 'string', demandOption: true }).positional('name', { type: 'string', demandOption: true }), async (args, c) => {
    const pd = await c.renamePd(await pdId(c, args.pd), args.name);
    print(args, pd, () => show(pd));
  }),
  verb<{ pd: string }>('delete <pd>', 'delete an empty protection domain', (y) => y.positional('pd', { type: 'string', demandOption: true }), async (args, c) => {
    const id = await pdId(c, args.pd);
    const ok = await c.deletePd(id);
    print(args, ok, () => `deleted protection domain ${args.pd}`);
  }),
]);
