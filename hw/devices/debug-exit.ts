/**
 * isa-debug-exit, as QEMU's device (-device isa-debug-exit,iobase=0xf4,iosize=0x04): a write
 * of value v, of any width to any of its ports, calls onExit((v << 1) | 1); reads return 0.
 * The status is computed modulo 2^32 (QEMU's process exit status keeps its low 8 bits).
 *
 * Device offsets 0-3 (DEBUG_EXIT_PORTS: 0xF4-0xF7).
 */
import type { PortDevice, PortWindow, Snapshottable } from './types.ts';

export const DEBUG_EXIT_PORTS: readonly PortWindow[] = [{ base: 0xf4, length: 4, offset: 0 }];

export interface DebugExitState {
  /** The status of the last exit request, or null. */
  lastStatus: number | null;
}

export class DebugExit implements PortDevice, Snapshottable<DebugExitState> {
  private lastStatus: number | null = null;

  constructor(private readonly onExit: (status: number) => void) {}

  get status(): number | null {
    return this.lastStatus;
  }

  ioRead(_port: number, _size: 1 | 2 | 4): number {
    return 0;
  }

  ioWrite(_port: number, size: 1 | 2 | 4, value: number): void {
    const v = size === 4 ? value >>> 0 : value & (size === 2 ? 0xffff : 0xff);
    const status = ((v << 1) | 1) >>> 0;
    this.lastStatus = status;
    this.onExit(status);
  }

  save(): DebugExitState {
    return { lastStatus: this.lastStatus };
  }

  restore(s: DebugExitState): void {
    this.lastStatus = s.lastStatus;
  }

  reset(): void {
    this.lastStatus = null;
  }
}
