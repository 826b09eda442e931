import type { Sdc } from '../shared/mdm-client.js';
import { noun, print, verb } from './common.js';
import { ago, keyValues, table, time } from './format.js';
import { sdcId } from './resolve.js';

const show = (s: Sdc) =>
  keyValues([
    ['id', s.id],
    ['name', s.name],
    ['guid', s.guid],
    ['state', s.state],
    ['address', s.address],
    ['mapped volumes', s.mappings.map((m) => `${m.volumeId}(${m.accessMode === 'readOnly' ? 'ro' : 'rw'})`).join(', ') || '-'],
    ['last heartbeat', `${time(s.lastHeartbeatMs)} (${ago(s.lastHeartbeatMs)})`],
    ['registered', time(s.createdAtMs)],
  ]);

export const sdcCommand = noun('sdc', 'storage data clients (they register themselves)', [
  verb('list', 'list SDCs', (y) => y, async (args, c) => {
    const list = await c.listSdcs();
    print(args, list, () => table(list, [
      { header: 'id', value: (s) => s.id, align: 'right' },
      { header: 'name', value: (s) => s.name },
      { header: 'guid', value: (s) => s.guid },
      { header: 'state', value: (s) => s.state },
      { header: 'address', value: (s) => s.address },
      { header: 'volumes', value: (s) => s.mappings.length, align: 'right' },
      { header: 'heartbeat', value: (s) => ago(s.lastHeartbeatMs) },
    ]));
  }),
  verb<{ sdc: string }>('show <sdc>', 'show an SDC (name, guid or id)', (y) => y.positional('sdc', { type: 'string', demandOption: true }), async (args, c) => {
    const s = await c.getSdc(await sdcId(c, args.sdc));
    print(args, s, () => show(s));
  }),
  verb<{ sdc: string; name: string }>('rename <sdc> <name>', 'rename an SDC', (y) =>
    y.positional('sdc', { type: 'string', demandOption: true }).positional('name', { type: 'string', demandOption: true }), async (args, c) => {
    const s = await c.renameSdc(await sdcId(c, args.sdc), args.name);
    print(args, s, () => show(s));
  }),
  verb<{ sdc: string; force: boolean }>('remove <sdc>', 'unregister an SDC', (y) =>
    y.positional('sdc', { type: 'string', demandOption: true }).option('force', { type: 'boolean', default: false, describe: 'also unmap its volumes' }),
  async (args, c) => {
    const ok = await c.unregisterSdc(await sdcId(c, args.sdc), args.force);
    print(args, ok, () => `removed SDC ${args.sdc}`);
  }),
]);
