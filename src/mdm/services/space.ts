/**
 * Space held by the layers of volumes and snapshots (docs/snapshots.md
 * "Space accounting"), asked of the SDSs when a caller wants it: each SDS
 * answers from its in-memory chunk index (no disk scan), the MDM takes per
 * PG and layer the largest answer (replicas are byte-identical; the largest
 * is the replica not behind a rebuild) and sums per layer. Figures are one
 * copy's logical bytes; the pool's usedBytes counts every replica.
 */
import type { TopologyRepo } from '../repos/topology-repo.js';
import type { Volume, VolumeRepo } from '../repos/volume-repo.js';
import type { LayerControl } from './layer-control.js';

export interface VolumeSpace {
  /** Bytes of chunks in the row's own layer (a volume: written since its last snapshot; a snapshot: frozen in its layer). */
  layerBytes: number;
  /** Bytes deleting the row would free: its layer and the ancestors nothing else needs (0 while a child layer needs them). */
  reclaimableBytes: number;
  /** Some SDS of the pool did not answer: figures count only the PGs that others held. */
  partial: boolean;
}

export class SpaceService {
  constructor(private readonly repo: VolumeRepo, private readonly topoRepo: TopologyRepo, private readonly control: LayerControl) {}

  /** Space of each row, one round of SDS calls per volume tree. */
  async of<V extends Volume>(rows: V[]): Promise<Array<V & { space: VolumeSpace }>> {
    const trees = new Map<number, Promise<{ bytes: Map<number, number>; partial: boolean }>>();
    for (const v of rows) if (!trees.has(v.volumeTreeId)) trees.set(v.volumeTreeId, this.treeBytes(v.storagePoolId, v.volumeTreeId));
    return Promise.all(rows.map(async (v) => {
      const t = await trees.get(v.volumeTreeId)!;
      return { ...v, space: { layerBytes: t.bytes.get(v.layerId) ?? 0, reclaimableBytes: this.reclaimable(v, t.bytes), partial: t.partial } };
    }));
  }

  /** Mirrors VolumeService.releaseLayers without freeing: the chain down from the row's layer while its only reference is the one going away. */
  private reclaimable(v: Volume, bytes: Map<number, number>): number {
    if (this.repo.treeVolumeCount(v.volumeTreeId) === 1) return [...bytes.values()].reduce((a, b) => a + b, 0);
    let sum = 0;
    let cur: number | null = v.layerId;
    // The row itself refers to its layer; each freed layer is its parent's child reference.
    while (cur !== null && this.repo.layerRefs(v.volumeTreeId, cur) === 1) {
      sum += bytes.get(cur) ?? 0;
      cur = this.repo.getLayer(v.volumeTreeId, cur)?.parentLayerId ?? null;
    }
    return sum;
  }

  private async treeBytes(poolId: number, treeId: number): Promise<{ bytes: Map<number, number>; partial: boolean }> {
    const sdss = this.topoRepo.listSds({ poolId });
    const answers = await Promise.allSettled(sdss.map((s) => (s.controlPort === null
      ? Promise.reject(new Error('no control port'))
      : this.control.treeLayers({ address: s.address, controlPort: s.controlPort }, treeId))));
    const perPg = new Map<string, { layerId: number; bytes: number }>();
    for (const a of answers) {
      if (a.status !== 'fulfilled') continue;
      for (const e of a.value) {
        const key = `${e.pg}/${e.layerId}`;
        const had = perPg.get(key);
        if (!had || had.bytes < e.bytes) perPg.set(key, { layerId: e.layerId, bytes: e.bytes });
      }
    }
    const bytes = new Map<number, number>();
    for (const e of perPg.values()) bytes.set(e.layerId, (bytes.get(e.layerId) ?? 0) + e.bytes);
    return { bytes, partial: answers.some((a) => a.status === 'rejected') };
  }
}
