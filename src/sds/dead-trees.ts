/**
 * Volume trees the MDM told this SDS to reclaim (a deleted volume). A dead
 * tree takes no more IO and no rebuild images, so a client still holding a
 * token for the deleted volume, or a copy in flight when the deletion
 * arrived, cannot bring its chunks back. Tree ids are never reused by the
 * MDM, so the set only grows (a few bytes per deleted volume). Persisted in
 * <dataDir>/dead-trees.json, replaced durably on every addition.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

const FILE = 'dead-trees.json';

export class DeadTrees {
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly dataDir: string, private readonly trees: Set<number>) {}

  static async open(dataDir: string): Promise<DeadTrees> {
    let ids: number[] = [];
    try {
      const v = JSON.parse(await fsp.readFile(join(dataDir, FILE), 'utf8')) as unknown;
      if (Array.isArray(v)) ids = v.filter((x): x is number => Number.isInteger(x));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return new DeadTrees(dataDir, new Set(ids));
  }

  has(treeId: number): boolean {
    return this.trees.has(treeId);
  }

  /** Marks the tree dead; resolves once that is on stable storage. */
  add(treeId: number): Promise<void> {
    if (this.trees.has(treeId)) return this.writing;
    this.trees.add(treeId);
    // Writes are serialized: each one writes the whole (current) set.
    this.writing = this.writing.catch(() => undefined).then(() => this.persist());
    return this.writing;
  }

  private async persist(): Promise<void> {
    const path = join(this.dataDir, FILE);
    const tmp = `${path}.tmp`;
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify([...this.trees]));
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
