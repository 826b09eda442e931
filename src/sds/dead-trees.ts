/**
 * Volume trees and layers the MDM told this SDS to reclaim (a tree: its last
 * volume, snapshot or clone was deleted; a layer: freed, no volume row or
 * child layer needs it). A dead tree takes no more IO and no rebuild images,
 * a dead layer no rebuild images (its writes are refused by the layer check:
 * no volume writes it any more), so a client still holding a token, or a
 * copy in flight when the deletion arrived, cannot bring chunks back. Tree
 * and layer ids are never reused by the MDM, so the sets only grow (a few
 * bytes per deletion). Persisted in <dataDir>/dead-trees.json
 * ({trees, layers: ["tree:layer"]}), replaced durably on every addition.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

const FILE = 'dead-trees.json';

export class DeadTrees {
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly dataDir: string, private readonly trees: Set<number>, private readonly layers: Set<string>) {}

  static async open(dataDir: string): Promise<DeadTrees> {
    let trees: unknown[] = [];
    let layers: unknown[] = [];
    try {
      const v = JSON.parse(await fsp.readFile(join(dataDir, FILE), 'utf8')) as unknown;
      if (Array.isArray(v)) trees = v; // the first format: trees only
      else if (v !== null && typeof v === 'object') {
        const o = v as { trees?: unknown; layers?: unknown };
        if (Array.isArray(o.trees)) trees = o.trees;
        if (Array.isArray(o.layers)) layers = o.layers;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return new DeadTrees(dataDir, new Set(trees.filter((x): x is number => Number.isInteger(x))),
      new Set(layers.filter((x): x is string => typeof x === 'string' && /^\d+:\d+$/.test(x))));
  }

  has(treeId: number): boolean {
    return this.trees.has(treeId);
  }
  /** The tree or that layer of it is dead. */
  hasLayer(treeId: number, layerId: number): boolean {
    return this.trees.has(treeId) || this.layers.has(`${treeId}:${layerId}`);
  }

  /** Marks the tree dead; resolves once that is on stable storage. */
  add(treeId: number): Promise<void> {
    if (this.trees.has(treeId)) return this.writing;
    this.trees.add(treeId);
    return this.save();
  }
  /** Marks one layer of a tree dead; resolves once that is on stable storage. */
  addLayer(treeId: number, layerId: number): Promise<void> {
    const key = `${treeId}:${layerId}`;
    if (this.layers.has(key)) return this.writing;
    this.layers.add(key);
    return this.save();
  }

  private save(): Promise<void> {
    // Writes are serialized: each one writes the whole (current) sets.
    this.writing = this.writing.catch(() => undefined).then(() => this.persist());
    return this.writing;
  }

  private async persist(): Promise<void> {
    const path = join(this.dataDir, FILE);
    const tmp = `${path}.tmp`;
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify({ trees: [...this.trees], layers: [...this.layers] }));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path);
    const dir = await fsp.open(this.dataDir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
