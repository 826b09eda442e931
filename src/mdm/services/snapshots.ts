/**
 * Snapshots, clones, revert, consistency groups and snapshot policies
 * (docs/snapshots.md). A snapshot is a read-only volume row pointing at the
 * layer its volume wrote until then; the volume goes on in a new layer on top
 * of it. Changing which layer a mapped volume writes needs the SDCs that map
 * it to agree on one cut: they are quiesced (writes paused, in-flight writes
 * drained), the MDM commits, SDSs forget their cached volume -> layer answers,
 * and the SDCs resume on the new layers.
 */
import { PflexError } from '../../shared/errors.js';
import { tx, type Db } from '../db.js';
import type { PolicyRepo, SnapshotPolicy } from '../repos/policy-repo.js';
import type { TopologyRepo } from '../repos/topology-repo.js';
import type { Volume, VolumeRepo } from '../repos/volume-repo.js';
import type { MdmConfig } from '../config.js';
import type { Clock, MdmEvents } from './events.js';
import type { LayerControl, VolumeLayer } from './layer-control.js';
import type { ControlEndpoint } from './rebuild-control.js';
import { badRequest, conflict, notFound } from './topology.js';
import type { VolumeService, VolumeView } from './volumes.js';

export interface SnapshotItem { volumeId: number; name: string }
export interface PolicyInput { name: string; volumeId: number; intervalMs: number; retain: number }

export class SnapshotService {
  /** Layer changes run one at a time: two cuts of one volume must not interleave their quiesce/resume. */
  private serial: Promise<unknown> = Promise.resolve();
  private ticking: Promise<void> | null = null;

  constructor(
    private readonly db: Db,
    private readonly repo: VolumeRepo,
    private readonly policies: PolicyRepo,
    private readonly topoRepo: TopologyRepo,
    private readonly volumes: VolumeService,
    private readonly control: LayerControl,
    private readonly config: MdmConfig,
    private readonly clock: Clock,
    private readonly events: MdmEvents,
  ) {}

  /**
   * Snapshots of one or several volumes at one cut (several = a consistency
   * group: every snapshot shares a group id). Each volume goes on writing a
   * new layer whose parent is the frozen one.
   */
  create(items: SnapshotItem[], opts: { policyId?: number } = {}): Promise<VolumeView[]> {
    if (items.length === 0) return Promise.reject(badRequest('no volume to snapshot'));
    return this.exclusive(async () => {
      const vols = this.validate(items);
      const group = items.length > 1 ? `cg-${this.clock()}-${vols.map((v) => v.id).join('-')}` : null;
      return this.cut(vols, () => {
        const now = this.clock();
        const ids = vols.map((was, i) => {
          const v = this.volumes.must(was.id); // as of now: deleted or changed while the SDCs were quiesced?
          const fresh = this.repo.insertLayer(v.volumeTreeId, v.layerId, now);
          this.repo.setLayer(v.id, fresh);
          return this.repo.insert({
            name: items[i]!.name, storagePoolId: v.storagePoolId, sizeBytes: v.sizeBytes, provisioning: 'thin', kind: 'snapshot',
            treeId: v.volumeTreeId, layerId: v.layerId, sourceVolumeId: v.id, snapshotGroup: group, policyId: opts.policyId ?? null,
          }, now);
        });
        return ids.map((id) => this.volumes.get(id));
      });
    });
  }

  /** A new writable volume on top of a snapshot's layer (same tree, so its chunks share the snapshot's PGs). */
  clone(snapshotId: number, name: string): VolumeView {
    const v = tx(this.db, () => {
      const s = this.volumes.must(snapshotId);
      if (s.kind !== 'snapshot') throw conflict(`volume ${snapshotId} is not a snapshot: snapshot it first, then clone the snapshot`);
      if (this.repo.getByName(name)) throw conflict(`volume "${name}" already exists`);
      const now = this.clock();
      const layer = this.repo.insertLayer(s.volumeTreeId, s.layerId, now);
      return this.volumes.get(this.repo.insert({
        name, storagePoolId: s.storagePoolId, sizeBytes: s.sizeBytes, provisioning: 'thin', kind: 'volume',
        treeId: s.volumeTreeId, layerId: layer, sourceVolumeId: s.id,
      }, now));
    });
    this.events.emit('poolUsage', { poolId: v.storagePoolId });
    return v;
  }

  /**
   * The volume's content becomes the snapshot's: it gets a new empty layer
   * on top of the snapshot's layer; its old layer is freed unless something
   * else needs it.
   */
  revert(volumeId: number, snapshotId: number): Promise<VolumeView> {
    return this.exclusive(async () => {
      const v = this.volumes.must(volumeId);
      const s = this.volumes.must(snapshotId);
      if (v.kind !== 'volume') throw conflict(`volume ${volumeId} is a snapshot: only a volume can be reverted`);
      if (s.kind !== 'snapshot' || s.volumeTreeId !== v.volumeTreeId) throw conflict(`volume ${snapshotId} is not a snapshot of volume ${volumeId}'s tree`);
      const [view] = await this.cut([v], () => {
        const cur = this.volumes.must(volumeId);
        const layer = this.repo.insertLayer(cur.volumeTreeId, s.layerId, this.clock());
        this.repo.setLayer(cur.id, layer);
        this.volumes.releaseRow(cur);
        return [this.volumes.get(cur.id)];
      });
      return view!;
    });
  }

  // --- policies ----------------------------------------------------------------

  listPolicies(): SnapshotPolicy[] { return this.policies.list(); }
  getPolicy(id: number): SnapshotPolicy {
    const p = this.policies.get(id);
    if (!p) throw notFound(`no snapshot policy ${id}`);
    return p;
  }
  createPolicy(input: PolicyInput): SnapshotPolicy {
    return tx(this.db, () => {
      const v = this.volumes.must(input.volumeId);
      if (v.kind !== 'volume') throw conflict(`volume ${v.id} is a snapshot: policies snapshot volumes`);
      if (this.policies.getByName(input.name)) throw conflict(`snapshot policy "${input.name}" already exists`);
      checkPolicy(input);
      return this.policies.get(this.policies.insert(input, this.clock()))!;
    });
  }
  updatePolicy(id: number, p: { intervalMs: number; retain: number }): SnapshotPolicy {
    return tx(this.db, () => {
      this.getPolicy(id);
      checkPolicy(p);
      this.policies.update(id, p);
      return this.getPolicy(id);
    });
  }
  deletePolicy(id: number): void {
    tx(this.db, () => {
      this.getPolicy(id);
      this.policies.delete(id);
    });
  }

  /**
   * One round of background work: due policies take their snapshot and
   * prune beyond retention (the layers that frees are reclaimed on the SDSs
   * by the reclaim service, src/mdm/services/reclaim.ts). The server calls it
   * every snapshotTickMs; tests call it with their clock.
   */
  tick(): Promise<void> {
    this.ticking ??= this.doTick().finally(() => { this.ticking = null; });
    return this.ticking;
  }

  private async doTick(): Promise<void> {
    for (const p of this.policies.list()) {
      const now = this.clock();
      if (p.lastRunMs !== null && now - p.lastRunMs < p.intervalMs) continue;
      await this.runPolicy(p, now);
    }
  }

  private async runPolicy(p: SnapshotPolicy, now: number): Promise<void> {
    let error: string | null = null;
    try {
      const v = this.volumes.must(p.volumeId);
      await this.create([{ volumeId: v.id, name: `${p.name}-${now}` }], { policyId: p.id });
      const made = this.repo.list({ policyId: p.id, kind: 'snapshot' });
      for (const old of made.slice(0, Math.max(0, made.length - p.retain))) {
        if (this.repo.mappings(old.id).length > 0) continue; // a mapped snapshot is in use: kept past retention
        this.volumes.delete(old.id, false);
      }
    } catch (err) {
      error = (err as Error).message;
    }
    if (this.policies.get(p.id)) this.policies.recordRun(p.id, now, error);
  }

  // --- the cut -------------------------------------------------------------------

  private validate(items: SnapshotItem[]): Volume[] {
    const names = new Set<string>();
    const ids = new Set<number>();
    return items.map((it) => {
      const v = this.volumes.must(it.volumeId);
      if (v.kind !== 'volume') throw conflict(`volume ${v.id} is a snapshot: it is frozen already`);
      if (ids.has(v.id)) throw badRequest(`volume ${v.id} is listed twice`);
      if (names.has(it.name) || this.repo.getByName(it.name)) throw conflict(`volume "${it.name}" already exists`);
      ids.add(v.id);
      names.add(it.name);
      return v;
    });
  }

  /**
   * Quiesces every SDC that maps one of the volumes (a DOWN SDC issues no
   * IO and is skipped), commits, has the SDSs forget the old layers, resumes.
   * A live SDC that cannot be quiesced fails the whole cut, before any change.
   */
  private async cut(vols: Volume[], commit: () => VolumeView[]): Promise<VolumeView[]> {
    const ids = vols.map((v) => v.id);
    const sdcs = this.mappedSdcs(ids);
    const held: Array<{ ep: ControlEndpoint; volumeIds: number[] }> = [];
    const quiesced = await Promise.allSettled(sdcs.map(async (s) => {
      await this.control.quiesce(s.ep, s.volumeIds, this.config.snapshotQuiesceHoldMs);
      held.push(s);
    }));
    const failed = quiesced.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.allSettled(held.map((s) => this.control.resume(s.ep, s.volumeIds.map((id) => ({ id, layerId: this.volumes.must(id).layerId })))));
      throw new PflexError('PFLEX_ERR_UNAVAILABLE', `an SDC mapping the volumes could not be quiesced: ${(failed.reason as Error).message}`);
    }
    let views: VolumeView[];
    try {
      views = tx(this.db, commit);
    } finally {
      // Whatever happened, SDSs must not keep answering with an old layer, and SDCs must write again.
      const pools = new Set(vols.map((v) => v.storagePoolId));
      const sdss = [...pools].flatMap((p) => this.topoRepo.listSds({ poolId: p })).filter((s) => s.state !== 'DOWN' && s.controlPort !== null);
      await Promise.allSettled(sdss.map((s) => this.control.forget({ address: s.address, controlPort: s.controlPort! }, ids)));
      await Promise.allSettled(held.map((s) => this.control.resume(s.ep, s.volumeIds.map((id): VolumeLayer => ({ id, layerId: this.volumes.must(id).layerId })))));
    }
    for (const p of new Set(vols.map((v) => v.storagePoolId))) this.events.emit('poolUsage', { poolId: p });
    return views;
  }

  private mappedSdcs(volumeIds: number[]): Array<{ ep: ControlEndpoint; volumeIds: number[] }> {
    const bySdc = new Map<number, number[]>();
    for (const id of volumeIds) {
      for (const m of this.repo.mappings(id)) {
        const list = bySdc.get(m.sdcId) ?? [];
        list.push(id);
        bySdc.set(m.sdcId, list);
      }
    }
    const out: Array<{ ep: ControlEndpoint; volumeIds: number[] }> = [];
    for (const [sdcId, ids] of bySdc) {
      const sdc = this.topoRepo.getSdc(sdcId);
      if (!sdc || sdc.state === 'DOWN') continue;
      if (!sdc.address || sdc.controlPort === null) {
        throw new PflexError('PFLEX_ERR_UNAVAILABLE', `SDC ${sdc.name} maps volume ${ids.join(', ')} but registered no control port: it cannot be quiesced`);
      }
      out.push({ ep: { address: sdc.address, controlPort: sdc.controlPort }, volumeIds: ids });
    }
    return out;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn, fn);
    this.serial = run.catch(() => undefined);
    return run;
  }
}

function checkPolicy(p: { intervalMs: number; retain: number }): void {
  if (p.intervalMs < 1000) throw badRequest('a snapshot policy runs at most once a second (intervalMs >= 1000)');
  if (p.retain < 1) throw badRequest('a snapshot policy retains at least one snapshot');
}
