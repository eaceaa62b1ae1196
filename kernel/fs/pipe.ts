/**
 * A pipe: a 64 KiB byte buffer between a read end and a write end (Linux's default pipe size,
 * 16 pages), with the threads waiting on it. The system calls (syscalls/pipe.ts, io.ts) block
 * a thread here and the pipe wakes its waiters through `wake` when something changes: data
 * written (readers), data read (writers), an end closed (both: a reader sees end of file when
 * every write end is closed; a writer gets EPIPE and SIGPIPE when every read end is).
 *
 * Writes of at most PIPE_BUF (4096) bytes are atomic: they wait for room for all of them.
 */
import type { Thread } from '../sched/thread.ts';

export const PIPE_SIZE = 65536;
export const PIPE_BUF = 4096;

let nextPipeIno = 0x5000;

export class Pipe {
  private buf = new Uint8Array(PIPE_SIZE);
  private head = 0;
  private len = 0;
  /** Open descriptions of each end. */
  readers = 1;
  writers = 1;
  readonly readWaiters = new Set<Thread>();
  readonly writeWaiters = new Set<Thread>();
  readonly ino = nextPipeIno++;

  /** `wake` makes a blocked thread runnable (the kernel's scheduler, from the core running now). */
  constructor(private readonly wake: (t: Thread) => void) {}

  get available(): number { return this.len; }
  get room(): number { return PIPE_SIZE - this.len; }

  /** Takes up to `max` bytes (fewer when fewer are buffered). */
  read(max: number): Uint8Array {
    const n = Math.min(max, this.len);
    const out = new Uint8Array(n);
    const first = Math.min(n, PIPE_SIZE - this.head);
    out.set(this.buf.subarray(this.head, this.head + first), 0);
    if (n > first) out.set(this.buf.subarray(0, n - first), first);
    this.head = (this.head + n) % PIPE_SIZE;
    this.len -= n;
    if (n > 0) this.wakeAll(this.writeWaiters);
    return out;
  }

  /** Appends bytes (the caller checked the room). */
  write(data: Uint8Array): void {
    let tail = (this.head + this.len) % PIPE_SIZE;
    for (let k = 0; k < data.length;) {
      const chunk = Math.min(data.length - k, PIPE_SIZE - tail);
      this.buf.set(data.subarray(k, k + chunk), tail);
      k += chunk;
      tail = (tail + chunk) % PIPE_SIZE;
    }
    this.len += data.length;
    if (data.length > 0) this.wakeAll(this.readWaiters);
  }

  /** The last descriptor of one end closed. */
  closeEnd(end: 'read' | 'write'): void {
    if (end === 'read') this.readers--; else this.writers--;
    this.wakeAll(this.readWaiters);
    this.wakeAll(this.writeWaiters);
  }

  private wakeAll(set: Set<Thread>): void {
    const ts = [...set];
    set.clear();
    for (const t of ts) this.wake(t);
  }
}
