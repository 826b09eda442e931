import { Repo } from '../db.js';

export type ComponentState = 'ACTIVE' | 'STALE' | 'DOWN';
export type Provisioning = 'thin' | 'thick';

export interface ProtectionDomain { id: number; name: string; createdAtMs: number }

export interface StoragePool {
  id: number;
  protectionDomainId: number;
  name: string;
  replicationFactor: 2 | 3;
  chunkBytes: number;
  pgCount: number;
  defaultProvisioning: Provisioning;
  capacityHighPct: number;
  capacityCriticalPct: number;
  mapEpoch: number;
  createdAtMs: number;
}

export interface FaultSet { id: number; protectionDomainId: number; name: string; createdAtMs: number }

export interface Sds {
  id: number;
  name: string;
  protectionDomainId: number;
  storagePoolId: number;
  faultSetId: number | null;
  address: string;
  dataPort: number;
  controlPort: number | null;
  mgmtPort: number | null;
  capacityBytes: number;
  usedBytes: number;
  state: ComponentState;
  lastHeartbeatMs: number;
  createdAtMs: number;
}

export interface Sdc {
  id: number;
  guid: string;
  name: string;
  address: string | null;
  state: ComponentState;
  lastHeartbeatMs: number;
  createdAtMs: number;
  /** Its control listener (the MDM quiesces it around snapshots); null when it did not say. */
  controlPort: number | null;
}

interface PoolRow {
  id: number; pd_id: number; name: string; replication_factor: number; chunk_bytes: number; pg_count: number;
  default_provisioning: Provisioning; capacity_high_pct: number; capacity_critical_pct: number; map_epoch: number; created_at_ms: number;
}
interface SdsRow {
  id: number; name: string; pd_id: number; pool_id: number; fault_set_id: number | null; address: string; data_port: number;
  control_port: number | null; mgmt_port: number | null; capacity_bytes: number; used_bytes: number; state: ComponentState;
  last_heartbeat_ms: number; created_at_ms: number;
}
interface SdcRow { id: number; guid: string; name: string; address: string | null; state: ComponentState; last_heartbeat_ms: number; created_at_ms: number; control_port: number | null }
interface ParentRow { id: number; pd_id: number; name: string; created_at_ms: number }

const pool = (r: PoolRow): StoragePool => ({
  id: r.id, protectionDomainId: r.pd_id, name: r.name, replicationFactor: r.replication_factor as 2 | 3, chunkBytes: r.chunk_bytes,
  pgCount: r.pg_count, defaultProvisioning: r.default_provisioning, capacityHighPct: r.capacity_high_pct,
  capacityCriticalPct: r.capacity_critical_pct, mapEpoch: r.map_epoch, createdAtMs: r.created_at_ms,
});
const sds = (r: SdsRow): Sds => ({
  id: r.id, name: r.name, protectionDomainId: r.pd_id, storagePoolId: r.pool_id, faultSetId: r.fault_set_id, address: r.address,
  dataPort: r.data_port, controlPort: r.control_port, mgmtPort: r.mgmt_port, capacityBytes: r.capacity_bytes, usedBytes: r.used_bytes,
  state: r.state, lastHeartbeatMs: r.last_heartbeat_ms, createdAtMs: r.created_at_ms,
});
const sdc = (r: SdcRow): Sdc => ({
  id: r.id, guid: r.guid, name: r.name, address: r.address, state: r.state, lastHeartbeatMs: r.last_heartbeat_ms, createdAtMs: r.created_at_ms,
  controlPort: r.control_port,
});
const faultSet = (r: ParentRow): FaultSet => ({ id: r.id, protectionDomainId: r.pd_id, name: r.name, createdAtMs: r.created_at_ms });

export interface NewPool {
  protectionDomainId: number; name: string; replicationFactor: number; chunkBytes: number; pgCount: number;
  defaultProvisioning: Provisioning; capacityHighPct: number; capacityCriticalPct: number;
}
export interface NewSds {
  name: string; protectionDomainId: number; storagePoolId: number; faultSetId: number | null; address: string; dataPort: number;
  controlPort: number | null; mgmtPort: number | null; capacityBytes: number;
}

/**
 * All SQL of protection domains, pools, fault sets, SDS and SDC.
 *
 * Heartbeat times are kept in memory (noteSdsBeat/noteSdcBeat) and written
 * in one batch by flushBeats() on each health tick: a write transaction
 * per beat cost more than the rest of the request. Reads through this repo
 * see the newest beat; a crash loses at most one tick of beat times, which
 * does not matter because silence is counted from the MDM start anyway.
 */
export class TopologyRepo extends Repo {
  private readonly sdsBeats = new Map<number, number>();
  private readonly sdcBeats = new Map<number, number>();
  private readonly withSdsBeat = (r: SdsRow): Sds => {
    const s = sds(r);
    const beat = this.sdsBeats.get(r.id);
    if (beat !== undefined && beat > s.lastHeartbeatMs) s.lastHeartbeatMs = beat;
    return s;
  };
  private readonly withSdcBeat = (r: SdcRow): Sdc => {
    const s = sdc(r);
    const beat = this.sdcBeats.get(r.id);
    if (beat !== undefined && beat > s.lastHeartbeatMs) s.lastHeartbeatMs = beat;
    return s;
  };

  // protection domains
  listPds(): ProtectionDomain[] {
    return this.stmt<[], { id: number; name: string; created_at_ms: number }>('SELECT * FROM protection_domains ORDER BY id').all()
      .map((r) => ({ id: r.id, name: r.name, createdAtMs: r.created_at_ms }));
  }
  getPd(id: number): ProtectionDomain | undefined {
    return this.listPdsWhere('id = ?', id)[0];
  }
  getPdByName(name: string): ProtectionDomain | undefined {
    return this.listPdsWhere('name = ?', name)[0];
  }
  private listPdsWhere(where: string, arg: unknown): ProtectionDomain[] {
    return this.stmt<[unknown], { id: number; name: string; created_at_ms: number }>(`SELECT * FROM protection_domains WHERE ${where}`)
      .all(arg).map((r) => ({ id: r.id, name: r.name, createdAtMs: r.created_at_ms }));
  }
  insertPd(name: string, nowMs: number): number {
    return Number(this.stmt('INSERT INTO protection_domains (name, created_at_ms) VALUES (?, ?)').run(name, nowMs).lastInsertRowid);
  }
  renamePd(id: number, name: string): void {
    this.stmt('UPDATE protection_domains SET name = ? WHERE id = ?').run(name, id);
  }
  deletePd(id: number): void {
    this.stmt('DELETE FROM protection_domains WHERE id = ?').run(id);
  }
  countPdChildren(id: number): number {
    const row = this.stmt<[number, number, number], { n: number }>(
      `SELECT (SELECT COUNT(*) FROM storage_pools WHERE pd_id = ?) + (SELECT COUNT(*) FROM fault_sets WHERE pd_id = ?)
        + (SELECT COUNT(*) FROM sds WHERE pd_id = ?) AS n`).get(id, id, id);
    return row?.n ?? 0;
  }

  // storage pools
  listPools(pdId?: number): StoragePool[] {
    const rows = pdId === undefined
      ? this.stmt<[], PoolRow>('SELECT * FROM storage_pools ORDER BY id').all()
      : this.stmt<[number], PoolRow>('SELECT * FROM storage_pools WHERE pd_id = ? ORDER BY id').all(pdId);
    return rows.map(pool);
  }
  getPool(id: number): StoragePool | undefined {
    const r = this.stmt<[number], PoolRow>('SELECT * FROM storage_pools WHERE id = ?').get(id);
    return r && pool(r);
  }
  getPoolByName(pdId: number, name: string): StoragePool | undefined {
    const r = this.stmt<[number, string], PoolRow>('SELECT * FROM storage_pools WHERE pd_id = ? AND name = ?').get(pdId, name);
    return r && pool(r);
  }
  insertPool(p: NewPool, nowMs: number): number {
    return Number(this.stmt(
      `INSERT INTO storage_pools (pd_id, name, replication_factor, chunk_bytes, pg_count, default_provisioning,
        capacity_high_pct, capacity_critical_pct, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(p.protectionDomainId, p.name, p.replicationFactor, p.chunkBytes, p.pgCount, p.defaultProvisioning,
      p.capacityHighPct, p.capacityCriticalPct, nowMs).lastInsertRowid);
  }
  updatePool(id: number, p: { name: string; defaultProvisioning: Provisioning; capacityHighPct: number; capacityCriticalPct: number }): void {
    this.stmt(`UPDATE storage_pools SET name = ?, default_provisioning = ?, capacity_high_pct = ?, capacity_critical_pct = ?
      WHERE id = ?`).run(p.name, p.defaultProvisioning, p.capacityHighPct, p.capacityCriticalPct, id);
  }
  setPoolEpoch(id: number, epoch: number): void {
    this.changed();
    this.stmt('UPDATE storage_pools SET map_epoch = ? WHERE id = ?').run(epoch, id);
  }
  deletePool(id: number): void {
    this.changed();
    this.stmt('DELETE FROM layers WHERE tree_id IN (SELECT id FROM volume_trees WHERE pool_id = ?)').run(id);
    this.stmt('DELETE FROM volume_trees WHERE pool_id = ?').run(id);
    this.stmt('DELETE FROM storage_pools WHERE id = ?').run(id);
  }
  countPoolChildren(id: number): { volumes: number; sds: number } {
    const row = this.stmt<[number, number], { volumes: number; sds: number }>(
      'SELECT (SELECT COUNT(*) FROM volumes WHERE pool_id = ?) AS volumes, (SELECT COUNT(*) FROM sds WHERE pool_id = ?) AS sds').get(id, id);
    return row ?? { volumes: 0, sds: 0 };
  }
  poolUsage(id: number): { totalBytes: number; usedBytes: number; reservedBytes: number; provisionedBytes: number } {
    const row = this.stmt<[number, number, number, number], { total: number; used: number; reserved: number; provisioned: number }>(
      `SELECT (SELECT COALESCE(SUM(capacity_bytes), 0) FROM sds WHERE pool_id = ?) AS total,
              (SELECT COALESCE(SUM(used_bytes), 0) FROM sds WHERE pool_id = ?) AS used,
              (SELECT COALESCE(SUM(size_bytes), 0) FROM volumes WHERE pool_id = ? AND provisioning = 'thick') AS reserved,
              (SELECT COALESCE(SUM(size_bytes), 0) FROM volumes WHERE pool_id = ?) AS provisioned`).get(id, id, id, id);
    return { totalBytes: row?.total ?? 0, usedBytes: row?.used ?? 0, reservedBytes: row?.reserved ?? 0, provisionedBytes: row?.provisioned ?? 0 };
  }

  // fault sets
  listFaultSets(pdId?: number): FaultSet[] {
    const rows = pdId === undefined
      ? this.stmt<[], ParentRow>('SELECT * FROM fault_sets ORDER BY id').all()
      : this.stmt<[number], ParentRow>('SELECT * FROM fault_sets WHERE pd_id = ? ORDER BY id').all(pdId);
    return rows.map(faultSet);
  }
  getFaultSet(id: number): FaultSet | undefined {
    const r = this.stmt<[number], ParentRow>('SELECT * FROM fault_sets WHERE id = ?').get(id);
    return r && faultSet(r);
  }
  getFaultSetByName(pdId: number, name: string): FaultSet | undefined {
    const r = this.stmt<[number, string], ParentRow>('SELECT * FROM fault_sets WHERE pd_id = ? AND name = ?').get(pdId, name);
    return r && faultSet(r);
  }
  insertFaultSet(pdId: number, name: string, nowMs: number): number {
    return Number(this.stmt('INSERT INTO fault_sets (pd_id, name, created_at_ms) VALUES (?, ?, ?)').run(pdId, name, nowMs).lastInsertRowid);
  }
  deleteFaultSet(id: number): void {
    this.stmt('DELETE FROM fault_sets WHERE id = ?').run(id);
  }
  countFaultSetSds(id: number): number {
    return this.stmt<[number], { n: number }>('SELECT COUNT(*) AS n FROM sds WHERE fault_set_id = ?').get(id)?.n ?? 0;
  }

  // SDS
  listSds(filter: { poolId?: number; pdId?: number } = {}): Sds[] {
    if (filter.poolId !== undefined) return this.stmt<[number], SdsRow>('SELECT * FROM sds WHERE pool_id = ? ORDER BY id').all(filter.poolId).map(this.withSdsBeat);
    if (filter.pdId !== undefined) return this.stmt<[number], SdsRow>('SELECT * FROM sds WHERE pd_id = ? ORDER BY id').all(filter.pdId).map(this.withSdsBeat);
    return this.stmt<[], SdsRow>('SELECT * FROM sds ORDER BY id').all().map(this.withSdsBeat);
  }
  getSds(id: number): Sds | undefined {
    const r = this.stmt<[number], SdsRow>('SELECT * FROM sds WHERE id = ?').get(id);
    return r && this.withSdsBeat(r);
  }
  getSdsByName(name: string): Sds | undefined {
    const r = this.stmt<[string], SdsRow>('SELECT * FROM sds WHERE name = ?').get(name);
    return r && this.withSdsBeat(r);
  }
  insertSds(s: NewSds, nowMs: number): number {
    this.changed();
    return Number(this.stmt(
      `INSERT INTO sds (name, pd_id, pool_id, fault_set_id, address, data_port, control_port, mgmt_port, capacity_bytes,
        state, last_heartbeat_ms, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ?)`,
    ).run(s.name, s.protectionDomainId, s.storagePoolId, s.faultSetId, s.address, s.dataPort, s.controlPort, s.mgmtPort,
      s.capacityBytes, nowMs, nowMs).lastInsertRowid);
  }
  updateSdsEndpoint(id: number, s: { address: string; dataPort: number; controlPort: number | null; mgmtPort: number | null; capacityBytes: number }): void {
    this.changed();
    this.stmt('UPDATE sds SET address = ?, data_port = ?, control_port = ?, mgmt_port = ?, capacity_bytes = ? WHERE id = ?')
      .run(s.address, s.dataPort, s.controlPort, s.mgmtPort, s.capacityBytes, id);
  }
  deleteSds(id: number): void {
    this.changed();
    this.stmt('DELETE FROM sds WHERE id = ?').run(id);
    this.sdsBeats.delete(id);
  }
  sdsHeartbeat(id: number, nowMs: number, usedBytes: number, capacityBytes: number | undefined): void {
    if (capacityBytes === undefined) {
      this.stmt('UPDATE sds SET last_heartbeat_ms = ?, used_bytes = ? WHERE id = ?').run(nowMs, usedBytes, id);
    } else {
      this.stmt('UPDATE sds SET last_heartbeat_ms = ?, used_bytes = ?, capacity_bytes = ? WHERE id = ?').run(nowMs, usedBytes, capacityBytes, id);
    }
  }
  setSdsState(id: number, state: ComponentState): void {
    this.changed();
    this.stmt('UPDATE sds SET state = ? WHERE id = ?').run(state, id);
  }

  // SDC
  listSdcs(): Sdc[] {
    return this.stmt<[], SdcRow>('SELECT * FROM sdcs ORDER BY id').all().map(this.withSdcBeat);
  }
  getSdc(id: number): Sdc | undefined {
    const r = this.stmt<[number], SdcRow>('SELECT * FROM sdcs WHERE id = ?').get(id);
    return r && this.withSdcBeat(r);
  }
  getSdcByGuid(guid: string): Sdc | undefined {
    const r = this.stmt<[string], SdcRow>('SELECT * FROM sdcs WHERE guid = ?').get(guid);
    return r && this.withSdcBeat(r);
  }
  getSdcByName(name: string): Sdc | undefined {
    const r = this.stmt<[string], SdcRow>('SELECT * FROM sdcs WHERE name = ?').get(name);
    return r && this.withSdcBeat(r);
  }
  insertSdc(guid: string, name: string, address: string | null, nowMs: number, controlPort: number | null = null): number {
    return Number(this.stmt(`INSERT INTO sdcs (guid, name, address, state, last_heartbeat_ms, created_at_ms, control_port)
      VALUES (?, ?, ?, 'ACTIVE', ?, ?, ?)`).run(guid, name, address, nowMs, nowMs, controlPort).lastInsertRowid);
  }
  updateSdc(id: number, name: string, address: string | null, controlPort?: number | null): void {
    if (controlPort === undefined) this.stmt('UPDATE sdcs SET name = ?, address = ? WHERE id = ?').run(name, address, id);
    else this.stmt('UPDATE sdcs SET name = ?, address = ?, control_port = ? WHERE id = ?').run(name, address, controlPort, id);
  }
  deleteSdc(id: number): void {
    this.stmt('DELETE FROM sdcs WHERE id = ?').run(id);
    this.sdcBeats.delete(id);
  }
  sdcHeartbeat(id: number, nowMs: number): void {
    this.stmt('UPDATE sdcs SET last_heartbeat_ms = ? WHERE id = ?').run(nowMs, id);
  }
  setSdcState(id: number, state: ComponentState): void {
    this.stmt('UPDATE sdcs SET state = ? WHERE id = ?').run(state, id);
  }

  /** SDSs not DOWN whose last beat is at or before `beatBeforeMs` (call after flushBeats()). */
  listSilentSds(beatBeforeMs: number): Sds[] {
    return this.stmt<[number], SdsRow>("SELECT * FROM sds WHERE state != 'DOWN' AND last_heartbeat_ms <= ? ORDER BY id")
      .all(beatBeforeMs).map(this.withSdsBeat);
  }
  /** SDCs not DOWN whose last beat is at or before `beatBeforeMs` (call after flushBeats()). */
  listSilentSdcs(beatBeforeMs: number): Sdc[] {
    return this.stmt<[number], SdcRow>("SELECT * FROM sdcs WHERE state != 'DOWN' AND last_heartbeat_ms <= ? ORDER BY id")
      .all(beatBeforeMs).map(this.withSdcBeat);
  }

  // heartbeat times kept in memory until the next flush
  noteSdsBeat(id: number, nowMs: number): void {
    this.sdsBeats.set(id, nowMs);
  }
  noteSdcBeat(id: number, nowMs: number): void {
    this.sdcBeats.set(id, nowMs);
  }
  /** Writes the beats noted since the last flush (call inside a transaction); returns how many. */
  flushBeats(): number {
    const n = this.sdsBeats.size + this.sdcBeats.size;
    const sdsStmt = this.stmt<[number, number]>('UPDATE sds SET last_heartbeat_ms = MAX(last_heartbeat_ms, ?) WHERE id = ?');
    for (const [id, ms] of this.sdsBeats) sdsStmt.run(ms, id);
    const sdcStmt = this.stmt<[number, number]>('UPDATE sdcs SET last_heartbeat_ms = MAX(last_heartbeat_ms, ?) WHERE id = ?');
    for (const [id, ms] of this.sdcBeats) sdcStmt.run(ms, id);
    this.sdsBeats.clear();
    this.sdcBeats.clear();
    return n;
  }
}
