/**
 * A growable FIFO of bytes (a ring buffer), for host-side input buffers that can hold a whole
 * stdin. Snapshots use toArray() / ByteQueue.from().
 */
export class ByteQueue {
  private buf: Uint8Array;
  private head = 0;
  private count = 0;

  constructor(capacity = 64) {
    this.buf = new Uint8Array(Math.max(1, capacity));
  }

  static from(bytes: ArrayLike<number>): ByteQueue {
    const q = new ByteQueue(bytes.length);
    q.push(bytes);
    return q;
  }

  get length(): number {
    return this.count;
  }

  push(bytes: ArrayLike<number>): void {
    const n = bytes.length;
    if (this.count + n > this.buf.length) this.grow(this.count + n);
    const cap = this.buf.length;
    let tail = (this.head + this.count) % cap;
    for (let i = 0; i < n; i++) {
      this.buf[tail] = bytes[i]! & 0xff;
      tail = tail + 1 === cap ? 0 : tail + 1;
    }
    this.count += n;
  }

  /** Removes and returns the first byte, or -1 when empty. */
  shift(): number {
    if (this.count === 0) return -1;
    const b = this.buf[this.head]!;
    this.head = this.head + 1 === this.buf.length ? 0 : this.head + 1;
    this.count--;
    return b;
  }

  clear(): void {
    this.head = 0;
    this.count = 0;
  }

  toArray(): number[] {
    const out = new Array<number>(this.count);
    const cap = this.buf.length;
    for (let i = 0; i < this.count; i++) out[i] = this.buf[(this.head + i) % cap]!;
    return out;
  }

  private grow(min: number): void {
    let cap = this.buf.length * 2;
    while (cap < min) cap *= 2;
    const next = new Uint8Array(cap);
    const old = this.buf;
    for (let i = 0; i < this.count; i++) next[i] = old[(this.head + i) % old.length]!;
    this.buf = next;
    this.head = 0;
  }
}
