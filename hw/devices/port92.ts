/**
 * Port 0x92, system control port A (the PS/2 "fast A20" port).
 *
 * Device offset 0 (PORT92_PORTS: 0x92).
 *   bit 0: alternate hot reset: writing 1 when it was 0 resets the system (onReset).
 *   bit 1: A20 gate: every write calls onA20 with this bit (last writer wins against the
 *          keyboard controller, as QEMU drives the line).
 *   other bits are stored; a read returns the last value written.
 * Reset clears bit 0 (and keeps bit 1, as QEMU's port 92).
 */
import { readBytes, writeBytes } from './byte-io.ts';
import type { PortDevice, PortWindow, Snapshottable } from './types.ts';

export const PORT92_PORTS: readonly PortWindow[] = [{ base: 0x92, length: 1, offset: 0 }];

export interface Port92State {
  value: number;
}

export interface Port92Options {
  onReset?: () => void;
  onA20?: (enabled: boolean) => void;
}

export class Port92 implements PortDevice, Snapshottable<Port92State> {
  private value = 0;

  constructor(private readonly opts: Port92Options = {}) {}

  ioRead(port: number, size: 1 | 2 | 4): number {
    return readBytes((o) => (o === 0 ? this.value : 0xff), port, size);
  }

  ioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    writeBytes((o, v) => {
      if (o !== 0) return;
      const old = this.value;
      this.value = v;
      this.opts.onA20?.((v & 0x02) !== 0);
      if ((v & 0x01) !== 0 && (old & 0x01) === 0) this.opts.onReset?.();
    }, port, size, value);
  }

  save(): Port92State {
    return { value: this.value };
  }

  restore(s: Port92State): void {
    this.value = s.value;
  }

  reset(): void {
    this.value &= ~0x01;
  }
}
