/**
 * What the rebuild benchmarks share: a teardown scope standing in for a tap
 * test (the cluster helpers of test/ take one), and filling a volume with
 * whole chunks through a data-client router.
 */
import type { Test } from 'tap';
import { Status } from '../src/dataplane/proto.js';
import type { Router } from '../test/sds/cluster.js';

export class Scope {
  private readonly fns: Array<() => unknown> = [];
  teardown(fn: () => unknown): void { this.fns.push(fn); }
  async close(): Promise<void> { for (const fn of this.fns.reverse()) await fn(); }
  /** The scope as the helpers' test handle (they only call teardown). */
  get t(): Test { return this as unknown as Test; }
}

/** Writes `data` (one chunk) to chunks 0..chunks-1, 8 at a time. */
export async function fillChunks(r: Router, chunks: number, data: Buffer): Promise<void> {
  for (let c = 0; c < chunks; c += 8) {
    const replies = await Promise.all(Array.from({ length: Math.min(8, chunks - c) }, (_, i) => r.write(c + i, 0, data)));
    if (replies.some((x) => x.status !== Status.OK)) throw new Error('write failed');
  }
}
