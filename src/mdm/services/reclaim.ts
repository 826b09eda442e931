/**
 * Reclaim: the MDM removes from the SDSs the data that no volume can read
 * any more, in the background, with progress kept in mdm.db (so an MDM
 * restart resumes where it was):
 *
 *   - a deleted volume (volume_deletions): once no volume uses its tree any
 *     more, every SDS of the pool is told DELETE /trees/:tree (the tree is
 *     dead there: no IO or rebuild image of it is accepted again, then its
 *     chunks are removed);
 *   - a freed snapshot layer (layer_deletions: no volume row or child layer
 *     needs it any more; VolumeService.releaseRow): every SDS of the pool is
 *     told DELETE /trees/:tree/layers/:layer (the layer is dead there, then
 *     its chunks are removed);
 *   - a shrunk volume (volume_trims): every SDS of the pool is told to
 *     remove the tree's data past the new end, so a later expand reads zeros.
 *
 * A task is done when every SDS of the pool has confirmed; an SDS that is
 * DOWN or does not answer is tried again on a later tick.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { MdmConfig } from '../config.js';
import { tx, type Db } from '../db.js';
import type { ReclaimKind, ReclaimRepo } from '../repos/reclaim-repo.js';
import type { Sds, TopologyRepo } from '../repos/topology-repo.js';
import type { Clock, MdmEvents } from './events.js';
import type { ControlEndpoint, ReclaimResult, SdsReclaim } from './rebuild-control.js';

interface Task {
  kind: ReclaimKind;
  id: number;
  poolId: number;
  run(ep: ControlEndpoint): Promise<ReclaimResult>;
}

export class ReclaimService {
  logger: FastifyBaseLogger | undefined;
  private ticking = false;

  constructor(
    private readonly db: Db,
    private readonly repo: ReclaimRepo,
    private readonly topo: TopologyRepo,
    private readonly control: SdsReclaim,
    private readonly config: MdmConfig,
    private readonly clock: Clock,
    private readonly events: MdmEvents,
  ) {}

  /** One pass over the pending tasks (the server runs it every reclaimTickMs; tests may call it). */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const tasks: Task[] = [
        ...this.repo.reclaimableDeletions().map((d): Task => ({
          kind: 'deletion', id: d.id, poolId: d.poolId, run: (ep) => this.control.reclaimTree(ep, d.treeId),
        })),
        ...this.repo.listLayerDeletions({ state: 'pending' }).map((l): Task => ({
          kind: 'layer', id: l.id, poolId: l.storagePoolId, run: (ep) => this.control.dropLayer(ep, l.volumeTreeId, l.layerId),
        })),
        ...this.repo.listTrims({ state: 'pending' }).map((t): Task => ({
          kind: 'trim', id: t.id, poolId: t.storagePoolId, run: (ep) => this.control.trimTree(ep, t.volumeTreeId, t.fromBytes, t.chunkBytes),
        })),
      ];
      // Tasks one after the other (each fans out to its pool's SDSs): reclaim stays a background load.
      for (const task of tasks) await this.runTask(task);
    } finally {
      this.ticking = false;
    }
  }

  private async runTask(task: Task): Promise<void> {
    const confirmed = this.repo.confirmedSds(task.kind, task.id);
    const todo = this.topo.listSds({ poolId: task.poolId }).filter((s) => !confirmed.has(s.id));
    await Promise.all(todo.filter(reachable).map(async (s) => {
      try {
        const freed = await task.run({ address: s.address, controlPort: s.controlPort! });
        this.repo.confirm(task.kind, task.id, s.id, freed, this.clock());
      } catch (err) {
        const message = `SDS ${s.name}: ${(err as Error).message}`;
        this.repo.setError(task.kind, task.id, message);
        this.logger?.warn({ task: `${task.kind}:${task.id}`, sds: s.name, err: (err as Error).message }, 'reclaim call failed; retried later');
      }
    }));
    // Done only when every SDS of the pool (now) has confirmed: one that joined meanwhile is asked too.
    const done = tx(this.db, () => {
      const now = this.repo.confirmedSds(task.kind, task.id);
      if (!this.topo.listSds({ poolId: task.poolId }).every((s) => now.has(s.id))) return false;
      this.repo.markDone(task.kind, task.id, this.clock());
      this.logger?.info({ task: `${task.kind}:${task.id}`, sds: now.size }, 'reclaim done');
      return true;
    });
    if (done) this.events.emit('poolUsage', { poolId: task.poolId });
  }

  /** How often the server runs tick(). */
  get tickMs(): number {
    return this.config.reclaimTickMs;
  }
}

/** A DOWN SDS is not called (it would only time out); it is asked once it is back. */
function reachable(s: Sds): boolean {
  return s.state !== 'DOWN' && s.controlPort !== null;
}
