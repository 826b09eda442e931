import type { FaultSet } from '../shared/mdm-client.js';
import { noun, print, verb } from './common.js';
import { keyValues, table, time } from './format.js';
import { faultSetId, pdId } from './resolve.js';

const show = (f: FaultSet) =>
  keyValues([['id', f.id], ['name', f.name], ['protection domain', f.protectionDomainId], ['created', time(f.createdAtMs)]]);

export const faultSetCommand = noun('faultset', 'fault sets (SDSs that may fail together: a rack, a power feed)', [
  verb<{ name: string; pd: string }>('create <name>', 'create a fault set in a protection domain', (y) =>
    y.positional('name', { type: 'string', demandOption: true }).option('pd', { type: 'string', demandOption: true, describe: 'protection domain (name or id)' }),
  async (args, c) => {
    const f = await c.createFaultSet(await pdId(c, args.pd), args.name);
    print(args, f, () => show(f));
  }),
  verb<{ pd?: string }>('list', 'list fault sets', (y) => y.option('pd', { type: 'string', describe: 'only this protection domain' }), async (args, c) => {
    const sets = await c.listFaultSets(args.pd !== undefined ? { protectionDomainId: await pdId(c, args.pd) } : {});
    print(args, sets, () => table(sets, [
      { header: 'id', value: (f) => f.id, align: 'right' },
      { header: 'name', value: (f) => f.name },
      { header: 'pd', value: (f) => f.protectionDomainId, align: 'right' },
      { header: 'created', value: (f) => time(f.createdAtMs) },
    ]));
  }),
  verb<{ faultset: string; pd?: string }>('show <faultset>', 'show a fault set', (y) =>
    y.positional('faultset', { type: 'string', demandOption: true }).option('pd', { type: 'string' }), async (args, c) => {
    const f = await c.getFaultSet(await faultSetId(c, args.faultset, args.pd));
    print(args, f, () => show(f));
  }),
  verb<{ faultset: string; pd?: string }>('delete <faultset>', 'delete an empty fault set', (y) =>
    y.positional('faultset', { type: 'string', demandOption: true }).option('pd', { type: 'string' }), async (args, c) => {
    const ok = await c.deleteFaultSet(await faultSetId(c, args.faultset, args.pd));
    print(args, ok, () => `deleted fault set ${args.faultset}`);
  }),
]);
