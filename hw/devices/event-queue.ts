/**
 * A deterministic event queue and clock: an EventScheduler and a TimeSource in one.
 *
 * Events are kept in a binary heap ordered by (cycle, insertion sequence), so events due at
 * the same cycle fire in the order they were scheduled. runUntil(cycle) fires every event due
 * at or before `cycle` in that order, setting now() to each event's cycle before its callback
 * runs, and then leaves now() at `cycle`. Callbacks may schedule and cancel events; an event
 * scheduled for a cycle already past fires at the current time, before later ones.
 *
 * Nothing here reads a wall clock: time moves only through runUntil / advance.
 */
import type { EventHandle, EventScheduler, TimeSource } from './types.ts';

interface Entry {
  at: number;
  seq: number;
  handle: EventHandle;
  cb: () => void;
}

export class EventQueue implements EventScheduler, TimeSource {
  readonly hz: number;
  private cycle: number;
  private heap: Entry[] = [];
  private live = new Map<EventHandle, Entry>();
  private nextSeq = 0;
  private nextHandle = 1;

  constructor(hz: number, startCycle = 0) {
    if (!Number.isFinite(hz) || hz <= 0) throw new RangeError(`clock rate must be positive, got ${hz}`);
    this.hz = hz;
    this.cycle = startCycle;
  }

  now(): number {
    return this.cycle;
  }

  schedule(atCycle: number, cb: () => void): EventHandle {
    if (Number.isNaN(atCycle)) throw new RangeError('event cycle is NaN');
    const entry: Entry = { at: atCycle, seq: this.nextSeq++, handle: this.nextHandle++, cb };
    this.live.set(entry.handle, entry);
    this.push(entry);
    return entry.handle;
  }

  cancel(h: EventHandle): void {
    // Lazy deletion: the entry stays in the heap and is skipped when it reaches the top.
    this.live.delete(h);
  }

  /** Number of events still pending. */
  get pending(): number {
    return this.live.size;
  }

  /** The cycle of the earliest pending event, or Infinity when nothing is pending. */
  nextEventAt(): number {
    this.dropCancelled();
    return this.heap.length > 0 ? this.heap[0]!.at : Infinity;
  }

  /** Fires all events due at or before `cycle`, in order, and advances now() to `cycle`. */
  runUntil(cycle: number): number {
    let fired = 0;
    for (;;) {
      this.dropCancelled();
      const top = this.heap[0];
      if (top === undefined || top.at > cycle) break;
      this.pop();
      this.live.delete(top.handle);
      if (top.at > this.cycle) this.cycle = top.at;
      fired++;
      top.cb();
    }
    if (cycle > this.cycle) this.cycle = cycle;
    return fired;
  }

  /** runUntil(now() + cycles). */
  advance(cycles: number): number {
    return this.runUntil(this.cycle + cycles);
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && !this.live.has(this.heap[0]!.handle)) this.pop();
  }

  private static before(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!EventQueue.before(e, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && EventQueue.before(h[r]!, h[l]!) ? r : l;
      if (!EventQueue.before(h[c]!, last)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}
