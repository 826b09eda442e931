import { isPflexError } from '../shared/errors.js';
import type { Sds } from '../shared/mdm-client.js';
import { noun, print, verb } from './common.js';
import { ago, bytes, keyValues, table, time } from './format.js';
import { pdId, poolId, sdsId } from './resolve.js';

const show = (s: Sds) =>
  keyValues([
    ['id', s.id],
    ['name', s.name],
    ['state', s.state],
    ['protection domain', s.protectionDomainId],
    ['storage pool', s.storagePoolId],
    ['fault set', s.faultSetId],
    ['address', `${s.address}:${s.dataPort}`],
    ['control port', s.controlPort],
    ['mgmt port', s.mgmtPort],
    ['capacity', bytes(s.capacityBytes)],
    ['used', bytes(s.usedBytes)],
    ['last heartbeat', `${time(s.lastHeartbeatMs)} (${ago(s.lastHeartbeatMs)})`],
    ['registered', time(s.createdAtMs)],
  ]);

export const sdsCommand = noun('sds', 'storage data servers (they register themselves)', [
  verb<{ pool?: string; pd?: string }>('list', 'list SDSs', (y) =>
    y.option('pool', { type: 'string', describe: 'only this storage pool' }).option('pd', { type: 'string', describe: 'only this protection domain' }),
  async (args, c) => {
    const list = await c.listSds({
      ...(args.pool !== undefined ? { storagePoolId: await poolId(c, args.pool, args.pd) } : {}),
      ...(args.pd !== undefined && args.pool === undefined ? { protectionDomainId: await pdId(c, args.pd) } : {}),
    });
    print(args, list, () => table(list, [
      { header: 'id', value: (s) => s.id, align: 'right' },
      { header: 'name', value: (s) => s.name },
      { header: 'state', value: (s) => s.state },
      { header: 'pool', value: (s) => s.storagePoolId, align: 'right' },
      { header: 'fault set', value: (s) => s.faultSetId, align: 'right' },
      { header: 'address', value: (s) => `${s.address}:${s.dataPort}` },
      { header: 'capacity', value: (s) => bytes(s.capacityBytes), align: 'right' },
      { header: 'used', value: (s) => bytes(s.usedBytes), align: 'right' },
      { header: 'heartbeat', value: (s) => ago(s.lastHeartbeatMs) },
    ]));
  }),
  verb<{ sds: string }>('show <sds>', 'show an SDS (name or id)', (y) => y.positional('sds', { type: 'string', demandOption: true }), async (args, c) => {
    const s = await c.getSds(await sdsId(c, args.sds));
    print(args, s, () => show(s));
  }),
  verb<{ sds: string; wait: boolean }>('remove <sds>', 'drain an SDS (its PGs move away, throttled like rebuild), then remove it', (y) =>
    y.positional('sds', { type: 'string', demandOption: true })
      .option('wait', { type: 'boolean', default: true, describe: 'wait until the drain is over and the SDS is gone (--no-wait: return once draining)' }),
  async (args, c) => {
    const id = await sdsId(c, args.sds);
    const drain = await c.request<{ sdsId: number; draining: boolean; pgs: number }>('POST', `/sds/${id}/drain`);
    if (!args.wait) {
      print(args, drain, () => `draining SDS ${args.sds} (${drain.pgs} PGs to move); it is removed when empty (pflex rebuild status)`);
      return;
    }
    if (!args.json) process.stderr.write(`draining SDS ${args.sds}: ${drain.pgs} PGs to move\n`);
    for (;;) {
      try {
        await c.getSds(id);
      } catch (err) {
        if (isPflexError(err) && err.code === 'PFLEX_ERR_NOT_FOUND') break;
        throw err;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    print(args, { ok: true, sdsId: id }, () => `drained and removed SDS ${args.sds}`);
  }),
]);
