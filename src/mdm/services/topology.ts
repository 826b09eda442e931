import { PflexError, isPflexError } from '../../shared/errors.js';
import type { MdmConfig } from '../config.js';
import { tx, type Db } from '../db.js';
import type { Mapping, VolumeRepo } from '../repos/volume-repo.js';
import type {
  FaultSet, ProtectionDomain, Provisioning, Sdc, Sds, StoragePool, TopologyRepo,
} from '../repos/topology-repo.js';
import type { Clock, MdmEvents } from './events.js';
import type { PgMapService } from './pgmap.js';

export interface PoolCapacity {
  /** Raw bytes of all SDSs of the pool. */
  totalBytes: number;
  /** What volumes can hold: total / replication factor. */
  usableBytes: number;
  /** Net bytes reserved by thick volumes. */
  reservedBytes: number;
  /** Raw bytes the SDSs report in use (all replicas). */
  usedBytes: number;
  /** Net bytes promised to all volumes (thin and thick). */
  provisionedBytes: number;
  /** provisioned / usable (0 when the pool has no capacity). */
  overProvisioningRatio: number;
  /** used / total in percent (what the capacity alerts watch). */
  utilizationPct: number;
}

export interface PoolView extends StoragePool { capacity: PoolCapacity; sdsCount: number; volumeCount: number; pgMapReady: boolean; degradedPgs: number }

export interface NewPoolInput {
  protectionDomainId: number; name: string; replicationFactor: number; chunkBytes?: number | undefined; pgCount?: number | undefined;
  defaultProvisioning?: Provisioning | undefined; capacityHighPct?: number | undefined; capacityCriticalPct?: number | undefined;
}
export interface PoolPatch { name?: string | undefined; defaultProvisioning?: Provisioning | undefined; capacityHighPct?: number | undefined; capacityCriticalPct?: number | undefined }

export interface RegisterSdsInput {
  name: string; protectionDomainName: string; storagePoolName: string; faultSetName?: string | undefined; address: string;
  dataPort: number; controlPort?: number | undefined; mgmtPort?: number | undefined; capacityBytes: number;
  /** False: the SDS's previous run did not stop cleanly (src/sds/clean-stop.ts); absent means clean. */
  cleanStop?: boolean | undefined;
}
export interface RegisterSdcInput { guid: string; name?: string | undefined; address?: string | undefined; controlPort?: number | undefined }

export interface SdcView extends Sdc { mappings: Mapping[] }

export interface TopologyTree {
  protectionDomains: Array<ProtectionDomain & {
    storagePools: Array<PoolView & { sds: Sds[] }>;
    faultSets: Array<FaultSet & { sdsIds: number[] }>;
  }>;
  sdcs: SdcView[];
}

/** Protection domains, storage pools, fault sets, SDS and SDC membership. */
export class TopologyService {
  constructor(
    private readonly db: Db,
    private readonly repo: TopologyRepo,
    private readonly volumes: VolumeRepo,
    private readonly pgmaps: PgMapService,
    private readonly config: MdmConfig,
    private readonly clock: Clock,
    private readonly events: MdmEvents,
  ) {}

  // protection domains
  listPds(): ProtectionDomain[] { return this.repo.listPds(); }
  getPd(id: number): ProtectionDomain { return this.mustPd(id); }
  createPd(name: string): ProtectionDomain {
    return tx(this.db, () => {
      if (this.repo.getPdByName(name)) throw conflict(`protection domain "${name}" already exists`);
      return this.mustPd(this.repo.insertPd(name, this.clock()));
    });
  }
  renamePd(id: number, name: string): ProtectionDomain {
    return tx(this.db, () => {
      this.mustPd(id);
      const other = this.repo.getPdByName(name);
      if (other && other.id !== id) throw conflict(`protection domain "${name}" already exists`);
      this.repo.renamePd(id, name);
      return this.mustPd(id);
    });
  }
  deletePd(id: number): void {
    tx(this.db, () => {
      this.mustPd(id);
      if (this.repo.countPdChildren(id) > 0) throw conflict(`protection domain ${id} still has storage pools, fault sets or SDSs`);
      this.repo.deletePd(id);
    });
  }

  // storage pools
  listPools(pdId?: number): PoolView[] { return this.repo.listPools(pdId).map((p) => this.poolView(p)); }
  getPool(id: number): PoolView { return this.poolView(this.mustPool(id)); }
  createPool(input: NewPoolInput): PoolView {
    return tx(this.db, () => {
      if (!this.repo.getPd(input.protectionDomainId)) throw conflict(`no protection domain ${input.protectionDomainId}`);
      if (this.repo.getPoolByName(input.protectionDomainId, input.name)) throw conflict(`storage pool "${input.name}" already exists in protection domain ${input.protectionDomainId}`);
      const high = input.capacityHighPct ?? this.config.poolCapacityHighPctDefault;
      const critical = input.capacityCriticalPct ?? this.config.poolCapacityCriticalPctDefault;
      checkThresholds(high, critical);
      const chunkBytes = input.chunkBytes ?? this.config.poolChunkBytesDefault;
      if ((chunkBytes & (chunkBytes - 1)) !== 0) throw badRequest(`chunkBytes must be a power of two, got ${chunkBytes}`);
      const id = this.repo.insertPool({
        protectionDomainId: input.protectionDomainId, name: input.name, replicationFactor: input.replicationFactor, chunkBytes,
        pgCount: input.pgCount ?? this.config.poolPgCountDefault, defaultProvisioning: input.defaultProvisioning ?? 'thin',
        capacityHighPct: high, capacityCriticalPct: critical,
      }, this.clock());
      return this.getPool(id);
    });
  }
  updatePool(id: number, patch: PoolPatch): PoolView {
    const view = tx(this.db, () => {
      const p = this.mustPool(id);
      const name = patch.name ?? p.name;
      const other = this.repo.getPoolByName(p.protectionDomainId, name);
      if (other && other.id !== id) throw conflict(`storage pool "${name}" already exists in protection domain ${p.protectionDomainId}`);
      const next = {
        name, defaultProvisioning: patch.defaultProvisioning ?? p.defaultProvisioning,
        capacityHighPct: patch.capacityHighPct ?? p.capacityHighPct, capacityCriticalPct: patch.capacityCriticalPct ?? p.capacityCriticalPct,
      };
      checkThresholds(next.capacityHighPct, next.capacityCriticalPct);
      this.repo.updatePool(id, next);
      return this.getPool(id);
    });
    this.events.emit('poolUsage', { poolId: id });
    return view;
  }
  deletePool(id: number): void {
    tx(this.db, () => {
      this.mustPool(id);
      const n = this.repo.countPoolChildren(id);
      if (n.volumes > 0 || n.sds > 0) throw conflict(`storage pool ${id} is not empty (${n.volumes} volumes, ${n.sds} SDSs)`);
      this.repo.deletePool(id);
    });
  }
  capacity(pool: StoragePool): PoolCapacity {
    const u = this.repo.poolUsage(pool.id);
    const usableBytes = Math.floor(u.totalBytes / pool.replicationFactor);
    return {
      totalBytes: u.totalBytes, usableBytes, reservedBytes: u.reservedBytes, usedBytes: u.usedBytes, provisionedBytes: u.provisionedBytes,
      overProvisioningRatio: usableBytes > 0 ? u.provisionedBytes / usableBytes : 0,
      utilizationPct: u.totalBytes > 0 ? (100 * u.usedBytes) / u.totalBytes : 0,
    };
  }

  // fault sets
  listFaultSets(pdId?: number): FaultSet[] { return this.repo.listFaultSets(pdId); }
  getFaultSet(id: number): FaultSet {
    const f = this.repo.getFaultSet(id);
    if (!f) throw notFound(`no fault set ${id}`);
    return f;
  }
  createFaultSet(pdId: number, name: string): FaultSet {
    return tx(this.db, () => {
      if (!this.repo.getPd(pdId)) throw conflict(`no protection domain ${pdId}`);
      if (this.repo.getFaultSetByName(pdId, name)) throw conflict(`fault set "${name}" already exists in protection domain ${pdId}`);
      return this.getFaultSet(this.repo.insertFaultSet(pdId, name, this.clock()));
    });
  }
  deleteFaultSet(id: number): void {
    tx(this.db, () => {
      this.getFaultSet(id);
      if (this.repo.countFaultSetSds(id) > 0) throw conflict(`fault set ${id} still has SDSs`);
      this.repo.deleteFaultSet(id);
    });
  }

  // SDS
  listSds(filter: { poolId?: number; pdId?: number } = {}): Sds[] { return this.repo.listSds(filter); }
  getSds(id: number): Sds { return this.mustSds(id); }
  getSdsByName(name: string): Sds | undefined { return this.repo.getSdsByName(name); }

  /**
   * Self-registration of an SDS (idempotent by name: a restarted SDS
   * registers again and keeps its id). An SDS belongs to one protection
   * domain and one storage pool, for its whole life. One whose previous run
   * did not stop cleanly is fenced out of its PGs before the answer (see
   * fenceFromAllPgs), so it serves none of its old copies.
   */
  registerSds(input: RegisterSdsInput): { sds: Sds; created: boolean; fencedPgs?: number[]; keptPgs?: number[] } {
    const result = tx(this.db, () => {
      const pd = this.repo.getPdByName(input.protectionDomainName);
      if (!pd) throw conflict(`no protection domain "${input.protectionDomainName}"`);
      const pool = this.repo.getPoolByName(pd.id, input.storagePoolName);
      if (!pool) throw conflict(`no storage pool "${input.storagePoolName}" in protection domain "${pd.name}"`);
      let faultSetId: number | null = null;
      if (input.faultSetName !== undefined) {
        const fs = this.repo.getFaultSetByName(pd.id, input.faultSetName);
        if (!fs) throw conflict(`no fault set "${input.faultSetName}" in protection domain "${pd.name}"`);
        faultSetId = fs.id;
      }
      const endpoint = {
        address: input.address, dataPort: input.dataPort, controlPort: input.controlPort ?? null, mgmtPort: input.mgmtPort ?? null,
        capacityBytes: input.capacityBytes,
      };
      const existing = this.repo.getSdsByName(input.name);
      if (existing) {
        if (existing.storagePoolId !== pool.id || existing.faultSetId !== faultSetId) {
          throw conflict(`SDS "${input.name}" is registered in another storage pool or fault set; remove it first`);
        }
        this.repo.updateSdsEndpoint(existing.id, endpoint);
        const moved = existing.capacityBytes !== input.capacityBytes ? this.pgmaps.recompute(pool.id) : undefined;
        return { sds: this.mustSds(existing.id), created: false, moved };
      }
      const id = this.repo.insertSds({ name: input.name, protectionDomainId: pd.id, storagePoolId: pool.id, faultSetId, ...endpoint }, this.clock());
      return { sds: this.mustSds(id), created: true, moved: this.pgmaps.recompute(pool.id) };
    });
    if (result.moved) this.events.emit('pgMap', result.moved);
    this.events.emit('poolUsage', { poolId: result.sds.storagePoolId });
    if (input.cleanStop === false && !result.created) {
      const f = fenceFromAllPgs(this.pgmaps, result.sds.storagePoolId, result.sds.id);
      return { sds: result.sds, created: false, fencedPgs: f.fenced, keptPgs: f.kept };
    }
    return { sds: result.sds, created: result.created };
  }

  /** Removal is refused while the SDS holds PGs (its data must move first: drain comes with rebuild). */
  removeSds(id: number): void {
    const { poolId, moved } = tx(this.db, () => {
      const s = this.mustSds(id);
      const held = this.pgmaps.holding(s.storagePoolId, id);
      if (held > 0) throw conflict(`SDS ${id} still holds ${held} PG replicas; drain it before removal`);
      this.repo.deleteSds(id);
      return { poolId: s.storagePoolId, moved: this.pgmaps.recompute(s.storagePoolId) };
    });
    if (moved) this.events.emit('pgMap', moved);
    this.events.emit('poolUsage', { poolId });
  }

  // SDC
  listSdcs(): SdcView[] { return this.repo.listSdcs().map((s) => ({ ...s, mappings: this.volumes.mappingsOfSdc(s.id) })); }
  getSdc(id: number): SdcView {
    const s = this.mustSdc(id);
    return { ...s, mappings: this.volumes.mappingsOfSdc(id) };
  }
  /** The SDC without its mappings (the heartbeat needs only who it is). */
  getSdcRow(id: number): Sdc { return this.mustSdc(id); }
  getSdcByGuid(guid: string): Sdc | undefined { return this.repo.getSdcByGuid(guid); }

  /** Self-registration of an SDC (idempotent by guid, which survives restarts). */
  registerSdc(input: RegisterSdcInput): { sdc: SdcView; created: boolean } {
    return tx(this.db, () => {
      const existing = this.repo.getSdcByGuid(input.guid);
      const name = input.name ?? existing?.name ?? `sdc-${input.guid.slice(0, 12)}`;
      const byName = this.repo.getSdcByName(name);
      if (byName && byName.guid !== input.guid) throw conflict(`SDC name "${name}" is taken by another SDC`);
      if (existing) {
        this.repo.updateSdc(existing.id, name, input.address ?? existing.address, input.controlPort ?? existing.controlPort);
        return { sdc: this.getSdc(existing.id), created: false };
      }
      const id = this.repo.insertSdc(input.guid, name, input.address ?? null, this.clock(), input.controlPort ?? null);
      return { sdc: this.getSdc(id), created: true };
    });
  }
  renameSdc(id: number, name: string): SdcView {
    return tx(this.db, () => {
      const s = this.mustSdc(id);
      const byName = this.repo.getSdcByName(name);
      if (byName && byName.id !== id) throw conflict(`SDC name "${name}" is taken by another SDC`);
      this.repo.updateSdc(id, name, s.address);
      return this.getSdc(id);
    });
  }
  /** Unregistering an SDC with mapped volumes needs force (which unmaps them). */
  unregisterSdc(id: number, force: boolean): void {
    tx(this.db, () => {
      this.mustSdc(id);
      const mappings = this.volumes.mappingsOfSdc(id);
      if (mappings.length > 0 && !force) throw conflict(`SDC ${id} has ${mappings.length} mapped volumes; unmap them or use force`);
      for (const m of mappings) this.volumes.unmap(m.volumeId, id);
      this.repo.deleteSdc(id);
    });
  }

  tree(): TopologyTree {
    const allSds = this.repo.listSds();
    return {
      protectionDomains: this.repo.listPds().map((pd) => ({
        ...pd,
        storagePools: this.repo.listPools(pd.id).map((p) => ({ ...this.poolView(p), sds: allSds.filter((s) => s.storagePoolId === p.id) })),
        faultSets: this.repo.listFaultSets(pd.id).map((f) => ({ ...f, sdsIds: allSds.filter((s) => s.faultSetId === f.id).map((s) => s.id) })),
      })),
      sdcs: this.listSdcs(),
    };
  }

  findPool(id: number): StoragePool | undefined {
    return this.repo.getPool(id);
  }
  mustPool(id: number): StoragePool {
    const p = this.repo.getPool(id);
    if (!p) throw notFound(`no storage pool ${id}`);
    return p;
  }
  private poolView(p: StoragePool): PoolView {
    const n = this.repo.countPoolChildren(p.id);
    return { ...p, capacity: this.capacity(p), sdsCount: n.sds, volumeCount: n.volumes, pgMapReady: this.pgmaps.ready(p), degradedPgs: this.pgmaps.degraded(p) };
  }
  private mustPd(id: number): ProtectionDomain {
    const pd = this.repo.getPd(id);
    if (!pd) throw notFound(`no protection domain ${id}`);
    return pd;
  }
  private mustSds(id: number): Sds {
    const s = this.repo.getSds(id);
    if (!s) throw notFound(`no SDS ${id}`);
    return s;
  }
  private mustSdc(id: number): Sdc {
    const s = this.repo.getSdc(id);
    if (!s) throw notFound(`no SDC ${id}`);
    return s;
  }
}

/**
 * Takes an SDS that may have lost acknowledged writes (power loss: it did not
 * stop cleanly) out of every PG it is a member of or joining, one fence per
 * PG (new epoch each; where it was primary the next member is promoted).
 * Rebuild then plans it back as a joining member, which copies the PG whole.
 * The last member of a PG is kept: it holds the only copy there is, and
 * after a power loss that copy is what a single disk would hold (every
 * flushed write; un-flushed ones may be gone); removing it would leave the PG
 * with nothing. The simulated MDM (src/sim/mdm.ts) applies the same function.
 */
export function fenceFromAllPgs(pgmaps: PgMapService, poolId: number, sdsId: number): { fenced: number[]; kept: number[] } {
  const fenced: number[] = [];
  const kept: number[] = [];
  for (const e of pgmaps.map(poolId).pgs) {
    if (!e.members.includes(sdsId) && !e.joining.includes(sdsId)) continue;
    try {
      if (pgmaps.fence(poolId, e.pg, sdsId, e.epoch).fenced) fenced.push(e.pg);
    } catch (err) {
      // CONFLICT: the last member, which stays.
      if (isPflexError(err) && err.code === 'PFLEX_ERR_CONFLICT') kept.push(e.pg);
      else throw err;
    }
  }
  return { fenced, kept };
}

function checkThresholds(high: number, critical: number): void {
  if (high > critical) throw badRequest(`capacityHighPct (${high}) must not exceed capacityCriticalPct (${critical})`);
}
export const conflict = (m: string): PflexError => new PflexError('PFLEX_ERR_CONFLICT', m);
export const notFound = (m: string): PflexError => new PflexError('PFLEX_ERR_NOT_FOUND', m);
export const badRequest = (m: string): PflexError => new PflexError('PFLEX_ERR_BAD_REQUEST', m);
