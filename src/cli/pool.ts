import { PflexError } from '../shared/errors.js';
import type { PoolPatch, Provisioning, StoragePool } from '../shared/mdm-client.js';
import { parseSize } from '../shared/units.js';
import { noun, print, verb } from './common.js';
import { bytes, keyValues, table, time } from './format.js';
import { pdId, poolId } from './resolve.js';

const show = (p: StoragePool) =>
  keyValues([
    ['id', p.id],
    ['name', p.name],
    ['protection domain', p.protectionDomainId],
    ['replication factor', p.replicationFactor],
    ['chunk size', bytes(p.chunkBytes)],
    ['PG count', p.pgCount],
    ['PG map', `${p.pgMapReady ? 'ready' : 'not ready (too few SDSs)'}, epoch ${p.mapEpoch}, ${p.degradedPgs} degraded PGs`],
    ['provisioning', p.defaultProvisioning],
    ['SDSs', p.sdsCount],
    ['volumes', p.volumeCount],
    ['raw capacity', bytes(p.capacity.totalBytes)],
    ['usable capacity', bytes(p.capacity.usableBytes)],
    ['used', bytes(p.capacity.usedBytes)],
    ['reserved (thick)', bytes(p.capacity.reservedBytes)],
    ['provisioned', `${bytes(p.capacity.provisionedBytes)} (${p.capacity.overProvisioningRatio.toFixed(2)}x)`],
    ['utilization', `${p.capacity.utilizationPct.toFixed(1)}% (high ${p.capacityHighPct}%, critical ${p.capacityCriticalPct}%)`],
    ['created', time(p.createdAtMs)],
  ]);

interface PoolRef {
  pool: string;
  pd?: string;
}

interface SetArgs extends PoolRef {
  name?: string;
  provisioning?: Provisioning;
  capacityHighPct?: number;
  capacityCriticalPct?: number;
}

export const poolCommand = noun('pool', 'storage pools', [
  verb<{ name: string; pd: string; rf: number; pgCount?: number; chunkSize?: string; provisioning?: Provisioning; capacityHighPct?: number; capacityCriticalPct?: number }>(
    'create <name>', 'create a storage pool', (y) =>
      y.positional('name', { type: 'string', demandOption: true })
        .option('pd', { type: 'string', demandOption: true, describe: 'protection domain (name or id)' })
        .option('rf', { type: 'number', choices: [2, 3], default: 2, describe: 'replication factor (copies of each chunk)' })
        .option('pg-count', { type: 'number', describe: 'placement groups (default from the MDM)' })
        .option('chunk-size', { type: 'string', describe: 'chunk size, e.g. 1M (default from the MDM)' })
        .option('provisioning', { type: 'string', choices: ['thin', 'thick'], describe: 'default provisioning of new volumes' })
        .option('capacity-high-pct', { type: 'number', describe: 'utilization that raises a warning' })
        .option('capacity-critical-pct', { type: 'number', describe: 'utilization that raises a critical alert' }),
    async (args, c) => {
      const pool = await c.createPool({
        protectionDomainId: await pdId(c, args.pd),
        name: args.name,
        replicationFactor: args.rf === 3 ? 3 : 2,
        ...(args.pgCount !== undefined ? { pgCount: args.pgCount } : {}),
        ...(args.chunkSize !== undefined ? { chunkBytes: parseSize(args.chunkSize) } : {}),
        ...(args.provisioning !== undefined ? { defaultProvisioning: args.provisioning } : {}),
        ...(args.capacityHighPct !== undefined ? { capacityHighPct: args.capacityHighPct } : {}),
        ...(args.capacityCriticalPct !== undefined ? { capacityCriticalPct: args.capacityCriticalPct } : {}),
      });
      print(args, pool, () => show(pool));
    }),
  verb<{ pd?: string }>('list', 'list storage pools', (y) => y.option('pd', { type: 'string', describe: 'only this protection domain' }), async (args, c) => {
    const pools = await c.listPools(args.pd !== undefined ? { protectionDomainId: await pdId(c, args.pd) } : {});
    print(args, pools, () => table(pools, [
      { header: 'id', value: (p) => p.id, align: 'right' },
      { header: 'name', value: (p) => p.name },
      { header: 'pd', value: (p) => p.protectionDomainId, align: 'right' },
      { header: 'rf', value: (p) => p.replicationFactor, align: 'right' },
      { header: 'pgs', value: (p) => p.pgCount, align: 'right' },
      { header: 'sds', value: (p) => p.sdsCount, align: 'right' },
      { header: 'volumes', value: (p) => p.volumeCount, align: 'right' },
      { header: 'usable', value: (p) => bytes(p.capacity.usableBytes), align: 'right' },
      { header: 'used%', value: (p) => p.capacity.utilizationPct.toFixed(1), align: 'right' },
      { header: 'map', value: (p) => (p.pgMapReady ? (p.degradedPgs > 0 ? `degraded(${p.degradedPgs})` : 'ok') : 'not ready') },
    ]));
  }),
  verb<PoolRef>('show <pool>', 'show a storage pool with its capacity', (y) =>
    y.positional('pool', { type: 'string', demandOption: true }).option('pd', { type: 'string' }), async (args, c) => {
    const pool = await c.getPool(await poolId(c, args.pool, args.pd));
    print(args, pool, () => show(pool));
  }),
  verb<SetArgs>('set <pool>', 'change a storage pool\'s name, default provisioning or capacity thresholds', (y) =>
    y.positional('pool', { type: 'string', demandOption: true }).option('pd', { type: 'string' })
      .option('name', { type: 'string' })
      .option('provisioning', { type: 'string', choices: ['thin', 'thick'] })
      .option('capacity-high-pct', { type: 'number' })
      .option('capacity-critical-pct', { type: 'number' }), async (args, c) => {
    const patch: PoolPatch = {
      ...(args.name !== undefined ? { name: args.name } : {}),
      ...(args.provisioning !== undefined ? { defaultProvisioning: args.provisioning } : {}),
      ...(args.capacityHighPct !== undefined ? { capacityHighPct: args.capacityHighPct } : {}),
      ...(args.capacityCriticalPct !== undefined ? { capacityCriticalPct: args.capacityCriticalPct } : {}),
    };
    if (Object.keys(patch).length === 0) throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'nothing to change (see pflex pool set --help)');
    const pool = await c.updatePool(await poolId(c, args.pool, args.pd), patch);
    print(args, pool, () => show(pool));
  }),
  verb<PoolRef & { name: string }>('rename <pool> <name>', 'rename a storage pool', (y) =>
    y.positional('pool', { type: 'string', demandOption: true }).positional('name', { type: 'string', demandOption: true }).option('pd', { type: 'string' }),
  async (args, c) => {
    const pool = await c.updatePool(await poolId(c, args.pool, args.pd), { name: args.name });
    print(args, pool, () => show(pool));
  }),
  verb<PoolRef>('delete <pool>', 'delete an empty storage pool', (y) =>
    y.positional('pool', { type: 'string', demandOption: true }).option('pd', { type: 'string' }), async (args, c) => {
    const ok = await c.deletePool(await poolId(c, args.pool, args.pd));
    print(args, ok, () => `deleted storage pool ${args.pool}`);
  }),
  verb<PoolRef & { sinceEpoch?: number; summary?: boolean }>('pgmap <pool>', 'show the placement-group map of a pool', (y) =>
    y.positional('pool', { type: 'string', demandOption: true }).option('pd', { type: 'string' })
      .option('since-epoch', { type: 'number', describe: 'only PGs changed after this epoch' })
      .option('summary', { type: 'boolean', describe: 'per SDS: PG memberships and primaries instead of per PG' }), async (args, c) => {
    const map = await c.getPgMap(await poolId(c, args.pool, args.pd), args.sinceEpoch);
    const names = new Map(map.sds.map((s) => [s.id, s.name]));
    const head = `pool ${map.storagePoolId}: epoch ${map.epoch}, ${map.pgCount} PGs, rf ${map.replicationFactor}, chunk ${bytes(map.chunkBytes)}${map.ready ? '' : ' (not ready)'}`;
    if (args.summary) {
      const rows = map.sds.map((s) => ({
        ...s,
        pgs: map.pgs.filter((p) => p.members.includes(s.id)).length,
        primaries: map.pgs.filter((p) => p.members[0] === s.id).length,
      }));
      const summary = { ...map, pgs: undefined, perSds: rows.map(({ id, name, state, pgs, primaries }) => ({ id, name, state, pgs, primaries })) };
      print(args, summary, () => `${head}\n${table(rows, [
        { header: 'sds', value: (r) => r.name },
        { header: 'id', value: (r) => r.id, align: 'right' },
        { header: 'state', value: (r) => r.state },
        { header: 'pgs', value: (r) => r.pgs, align: 'right' },
        { header: 'primaries', value: (r) => r.primaries, align: 'right' },
      ])}`);
      return;
    }
    print(args, map, () =>
      `${head}\n` +
      table(map.pgs, [
        { header: 'pg', value: (p) => p.pg, align: 'right' },
        { header: 'epoch', value: (p) => p.epoch, align: 'right' },
        { header: 'primary', value: (p) => (p.members[0] === undefined ? '-' : (names.get(p.members[0]) ?? p.members[0])) },
        { header: 'secondaries', value: (p) => p.members.slice(1).map((id) => names.get(id) ?? id).join(',') },
        { header: 'state', value: (p) => (p.members.length < map.replicationFactor ? 'degraded' : 'ok') },
      ]));
  }),
]);
