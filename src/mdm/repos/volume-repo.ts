import { Repo } from '../db.js';
import type { Provisioning } from './topology-repo.js';

export type AccessMode = 'readWrite' | 'readOnly';

export interface Volume {
  id: number;
  name: string;
  storagePoolId: number;
  volumeTreeId: number;
  sizeBytes: number;
  provisioning: Provisioning;
  createdAtMs: number;
}
export interface Mapping { volumeId: number; sdcId: number; accessMode: AccessMode; createdAtMs: number }
export interface VolumeDeletion {
  id: number; volumeId: number; volumeName: string; volumeTreeId: number; storagePoolId: number; sizeBytes: number;
  state: 'pending' | 'done'; createdAtMs: number; doneAtMs: number | null;
}

interface VolumeRow { id: number; name: string; pool_id: number; volume_tree_id: number; size_bytes: number; provisioning: Provisioning; created_at_ms: number }
interface MappingRow { volume_id: number; sdc_id: number; access_mode: AccessMode; created_at_ms: number }
interface DeletionRow {
  id: number; volume_id: number; volume_name: string; volume_tree_id: number; pool_id: number; size_bytes: number;
  state: 'pending' | 'done'; created_at_ms: number; done_at_ms: number | null;
}

const volume = (r: VolumeRow): Volume => ({
  id: r.id, name: r.name, storagePoolId: r.pool_id, volumeTreeId: r.volume_tree_id, sizeBytes: r.size_bytes,
  provisioning: r.provisioning, createdAtMs: r.created_at_ms,
});
const mapping = (r: MappingRow): Mapping => ({ volumeId: r.volume_id, sdcId: r.sdc_id, accessMode: r.access_mode, createdAtMs: r.created_at_ms });
const deletion = (r: DeletionRow): VolumeDeletion => ({
  id: r.id, volumeId: r.volume_id, volumeName: r.volume_name, volumeTreeId: r.volume_tree_id, storagePoolId: r.pool_id,
  sizeBytes: r.size_bytes, state: r.state, createdAtMs: r.created_at_ms, doneAtMs: r.done_at_ms,
});

/** All SQL of volumes, volume trees, mappings and pending deletions. */
export class VolumeRepo extends Repo {
  list(filter: { poolId?: number } = {}): Volume[] {
    const rows = filter.poolId === undefined
      ? this.stmt<[], VolumeRow>('SELECT * FROM volumes ORDER BY id').all()
      : this.stmt<[number], VolumeRow>('SELECT * FROM volumes WHERE pool_id = ? ORDER BY id').all(filter.poolId);
    return rows.map(volume);
  }
  get(id: number): Volume | undefined {
    const r = this.stmt<[number], VolumeRow>('SELECT * FROM volumes WHERE id = ?').get(id);
    return r && volume(r);
  }
  getByName(name: string): Volume | undefined {
    const r = this.stmt<[string], VolumeRow>('SELECT * FROM volumes WHERE name = ?').get(name);
    return r && volume(r);
  }
  insert(v: { name: string; storagePoolId: number; sizeBytes: number; provisioning: Provisioning }, nowMs: number): number {
    const treeId = Number(this.stmt('INSERT INTO volume_trees (pool_id, created_at_ms) VALUES (?, ?)').run(v.storagePoolId, nowMs).lastInsertRowid);
    return Number(this.stmt(`INSERT INTO volumes (name, pool_id, volume_tree_id, size_bytes, provisioning, created_at_ms)
      VALUES (?, ?, ?, ?, ?, ?)`).run(v.name, v.storagePoolId, treeId, v.sizeBytes, v.provisioning, nowMs).lastInsertRowid);
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
    if (filter.state !== undefined) { where.push('state = ?'); args.push(filter.state); }
    if (filter.poolId !== undefined) { where.push('pool_id = ?'); args.push(filter.poolId); }
    const sql = `SELECT * FROM volume_deletions${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id`;
    return this.stmt<unknown[], DeletionRow>(sql).all(...args).map(deletion);
  }
  getDeletion(id: number): VolumeDeletion | undefined {
    const r = this.stmt<[number], DeletionRow>('SELECT * FROM volume_deletions WHERE id = ?').get(id);
    return r && deletion(r);
  }
  markDeletionDone(id: number, nowMs: number): void {
    this.stmt("UPDATE volume_deletions SET state = 'done', done_at_ms = ? WHERE id = ?").run(nowMs, id);
  }
}
