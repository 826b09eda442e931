/**
 * One seeded simulation run of replication and PG changes: a simulated MDM
 * (real PgMapService), SDSs (real DataServer/PgTable over memory stores), an
 * SDC-like client routing with the real PoolMap, random message delays, and
 * faults confined to "victim" SDSs so that at most one member of every PG is
 * ever hit. At the end the faults heal, the client finishes, and the
 * checkers in checker.ts judge the outcome.
 */
import { pino } from 'pino';
import { Flag, MsgType, Status, statusName, type Frame } from '../dataplane/proto.js';
import type { MdmClient, PgMap } from '../shared/mdm-client.js';
import { PoolMap } from '../sdc/pool-map.js';
import { retryDelayMsMax, retryDelayMsMin, sdsRequestTimeoutMs } from '../sdc/limits.js';
import { mdmCallTimeoutMs } from '../sdc/limits.js';
import { Prng } from './prng.js';
import { Scheduler } from './scheduler.js';
import { Network, NetError } from './network.js';
import { SimMdm } from './mdm.js';
import { frameOf, SimSds, type AcceptedWrite } from './sds-node.js';
import { check, valueOf, type SlotHistory, type Violation } from './checker.js';

export interface SimOptions {
  /** Cluster shape; by default each seed picks one of SHAPES. */
  sdsCount: number;
  pgCount: number;
  replicationFactor: number;
  /** Client writes in a run. */
  writes: number;
  /** Writes in flight at once. */
  concurrency: number;
  /** Faults are injected in [0, faultWindowMs); everything heals then. */
  faultWindowMs: number;
  faults: number;
  /** A crash also loses what the store had not made durable (power loss). */
  powerLoss: boolean;
  /** Mutant: secondaries are reported to have taken forwarded writes they never saw. */
  lyingForwards: boolean;
  /** DataServer's catch-up bound for lagging secondaries (default the real one; 0 = fence at the first EPOCH_AHEAD, the old rule). */
  forwardCatchUpMs?: number;
}

/** Shapes a seed picks from when the caller does not fix one: two and three copies. */
const SHAPES = [
  { sdsCount: 4, pgCount: 6, replicationFactor: 2 },
  { sdsCount: 3, pgCount: 4, replicationFactor: 2 },
  { sdsCount: 5, pgCount: 8, replicationFactor: 3 },
] as const;

export const defaultSimOptions: SimOptions = {
  ...SHAPES[0], writes: 30, concurrency: 4, faultWindowMs: 20_000, faults: 4,
  powerLoss: false, lyingForwards: false,
};

export interface SimResult {
  seed: number;
  violations: Violation[];
  traceHash: string;
  events: number;
  messages: number;
  virtualMs: number;
  faults: Record<string, number>;
  acked: number;
  /** PGs that lost more than one member to fences although faults only ever hit one member per PG (a cascade). */
  cascades: number;
  /** Fences of a secondary whose last answer to a forward was EPOCH_AHEAD / UNKNOWN_PG (its map lagged past the catch-up bound). */
  laggingFenced: number;
  /** PG memberships an SDS lost by registering after an unclean stop (power loss), and those it kept as last member. */
  uncleanFences: number;
  uncleanKept: number;
  /** Every fence, in order ("pg<n>-sds<id>"). */
  fences: string[];
  victims: string[];
  /** Writes accepted by a member the MDM had already removed (harmless, counted). */
  staleMemberWrites: number;
  /** The last events, for a failing seed. */
  tail: string[];
}

const TREE = 7;
const SLOT_BYTES = 1024;
const SLOTS_PER_CHUNK = 4;
const CHUNKS_PER_PG = 2;
const SETTLE_MS = 5_000;
const RUN_MS_MAX = 600_000;
const silent = pino({ level: 'silent' });

export async function runSeed(seed: number, opts: Partial<SimOptions> = {}): Promise<SimResult> {
  const rng = new Prng(seed);
  const shape = opts.sdsCount === undefined ? rng.pick(SHAPES) : {};
  const o = { ...defaultSimOptions, ...shape, ...opts };
  const sched = new Scheduler();
  const net = new Network(sched, rng, { delayMsMin: 0, delayMsMax: rng.pick([2, 20, 200, 2000]) });
  const mdm = new SimMdm({ sdsCount: o.sdsCount, pgCount: o.pgCount, replicationFactor: o.replicationFactor });
  try {
    const accepted: AcceptedWrite[] = [];
    const nodes = new Map<string, SimSds>();
    for (const name of ['mdm', 'sdc', ...mdm.sdsIds.map((id) => `sds${id}`)]) net.addNode(name);
    for (const id of mdm.sdsIds) nodes.set(`sds${id}`, new SimSds(id, sched, net, mdm, (n) => nodes.get(n)!, accepted, { lyingForwards: o.lyingForwards, ...(o.forwardCatchUpMs !== undefined ? { forwardCatchUpMs: o.forwardCatchUpMs } : {}) }));

    const victims = pickVictims(rng, mdm);
    const faults: Record<string, number> = {};
    const down = new Set<string>();
    injectFaults(o, rng, sched, net, mdm, nodes, victims, faults, down);

    const client = new SimClient(sched, net, mdm, nodes);
    const slots = new Map<string, SlotHistory>();
    let started = 0;
    let value = 0;
    const worker = async (): Promise<void> => {
      while (started < o.writes) {
        started++;
        const busy = new Set([...slots.values()].filter((s) => s.busy).map((s) => s.key));
        let slot: SlotHistory | undefined;
        for (let tries = 0; tries < 8 && !slot; tries++) {
          const pg = rng.int(o.pgCount);
          const key = `${pg}/${rng.int(CHUNKS_PER_PG)}/${rng.int(SLOTS_PER_CHUNK)}`;
          if (busy.has(key)) continue;
          slot = slots.get(key) ?? { key, pg, writes: [], busy: false };
          slots.set(key, slot);
        }
        if (!slot) { await sched.sleep(rng.range(1, 50), 'sdc idle'); continue; }
        slot.busy = true;
        const v = ++value;
        const w = { value: v, acked: false };
        slot.writes.push(w);
        w.acked = await client.write(slot, v, rng.chance(0.15));
        slot.busy = false;
        if (rng.chance(0.1)) await client.flush(rng.int(o.pgCount));
        await sched.sleep(rng.range(0, 300), 'sdc think');
      }
    };
    const workers = Array.from({ length: o.concurrency }, () => worker());
    let done = false;
    void Promise.all(workers).then(() => { done = true; });
    // Healed means every SDS is back too: a restarted one has re-registered (and reported an unclean stop).
    await sched.run(RUN_MS_MAX, () => done && sched.nowMs >= o.faultWindowMs && [...nodes.values()].every((n) => n.isRegistered));
    await sched.run(sched.nowMs + SETTLE_MS);
    const violations: Violation[] = done ? [] : [{ invariant: 'liveness', message: 'client writes did not finish', detail: {} }];
    const unregistered = [...nodes.values()].filter((n) => !n.isRegistered).map((n) => n.name);
    if (unregistered.length > 0) violations.push({ invariant: 'liveness', message: `${unregistered.join(', ')} did not re-register after the heal`, detail: {} });
    // Read every slot back through its primary, as a client would after the dust settled.
    const readBack = new Map<string, number | undefined>();
    let readsDone = false;
    void Promise.all([...slots.values()].map(async (s) => { readBack.set(s.key, await client.read(s)); })).then(() => { readsDone = true; });
    await sched.run(sched.nowMs + RUN_MS_MAX, () => readsDone);
    if (!readsDone) violations.push({ invariant: 'liveness', message: 'reads through the primaries did not finish', detail: {} });
    violations.push(...await check({ mdm, nodes, slots: [...slots.values()], accepted, slotBytes: SLOT_BYTES, tree: TREE, down, readBack }));
    const staleMemberWrites = accepted.filter((a) => a.afterFence).length;
    return {
      seed, violations, traceHash: sched.traceHash, events: sched.events, messages: net.messages, virtualMs: sched.nowMs, faults,
      acked: [...slots.values()].reduce((n, s) => n + s.writes.filter((w) => w.acked).length, 0), staleMemberWrites, tail: sched.tail,
      cascades: cascades(mdm),
      laggingFenced: [...nodes.values()].reduce((n, s) => n + s.laggingFences.length, 0), fences: mdm.fences.map((f) => `pg${f.pg}-sds${f.sdsId}`), victims,
      uncleanFences: mdm.uncleanFences.length, uncleanKept: mdm.uncleanKept.length,
    };
  } finally {
    mdm.close();
  }
}

function cascades(mdm: SimMdm): number {
  const lost = new Map<number, Set<number>>();
  for (const f of mdm.fences) {
    let s = lost.get(f.pg);
    if (!s) lost.set(f.pg, (s = new Set()));
    s.add(f.sdsId);
  }
  return [...lost.values()].filter((s) => s.size > 1).length;
}

/** SDSs faults may hit: no two share a PG, so every PG has at most one failing member. */
function pickVictims(rng: Prng, mdm: SimMdm): string[] {
  const ids = [...mdm.sdsIds];
  const chosen: number[] = [];
  const pgs = [...Array(mdm.map().pgCount).keys()].map((pg) => mdm.entry(pg).members);
  for (let i = ids.length - 1; i > 0; i--) { const j = rng.int(i + 1); [ids[i], ids[j]] = [ids[j]!, ids[i]!]; }
  for (const id of ids) {
    if (chosen.length > 0 && rng.chance(0.5)) break;
    if (pgs.every((m) => !m.includes(id) || !chosen.some((c) => m.includes(c)))) chosen.push(id);
  }
  return chosen.map((id) => `sds${id}`);
}

function injectFaults(
  o: SimOptions, rng: Prng, sched: Scheduler, net: Network, mdm: SimMdm, nodes: Map<string, SimSds>,
  victims: string[], faults: Record<string, number>, down: Set<string>,
): void {
  const count = (k: string): void => { faults[k] = (faults[k] ?? 0) + 1; };
  const others = (v: string): string[] => ['mdm', 'sdc', ...nodes.keys()].filter((n) => n !== v);
  for (let i = 0; i < o.faults; i++) {
    const at = rng.int(o.faultWindowMs);
    const victim = rng.pick(victims);
    const kind = rng.pick(['crash', 'partition', 'partition', 'reset', 'fence', 'mdmPartition'] as const);
    const duration = rng.range(50, 12_000);
    sched.at(at, `fault ${kind} ${victim}`, () => {
      const node = nodes.get(victim)!;
      switch (kind) {
        case 'crash': {
          if (!net.isUp(victim)) return;
          count(o.powerLoss ? 'powerLoss' : 'crash');
          net.crash(victim);
          down.add(victim);
          node.crash(o.powerLoss);
          sched.at(Math.min(duration, Math.max(0, o.faultWindowMs - at)), `restart ${victim}`, () => {
            net.restart(victim);
            down.delete(victim);
            node.boot();
          });
          return;
        }
        case 'partition': {
          const peer = rng.pick(others(victim));
          count('partition');
          net.partition(victim, peer);
          sched.at(duration, `heal ${victim}-${peer}`, () => net.heal(victim, peer));
          return;
        }
        case 'mdmPartition': {
          // Any node may lose the MDM for a while: that delays fencing but fails no replica.
          const peer = rng.pick(['sdc', ...nodes.keys()]);
          count('mdmPartition');
          net.partition('mdm', peer);
          sched.at(duration, `heal mdm-${peer}`, () => net.heal('mdm', peer));
          return;
        }
        case 'reset': {
          count('reset');
          net.reset(victim, rng.pick(others(victim)));
          return;
        }
        case 'fence': {
          const pgs = [...Array(mdm.map().pgCount).keys()].map((pg) => mdm.entry(pg)).filter((e) => e.members.includes(node.id) && e.members.length > 1);
          if (pgs.length === 0) return;
          const e = rng.pick(pgs);
          count('fence');
          mdm.fence(e.pg, node.id, e.epoch);
          return;
        }
      }
    });
  }
  // Whatever is still broken heals when the window closes.
  sched.at(o.faultWindowMs, 'heal all', () => {
    net.healAll();
    for (const v of victims) {
      if (net.isUp(v)) continue;
      net.restart(v);
      down.delete(v);
      nodes.get(v)!.boot();
    }
  });
}

/** The SDC side: routes with the real PoolMap, retries like the volume backend. */
class SimClient {
  readonly map: PoolMap;

  constructor(private readonly sched: Scheduler, private readonly net: Network, mdm: SimMdm, private readonly nodes: Map<string, SimSds>) {
    const call = <T>(label: string, fn: () => T): Promise<T> => net.call('sdc', 'mdm', label, mdmCallTimeoutMs, async () => fn());
    const client = {
      getPgMap: (): Promise<PgMap> => call('map', () => structuredClone(mdm.map()) as PgMap),
      fencePgMember: (_pool: number, pg: number, sdsId: number, epoch: number) => call(`fence pg${pg} sds${sdsId}`, () => {
        const r = mdm.fence(pg, sdsId, epoch);
        return structuredClone({ fenced: r.fenced, pg: r.entry, map: r.map });
      }),
    };
    this.map = new PoolMap(mdm.poolId, client as unknown as MdmClient, silent);
  }

  /** Until acknowledged (the SDC gives up after its IO timeout; the simulation keeps trying so replicas can converge). */
  async write(slot: SlotHistory, value: number, fua: boolean): Promise<boolean> {
    const [pg, chunk, index] = slot.key.split('/').map(Number) as [number, number, number];
    const data = slotData(value);
    await this.send(pg, (route) => frameOf(MsgType.WRITE, {
      pgId: pg, epoch: route, volumeId: TREE, treeId: TREE, chunkIndex: chunk, layerId: 0, offset: index * SLOT_BYTES, length: SLOT_BYTES,
      flags: fua ? Flag.FUA : 0,
    }, Buffer.alloc(0), data));
    return true;
  }

  /** A slot read through the PG's primary (the real READ path); the value its bytes name, undefined when torn. */
  async read(slot: SlotHistory): Promise<number | undefined> {
    const [pg, chunk, index] = slot.key.split('/').map(Number) as [number, number, number];
    const reply = await this.send(pg, (epoch) => frameOf(MsgType.READ, {
      pgId: pg, epoch, volumeId: TREE, treeId: TREE, chunkIndex: chunk, layerId: 0, offset: index * SLOT_BYTES, length: SLOT_BYTES, flags: 0,
    }, Buffer.alloc(0), Buffer.alloc(0)), Status.NO_CHUNK);
    return reply.status === Status.NO_CHUNK ? 0 : valueOf(reply.payload);
  }

  async flush(pg: number): Promise<boolean> {
    await this.send(pg, (epoch) => frameOf(MsgType.FLUSH, {
      pgId: pg, epoch, volumeId: TREE, treeId: TREE, chunkIndex: 0, layerId: 0, offset: 0, length: 0, flags: 0,
    }, Buffer.alloc(0), Buffer.alloc(0)));
    return true;
  }

  /** Until the primary answers OK (or `alsoFinal`). */
  private async send(pg: number, frame: (epoch: number) => Frame, alsoFinal?: number): Promise<Frame> {
    let delay = retryDelayMsMin;
    for (;;) {
      const route = this.map.route(pg);
      if (!route) {
        await this.map.refresh().catch(() => undefined);
        await this.sched.sleep(delay, 'sdc retry');
        delay = Math.min(delay * 2, retryDelayMsMax);
        continue;
      }
      const to = `sds${route.primary.id}`;
      let reply: Frame;
      try {
        const f = frame(route.epoch);
        reply = await this.net.call('sdc', to, `t${f.type} pg${pg} e${route.epoch}`, sdsRequestTimeoutMs, () => this.nodes.get(to)!.handle(f));
      } catch (err) {
        if (!(err instanceof NetError)) throw err;
        await this.map.reportFailed(route);
        await this.sched.sleep(delay, 'sdc retry');
        delay = Math.min(delay * 2, retryDelayMsMax);
        continue;
      }
      if (reply.status === Status.OK || reply.status === alsoFinal) return reply;
      switch (reply.status) {
        case Status.STALE_EPOCH: case Status.NOT_PRIMARY: case Status.EPOCH_AHEAD: case Status.UNKNOWN_PG:
          await this.map.refresh().catch(() => undefined);
          break;
        case Status.REPLICATION_FAILED: case Status.BUSY: case Status.SHUTTING_DOWN:
          break;
        default:
          throw new Error(`unexpected reply ${statusName(reply.status)} from ${to}`);
      }
      await this.sched.sleep(delay, 'sdc retry');
      delay = Math.min(delay * 2, retryDelayMsMax);
    }
  }
}

/** A slot's contents name the write that put them there: its value in every 32-bit word. */
export function slotData(value: number): Buffer {
  const b = Buffer.allocUnsafe(SLOT_BYTES);
  for (let i = 0; i < SLOT_BYTES; i += 4) b.writeUInt32LE(value, i);
  return b;
}
