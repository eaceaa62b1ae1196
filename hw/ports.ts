/**
 * The port I/O bus of the machine: 64 Ki ports, each claimed by at most one device window.
 * Unclaimed ports read as all ones and ignore writes (counted, as DESIGN.md asks of unbacked
 * accesses).
 */
import type { IoBus } from './cpu/cpu.ts';
import type { PortDevice, PortWindow } from './devices/types.ts';

export class PortBus implements IoBus {
  private readonly dev: (PortDevice | undefined)[] = new Array(0x10000).fill(undefined);
  private readonly off = new Int32Array(0x10000);
  private readonly names: (string | undefined)[] = new Array(0x10000).fill(undefined);
  /** Accesses to ports no device claims. */
  unclaimed = 0;

  /** Claims each window's ports for `d`. */
  attach(name: string, d: PortDevice, windows: readonly PortWindow[]): void {
    for (const w of windows) {
      for (let k = 0; k < w.length; k++) {
        const p = w.base + k;
        if (this.dev[p] !== undefined) throw new Error(`port 0x${p.toString(16)} claimed by both ${this.names[p]} and ${name}`);
        this.dev[p] = d; this.off[p] = w.offset + k; this.names[p] = name;
      }
    }
  }

  in(port: number, size: 1 | 2 | 4): number {
    const d = this.dev[port & 0xffff];
    if (d === undefined) { this.unclaimed++; return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff; }
    return d.ioRead(this.off[port & 0xffff], size) >>> 0;
  }

  out(port: number, size: 1 | 2 | 4, value: number): void {
    const d = this.dev[port & 0xffff];
    if (d === undefined) { this.unclaimed++; return; }
    d.ioWrite(this.off[port & 0xffff], size, size === 4 ? value >>> 0 : value & (size === 1 ? 0xff : 0xffff));
  }

  /** Which device claims a port (for tests and traces). */
  owner(port: number): string | undefined { return this.names[port & 0xffff]; }
}
