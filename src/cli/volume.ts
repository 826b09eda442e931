import { PflexError } from '../shared/errors.js';
import type { MdmClient, Provisioning, Volume, VolumeDeletion } from '../shared/mdm-client.js';
import { parseSize } from '../shared/units.js';
import { noun, print, verb } from './common.js';
import { bytes, keyValues, table, time } from './format.js';
import { poolId, sdcId, volumeId } from './resolve.js';

export const show = (v: Volume) =>
  keyValues([
    ['id', v.id],
    ['name', v.name],
    ['size', `${bytes(v.sizeBytes)} (${v.sizeBytes} bytes)`],
    ['provisioning', v.provisioning],
    ['reserved', bytes(v.reservedBytes)],
    ['storage pool', v.storagePoolId],
    ['kind', v.kind + (v.sourceVolumeId !== null ? ` (of volume ${v.sourceVolumeId})` : '') + (v.snapshotGroup ? `, group ${v.snapshotGroup}` : '')],
    ['volume tree', `${v.volumeTreeId}, layer ${v.layerId} (chain ${v.layerChain.join(' <- ')})`],
    ...(v.space ? [['space', `${bytes(v.space.layerBytes)} in its layer, deleting it frees ${bytes(v.space.reclaimableBytes)}${v.space.partial ? ' (some SDS did not answer)' : ''}`] as [string, string]] : []),
    ['layout', `chunk ${bytes(v.layout.chunkBytes)}, ${v.layout.pgCount} PGs, rf ${v.layout.replicationFactor}`],
    ['mapped to SDCs', v.mappings.map((m) => `${m.sdcId}(${m.accessMode === 'readOnly' ? 'ro' : 'rw'}${qosText(m)})`).join(', ') || '-'],
    ['created', time(v.createdAtMs)],
  ]);

/** ", qos 100 IOPS 50 MiB/s" for a mapping with limits. */
function qosText(m: { iopsLimit?: number; bandwidthLimitBytesPerSec?: number }): string {
  const parts = [...(m.iopsLimit ? [`${m.iopsLimit} IOPS`] : []), ...(m.bandwidthLimitBytesPerSec ? [`${bytes(m.bandwidthLimitBytesPerSec)}/s`] : [])];
  return parts.length > 0 ? `, qos ${parts.join(' ')}` : '';
}
/** Progress of a reclaim task: SDSs that confirmed, what they freed, the last failure (retried). */
const progress = (d: Pick<VolumeDeletion, 'sdsConfirmed' | 'sdsTotal' | 'bytesFreed' | 'state' | 'lastError'>): string =>
  `${d.sdsConfirmed}/${d.sdsTotal} SDS, ${bytes(d.bytesFreed)} freed${d.state === 'pending' && d.lastError ? ` (retrying: ${d.lastError})` : ''}`;

/** "20G" is the new size; "+5G" grows the current size by 5 GiB. */
async function newSize(c: MdmClient, id: number, text: string): Promise<number> {
  if (text.startsWith('+')) return (await c.getVolume(id)).sizeBytes + parseSize(text.slice(1));
  return parseSize(text);
}

export const volumeCommand = noun('volume', 'volumes', [
  verb<{ name: string; pool: string; pd?: string; size: string; provisioning?: Provisioning; thin?: boolean; thick?: boolean }>(
    'create <name>', 'create a volume', (y) =>
      y.positional('name', { type: 'string', demandOption: true })
        .option('pool', { type: 'string', demandOption: true, describe: 'storage pool (name or id)' })
        .option('pd', { type: 'string', describe: 'protection domain of the pool, when pool names repeat' })
        .option('size', { type: 'string', demandOption: true, describe: 'size, e.g. 10G' })
        .option('provisioning', { type: 'string', choices: ['thin', 'thick'], describe: 'default: the pool\'s' })
        .option('thin', { type: 'boolean', describe: 'same as --provisioning thin' })
        .option('thick', { type: 'boolean', describe: 'same as --provisioning thick' })
        .conflicts('thin', 'thick'),
    async (args, c) => {
      const provisioning = args.provisioning ?? (args.thin ? 'thin' : args.thick ? 'thick' : undefined);
      const v = await c.createVolume({
        name: args.name,
        storagePoolId: await poolId(c, args.pool, args.pd),
        sizeBytes: parseSize(args.size),
        ...(provisioning ? { provisioning } : {}),
      });
      print(args, v, () => show(v));
    }),
  verb<{ pool?: string; pd?: string }>('list', 'list volumes', (y) =>
    y.option('pool', { type: 'string', describe: 'only this storage pool' }).option('pd', { type: 'string' }), async (args, c) => {
    const list = await c.listVolumes(args.pool !== undefined ? { storagePoolId: await poolId(c, args.pool, args.pd) } : {});
    print(args, list, () => table(list, [
      { header: 'id', value: (v) => v.id, align: 'right' },
      { header: 'name', value: (v) => v.name },
      { header: 'size', value: (v) => bytes(v.sizeBytes), align: 'right' },
      { header: 'type', value: (v) => v.provisioning },
      { header: 'pool', value: (v) => v.storagePoolId, align: 'right' },
      { header: 'kind', value: (v) => v.kind },
      { header: 'mapped to', value: (v) => v.mappings.map((m) => m.sdcId).join(',') },
      { header: 'created', value: (v) => time(v.createdAtMs) },
    ]));
  }),
  verb<{ volume: string }>('show <volume>', 'show a volume (name or id)', (y) => y.positional('volume', { type: 'string', demandOption: true }), async (args, c) => {
    const v = await c.getVolume(await volumeId(c, args.volume), { space: true });
    print(args, v, () => show(v));
  }),
  verb<{ volume: string; name: string }>('rename <volume> <name>', 'rename a volume', (y) =>
    y.positional('volume', { type: 'string', demandOption: true }).positional('name', { type: 'string', demandOption: true }), async (args, c) => {
    const v = await c.renameVolume(await volumeId(c, args.volume), args.name);
    print(args, v, () => show(v));
  }),
  verb<{ volume: string; size: string }>('expand <volume> <size>', 'grow a volume to <size> (e.g. 20G), or by +<size> (e.g. +5G)', (y) =>
    y.positional('volume', { type: 'string', demandOption: true }).positional('size', { type: 'string', demandOption: true }), async (args, c) => {
    const id = await volumeId(c, args.volume);
    const current = await c.getVolume(id);
    const size = await newSize(c, id, args.size);
    if (size < current.sizeBytes) {
      throw new PflexError('PFLEX_ERR_BAD_REQUEST', `expand only grows a volume: ${bytes(size)} is smaller than its ${bytes(current.sizeBytes)}`);
    }
    const v = await c.resizeVolume(id, size);
    print(args, v, () => show(v));
  }),
  verb<{ volume: string; size: string; force: boolean }>('shrink <volume> <size>', 'shrink an unmapped volume to <size>: the data past it is destroyed', (y) =>
    y.positional('volume', { type: 'string', demandOption: true }).positional('size', { type: 'string', demandOption: true })
      .option('force', { type: 'boolean', default: false, describe: 'required: shrinking destroys the data past the new end' }),
  async (args, c) => {
    const id = await volumeId(c, args.volume);
    const current = await c.getVolume(id);
    const size = parseSize(args.size);
    if (size >= current.sizeBytes) {
      throw new PflexError('PFLEX_ERR_BAD_REQUEST', `shrink only makes a volume smaller: ${bytes(size)} is not smaller than its ${bytes(current.sizeBytes)}`);
    }
    const v = await c.resizeVolume(id, size, args.force);
    print(args, v, () => `${show(v)}\nthe data past ${bytes(size)} is removed from the SDSs in the background (pflex volume trims)`);
  }),
  verb<{ state?: 'pending' | 'done' }>('deletions', 'deleted volumes and the removal of their data from the SDSs', (y) =>
    y.option('state', { type: 'string', choices: ['pending', 'done'] }), async (args, c) => {
    const list = await c.listVolumeDeletions(args.state ? { state: args.state } : {});
    print(args, list, () => table(list, [
      { header: 'id', value: (d) => d.id, align: 'right' },
      { header: 'volume', value: (d) => d.volumeName },
      { header: 'size', value: (d) => bytes(d.sizeBytes), align: 'right' },
      { header: 'state', value: (d) => d.state },
      { header: 'progress', value: progress },
      { header: 'deleted', value: (d) => time(d.createdAtMs) },
    ]));
  }),
  verb<{ state?: 'pending' | 'done' }>('trims', 'shrunk volumes and the removal of their data past the new end', (y) =>
    y.option('state', { type: 'string', choices: ['pending', 'done'] }), async (args, c) => {
    const list = await c.listVolumeTrims(args.state ? { state: args.state } : {});
    print(args, list, () => table(list, [
      { header: 'id', value: (d) => d.id, align: 'right' },
      { header: 'volume', value: (d) => d.volumeId, align: 'right' },
      { header: 'from', value: (d) => bytes(d.fromBytes), align: 'right' },
      { header: 'state', value: (d) => d.state },
      { header: 'progress', value: progress },
      { header: 'shrunk', value: (d) => time(d.createdAtMs) },
    ]));
  }),
  verb<{ state?: 'pending' | 'done' }>('layer-deletions', 'freed snapshot layers and the removal of their data from the SDSs', (y) =>
    y.option('state', { type: 'string', choices: ['pending', 'done'] }), async (args, c) => {
    const list = await c.listLayerDeletions(args.state ? { state: args.state } : {});
    print(args, list, () => table(list, [
      { header: 'id', value: (d) => d.id, align: 'right' },
      { header: 'tree', value: (d) => d.volumeTreeId, align: 'right' },
      { header: 'layer', value: (d) => d.layerId, align: 'right' },
      { header: 'state', value: (d) => d.state },
      { header: 'progress', value: progress },
      { header: 'freed', value: (d) => time(d.createdAtMs) },
    ]));
  }),
  verb<{ volume: string; force: boolean }>('delete <volume>', 'delete a volume (its data is removed in the background)', (y) =>
    y.positional('volume', { type: 'string', demandOption: true }).option('force', { type: 'boolean', default: false, describe: 'also when mapped' }),
  async (args, c) => {
    const d = await c.deleteVolume(await volumeId(c, args.volume), args.force);
    print(args, d, () => 'freedLayers' in d
      ? `deleted ${d.volumeName}; layers freed: ${d.freedLayers.join(', ') || 'none (still needed by other volumes or snapshots)'}`
      : `deleted volume ${d.volumeName} (${bytes(d.sizeBytes)}); data removal ${d.state}`);
  }),
  verb<{ volume: string; sdc: string; readOnly: boolean; allowMultiMap: boolean }>('map <volume>', 'map a volume to an SDC', (y) =>
    y.positional('volume', { type: 'string', demandOption: true })
      .option('sdc', { type: 'string', demandOption: true, describe: 'SDC (name, guid or id)' })
      .option('read-only', { type: 'boolean', default: false })
      .option('allow-multi-map', { type: 'boolean', default: false, describe: 'allow a second SDC (shared volume)' }),
  async (args, c) => {
    const v = await c.mapVolume(await volumeId(c, args.volume), await sdcId(c, args.sdc), {
      accessMode: args.readOnly ? 'readOnly' : 'readWrite',
      ...(args.allowMultiMap ? { allowMultiMap: true } : {}),
    });
    print(args, v, () => `mapped volume ${v.name} to SDC ${args.sdc} (${args.readOnly ? 'read-only' : 'read-write'})`);
  }),
  verb<{ snapshot: string; name: string }>('clone <snapshot> <name>', 'a new writable volume on top of a snapshot (copy-on-write)', (y) =>
    y.positional('snapshot', { type: 'string', demandOption: true }).positional('name', { type: 'string', demandOption: true }),
  async (args, c) => {
    const v = await c.cloneSnapshot(await volumeId(c, args.snapshot), args.name);
    print(args, v, () => show(v));
  }),
  verb<{ volume: string; snapshot: string }>('revert <volume> <snapshot>', 'make the volume\'s content the snapshot\'s (later writes are dropped)', (y) =>
    y.positional('volume', { type: 'string', demandOption: true }).positional('snapshot', { type: 'string', demandOption: true }),
  async (args, c) => {
    const v = await c.revertVolume(await volumeId(c, args.volume), await volumeId(c, args.snapshot));
    print(args, v, () => `reverted volume ${v.name} to snapshot ${args.snapshot}`);
  }),
  verb<{ volume: string; sdc: string; iops: number; bandwidth: string }>('qos <volume>', 'QoS limits of a volume on one SDC (0 = unlimited; applied live)', (y) =>
    y.positional('volume', { type: 'string', demandOption: true })
      .option('sdc', { type: 'string', demandOption: true, describe: 'SDC (name, guid or id)' })
      .option('iops', { type: 'number', default: 0, describe: 'requests per second (0 = unlimited)' })
      .option('bandwidth', { type: 'string', default: '0', describe: 'bytes per second, e.g. 50M (0 = unlimited)' }),
  async (args, c) => {
    const qos = { iopsLimit: args.iops, bandwidthLimitBytesPerSec: args.bandwidth === '0' ? 0 : parseSize(args.bandwidth) };
    const v = await c.setMappingQos(await volumeId(c, args.volume), await sdcId(c, args.sdc), qos);
    const limit = (n: number, unit: string): string => (n === 0 ? 'unlimited' : `${n}${unit}`);
    print(args, v, () => `volume ${v.name} on SDC ${args.sdc}: ${limit(qos.iopsLimit, ' IOPS')}, ${qos.bandwidthLimitBytesPerSec === 0 ? 'unlimited' : `${bytes(qos.bandwidthLimitBytesPerSec)}/s`}`);
  }),
  verb<{ volume: string; sdc: string }>('unmap <volume>', 'unmap a volume from an SDC', (y) =>
    y.positional('volume', { type: 'string', demandOption: true }).option('sdc', { type: 'string', demandOption: true, describe: 'SDC (name, guid or id)' }),
  async (args, c) => {
    const v = await c.unmapVolume(await volumeId(c, args.volume), await sdcId(c, args.sdc));
    print(args, v, () => `unmapped volume ${v.name} from SDC ${args.sdc}`);
  }),
]);
