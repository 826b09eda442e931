/**
 * Received bytes as a list of chunks with a cursor into the first one, so
 * that taking a frame never concatenates the whole backlog (no quadratic
 * copying). A frame inside one chunk is returned as a view, without a copy.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // index of the first live chunk
  private offset = 0; // bytes already consumed from chunks[head]
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Removes and returns exactly n bytes; the caller checks `length >= n` first. */
  take(n: number): Buffer {
    if (n > this.total) throw new RangeError(`ByteQueue.take(${n}) with ${this.total} buffered`);
    if (n === 0) return EMPTY;
    const first = this.chunks[this.head]!;
    const avail = first.length - this.offset;
    if (n <= avail) {
      const out = first.subarray(this.offset, this.offset + n);
      this.consume(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[this.head]!;
      const count = Math.min(chunk.length - this.offset, n - filled);
      chunk.copy(out, filled, this.offset, this.offset + count);
      filled += count;
      this.consume(count);
    }
    return out;
  }

  /** Removes exactly n bytes as a list of views (no copy); the caller checks `length >= n` first. */
  takeChunks(n: number): Buffer[] {
    if (n > this.total) throw new RangeError(`ByteQueue.takeChunks(${n}) with ${this.total} buffered`);
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[this.head]!;
      const count = Math.min(chunk.length - this.offset, left);
      out.push(chunk.subarray(this.offset, this.offset + count));
      this.consume(count);
      left -= count;
    }
    return out;
  }

  /** Drops up to n bytes; returns how many were dropped. */
  skip(n: number): number {
    let dropped = 0;
    while (dropped < n && this.total > 0) {
      const chunk = this.chunks[this.head]!;
      const count = Math.min(chunk.length - this.offset, n - dropped);
      this.consume(count);
      dropped += count;
    }
    return dropped;
  }

  private consume(n: number): void {
    this.offset += n;
    this.total -= n;
    if (this.offset === this.chunks[this.head]!.length) {
      this.chunks[this.head] = EMPTY;
      this.head++;
      this.offset = 0;
      // Compact now and then so the array does not grow without bound.
      if (this.head > 64 && this.head * 2 > this.chunks.length) {
        this.chunks = this.chunks.slice(this.head);
        this.head = 0;
      }
    }
  }
}

const EMPTY = Buffer.alloc(0);
