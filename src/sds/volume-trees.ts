/**
 * Which volume tree a volume's IO token covers. A token names a volume; a
 * data frame names both the volume (checked against the token) and the tree
 * its chunks live in, so the SDS must know that the tree belongs to that
 * volume, or a token for one volume would open every other. The answer comes
 * from the MDM once per volume and is cached (a volume never changes tree).
 */
export interface VolumeTrees {
  /** The tree of a volume if known without waiting. */
  cached(volumeId: number): number | undefined;
  /** Looks the volume up; undefined when it does not exist. */
  resolve(volumeId: number): Promise<number | undefined>;
}

/** Tests and benchmarks: every volume is its own tree (tree id = volume id). */
export class IdentityVolumeTrees implements VolumeTrees {
  cached(volumeId: number): number {
    return volumeId;
  }

  async resolve(volumeId: number): Promise<number> {
    return volumeId;
  }
}

/** A cache in front of a lookup (the MDM's GET /volumes/:id); concurrent lookups share one call. */
export class CachedVolumeTrees implements VolumeTrees {
  private readonly known = new Map<number, number>();
  private readonly pending = new Map<number, Promise<number | undefined>>();

  constructor(private readonly lookup: (volumeId: number) => Promise<number | undefined>, private readonly entriesMax = 65536) {}

  cached(volumeId: number): number | undefined {
    return this.known.get(volumeId);
  }

  resolve(volumeId: number): Promise<number | undefined> {
    const hit = this.known.get(volumeId);
    if (hit !== undefined) return Promise.resolve(hit);
    let p = this.pending.get(volumeId);
    if (!p) {
      p = this.lookup(volumeId).then((tree) => {
        if (tree !== undefined) {
          if (this.known.size >= this.entriesMax) this.known.delete(this.known.keys().next().value!);
          this.known.set(volumeId, tree);
        }
        return tree;
      }).finally(() => this.pending.delete(volumeId));
      this.pending.set(volumeId, p);
    }
    return p;
  }
}
