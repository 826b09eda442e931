/**
 * Invariants of a finished simulation run:
 *  1. durability — every acknowledged write is what each acting member of its
 *     PG holds (or a later attempted write to the same slot overwrote it);
 *  2. convergence — the acting members of a PG hold byte-identical chunks;
 *  3. fencing — every write a store applied was applied by a member of the
 *     PG's acting set as the MDM published it for the epoch the SDS believed
 *     (and that epoch is one the MDM did publish).
 */
import type { SimMdm } from './mdm.js';
import type { AcceptedWrite, SimSds } from './sds-node.js';

export interface SlotHistory {
  /** "pg/chunk/slot". */
  key: string;
  pg: number;
  /** Writes in issue order; at most one in flight per slot. */
  writes: Array<{ value: number; acked: boolean }>;
  busy: boolean;
}

export interface Violation {
  invariant: 'durability' | 'convergence' | 'fencing' | 'liveness';
  message: string;
  detail: Record<string, unknown>;
}

export interface CheckInput {
  mdm: SimMdm;
  nodes: Map<string, SimSds>;
  slots: SlotHistory[];
  accepted: AcceptedWrite[];
  slotBytes: number;
  tree: number;
  down: Set<string>;
  /** What a client read of each slot through the PG's primary returned (slot key -> value). */
  readBack?: Map<string, number | undefined>;
}

export async function check(c: CheckInput): Promise<Violation[]> {
  const out: Violation[] = [];
  await checkDurability(c, out);
  await checkConvergence(c, out);
  out.push(...checkFencing(c.mdm, c.accepted));
  return out;
}

async function checkDurability(c: CheckInput, out: Violation[]): Promise<void> {
  for (const slot of c.slots) {
    const [, chunk, index] = slot.key.split('/').map(Number) as [number, number, number];
    let lastAcked = -1;
    slot.writes.forEach((w, i) => { if (w.acked) lastAcked = i; });
    // What the slot may hold: the last acknowledged write or any attempted after it (or nothing, if none was acknowledged).
    const allowed = new Set(slot.writes.slice(Math.max(0, lastAcked)).map((w) => w.value));
    if (lastAcked < 0) allowed.add(0);
    const entry = c.mdm.entry(slot.pg);
    if (c.readBack?.has(slot.key)) {
      const read = c.readBack.get(slot.key);
      if (read === undefined || !allowed.has(read)) {
        out.push({
          invariant: 'durability',
          message: `slot ${slot.key} read through primary sds${entry.members[0]} (epoch ${entry.epoch}) returned ${read ?? 'torn data'}; allowed ${[...allowed].join(',')}`,
          detail: { slot: slot.key, read, writes: slot.writes },
        });
      }
    }
    for (const id of entry.members) {
      const node = c.nodes.get(`sds${id}`)!;
      if (c.down.has(node.name)) continue;
      const data = await node.store.read(slot.pg, { treeId: c.tree, chunkIndex: chunk, layerId: 0 }, index * c.slotBytes, c.slotBytes);
      const held = valueOf(data);
      if (held === undefined || !allowed.has(held)) {
        out.push({
          invariant: 'durability',
          message: `slot ${slot.key} on sds${id} (${id === entry.members[0] ? 'primary' : 'secondary'}, epoch ${entry.epoch}) holds ${held ?? 'torn data'}; allowed ${[...allowed].join(',')}`,
          detail: { slot: slot.key, sds: id, held, writes: slot.writes },
        });
      }
    }
  }
}

/** The value a slot's bytes name (0 = never written), undefined when torn. */
export function valueOf(data: Buffer | null): number | undefined {
  if (!data) return 0;
  const v = data.readUInt32LE(0);
  for (let i = 4; i < data.length; i += 4) if (data.readUInt32LE(i) !== v) return undefined;
  return v;
}

async function checkConvergence(c: CheckInput, out: Violation[]): Promise<void> {
  const pgCount = c.mdm.map().pgCount;
  for (let pg = 0; pg < pgCount; pg++) {
    const entry = c.mdm.entry(pg);
    const live = entry.members.map((id) => c.nodes.get(`sds${id}`)!).filter((n) => !c.down.has(n.name));
    const images = await Promise.all(live.map((n) => image(n, pg)));
    for (let i = 1; i < images.length; i++) {
      if (images[i] !== images[0]) {
        out.push({
          invariant: 'convergence',
          message: `PG ${pg} (epoch ${entry.epoch}): ${live[0]!.name} and ${live[i]!.name} differ`,
          detail: { pg, a: live[0]!.name, b: live[i]!.name },
        });
      }
    }
  }
}

/** A PG's chunks on one node as one comparable string (hex of every chunk, in key order). */
async function image(n: SimSds, pg: number): Promise<string> {
  const chunks = (await n.store.list(pg)).sort((a, b) => a.treeId - b.treeId || a.chunkIndex - b.chunkIndex || a.layerId - b.layerId);
  const parts: string[] = [];
  for (const ch of chunks) {
    const data = await n.store.read(pg, ch, 0, ch.sizeBytes);
    parts.push(`${ch.treeId}-${ch.chunkIndex}-${ch.layerId}:${data!.toString('base64')}`);
  }
  return parts.join('|');
}

export function checkFencing(mdm: SimMdm, accepted: AcceptedWrite[]): Violation[] {
  const out: Violation[] = [];
  for (const a of accepted) {
    const published = a.epoch === undefined ? undefined : mdm.history.get(`${a.pg}@${a.epoch}`);
    if (!published || !(published.members.includes(a.node) || published.joining.includes(a.node))) {
      out.push({
        invariant: 'fencing',
        message: `sds${a.node} applied a write to PG ${a.pg} at ${a.atMs} ms believing epoch ${a.epoch}, where the MDM published ${published ? `[${published.members.join(',')}]` : 'nothing'}`,
        detail: { ...a },
      });
    }
  }
  return out;
}
