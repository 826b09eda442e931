import { PflexError } from '../../shared/errors.js';
import { tx, type Db } from '../db.js';
import type { Provisioning, TopologyRepo } from '../repos/topology-repo.js';
import type { AccessMode, Mapping, Volume, VolumeDeletion, VolumeRepo } from '../repos/volume-repo.js';
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
}

export interface CreateVolumeInput { name: string; storagePoolId: number; sizeBytes: number; provisioning?: Provisioning | undefined }

/** Volumes: create, resize, rename, delete (asynchronous data removal), map/unmap. */
export class VolumeService {
  constructor(
    private readonly db: Db,
    private readonly repo: VolumeRepo,
    private readonly topoRepo: TopologyRepo,
    private readonly topology: TopologyService,
    private readonly clock: Clock,
    private readonly events: MdmEvents,
  ) {}

  list(filter: { poolId?: number; name?: string } = {}): VolumeView[] {
    if (filter.name !== undefined) {
      const v = this.repo.getByName(filter.name);
      return v && (filter.poolId === undefined || v.storagePoolId === filter.poolId) ? [this.view(v)] : [];
    }
    return this.repo.list(filter.poolId === undefined ? {} : { poolId: filter.poolId }).map((v) => this.view(v));
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

  /** Expand freely (thick: if the pool can reserve it); shrink only unmapped and forced (it destroys data). */
  resize(id: number, sizeBytes: number, force: boolean): VolumeView {
    const v = tx(this.db, () => {
      const v = this.must(id);
      checkSize(sizeBytes);
      if (sizeBytes < v.sizeBytes) {
        if (!force) throw conflict(`shrinking volume ${id} from ${v.sizeBytes} to ${sizeBytes} bytes destroys data; use force`);
        if (this.repo.mappings(id).length > 0) throw conflict(`volume ${id} is mapped; unmap it before shrinking`);
      } else if (sizeBytes > v.sizeBytes && v.provisioning === 'thick') {
        this.reserve(v.storagePoolId, sizeBytes - v.sizeBytes);
      }
      this.repo.resize(id, sizeBytes);
      return this.get(id);
    });
    this.events.emit('poolUsage', { poolId: v.storagePoolId });
    return v;
  }

  /** Deletes the volume at once; its chunks are removed from the SDSs asynchronously (volume_deletions). */
  delete(id: number, force: boolean): VolumeDeletion {
    const d = tx(this.db, () => {
      const v = this.must(id);
      const mappings = this.repo.mappings(id);
      if (mappings.length > 0 && !force) throw conflict(`volume ${id} is mapped to ${mappings.length} SDCs; unmap it or use force`);
      this.repo.delete(id);
      return this.repo.getDeletion(this.repo.insertDeletion(v, this.clock()))!;
    });
    this.events.emit('poolUsage', { poolId: d.storagePoolId });
    return d;
  }

  map(id: number, sdcId: number, accessMode: AccessMode, allowMultiMap: boolean): VolumeView {
    return tx(this.db, () => {
      this.must(id);
      if (!this.topoRepo.getSdc(sdcId)) throw conflict(`no SDC ${sdcId}`);
      const mappings = this.repo.mappings(id);
      if (mappings.some((m) => m.sdcId === sdcId)) throw conflict(`volume ${id} is already mapped to SDC ${sdcId}`);
      if (mappings.length > 0 && !allowMultiMap) {
        throw conflict(`volume ${id} is already mapped to SDC ${mappings.map((m) => m.sdcId).join(', ')}; mapping to several SDCs needs allowMultiMap`);
      }
      this.repo.map(id, sdcId, accessMode, this.clock());
      return this.get(id);
    });
  }

  setAccessMode(id: number, sdcId: number, accessMode: AccessMode): VolumeView {
    return tx(this.db, () => {
      this.must(id);
      if (!this.repo.getMapping(id, sdcId)) throw notFound(`volume ${id} is not mapped to SDC ${sdcId}`);
      this.repo.setAccessMode(id, sdcId, accessMode);
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

  /** An SDS (or rebuild) finished removing the chunks of a deleted volume. */
  completeDeletion(id: number): VolumeDeletion {
    return tx(this.db, () => {
      const d = this.repo.getDeletion(id);
      if (!d) throw notFound(`no volume deletion ${id}`);
      if (d.state === 'pending') this.repo.markDeletionDone(id, this.clock());
      return this.repo.getDeletion(id)!;
    });
  }

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
    };
  }
  private must(id: number): Volume {
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
