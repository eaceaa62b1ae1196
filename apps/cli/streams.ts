// Host ends of the machine's byte streams for the CLI: stdout as a sink, stdin read in full.
import { fstatSync, readFileSync, writeSync } from 'node:fs';
import type { ByteSink, ByteSource } from '../../hw/devices/types.ts';

/** Writes bytes to fd 1 as they come (synchronously, so stdout and stderr keep their order). */
export class StdoutSink implements ByteSink {
  constructor(private readonly fd = 1) {}
  write(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) {
      try { off += writeSync(this.fd, bytes, off); } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        if ((e as NodeJS.ErrnoException).code === 'EPIPE') return;
        throw e;
      }
    }
  }
  flush(): void { /* writes are synchronous */ }
}

/** stdin, read in full when it is not a terminal (DESIGN.md: input is deterministic). */
export function readStdinIfPiped(): Uint8Array | null {
  try {
    if (process.stdin.isTTY) return null;
    const st = fstatSync(0);
    if (!st.isFIFO() && !st.isFile() && !st.isSocket()) return null;
    return new Uint8Array(readFileSync(0));
  } catch { return null; }
}

/** A byte source over a buffer. */
export class StringSource implements ByteSource {
  private pos = 0;
  constructor(private readonly data: Uint8Array) {}
  read(max: number): Uint8Array | null {
    if (this.pos >= this.data.length) return null;
    const n = Math.min(max, this.data.length - this.pos);
    const b = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}
