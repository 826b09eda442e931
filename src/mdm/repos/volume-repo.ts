import { PflexError } from '../../shared/errors.js';
import { MDM_LIMITS } from '../config.js';
import { Repo } from '../db.js';
import type { Provisioning } from './topology-repo.js';

export type AccessMode = 'readWrite' | 'readOnly';
/** A volume row is a writable volume (or clone) or a read-only snapshot; both point at a layer of their tree. */
export type VolumeKind = 'volume' | 'snapshot';

export interface Volume {
  id: number;
  name: string;
  storagePoolId: number;
  volumeTreeId: number;
  sizeBytes: number;
  provisioning: Provisioning;
  createdAtMs: number;
  kind: VolumeKind;
  /** The layer of the tree this volume writes (volume) or freezes (snapshot). */
  layerId: number;
  /** Snapshot: the volume it was taken of; clone: the snapshot it was cloned from. */
  sourceVolumeId: number | null;
  /** Snapshots taken together (consistency group) share this id. */
  snapshotGroup: string | null;
  /** Snapshots made by a policy name it (retention counts only those). */
  policyId: number | null;
}
export interface Layer { treeId: number; layerId: number; parentLayerId: number | null; createdAtMs: number }
export interface NewVolumeRow {
  name: string; storagePoolId: number; sizeBytes: number; provisioning: Provisioning;
  kind?: VolumeKind; treeId?: number; layerId?: number; sourceVolumeId?: number | null; snapshotGroup?: string | null; policyId?: number | null;
}
/** iopsLimit, bandwidthLimitBytesPerSec: QoS the SDC enforces for this mapping (0 = unlimited). */
export interface Mapping { volumeId: number; sdcId: number; accessMode: AccessMode; createdAtMs: number; iopsLimit: number; bandwidthLimitBytesPerSec: number }
/** Progress of a reclaim task (a tree deletion, a freed layer or a trim) over the SDSs of its pool. */
export interface ReclaimProgress {
  /** SDSs that confirmed the removal. */
  sdsConfirmed: number;
  /** SDSs that must confirm (the pool's SDSs; once done, those that did). */
  sdsTotal: number;
  chunksFreed: number;
  bytesFreed: number;
  /** The last failure of an SDS call (it is retried). */
  lastError: string | null;
}
export interface VolumeDeletion extends ReclaimProgress {
  id: number; volumeId: number; volumeName: string; volumeTreeId: number; storagePoolId: number; sizeBytes: number;
  state: 'pending' | 'done'; createdAtMs: number; doneAtMs: number | null;
}

interface VolumeRow {
  id: number; name: string; pool_id: number; volume_tree_id: number; size_bytes: number; provisioning: Provisioning; created_at_ms: number;
  kind: VolumeKind; layer_id: number; source_volume_id: number | null; snapshot_group: string | null; policy_id: number | null;
}
interface LayerRow { tree_id: number; layer_id: number; parent_layer_id: number | null; created_at_ms: number }
interface MappingRow { volume_id: number; sdc_id: number; access_mode: AccessMode; created_at_ms: number; iops_limit: number; bandwidth_limit_bps: number }
export interface ReclaimRow {
  state: 'pending' | 'done'; chunks_freed: number; bytes_freed: number; last_error: string | null; sds_confirmed: number; sds_pool: number;
}
interface DeletionRow extends ReclaimRow {
  id: number; volume_id: number; volume_name: string; volume_tree_id: number; pool_id: number; size_bytes: number;
  created_at_ms: number; done_at_ms: number | null;
}

const volume = (r: VolumeRow): Volume => ({
  id: r.id, name: r.name, storagePoolId: r.pool_id, volumeTreeId: r.volume_tree_id, sizeBytes: r.size_bytes,
  provisioning: r.provisioning, createdAtMs: r.created_at_ms, kind: r.kind, layerId: r.layer_id, sourceVolumeId: r.source_volume_id,
  snapshotGroup: r.snapshot_group, policyId: r.policy_id,
});
const layer = (r: LayerRow): Layer => ({ treeId: r.tree_id, layerId: r.layer_id, parentLayerId: r.parent_layer_id, createdAtMs: r.created_at_ms });
const mapping = (r: MappingRow): Mapping => ({
  volumeId: r.volume_id, sdcId: r.sdc_id, accessMode: r.access_mode, createdAtMs: r.created_at_ms, iopsLimit: r.iops_limit, bandwidthLimitBytesPerSec: r.bandwidth_limit_bps,
});
export const reclaimProgress = (r: ReclaimRow): ReclaimProgress => ({
  sdsConfirmed: r.sds_confirmed, sdsTotal: r.state === 'done' ? r.sds_confirmed : Math.max(r.sds_pool, r.sds_confirmed),
  chunksFreed: r.chunks_freed, bytesFreed: r.bytes_freed, lastError: r.last_error,
});
const deletion = (r: DeletionRow): VolumeDeletion => ({
  id: r.id, volumeId: r.volume_id, volumeName: r.volume_name, volumeTreeId: r.volume_tree_id, storagePoolId: r.pool_id,
  sizeBytes: r.size_bytes, state: r.state, createdAtMs: r.created_at_ms, doneAtMs: r.done_at_ms, ...reclaimProgress(r),
});
/** Columns of a reclaim task with its confirmations (task prefix: 'deletion' or 'trim'). */
export const reclaimSelect = (table: string, prefix: string): string => `SELECT t.*,
  (SELECT COUNT(*) FROM reclaim_confirmations c WHERE c.task = '${prefix}:' || t.id) AS sds_confirmed,
  (SELECT COUNT(*) FROM sds s WHERE s.pool_id = t.pool_id) AS sds_pool
  FROM ${table} t`;
const DELETIONS = reclaimSelect('volume_deletions', 'deletion');

/** All SQL of volumes, volume trees, mappings and pending deletions. */
export class VolumeRepo extends Repo {
  list(filter: { poolId?: number; kind?: VolumeKind; treeId?: number; policyId?: number } = {}): Volume[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.poolId !== undefined) { where.push('pool_id = ?'); args.push(filter.poolId); }
    if (filter.kind !== undefined) { where.push('kind = ?'); args.push(filter.kind); }
    if (filter.treeId !== undefined) { where.push('volume_tree_id = ?'); args.push(filter.treeId); }
    if (filter.policyId !== undefined) { where.push('policy_id = ?'); args.push(filter.policyId); }
    const sql = `SELECT * FROM volumes${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id`;
    return this.stmt<unknown[], VolumeRow>(sql).all(...args).map(volume);
  }
  get(id: number): Volume | undefined {
    const r = this.stmt<[number], VolumeRow>('SELECT * FROM volumes WHERE id = ?').get(id);
    return r && volume(r);
  }
  getByName(name: string): Volume | undefined {
    const r = this.stmt<[string], VolumeRow>('SELECT * FROM volumes WHERE name = ?').get(name);
    return r && volume(r);
  }
  /** A new volume: in a new tree (with its root layer 0) unless treeId and layerId name an existing layer. */
  insert(v: NewVolumeRow, nowMs: number): number {
    let treeId = v.treeId;
    if (treeId === undefined) {
      treeId = Number(this.stmt('INSERT INTO volume_trees (pool_id, created_at_ms) VALUES (?, ?)').run(v.storagePoolId, nowMs).lastInsertRowid);
      this.stmt('INSERT INTO layers (tree_id, layer_id, parent_layer_id, created_at_ms) VALUES (?, 0, NULL, ?)').run(treeId, nowMs);
    }
    // Never the id of a deleted volume or snapshot (SQLite reuses the largest rowid once its row is gone): SDSs
    // cache volume -> tree for good, and IO tokens and deletions name volumes by id. Tree rows are never deleted,
    // so a tree id is never reused either (SDSs keep deleted trees dead for good).
    const id = this.stmt<[], { id: number }>('UPDATE volume_id_high SET id = id + 1 RETURNING id').get()!.id;
    return Number(this.stmt(`INSERT INTO volumes (id, name, pool_id, volume_tree_id, size_bytes, provisioning, created_at_ms,
      kind, layer_id, source_volume_id, snapshot_group, policy_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      id, v.name, v.storagePoolId, treeId, v.sizeBytes, v.provisioning, nowMs, v.kind ?? 'volume', v.layerId ?? 0, v.sourceVolumeId ?? null,
      v.snapshotGroup ?? null, v.policyId ?? null).lastInsertRowid);
  }
  setLayer(id: number, layerId: number): void {
    this.stmt('UPDATE volumes SET layer_id = ? WHERE id = ?').run(layerId, id);
  }

  // --- layers ----------------------------------------------------------------

  /** A new layer on top of parent (ids grow within a tree, so a newer layer always has a larger id). */
  insertLayer(treeId: number, parentLayerId: number | null, nowMs: number): number {
    const r = this.stmt<[number], { next_layer_id: number }>('SELECT next_layer_id FROM volume_trees WHERE id = ?').get(treeId);
    const layerId = r!.next_layer_id;
    if (layerId > MDM_LIMITS.layerIdMax) throw new PflexError('PFLEX_ERR_CONFLICT', `volume tree ${treeId} has used all ${MDM_LIMITS.layerIdMax} layer ids`);
    this.stmt('UPDATE volume_trees SET next_layer_id = ? WHERE id = ?').run(layerId + 1, treeId);
    this.stmt('INSERT INTO layers (tree_id, layer_id, parent_layer_id, created_at_ms) VALUES (?, ?, ?, ?)').run(treeId, layerId, parentLayerId, nowMs);
    return layerId;
  }
  getLayer(treeId: number, layerId: number): Layer | undefined {
    const r = this.stmt<[number, number], LayerRow>('SELECT * FROM layers WHERE tree_id = ? AND layer_id = ?').get(treeId, layerId);
    return r && layer(r);
  }
  layersOfTree(treeId: number): Layer[] {
    return this.stmt<[number], LayerRow>('SELECT * FROM layers WHERE tree_id = ? ORDER BY layer_id').all(treeId).map(layer);
  }
  /** Volume rows and child layers that need a layer (its references). */
  layerRefs(treeId: number, layerId: number): number {
    const v = this.stmt<[number, number], { n: number }>('SELECT count(*) AS n FROM volumes WHERE volume_tree_id = ? AND layer_id = ?').get(treeId, layerId)!.n;
    const c = this.stmt<[number, number], { n: number }>('SELECT count(*) AS n FROM layers WHERE tree_id = ? AND parent_layer_id = ?').get(treeId, layerId)!.n;
    return v + c;
  }
  /** The tree's last volume row went: its deletion reclaims every layer's chunks at once. */
  deleteTreeLayers(treeId: number): void {
    this.stmt('DELETE FROM layers WHERE tree_id = ?').run(treeId);
  }
  deleteLayer(treeId: number, layerId: number): void {
    this.stmt('DELETE FROM layers WHERE tree_id = ? AND layer_id = ?').run(treeId, layerId);
  }
  treeVolumeCount(treeId: number): number {
    return this.stmt<[number], { n: number }>('SELECT count(*) AS n FROM volumes WHERE volume_tree_id = ?').get(treeId)!.n;
  }
  insertLayerDeletion(poolId: number, treeId: number, layerId: number, nowMs: number): number {
    return Number(this.stmt(`INSERT INTO layer_deletions (pool_id, tree_id, layer_id, state, created_at_ms) VALUES (?, ?, ?, 'pending', ?)`)
      .run(poolId, treeId, layerId, nowMs).lastInsertRowid);
  }
  rename(id: number, name: string): void {
    this.stmt('UPDATE volumes SET name = ? WHERE id = ?').run(name, id);
  }
  resize(id: number, sizeBytes: number): void {
    this.stmt('UPDATE volumes SET size_bytes = ? WHERE id = ?').run(sizeBytes, id);
  }
  /** Deletes the volume and its mappings; the tree row stays (its chunks are still on the SDSs). */
  delete(id: number): void {
    this.stmt('DELETE FROM volume_mappings WHERE volume_id = ?').run(id);
    this.stmt('DELETE FROM volumes WHERE id = ?').run(id);
  }

  mappings(volumeId: number): Mapping[] {
    return this.stmt<[number], MappingRow>('SELECT * FROM volume_mappings WHERE volume_id = ? ORDER BY sdc_id').all(volumeId).map(mapping);
  }
  mappingsOfSdc(sdcId: number): Mapping[] {
    return this.stmt<[number], MappingRow>('SELECT * FROM volume_mappings WHERE sdc_id = ? ORDER BY volume_id').all(sdcId).map(mapping);
  }
  allMappings(): Mapping[] {
    return this.stmt<[], MappingRow>('SELECT * FROM volume_mappings ORDER BY volume_id, sdc_id').all().map(mapping);
  }
  getMapping(volumeId: number, sdcId: number): Mapping | undefined {
    const r = this.stmt<[number, number], MappingRow>('SELECT * FROM volume_mappings WHERE volume_id = ? AND sdc_id = ?').get(volumeId, sdcId);
    return r && mapping(r);
  }
  map(volumeId: number, sdcId: number, accessMode: AccessMode, nowMs: number): void {
    this.stmt('INSERT INTO volume_mappings (volume_id, sdc_id, access_mode, created_at_ms) VALUES (?, ?, ?, ?)').run(volumeId, sdcId, accessMode, nowMs);
  }
  setAccessMode(volumeId: number, sdcId: number, accessMode: AccessMode): void {
    this.stmt('UPDATE volume_mappings SET access_mode = ? WHERE volume_id = ? AND sdc_id = ?').run(accessMode, volumeId, sdcId);
  }
  setQos(volumeId: number, sdcId: number, iopsLimit: number, bandwidthLimitBytesPerSec: number): void {
    this.stmt('UPDATE volume_mappings SET iops_limit = ?, bandwidth_limit_bps = ? WHERE volume_id = ? AND sdc_id = ?')
      .run(iopsLimit, bandwidthLimitBytesPerSec, volumeId, sdcId);
  }
  unmap(volumeId: number, sdcId: number): void {
    this.stmt('DELETE FROM volume_mappings WHERE volume_id = ? AND sdc_id = ?').run(volumeId, sdcId);
  }

  insertDeletion(v: Volume, nowMs: number): number {
    return Number(this.stmt(`INSERT INTO volume_deletions (volume_id, volume_name, volume_tree_id, pool_id, size_bytes, state, created_at_ms)
      VALUES (?, ?, ?, ?, ?, 'pending', ?)`).run(v.id, v.name, v.volumeTreeId, v.storagePoolId, v.sizeBytes, nowMs).lastInsertRowid);
  }
  listDeletions(filter: { state?: 'pending' | 'done'; poolId?: number }): VolumeDeletion[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.state !== undefined) { where.push('t.state = ?'); args.push(filter.state); }
    if (filter.poolId !== undefined) { where.push('t.pool_id = ?'); args.push(filter.poolId); }
    const sql = `${DELETIONS}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY t.id`;
    return this.stmt<unknown[], DeletionRow>(sql).all(...args).map(deletion);
  }
  getDeletion(id: number): VolumeDeletion | undefined {
    const r = this.stmt<[number], DeletionRow>(`${DELETIONS} WHERE t.id = ?`).get(id);
    return r && deletion(r);
  }
}
