import { PflexError } from '../../shared/errors.js';
import { tx, type Db } from '../db.js';
import type { Provisioning, TopologyRepo } from '../repos/topology-repo.js';
import type { LayerDeletion, ReclaimRepo, VolumeTrim } from '../repos/reclaim-repo.js';
import type { AccessMode, Mapping, Volume, VolumeDeletion, VolumeKind, VolumeRepo } from '../repos/volume-repo.js';
import type { Clock, MdmEvents } from './events.js';
import { badRequest, conflict, notFound, type TopologyService } from './topology.js';

/** Volume sizes are whole 4 KiB blocks (the NBD block size of the SDC). */
export const VOLUME_SIZE_ALIGN_BYTES = 4096;

export interface VolumeView extends Volume {
  /** Net bytes reserved in the pool (thick: the size; thin: 0). */
  reservedBytes: number;
  mappings: Mapping[];
  /** What an SDC needs to route IO of this volume. */
  layout: { chunkBytes: number; pgCount: number; replicationFactor: number };
  /** This volume's layer, then its parent, ... down to the tree's root layer: where reads fall through (docs/snapshots.md). */
  layerChain: number[];
}

/** What deleting a volume row left to reclaim: the whole tree (its last row), or the layers nothing needs any more. */
export interface VolumeRemoval { deletion: VolumeDeletion | null; freedLayers: number[] }

export interface CreateVolumeInput { name: string; storagePoolId: number; sizeBytes: number; provisioning?: Provisioning | undefined }

/** Volumes: create, resize, rename, delete (asynchronous data removal), map/unmap. */
export class VolumeService {
  constructor(
    private readonly db: Db,
    private readonly repo: VolumeRepo,
    private readonly reclaim: ReclaimRepo,
    private readonly topoRepo: TopologyRepo,
    private readonly topology: TopologyService,
    private readonly clock: Clock,
    private readonly events: MdmEvents,
  ) {}

  list(filter: { poolId?: number; name?: string; kind?: VolumeKind } = {}): VolumeView[] {
    if (filter.name !== undefined) {
      const v = this.repo.getByName(filter.name);
      return v && (filter.poolId === undefined || v.storagePoolId === filter.poolId) && (filter.kind === undefined || v.kind === filter.kind) ? [this.view(v)] : [];
    }
    return this.repo.list({
      ...(filter.poolId === undefined ? {} : { poolId: filter.poolId }), ...(filter.kind === undefined ? {} : { kind: filter.kind }),
    }).map((v) => this.view(v));
  }
  get(id: number): VolumeView { return this.view(this.must(id)); }

  create(input: CreateVolumeInput): VolumeView {
    const v = tx(this.db, () => {
      const pool = this.topoRepo.getPool(input.storagePoolId);
      if (!pool) throw conflict(`no storage pool ${input.storagePoolId}`);
      if (this.repo.getByName(input.name)) throw conflict(`volume "${input.name}" already exists`);
      checkSize(input.sizeBytes);
      const provisioning = input.provisioning ?? pool.defaultProvisioning;
      if (provisioning === 'thick') this.reserve(input.storagePoolId, input.sizeBytes);
      return this.get(this.repo.insert({ name: input.name, storagePoolId: pool.id, sizeBytes: input.sizeBytes, provisioning }, this.clock()));
    });
    this.events.emit('poolUsage', { poolId: v.storagePoolId });
    return v;
  }

  rename(id: number, name: string): VolumeView {
    return tx(this.db, () => {
      this.must(id);
      const other = this.repo.getByName(name);
      if (other && other.id !== id) throw conflict(`volume "${name}" already exists`);
      this.repo.rename(id, name);
      return this.get(id);
    });
  }

  /**
   * Expand freely (thick: if the pool can reserve it); shrink only unmapped
   * and forced (it destroys data): the data past the new end is then removed
   * from the SDSs in the background (volume_trims), and the volume cannot be
   * expanded again before that is done, so an expand always reads zeros there.
   * A shrink is refused while the tree has snapshots or clones (the trim
   * cuts every layer of the tree; docs/snapshots.md).
   */
  resize(id: number, sizeBytes: number, force: boolean): VolumeView {
    const v = tx(this.db, () => {
      const v = this.must(id);
      if (v.kind === 'snapshot') throw conflict(`volume ${id} is a snapshot: snapshots keep the size of their volume`);
      checkSize(sizeBytes);
      if (sizeBytes < v.sizeBytes) {
        if (!force) throw conflict(`shrinking volume ${id} from ${v.sizeBytes} to ${sizeBytes} bytes destroys data; use force`);
        if (this.repo.mappings(id).length > 0) throw conflict(`volume ${id} is mapped; unmap it before shrinking`);
        // The trim removes the tail of every layer of the tree: only safe while no snapshot or clone reads them.
        const others = this.repo.treeVolumeCount(v.volumeTreeId) - 1;
        if (others > 0) throw conflict(`volume ${id} shares its data with ${others} snapshots or clones; delete them before shrinking (a shrink would destroy their tail)`);
        const pool = this.topoRepo.getPool(v.storagePoolId)!;
        this.reclaim.insertTrim({ volumeId: id, volumeTreeId: v.volumeTreeId, storagePoolId: v.storagePoolId, fromBytes: sizeBytes, chunkBytes: pool.chunkBytes }, this.clock());
      } else if (sizeBytes > v.sizeBytes) {
        const pending = this.reclaim.pendingTrimOfTree(v.volumeTreeId);
        if (pending) {
          throw conflict(`volume ${id} (or the volume its data came from) was shrunk and the old data past ${pending.fromBytes} bytes is still being removed from the SDSs (trim ${pending.id}); expand it once GET /volume-trims shows that done`);
        }
        if (v.provisioning === 'thick') this.reserve(v.storagePoolId, sizeBytes - v.sizeBytes);
      }
      this.repo.resize(id, sizeBytes);
      return this.get(id);
    });
    this.events.emit('poolUsage', { poolId: v.storagePoolId });
    return v;
  }

  /**
   * Deletes a volume or snapshot at once. Its chunks are removed from the
   * SDSs asynchronously: the whole tree (volume_deletions) when this was the
   * tree's last volume row, else the layers no other row or child layer
   * needs (layer_deletions; see releaseLayers).
   */
  delete(id: number, force: boolean): VolumeRemoval {
    const r = tx(this.db, () => {
      const v = this.must(id);
      const mappings = this.repo.mappings(id);
      if (mappings.length > 0 && !force) throw conflict(`volume ${id} is mapped to ${mappings.length} SDCs; unmap it or use force`);
      this.repo.delete(id);
      return this.releaseRow(v);
    });
    this.events.emit('poolUsage', { poolId: this.repo.get(id)?.storagePoolId ?? r.poolId });
    return { deletion: r.deletion, freedLayers: r.freedLayers };
  }

  /** After a volume row went (deleted) or moved to another layer (revert): reclaim what nothing needs any more. In a transaction. */
  releaseRow(v: Volume): VolumeRemoval & { poolId: number } {
    if (this.repo.treeVolumeCount(v.volumeTreeId) === 0) {
      this.repo.deleteTreeLayers(v.volumeTreeId);
      return { deletion: this.repo.getDeletion(this.repo.insertDeletion(v, this.clock()))!, freedLayers: [], poolId: v.storagePoolId };
    }
    return { deletion: null, freedLayers: this.releaseLayers(v.storagePoolId, v.volumeTreeId, v.layerId), poolId: v.storagePoolId };
  }

  /**
   * Frees a layer nothing references (no volume row points at it, no layer
   * has it as parent), then its parent if that became unreferenced, and so
   * on down the chain. A middle layer that a child still needs stays with
   * its chunks (no merge into the child: docs/snapshots.md).
   */
  private releaseLayers(poolId: number, treeId: number, layerId: number): number[] {
    const freed: number[] = [];
    let cur: number | null = layerId;
    while (cur !== null && this.repo.layerRefs(treeId, cur) === 0) {
      const l = this.repo.getLayer(treeId, cur);
      if (!l) break;
      this.repo.deleteLayer(treeId, cur);
      this.repo.insertLayerDeletion(poolId, treeId, cur, this.clock());
      freed.push(cur);
      cur = l.parentLayerId;
    }
    return freed;
  }

  /** accessMode undefined: readWrite for a volume, readOnly for a snapshot (which refuses readWrite). */
  map(id: number, sdcId: number, accessMode: AccessMode | undefined, allowMultiMap: boolean): VolumeView {
    return tx(this.db, () => {
      const v = this.must(id);
      if (v.kind === 'snapshot' && accessMode === 'readWrite') throw conflict(`volume ${id} is a snapshot: it maps read-only (clone it for a writable copy)`);
      const mode = accessMode ?? (v.kind === 'snapshot' ? 'readOnly' : 'readWrite');
      if (!this.topoRepo.getSdc(sdcId)) throw conflict(`no SDC ${sdcId}`);
      const mappings = this.repo.mappings(id);
      if (mappings.some((m) => m.sdcId === sdcId)) throw conflict(`volume ${id} is already mapped to SDC ${sdcId}`);
      if (mappings.length > 0 && !allowMultiMap) {
        throw conflict(`volume ${id} is already mapped to SDC ${mappings.map((m) => m.sdcId).join(', ')}; mapping to several SDCs needs allowMultiMap`);
      }
      this.repo.map(id, sdcId, mode, this.clock());
      return this.get(id);
    });
  }

  setAccessMode(id: number, sdcId: number, accessMode: AccessMode): VolumeView {
    return tx(this.db, () => {
      if (this.must(id).kind === 'snapshot' && accessMode === 'readWrite') throw conflict(`volume ${id} is a snapshot: it maps read-only`);
      if (!this.repo.getMapping(id, sdcId)) throw notFound(`volume ${id} is not mapped to SDC ${sdcId}`);
      this.repo.setAccessMode(id, sdcId, accessMode);
      return this.get(id);
    });
  }

  /** QoS of one mapping (0 = unlimited); the SDC picks it up at its next rescan (every heartbeat). */
  setQos(id: number, sdcId: number, qos: { iopsLimit: number; bandwidthLimitBytesPerSec: number }): VolumeView {
    return tx(this.db, () => {
      this.must(id);
      if (!this.repo.getMapping(id, sdcId)) throw notFound(`volume ${id} is not mapped to SDC ${sdcId}`);
      this.repo.setQos(id, sdcId, qos.iopsLimit, qos.bandwidthLimitBytesPerSec);
      return this.get(id);
    });
  }

  unmap(id: number, sdcId: number): VolumeView {
    return tx(this.db, () => {
      this.must(id);
      if (!this.repo.getMapping(id, sdcId)) throw notFound(`volume ${id} is not mapped to SDC ${sdcId}`);
      this.repo.unmap(id, sdcId);
      return this.get(id);
    });
  }

  getMapping(id: number, sdcId: number): Mapping | undefined { return this.repo.getMapping(id, sdcId); }

  listDeletions(filter: { state?: 'pending' | 'done'; poolId?: number }): VolumeDeletion[] { return this.repo.listDeletions(filter); }

  listTrims(filter: { state?: 'pending' | 'done'; volumeId?: number }): VolumeTrim[] { return this.reclaim.listTrims(filter); }
  listLayerDeletions(filter: { state?: 'pending' | 'done'; volumeTreeId?: number }): LayerDeletion[] { return this.reclaim.listLayerDeletions(filter); }

  private reserve(poolId: number, bytes: number): void {
    const cap = this.topology.capacity(this.topology.mustPool(poolId));
    const free = cap.usableBytes - cap.reservedBytes;
    if (bytes > free) {
      throw new PflexError('PFLEX_ERR_CAPACITY', `storage pool ${poolId} can reserve ${free} more bytes, ${bytes} asked (thick)`,
        { usableBytes: cap.usableBytes, reservedBytes: cap.reservedBytes, requestedBytes: bytes });
    }
  }
  private view(v: Volume): VolumeView {
    const pool = this.topoRepo.getPool(v.storagePoolId)!;
    return {
      ...v, reservedBytes: v.provisioning === 'thick' ? v.sizeBytes : 0, mappings: this.repo.mappings(v.id),
      layout: { chunkBytes: pool.chunkBytes, pgCount: pool.pgCount, replicationFactor: pool.replicationFactor },
      layerChain: this.chain(v.volumeTreeId, v.layerId),
    };
  }
  /** The layer and its ancestors, nearest first. */
  chain(treeId: number, layerId: number): number[] {
    const out: number[] = [];
    let cur: number | null = layerId;
    while (cur !== null) {
      out.push(cur);
      cur = this.repo.getLayer(treeId, cur)?.parentLayerId ?? null;
    }
    return out;
  }
  must(id: number): Volume {
    const v = this.repo.get(id);
    if (!v) throw notFound(`no volume ${id}`);
    return v;
  }
}

function checkSize(sizeBytes: number): void {
  if (sizeBytes <= 0 || sizeBytes % VOLUME_SIZE_ALIGN_BYTES !== 0) {
    throw badRequest(`volume size must be a positive multiple of ${VOLUME_SIZE_ALIGN_BYTES} bytes, got ${sizeBytes}`);
  }
}
