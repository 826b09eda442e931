import { PflexError } from '../shared/errors.js';
import type { MdmClient, SnapshotPolicy } from '../shared/mdm-client.js';
import { noun, print, verb } from './common.js';
import { bytes, table, time } from './format.js';
import { volumeId } from './resolve.js';
import { show } from './volume.js';

/** A space figure of a snapshot list row; "?" marks a figure some SDS could not answer for. */
function spaceText(space: { layerBytes: number; reclaimableBytes: number; partial: boolean } | undefined, key: 'layerBytes' | 'reclaimableBytes'): string {
  if (!space) return '-';
  return bytes(space[key]) + (space.partial ? '?' : '');
}

/** "90s", "15m", "1h", "1d" or plain milliseconds. */
export function parseInterval(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `bad interval "${text}" (e.g. 30s, 15m, 1h, 1d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms']!;
  return Number(m[1]) * unit;
}

const showPolicy = (p: SnapshotPolicy): string =>
  `policy ${p.name} (id ${p.id}): volume ${p.volumeId} every ${p.intervalMs} ms, keeps ${p.retain}` +
  `${p.lastRunMs !== null ? `, last run ${time(p.lastRunMs)}` : ''}${p.lastError ? ` (failed: ${p.lastError})` : ''}`;

const policyCommand = noun('policy', 'snapshot policies: a snapshot every interval, the newest N kept', [
  verb<{ name: string; volume: string; every: string; retain: number }>('create <name>', 'create a snapshot policy', (y) =>
    y.positional('name', { type: 'string', demandOption: true })
      .option('volume', { type: 'string', demandOption: true, describe: 'volume (name or id)' })
      .option('every', { type: 'string', demandOption: true, describe: 'cadence, e.g. 15m, 1h' })
      .option('retain', { type: 'number', demandOption: true, describe: 'snapshots of this policy kept' }),
  async (args, c) => {
    const p = await c.createSnapshotPolicy({ name: args.name, volumeId: await volumeId(c, args.volume), intervalMs: parseInterval(args.every), retain: args.retain });
    print(args, p, () => showPolicy(p));
  }),
  verb('list', 'list snapshot policies', (y) => y, async (args, c) => {
    const list = await c.listSnapshotPolicies();
    print(args, list, () => table(list, [
      { header: 'id', value: (p) => p.id, align: 'right' },
      { header: 'name', value: (p) => p.name },
      { header: 'volume', value: (p) => p.volumeId, align: 'right' },
      { header: 'every ms', value: (p) => p.intervalMs, align: 'right' },
      { header: 'retain', value: (p) => p.retain, align: 'right' },
      { header: 'last run', value: (p) => (p.lastRunMs === null ? '-' : time(p.lastRunMs)) },
      { header: 'error', value: (p) => p.lastError ?? '' },
    ]));
  }),
  verb<{ policy: string; every: string; retain: number }>('update <policy>', 'change cadence and retention', (y) =>
    y.positional('policy', { type: 'string', demandOption: true })
      .option('every', { type: 'string', demandOption: true }).option('retain', { type: 'number', demandOption: true }),
  async (args, c) => {
    const p = await c.updateSnapshotPolicy(await policyId(c, args.policy), { intervalMs: parseInterval(args.every), retain: args.retain });
    print(args, p, () => showPolicy(p));
  }),
  verb<{ policy: string }>('delete <policy>', 'delete a policy (its snapshots stay)', (y) => y.positional('policy', { type: 'string', demandOption: true }),
    async (args, c) => {
      const r = await c.deleteSnapshotPolicy(await policyId(c, args.policy));
      print(args, r, () => `deleted snapshot policy ${args.policy}`);
    }),
]);

async function policyId(c: MdmClient, ref: string): Promise<number> {
  if (/^\d+$/.test(ref)) return Number(ref);
  const p = (await c.listSnapshotPolicies()).find((x) => x.name === ref);
  if (!p) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no snapshot policy "${ref}"`);
  return p.id;
}

export const snapshotCommand = noun('snapshot', 'snapshots of volumes (read-only, copy-on-write)', [
  verb<{ volume: string; name: string }>('create <volume> <name>', 'snapshot a volume', (y) =>
    y.positional('volume', { type: 'string', demandOption: true }).positional('name', { type: 'string', demandOption: true }),
  async (args, c) => {
    const s = await c.createSnapshot(await volumeId(c, args.volume), args.name);
    print(args, s, () => show(s));
  }),
  verb<{ volume?: string }>('list', 'list snapshots', (y) => y.option('volume', { type: 'string', describe: 'only snapshots of this volume' }),
    async (args, c) => {
      const list = await c.listSnapshots({ ...(args.volume !== undefined ? { volumeId: await volumeId(c, args.volume) } : {}), space: true });
      print(args, list, () => table(list, [
        { header: 'id', value: (v) => v.id, align: 'right' },
        { header: 'name', value: (v) => v.name },
        { header: 'of volume', value: (v) => v.sourceVolumeId ?? '-', align: 'right' },
        { header: 'size', value: (v) => bytes(v.sizeBytes), align: 'right' },
        { header: 'layer', value: (v) => v.layerId, align: 'right' },
        { header: 'own bytes', value: (v) => spaceText(v.space, 'layerBytes'), align: 'right' },
        { header: 'delete frees', value: (v) => spaceText(v.space, 'reclaimableBytes'), align: 'right' },
        { header: 'group', value: (v) => v.snapshotGroup ?? '' },
        { header: 'mapped to', value: (v) => v.mappings.map((m) => m.sdcId).join(',') },
        { header: 'created', value: (v) => time(v.createdAtMs) },
      ]));
    }),
  verb<{ snapshot: string; force: boolean }>('delete <snapshot>', 'delete a snapshot (its layer is freed when nothing needs it)', (y) =>
    y.positional('snapshot', { type: 'string', demandOption: true }).option('force', { type: 'boolean', default: false, describe: 'also when mapped' }),
  async (args, c) => {
    const id = await volumeId(c, args.snapshot);
    if ((await c.getVolume(id)).kind !== 'snapshot') throw new PflexError('PFLEX_ERR_CONFLICT', `${args.snapshot} is a volume, not a snapshot (pflex volume delete)`);
    const d = await c.deleteVolume(id, args.force);
    print(args, d, () => ('freedLayers' in d ? `deleted snapshot ${d.volumeName}; layers freed: ${d.freedLayers.join(', ') || 'none yet'}` : `deleted snapshot ${d.volumeName}`));
  }),
  policyCommand,
]);

export const cgCommand = noun('cg', 'consistency groups: snapshots of several volumes at one point', [
  verb<{ volumes: string[]; suffix: string }>('snapshot <volumes..>', 'snapshot the volumes at one cut; each snapshot is named <volume>.<suffix>', (y) =>
    y.positional('volumes', { type: 'string', array: true, demandOption: true })
      .option('suffix', { type: 'string', default: `cg${Date.now()}`, describe: 'snapshot name suffix' }),
  async (args, c) => {
    const items = await Promise.all(args.volumes.map(async (v) => {
      const id = await volumeId(c, v);
      return { volumeId: id, name: `${(await c.getVolume(id)).name}.${args.suffix}` };
    }));
    const r = await c.snapshotGroup(items);
    print(args, r, () => `group ${r.group ?? '-'}: ${r.snapshots.map((s) => `${s.name} (id ${s.id})`).join(', ')}`);
  }),
]);
