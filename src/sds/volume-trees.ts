/**
 * Which volume tree and layer a volume's IO token covers. A token names a
 * volume; a data frame names the volume (checked against the token), the tree
 * its chunks live in and the layer it reads or writes, so the SDS must know
 * that the tree belongs to that volume (or a token for one volume would open
 * every other) and which layer the volume is at now, with the layer's
 * ancestors (where reads fall through and copy-on-write copies from;
 * docs/snapshots.md). The answer comes from the MDM once per volume and is
 * cached; a snapshot or revert gives the volume a newer layer, and the MDM
 * then tells every SDS to forget its answer (a frame naming a layer newer than
 * the cached one also refreshes it: layer ids only grow within a tree).
 */
export interface VolumeLayout {
  treeId: number;
  /** The layer the volume writes (a volume) or freezes (a snapshot). */
  layerId: number;
  /** layerId, its parent, ... down to the tree's root layer. */
  chain: readonly number[];
}

export interface VolumeTrees {
  /** The layout of a volume if known without waiting. */
  cached(volumeId: number): VolumeLayout | undefined;
  /** Looks the volume up; undefined when it does not exist. */
  resolve(volumeId: number): Promise<VolumeLayout | undefined>;
  /** Drops a cached answer (the volume changed layer). */
  forget(volumeId: number): void;
}

/** Tests and benchmarks: every volume is its own tree (tree id = volume id) with the single layer 0. */
export class IdentityVolumeTrees implements VolumeTrees {
  cached(volumeId: number): VolumeLayout {
    return { treeId: volumeId, layerId: 0, chain: [0] };
  }

  async resolve(volumeId: number): Promise<VolumeLayout> {
    return this.cached(volumeId);
  }

  forget(): void {}
}

/** A cache in front of a lookup (the MDM's GET /volumes/:id); concurrent lookups share one call. */
export class CachedVolumeTrees implements VolumeTrees {
  private readonly known = new Map<number, VolumeLayout>();
  private readonly pending = new Map<number, Promise<VolumeLayout | undefined>>();
  /** Bumped per volume by forget(), so a lookup that started before it does not store its older answer. */
  private readonly generations = new Map<number, number>();

  constructor(private readonly lookup: (volumeId: number) => Promise<VolumeLayout | undefined>, private readonly entriesMax = 65536) {}

  cached(volumeId: number): VolumeLayout | undefined {
    return this.known.get(volumeId);
  }

  resolve(volumeId: number): Promise<VolumeLayout | undefined> {
    const hit = this.known.get(volumeId);
    if (hit !== undefined) return Promise.resolve(hit);
    let p = this.pending.get(volumeId);
    if (!p) {
      const gen = this.generations.get(volumeId) ?? 0;
      p = this.lookup(volumeId).then((layout) => {
        if (layout !== undefined && (this.generations.get(volumeId) ?? 0) === gen) {
          if (this.known.size >= this.entriesMax) this.known.delete(this.known.keys().next().value!);
          this.known.set(volumeId, layout);
        }
        return layout;
      }).finally(() => this.pending.delete(volumeId));
      this.pending.set(volumeId, p);
    }
    return p;
  }

  forget(volumeId: number): void {
    this.known.delete(volumeId);
    this.pending.delete(volumeId);
    this.generations.set(volumeId, (this.generations.get(volumeId) ?? 0) + 1);
  }
}
