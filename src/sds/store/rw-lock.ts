/**
 * Per-key reader/writer lock with FIFO order: readers of a chunk share it,
 * a writer has it alone, and nobody overtakes a waiter queued before them
 * (so two writes to a chunk apply in arrival order and data and checksums
 * always agree).
 */
interface Waiter {
  write: boolean;
  grant: () => void;
}

interface State {
  readers: number;
  writer: boolean;
  queue: Waiter[];
}

export class KeyedRwLock {
  private readonly states = new Map<string, State>();

  acquire(key: string, write: boolean): Promise<void> | undefined {
    let s = this.states.get(key);
    if (!s) {
      s = { readers: 0, writer: false, queue: [] };
      this.states.set(key, s);
    }
    if (s.queue.length === 0 && !s.writer && (!write || s.readers === 0)) {
      if (write) s.writer = true;
      else s.readers++;
      return undefined; // granted at once: the caller need not await
    }
    const state = s;
    return new Promise<void>((resolve) => state.queue.push({ write, grant: resolve }));
  }

  release(key: string, write: boolean): void {
    const s = this.states.get(key);
    if (!s) throw new Error('pflex assertion: release of an unheld lock');
    if (write) s.writer = false;
    else s.readers--;
    while (s.queue.length > 0 && !s.writer) {
      const next = s.queue[0]!;
      if (next.write && s.readers > 0) break;
      s.queue.shift();
      if (next.write) s.writer = true;
      else s.readers++;
      next.grant();
    }
    if (!s.writer && s.readers === 0 && s.queue.length === 0) this.states.delete(key);
  }

  get size(): number {
    return this.states.size;
  }
}
