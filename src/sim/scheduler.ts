/**
 * Virtual time and the event loop of a simulation run. Code under test is
 * promise based; it only ever waits on simulated messages and timers, which
 * this scheduler fires one at a time in (time, sequence) order. After each
 * event every microtask it caused runs to completion (one setImmediate turn),
 * so a run is a pure function of its seed.
 */
export interface Timer {
  cancelled: boolean;
}

interface Ev extends Timer {
  atMs: number;
  seq: number;
  label: string;
  fn: () => void;
}

const TRACE_TAIL_MAX = 400;

export class Scheduler {
  nowMs = 0;
  events = 0;
  private seq = 0;
  private readonly heap: Ev[] = [];
  /** FNV-1a over every fired event's time and label: equal for equal runs. */
  private hash = 0x811c9dc5;
  /** The last events, printed when a run fails. */
  readonly tail: string[] = [];

  readonly now = (): number => this.nowMs;

  at(delayMs: number, label: string, fn: () => void): Timer {
    const ev: Ev = { atMs: this.nowMs + Math.max(0, delayMs), seq: this.seq++, label, fn, cancelled: false };
    this.push(ev);
    return ev;
  }

  /** Resolves after delayMs of virtual time. */
  sleep(delayMs: number, label = 'sleep'): Promise<void> {
    return new Promise((resolve) => { this.at(delayMs, label, resolve); });
  }

  get traceHash(): string {
    return (this.hash >>> 0).toString(16).padStart(8, '0');
  }

  get pending(): number {
    return this.heap.length;
  }

  /** Fires events until virtual time passes untilMs, the queue is empty, or stop() says so. */
  async run(untilMs: number, stop: () => boolean = () => false): Promise<void> {
    await drain();
    while (this.heap.length > 0 && !stop()) {
      if (this.heap[0]!.atMs > untilMs) break;
      const ev = this.pop();
      if (ev.cancelled) continue;
      this.nowMs = ev.atMs;
      this.events++;
      this.record(ev);
      ev.fn();
      await drain();
    }
    if (this.nowMs < untilMs && (this.heap.length === 0 || this.heap[0]!.atMs > untilMs)) this.nowMs = untilMs;
  }

  private record(ev: Ev): void {
    const line = `${ev.atMs} ${ev.label}`;
    let h = this.hash;
    for (let i = 0; i < line.length; i++) h = Math.imul(h ^ line.charCodeAt(i), 0x01000193);
    this.hash = Math.imul(h ^ 10, 0x01000193);
    this.tail.push(line);
    if (this.tail.length > TRACE_TAIL_MAX) this.tail.splice(0, this.tail.length - TRACE_TAIL_MAX);
  }

  private push(ev: Ev): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Ev {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Ev, b: Ev): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

/** Lets every pending microtask run (they all precede the next macrotask). */
function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
